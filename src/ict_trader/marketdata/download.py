"""`ict-trader data download`: Alpaca's 1-minute history into `<out>/<SYMBOL>/<YYYY-MM>.parquet`.

One request per symbol and month, through alpaca-py's `StockHistoricalDataClient.get_stock_bars`
(which follows `next_page_token` itself, 10,000 bars a page): a month is the unit of progress,
of validation and of writing, so a failure or Ctrl-C loses at most the month in flight and a
re-run fetches only what is missing. A month is *complete* once the file covers it to its end;
the current month (and any month fetched while it was still going on) is fetched again.

Each month's bars go through the bar loader's own checks (sorted, unique, OHLC consistent,
plausible prices, on NYSE trading days) before anything is written; bars outside the hours
asked for (regular hours, or with `extended_hours` 04:00-20:00 New York) are left out, as
Alpaca serves pre- and after-market minutes with every minute request.

Plans (docs.alpaca.markets/docs/about-market-data-api): the free plan serves SIP history (all US
exchanges) except its latest 15 minutes — asked for, Alpaca answers 403 "subscription does not
permit querying recent SIP data" — and IEX (one exchange, ~2-3 % of the volume) up to now. So a
SIP download always stops 15 minutes before `now`; the current month is completed on a re-run.

Rate limits: alpaca-py 0.44 retries a 429 or 504 itself 3 times, 3 s apart, with no backoff
(alpaca/common/rest.py, constants DEFAULT_RETRY_*). That is switched off (`_retry = 0`, as the
live runner does) so one policy applies: ours, exponential backoff on 429, 5xx and connection
errors (`Backoff`), then a one-line error; the months already written stay.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.enums import Adjustment, DataFeed
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame

from ict_trader.barfile import BarDataError, Problems, in_hours, typed_columns, validated_bars
from ict_trader.calendar import NEW_YORK, NyseCalendar
from ict_trader.marketdata.layout import (
    Coverage,
    Month,
    month_file,
    months_between,
    ny_midnight,
    write_atomically,
)

Feed = Literal["sip", "iex"]
FEEDS: tuple[Feed, ...] = ("sip", "iex")
ADJUSTMENTS = ("raw", "split", "all")
# The free plan's SIP history ends this long before now (Alpaca's docs; 403 otherwise).
RECENT_SIP_DELAY = timedelta(minutes=15)
ENDPOINT = "/v2/stocks/bars"
_TRANSIENT = {429, 500, 502, 503, 504}
_TIME = pa.timestamp("us", tz="UTC")


class DownloadError(Exception):
    """A download cannot go on; `str()` is the one line for the user. `transient` problems
    (rate limits, outages) may pass by themselves: the same command resumes."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class DownloadRequest:
    symbols: tuple[str, ...]
    first: date  # New York dates, both included
    last: date
    out: Path
    feed: Feed = "sip"
    adjustment: str = "raw"
    extended_hours: bool = False


@dataclass(frozen=True)
class Backoff:
    """Waits between attempts after a 429, a 5xx or a dropped connection: `first` seconds,
    doubling up to `cap`, `attempts` tries in all (the defaults wait 2+4+8+16+32 s ≈ 1 min,
    the window of Alpaca's per-minute rate limit)."""

    attempts: int = 6
    first: float = 2.0
    cap: float = 60.0

    def wait(self, attempt: int) -> float:
        return float(min(self.first * 2 ** (attempt - 1), self.cap))


@dataclass
class SymbolReport:
    """What a download did for one symbol."""

    symbol: str
    fetched: list[str] = field(default_factory=list)  # months written
    up_to_date: list[str] = field(default_factory=list)  # months skipped: the file covers them
    empty: list[str] = field(default_factory=list)  # months Alpaca had no bar for
    bars: int = 0  # bars written
    left_out: int = 0  # bars outside the hours asked for, not written


@dataclass(frozen=True)
class MonthDone:
    """Progress: one symbol-month handled (`outcome`: fetched, up to date, empty, future)."""

    symbol: str
    month: Month
    outcome: str
    bars: int = 0


def download(
    request: DownloadRequest,
    client: StockHistoricalDataClient,
    now: datetime,
    *,
    on_month: Callable[[MonthDone], None] = lambda done: None,
    say: Callable[[str], None] = lambda text: None,
    backoff: Backoff = Backoff(),
    sleep: Callable[[float], None] | None = None,
) -> list[SymbolReport]:
    """Fetch every month of every symbol that the folder does not hold completely yet.

    `now` decides which months are complete and where SIP history ends (the server's clock
    when it is an emulator replaying the past). Raises DownloadError; months written before
    stay written.
    """
    client._retry = 0  # our backoff instead of alpaca-py's fixed 3 x 3 s (see module doc)
    months = months_of(request, now)
    if not months:
        return [SymbolReport(symbol) for symbol in request.symbols]
    fetcher = _Fetcher(client, request, backoff, sleep or time.sleep, say)
    job = _Months(request, now, fetcher, NyseCalendar(months[0].first_day, months[-1].end_day))
    reports = []
    for symbol in request.symbols:
        report = SymbolReport(symbol)
        for month in months:
            outcome, bars = job.one(symbol, month)
            if outcome == "fetched":
                report.fetched.append(month.name)
                report.bars += bars[0]
                report.left_out += bars[1]
            elif outcome == "up to date":
                report.up_to_date.append(month.name)
            elif outcome == "empty":
                report.empty.append(month.name)
            on_month(MonthDone(symbol, month, outcome, bars[0]))
        reports.append(report)
    return reports


def months_of(request: DownloadRequest, now: datetime) -> list[Month]:
    """The months a download looks at: from --from's to --to's, none after `now`'s."""
    return months_between(request.first, min(request.last, now.astimezone(NEW_YORK).date()))


class _Months:
    """Decides, fetches, checks and writes one symbol-month at a time."""

    def __init__(
        self, request: DownloadRequest, now: datetime, fetcher: _Fetcher, calendar: NyseCalendar
    ) -> None:
        self.request = request
        self.now = now
        self.available = now - RECENT_SIP_DELAY if request.feed == "sip" else now
        self.fetcher = fetcher
        self.calendar = calendar

    def one(self, symbol: str, month: Month) -> tuple[str, tuple[int, int]]:
        """(outcome, (bars written, bars left out as outside the hours asked for))."""
        request = self.request
        start = max(month.start(), ny_midnight(request.first))
        wanted_end = min(month.end(), ny_midnight(request.last + timedelta(days=1)))
        path = month_file(request.out, symbol, month)
        existing = Coverage.read(path) if path.exists() else None
        if existing is not None:
            _check_same_options(existing, request, path)
            if existing.start <= start and existing.until >= wanted_end:
                return "up to date", (0, 0)
            start = min(start, existing.start)  # never shrink what an earlier run fetched
        end = min(wanted_end, self.available)
        if existing is not None:
            end = max(end, existing.until)
        if end <= start:
            return "future", (0, 0)
        rows = self.fetcher.bars(symbol, month, start, end)
        if not rows:
            return "empty", (0, 0)
        table = _to_table(rows, symbol, month)
        times = table.column("timestamp").cast(pa.int64()).to_numpy().astype(np.int64) * 1000
        keep = in_hours(times, self.calendar, extended=request.extended_hours)
        kept = table.filter(pa.array(keep))
        if kept.num_rows == 0:
            return "empty", (0, 0)
        _validate(kept, symbol, month, self.calendar, request.extended_hours)
        coverage = Coverage(start, end, request.feed, request.adjustment, request.extended_hours)
        write_atomically(kept.replace_schema_metadata(coverage.metadata(symbol, self.now)), path)
        return "fetched", (kept.num_rows, table.num_rows - kept.num_rows)


def _check_same_options(existing: Coverage, request: DownloadRequest, path: Path) -> None:
    asked = (request.feed, request.adjustment, request.extended_hours)
    held = (existing.feed, existing.adjustment, existing.extended_hours)
    if asked != held:
        raise DownloadError(
            f"{path} holds bars fetched with {_options(*held)}; this download asks for "
            f"{_options(*asked)}: use another --out (or delete that folder), so one folder "
            "never mixes them"
        )


def _options(feed: str, adjustment: str, extended_hours: bool) -> str:
    hours = "extended hours" if extended_hours else "regular hours"
    return f"--feed {feed}, --adjustment {adjustment}, {hours}"


def _to_table(rows: Sequence[dict[str, Any]], symbol: str, month: Month) -> pa.Table:
    """Alpaca's bar objects (`t`, `o`, `h`, `l`, `c`, `v`, `n`, `vw`) as the loader's columns,
    plus trade count and VWAP, which Alpaca gives and a later analysis may want."""
    try:
        return pa.table(
            {
                "timestamp": pc.cast(pa.array([row["t"] for row in rows], pa.string()), _TIME),
                "open": pa.array([row["o"] for row in rows], pa.float64()),
                "high": pa.array([row["h"] for row in rows], pa.float64()),
                "low": pa.array([row["l"] for row in rows], pa.float64()),
                "close": pa.array([row["c"] for row in rows], pa.float64()),
                "volume": pa.array([row["v"] for row in rows], pa.float64()),
                "trade_count": pa.array([row.get("n") for row in rows], pa.float64()),
                "vwap": pa.array([row.get("vw") for row in rows], pa.float64()),
            }
        )
    except (KeyError, TypeError, pa.ArrowException) as exc:
        raise DownloadError(
            f"{symbol} {month.name}: Alpaca's answer on {ENDPOINT} is not a list of bars "
            f"({type(exc).__name__}: {exc}); nothing written for this month"
        ) from None


def _validate(
    table: pa.Table, symbol: str, month: Month, calendar: NyseCalendar, extended_hours: bool
) -> None:
    """The loader's checks, naming the bar by its time: there is no file row to point at."""
    where = f"{symbol} {month.name}: Alpaca's bars"
    columns = typed_columns(table.select(["timestamp", "open", "high", "low", "close", "volume"]))
    if columns is None:
        raise DownloadError(f"{where} have missing values; nothing written for this month")
    problems = Problems(Path(f"{symbol}/{month.name}"))
    problems.source(0, Path(f"{symbol}/{month.name}"), None)
    try:
        validated_bars(columns, problems, extended_hours=extended_hours, calendar=calendar)
    except BarDataError as exc:
        row = (exc.row or 1) - 1
        stamp = table.column("timestamp")[row].as_py()
        raise DownloadError(
            f"{where}: the bar of {stamp:%Y-%m-%dT%H:%M:%SZ}: {exc.problem}; nothing written "
            "for this month"
        ) from None


class _Fetcher:
    """One month of one symbol's bars, with the retries and the one-line errors."""

    def __init__(
        self,
        client: StockHistoricalDataClient,
        request: DownloadRequest,
        backoff: Backoff,
        sleep: Callable[[float], None],
        say: Callable[[str], None],
    ) -> None:
        self.client = client
        self.request = request
        self.backoff = backoff
        self.sleep = sleep
        self.say = say

    def bars(
        self, symbol: str, month: Month, start: datetime, end: datetime
    ) -> list[dict[str, Any]]:
        query = StockBarsRequest(
            symbol_or_symbols=symbol,
            timeframe=TimeFrame.Minute,
            start=start.astimezone(UTC),
            # Alpaca's `end` is inclusive; bars open on whole minutes
            end=(end - timedelta(seconds=1)).astimezone(UTC),
            feed=DataFeed.SIP if self.request.feed == "sip" else DataFeed.IEX,
            adjustment=Adjustment(self.request.adjustment),
        )
        what = f"{symbol} {month.name}"
        for attempt in range(1, self.backoff.attempts + 1):
            try:
                answer = self.client.get_stock_bars(query)
            except APIError as exc:
                if exc.status_code not in _TRANSIENT:
                    raise _refusal(exc, what, self.request.feed) from None
                problem = f"HTTP {exc.status_code} ({_message(exc)})"
            except requests.RequestException as exc:
                problem = type(exc).__name__
            else:
                if not isinstance(answer, dict):
                    raise DownloadError(f"{what}: unexpected answer from {ENDPOINT}")
                rows = answer.get(symbol, [])
                return list(rows) if isinstance(rows, list) else []
            if attempt == self.backoff.attempts:
                raise DownloadError(
                    f"{what}: Alpaca answered {problem} on {ENDPOINT} {attempt} times; the "
                    "months before are saved: run the same command again later to resume",
                    transient=True,
                )
            wait = self.backoff.wait(attempt)
            self.say(f"{what}: {problem} on {ENDPOINT}; retrying in {wait:g} s")
            self.sleep(wait)
        raise AssertionError("unreachable")


def _refusal(exc: APIError, what: str, feed: str) -> DownloadError:
    status, message = exc.status_code, _message(exc)
    if status == 401:
        return DownloadError(
            f"Alpaca refused the credentials (HTTP 401 on {ENDPOINT}: {message}); check "
            "ALPACA_API_KEY and ALPACA_API_SECRET"
        )
    if status == 403 and "subscription" in message.lower():
        return DownloadError(
            f"{what}: Alpaca refuses this data to the account (HTTP 403 on {ENDPOINT}: "
            f"{message}); the free plan serves SIP history up to 15 minutes ago and IEX "
            f"up to now (this was --feed {feed}); check the machine's clock, or use --feed iex"
        )
    return DownloadError(
        f"{what}: Alpaca refused the request (HTTP {status} on {ENDPOINT}: {message})"
    )


def _message(exc: APIError) -> str:
    """Alpaca's `message`, or the body's first line (the data API's errors carry no `code`,
    and a gateway's may not be JSON: alpaca-py's own properties raise on both)."""
    text = str(exc).strip()
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return text.splitlines()[0][:200] if text else "no message"
