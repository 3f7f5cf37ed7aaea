"""The ICT state machine of docs/signal.md, one bar at a time.

`IctDetector.update(bar)` applies the four state updates of the definition in their stated order
(ATR, swing points, pending setup, liquidity levels and sweeps) and returns the signal the bar
produced, if any. It never looks past the bar it is given, does O(1) amortized work per bar and
keeps O(swing_length) bars of history, so backtests, replays and the live loop can all run this
same code. It does no I/O: sessions come from a calendar object the caller supplies.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Protocol

from ict_trader.core.bars import Bar
from ict_trader.core.calendar import Session
from ict_trader.core.signal import Direction, Signal
from ict_trader.signals.params import SignalParams

_MINUTE = timedelta(minutes=1)


class SessionLookup(Protocol):
    """Where the detector learns session boundaries; `NyseCalendar` is the real one."""

    def session_at(self, moment: datetime) -> Session | None: ...


class BarOutsideSessionError(ValueError):
    """The detector was given a bar that lies outside NYSE regular hours."""


class BarOrderError(ValueError):
    """The detector was given a bar that is not strictly later than the previous one."""


class _Setup:
    """The pending setup (step 3): mutable because `extreme` and `displaced` evolve bar by bar."""

    __slots__ = ("displaced", "extreme", "is_short", "mss_level", "sweep_extreme", "sweep_index")

    def __init__(self, is_short: bool, sweep_index: int, sweep_extreme: float, mss_level: float):
        self.is_short = is_short
        self.sweep_index = sweep_index
        self.sweep_extreme = sweep_extreme
        self.extreme = sweep_extreme
        self.mss_level = mss_level
        self.displaced = False


class IctDetector:
    """Incremental ICT signal detector; feed it every regular-hours bar in time order."""

    def __init__(self, sessions: SessionLookup, params: SignalParams | None = None) -> None:
        self.params = params or SignalParams()
        self._sessions = sessions
        p = self.params
        self._atr_period = p.atr_period
        self._swing_length = p.swing_length
        self._history = max(2 * p.swing_length + 1, 3)
        self._displacement = p.displacement_atr
        self._require_fvg = p.require_fvg
        self._mss_window = p.mss_window
        self._open_delay = timedelta(minutes=p.open_delay_minutes)
        self._close_buffer = timedelta(minutes=p.close_buffer_minutes)

        # ATR (carries over sessions)
        self._atr: float | None = None
        self._seed_sum = 0.0
        self._seed_count = 0
        # current session
        self._session: Session | None = None
        self._session_end: datetime | None = None
        self._emit_from: datetime | None = None
        self._emit_to: datetime | None = None
        self._last_time: datetime | None = None
        self._index = -1
        self._prev_close = 0.0
        self._session_high = 0.0
        self._session_low = 0.0
        self._highs: list[float] = []
        self._lows: list[float] = []
        self._last_swing_high: float | None = None
        self._last_swing_low: float | None = None
        # Untaken liquidity. Invariant: a new buy-side level is never above an untaken older one
        # (every bar since the older level was set stayed at or below it), so each list is a
        # monotone stack whose last element is the first to be taken.
        self._buy_side: list[float] = []
        self._sell_side: list[float] = []
        self._setup: _Setup | None = None

    @property
    def atr(self) -> float | None:
        """The current ATR, or None until `atr_period` true ranges have been seen."""
        return self._atr

    @property
    def session(self) -> Session | None:
        """The session of the last bar seen."""
        return self._session

    def update(self, bar: Bar) -> Signal | None:
        """Advance the state by one closed bar; return the signal it produced, if emitted."""
        time = bar.time
        if self._session_end is None or time >= self._session_end:
            self._start_session(bar)
        elif self._last_time is not None and time <= self._last_time:
            raise BarOrderError(
                f"bar {time.isoformat()} is not after {self._last_time.isoformat()}"
            )
        self._last_time = time
        k = self._index = self._index + 1
        _, open_, high, low, close, _, _ = bar

        # 1. ATR. max(high, prev) - min(low, prev) is the textbook three-way max, computed with
        # the same subtractions (so bit-identical), without three builtin calls per bar.
        if k == 0:
            true_range = high - low
        else:
            prev_close = self._prev_close
            true_range = (high if high > prev_close else prev_close) - (
                low if low < prev_close else prev_close
            )
        atr_prev = self._atr
        if atr_prev is None:
            self._seed_sum += true_range
            self._seed_count += 1
            if self._seed_count == self._atr_period:
                self._atr = self._seed_sum / self._atr_period
        else:
            n = self._atr_period
            self._atr = (atr_prev * (n - 1) + true_range) / n
        self._prev_close = close
        if high > self._session_high:
            self._session_high = high
        if low < self._session_low:
            self._session_low = low

        # 2. Swing points
        highs = self._highs
        lows = self._lows
        highs.append(high)
        lows.append(low)
        if len(highs) > self._history:
            del highs[0]
            del lows[0]
        length = self._swing_length
        if k >= 2 * length:
            centre = -length - 1
            # The neighbour comparisons first: they reject most bars without building slices.
            candidate = highs[centre]
            if (
                candidate > highs[centre - 1]
                and candidate >= high
                and candidate > max(highs[-2 * length - 1 : centre])
                and candidate >= max(highs[-length:])
            ):
                self._last_swing_high = candidate
                self._buy_side.append(candidate)
            candidate = lows[centre]
            if (
                candidate < lows[centre - 1]
                and candidate <= low
                and candidate < min(lows[-2 * length - 1 : centre])
                and candidate <= min(lows[-length:])
            ):
                self._last_swing_low = candidate
                self._sell_side.append(candidate)

        # 3. Pending setup
        signal_direction: Direction | None = None
        setup = self._setup
        if setup is not None and k > setup.sweep_index:
            if k - setup.sweep_index > self._mss_window:
                self._setup = setup = None
            elif setup.is_short:
                if close > setup.sweep_extreme:
                    self._setup = setup = None
                else:
                    if high > setup.extreme:
                        setup.extreme = high
                    if (
                        atr_prev is not None
                        and open_ - close >= self._displacement * atr_prev
                        and (not self._require_fvg or (k >= 2 and lows[-3] > high))
                    ):
                        setup.displaced = True
                    if setup.displaced and close < setup.mss_level:
                        signal_direction = Direction.SHORT
            elif close < setup.sweep_extreme:
                self._setup = setup = None
            else:
                if low < setup.extreme:
                    setup.extreme = low
                if (
                    atr_prev is not None
                    and close - open_ >= self._displacement * atr_prev
                    and (not self._require_fvg or (k >= 2 and highs[-3] < low))
                ):
                    setup.displaced = True
                if setup.displaced and close > setup.mss_level:
                    signal_direction = Direction.LONG

        # 4. Liquidity levels and sweeps
        short_sweep = False
        long_sweep = False
        buy_side = self._buy_side
        if buy_side and buy_side[-1] < high:
            lowest_taken = buy_side[-1]
            while buy_side and buy_side[-1] < high:
                buy_side.pop()
            short_sweep = close < lowest_taken and self._last_swing_low is not None
        sell_side = self._sell_side
        if sell_side and sell_side[-1] > low:
            highest_taken = sell_side[-1]
            while sell_side and sell_side[-1] > low:
                sell_side.pop()
            long_sweep = close > highest_taken and self._last_swing_high is not None

        # 5. Emit
        if signal_direction is not None:
            assert setup is not None
            self._setup = None
            close_time = time + _MINUTE
            assert self._emit_from is not None and self._emit_to is not None
            if self._emit_from <= close_time <= self._emit_to:
                atr = self._atr
                assert atr is not None  # displacement needed a seeded ATR
                return Signal(
                    time, signal_direction, close, atr, setup.extreme, setup.mss_level, bar.symbol
                )
            return None
        if short_sweep != long_sweep:
            if short_sweep:
                assert self._last_swing_low is not None
                self._setup = _Setup(True, k, high, self._last_swing_low)
            else:
                assert self._last_swing_high is not None
                self._setup = _Setup(False, k, low, self._last_swing_high)
        return None

    def _start_session(self, bar: Bar) -> None:
        time = bar.time
        if self._last_time is not None and time <= self._last_time:
            raise BarOrderError(
                f"bar {time.isoformat()} is not after {self._last_time.isoformat()}"
            )
        session = self._sessions.session_at(time)
        if session is None:
            raise BarOutsideSessionError(
                f"bar {time.isoformat()} is outside NYSE regular trading hours"
            )
        previous = self._session
        had_previous_day = previous is not None and previous.day == session.previous_day
        self._buy_side = [self._session_high] if had_previous_day else []
        self._sell_side = [self._session_low] if had_previous_day else []
        self._session = session
        self._session_end = session.close
        self._emit_from = session.open + self._open_delay
        self._emit_to = session.close - self._close_buffer
        self._index = -1
        self._session_high = bar.high
        self._session_low = bar.low
        self._highs = []
        self._lows = []
        self._last_swing_high = None
        self._last_swing_low = None
        self._setup = None


def detect_signals(
    bars: Iterable[Bar], sessions: SessionLookup, params: SignalParams | None = None
) -> list[Signal]:
    """Run a fresh detector over `bars` and return every emitted signal."""
    detector = IctDetector(sessions, params)
    update = detector.update
    return [signal for bar in bars if (signal := update(bar)) is not None]


class SignalReplay(IctDetector):
    """A detector that replays signals found earlier instead of detecting them again.

    For parameter sweeps: the signals of one set of parameters are detected once and replayed
    to every exit and profile variant. It keeps the session as `IctDetector` does (the engine
    reads it); `atr` stays None, which the engine does not read (a signal carries its ATR).
    """

    def __init__(self, sessions: SessionLookup, signals: Iterable[Signal]) -> None:
        super().__init__(sessions)
        self._by_time = {signal.time: signal for signal in signals}

    def update(self, bar: Bar) -> Signal | None:
        time = bar.time
        if self._session_end is None or time >= self._session_end:
            session = self._sessions.session_at(time)
            if session is None:
                raise BarOutsideSessionError(
                    f"bar {time.isoformat()} is outside NYSE regular trading hours"
                )
            self._session = session
            self._session_end = session.close
        return self._by_time.get(time)
