"""The trading domain, free of I/O: bars, the calendar, orders, events, the engine (trade
lifecycle), exits, sizing and risk, and the broker protocol the runtimes drive.
"""
