"""The state machine definition and the one place that loads and renders it."""
