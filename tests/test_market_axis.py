"""The charts' market-time axis: only regular hours take room, on real NYSE sessions."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from ict_trader.calendar import NyseCalendar
from ict_trader.market_axis import MarketAxis


@pytest.fixture(scope="module")
def calendar() -> NyseCalendar:
    return NyseCalendar(date(2024, 6, 20), date(2024, 7, 20))


def axis_of(calendar: NyseCalendar, *days: date) -> MarketAxis:
    sessions = [calendar.session_on(day) for day in days]
    assert all(sessions)
    return MarketAxis([s for s in sessions if s is not None])


def test_nights_weekends_and_holidays_take_no_room(calendar: NyseCalendar) -> None:
    # Wed 3 July closes early (13:00); Thu 4 July is a holiday; Fri 5 July is a full day.
    axis = axis_of(calendar, date(2024, 7, 2), date(2024, 7, 3), date(2024, 7, 5))
    assert axis.length == 390 + 210 + 390
    assert axis.position(datetime(2024, 7, 2, 13, 30, tzinfo=UTC)) == 0  # 09:30 New York
    assert axis.position(datetime(2024, 7, 2, 14, 0, tzinfo=UTC)) == 30
    # The night, the short day's afternoon and the holiday sit where the session before ended.
    assert axis.position(datetime(2024, 7, 3, 2, 0, tzinfo=UTC)) == 390
    assert axis.position(datetime(2024, 7, 3, 19, 0, tzinfo=UTC)) == 390 + 210
    assert axis.position(datetime(2024, 7, 4, 15, 0, tzinfo=UTC)) == 390 + 210
    assert axis.position(datetime(2024, 7, 5, 13, 31, tzinfo=UTC)) == 390 + 210 + 1
    assert axis.position(datetime(2024, 7, 1, 12, 0, tzinfo=UTC)) == 0  # before the first
    assert axis.gaps() == []  # the holiday is not a gap in the data


def test_gaps_in_the_data_are_marked(calendar: NyseCalendar) -> None:
    axis = axis_of(calendar, date(2024, 6, 24), date(2024, 6, 25), date(2024, 7, 9))
    assert axis.gaps() == [2 * 390]
    assert axis.position(datetime(2024, 7, 9, 13, 30, tzinfo=UTC)) == 2 * 390


def test_a_short_run_has_hour_ticks_in_new_york_time(calendar: NyseCalendar) -> None:
    values, labels = axis_of(calendar, date(2024, 7, 2)).ticks()
    assert labels == ["09:30<br>Jul 02", "10:00", "11:00", "12:00", "13:00", "14:00", "15:00"]
    assert values == [0, 30, 90, 150, 210, 270, 330]


def test_a_long_run_has_at_most_the_asked_date_ticks(calendar: NyseCalendar) -> None:
    axis = MarketAxis([s for s in calendar.sessions() if date(2024, 6, 24) <= s.day])
    values, labels = axis.ticks(most=6)
    assert 1 < len(values) <= 6
    assert labels[0] == "Jun 24<br>2024"
    assert values == sorted(values) and values[0] == 0
    assert all("<br>" not in label for label in labels[1:])  # the year only once
