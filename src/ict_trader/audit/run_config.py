"""The settings a live run traded with, read back from its record in the store.

The audit re-runs the detector and the backtest, and they must use the run's own signal
parameters, exits, profiles and simulated slippage — not whatever `ict-trader.toml` says today.
`AppConfig.describe()` recorded them as plain values (numbers of the exits, risk and simulation
tables as decimal text); they go back through the same checks a settings file gets.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from ict_trader.config import AppConfig, parse_config
from ict_trader.errors import ConfigError


def config_of_run(described: dict[str, Any]) -> AppConfig:
    """The AppConfig of a run record's `config`; ConfigError if it cannot be read back."""
    try:
        raw: dict[str, Any] = {
            "symbols": list(described["symbols"]),
            "signal": dict(described["signal"]),
            "exits": {
                key: value if key == "stop" else _number(value)
                for key, value in described["exits"].items()
            },
            "simulation": {k: _number(v) for k, v in described["simulation"].items()},
            "risk": {k: _number(v) for k, v in described["risk"].items()},
            "profiles": [_profile(p) for p in described["profiles"]],
        }
        if "options" in described:  # recorded only when a profile traded options
            raw["options"] = _options(described["options"]["settings"])
    except (KeyError, TypeError, AttributeError, InvalidOperation) as exc:
        raise ConfigError(f"the run's recorded settings are incomplete ({exc!r})") from None
    try:
        return parse_config(raw)
    except ConfigError as exc:
        raise ConfigError(f"the run's recorded settings cannot be used: {exc}") from None


# The option rules and [options] settings recorded as text that are words, not numbers.
_OPTION_WORDS = {"strike", "entry_price", "target", "flatten_at"}
_OPTIONS_WORDS = {"pricing", "quotes"}


def _profile(recorded: dict[str, Any]) -> dict[str, Any]:
    """A recorded profile, with its instrument and option rules when it traded options (an
    options profile read back as a shares one would make the audit's backtest trade shares)."""
    profile: dict[str, Any] = {
        "name": recorded["name"],
        "allocation": _number(recorded["allocation"]),
        "enabled": bool(recorded["enabled"]),
    }
    if "instrument" in recorded:
        profile["instrument"] = recorded["instrument"]
        profile["option"] = {
            key: value if key in _OPTION_WORDS else _number(value)
            for key, value in recorded["option"].items()
        }
    return profile


def _options(settings: dict[str, Any]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for key, value in settings.items():
        if value is None:
            continue  # no quote file
        if key in _OPTIONS_WORDS or value == "realized":
            table[key] = value
        else:
            table[key] = _number(value)
    return table


def _number(text: object) -> Decimal:
    return Decimal(str(text))
