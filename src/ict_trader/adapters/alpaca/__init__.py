"""Alpaca: the broker adapter over alpaca-py, and the emulator of its API."""
