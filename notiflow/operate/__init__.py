"""Operator commands and the AWS readers behind them: runs, redrive, deployment discovery."""
