"""Soak: many consecutive sessions of the real bot process against the emulator, with faults and
`kill -9`s, then an audit of the ledger against the broker.

The bot is `ict-trader run --alpaca-url … --sessions 0` in its own process — the command a user
leaves running — against the loopback emulator in this process, replaying real 2024 QQQ
sessions in compressed time: each bar is completed once the bot has handled the previous one
(or at once while the bot is down). Faults are on at moderate rates (500, 429, a 504 *after* the
order was created, dropped data sockets, partial fills, duplicated fill messages, rejections),
and the bot is killed with SIGKILL at random moments and restarted. Signal settings are loosened
(`require_fvg=false`) so there are enough trades to stress.

Printed: sessions, orders, duplicate client ids, trades left pending/exiting, differences between
the ledger and the broker (orders, fills, position), positions still open at a session's end, and
restarts survived. The goal is zeros everywhere but the counts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import closing
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ict_trader.adapters.alpaca.emulator.paper import EmulatorOptions, EmuOrder, PaperAccount  # noqa: E402
from ict_trader.adapters.alpaca.emulator.server import EmulatorServer, Faults  # noqa: E402
from ict_trader.marketdata.barfile import BarFile, load_bars  # noqa: E402

DEV_YEAR = REPO / "tests" / "data" / "qqq_1min_dev.csv.gz"
KEY, SECRET = "soak-key", "soak-secret"
_MINUTE = timedelta(minutes=1)
LATE_SECONDS = 3.0
FINAL_ORDER = {"filled", "canceled", "expired", "rejected", "replaced"}


@dataclass
class SoakReport:
    sessions: int = 0
    bars: int = 0
    orders: int = 0
    fills: int = 0
    trades_closed: int = 0
    restarts: int = 0
    restarts_survived: int = 0
    bars_late: int = 0  # not handled within LATE_SECONDS (a dropped socket, retries' backoff)
    minutes_without_a_bar: int = 0  # no IEX trade in the minute: the stream sent nothing
    faults_injected: int = 0
    duplicate_client_ids: int = 0
    trades_left_pending_or_exiting: int = 0
    order_differences: int = 0
    fill_differences: int = 0
    position_difference: int = 0
    positions_open_at_session_end: int = 0
    bot_exit_code: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not any(
            (
                self.duplicate_client_ids,
                self.trades_left_pending_or_exiting,
                self.order_differences,
                self.fill_differences,
                self.position_difference,
                self.positions_open_at_session_end,
                self.restarts - self.restarts_survived,
            )
        )


def soak(
    bar_file: BarFile,
    *,
    first_session: int,
    sessions: int,
    kills: int,
    seed: int,
    work: Path,
    say: object = print,
) -> SoakReport:
    """Trade `sessions` sessions after a warm-up session, killing the bot `kills` times."""
    assert callable(say)
    chosen = bar_file.calendar.sessions()
    days = [s for s in chosen if bar_file.bars[0].time <= s.open <= bar_file.bars[-1].time]
    window = days[first_session - 1 : first_session + sessions]
    bars = [b for b in bar_file.bars if window[0].open <= b.time < window[-1].close]
    warm_up = sum(1 for b in bars if b.time < window[1].open)
    rng = random.Random(seed)
    options = EmulatorOptions(
        partial_fill_rate=0.2, duplicate_fill_rate=0.2, reject_rate=0.02, seed=seed
    )
    faults = Faults(
        error_500_rate=0.01,
        error_429_rate=0.01,
        order_504_rate=0.05,
        drop_data_socket_every=97,
        seed=seed,
    )
    account = PaperAccount(bars, bar_file.calendar, options=options)
    for _ in range(warm_up):
        account.complete_bar()
    server = EmulatorServer(account, key=KEY, secret=SECRET, faults=faults)
    server.run_in_thread()
    report = SoakReport(sessions=sessions)
    db, log = work / "soak.db", work / "soak.log"
    to_trade = len(bars) - warm_up
    kill_at = sorted(rng.sample(range(20, to_trade - 20), kills))
    session_closes = {s.close for s in window[1:]}
    try:
        bot = _start_bot(server, db, log)
        _wait_connected(server, bot, log)
        done = 0
        streamed = ""  # the newest bar the stream sent
        while done < to_trade:
            (bar,) = server.call(server.advance(1))
            done += 1
            report.bars += 1
            closing_bar = bar.time + _MINUTE in session_closes
            # Time moves on, as it does live: a bar lost with a dropped socket is fetched by
            # the bot when the next one shows the gap. Only a session's last bar is waited for;
            # a minute IEX has no bar for (no IEX trade) is not waited for at all.
            if server.feed.has(bar.time, "iex"):
                streamed = bar.time.strftime("%Y-%m-%dT%H:%M:%SZ")
                if not _wait_processed(db, streamed, bot, log, LATE_SECONDS):
                    report.bars_late += 1
            else:
                report.minutes_without_a_bar += 1
            if closing_bar:
                _wait_processed(db, streamed, bot, log, 120)
            if closing_bar:
                if account.position != 0:
                    report.positions_open_at_session_end += 1
                    report.problems.append(f"position {account.position} at {bar.time:%F} close")
                say(f"session {bar.time:%Y-%m-%d} done: position {account.position}")
            if kill_at and done >= kill_at[0]:
                kill_at.pop(0)
                time.sleep(rng.uniform(0, 0.05))  # somewhere inside the bot's work on a bar
                bot.kill()
                bot.wait()
                report.restarts += 1
                # down for a few bars, never across a session's close (nobody could flatten)
                down = rng.randint(0, 12)
                while down > 0 and done < to_trade - 1:
                    following = account.bars[account.cursor]
                    if following.time + _MINUTE in session_closes:
                        break
                    server.call(server.advance(1))
                    done += 1
                    report.bars += 1
                    down -= 1
                bot = _start_bot(server, db, log)
                _wait_connected(server, bot, log)
                report.restarts_survived += 1
        bot.terminate()  # SIGTERM: the clean stop a service manager sends
        report.bot_exit_code = bot.wait(timeout=60)
    finally:
        if bot.poll() is None:
            bot.kill()
        server.stop_thread()
    report.faults_injected = sum(server.injected.values())
    _audit(report, db, account)
    return report


def _start_bot(server: EmulatorServer, db: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ALPACA_API_KEY": KEY,
        "ALPACA_API_SECRET": SECRET,
        "COLUMNS": "200",
        "XDG_CONFIG_HOME": str(db.parent / "config"),
    }
    command = [sys.executable, "-m", "ict_trader", "run", "--alpaca-url", server.base_url]
    command += ["--db", str(db), "--sessions", "0", "--no-dashboard"]
    command += ["--param", "require_fvg=false"]
    with log.open("ab") as output:
        return subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=db.parent
        )


async def _clients(server: EmulatorServer) -> tuple[int, int]:
    return len(server._trade_sockets), len(server._data_sockets)


def _wait_connected(server: EmulatorServer, bot: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if bot.poll() is not None:
            raise RuntimeError(f"bot exited ({bot.returncode}):\n{log.read_text()[-3000:]}")
        if server.call(_clients(server)) == (1, 1):
            return
        time.sleep(0.02)
    raise RuntimeError(f"bot never connected:\n{log.read_text()[-3000:]}")


def _wait_processed(
    db: Path, stamp: str, bot: subprocess.Popen[bytes], log: Path, timeout: float
) -> bool:
    """Whether the bot has handled the bar stamped `stamp` within `timeout` seconds; a strict
    wait (a session's last bar) that runs out is an error."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bot.poll() is not None:
            raise RuntimeError(f"bot exited ({bot.returncode}):\n{log.read_text()[-3000:]}")
        if _state(db, "last_bar_time") >= stamp:
            return True
        time.sleep(0.005)
    if timeout >= 120:
        raise RuntimeError(f"bot stuck before {stamp}:\n{log.read_text()[-3000:]}")
    return False


def _state(db: Path, key: str) -> str:
    if not db.exists():
        return ""
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as connection:
            row = connection.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
    except sqlite3.OperationalError:
        return ""
    return "" if row is None else str(row[0])


def _audit(report: SoakReport, db: Path, account: PaperAccount) -> None:
    """Ledger against the broker: every order, its filled quantity, and the net position."""
    broker_orders = {o.client_order_id: o for o in _all_orders(account)}
    ids = Counter(o.client_order_id for o in _all_orders(account))
    report.orders = len(ids)
    report.duplicate_client_ids = sum(n - 1 for n in ids.values() if n > 1)
    with sqlite3.connect(db) as connection:
        stuck = connection.execute(
            "SELECT trade_id, status FROM trades WHERE status IN ('pending', 'exiting')"
        ).fetchall()
        report.trades_closed = connection.execute(
            "SELECT COUNT(*) FROM trades WHERE status = 'closed'"
        ).fetchone()[0]
        orders = connection.execute(
            "SELECT client_order_id, broker_order_id, status FROM orders"
        ).fetchall()
        fills = connection.execute(
            "SELECT client_order_id, SUM(qty), COUNT(*) FROM fills GROUP BY client_order_id"
        ).fetchall()
        open_trades = connection.execute(
            "SELECT direction, qty, exit_price FROM trades WHERE status = 'open'"
        ).fetchall()
    report.trades_left_pending_or_exiting = len(stuck)
    report.problems += [f"trade {t} left {s}" for t, s in stuck]
    filled_in_ledger = {cid: int(qty) for cid, qty, _ in fills}
    report.fills = sum(n for _, _, n in fills)
    for client_order_id, broker_id, status in orders:
        found = broker_orders.get(client_order_id) or _by_broker_id(account, broker_id)
        if found is None:
            if status not in {"rejected", "canceled"}:  # never reached the broker
                report.order_differences += 1
                report.problems.append(f"{client_order_id}: {status} in the ledger, not at broker")
            continue
        broker_final = found.status in FINAL_ORDER
        if broker_final != (status in FINAL_ORDER) and not (
            status == "rejected" and found.status == "rejected"
        ):
            report.order_differences += 1
            report.problems.append(f"{client_order_id}: ledger {status}, broker {found.status}")
        if filled_in_ledger.get(client_order_id, 0) != found.filled_qty:
            report.fill_differences += 1
            report.problems.append(
                f"{client_order_id}: ledger filled {filled_in_ledger.get(client_order_id, 0)}, "
                f"broker {found.filled_qty}"
            )
    ledger_position = sum(
        (1 if direction == "long" else -1) * int(qty) for direction, qty, _ in open_trades
    )
    report.position_difference = abs(ledger_position - account.position)
    if report.position_difference:
        report.problems.append(f"ledger position {ledger_position}, broker {account.position}")


def _all_orders(account: PaperAccount) -> list[EmuOrder]:
    """Every order the broker holds, OCO legs included, once each."""
    out: list[EmuOrder] = []
    for order in account.orders.values():
        out.append(order)
        out.extend(order.legs)
    return list({o.id: o for o in out}.values())


def _by_broker_id(account: PaperAccount, broker_id: str | None) -> EmuOrder | None:
    return next((o for o in _all_orders(account) if o.id == broker_id), None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEV_YEAR)
    parser.add_argument("--first-session", type=int, default=60, help="index in the file")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    bar_file = load_bars(args.data)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        report = soak(
            bar_file,
            first_session=args.first_session,
            sessions=args.sessions,
            kills=args.kills,
            seed=args.seed,
            work=Path(folder),
        )
    elapsed = time.perf_counter() - started
    rows = {k: v for k, v in asdict(report).items() if k != "problems"}
    for key, value in rows.items():
        print(f"{key:34} {value}")
    print(f"{'wall-clock seconds':34} {elapsed:.0f}")
    for problem in report.problems[:40]:
        print(f"  problem: {problem}")
    print("verdict: " + ("all zeros but the counts" if report.clean else "PROBLEMS (see above)"))
    if args.json:
        args.json.write_text(json.dumps({**asdict(report), "seconds": elapsed}, default=str))
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
