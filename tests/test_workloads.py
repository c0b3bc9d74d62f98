"""The Workloads component under the recording mocks, for dev-like and prod-like config.

The Kubernetes objects checked here are the recorded inputs of the kubernetes:* resources:
exactly what the provider would send to the API server, so there is no second description
of them to drift. They are validated offline against the Kubernetes OpenAPI schemas in
strict mode (kubernetes-validate); tests/test_checkov.py scans them with checkov's
Kubernetes checks.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

from components.network import plan_subnets
from components.workloads import (
    APP_UID,
    DNS_PORT,
    NAME_LABEL,
    PGBOUNCER_NAME,
    PGBOUNCER_PORT,
    POSTGRES_PORT,
    REDIS_PORT,
    Workloads,
    WorkloadsArgs,
)
from config import seed
from config.models import KubernetesConfig, StackConfig
from planner.capacity import (
    NodeGroup,
    Service,
    analyse_kubernetes,
    hpa_from_manifest,
    service_from_manifests,
    simulate_kubernetes,
)
from planner.engine import Execution, PlannedResource
from tests.conftest import of_type

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
ACCOUNT = "kubernetes:core/v1:ServiceAccount"
NAMESPACE = "kubernetes:core/v1:Namespace"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
STACKS = ["dev", "prod"]

# Which Kubernetes version the schemas come from: the config's default, which must be one
# the pinned kubernetes-validate bundles (checked below rather than assumed).
K8S_VERSION = KubernetesConfig.model_fields["version"].default
KUBERNETES_VALIDATE_PIN = "kubernetes-validate==1.37.0"


# --- building ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def configs(project) -> dict[str, StackConfig]:
    return {stack: project.stack_config(stack) for stack in STACKS}


def args_for(cfg: StackConfig, kubernetes: KubernetesConfig | None = None,
             pgbouncer_namespace: str | None = None) -> WorkloadsArgs:
    assert cfg.network is not None and cfg.kubernetes is not None
    return WorkloadsArgs.from_config(
        kubernetes or cfg.kubernetes, vpc_cidr=cfg.network.cidr,
        data_cidrs=plan_subnets(cfg.network.cidr, cfg.network.az_count)["data"],
        pgbouncer_namespace=pgbouncer_namespace)


def workloads(args: WorkloadsArgs):
    def fn() -> None:
        provider = k8s.Provider("k8s-test", kubeconfig="{}")
        app = Workloads("app", args, pulumi.ResourceOptions(providers={"kubernetes": provider}))
        pulumi.export("namespace", app.namespace)
        pulumi.export("serviceNames", app.service_names)
        pulumi.export("nodePorts", app.node_ports)
    return fn


def manifests(run: Execution) -> list[dict[str, Any]]:
    """Every Kubernetes object as the provider receives it."""
    return [r.inputs for r in run.resources if r.type.startswith("kubernetes:")]


def by_name(resources: list[PlannedResource], token: str) -> dict[str, PlannedResource]:
    return {r.inputs["metadata"]["name"]: r for r in of_type(resources, token)}


def container(deployment: PlannedResource) -> dict[str, Any]:
    (c,) = deployment.inputs["spec"]["template"]["spec"]["containers"]
    return c


def with_overrides(cfg: StackConfig) -> KubernetesConfig:
    """The stack's kubernetes config with a CPU limit and replica bounds on one service."""
    assert cfg.kubernetes is not None
    raw = cfg.kubernetes.model_dump(by_alias=True, exclude_none=True)
    raw["services"][1].update(minReplicas=cfg.kubernetes.hpa.min_replicas + 1,
                              maxReplicas=cfg.kubernetes.hpa.max_replicas + 5, cpuLimit="1")
    return KubernetesConfig.model_validate(raw)


# --- per service: the objects and their values ---------------------------------------------

@pytest.mark.parametrize("stack", STACKS)
def test_every_service_gets_its_own_deployment_service_hpa_pdb_and_account(
        build, configs, stack):
    cfg = configs[stack]
    res = build(workloads(args_for(cfg))).resources
    names = sorted(s.name for s in cfg.kubernetes.services)
    for token in (DEPLOYMENT, SERVICE, HPA, PDB, ACCOUNT):
        assert sorted(by_name(res, token)) == names, token
    for name, deployment in by_name(res, DEPLOYMENT).items():
        pod = deployment.inputs["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == name
        assert deployment.inputs["spec"]["selector"]["matchLabels"] == {NAME_LABEL: name}
        assert by_name(res, SERVICE)[name].inputs["spec"]["selector"] == {NAME_LABEL: name}


@pytest.mark.parametrize("stack", STACKS)
def test_containers_take_image_port_and_resources_from_config(build, configs, stack):
    cfg = configs[stack]
    deployments = by_name(build(workloads(args_for(cfg))).resources, DEPLOYMENT)
    for svc in cfg.kubernetes.services:
        c = container(deployments[svc.name])
        assert c["image"] == svc.image
        assert c["ports"] == [{"name": "http", "containerPort": svc.port, "protocol": "TCP"}]
        assert c["resources"]["requests"] == {"cpu": svc.cpu_request,
                                              "memory": svc.memory_request}
        assert c["resources"]["limits"] == {"memory": svc.memory_limit}


def test_cpu_is_unlimited_unless_a_service_sets_a_limit(build, configs):
    cfg = configs["prod"]
    deployments = by_name(build(workloads(args_for(cfg, with_overrides(cfg)))).resources,
                          DEPLOYMENT)
    limited = with_overrides(cfg).services[1]
    assert container(deployments[limited.name])["resources"]["limits"]["cpu"] == limited.cpu_limit
    others = [s.name for s in cfg.kubernetes.services if s.name != limited.name]
    assert all("cpu" not in container(deployments[n])["resources"]["limits"] for n in others)


@pytest.mark.parametrize("stack", STACKS)
def test_hpa_bounds_targets_and_behaviour_come_from_the_stack_config(build, configs, stack):
    hpa_cfg = configs[stack].kubernetes.hpa
    hpas = by_name(build(workloads(args_for(configs[stack]))).resources, HPA)
    for name, hpa in hpas.items():
        spec = hpa.inputs["spec"]
        assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                          "name": name}
        assert (spec["minReplicas"], spec["maxReplicas"]) == (hpa_cfg.min_replicas,
                                                              hpa_cfg.max_replicas)
        targets = {m["resource"]["name"]: m["resource"]["target"] for m in spec["metrics"]}
        assert targets == {
            "cpu": {"type": "Utilization", "averageUtilization": hpa_cfg.cpu_utilization},
            "memory": {"type": "Utilization", "averageUtilization": hpa_cfg.memory_utilization},
        }
        for direction, rule in (("scaleUp", hpa_cfg.scale_up),
                                ("scaleDown", hpa_cfg.scale_down)):
            behaviour = spec["behavior"][direction]
            assert behaviour["stabilizationWindowSeconds"] == rule.stabilization_window_seconds
            assert behaviour["selectPolicy"] == "Max"
            assert behaviour["policies"] == [
                {"type": "Percent", "value": rule.percent, "periodSeconds": rule.period_seconds},
                {"type": "Pods", "value": rule.pods, "periodSeconds": rule.period_seconds},
            ]


def test_prod_hpa_is_the_seed_plans_except_the_scale_up_window(build, configs):
    spec = next(iter(by_name(build(workloads(args_for(configs["prod"]))).resources,
                             HPA).values())).inputs["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (seed.HPA_MIN, seed.HPA_MAX)
    cpu, memory = (m["resource"]["target"]["averageUtilization"] for m in spec["metrics"])
    assert (cpu, memory) == (seed.HPA_CPU_PERCENT, seed.HPA_MEMORY_PERCENT)
    up, down = spec["behavior"]["scaleUp"], spec["behavior"]["scaleDown"]
    assert up["policies"][0]["value"] == seed.HPA_UP_PERCENT
    assert up["policies"][0]["periodSeconds"] == seed.HPA_UP_PERIOD_S
    # The one departure (config/presets.py): a scale-up window only delays the reaction.
    assert up["stabilizationWindowSeconds"] < seed.HPA_UP_WINDOW_S
    assert down["stabilizationWindowSeconds"] == seed.HPA_DOWN_WINDOW_S
    assert down["policies"][0] == {"type": "Percent", "value": seed.HPA_DOWN_PERCENT,
                                   "periodSeconds": seed.HPA_DOWN_PERIOD_S}


# The KPI tests rest on planner/capacity.py, fed the HPA and container resources exactly as
# rendered here (selectPolicy, CPU limits, tolerance, readiness and metric windows count).
# Nodes that never bind: these tests are about the pods; tests/test_capacity.py adds nodes.
ROOMY_NODES = NodeGroup("m5.24xlarge", 96, 95_000, 1, 1, 1, "fixed")


def rendered_services(res: list[PlannedResource]) -> list[Service]:
    hpas, deployments = by_name(res, HPA), by_name(res, DEPLOYMENT)
    return [service_from_manifests(name, container(deployments[name]),
                                   hpas[name].inputs["spec"]) for name in sorted(hpas)]


def test_prod_phase2_hpa_meets_10x_within_120s_when_nodes_are_ready(build, project):
    res = build(workloads(args_for(project.stack_config("prod", 2)))).resources
    result = simulate_kubernetes(rendered_services(res), ROOMY_NODES, load=10)
    assert result.meets(120), result.per_service


def test_seed_literal_hpa_misses_the_2_minute_kpi(build, project):
    res = build(workloads(args_for(project.stack_config("prod", 2)))).resources
    services = []
    for svc in rendered_services(res):
        # the seed's 60 s scale-up window, and a CPU limit equal to the request
        up = dataclasses.replace(svc.hpa.up, window_s=60)
        services.append(dataclasses.replace(svc, cpu_limit_m=svc.cpu_request_m,
                                            hpa=dataclasses.replace(svc.hpa, up=up)))
    result = analyse_kubernetes(services, ROOMY_NODES, load=10, kpi_s=120)
    assert not result.meets(120)
    assert result.seconds is not None and result.seconds > 240  # kubernetes.io HPA rules: ~360 s
    assert result.binding[0] in ("scale-up stabilisation window 60 s",
                                 "CPU limit (limit = request) caps each step at 1.43x "
                                 "(100/70)")


def test_an_hpa_rendered_with_scale_up_disabled_never_reaches_capacity(build, project):
    res = build(workloads(args_for(project.stack_config("prod", 2)))).resources
    spec = copy.deepcopy(next(iter(by_name(res, HPA).values())).inputs["spec"])
    spec["behavior"]["scaleUp"]["selectPolicy"] = "Disabled"
    (svc, *_) = rendered_services(res)
    disabled = dataclasses.replace(svc, hpa=hpa_from_manifest(spec))
    result = simulate_kubernetes([disabled], ROOMY_NODES, load=10)
    assert result.seconds is None
    assert max(r.desired for r in result.timeline) == spec["minReplicas"]


def test_per_service_replica_bounds_override_the_shared_hpa(build, configs):
    cfg = configs["prod"]
    overridden = with_overrides(cfg)
    res = build(workloads(args_for(cfg, overridden))).resources
    hpas, deployments = by_name(res, HPA), by_name(res, DEPLOYMENT)
    for svc in overridden.services:
        low = svc.min_replicas or overridden.hpa.min_replicas
        high = svc.max_replicas or overridden.hpa.max_replicas
        spec = hpas[svc.name].inputs["spec"]
        assert (spec["minReplicas"], spec["maxReplicas"]) == (low, high)
        assert deployments[svc.name].inputs["spec"]["replicas"] == low
    bumped = overridden.services[1]
    assert hpas[bumped.name].inputs["spec"]["minReplicas"] != overridden.hpa.min_replicas


@pytest.mark.parametrize("stack", STACKS)
def test_deployment_starts_at_the_hpa_floor_and_a_deploy_never_resets_replicas(
        build, configs, stack):
    cfg = configs[stack]
    for deployment in of_type(build(workloads(args_for(cfg))).resources, DEPLOYMENT):
        assert deployment.inputs["spec"]["replicas"] == cfg.kubernetes.hpa.min_replicas
        assert deployment.options["ignore_changes"] == ["spec.replicas"]
        rolling = deployment.inputs["spec"]["strategy"]["rollingUpdate"]
        assert rolling["maxUnavailable"] == 0


def test_only_deployments_ignore_changes(build, configs):
    res = build(workloads(args_for(configs["dev"]))).resources
    assert all(not r.options["ignore_changes"] for r in res
               if r.type.startswith("kubernetes:") and r.type != DEPLOYMENT)


@pytest.mark.parametrize("stack", STACKS)
def test_containers_run_under_the_restricted_security_context(build, configs, stack):
    for deployment in of_type(build(workloads(args_for(configs[stack]))).resources,
                              DEPLOYMENT):
        pod = deployment.inputs["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
        sc = container(deployment)["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == APP_UID > 0
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        # A read-only root needs somewhere to write: /tmp is a size-capped emptyDir.
        # The placeholder image also mounts its server block, read-only, and nothing else.
        mounts = container(deployment)["volumeMounts"]
        assert mounts[0] == {"name": "tmp", "mountPath": "/tmp"}
        assert all(m.get("readOnly") for m in mounts[1:])
        tmp = pod["volumes"][0]
        assert tmp["name"] == "tmp" and "sizeLimit" in tmp["emptyDir"]


@pytest.mark.parametrize("stack", STACKS)
def test_the_placeholder_listens_on_the_service_port_and_answers_its_health_path(
        build, configs, stack):
    from components.workloads import PLACEHOLDER_CONF

    run = build(workloads(args_for(configs[stack])))
    (config_map,) = [r for r in of_type(run.resources, "kubernetes:core/v1:ConfigMap")]
    for svc in configs[stack].kubernetes.services:
        block = config_map.inputs["data"][f"{svc.name}.conf"]
        assert f"listen {svc.port};" in block
        assert f"location = {svc.health_path} {{" in block and "return 200" in block
    for deployment in of_type(run.resources, DEPLOYMENT):
        (mount,) = [m for m in container(deployment)["volumeMounts"] if m["name"] != "tmp"]
        assert mount["mountPath"] == PLACEHOLDER_CONF


def test_pgbouncers_namespace_is_created_restricted_like_the_apps(build, configs):
    run = build(workloads(args_for(configs["prod"], pgbouncer_namespace="data")))
    namespaces = {r.inputs["metadata"]["name"]: r.inputs["metadata"]["labels"]
                  for r in of_type(run.resources, "kubernetes:core/v1:Namespace")}
    assert set(namespaces) == {configs["prod"].kubernetes.namespace, "data"}
    assert namespaces["data"] == namespaces[configs["prod"].kubernetes.namespace]


def test_service_accounts_do_not_mount_api_tokens(build, configs):
    for account in of_type(build(workloads(args_for(configs["dev"]))).resources, ACCOUNT):
        assert account.inputs["automountServiceAccountToken"] is False


@pytest.mark.parametrize("stack", STACKS)
def test_probes_check_each_services_health_path(build, configs, stack):
    cfg = configs[stack]
    deployments = by_name(build(workloads(args_for(cfg))).resources, DEPLOYMENT)
    for svc in cfg.kubernetes.services:
        c = container(deployments[svc.name])
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["httpGet"] == {"path": svc.health_path, "port": "http"}, probe
        # Liveness must not restart a pod that readiness has merely taken out of service.
        live, ready = c["livenessProbe"], c["readinessProbe"]
        assert (live["periodSeconds"] * live["failureThreshold"]
                > ready["periodSeconds"] * ready["failureThreshold"])


def test_pods_spread_hard_across_zones_and_softly_across_nodes(build, configs):
    for deployment in of_type(build(workloads(args_for(configs["prod"]))).resources,
                              DEPLOYMENT):
        pod = deployment.inputs["spec"]["template"]["spec"]
        rule = {c["topologyKey"]: c for c in pod["topologySpreadConstraints"]}
        assert rule["topology.kubernetes.io/zone"]["whenUnsatisfiable"] == "DoNotSchedule"
        assert rule["kubernetes.io/hostname"]["whenUnsatisfiable"] == "ScheduleAnyway"
        selector = deployment.inputs["spec"]["selector"]
        assert all(c["labelSelector"] == selector and c["maxSkew"] == 1
                   for c in rule.values())


def test_pods_keep_serving_through_the_pre_stop_sleep_within_the_grace_period(build, configs):
    args = args_for(configs["prod"])
    for deployment in of_type(build(workloads(args)).resources, DEPLOYMENT):
        pod = deployment.inputs["spec"]["template"]["spec"]
        sleep = container(deployment)["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert sleep == args.pre_stop_seconds > 0
        assert pod["terminationGracePeriodSeconds"] > sleep


@pytest.mark.parametrize("stack", STACKS)
def test_services_are_node_ports_on_the_configured_ports(build, configs, stack):
    cfg = configs[stack]
    services = by_name(build(workloads(args_for(cfg))).resources, SERVICE)
    for svc in cfg.kubernetes.services:
        spec = services[svc.name].inputs["spec"]
        assert spec["type"] == "NodePort"
        assert spec["ports"] == [{"name": "http", "protocol": "TCP", "port": svc.port,
                                  "targetPort": "http", "nodePort": svc.node_port}]


@pytest.mark.parametrize("stack", STACKS)
def test_disruption_budget_lets_one_pod_go_at_a_time(build, configs, stack):
    for name, pdb in by_name(build(workloads(args_for(configs[stack]))).resources,
                             PDB).items():
        assert pdb.inputs["spec"]["maxUnavailable"] == 1
        assert pdb.inputs["spec"]["selector"] == {"matchLabels": {NAME_LABEL: name}}


# --- namespace and network policies -------------------------------------------------------------

def test_namespace_enforces_the_restricted_pod_security_standard(build, configs):
    cfg = configs["prod"]
    res = build(workloads(args_for(cfg))).resources
    (ns,) = of_type(res, NAMESPACE)
    labels = ns.inputs["metadata"]["labels"]
    assert ns.inputs["metadata"]["name"] == cfg.kubernetes.namespace
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
        assert labels[f"pod-security.kubernetes.io/{mode}-version"] == (
            f"v{cfg.kubernetes.version}")
    namespaced = [r for r in res if r.type.startswith("kubernetes:") and r is not ns]
    assert all(r.inputs["metadata"]["namespace"] == cfg.kubernetes.namespace
               for r in namespaced)


def test_namespace_denies_all_ingress_and_egress_by_default(build, configs):
    policies = by_name(build(workloads(args_for(configs["prod"]))).resources, NETPOL)
    deny = policies["default-deny"].inputs["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


@pytest.mark.parametrize("stack", STACKS)
def test_each_service_admits_only_its_port_from_the_vpc(build, configs, stack):
    cfg = configs[stack]
    policies = by_name(build(workloads(args_for(cfg))).resources, NETPOL)
    for svc in cfg.kubernetes.services:
        spec = policies[f"{svc.name}-allow-ingress"].inputs["spec"]
        assert spec["podSelector"] == {"matchLabels": {NAME_LABEL: svc.name}}
        assert spec["policyTypes"] == ["Ingress"]
        assert spec["ingress"] == [{"from": [{"ipBlock": {"cidr": cfg.network.cidr}}],
                                    "ports": [{"protocol": "TCP", "port": svc.port}]}]


def test_egress_reaches_cluster_dns_and_the_data_tier_only(build, configs):
    cfg = configs["prod"]
    policies = by_name(build(workloads(args_for(cfg))).resources, NETPOL)
    egress = {n: p.inputs["spec"] for n, p in policies.items()
              if "Egress" in p.inputs["spec"]["policyTypes"] and n != "default-deny"}
    assert sorted(egress) == ["allow-data-tier", "allow-dns"]
    (dns,) = egress["allow-dns"]["egress"]
    (peer,) = dns["to"]
    assert peer["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}
    assert sorted((p["protocol"], p["port"]) for p in dns["ports"]) == [
        ("TCP", DNS_PORT), ("UDP", DNS_PORT)]
    (data,) = egress["allow-data-tier"]["egress"]
    data_cidrs = plan_subnets(cfg.network.cidr, cfg.network.az_count)["data"]
    assert [p["ipBlock"]["cidr"] for p in data["to"]] == data_cidrs
    assert sorted(p["port"] for p in data["ports"]) == sorted(
        [POSTGRES_PORT, PGBOUNCER_PORT, REDIS_PORT])
    assert all(p["protocol"] == "TCP" for p in data["ports"])


def test_an_in_cluster_pgbouncer_is_reached_on_its_port_in_its_namespace(build, configs):
    policies = by_name(build(workloads(args_for(configs["prod"], pgbouncer_namespace="data")))
                       .resources, NETPOL)
    (rule,) = policies["allow-pgbouncer"].inputs["spec"]["egress"]
    (peer,) = rule["to"]
    assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "data"}}
    assert peer["podSelector"] == {"matchLabels": {NAME_LABEL: PGBOUNCER_NAME}}
    assert rule["ports"] == [{"protocol": "TCP", "port": PGBOUNCER_PORT}]


def test_no_pgbouncer_rule_without_an_in_cluster_pgbouncer(build, configs):
    policies = by_name(build(workloads(args_for(configs["prod"]))).resources, NETPOL)
    assert "allow-pgbouncer" not in policies


# --- component contract: provider, parents, outputs, argument checks ---------------------------

def test_every_child_is_parented_to_the_component_and_uses_the_given_provider(build, configs):
    res = build(workloads(args_for(configs["dev"]))).resources
    (component,) = of_type(res, "sofacover:workloads:Workloads")
    (provider,) = of_type(res, "pulumi:providers:kubernetes")
    children = [r for r in res if r.type.startswith("kubernetes:")]
    assert children and all(r.parent == component.urn for r in children)
    assert all(r.provider == f"{provider.urn}::{provider.id}" for r in children)


def test_every_manifest_names_the_api_version_and_kind_of_its_resource_type(build, configs):
    for r in build(workloads(args_for(configs["dev"]))).resources:
        if r.type.startswith("kubernetes:"):
            group_version, kind = r.type.split(":")[1:]
            api_version = group_version.removeprefix("core/")
            assert (r.inputs["apiVersion"], r.inputs["kind"]) == (api_version, kind)


@pytest.mark.parametrize("preview", [False, True])
def test_outputs_name_the_namespace_services_and_node_ports(build, configs, preview):
    cfg = configs["prod"]
    outputs = build(workloads(args_for(cfg)), preview=preview).outputs
    assert outputs["namespace"] == cfg.kubernetes.namespace
    assert outputs["serviceNames"] == [s.name for s in cfg.kubernetes.services]
    assert outputs["nodePorts"] == {s.name: s.node_port for s in cfg.kubernetes.services}


@pytest.mark.parametrize(("change", "message"), [
    ({"vpc_cidr": "10.10.0.0/33"}, "vpc_cidr"),
    ({"data_cidrs": ("10.10.255.0/24", "data")}, "data_cidrs"),
    ({"data_cidrs": ()}, "data_cidrs is empty"),
    ({"run_as_user": 0}, "run_as_user"),
    ({"pre_stop_seconds": 45, "termination_grace_seconds": 45}, "termination_grace_seconds"),
])
def test_bad_arguments_are_refused_before_anything_is_created(build, configs, change,
                                                              message):
    args = dataclasses.replace(args_for(configs["dev"]), **change)
    with pytest.raises(ValueError, match=message):
        build(workloads(args))


# --- Kubernetes OpenAPI schemas, offline, strict --------------------------------------------

def kubernetes_validate():
    try:
        import kubernetes_validate as kv
    except ImportError:
        pytest.fail(f"kubernetes-validate is not installed; run: .venv/bin/pip install "
                    f"'{KUBERNETES_VALIDATE_PIN}'")
    return kv


def schema_errors(obj: dict[str, Any], *, strict: bool = True) -> list[str]:
    kv = kubernetes_validate()
    try:
        kv.validate(obj, K8S_VERSION, strict=strict)
    except kv.ValidationError as exc:
        return [f"{obj['kind']}/{obj['metadata']['name']}: "
                f"{'.'.join(map(str, exc.path))}: {exc.message}"]
    return []


def test_schemas_are_those_of_the_configured_kubernetes_version():
    kv = kubernetes_validate()
    assert f"{K8S_VERSION}.0" in kv.utils.all_versions(), (
        f"kubernetes-validate does not bundle Kubernetes {K8S_VERSION}; upgrade its pin")
    from importlib.metadata import version
    assert f"kubernetes-validate=={version('kubernetes-validate')}" == KUBERNETES_VALIDATE_PIN


@pytest.mark.parametrize("stack", STACKS)
def test_every_rendered_object_passes_the_strict_schemas(build, configs, stack):
    args = args_for(configs[stack], with_overrides(configs[stack]), pgbouncer_namespace="data")
    objs = manifests(build(workloads(args)))
    # Two namespaces (the app's, PgBouncer's), the placeholder's ConfigMap, six objects per
    # service, and four namespace-wide network policies.
    assert len(objs) == 2 + 1 + 6 * len(configs[stack].kubernetes.services) + 4
    assert [e for obj in objs for e in schema_errors(obj)] == []


def deployment_manifest(build, configs) -> dict[str, Any]:
    run = build(workloads(args_for(configs["dev"])))
    return copy.deepcopy(of_type(run.resources, DEPLOYMENT)[0].inputs)


def test_strict_schemas_catch_a_misspelt_field_the_loose_ones_accept(build, configs):
    obj = deployment_manifest(build, configs)
    sc = obj["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    sc["readOnlyRootFileSystem"] = sc.pop("readOnlyRootFilesystem")  # capital S: ignored
    assert schema_errors(obj, strict=False) == []
    assert "readOnlyRootFileSystem" in "".join(schema_errors(obj))


@pytest.mark.parametrize(("patch", "expected"), [
    (lambda o: o["spec"].update(replicas="3"), "replicas"),
    (lambda o: o["spec"]["template"]["spec"]["containers"][0].pop("name"), "name"),
    (lambda o: o["spec"]["template"]["spec"]["securityContext"].update(runAsNonRoot="yes"),
     "runAsNonRoot"),
])
def test_strict_schemas_catch_wrong_types_and_missing_fields(build, configs, patch, expected):
    obj = deployment_manifest(build, configs)
    patch(obj)
    assert expected in "".join(schema_errors(obj))


def test_strict_schemas_catch_an_hpa_without_its_ceiling(build, configs):
    hpa = copy.deepcopy(of_type(build(workloads(args_for(configs["dev"]))).resources,
                                HPA)[0].inputs)
    del hpa["spec"]["maxReplicas"]
    assert "maxReplicas" in "".join(schema_errors(hpa))
