"""Renders the deployment as an operator would: `kubectl kustomize` of an overlay with extra
components, and the Helm chart with a values file (helm-python-sdk: Helm's own Go code, bundled in
the wheel, no helm binary). Each tool is the real one; one that cannot start fails the test."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
CHART = K8S / "helm" / "trading-platform"
ENVIRONMENTS = ("dev", "prod")
# The optional components, by folder, and the chart's value that switches each on. The
# overlays include network-policies already: the others combine on top of them.
COMPONENTS = {
    "tracing": "tracing",
    "bigquery": "bigquery",
    "venue-credentials": "venueCredentials",
    "monitoring": "monitoring",
}
SERVICES = {
    "order-management": 50051,
    "execution-router": 50052,
    "position-management": 50053,
    "market-data": 50054,
}
# The services that run once per shard; market-data runs once, shared by every shard.
SHARDED = ("order-management", "execution-router", "position-management")
# Each pod's /metrics: telemetry.metrics.port of the cloud configs (tests/deploy/test_monitoring).
METRICS_PORT = 9464

Manifest = dict[str, Any]


def kubernetes_version() -> str:
    """The Kubernetes version the manifests target, written once in k8s/KUBERNETES_VERSION."""
    return (K8S / "KUBERNETES_VERSION").read_text(encoding="utf-8").strip()


@dataclass(frozen=True)
class Variant:
    """An environment with a set of optional components switched on, and its shards."""

    environment: str
    components: tuple[str, ...] = ()
    shards: int = 1

    @property
    def name(self) -> str:
        shards = (f"{self.shards}-shards",) if self.shards > 1 else ()
        return "+".join((self.environment, *self.components, *shards))


# The shards an overlay can add: k8s/shards/<N>.
SHARD_FOLDERS = K8S / "shards"


def variants() -> list[Variant]:
    """Every overlay with every combination of the optional components; and each overlay with
    every shard k8s/shards holds, alone and with every component."""
    found = []
    for environment in ENVIRONMENTS:
        for count in range(len(COMPONENTS) + 1):
            for chosen in itertools.combinations(COMPONENTS, count):
                found.append(Variant(environment, chosen))
        shards = 1 + len(list(SHARD_FOLDERS.iterdir()))
        found += [Variant(environment, (), shards), Variant(environment, tuple(COMPONENTS), shards)]
    return found


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        raise RuntimeError("kubectl (with its built-in kustomize) is not on PATH")
    return found


def kustomize(variant: Variant) -> list[Manifest]:
    """`kubectl kustomize` of the overlay (with its shards, as an operator adds them), with the
    variant's components added by a throwaway kustomization that names them by relative path
    (kustomize refuses absolute ones) and sets the namespace, as an overlay including them
    would."""
    with _overlay(variant) as overlay:
        return _kustomize_with_components(overlay, variant)


@contextmanager
def _overlay(variant: Variant) -> Iterator[Path]:
    """The environment's overlay; with more shards, a copy beside it (so that its relative paths
    still hold) that lists k8s/shards/1 .. N-1 among its resources, as k8s/README.md says."""
    overlay = K8S / "overlays" / variant.environment
    if variant.shards == 1:
        yield overlay
        return
    with tempfile.TemporaryDirectory(prefix=".shards-", dir=overlay.parent) as scratch:
        copy = Path(scratch)
        shutil.copytree(overlay, copy, dirs_exist_ok=True)
        kustomization = yaml.safe_load((copy / "kustomization.yaml").read_text())
        kustomization["resources"] += [f"../../shards/{n}" for n in range(1, variant.shards)]
        (copy / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
        yield copy


def _kustomize_with_components(overlay: Path, variant: Variant) -> list[Manifest]:
    if not variant.components:
        return _kustomize_folder(overlay)
    with tempfile.TemporaryDirectory(prefix="kustomize-") as scratch:
        folder = Path(scratch)
        kustomization = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": namespace_of(variant.environment),
            "resources": [os.path.relpath(overlay, folder)],
            "components": [
                os.path.relpath(K8S / "components" / name, folder) for name in variant.components
            ],
        }
        (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
        return _kustomize_folder(folder)


def _kustomize_folder(folder: Path) -> list[Manifest]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(folder)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {folder} failed:\n{result.stderr}")
    return _documents(result.stdout)


def values_of(variant: Variant) -> dict[str, Any]:
    """The values `helm -f values-<env>.yaml --set <component>.enabled=true` would give."""
    values = yaml.safe_load((CHART / f"values-{variant.environment}.yaml").read_text())
    for component in variant.components:
        values[COMPONENTS[component]] = {"enabled": True}
    if variant.shards > 1:
        values["shards"] = variant.shards
    return dict(values)


def helm_template(values: dict[str, Any], namespace: str) -> list[Manifest]:
    """`helm template` of the chart with these values (validated against values.schema.json)."""
    chart = helm_python.Chart.load(CHART)
    chart.validate_schema(values)
    rendered = chart.render(values, name="trading-platform", namespace=namespace)
    return [doc for text in rendered.values() for doc in _documents(text)]


def namespace_of(environment: str) -> str:
    return f"trading-{environment}"


def _documents(text: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def by_key(manifests: Sequence[Manifest]) -> dict[tuple[str, str], Manifest]:
    keyed: dict[tuple[str, str], Manifest] = {}
    for manifest in manifests:
        key = (manifest["kind"], manifest["metadata"]["name"])
        if key in keyed:
            raise AssertionError(f"{key} rendered twice")
        keyed[key] = manifest
    return keyed


def of_kind(manifests: Sequence[Manifest], kind: str) -> Iterator[Manifest]:
    return (m for m in manifests if m["kind"] == kind)


def one(manifests: Sequence[Manifest], kind: str, name_prefix: str) -> Manifest:
    found = [m for m in of_kind(manifests, kind) if m["metadata"]["name"].startswith(name_prefix)]
    assert len(found) == 1, f"expected one {kind} {name_prefix}*, found {len(found)}"
    return found[0]
