"""Brokers: the simulated one (backtest, replay) and, later, Alpaca; both speak `Broker`."""
