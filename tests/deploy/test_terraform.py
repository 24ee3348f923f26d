"""Terraform (terraform/): formatted as `terraform fmt` wants, 0 failed checkov checks, and the
same names as the code, the config and the manifests: every topic, subscription, table, secret
and service account the platform uses exists in Terraform, and Terraform makes nothing else.

Terraform is read with python-hcl2 (the `hcl2` module of bc-python-hcl2, Bridgecrew's fork that
checkov itself parses with); nothing here needs `terraform init`, which would download the
provider. The code's side comes from the platform's own modules, run with its environment
(.venv), and from the services' sources."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest

from tests.deploy.render import (
    ENVIRONMENTS,
    ROOT,
    SERVICES,
    Manifest,
    Variant,
    kustomize,
    namespace_of,
    of_kind,
    one,
)

TERRAFORM = ROOT / "terraform"
MODULES = TERRAFORM / "modules"
# HashiCorp's hclwrite.Format (what `terraform fmt` is built on), compiled to WebAssembly and
# published on npm: the formatter when no terraform binary is on PATH.
HCL_TOOLS = "@cdktf/hcl-tools@0.21.0"
FORMAT_CHECK = Path(__file__).with_name("hcl_format_check.js")


# Reading Terraform -----------------------------------------------------------------------------


@cache
def parsed(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as file:
        document: dict[str, Any] = hcl2.load(file)
    return document


def block(path: Path, kind: str, *labels: str) -> dict[str, Any]:
    """The one block `kind "label" ...` of a file: hcl2 nests each label one level deeper."""
    found = []
    for entry in parsed(path).get(kind, []):
        body = entry
        for label in labels:
            body = body.get(label)
            if body is None:
                break
        else:
            found.append(body)
    assert len(found) == 1, f"{path}: expected one {kind} {labels}, found {len(found)}"
    return dict(found[0])


def locals_of(path: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for entry in parsed(path).get("locals", []):
        merged.update({name: value for name, value in entry.items() if not name.startswith("__")})
    return merged


def variable_default(module: str, name: str) -> Any:
    return attribute(block(MODULES / module / "variables.tf", "variable", name), "default")


def attribute(body: dict[str, Any], name: str) -> Any:
    """An attribute of a block: hcl2 wraps each in a list of one (values nested in an object
    literal are not wrapped); a nested block is a list of its bodies."""
    value = body[name]
    assert isinstance(value, list) and len(value) == 1, f"{name}: {value!r}"
    return value[0]


def platform_module(environment: str) -> dict[str, Any]:
    """The arguments envs/<env> gives the platform module."""
    body = block(TERRAFORM / "envs" / environment / "main.tf", "module", "platform")
    return {name: attribute(body, name) for name in body if not name.startswith("__")}


PLATFORM = {name: value[0] for name, value in locals_of(MODULES / "platform" / "main.tf").items()}


# The code's side -------------------------------------------------------------------------------

# Run with the platform's environment: its topology, resource ids, warehouse schema and configs.
_FACTS_SCRIPT = """
import hashlib, json, re, sys
from pathlib import Path
from trading_core.bus.base import PER_INSTANCE_TOPICS, TOPICS, shard_filter, subscription_name
from trading_core.bus.pubsub import _ACK_DEADLINE_S, resource_id
from trading_core.config import load_config
from trading_core.store.schema import SERVICES, bigquery_tables
names = [*TOPICS, *(f"{t}.{s}" for t, services in TOPICS.items() for s in services)]
configs = {}
for environment in sys.argv[1:]:
    path = Path("config") / f"{environment}.yaml"
    text = "".join(p.read_text() for p in path.parent.glob("*.yaml"))
    environ = {n: hashlib.sha256(n.encode()).hexdigest()
               for n in re.findall(r"\\$\\{([A-Za-z0-9_]+)\\}", text)}
    environ["GCP_PROJECT"] = "trading-platform-" + environment
    config = load_config(path, environ)
    configs[environment] = {
        "topic_prefix": config.messaging.topic_prefix,
        "max_delivery_attempts": config.messaging.max_delivery_attempts,
        "dataset": config.database.dataset,
        "location": config.database.location,
    }
print(json.dumps({
    "topics": {topic: list(services) for topic, services in TOPICS.items()},
    "per_instance_topics": sorted(PER_INSTANCE_TOPICS),
    "ack_deadline_s": _ACK_DEADLINE_S,
    "shard_7": {
        "subscription": subscription_name("orders", "execution-router", shard=7),
        "filter": shard_filter(7),
    },
    "resource_ids": {
        prefix + name: resource_id(prefix + name)
        for prefix in {c["topic_prefix"] for c in configs.values()} for name in names
    },
    "services": list(SERVICES),
    "tables": sorted(bigquery_tables()),
    "configs": configs,
}))
"""


@pytest.fixture(scope="module")
def code() -> dict[str, Any]:
    python = ROOT / ".venv" / "bin" / "python"
    assert python.exists(), f"{python}: run `make setup` first"
    result = subprocess.run(
        [str(python), "-c", _FACTS_SCRIPT, *ENVIRONMENTS],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    facts: dict[str, Any] = json.loads(result.stdout)
    return facts


def _topics_in_sources(pattern: str) -> dict[str, set[str]]:
    """Topic => the services whose sources match `pattern` (its group 1 is the topic)."""
    found: dict[str, set[str]] = {}
    for service in SERVICES:
        for source in (ROOT / "services" / service / "src").rglob("*.py"):
            for topic in re.findall(pattern, source.read_text(encoding="utf-8")):
                found.setdefault(topic, set()).add(service)
    return found


def published_topics() -> dict[str, set[str]]:
    """What each service publishes: the topic of every record it keeps for the outbox
    (event_record/command_record) and of every direct bus.publish."""
    return _topics_in_sources(
        r"(?:(?:event_record|command_record)\([^()]*?,\s*|bus\.publish\(\s*)\"([a-z-]+)\""
    )


def consumed_topics() -> dict[str, set[str]]:
    return _topics_in_sources(r"self\.consume\(\s*\"([a-z-]+)\"")


@pytest.fixture(scope="module")
def shipped() -> dict[str, list[Manifest]]:
    """Each overlay with the venue-credentials component: every SecretProviderClass."""
    return {e: kustomize(Variant(e, ("venue-credentials",))) for e in ENVIRONMENTS}


# Format and checkov ----------------------------------------------------------------------------


def test_terraform_is_formatted_as_terraform_fmt_wants() -> None:
    result = subprocess.run(format_check(TERRAFORM), capture_output=True, text=True, check=False)
    assert result.returncode == 0, (
        f"run `terraform fmt -recursive terraform`:\n{result.stdout}{result.stderr}"
    )


def test_a_misformatted_file_fails_the_format_check(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text('variable "a" {\ntype= string\n}\n', encoding="utf-8")
    result = subprocess.run(format_check(tmp_path), capture_output=True, text=True, check=False)
    # Refused for that file, not for a checker that could not run at all.
    assert result.returncode == 3, result.stderr
    assert "main.tf" in result.stdout


def format_check(folder: Path) -> list[str]:
    """`terraform fmt -check` of every file below `folder`; without a terraform binary,
    hclwrite.Format from npm (installed once into .venv-deploy) through hcl_format_check.js."""
    terraform = shutil.which("terraform")
    if terraform is not None:
        return [terraform, "fmt", "-check", "-recursive", "-diff", str(folder)]
    prefix = ROOT / ".venv-deploy" / "hcl-tools"
    if not (prefix / "node_modules" / "@cdktf" / "hcl-tools").exists():
        install = ["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix"]
        subprocess.run([*install, str(prefix), HCL_TOOLS], check=True)
    return [str(FORMAT_CHECK), *map(str, sorted(folder.rglob("*.tf")))]


def test_checkov_finds_no_failed_check_in_terraform() -> None:
    """Each skip is written beside its resource with its reason: #checkov:skip=CKV_ID:reason."""
    checkov = Path(__import__("sys").executable).with_name("checkov")
    assert checkov.exists(), f"{checkov}: make lint installs it (uv group deploy)"
    options = ["--framework", "terraform", "--quiet", "--skip-download", "--output", "json"]
    result = subprocess.run(
        [str(checkov), "--directory", str(TERRAFORM), *options],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.strip(), result.stderr
    report = json.loads(result.stdout)
    summary = report["summary"]
    print(f"checkov terraform: {summary}")  # noqa: T201 - the counts the README quotes
    failed = [
        f"{c['check_id']} {c['resource']} {c['file_path']}"
        for c in report["results"].get("failed_checks", [])
    ]
    assert summary["failed"] == 0, failed
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 50
    for path in TERRAFORM.rglob("*.tf"):
        for skip in re.findall(r"#\s*checkov:skip=(\S*)", path.read_text(encoding="utf-8")):
            assert re.fullmatch(r"CKV2?_[A-Z]+_\d+:\S.*", skip + " x"), f"{path}: {skip}: no reason"


# The same names as the code, the config and the manifests ---------------------------------------


def test_terraform_makes_exactly_the_topics_and_subscriptions_the_code_uses(
    code: dict[str, Any],
) -> None:
    topics = {name: _flat(spec) for name, spec in PLATFORM["topics"].items()}
    assert set(topics) == set(code["topics"])
    per_instance = set(code["per_instance_topics"])
    consumed = consumed_topics()
    published = published_topics()
    assert consumed and published  # the scans still find the calls
    for topic, spec in topics.items():
        # Durable subscriptions: trading_core.bus.base.TOPICS, and the services consuming them.
        assert spec["subscribers"] == sorted(code["topics"][topic]), topic
        if topic in per_instance:
            assert spec["instance_subscribers"] == sorted(consumed.get(topic, ())), topic
            assert not spec["subscribers"], topic
        else:
            assert sorted(consumed.get(topic, ())) == spec["subscribers"], topic
            assert not spec["instance_subscribers"], topic
        assert spec["publishers"] == sorted(published.get(topic, ())), topic
    assert set(published) <= set(topics)


def _flat(spec: dict[str, Any]) -> dict[str, list[str]]:
    return {key: sorted(services) for key, services in spec.items()}


def test_topic_and_subscription_ids_are_the_ones_the_bus_derives(code: dict[str, Any]) -> None:
    """The bus names a resource `resource_id(prefix + name)`; Terraform `prefix + name`, which
    is the same only while resource_id changes none of the names."""
    for name, cleaned in code["resource_ids"].items():
        assert name == cleaned
    main = MODULES / "pubsub" / "main.tf"
    for resource in ("topics", "subscriptions"):
        body = block(main, "resource", f"google_pubsub_{resource[:-1]}", resource)
        assert attribute(body, "name") == "${var.topic_prefix}${each.key}"
    subscriptions = attribute(locals_of(main), "subscriptions")
    assert '"${topic}.${service}"' in subscriptions  # trading_core.bus.base.subscription_name


def test_with_shards_each_shard_has_its_subscriptions_filtered_as_the_bus_makes_them(
    code: dict[str, Any],
) -> None:
    """`shards` above 1: `<topic>.<service>.shard-<N>` with the filter on the `shard` attribute,
    as the bus names and filters them (shard 7 of the router's `orders`); one shard: neither."""
    main = MODULES / "pubsub" / "main.tf"
    sharded_name = '"${topic}.${service}.shard-${shard}"'
    assert sharded_name in attribute(locals_of(main), "subscriptions")
    expected = code["shard_7"]
    as_terraform = {"topic": "orders", "service": "execution-router", "shard": "7"}
    name = re.sub(r"\$\{(\w+)\}", lambda m: as_terraform[m.group(1)], sharded_name.strip('"'))
    assert name == expected["subscription"]
    subscription = block(main, "resource", "google_pubsub_subscription", "subscriptions")
    (template,) = re.findall(r'"(attributes[^"]*?\\"[^"]*\\")"', attribute(subscription, "filter"))
    as_filter = template.replace('\\"', '"').replace("${each.value.shard}", "7")
    assert as_filter == expected["filter"]
    assert variable_default("pubsub", "shards") == variable_default("platform", "shards") == 1
    pubsub = block(MODULES / "platform" / "main.tf", "module", "pubsub")
    assert attribute(pubsub, "shards") == "${var.shards}"


def test_subscriptions_are_ordered_and_dead_letter_only_after_the_service_gave_up(
    code: dict[str, Any],
) -> None:
    main = MODULES / "pubsub" / "main.tf"
    subscription = block(main, "resource", "google_pubsub_subscription", "subscriptions")
    assert attribute(subscription, "enable_message_ordering") is True
    assert attribute(subscription, "ack_deadline_seconds") == "${var.ack_deadline_seconds}"
    assert variable_default("pubsub", "ack_deadline_seconds") == code["ack_deadline_s"]
    assert subscription["dead_letter_policy"] and subscription["retry_policy"]
    # Pub/Sub's dead letters are a backstop: each service parks a failing message in its own
    # dead-letter store after messaging.max_delivery_attempts, which must come first.
    attempts = variable_default("pubsub", "max_delivery_attempts")
    assert 5 <= attempts <= 100  # Pub/Sub's own bounds
    for environment, config in code["configs"].items():
        assert config["max_delivery_attempts"] < attempts, environment


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_each_environment_names_what_its_config_and_overlay_name(
    environment: str, code: dict[str, Any], shipped: dict[str, list[Manifest]]
) -> None:
    module = platform_module(environment)
    config = code["configs"][environment]
    manifests = shipped[environment]
    project = one(manifests, "ConfigMap", "trading-environment-")["data"]["GCP_PROJECT"]
    assert module["environment"] == environment
    assert module["project"] == project
    assert module["topic_prefix"] == config["topic_prefix"]
    assert module["dataset"] == config["dataset"]
    assert module["bigquery_location"] == config["location"]
    images = {c["image"] for s in of_kind(manifests, "StatefulSet") for c in _containers(s)}
    registry = f"{module['region']}-docker.pkg.dev/{project}/"
    registry += variable_default("registry", "repository")
    assert {image.rsplit("/", 1)[0] for image in images} == {registry}
    main = TERRAFORM / "envs" / environment / "main.tf"
    provider = block(main, "provider", "google")
    assert (attribute(provider, "project"), attribute(provider, "region")) == (
        module["project"],
        module["region"],
    )


def _containers(statefulset: Manifest) -> list[Manifest]:
    return list(statefulset["spec"]["template"]["spec"]["containers"])


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_each_service_has_its_google_account_bound_to_its_kubernetes_service_account(
    environment: str, code: dict[str, Any], shipped: dict[str, list[Manifest]]
) -> None:
    services = PLATFORM["services"]
    assert sorted(services) == sorted(code["services"]) == sorted(SERVICES)
    project = platform_module(environment)["project"]
    accounts = {a["metadata"]["name"]: a for a in of_kind(shipped[environment], "ServiceAccount")}
    assert set(accounts) == set(services)
    for name, account in accounts.items():
        annotation = account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
        assert annotation == f"{name}@{project}.iam.gserviceaccount.com"
        assert account["metadata"]["namespace"] == namespace_of(environment)
    assert PLATFORM["namespace"] == "trading-${var.environment}"
    iam = MODULES / "iam" / "main.tf"
    account = block(iam, "resource", "google_service_account", "services")
    assert attribute(account, "account_id") == "${each.key}"
    binding = block(iam, "resource", "google_service_account_iam_member", "workload_identity")
    assert attribute(binding, "member") == (
        "serviceAccount:${var.project}.svc.id.goog[${var.namespace}/${each.key}]"
    )


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_terraform_makes_the_secrets_the_pods_mount_and_lets_only_those_pods_read_them(
    environment: str, shipped: dict[str, list[Manifest]]
) -> None:
    manifests = shipped[environment]
    project = platform_module(environment)["project"]
    sets, readers = PLATFORM["secret_sets"], PLATFORM["secret_readers"]
    classes = {spc["metadata"]["name"]: spc for spc in of_kind(manifests, "SecretProviderClass")}
    assert set(classes) == set(sets) == set(readers)
    for name, spc in classes.items():
        mounted = sorted(
            statefulset["metadata"]["name"]
            for statefulset in of_kind(manifests, "StatefulSet")
            if name in _classes_mounted(statefulset)
        )
        assert sorted(readers[name]) == mounted, name
        names = re.findall(r"resourceName:\s*(\S+)", spc["spec"]["parameters"]["secrets"])
        pattern = rf"projects/{project}/secrets/([^/]+)/versions/\w+"
        ids = [re.fullmatch(pattern, n) for n in names]
        assert all(ids), names
        if names:
            assert sorted(sets[name]) == sorted(m[1] for m in ids if m), name
        else:  # the venues' secrets: named per deployment (the component's patch)
            assert sets[name] == "${var.venue_secrets}", name
    # The secrets only: a value never goes through Terraform (nor its state).
    for path in TERRAFORM.rglob("*.tf"):
        text = path.read_text(encoding="utf-8")
        assert "google_secret_manager_secret_version" not in text and "secret_data" not in text


def _classes_mounted(statefulset: Manifest) -> set[str]:
    volumes = statefulset["spec"]["template"]["spec"]["volumes"]
    return {v["csi"]["volumeAttributes"]["secretProviderClass"] for v in volumes if "csi" in v}


def test_terraform_makes_every_table_of_the_warehouse_schema_and_no_other(
    code: dict[str, Any],
) -> None:
    tables = json.loads((MODULES / "bigquery" / "tables.json").read_text(encoding="utf-8"))
    assert sorted(tables) == code["tables"]
    main = MODULES / "bigquery" / "main.tf"
    tables_from = attribute(locals_of(main), "tables")
    assert tables_from == '${jsondecode(file("${path.module}/tables.json"))}'
    table = block(main, "resource", "google_bigquery_table", "tables")
    assert attribute(table, "for_each") == "${local.tables}"
    assert attribute(table, "table_id") == "${each.key}"
    # Every service feeds the warehouse: each may write the dataset, none more.
    platform = block(MODULES / "platform" / "main.tf", "module", "bigquery")
    assert attribute(platform, "writers") == "${module.iam.members}"


def test_the_environments_pin_the_google_provider_and_the_modules_admit_it() -> None:
    for environment in ENVIRONMENTS:
        terraform = parsed(TERRAFORM / "envs" / environment / "main.tf")["terraform"][0]
        (google,) = attribute(terraform, "required_providers")["google"]
        assert google["source"] == "hashicorp/google"
        assert re.fullmatch(r"6\.\d+\.\d+", google["version"]), google
        backend = attribute(terraform, "backend")["gcs"]
        assert attribute(backend, "bucket") == f"trading-platform-{environment}-tfstate"
    for versions in MODULES.glob("*/versions.tf"):
        terraform = parsed(versions)["terraform"][0]
        (google,) = attribute(terraform, "required_providers")["google"]
        assert google["version"] == ">= 6.0, < 7.0", versions
