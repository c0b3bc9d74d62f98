"""Preflight rules: kubernetes (see planner/preflight/__init__.py).

The cluster contract: what the objects the program applies need from the cluster (their
namespace, their CRDs and operators, a metrics API, a CNI that enforces NetworkPolicies,
room on the nodes), checked against what the same stack installs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from config.quantity import cpu_millis, memory_mib
from planner.engine import PlannedResource
from planner.preflight import Context, rule, value

CHECKED = "2026-11-27"
NAMESPACE = "kubernetes:core/v1:Namespace"
RELEASE = "kubernetes:helm.sh/v3:Release"
ADDON = "aws:eks/addon:Addon"
CLUSTER = "aws:eks/cluster:Cluster"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PRIORITY_CLASS = "kubernetes:scheduling.k8s.io/v1:PriorityClass"
POD_IDENTITY = "aws:eks/podIdentityAssociation:PodIdentityAssociation"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
SCALING_POLICY = "aws:autoscaling/policy:Policy"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
ASG = "aws:autoscaling/group:Group"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"

SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
# Kinds with no namespace (kubectl api-resources --namespaced=false), of the groups here.
CLUSTER_SCOPED = frozenset({
    "Namespace", "Node", "PersistentVolume", "ClusterRole", "ClusterRoleBinding",
    "CustomResourceDefinition", "StorageClass", "PriorityClass", "IngressClass",
    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService",
    "RuntimeClass", "CSIDriver", "VolumeAttachment",
})
# Pulumi's own kinds in the kubernetes package: not API objects.
PULUMI_GROUPS = ("helm.sh", "yaml", "kustomize")
# API groups the API server serves itself ("core" is the legacy group, written `core` in
# Pulumi's type tokens).
BUILT_IN_GROUPS = frozenset({"core", "apps", "batch", "autoscaling", "policy"})

# Custom API group -> the Helm charts that install its CRDs and operator.
OPERATOR_CHARTS: dict[str, frozenset[str]] = {
    "monitoring.coreos.com": frozenset({"kube-prometheus-stack"}),
}
CNI_CHARTS = frozenset({"cilium", "tigera-operator", "calico"})


def _group_kind(res: PlannedResource) -> tuple[str, str] | None:
    """(API group, kind) of a Kubernetes object; None for providers and Pulumi kinds."""
    if not res.type.startswith("kubernetes:"):
        return None
    _, api, kind = res.type.split(":", 2)
    group = api.rsplit("/", 1)[0] if "/" in api else "core"
    if group in PULUMI_GROUPS:
        return None
    return group, kind


def _built_in(group: str) -> bool:
    return group in BUILT_IN_GROUPS or group.endswith(".k8s.io")


def _objects(ctx: Context) -> Iterator[tuple[PlannedResource, str, str]]:
    for res in ctx.resources:
        gk = _group_kind(res)
        if gk is not None:
            yield res, *gk


def _releases(ctx: Context, charts: frozenset[str]) -> list[PlannedResource]:
    return [r for r in ctx.of_type(RELEASE) if value(r, "chart") in charts]


def _addon(ctx: Context, name: str) -> PlannedResource | None:
    return next((r for r in ctx.of_type(ADDON) if value(r, "addonName") == name), None)


def _depends_on(res: PlannedResource, other: PlannedResource) -> bool:
    return other.urn in res.options.get("depends_on", [])


# -- namespaces ---------------------------------------------------------------------------------

@rule("k8s-namespace-exists",
      "every namespaced Kubernetes object's namespace is a system namespace or a Namespace "
      "the same stack creates, and the object depends on that Namespace",
      source="https://kubernetes.io/docs/reference/access-authn-authz/admission-controllers/"
             "#namespacelifecycle (objects cannot be created in a namespace that does not "
             "exist); https://kubernetes.io/docs/concepts/overview/working-with-objects/"
             "namespaces/ (initial namespaces)",
      checked=CHECKED)
def namespace_exists(ctx: Context) -> Iterator:
    created = {value(ns, "metadata.name"): ns for ns in ctx.of_type(NAMESPACE)}
    for res, _group, kind in _objects(ctx):
        if kind in CLUSTER_SCOPED:
            continue
        ns = value(res, "metadata.namespace") or "default"
        yield from _namespace_findings(ctx, res, "metadata.namespace", ns, created)
    for res in ctx.of_type(RELEASE):
        if value(res, "createNamespace"):
            continue
        ns = value(res, "namespace") or "default"
        yield from _namespace_findings(ctx, res, "namespace", ns, created)


def _namespace_findings(ctx: Context, res: PlannedResource, prop: str, ns: str,
                        created: dict[str, PlannedResource]) -> Iterator:
    if ns in SYSTEM_NAMESPACES:
        return
    owner = created.get(ns)
    if owner is None:
        yield ctx.error(res, prop, f"namespace {ns!r} is neither a system namespace nor "
                        "created by this stack (kubernetes:core/v1:Namespace); the API "
                        "server refuses objects in a namespace that does not exist")
    elif not _depends_on(res, owner):
        yield ctx.error(res, prop, f"namespace {ns!r} is created by this stack "
                        f"({owner.name}) but this object does not depend on it, so Pulumi "
                        "may apply it first; pass the Namespace's metadata.name as the "
                        "namespace")


# -- custom kinds -------------------------------------------------------------------------------

@rule("k8s-custom-kind-installed",
      "every object of a custom API group (e.g. monitoring.coreos.com PrometheusRule) has its "
      "CRDs and operator installed by the same stack (a Helm release of a chart known to "
      "install them), and depends on that release",
      source="https://kubernetes.io/docs/concepts/extend-kubernetes/api-extension/"
             "custom-resources/ (a custom resource needs its CRD, and a controller to act on "
             "it); prometheus-operator CRDs as installed by prometheus-community/helm-charts "
             "kube-prometheus-stack (crds.enabled)",
      checked=CHECKED)
def custom_kind_installed(ctx: Context) -> Iterator:
    for res, group, kind in _objects(ctx):
        if _built_in(group):
            continue
        charts = OPERATOR_CHARTS.get(group)
        if charts is None:
            yield ctx.error(res, "apiVersion", f"{group} {kind} is a custom kind this "
                            "preflight knows no installer for; add its operator's chart to "
                            "OPERATOR_CHARTS in planner/preflight/kubernetes.py")
            continue
        installers = [r for r in _releases(ctx, charts)
                      if (value(r, "values.crds.enabled") is not False)]
        if not installers:
            yield ctx.error(res, "apiVersion", f"{group} {kind} needs its CRDs and operator, "
                            f"but this stack installs none (a Helm release of "
                            f"{' or '.join(sorted(charts))}); the API server would refuse "
                            "the object, or nothing would act on it")
        elif not any(_depends_on(res, r) for r in installers):
            yield ctx.error(res, "apiVersion", f"{group} {kind} does not depend on "
                            f"{installers[0].name}, which installs its CRDs; Pulumi may "
                            "apply it before the CRD exists")


@rule("k8s-prometheus-rule-selected",
      "every PrometheusRule carries the labels the installed Prometheus' ruleSelector "
      "matches, so the operator loads it",
      source="prometheus-community/helm-charts kube-prometheus-stack values.yaml "
             "(prometheus.prometheusSpec.ruleSelector, ruleSelectorNilUsesHelmValues: "
             "release=<release name> by default)",
      checked=CHECKED)
def prometheus_rule_selected(ctx: Context) -> Iterator:
    releases = _releases(ctx, OPERATOR_CHARTS["monitoring.coreos.com"])
    for res in ctx.of_type(PROMETHEUS_RULE):
        labels = value(res, "metadata.labels") or {}
        for rel in releases:
            wanted = _rule_selector(rel)
            missing = {k: v for k, v in wanted.items() if labels.get(k) != v}
            if missing:
                yield ctx.error(res, "metadata.labels", f"lacks {missing}, which "
                                f"{rel.name}'s ruleSelector requires; Prometheus would "
                                "never load these rules")


def _rule_selector(release: PlannedResource) -> dict[str, str]:
    spec = value(release, "values.prometheus.prometheusSpec") or {}
    if spec.get("ruleSelectorNilUsesHelmValues", True) and not spec.get("ruleSelector"):
        return {"release": value(release, "name") or release.name}
    return dict((spec.get("ruleSelector") or {}).get("matchLabels") or {})


# -- metrics API and CNI ------------------------------------------------------------------------

@rule("k8s-hpa-metrics-api",
      "HorizontalPodAutoscalers on resource metrics need the metrics API: metrics-server "
      "installed by the stack (the EKS add-on or its chart)",
      source="https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/ "
             "(resource metrics come from the metrics.k8s.io API, usually metrics-server); "
             "https://docs.aws.amazon.com/eks/latest/userguide/metrics-server.html (not "
             "deployed by default in EKS)",
      checked=CHECKED)
def hpa_metrics_api(ctx: Context) -> Iterator:
    if _addon(ctx, "metrics-server") or _releases(ctx, frozenset({"metrics-server"})):
        return
    for res in ctx.of_type(HPA):
        metrics = value(res, "spec.metrics") or []
        if any(m.get("type") in ("Resource", "ContainerResource") for m in metrics):
            yield ctx.error(res, "spec.metrics", "reads CPU/memory utilisation, but the "
                            "stack installs no metrics-server (EKS add-on `metrics-server` "
                            "or its chart); the HPA would report FailedGetResourceMetric "
                            "and never scale")


@rule("k8s-network-policy-enforced",
      "NetworkPolicies need a CNI that enforces them: the vpc-cni add-on with "
      "enableNetworkPolicy \"true\" (or a policy-enforcing CNI chart)",
      source="https://docs.aws.amazon.com/eks/latest/userguide/cni-network-policy-configure."
             "html (the VPC CNI enforces network policies only with enableNetworkPolicy); "
             "https://kubernetes.io/docs/concepts/services-networking/network-policies/ "
             "(without a network plugin that implements them, policies have no effect)",
      checked=CHECKED)
def network_policy_enforced(ctx: Context) -> Iterator:
    policies = list(ctx.of_type(NETWORK_POLICY))
    if not policies or _releases(ctx, CNI_CHARTS):
        return
    cni = _addon(ctx, "vpc-cni")
    raw = value(cni, "configurationValues") if cni else None
    try:
        enabled = json.loads(raw).get("enableNetworkPolicy") == "true" if raw else False
    except (ValueError, AttributeError):
        enabled = False
    if enabled:
        return
    for res in policies:
        yield ctx.error(res, "spec", "no CNI in this stack enforces NetworkPolicies: the "
                        "vpc-cni add-on needs configurationValues {\"enableNetworkPolicy\": "
                        "\"true\"}; without it the policy does nothing")


# -- capacity -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class InstanceType:
    vcpus: int
    memory_mib: int
    enis: int
    ips_per_eni: int

    @property
    def max_pods(self) -> int:
        """The VPC CNI's limit without prefix delegation: ENIs x (IPs - 1) + 2."""
        return self.enis * (self.ips_per_eni - 1) + 2


# EC2 DescribeInstanceTypes (VCpuInfo.DefaultVCpus, MemoryInfo.SizeInMiB,
# NetworkInfo.MaximumNetworkInterfaces, Ipv4AddressesPerInterface), as moto 5.2.5 ships it
# in moto/ec2/resources/instance_types.json; tests/test_preflight_kubernetes.py checks this
# table against moto's copy.
INSTANCE_TYPES: dict[str, InstanceType] = {
    "t3.medium": InstanceType(2, 4096, 3, 6),
    "t3.large": InstanceType(2, 8192, 3, 12),
    "t3.xlarge": InstanceType(4, 16384, 4, 15),
    "m5.large": InstanceType(2, 8192, 3, 10),
    "m5.xlarge": InstanceType(4, 16384, 4, 15),
    "m5.2xlarge": InstanceType(8, 32768, 4, 15),
    "m6i.large": InstanceType(2, 8192, 3, 10),
    "m6i.xlarge": InstanceType(4, 16384, 4, 15),
    "m6i.2xlarge": InstanceType(8, 32768, 4, 15),
    "m7i.large": InstanceType(2, 8192, 3, 10),
    "m7i.xlarge": InstanceType(4, 16384, 4, 15),
    "c6i.xlarge": InstanceType(4, 8192, 4, 15),
    "r6i.large": InstanceType(2, 16384, 3, 10),
}

# Pods EKS itself runs for the add-ons, with their requests (cpu millicores, memory MiB),
# from the add-ons' default manifests: per node (DaemonSets) and per cluster.
ADDON_PODS_PER_NODE: dict[str, tuple[int, int]] = {
    "vpc-cni": (25, 0), "kube-proxy": (100, 0), "eks-pod-identity-agent": (0, 0)}
ADDON_PODS_PER_CLUSTER: dict[str, tuple[int, int, int]] = {
    # add-on: (replicas, cpu m, memory Mi)
    "coredns": (2, 100, 70), "metrics-server": (2, 100, 200)}
EVICTION_HARD_MIB = 100


def kube_reserved(itype: InstanceType) -> tuple[int, int]:
    """(cpu millicores, memory MiB) the EKS AMI's nodeadm reserves for the kubelet and the
    system, plus the hard eviction threshold: 6% of the first core, 1% of the second,
    0.5% of the next two, 0.25% of the rest; memory 11 MiB a pod + 255 MiB."""
    cores = itype.vcpus
    cpu = 60 + 10 * (cores >= 2) + 5 * min(max(cores - 2, 0), 2) + 2.5 * max(cores - 4, 0)
    return math.ceil(cpu), 11 * itype.max_pods + 255 + EVICTION_HARD_MIB


def _pod_requests(pod_spec: dict[str, Any]) -> tuple[int, int]:
    """What the scheduler counts: the containers' sum, or the largest init container."""
    def req(c: dict[str, Any]) -> tuple[int, int]:
        r = (c.get("resources") or {}).get("requests") or {}
        return cpu_millis(r.get("cpu")), memory_mib(r.get("memory"))

    cpu = sum(req(c)[0] for c in pod_spec.get("containers") or [])
    mem = sum(req(c)[1] for c in pod_spec.get("containers") or [])
    for c in pod_spec.get("initContainers") or []:
        cpu, mem = max(cpu, req(c)[0]), max(mem, req(c)[1])
    return cpu, mem


@dataclass
class Demand:
    cpu: int = 0
    memory: int = 0
    pods: int = 0

    def add(self, count: int, cpu: int, memory: int) -> None:
        self.cpu += count * cpu
        self.memory += count * memory
        self.pods += count


def _kps_demand(values: dict[str, Any], cluster: Demand, node: Demand) -> None:
    """kube-prometheus-stack's pods, from its values (the chart sets no requests itself)."""
    def requests(path: str) -> tuple[int, int]:
        node_: Any = values
        for part in path.split("."):
            node_ = (node_ or {}).get(part) if isinstance(node_, dict) else None
        r = node_ or {}
        return cpu_millis(r.get("cpu")), memory_mib(r.get("memory"))

    spec = (values.get("prometheus") or {}).get("prometheusSpec") or {}
    am = ((values.get("alertmanager") or {}).get("alertmanagerSpec")) or {}
    cluster.add(int(spec.get("replicas", 1)),
                *requests("prometheus.prometheusSpec.resources.requests"))
    cluster.add(int(am.get("replicas", 1)),
                *requests("alertmanager.alertmanagerSpec.resources.requests"))
    cluster.add(1, *requests("prometheusOperator.resources.requests"))
    cluster.add(1, *requests("kube-state-metrics.resources.requests"))
    node.add(1, *requests("prometheus-node-exporter.resources.requests"))


def _node_groups(ctx: Context) -> list[tuple[PlannedResource, int, str | None]]:
    """(group, maxSize, instance type) of each Auto Scaling group; the smallest type when
    the group mixes types."""
    templates = {lt.id: lt for lt in ctx.of_type(LAUNCH_TEMPLATE)}
    out = []
    for asg in ctx.of_type(ASG):
        types: list[str] = []
        mixed = value(asg, "mixedInstancesPolicy.launchTemplate")
        spec = value(asg, "launchTemplate") or (mixed or {}).get(
            "launchTemplateSpecification") or {}
        lt = templates.get(spec.get("id") or spec.get("launchTemplateId"))
        types += [o["instanceType"] for o in (mixed or {}).get("overrides") or []
                  if o.get("instanceType")]
        if not types and lt is not None and value(lt, "instanceType"):
            types.append(value(lt, "instanceType"))
        known = [t for t in types if t in INSTANCE_TYPES]
        smallest = min(known, key=lambda t: (INSTANCE_TYPES[t].vcpus,
                                             INSTANCE_TYPES[t].memory_mib), default=None)
        out.append((asg, int(value(asg, "maxSize") or 0), smallest or (types or [None])[0]))
    return out


@rule("k8s-capacity-at-max",
      "the pods' requests at every HPA's maxReplicas (plus PgBouncer, jobs, add-ons and "
      "DaemonSets on every node) fit the node group at its maxSize, after each node's "
      "kube-reserved and eviction threshold; pods fit the VPC CNI's per-node pod limit",
      source="https://kubernetes.io/docs/concepts/scheduling-eviction/"
             "kube-scheduler/ (pods are placed by their requests against node allocatable); "
             "awslabs/amazon-eks-ami nodeadm kubelet config (kube-reserved: CPU 6/1/0.5/0.25 "
             "% steps, memory 11 MiB x maxPods + 255 MiB; eviction 100Mi); "
             "amazon-vpc-cni-k8s eni-max-pods (ENIs x (IPs - 1) + 2); EC2 instance types "
             "from moto 5.2.5's DescribeInstanceTypes data",
      checked=CHECKED)
def capacity_at_max(ctx: Context) -> Iterator:
    if not any(True for _ in ctx.of_type(CLUSTER)):
        return
    groups = _node_groups(ctx)
    if not groups:
        return
    cluster, per_node = Demand(), Demand()
    hpa_max = {(value(h, "metadata.namespace"), value(h, "spec.scaleTargetRef.name")):
               int(value(h, "spec.maxReplicas") or 0) for h in ctx.of_type(HPA)}
    yielding = {name for name, prio in _priority_classes(ctx).items() if prio < 0}
    for res, _group, kind in _objects(ctx):
        if value(res, "spec.template.spec.priorityClassName") in yielding:
            continue  # placeholders: every pod at the default priority pre-empts them
        if kind in ("Deployment", "StatefulSet", "ReplicaSet"):
            key = (value(res, "metadata.namespace"), value(res, "metadata.name"))
            replicas = hpa_max.get(key) or int(value(res, "spec.replicas") or 1)
            cluster.add(replicas, *_pod_requests(value(res, "spec.template.spec") or {}))
        elif kind == "CronJob":
            pod = value(res, "spec.jobTemplate.spec.template.spec") or {}
            cluster.add(1, *_pod_requests(pod))
        elif kind == "Job":
            cluster.add(1, *_pod_requests(value(res, "spec.template.spec") or {}))
        elif kind == "DaemonSet":
            per_node.add(1, *_pod_requests(value(res, "spec.template.spec") or {}))
    for rel in ctx.of_type(RELEASE):
        if value(rel, "chart") == "kube-prometheus-stack":
            _kps_demand(value(rel, "values") or {}, cluster, per_node)
        elif value(rel, "chart") == "cluster-autoscaler":
            requests = value(rel, "values.resources.requests") or {}
            cluster.add(int(value(rel, "values.replicaCount") or 1),
                        cpu_millis(requests.get("cpu")), memory_mib(requests.get("memory")))
        else:
            yield ctx.warning(rel, "values", f"chart {value(rel, 'chart')}'s pods are not "
                              "counted in the capacity check")
    for addon in ctx.of_type(ADDON):
        name = value(addon, "addonName")
        if name in ADDON_PODS_PER_NODE:
            per_node.add(1, *ADDON_PODS_PER_NODE[name])
        elif name in ADDON_PODS_PER_CLUSTER:
            replicas, cpu, mem = ADDON_PODS_PER_CLUSTER[name]
            cluster.add(replicas, cpu, mem)

    nodes = cpu_total = mem_total = pods_total = 0
    for asg, max_size, itype_name in groups:
        itype = INSTANCE_TYPES.get(itype_name or "")
        if itype is None:
            yield ctx.error(asg, "launchTemplate", f"instance type {itype_name!r} is not in "
                            "the capacity table (INSTANCE_TYPES in planner/preflight/"
                            "kubernetes.py); add it from moto's instance_types.json")
            return
        res_cpu, res_mem = kube_reserved(itype)
        nodes += max_size
        cpu_total += max_size * (itype.vcpus * 1000 - res_cpu - per_node.cpu)
        mem_total += max_size * (itype.memory_mib - res_mem - per_node.memory)
        pods_total += max_size * (itype.max_pods - per_node.pods)
    asg = groups[0][0]
    where = ", ".join(f"{m} x {t}" for _, m, t in groups)
    if cluster.cpu > cpu_total:
        yield ctx.error(asg, "maxSize", f"the pods request {cluster.cpu / 1000:g} vCPU at "
                        f"their maximum replicas, but {where} offer {cpu_total / 1000:g} "
                        "vCPU after kube-reserved and the per-node pods; pods would stay "
                        "Pending: raise maxSize or the instance type")
    if cluster.memory > mem_total:
        yield ctx.error(asg, "maxSize", f"the pods request {cluster.memory / 1024:.1f} GiB "
                        f"at their maximum replicas, but {where} offer "
                        f"{mem_total / 1024:.1f} GiB after kube-reserved, eviction and the "
                        "per-node pods: raise maxSize or the instance type")
    if cluster.pods > pods_total:
        yield ctx.error(asg, "maxSize", f"{cluster.pods} pods at their maximum replicas, "
                        f"but {where} hold {pods_total} beyond the per-node pods (VPC CNI "
                        "max pods per node): raise maxSize or the instance type")


def _priority_classes(ctx: Context) -> dict[str, int]:
    return {value(pc, "metadata.name"): int(value(pc, "value") or 0)
            for pc in ctx.of_type(PRIORITY_CLASS)}


# -- node autoscaling ---------------------------------------------------------------------------

# Cluster Autoscaler's --expendable-pods-priority-cutoff default (cluster-autoscaler/FAQ.md,
# "How does Cluster Autoscaler treat nodes with pods of low priority?"): Pending pods below
# it trigger no scale-up.
CA_EXPENDABLE_CUTOFF = -10
CA_CHART = "cluster-autoscaler"
CA_DISCOVERY_TAGS = ("k8s.io/cluster-autoscaler/enabled", "k8s.io/cluster-autoscaler/{cluster}")
PAUSE_IMAGE_PREFIX = "registry.k8s.io/pause:"


def _asg_tags(asg: PlannedResource) -> dict[str, str]:
    return {t.get("key"): t.get("value") for t in value(asg, "tags") or []}


@rule("k8s-autoscaler-discovers-group",
      "a Cluster Autoscaler release with auto-discovery finds a node group of this stack: "
      "some Auto Scaling group carries k8s.io/cluster-autoscaler/enabled and "
      "k8s.io/cluster-autoscaler/<its cluster> (the chart's autoDiscovery.tags), and that "
      "group has no scaling policy of its own to undo the autoscaler's desired capacity",
      source="kubernetes/autoscaler cluster-autoscaler/cloudprovider/aws/README.md "
             "(Auto-Discovery Setup; it only adjusts the desired value) and "
             "charts/cluster-autoscaler/values.yaml autoDiscovery.tags at "
             "cluster-autoscaler-chart-9.59.0 (5a0b98e45f896e98132737240ac131a519d3b33d); "
             "https://docs.aws.amazon.com/eks/latest/userguide/cluster-autoscaler.html "
             "(it controls the group's desired capacity)",
      checked=CHECKED)
def autoscaler_discovers_group(ctx: Context) -> Iterator:
    groups = list(ctx.of_type(ASG))
    policies = list(ctx.of_type(SCALING_POLICY))
    for rel in _releases(ctx, frozenset({CA_CHART})):
        cluster = value(rel, "values.autoDiscovery.clusterName")
        if not cluster:
            continue  # configured with explicit --nodes: nothing to discover
        wanted = [t.format(cluster=cluster) for t in CA_DISCOVERY_TAGS]
        found = [g for g in groups if all(k in _asg_tags(g) for k in wanted)]
        if not found:
            yield ctx.error(rel, "values.autoDiscovery.clusterName", f"no Auto Scaling "
                            f"group of this stack carries both {wanted[0]} and {wanted[1]}; "
                            "the autoscaler would discover no node group and never add a "
                            "node (Compute: autoscaler_tags)")
        for group in found:
            fighting = [p for p in policies
                        if value(p, "autoscalingGroupName") in (group.id, value(group, "name"))]
            for policy in fighting:
                yield ctx.error(policy, "autoscalingGroupName", f"scales {group.name}, whose "
                                "desired capacity Cluster Autoscaler owns; the policy and the "
                                "autoscaler would undo each other (a CPU scale-in terminates "
                                "nodes kept for Pending or placeholder pods)")


@rule("k8s-spare-capacity-priority",
      "placeholder (pause) pods run at a PriorityClass below 0, so every pod at the default "
      "priority pre-empts them, and not below Cluster Autoscaler's expendable cutoff (-10 "
      "by default), so their Pending copies still add nodes; no negative class is the "
      "cluster's global default",
      source="kubernetes/autoscaler cluster-autoscaler/FAQ.md at cluster-autoscaler-1.35.2 "
             "(2d42588803c71fe9b35dcd9e3669ac6bb550ca22): \"How can I configure "
             "overprovisioning\" (value -10) and --expendable-pods-priority-cutoff; "
             "https://kubernetes.io/docs/concepts/scheduling-eviction/pod-priority-preemption/"
             " (pods without a class get priority 0, or the globalDefault class's value)",
      checked=CHECKED)
def spare_capacity_priority(ctx: Context) -> Iterator:
    classes = _priority_classes(ctx)
    for pc in ctx.of_type(PRIORITY_CLASS):
        if value(pc, "globalDefault") and int(value(pc, "value") or 0) < 0:
            yield ctx.error(pc, "globalDefault", "is true on a negative priority: every pod "
                            "without a class would become a placeholder anyone pre-empts")
    cutoffs = [int(value(r, "values.extraArgs.expendable-pods-priority-cutoff")
                   or CA_EXPENDABLE_CUTOFF) for r in _releases(ctx, frozenset({CA_CHART}))]
    for res, _group, kind in _objects(ctx):
        if kind != "Deployment":
            continue
        spec = value(res, "spec.template.spec") or {}
        images = [c.get("image", "") for c in spec.get("containers") or []]
        if not images or not all(i.startswith(PAUSE_IMAGE_PREFIX) for i in images):
            continue
        name = spec.get("priorityClassName")
        prio = classes.get(name, 0) if name else 0
        if name and name not in classes:
            yield ctx.error(res, "spec.template.spec.priorityClassName", f"names "
                            f"PriorityClass {name!r}, which this stack does not create; the "
                            "API server refuses pods of an unknown class")
        elif prio >= 0:
            yield ctx.error(res, "spec.template.spec.priorityClassName", f"gives placeholder "
                            f"pods priority {prio}; pods at the default 0 cannot pre-empt "
                            "them, so the spare capacity is never handed over")
        for cutoff in cutoffs:
            if prio < cutoff:
                yield ctx.error(res, "spec.template.spec.priorityClassName", f"priority "
                                f"{prio} is below Cluster Autoscaler's expendable cutoff "
                                f"{cutoff}: pre-empted placeholders would add no node, and "
                                "the spare capacity would be gone after one spike")


def _chart_service_accounts(rel: PlannedResource) -> set[str] | None:
    """ServiceAccounts a chart creates that the program associates roles with; None for a
    chart this preflight does not know."""
    chart, values = value(rel, "chart"), value(rel, "values") or {}
    if chart == CA_CHART:
        # charts/cluster-autoscaler templates/_helpers.tpl serviceAccountName: the name
        # given, else the fullname (fullnameOverride, else the release name when it holds
        # the chart's, else <release>-cluster-autoscaler)
        sa = (values.get("rbac") or {}).get("serviceAccount") or {}
        release = value(rel, "name") or rel.name
        full = values.get("fullnameOverride") or (
            release if CA_CHART in release else f"{release}-{CA_CHART}")
        return {sa.get("name") or full}
    if chart == "kube-prometheus-stack":
        sa = ((values.get("alertmanager") or {}).get("serviceAccount") or {})
        return {sa["name"]} if sa.get("name") else set()
    return None


@rule("aws-pod-identity-service-account",
      "every EKS Pod Identity association names a ServiceAccount this stack creates in that "
      "namespace (a ServiceAccount object, or the one a known chart renders), and the "
      "eks-pod-identity-agent add-on is installed",
      source="https://docs.aws.amazon.com/eks/latest/userguide/pod-id-association.html "
             "(the association maps one namespace/service account to a role; pods of that "
             "service account get credentials from the Pod Identity agent add-on); "
             "kubernetes/autoscaler charts/cluster-autoscaler templates/_helpers.tpl "
             "(serviceAccountName)",
      checked=CHECKED)
def pod_identity_service_account(ctx: Context) -> Iterator:
    associations = list(ctx.of_type(POD_IDENTITY))
    if not associations:
        return
    known: set[tuple[str, str]] = {
        (value(sa, "metadata.namespace") or "default", value(sa, "metadata.name"))
        for sa in ctx.of_type(SERVICE_ACCOUNT)}
    unknown_charts = []
    for rel in ctx.of_type(RELEASE):
        names = _chart_service_accounts(rel)
        if names is None:
            unknown_charts.append(rel)
            continue
        known |= {(value(rel, "namespace") or "default", n) for n in names}
    for assoc in associations:
        pair = (value(assoc, "namespace"), value(assoc, "serviceAccount"))
        if pair not in known and not unknown_charts:
            yield ctx.error(assoc, "serviceAccount", f"{pair[0]}/{pair[1]} is no "
                            "ServiceAccount this stack creates; no pod would get the role's "
                            "credentials")
    if _addon(ctx, "eks-pod-identity-agent") is None:
        for assoc in associations:
            yield ctx.error(assoc, "clusterName", "the cluster has no eks-pod-identity-agent "
                            "add-on; pods would get no credentials from the association")


# -- spare capacity on EC2: the warm pool --------------------------------------------------------

@rule("aws-warm-pool-usable",
      "an Auto Scaling group with a warm pool has no mixed instances policy (AWS refuses "
      "one), holds its instances with a launch lifecycle hook (else they are stopped before "
      "user data has bootstrapped them, and a warm start runs no user data), and is not an "
      "EKS node group Cluster Autoscaler manages (a warm node joins, then stops)",
      source="https://docs.aws.amazon.com/autoscaling/ec2/userguide/"
             "ec2-auto-scaling-warm-pools.html (limitations: no mixed instances policy, no "
             "Spot); https://docs.aws.amazon.com/autoscaling/ec2/userguide/"
             "warm-pool-instance-lifecycle.html (lifecycle hooks for instances entering and "
             "leaving the pool)",
      checked=CHECKED)
def warm_pool_usable(ctx: Context) -> Iterator:
    for asg in ctx.of_type(ASG):
        if not value(asg, "warmPool"):
            continue
        if value(asg, "mixedInstancesPolicy"):
            yield ctx.error(asg, "warmPool", "is set on a group with a mixed instances "
                            "policy; EC2 Auto Scaling refuses warm pools there (no spot with "
                            "a warm pool)")
        hooks = value(asg, "initialLifecycleHooks") or []
        if not any(h.get("lifecycleTransition") == "autoscaling:EC2_INSTANCE_LAUNCHING"
                   for h in hooks):
            yield ctx.warning(asg, "initialLifecycleHooks", "has no launch lifecycle hook: "
                              "warm instances may be stopped before their user data finishes, "
                              "and a warm start does not run it again")
        if CA_DISCOVERY_TAGS[0] in _asg_tags(asg):
            yield ctx.error(asg, "warmPool", "is set on an EKS node group Cluster Autoscaler "
                            "manages: a warming node joins the cluster, then stops and stays "
                            "NotReady; spare capacity there is placeholder pods")
