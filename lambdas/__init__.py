"""Deployed Lambda code: one thin handler per workflow step plus shared modules."""
