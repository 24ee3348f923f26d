"""The deployment as rendered: every overlay with every combination of components validates
strictly against the target Kubernetes version, the Helm chart renders the very same objects,
and the objects keep the promises of k8s/README.md (one writer per journal, hardened pods,
only the designed network flows, config from the files themselves)."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.render import (
    CHART,
    ENVIRONMENTS,
    K8S,
    METRICS_PORT,
    ROOT,
    SERVICES,
    SHARDED,
    Manifest,
    Variant,
    by_key,
    helm_template,
    kubernetes_version,
    kustomize,
    namespace_of,
    of_kind,
    one,
    values_of,
    variants,
)

VARIANTS = variants()
SHIPPED = [Variant(environment) for environment in ENVIRONMENTS]


@pytest.fixture(scope="module")
def rendered() -> dict[Variant, list[Manifest]]:
    return {variant: kustomize(variant) for variant in VARIANTS}


def ids(variant: Variant) -> str:
    return variant.name


# The Secrets Store CSI driver's SecretProviderClass (secrets-store.csi.x-k8s.io/v1), strict:
# the fields its CRD defines, no others. kubernetes-validate knows only the built-in kinds.
def _strict(properties: dict[str, Any], *required: str) -> dict[str, Any]:
    """An object with these properties and no others."""
    schema = {"type": "object", "additionalProperties": False, "properties": properties}
    return {**schema, "required": list(required)} if required else schema


_STRING = {"type": "string"}
_STRINGS = {"type": "object", "additionalProperties": _STRING}
_LABELLED = {"labels": _STRINGS, "annotations": _STRINGS}
SECRET_PROVIDER_CLASS = _strict(
    {
        "apiVersion": {"const": "secrets-store.csi.x-k8s.io/v1"},
        "kind": {"const": "SecretProviderClass"},
        "metadata": _strict({"name": _STRING, "namespace": _STRING, **_LABELLED}, "name"),
        "spec": _strict(
            {
                "provider": _STRING,
                "parameters": _STRINGS,
                "secretObjects": {
                    "type": "array",
                    "items": _strict(
                        {
                            "secretName": _STRING,
                            "type": _STRING,
                            **_LABELLED,
                            "data": {
                                "type": "array",
                                "items": _strict({"objectName": _STRING, "key": _STRING}),
                            },
                        }
                    ),
                },
            }
        ),
    },
    "apiVersion",
    "kind",
    "metadata",
    "spec",
)


def _custom(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A custom resource of this kind with this spec, strictly."""
    metadata = _strict({"name": _STRING, "namespace": _STRING, **_LABELLED}, "name")
    return _strict(
        {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": metadata,
            "spec": spec,
        },
        "apiVersion",
        "kind",
        "metadata",
        "spec",
    )


_SELECTOR = _strict({"matchLabels": _STRINGS})
# Google Managed Prometheus (monitoring.googleapis.com/v1): the fields of its CRDs we use.
POD_MONITORING = _custom(
    "monitoring.googleapis.com/v1",
    "PodMonitoring",
    _strict(
        {
            "selector": _SELECTOR,
            "endpoints": {
                "type": "array",
                "minItems": 1,
                "items": _strict(
                    {
                        "port": {"type": ["string", "integer"]},
                        "path": _STRING,
                        "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                    },
                    "port",
                ),
            },
        },
        "selector",
        "endpoints",
    ),
)
_RULE = _strict(
    {
        "alert": _STRING,
        "record": _STRING,
        "expr": _STRING,
        "for": {"type": "string", "pattern": "^[0-9]+(s|m|h)$"},
        "labels": _STRINGS,
        "annotations": _STRINGS,
    },
    "expr",
)
RULES = _custom(
    "monitoring.googleapis.com/v1",
    "Rules",
    _strict(
        {
            "groups": {
                "type": "array",
                "minItems": 1,
                "items": _strict(
                    {
                        "name": _STRING,
                        "interval": _STRING,
                        "rules": {"type": "array", "minItems": 1, "items": _RULE},
                    },
                    "name",
                    "rules",
                ),
            }
        },
        "groups",
    ),
)
CUSTOM_RESOURCES = {
    "SecretProviderClass": SECRET_PROVIDER_CLASS,
    "PodMonitoring": POD_MONITORING,
    "Rules": RULES,
}


def validate_strictly(manifest: Manifest) -> None:
    """kubernetes-validate --strict for the target version; our own schemas for the CRDs."""
    if manifest["kind"] in CUSTOM_RESOURCES:
        jsonschema.validate(manifest, CUSTOM_RESOURCES[manifest["kind"]])
        return
    kubernetes_validate.validate(manifest, kubernetes_version(), strict=True)


@pytest.mark.parametrize("variant", VARIANTS, ids=ids)
def test_every_overlay_and_component_combination_validates_strictly(
    variant: Variant, rendered: dict[Variant, list[Manifest]]
) -> None:
    manifests = rendered[variant]
    assert manifests
    for manifest in manifests:
        validate_strictly(manifest)


def test_a_manifest_with_an_unknown_key_fails_strict_validation(
    rendered: dict[Variant, list[Manifest]],
) -> None:
    statefulset = copy.deepcopy(next(of_kind(rendered[SHIPPED[0]], "StatefulSet")))
    statefulset["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFilesytem"] = True
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFilesytem"):
        validate_strictly(statefulset)


def test_a_secret_provider_class_with_an_unknown_key_fails_validation(
    rendered: dict[Variant, list[Manifest]],
) -> None:
    manifest = copy.deepcopy(
        one(
            rendered[Variant("prod", ("venue-credentials",))],
            "SecretProviderClass",
            "execution-router-venues",
        )
    )
    manifest["spec"]["secretObject"] = []
    with pytest.raises(jsonschema.ValidationError, match="secretObject"):
        validate_strictly(manifest)


def normalized(manifest: Any) -> Any:
    """The object with its lists of named items in name order (the order kustomize's merge and
    a template happen to write them in means nothing for volumes, mounts or ports)."""
    if isinstance(manifest, dict):
        return {key: normalized(value) for key, value in manifest.items()}
    if isinstance(manifest, list):
        items = [normalized(item) for item in manifest]
        if items and all(isinstance(item, dict) and "name" in item for item in items):
            return sorted(items, key=lambda item: str(item["name"]))
        return items
    return manifest


@pytest.mark.parametrize("variant", VARIANTS, ids=ids)
def test_the_helm_chart_renders_what_kustomize_renders(
    variant: Variant, rendered: dict[Variant, list[Manifest]]
) -> None:
    # The overlay declares its Namespace (with Pod Security labels); Helm releases live in a
    # namespace made before them (`--create-namespace`), so the chart has none.
    kustomized = {k: v for k, v in by_key(rendered[variant]).items() if k[0] != "Namespace"}
    templated = by_key(helm_template(values_of(variant), namespace_of(variant.environment)))
    assert sorted(templated) == sorted(kustomized)
    for key, manifest in kustomized.items():
        assert normalized(templated[key]) == normalized(manifest), key


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_the_chart_lints_strictly_with_each_values_file(environment: str) -> None:
    values = values_of(Variant(environment))
    report = helm_python.lint(CHART, values, strict=True, kube_version=f"v{kubernetes_version()}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, report


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"replicas": 2}, "replicas"),
        ({"tracing": {"enabled": True, "sampler": "always_on"}}, "sampler"),
        ({"storage": {"className": "standard-rwo", "size": "10Gi", "mode": "RWX"}}, "mode"),
    ],
)
def test_a_values_file_with_an_unknown_key_is_refused(change: dict[str, Any], key: str) -> None:
    values = {**values_of(Variant("dev")), **change}
    with pytest.raises(helm_python.HelmError, match=key):
        helm_template(values, "trading-dev")
    report = helm_python.lint(CHART, values, strict=True)
    assert report["errors"] or any(m["severity"] >= 2 for m in report["messages"]), report


def test_values_without_an_environment_are_refused() -> None:
    with pytest.raises(helm_python.HelmError, match="environment"):
        helm_template({}, "default")


def containers(statefulset: Manifest) -> list[Manifest]:
    return list(statefulset["spec"]["template"]["spec"]["containers"])


@pytest.mark.parametrize("variant", SHIPPED, ids=ids)
def test_every_pod_is_hardened_and_runs_as_its_own_workload_identity(
    variant: Variant, rendered: dict[Variant, list[Manifest]]
) -> None:
    manifests = rendered[variant]
    environment = one(manifests, "ConfigMap", "trading-environment-")["data"]
    accounts = {m["metadata"]["name"]: m for m in of_kind(manifests, "ServiceAccount")}
    statefulsets = list(of_kind(manifests, "StatefulSet"))
    assert {s["metadata"]["name"] for s in statefulsets} == set(SERVICES)
    for statefulset in statefulsets:
        name = statefulset["metadata"]["name"]
        pod = statefulset["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        assert pod["serviceAccountName"] == name
        google_account = accounts[name]["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
        assert google_account == f"{name}@{environment['GCP_PROJECT']}.iam.gserviceaccount.com"
        assert pod["topologySpreadConstraints"]
        (container,) = containers(statefulset)
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["runAsUser"] >= 10000
        for amount in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][amount])
        port = SERVICES[name]
        assert container["ports"] == [
            {"name": "grpc", "containerPort": port, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ]
        # Native gRPC probes against grpc.health.v1; the startup probe covers a long replay.
        for probe in ("startupProbe", "readinessProbe"):
            assert container[probe]["grpc"] == {"port": port}
        startup = container["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
        assert container["livenessProbe"]


# What a stop may take (trading_core.runtime: Platform.stop): in-flight calls get
# services.shutdown_grace_s (5 s by default), the Pub/Sub bus drains and flushes for up to 10 s
# and deletes its per-instance subscriptions (30 s deadline), then the journal and the warehouse
# are closed. The pods' grace period must cover it.
STOP_BUDGET_S = 5 + 10 + 30


@pytest.mark.parametrize("variant", SHIPPED, ids=ids)
def test_one_pod_owns_each_journal_through_a_rollout_and_drains_within_its_grace(
    variant: Variant, rendered: dict[Variant, list[Manifest]]
) -> None:
    manifests = rendered[variant]
    budgets = {
        m["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]: m
        for m in of_kind(manifests, "PodDisruptionBudget")
    }
    for statefulset in of_kind(manifests, "StatefulSet"):
        spec = statefulset["spec"]
        name = statefulset["metadata"]["name"]
        # A StatefulSet replaces its pod only once the old one has terminated, and a
        # ReadWriteOncePod claim cannot be mounted by two pods at all.
        assert spec["replicas"] == 1
        assert spec["updateStrategy"] == {"type": "RollingUpdate"}
        (claim,) = spec["volumeClaimTemplates"]
        assert claim["spec"]["accessModes"] == ["ReadWriteOncePod"]
        assert spec["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
        (container,) = containers(statefulset)
        # The journal: <journal.path>/<service>.journal with journal.path "data" under the
        # image's WORKDIR /app.
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts["/app/data"] == claim["metadata"]["name"]
        assert spec["selector"]["matchLabels"]["shard"] == shard_of(name)
        assert spec["template"]["spec"]["terminationGracePeriodSeconds"] > STOP_BUDGET_S
        service = spec["selector"]["matchLabels"]["app.kubernetes.io/name"]
        assert budgets[service]["spec"]["maxUnavailable"] == 1


def shard_of(name: str) -> str:
    """The shard an object's name says: <service>-shard-N, or the service's own name (0)."""
    return name.rsplit("-shard-", 1)[1] if "-shard-" in name else "0"


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v.shards > 1], ids=ids)
def test_each_shard_has_its_own_pod_service_and_journal_and_tells_its_config_its_number(
    variant: Variant, rendered: dict[Variant, list[Manifest]]
) -> None:
    manifests = rendered[variant]
    statefulsets = {m["metadata"]["name"]: m for m in of_kind(manifests, "StatefulSet")}
    services = {m["metadata"]["name"]: m for m in of_kind(manifests, "Service")}
    expected = {"market-data"} | {
        f"{name}{suffix}"
        for name in SHARDED
        for suffix in ["", *(f"-shard-{n}" for n in range(1, variant.shards))]
    }
    assert set(statefulsets) == set(services) == expected
    for name, statefulset in statefulsets.items():
        spec = statefulset["spec"]
        pod_labels = spec["template"]["metadata"]["labels"]
        assert pod_labels["shard"] == shard_of(name)
        # Its Service reaches its pod and no other shard's.
        assert services[name]["spec"]["selector"].items() <= pod_labels.items()
        assert services[name]["spec"]["selector"]["shard"] == shard_of(name)
        assert spec["serviceName"] == name
        # The config reads its shard from the pod's own label.
        (variable,) = [v for v in containers(statefulset)[0]["env"] if v["name"] == "TRADING_SHARD"]
        assert variable["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['shard']"
        # The zone spread counts every shard of the service, not this shard's pod alone.
        for constraint in spec["template"]["spec"]["topologySpreadConstraints"]:
            assert "shard" not in constraint["labelSelector"]["matchLabels"]


def config_files(manifests: list[Manifest]) -> dict[str, str]:
    return dict(one(manifests, "ConfigMap", "trading-config-")["data"])


def config_path(manifests: list[Manifest], statefulset: Manifest) -> str:
    """The config file the pod's container is started with, as the kubelet expands it."""
    environment = one(manifests, "ConfigMap", "trading-environment-")["data"]
    return expand(containers(statefulset)[0]["args"][1], environment)


def extends_chain(files: dict[str, str], name: str) -> list[str]:
    """The file and every file it extends, each of which must be in the map."""
    chain = []
    while name:
        assert name in files, name
        chain.append(name)
        name = yaml.safe_load(files[name]).get("extends", "")
    return chain


@pytest.mark.parametrize("variant", VARIANTS, ids=ids)
def test_the_config_map_holds_the_config_files_themselves_and_each_pod_finds_its_file(
    variant: Variant, rendered: dict[Variant, list[Manifest]]
) -> None:
    manifests = rendered[variant]
    files = config_files(manifests)
    for name, text in files.items():
        assert text == (ROOT / "config" / name).read_text(encoding="utf-8"), name
    expected = "-k8s" if "bigquery" in variant.components else "-k8s-duckdb"
    for statefulset in of_kind(manifests, "StatefulSet"):
        chosen = config_path(manifests, statefulset)
        assert chosen == f"/app/config/{variant.environment}{expected}.yaml"
        assert extends_chain(files, Path(chosen).name)[-1] == "base.yaml"


def expand(argument: str, environment: dict[str, str]) -> str:
    """What the kubelet makes of $(VAR) in an argument."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: environment[m.group(1)], argument)


@pytest.mark.parametrize("variant", SHIPPED, ids=ids)
def test_the_config_names_each_service_by_its_service_and_its_pod_binds_that_name(
    variant: Variant, rendered: dict[Variant, list[Manifest]]
) -> None:
    manifests = rendered[variant]
    config = yaml.safe_load(config_files(manifests)[f"{variant.environment}-k8s.yaml"])
    services = {m["metadata"]["name"]: m for m in of_kind(manifests, "Service")}
    for statefulset in of_kind(manifests, "StatefulSet"):
        name = statefulset["metadata"]["name"]
        endpoint = config["services"][name.replace("-", "_")]
        assert endpoint == {"host": name, "port": SERVICES[name]}
        (port,) = services[name]["spec"]["ports"]
        assert port["port"] == SERVICES[name]
        assert services[name]["spec"]["selector"] == statefulset["spec"]["selector"]["matchLabels"]
        aliases = statefulset["spec"]["template"]["spec"]["hostAliases"]
        assert aliases == [{"ip": "0.0.0.0", "hostnames": [name]}]


def test_the_config_each_pod_loads_validates_with_the_platforms_loader() -> None:
    """config/<env>-k8s-duckdb.yaml and <env>-k8s.yaml (BigQuery mode) load and their adapters
    are available. Run with the
    platform's own environment (.venv); each ${VARIABLE} gets a placeholder (a hex digest,
    which fits the keys' hashes too), GCP_PROJECT the project's form, TRADING_SHARD a shard."""
    python = ROOT / ".venv" / "bin" / "python"
    assert python.exists(), f"{python}: run `make setup` first"
    script = """
import hashlib, json, re, sys
from pathlib import Path
from trading_core.config import ConfigError, load_config, require_available_adapters
answers = {}
text = "".join(p.read_text() for p in Path(sys.argv[1]).parent.glob("*.yaml"))
names = re.findall(r"\\$\\{([A-Za-z0-9_]+)\\}", text)
environ = {n: hashlib.sha256(n.encode()).hexdigest() for n in names}
environ["GCP_PROJECT"] = "trading-platform-dev"
environ["TRADING_SHARD"] = "0"  # the shard label of shard 0's pods
for path in sys.argv[1:]:
    config = load_config(path, environ)
    try:
        require_available_adapters(config)
        answers[path] = config.database.backend
    except ConfigError as error:
        answers[path] = "refused: " + str(error)
print(json.dumps(answers))
"""
    variants = ("-k8s-duckdb", "-k8s")
    paths = [str(ROOT / "config" / f"{e}{v}.yaml") for e in ENVIRONMENTS for v in variants]
    result = subprocess.run(
        [str(python), "-c", script, *paths], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)
    for environment in ENVIRONMENTS:
        assert answers[str(ROOT / "config" / f"{environment}-k8s-duckdb.yaml")] == "duckdb"
        assert answers[str(ROOT / "config" / f"{environment}-k8s.yaml")] == "bigquery"


def provided_variables(manifests: list[Manifest], statefulset: Manifest) -> set[str]:
    """The environment variables a pod gets: its ConfigMaps' keys, and the keys of each Secret
    it reads that a SecretProviderClass it mounts mirrors from Secret Manager."""
    maps = {m["metadata"]["name"]: m for m in of_kind(manifests, "ConfigMap")}
    mirrored = {
        synced["secretName"]: {d["key"] for d in synced["data"]}
        for spc in of_kind(manifests, "SecretProviderClass")
        for synced in spc["spec"]["secretObjects"]
    }
    mounted = {
        v["csi"]["volumeAttributes"]["secretProviderClass"]
        for v in statefulset["spec"]["template"]["spec"]["volumes"]
        if "csi" in v
    }
    mirrored_by = {
        synced["secretName"]: spc["metadata"]["name"]
        for spc in of_kind(manifests, "SecretProviderClass")
        for synced in spc["spec"]["secretObjects"]
    }
    variables: set[str] = set()
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    for variable in containers(statefulset)[0].get("env", []):
        field = variable.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath", "")
        label = re.fullmatch(r"metadata\.labels\['(.+)'\]", field)
        if label is None or label.group(1) in labels:  # a label the pod does not have is ""
            variables.add(variable["name"])
    for source in containers(statefulset)[0]["envFrom"]:
        if "configMapRef" in source:
            variables |= set(maps[source["configMapRef"]["name"]]["data"])
        else:
            name = source["secretRef"]["name"]
            assert mirrored_by[name] in mounted, f"{name}: synced only while a pod mounts it"
            variables |= mirrored[name]
    return variables


@pytest.mark.parametrize("variant", VARIANTS, ids=ids)
def test_every_variable_the_pods_config_reads_is_set_by_the_manifests(
    variant: Variant, rendered: dict[Variant, list[Manifest]]
) -> None:
    manifests = rendered[variant]
    files = config_files(manifests)
    for statefulset in of_kind(manifests, "StatefulSet"):
        needed: set[str] = set()
        for name in extends_chain(files, Path(config_path(manifests, statefulset)).name):
            needed |= set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", files[name]))
        missing = needed - provided_variables(manifests, statefulset)
        assert not missing, f"{statefulset['metadata']['name']} lacks {sorted(missing)}"


def peer_calls() -> set[tuple[str, str]]:
    """(caller, callee) for every peer client a service's code constructs
    (trading_core.peers: RouterClient calls execution-router, PositionClient
    position-management)."""
    clients = {"RouterClient": "execution-router", "PositionClient": "position-management"}
    calls = set()
    for service in SERVICES:
        for source in (ROOT / "services" / service / "src").rglob("*.py"):
            text = source.read_text(encoding="utf-8")
            for client, callee in clients.items():
                if re.search(rf"\b{client}\(", text):
                    calls.add((service, callee))
    return calls


def allowed_flows(manifests: list[Manifest]) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(from, to) pairs between the services: as ingress rules admit them, as egress rules do."""
    ingress, egress = set(), set()
    for policy in of_kind(manifests, "NetworkPolicy"):
        spec = policy["spec"]
        target = spec["podSelector"]["matchLabels"].get("app.kubernetes.io/name")
        for rule in spec.get("ingress", []):
            for peer in rule["from"]:
                source = peer.get("podSelector", {}).get("matchLabels", {})
                if "app.kubernetes.io/name" in source and "namespaceSelector" not in peer:
                    ingress.add((source["app.kubernetes.io/name"], target))
        for rule in spec.get("egress", []):
            for peer in rule["to"]:
                dest = peer.get("podSelector", {}).get("matchLabels", {})
                if "app.kubernetes.io/name" in dest:
                    egress.add((target, dest["app.kubernetes.io/name"]))
    return ingress, egress


@pytest.mark.parametrize("variant", SHIPPED, ids=ids)
def test_network_policies_allow_exactly_the_peer_calls_the_code_makes(
    variant: Variant, rendered: dict[Variant, list[Manifest]]
) -> None:
    manifests = rendered[variant]
    calls = peer_calls()
    assert ("order-management", "execution-router") in calls  # the scan still finds them
    ingress, egress = allowed_flows(manifests)
    assert ingress == calls
    assert egress == calls
    deny = one(manifests, "NetworkPolicy", "trading-default-deny")["spec"]
    assert deny["podSelector"] == {"matchLabels": {"app.kubernetes.io/part-of": "trading-platform"}}
    assert sorted(deny["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in deny and "egress" not in deny
    # Clients reach order-management and position-management only.
    client_facing = {
        policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
        for policy in of_kind(manifests, "NetworkPolicy")
        for rule in policy["spec"].get("ingress", [])
        for peer in rule["from"]
        if peer.get("podSelector", {}).get("matchLabels", {}).get("trading-platform/client")
    }
    assert client_facing == {"order-management", "position-management"}


def test_venue_credentials_reach_the_router_only_from_secret_manager() -> None:
    values = values_of(Variant("prod", ("venue-credentials",)))
    values["venueCredentials"]["secrets"] = [
        {"variable": "BINANCE_API_KEY", "secret": "binance-api-key", "version": "latest"},
        {"variable": "BINANCE_API_SECRET", "secret": "binance-api-secret", "version": "3"},
    ]
    manifests = helm_template(values, "trading-prod")
    spc = one(manifests, "SecretProviderClass", "execution-router-venues")
    validate_strictly(spc)
    assert spc["spec"]["provider"] == "gcp"
    assert yaml.safe_load(spc["spec"]["parameters"]["secrets"]) == [
        {
            "resourceName": "projects/trading-platform-prod/secrets/binance-api-key/versions/"
            "latest",
            "path": "BINANCE_API_KEY",
        },
        {
            "resourceName": "projects/trading-platform-prod/secrets/binance-api-secret/versions/3",
            "path": "BINANCE_API_SECRET",
        },
    ]
    (synced,) = spc["spec"]["secretObjects"]
    assert [d["key"] for d in synced["data"]] == ["BINANCE_API_KEY", "BINANCE_API_SECRET"]
    for statefulset in of_kind(manifests, "StatefulSet"):
        (container,) = containers(statefulset)
        secret_refs = [e["secretRef"]["name"] for e in container["envFrom"] if "secretRef" in e]
        if statefulset["metadata"]["name"] == "execution-router":
            assert secret_refs == ["trading-platform-keys", synced["secretName"]]
            volumes = statefulset["spec"]["template"]["spec"]["volumes"]
            classes = {
                v["csi"]["volumeAttributes"]["secretProviderClass"] for v in volumes if "csi" in v
            }
            assert classes == {"trading-platform-keys", spc["metadata"]["name"]}
        else:
            assert secret_refs == ["trading-platform-keys"]
    assert not list(of_kind(manifests, "Secret"))  # nothing secret is rendered


def test_no_secret_value_is_in_the_manifests_or_the_values() -> None:
    # A credential key with a literal value (not a ${VARIABLE}, a reference or empty).
    pattern = re.compile(
        r"(?i)(api_?key|api_?secret|api_?token|password)\s*[:=]\s*[\"']?[^\s$\"'{]"
    )
    for path in [*K8S.rglob("*.yaml"), *(ROOT / "config").glob("*.yaml")]:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue
            assert not pattern.search(line), f"{path}:{number}: {line}"


@pytest.mark.parametrize("service", SERVICES)
def test_each_image_runs_as_the_non_root_user_the_pods_expect_on_its_port(service: str) -> None:
    dockerfile = (ROOT / "services" / service / "Dockerfile").read_text(encoding="utf-8")
    runtime = dockerfile.split("AS runtime", 1)[1]
    assert re.search(r"^USER 10001:10001$", runtime, re.M)
    assert re.search(rf"^EXPOSE {SERVICES[service]}$", runtime, re.M)
    assert f'ENTRYPOINT ["{service}"]' in runtime
    assert "WORKDIR /app" in runtime


def test_checkov_finds_no_failed_check(
    rendered: dict[Variant, list[Manifest]], tmp_path: Path
) -> None:
    """checkov on what an operator deploys: each overlay as shipped and with every component,
    the chart with each values file (k8s/.checkov.yaml: the skipped checks and why)."""
    checkov = Path(__import__("sys").executable).with_name("checkov")
    assert checkov.exists(), f"{checkov}: make lint installs it (uv group deploy)"
    everything = tuple(c for c in variants()[-1].components)
    for environment in ENVIRONMENTS:
        for variant in (Variant(environment), Variant(environment, everything)):
            write(tmp_path / f"kustomize-{variant.name}.yaml", rendered[variant])
        templated = helm_template(values_of(Variant(environment)), namespace_of(environment))
        write(tmp_path / f"helm-{environment}.yaml", templated)
    result = subprocess.run(
        [
            str(checkov),
            "--directory",
            str(tmp_path),
            "--config-file",
            str(K8S / ".checkov.yaml"),
            "--output",
            "json",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.stdout.strip(), result.stderr
    report = json.loads(result.stdout)
    summary = report["summary"]
    print(f"checkov: {summary}")  # noqa: T201 - the counts the README quotes
    failed = [
        f"{c['check_id']} {c['resource']}" for c in report["results"].get("failed_checks", [])
    ]
    assert summary["failed"] == 0, failed
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 500 and summary["resource_count"] > 100


def write(path: Path, manifests: list[Manifest]) -> None:
    path.write_text(yaml.safe_dump_all(manifests, sort_keys=False), encoding="utf-8")
