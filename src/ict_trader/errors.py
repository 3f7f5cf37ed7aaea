"""Errors shared across modules."""


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the key."""


class BrokerUnreachableError(RuntimeError):
    """The broker did not answer at start within the allowed time; the message says where, what
    was asked, why it failed and how often it was tried."""
