"""Rendering signals for people (a table in New York time) and for programs (CSV, JSON in UTC).

Signals of several symbols name their symbol (`with_symbol`: a column after the time); a
one-symbol listing stays as it always was, without it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from ict_trader.core.calendar import NEW_YORK
from ict_trader.signals import Direction, Signal

CSV_COLUMNS = ("timestamp", "direction", "close", "atr", "extreme", "mss_level")


def utc_iso(signal: Signal) -> str:
    """The bar-open time as ISO-8601 UTC with a Z, e.g. 2024-01-04T16:30:00Z."""
    return signal.time.strftime("%Y-%m-%dT%H:%M:%SZ")


def signal_record(signal: Signal, *, with_symbol: bool = False) -> dict[str, Any]:
    """One signal as plain values in the CSV column order (ATR rounded to 1/10000 of a cent)."""
    return {
        "timestamp": utc_iso(signal),
        **({"symbol": signal.symbol} if with_symbol else {}),
        "direction": signal.direction.value,
        "close": signal.close,
        "atr": round(signal.atr, 6),
        "extreme": signal.extreme,
        "mss_level": signal.mss_level,
    }


def to_csv(signals: Sequence[Signal], *, with_symbol: bool = False) -> str:
    buffer = io.StringIO()
    columns = (CSV_COLUMNS[0], "symbol", *CSV_COLUMNS[1:]) if with_symbol else CSV_COLUMNS
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(signal_record(signal, with_symbol=with_symbol) for signal in signals)
    return buffer.getvalue()


def to_json(signals: Sequence[Signal], *, with_symbol: bool = False) -> str:
    records = [signal_record(signal, with_symbol=with_symbol) for signal in signals]
    return json.dumps(records, indent=2) + "\n"


def to_table(signals: Sequence[Signal], title: str, *, with_symbol: bool = False) -> Table:
    """A table for the terminal: New York times, because that is how traders read a session."""
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right", style="dim")
    table.add_column("bar (New York)", no_wrap=True)
    if with_symbol:
        table.add_column("symbol")
    table.add_column("direction")
    table.add_column("close", justify="right")
    table.add_column("ATR", justify="right")
    table.add_column("extreme", justify="right")
    table.add_column("MSS level", justify="right")
    for number, signal in enumerate(signals, start=1):
        local = signal.time.astimezone(NEW_YORK)
        colour = "green" if signal.direction is Direction.LONG else "red"
        table.add_row(
            str(number),
            f"{local:%a %Y-%m-%d %H:%M}",
            *([signal.symbol] if with_symbol else []),
            f"[{colour}]{signal.direction.value}[/{colour}]",
            f"{signal.close:.2f}",
            f"{signal.atr:.3f}",
            f"{signal.extreme:.2f}",
            f"{signal.mss_level:.2f}",
        )
    return table
