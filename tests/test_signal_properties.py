"""Property tests of the ICT detector: equal to a naive reference, no look-ahead, incremental."""

from __future__ import annotations

from pathlib import Path

from hypothesis import event, given, settings
from hypothesis import strategies as st

from ict_trader.barfile import load_bars
from ict_trader.bars import Bar
from ict_trader.signals import IctDetector, SignalParams, detect_signals
from tests.bar_strategies import bar_sequences, calendar, small_params
from tests.ict_reference import reference_signals

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None)


@PROPERTY_SETTINGS
@given(bars=bar_sequences(), params=small_params())
def test_detector_equals_the_naive_reference(bars: list[Bar], params: SignalParams) -> None:
    fast = detect_signals(bars, calendar(), params)
    event(f"signals: {min(len(fast), 3)}{'+' if len(fast) >= 3 else ''}")
    assert fast == reference_signals(bars, calendar(), params)


@PROPERTY_SETTINGS
@given(bars=bar_sequences(), params=small_params(), data=st.data())
def test_no_look_ahead(bars: list[Bar], params: SignalParams, data: st.DataObject) -> None:
    """Signals of the data up to any cut equal the full run's signals before the cut."""
    cut = data.draw(st.integers(0, len(bars)))
    full = detect_signals(bars, calendar(), params)
    if cut == len(bars):
        assert detect_signals(bars, calendar(), params) == full
        return
    cut_time = bars[cut].time
    assert detect_signals(bars[:cut], calendar(), params) == [s for s in full if s.time < cut_time]


@settings(max_examples=100, deadline=None)
@given(bars=bar_sequences(), params=small_params())
def test_one_update_per_bar_matches_batch_and_is_deterministic(
    bars: list[Bar], params: SignalParams
) -> None:
    detector = IctDetector(calendar(), params)
    one_by_one = [s for bar in bars if (s := detector.update(bar)) is not None]
    assert one_by_one == detect_signals(bars, calendar(), params)
    assert one_by_one == detect_signals(bars, calendar(), params)


def test_reference_reproduces_the_sample_vectors(sample_csv: Path) -> None:
    """The naive reference itself meets docs/signal.md's vectors, so agreement means something."""
    bar_file = load_bars(sample_csv)
    found = reference_signals(bar_file.bars, bar_file.calendar)
    assert [(s.time.strftime("%Y-%m-%dT%H:%MZ"), s.direction.value) for s in found] == [
        ("2024-07-30T15:01Z", "short"),
        ("2024-08-06T18:58Z", "short"),
        ("2024-08-08T18:27Z", "short"),
    ]
    assert found == detect_signals(bar_file.bars, bar_file.calendar)


def test_dev_year_vectors(dev_year: Path) -> None:
    bar_file = load_bars(dev_year)
    found = detect_signals(bar_file.bars, bar_file.calendar)
    assert len(found) == 79
    assert sum(s.direction == "short" for s in found) == 53
    no_fvg = detect_signals(bar_file.bars, bar_file.calendar, SignalParams(require_fvg=False))
    assert len(no_fvg) == 199
