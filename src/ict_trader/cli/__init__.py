"""The `ict-trader` command line."""
