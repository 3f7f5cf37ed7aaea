"""Day after day: the live runner trades several sessions in one process, against the emulator.

The runner is the one `ict-trader run` uses (`run_live`), driven through the unmodified alpaca-py
against the loopback emulator, which the test steps bar by bar.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from alpaca.data.enums import DataFeed

from ict_trader.adapters.alpaca.emulator.feed import DataOptions
from ict_trader.adapters.alpaca.emulator.server import EmulatorServer, Faults
from ict_trader.audit.daily import daily_audit_line
from ict_trader.config import AppConfig
from ict_trader.core.bars import Bar
from ict_trader.marketdata.barfile import BarFile, load_bars
from ict_trader.persistence.store import Store
from ict_trader.runtime.backtest import run_backtest
from ict_trader.runtime.live import LiveEndpoints, LiveShell
from ict_trader.runtime.live_runner import Credentials, run_live
from tests.alpaca_emulator import KEY, SECRET, backtest_like, every_minute, running_emulator
from tests.conftest import SAMPLE_CSV
from tests.test_live import make_shell
from tests.test_live_restart import last_bar, quiet_exchange

SESSION_START = 390  # 2024-07-30 09:30: one full session before it for the warm-up
SESSION_BARS = 390


@pytest.fixture(scope="module")
def sample(sample_csv: Path) -> BarFile:
    return load_bars(sample_csv)


def endpoints(server: EmulatorServer) -> LiveEndpoints:
    return LiveEndpoints(
        rest_url=server.base_url,
        data_stream_url=f"ws://127.0.0.1:{server.port}/v2/iex",
        trade_stream_url=f"ws://127.0.0.1:{server.port}/stream",
        feed=DataFeed.IEX,
    )


class Runner:
    """`run_live` on a thread, as `ict-trader run --sessions N` runs it."""

    def __init__(
        self, server: EmulatorServer, db: Path, sessions: int, config: AppConfig | None = None
    ) -> None:
        self.said: list[str] = []
        self.error: BaseException | None = None
        self.shell: LiveShell | None = None
        self.db = db
        store = Store(db)

        def main() -> None:
            try:
                self.shell = run_live(
                    config or AppConfig(),
                    Credentials(KEY, SECRET),
                    endpoints(server),
                    store,
                    paper=True,
                    say=self.said.append,
                    sessions=sessions,
                    poll_seconds=0.05,
                    backoff_seconds=0.01,
                    daily_audit=daily_audit_line,  # as the `run` command passes it
                )
            except BaseException as exc:  # the test reports it, with the runner's words
                self.error = exc
            finally:
                store.close()

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()

    def last_bar(self) -> str:
        return last_bar(self.db) or ""


async def _clients(server: EmulatorServer) -> tuple[int, int]:
    return len(server._trade_sockets), len(server._data_sockets)


def wait(condition: object, runner: Runner, what: str, timeout: float = 30.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if runner.error is not None:
            raise AssertionError(f"runner failed: {runner.error!r}; said {runner.said}")
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}; said {runner.said[-5:]}")


def step(server: EmulatorServer, runner: Runner, bars: int) -> None:
    for _ in range(bars):
        (bar,) = server.call(server.advance(1))
        stamp = bar.time.strftime("%Y-%m-%dT%H:%M:%SZ")
        if server.feed.has(bar.time, "iex"):  # IEX may have no bar for the minute
            wait(lambda s=stamp: runner.last_bar() >= s, runner, f"bar {stamp}")
        quiet_exchange(server)


def closed_trades(db: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT trade_id, qty, entry_time, exit_time, exit_reason, pnl, status FROM trades"
            " ORDER BY trade_id"
        ).fetchall()
    return [(r[0], r[1], r[2], r[3], r[4], Decimal(r[5]) if r[5] else None, r[6]) for r in rows]


def test_two_sessions_in_one_run_equal_the_backtest(sample: BarFile, tmp_path: Path) -> None:
    """The second session's warm-up used to feed the detector the first session again
    (BarOrderError); now one process trades both days and then returns by itself."""
    db = tmp_path / "days.db"
    # Fills as the backtest models them (no spread, no random partials), to compare to the cent.
    with running_emulator(
        sample, start_bar=SESSION_START, options=backtest_like(), data=every_minute()
    ) as server:
        runner = Runner(server, db, sessions=2)
        wait(lambda: server.call(_clients(server)) == (1, 1), runner, "streams")
        step(server, runner, 2 * SESSION_BARS)
        runner.thread.join(30)
        position = server.account.position
    assert not runner.thread.is_alive(), runner.said[-5:]
    assert runner.error is None, repr(runner.error)
    assert sum("trading QQQ until 16:00" in line for line in runner.said) == 2
    assert position == 0
    expected = run_backtest(
        sample.bars[: SESSION_START + 2 * SESSION_BARS], sample.calendar, AppConfig()
    )
    want = [
        (
            t.trade_id,
            t.qty,
            t.entry_time.strftime("%Y-%m-%dT%H:%M:%SZ") if t.entry_time else None,
            t.exit_time.strftime("%Y-%m-%dT%H:%M:%SZ") if t.exit_time else None,
            t.exit_reason.value if t.exit_reason else None,
            t.pnl,
            "closed",
        )
        for t in sorted(expected.closed_trades(), key=lambda t: t.trade_id)
    ]
    assert want, "the two sessions hold signals to trade"
    assert closed_trades(db) == want


def test_a_failing_clock_at_start_up_is_waited_out(sample: BarFile, tmp_path: Path) -> None:
    """One 500 or 429 from /v2/clock used to end the process with a traceback; within
    --connect-timeout (60 s by default) they are retried, and said."""
    db = tmp_path / "clock.db"
    faults = Faults()
    with running_emulator(sample, start_bar=SESSION_START, faults=faults) as server:
        faults.fail_next = [("GET", "/v2/clock", 500)] * 8 + [("GET", "/v2/clock", 429)] * 3
        runner = Runner(server, db, sessions=1)
        wait(lambda: server.call(_clients(server)) == (1, 1), runner, "streams")
        clock_calls = server.requests.count(("GET", "/v2/clock"))
        step(server, runner, SESSION_BARS)
        runner.thread.join(30)
    assert runner.error is None, repr(runner.error)
    assert not runner.thread.is_alive()
    assert clock_calls > 11  # every failure was answered with another try
    answers = [line for line in runner.said if "(GET /v2/clock); retrying" in line]
    assert any("answers HTTP 500" in line for line in answers)
    assert any("answers HTTP 429" in line for line in answers)


def test_extended_hours_bars_are_counted_and_ignored(sample: BarFile, tmp_path: Path) -> None:
    with running_emulator(sample, start_bar=SESSION_START) as server:
        store = Store(tmp_path / "eth.db")
        shell = make_shell(server, sample.calendar, store)
        start = sample.bars[SESSION_START].time
        shell.warm_up(start)
        before = shell.stats.last_bar
        pre = Bar(datetime(2024, 7, 30, 12, 0, tzinfo=UTC), 460.0, 461.0, 459.0, 460.5, 1000.0)
        after = Bar(datetime(2024, 7, 29, 20, 5, tzinfo=UTC), 460.0, 461.0, 459.0, 460.5, 10.0)
        shell.on_bar(after)
        shell.on_bar(pre)
        assert shell.stats.extended_hours == 2
        assert shell.stats.last_bar == before  # the detector never saw them
        regular = sample.bars[SESSION_START]
        shell.on_bar(regular)  # and the session goes on from its first bar
        assert shell.stats.last_bar == regular.time
        assert shell.stats.backfilled == 0
        store.close()
    assert before == sample.bars[SESSION_START - 1].time  # the previous session's last bar


@pytest.fixture(scope="module")
def dev(dev_year: Path) -> BarFile:
    return load_bars(dev_year)


@pytest.mark.parametrize(
    ("first_day", "closes"),
    [
        # Friday before the spring DST change, then Monday: the open moves from 14:30Z to 13:30Z
        (date(2024, 3, 8), ["16:00", "16:00"]),
        # the 13:00 early close of July 3rd, the July 4th holiday, then Friday July 5th
        (date(2024, 7, 3), ["13:00", "16:00"]),
    ],
)
def test_dst_changes_early_closes_and_holidays_come_from_alpacas_clock(
    dev: BarFile, tmp_path: Path, first_day: date, closes: list[str]
) -> None:
    days = [s for s in dev.calendar.sessions() if s.day >= first_day][:2]
    previous = dev.calendar.session_on(days[0].previous_day or first_day)
    assert previous is not None
    bars = [b for b in dev.bars if previous.open <= b.time < days[-1].close]
    window = BarFile(dev.path, bars, dev.calendar)
    warm_up = sum(1 for b in bars if b.time < days[0].open)
    db = tmp_path / "calendar.db"
    with running_emulator(
        window, start_bar=warm_up, options=backtest_like(), data=every_minute()
    ) as server:
        runner = Runner(server, db, sessions=2)
        wait(lambda: server.call(_clients(server)) == (1, 1), runner, "streams")
        step(server, runner, len(bars) - warm_up)
        runner.thread.join(30)
        position = server.account.position
    assert runner.error is None, repr(runner.error)
    assert not runner.thread.is_alive()
    said = [line for line in runner.said if line.startswith("trading QQQ until")]
    assert [line.split()[3] for line in said] == closes
    assert position == 0
    with closing(sqlite3.connect(db)) as connection:
        stuck = connection.execute(
            "SELECT COUNT(*) FROM trades WHERE status IN ('pending', 'open', 'exiting')"
        ).fetchone()
        days_traded = connection.execute(
            "SELECT COUNT(DISTINCT substr(time, 1, 10)) FROM bars WHERE time >= ?",
            (days[0].open.strftime("%Y-%m-%dT%H:%M:%SZ"),),
        ).fetchone()
    assert stuck == (0,)
    assert days_traded == (2,)


ETH_SAMPLE = SAMPLE_CSV.with_name("qqq_1min_sample_eth.csv.gz")


def test_extended_hours_and_a_closed_clock_between_sessions(tmp_path: Path) -> None:
    """Alpaca's stream as it is: pre- and after-market bars around each session, the clock
    closed between sessions with nothing to trade. Two sessions in one run, the same trades as
    the backtest of the regular-hours bars."""
    eth = load_bars(ETH_SAMPLE, extended_hours=True)
    regular = load_bars(SAMPLE_CSV)
    first = regular.calendar.session_on(date(2024, 7, 30))
    assert first is not None
    start = next(i for i, b in enumerate(eth.bars) if b.time >= first.open)
    end = next(i for i, b in enumerate(eth.bars) if b.time.date() >= date(2024, 8, 1))
    db = tmp_path / "eth.db"
    options = backtest_like()  # the clock closed between sessions, as Alpaca's
    with running_emulator(eth, start_bar=start, options=options, data=every_minute()) as server:
        runner = Runner(server, db, sessions=2)
        wait(lambda: server.call(_clients(server)) == (1, 1), runner, "streams")
        for _ in range(end - start):
            (bar,) = server.call(server.advance(1))
            if eth.calendar.session_at(bar.time) is None:
                continue  # an extended-hours bar: nothing for the bot to record
            stamp = bar.time.strftime("%Y-%m-%dT%H:%M:%SZ")
            wait(lambda s=stamp: runner.last_bar() >= s, runner, f"bar {stamp}")
            quiet_exchange(server)
        runner.thread.join(30)
    assert runner.error is None, repr(runner.error)
    assert not runner.thread.is_alive()
    assert runner.shell is not None and runner.shell.stats.extended_hours > 0
    assert any(line.startswith("market closed; next open") for line in runner.said)
    expected = run_backtest(
        regular.bars[: SESSION_START + 2 * SESSION_BARS], regular.calendar, AppConfig()
    )
    want = sorted(
        (t.trade_id, t.exit_reason.value if t.exit_reason else None, t.pnl)
        for t in expected.closed_trades()
        if t.entry_time and t.entry_time >= first.open
    )
    got = [(t, r, p) for t, _, _, _, r, p, _ in closed_trades(db)]
    assert got == want


def test_minutes_without_a_bar_are_lived_with(sample: BarFile, tmp_path: Path) -> None:
    """IEX has minutes with no trade, hence no bar, on the stream or in its history: the bot
    neither waits for them nor stalls; the session ends on Alpaca's clock."""
    db = tmp_path / "gaps.db"
    data = DataOptions(missing_minute_rate=0.05)
    with running_emulator(
        sample, start_bar=SESSION_START, options=backtest_like(), data=data
    ) as server:
        runner = Runner(server, db, sessions=1)
        wait(lambda: server.call(_clients(server)) == (1, 1), runner, "streams")
        for _ in range(SESSION_BARS):
            server.call(server.advance(1))
            time.sleep(0.02)  # time moves on whether or not a bar came
            quiet_exchange(server)
        server.call(server.advance(1))  # the next session's first minute: the close has passed
        runner.thread.join(60)
        position = server.account.position
    assert runner.error is None, repr(runner.error)
    assert not runner.thread.is_alive(), runner.said[-3:]
    assert position == 0
    with closing(sqlite3.connect(db)) as connection:
        recorded = connection.execute("SELECT COUNT(*) FROM bars").fetchone()[0]
        stuck = connection.execute(
            "SELECT COUNT(*) FROM trades WHERE status IN ('pending', 'open', 'exiting')"
        ).fetchone()
    assert 2 * SESSION_BARS * 0.9 < recorded < 2 * SESSION_BARS  # warm-up day + today, gaps
    assert stuck == (0,)


def test_sip_on_the_free_plan_is_refused_at_start_in_one_line(tmp_path: Path) -> None:
    with running_emulator(load_bars(SAMPLE_CSV), start_bar=SESSION_START) as server:
        command = [sys.executable, "-m", "ict_trader", "run", "--alpaca-url", server.base_url]
        done = subprocess.run(
            [*command, "--feed", "sip", "--db", str(tmp_path / "sip.db"), "--no-dashboard"],
            capture_output=True,
            text=True,
            env={**os.environ, "ALPACA_API_KEY": KEY, "ALPACA_API_SECRET": SECRET},
            cwd=tmp_path,
            check=False,
            timeout=120,
        )
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1 and "--feed sip" in lines[0] and "403" in lines[0]
    assert "Traceback" not in done.stderr
