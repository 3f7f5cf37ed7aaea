"""`ict-trader run` against Alpaca (or the emulator): credentials, safety, start-up, the session.

Start-up order matters for money safety:
1. credentials from the environment or `.env`; the live-money endpoint only with `--live` *and*
   ICT_TRADER_ALLOW_LIVE=yes;
   then the first contact — the broker's clock — retried with backoff for a bounded time
   (`--connect-timeout`): a broker still unreachable ends the run in one line, before the
   store records a run; with an option profile enabled, the account's options level (2 buys
   calls and puts) and the profiles' flatten times are checked next, also before any record;
2. the store's ledger rebuilds the engine's unfinished trades (time exits keep counting from the
   recorded fills) and the broker adopts their orders by client order id;
3. reconciliation: Alpaca nets both profiles into one position, so the ledger's per-profile
   trades must add up to the broker's net position; if they do not, new entries are refused
   (reduce-only) and the difference is reported — never "fixed" by guessing;
4. wait for the open (broker clock), warm the detector on the previous session and today so far,
   then stream.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import requests
from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.historical.option import OptionHistoricalDataClient
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.models import Clock, TradeAccount
from dotenv import dotenv_values

from ict_trader.adapters.alpaca.broker import REQUEST_TIMEOUT_SECONDS, AlpacaBroker, TimeoutSession
from ict_trader.adapters.alpaca.options import AlpacaContractDesk
from ict_trader.config import AppConfig
from ict_trader.core.calendar import NEW_YORK, NyseCalendar
from ict_trader.core.engine import Engine
from ict_trader.core.instruments import instrument_of
from ict_trader.core.strategy import OPTION_CUTOFF, StrategyProfile
from ict_trader.errors import BrokerUnreachableError, ConfigError
from ict_trader.logs import register_secret
from ict_trader.notify.notifier import Notifier
from ict_trader.persistence.store import Store, StoreError
from ict_trader.runtime.daily import send_daily_summary
from ict_trader.runtime.kernel import Observer
from ict_trader.runtime.live import LiveEndpoints, LiveShell
from ict_trader.signals import IctDetector

log = logging.getLogger(__name__)
LIVE_OPT_IN = "ICT_TRADER_ALLOW_LIVE"
CONNECT_TIMEOUT_SECONDS = 60.0  # how long the first contact with the broker is retried
MAX_CONNECT_TIMEOUT_SECONDS = 3600.0
OPTIONS_LEVEL_NEEDED = 2  # Alpaca's level 2: buy a call, buy a put


@dataclass(frozen=True)
class Credentials:
    key: str
    secret: str

    def __repr__(self) -> str:  # never print a secret, not even by accident
        return f"Credentials(key={self.key[:4]}…, secret=***)"


def settings_environment(env_file: Path = Path(".env")) -> dict[str, str]:
    """The environment over `.env`: where credentials (Alpaca, Pushover) are looked up."""
    from_file = dotenv_values(env_file) if env_file.exists() else {}
    return {**{k: v for k, v in from_file.items() if v is not None}, **os.environ}


def find_credentials(env_file: Path = Path(".env")) -> Credentials | None:
    """ALPACA_API_KEY / ALPACA_API_SECRET from the environment, else from `.env`."""
    values = settings_environment(env_file)
    key, secret = values.get("ALPACA_API_KEY"), values.get("ALPACA_API_SECRET")
    if key and secret:
        register_secret(key)
        register_secret(secret)
        return Credentials(key, secret)
    return None


def endpoints_for(alpaca_url: str | None, feed: str) -> LiveEndpoints:
    """Alpaca's own endpoints, or all of them on one emulator at `alpaca_url`."""
    data_feed = DataFeed.SIP if feed == "sip" else DataFeed.IEX
    if alpaca_url is None:
        return LiveEndpoints(feed=data_feed)
    parsed = urlparse(alpaca_url)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        raise ConfigError(f"--alpaca-url {alpaca_url!r}: expected http://host:port")
    ws = "wss" if parsed.scheme == "https" else "ws"
    return LiveEndpoints(
        rest_url=alpaca_url.rstrip("/"),
        data_stream_url=f"{ws}://{parsed.netloc}/v2/{data_feed.value}",
        trade_stream_url=f"{ws}://{parsed.netloc}/stream",
        feed=data_feed,
    )


def check_live_money(live: bool) -> bool:
    """True for paper. Live money needs both the flag and the environment opt-in."""
    if not live:
        return True
    if os.environ.get(LIVE_OPT_IN) != "yes":
        raise ConfigError(
            f"--live trades real money; it also needs {LIVE_OPT_IN}=yes in the environment. "
            "Refusing."
        )
    return False


# The daily summary's audit line (`audit.daily.daily_audit_line`; the CLI passes it).
DailyAudit = Callable[[Store, TradingClient, date], str | None]


def run_live(
    config: AppConfig,
    credentials: Credentials,
    endpoints: LiveEndpoints,
    store: Store,
    *,
    paper: bool,
    observer: Observer | None = None,
    say: Callable[[str], None] = print,
    sessions: int = 0,
    notifier: Notifier | None = None,
    poll_seconds: float = 60.0,
    backoff_seconds: float = 0.5,
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    daily_audit: DailyAudit | None = None,
) -> LiveShell:
    """Trade session after session (`sessions` of them, 0 = until stopped), sleeping between
    them; return once done or stopped.

    Only what a person must fix ends the run early (credentials refused, a store problem, a
    broker that never answered at start — see `_first_contact`): a broker that is briefly
    unreachable once trading has begun is waited out, holidays and early closes come from the
    broker's clock and calendar, and the calendar is extended as the weeks go by.
    """
    broker = AlpacaBroker(
        credentials.key,
        credentials.secret,
        paper=paper,
        url_override=endpoints.rest_url,
        backoff_seconds=backoff_seconds,
    )
    now = _first_contact(broker, say, connect_timeout, backoff_seconds)
    option_profiles = [p for p in config.engine.profiles if p.enabled and p.trades_options]
    if option_profiles:
        check_option_profiles(option_profiles)
        account = broker.read(broker.trading.get_account)
        assert isinstance(account, TradeAccount)
        check_options_level(account.options_trading_level, option_profiles)
    calendar = NyseCalendar.covering(now - timedelta(days=10), now + timedelta(days=10))
    engine = Engine(
        config.engine,
        {symbol: IctDetector(calendar, config.signal) for symbol in config.engine.symbols},
    )
    risk = config.engine.risk
    _record_run(store, config, endpoints, paper)
    ledger = store.load_ledger()
    engine.restore(ledger)
    unplaced = broker.adopt_orders([record.request for record in ledger.open_orders()])
    data = StockHistoricalDataClient(
        credentials.key, credentials.secret, url_override=endpoints.rest_url
    )
    data._retry = 0  # reads are retried by the broker's bounded backoff instead
    _check_feed(broker, data, endpoints, config.engine.symbols, now)
    desk = None
    if option_profiles:
        options = OptionHistoricalDataClient(
            credentials.key, credentials.secret, url_override=endpoints.rest_url
        )
        options._retry = 0  # retried by the broker's bounded backoff, like the bars
        options._session = TimeoutSession()
        desk = AlpacaContractDesk(broker.trading, options, read=broker.read)
    shell = LiveShell(
        engine,
        broker,
        store,
        data,
        calendar,
        api_key=credentials.key,
        secret_key=credentials.secret,
        endpoints=endpoints,
        observer=observer,
        notifier=notifier,
        stale_data_after=timedelta(minutes=stale) if (stale := risk.stale_data_minutes) else None,
        desk=desk,
    )
    shell.restore_state(now)
    expected, actual = shell.reconcile(now, unplaced)
    if expected == actual:
        contracts = [
            f"{qty} {symbol}"
            for symbol, qty in sorted(engine.open_positions().items())
            if qty and instrument_of(symbol).is_option
        ]
        held = f" (option contracts: {', '.join(contracts)})" if contracts else ""
        say(
            f"reconciled: ledger and broker agree on {actual} "
            f"{', '.join(config.engine.symbols)}{held}"
        )
    else:
        say(
            f"WARNING: broker position {actual} differs from the ledger's {expected}; "
            "new entries are blocked and no order is sent for the disputed shares until the two "
            "agree (see `ict-trader reconcile --help`)"
        )
    # Connected before the open (as Alpaca's streams allow): the first bar is not late for a
    # handshake, and the night's extended-hours bars are seen and dropped.
    shell.start_streams()
    traded = 0
    while sessions == 0 or traded < sessions:
        session_close = _wait_for_open(broker, shell, say, poll_seconds)
        if session_close is None:
            break  # stopped while the market was closed
        day = session_close.astimezone(NEW_YORK).date()
        calendar.extend_to(day + timedelta(days=10))
        try:
            sync_calendar(broker, calendar, day, say)
        except (APIError, requests.RequestException) as exc:
            say(f"WARNING: Alpaca's calendar is unreachable ({exc}); trading by exchange_calendars")
        shell.warm_up(_broker_time(broker, say, poll_seconds))
        say(
            f"trading {', '.join(config.engine.symbols)} until "
            f"{session_close.astimezone(NEW_YORK):%H:%M} "
            f"New York ({'paper' if paper else 'LIVE MONEY'}, feed {endpoints.feed.value})"
        )
        shell.run(until=_session_done(shell, broker, session_close))
        if shell.stopped:
            break
        # the day's orders and fills against Alpaca's, for the summary (it must never raise)
        audited = daily_audit(store, broker.trading, day) if daily_audit is not None else None
        send_daily_summary(store, notifier, day, session_close, audited)
        store.commit()
        traded += 1
    shell.stop()
    return shell


def check_options_level(level: int | None, profiles: Sequence[StrategyProfile]) -> None:
    """Buying calls and puts needs Alpaca's options level 2 (`options_trading_level`, the lower
    of the level approved and the account's own cap); below it every option entry would be
    refused one by one, mid-session. So the run does not start, and says what to do."""
    if level is not None and level >= OPTIONS_LEVEL_NEEDED:
        return
    names = ", ".join(p.name for p in profiles)
    shown = "not reported by Alpaca" if level is None else str(level)
    raise ConfigError(
        f"profile(s) {names} trade options, but this Alpaca account's options trading level "
        f"is {shown} and buying calls and puts needs level {OPTIONS_LEVEL_NEEDED}: enable "
        f"options level {OPTIONS_LEVEL_NEEDED} (or 3) in the Alpaca dashboard (and raise the "
        "account's maximum options level if it is capped lower), or disable the option profiles"
    )


def check_option_profiles(profiles: Sequence[StrategyProfile]) -> None:
    """No option profile may flatten later than Alpaca's expiry-day cut-off: from 15:30 New
    York it refuses every new order on an expiring contract, closing ones included, and
    liquidates from 15:45 — a later flatten would find its exits refused."""
    for profile in profiles:
        if profile.option.flatten_at > OPTION_CUTOFF:
            raise ConfigError(
                f"profiles.{profile.name}.option.flatten_at {profile.option.flatten_at:%H:%M} "
                f"is later than {OPTION_CUTOFF:%H:%M} New York, when Alpaca stops taking orders "
                "on expiring options; set it to 15:30 or earlier (default 15:20)"
            )


def _session_done(
    shell: LiveShell, broker: AlpacaBroker, session_close: datetime
) -> Callable[[], bool]:
    """The session is over once its last bar is in — or, when that minute never comes (IEX has
    minutes without a trade), once the broker's clock has passed the close."""
    last_needed = session_close - timedelta(minutes=1)
    asked = [time.monotonic()]

    def done() -> bool:
        if shell.caught_up(last_needed):
            return True
        if time.monotonic() - asked[0] < 5.0:
            return False
        asked[0] = time.monotonic()
        try:
            return broker.clock_now() >= session_close + timedelta(minutes=1)
        except (APIError, requests.RequestException):
            return False  # cannot tell: keep trading, the next check asks again

    return done


def _first_contact(
    broker: AlpacaBroker,
    say: Callable[[str], None],
    timeout: float,
    backoff_seconds: float,
) -> datetime:
    """The broker's time at start, asked again with exponential backoff until it answers or
    `timeout` seconds have passed; then `BrokerUnreachableError`, in one line.

    An outage in the middle of a run is waited out (the streams reconnect, the run's state is in
    memory). At start, a wrong --alpaca-url, a firewall or a network that is down look exactly
    like an outage, and whoever started the command should hear which it is rather than watch
    it wait forever: after a bounded wait the run says what it tried and exits 1. A supervisor
    (systemd, a container's restart policy) starts it again, so an unattended bot still comes
    back with Alpaca; open trades' targets rest at Alpaca meanwhile. Each attempt is one
    request (the SDK's own retries are off), so the count it reports is honest.
    """
    where = broker.base_url
    started = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        try:
            clock = broker.trading.get_clock()
            assert isinstance(clock, Clock)
            return clock.timestamp.astimezone(UTC)
        except APIError as exc:
            _refuse_if_unauthorised(exc)
            problem = f"Alpaca at {where} answers HTTP {exc.status_code} (GET /v2/clock)"
        except requests.RequestException as exc:
            problem = f"cannot reach Alpaca at {where} (GET /v2/clock): {_connection_problem(exc)}"
        elapsed = time.monotonic() - started
        # the last wait is cut short so that the last attempt comes at the timeout itself
        delay = min(backoff_seconds * 2 ** (attempts - 1), 8.0, timeout - elapsed)
        fields = {"event": "broker_unreachable", "attempt": attempts, "url": where}
        if delay <= 0:
            times = "once" if attempts == 1 else f"{attempts} times over {elapsed:.1f} s"
            log.error("%s; tried %s", problem, times, extra={"fields": fields})
            raise BrokerUnreachableError(f"{problem}; tried {times}")
        log.warning("%s; retrying in %.1f s", problem, delay, extra={"fields": fields})
        say(f"{problem}; retrying in {delay:.1f} s (giving up after {timeout:g} s)")
        time.sleep(delay)


def _connection_problem(exc: requests.RequestException) -> str:
    """What went wrong, in words: the operating system's reason from the innermost error
    (`connection refused`, `name or service not known`, …), else the exception's name."""
    if isinstance(exc, requests.Timeout):
        return f"no answer within {REQUEST_TIMEOUT_SECONDS:g} s"
    reason = ""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            reason = seen.strerror
        seen = seen.__cause__ or seen.__context__
    return reason[:1].lower() + reason[1:] if reason else type(exc).__name__


def _broker_time(broker: AlpacaBroker, say: Callable[[str], None], poll_seconds: float) -> datetime:
    """The broker's clock, waiting out an outage (retried reads first, then every poll)."""
    while True:
        try:
            return broker.clock_now()
        except APIError as exc:
            _refuse_if_unauthorised(exc)
            say(f"Alpaca's clock is unreachable ({exc.status_code}); retrying")
        except requests.RequestException as exc:
            say(f"Alpaca's clock is unreachable ({type(exc).__name__}); retrying")
        time.sleep(max(poll_seconds, 0.05))


def _check_feed(
    broker: AlpacaBroker,
    data: StockHistoricalDataClient,
    endpoints: LiveEndpoints,
    symbols: Sequence[str],
    now: datetime,
) -> None:
    """`--feed sip` needs a market-data subscription: on the free plan Alpaca refuses the SIP
    stream (409, after which alpaca-py stops for good) and recent SIP bars (403). Asked once at
    start, so the run stops with a clear line instead of trading blind."""
    if endpoints.feed is not DataFeed.SIP:
        return
    request = StockBarsRequest(
        symbol_or_symbols=list(symbols),
        timeframe=TimeFrame.Minute,
        start=now - timedelta(minutes=10),
        end=now,
        feed=DataFeed.SIP,
    )
    try:
        broker.read(lambda: data.get_stock_bars(request))
    except APIError as exc:
        if exc.status_code == 403:
            raise ConfigError(
                "--feed sip: Alpaca refuses recent SIP data to this account (HTTP 403: no "
                "market-data subscription); use --feed iex, the free plan's feed"
            ) from None
        raise


def _refuse_if_unauthorised(exc: APIError) -> None:
    """401/403 from the clock: the keys are wrong or revoked — a person must fix that."""
    if exc.status_code in {401, 403}:
        raise ConfigError(
            f"Alpaca refused the credentials (HTTP {exc.status_code} on /v2/clock); "
            "check ALPACA_API_KEY/ALPACA_API_SECRET and paper vs --live"
        ) from None


def _record_run(store: Store, config: AppConfig, endpoints: LiveEndpoints, paper: bool) -> None:
    last = store.last_run()
    mode = "paper" if paper else "live"
    if last is not None and last["mode"] not in {"paper", "live"}:
        raise StoreError(f"{store.path} holds a {last['mode']} run; use another --db for trading")
    described = config.describe()
    described["feed"] = endpoints.feed.value  # IEX bars differ from the consolidated tape
    store.data_feed = endpoints.feed.value
    store.start_run(mode, endpoints.rest_url or "alpaca", described)
    store.commit()


def sync_calendar(
    broker: AlpacaBroker, calendar: NyseCalendar, day: date, say: Callable[[str], None]
) -> bool:
    """Make the engine's session of `day` the broker's: its flatten-before-close, time limits and
    "previous session" must follow the hours the market really keeps. True if they differed."""
    hours = broker.session_hours(day)
    local = calendar.session_on(day)
    if hours is None or (local is not None and (local.open, local.close) == hours):
        return False
    open_, close = hours
    known = (
        f"{local.open.astimezone(NEW_YORK):%H:%M}-{local.close.astimezone(NEW_YORK):%H:%M}"
        if local
        else "closed"
    )
    say(
        f"WARNING: Alpaca's calendar has {day} as {open_.astimezone(NEW_YORK):%H:%M}-"
        f"{close.astimezone(NEW_YORK):%H:%M} New York, exchange_calendars as {known}; "
        "trading by Alpaca's hours (update exchange_calendars)"
    )
    calendar.override(day, open_, close)
    return True


def _wait_for_open(
    broker: AlpacaBroker, shell: LiveShell, say: Callable[[str], None], poll_seconds: float
) -> datetime | None:
    """Block until the market is open; return its close (UTC), or None if stopped meanwhile.

    Holidays, weekends and early closes come from the broker's clock. While waiting, the shell
    still obeys kill/resume requests, keeps its heartbeat and drops the extended-hours bars the
    stream sends."""
    announced: datetime | None = None
    while not shell.stopped:
        try:
            clock = broker.clock()
        except APIError as exc:
            _refuse_if_unauthorised(exc)
            say(f"Alpaca's clock is unreachable ({exc.status_code}); retrying")
            shell.idle(max(poll_seconds, 0.05))
            continue
        except requests.RequestException as exc:
            say(f"Alpaca's clock is unreachable ({type(exc).__name__}); retrying")
            shell.idle(max(poll_seconds, 0.05))
            continue
        if clock.is_open:
            return clock.next_close.astimezone(UTC)
        if announced != clock.next_open:
            announced = clock.next_open
            say(
                f"market closed; next open {clock.next_open.astimezone(NEW_YORK):%Y-%m-%d %H:%M}"
                " New York"
            )
        wait = (clock.next_open - clock.timestamp).total_seconds()
        shell.idle(min(max(wait, 0.05), poll_seconds))
    return None
