"""The bars of several symbols, whichever way they come: one file with a `symbol` column, one
file per symbol, a downloaded folder, or a mix. Real IWM and DIA bars (DIA with its real missing
minutes) give the same merged bars every way; the ways that cannot say which symbol is which
are refused in one line."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from ict_trader.core.calendar import NEW_YORK
from ict_trader.marketdata.barfile import BarDataError, BarFile, load_bars
from ict_trader.marketdata.barset import BarSet
from ict_trader.marketdata.folder import load_folder, load_folder_set
from ict_trader.marketdata.sources import MissingSymbolsError, Source, load_bar_set
from tests.conftest import REPO
from tests.test_marketdata_folder import write_months

DATA = REPO / "tests" / "data"
BOTH = DATA / "iwm_dia_1min_slice.csv.gz"
IWM = DATA / "iwm_1min_slice.csv.gz"
DIA = DATA / "dia_1min_slice.csv.gz"


@pytest.fixture(scope="module")
def reference() -> BarSet:
    """The two files, each named by the caller."""
    return BarSet.of([load_bars(IWM, symbol="IWM"), load_bars(DIA, symbol="DIA")])


@pytest.fixture
def folder(tmp_path: Path, reference: BarSet) -> Path:
    """The same bars as `ict-trader data download` lays them out."""
    root = tmp_path / "download"
    for symbol in ("IWM", "DIA"):
        write_months(root, symbol, reference.bars_of(symbol))
    return root


def error_of(*args: object, **kwargs: object) -> str:
    with pytest.raises(BarDataError) as caught:
        load_bar_set(*args, **kwargs)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_the_slices_are_real_iwm_and_dia_with_dias_missing_minutes(reference: BarSet) -> None:
    iwm, dia = reference.bars_of("IWM"), reference.bars_of("DIA")
    per_day = {
        symbol: Counter(bar.time.astimezone(NEW_YORK).date().isoformat() for bar in bars)
        for symbol, bars in (("IWM", iwm), ("DIA", dia))
    }
    assert set(per_day["IWM"].values()) == {390} and len(per_day["IWM"]) == 9
    assert {day: n for day, n in per_day["DIA"].items() if n != 390} == {
        "2025-08-25": 388,
        "2025-08-26": 388,
        "2025-08-27": 389,
        "2025-08-28": 389,
    }
    assert (iwm[0].close, dia[0].close) == (227.54, 449.23)


def test_every_way_gives_the_same_merged_bars(reference: BarSet, folder: Path) -> None:
    merged = reference.merged()
    assert len(merged) == 3510 + 3504 == reference.bar_count
    # (time, symbol) order, each bar stamped; DIA's missing minutes leave IWM's bar alone
    keys = [(bar.time, bar.symbol) for bar in merged]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert Counter(bar.symbol for bar in merged) == {"IWM": 3510, "DIA": 3504}
    ways = {
        "one file with a symbol column": load_bar_set([BOTH]),
        "one file per symbol, named": load_bar_set([f"IWM={IWM}", f"DIA={DIA}"]),
        "one file per symbol, named by the symbols asked for": load_bar_set(
            [IWM, DIA], ["IWM", "DIA"]
        ),
        "a downloaded folder": load_bar_set([folder]),
        "load_folder_set": load_folder_set(folder),
        "a folder and a file": load_bar_set([Source(folder, "IWM"), Source(DIA, "DIA")]),
        "symbols chosen of the file": load_bar_set([BOTH], ["iwm", "DIA"]),
    }
    for way, bar_set in ways.items():
        assert sorted(bar_set.symbols) == ["DIA", "IWM"], way
        assert bar_set.merged() == merged, way
        assert bar_set.calendar.session_on(merged[0].time.date()) is not None, way
    assert ways["symbols chosen of the file"].symbols == ("IWM", "DIA")  # in the order asked
    assert ways["one file with a symbol column"].symbols == ("DIA", "IWM")  # else the data's
    assert ways["one file with a symbol column"].paths == (BOTH,)
    assert ways["one file per symbol, named"].paths == (IWM, DIA)


def test_one_symbol_is_chosen_and_a_plain_file_stays_as_it_was(
    reference: BarSet, folder: Path, sample_csv: Path
) -> None:
    assert load_bar_set([BOTH], ["DIA"]).merged() == reference.bars_of("DIA")
    assert load_bar_set([folder], ["IWM"]).merged() == reference.bars_of("IWM")
    assert load_folder(folder, ["IWM"]).bars == reference.bars_of("IWM")
    plain = load_bar_set([sample_csv])
    assert plain.symbols == ("",) and not plain.named
    assert plain.merged() == load_bars(sample_csv).bars
    assert plain.merged() is plain.files[0].bars  # no copy for the one-symbol case
    named = load_bar_set([sample_csv], ["spy"])
    assert named.symbols == ("SPY",) and {bar.symbol for bar in named.merged()} == {"SPY"}


def test_what_cannot_say_which_symbol_is_which_is_refused(
    tmp_path: Path, folder: Path, sample_csv: Path
) -> None:
    assert error_of([IWM, DIA]) == (
        f"{IWM}: does not say its symbol (no symbol column): 2 such file(s) and no symbol asked "
        f"for is left to name them; give each such file as SYMBOL=PATH (e.g. --data IWM={IWM}), "
        "or their symbols in the files' order (--symbols)"
    )
    assert "1 symbol(s) left to name them (IWM)" in error_of([IWM, DIA], ["IWM"])
    assert "2 such file(s)" in error_of([BOTH, IWM, DIA], ["DIA", "IWM"])
    assert "1 such file(s) and 2 symbol(s) left to name them (QQQ, SPY)" in error_of(
        [sample_csv], ["QQQ", "SPY"]
    )
    assert error_of([BOTH, f"IWM={IWM}"]) == (
        f"{IWM}: bars of IWM come from {BOTH} too: give each symbol once"
    )
    assert "bars of DIA come from" in error_of([folder, BOTH])
    with pytest.raises(MissingSymbolsError) as missing:
        load_bar_set([BOTH], ["IWM", "SPY"])
    assert (missing.value.missing, missing.value.held) == (("SPY",), ("DIA", "IWM"))
    assert str(missing.value) == f"{BOTH}: no bars for SPY here (symbols: DIA, IWM)"
    assert error_of([f"IWM={IWM}", f"DIA={DIA}"], ["QQQ"]) == (
        f"{IWM}, {DIA}: no bars for QQQ here (symbols: IWM, DIA)"
    )
    assert error_of([Source(folder, "SPY")]) == (
        f"{folder}: no bars for SPY here (symbols: DIA, IWM)"
    )
    assert error_of([f"SPY={BOTH}"]) == f"{BOTH}: no bars for SPY here (symbols: DIA, IWM)"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no <SYMBOL>/<YYYY-MM>.parquet files in this folder" in error_of([empty])
    assert error_of([tmp_path / "none.csv"]) == f"{tmp_path / 'none.csv'}: file not found"


def test_a_source_is_a_path_or_symbol_equals_path(tmp_path: Path) -> None:
    assert Source.parse("bars.csv") == Source(Path("bars.csv"))
    assert Source.parse("iwm=data/iwm.csv.gz") == Source(Path("data/iwm.csv.gz"), "IWM")
    odd = tmp_path / "a=b.csv"
    shutil.copy(IWM, odd)
    assert Source.parse(str(odd)) == Source(odd)  # an existing path wins
    with pytest.raises(BarDataError, match=r"symbol '\$PY' is not a ticker"):
        Source.parse("$PY=bars.csv")


def test_a_bar_set_holds_each_symbol_once(reference: BarSet, sample_csv: Path) -> None:
    iwm: BarFile = reference.file_of("IWM")
    with pytest.raises(ValueError, match="given twice"):
        BarSet.of([iwm, iwm])
    with pytest.raises(ValueError, match="each must name its symbol"):
        BarSet.of([iwm, load_bars(sample_csv)])
    with pytest.raises(KeyError, match="no bars of 'SPY'"):
        reference.bars_of("SPY")
    assert reference.only(["DIA"]).merged() == reference.bars_of("DIA")
