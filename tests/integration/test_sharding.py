"""Sharding by account, piece by piece: the config's map, a journal that holds an account the map
gives to another shard (the service refuses to start), and the platform's single-shard default
(no ownership check at all). Two shards end to end: tests/e2e/test_sharding.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tradectl import routing
from trading_core import sharding
from trading_core.config import ConfigError, Sharding
from trading_core.journal import Journal, Record, Transaction


def test_an_unmapped_account_is_shard_0s_and_adding_a_shard_moves_none() -> None:
    two = Sharding(shards=2, accounts={"acct-new": 1})
    three = Sharding(shards=3, accounts={"acct-new": 1, "acct-newer": 2})
    for account in ("default", "acct-old", "acct-new"):
        assert two.shard_of(account) == three.shard_of(account)
    assert three.shard_of("acct-newer") == 2
    assert two.owns("acct-old") and not two.owns("acct-new")
    assert two.owns("")  # no account named: every account's call, answered for this shard's


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ({"shards": 2, "shard": 2}, "shard: 2 is not one of the 2 shard(s)"),
        ({"shards": 2, "accounts": {"a": 2}}, "accounts: a map to a shard beyond 1"),
        ({"endpoints": {1: {"order_management": "h:1"}}}, "endpoints: shards [1] are beyond 0"),
    ],
)
def test_a_shard_that_does_not_exist_is_refused(given: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        Sharding.model_validate(given)


def _journal_with_account(path: Path, account: str) -> Journal:
    journal = Journal(path, ())
    transaction = Transaction()
    record = Record("r-1", "OrderSubmitted", True, b"", 1, order_id="o-1", account_id=account)
    transaction.keep(record)
    journal.commit(transaction, waited=True).wait()
    return journal


@pytest.mark.parametrize(
    ("shard", "moved", "kept"),
    [(0, {"acct-old": 1}, {}), (1, {}, {"acct-old": 1})],
    ids=["shard 0's account mapped to shard 1", "shard 1's account unmapped"],
)
def test_a_journal_holding_another_shards_account_refuses_to_start(
    tmp_path: Path, shard: int, moved: dict[str, int], kept: dict[str, int]
) -> None:
    journal = _journal_with_account(tmp_path / "order-management.journal", "acct-old")
    try:
        with pytest.raises(ConfigError, match="holds the orders or positions of account acct-old"):
            refused = Sharding(shards=2, shard=shard, accounts=moved)
            sharding.refuse_foreign_accounts(journal, refused, "order-management")
        unchanged = Sharding(shards=2, shard=shard, accounts=kept)
        sharding.refuse_foreign_accounts(journal, unchanged, "order-management")
    finally:
        journal.close()


def test_one_shard_checks_no_account() -> None:
    assert sharding.interceptors(Sharding(), "order-management") == []


def test_the_client_reads_the_metadata_the_server_writes() -> None:
    assert (routing.SHARD_METADATA, routing.ADDRESS_METADATA) == (
        sharding.SHARD_METADATA,
        sharding.ADDRESS_METADATA,
    )
