"""A loopback emulation of Alpaca's paper-trading API, replaying real bars.

Alpaca cannot be reached from CI or from a user's offline machine; this package serves its wire
protocol (REST, the msgpack market-data stream and the JSON trade-updates stream) on 127.0.0.1 so
the *unmodified* alpaca-py SDK — and so ict-trader's live path — can run against it.
"""
