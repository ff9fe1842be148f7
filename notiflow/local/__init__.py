"""Embedded local engine: moto 5.2.5 in execution mode, real handlers in-process, the real ASL.

``engine`` is the only package that touches moto internals (one module per concern, one table of
internals); ``stack`` provisions what the CDK app deploys; ``sqs_poller`` stands in for the SQS
event source mapping; ``fixtures`` is the pytest plugin; ``server`` keeps a stack up for manual use.
``bench/engine_modes.py`` measures executions per second, stock moto against each optimisation.
"""
