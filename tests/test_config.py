"""Settings files: defaults, a full file, and errors that name the key."""

from __future__ import annotations

import math
import os
from dataclasses import fields
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ict_trader import ranges
from ict_trader.adapters.simulated import SimulatedBrokerConfig
from ict_trader.config import load_config, parse_config
from ict_trader.core.exits import StopMode
from ict_trader.core.risk import RiskLimits
from ict_trader.core.strategy import ExitRules
from ict_trader.errors import ConfigError
from ict_trader.signals import SignalParams

FULL = """
symbol = "qqq"
[signal]
require_fvg = false
swing_length = 4
[exits]
target_atr_multiple = 4.5
max_hold_minutes = 45
flatten_before_close_minutes = 10
stop = "atr"
stop_atr_multiple = 1.5
[simulation]
starting_equity = 25000
slippage_bps = 1
commission_per_share = 0.005
[risk]
stale_data_minutes = 0
daily_loss_limit = 250

[[profiles]]
name = "small"
allocation = 0.01
[[profiles]]
name = "off"
allocation = 0.02
enabled = false
"""


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config()
    assert [p.name for p in config.engine.profiles] == ["conservative", "aggressive"]
    assert config.engine.exits.max_hold_minutes == 60
    assert config.simulation.starting_equity == Decimal(100_000)


def test_a_full_file(tmp_path: Path) -> None:
    path = tmp_path / "ict-trader.toml"
    path.write_text(FULL, encoding="utf-8")
    config = load_config(path)
    assert config.engine.symbols == ("QQQ",)
    assert (config.signal.require_fvg, config.signal.swing_length) == (False, 4)
    exits = config.engine.exits
    assert (exits.target_atr_multiple, exits.max_hold_minutes, exits.stop) == (
        Decimal("4.5"),
        45,
        StopMode.ATR,
    )
    assert config.simulation.commission_per_share == Decimal("0.005")
    assert (config.engine.risk.stale_data_minutes, config.engine.risk.daily_loss_limit) == (
        0,
        Decimal(250),
    )
    assert [(p.name, p.allocation, p.enabled) for p in config.engine.profiles] == [
        ("small", Decimal("0.01"), True),
        ("off", Decimal("0.02"), False),
    ]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"exits": {"max_hold": 30}}, "unknown setting exits.max_hold"),
        (
            {"exits": {"max_hold_minutes": 0}},
            "exits.max_hold_minutes must be a whole number between 1 and 1440, got 0",
        ),
        (
            {"exits": {"max_hold_minutes": "60"}},
            'exits.max_hold_minutes must be a whole number between 1 and 1440, got "60"',
        ),
        ({"exits": {"stop": "trailing"}}, 'exits.stop must be one of none, sweep, atr, got "tr'),
        ({"exits": {"stop": 3}}, "exits.stop must be one of none, sweep, atr, got 3"),
        ({"simulation": {"slippage_bps": -1}}, "simulation.slippage_bps must not be negative"),
        (
            {"simulation": {"starting_equity": 0}},
            "simulation.starting_equity must be a finite number between 1 and 1000000000, got 0",
        ),
        (
            {"signal": {"atr_period": 0}},
            "signal.atr_period must be a whole number between 1 and 500, got 0",
        ),
        (
            {"profiles": [{"name": "a", "allocation": 1.5}]},
            "profiles[0].allocation must be a finite number between 0.0001 and 1, got 1.5",
        ),
        (
            {"profiles": [{"name": "a", "allocation": float("nan")}]},
            "profiles[0].allocation must be a finite number between 0.0001 and 1, got nan",
        ),
        ({"profiles": [{"name": 7, "allocation": 0.1}]}, "profiles[0].name must be text, got 7"),
        ({"profiles": [{"name": "x" * 33, "allocation": 0.1}]}, "longer than 32 characters"),
        ({"profiles": [{"name": "é", "allocation": 0.1}]}, "letters, digits"),
        (
            {"profiles": [{"name": f"p{i}", "allocation": 0.01} for i in range(21)]},
            "profiles: 21 profiles, at most 20",
        ),
        ({"profiles": []}, "profiles must be a non-empty list of [[profiles]] tables"),
        ({"exits": 5}, "exits must be a table ([exits])"),
        ({"profiles": [{"name": "a"}]}, "profiles[0] needs a name and an allocation"),
        (
            {"profiles": [{"name": "a", "allocation": 0.1}, {"name": "a", "allocation": 0.2}]},
            "duplicate names",
        ),
        ({"profiles": [{"name": "a b", "allocation": 0.1}]}, "letters, digits"),
        ({"colour": "red"}, "unknown setting colour"),
        ({"symbol": "QQQ!"}, "symbol must be a ticker"),
        ({"symbol": "Q" * 11}, "symbol must be a ticker"),
        ({"symbol": 5}, "symbol must be a ticker like 'QQQ', got 5"),
    ],
)
def test_errors_name_the_key(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert message in str(caught.value)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[exits\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.toml")


def test_file_that_is_not_a_settings_file_is_refused_by_name(tmp_path: Path) -> None:
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'symbol = "QQQ" # caf\xe9\n')
    with pytest.raises(ConfigError, match=r"latin\.toml: not UTF-8 text \(byte 20\)"):
        load_config(latin)
    with pytest.raises(ConfigError, match="is a directory, expected a TOML settings file"):
        load_config(tmp_path)
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match=r"pipe\.toml: is not a regular file"):
        load_config(fifo)  # refused from its type: reading it would block forever
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * (1 << 20) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"big\.toml: .* too large for a settings file"):
        load_config(big)


NUMERIC_FIELDS = {
    "signal": {f.name for f in fields(SignalParams) if f.type != "bool"},
    "exits": {f.name for f in fields(ExitRules) if f.name != "stop"},
    "simulation": {f.name for f in fields(SimulatedBrokerConfig)},
    "risk": {f.name for f in fields(RiskLimits)},
}


def test_every_numeric_setting_has_a_range_that_holds_its_default() -> None:
    defaults = parse_config({}).describe()
    for table, names in NUMERIC_FIELDS.items():
        assert set(ranges.TABLES[table]) == names, table
        for name, allowed in ranges.TABLES[table].items():
            default = Decimal(str(defaults[table][name]))
            assert allowed.low <= default <= allowed.high, f"{table}.{name}"


SETTINGS = [(table, key) for table, keys in ranges.TABLES.items() for key in keys]


@pytest.mark.parametrize(("table", "key"), SETTINGS)
def test_both_ends_of_each_range_are_accepted(table: str, key: str) -> None:
    allowed = ranges.TABLES[table][key]
    for bound in (allowed.low, allowed.high):
        value: int | float = int(bound) if allowed.whole else float(bound)
        described = parse_config({table: {key: value}}).describe()[table][key]
        assert Decimal(str(described)) == bound


@pytest.mark.parametrize(("table", "key"), SETTINGS)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_values_outside_a_range_are_refused_naming_the_key(
    table: str, key: str, data: st.DataObject
) -> None:
    allowed = ranges.TABLES[table][key]
    low, high = float(allowed.low), float(allowed.high)
    bad = data.draw(
        st.one_of(
            st.sampled_from([math.inf, -math.inf, math.nan, 1e30, 1e400, -1.0, True, "5", [1]]),
            st.floats(max_value=low, exclude_max=True, allow_nan=False),
            st.floats(min_value=high, exclude_min=True, allow_nan=False),
            st.integers(max_value=int(low) - 1)
            if allowed.low == int(allowed.low)
            else st.nothing(),
            st.integers(min_value=int(high) + 1),
            st.floats(min_value=low, max_value=high) if allowed.whole else st.nothing(),
        )
    )
    with pytest.raises(ConfigError) as caught:
        parse_config({table: {key: bad}})
    message = str(caught.value)
    assert message.startswith(f"{table}.{key} must ")
    assert allowed.describe() in message
    assert "\n" not in message


@pytest.mark.parametrize(("table", "key"), SETTINGS)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_values_inside_a_range_are_kept_exactly(table: str, key: str, data: st.DataObject) -> None:
    allowed = ranges.TABLES[table][key]
    good: int | float
    if allowed.whole:
        good = data.draw(st.integers(int(allowed.low), int(allowed.high)))
    else:
        good = data.draw(st.floats(float(allowed.low), float(allowed.high)))
    described = parse_config({table: {key: good}}).describe()[table][key]
    assert Decimal(str(described)) == Decimal(repr(good))


EN_DASH = "\u2013"  # the README writes a range as low, an en dash, high


def test_the_readme_lists_every_range_as_enforced() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")

    def shown(bound: Decimal) -> str:
        return f"{int(bound):,}" if bound == bound.to_integral_value() else ranges.plain(bound)

    listed = [(f"{table}.{key}", ranges.TABLES[table][key]) for table, key in SETTINGS]
    listed.append(("profiles.allocation", ranges.PROFILE_ALLOCATION))
    for key, allowed in listed:
        cell = f"| `{key}` | {shown(allowed.low)}{EN_DASH}{shown(allowed.high)}"
        assert cell in readme, cell
