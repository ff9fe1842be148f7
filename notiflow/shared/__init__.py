"""Small pieces shared by the CLI, the console, the demo and the local stack."""
