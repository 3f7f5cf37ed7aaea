"""Misuse of the control path: many hands on the kill switch, two bots, a full disk.

Issue #10: nothing a clumsy user, a busy store or a full disk does may cost money or disable a
safety control. Every request acknowledged must reach the bot, in order; a refused one must be
said to be refused, in one line, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ict_trader.cli.app import app
from ict_trader.persistence.store import Store, StoreError
from ict_trader.runtime import control

# A stand-in for the trading loop, in its own process: it holds the writer lock, and every pass
# writes, obeys pending requests (recording each delivery in the audit log) and commits — the
# same calls the shells make — until the test writes the `test_stop` key.
BOT = """
import sys
from ict_trader.runtime import control
from ict_trader.persistence.store import Store
from datetime import UTC, datetime

store = Store(sys.argv[1])
print("ready", flush=True)
passes = 0
while True:
    now = datetime.now(UTC)
    store.set_state("heartbeat", now.isoformat())
    for row in range(20):  # a bar's worth of writes, holding the write lock meanwhile
        store.set_state(f"work{row}", str(passes))
    stop = store.state("test_stop") == "1"
    control.apply_requests(
        store, lambda e: store.audit(now, "delivered", e.actor, e.reason)
    )
    store.commit()
    passes += 1
    if stop:
        break
print(passes, flush=True)
"""

# Another process asking for kills and resumes as fast as it can, like a script gone wrong.
REQUESTER = """
import json, sys
from ict_trader.runtime import control
from ict_trader.persistence.store import Store, StoreError

acknowledged, failed = [], 0
for index in range(int(sys.argv[3])):
    kind = "kill" if index % 2 == 0 else "resume"
    store = Store(sys.argv[1], reader=True)
    try:
        number = control.request(store, kind, f"{sys.argv[2]}-{index}", "script")
        acknowledged.append([number, f"{sys.argv[2]}-{index}"])
    except StoreError:
        failed += 1
    finally:
        store.close()
print(json.dumps({"acknowledged": acknowledged, "failed": failed}), flush=True)
"""


@contextlib.contextmanager
def running_bot(db: Path) -> Iterator[subprocess.Popen[str]]:
    bot = subprocess.Popen([sys.executable, "-c", BOT, str(db)], stdout=subprocess.PIPE, text=True)
    assert bot.stdout is not None
    try:
        assert bot.stdout.readline().strip() == "ready"
        yield bot
    finally:
        if bot.poll() is None:
            bot.kill()
        bot.communicate()


def test_concurrent_kill_and_resume_are_all_applied_in_order(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    Store(db).close()
    acknowledged: list[tuple[int, str]] = []
    failures: list[str] = []
    guard = threading.Lock()

    def thread_requests(name: str, count: int) -> None:
        for index in range(count):
            kind = "kill" if index % 2 == 0 else "resume"
            store = Store(db, reader=True)
            try:
                number = control.request(store, kind, f"{name}-{index}", "dashboard")
            except StoreError as exc:
                with guard:
                    failures.append(str(exc))
            else:
                with guard:
                    acknowledged.append((number, f"{name}-{index}"))
            finally:
                store.close()

    with running_bot(db) as bot:
        scripts = [
            subprocess.Popen(
                [sys.executable, "-c", REQUESTER, str(db), f"proc{n}", "40"],
                stdout=subprocess.PIPE,
                text=True,
            )
            for n in range(2)
        ]
        threads = [
            threading.Thread(target=thread_requests, args=(f"thread{n}", 40)) for n in range(4)
        ]
        for thread in threads:
            thread.start()
        cli = CliRunner()
        for index in range(4):  # the command line too, interleaved with the rest
            kind = "kill" if index % 2 == 0 else "resume"
            result = cli.invoke(app, [kind, "--reason", f"cli-{index}", "--db", str(db)])
            assert result.exit_code == 0, result.output
            said = result.output.strip()
            number = int(said.split("#", 1)[1].split(")", 1)[0])
            acknowledged.append((number, f"cli-{index}"))
        for thread in threads:
            thread.join()
        for script in scripts:
            out, _ = script.communicate()
            report = json.loads(out)
            acknowledged.extend((n, reason) for n, reason in report["acknowledged"])
            failures.extend(["script"] * report["failed"])
        stopper = Store(db, reader=True)
        with stopper.transaction():
            stopper.set_state("test_stop", "1")
        stopper.close()
        out, _ = bot.communicate(timeout=60)
        assert bot.returncode == 0
        assert int(out.strip()) > 1  # the bot kept committing throughout

    tried = 2 * 40 + 4 * 40 + 4
    store = Store(db, reader=True)
    delivered = [
        row["message"] for row in reversed(store.audit_events(10_000)) if row["kind"] == "delivered"
    ]
    recorded = [row["reason"] for row in store.control_requests()]
    store.close()
    print(
        f"control misuse: {tried} requests tried, {len(acknowledged)} acknowledged, "
        f"{len(failures)} refused, {tried - len(delivered)} not delivered"
    )
    assert failures == []
    assert len(acknowledged) == tried
    # Every acknowledged request is recorded under the number it was acknowledged with ...
    assert sorted(acknowledged) == list(enumerate(recorded, start=1))
    # ... and the bot received each of them exactly once, in that order: none lost.
    assert delivered == recorded


def test_a_second_run_on_a_running_store_refuses_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    for name in ("ALPACA_API_KEY", "ALPACA_API_SECRET"):
        monkeypatch.delenv(name, raising=False)
    db = tmp_path / "bot.db"
    Store(db).close()
    with running_bot(db) as bot:
        for extra in ([], ["--fresh"]):  # --fresh must not delete a running bot's store either
            result = CliRunner().invoke(
                app, ["run", "--db", str(db), "--no-dashboard", "--speed", "0", *extra]
            )
            assert result.exit_code == 2
            lines = [line for line in result.output.splitlines() if line.strip()]
            assert lines == [
                f"error: {db}: already running (pid {bot.pid}); stop it first, or use another --db"
            ]
            assert "Traceback" not in result.output
        assert db.exists()
        os.kill(bot.pid, signal.SIGKILL)  # the bot dies without any clean-up
        bot.wait()
    Store(db).close()  # and its stale lock does not block the next start


@contextlib.contextmanager
def full_disk(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder on a file system with no space left: a 1 MiB tmpfs if this machine lets us
    mount one (root), else a folder whose writers are limited by RLIMIT_FSIZE (see `limited`)."""
    folder = tmp_path / "full"
    folder.mkdir()
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    try:
        yield folder, "tmpfs" if mounted else "rlimit"
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=True)


def fill(folder: Path) -> None:
    descriptor = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(descriptor, b"\0" * 65536)
    except OSError:
        pass  # ENOSPC: full
    finally:
        os.close(descriptor)


def limited() -> None:
    """preexec for the rlimit fallback: files may not grow beyond their current size."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


def test_a_full_disk_is_one_line_and_nothing_is_recorded(tmp_path: Path) -> None:
    with full_disk(tmp_path) as (folder, how):
        db = folder / "bot.db"
        store = Store(db)
        store.set_state("kept", "1")
        store.commit()
        store.close()
        before = db.read_bytes()
        if how == "tmpfs":
            fill(folder)
        commands = [
            ["kill", "--reason", "disk is full", "--db", str(db)],
            ["run", "--db", str(db), "--no-dashboard", "--speed", "0", "--quiet"],
        ]
        for command in commands:
            result = subprocess.run(
                [sys.executable, "-m", "ict_trader", *command],
                capture_output=True,
                text=True,
                check=False,
                cwd=folder,
                env={k: v for k, v in os.environ.items() if not k.startswith("ALPACA_")},
                preexec_fn=None if how == "tmpfs" else limited,
            )
            errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
            print(f"disk full ({how}), {command[0]}: {result.stderr.strip()!r}")
            assert result.returncode == 2, result.stderr
            assert "Traceback" not in result.stderr + result.stdout
            assert len(errors) == 1 and str(db) in errors[0]
        (folder / "filler").unlink(missing_ok=True)
        check = Store(db, reader=True)
        assert check.state("kept") == "1"
        assert check.control_requests() == []  # the kill was refused, not half-recorded
        assert check.last_run() is None  # the run recorded nothing either
        check.close()
        assert before  # the store existed with its data before the disk filled
