"""A user's option quote file: what loads, the quote in force at a moment, and every bad file
refused in one line that names the file, the row and what is wrong."""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from ict_trader.core.instruments import OptionRight
from ict_trader.marketdata.barfile import BarDataError
from ict_trader.options.pricing import QuoteSource
from ict_trader.options.quotes import QuoteBook, QuoteDataError, load_quotes

CALL = "QQQ240729C00465000"
PUT = "QQQ240729P00464000"
HEADER = "timestamp,symbol,bid,ask\n"
GOOD = [
    f"2024-07-29T13:30:00Z,{CALL},1.20,1.25",
    f"2024-07-29T13:30:00Z,{PUT},0.98,1.02",
    f"2024-07-29T13:31:00Z,{CALL},1.31,1.35",
    f"2024-07-29T13:33:00Z,{PUT},0.90,0.93",
]


def _utc(hour: int, minute: int, second: int = 0, day: int = 29) -> datetime:
    return datetime(2024, 7, day, hour, minute, second, tzinfo=UTC)


def _write(folder: Path, text: str, name: str = "quotes.csv") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_file_s_quotes_in_force_at_a_moment(tmp_path: Path) -> None:
    book = load_quotes(_write(tmp_path, HEADER + "\n".join(GOOD) + "\n"))
    assert isinstance(book, QuoteBook)
    assert (len(book), book.symbols) == (4, [CALL, PUT])
    quote = book.quote_at(CALL, _utc(13, 30, 59))
    assert quote is not None
    assert (quote.symbol, quote.time, quote.bid, quote.ask) == (
        CALL,
        _utc(13, 30),
        Decimal("1.2"),
        Decimal("1.25"),
    )
    assert (quote.source, quote.modelled, quote.iv, quote.greeks) == (
        QuoteSource.FILE,
        False,
        None,
        None,
    )
    at_its_minute = book.quote_at(CALL, _utc(13, 31))
    assert at_its_minute is not None and at_its_minute.bid == Decimal("1.31")
    assert book.quote_at(CALL, _utc(13, 29, 59)) is None  # before the first quote
    assert book.quote_at("QQQ240729C00999000", _utc(13, 31)) is None  # not in the file
    # staleness: five minutes by default, the book's own or the caller's
    assert book.quote_at(CALL, _utc(13, 36)) is not None  # exactly five minutes old
    assert book.quote_at(CALL, _utc(13, 36, 1)) is None
    assert book.quote_at(CALL, _utc(13, 33), staleness=timedelta(minutes=1)) is None
    strict = load_quotes(tmp_path / "quotes.csv", staleness=timedelta(seconds=30))
    assert strict.quote_at(CALL, _utc(13, 30, 30)) is not None
    assert strict.quote_at(CALL, _utc(13, 30, 31)) is None
    with pytest.raises(ValueError, match="time zone"):
        book.quote_at(CALL, datetime(2024, 7, 29, 13, 31))


def test_the_file_lists_its_contracts(tmp_path: Path) -> None:
    rows = [*GOOD, "2024-07-29T13:35:00Z,SPY240730C00550000,2.00,2.05"]
    book = load_quotes(_write(tmp_path, HEADER + "\n".join(rows) + "\n"))
    assert [c.symbol for c in book.contracts()] == [CALL, PUT, "SPY240730C00550000"]
    qqq = book.contracts("QQQ", date(2024, 7, 29))
    assert [(c.right, c.strike) for c in qqq] == [
        (OptionRight.CALL, Decimal(465)),
        (OptionRight.PUT, Decimal(464)),
    ]
    assert [c.symbol for c in book.contracts(right=OptionRight.PUT)] == [PUT]
    assert book.contracts("QQQ", date(2024, 7, 30)) == []


def test_the_same_quotes_from_every_format(tmp_path: Path) -> None:
    text = HEADER + "\n".join(GOOD) + "\n"
    csv_path = _write(tmp_path, text)
    gz_path = tmp_path / "quotes.csv.gz"
    gz_path.write_bytes(gzip.compress(text.encode()))
    frame = pd.read_csv(csv_path)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    parquet_path = tmp_path / "quotes.parquet"
    frame.to_parquet(parquet_path)
    # alpaca-py's quote DataFrame names, extra columns, an offset other than Z, spaces
    alpaca = _write(
        tmp_path,
        "symbol, timestamp, bid_price, ask_price, bid_size, ask_size\n"
        + "\n".join(
            f"{s}, {pd.Timestamp(t).tz_convert('America/New_York').isoformat()}, {b}, {a}, 3, 4"
            for t, s, b, a in (row.split(",") for row in GOOD)
        )
        + "\n",
        "alpaca.csv",
    )
    naive_new_york = _write(
        tmp_path,
        HEADER
        + "\n".join(
            f"{pd.Timestamp(t).tz_convert('America/New_York').tz_localize(None).isoformat()},"
            f"{s},{b},{a}"
            for t, s, b, a in (row.split(",") for row in GOOD)
        )
        + "\n",
        "naive.csv",
    )
    books = [
        load_quotes(csv_path),
        load_quotes(gz_path),
        load_quotes(parquet_path),
        load_quotes(alpaca),
        load_quotes(naive_new_york, tz="America/New_York"),
    ]
    moments = [_utc(13, 30), _utc(13, 32), _utc(13, 34)]
    expected = [[book.quote_at(s, m) for s in (CALL, PUT) for m in moments] for book in books[:1]]
    for book in books:
        assert [[book.quote_at(s, m) for s in (CALL, PUT) for m in moments]] == expected


def test_a_no_market_quote_is_kept(tmp_path: Path) -> None:
    book = load_quotes(_write(tmp_path, HEADER + f"2024-07-29T19:59:00Z,{CALL},0,0\n"))
    quote = book.quote_at(CALL, _utc(19, 59))
    assert quote is not None and (quote.bid, quote.ask) == (Decimal(0), Decimal(0))


# ---------------------------------------------------------------------------- misuse


def _rows(*rows: str) -> Callable[[Path], Path]:
    return lambda folder: _write(folder, HEADER + "\n".join([*GOOD, *rows]) + "\n")


def _text(text: str, name: str = "quotes.csv") -> Callable[[Path], Path]:
    return lambda folder: _write(folder, text, name)


def _parquet(frame: pd.DataFrame) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / "quotes.parquet"
        frame.to_parquet(path)
        return path

    return build


def _bytes(data: bytes, name: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    return build


def _fifo(folder: Path) -> Path:
    path = folder / "quotes.csv"
    os.mkfifo(path)
    return path


def _directory(folder: Path) -> Path:
    path = folder / "quotes.csv"
    path.mkdir()
    return path


_PARQUET_ROW = {
    "timestamp": [pd.Timestamp("2024-07-29T13:30:00")],
    "symbol": [CALL],
    "bid": [1.2],
    "ask": [1.25],
}

# label -> (how to build the file, what the one line must say)
BAD_QUOTE_FILES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing file": (lambda folder: folder / "nowhere.csv", "file not found"),
    "a directory": (_directory, "is a directory, expected an option quote file"),
    "a FIFO": (_fifo, "is a FIFO, not a regular file"),
    "empty file": (_text(""), "cannot be read"),
    "header only": (_text(HEADER), "no quotes in file"),
    "missing ask column": (_text("timestamp,symbol,bid\n2024-07-29T13:30:00Z,X,1\n"), "ask"),
    "wrong extension": (_text(HEADER + GOOD[0] + "\n", "quotes.txt"), "unsupported file type"),
    "not UTF-8": (_bytes(b"\xff\xfe\x00bad", "quotes.csv"), "not a UTF-8 text file"),
    "truncated gzip": (
        _bytes(gzip.compress((HEADER + GOOD[0] + "\n").encode())[:-12], "quotes.csv.gz"),
        "cannot be read",
    ),
    "a share's ticker": (_rows("2024-07-29T13:34:00Z,QQQ,1.2,1.25"), "row 5 (line 6): symbol"),
    "a lower-case symbol": (
        _rows("2024-07-29T13:34:00Z,qqq240729c00465000,1.2,1.25"),
        "is not an OCC option symbol",
    ),
    "a padded OSI root": (
        _rows("2024-07-29T13:34:00Z,QQQ   240729C00465000,1.2,1.25"),
        "is not an OCC option symbol",
    ),
    "month 13": (
        _rows("2024-07-29T13:34:00Z,QQQ241329C00465000,1.2,1.25"),
        "not a valid OCC option symbol: month must be in 1..12",
    ),
    "strike 0": (
        _rows("2024-07-29T13:34:00Z,QQQ240729C00000000,1.2,1.25"),
        "not a valid OCC option symbol",
    ),
    "empty symbol": (_rows("2024-07-29T13:34:00Z,,1.2,1.25"), "row 5 (line 6): symbol is empty"),
    "bid above ask": (_rows(f"2024-07-29T13:34:00Z,{CALL},1.3,1.25"), "bid 1.3 is above ask 1.25"),
    "negative bid": (_rows(f"2024-07-29T13:34:00Z,{CALL},-0.05,1.25"), "bid -0.05 is negative"),
    "negative ask": (_rows(f"2024-07-29T13:34:00Z,{CALL},0,-0.05"), "ask -0.05 is negative"),
    "ask in cents": (
        _rows(f"2024-07-29T13:34:00Z,{CALL},120,125000000"),
        "ask 1.25e+08 is above 100,000, not a plausible premium",
    ),
    "bid not a number": (
        _rows(f"2024-07-29T13:34:00Z,{CALL},abc,1.25"),
        "bid 'abc' is not a number",
    ),
    "ask empty": (_rows(f"2024-07-29T13:34:00Z,{CALL},1.2,"), "ask is empty or NaN"),
    "bid infinite": (_rows(f"2024-07-29T13:34:00Z,{CALL},inf,1.25"), "bid is infinite"),
    "quotes out of order": (
        _rows(f"2024-07-29T13:30:30Z,{CALL},1.2,1.25"),
        "row 5 (line 6): quote at 2024-07-29T13:30:30Z is before the same contract's previous "
        "quote at 2024-07-29T13:31:00Z (row 3)",
    ),
    "a contract quoted twice at once": (
        _rows(f"2024-07-29T13:33:00Z,{PUT},0.91,0.94"),
        "a second quote for the same contract at 2024-07-29T13:33:00Z",
    ),
    "no UTC offset": (
        _rows(f"2024-07-29T13:34:00,{CALL},1.2,1.25"),
        "timestamp '2024-07-29T13:34:00' has no UTC offset",
    ),
    "unparsable timestamp": (
        _rows(f"yesterday,{CALL},1.2,1.25"),
        "timestamp 'yesterday' cannot be parsed",
    ),
    "impossible date": (
        _rows(f"2024-02-30T13:34:00Z,{CALL},1.2,1.25"),
        "timestamp '2024-02-30T13:34:00Z' cannot be parsed",
    ),
    "empty timestamp": (_rows(f",{CALL},1.2,1.25"), "timestamp is empty"),
    "year 2300": (_rows(f"2300-07-29T13:34:00Z,{CALL},1.2,1.25"), "outside the years 1990-2099"),
    "after expiry": (
        _rows(f"2024-07-30T13:34:00Z,{CALL},1.2,1.25"),
        f"quote at 2024-07-30T13:34:00Z is after {CALL}'s expiry 2024-07-29",
    ),
    "parquet without a zone": (_parquet(pd.DataFrame(_PARQUET_ROW)), "has no time zone"),
    "parquet with a bad symbol": (
        _parquet(
            pd.DataFrame(
                {**_PARQUET_ROW, "timestamp": [pd.Timestamp("2024-07-29T13:30Z")], "symbol": ["X"]}
            )
        ),
        "row 1: symbol 'X' is not an OCC option symbol",
    ),
    "parquet with a missing bid": (
        _parquet(
            pd.DataFrame(
                {**_PARQUET_ROW, "timestamp": [pd.Timestamp("2024-07-29T13:30Z")], "bid": [None]}
            )
        ),
        "row 1: bid is empty or NaN",
    ),
}


@pytest.mark.parametrize("label", sorted(BAD_QUOTE_FILES))
def test_a_bad_quote_file_is_refused_in_one_line(tmp_path: Path, label: str) -> None:
    build, says = BAD_QUOTE_FILES[label]
    path = build(tmp_path)
    with pytest.raises(QuoteDataError) as caught:
        load_quotes(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert says in message
    assert isinstance(caught.value, BarDataError)  # the CLI refuses it as it does a bar file


def test_the_first_problem_in_file_order_is_reported(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        HEADER
        + "\n".join(
            [
                GOOD[0],
                f"2024-07-29T13:31:00Z,{CALL},1.40,1.30",  # row 2: bid above ask
                "2024-07-29T13:31:00Z,NOPE,1,2",  # row 3: not a symbol
                f"nonsense,{CALL},1,2",  # row 4: not a time
            ]
        )
        + "\n",
    )
    with pytest.raises(QuoteDataError, match=r": row 2 \(line 3\): bid 1.4 is above ask 1.3$"):
        load_quotes(path)


def test_a_negative_staleness_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER + GOOD[0] + "\n")
    with pytest.raises(ValueError, match="staleness"):
        load_quotes(path, staleness=timedelta(seconds=-1))
