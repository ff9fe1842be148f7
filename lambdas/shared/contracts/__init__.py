"""What each state sends a step and what the step returns: one module per step.

A handler imports only its own step's models, so a cold start builds only the pydantic models that
step uses (building a model's validator is most of what importing a model costs).
"""
