"""Settings files: defaults, a full file, and errors that name the key."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from ict_trader.config import load_config, parse_config
from ict_trader.errors import ConfigError
from ict_trader.strategy import StopMode

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
    assert config.engine.symbol == "QQQ"
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
        ({"exits": {"max_hold_minutes": 0}}, "exits.max_hold_minutes must be at least 1"),
        ({"exits": {"max_hold_minutes": "60"}}, "exits.max_hold_minutes must be a whole number"),
        ({"exits": {"stop": "trailing"}}, "exits.stop must be one of none, sweep, atr"),
        ({"simulation": {"slippage_bps": -1}}, "simulation.slippage_bps must not be negative"),
        ({"simulation": {"starting_equity": 0}}, "simulation.starting_equity must be positive"),
        ({"signal": {"atr_period": 0}}, "'atr_period' must be at least 1"),
        (
            {"profiles": [{"name": "a", "allocation": 1.5}]},
            "profiles.a.allocation must be in (0, 1]",
        ),
        ({"profiles": [{"name": "a"}]}, "profiles[0] needs a name and an allocation"),
        (
            {"profiles": [{"name": "a", "allocation": 0.1}, {"name": "a", "allocation": 0.2}]},
            "duplicate names",
        ),
        ({"profiles": [{"name": "a b", "allocation": 0.1}]}, "letters, digits"),
        ({"colour": "red"}, "unknown setting colour"),
        ({"symbol": "QQQ!"}, "symbol must be a ticker"),
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
