"""A deliberately naive implementation of docs/signal.md, for property tests.

It keeps every bar of the session in lists and recomputes each rule from scratch with slices:
slow (quadratic) but written to mirror the text line by line, so a disagreement with the fast
incremental detector points at one of the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from ict_trader.bars import Bar
from ict_trader.calendar import NyseCalendar
from ict_trader.signals import Direction, Signal, SignalParams


@dataclass
class _Pending:
    short: bool
    s: int
    sweep_high: float
    sweep_low: float
    mss_level: float
    displaced: bool = False


def reference_signals(
    bars: Sequence[Bar], calendar: NyseCalendar, params: SignalParams | None = None
) -> list[Signal]:
    p = params or SignalParams()
    length = p.swing_length
    out: list[Signal] = []
    trs: list[float] = []
    atr: float | None = None
    previous_day = None
    previous_high = previous_low = 0.0
    session_bars: list[Bar] = []
    session = None
    buy: list[float] = []
    sell: list[float] = []
    swing_high: float | None = None
    swing_low: float | None = None
    pending: _Pending | None = None
    for bar in bars:
        current = calendar.session_at(bar.time)
        assert current is not None
        if session is None or current.day != session.day:
            if session is not None:
                previous_day = session.day
                previous_high = max(b.high for b in session_bars)
                previous_low = min(b.low for b in session_bars)
            has_previous = previous_day is not None and previous_day == current.previous_day
            buy = [previous_high] if has_previous else []
            sell = [previous_low] if has_previous else []
            session = current
            session_bars = []
            swing_high = swing_low = None
            pending = None
        session_bars.append(bar)
        k = len(session_bars) - 1
        h = [b.high for b in session_bars]
        lo = [b.low for b in session_bars]
        c = [b.close for b in session_bars]
        o = [b.open for b in session_bars]

        # 1. ATR
        tr = (
            h[k] - lo[k]
            if k == 0
            else max(h[k] - lo[k], abs(h[k] - c[k - 1]), abs(lo[k] - c[k - 1]))
        )
        atr_prev = atr
        trs.append(tr)
        if atr is None:
            if len(trs) == p.atr_period:
                atr = sum(trs) / p.atr_period
        else:
            atr = (atr * (p.atr_period - 1) + tr) / p.atr_period

        # 2. swings
        j = k - length
        if j - length >= 0:
            if all(h[j] > h[i] for i in range(j - length, j)) and all(
                h[j] >= h[i] for i in range(j + 1, k + 1)
            ):
                swing_high = h[j]
                buy.append(h[j])
            if all(lo[j] < lo[i] for i in range(j - length, j)) and all(
                lo[j] <= lo[i] for i in range(j + 1, k + 1)
            ):
                swing_low = lo[j]
                sell.append(lo[j])

        # 3. pending
        signal: Signal | None = None
        if pending is not None and k > pending.s:
            st = pending
            expired = k - st.s > p.mss_window
            failed = c[k] > st.sweep_high if st.short else c[k] < st.sweep_low
            if expired or failed:
                pending = None
            else:
                if st.short:
                    body = o[k] - c[k]
                    gap = k >= 2 and lo[k - 2] > h[k]
                else:
                    body = c[k] - o[k]
                    gap = k >= 2 and h[k - 2] < lo[k]
                if (
                    atr_prev is not None
                    and body >= p.displacement_atr * atr_prev
                    and (gap or not p.require_fvg)
                ):
                    st.displaced = True
                if st.displaced and (
                    (st.short and c[k] < st.mss_level) or (not st.short and c[k] > st.mss_level)
                ):
                    assert atr is not None
                    extreme = max(h[st.s : k + 1]) if st.short else min(lo[st.s : k + 1])
                    signal = Signal(
                        bar.time,
                        Direction.SHORT if st.short else Direction.LONG,
                        c[k],
                        atr,
                        extreme,
                        st.mss_level,
                    )

        # 4. levels and sweeps
        taken_buy = [level for level in buy if level < h[k]]
        taken_sell = [level for level in sell if level > lo[k]]
        buy = [level for level in buy if level >= h[k]]
        sell = [level for level in sell if level <= lo[k]]
        short_ok = bool(taken_buy) and c[k] < min(taken_buy) and swing_low is not None
        long_ok = bool(taken_sell) and c[k] > max(taken_sell) and swing_high is not None

        # 5. emit
        if signal is not None:
            pending = None
            close_time = bar.time + timedelta(minutes=1)
            start = session.open + timedelta(minutes=p.open_delay_minutes)
            end = session.close - timedelta(minutes=p.close_buffer_minutes)
            if start <= close_time <= end:
                out.append(signal)
        elif short_ok and not long_ok:
            assert swing_low is not None
            pending = _Pending(True, k, h[k], lo[k], swing_low)
        elif long_ok and not short_ok:
            assert swing_high is not None
            pending = _Pending(False, k, h[k], lo[k], swing_high)
    return out
