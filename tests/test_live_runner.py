"""Start-up rules of the live runner: credentials, the live-money opt-in, endpoints, a broker
that cannot be reached."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ict_trader.adapters.alpaca.broker import AlpacaBroker
from ict_trader.adapters.alpaca.emulator.options import OptionSettings
from ict_trader.adapters.alpaca.emulator.paper import EmulatorOptions, PaperAccount
from ict_trader.adapters.alpaca.emulator.server import EmulatorServer, Faults
from ict_trader.cli.app import app
from ict_trader.config import AppConfig
from ict_trader.core.calendar import NyseCalendar
from ict_trader.core.strategy import InstrumentChoice, OptionRules, StrategyProfile
from ict_trader.errors import BrokerUnreachableError, ConfigError
from ict_trader.marketdata.barfile import load_bars
from ict_trader.persistence.store import Store
from ict_trader.runtime.live_runner import (
    LIVE_OPT_IN,
    Credentials,
    _first_contact,
    check_live_money,
    check_option_profiles,
    check_options_level,
    endpoints_for,
    find_credentials,
    run_live,
    sync_calendar,
)
from tests.alpaca_emulator import KEY, SECRET, running_emulator


def test_credentials_from_env_file_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALPACA_API_KEY", raising=False)
    monkeypatch.delenv("ALPACA_API_SECRET", raising=False)
    env_file = tmp_path / ".env"
    assert find_credentials(env_file) is None
    env_file.write_text("ALPACA_API_KEY=PKFILE\nALPACA_API_SECRET=file-secret\n", encoding="utf-8")
    assert find_credentials(env_file) == Credentials("PKFILE", "file-secret")
    monkeypatch.setenv("ALPACA_API_KEY", "PKENV")
    monkeypatch.setenv("ALPACA_API_SECRET", "env-secret")
    found = find_credentials(env_file)
    assert found == Credentials("PKENV", "env-secret")  # the environment wins
    assert "env-secret" not in repr(found) and "PKENV" not in repr(found)


def test_live_money_needs_the_flag_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LIVE_OPT_IN, raising=False)
    assert check_live_money(False) is True  # paper
    with pytest.raises(ConfigError, match="ICT_TRADER_ALLOW_LIVE=yes"):
        check_live_money(True)
    monkeypatch.setenv(LIVE_OPT_IN, "true")  # only the exact word counts
    with pytest.raises(ConfigError):
        check_live_money(True)
    monkeypatch.setenv(LIVE_OPT_IN, "yes")
    assert check_live_money(True) is False  # live money


def test_the_run_command_refuses_live_money_without_opt_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALPACA_API_KEY", "PK")
    monkeypatch.setenv("ALPACA_API_SECRET", "secret-value")
    monkeypatch.delenv(LIVE_OPT_IN, raising=False)
    result = CliRunner().invoke(app, ["run", "--live"])
    assert result.exit_code == 2
    assert "Refusing" in result.output
    assert "secret-value" not in result.output
    assert not (tmp_path / "ict-trader.db").exists()  # nothing started


def test_endpoints_for_an_emulator() -> None:
    endpoints = endpoints_for("http://127.0.0.1:8765/", "iex")
    assert endpoints.rest_url == "http://127.0.0.1:8765"
    assert endpoints.data_stream_url == "ws://127.0.0.1:8765/v2/iex"
    assert endpoints.trade_stream_url == "ws://127.0.0.1:8765/stream"
    assert endpoints_for(None, "sip").rest_url is None  # Alpaca's own endpoints
    with pytest.raises(ConfigError, match="expected http://host:port"):
        endpoints_for("127.0.0.1:8765", "iex")


def test_the_brokers_hours_win_over_a_stale_local_calendar(sample_csv: Path) -> None:
    """An unscheduled early close that exchange_calendars does not know: the bot trades by
    Alpaca's calendar (through the real SDK), and says so."""
    sample = load_bars(sample_csv)
    day = date(2024, 7, 30)
    broker_calendar = NyseCalendar(sample.calendar.start, sample.calendar.end)
    regular = broker_calendar.session_on(day)
    assert regular is not None
    broker_calendar.override(day, regular.open, regular.open + timedelta(hours=3, minutes=30))
    server = EmulatorServer(PaperAccount(sample.bars, broker_calendar), key=KEY, secret=SECRET)
    server.run_in_thread()
    try:
        broker = AlpacaBroker(KEY, SECRET, url_override=server.base_url, sleep=lambda _: None)
        local = NyseCalendar(sample.calendar.start, sample.calendar.end)
        said: list[str] = []
        assert sync_calendar(broker, local, day, said.append)
        assert not sync_calendar(broker, local, day, said.append)  # they agree now
        assert not sync_calendar(broker, local, date(2024, 7, 31), said.append)
    finally:
        server.stop_thread()
    session = local.session_on(day)
    assert session is not None
    assert session.close == datetime(2024, 7, 30, 17, 0, tzinfo=UTC)  # 13:00 New York
    assert session.previous_day == date(2024, 7, 29)
    assert local.session_at(datetime(2024, 7, 30, 17, 30, tzinfo=UTC)) is None
    assert len(said) == 1
    assert "13:00" in said[0] and "16:00" in said[0]
    # the shared, cached calendar of the data is untouched
    unchanged = sample.calendar.session_on(day)
    assert unchanged is not None and unchanged.close == datetime(2024, 7, 30, 20, tzinfo=UTC)


def test_an_unreachable_broker_at_start_is_one_line_after_bounded_retries(tmp_path: Path) -> None:
    """Nothing listens on the port (bound, never listening: refused, and no one else can take
    it meanwhile): the real process retries for --connect-timeout, says each attempt, then exits
    1 — not 2, so systemd restarts it — with one line saying what it tried."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "PUSHOVER_"))}
        started = time.monotonic()
        command = [sys.executable, "-m", "ict_trader", "run", "--no-dashboard"]
        command += ["--alpaca-url", f"http://127.0.0.1:{port}", "--connect-timeout", "2"]
        done = subprocess.run(
            [*command, "--db", str(tmp_path / "x.db")],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            check=False,
            timeout=120,
        )
        took = time.monotonic() - started
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    where = re.escape(f"cannot reach Alpaca at http://127.0.0.1:{port} (GET /v2/clock)")
    last = re.fullmatch(
        rf"error: {where}: connection refused; tried (\d+) times over ([\d.]+) s", lines[-1]
    )
    assert last is not None, lines[-1]
    attempts, seconds = int(last.group(1)), float(last.group(2))
    assert 2 <= seconds < 3 and seconds < took
    assert attempts >= 3  # backoff from 0.5 s: attempts at 0, 0.5, 1.5 and 2 s
    assert sum(line.startswith("error:") for line in lines) == 1
    retries = [line for line in lines if "retrying in" in line]
    assert len(retries) == attempts - 1
    assert all(re.match(rf"{where}: connection refused; retrying", line) for line in retries)
    with closing(Store(tmp_path / "x.db")) as store:
        assert store.last_run() is None  # no run recorded: nothing was started


def test_a_broker_failing_at_start_is_retried_until_it_answers(sample_csv: Path) -> None:
    """Two 503s on the clock, then Alpaca answers: the start goes on, having said so twice."""
    refusals = [("GET", "/v2/clock", 503)] * 2
    with running_emulator(load_bars(sample_csv), faults=Faults(fail_next=refusals)) as server:
        broker = AlpacaBroker(KEY, SECRET, url_override=server.base_url)
        said: list[str] = []
        now = _first_contact(broker, said.append, timeout=30, backoff_seconds=0.01)
        expected = broker.clock_now()
    assert timedelta(0) <= expected - now < timedelta(minutes=2)  # the emulator's replayed time
    assert len(said) == 2
    assert all(f"Alpaca at {server.base_url} answers HTTP 503 (GET /v2/clock)" in s for s in said)


def test_a_broker_that_keeps_failing_at_start_is_given_up_on_in_time(sample_csv: Path) -> None:
    refusals = [("GET", "/v2/clock", 503)] * 1000
    with running_emulator(load_bars(sample_csv), faults=Faults(fail_next=refusals)) as server:
        broker = AlpacaBroker(KEY, SECRET, url_override=server.base_url)
        started = time.monotonic()
        with pytest.raises(BrokerUnreachableError) as raised:
            _first_contact(broker, lambda _: None, timeout=0.5, backoff_seconds=0.05)
        took = time.monotonic() - started
    message = str(raised.value)
    said = re.fullmatch(
        rf"Alpaca at {re.escape(server.base_url)} answers HTTP 503 \(GET /v2/clock\); "
        r"tried (\d+) times over ([\d.]+) s",
        message,
    )
    assert said is not None, message
    assert int(said.group(1)) >= 3  # 0, 0.05, 0.15, 0.35, 0.5 s when requests are instant
    assert 0.5 <= float(said.group(2)) < 5 and took < 5


def test_a_zero_connect_timeout_tries_once() -> None:
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{bound.getsockname()[1]}"
        broker = AlpacaBroker(KEY, SECRET, url_override=url)
        with pytest.raises(BrokerUnreachableError, match=r"connection refused; tried once$"):
            _first_contact(broker, lambda _: None, timeout=0, backoff_seconds=0.5)


def _option_config(**rules: object) -> AppConfig:
    calls = StrategyProfile(
        "calls",
        Decimal("0.03"),
        instrument=InstrumentChoice.OPTION,
        option=OptionRules(**rules),  # type: ignore[arg-type]
    )
    base = AppConfig()
    return replace(base, engine=replace(base.engine, profiles=(calls,)))


def test_an_option_profile_needs_options_level_two_and_is_refused_before_a_run_starts(
    sample_csv: Path, tmp_path: Path
) -> None:
    """The emulator's account says level 1 (covered calls only): the run stops at start with
    one line naming the level and what to do, and records nothing."""
    level_one = EmulatorOptions(option_settings=OptionSettings(trading_level=1))
    with running_emulator(load_bars(sample_csv), options=level_one) as server:
        store = Store(tmp_path / "level.db")
        with pytest.raises(ConfigError) as refused:
            run_live(
                _option_config(),
                Credentials(KEY, SECRET),
                endpoints_for(server.base_url, "iex"),
                store,
                paper=True,
                say=lambda _: None,
            )
        assert store.last_run() is None
        store.close()
    message = str(refused.value)
    assert "\n" not in message
    assert "profile(s) calls trade options" in message
    assert "options trading level is 1" in message
    assert "enable options level 2" in message and "Alpaca dashboard" in message


def test_the_options_level_rule() -> None:
    profiles = _option_config().engine.profiles
    for allowed in (2, 3):
        check_options_level(allowed, profiles)  # no error
    refused: tuple[int | None, ...] = (None, 0, 1)
    for level in refused:
        with pytest.raises(
            ConfigError, match=f"trading level is {'not reported' if level is None else level}"
        ):
            check_options_level(level, profiles)


def test_an_option_flatten_later_than_the_cutoff_is_refused() -> None:
    [profile] = _option_config(flatten_at=dt_time(15, 30)).engine.profiles
    check_option_profiles([profile])  # 15:30 itself is allowed
    # A config file cannot say 15:31 (OptionRules refuses it); a profile built otherwise can.
    late = OptionRules()
    object.__setattr__(late, "flatten_at", dt_time(15, 31))
    with pytest.raises(ConfigError, match=r"flatten_at 15:31 is later than 15:30"):
        check_option_profiles([replace(profile, option=late)])
