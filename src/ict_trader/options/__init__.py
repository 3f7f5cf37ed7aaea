"""Options on the underlying's signals: pricing, contract choice and quotes, free of I/O but for
reading a quote file.

pricing.py     Black-Scholes-Merton prices, greeks and implied volatility on a trading-time
               clock; the modelled quote (bid/ask around the model price) and `OptionQuote`,
               which says whether its prices are modelled or real
volatility.py  the underlying's realized volatility from 1-minute bars, on the same clock
chain.py       the strikes listed around the underlying, the strike rules (atm, otm = N,
               delta = D) and sizing by premium
quotes.py      a user's option quote file (timestamp, OCC symbol, bid, ask), validated, and the
               quote in force for a contract at a moment
"""
