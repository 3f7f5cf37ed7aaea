"""`python -m ict_trader` runs the command line."""

from ict_trader.cli.app import app

app(prog_name="ict-trader")
