"""Platform configuration: one validated pydantic model per environment file.

A file may name a base file with `extends:`; mappings merge key by key, the file winning (a
mapping that names another `backend` replaces the base's whole mapping).
`${VAR}` anywhere in a string value is replaced by that environment variable (for secrets).
An unknown key, a wrong type or a missing variable stops start-up with the file, the key path
and what was expected (`ConfigError`). A message quotes a wrong value only when it was written in
the file, cut short; a value from `${VAR}` is never shown, since it may be a secret.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from trading_core.decimals import shorten

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Where a value sits in the file: ("instruments", "0", "symbol").
KeyPath = tuple[str, ...]

PositiveDecimal = Annotated[Decimal, Field(gt=0)]
NonNegativeDecimal = Annotated[Decimal, Field(ge=0)]
Port = Annotated[int, Field(ge=0, le=65535, description="0 picks a free port")]
Name = Annotated[str, StringConstraints(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")]


class ConfigError(Exception):
    """The configuration cannot be used; the message says where and why."""


# A rule across keys whose message names keys, venues or instruments, never a value given.
_RULE = "config_rule"


def _broken(message: str) -> PydanticCustomError:
    return PydanticCustomError(_RULE, message)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceEndpoint(_Strict):
    """Where one gRPC service listens."""

    host: str = "127.0.0.1"
    port: Port


# gRPC workers always left for unary calls beside `max_streams` open streams.
UNARY_WORKERS = 4


class Services(_Strict):
    order_management: ServiceEndpoint = ServiceEndpoint(port=50051)
    execution_router: ServiceEndpoint = ServiceEndpoint(port=50052)
    position_management: ServiceEndpoint = ServiceEndpoint(port=50053)
    market_data: ServiceEndpoint = ServiceEndpoint(port=50054)
    max_workers: int = Field(32, ge=2, le=1024, description="gRPC worker threads per service")
    max_streams: int = Field(
        8, ge=1, le=1024, description="open streaming calls per service; more are refused"
    )
    shutdown_grace_s: float = Field(5.0, ge=0, description="seconds in-flight calls get on stop")

    @model_validator(mode="after")
    def _workers_left_for_unary_calls(self) -> Services:
        # Each open stream holds a worker for its life: unary calls need workers of their own.
        needed = self.max_streams + UNARY_WORKERS
        if self.max_workers < needed:
            raise ValueError(
                f"max_workers ({self.max_workers}) must be at least max_streams + "
                f"{UNARY_WORKERS} ({needed}): each open stream holds a worker, and calls such as "
                "SubmitOrder need the rest; raise max_workers or lower max_streams"
            )
        return self


class Journal(_Strict):
    """Each service's durable log and state (SQLite), what it rebuilds from on start."""

    path: Path = Field(Path("data"), description="folder of one <service>.journal file each")


class _Warehouse(_Strict):
    feed: Literal["process", "thread"] = Field(
        "process",
        description="where the warehouse is fed from the journals: process, one of its own "
        "beside the services (its own interpreter lock: it keeps up under load); thread, in "
        "the services' process (one process fewer, but under load it falls behind)",
    )


class DuckDBDatabase(_Warehouse):
    """The analytical store, fed from the journals; never on the order path."""

    backend: Literal["duckdb"]
    path: Path = Field(Path("data"), description="folder of one <service>.duckdb file each")
    # Half a second keeps an event's wait for the analysts under 2 s under load (make bench,
    # warehouse_feed); each feed holds the file for a few milliseconds.
    flush_interval_ms: int = Field(
        500, ge=1, le=60_000, description="how often the journal's new events are fed in"
    )
    batch_size: int = Field(5000, ge=1, le=1_000_000, description="events per feed at most")


class BigQueryDatabase(_Warehouse):
    """The analytical store in BigQuery (store/bigquery.py), fed from the journals through the
    Storage Write API; never on the order path. Terraform owns the dataset's tables in the
    cloud; the store creates what is missing and adds missing columns."""

    backend: Literal["bigquery"]
    project: Name
    dataset: Name
    location: str = Field("US", min_length=1, description="the dataset's location")
    flush_interval_ms: int = Field(
        5000, ge=1, le=60_000, description="how often the journal's new events are fed in"
    )
    batch_size: int = Field(
        5000, ge=1, le=20_000, description="events per feed at most (an append is <= 10 MB)"
    )
    state_path: Path = Field(
        Path("data"),
        description="folder of one <service>.bigquery.json each (write streams and offsets): "
        "keep it with the journals",
    )
    endpoint: str | None = Field(
        None, description="REST endpoint of an emulator (http://host:port); unset: Google"
    )
    write_endpoint: str | None = Field(
        None, description="Storage Write API endpoint of an emulator (host:port); unset: Google"
    )


_ATTEMPTS = Field(
    5, ge=1, le=1000, description="deliveries of a failing message before it is dead-lettered"
)


class MemoryMessaging(_Strict):
    backend: Literal["memory"]
    max_delivery_attempts: int = _ATTEMPTS


class PubSubMessaging(_Strict):
    backend: Literal["pubsub"]
    max_delivery_attempts: int = _ATTEMPTS
    project: Name
    topic_prefix: str = Field("trading-", pattern=r"^[A-Za-z0-9._-]*$")
    emulator_host: str | None = Field(None, description="host:port of the Pub/Sub emulator")
    create_topology: bool = Field(
        True,
        description="create missing topics and subscriptions at start; false where Terraform "
        "owns them and the services may not create any (per-instance subscriptions excepted)",
    )


# The longest latency the paper venue holds an order back (a lognormal tail is cut here).
MAX_LATENCY_MS = 60_000


class SimulationLatency(_Strict):
    """How long each new order takes to reach the paper venue, drawn per order from the venue's
    seeded random source: `fixed` is always `mean_ms`; `uniform` is even between `mean_ms -
    jitter_ms` and `mean_ms + jitter_ms`; `lognormal` has mean `mean_ms` and a logarithm with
    standard deviation `sigma`, cut at MAX_LATENCY_MS."""

    distribution: Literal["fixed", "uniform", "lognormal"] = "fixed"
    mean_ms: int = Field(0, ge=0, le=MAX_LATENCY_MS, description="the latency's mean")
    jitter_ms: int = Field(0, ge=0, le=MAX_LATENCY_MS, description="uniform: half its width")
    sigma: float = Field(0.5, gt=0, le=3, description="lognormal: the log's standard deviation")

    @model_validator(mode="after")
    def _never_negative(self) -> SimulationLatency:
        if self.distribution == "uniform" and self.jitter_ms > self.mean_ms:
            raise ValueError(
                f"uniform latency: jitter_ms ({self.jitter_ms}) must be at most mean_ms "
                f"({self.mean_ms}), since a latency cannot be negative"
            )
        if self.distribution == "lognormal" and self.mean_ms == 0:
            raise ValueError("lognormal latency: mean_ms must be positive")
        return self


class SimulationVenue(_Strict):
    """The paper venue (see README "The paper venue"). The defaults behave as the venue did
    before depth, impact, latency draws and rejects existed: touch-only matching, fixed
    slippage, one fee for maker and taker."""

    slippage_bps: NonNegativeDecimal = Decimal("1")
    slippage_model: Literal["fixed", "linear", "sqrt"] = Field(
        "fixed", description="how slippage grows with size over the touch's displayed size"
    )
    fill_delay_ms: int = Field(
        0, ge=0, le=MAX_LATENCY_MS, description="a fixed latency; `latency` replaces it"
    )
    latency: SimulationLatency | None = None
    fee_bps: NonNegativeDecimal = Decimal("10")
    maker_fee_bps: NonNegativeDecimal | None = Field(None, description="unset: fee_bps")
    taker_fee_bps: NonNegativeDecimal | None = Field(None, description="unset: fee_bps")
    book_levels: int = Field(0, ge=0, le=100, description="0: touch only, no depth model")
    level_spacing_ticks: int = Field(1, ge=1, le=10_000, description="ticks between levels")
    level_size_growth: Decimal = Field(
        Decimal("1"), gt=0, le=10, description="each level's size over the one before it"
    )
    impact_bps: NonNegativeDecimal = Field(
        Decimal("0"), description="move against a taker per unit of size over displayed size"
    )
    impact_half_life_ms: int = Field(1000, ge=1, le=86_400_000, description="impact's decay")
    # A probability, not money: a float, compared with the venue's random draws.
    reject_probability: float = Field(
        0.0, ge=0, le=1, description="chance a new order is rejected at random"
    )
    seed: int = Field(0, description="seed of the venue's random draws (latency, rejects)")

    @model_validator(mode="after")
    def _one_latency(self) -> SimulationVenue:
        if self.latency is not None and self.fill_delay_ms:
            raise ValueError(
                f"set either fill_delay_ms ({self.fill_delay_ms}, a fixed latency) or latency, "
                "not both; for a fixed latency with latency write distribution: fixed, mean_ms"
            )
        return self

    @property
    def order_latency(self) -> SimulationLatency:
        """The latency in force: `latency`, or `fill_delay_ms` as a fixed one."""
        if self.latency is not None:
            return self.latency
        return SimulationLatency(mean_ms=self.fill_delay_ms)

    @property
    def maker_fee(self) -> Decimal:
        return self.fee_bps if self.maker_fee_bps is None else self.maker_fee_bps

    @property
    def taker_fee(self) -> Decimal:
        return self.fee_bps if self.taker_fee_bps is None else self.taker_fee_bps


# A rate limit in the `limits` library's notation: "6000/minute", "100/10 seconds".
RateLimit = Annotated[
    str,
    StringConstraints(pattern=r"^[1-9][0-9]* ?(/|per) ?([1-9][0-9]* )?(second|minute|hour|day)s?$"),
]
# A venue's own name of an instrument: BTC/USDT (CCXT), BTCUSD (QuantConnect).
VenueSymbol = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:/-]{1,64}$")]
# What a venue's secret looks like in a config: `${VAR}`, never the value itself in a file.
Secret = Annotated[str, StringConstraints(min_length=1, max_length=512)]


class VenueResilience(_Strict):
    """How the router treats one venue's API: limits, timeouts, retries, circuit breaker."""

    execution_timeout_ms: int = Field(5000, ge=1, le=120_000, description="each call's timeout")
    retry_attempts: int = Field(
        3, ge=0, le=100, description="retries of a call that is safe to repeat (queries, cancels)"
    )
    retry_delay_ms: int = Field(
        100, ge=0, le=60_000, description="first backoff; doubles each retry, with jitter"
    )
    rate_limits: list[RateLimit] = Field(
        default_factory=list, description="request weight the venue allows, e.g. 6000/minute"
    )
    order_rate_limits: list[RateLimit] = Field(
        default_factory=list, description="new orders the venue allows, e.g. 100/10 seconds"
    )
    failure_threshold: int = Field(
        5, ge=1, le=1000, description="consecutive failed calls that open the circuit"
    )
    reset_timeout_ms: int = Field(
        30_000, ge=10, le=3_600_000, description="an open circuit lets a probe through after this"
    )


class _NetworkVenue(VenueResilience):
    """What every network venue block has besides its resilience."""

    taker_fee_bps: NonNegativeDecimal = Field(
        Decimal("10"),
        description="what smart routing adds to a venue's price (buys) or takes off it",
    )
    quote_source: Name | None = Field(
        None,
        description="the source of this venue's quotes on market-data, for smart routing "
        "(unset: the venue's kind, as the venue feed names its quotes)",
    )


class ExchangeVenue(_NetworkVenue):
    """A crypto exchange traded directly through CCXT."""

    kind: Literal["binance", "bybit"]
    environment: Literal["testnet", "live"] = Field(
        "testnet", description="testnet: CCXT's sandbox mode; live trades real money"
    )
    base_url: str | None = Field(None, description="another host for the REST API (a fake)")
    api_key: Secret = Field(description="${VAR}: from the environment (Secret Manager)")
    api_secret: Secret = Field(description="${VAR}: from the environment (Secret Manager)")
    symbols: dict[Name, VenueSymbol] = Field(
        min_length=1, description="our instrument -> the exchange's symbol, BTC-USD: BTC/USDT"
    )
    poll_interval_ms: int = Field(
        500, ge=10, le=60_000, description="how often orders are polled while the stream is down"
    )
    user_data_stream: bool = Field(
        True, description="reports from the exchange's private websocket; off: polling only"
    )
    stream_url: str | None = Field(
        None,
        description="another host for the private websocket (a fake); with base_url and none, "
        "no stream",
    )
    stream_poll_interval_ms: int = Field(
        30_000,
        ge=100,
        le=3_600_000,
        description="how often orders are reconciled by REST while the stream is up",
    )
    recv_window_ms: int = Field(
        5000, ge=100, le=60_000, description="how long the exchange may still execute a request"
    )
    native_stops: bool = Field(
        False,
        description="stop-market and stop-limit orders triggered by the last trade are held by "
        "the exchange (binance: STOP_LOSS, STOP_LOSS_LIMIT; bybit: spot conditional orders); "
        "false: order-management's emulator",
    )


class QuantConnectVenue(_NetworkVenue):
    """A live QuantConnect algorithm that takes our orders as live commands (API v2)."""

    kind: Literal["quantconnect"]
    base_url: str = "https://www.quantconnect.com/api/v2"
    user_id: Secret = Field(description="${VAR}: the QuantConnect user id")
    api_token: Secret = Field(description="${VAR}: the QuantConnect API token")
    project_id: int = Field(ge=1, description="the project of the live algorithm")
    symbols: dict[Name, VenueSymbol] = Field(
        min_length=1, description="our instrument -> the algorithm's ticker, BTC-USD: BTCUSD"
    )
    market: Name = Field("coinbase", description="LEAN's market of the tickers")
    security_type: Name = Field("crypto", description="LEAN's security type of the tickers")
    poll_interval_ms: int = Field(
        5000, ge=10, le=600_000, description="how often live orders are read"
    )
    lost_submit_window_ms: int = Field(
        900_000,
        ge=1000,
        le=86_400_000,
        description="a command whose answer was lost is sent again only if its order is still "
        "absent this long after it was sent",
    )


NetworkVenue = Annotated[ExchangeVenue | QuantConnectVenue, Field(discriminator="kind")]
# The venue kinds each execution mode may use.
MODE_KINDS = {"direct": {"binance", "bybit"}, "quantconnect": {"quantconnect"}}
SIMULATION_VENUE = "simulation"


class RoutingRule(_Strict):
    """Orders that match every key given go to the first of `venues` that can take them."""

    account: Name | None = None
    strategy: Name | None = None
    instrument: Name | None = None
    venues: list[Name] = Field(
        min_length=1, description="in order of preference: the next is tried when one is down"
    )
    smart: bool = Field(
        False,
        description="share each order across these venues on the best price net of fees",
    )

    def matches(self, account: str, strategy: str, instrument: str) -> bool:
        return all(
            want is None or want == have
            for want, have in (
                (self.account, account),
                (self.strategy, strategy),
                (self.instrument, instrument),
            )
        )


def _flat_day() -> list[Decimal]:
    return [Decimal(1)] * 24


class Algorithms(_Strict):
    """How the router works TWAP and VWAP orders."""

    slice_interval_ms: int = Field(
        60_000, ge=100, le=3_600_000, description="slice_count 0: one slice per this much time"
    )
    volume_profile: list[NonNegativeDecimal] = Field(
        default_factory=_flat_day,
        min_length=24,
        max_length=24,
        description="VWAP: the weight of each UTC hour's volume (hour 0 first); flat: as TWAP",
    )
    check_interval_ms: int = Field(
        100, ge=10, le=10_000, description="how often the router releases slices that are due"
    )

    @field_validator("volume_profile")
    @classmethod
    def _some_volume(cls, profile: list[Decimal]) -> list[Decimal]:
        if not any(profile):
            raise ValueError("at least one hour must have volume")
        return profile


class ShadowSimulation(_Strict):
    """Shadow simulation (README "Shadow simulation"): every order the router sends to a network
    venue is also run through a paper venue model of its own, configured as `simulation`."""

    enabled: bool = Field(
        False,
        description="model every order sent to a network venue on the paper venue too, to "
        "compare the model with the venue (direct and quantconnect modes)",
    )


class Execution(_Strict):
    mode: Literal["simulation", "quantconnect", "direct"] = "simulation"
    simulation: SimulationVenue = SimulationVenue()
    shadow: ShadowSimulation = ShadowSimulation()
    algorithms: Algorithms = Algorithms()
    venues: dict[Name, NetworkVenue] = Field(
        default_factory=dict, description="the network venues by name (direct, quantconnect)"
    )
    routing: list[RoutingRule] = Field(
        default_factory=list,
        description="first matching rule wins; no match: the venues in config order",
    )

    @model_validator(mode="after")
    def _venues_fit_the_mode(self) -> Execution:
        if self.mode == "simulation":
            if self.venues:
                raise _broken(
                    "venues: the simulation mode trades on the paper venue only; "
                    "set mode: direct or quantconnect to use them"
                )
            if self.shadow.enabled:
                raise _broken(
                    "shadow.enabled: the simulation mode trades on the paper venue itself, "
                    "there is nothing to shadow; it is for the direct and quantconnect modes"
                )
        else:
            allowed = MODE_KINDS[self.mode]
            if not self.venues:
                raise _broken(f"venues: mode {self.mode} needs at least one venue")
            wrong = sorted(n for n, v in self.venues.items() if v.kind not in allowed)
            if wrong:
                raise _broken(
                    f"venues: {', '.join(wrong)} cannot be used in mode {self.mode} "
                    f"(kinds allowed: {', '.join(sorted(allowed))})"
                )
        known = set(self.venue_names())
        for number, rule in enumerate(self.routing):
            unknown = sorted(set(rule.venues) - known)
            if unknown:
                raise _broken(
                    f"routing.{number}.venues: unknown venue(s) {', '.join(unknown)}; "
                    f"configured: {', '.join(sorted(known))}"
                )
        return self

    def venue_names(self) -> list[str]:
        """Every venue orders can go to, in config order."""
        return list(self.venues) if self.venues else [SIMULATION_VENUE]

    def holds_stops(self, account: str, strategy: str, instrument: str) -> bool:
        """Whether every venue an order may go to holds stop orders natively (so that
        order-management sends such a stop on instead of holding it)."""
        names, smart = self.route(account, strategy, instrument)
        venues = [self.venues.get(name) for name in names]
        return not smart and all(
            isinstance(venue, ExchangeVenue) and venue.native_stops for venue in venues
        )

    def route(self, account: str, strategy: str, instrument: str) -> tuple[list[str], bool]:
        """The venues an order may go to, in order of preference; and whether it is shared
        across them (smart routing)."""
        for rule in self.routing:
            if rule.matches(account, strategy, instrument):
                return rule.venues, rule.smart
        return self.venue_names(), False


class AccountLimits(_Strict):
    max_order_value: PositiveDecimal
    max_daily_orders: int = Field(ge=1)
    min_order_size: NonNegativeDecimal = Decimal("0")


class RiskLimits(_Strict):
    """One scope's pre-trade limits (an account's, or a strategy's within an account); unset
    means no limit. Quantities are in the instrument's base units, values in quote currency.
    Open orders count as if they filled."""

    max_order_quantity: PositiveDecimal | None = Field(None, description="one order's quantity")
    max_position_quantity: PositiveDecimal | None = Field(
        None, description="the position in one instrument, long or short"
    )
    max_position_value: PositiveDecimal | None = Field(
        None, description="the position in one instrument at its mark, long or short"
    )
    max_gross_exposure: PositiveDecimal | None = Field(
        None, description="the sum over instruments of each position's value, long or short"
    )
    max_net_exposure: PositiveDecimal | None = Field(
        None, description="the value of the longs less the shorts, either way"
    )
    max_open_orders: int | None = Field(None, ge=1, description="orders open at once")
    # An account's only (a strategy has no equity of its own).
    max_leverage: PositiveDecimal | None = Field(
        None, description="gross exposure over equity (an account's)"
    )
    max_concentration_percent: PositiveDecimal | None = Field(
        None, description="one instrument's worst-case value, in % of equity (an account's)"
    )
    max_daily_loss: PositiveDecimal | None = Field(
        None,
        description="equity lost since the UTC day's start; reaching it moves the account to "
        "risk.on_breach (an account's)",
    )
    max_drawdown_percent: PositiveDecimal | None = Field(
        None,
        description="equity below its high-water mark, in %; reaching it moves the account to "
        "risk.on_breach (an account's)",
    )
    cooldown_ms: int | None = Field(
        None,
        ge=1,
        description="after a fill in an instrument, how long before an order that would make "
        "the position there larger",
    )
    loss_cooldown_ms: int | None = Field(
        None,
        ge=1,
        description="after a fill that realized a loss in an instrument, how long before an "
        "order that would make the position there larger",
    )
    require_stop_loss: bool = Field(
        False,
        description="an order that would make a position larger must carry a stop-loss "
        "(a bracket's or a signal's)",
    )

    def overridden_by(self, other: RiskLimits | None) -> RiskLimits:
        """These limits with the ones `other` sets replacing them."""
        if other is None:
            return self
        return self.model_copy(
            update={name: getattr(other, name) for name in other.model_fields_set}
        )


class RiskGroup(_Strict):
    """A portfolio limit: limits on what a group of accounts and strategies holds together
    (its orders and fills summed). Empty `accounts` or `strategies`: every one."""

    accounts: list[Name] = Field(default_factory=list, description="the accounts it sums")
    strategies: list[Name] = Field(default_factory=list, description="the strategies it sums")
    limits: RiskLimits = Field(RiskLimits(), description="the group's limits")

    @model_validator(mode="after")
    def _no_equity_limits(self) -> RiskGroup:
        equity = {"max_leverage", "max_concentration_percent", "max_daily_loss"}
        equity.add("max_drawdown_percent")
        if given := sorted(equity & self.limits.model_fields_set):
            raise ValueError(
                f"{', '.join(given)} are measured against an account's equity: set them per "
                "account (risk.account, risk.accounts.<id>), not for a group"
            )
        return self

    def covers(self, account_id: str, strategy_id: str) -> bool:
        return (not self.accounts or account_id in self.accounts) and (
            not self.strategies or strategy_id in self.strategies
        )


class Risk(_Strict):
    """Pre-trade risk (see order_management.domain.risk): limits per account and per strategy,
    a price collar and market-data gates."""

    account: RiskLimits = Field(RiskLimits(), description="every account's limits")
    accounts: dict[Name, RiskLimits] = Field(
        default_factory=dict, description="an account's own limits, replacing those it sets"
    )
    strategy: RiskLimits = Field(
        RiskLimits(), description="every strategy's limits, within each account"
    )
    strategies: dict[Name, RiskLimits] = Field(
        default_factory=dict, description="a strategy's own limits, replacing those it sets"
    )
    price_collar_bps: PositiveDecimal | None = Field(
        None,
        description="how far past the touch a limit price may be (buy above the ask, sell "
        "below the bid)",
    )
    max_quote_age_ms: int | None = Field(
        None, ge=1, description="an order needs its instrument's quote to be younger"
    )
    max_spread_bps: PositiveDecimal | None = Field(
        None, description="an order needs its instrument's spread (of the mid) to be narrower"
    )
    groups: dict[Name, RiskGroup] = Field(
        default_factory=dict,
        description="portfolio limits over groups of accounts and strategies (quantity, value, "
        "exposure and open-order limits, cooldowns and stop-loss rules; not those measured "
        "against an account's equity)",
    )
    on_breach: Literal["reducing", "halted"] = Field(
        "reducing", description="the state a daily-loss or drawdown breach moves an account to"
    )

    def account_limits(self, account_id: str) -> RiskLimits:
        return self.account.overridden_by(self.accounts.get(account_id))

    def groups_of(self, account_id: str, strategy_id: str) -> list[str]:
        """The groups whose limits an order of this account and strategy counts toward."""
        return [
            name for name, group in self.groups.items() if group.covers(account_id, strategy_id)
        ]

    def strategy_limits(self, strategy_id: str) -> RiskLimits:
        return self.strategy.overridden_by(self.strategies.get(strategy_id))


class Accounts(_Strict):
    """Each account's cash when it starts trading, in the quote currency."""

    starting_cash: NonNegativeDecimal = Decimal("100000")
    starting_cash_per_account: dict[Name, NonNegativeDecimal] = Field(
        default_factory=dict, description="an account's own starting cash"
    )

    def starting_cash_of(self, account_id: str) -> Decimal:
        return self.starting_cash_per_account.get(account_id, self.starting_cash)


class OrderDefaults(_Strict):
    default_order_type: Literal["market", "limit"] = "market"
    time_in_force: Literal["gtc", "ioc", "fok", "day"] = "gtc"
    max_slippage_bps: NonNegativeDecimal = Decimal("50")
    rate_limit_orders: int = Field(100, ge=1)
    rate_limit_window_ms: int = Field(1000, ge=1)


SizingMethod = Literal["fixed_quantity", "fixed_notional", "percent_of_equity", "risk_per_trade"]
# A percent of equity: more than 0, at most all of it.
Percent = Annotated[Decimal, Field(gt=0, le=100)]
# The key of the amount each sizing method needs.
SIZING_AMOUNTS: dict[str, str] = {
    "fixed_quantity": "quantity",
    "fixed_notional": "notional",
    "percent_of_equity": "percent_of_equity",
    "risk_per_trade": "risk_percent",
}


class _SizingKeys(_Strict):
    """The keys of a signal sizing policy (see SignalSizing)."""

    method: SizingMethod = Field(
        "fixed_notional",
        description="fixed_quantity, fixed_notional, percent_of_equity or risk_per_trade",
    )
    quantity: PositiveDecimal | None = Field(None, description="fixed_quantity: units per signal")
    notional: PositiveDecimal | None = Field(
        None, description="fixed_notional: quote currency per signal, divided by the price"
    )
    percent_of_equity: Percent | None = Field(
        None, description="percent_of_equity: % of the account's equity, divided by the price"
    )
    risk_percent: Percent | None = Field(
        None,
        description="risk_per_trade: % of the account's equity lost if the stop-loss is hit, "
        "divided by the distance to it",
    )
    scale_by_confidence: bool = Field(
        True, description="multiply the size by the signal's confidence (0 to 1, empty is 1)"
    )
    max_quantity: PositiveDecimal | None = Field(None, description="cap on a signal's quantity")
    max_notional: PositiveDecimal | None = Field(
        None, description="cap on a signal's value at the price it is sized at"
    )


class StrategySizing(_SizingKeys):
    """A strategy's own signal sizing: the keys it sets replace the shared ones."""


class SignalSizing(_SizingKeys):
    """How a signal becomes an order quantity (order_management.domain.sizing): the method's
    amount, times the signal's confidence when scale_by_confidence, capped by max_quantity and
    max_notional, rounded down to the instrument's step. `strategies` gives a strategy keys of
    its own; each combination is checked here, at start-up."""

    strategies: dict[Name, StrategySizing] = Field(
        default_factory=dict, description="a strategy's own sizing, replacing the keys it sets"
    )

    @model_validator(mode="after")
    def _amount_for_method(self) -> SignalSizing:
        _check_sizing(self, "")
        for strategy_id in self.strategies:
            _check_sizing(self.for_strategy(strategy_id), f"strategies.{strategy_id}: ")
        return self

    def for_strategy(self, strategy_id: str) -> SignalSizing:
        """The sizing of a strategy's signals: these keys with its own replacing them."""
        own = self.strategies.get(strategy_id)
        if own is None:
            return self
        update: dict[str, Any] = {name: getattr(own, name) for name in own.model_fields_set}
        return self.model_copy(update={**update, "strategies": {}})

    @property
    def uses_equity(self) -> bool:
        return self.method in ("percent_of_equity", "risk_per_trade")


def _check_sizing(sizing: SignalSizing, where: str) -> None:
    needed = SIZING_AMOUNTS[sizing.method]
    if getattr(sizing, needed) is None:
        raise ValueError(f"{where}method {sizing.method} needs '{needed}'")


class Instrument(_Strict):
    symbol: Name
    tick_size: PositiveDecimal
    step_size: PositiveDecimal
    min_notional: NonNegativeDecimal = Decimal("0")
    initial_price: PositiveDecimal = Field(description="start of the synthetic feed's walk")
    quote_decimals: int = Field(
        2, ge=0, le=18, description="decimals of the quote currency: fees and P&L are rounded to it"
    )
    session_end: dt.time = Field(
        dt.time(0, 0), description="end of the trading day, UTC (HH:MM): when DAY orders expire"
    )
    status: Literal["trading", "reduce_only", "halted", "closed"] = Field(
        "trading", description="the trading status the synthetic feed's quotes report"
    )


class MarketData(_Strict):
    """Where quotes come from. `synthetic`: a seeded random walk (seed … quote_size). `venue`: an
    exchange's public market data through CCXT (venue … timeout_ms; no API keys needed), polled
    and conflated by the market-data producer (market_data.venue_feed)."""

    source: Literal["synthetic", "venue"] = "synthetic"
    seed: int = 42
    interval_ms: int = Field(
        100, ge=1, le=60_000, description="synthetic: one quote per instrument per tick"
    )
    volatility_bps: NonNegativeDecimal = Field(Decimal("5"), description="step of the walk")
    spread_bps: PositiveDecimal = Decimal("2")
    quote_size: PositiveDecimal = Decimal("10")
    venue: Literal["binance", "bybit"] | None = Field(
        None, description="venue: the exchange (CCXT id) whose spot quotes are read"
    )
    sandbox: bool = Field(False, description="venue: the exchange's testnet (CCXT sandbox mode)")
    base_url: str | None = Field(
        None, description="venue: another host for the exchange's REST API (the tests' fakes)"
    )
    symbols: dict[Name, VenueSymbol] = Field(
        default_factory=dict,
        description="venue: each instrument's CCXT spot symbol, e.g. BTC-USD: BTC/USDT",
    )
    quotes_from: Literal["ticker", "order_book"] = Field(
        "ticker",
        description="venue: the best bid/ask ticker, or each order book (its top and depth)",
    )
    book_depth: int = Field(
        5,
        ge=1,
        le=50,
        description="venue, order_book: the levels of each side read and published (smart "
        "order routing shares orders across venues by them)",
    )
    poll_interval_ms: int = Field(
        1000, ge=50, le=60_000, description="venue: how often the exchange is asked"
    )
    stale_after_ms: int = Field(
        5000,
        ge=150,
        le=3_600_000,
        description="venue: an instrument whose top was last read longer ago is stale",
    )
    timeout_ms: int = Field(2000, ge=10, le=60_000, description="venue: each request's timeout")

    @model_validator(mode="after")
    def _venue_keys(self) -> MarketData:
        if self.source != "venue":
            return self
        if self.venue is None:
            raise _broken("venue: source venue needs the exchange: binance or bybit")
        if not self.symbols:
            raise _broken("symbols: source venue needs each instrument's symbol, BTC-USD: BTC/USDT")
        # A quiet instrument's quote is sent again at half stale_after_ms (venue_feed): the
        # poll that does it must come well before a consumer would call the quote stale.
        if self.stale_after_ms < 3 * self.poll_interval_ms:
            raise _broken(
                f"stale_after_ms ({self.stale_after_ms}) must be at least 3 x poll_interval_ms "
                f"({self.poll_interval_ms}), so that a live feed is never taken for a stale one"
            )
        return self


class Reconciliation(_Strict):
    """How services find and resolve what a crash or a lost message left open."""

    interval_ms: int = Field(5000, ge=100, le=3_600_000, description="between checks")
    order_age_ms: int = Field(
        3000, ge=0, le=3_600_000, description="an order unanswered this long is asked about"
    )
    fill_lookback_ms: int = Field(
        60_000, ge=1000, le=86_400_000, description="how far back fills are counted each check"
    )


class State(_Strict):
    finished_order_retention_s: int = Field(
        600, ge=0, description="finished orders stay in memory this long, then in the journal only"
    )


class TradingControl(_Strict):
    """What a resume (a move to a less strict trading state) checks first."""

    resume_max_quote_age_ms: int = Field(
        5000, ge=1, description="every instrument's quote must be at most this old to resume"
    )


# What a role may do (trading_core.auth). trader and operator and service may also read.
Role = Literal["reader", "trader", "operator", "service"]
EVERY_ACCOUNT = "*"
# The local development key (README "Security"): public, so accepted only in `local`.
DEVELOPMENT_KEY = "dev.local-only-not-a-secret"
DEVELOPMENT_KEY_SHA256 = "49b6f33166d53244b8b6a989a8f69970283a906f7f871d00825b0aca752f2441"


def _trader() -> list[Role]:
    return ["trader"]


class ApiKey(_Strict):
    """A client's API key, known here only by its SHA-256: the key itself is never stored."""

    id: Name = Field(description="names the key in logs and in the audit trail")
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] = Field(
        description="hex SHA-256 of the whole key (`tradectl key new` makes a key and its hash)"
    )
    accounts: list[Annotated[str, StringConstraints(pattern=r"^(\*|[A-Za-z0-9._-]+)$")]] = Field(
        min_length=1, description="the accounts it trades and reads; * for every account"
    )
    roles: list[Role] = Field(
        default_factory=_trader,
        min_length=1,
        description="reader, trader (also reads), operator (trading control, risk limits, "
        "dead letters), service (the services' calls to each other)",
    )


class Security(_Strict):
    """Who may call the platform's RPCs: every call but health and reflection presents an API
    key (`authorization: Bearer <key>`), and is allowed by the key's roles and accounts."""

    authentication: Literal["api_keys", "none"] = Field(
        "api_keys", description="none: every call is allowed (environment local only)"
    )
    api_keys: list[ApiKey] = Field(default_factory=list)
    service_key: Secret | None = Field(
        None,
        description="${VAR}: the key this process presents to the platform's other services; "
        "needed when they run in other processes (one with the service role in api_keys)",
    )

    @model_validator(mode="after")
    def _unique(self) -> Security:
        for what in ("id", "sha256"):
            values = [getattr(key, what) for key in self.api_keys]
            if repeated := sorted({v for v in values if values.count(v) > 1}):
                raise _broken(f"api_keys: each key's {what} must be unique, repeated: {repeated}")
        return self


class Logging(_Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = Field(True, alias="json")


class Tracing(_Strict):
    """OpenTelemetry traces: spans of each order's stages, across gRPC and the bus."""

    exporter: Literal["none", "otlp", "console", "env"] = Field(
        "none",
        description="none: no spans at all (near zero cost); otlp: OTLP over gRPC to a "
        "collector (which forwards to Cloud Trace); console: JSON spans on stdout; env: as "
        "the OpenTelemetry variable OTEL_TRACES_EXPORTER says (none when unset)",
    )
    endpoint: str | None = Field(
        None,
        description="the collector, such as http://otel-collector:4317; none: the exporter's "
        "OTEL_EXPORTER_OTLP_ENDPOINT, else http://localhost:4317",
    )
    sample_ratio: float = Field(
        1.0, ge=0, le=1, description="share of new traces kept; a caller's decision is followed"
    )


class Metrics(_Strict):
    """Metrics in Prometheus' format, on an HTTP port of each process (`/metrics`)."""

    port: Port | None = Field(None, description="the /metrics port; none: no metrics")
    host: str = Field("127.0.0.1", description="the address it binds (0.0.0.0 in a pod)")


class Telemetry(_Strict):
    tracing: Tracing = Tracing()
    metrics: Metrics = Metrics()
    project: str | None = Field(
        None,
        description="the Google Cloud project of the traces: log lines then carry Cloud "
        "Logging's logging.googleapis.com/trace (projects/<project>/traces/<trace id>)",
    )


# -- sharding (README "Sharding by account") ---------------------------------------------------

ShardNumber = Annotated[int, Field(ge=0, le=999)]
Address = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]+:[0-9]{1,5}$")]
AccountId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]+$")]


class ShardEndpoints(_Strict):
    """Where one shard's services are reached (host:port): by clients sent there, and by the
    shard's own services calling each other."""

    order_management: Address | None = None
    execution_router: Address | None = None
    position_management: Address | None = None


class Sharding(_Strict):
    """Accounts split over shards: each shard's order-management, execution-router and
    position-management own the accounts mapped to it, and refuse calls for any other.

    An account not in `accounts` belongs to shard 0, so adding a shard never moves an existing
    account: a new shard takes only the accounts mapped to it (new ones). No hash of the account
    decides, because a hash over N shards moves accounts whenever N changes, and an account's
    orders and positions live in its shard's journals."""

    shards: int = Field(1, ge=1, le=1000, description="how many shards the platform has")
    shard: ShardNumber = Field(0, description="the shard this process serves")
    accounts: dict[AccountId, ShardNumber] = Field(
        default_factory=dict, description="account -> its shard; any other account: shard 0"
    )
    endpoints: dict[ShardNumber, ShardEndpoints] = Field(
        default_factory=dict,
        description="shard -> where its services are reached; unset: `services` (shard 0)",
    )

    @model_validator(mode="after")
    def _shards_exist(self) -> Sharding:
        if self.shard >= self.shards:
            raise _broken(f"shard: {self.shard} is not one of the {self.shards} shard(s) (0 on)")
        beyond = sorted(a for a, shard in self.accounts.items() if shard >= self.shards)
        if beyond:
            raise _broken(f"accounts: {', '.join(beyond)} map to a shard beyond {self.shards - 1}")
        if unknown := sorted(shard for shard in self.endpoints if shard >= self.shards):
            raise _broken(f"endpoints: shards {unknown} are beyond {self.shards - 1}")
        return self

    def shard_of(self, account_id: str) -> int:
        return self.accounts.get(account_id, 0)

    def owns(self, account_id: str) -> bool:
        """Whether this process's shard owns the account ("": every account, always)."""
        return not account_id or self.shard_of(account_id) == self.shard

    @property
    def subscription_shard(self) -> int | None:
        """The shard the bus subscriptions filter on; None with one shard (names unchanged)."""
        return self.shard if self.shards > 1 else None

    def endpoint(self, shard: int, service: str) -> str | None:
        """Where `service` of `shard` is reached, when `endpoints` says."""
        endpoints = self.endpoints.get(shard)
        found = getattr(endpoints, service.replace("-", "_"), None) if endpoints else None
        return str(found) if found else None


class PlatformConfig(_Strict):
    environment: Name
    services: Services = Services()
    journal: Journal = Journal()
    state: State = State()
    reconciliation: Reconciliation = Reconciliation()
    database: DuckDBDatabase | BigQueryDatabase = Field(discriminator="backend")
    messaging: MemoryMessaging | PubSubMessaging = Field(discriminator="backend")
    execution: Execution = Execution()
    market_data: MarketData = MarketData()
    account_limits: AccountLimits
    risk: Risk = Risk()
    accounts: Accounts = Accounts()
    trading_control: TradingControl = TradingControl()
    order_defaults: OrderDefaults = OrderDefaults()
    signal_sizing: SignalSizing = SignalSizing(notional=Decimal("1000"))
    instruments: list[Instrument] = Field(min_length=1)
    logging: Logging = Logging()
    telemetry: Telemetry = Telemetry()
    security: Security = Security()
    sharding: Sharding = Sharding()

    @field_validator("instruments")
    @classmethod
    def _unique_symbols(cls, instruments: list[Instrument]) -> list[Instrument]:
        symbols = [i.symbol for i in instruments]
        duplicated = sorted({s for s in symbols if symbols.count(s) > 1})
        if duplicated:
            raise ValueError(f"instrument symbols must be unique, repeated: {duplicated}")
        return instruments

    @model_validator(mode="after")
    def _development_access_stays_local(self) -> PlatformConfig:
        if self.environment == "local":
            return self
        if self.security.authentication == "none":
            raise _broken("security.authentication: none is for environment local only")
        for key in self.security.api_keys:
            if key.sha256 == DEVELOPMENT_KEY_SHA256:
                raise _broken(
                    f"security.api_keys: {key.id} is the public development key, accepted in "
                    "environment local only; make a key of your own with `tradectl key new`"
                )
        return self

    @model_validator(mode="after")
    def _one_warehouse_writer_per_table(self) -> PlatformConfig:
        # Shards of a service would feed the same BigQuery raw table with journal positions
        # that overlap (each shard's journal counts from 1), and a store that lost its offsets
        # file resumes from that table's highest position: another shard's.
        if self.sharding.shards > 1 and isinstance(self.database, BigQueryDatabase):
            raise _broken(
                "database.backend: bigquery takes one shard for now (sharding.shards is "
                f"{self.sharding.shards}): shards would share its tables' journal positions; "
                "use duckdb (a file per shard) or one shard"
            )
        return self

    @model_validator(mode="after")
    def _venues_know_the_instruments(self) -> PlatformConfig:
        configured = {i.symbol for i in self.instruments}
        venues = self.execution.venues
        for name, venue in venues.items():
            unknown = sorted(set(venue.symbols) - configured)
            if unknown:
                raise _broken(
                    f"execution.venues.{name}.symbols: {', '.join(unknown)} are not among the "
                    f"instruments ({', '.join(sorted(configured))})"
                )
        if venues:
            mapped = {symbol for venue in venues.values() for symbol in venue.symbols}
            if orphans := sorted(configured - mapped):
                raise _broken(
                    f"instruments {', '.join(orphans)} trade on no venue: map each in "
                    f"execution.venues.<name>.symbols"
                )
        return self

    @model_validator(mode="before")
    @classmethod
    def _venue_quotes_expire(cls, data: Any) -> Any:
        """With an exchange's quotes, an order needs a fresh one: risk.max_quote_age_ms, when
        the file leaves it out (null: off), is market_data.stale_after_ms, so order-management
        denies orders on an instrument whose feed the producer calls stale."""
        if not isinstance(data, dict):
            return data
        market, risk = data.get("market_data"), data.get("risk", {})
        if not isinstance(market, dict) or market.get("source") != "venue":
            return data
        if not isinstance(risk, dict) or "max_quote_age_ms" in risk:
            return data
        stale = market.get("stale_after_ms", MarketData.model_fields["stale_after_ms"].default)
        return {**data, "risk": {**risk, "max_quote_age_ms": stale}}

    @model_validator(mode="after")
    def _venue_feed_quotes_the_instruments(self) -> PlatformConfig:
        market = self.market_data
        if market.source != "venue":
            return self
        configured = [i.symbol for i in self.instruments]
        if unknown := sorted(set(market.symbols) - set(configured)):
            raise _broken(
                f"market_data.symbols: {', '.join(unknown)} are not among the instruments "
                f"({', '.join(configured)})"
            )
        if unquoted := [symbol for symbol in configured if symbol not in market.symbols]:
            raise _broken(
                f"market_data.symbols: no symbol for {', '.join(unquoted)}; source venue quotes "
                "every instrument: map each to the exchange's, e.g. BTC-USD: BTC/USDT"
            )
        return self

    def instrument(self, symbol: str) -> Instrument | None:
        return next((i for i in self.instruments if i.symbol == symbol), None)


# Modes whose adapters a later release brings: refused at start-up, never silently replaced.
_NOT_YET_AVAILABLE: dict[tuple[str, str], str] = {}


def require_available_adapters(config: PlatformConfig) -> None:
    """Stops start-up when the config selects an adapter this release does not have yet."""
    chosen = {
        ("database", config.database.backend),
        ("execution", config.execution.mode),
    }
    for (section, value), what in _NOT_YET_AVAILABLE.items():
        if (section, value) in chosen:
            key = "database.backend" if section == "database" else "execution.mode"
            raise ConfigError(
                f"{key}: '{value}' needs {what}, which this release does not include yet; "
                f"choose {'duckdb' if section == 'database' else 'simulation'}"
            )


def load_config(path: str | Path, environ: dict[str, str] | None = None) -> PlatformConfig:
    """Reads, merges, substitutes and validates a config file; raises ConfigError."""
    env = dict(os.environ) if environ is None else environ
    path = Path(path)
    raw = _read_with_bases(path, seen=())
    from_environment: set[KeyPath] = set()
    substituted = _substitute(raw, env, path, (), from_environment)
    _require_secrets_from_environment(substituted, path, from_environment)
    try:
        return PlatformConfig.model_validate(substituted)
    except ValidationError as error:
        raise ConfigError(_describe(error, path, from_environment)) from None


# The keys of a venue block that hold credentials.
_SECRET_KEYS = ("api_key", "api_secret", "api_token")


def _require_secrets_from_environment(
    raw: dict[str, Any], path: Path, from_environment: set[KeyPath]
) -> None:
    """A credential must come from `${VAR}` (Secret Manager in the cloud): one written in a
    file would sit in version control and in the config map."""
    security = raw.get("security")
    if (
        isinstance(security, dict)
        and "service_key" in security
        and ("security", "service_key") not in from_environment
    ):
        raise ConfigError(
            f"{path}: security.service_key: write ${{VARIABLE}} and set that environment "
            "variable; a credential is never written in a config file"
        )
    venues = (raw.get("execution") or {}).get("venues") or {}
    if not isinstance(venues, dict):
        return  # the model's validation says what is wrong
    for name, venue in venues.items():
        for key in _SECRET_KEYS:
            if isinstance(venue, dict) and key in venue:
                key_path = ("execution", "venues", str(name), key)
                if key_path not in from_environment:
                    raise ConfigError(
                        f"{path}: {'.'.join(key_path)}: write ${{VARIABLE}} and set that "
                        "environment variable; a credential is never written in a config file"
                    )


def _read_with_bases(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    resolved = path.resolve()
    if resolved in seen:
        raise ConfigError(f"{path}: 'extends' forms a cycle through {resolved}")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(
            f"{path}: is a folder, not a config file; name a file such as config/local.yaml"
        ) from None
    except OSError as error:  # unreadable: permissions, an I/O error
        raise ConfigError(f"{path}: cannot read the config file: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (expected YAML in UTF-8)") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    base_name = document.pop("extends", None)
    if base_name is None:
        return document
    if not isinstance(base_name, str):
        raise ConfigError(f"{path}: extends: expected the file name of a base config")
    base = _read_with_bases(path.parent / base_name, (*seen, resolved))
    return _merge(base, document)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        inherited = merged.get(key)
        # A mapping that names another backend replaces the base's instead of merging with it.
        if (
            isinstance(value, dict)
            and isinstance(inherited, dict)
            and value.get("backend", inherited.get("backend")) == inherited.get("backend")
        ):
            merged[key] = _merge(inherited, value)
        else:
            merged[key] = value
    return merged


def _substitute(
    value: Any, env: dict[str, str], path: Path, key_path: KeyPath, from_environment: set[KeyPath]
) -> Any:
    """`value` with every ${VAR} replaced; adds the key path of each replaced string to
    `from_environment`, so that no error message shows it (it may be a secret)."""
    if isinstance(value, dict):
        return {
            k: _substitute(v, env, path, (*key_path, str(k)), from_environment)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _substitute(v, env, path, (*key_path, str(i)), from_environment)
            for i, v in enumerate(value)
        ]
    if not isinstance(value, str) or not _VARIABLE.search(value):
        return value
    from_environment.add(key_path)

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            where = ".".join(key_path)
            raise ConfigError(f"{path}: {where}: environment variable {name} is not set")
        return env[name]

    return _VARIABLE.sub(replace, value)


# Sections chosen by their `backend`: pydantic puts the backend in the error location, the file
# does not have it.
_BY_BACKEND = {"database": {"duckdb", "bigquery"}, "messaging": {"memory", "pubsub"}}
_VENUE_KINDS = {"binance", "bybit", "quantconnect"}


def _key_path(location: tuple[int | str, ...]) -> KeyPath:
    parts = [str(part) for part in location]
    if len(parts) > 1 and parts[1] in _BY_BACKEND.get(parts[0], ()):
        del parts[1]
    # A venue's kind, which pydantic puts after its name: execution.venues.<name>.<kind>.key
    if parts[:2] == ["execution", "venues"] and len(parts) > 3 and parts[3] in _VENUE_KINDS:
        del parts[3]
    return tuple(parts)


def _describe(error: ValidationError, path: Path, from_environment: set[KeyPath]) -> str:
    lines = [f"{path}: {error.error_count()} problem(s) in the configuration"]
    for problem in error.errors():
        key_path = _key_path(problem["loc"])
        where = ".".join(key_path) or "(top level)"
        # The value at fault: a union's tag sits under the section the error names.
        at_fault = (*key_path, "backend") if problem["type"] == "union_tag_invalid" else key_path
        hidden = any(variable[: len(at_fault)] == at_fault for variable in from_environment)
        lines.append(f"  {where}: {_what(problem, hidden)}")
    return "\n".join(lines)


def _what(problem: ErrorDetails, hidden: bool) -> str:
    """What is wrong; quotes the value given only when it was written in the file (cut short),
    never when it, or a value inside it, came from an environment variable."""
    if problem["type"] == "extra_forbidden":
        return "unknown key"
    if problem["type"] == _RULE:
        return problem["msg"]  # names keys and venues, never a value
    given: str | None = None  # the value given, as a message may show it
    if problem["type"] == "union_tag_invalid":
        context = problem.get("ctx", {})
        what = f"expected one of {context.get('expected_tags')}"
        given = _given(context.get("tag"))
    elif problem["type"] == "value_error" and hidden:
        what = "invalid value"  # our own validators' messages may quote values
    else:
        what = problem["msg"]
        if "input" in problem and not isinstance(problem["input"], dict | list):
            given = _given(problem["input"])
    if hidden:
        return f"{what} (the value comes from an environment variable and is not shown)"
    return what if given is None else f"{what} (got {given})"


def _given(value: object) -> str:
    return repr(shorten(value)) if isinstance(value, str) else shorten(repr(value))
