"""Notiflow: reliable HTTP notification delivery on AWS Step Functions, with an embedded local stack."""
