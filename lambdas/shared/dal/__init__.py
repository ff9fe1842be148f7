"""Data access: one module per DynamoDB table; nothing else in ``lambdas/`` talks to a table."""
