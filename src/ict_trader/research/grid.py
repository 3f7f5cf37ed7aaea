"""A sweep's grid: lists of values for signal parameters and exit rules, and the profiles.

```toml
[signal]                        # any parameter of docs/signal.md: a list of values
displacement_atr = [1.0, 1.5]

[exits]                         # any key of the settings' [exits]: a list of values
target_atr_multiple = [3, 5]
stop = ["none", "atr"]

[[profiles]]                    # each profile is run on its own (default: the settings')
name = "small"
allocation = 0.03
```

Every configuration is one value of each list and one profile; their order is the file's
(the last list varies fastest), so the same file always gives the same numbering.
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ict_trader import ranges
from ict_trader.config import AppConfig, exit_rules, profiles_of, signal_params
from ict_trader.core.strategy import ExitRules, StrategyProfile
from ict_trader.errors import ConfigError
from ict_trader.signals import SignalParams

MAX_CONFIGURATIONS = 10_000
MAX_GRID_BYTES = 1 << 20
_TABLES = {"signal", "exits", "profiles"}


@dataclass(frozen=True)
class Configuration:
    """One point of the grid: its number, the values it sets, and what they make."""

    index: int
    values: tuple[tuple[str, Any], ...]  # ("signal.x", v), ("exits.y", v), ("profile", name)
    signal: SignalParams
    exits: ExitRules
    profile: StrategyProfile

    @property
    def label(self) -> str:
        return " ".join(f"{name}={ranges.shown(value)}" for name, value in self.values)


@dataclass(frozen=True)
class Grid:
    dimensions: tuple[tuple[str, tuple[Any, ...]], ...]  # name -> its values, file order
    configurations: tuple[Configuration, ...]

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
            raise ConfigError(f"unknown grid table {key!s} (known: exits, profiles, signal)")
    dimensions: list[tuple[str, tuple[Any, ...]]] = []
    for table in ("signal", "exits"):
        entries = raw.get(table, {})
        if not isinstance(entries, dict):
            raise ConfigError(f"{table} must be a table ([{table}])")
        for name, values in entries.items():
            listed = tuple(values) if isinstance(values, list) else (values,)
            if not listed:
                raise ConfigError(f"{table}.{name}: the list of values is empty")
            if len(set(map(repr, listed))) != len(listed):
                raise ConfigError(f"{table}.{name}: a value is listed twice")
            for value in listed:  # each value checked alone, so the error names it
                _apply(base, ((f"{table}.{name}", value),))
            dimensions.append((f"{table}.{name}", listed))
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
        signal, exits = _apply(base, values)
        configurations.append(
            Configuration(
                index=len(configurations),
                values=(*values, ("profile", profile.name)),
                signal=signal,
                exits=exits,
                profile=profile,
            )
        )
    dimensions.append(("profile", tuple(p.name for p in profiles)))
    return Grid(dimensions=tuple(dimensions), configurations=tuple(configurations))


def _apply(base: AppConfig, values: tuple[tuple[str, Any], ...]) -> tuple[SignalParams, ExitRules]:
    signal = {name.split(".", 1)[1]: v for name, v in values if name.startswith("signal.")}
    exits = {name.split(".", 1)[1]: v for name, v in values if name.startswith("exits.")}
    return (
        signal_params(base.signal, signal, from_file=True),
        exit_rules(exits, base.engine.exits),
    )
