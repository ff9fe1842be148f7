"""Modules shared by every Lambda: configuration, errors, models, observability."""
