"""A sweep's grid: lists of values for signal parameters, exit rules, the simulated broker's
fills and the risk limits, and the profiles.

```toml
[signal]                        # any parameter of docs/signal.md: a list of values
displacement_atr = [1.0, 1.5]

[exits]                         # any key of the settings' [exits]: a list of values
target_atr_multiple = [3, 5]
stop = ["none", "atr"]

[simulation]                    # fills: slippage_bps, commission_per_share, buying_power_multiple
slippage_bps = [0, 2]

[risk]                          # the limits a backtest applies (sizing caps, loss breakers)
max_equity_pct_per_trade = [5, 10]

[[profiles]]                    # each profile is run on its own (default: the settings')
name = "small"
allocation = 0.03
```

Every configuration is one value of each list and one profile; their order is the file's
within the tables signal, exits, simulation, risk (the last list varies fastest), so the same
file always gives the same numbering. Every value is checked by the settings file's own rules
(`ict_trader.config`), so a bad one is refused with the same message naming the key. A few
settings cannot be swept because they would make the comparison meaningless or change no
backtest (`UNSWEPT`).
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ict_trader import ranges
from ict_trader.adapters.simulated import SimulatedBrokerConfig
from ict_trader.config import AppConfig, exit_rules, parse_config, profiles_of, signal_params
from ict_trader.core.risk import RiskLimits
from ict_trader.core.strategy import ExitRules, StrategyProfile
from ict_trader.errors import ConfigError
from ict_trader.signals import SignalParams

MAX_CONFIGURATIONS = 10_000
MAX_GRID_BYTES = 1 << 20
_LISTED = ("signal", "exits", "simulation", "risk")  # tables of lists, in numbering order
_TABLES = {*_LISTED, "profiles"}
UNSWEPT = {
    "simulation.starting_equity": "every figure scales with it, so the largest account would "
    "always win; set it once with --config",
    "risk.max_errors": "it changes no backtest: the simulated broker rejects no order the "
    "engine sends",
    "risk.error_window_minutes": "it changes no backtest: the simulated broker rejects no "
    "order the engine sends",
    "risk.stale_data_minutes": "it is live only: a backtest never waits for a bar",
}


@dataclass(frozen=True)
class Configuration:
    """One point of the grid: its number, the values it sets, and what they make."""

    index: int
    values: tuple[tuple[str, Any], ...]  # ("signal.x", v), ("exits.y", v), ("profile", name)
    signal: SignalParams
    exits: ExitRules
    profile: StrategyProfile
    simulation: SimulatedBrokerConfig
    risk: RiskLimits
    # An option profile's premium source ("model" or "file"); None for shares. Every figure
    # of a model-priced configuration is shown as such.
    premiums: str | None = None

    @property
    def label(self) -> str:
        return " ".join(f"{name}={ranges.shown(value)}" for name, value in self.values)

    @property
    def priced_note(self) -> str:
        """ " (model-priced)" after a model-priced configuration's number, else nothing."""
        return " (model-priced)" if self.premiums == "model" else ""


@dataclass(frozen=True)
class Grid:
    dimensions: tuple[tuple[str, tuple[Any, ...]], ...]  # name -> its values, file order
    configurations: tuple[Configuration, ...]

    @property
    def trades_options(self) -> bool:
        return any(c.premiums is not None for c in self.configurations)

    def signal_groups(self) -> list[tuple[SignalParams, list[Configuration]]]:
        """Configurations grouped by their signal parameters (the detection they share), in
        the order of their first configuration."""
        groups: dict[SignalParams, list[Configuration]] = {}
        for configuration in self.configurations:
            groups.setdefault(configuration.signal, []).append(configuration)
        return list(groups.items())


def load_grid(path: Path, base: AppConfig) -> Grid:
    try:
        if not path.is_file():
            raise ConfigError(f"{path}: grid file not found (or not a file)")
        if path.stat().st_size > MAX_GRID_BYTES:
            raise ConfigError(f"{path}: too large for a grid file")
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the grid file: {exc.strerror}") from None
    try:
        return parse_grid(raw, base)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def parse_grid(raw: Mapping[str, Any], base: AppConfig) -> Grid:
    for key in raw:
        if key not in _TABLES:
            known = ", ".join(sorted(_TABLES))
            raise ConfigError(f"unknown grid table {key!s} (known: {known})")
    dimensions: list[tuple[str, tuple[Any, ...]]] = []
    for table in _LISTED:
        entries = raw.get(table, {})
        if not isinstance(entries, dict):
            raise ConfigError(f"{table} must be a table ([{table}])")
        for name, values in entries.items():
            key = f"{table}.{name}"
            listed = tuple(values) if isinstance(values, list) else (values,)
            if not listed:
                raise ConfigError(f"{key}: the list of values is empty")
            if key in UNSWEPT:
                raise ConfigError(f"{key} cannot be swept: {UNSWEPT[key]}")
            seen: dict[Any, Any] = {}
            for value in listed:  # each value checked alone, so the error names it
                made = _setting(_apply(base, ((key, value),)), key)
                if made in seen:
                    raise ConfigError(
                        f"{key}: {ranges.shown(seen[made])} and {ranges.shown(value)} are the "
                        "same value"
                        if repr(seen[made]) != repr(value)
                        else f"{key}: the value {ranges.shown(value)} is listed twice"
                    )
                seen[made] = value
            dimensions.append((key, listed))
    profiles = profiles_of(raw["profiles"]) if "profiles" in raw else base.engine.profiles
    profiles = tuple(p for p in profiles if p.enabled)
    if not profiles:
        raise ConfigError("profiles: no enabled profile to run")
    count = len(profiles)
    for _, values in dimensions:
        count *= len(values)
    if count > MAX_CONFIGURATIONS:
        raise ConfigError(f"{count:,} configurations, at most {MAX_CONFIGURATIONS:,} are allowed")
    configurations: list[Configuration] = []
    names = [name for name, _ in dimensions]
    for combination in itertools.product(*(values for _, values in dimensions), profiles):
        *chosen, profile = combination
        values = tuple(zip(names, chosen, strict=True))
        made = _apply(base, values)
        configurations.append(
            Configuration(
                index=len(configurations),
                values=(*values, ("profile", profile.name)),
                signal=made.signal,
                exits=made.engine.exits,
                profile=profile,
                simulation=made.simulation,
                risk=made.engine.risk,
                premiums=made.options.source.value if profile.trades_options else None,
            )
        )
    dimensions.append(("profile", tuple(p.name for p in profiles)))
    return Grid(dimensions=tuple(dimensions), configurations=tuple(configurations))


def _apply(base: AppConfig, values: tuple[tuple[str, Any], ...]) -> AppConfig:
    """`base` with the grid's `values` set, each checked as the settings file checks it."""
    tables: dict[str, dict[str, Any]] = {table: {} for table in _LISTED}
    for key, value in values:
        table, name = key.split(".", 1)
        tables[table][name] = value
    # The settings file's own parser checks [simulation] and [risk] (unknown keys, types,
    # ranges) on top of the defaults; only the keys the grid sets are taken from it.
    parsed = parse_config({"simulation": tables["simulation"], "risk": tables["risk"]})
    simulation = replace(
        base.simulation, **{n: getattr(parsed.simulation, n) for n in tables["simulation"]}
    )
    risk = replace(base.engine.risk, **{n: getattr(parsed.engine.risk, n) for n in tables["risk"]})
    return replace(
        base,
        signal=signal_params(base.signal, tables["signal"], from_file=True),
        engine=replace(
            base.engine, exits=exit_rules(tables["exits"], base.engine.exits), risk=risk
        ),
        simulation=simulation,
    )


def _setting(settings: AppConfig, key: str) -> Any:
    """The value `key` has in `settings`, as the engine will use it (for spotting repeats)."""
    table, name = key.split(".", 1)
    holder: Any = {
        "signal": settings.signal,
        "exits": settings.engine.exits,
        "simulation": settings.simulation,
        "risk": settings.engine.risk,
    }[table]
    return getattr(holder, name)
