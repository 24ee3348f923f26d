"""An operator's status for an instrument (SetInstrumentStatus), over gRPC and tradectl, on the
embedded platform: halted denies new orders saying so, reduce-only lets a reducing order
through, trading lifts it, a restart keeps it, and bad requests change nothing."""

from __future__ import annotations

import uuid
from pathlib import Path

import grpc
import pytest
from trading.v1 import control_pb2, orders_pb2, types_pb2
from trading_core.runtime import Platform

from tests.e2e.conftest import Clients, embedded_overrides, running_embedded, write_config
from tests.e2e.test_cli import tradectl
from tests.e2e.test_trading_flow import TIMEOUT, order_status, ready_for_market_orders, submit
from tests.support import wait_until

T = types_pb2
ACCOUNT = "acct-instrument-status"


def set_status(clients: Clients, status: int, instrument: str = "BTC-USD") -> None:
    request = control_pb2.SetInstrumentStatusRequest(
        request_id=str(uuid.uuid4()),
        instrument=instrument,
        status=status,  # type: ignore[arg-type]
        reason="exchange incident",
    )
    clients.control.SetInstrumentStatus(request, timeout=10)


def test_halted_denies_reduce_only_reduces_trading_lifts_and_a_restart_keeps_it(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, embedded_overrides(tmp_path / "data"))
    with running_embedded(config) as clients:
        ready_for_market_orders(clients)
        order_status(clients, submit(clients, account_id=ACCOUNT), T.ORDER_STATUS_FILLED)
        set_status(clients, T.INSTRUMENT_STATUS_HALTED)
        denied = submit(clients, account_id=ACCOUNT)
        assert denied.denial_reason == T.DENIAL_REASON_INSTRUMENT_NOT_TRADING
        assert "HALTED by an operator (exchange incident)" in denied.status_message
        other = submit(clients, account_id=ACCOUNT, instrument="ETH-USD", quantity="0.01")
        assert other.status == T.ORDER_STATUS_SUBMITTED  # only BTC-USD is halted
        set_status(clients, T.INSTRUMENT_STATUS_REDUCE_ONLY)
    with running_embedded(config) as clients:

        def sold() -> orders_pb2.Order | None:  # once order-management has a quote again
            sale = submit(clients, account_id=ACCOUNT, side=T.SIDE_SELL, quantity="0.005")
            return None if sale.denial_reason == T.DENIAL_REASON_NO_MARKET_DATA else sale

        assert wait_until(sold, TIMEOUT, "a quote").status == T.ORDER_STATUS_SUBMITTED
        growing = submit(clients, account_id=ACCOUNT)
        assert growing.denial_reason == T.DENIAL_REASON_INSTRUMENT_NOT_TRADING
        set_status(clients, T.INSTRUMENT_STATUS_TRADING)
        assert submit(clients, account_id=ACCOUNT).status == T.ORDER_STATUS_SUBMITTED
        shown = clients.control.GetTradingState(control_pb2.GetTradingStateRequest(), timeout=10)
        assert not shown.instruments  # TRADING is not listed


@pytest.mark.parametrize(
    ("instrument", "status", "named"),
    [
        ("DOGE-USD", T.INSTRUMENT_STATUS_HALTED, "DOGE-USD"),
        ("BTC-USD", T.INSTRUMENT_STATUS_UNSPECIFIED, "status"),
    ],
    ids=["unknown-instrument", "no-status"],
)
def test_a_bad_status_request_is_refused_and_changes_nothing(
    embedded: tuple[Clients, Platform], instrument: str, status: int, named: str
) -> None:
    clients, _ = embedded
    with pytest.raises(grpc.RpcError) as raised:
        set_status(clients, status, instrument)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert named in (raised.value.details() or "")
    shown = clients.control.GetTradingState(control_pb2.GetTradingStateRequest(), timeout=10)
    assert not shown.instruments


def test_tradectl_halts_an_instrument_and_shows_it(embedded: tuple[Clients, Platform]) -> None:
    clients, _ = embedded
    result = tradectl(clients, "trading", "instrument", "SOL-USD", "halted", "--reason", "audit")
    assert result.exit_code == 0, result.output
    shown = tradectl(clients, "trading", "show")
    assert shown.exit_code == 0, shown.output
    assert "SOL-USD" in shown.stdout and "HALTED" in shown.stdout and "audit" in shown.stdout
