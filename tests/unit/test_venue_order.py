"""The router's venue form of an order: what it reads from the Order proto for the venue, the
same when it rebuilds the order from the stored SubmitOrder after a restart."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from execution_router.domain.venue_types import VenueOrder
from trading.v1 import events_pb2, orders_pb2, types_pb2
from trading_core.events import timestamp

EXPIRES = datetime(2024, 1, 2, 21, 0, 0, 250_000, tzinfo=UTC)


def order(**fields: object) -> orders_pb2.Order:
    """A limit order to buy 5 BTC-USD at 60000.5, with `fields` set on it."""
    base: dict[str, object] = {
        "order_id": "o-1",
        "account_id": "acct-1",
        "instrument": "BTC-USD",
        "side": types_pb2.SIDE_BUY,
        "order_type": types_pb2.ORDER_TYPE_LIMIT,
        "quantity": "5",
        "limit_price": "60000.5",
    }
    return orders_pb2.Order(**(base | fields))  # type: ignore[arg-type]


def test_gtd_iceberg_post_only_limit_keeps_its_expire_time_display_and_post_only() -> None:
    proto = order(
        time_in_force=types_pb2.TIME_IN_FORCE_GTD,
        expire_time=timestamp(EXPIRES),
        display_quantity="1.5",
        post_only=True,
    )

    venue = VenueOrder.from_proto(proto)

    assert venue.time_in_force == types_pb2.TIME_IN_FORCE_GTD
    assert venue.expire_time == EXPIRES
    assert venue.expire_time.tzinfo is UTC
    assert venue.display_quantity == Decimal("1.5")
    assert venue.post_only is True
    assert venue.limit_price == Decimal("60000.5")


def test_order_without_the_new_fields_has_no_expiry_no_display_and_is_not_post_only() -> None:
    venue = VenueOrder.from_proto(order(time_in_force=types_pb2.TIME_IN_FORCE_GTC))

    assert (venue.expire_time, venue.display_quantity, venue.post_only) == (None, None, False)


def test_the_order_rebuilt_from_the_stored_submit_equals_the_one_routed() -> None:
    proto = order(
        order_type=types_pb2.ORDER_TYPE_MARKET_TO_LIMIT,
        limit_price="",
        time_in_force=types_pb2.TIME_IN_FORCE_DAY,
        expire_time=timestamp(EXPIRES),
    )
    stored = events_pb2.SubmitOrder(order=proto).SerializeToString()

    rebuilt = VenueOrder.from_proto(events_pb2.SubmitOrder.FromString(stored).order)

    assert rebuilt == VenueOrder.from_proto(proto)
    assert (rebuilt.order_type, rebuilt.limit_price) == (types_pb2.ORDER_TYPE_MARKET_TO_LIMIT, None)
    assert rebuilt.expire_time == EXPIRES
