"""Errors shared across modules."""


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the key."""
