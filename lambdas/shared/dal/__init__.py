"""Data access: one module per DynamoDB table (table.py: what they share); nothing else in lambdas/ talks to one."""
