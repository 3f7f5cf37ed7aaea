"""Brokers behind the core's protocol: the simulated broker and Alpaca (alpaca-py), with the
loopback emulator of Alpaca's published API.
"""
