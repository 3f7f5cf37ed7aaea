"""`ict-trader data download` through the unmodified alpaca-py against the emulator's bars route:
pages crossed, months written once complete and fetched again while current, the free plan's
SIP delay, a symbol without bars, rate limits with backoff, refusals in one line, bad bars never
written, extended hours optional — and a downloaded folder backtests like the file it came from.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from alpaca.data.historical import StockHistoricalDataClient
from typer.testing import CliRunner, Result

from ict_trader.adapters.alpaca.emulator.feed import DataOptions
from ict_trader.adapters.alpaca.emulator.server import EmulatorServer, Faults
from ict_trader.cli.app import app
from ict_trader.core.bars import Bar
from ict_trader.marketdata.barfile import BarFile, load_bars
from ict_trader.marketdata.download import Backoff, DownloadError, DownloadRequest, download
from ict_trader.marketdata.folder import load_folder
from ict_trader.marketdata.layout import Coverage
from tests.alpaca_emulator import KEY, SECRET, every_minute, running_emulator
from tests.conftest import REPO

ETH_SAMPLE = REPO / "src" / "ict_trader" / "data" / "qqq_1min_sample_eth.csv.gz"
JULY = 1170  # the sample's bars in July 2024 (three sessions); August has 2,730
PAGE = 500  # the emulator's page size here: every month takes several pages
NO_REVISIONS = DataOptions(updated_bar_rate=0.0)  # history as the file has it
BARS_ROUTE = ("GET", "/v2/stocks/bars")

runner = CliRunner()


def named(bars: list[Bar], symbol: str = "QQQ") -> list[Bar]:
    """A plain file's bars as a downloaded folder gives them back: naming their symbol."""
    return [bar._replace(symbol=symbol) for bar in bars]


@pytest.fixture(scope="module")
def sample(sample_csv: Path) -> BarFile:
    return load_bars(sample_csv)


@pytest.fixture(autouse=True)
def _no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No keys or .env from the developer's machine: each test says which keys it uses."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ALPACA_API_KEY", raising=False)
    monkeypatch.delenv("ALPACA_API_SECRET", raising=False)
    yield


def run_download(server: EmulatorServer, out: Path, *more: str, symbols: str = "QQQ") -> Result:
    args = ["data", "download", "--symbols", symbols, "--from", "2024-07-01"]
    args += ["--to", "2024-08-31", "--out", str(out), "--alpaca-url", server.base_url, *more]
    return runner.invoke(app, args, env={"ALPACA_API_KEY": KEY, "ALPACA_API_SECRET": SECRET})


def bar_requests(server: EmulatorServer) -> int:
    return server.requests.count(BARS_ROUTE)


def one_error_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def raw_client(server: EmulatorServer, key: str = KEY) -> StockHistoricalDataClient:
    return StockHistoricalDataClient(key, SECRET, raw_data=True, url_override=server.base_url)


def request_for(out: Path, **changes: object) -> DownloadRequest:
    base = DownloadRequest(("QQQ",), date(2024, 7, 1), date(2024, 8, 31), out)
    return replace(base, **changes)  # type: ignore[arg-type]


def test_pages_are_crossed_complete_months_kept_and_the_current_one_fetched_again(
    sample: BarFile, tmp_path: Path
) -> None:
    """The free plan's SIP history ends 15 minutes before now: the first run stops there, in
    the middle of August. The second, once the emulator's clock has reached the end of the
    sample, fetches August again — and only August: July was complete and is kept as is."""
    out = tmp_path / "bars"
    with running_emulator(sample, start_bar=3000, max_page_size=PAGE, data=NO_REVISIONS) as server:
        first = run_download(server, out)
        assert first.exit_code == 0, first.stderr
        july, august = out / "QQQ" / "2024-07.parquet", out / "QQQ" / "2024-08.parquet"
        assert july.is_file() and august.is_file()
        fetched = 3000 - 15  # every bar older than the SIP delay
        pages = math.ceil(JULY / PAGE) + math.ceil((fetched - JULY) / PAGE)
        assert bar_requests(server) == pages  # several pages a month, each followed
        assert load_folder(out).bars == named(sample.bars[:fetched])
        assert "2 months fetched (2,985 bars), 0 up to date" in first.stdout
        july_bytes, july_written = july.read_bytes(), july.stat().st_mtime_ns

        server.call(server.advance(900))  # the sample's last bar completes
        before = bar_requests(server)
        second = run_download(server, out)
        assert second.exit_code == 0, second.stderr
        fetched = 3900 - 15
        assert bar_requests(server) - before == math.ceil((fetched - JULY) / PAGE)
        assert (july.read_bytes(), july.stat().st_mtime_ns) == (july_bytes, july_written)
        assert "1 months fetched (2,715 bars), 1 up to date" in second.stdout
        assert load_folder(out).bars == named(sample.bars[:fetched])
        coverage = Coverage.read(august)
        assert coverage is not None and coverage.feed == "sip" and coverage.adjustment == "raw"
        assert coverage.until == sample.bars[fetched].time  # 15 minutes before the clock


def test_a_downloaded_folder_backtests_and_signals_like_the_file(
    sample: BarFile, sample_csv: Path, tmp_path: Path
) -> None:
    """IEX with a bar every minute serves the file's bars exactly up to now: the folder then
    holds the sample, and backtest and signals on it give the file's trades and signals."""
    out = tmp_path / "bars"
    data = every_minute(updated_bar_rate=0.0)
    with running_emulator(sample, start_bar=3900, max_page_size=PAGE, data=data) as server:
        result = run_download(server, out, "--feed", "iex")
    assert result.exit_code == 0, result.stderr
    assert load_folder(out).bars == named(sample.bars)

    from_folder = runner.invoke(app, ["signals", "--data", str(out), "--format", "csv"])
    from_file = runner.invoke(app, ["signals", "--data", str(sample_csv), "--format", "csv"])
    assert from_folder.exit_code == 0, from_folder.stderr
    assert from_folder.stdout == from_file.stdout
    assert len(from_file.stdout.splitlines()) > 1  # signals to compare, not two empty lists

    reports = {}
    for label, data_path in (("folder", out), ("file", sample_csv)):
        report = tmp_path / f"{label}.json"
        args = ["backtest", "--data", str(data_path), "--json", str(report)]
        done = runner.invoke(app, [*args, "--symbols", "qqq"] if label == "folder" else args)
        assert done.exit_code == 0, done.stderr
        reports[label] = json.loads(report.read_text(encoding="utf-8"))
    assert reports["folder"]["trades"] == reports["file"]["trades"]
    assert reports["folder"]["trades"], "the sample trades: the comparison is not of nothing"


def test_a_symbol_without_bars_is_named_and_the_others_are_kept(
    sample: BarFile, tmp_path: Path
) -> None:
    """The emulator serves one symbol; asked for another it answers no bars, as Alpaca does
    for a ticker it does not know."""
    out = tmp_path / "bars"
    with running_emulator(sample, start_bar=3900, data=NO_REVISIONS) as server:
        result = run_download(server, out, symbols="QQQ,spy")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "Alpaca has no bars for SPY from 2024-07-01 to 2024-08-31 on feed sip" in line
    assert sorted(p.name for p in (out / "QQQ").iterdir()) == ["2024-07.parquet", "2024-08.parquet"]
    assert not (out / "SPY").exists()
    assert "SPY: 0 months fetched (0 bars), 0 up to date, 2 without bars" in result.stdout


def test_rate_limits_are_waited_out_with_growing_pauses(sample: BarFile, tmp_path: Path) -> None:
    faults = Faults(fail_next=[(*BARS_ROUTE, 429)] * 3)
    waits: list[float] = []
    notes: list[str] = []
    with running_emulator(sample, start_bar=3900, faults=faults, data=NO_REVISIONS) as server:
        reports = download(
            request_for(tmp_path / "bars"),
            raw_client(server),
            server.account.now,
            backoff=Backoff(attempts=4, first=0.5),
            sleep=waits.append,
            say=notes.append,
        )
        assert server.injected[(*BARS_ROUTE, 429)] == 3
    assert waits == [0.5, 1.0, 2.0]
    assert all("HTTP 429 (rate limit exceeded) on /v2/stocks/bars" in note for note in notes)
    assert reports[0].fetched == ["2024-07", "2024-08"]
    assert reports[0].bars == 3900 - 15


def test_a_rate_limit_that_lasts_is_one_line_and_exit_1(
    sample: BarFile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command's own backoff (2, 4, 8, 16, 32 s; the sleeps are skipped here), then one
    line saying what to do; alpaca-py's own retries are off, so 6 attempts are 6 requests."""
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)  # what the command's backoff calls
    out = tmp_path / "bars"
    faults = Faults(fail_next=[(*BARS_ROUTE, 429)] * 6)
    with running_emulator(sample, start_bar=3900, faults=faults, data=NO_REVISIONS) as server:
        result = run_download(server, out)
        assert bar_requests(server) == 6
    assert result.exit_code == 1
    *notices, line = [text for text in result.stderr.splitlines() if text.strip()]
    assert line.startswith("error: ") and "Traceback" not in result.stderr
    assert notices == [
        f"QQQ 2024-07: HTTP 429 (rate limit exceeded) on /v2/stocks/bars; retrying in {s} s"
        for s in (2, 4, 8, 16, 32)
    ]
    assert "QQQ 2024-07: Alpaca answered HTTP 429 (rate limit exceeded) on /v2/stocks/bars" in line
    assert "run the same command again later to resume" in line
    assert waits == [2.0, 4.0, 8.0, 16.0, 32.0]
    assert not (out / "QQQ" / "2024-07.parquet").exists()


def test_recent_sip_data_refused_by_the_plan_is_one_line(sample: BarFile, tmp_path: Path) -> None:
    """A clock an hour ahead of Alpaca's asks for SIP minutes the free plan does not serve."""
    with (
        running_emulator(sample, start_bar=3900, data=NO_REVISIONS) as server,
        pytest.raises(DownloadError) as caught,
    ):
        download(
            request_for(tmp_path / "bars"),
            raw_client(server),
            server.account.now + timedelta(hours=1),
        )
    message = str(caught.value)
    assert message.startswith("QQQ 2024-08: Alpaca refuses this data to the account (HTTP 403")
    assert "subscription does not permit querying recent SIP data" in message
    assert "15 minutes" in message and "--feed iex" in message
    assert not caught.value.transient


def test_refused_credentials_are_one_line(sample: BarFile, tmp_path: Path) -> None:
    with running_emulator(sample, start_bar=3900) as server:
        with pytest.raises(DownloadError) as caught:
            download(
                request_for(tmp_path / "bars"), raw_client(server, "wrong"), server.account.now
            )
        args = ["data", "download", "--symbols", "QQQ", "--from", "2024-07-01"]
        args += ["--alpaca-url", server.base_url, "--out", str(tmp_path / "cli")]
        result = runner.invoke(
            app, args, env={"ALPACA_API_KEY": "wrong", "ALPACA_API_SECRET": SECRET}
        )
    assert str(caught.value).startswith(
        "Alpaca refused the credentials (HTTP 401 on /v2/stocks/bars: request is not authorized)"
    )
    assert result.exit_code == 2
    assert "cannot read its clock (/v2/clock: HTTP 401)" in one_error_line(result)


def test_without_credentials_nothing_is_asked(tmp_path: Path) -> None:
    args = ["data", "download", "--symbols", "QQQ", "--from", "2024-07-01"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "bars")])
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "no Alpaca credentials: set ALPACA_API_KEY and ALPACA_API_SECRET" in line
    assert not (tmp_path / "bars").exists()


def test_one_folder_never_mixes_feeds(sample: BarFile, tmp_path: Path) -> None:
    out = tmp_path / "bars"
    with running_emulator(sample, start_bar=3900, data=NO_REVISIONS) as server:
        assert run_download(server, out).exit_code == 0
        written = (out / "QQQ" / "2024-07.parquet").read_bytes()
        result = run_download(server, out, "--feed", "iex")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "2024-07.parquet holds bars fetched with --feed sip, --adjustment raw" in line
    assert "this download asks for --feed iex" in line
    assert (out / "QQQ" / "2024-07.parquet").read_bytes() == written


def test_a_bad_bar_from_alpaca_is_never_written(sample: BarFile, tmp_path: Path) -> None:
    bars = list(sample.bars)
    bad = bars[JULY + 30]  # 2024-08-01 14:00 UTC
    bars[JULY + 30] = bad._replace(high=bad.open - 1)
    served = BarFile(sample.path, bars, sample.calendar)
    out = tmp_path / "bars"
    with running_emulator(served, start_bar=3900, data=NO_REVISIONS) as server:
        result = run_download(server, out)
    assert result.exit_code == 2
    line = one_error_line(result)
    assert line == (
        "error: QQQ 2024-08: Alpaca's bars: the bar of 2024-08-01T14:00:00Z: "
        f"high {bad.open - 1:g} is below open {bad.open:g}; nothing written for this month"
    )
    assert (out / "QQQ" / "2024-07.parquet").is_file()  # the month before is kept
    assert not (out / "QQQ" / "2024-08.parquet").exists()


def test_extended_hours_are_left_out_unless_asked_for(tmp_path: Path) -> None:
    """Alpaca's minute history has pre- and after-market bars: written only with
    --extended-hours, and left out again when a backtest loads the folder."""
    eth = load_bars(ETH_SAMPLE, extended_hours=True)
    regular = load_bars(REPO / "src" / "ict_trader" / "data" / "qqq_1min_sample.csv")
    data = every_minute(updated_bar_rate=0.0)
    with running_emulator(eth, start_bar=len(eth.bars), data=data) as server:
        assert run_download(server, tmp_path / "rth", "--feed", "iex").exit_code == 0
        result = run_download(server, tmp_path / "eth", "--feed", "iex", "--extended-hours")
        assert result.exit_code == 0, result.stderr

    def rows(out: Path) -> int:
        return sum(pq.read_metadata(path).num_rows for path in (out / "QQQ").iterdir())

    assert rows(tmp_path / "rth") == len(regular.bars)
    assert rows(tmp_path / "eth") == len(eth.bars)
    assert load_folder(tmp_path / "rth").bars == named(regular.bars)
    assert load_folder(tmp_path / "eth").bars == named(regular.bars)
    assert load_folder(tmp_path / "eth", extended_hours=True).bars == named(eth.bars)
