"""A sweep's grid can vary the simulated broker's fills and the risk limits: each configuration
trades exactly as a settings file with its values would, a bad value is refused with the
settings file's own message, and settings that would make the comparison meaningless (or
change no backtest) cannot be swept."""

from __future__ import annotations

import tomllib
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from ict_trader.config import AppConfig, load_config, parse_config
from ict_trader.errors import ConfigError
from ict_trader.marketdata.barfile import load_bars
from ict_trader.research.grid import UNSWEPT, load_grid, parse_grid
from ict_trader.research.sweep import BarSource, execute, tasks_for
from ict_trader.runtime.backtest import run_backtest, select_bars
from tests.conftest import DEV_YEAR

GRID = """
[exits]
target_atr_multiple = [3, 5]

[simulation]
slippage_bps = [0, 3]
commission_per_share = [0, 0.01]

[risk]
max_shares_per_trade = [0, 2]
"""


def test_each_configuration_trades_as_a_settings_file_with_its_values() -> None:
    grid = parse_grid(tomllib.loads(GRID), AppConfig())
    assert len(grid.configurations) == 2 * 2 * 2 * 2 * 2  # x the two default profiles
    source = BarSource(DEV_YEAR, None, None, date(2024, 3, 1), date(2024, 3, 31))
    results = execute(tasks_for(grid, [source], AppConfig()), workers=1)
    runs = {run.config: run for result in results for run in result.runs}
    bar_file = load_bars(DEV_YEAR)
    bars = select_bars(bar_file.bars, date(2024, 3, 1), date(2024, 3, 31))
    for index in (0, 7, 13, 22, 31):
        configuration = grid.configurations[index]
        chosen = dict(configuration.values)
        settings = parse_config(
            {
                "exits": {"target_atr_multiple": chosen["exits.target_atr_multiple"]},
                "simulation": {
                    "slippage_bps": chosen["simulation.slippage_bps"],
                    "commission_per_share": chosen["simulation.commission_per_share"],
                },
                "risk": {"max_shares_per_trade": chosen["risk.max_shares_per_trade"]},
                "profiles": [
                    {"name": configuration.profile.name, "allocation": 0.03}
                    if configuration.profile.name == "conservative"
                    else {"name": configuration.profile.name, "allocation": 0.04}
                ],
            }
        )
        alone = run_backtest(bars, bar_file.calendar, settings)
        assert alone.closed_trades(), index
        assert runs[index].trades == tuple(alone.closed_trades()), configuration.label
    # the settings did change the trades: slippage the prices, the cap the shares
    capped = [
        t
        for c in grid.configurations
        if dict(c.values)["risk.max_shares_per_trade"] == 2
        for t in runs[c.index].trades
    ]
    assert capped and all(t.qty <= 2 for t in capped)
    # numbered with the last list fastest: +8 slippage 3 bps, +4 commission, +2 the share cap
    assert runs[0].trades[0].entry_price != runs[8].trades[0].entry_price
    assert runs[0].trades[0].commission == 0 < runs[4].trades[0].commission
    assert runs[0].trades[0].qty > 2 == runs[2].trades[0].qty


BAD_VALUES = [
    ("simulation", "slippage_bps", "-1"),
    ("simulation", "slippage_bps", "inf"),
    ("simulation", "commission_per_share", '"0.01"'),
    ("simulation", "buying_power_multiple", "5"),
    ("simulation", "fill", '"next_open"'),
    ("risk", "max_shares_per_trade", "1.5"),
    ("risk", "max_equity_pct_per_trade", "true"),
    ("risk", "daily_loss_limit", "-5"),
    ("risk", "rapid_loss_minutes", "0"),
    ("risk", "max_loss", "100"),
]


@pytest.mark.parametrize(("table", "key", "value"), BAD_VALUES)
def test_a_bad_value_gets_the_settings_files_own_message(
    tmp_path: Path, table: str, key: str, value: str
) -> None:
    settings = tmp_path / "ict-trader.toml"
    settings.write_text(f"[{table}]\n{key} = {value}\n", encoding="utf-8")
    grid = tmp_path / "grid.toml"
    grid.write_text(f"[{table}]\n{key} = [0, {value}]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as from_settings:
        load_config(settings)
    with pytest.raises(ConfigError) as from_grid:
        load_grid(grid, AppConfig())
    said = str(from_settings.value).removeprefix(f"{settings}: ")
    assert f"{table}.{key}" in said
    assert str(from_grid.value) == f"{grid}: {said}"


@pytest.mark.parametrize("key", sorted(UNSWEPT))
def test_settings_that_would_mislead_or_do_nothing_cannot_be_swept(key: str) -> None:
    table, name = key.split(".")
    with pytest.raises(ConfigError, match=rf"^{key} cannot be swept: "):
        parse_grid({table: {name: [1, 2]}}, AppConfig())


def test_a_value_that_means_the_same_as_another_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"simulation.slippage_bps: 2 and 2.0 are the same"):
        parse_grid({"simulation": {"slippage_bps": [2, 2.0]}}, AppConfig())
    with pytest.raises(ConfigError, match=r"risk.max_total_shares: the value 5 is listed twice"):
        parse_grid({"risk": {"max_total_shares": [5, 5]}}, AppConfig())


def test_unset_settings_come_from_the_base_settings() -> None:
    base = parse_config({"simulation": {"slippage_bps": 4}, "risk": {"max_total_shares": 9}})
    grid = parse_grid({"simulation": {"commission_per_share": [0, 0.005]}}, base)
    assert {c.simulation.slippage_bps for c in grid.configurations} == {Decimal(4)}
    assert {c.simulation.commission_per_share for c in grid.configurations} == {
        Decimal(0),
        Decimal("0.005"),
    }
    assert {c.risk.max_total_shares for c in grid.configurations} == {9}
