"""The deduplicate step."""
