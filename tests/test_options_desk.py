"""The desks that answer a backtest's contract requests: the model's chain around the
underlying and a quote file's contracts, the strike each rule picks, and the reasons they
refuse."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from ict_trader.core.bars import Bar
from ict_trader.core.contracts import PremiumSource
from ict_trader.core.events import ContractQuoted, ContractUnavailable, RequestContract
from ict_trader.core.instruments import OptionRight, instrument_of, option
from ict_trader.errors import ConfigError
from ict_trader.options.desk import MIN_RETURNS, FileDesk, ModelDesk, build_desk
from ict_trader.options.pricing import OptionModel
from ict_trader.options.quotes import QuoteDataError, load_quotes
from ict_trader.options.settings import OptionsSettings, Pricing
from ict_trader.options.volatility import realized_volatility

DAY = date(2024, 7, 29)
AT = datetime(2024, 7, 29, 14, 0, tzinfo=UTC)  # 10:00 New York


def request(
    rule: str,
    right: OptionRight = OptionRight.CALL,
    spot: str = "460.40",
    at: datetime = AT,
    expiry: date = DAY,
) -> RequestContract:
    return RequestContract(at, "trade-1", "QQQ", right, expiry, rule, Decimal(spot))


def quoted(answer: ContractQuoted | ContractUnavailable) -> ContractQuoted:
    assert isinstance(answer, ContractQuoted), answer
    return answer


def refused(answer: ContractQuoted | ContractUnavailable) -> str:
    assert isinstance(answer, ContractUnavailable), answer
    assert answer.request_id == "trade-1"
    return answer.reason


def wiggling_bars(count: int, start: datetime = AT - timedelta(minutes=60)) -> list[Bar]:
    """1-minute bars of one morning whose closes zig-zag by 0.1 %."""
    bars = []
    for n in range(count):
        close = 460.0 * (1.001 if n % 2 else 1.0)
        bars.append(Bar(start + timedelta(minutes=n), close, close, close, close, 1e4))
    return bars


# ---------------------------------------------------------------------------- the model


def test_the_model_desk_picks_atm_and_otm_strikes_on_its_grid() -> None:
    desk = ModelDesk(OptionModel(), volatility=0.25)
    atm = quoted(desk.quote_contract(request("atm"))).quote
    assert atm.symbol == "QQQ240729C00460000"
    assert atm.source is PremiumSource.MODEL
    assert Decimal(0) < atm.bid < atm.ask
    assert atm.iv == 0.25 and atm.delta is not None and 0.5 < atm.delta < 0.7
    put = quoted(desk.quote_contract(request("otm = 2", OptionRight.PUT))).quote
    assert put.symbol == "QQQ240729P00459000"  # 460 is the first strike below 460.40
    assert put.delta is not None and put.delta < 0
    wide = ModelDesk(OptionModel(), volatility=0.25, strike_step=Decimal(5))
    assert quoted(wide.quote_contract(request("otm = 1"))).quote.symbol == "QQQ240729C00465000"


def test_a_delta_rule_picks_the_modelled_strike_whose_delta_is_nearest() -> None:
    model = OptionModel()
    desk = ModelDesk(model, volatility=0.25)
    chosen = quoted(desk.quote_contract(request("delta = 0.30"))).quote
    strike = instrument_of(chosen.symbol).strike
    assert strike is not None and strike > Decimal("460.40")

    def delta(k: Decimal) -> float:
        return model.value(option("QQQ", DAY, OptionRight.CALL, k), 460.4, AT, 0.25).greeks.delta

    distance = abs(delta(strike) - 0.30)
    assert distance <= abs(delta(strike - 1) - 0.30)
    assert distance <= abs(delta(strike + 1) - 0.30)
    assert chosen.delta == pytest.approx(delta(strike))


def test_realized_volatility_needs_half_an_hour_of_bars_then_prices_with_it() -> None:
    desk = ModelDesk(OptionModel())
    bars = wiggling_bars(MIN_RETURNS + 1)
    for bar in bars[:10]:
        desk.see_open(bar, "QQQ")
        desk.see_close(bar, "QQQ")
    reason = refused(desk.quote_contract(request("atm")))
    assert f"needs {MIN_RETURNS} minutes" in reason and "has 9" in reason
    for bar in bars[10:]:
        desk.see_open(bar, "QQQ")
        desk.see_close(bar, "QQQ")
    answer = quoted(desk.quote_contract(request("atm"))).quote
    expected = realized_volatility(bars)
    assert expected is not None and answer.iv == pytest.approx(expected)


def test_the_model_desk_refuses_expired_contracts_and_bad_rules_with_the_reason() -> None:
    desk = ModelDesk(OptionModel(), volatility=0.25)
    after_close = datetime(2024, 7, 29, 20, 30, tzinfo=UTC)
    assert "expired" in refused(desk.quote_contract(request("atm", at=after_close)))
    assert "not a strike rule" in refused(desk.quote_contract(request("itm")))
    far = request("otm = 11")  # the grid lists 10 strikes either side
    assert "no call strike qualifies" in refused(desk.quote_contract(far))


def test_model_quotes_of_held_contracts_follow_the_underlying_bar_by_bar() -> None:
    desk = ModelDesk(OptionModel(), volatility=0.25)
    symbol = "QQQ240729C00460000"
    assert desk.quote(symbol, AT) is None  # no price of the underlying yet
    bar = Bar(AT, 460.0, 462.0, 459.5, 461.5, 1e4)
    desk.see_open(bar, "QQQ")
    at_open = desk.quote(symbol, AT)
    desk.see_close(bar, "QQQ")
    at_close = desk.quote(symbol, AT + timedelta(minutes=1))
    assert at_open is not None and at_close is not None
    assert at_close.mid > at_open.mid  # the call gained with the underlying
    assert desk.quote(symbol, AT + timedelta(minutes=1)) is at_close  # asked twice, priced once
    assert desk.quote("QQQ", AT) is None  # not a contract


# ---------------------------------------------------------------------------- a quote file


def write_quotes(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    lines = ["timestamp,symbol,bid,ask"] + [",".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def file_rows() -> list[tuple[str, str, str, str]]:
    """Calls 458..462 at 14:00 and a minute later, priced by the model at 25 %; a 0/0 put."""
    model = OptionModel()
    rows = []
    for minute in (0, 1):
        moment = AT + timedelta(minutes=minute)
        for strike in range(458, 463):
            contract = option("QQQ", DAY, OptionRight.CALL, Decimal(strike))
            q = model.quote(contract, 460.4, moment, 0.25)
            rows.append(
                (moment.strftime("%Y-%m-%dT%H:%M:%SZ"), contract.symbol, str(q.bid), str(q.ask))
            )
    rows.append(("2024-07-29T14:00:00Z", "QQQ240729P00460000", "0", "0"))
    return rows


def test_the_file_desk_picks_among_the_quoted_contracts_with_real_prices(tmp_path: Path) -> None:
    book = load_quotes(write_quotes(tmp_path / "q.csv", file_rows()))
    desk = FileDesk(book, OptionModel())
    answer = quoted(desk.quote_contract(request("atm"))).quote
    assert answer.symbol == "QQQ240729C00460000" and answer.source is PremiumSource.FILE
    expected = book.quote_at(answer.symbol, AT)
    assert expected is not None and (answer.bid, answer.ask) == (expected.bid, expected.ask)
    # the delta and IV the mid implies: close to the 25 % the file was priced at
    assert answer.iv is not None and answer.iv == pytest.approx(0.25, abs=0.02)
    otm = quoted(desk.quote_contract(request("otm = 2"))).quote
    assert otm.symbol == "QQQ240729C00462000"
    by_delta = quoted(desk.quote_contract(request("delta = 0.2"))).quote
    assert by_delta.delta is not None and math.isfinite(by_delta.delta)
    assert by_delta.symbol == "QQQ240729C00462000"  # the highest quoted strike is nearest 0.2


def test_the_file_desk_says_why_it_has_no_contract(tmp_path: Path) -> None:
    desk = FileDesk(load_quotes(write_quotes(tmp_path / "q.csv", file_rows())), OptionModel())
    early = refused(desk.quote_contract(request("atm", at=AT - timedelta(hours=1))))
    assert "q.csv has no call quote" in early and "in force at 2024-07-29 13:00Z" in early
    stale = refused(desk.quote_contract(request("atm", at=AT + timedelta(minutes=7))))
    assert "5 minutes" in stale
    # the only put is quoted 0 / 0: no market to buy at
    assert "no put quote with an ask" in refused(
        desk.quote_contract(request("atm", OptionRight.PUT))
    )
    other_day = refused(desk.quote_contract(request("atm", expiry=date(2024, 7, 30))))
    assert "has no calls on QQQ expiring 2024-07-30" in other_day
    assert "otm = 3" in refused(desk.quote_contract(request("otm = 3")))
    assert desk.quote("QQQ240729P00460000", AT) is None  # 0 / 0
    assert desk.quote("QQQ240729C00460000", AT + timedelta(minutes=2)) is not None
    assert desk.quote("QQQ240729C00460000", AT + timedelta(minutes=7)) is None  # stale


def test_building_a_desk_from_settings(tmp_path: Path) -> None:
    assert isinstance(build_desk(OptionsSettings()), ModelDesk)
    with pytest.raises(ConfigError, match=r"needs options\.quotes"):
        build_desk(OptionsSettings(pricing=Pricing.FILE))
    with pytest.raises(QuoteDataError, match=r"missing\.csv: file not found"):
        build_desk(OptionsSettings(pricing=Pricing.FILE, quotes=tmp_path / "missing.csv"))
    path = write_quotes(tmp_path / "q.csv", file_rows())
    desk = build_desk(OptionsSettings(pricing=Pricing.FILE, quotes=path, staleness_minutes=1))
    assert isinstance(desk, FileDesk)
    assert desk.quote("QQQ240729C00460000", AT + timedelta(minutes=3)) is None
    assert OptionsSettings().describe()["premium_source"] == "model"
    assert (
        OptionsSettings(pricing=Pricing.FILE, quotes=path)
        .describe()["pricing"]
        .startswith("quote file q.csv: real bid/ask")
    )
