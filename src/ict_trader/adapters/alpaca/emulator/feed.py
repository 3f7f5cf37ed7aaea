"""The emulator's market data: what the bar stream and the bars REST serve from a replayed file.

Our files hold one consolidated (SIP-like) OHLCV bar per minute and symbol; Alpaca serves more,
and less. The emulator serves one symbol or several on one clock (`emulator.assets`): a symbol with
no trade in a minute has no bar then, on either feed. What is *modelled* here (an emulator
choice, not market data), and why — each symbol on its own, its draws seeded by `seed` and its
name (QQQ's by `seed` alone, as when it was the emulator's only symbol), so two symbols' IEX gaps
differ, and a symbol's never depend on which others are served:

- **Trade count and VWAP.** Alpaca's bars carry `n` (trades) and `vw` (VWAP), and alpaca-py requires
  both; our files have neither. A minute's `n` is its volume over an assumed mean trade size of
  100 shares (at least 1) and its `vw` the typical price (h + l + c) / 3, which always lies inside
  the bar's range. Aggregated bars sum `n` and volume-weight `vw`, as real VWAPs aggregate.
- **Timeframes** (`[1-59]Min`/`T`, `[1-23]Hour`/`H`, `1Day`/`D`): a bar is stamped with the start
  of its period on the New York clock (minutes and hours are the same in UTC; days at New York
  midnight, 04:00Z in summer, as Alpaca stamps daily bars). A daily bar aggregates regular hours
  only: Alpaca's daily close is the last regular-hours price (forum.alpaca.markets threads 1047,
  14227). The period still in progress is a partial bar of the minutes completed so far.
- **IEX gaps.** An IEX bar exists only for a minute with an IEX trade ([DOCS realtime.md]: "minute
  bars are based on the trades from IEX"; alpaca_api.md §4.1: "only minutes with valid trades
  produce a bar"), so `missing_minute_rate` of the minutes have no bar on the /v2/iex stream nor in
  `feed=iex` history. SIP has every minute of the file. No source gives a rate for QQQ.
- **IEX prices and volume.** IEX prints a few percent of QQQ's trades (README: ~2-3 % of its
  volume), so an IEX bar is built from fewer trades than the consolidated (SIP) bar of the same
  minute: thinner volume, and an open, high, low and close *inside* the SIP range. Our files
  have no trades, only each minute's consolidated OHLCV, so the trades are modelled: the
  minute's `n` trades lie evenly along the path open → low → high → close (up bars; open →
  high → low → close for down bars), each printing on IEX with probability
  `iex_volume_share`; the IEX bar is the first, highest, lowest and last of those prints
  (rounded to the cent, kept inside the SIP range), its volume the same share of the SIP
  volume and `n` the count of prints. The path is an assumption (real prices wander inside the
  minute), and so is the default share (0.025); with `iex_volume_share=1` IEX bars equal the SIP
  ones (the old behaviour). Each minute's draw is seeded by its index, so it never depends on
  which feed or route asked first. A minute keeps at least one IEX print here: which minutes
  have no IEX bar at all is `missing_minute_rate`'s business.
- **Updated bars.** Trades reported late revise a minute's bar, re-sent as a `u` message about
  30 s after the minute (alpaca_api.md §4.1). With `updated_bar_rate`, a sent bar is revised by
  one late trade (1-5 % of its volume, at a price up to a cent beyond its SIP range) and the `u`
  message goes out before the next minute's bar, on every feed that had a bar for the minute;
  history then holds the revised bar.
- **Plans.** The free (Basic) plan streams IEX only: /v2/sip answers 409 "insufficient
  subscription" at authentication; its history is SIP except the latest 15 minutes (403
  "subscription does not permit querying recent SIP data" for `feed=sip`; without `feed`, such
  requests are answered from IEX). The paid plan (`plan="sip"`) has both feeds, always.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple

from ict_trader.adapters.alpaca.emulator.assets import DEFAULT_SYMBOL, Bars, by_symbol, clock
from ict_trader.core.bars import Bar
from ict_trader.core.calendar import NEW_YORK, NyseCalendar

MEAN_TRADE_SIZE = 100  # shares per trade: an assumption, used only to model `n`
# Points of a minute's modelled trade path at most (a minute of QQQ has thousands of trades;
# the gaps between IEX prints depend on the share printed, not on the resolution past this)
PATH_POINTS = 500
RECENT_SIP_DELAY = timedelta(minutes=15)  # the free plan's SIP history stops this far back
_TIMEFRAME = re.compile(r"^(\d+)(Min|T|Hour|H|Day|D)$")
_UNITS = {"Min": "Min", "T": "Min", "Hour": "Hour", "H": "Hour", "Day": "Day", "D": "Day"}
_MAX_AMOUNT = {"Min": 59, "Hour": 23, "Day": 1}

Plan = Literal["free", "sip"]
Feed = Literal["iex", "sip"]


class DataBar(NamedTuple):
    """A bar as Alpaca serves it: OHLCV plus trade count `n` and VWAP `vw`, stamped at its start."""

    time: datetime
    open: float
    high: float
    low: float
    close: float
    volume: int
    trades: int
    vwap: float

    def as_json(self) -> dict[str, float | int | str]:
        """The REST shape (`t` as RFC-3339 text; the stream sends a msgpack Timestamp)."""
        return {
            "t": self.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "o": self.open,
            "h": self.high,
            "l": self.low,
            "c": self.close,
            "v": self.volume,
            "n": self.trades,
            "vw": self.vwap,
        }


@dataclass
class DataOptions:
    """Market-data behaviour of the emulated account (realistic where the bot's path allows)."""

    plan: Plan = "free"  # a new paper account's plan: IEX real-time only
    connection_limit: int = 1  # concurrent authenticated data-stream connections per key (406)
    # IEX minutes with no trade, hence no bar (neither streamed nor in feed=iex history). On by
    # default, as on Alpaca; the rate is an assumption (no source gives one for QQQ, where IEX
    # trades nearly every minute): about four minutes a session.
    missing_minute_rate: float = 0.01
    # `u` messages revising the bar sent a minute earlier, and history returning the revision;
    # on by default (the bot subscribes to `bars` only and its live tests pass with it). The
    # rate is an assumption: no source gives one.
    updated_bar_rate: float = 0.05
    # Share of each minute's trades that print on IEX (a model: see the module docstring). The
    # default is an assumption from IEX's ~2-3 % of QQQ's volume; 1.0 = IEX bars equal SIP's.
    iex_volume_share: float = 0.025
    seed: int = 19  # with the symbol's name (`symbol_salt`): each symbol draws its own minutes


def minute_bar(bar: Bar) -> DataBar:
    """One file bar with a modelled trade count and VWAP (see the module docstring)."""
    volume = int(bar.volume)
    return DataBar(
        bar.time,
        bar.open,
        bar.high,
        bar.low,
        bar.close,
        volume,
        max(1, math.ceil(volume / MEAN_TRADE_SIZE)),
        round((bar.high + bar.low + bar.close) / 3, 4),
    )


@dataclass(frozen=True)
class Timeframe:
    """An aggregation period: `amount` minutes, hours or (only 1) days."""

    amount: int
    unit: str  # "Min", "Hour" or "Day"

    def start(self, moment: datetime) -> datetime:
        """The start (UTC) of the period holding `moment`, on the New York clock."""
        local = moment.astimezone(NEW_YORK)
        if self.unit == "Day":
            midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
            return midnight.astimezone(UTC)
        if self.unit == "Hour":
            hour = local.hour - local.hour % self.amount
            return local.replace(hour=hour, minute=0, second=0, microsecond=0).astimezone(UTC)
        minute_of_day = local.hour * 60 + local.minute
        first = minute_of_day - minute_of_day % self.amount
        return local.replace(
            hour=first // 60, minute=first % 60, second=0, microsecond=0
        ).astimezone(UTC)


def parse_timeframe(text: str) -> Timeframe:
    """`5Min`, `15T`, `1Hour`, `1Day`, … as the spec lists them; ValueError names what is wrong."""
    match = _TIMEFRAME.match(text)
    if match is None:
        raise ValueError(f"invalid timeframe {text!r}")
    amount, unit = int(match.group(1)), _UNITS[match.group(2)]
    if not 1 <= amount <= _MAX_AMOUNT[unit]:
        raise ValueError(f"invalid timeframe {text!r}")
    return Timeframe(amount, unit)


def aggregate(
    bars: Iterable[DataBar], timeframe: Timeframe, calendar: NyseCalendar
) -> list[DataBar]:
    """Minute bars (oldest first) into `timeframe` bars: first open, extreme high and low, last
    close, summed volume and trades, volume-weighted VWAP; daily bars from regular hours only."""
    if timeframe == Timeframe(1, "Min"):
        return list(bars)
    groups: dict[datetime, list[DataBar]] = {}
    for bar in bars:
        if timeframe.unit == "Day" and calendar.session_at(bar.time) is None:
            continue
        groups.setdefault(timeframe.start(bar.time), []).append(bar)
    return [_combine(start, members) for start, members in groups.items()]


def _combine(start: datetime, bars: Sequence[DataBar]) -> DataBar:
    volume = sum(b.volume for b in bars)
    if volume:
        vwap = sum(b.vwap * b.volume for b in bars) / volume
    else:
        vwap = sum(b.vwap for b in bars) / len(bars)
    return DataBar(
        start,
        bars[0].open,
        max(b.high for b in bars),
        min(b.low for b in bars),
        bars[-1].close,
        volume,
        sum(b.trades for b in bars),
        round(vwap, 4),
    )


class SymbolFeed:
    """One symbol's minutes: which ones IEX has, what IEX saw of them and how late trades revise
    them, fixed from a seed so the stream and the history always agree, whatever order clients
    ask in. Indexes here are the symbol's own bars (`minutes`)."""

    def __init__(self, symbol: str, bars: Sequence[Bar], options: DataOptions) -> None:
        self.symbol = symbol
        self.options = options
        self.minutes = [minute_bar(b) for b in bars]
        self.times = [b.time for b in bars]
        self._salt = symbol_salt(symbol)
        chance = random.Random(f"{options.seed}{self._salt}" if self._salt else options.seed)
        self.missing_on_iex: set[int] = set()
        self.late_trades: dict[int, LateTrade] = {}
        self._iex: dict[int, DataBar] = {}  # IEX bars modelled so far, by minute index
        for index, bar in enumerate(self.minutes):
            if _roll(chance, options.missing_minute_rate):
                self.missing_on_iex.add(index)
            elif _roll(chance, options.updated_bar_rate):
                self.late_trades[index] = _late_trade(bar, chance)

    def bar(self, index: int, feed: Feed) -> DataBar | None:
        """Minute `index` as `feed` has it, before any late trade (None: no IEX bar)."""
        if feed == "sip":
            return self.minutes[index]
        if index in self.missing_on_iex:
            return None
        share = self.options.iex_volume_share
        if share >= 1:
            return self.minutes[index]
        modelled = self._iex.get(index)
        if modelled is None:
            # seeded by the minute alone: the same bar whichever route or stream asks first
            chance = random.Random(f"iex:{self.options.seed}{self._salt}:{index}")
            modelled = self._iex[index] = iex_bar(self.minutes[index], share, chance)
        return modelled

    def revision(self, index: int, feed: Feed) -> DataBar | None:
        """The `u` message of `feed` for minute `index`, if a late trade revises it (only on a
        feed that had a bar for the minute)."""
        late = self.late_trades.get(index)
        bar = self.bar(index, feed)
        if late is None or bar is None:
            return None
        return late.applied_to(bar)


def symbol_salt(symbol: str) -> str:
    """What a symbol adds to the seeds of its draws: nothing for QQQ, the emulator's symbol
    before it served several, so runs recorded then keep their minutes; `:SYMBOL` for any other.
    A symbol's draws so depend only on the seed, its name and its own bars — never on which
    other symbols are served — and two symbols' gaps differ."""
    return "" if symbol == DEFAULT_SYMBOL else f":{symbol}"


def _roll(chance: random.Random, rate: float) -> bool:
    return rate > 0 and chance.random() < rate


class MarketFeed:
    """The market data of every served symbol on the replay's clock. Minute indexes here are the
    clock's (`times`: every minute in which some symbol has a bar — with one symbol, its bars);
    `symbol` defaults to the first served symbol, so one-symbol callers need not name it."""

    def __init__(
        self, bars: Bars, options: DataOptions | None = None, *, symbol: str | None = None
    ) -> None:
        self.options = options or DataOptions()
        grouped = by_symbol(bars, symbol)
        self.symbols = tuple(grouped)
        self.symbol = self.symbols[0]
        self.times, self._positions = clock(grouped)
        self.feeds = {name: SymbolFeed(name, bars, self.options) for name, bars in grouped.items()}
        # per symbol and clock minute: the index of the symbol's bar then (-1: none)
        self._own: dict[str, list[int]] = {}
        for name, positions in self._positions.items():
            own = [-1] * len(self.times)
            for own_index, index in enumerate(positions):
                own[index] = own_index
            self._own[name] = own

    def _feed(self, symbol: str | None) -> SymbolFeed:
        name = self.symbol if symbol is None else symbol.upper()
        found = self.feeds.get(name)
        if found is None:
            raise KeyError(f"{name} is not served")
        return found

    def _own_index(self, index: int, symbol: str | None) -> int:
        return self._own[self._feed(symbol).symbol][index]

    def bar(self, index: int, feed: Feed, symbol: str | None = None) -> DataBar | None:
        """Clock minute `index` of `symbol` as `feed` has it, before any late trade (None: no
        bar — no IEX trade, or no trade at all)."""
        own = self._own_index(index, symbol)
        return None if own < 0 else self._feed(symbol).bar(own, feed)

    def sent(self, index: int, feed: Feed, symbol: str | None = None) -> DataBar | None:
        """The bar of `symbol` the stream of `feed` sends when clock minute `index` completes
        (None: no bar)."""
        return self.bar(index, feed, symbol)

    def revision(self, index: int, feed: Feed, symbol: str | None = None) -> DataBar | None:
        """The `u` message of `feed` for `symbol`'s clock minute `index`, if a late trade
        revises it."""
        own = self._own_index(index, symbol)
        return None if own < 0 else self._feed(symbol).revision(own, feed)

    def has(self, at: datetime, feed: Feed, symbol: str | None = None) -> bool:
        """Whether `feed` has a bar of `symbol` for the minute starting `at` (no symbol: of any
        served symbol — with one symbol, of that one): drivers of compressed time wait for the
        bot to handle a bar only when the stream sent one."""
        if symbol is None:
            return bool(self.streamed(at, feed))
        return self._has(self._feed(symbol), at, feed)

    def streamed(self, at: datetime, feed: Feed) -> list[str]:
        """The served symbols whose bar for the minute starting `at` the stream of `feed` sends,
        in served order."""
        return [name for name, one in self.feeds.items() if self._has(one, at, feed)]

    @staticmethod
    def _has(one: SymbolFeed, at: datetime, feed: Feed) -> bool:
        index = bisect.bisect_left(one.times, at)
        found = index < len(one.times) and one.times[index] == at
        return found and not (feed == "iex" and index in one.missing_on_iex)

    def history(
        self,
        completed: int,
        feed: Feed,
        *,
        since: datetime | None = None,
        symbol: str | None = None,
    ) -> list[DataBar]:
        """`symbol`'s minute bars of `feed` among the first `completed` clock minutes (from
        `since` on), revised where the revision has been published (its `u` goes out as the
        next clock minute completes)."""
        one = self._feed(symbol)
        positions = self._positions[one.symbol]
        done = bisect.bisect_left(positions, completed)
        first = bisect.bisect_left(one.times, since) if since is not None else 0
        return [
            bar
            for bar in (self._historic(one, i, completed, feed) for i in range(first, done))
            if bar is not None
        ]

    def latest(self, completed: int, feed: Feed, symbol: str | None = None) -> DataBar | None:
        """The newest bar of `symbol` that `feed` has among the first `completed` clock
        minutes."""
        one = self._feed(symbol)
        done = bisect.bisect_left(self._positions[one.symbol], completed)
        for own in range(done - 1, -1, -1):
            bar = self._historic(one, own, completed, feed)
            if bar is not None:
                return bar
        return None

    def _historic(self, one: SymbolFeed, own: int, completed: int, feed: Feed) -> DataBar | None:
        if self._positions[one.symbol][own] + 1 < completed:
            return one.revision(own, feed) or one.bar(own, feed)
        return one.bar(own, feed)


class LateTrade(NamedTuple):
    """A trade reported after its minute: its size as a share of the minute's volume, its price."""

    size_share: float
    price: float

    def applied_to(self, bar: DataBar) -> DataBar:
        """`bar` with this trade: open and close stay (late trades do not set the last price),
        high/low may stretch to its price, volume, trade count and VWAP change."""
        size = max(1, round(bar.volume * self.size_share))
        volume = bar.volume + size
        vwap = (bar.vwap * bar.volume + self.price * size) / volume
        return bar._replace(
            high=max(bar.high, self.price),
            low=min(bar.low, self.price),
            volume=volume,
            trades=bar.trades + 1,
            vwap=round(vwap, 4),
        )


def iex_bar(bar: DataBar, share: float, chance: random.Random) -> DataBar:
    """The IEX bar of a minute whose consolidated bar is `bar`: the OHLC of the modelled trades
    that printed on IEX (see the module docstring; a model, not market data)."""
    trades = bar.trades
    mean = trades * share
    printed = min(trades, max(1, round(chance.gauss(mean, math.sqrt(mean * (1 - share))))))
    points = min(trades, PATH_POINTS)
    picked = max(1, round(printed * points / trades))
    path = _trade_path(bar, points)
    prices = [path[i] for i in sorted(chance.sample(range(points), picked))]

    def inside(price: float) -> float:
        return min(bar.high, max(bar.low, round(price, 2)))

    high, low = inside(max(prices)), inside(min(prices))
    vwap = min(high, max(low, round(sum(prices) / len(prices), 4)))
    return DataBar(
        bar.time,
        inside(prices[0]),
        high,
        low,
        inside(prices[-1]),
        max(1, round(bar.volume * printed / trades)),
        printed,
        vwap,
    )


def _trade_path(bar: DataBar, points: int) -> list[float]:
    """`points` prices evenly spaced along open → low → high → close (up bar) or open → high →
    low → close (down bar): the modelled trades of a minute, in time order."""
    first, second = (bar.low, bar.high) if bar.close >= bar.open else (bar.high, bar.low)
    corners = [bar.open, first, second, bar.close]
    legs = [abs(b - a) for a, b in itertools.pairwise(corners)]
    total = sum(legs)
    if points == 1 or total == 0:
        return [bar.close if points == 1 else bar.open] * points
    prices = []
    for i in range(points):
        distance = total * i / (points - 1)
        leg = 0
        while leg < 2 and distance > legs[leg]:
            distance -= legs[leg]
            leg += 1
        start, end = corners[leg], corners[leg + 1]
        step = distance / legs[leg] if legs[leg] else 0.0
        prices.append(start + (end - start) * min(step, 1.0))
    return prices


def _late_trade(bar: DataBar, chance: random.Random) -> LateTrade:
    """A late-reported trade for minute `bar` (SIP): 1-5 % of its volume, at a price up to a cent
    beyond its range."""
    size_share = chance.uniform(0.01, 0.05)
    price = round(chance.uniform(bar.low - 0.01, bar.high + 0.01), 2)
    return LateTrade(size_share, price)
