"""Config loading: the shipped files validate, and every mistake names the file, the key path
and what was expected."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from tradectl.cli import app
from trading_core.config import (
    BigQueryDatabase,
    ConfigError,
    DuckDBDatabase,
    ExchangeVenue,
    PlatformConfig,
    PubSubMessaging,
    QuantConnectVenue,
    load_config,
    require_available_adapters,
)
from typer.testing import CliRunner

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


def minimal() -> dict[str, Any]:
    """The smallest config that validates; tests change one thing in it."""
    return {
        "environment": "test",
        "database": {"backend": "duckdb", "path": "data"},
        "messaging": {"backend": "memory"},
        "account_limits": {"max_order_value": "1000", "max_daily_orders": 10},
        "instruments": [
            {
                "symbol": "BTC-USD",
                "tick_size": "0.01",
                "step_size": "0.0001",
                "initial_price": "60000",
            }
        ],
    }


def write(directory: Path, document: object, name: str = "config.yaml") -> Path:
    path = directory / name
    text = document if isinstance(document, str) else yaml.safe_dump(document)
    path.write_text(text, encoding="utf-8")
    return path


def refusal(path: Path, environ: dict[str, str] | None = None) -> str:
    """The message of the ConfigError that loading `path` raises."""
    with pytest.raises(ConfigError) as refused:
        load_config(path, environ or {})
    return str(refused.value)


# The shipped files ---------------------------------------------------------------------------


def test_local_yaml_validates_as_shipped_and_its_adapters_are_available() -> None:
    config = load_config(CONFIG_DIR / "local.yaml", {})
    require_available_adapters(config)
    assert config.environment == "local"
    assert isinstance(config.database, DuckDBDatabase)
    assert config.account_limits.max_order_value == Decimal("250000")
    assert [i.symbol for i in config.instruments] == ["BTC-USD", "ETH-USD", "SOL-USD"]


def test_local_pubsub_yaml_takes_the_emulator_host_from_the_environment() -> None:
    config = load_config(CONFIG_DIR / "local-pubsub.yaml", {"PUBSUB_EMULATOR_HOST": "h:8085"})
    require_available_adapters(config)
    assert isinstance(config.messaging, PubSubMessaging)
    assert config.messaging.emulator_host == "h:8085"
    assert isinstance(config.database, DuckDBDatabase)
    assert config.database.path == Path("data/distributed")
    assert len(config.instruments) == 3  # inherited from local.yaml


def test_local_pubsub_yaml_without_the_emulator_variable_names_it() -> None:
    message = refusal(CONFIG_DIR / "local-pubsub.yaml")
    assert "local-pubsub.yaml" in message
    assert "messaging.emulator_host" in message
    assert "PUBSUB_EMULATOR_HOST" in message


def cloud_environment(project: str = "p") -> dict[str, str]:
    """What a cloud config needs from the environment (Secret Manager in the cloud)."""
    return {
        "GCP_PROJECT": project,
        "TRADING_SERVICE_KEY": "tk.service",
        "TRADING_SERVICE_KEY_SHA256": "a" * 64,
        "TRADING_OPERATOR_KEY_SHA256": "b" * 64,
    }


@pytest.mark.parametrize("name", ["dev.yaml", "prod.yaml"])
def test_cloud_config_loads_and_is_accepted_with_its_bigquery_store(name: str) -> None:
    config = load_config(CONFIG_DIR / name, cloud_environment("my-project"))
    assert isinstance(config.database, BigQueryDatabase)
    assert config.database.project == "my-project"
    assert (config.database.location, config.database.endpoint) == ("US", None)  # Google
    assert isinstance(config.messaging, PubSubMessaging)
    assert config.messaging.project == "my-project"
    require_available_adapters(config)  # the BigQuery store is there: nothing refused


def extends_chain(path: Path) -> list[str]:
    """The file names a config extends, nearest first."""
    chain: list[str] = []
    while True:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        base = document.get("extends")
        if base is None:
            return chain
        path = path.parent / base
        chain.append(path.name)


SHARED_SECTIONS = {"instruments", "account_limits", "order_defaults", "signal_sizing", "logging"}
# What an environment names for itself: where it listens, its store, bus, venue and market data.
OWN_SECTIONS = {"environment", "services", "database", "messaging", "execution", "market_data"}


def test_base_yaml_holds_only_what_every_environment_shares() -> None:
    base = yaml.safe_load((CONFIG_DIR / "base.yaml").read_text(encoding="utf-8"))
    assert set(base) == SHARED_SECTIONS


@pytest.mark.parametrize(
    ("name", "chain"),
    [
        ("local.yaml", ["base.yaml"]),
        ("local-pubsub.yaml", ["local.yaml", "base.yaml"]),
        ("dev.yaml", ["base.yaml"]),
        ("prod.yaml", ["base.yaml"]),
    ],
)
def test_each_environment_extends_the_right_parent(name: str, chain: list[str]) -> None:
    assert extends_chain(CONFIG_DIR / name) == chain


@pytest.mark.parametrize("name", ["dev.yaml", "prod.yaml"])
def test_cloud_configs_inherit_nothing_local_and_name_their_venue_and_market_data(
    name: str,
) -> None:
    own = yaml.safe_load((CONFIG_DIR / name).read_text(encoding="utf-8"))
    assert set(own) >= OWN_SECTIONS
    assert own["execution"]["mode"] and own["market_data"]["source"]
    config = load_config(CONFIG_DIR / name, cloud_environment())
    # Set by the file, not filled in by the model's defaults.
    assert {"execution", "market_data"} <= config.model_fields_set
    assert {"simulation"} <= config.execution.model_fields_set
    local = yaml.safe_load((CONFIG_DIR / "local.yaml").read_text(encoding="utf-8"))
    local_only = set(local) - SHARED_SECTIONS - {"extends"}
    assert local_only <= set(own), "every local-only section is named by the file itself"
    assert config.services.order_management.host == "0.0.0.0"


def test_base_yaml_alone_is_not_a_runnable_config() -> None:
    message = refusal(CONFIG_DIR / "base.yaml")
    for key in ("environment", "database", "messaging"):
        assert f"  {key}: Field required" in message


# Venues ----------------------------------------------------------------------------------------

_KEYS = {"EXCHANGE_KEY": "k-123", "EXCHANGE_SECRET": "s-456", "QC_USER": "7", "QC_TOKEN": "t"}
_QUANTCONNECT = {
    "qc": {
        "kind": "quantconnect",
        "user_id": "${QC_USER}",
        "api_token": "${QC_TOKEN}",
        "project_id": 1,
        "symbols": {"BTC-USD": "BTCUSD"},
    }
}


def _direct(**venue: Any) -> dict[str, Any]:
    block = {
        "kind": "binance",
        "api_key": "${EXCHANGE_KEY}",
        "api_secret": "${EXCHANGE_SECRET}",
        "symbols": {"BTC-USD": "BTC/USDT"},
        **venue,
    }
    return {**minimal(), "execution": {"mode": "direct", "venues": {"binance": block}}}


def test_direct_venue_reads_its_credentials_from_the_environment_and_routes_in_config_order(
    tmp_path: Path,
) -> None:
    config = load_config(write(tmp_path, _direct(rate_limits=["6000/minute"])), _KEYS)
    venue = config.execution.venues["binance"]
    assert isinstance(venue, ExchangeVenue)
    assert (venue.api_key, venue.api_secret, venue.environment) == ("k-123", "s-456", "testnet")
    assert config.execution.route("acct-1", "strat-1", "BTC-USD") == (["binance"], False)


def test_a_credential_written_in_the_file_stops_start_up_without_showing_it(
    tmp_path: Path,
) -> None:
    message = refusal(write(tmp_path, _direct(api_secret="hunter2-secret")), _KEYS)
    assert "execution.venues.binance.api_secret: write ${VARIABLE}" in message
    assert "hunter2" not in message


def test_a_venue_credential_from_an_unset_variable_names_the_key_path(tmp_path: Path) -> None:
    message = refusal(write(tmp_path, _direct()), {"EXCHANGE_KEY": "k"})
    assert "execution.venues.binance.api_secret: environment variable EXCHANGE_SECRET" in message


def test_an_empty_credential_names_the_key_path_not_the_venue_kind(tmp_path: Path) -> None:
    message = refusal(write(tmp_path, _direct()), {**_KEYS, "EXCHANGE_SECRET": ""})
    assert "  execution.venues.binance.api_secret: String should have at least 1" in message


def test_quantconnect_venue_reads_its_token_from_the_environment_with_lean_defaults(
    tmp_path: Path,
) -> None:
    document = {**minimal(), "execution": {"mode": "quantconnect", "venues": _QUANTCONNECT}}
    config = load_config(write(tmp_path, document), _KEYS)
    require_available_adapters(config)
    venue = config.execution.venues["qc"]
    assert isinstance(venue, QuantConnectVenue)
    assert (venue.user_id, venue.api_token, venue.project_id) == ("7", "t", 1)
    assert (venue.market, venue.security_type, venue.poll_interval_ms) == (
        "coinbase",
        "crypto",
        5000,
    )


def test_direct_mode_without_venues_is_refused(tmp_path: Path) -> None:
    message = refusal(write(tmp_path, {**minimal(), "execution": {"mode": "direct"}}))
    assert "mode direct needs at least one venue" in message


def test_a_venue_of_another_mode_is_refused_naming_it(tmp_path: Path) -> None:
    document = _direct()
    document["execution"]["venues"].update(_QUANTCONNECT)
    message = refusal(write(tmp_path, document), _KEYS)
    assert "qc cannot be used in mode direct (kinds allowed: binance, bybit)" in message


def test_a_routing_rule_naming_an_unknown_venue_is_refused(tmp_path: Path) -> None:
    document = _direct()
    document["execution"]["routing"] = [{"account": "acct-1", "venues": ["bybit"]}]
    message = refusal(write(tmp_path, document), _KEYS)
    assert "routing.0.venues: unknown venue(s) bybit; configured: binance" in message


def test_an_instrument_on_no_venue_is_refused(tmp_path: Path) -> None:
    document = _direct()
    document["instruments"].append({**document["instruments"][0], "symbol": "ETH-USD"})
    message = refusal(write(tmp_path, document), _KEYS)
    assert "instruments ETH-USD trade on no venue" in message


def test_a_rate_limit_not_in_the_limits_notation_is_refused(tmp_path: Path) -> None:
    message = refusal(write(tmp_path, _direct(rate_limits=["lots/minute"])), _KEYS)
    assert "execution.venues.binance.rate_limits.0: String should match pattern" in message


def test_routing_rules_match_account_strategy_and_instrument_first_rule_winning(
    tmp_path: Path,
) -> None:
    document = _direct()
    second = {**document["execution"]["venues"]["binance"], "kind": "bybit"}
    document["execution"]["venues"]["bybit"] = second
    document["execution"]["routing"] = [
        {"account": "acct-2", "instrument": "BTC-USD", "venues": ["bybit", "binance"]},
        {"strategy": "mm", "venues": ["bybit"]},
    ]
    execution = load_config(write(tmp_path, document), _KEYS).execution
    assert execution.route("acct-2", "", "BTC-USD") == (["bybit", "binance"], False)
    assert execution.route("acct-1", "mm", "BTC-USD") == (["bybit"], False)
    assert execution.route("acct-1", "trend", "BTC-USD") == (["binance", "bybit"], False)


def test_stops_go_to_the_venue_only_when_every_venue_of_the_route_holds_them(
    tmp_path: Path,
) -> None:
    document = _direct(native_stops=True)
    second = {**document["execution"]["venues"]["binance"], "native_stops": False}
    document["execution"]["venues"]["other"] = second
    document["execution"]["routing"] = [
        {"account": "acct-native", "venues": ["binance"]},
        {"account": "acct-smart", "venues": ["binance"], "smart": True},
    ]
    execution = load_config(write(tmp_path, document), _KEYS).execution
    assert execution.holds_stops("acct-native", "", "BTC-USD")
    assert not execution.holds_stops("acct-smart", "", "BTC-USD")  # shared: children, no stops
    assert not execution.holds_stops("acct-1", "", "BTC-USD")  # binance, then other: no
    bybit = load_config(write(tmp_path, _direct(kind="bybit", native_stops=True)), _KEYS)
    assert bybit.execution.holds_stops("acct-1", "", "BTC-USD")  # spot conditional orders


# Unknown keys and wrong types ----------------------------------------------------------------


def test_unknown_nested_key_names_the_file_the_key_path_and_unknown_key(tmp_path: Path) -> None:
    document = minimal()
    document["account_limits"]["bogus"] = 1
    path = write(tmp_path, document)
    message = refusal(path)
    assert str(path) in message
    assert "account_limits.bogus: unknown key" in message


def test_unknown_key_under_a_backend_mapping_names_the_key_path_of_the_file(
    tmp_path: Path,
) -> None:
    document = minimal()
    document["database"]["bogus"] = 1
    assert "  database.bogus: unknown key" in refusal(write(tmp_path, document))


def test_unknown_top_level_key_is_refused(tmp_path: Path) -> None:
    message = refusal(write(tmp_path, {**minimal(), "databse": {"backend": "duckdb"}}))
    assert "databse: unknown key" in message


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("services", "order_management", {"port": "abc"}, "valid integer"),
        ("services", "order_management", {"port": 70000}, "less than or equal to 65535"),
        ("account_limits", "max_daily_orders", -1, "greater than or equal to 1"),
        ("account_limits", "max_order_value", "-5", "greater than 0"),
        ("account_limits", "min_order_size", "lots", "valid decimal"),
    ],
)
def test_wrong_type_names_the_key_path_and_what_was_expected(
    tmp_path: Path, section: str, key: str, value: object, expected: str
) -> None:
    document = minimal()
    document.setdefault(section, {})[key] = value
    path = write(tmp_path, document)
    message = refusal(path)
    assert str(path) in message
    leaf = f"{section}.{key}" + (".port" if isinstance(value, dict) else "")
    assert f"{leaf}: " in message
    assert expected in message


def test_wrong_type_inside_the_instrument_list_names_its_index(tmp_path: Path) -> None:
    document = minimal()
    document["instruments"][0]["tick_size"] = "0"
    message = refusal(write(tmp_path, document))
    assert "instruments.0.tick_size: " in message
    assert "greater than 0" in message


def test_missing_required_key_is_named(tmp_path: Path) -> None:
    document = minimal()
    del document["account_limits"]["max_order_value"]
    message = refusal(write(tmp_path, document))
    assert "account_limits.max_order_value: Field required" in message


def test_duplicate_instrument_symbols_are_refused(tmp_path: Path) -> None:
    document = minimal()
    document["instruments"].append({**document["instruments"][0], "tick_size": "0.1"})
    message = refusal(write(tmp_path, document))
    assert "instruments" in message
    assert "unique" in message
    assert "BTC-USD" in message


def test_fixed_quantity_sizing_without_a_quantity_is_refused(tmp_path: Path) -> None:
    document = {**minimal(), "signal_sizing": {"method": "fixed_quantity", "notional": "100"}}
    message = refusal(write(tmp_path, document))
    assert "signal_sizing" in message
    assert "fixed_quantity needs 'quantity'" in message


def test_fewer_workers_than_max_streams_plus_four_is_refused_naming_both_keys(
    tmp_path: Path,
) -> None:
    document = {**minimal(), "services": {"max_workers": 11, "max_streams": 8}}
    message = refusal(write(tmp_path, document))
    assert "services:" in message
    assert "max_workers (11) must be at least max_streams + 4 (12)" in message


def test_workers_of_exactly_max_streams_plus_four_are_accepted(tmp_path: Path) -> None:
    document = {**minimal(), "services": {"max_workers": 7, "max_streams": 3}}
    services = load_config(write(tmp_path, document), {}).services
    assert (services.max_workers, services.max_streams) == (7, 3)


def test_decimals_stay_exact_decimals_never_floats(tmp_path: Path) -> None:
    document = minimal()
    document["instruments"][0]["tick_size"] = "0.01"
    document["execution"] = {"simulation": {"fee_bps": 0.1}}  # an unquoted YAML float
    config = load_config(write(tmp_path, document), {})
    tick = config.instruments[0].tick_size
    assert type(tick) is Decimal
    assert tick == Decimal("0.01")
    fee = config.execution.simulation.fee_bps
    assert type(fee) is Decimal
    assert fee == Decimal("0.1")


# ${VAR} substitution -------------------------------------------------------------------------


def test_variables_are_substituted_inside_nested_strings_and_lists(tmp_path: Path) -> None:
    document = minimal()
    document["environment"] = "${ENV_NAME}"
    document["messaging"] = {"backend": "pubsub", "project": "proj-${PROJECT}-x"}
    document["services"] = {"order_management": {"host": "${HOST}", "port": 1}}
    document["instruments"][0]["symbol"] = "${BASE}-${QUOTE}"
    environ = {"ENV_NAME": "ci", "PROJECT": "p1", "HOST": "0.0.0.0", "BASE": "ETH", "QUOTE": "EUR"}
    config = load_config(write(tmp_path, document), environ)
    assert config.environment == "ci"
    assert isinstance(config.messaging, PubSubMessaging)
    assert config.messaging.project == "proj-p1-x"
    assert config.services.order_management.host == "0.0.0.0"
    assert config.instruments[0].symbol == "ETH-EUR"


def test_missing_variable_names_the_file_the_key_path_and_the_variable(tmp_path: Path) -> None:
    document = minimal()
    document["instruments"][0]["symbol"] = "${BASE}-USD"
    path = write(tmp_path, document)
    message = refusal(path, {"OTHER": "x"})
    assert str(path) in message
    assert "instruments.0.symbol" in message
    assert "BASE" in message


SECRET = "sk-live-0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("section", "key", "template"),
    [
        ("account_limits", "max_order_value", "${SECRET}"),
        ("account_limits", "max_daily_orders", "${SECRET}"),
        ("logging", "level", "${SECRET}"),
        ("database", "backend", "${SECRET}"),
        ("messaging", "topic_prefix", "pre ${SECRET}"),
    ],
)
def test_wrong_value_from_an_environment_variable_is_named_but_never_shown(
    tmp_path: Path, section: str, key: str, template: str
) -> None:
    document = minimal()
    if section == "messaging":
        document["messaging"] = {"backend": "pubsub", "project": "p"}
    document.setdefault(section, {})[key] = template
    message = refusal(write(tmp_path, document), {"SECRET": SECRET})
    assert f"{section}." in message or f"{section}:" in message
    assert "environment variable" in message
    assert SECRET not in message
    assert SECRET[:8] not in message


def test_secret_in_a_duplicated_symbol_is_not_shown(tmp_path: Path) -> None:
    document = minimal()
    document["instruments"][0]["symbol"] = "${SECRET}"
    document["instruments"].append(dict(document["instruments"][0]))
    message = refusal(write(tmp_path, document), {"SECRET": "API-KEY-123"})
    assert "instruments: invalid value" in message
    assert "API-KEY-123" not in message


def test_wrong_backend_written_in_the_file_is_quoted_beside_a_value_from_the_environment(
    tmp_path: Path,
) -> None:
    document = {**minimal(), "database": {"backend": "sqlite", "path": "${DATA}"}}
    message = refusal(write(tmp_path, document), {"DATA": SECRET})
    assert "database: expected one of 'duckdb', 'bigquery' (got 'sqlite')" in message
    assert SECRET not in message


def test_wrong_value_written_in_the_file_is_quoted_cut_to_32_characters(tmp_path: Path) -> None:
    document = minimal()
    document["logging"] = {"level": "X" * 5000}
    message = refusal(write(tmp_path, document))
    assert "logging.level: " in message
    assert "X" * 32 + "\N{HORIZONTAL ELLIPSIS}" in message
    assert "X" * 33 not in message


# extends ---------------------------------------------------------------------------------------


def test_extends_merges_key_by_key_keeping_the_base_siblings(tmp_path: Path) -> None:
    base = minimal()
    base["account_limits"]["min_order_size"] = "0.5"
    base["services"] = {"order_management": {"host": "10.0.0.1", "port": 7000}}
    write(tmp_path, base, "base.yaml")
    child = {
        "extends": "base.yaml",
        "account_limits": {"max_daily_orders": 5},
        "services": {"order_management": {"port": 7001}},
    }
    config = load_config(write(tmp_path, child), {})
    assert config.account_limits.max_daily_orders == 5
    assert config.account_limits.max_order_value == Decimal("1000")
    assert config.account_limits.min_order_size == Decimal("0.5")
    assert config.services.order_management.host == "10.0.0.1"
    assert config.services.order_management.port == 7001
    assert config.environment == "test"


def test_extends_with_the_same_backend_merges_the_mapping(tmp_path: Path) -> None:
    base = minimal()
    base["database"] = {"backend": "duckdb", "path": "base-data", "batch_size": 7}
    write(tmp_path, base, "base.yaml")
    child = {"extends": "base.yaml", "database": {"backend": "duckdb", "batch_size": 9}}
    config = load_config(write(tmp_path, child), {})
    assert isinstance(config.database, DuckDBDatabase)
    assert config.database.path == Path("base-data")
    assert config.database.batch_size == 9


def test_extends_with_another_backend_replaces_the_base_mapping(tmp_path: Path) -> None:
    base = minimal()
    base["database"] = {"backend": "duckdb", "path": "base-data", "flush_interval_ms": 10}
    write(tmp_path, base, "base.yaml")
    child = {
        "extends": "base.yaml",
        "database": {"backend": "bigquery", "project": "p", "dataset": "d"},
        "messaging": {"backend": "pubsub", "project": "p"},
    }
    config = load_config(write(tmp_path, child), {})
    # No duckdb key leaked in: the strict model would have refused it as unknown.
    assert config.database == BigQueryDatabase(backend="bigquery", project="p", dataset="d")
    assert isinstance(config.messaging, PubSubMessaging)


def test_bigquery_with_more_than_one_shard_is_refused_naming_why(tmp_path: Path) -> None:
    document = minimal()
    document["database"] = {"backend": "bigquery", "project": "p", "dataset": "d"}
    document["sharding"] = {"shards": 2}
    message = refusal(write(tmp_path, document))
    assert "database.backend: bigquery takes one shard for now (sharding.shards is 2)" in message
    document["sharding"] = {"shards": 1}
    assert isinstance(load_config(write(tmp_path, document), {}).database, BigQueryDatabase)


def test_extends_resolves_the_base_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "nested").mkdir()
    write(tmp_path, minimal(), "base.yaml")
    child = write(tmp_path / "nested", {"extends": "../base.yaml", "environment": "child"})
    assert load_config(child, {}).environment == "child"


def test_extends_cycle_is_refused_clearly(tmp_path: Path) -> None:
    write(tmp_path, {**minimal(), "extends": "b.yaml"}, "a.yaml")
    write(tmp_path, {"extends": "a.yaml"}, "b.yaml")
    message = refusal(tmp_path / "a.yaml")
    assert "extends" in message
    assert "cycle" in message
    assert "a.yaml" in message


def test_file_extending_itself_is_a_cycle(tmp_path: Path) -> None:
    path = write(tmp_path, {**minimal(), "extends": "config.yaml"})
    assert "cycle" in refusal(path)


def test_missing_base_file_is_named(tmp_path: Path) -> None:
    message = refusal(write(tmp_path, {**minimal(), "extends": "nowhere.yaml"}))
    assert "nowhere.yaml" in message
    assert "no such config file" in message


def test_extends_that_is_not_a_file_name_is_refused(tmp_path: Path) -> None:
    message = refusal(write(tmp_path, {**minimal(), "extends": ["a.yaml"]}))
    assert "extends" in message


# Files that are not configs --------------------------------------------------------------------


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    message = refusal(path)
    assert str(path) in message
    assert "no such config file" in message


def test_a_folder_given_as_the_config_is_refused_in_one_line_naming_it(tmp_path: Path) -> None:
    message = refusal(tmp_path)
    assert message == (
        f"{tmp_path}: is a folder, not a config file; name a file such as config/local.yaml"
    )


def test_a_folder_named_by_extends_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    message = refusal(write(tmp_path, {**minimal(), "extends": "base"}))
    assert message.startswith(f"{tmp_path / 'base'}: is a folder, not a config file")


def test_a_binary_file_as_the_config_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "data.duckdb"
    path.write_bytes(b"\xff\xfe\x00 not text")
    assert refusal(path) == f"{path}: not a text file (expected YAML in UTF-8)"


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "environment: [unclosed\ndatabase: {")
    message = refusal(path)
    assert str(path) in message
    assert "not valid YAML" in message


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_non_mapping_top_level_is_refused(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    message = refusal(path)
    assert str(path) in message
    assert "expected a mapping at the top level" in message


def test_empty_file_reports_the_required_keys(tmp_path: Path) -> None:
    message = refusal(write(tmp_path, ""))
    for key in ("environment", "database", "messaging", "account_limits", "instruments"):
        assert f"  {key}: Field required" in message


def test_minimal_config_fills_in_the_documented_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, minimal()), {})
    assert config == PlatformConfig.model_validate(minimal())
    assert config.instruments[0].quote_decimals == 2
    assert config.services.order_management.port == 50051
    assert config.execution.mode == "simulation"
    assert config.signal_sizing.notional == Decimal("1000")
    assert config.logging.json_format is True


# tradectl serve ----------------------------------------------------------------------------------


def test_serve_with_a_bad_config_exits_2_naming_the_problem(tmp_path: Path) -> None:
    document = minimal()
    document["account_limits"]["max_order_value"] = "-5"
    path = write(tmp_path, document)
    result = CliRunner().invoke(app, ["serve", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert "cannot start" in result.stderr
    assert str(path) in result.stderr
    assert "account_limits.max_order_value: Input should be greater than 0" in result.stderr


def test_serve_with_a_folder_as_config_exits_2_with_one_line_and_no_traceback(
    tmp_path: Path,
) -> None:
    result = CliRunner().invoke(app, ["serve", "--config", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert (
        result.stderr == f"tradectl: cannot start: {tmp_path}: is a folder, not a config "
        "file; name a file such as config/local.yaml\n"
    )
    assert result.stdout == ""


def test_local_realistic_yaml_turns_the_paper_venues_market_model_on() -> None:
    config = load_config(CONFIG_DIR / "local-realistic.yaml", {})
    require_available_adapters(config)
    simulation = config.execution.simulation
    assert (simulation.book_levels, simulation.slippage_model) == (5, "sqrt")
    assert simulation.latency is not None
    assert (simulation.maker_fee_bps, simulation.taker_fee_bps) == (Decimal(2), Decimal(6))
