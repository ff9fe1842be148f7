"""The deliver step."""
