"""deploy/kubernetes/: valid against the Kubernetes API schemas (offline: kubernetes-validate
bundles them) and wired together: selectors, ports, probes, settings, the Secret."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cryptography.fernet import Fernet

from tests.ops.conftest import ROOT
from tests.ops.deploy_checks import HANDOVER_SECONDS, known_settings

MANIFESTS = ROOT / "deploy" / "kubernetes"
# The oldest Kubernetes these manifests promise to work on, and the newest schemas bundled.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _manifests() -> dict[str, dict[str, Any]]:
    """kind -> the one resource of that kind (the kustomization's and the Secret example)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for doc in _documents(path):
            assert doc["kind"] not in found, f"two {doc['kind']} resources"
            found[doc["kind"]] = doc
    return found


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container["env"]}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(
    "path", sorted(p.name for p in MANIFESTS.glob("*.yaml") if p.name != "kustomization.yaml")
)
def test_every_manifest_is_valid_against_the_kubernetes_schema(path: str, version: str) -> None:
    for doc in _documents(MANIFESTS / path):
        # strict: a misspelt or misplaced field is an error, not silently ignored by the API.
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_kustomization_applies_everything_but_the_secret_example() -> None:
    kustomization = _manifests()["Kustomization"]
    resources = set(kustomization["resources"])
    assert all((MANIFESTS / name).is_file() for name in resources)
    assert resources == {
        p.name
        for p in MANIFESTS.glob("*.yaml")
        if p.name not in ("kustomization.yaml", "secret.example.yaml")
    }


def test_one_worker_whose_labels_every_selector_matches() -> None:
    manifests = _manifests()
    deployment, service, budget = (
        manifests["Deployment"],
        manifests["Service"],
        manifests["PodDisruptionBudget"],
    )
    # One worker until the lease code lands (docs/SCALING.md, "Status"): two would log every bot
    # in twice, so a rollout stops the old pod before it starts the new one.
    assert deployment["spec"]["replicas"] == 1
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert budget["spec"]["selector"]["matchLabels"] == selector
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert all(rule["labelSelector"]["matchLabels"] == selector for rule in spread)
    assert budget["spec"]["maxUnavailable"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_ports_and_probes_meet_on_the_http_port_and_health() -> None:
    manifests = _manifests()
    container = _container(manifests["Deployment"])
    (port,) = container["ports"]
    env = _env(container)
    assert port["name"] == "http" and str(port["containerPort"]) == env["HTTP_PORT"]["value"]
    assert env["HTTP_HOST"]["value"] == "0.0.0.0"  # the default 127.0.0.1 is unreachable from the Service
    (service_port,) = manifests["Service"]["spec"]["ports"]
    assert service_port["targetPort"] in (port["name"], port["containerPort"])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] == "/health", probe
        assert check["port"] in (port["name"], port["containerPort"]), probe
    # A liveness restart costs every bot of the worker a hand-over: never on one slow answer.
    assert container["livenessProbe"]["failureThreshold"] * container["livenessProbe"]["periodSeconds"] >= 30


def test_resources_grace_period_and_a_locked_down_container() -> None:
    deployment = _manifests()["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), kind
    assert pod["terminationGracePeriodSeconds"] >= HANDOVER_SECONDS
    assert pod["securityContext"]["runAsNonRoot"] is True
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"--uid {pod['securityContext']['runAsUser']} " in dockerfile  # the image's own user
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
    assert "/tmp" in mounts  # noqa: S108  # a pod's own emptyDir, writable under a read-only root


def test_every_variable_is_a_setting_and_each_pod_registers_its_own_address() -> None:
    container = _container(_manifests()["Deployment"])
    env = _env(container)
    settings = known_settings()
    # Helpers are allowed only as $(NAME) inside a setting's value (Kubernetes expands those).
    referenced = {
        name for entry in env.values() for name in re.findall(r"\$\((\w+)\)", entry.get("value", ""))
    }
    for name in env:
        assert name in settings or name in referenced, f"{name} is neither a setting nor used by one"
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    (port,) = container["ports"]
    assert env["WORKER_ADDRESS"]["value"] == f"http://$(POD_IP):{port['containerPort']}"
    # Kubernetes expands $(POD_IP) only when POD_IP is defined before WORKER_ADDRESS.
    names = list(env)
    assert names.index("POD_IP") < names.index("WORKER_ADDRESS")


def test_the_secret_example_holds_every_key_the_deployment_reads_and_only_fake_values() -> None:
    manifests = _manifests()
    secret = manifests["Secret"]
    container = _container(manifests["Deployment"])
    refs = [
        entry["valueFrom"]["secretKeyRef"]
        for entry in container["env"]
        if "secretKeyRef" in entry.get("valueFrom", {})
    ]
    assert refs
    values: dict[str, str] = secret["stringData"]
    for ref in refs:
        assert ref["name"] == secret["metadata"]["name"]
        assert ref["key"] in values, f"the Secret example lacks {ref['key']}"
    assert set(values) <= known_settings()
    # Secrets live in the Secret, never as plain values in the Deployment.
    for name in ("MONGODB_URL", "TOKEN_ENCRYPTION_KEYS", "LAVALINK_NODES", "ADMIN_API_TOKEN"):
        assert "value" not in _env(container)[name], name
    for key, value in values.items():
        assert "EXAMPLE" in value, f"{key} does not look like an example value"
    with pytest.raises(ValueError, match="Fernet key must be"):
        Fernet(values["TOKEN_ENCRYPTION_KEYS"])  # cannot be used as a real key by mistake
