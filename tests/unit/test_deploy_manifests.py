"""The Kubernetes manifests in deploy/k8s, checked offline: every resource against the schemas of
pinned Kubernetes versions (kubernetes-validate ships them; nothing is fetched), then what the
schemas cannot see — probes on the services' real paths and ports, resources, the order
manager's autoscaler within the partitions of validated_orders, a PodDisruptionBudget per
workload, static consumers as StatefulSets, network policies that mirror who may call what, no
secret value and no floating image tag. docs/deployment.md says why each holds."""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml

from foodflow.platform.config import PORT_SETTING, Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"
# The oldest Kubernetes the manifests claim (the StatefulSet pod-index label is on by default
# from 1.28, GA in 1.32; unhealthyPodEvictionPolicy from 1.27) and the newest whose schemas
# kubernetes-validate ships: a field one of them lacks, or an API the newest removed, fails.
K8S_VERSIONS = ("1.30.0", "1.37.0")
WORKLOAD_KINDS = {"Deployment", "StatefulSet"}
# The consumers that join their group as static members (`group.instance.id` =
# <group>-<FOODFLOW_INSTANCE>, platform/kafka/consumer.py): two live pods with one instance
# number fence each other, so each needs a stable ordinal of its own. (The gateway's dashboard
# feed is a group of its own per process, static_membership=False.)
STATIC_CONSUMERS = {
    "order_manager",
    "order_writer",
    "payment_service",
    "delivery_service",
    "restaurant_service",
}
# Settings whose values are secrets: they may come from a Secret only (platform/config.py).
SECRET_SETTINGS = {
    "SERVICE_PRIVATE_KEY",
    "JWT_SIGNING_KEYS",
    "JWT_ACTIVE_KEY_ID",
    "DEMO_OPERATOR_PASSWORD",
    "POSTGRES_PASSWORD",
}
POD_INDEX = "metadata.labels['apps.kubernetes.io/pod-index']"

Resource = dict[str, Any]


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def load_resources() -> list[tuple[str, Resource]]:
    found = []
    for path in manifest_files():
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                found.append((path.name, document))
    return found


RESOURCES = load_resources()


def of_kind(*kinds: str) -> list[Resource]:
    return [resource for _, resource in RESOURCES if resource["kind"] in kinds]


def workloads() -> list[Resource]:
    return of_kind(*WORKLOAD_KINDS)


def container(workload: Resource) -> Resource:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{workload['metadata']['name']}: one container per pod"
    return dict(containers[0])


def module_of(workload: Resource) -> str:
    """The foodflow service a workload runs, from its `python -m foodflow.<service>`."""
    command = container(workload)["command"]
    assert command[:2] == ["python", "-m"], command
    module = str(command[2]).removeprefix("foodflow.")
    assert module in PORT_SETTING, f"{module} is not one of the eight services"
    return module


def service_port(module: str) -> int:
    default = Settings.model_fields[PORT_SETTING[module]].default
    assert isinstance(default, int)
    return default


def env_of(workload: Resource) -> dict[str, Resource]:
    return {entry["name"]: entry for entry in container(workload).get("env", [])}


def quantity(text: str | int) -> Decimal:
    """A Kubernetes quantity (CPU or memory) as a number, to compare a request with its limit."""
    units = {
        "m": Decimal("0.001"),
        "Ki": Decimal(2**10),
        "Mi": Decimal(2**20),
        "Gi": Decimal(2**30),
    }
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(m|Ki|Mi|Gi)?", str(text))
    assert match, f"unexpected quantity {text!r}"
    return Decimal(match[1]) * units.get(match[2] or "", Decimal(1))


def documented_partitions(topic: str) -> int:
    """The partition count docs/deployment.md gives `topic`, in its Strimzi KafkaTopic."""
    blocks = re.findall(r"```yaml\n(.*?)```", DEPLOYMENT_DOC.read_text(), flags=re.DOTALL)
    for block in blocks:
        for document in yaml.safe_load_all(block):
            if (
                isinstance(document, dict)
                and document.get("kind") == "KafkaTopic"
                and document["spec"].get("topicName") == topic
            ):
                return int(document["spec"]["partitions"])
    raise AssertionError(f"docs/deployment.md has no KafkaTopic for {topic}")


def callers_in_code(module: str) -> set[str]:
    """Every service named in an `allow(...)` anywhere in `module`'s package: who may call it."""
    package = ROOT / "src" / "foodflow" / module
    source = "\n".join(path.read_text() for path in sorted(package.rglob("*.py")))
    return {
        name
        for args in re.findall(r"\ballow\(([^)]*)\)", source)
        for name in re.findall(r'"(\w+)"', args)
    }


def selected_names(selector: Resource) -> set[str]:
    """The app.kubernetes.io/name values a podSelector picks (matchLabels or an In expression)."""
    names = set()
    if "app.kubernetes.io/name" in selector.get("matchLabels", {}):
        names.add(selector["matchLabels"]["app.kubernetes.io/name"])
    for expression in selector.get("matchExpressions", []):
        assert expression["key"] == "app.kubernetes.io/name" and expression["operator"] == "In"
        names.update(expression["values"])
    return names


@pytest.fixture(scope="module", autouse=True)
def _schemas_read_once() -> Iterator[None]:
    """kubernetes-validate reads a version's definitions (megabytes of JSON) on every call: read
    each file once for this module (the schemas are only read, never changed)."""
    with pytest.MonkeyPatch.context() as patch:
        read = functools.lru_cache(maxsize=None)(kubernetes_validate.utils.schema_contents)
        patch.setattr(kubernetes_validate.utils, "schema_contents", read)
        yield


# --- schemas -----------------------------------------------------------------------------------


def test_the_manifests_are_found() -> None:
    kinds = {resource["kind"] for _, resource in RESOURCES}
    assert {"Deployment", "StatefulSet", "Service", "PodDisruptionBudget"} <= kinds
    assert {"HorizontalPodAutoscaler", "NetworkPolicy", "ConfigMap", "Namespace"} <= kinds


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(
    ("filename", "resource"),
    RESOURCES,
    ids=[f"{name}:{r['kind']}/{r['metadata']['name']}" for name, r in RESOURCES],
)
def test_every_resource_matches_the_kubernetes_schema(
    filename: str, resource: Resource, version: str
) -> None:
    # strict: the schemas refuse unknown fields, so a misspelt key is an error, not ignored.
    kubernetes_validate.validate(resource, version, strict=True)


def test_the_schema_check_refuses_a_broken_manifest() -> None:
    """The check above can fail: a misspelt field and a wrong type are both refused."""
    gateway = next(w for w in workloads() if w["metadata"]["name"] == "gateway")
    misspelt = copy.deepcopy(gateway)
    probe = misspelt["spec"]["template"]["spec"]["containers"][0].pop("readinessProbe")
    misspelt["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = probe
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(misspelt, K8S_VERSIONS[0], strict=True)
    wrong_type = copy.deepcopy(gateway)
    wrong_type["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError, match="integer"):
        kubernetes_validate.validate(wrong_type, K8S_VERSIONS[-1], strict=True)


def test_the_kustomization_applies_every_manifest_and_generates_no_secret() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [p.name for p in manifest_files()]
    # Secrets are made at install time (docs/deployment.md#secrets), never from the repository.
    assert "secretGenerator" not in kustomization
    assert "images" not in kustomization, "images are pinned in the manifests themselves"


# --- the workloads -----------------------------------------------------------------------------


def test_each_of_the_eight_services_runs_once() -> None:
    assert sorted(module_of(w) for w in workloads()) == sorted(PORT_SETTING)


@pytest.mark.parametrize("workload", workloads(), ids=lambda w: w["metadata"]["name"])
def test_probes_ask_the_services_own_paths_on_its_port(workload: Resource) -> None:
    spec = container(workload)
    port = service_port(module_of(workload))
    named = {p["name"]: p["containerPort"] for p in spec["ports"]}
    assert named == {"http": port}
    for probe, path in (
        ("readinessProbe", "/ready"),
        ("livenessProbe", "/health"),
        ("startupProbe", "/health"),
    ):
        check = spec[probe]["httpGet"]
        assert check["path"] == path, f"{probe} must ask {path}"
        assert named.get(check["port"], check["port"]) == port, f"{probe} on the service's port"
    # The Service in front of it forwards to the same port.
    services = [
        s for s in of_kind("Service") if s["metadata"]["name"] == workload["metadata"]["name"]
    ]
    assert len(services) == 1
    assert [p["port"] for p in services[0]["spec"]["ports"]] == [port]


@pytest.mark.parametrize("workload", workloads(), ids=lambda w: w["metadata"]["name"])
def test_requests_and_limits_are_set(workload: Resource) -> None:
    resources = container(workload)["resources"]
    for what in ("cpu", "memory"):
        request = quantity(resources["requests"][what])
        limit = quantity(resources["limits"][what])
        assert 0 < request <= limit, f"{what}: request {request} within limit {limit}"


@pytest.mark.parametrize("workload", workloads(), ids=lambda w: w["metadata"]["name"])
def test_every_workload_has_a_disruption_budget(workload: Resource) -> None:
    labels = workload["spec"]["template"]["metadata"]["labels"]
    budgets = [
        pdb
        for pdb in of_kind("PodDisruptionBudget")
        if pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ]
    assert len(budgets) == 1, "one PodDisruptionBudget selects it"
    spec = budgets[0]["spec"]
    # A budget of zero would block every node drain for good.
    assert spec.get("maxUnavailable", 0) >= 1 or "minAvailable" in spec
    assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("workload", workloads(), ids=lambda w: w["metadata"]["name"])
def test_static_consumers_are_statefulsets_numbered_by_ordinal(workload: Resource) -> None:
    instance = env_of(workload).get("FOODFLOW_INSTANCE")
    if module_of(workload) in STATIC_CONSUMERS:
        assert workload["kind"] == "StatefulSet"
        assert instance is not None
        assert instance["valueFrom"]["fieldRef"]["fieldPath"] == POD_INDEX
    else:
        assert instance is None, "a Deployment's pods would all be instance 0"


def test_the_order_manager_autoscaler_stops_at_the_partition_count() -> None:
    (autoscaler,) = of_kind("HorizontalPodAutoscaler")
    target = autoscaler["spec"]["scaleTargetRef"]
    (scaled,) = [
        w
        for w in workloads()
        if w["kind"] == target["kind"] and w["metadata"]["name"] == target["name"]
    ]
    assert module_of(scaled) == "order_manager"
    assert "replicas" not in scaled["spec"], "the autoscaler alone sets the count"
    partitions = documented_partitions("validated_orders")
    # More consumers than partitions: the extra ones get no partition and idle.
    assert 2 <= autoscaler["spec"]["minReplicas"] <= autoscaler["spec"]["maxReplicas"]
    assert autoscaler["spec"]["maxReplicas"] <= partitions


def test_fixed_replica_counts_stay_within_the_partitions() -> None:
    partitions = documented_partitions("db_write_order_status")
    for workload in workloads():
        if module_of(workload) in STATIC_CONSUMERS and "replicas" in workload["spec"]:
            assert 1 <= workload["spec"]["replicas"] <= partitions


# --- secrets and images ------------------------------------------------------------------------


def test_no_secret_value_is_committed() -> None:
    assert not of_kind("Secret"), "Secrets are made at install time, never committed"
    for path in [*manifest_files(), K8S / "kustomization.yaml"]:
        assert "PRIVATE KEY-----" not in path.read_text(), path.name
    for config_map in of_kind("ConfigMap"):
        assert not SECRET_SETTINGS & set(config_map.get("data", {}))
    for workload in workloads():
        for name, entry in env_of(workload).items():
            if name in SECRET_SETTINGS:
                assert "value" not in entry, f"{name} must come from a Secret"
                assert "secretKeyRef" in entry["valueFrom"], f"{name} must come from a Secret"
        assert "secretRef" not in str(container(workload).get("envFrom", []))


def test_each_pod_gets_only_its_own_private_key() -> None:
    for workload in workloads():
        reference = env_of(workload)["SERVICE_PRIVATE_KEY"]["valueFrom"]["secretKeyRef"]
        assert reference["name"] == f"foodflow-{workload['metadata']['name']}"
        gateway_secrets = [
            e
            for n, e in env_of(workload).items()
            if n in {"JWT_SIGNING_KEYS", "DEMO_OPERATOR_PASSWORD"}
        ]
        assert bool(gateway_secrets) == (module_of(workload) == "gateway")


@pytest.mark.parametrize("workload", workloads(), ids=lambda w: w["metadata"]["name"])
def test_images_are_pinned(workload: Resource) -> None:
    image = container(workload)["image"]
    if "@sha256:" in image:
        return
    name, _, tag = image.rpartition(":")
    assert name and "/" not in tag, f"{image}: no tag"
    assert tag not in {"latest", ""}, f"{image}: a floating tag"


@pytest.mark.parametrize("workload", workloads(), ids=lambda w: w["metadata"]["name"])
def test_pods_run_unprivileged(workload: Resource) -> None:
    pod = workload["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    context = container(workload)["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"]["drop"] == ["ALL"]


# --- who may reach whom ------------------------------------------------------------------------


def test_network_policies_admit_exactly_the_callers_the_code_allows() -> None:
    name_of = {module_of(w): w["metadata"]["name"] for w in workloads()}
    policies = of_kind("NetworkPolicy")
    default_deny = [
        p
        for p in policies
        if not p["spec"].get("ingress")
        and not p["spec"].get("egress")
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    ]
    assert default_deny, "nothing is allowed unless a policy says so"
    assert default_deny[0]["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/part-of": "foodflow"
    }
    for module, name in name_of.items():
        callers = {name_of[c] for c in callers_in_code(module)}
        port = service_port(module)
        admitted: set[str] = set()
        for policy in policies:
            selector = policy["spec"]["podSelector"]
            if name not in selected_names(selector) and selector.get("matchLabels") != {
                "app.kubernetes.io/part-of": "foodflow"
            }:
                continue
            for rule in policy["spec"].get("ingress", []):
                if not {p["port"] for p in rule.get("ports", [])} & {port, "http"}:
                    continue
                if "from" not in rule:
                    admitted.add("*")
                for peer in rule.get("from", []):
                    if "namespaceSelector" in peer:
                        # Prometheus' scrapes, from its own namespace only.
                        assert peer["namespaceSelector"]["matchLabels"] == {
                            "kubernetes.io/metadata.name": "monitoring"
                        }
                        assert "podSelector" not in peer
                        continue
                    admitted |= selected_names(peer["podSelector"])
        expected = {"*"} if module == "gateway" else callers
        assert admitted == expected, f"{name}: admitted {admitted}, the code allows {callers}"
        # ... and each caller may send to it.
        for caller in callers:
            assert any(
                caller in selected_names(p["spec"]["podSelector"])
                and any(
                    name in selected_names(peer["podSelector"])
                    and port in {q["port"] for q in rule.get("ports", [])}
                    for rule in p["spec"].get("egress", [])
                    for peer in rule.get("to", [])
                )
                for p in policies
            ), f"{caller} may not send to {name}"


# --- the secrets the manifests reference -------------------------------------------------------


def test_foodflow_secrets_kubernetes_makes_every_secret_the_manifests_use(tmp_path: Path) -> None:
    """`foodflow secrets --kubernetes` gives exactly what the workloads reference (CloudNativePG
    makes foodflow-pg-app), each object valid, each private key in its own service's Secret."""
    from foodflow.tools.secrets import ensure_secrets, kubernetes_objects, load_secrets

    settings = Settings(FOODFLOW_STATE_DIR=tmp_path)
    ensure_secrets(settings, report=lambda _: None)
    listing = kubernetes_objects(settings)
    assert (listing["apiVersion"], listing["kind"]) == ("v1", "List")  # no schema: its items
    for version in K8S_VERSIONS:
        for item in listing["items"]:
            kubernetes_validate.validate(item, version, strict=True)
    made = {
        (item["kind"], item["metadata"]["name"]): item.get("stringData") or item.get("data")
        for item in listing["items"]
    }
    referenced = set()
    for workload in workloads():
        for entry in env_of(workload).values():
            for kind, ref in (
                ("Secret", entry.get("valueFrom", {}).get("secretKeyRef")),
                ("ConfigMap", entry.get("valueFrom", {}).get("configMapKeyRef")),
            ):
                if ref and ref["name"] not in {"foodflow-pg-app", "foodflow-config"}:
                    referenced.add((kind, ref["name"]))
                    assert ref["key"] in made[(kind, ref["name"])], ref
    assert referenced == set(made)
    keys = load_secrets(settings).service_keys
    for service, pem in keys.items():
        holders = [name for (kind, name), data in made.items() if pem in data.values()]
        assert holders == [f"foodflow-{service.replace('_', '-')}"]


# --- the settings the pods get -----------------------------------------------------------------


def setting_names() -> set[str]:
    return {field.alias or name for name, field in Settings.model_fields.items()}


def test_every_variable_given_is_a_setting() -> None:
    """Settings ignore unknown variables (extra="ignore"): a misspelt name would be dropped
    silently, and the service would run on the default."""
    known = setting_names()
    (config_map,) = [c for c in of_kind("ConfigMap") if c["metadata"]["name"] == "foodflow-config"]
    assert set(config_map["data"]) <= known
    for workload in workloads():
        assert set(env_of(workload)) <= known, workload["metadata"]["name"]


def test_the_config_names_the_services_and_servers_that_exist() -> None:
    (config_map,) = [c for c in of_kind("ConfigMap") if c["metadata"]["name"] == "foodflow-config"]
    data = config_map["data"]
    services = {s["metadata"]["name"]: s["spec"]["ports"][0]["port"] for s in of_kind("Service")}
    for variable in (
        "INVENTORY_URL",
        "PRICING_URL",
        "PAYMENT_URL",
        "DELIVERY_URL",
        "RESTAURANT_URL",
    ):
        match = re.fullmatch(r"http://([a-z0-9-]+):(\d+)", data[variable])
        assert match, data[variable]
        assert services.get(match[1]) == int(match[2]), f"{variable}: no Service {match[1]}"
    # The servers docs/deployment.md makes: Strimzi's bootstrap Service, CloudNativePG's
    # read-write Service and its application Secret are named after their resources.
    documented = {
        (d["kind"], d["metadata"]["name"])
        for block in re.findall(r"```yaml\n(.*?)```", DEPLOYMENT_DOC.read_text(), flags=re.DOTALL)
        for d in yaml.safe_load_all(block)
        if isinstance(d, dict)
    }
    assert ("Kafka", data["KAFKA_HOST"].removesuffix("-kafka-bootstrap")) in documented
    assert ("Cluster", data["POSTGRES_HOST"].removesuffix("-rw")) in documented
    for workload in workloads():
        for entry in env_of(workload).values():
            ref = entry.get("valueFrom", {}).get("secretKeyRef", {})
            if ref.get("name", "").endswith("-app"):
                assert ("Cluster", ref["name"].removesuffix("-app")) in documented
