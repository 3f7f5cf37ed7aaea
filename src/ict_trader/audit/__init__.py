"""`ict-trader audit`: a paper or live store checked against Alpaca and against the backtest.

The first live weeks need three checks that used to be done by hand: that Alpaca's order history
matches the bot's ledger, that signals come as often as the backtest says, and that trades hit
their targets as often. And the free plan's live bars are IEX's, not the consolidated (SIP) bars
the backtests use, so live signals can differ from backtested ones without anyone noticing.

One module per job: `history` reads Alpaca (orders, FILL activities, SIP bars), `orders` matches
the ledger with them, `bars` and `signals` compare the live feed with SIP, `slippage` the live
fills with the simulated ones, `expectation` and `stats` the live figures with the backtest's,
`run` puts it together, `report` holds the result and its verdict, `render` prints it, `record`
keeps it for the dashboard, `daily` makes the daily summary's line, `run_config` reads back the
settings a run traded with. A run trading several symbols is audited symbol by symbol (bars,
signals, expectation) and as a whole (orders and fills, the backtest of all its symbols at once).
"""

from ict_trader.audit.report import AuditReport
from ict_trader.audit.run import AuditError, Clients, run_audit

__all__ = ["AuditError", "AuditReport", "Clients", "run_audit"]
