"""The drivers of the one engine: backtest and replay (simulated broker) and live (Alpaca); each
owns only its clock and its data source. Also control requests and logs.
"""
