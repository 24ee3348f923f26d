"""Position-management's check of positions against fills, on an embedded platform: it finds
nothing while fills are being applied, and reports a position its fills do not give."""

from __future__ import annotations

import threading

from position_management.service import PositionManagement
from trading_core.journal import Transaction
from trading_core.runtime import Platform

from tests.e2e.conftest import Clients
from tests.e2e.test_duplicate_deliveries import unresolved
from tests.e2e.test_trading_flow import submit
from tests.support import wait_until

ORDERS = 60


def position_management(platform: Platform) -> PositionManagement:
    service = platform.service("position-management")
    assert isinstance(service, PositionManagement)
    return service


def fill_count(service: PositionManagement) -> int:
    ((count,),) = service.journal.query("SELECT count(*) FROM fills")
    return int(count)


def test_checks_while_fills_are_applied_find_every_position_agreeing_with_its_fills(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, platform = embedded
    service = position_management(platform)
    done = threading.Event()

    def trade() -> None:
        try:
            for _ in range(ORDERS):
                submit(clients, quantity="0.001")
        finally:
            done.set()

    trader = threading.Thread(target=trade)
    trader.start()
    problems: list[str] = []
    checks = 0
    while not done.is_set() or checks < 3:
        problems += service.check_positions()
        checks += 1
    trader.join()
    wait_until(lambda: fill_count(service) >= ORDERS, 30, "every fill applied")
    problems += service.check_positions()
    assert problems == []
    assert unresolved(clients, "position-management") == []


def test_a_durable_position_its_fills_do_not_give_is_reported_unresolved(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, platform = embedded
    service = position_management(platform)
    submit(clients, quantity="0.001")
    wait_until(lambda: fill_count(service) == 1, 30, "the fill applied")
    tampered = Transaction()
    tampered.execute("UPDATE positions SET quantity = '0.002' WHERE account_id = 'acct-e2e'")
    service.journal.commit(tampered).wait()

    assert service.check_positions() == ["acct-e2e|BTC-USD"]
    (issue,) = unresolved(clients, "position-management")
    assert issue.subject == "acct-e2e|BTC-USD"
    assert "0.002" in issue.detail
