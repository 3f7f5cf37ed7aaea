"""ict-trader: ICT setups (liquidity sweep, displacement, market structure shift) on one-minute
bars, backtested, replayed and traded through Alpaca by one engine.

The public API, for notebooks and scripts (the README shows it at work):

- `load_bars(path)` reads and validates a bar file (CSV, CSV.gz, Parquet) into a `BarFile`
  (its bars and their NYSE calendar); `load_folder` reads a `data download` folder;
- `detect_signals(bars, calendar, params)` runs the detector over bars: a list of `Signal`;
- `run_backtest(bars, calendar, AppConfig())` trades them through the engine and the simulated
  broker: a `BacktestResult` (trades, metrics per profile, the equity curve);
- `AppConfig` is every setting (`load_config` reads an ict-trader.toml), `SignalParams` the
  detector's.

Everything else may move between releases. The names load lazily (PEP 562), so importing one
submodule — the emulator's process, a CLI command — does not import them all.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

__version__ = version("ict-trader")

if TYPE_CHECKING:
    from ict_trader.config import AppConfig, load_config
    from ict_trader.marketdata.barfile import BarFile, load_bars
    from ict_trader.marketdata.barset import BarSet
    from ict_trader.marketdata.folder import load_folder
    from ict_trader.marketdata.sources import load_bar_set
    from ict_trader.reporting.backtest_result import BacktestResult
    from ict_trader.runtime.backtest import run_backtest
    from ict_trader.signals import Signal, SignalParams, detect_signals

_PUBLIC = {
    "AppConfig": "ict_trader.config",
    "load_config": "ict_trader.config",
    "BarFile": "ict_trader.marketdata.barfile",
    "load_bars": "ict_trader.marketdata.barfile",
    "load_folder": "ict_trader.marketdata.folder",
    "BarSet": "ict_trader.marketdata.barset",
    "load_bar_set": "ict_trader.marketdata.sources",
    "BacktestResult": "ict_trader.reporting.backtest_result",
    "run_backtest": "ict_trader.runtime.backtest",
    "Signal": "ict_trader.signals",
    "SignalParams": "ict_trader.signals",
    "detect_signals": "ict_trader.signals",
}

__all__ = [
    "AppConfig",
    "BacktestResult",
    "BarFile",
    "BarSet",
    "Signal",
    "SignalParams",
    "__version__",
    "detect_signals",
    "load_bar_set",
    "load_bars",
    "load_config",
    "load_folder",
    "run_backtest",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'ict_trader' has no attribute {name!r}")
    return getattr(import_module(module), name)
