"""The monitoring component (and the chart's monitoring.enabled): Managed Prometheus scrapes
the port the services serve their metrics on, and the alert rules and the dashboard ask only for
metrics the platform exports (trading_core/metrics.py lists them)."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.deploy.render import (
    ENVIRONMENTS,
    K8S,
    METRICS_PORT,
    ROOT,
    Manifest,
    Variant,
    kustomize,
    of_kind,
    one,
)

ALERTS = {"TradingHalted", "DeadLettersParked", "ConsumerLagHigh", "VenueCircuitOpen"}
# Histograms are queried through their series.
_SERIES = re.compile(r"_(bucket|count|sum)$")


def exported_metrics() -> set[str]:
    """The metric names of trading_core.metrics' table (its module docstring)."""
    text = (ROOT / "libs/trading-core/src/trading_core/metrics.py").read_text(encoding="utf-8")
    names = set(re.findall(r"^\| (trading_[a-z_]+) \|", text, re.M))
    assert len(names) >= 9, names
    return names


def queried(expressions: list[str]) -> set[str]:
    names = (name for text in expressions for name in re.findall(r"trading_[a-z_]+", text))
    return {_SERIES.sub("", name) for name in names}


@pytest.fixture(scope="module", params=ENVIRONMENTS)
def monitored(request: pytest.FixtureRequest) -> list[Manifest]:
    return kustomize(Variant(request.param, ("monitoring",)))


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_the_cloud_configs_serve_metrics_on_the_pods_metrics_port(environment: str) -> None:
    config = yaml.safe_load((ROOT / "config" / f"{environment}.yaml").read_text(encoding="utf-8"))
    assert config["telemetry"]["metrics"] == {"port": METRICS_PORT, "host": "0.0.0.0"}
    assert config["telemetry"]["project"] == "${GCP_PROJECT}"


def test_managed_prometheus_scrapes_the_metrics_port_of_every_platform_pod(
    monitored: list[Manifest],
) -> None:
    monitoring = one(monitored, "PodMonitoring", "trading-platform")["spec"]
    (endpoint,) = monitoring["endpoints"]
    statefulsets = list(of_kind(monitored, "StatefulSet"))
    assert len(statefulsets) == 4
    for statefulset in statefulsets:
        pod = statefulset["spec"]["template"]
        selected = monitoring["selector"]["matchLabels"].items()
        assert selected <= pod["metadata"]["labels"].items()
        (container,) = pod["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports[endpoint["port"]] == METRICS_PORT
    scrape = one(monitored, "NetworkPolicy", "trading-metrics-scrape")["spec"]
    (rule,) = scrape["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": "metrics"}]
    (source,) = rule["from"]
    namespace = source["namespaceSelector"]["matchLabels"]
    assert namespace == {"kubernetes.io/metadata.name": "gmp-system"}


def test_the_alerts_and_the_dashboard_ask_only_for_metrics_the_platform_exports(
    monitored: list[Manifest],
) -> None:
    rules = [
        rule
        for group in one(monitored, "Rules", "trading-platform-alerts")["spec"]["groups"]
        for rule in group["rules"]
    ]
    assert {rule["alert"] for rule in rules} == ALERTS
    dashboard_map = one(monitored, "ConfigMap", "trading-platform-dashboard")
    assert dashboard_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    text = dashboard_map["data"]["trading-platform.json"]
    assert text == (K8S / "components/monitoring/trading-platform.json").read_text(encoding="utf-8")
    dashboard = json.loads(text)
    panels = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    exported = exported_metrics()
    assert queried([rule["expr"] for rule in rules]) <= exported
    assert queried(panels) == exported  # a panel for every metric
