"""`python -m ict_trader` runs the command line."""

from ict_trader.cli import app

app(prog_name="ict-trader")
