"""Configuration: an optional `ict-trader.toml`, then command-line overrides.

Every problem names the key (`exits.max_hold_minutes must be at least 1`), because a trading bot
that silently ignores a misspelt risk setting is worse than one that refuses to start.

```toml
symbols = ["QQQ"]    # or symbol = "QQQ"; several: ["IWM", "DIA"]

[signal]            # any parameter of docs/signal.md
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

[risk]              # 0 disables a limit; see ict_trader/core/risk.py; total over every symbol
daily_loss_limit = 1000
rapid_loss = 500
rapid_loss_minutes = 15
max_errors = 5
error_window_minutes = 10
max_drawdown_pct = 5
max_equity_pct_per_trade = 10
max_total_equity_pct = 20
max_symbol_equity_pct = 0   # per symbol (also max_symbol_shares, max_symbol_notional)
stale_data_minutes = 5   # live: no bar this long -> entries pause until bars return

[options]           # how a backtest or replay prices an option profile's contracts
pricing = "model"   # model | file (then quotes = "quotes.csv", relative to this file)
volatility = "realized"   # or an annualised number on the trading-minute clock, e.g. 0.25
realized_window_minutes = 390
spread_absolute = 0.02    # the modelled bid-ask: the larger of this and spread_relative x price
spread_relative = 0.01
slippage = 0              # dollars per share off a market order's price
commission_per_contract = 0

[[profiles]]
name = "conservative"
allocation = 0.03

[[profiles]]
name = "aggressive"
allocation = 0.04
```
"""

from __future__ import annotations

import stat
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import time
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from ict_trader import ranges
from ict_trader.adapters.simulated import SimulatedBrokerConfig
from ict_trader.core.exits import StopMode
from ict_trader.core.instruments import equity
from ict_trader.core.risk import RiskLimits
from ict_trader.core.strategy import (
    DEFAULT_PROFILES,
    EngineConfig,
    ExitRules,
    InstrumentChoice,
    OptionEntryPrice,
    OptionRules,
    OptionTarget,
    StrategyProfile,
)
from ict_trader.errors import ConfigError
from ict_trader.options.chain import parse_strike_rule
from ict_trader.options.settings import OptionsSettings, Pricing
from ict_trader.signals import SignalParams
from ict_trader.signals.params import ParamError

DEFAULT_CONFIG_FILE = Path("ict-trader.toml")
MAX_CONFIG_BYTES = 1 << 20  # a settings file is a few hundred bytes; anything this big is not one
MAX_PROFILES = 20
_TOP_LEVEL = {"symbol", "symbols", "signal", "exits", "simulation", "profiles", "risk", "options"}


@dataclass(frozen=True)
class AppConfig:
    signal: SignalParams = field(default_factory=SignalParams)
    engine: EngineConfig = field(default_factory=EngineConfig)
    simulation: SimulatedBrokerConfig = field(default_factory=SimulatedBrokerConfig)
    options: OptionsSettings = field(default_factory=OptionsSettings)
    source: Path | None = None
    # Whether the settings name their symbols (else QQQ is only the default, and data that
    # says its symbols decides what is traded).
    symbols_named: bool = False

    def warnings(self) -> list[str]:
        """Settings that are allowed but will surprise: an option trade that may lose more in
        premium than a breaker tolerates engages the kill switch (for every profile) on one
        bad trade, or on an ordinary swing of its marks."""
        risk = self.engine.risk
        found = []
        for profile in self.engine.profiles:
            if not (profile.enabled and profile.trades_options):
                continue
            at_risk = profile.option.max_premium
            for key, limit in (
                ("rapid_loss", risk.rapid_loss),
                ("daily_loss_limit", risk.daily_loss_limit),
            ):
                if limit and at_risk > limit:
                    found.append(
                        f"profiles.{profile.name}: option.max_premium {at_risk} is more than "
                        f"risk.{key} {limit}: one option trade's swing can engage the kill "
                        f"switch for every profile (lower max_premium, or raise risk.{key})"
                    )
        return found

    def trading(self, symbols: Sequence[str]) -> AppConfig:
        """These settings, trading `symbols` (every profile on each)."""
        return replace(self, engine=replace(self.engine, symbols=tuple(symbols)))

    def with_option_quotes(self, path: Path) -> AppConfig:
        """These settings pricing options from the quote file `path` (`--option-quotes`)."""
        options = replace(self.options, pricing=Pricing.FILE, quotes=path)
        return replace(self, options=options)

    @property
    def trades_options(self) -> bool:
        """Whether an enabled profile trades options (a run then needs option prices)."""
        return any(p.enabled and p.trades_options for p in self.engine.profiles)

    def describe(self) -> dict[str, Any]:
        """Plain values for run records and reports; `options` (where premiums come from) only
        when a profile trades options, so shares-only runs record what they always did."""
        described = {
            "symbols": list(self.engine.symbols),
            "signal": {f.name: getattr(self.signal, f.name) for f in fields(self.signal)},
            "exits": {
                f.name: str(getattr(self.engine.exits, f.name)) for f in fields(self.engine.exits)
            },
            "profiles": [_profile_described(p) for p in self.engine.profiles],
            "simulation": {
                f.name: str(getattr(self.simulation, f.name)) for f in fields(self.simulation)
            },
            "risk": {
                f.name: str(getattr(self.engine.risk, f.name)) for f in fields(self.engine.risk)
            },
        }
        if self.trades_options:
            described["options"] = self.options.describe()
        return described


def _profile_described(profile: StrategyProfile) -> dict[str, Any]:
    """A profile for run records; the option rules only on an option profile, so shares-only
    runs record what they always did."""
    described: dict[str, Any] = {
        "name": profile.name,
        "allocation": str(profile.allocation),
        "enabled": profile.enabled,
    }
    if profile.trades_options:
        described["instrument"] = profile.instrument.value
        described["option"] = {
            f.name: (
                value.strftime("%H:%M")
                if isinstance(value := getattr(profile.option, f.name), time)
                else str(value)
            )
            for f in fields(profile.option)
        }
    return described


def load_config(path: Path | None = None) -> AppConfig:
    """Read `path`, or `./ict-trader.toml` if it exists, or use the defaults.

    Every way the file can be unusable (missing, a directory or FIFO, not UTF-8, not TOML, a
    bad value) becomes one ConfigError naming the file, never a traceback or a hang.
    """
    if path is None:
        if not DEFAULT_CONFIG_FILE.exists():
            return AppConfig()
        path = DEFAULT_CONFIG_FILE
    try:
        raw = tomllib.loads(_read_settings_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse_config(raw, source=path)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _read_settings_text(path: Path) -> str:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        # A FIFO or device would block or never end; a directory cannot be read.
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise ConfigError(f"{path}: is {kind}, expected a TOML settings file")
    if info.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {info.st_size:,} bytes is too large for a settings file")
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def parse_config(raw: dict[str, Any], source: Path | None = None) -> AppConfig:
    _no_unknown(raw, _TOP_LEVEL, "")
    symbols = symbols_of(raw)
    signal = signal_params(SignalParams(), _table(raw, "signal"), from_file=True)
    exits = exit_rules(_table(raw, "exits"))
    profiles = profiles_of(raw.get("profiles"))
    simulation = _simulation(_table(raw, "simulation"))
    risk = _risk(_table(raw, "risk"))
    options = options_settings(_table(raw, "options"), source)
    return AppConfig(
        signal=signal,
        engine=EngineConfig(symbols=symbols, profiles=profiles, exits=exits, risk=risk),
        simulation=simulation,
        options=options,
        source=source,
        symbols_named="symbol" in raw or "symbols" in raw,
    )


def symbols_of(raw: Mapping[str, Any]) -> tuple[str, ...]:
    """`symbols = [...]`, or the one `symbol = "..."`, upper-cased; QQQ when neither is set."""
    if "symbol" in raw and "symbols" in raw:
        raise ConfigError("set either symbol or symbols, not both")
    if "symbols" in raw:
        values = raw["symbols"]
        if not isinstance(values, list) or not values:
            raise ConfigError(
                f'symbols must be a list of tickers like ["IWM", "DIA"], got {ranges.shown(values)}'
            )
        return tuple(ticker(value, f"symbols[{i}]") for i, value in enumerate(values))
    return (ticker(raw.get("symbol", "QQQ"), "symbol"),)


def ticker(value: object, key: str) -> str:
    """One symbol from a file or the command line, upper-cased; else a ConfigError on `key`."""
    if isinstance(value, str) and value.isascii():
        try:
            return equity(value.strip().upper()).symbol
        except ConfigError:
            pass
    raise ConfigError(f"{key} must be a ticker like 'QQQ', got {ranges.shown(value)}")


def signal_params(
    base: SignalParams, overrides: Mapping[str, Any], *, from_file: bool
) -> SignalParams:
    """`base` with `overrides` (a `[signal]` table, or `--param` strings) applied, each number
    checked against its range first: SignalParams alone would take `inf`, or call `nan`
    negative."""
    for name, value in overrides.items():
        allowed = ranges.SIGNAL.get(name)
        if allowed is not None:
            key = f"signal.{name}" if from_file else f"--param {name}"
            ranges.checked(allowed, value, key, text=not from_file)
    try:
        return base.with_overrides(overrides)
    except ParamError as exc:
        if from_file:
            raise ConfigError(f"signal: {exc}") from None
        raise


def _table(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be a table ([{key}])")
    return value


def _no_unknown(table: dict[str, Any], known: set[str] | Mapping[str, Any], prefix: str) -> None:
    for key in table:
        if key not in known:
            raise ConfigError(
                f"unknown setting {prefix}{key!s} (known: {', '.join(sorted(known))})"
            )


def _numbers(table: dict[str, Any], name: str) -> dict[str, Any]:
    """Every key of `[name]` checked against its range; whole-number settings as int."""
    values: dict[str, Any] = {}
    for key, value in table.items():
        number = ranges.setting(name, key, value)
        values[key] = int(number) if ranges.TABLES[name][key].whole else number
    return values


def exit_rules(table: Mapping[str, Any], base: ExitRules | None = None) -> ExitRules:
    """`base` (default: the defaults) with an `[exits]` table applied, each value checked."""
    table = dict(table)
    names = {f.name for f in fields(ExitRules)}
    _no_unknown(table, names, "exits.")
    numeric = {key: value for key, value in table.items() if key != "stop"}
    values: dict[str, Any] = _numbers(numeric, "exits")
    if "stop" in table:
        value = table["stop"]
        try:
            values["stop"] = StopMode(value) if isinstance(value, str) else None
        except ValueError:
            values["stop"] = None
        if values["stop"] is None:
            modes = ", ".join(m.value for m in StopMode)
            raise ConfigError(f"exits.stop must be one of {modes}, got {ranges.shown(value)}")
    return replace(base or ExitRules(), **values)


def profiles_of(value: Any) -> tuple[StrategyProfile, ...]:
    """A `[[profiles]]` list, each checked (None: the defaults)."""
    if value is None:
        return DEFAULT_PROFILES
    if not isinstance(value, list) or not value:
        raise ConfigError("profiles must be a non-empty list of [[profiles]] tables")
    if len(value) > MAX_PROFILES:
        raise ConfigError(f"profiles: {len(value)} profiles, at most {MAX_PROFILES} are allowed")
    profiles = []
    for index, item in enumerate(value):
        prefix = f"profiles[{index}]."
        if not isinstance(item, dict):
            raise ConfigError(f"profiles[{index}] must be a table")
        _no_unknown(item, {"name", "allocation", "enabled", "instrument", "option"}, prefix)
        if "name" not in item or "allocation" not in item:
            raise ConfigError(f"profiles[{index}] needs a name and an allocation")
        if not isinstance(item["name"], str):
            raise ConfigError(f"{prefix}name must be text, got {ranges.shown(item['name'])}")
        enabled = item.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{prefix}enabled must be true or false")
        allocation = ranges.checked(
            ranges.PROFILE_ALLOCATION, item["allocation"], prefix + "allocation"
        )
        instrument = _choice(
            item.get("instrument", "shares"), InstrumentChoice, prefix + "instrument"
        )
        if "option" in item and instrument is not InstrumentChoice.OPTION:
            raise ConfigError(f'{prefix}option is only read when {prefix}instrument = "option"')
        profiles.append(
            StrategyProfile(
                name=item["name"],
                allocation=allocation,
                enabled=enabled,
                instrument=instrument,
                option=_option_rules(item.get("option", {}), prefix + "option."),
            )
        )
    return tuple(profiles)


E = TypeVar("E", bound=Enum)

_OPTION_KEYS = {
    "strike",
    "entry_price",
    "entry_timeout_minutes",
    "target",
    "premium_target_pct",
    "max_contracts",
    "max_premium",
    "flatten_at",
}


def _option_rules(table: Any, prefix: str) -> OptionRules:
    """A profile's `option` table: every key checked, named as the file writes it."""
    if not isinstance(table, dict):
        raise ConfigError(f"{prefix.rstrip('.')} must be a table")
    _no_unknown(table, _OPTION_KEYS, prefix)
    values: dict[str, Any] = {}
    if "strike" in table:
        text = table["strike"]
        if not isinstance(text, str):
            raise ConfigError(
                f'{prefix}strike must be text such as "atm", got {ranges.shown(text)}'
            )
        values["strike"] = str(parse_strike_rule(text, prefix + "strike"))
    if "entry_price" in table:
        values["entry_price"] = _choice(
            table["entry_price"], OptionEntryPrice, prefix + "entry_price"
        )
    if "target" in table:
        values["target"] = _choice(table["target"], OptionTarget, prefix + "target")
    for name, allowed in ranges.OPTION.items():
        if name in table:
            number = ranges.checked(allowed, table[name], prefix + name)
            values[name] = int(number) if allowed.whole else number
    if "flatten_at" in table:
        values["flatten_at"] = _clock(table["flatten_at"], prefix + "flatten_at")
    try:
        return OptionRules(**values)
    except ConfigError as error:
        raise ConfigError(str(error).replace("option.", prefix, 1)) from None


def _choice(value: Any, kind: type[E], key: str) -> E:
    allowed = ", ".join(f'"{member.value}"' for member in kind)
    if isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            pass
    raise ConfigError(f"{key} must be one of {allowed}, got {ranges.shown(value)}")


def _clock(value: Any, key: str) -> time:
    """`"15:20"` (a TOML time `15:20:00` too) as a time of day in New York."""
    if isinstance(value, time):
        return value
    if isinstance(value, str):
        try:
            return time.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigError(f'{key} must be a time of day such as "15:20", got {ranges.shown(value)}')


def _risk(table: dict[str, Any]) -> RiskLimits:
    _no_unknown(table, ranges.RISK, "risk.")
    return RiskLimits(**_numbers(table, "risk"))


def _simulation(table: dict[str, Any]) -> SimulatedBrokerConfig:
    _no_unknown(table, ranges.SIMULATION, "simulation.")
    return SimulatedBrokerConfig(**_numbers(table, "simulation"))


_OPTIONS_KEYS = {"pricing", "quotes", *ranges.OPTIONS}


def options_settings(table: dict[str, Any], source: Path | None = None) -> OptionsSettings:
    """The `[options]` table; a relative `quotes` path is read from the settings file's
    folder (where the user keeps the two together), as given without a file. A quote file
    given means pricing from it; with `pricing = "model"` beside it the intent is unclear,
    so it is refused."""
    _no_unknown(table, _OPTIONS_KEYS, "options.")
    values: dict[str, Any] = {}
    if "pricing" in table:
        values["pricing"] = _choice(table["pricing"], Pricing, "options.pricing")
    if "quotes" in table:
        quotes = table["quotes"]
        if not isinstance(quotes, str) or not quotes.strip():
            raise ConfigError(
                f"options.quotes must be the path of a quote file, got {ranges.shown(quotes)}"
            )
        path = Path(quotes)
        if not path.is_absolute() and source is not None:
            path = source.parent / path
        values["quotes"] = path
        if values.setdefault("pricing", Pricing.FILE) is not Pricing.FILE:
            raise ConfigError('options.quotes is only read with options.pricing = "file"')
    for name, allowed in ranges.OPTIONS.items():
        if name not in table:
            continue
        value = table[name]
        if name == "volatility" and value == "realized":
            continue
        number = ranges.checked(allowed, value, "options." + name)
        values[name] = int(number) if allowed.whole else number
    step = values.get("strike_step")
    if step is not None and step * 1000 != (step * 1000).to_integral_value():
        raise ConfigError(f"options.strike_step takes at most 3 decimals (OCC), got {step}")
    return OptionsSettings(**values)
