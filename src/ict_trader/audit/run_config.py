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
            "profiles": [
                {
                    "name": p["name"],
                    "allocation": _number(p["allocation"]),
                    "enabled": bool(p["enabled"]),
                }
                for p in described["profiles"]
            ],
        }
    except (KeyError, TypeError, AttributeError, InvalidOperation) as exc:
        raise ConfigError(f"the run's recorded settings are incomplete ({exc!r})") from None
    try:
        return parse_config(raw)
    except ConfigError as exc:
        raise ConfigError(f"the run's recorded settings cannot be used: {exc}") from None


def _number(text: object) -> Decimal:
    return Decimal(str(text))
