"""The failure_gate step."""
