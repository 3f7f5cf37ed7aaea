"""The Alpaca contract desk with the real alpaca-py against canned Alpaca answers: the paged
contract list walked to its end, the strike rules applied to what is listed, snapshots turned
into broker quotes, and every way there is no contract to trade said in words."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from alpaca.data.enums import OptionsFeed
from alpaca.data.historical.option import OptionHistoricalDataClient
from alpaca.trading.client import TradingClient

from ict_trader.adapters.alpaca.options import AlpacaContractDesk
from ict_trader.core.contracts import PremiumSource
from ict_trader.core.events import ContractQuoted, ContractUnavailable, RequestContract
from ict_trader.core.instruments import OptionRight
from tests.canned_alpaca import KEY, SECRET, Canned, canned_alpaca, occ, snapshot_json

DAY = date(2024, 7, 29)
NOW = datetime(2024, 7, 29, 17, 31, tzinfo=UTC)  # 13:31 New York


def request(
    rule: str = "atm", right: OptionRight = OptionRight.CALL, spot: str = "466.40"
) -> RequestContract:
    return RequestContract(NOW, "ict-QQQ-trade", "QQQ", right, DAY, rule, Decimal(spot))


@contextmanager
def desk_on(canned: Canned, **options: object) -> Iterator[AlpacaContractDesk]:
    with canned_alpaca(canned) as url:
        trading = TradingClient(KEY, SECRET, paper=True, url_override=url)
        trading._retry = 0
        data = OptionHistoricalDataClient(KEY, SECRET, url_override=url)
        data._retry = 0
        yield AlpacaContractDesk(trading, data, **options)  # type: ignore[arg-type]


def calls(*strikes: int) -> list[str]:
    return [occ(DAY, "C", k) for k in strikes]


def test_the_contract_list_is_walked_page_by_page_and_atm_picks_from_all_of_it() -> None:
    # alpaca-py returns one page and the token; the nearest strike is only on page 3
    canned = Canned(
        pages=[calls(460, 461, 462), calls(463, 464, 465), calls(466, 467, 468)],
        snapshots={occ(DAY, "C", 466): snapshot_json(1.20, 1.24, NOW, delta=0.55, iv=0.18)},
    )
    with desk_on(canned) as desk:
        answer = desk.quote_contract(request())
    assert isinstance(answer, ContractQuoted)
    quote = answer.quote
    assert quote.symbol == "QQQ240729C00466000"
    assert (quote.bid, quote.ask, quote.source) == (
        Decimal("1.20"),
        Decimal("1.24"),
        PremiumSource.BROKER,
    )
    assert (quote.delta, quote.iv) == (0.55, 0.18)
    assert answer.request_id == "ict-QQQ-trade" and answer.time == NOW
    pages = canned.calls("/v2/options/contracts")
    assert [p.query.get("page_token") for p in pages] == [None, "1", "2"]
    first = pages[0].query
    assert first["underlying_symbols"] == "QQQ"
    assert first["expiration_date"] == "2024-07-29"
    assert first["type"] == "call"
    assert (
        Decimal(first["strike_price_gte"]) < Decimal("466.40") < Decimal(first["strike_price_lte"])
    )
    # only the chosen contract's market is asked for: its market decides, not a neighbour's
    [snap] = canned.calls("/v1beta1/options/snapshots")
    assert snap.query["symbols"] == "QQQ240729C00466000"


def test_otm_counts_listed_tradable_strikes_beyond_the_underlying() -> None:
    puts = [occ(DAY, "P", k) for k in (462, 463, 464, 465, 466, 467)]
    canned = Canned(
        pages=[puts],
        untradable={occ(DAY, "P", 465)},
        snapshots={
            occ(DAY, "P", 464): snapshot_json(0.40, 0.42, NOW, delta=-0.25),
            occ(DAY, "P", 463): snapshot_json(0.30, 0.32, NOW, delta=-0.20),
        },
    )
    with desk_on(canned) as desk:
        answer = desk.quote_contract(request("otm = 2", OptionRight.PUT))
    # below 466.40 a put is out of the money: 466 first, 465 is not tradable, so 464 second
    assert isinstance(answer, ContractQuoted), answer
    assert answer.quote.symbol == occ(DAY, "P", 464)
    assert canned.calls("/v2/options/contracts")[0].query["type"] == "put"


def test_a_delta_rule_reads_every_candidates_greeks_and_picks_the_nearest() -> None:
    strikes = (464, 465, 466, 467, 468, 469)
    deltas = {464: 0.80, 465: 0.70, 466: 0.55, 467: 0.41, 468: None, 469: 0.30}
    canned = Canned(
        pages=[calls(*strikes)],
        snapshots={
            occ(DAY, "C", k): snapshot_json(1.0, 1.1, NOW, delta=d) for k, d in deltas.items()
        },
    )
    with desk_on(canned) as desk:
        answer = desk.quote_contract(request("delta = 0.40"))
    assert isinstance(answer, ContractQuoted), answer
    assert (answer.quote.symbol, answer.quote.delta) == (occ(DAY, "C", 467), 0.41)
    [snap] = canned.calls("/v1beta1/options/snapshots")  # one request for all six
    assert sorted(snap.query["symbols"].split(",")) == calls(*strikes)


def test_quotes_go_onto_the_cent_grid_outward_and_the_feed_is_passed_on() -> None:
    canned = Canned(
        pages=[calls(466)],
        snapshots={occ(DAY, "C", 466): snapshot_json(1.205, 1.241, NOW)},
    )
    with desk_on(canned, feed=OptionsFeed.INDICATIVE) as desk:
        answer = desk.quote_contract(request())
    assert isinstance(answer, ContractQuoted)
    assert (answer.quote.bid, answer.quote.ask) == (Decimal("1.20"), Decimal("1.25"))
    assert canned.calls("/v1beta1/options/snapshots")[0].query["feed"] == "indicative"


def unavailable(canned: Canned, rule: str = "atm") -> str:
    with desk_on(canned) as desk:
        answer = desk.quote_contract(request(rule))
    assert isinstance(answer, ContractUnavailable), answer
    assert answer.request_id == "ict-QQQ-trade"
    return answer.reason


def test_no_listed_contract_is_said() -> None:
    reason = unavailable(Canned(pages=[[]]))
    assert reason == "Alpaca lists no tradable call on QQQ expiring 2024-07-29 near 466.40"


def test_contracts_of_another_day_or_right_are_not_taken_even_if_listed() -> None:
    wrong = [occ(date(2024, 7, 30), "C", 466), occ(DAY, "P", 466), occ(DAY, "C", 466, "SPY")]
    assert "lists no tradable call" in unavailable(Canned(pages=[wrong]))


def test_a_contract_without_a_quote_is_not_traded() -> None:
    assert unavailable(Canned(pages=[calls(466)])) == "Alpaca has no quote for QQQ240729C00466000"


def test_an_empty_or_crossed_market_is_not_traded() -> None:
    symbol = occ(DAY, "C", 466)
    empty = Canned(pages=[calls(466)], snapshots={symbol: snapshot_json(0, 0, NOW)})
    assert "has an empty market: no ask" in unavailable(empty)
    crossed = Canned(pages=[calls(466)], snapshots={symbol: snapshot_json(1.30, 1.20, NOW)})
    assert unavailable(crossed) == (
        "QQQ240729C00466000 has a crossed market: bid 1.30 above ask 1.20"
    )


def test_a_stale_quote_is_no_market() -> None:
    old = NOW - timedelta(minutes=12)
    canned = Canned(pages=[calls(466)], snapshots={occ(DAY, "C", 466): snapshot_json(1, 2, old)})
    assert "quote is 12 minutes old" in unavailable(canned)


def test_a_delta_rule_without_any_greeks_picks_nothing() -> None:
    canned = Canned(
        pages=[calls(466, 467)],
        snapshots={occ(DAY, "C", k): snapshot_json(1, 1.1, NOW, delta=None) for k in (466, 467)},
    )
    assert unavailable(canned, "delta = 0.4").startswith("no listed call on QQQ")


def test_a_failed_call_is_an_answer_not_an_exception() -> None:
    failing = Canned(pages=[calls(466)], fail={"/v2/options/contracts": 403})
    reason = unavailable(failing)
    assert reason.startswith("Alpaca's option contracts call failed: HTTP 403")
    failing = Canned(pages=[calls(466)], fail={"/v1beta1/options/snapshots": 500})
    assert unavailable(failing).startswith("Alpaca's option snapshot call failed: HTTP 500")


def test_a_bad_strike_rule_is_said() -> None:
    assert "is not a strike rule" in unavailable(Canned(pages=[calls(466)]), "deep itm")


def test_a_held_contracts_quote_for_its_mark() -> None:
    symbol = occ(DAY, "C", 466)
    canned = Canned(snapshots={symbol: snapshot_json(2.00, 2.10, NOW, delta=0.6)})
    with desk_on(canned) as desk:
        quote = desk.quote(symbol, NOW)
        missing = desk.quote(occ(DAY, "C", 470), NOW)
    assert quote is not None
    assert (quote.symbol, quote.mid, quote.source) == (
        symbol,
        Decimal("2.05"),
        PremiumSource.BROKER,
    )
    assert missing is None  # no quote: the engine keeps the last mark
