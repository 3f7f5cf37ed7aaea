"""The option desks of a backtest or replay: they answer the engine's contract requests and
quote held contracts, from the pricing model or from a user's quote file.

Both implement `core.broker.SimulatedDesk`: the simulation shell shows them each bar of the
underlying (`see_open`, `see_close`), because a premium depends on the underlying's price at
that moment and the model's volatility on its recent bars. Both pick the strike the same way
(`chain.parse_strike_rule` + `choose_strike`) and say why when they cannot
(`ContractUnavailable`): the engine then skips the entry with that reason.

- `ModelDesk`: the day's chain is `strike_grid` around the underlying, each contract priced by
  `OptionModel` at the request's moment, with a set volatility or the underlying's realized
  one (`volatility.RealizedVolatility`); its quotes say `PremiumSource.MODEL`.
- `FileDesk`: the contracts of a `QuoteBook` with a quote in force; real bid/ask, and the
  delta a delta rule needs implied from the mid by the model; `PremiumSource.FILE`.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from decimal import Decimal

from ict_trader.core.bars import Bar
from ict_trader.core.calendar import NyseCalendar
from ict_trader.core.contracts import ContractQuote, PremiumSource
from ict_trader.core.events import ContractQuoted, ContractUnavailable, RequestContract
from ict_trader.core.instruments import Instrument, instrument_of, option
from ict_trader.errors import ConfigError
from ict_trader.options.chain import (
    DeltaTarget,
    StrikeRule,
    choose_strike,
    parse_strike_rule,
    strike_grid,
)
from ict_trader.options.pricing import OptionModel, OptionQuote, Spread
from ict_trader.options.quotes import QuoteBook, load_quotes
from ict_trader.options.settings import OptionsSettings, Pricing
from ict_trader.options.volatility import RealizedVolatility

# The fewest returns a realized volatility is trusted on: half an hour of 1-minute bars. Fewer
# (the first minutes of a data file) give an estimate too noisy to price with.
MIN_RETURNS = 30


class _Underlyings:
    """The underlyings' latest prices, as the shell shows them bar by bar."""

    def __init__(self) -> None:
        self.spot: dict[str, float] = {}

    def see_open(self, bar: Bar, symbol: str) -> None:
        self.spot[symbol] = bar.open

    def see_close(self, bar: Bar, symbol: str) -> None:
        self.spot[symbol] = bar.close


def _rule(request: RequestContract) -> StrikeRule | str:
    try:
        return parse_strike_rule(request.strike_rule)
    except ConfigError as exc:
        return str(exc)


def _unavailable(request: RequestContract, reason: str) -> ContractUnavailable:
    return ContractUnavailable(request.time, request.request_id, reason)


def _as_contract_quote(quote: OptionQuote, source: PremiumSource) -> ContractQuote:
    delta = quote.greeks.delta if quote.greeks is not None else None
    return ContractQuote(quote.symbol, quote.time, quote.bid, quote.ask, source, delta, quote.iv)


class ModelDesk(_Underlyings):
    """Model-priced contracts: `volatility` None means the underlying's realized volatility
    over the last `window` returns (at least `MIN_RETURNS` of them)."""

    def __init__(
        self,
        model: OptionModel,
        *,
        volatility: float | None = None,
        window: int = 390,
        strike_step: Decimal = Decimal(1),
        strike_count: int = 10,
    ) -> None:
        super().__init__()
        self.model = model
        self.volatility = volatility
        self.window = window
        self.strike_step = strike_step
        self.strike_count = strike_count
        self._realized: dict[str, RealizedVolatility] = {}
        self._vol_now: dict[str, float | None] = {}  # cached until the next close
        self._last: dict[str, ContractQuote] = {}  # the last quote per contract (broker, marks)

    def see_close(self, bar: Bar, symbol: str) -> None:
        self.spot[symbol] = bar.close
        if self.volatility is None:
            tracker = self._realized.get(symbol)
            if tracker is None:
                tracker = self._realized[symbol] = RealizedVolatility(self.window)
            tracker.update(bar)
            self._vol_now.pop(symbol, None)

    def vol(self, underlying: str) -> float | str:
        """The volatility to price `underlying`'s options at, or why there is none yet."""
        if self.volatility is not None:
            return self.volatility
        if underlying in self._vol_now:
            cached = self._vol_now[underlying]
            if cached is not None:
                return cached
        tracker = self._realized.get(underlying)
        returns = tracker.returns if tracker is not None else 0
        value = tracker.value if tracker is not None else None
        if tracker is None or returns < min(MIN_RETURNS, self.window) or not value:
            self._vol_now[underlying] = None
            return (
                f"the realized volatility of {underlying} needs {min(MIN_RETURNS, self.window)} "
                f"minutes of its bars, has {returns}"
            )
        self._vol_now[underlying] = value
        return value

    def quote_contract(self, request: RequestContract) -> ContractQuoted | ContractUnavailable:
        rule = _rule(request)
        if isinstance(rule, str):
            return _unavailable(request, rule)
        vol = self.vol(request.underlying)
        if isinstance(vol, str):
            return _unavailable(request, vol)
        spot = float(request.spot)
        if not (math.isfinite(spot) and spot > 0):
            return _unavailable(request, f"the underlying's price {request.spot} is not positive")
        probe = option(request.underlying, request.expiry, request.right, Decimal(1))
        if self.model.years(probe, request.time) <= 0:
            return _unavailable(request, f"contracts expiring {request.expiry} have expired")
        strikes = self._grid(request.spot)
        deltas = None
        if isinstance(rule, DeltaTarget):
            deltas = {
                strike: self.model.value(
                    option(request.underlying, request.expiry, request.right, strike),
                    spot,
                    request.time,
                    vol,
                ).greeks.delta
                for strike in strikes
            }
        strike = choose_strike(rule, request.right, request.spot, strikes, deltas)
        if strike is None:
            return _unavailable(
                request,
                f"no {request.right} strike qualifies for '{rule}' among the modelled "
                f"{strikes[0]}..{strikes[-1]}",
            )
        contract = option(request.underlying, request.expiry, request.right, strike)
        quote = self.model.quote(contract, spot, request.time, vol)
        return ContractQuoted(
            request.time, request.request_id, _as_contract_quote(quote, PremiumSource.MODEL)
        )

    def quote(self, symbol: str, at: datetime) -> ContractQuote | None:
        last = self._last.get(symbol)
        if last is not None and last.time == at:
            return last  # the broker's mark and the engine's are the same quote
        contract = instrument_of(symbol)
        spot = self.spot.get(contract.root)
        if not contract.is_option or spot is None:
            return None
        vol = self.vol(contract.root)
        if isinstance(vol, str):
            return None
        quoted = _as_contract_quote(self.model.quote(contract, spot, at, vol), PremiumSource.MODEL)
        self._last[symbol] = quoted
        return quoted

    def _grid(self, spot: Decimal) -> list[Decimal]:
        return strike_grid(spot, step=self.strike_step, count=self.strike_count)


class FileDesk(_Underlyings):
    """Contracts and quotes from a user's quote file (real prices)."""

    def __init__(self, book: QuoteBook, model: OptionModel) -> None:
        super().__init__()
        self.book = book
        self.model = model  # only for the deltas and IVs a real quote implies
        self._chains: dict[tuple[str, object, object], list[Instrument]] = {}

    def quote_contract(self, request: RequestContract) -> ContractQuoted | ContractUnavailable:
        rule = _rule(request)
        if isinstance(rule, str):
            return _unavailable(request, rule)
        key = (request.underlying, request.expiry, request.right)
        chain = self._chains.get(key)
        if chain is None:
            chain = self._chains[key] = self.book.contracts(*key)
        name = self.book.path.name
        if not chain:
            return _unavailable(
                request,
                f"{name} has no {request.right}s on {request.underlying} expiring {request.expiry}",
            )
        quoted: dict[Decimal, tuple[Instrument, OptionQuote]] = {}
        for contract in chain:
            found = self.book.quote_at(contract.symbol, request.time)
            if found is not None and found.ask > 0 and contract.strike is not None:
                quoted[contract.strike] = (contract, found)
        if not quoted:
            return _unavailable(
                request,
                f"{name} has no {request.right} quote with an ask on {request.underlying} "
                f"in force at {request.time:%Y-%m-%d %H:%M}Z "
                f"(a quote counts for {self.book.staleness // timedelta(minutes=1)} minutes)",
            )
        spot = float(request.spot)
        deltas = None
        if isinstance(rule, DeltaTarget):
            deltas = {
                strike: self._delta_iv(contract, spot, request.time, found)[0]
                for strike, (contract, found) in quoted.items()
            }
        strike = choose_strike(rule, request.right, request.spot, quoted, deltas)
        if strike is None:
            return _unavailable(
                request,
                f"no {request.right} strike in {name} qualifies for '{rule}' "
                f"(quoted: {min(quoted)}..{max(quoted)})",
            )
        contract, found = quoted[strike]
        delta, iv = self._delta_iv(contract, spot, request.time, found)
        chosen = ContractQuote(
            found.symbol, found.time, found.bid, found.ask, PremiumSource.FILE, delta, iv
        )
        return ContractQuoted(request.time, request.request_id, chosen)

    def quote(self, symbol: str, at: datetime) -> ContractQuote | None:
        found = self.book.quote_at(symbol, at)
        if found is None or found.ask <= 0:
            return None  # no quote in force, or "no market" (0 / 0)
        return ContractQuote(symbol, found.time, found.bid, found.ask, PremiumSource.FILE)

    def _delta_iv(
        self, contract: Instrument, spot: float, moment: datetime, found: OptionQuote
    ) -> tuple[float | None, float | None]:
        """The delta and volatility the quote's mid implies (None where none does: a price
        with no time value, or expired)."""
        if not (math.isfinite(spot) and spot > 0):
            return None, None
        implied = self.model.implied(contract, spot, moment, float(found.mid))
        if implied is None:
            return None, None
        return implied.greeks.delta, implied.volatility


def build_desk(
    settings: OptionsSettings, calendar: NyseCalendar | None = None
) -> ModelDesk | FileDesk:
    """The desk `settings` describe (a quote file is read and checked now: QuoteDataError or
    ConfigError, one line, before anything runs)."""
    model = OptionModel(
        rate=float(settings.rate),
        dividend=float(settings.dividend),
        spread=Spread(settings.spread_absolute, settings.spread_relative),
        calendar=calendar,
    )
    if settings.pricing is Pricing.FILE:
        if settings.quotes is None:
            raise ConfigError(
                'options.pricing = "file" needs options.quotes (or --option-quotes FILE)'
            )
        staleness = timedelta(minutes=settings.staleness_minutes)
        return FileDesk(load_quotes(settings.quotes, staleness=staleness), model)
    return ModelDesk(
        model,
        volatility=None if settings.volatility is None else float(settings.volatility),
        window=settings.realized_window_minutes,
        strike_step=settings.strike_step,
        strike_count=settings.strike_count,
    )
