"""The one warehouse schema: DuckDB's tables, BigQuery's schema and Terraform's inputs come from
it column for column; values are read from events exactly, by its rounding rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from trading.v1 import control_pb2, events_pb2, orders_pb2, types_pb2
from trading_core.events import new_id, timestamp
from trading_core.store.rows import typed_batches
from trading_core.store.schema import (
    DECIMAL,
    EVENT_COLUMNS,
    TABLES,
    bigquery_fields,
    bigquery_tables,
    duckdb_column_definitions,
    terraform_tables_json,
    to_decimal,
    with_tables_markdown,
)

from tests.warehouse_support import one_order

TERRAFORM_TABLES = Path(__file__).parents[2] / "terraform" / "modules" / "bigquery" / "tables.json"


def test_bigquery_fields_list_every_column_in_order_with_its_mode() -> None:
    fields = bigquery_fields()
    assert [f["name"] for f in fields] == [c.name for c in EVENT_COLUMNS]
    by_name = {f["name"]: f for f in fields}
    assert by_name["payload"] == {
        "name": "payload",
        "type": "BYTES",
        "mode": "REQUIRED",
        "description": "The serialized trading.v1.Event protobuf.",
    }
    assert by_name["order_id"]["mode"] == "NULLABLE"
    assert by_name["event_time"]["type"] == "TIMESTAMP"


def test_duckdb_definitions_create_the_same_columns_with_the_types_duckdb_reports() -> None:
    connection = duckdb.connect()
    for table in TABLES:
        connection.execute(
            f"CREATE TABLE {table.name} ({duckdb_column_definitions(table.columns)})"
        )
        created = connection.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ?"
            " ORDER BY column_index",
            [table.name],
        ).fetchall()
        assert created == [(c.name, c.duckdb_type) for c in table.columns]


def test_terraform_creates_the_tables_of_the_schema() -> None:
    """Terraform's bigquery module reads tables.json: `make schema` after a schema change."""
    assert TERRAFORM_TABLES.read_text() == terraform_tables_json()


def test_every_bigquery_table_is_partitioned_by_day_and_clustered_on_its_own_columns() -> None:
    tables = bigquery_tables()
    assert set(tables) == {
        "order_management_events", "execution_router_events", "position_management_events",
        "market_data_events", "orders", "executions", "fills", "quotes", "positions", "denials",
        "risk_events", "trading_state_events", "venue_calls", "shadow_executions",
    }  # fmt: skip
    for name, table in tables.items():
        columns = {field["name"]: field for field in table["schema"]}
        assert columns[table["partition_field"]]["type"] == "TIMESTAMP", name
        assert set(table["clustering"]) <= set(columns), name
        assert table["description"], name
    assert tables["fills"]["clustering"] == ["account_id", "instrument"]
    assert tables["quotes"]["clustering"] == ["instrument", "source"]


def test_money_is_bignumeric_38_18_in_bigquery_and_decimal_38_18_in_duckdb() -> None:
    price = next(f for f in bigquery_tables()["fills"]["schema"] if f["name"] == "price")
    assert (price["type"], price["precision"], price["scale"]) == ("BIGNUMERIC", "38", "18")
    assert DECIMAL.duckdb == "DECIMAL(38,18)"


def test_every_typed_row_carries_its_event_id_service_and_journal_position() -> None:
    for table in TABLES:
        head = [(c.name, c.required) for c in table.columns[:4]]
        assert head == [
            ("event_id", True), ("service", True), ("journal_position", True),
            ("event_time", False),
        ], table.name  # fmt: skip


_MOST = "99999999999999999999.999999999999999999"  # the largest value held


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("64121.7", Decimal("64121.7")),
        ("0.000000000000000001", Decimal("1E-18")),  # a wei
        ("1.0000000000000000005", Decimal("1.000000000000000001")),  # half: away from zero
        ("-1.0000000000000000005", Decimal("-1.000000000000000001")),
        ("1.00000000000000000049", Decimal("1.000000000000000000")),
        ("2.5e-3", Decimal("0.0025")),
        (f"{_MOST}", Decimal(_MOST)),
        (f"{_MOST}5", None),  # rounds to 10^20: out of range
        ("99999999999999999999.0000000000000000004", Decimal("99999999999999999999")),
        ("100000000000000000000", None),
        ("NaN", None),
        ("Infinity", None),
        ("not a number", None),
        ("", None),
    ],
)  # fmt: skip
def test_the_rounding_rule_is_the_one_duckdb_applies_to_the_same_text(
    text: str, stored: Decimal | None
) -> None:
    assert to_decimal(text) == stored
    with duckdb.connect() as connection:
        ((cast,),) = connection.execute(
            f"SELECT TRY_CAST(NULLIF(?, '') AS {DECIMAL.duckdb})", [text]
        ).fetchall()
    assert cast == stored


def rows(*events: events_pb2.Event) -> dict[str, list[dict[str, Any]]]:
    batches = typed_batches("test", enumerate(events, start=1))
    return {name: batch.to_pylist() for name, batch in batches.items()}


def test_a_fill_makes_an_order_row_an_execution_row_and_a_fill_row() -> None:
    filled = one_order(0)[2]

    found = rows(filled)

    assert sorted(found) == ["executions", "fills", "orders"]
    (fill,) = found["fills"]
    assert fill["trade_id"] == "t-0"
    assert (fill["side"], fill["venue"], fill["service"], fill["journal_position"]) == (
        "BUY", "simulation", "test", 1,
    )  # fmt: skip
    assert fill["notional"] == Decimal("961.8255")
    (order,) = found["orders"]
    assert (order["status"], order["execution_type"], order["quantity"]) == (
        "FILLED", "FILLED", None,
    )  # fmt: skip
    assert order["filled_quantity"] == Decimal("0.015")


def test_a_submitted_order_reads_its_values_from_the_order_it_carries() -> None:
    submitted = one_order(0)[0]
    submitted.actor = "desk-7"
    (order,) = rows(submitted)["orders"]
    assert order["actor"] == "desk-7"
    assert (order["status"], order["order_type"], order["time_in_force"]) == (
        "SUBMITTED", "LIMIT", "GTC",
    )  # fmt: skip
    assert (order["quantity"], order["limit_price"]) == (Decimal("0.015"), Decimal("64123.5"))
    assert (order["strategy_id"], order["event_type"]) == ("mean-revert", "OrderSubmitted")
    assert order["denial_reason"] is None  # UNSPECIFIED
    assert order["trigger_price"] is None  # empty on the wire


def test_a_quote_row_has_its_mid_and_the_position_row_its_pnl() -> None:
    events = one_order(0)
    found = rows(events[3], events[4])
    (quote,) = found["quotes"]
    assert (quote["bid_price"], quote["ask_price"], quote["mid"]) == (
        Decimal("64120.1"), Decimal("64122.3"), Decimal("64121.2"),
    )  # fmt: skip
    assert quote["quote_time"] is not None
    (position,) = found["positions"]
    assert (position["realized_pnl"], position["unrealized_pnl"]) == (
        Decimal("12.5"), Decimal("-3.25"),
    )  # fmt: skip


def test_requests_that_carry_no_order_set_the_status_they_lead_to() -> None:
    cancel = events_pb2.Event(
        event_id=new_id(),
        order_id="o-1",
        order_cancel_requested=events_pb2.OrderCancelRequested(order_id="o-1", request_id="r-1"),
    )
    modify = events_pb2.Event(event_id=new_id(), order_id="o-1")
    modify.order_modify_requested.change.CopyFrom(
        orders_pb2.OrderChange(request_id="r-2", quantity="0.5")
    )
    found = rows(cancel, modify)["orders"]
    assert [(r["status"], r["request_id"], r["quantity"]) for r in found] == [
        ("PENDING_CANCEL", "r-1", None),
        ("PENDING_UPDATE", "r-2", Decimal("0.5")),
    ]


def test_risk_and_trading_state_events_make_their_rows() -> None:
    halted = events_pb2.Event(event_id=new_id(), account_id="ACC-1")
    changed = halted.trading_state_changed
    changed.trading_state.CopyFrom(
        control_pb2.TradingStateRecord(
            account_id="ACC-1", state=types_pb2.TRADING_STATE_HALTED, reason="drawdown", version=3
        )
    )
    changed.previous_state = types_pb2.TRADING_STATE_ACTIVE
    limits = events_pb2.Event(event_id=new_id())
    limits.risk_limits_changed.record.CopyFrom(
        control_pb2.RiskLimitsRecord(
            scope=control_pb2.RISK_SCOPE_ACCOUNT,
            name="ACC-1",
            limits=control_pb2.RiskLimitSet(max_order_quantity="2", max_open_orders=5),
            version=7,
        )
    )

    found = rows(halted, limits)

    (state,) = found["trading_state_events"]
    assert (state["account_id"], state["state"], state["previous_state"], state["version"]) == (
        "ACC-1", "HALTED", "ACTIVE", 3,
    )  # fmt: skip
    (risk,) = found["risk_events"]
    assert (risk["scope"], risk["scope_name"], risk["version"]) == ("ACCOUNT", "ACC-1", 7)
    assert json.loads(risk["limits"]) == {"max_order_quantity": "2", "max_open_orders": "5"}
    assert risk["previous_limits"] is None


def test_a_venue_call_makes_a_venue_call_row() -> None:
    called = events_pb2.Event(event_id=new_id(), order_id="o-1")
    called.venue_called.venue = "binance"
    called.venue_called.operation = events_pb2.VENUE_OPERATION_SUBMIT
    called.venue_called.outcome = events_pb2.VENUE_CALL_OUTCOME_ANSWERED
    called.venue_called.latency_us = 1830
    called.venue_called.attempts = 1
    called.venue_called.start_time.CopyFrom(timestamp(datetime(2026, 1, 5, tzinfo=UTC)))
    (call,) = rows(called)["venue_calls"]
    assert (call["venue"], call["operation"], call["outcome"], call["latency_us"]) == (
        "binance", "SUBMIT", "ANSWERED", 1830,
    )  # fmt: skip
    assert call["start_time"] == datetime(2026, 1, 5, tzinfo=UTC)
    assert call["error_class"] is None


def test_a_timed_out_venue_call_names_its_outcome_and_error_class() -> None:
    called = events_pb2.Event(event_id=new_id(), order_id="o-1")
    called.venue_called.outcome = events_pb2.VENUE_CALL_OUTCOME_TIMED_OUT
    called.venue_called.error_class = "RequestTimeout"
    (call,) = rows(called)["venue_calls"]
    assert (call["outcome"], call["error_class"]) == ("TIMED_OUT", "RequestTimeout")


def test_a_shadow_fill_makes_a_shadow_execution_row_with_exact_amounts() -> None:
    event = events_pb2.Event(event_id=new_id(), order_id="o-1", account_id="ACC-1")
    shadow = event.shadow_execution
    shadow.venue = "binance"
    shadow.execution_type = types_pb2.EXECUTION_TYPE_FILLED
    shadow.side = types_pb2.SIDE_SELL
    shadow.order_type = types_pb2.ORDER_TYPE_MARKET
    shadow.order_quantity = shadow.last_quantity = shadow.cumulative_quantity = "0.5"
    shadow.last_price = "59982.00"
    shadow.fee = "29.991"
    shadow.arrival_mid = "60000"
    sent = datetime(2026, 1, 5, tzinfo=UTC)
    shadow.send_time.CopyFrom(timestamp(sent))
    shadow.model_time.CopyFrom(timestamp(sent.replace(microsecond=40_000)))
    (row,) = rows(event)["shadow_executions"]
    assert (row["venue"], row["execution_type"], row["side"], row["order_type"]) == (
        "binance", "FILLED", "SELL", "MARKET",
    )  # fmt: skip
    assert (row["quantity"], row["price"], row["fee"]) == (
        Decimal("0.5"), Decimal("59982.00"), Decimal("29.991"),
    )  # fmt: skip
    assert (row["model_time"] - row["send_time"]).total_seconds() == 0.04
    assert row["account_id"] == "ACC-1"


def test_a_decimal_to_round_among_others_is_rounded_and_the_rest_kept() -> None:
    fill = one_order(0)[2]
    fill.execution_report.fee = "0.0000000000000000015"
    (row,) = rows(fill)["fills"]
    assert (row["fee"], row["price"]) == (Decimal("0.000000000000000002"), Decimal("64121.7"))


def test_the_readme_lists_the_tables_of_the_schema() -> None:
    """`make schema` after a schema change."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert with_tables_markdown(readme) == readme
