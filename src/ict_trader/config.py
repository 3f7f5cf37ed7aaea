"""Configuration: an optional `ict-trader.toml`, then command-line overrides.

Every problem names the key (`exits.max_hold_minutes must be at least 1`), because a trading bot
that silently ignores a misspelt risk setting is worse than one that refuses to start.

```toml
symbol = "QQQ"

[signal]            # any ICT_SIGNAL.md parameter
require_fvg = true

[exits]
target_atr_multiple = 5
max_hold_minutes = 60
flatten_before_close_minutes = 5
stop = "none"       # none | sweep | atr
stop_atr_multiple = 2

[simulation]
starting_equity = 100000
slippage_bps = 0
commission_per_share = 0

[risk]              # 0 disables a limit; see ict_trader/risk.py
daily_loss_limit = 1000
rapid_loss = 500
rapid_loss_minutes = 15
max_errors = 5
error_window_minutes = 10
max_drawdown_pct = 5
max_equity_pct_per_trade = 10
max_total_equity_pct = 20
stale_data_minutes = 5   # live: no bar this long -> entries pause until bars return

[[profiles]]
name = "conservative"
allocation = 0.03

[[profiles]]
name = "aggressive"
allocation = 0.04
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from ict_trader.brokers.simulated import SimulatedBrokerConfig
from ict_trader.errors import ConfigError
from ict_trader.risk import RiskLimits
from ict_trader.signals import SignalParams
from ict_trader.signals.params import ParamError
from ict_trader.strategy import (
    DEFAULT_PROFILES,
    EngineConfig,
    ExitRules,
    StopMode,
    StrategyProfile,
)

DEFAULT_CONFIG_FILE = Path("ict-trader.toml")
_WHOLE_RISK_KEYS = {"max_errors", "max_shares_per_trade", "max_total_shares"}
_TOP_LEVEL = {"symbol", "signal", "exits", "simulation", "profiles", "risk"}


@dataclass(frozen=True)
class AppConfig:
    signal: SignalParams = field(default_factory=SignalParams)
    engine: EngineConfig = field(default_factory=EngineConfig)
    simulation: SimulatedBrokerConfig = field(default_factory=SimulatedBrokerConfig)
    source: Path | None = None

    def describe(self) -> dict[str, Any]:
        """Plain values for run records and reports."""
        return {
            "symbol": self.engine.symbol,
            "signal": {f.name: getattr(self.signal, f.name) for f in fields(self.signal)},
            "exits": {
                f.name: str(getattr(self.engine.exits, f.name)) for f in fields(self.engine.exits)
            },
            "profiles": [
                {"name": p.name, "allocation": str(p.allocation), "enabled": p.enabled}
                for p in self.engine.profiles
            ],
            "simulation": {
                f.name: str(getattr(self.simulation, f.name)) for f in fields(self.simulation)
            },
            "risk": {
                f.name: str(getattr(self.engine.risk, f.name)) for f in fields(self.engine.risk)
            },
        }


def load_config(path: Path | None = None) -> AppConfig:
    """Read `path`, or `./ict-trader.toml` if it exists, or use the defaults."""
    if path is None:
        if not DEFAULT_CONFIG_FILE.exists():
            return AppConfig()
        path = DEFAULT_CONFIG_FILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse_config(raw, source=path)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def parse_config(raw: dict[str, Any], source: Path | None = None) -> AppConfig:
    _no_unknown(raw, _TOP_LEVEL, "")
    symbol = raw.get("symbol", "QQQ")
    if not isinstance(symbol, str) or not symbol.isalnum():
        raise ConfigError(f"symbol must be a ticker like 'QQQ', got {symbol!r}")
    try:
        signal = SignalParams().with_overrides(_table(raw, "signal"))
    except ParamError as exc:
        raise ConfigError(f"signal: {exc}") from None
    exits = _exits(_table(raw, "exits"))
    profiles = _profiles(raw.get("profiles"))
    simulation = _simulation(_table(raw, "simulation"))
    risk = _risk(_table(raw, "risk"))
    return AppConfig(
        signal=signal,
        engine=EngineConfig(symbol=symbol.upper(), profiles=profiles, exits=exits, risk=risk),
        simulation=simulation,
        source=source,
    )


def _table(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be a table ([{key}])")
    return value


def _no_unknown(table: dict[str, Any], known: set[str], prefix: str) -> None:
    for key in table:
        if key not in known:
            raise ConfigError(
                f"unknown setting {prefix}{key!s} (known: {', '.join(sorted(known))})"
            )


def _decimal(value: Any, key: str) -> Decimal:
    if isinstance(value, bool):
        raise ConfigError(f"{key} must be a number, got {value!r}")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f"{key} must be a number, got {value!r}") from None


def _int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} must be a whole number, got {value!r}")
    return value


def _exits(table: dict[str, Any]) -> ExitRules:
    names = {f.name for f in fields(ExitRules)}
    _no_unknown(table, names, "exits.")
    values: dict[str, Any] = {}
    for key, value in table.items():
        full = f"exits.{key}"
        if key in {"max_hold_minutes", "flatten_before_close_minutes"}:
            values[key] = _int(value, full)
        elif key == "stop":
            try:
                values[key] = StopMode(str(value))
            except ValueError:
                modes = ", ".join(m.value for m in StopMode)
                raise ConfigError(f"{full} must be one of {modes}, got {value!r}") from None
        else:
            values[key] = _decimal(value, full)
    return ExitRules(**values)


def _profiles(value: Any) -> tuple[StrategyProfile, ...]:
    if value is None:
        return DEFAULT_PROFILES
    if not isinstance(value, list) or not value:
        raise ConfigError("profiles must be a non-empty list of [[profiles]] tables")
    profiles = []
    for index, item in enumerate(value):
        prefix = f"profiles[{index}]."
        if not isinstance(item, dict):
            raise ConfigError(f"profiles[{index}] must be a table")
        _no_unknown(item, {"name", "allocation", "enabled"}, prefix)
        if "name" not in item or "allocation" not in item:
            raise ConfigError(f"profiles[{index}] needs a name and an allocation")
        enabled = item.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{prefix}enabled must be true or false")
        profiles.append(
            StrategyProfile(
                name=str(item["name"]),
                allocation=_decimal(item["allocation"], prefix + "allocation"),
                enabled=enabled,
            )
        )
    return tuple(profiles)


def _risk(table: dict[str, Any]) -> RiskLimits:
    names = {f.name for f in fields(RiskLimits)}
    _no_unknown(table, names, "risk.")
    values: dict[str, Any] = {}
    for key, value in table.items():
        whole = key.endswith("_minutes") or key in {
            "max_errors",
            "max_shares_per_trade",
            "max_total_shares",
        }
        values[key] = _int(value, f"risk.{key}") if whole else _decimal(value, f"risk.{key}")
    return RiskLimits(**values)


def _simulation(table: dict[str, Any]) -> SimulatedBrokerConfig:
    names = {f.name for f in fields(SimulatedBrokerConfig)}
    _no_unknown(table, names, "simulation.")
    values = {key: _decimal(value, f"simulation.{key}") for key, value in table.items()}
    for key, amount in values.items():
        if amount < 0:
            raise ConfigError(f"simulation.{key} must not be negative")
    if values.get("starting_equity", Decimal(1)) <= 0:
        raise ConfigError("simulation.starting_equity must be positive")
    return SimulatedBrokerConfig(**values)
