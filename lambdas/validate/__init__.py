"""The validate step."""
