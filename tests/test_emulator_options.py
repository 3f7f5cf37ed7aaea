"""The emulator lists 0DTE option contracts and serves their snapshots as Alpaca does (issue #12).

Every test drives the unmodified alpaca-py clients — TradingClient for the contracts,
OptionHistoricalDataClient for the chain and the snapshots — against the loopback emulator on
127.0.0.1, replaying the bundled QQQ sample (2024-07-29 .. 08-09); raw answers are judged against
Alpaca's OpenAPI specs (tests/alpaca_spec.py). What is listed and how it is priced is described in
src/ict_trader/adapters/alpaca/emulator/options.py and docs/options.md.
"""

from __future__ import annotations

import itertools
import math
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.enums import OptionsFeed
from alpaca.data.requests import OptionChainRequest, OptionSnapshotRequest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import AssetStatus, ContractType, ExerciseStyle
from alpaca.trading.models import OptionContract, OptionContractsResponse
from alpaca.trading.requests import GetOptionContractsRequest

from ict_trader.adapters.alpaca.emulator.feed import DataOptions
from ict_trader.adapters.alpaca.emulator.options import OptionSettings
from ict_trader.adapters.alpaca.emulator.paper import EmulatorOptions
from ict_trader.adapters.alpaca.emulator.server import EmulatorServer
from ict_trader.core.instruments import OptionRight, instrument_of
from ict_trader.marketdata.barfile import BarFile, load_bars
from ict_trader.options.pricing import value
from tests.alpaca_emulator import (
    KEY,
    SECRET,
    advance,
    checked_get,
    option_data_client,
    running_emulator,
)

START = 100  # bars completed: 2024-07-29 11:10 New York
DAY = date(2024, 7, 29)
SESSION = 390  # minutes of a regular session in the sample
CENT = Decimal("0.01")


@pytest.fixture(scope="module")
def sample(sample_csv: Path) -> BarFile:
    return load_bars(sample_csv)


def contracts_client(server: EmulatorServer, raw: bool = False) -> TradingClient:
    client = TradingClient(KEY, SECRET, paper=True, raw_data=raw, url_override=server.base_url)
    client._retry_wait = 0
    return client


def listing(client: TradingClient, **query: Any) -> OptionContractsResponse:
    answer = client.get_option_contracts(GetOptionContractsRequest(**query))
    assert isinstance(answer, OptionContractsResponse)
    return answer


# ---------------------------------------------------------------------------- contracts


def test_todays_contracts_are_calls_and_puts_on_a_dollar_grid_around_the_open(
    sample: BarFile,
) -> None:
    opening = Decimal(repr(sample.bars[0].open))
    with running_emulator(sample, start_bar=START) as server:
        answer = listing(contracts_client(server), underlying_symbols=["QQQ"], limit=1000)
        contracts = answer.option_contracts or []
        assert answer.next_page_token is None
        assert {c.expiration_date for c in contracts} == {DAY}  # 0DTE: only today's expiry
        for right in (ContractType.CALL, ContractType.PUT):
            strikes = sorted(Decimal(repr(c.strike_price)) for c in contracts if c.type is right)
            assert len(strikes) == 50  # 25 at or below the open, 25 above it
            assert all(b - a == 1 for a, b in itertools.pairwise(strikes))
            assert strikes[24] <= opening < strikes[25]
        first = contracts[0]
        assert (first.status, first.tradable, first.style) == (
            AssetStatus.ACTIVE,
            True,
            ExerciseStyle.AMERICAN,
        )
        assert (first.root_symbol, first.underlying_symbol, first.size) == ("QQQ", "QQQ", "100")
        assert str(first.underlying_asset_id) == "b6d1aa75-5c9c-4353-a305-9e2caa1925ab"
        assert first.symbol == f"QQQ240729C{int(first.strike_price * 1000):08d}"
        assert first.name == f"QQQ Jul 29 2024 {first.strike_price:g} Call"
        assert len({c.id for c in contracts}) == len(contracts) == 100
        raw = checked_get(server, "/v2/options/contracts", limit="3").json()["option_contracts"]
        assert [c["multiplier"] for c in raw] == ["100"] * 3  # alpaca-py drops the field
        assert all(isinstance(c["strike_price"], str) and c["ppind"] is True for c in raw)


def test_one_contract_by_symbol_or_id_and_404_for_an_unlisted_one(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=START) as server:
        client = contracts_client(server)
        some = (listing(client, limit=7).option_contracts or [])[-1]
        by_symbol = client.get_option_contract(some.symbol)
        by_id = client.get_option_contract(some.id)
        assert isinstance(by_symbol, OptionContract) and by_symbol == by_id == some
        shown = checked_get(server, f"/v2/options/contracts/{some.symbol}").json()
        assert [d["symbol"] for d in shown["deliverables"]] == ["QQQ"]
        assert shown["deliverables"][0]["amount"] == "100"
        tomorrow = "QQQ240730C00460000"  # the next session's contracts do not exist yet
        for unknown in (tomorrow, "QQQ240729C00999000", "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415"):
            with pytest.raises(APIError) as refused:
                client.get_option_contract(unknown)
            assert refused.value.status_code == 404
            assert refused.value.message == f"option contract {unknown} not found"


def test_contracts_come_a_page_at_a_time(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=START) as server:
        client = contracts_client(server)
        whole = [c.symbol for c in listing(client, limit=10_000).option_contracts or []]
        pages: list[list[str]] = []
        token = None
        while True:
            page = listing(client, limit=30, page_token=token)
            pages.append([c.symbol for c in page.option_contracts or []])
            token = page.next_page_token
            if token is None:
                break
        assert [len(p) for p in pages] == [30, 30, 30, 10]
        assert [s for p in pages for s in p] == whole == sorted(whole)
        default = listing(client)  # Alpaca's default page: 100
        assert len(default.option_contracts or []) == 100 and default.next_page_token is None


def test_contracts_are_filtered_as_asked(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=START) as server:
        client = contracts_client(server)

        def symbols(**query: Any) -> list[str]:
            return [c.symbol for c in listing(client, limit=1000, **query).option_contracts or []]

        everything = symbols()
        puts = symbols(type=ContractType.PUT, strike_price_gte="455", strike_price_lte="457.5")
        assert puts == ["QQQ240729P00455000", "QQQ240729P00456000", "QQQ240729P00457000"]
        assert symbols(expiration_date=DAY) == everything
        assert symbols(expiration_date_gte=DAY + timedelta(days=1)) == []
        assert symbols(expiration_date_lte=DAY - timedelta(days=1)) == []
        assert symbols(root_symbol="QQQ") == everything
        assert symbols(underlying_symbols=["SPY"]) == []  # not served: no contracts
        assert symbols(style=ExerciseStyle.EUROPEAN) == []
        assert symbols(status=AssetStatus.INACTIVE) == []  # nothing has expired yet
        assert checked_get(server, "/v2/options/contracts", ppind="false").json() == {
            "option_contracts": [],
            "next_page_token": None,
        }
        for query in (
            {"limit": "0"},
            {"limit": "10001"},
            {"type": "straddle"},
            {"expiration_date": "tomorrow"},
            {"strike_price_gte": "cheap"},
            {"status": "expired"},
            {"page_token": "%%%"},
        ):
            assert checked_get(server, "/v2/options/contracts", **query).status_code == 422, query


def test_a_sessions_contracts_appear_with_its_first_bar_and_expire_at_its_close(
    sample: BarFile,
) -> None:
    with running_emulator(sample, start_bar=SESSION - 1) as server:  # 15:59 of the first day
        client = contracts_client(server)
        today = listing(client).option_contracts or []
        assert {c.status for c in today} == {AssetStatus.ACTIVE}
        advance(server, 1)  # the close: the clock waits for the next session
        assert listing(client).option_contracts == []
        expired = listing(client, status=AssetStatus.INACTIVE).option_contracts or []
        assert [c.symbol for c in expired] == [c.symbol for c in today]
        assert {(c.status, c.tradable) for c in expired} == {(AssetStatus.INACTIVE, False)}
        with pytest.raises(APIError):
            client.get_option_contract("QQQ240730C00460000")
        advance(server, 1)  # 09:30 of 07-30: its contracts, around its open
        tomorrow = listing(client).option_contracts or []
        opening = Decimal(repr(sample.bars[SESSION].open))
        strikes = sorted(Decimal(repr(c.strike_price)) for c in tomorrow)
        assert {c.expiration_date for c in tomorrow} == {date(2024, 7, 30)}
        assert strikes[0] == math.floor(opening) - 24 and strikes[-1] == math.floor(opening) + 25


def test_strike_grid_and_count_are_settings(sample: BarFile) -> None:
    settings = OptionSettings(strike_step=Decimal("2.5"), strikes=4)
    options = EmulatorOptions(option_settings=settings)
    with running_emulator(sample, start_bar=START, options=options) as server:
        contracts = listing(contracts_client(server)).option_contracts or []
        strikes = sorted({Decimal(repr(c.strike_price)) for c in contracts})
        assert len(strikes) == 8 and {s % Decimal("2.5") for s in strikes} == {0}


# ---------------------------------------------------------------------------- snapshots


def test_the_chain_through_alpaca_py_has_quotes_trades_volatility_and_greeks(
    sample: BarFile,
) -> None:
    with running_emulator(sample, start_bar=START) as server:
        spot = float(server.account.mark("QQQ"))
        now = server.account.now
        chain = option_data_client(server).get_option_chain(
            OptionChainRequest(underlying_symbol="QQQ", strike_price_gte=455, strike_price_lte=470)
        )
        assert isinstance(chain, dict)
        assert len(chain) == 32  # 16 strikes, calls and puts
        close = next(s.close for s in sample.calendar.sessions() if s.day == DAY)
        calendar_years = (close - now).total_seconds() / (365 * 24 * 3600)
        for symbol, snapshot in chain.items():
            contract = instrument_of(symbol)
            quote, trade, greeks = snapshot.latest_quote, snapshot.latest_trade, snapshot.greeks
            assert quote is not None and trade is not None and greeks is not None
            bid, ask = Decimal(repr(quote.bid_price)), Decimal(repr(quote.ask_price))
            assert 0 <= bid < ask and bid % CENT == 0 and ask % CENT == 0
            assert quote.timestamp == now and quote.ask_size > 0
            assert trade.timestamp == now - timedelta(minutes=15)  # indicative: 15 min late
            assert trade.size == 1
            iv = snapshot.implied_volatility
            assert iv is not None and 0.2 < iv < 2
            assert contract.strike is not None and contract.right is not None
            # Alpaca's IV is calendar-time Black-Scholes: at it, the price lies in the quote
            model = value(contract.right, spot, float(contract.strike), calendar_years, iv)
            assert float(bid) <= model.price <= float(ask)
            if contract.right is OptionRight.CALL:
                assert 0 < greeks.delta < 1 and greeks.rho > 0
            else:
                assert -1 < greeks.delta < 0 and greeks.rho < 0
            assert greeks.gamma > 0 and greeks.vega > 0 and greeks.theta < 0
        nearest = min(chain, key=lambda s: abs(float(instrument_of(s).strike or 0) - spot))
        atm = chain[nearest].greeks
        assert atm is not None and 0.3 < abs(atm.delta) < 0.7


def test_the_chain_follows_next_page_token_and_filters(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=START, max_page_size=30) as server:
        client = option_data_client(server)
        before = len(server.requests)
        chain = client.get_option_chain(OptionChainRequest(underlying_symbol="QQQ"))
        calls = [path for _, path in server.requests[before:]]
        assert calls == ["/v1beta1/options/snapshots/QQQ"] * 4  # 30 + 30 + 30 + 10
        assert isinstance(chain, dict) and len(chain) == 100
        puts = client.get_option_chain(
            OptionChainRequest(
                underlying_symbol="QQQ",
                type=ContractType.PUT,
                expiration_date=DAY,
                strike_price_lte=450,
            )
        )
        assert isinstance(puts, dict)
        assert sorted(puts) == [f"QQQ240729P00{k}000" for k in range(441, 451)]
        none = client.get_option_chain(
            OptionChainRequest(underlying_symbol="QQQ", expiration_date=DAY + timedelta(days=1))
        )
        assert none == {}
        assert client.get_option_chain(OptionChainRequest(underlying_symbol="SPY")) == {}


def test_snapshots_by_symbol_on_either_feed(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=START) as server:
        client = option_data_client(server)
        now = server.account.now
        wanted = ["QQQ240729C00460000", "QQQ240729P00465000", "QQQ240730C00460000"]
        indicative = client.get_option_snapshot(OptionSnapshotRequest(symbol_or_symbols=wanted))
        opra = client.get_option_snapshot(
            OptionSnapshotRequest(symbol_or_symbols=wanted, feed=OptionsFeed.OPRA)
        )
        assert isinstance(indicative, dict) and isinstance(opra, dict)
        assert sorted(indicative) == sorted(opra) == wanted[:2]  # tomorrow's is not listed
        for symbol in wanted[:2]:
            late, live = indicative[symbol], opra[symbol]
            assert late.latest_trade is not None and live.latest_trade is not None
            assert late.latest_trade.timestamp == now - timedelta(minutes=15)
            assert live.latest_trade.timestamp == now
            assert late.latest_quote == live.latest_quote  # both feeds quote the same model


def test_indicative_trades_wait_fifteen_minutes_into_the_session(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=10) as server:  # 09:40
        client = option_data_client(server)
        symbol = "QQQ240729C00460000"
        early = client.get_option_snapshot(OptionSnapshotRequest(symbol_or_symbols=symbol))
        assert isinstance(early, dict)
        assert early[symbol].latest_quote is not None and early[symbol].latest_trade is None
        advance(server, 5)  # 09:45: a trade 15 minutes back, at the open
        later = client.get_option_snapshot(OptionSnapshotRequest(symbol_or_symbols=symbol))
        assert isinstance(later, dict)
        trade = later[symbol].latest_trade
        opened = next(s.open for s in sample.calendar.sessions() if s.day == DAY)
        assert trade is not None and trade.timestamp == opened


def test_quotes_move_with_the_underlying_and_the_clock(sample: BarFile) -> None:
    """A call's mid rises and falls with the underlying; at the same price, time decays it."""
    with running_emulator(sample, start_bar=START) as server:
        market = server.account.option_market
        contract = instrument_of("QQQ240729C00462000")
        now = server.account.now
        spot = server.account.mark("QQQ")
        here = market.quote(contract, spot, now).mid
        assert market.quote(contract, spot + 1, now).mid > here
        assert market.quote(contract, spot - 1, now).mid < here
        assert market.quote(contract, spot, now + timedelta(hours=2)).mid < here
        settled = market.quote(contract, spot, now + timedelta(days=1))  # after the close
        intrinsic = max(market.settlement_price(contract) - 462, Decimal(0))
        assert settled.bid <= intrinsic <= settled.ask


def test_volatility_is_realized_from_the_bars_or_set(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=START) as server:
        market = server.account.option_market
        realized = market.volatility("QQQ")
        assert 0.05 < realized < 1 and realized != market.settings.fallback_volatility
    fixed = EmulatorOptions(option_settings=OptionSettings(volatility=0.5))
    with running_emulator(sample, start_bar=START, options=fixed) as server:
        assert server.account.option_market.volatility("QQQ") == 0.5
        quote = option_data_client(server).get_option_snapshot(
            OptionSnapshotRequest(symbol_or_symbols="QQQ240729C00470000")
        )
        assert isinstance(quote, dict)
        wide = quote["QQQ240729C00470000"].latest_quote
        assert wide is not None and wide.ask_price > 0.5  # far dearer than at ~20 %
    with running_emulator(sample, start_bar=5) as server:  # too few returns yet
        market = server.account.option_market
        assert market.volatility("QQQ") == market.settings.fallback_volatility


def test_snapshot_answers_follow_the_market_data_spec(sample: BarFile) -> None:
    paid = DataOptions(plan="sip")
    with running_emulator(sample, start_bar=START, data=paid) as server:
        chain = checked_get(server, "/v1beta1/options/snapshots/QQQ", limit="5").json()
        assert len(chain["snapshots"]) == 5 and chain["next_page_token"] is not None
        rest = checked_get(
            server, "/v1beta1/options/snapshots/QQQ", page_token=chain["next_page_token"]
        ).json()
        assert len(rest["snapshots"]) == 95 and rest["next_page_token"] is None
        assert not set(chain["snapshots"]) & set(rest["snapshots"])
        first = next(iter(chain["snapshots"].values()))
        assert first["latestTrade"]["t"] == first["latestQuote"]["t"]  # paid plan: OPRA
        symbols = ",".join(sorted(chain["snapshots"]))
        by_symbol = checked_get(server, "/v1beta1/options/snapshots", symbols=symbols).json()
        assert by_symbol == {"snapshots": chain["snapshots"], "next_page_token": None}
        later = (server.account.now + timedelta(minutes=1)).isoformat()
        assert checked_get(
            server, "/v1beta1/options/snapshots/QQQ", updated_since=later
        ).json() == {"snapshots": {}, "next_page_token": None}
        too_many = ",".join(f"QQQ240729C00{400 + n}000" for n in range(101))
        for path, query in (
            ("/v1beta1/options/snapshots", {"symbols": too_many}),
            ("/v1beta1/options/snapshots", {}),
            ("/v1beta1/options/snapshots/QQQ", {"feed": "sip"}),
            ("/v1beta1/options/snapshots/QQQ", {"limit": "1001"}),
            ("/v1beta1/options/snapshots/QQQ", {"type": "both"}),
            ("/v1beta1/options/snapshots/QQQ", {"strike_price_gte": "x"}),
            ("/v1beta1/options/snapshots/QQQ", {"expiration_date": "2024-13-01"}),
        ):
            assert checked_get(server, path, **query).status_code == 400, (path, query)


def test_contract_answers_follow_the_trading_spec_before_and_after_expiry(
    sample: BarFile,
) -> None:
    with running_emulator(sample, start_bar=SESSION - 1) as server:
        checked_get(server, "/v2/options/contracts", show_deliverables="true", limit="2")
        assert checked_get(server, "/v2/options/contracts/QQQ240729P00470000").status_code == 200
        assert checked_get(server, "/v2/options/contracts/QQQ240729P00870000").status_code == 404
        advance(server, 1)
        gone = checked_get(server, "/v2/options/contracts", status="inactive", limit="1").json()
        assert gone["option_contracts"][0]["status"] == "inactive"
        assert gone["option_contracts"][0]["open_interest_date"] == "2024-07-26"
        expired = checked_get(
            server, "/v1beta1/options/snapshots", symbols="QQQ240729C00460000"
        ).json()["snapshots"]["QQQ240729C00460000"]
        assert "impliedVolatility" not in expired  # no time left to imply one from
        close = sample.bars[SESSION - 1].close
        assert expired["latestQuote"]["bp"] <= max(close - 460, 0) <= expired["latestQuote"]["ap"]
        assert expired["latestQuote"]["t"].startswith("2024-07-29T20:00:00")  # the close
