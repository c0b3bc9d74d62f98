"""The app on Kubernetes: one namespace and, per service, the objects that run and scale it.

Per service: a ServiceAccount, a Deployment (restricted security context, probes, spread
across zones and nodes), a NodePort Service on the service's fixed port (the ALB's target
group reaches pods through the nodes, so no AWS Load Balancer Controller is needed), an
autoscaling/v2 HPA and a PodDisruptionBudget. The namespace enforces the `restricted` Pod
Security Standard and denies all traffic by default; NetworkPolicies then admit the ALB
path from the VPC, DNS, and the data tier's ports.

The objects are written as plain manifest dicts (camelCase, exactly as Kubernetes reads
them); the provider receives them unchanged, so the tests validate the recorded inputs
against the Kubernetes schemas and checkov without a second description of them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.placeholder import (
    PLACEHOLDER_CONF,
    PLACEHOLDER_IMAGE,
    placeholder_server_block,
)
from config.models import HpaConfig, KubernetesConfig, ScalingRule, ServiceConfig

POSTGRES_PORT = 5432
PGBOUNCER_PORT = 6432
REDIS_PORT = 6379
DNS_PORT = 53
# A fixed UID above 10,000: clear of the host's system and user ranges (checkov CKV_K8S_40),
# so a container escape does not land on a real host account.
APP_UID = 10001
PART_OF = "sofacover"
NAME_LABEL = "app.kubernetes.io/name"
# The ConfigMap naming the app's endpoints (components/regional.py CONFIG_MAP_NAME).
ENDPOINTS_CONFIG_MAP = "sofacover-endpoints"
# The label components/pgbouncer.py puts on its pods.
PGBOUNCER_NAME = "pgbouncer"
PLACEHOLDER_CONFIG_MAP = "placeholder-nginx"


@dataclass(frozen=True)
class ScalingArgs:
    """One direction of the HPA `behavior`: a window, then two rate policies of which the
    larger change wins (selectPolicy Max)."""

    stabilization_window_seconds: int
    """How far back the controller looks before acting (up: minimum, down: maximum)."""
    percent: int
    """Percent policy: change by at most this percentage of the pods per period."""
    pods: int
    """Pods policy: change by at most this many pods per period. With selectPolicy Max it
    is a floor for small deployments, where a percentage is only a pod or two."""
    period_seconds: int
    """The period both policies count over."""

    @classmethod
    def from_config(cls, rule: ScalingRule) -> ScalingArgs:
        return cls(stabilization_window_seconds=rule.stabilization_window_seconds,
                   percent=rule.percent, pods=rule.pods, period_seconds=rule.period_seconds)


@dataclass(frozen=True)
class ServiceArgs:
    """One app service; replica bounds already resolved against the shared HPA settings."""

    name: str
    """DNS label: the name of the Deployment, Service, HPA, PDB and ServiceAccount."""
    image: str
    port: int
    """The container port; probes and the Service target it."""
    node_port: int
    """The fixed NodePort the ALB target group sends this service's traffic to."""
    health_path: str
    """HTTP path of the readiness, liveness and startup probes."""
    cpu_request: str
    cpu_limit: str | None
    """None (the default) leaves CPU unlimited: see ServiceConfig for why."""
    memory_request: str
    memory_limit: str
    min_replicas: int
    """HPA floor, and the Deployment's initial replicas."""
    max_replicas: int

    @property
    def placeholder(self) -> bool:
        """Runs the placeholder image, which gets its server block from a ConfigMap."""
        return self.image == PLACEHOLDER_IMAGE

    @classmethod
    def from_config(cls, svc: ServiceConfig, hpa: HpaConfig) -> ServiceArgs:
        return cls(name=svc.name, image=svc.image, port=svc.port, node_port=svc.node_port,
                   health_path=svc.health_path, cpu_request=svc.cpu_request,
                   cpu_limit=svc.cpu_limit, memory_request=svc.memory_request,
                   memory_limit=svc.memory_limit,
                   min_replicas=svc.min_replicas or hpa.min_replicas,
                   max_replicas=svc.max_replicas or hpa.max_replicas)


@dataclass(frozen=True)
class WorkloadsArgs:
    """Inputs of `Workloads`."""

    namespace: str
    """The namespace every object lives in (created here)."""
    services: Sequence[ServiceArgs]
    vpc_cidr: str
    """The VPC's CIDR: the nodes, hence the ALB's NodePort traffic, come from it."""
    data_cidrs: Sequence[str]
    """CIDRs of the data subnets (RDS, PgBouncer, Redis): the only egress besides DNS."""
    cpu_utilization: int
    """HPA target, percent of the CPU request."""
    memory_utilization: int
    """HPA target, percent of the memory request."""
    scale_up: ScalingArgs
    scale_down: ScalingArgs
    kubernetes_version: str = "1.33"
    """Pins the Pod Security Standard version the namespace enforces."""
    data_ports: Sequence[int] = (POSTGRES_PORT, PGBOUNCER_PORT, REDIS_PORT)
    """Ports allowed towards `data_cidrs`."""
    pgbouncer_namespace: str | None = None
    """Namespace of an in-cluster PgBouncer (components/pgbouncer.py runs it on Kubernetes):
    its pods get pod IPs in the private subnets, outside `data_cidrs`, so they need their
    own egress rule on PgBouncer's port. None: no such rule."""
    run_as_user: int = APP_UID
    """The fixed non-root UID (and GID) every container runs as."""
    pre_stop_seconds: int = 15
    """How long a terminating pod keeps serving: long enough for every node's kube-proxy to
    drop it from the Service's endpoints before SIGTERM, so no ALB request is cut."""
    termination_grace_seconds: int = 45
    """Total time to stop: the pre-stop sleep plus the app's own graceful shutdown."""
    tmp_size_limit: str = "64Mi"
    """Size cap of the writable /tmp (the root filesystem is read-only)."""
    labels: dict[str, str] = field(default_factory=dict)
    """Extra labels on every object."""
    extra_namespaces: Sequence[str] = ()
    """Namespaces of the app's other tiers (PgBouncer and the partition job run in `data`),
    created here with the same restricted Pod Security labels."""

    @classmethod
    def from_config(cls, cfg: KubernetesConfig, *, vpc_cidr: str, data_cidrs: Sequence[str],
                    pgbouncer_namespace: str | None = None) -> WorkloadsArgs:
        """Args from `sofacover:kubernetes`."""
        hpa = cfg.hpa
        return cls(
            namespace=cfg.namespace,
            services=tuple(ServiceArgs.from_config(s, hpa) for s in cfg.services),
            vpc_cidr=vpc_cidr,
            data_cidrs=tuple(data_cidrs),
            pgbouncer_namespace=pgbouncer_namespace,
            cpu_utilization=hpa.cpu_utilization,
            memory_utilization=hpa.memory_utilization,
            scale_up=ScalingArgs.from_config(hpa.scale_up),
            scale_down=ScalingArgs.from_config(hpa.scale_down),
            kubernetes_version=cfg.version,
            extra_namespaces=(pgbouncer_namespace,) if pgbouncer_namespace else (),
        )


def check_args(args: WorkloadsArgs) -> None:
    """Fail before anything is created, naming the input at fault."""
    if not args.services:
        raise ValueError("WorkloadsArgs.services is empty; give at least one service")
    for label, cidr in [("vpc_cidr", args.vpc_cidr)] + [("data_cidrs", c)
                                                         for c in args.data_cidrs]:
        try:
            ipaddress.IPv4Network(cidr)
        except ValueError as exc:
            raise ValueError(f"WorkloadsArgs.{label} has {cidr!r}, not an IPv4 CIDR like "
                             f"10.10.0.0/16 ({exc})") from exc
    if not args.data_cidrs:
        raise ValueError("WorkloadsArgs.data_cidrs is empty; the services need the data tier")
    if args.run_as_user < 1:
        raise ValueError(f"WorkloadsArgs.run_as_user is {args.run_as_user}; it must be a "
                         "non-root UID (>= 1)")
    if args.namespace in args.extra_namespaces or \
            len(set(args.extra_namespaces)) != len(args.extra_namespaces):
        raise ValueError(f"WorkloadsArgs.extra_namespaces {list(args.extra_namespaces)} "
                         f"repeats a namespace (the app's is {args.namespace!r})")
    if args.termination_grace_seconds <= args.pre_stop_seconds:
        raise ValueError(f"WorkloadsArgs.termination_grace_seconds is "
                         f"{args.termination_grace_seconds} but pre_stop_seconds is "
                         f"{args.pre_stop_seconds}; the grace period must outlast the "
                         "pre-stop sleep or the kubelet kills the app mid-request")
    for svc in args.services:
        if svc.max_replicas < svc.min_replicas:
            raise ValueError(f"service {svc.name}: max_replicas {svc.max_replicas} is below "
                             f"min_replicas {svc.min_replicas}")


def _labels(args: WorkloadsArgs, name: str | None = None) -> dict[str, str]:
    base = {**args.labels, "app.kubernetes.io/part-of": PART_OF,
            "app.kubernetes.io/managed-by": "pulumi"}
    return {**base, NAME_LABEL: name} if name else base


def pod_spec(args: WorkloadsArgs, svc: ServiceArgs) -> dict[str, Any]:
    """The pod template's spec: restricted security context, probes, spread, graceful stop."""
    selector = {"matchLabels": {NAME_LABEL: svc.name}}
    limits = {"memory": svc.memory_limit}
    if svc.cpu_limit is not None:
        limits["cpu"] = svc.cpu_limit
    http_get = {"path": svc.health_path, "port": "http"}
    return {
        "serviceAccountName": svc.name,
        # The app never calls the Kubernetes API: no token in the pod to steal.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": args.termination_grace_seconds,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": args.run_as_user,
            "runAsGroup": args.run_as_user,
            "fsGroup": args.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "topologySpreadConstraints": [
            # Hard across zones: losing an AZ takes at most its share of pods. Nodes tainted
            # (e.g. unreachable in a failed AZ) do not count as places to balance against.
            {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
             "whenUnsatisfiable": "DoNotSchedule", "labelSelector": selector,
             "matchLabelKeys": ["pod-template-hash"], "nodeTaintsPolicy": "Honor"},
            # Soft across nodes: a scale-out to 20 pods on fewer nodes must not wait.
            {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
             "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": selector,
             "matchLabelKeys": ["pod-template-hash"]},
        ],
        "containers": [{
            "name": svc.name,
            "image": svc.image,
            # Tags can move; Always re-resolves them (layers stay cached on the node).
            "imagePullPolicy": "Always",
            # The region's write and read pools and its Redis (components/regional.py).
            # Optional: a pod still starts while the ConfigMap is being replaced; the
            # hosts in it do not move on a failover (PgBouncer's pools do), so running
            # pods need no restart.
            "envFrom": [{"configMapRef": {"name": ENDPOINTS_CONFIG_MAP, "optional": True}}],
            "ports": [{"name": "http", "containerPort": svc.port, "protocol": "TCP"}],
            "resources": {
                "requests": {"cpu": svc.cpu_request, "memory": svc.memory_request},
                "limits": limits,
            },
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": args.run_as_user,
                "runAsGroup": args.run_as_user,
                "readOnlyRootFilesystem": True,
                "allowPrivilegeEscalation": False,
                "privileged": False,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            # Startup gives a slow boot up to 60 s before liveness may restart it; readiness
            # takes a pod out of the Service at once; liveness only after 30 s of failures.
            "startupProbe": {"httpGet": http_get, "periodSeconds": 2, "failureThreshold": 30,
                             "timeoutSeconds": 2},
            "readinessProbe": {"httpGet": http_get, "periodSeconds": 5, "failureThreshold": 2,
                               "timeoutSeconds": 2},
            "livenessProbe": {"httpGet": http_get, "periodSeconds": 10,
                              "failureThreshold": 3, "timeoutSeconds": 2},
            # The pod keeps serving while its endpoint is withdrawn from every node; the
            # kubelet's own sleep needs no shell or sleep binary in the image.
            "lifecycle": {"preStop": {"sleep": {"seconds": args.pre_stop_seconds}}},
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}] + (
                [{"name": "placeholder", "mountPath": PLACEHOLDER_CONF,
                  "subPath": f"{svc.name}.conf", "readOnly": True}]
                if svc.placeholder else []),
        }],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": args.tmp_size_limit}}] + (
            [{"name": "placeholder", "configMap": {"name": PLACEHOLDER_CONFIG_MAP}}]
            if svc.placeholder else []),
    }


def deployment_spec(args: WorkloadsArgs, svc: ServiceArgs) -> dict[str, Any]:
    return {
        # The initial count only: the HPA owns replicas afterwards (ignore_changes below).
        "replicas": svc.min_replicas,
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": {NAME_LABEL: svc.name}},
        # Surge, never dip: a rollout adds pods before it removes any.
        "strategy": {"type": "RollingUpdate",
                     "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
        "template": {"metadata": {"labels": _labels(args, svc.name)},
                     "spec": pod_spec(args, svc)},
    }


def _policies(rule: ScalingArgs) -> dict[str, Any]:
    return {
        "stabilizationWindowSeconds": rule.stabilization_window_seconds,
        "selectPolicy": "Max",
        "policies": [
            {"type": "Percent", "value": rule.percent, "periodSeconds": rule.period_seconds},
            {"type": "Pods", "value": rule.pods, "periodSeconds": rule.period_seconds},
        ],
    }


def hpa_spec(args: WorkloadsArgs, svc: ServiceArgs) -> dict[str, Any]:
    def utilization(resource: str, percent: int) -> dict[str, Any]:
        return {"type": "Resource", "resource": {
            "name": resource, "target": {"type": "Utilization", "averageUtilization": percent}}}

    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": svc.name},
        "minReplicas": svc.min_replicas,
        "maxReplicas": svc.max_replicas,
        "metrics": [utilization("cpu", args.cpu_utilization),
                    utilization("memory", args.memory_utilization)],
        "behavior": {"scaleUp": _policies(args.scale_up),
                     "scaleDown": _policies(args.scale_down)},
    }


def _node_port(ports: list[Any]) -> int:
    return ports[0].node_port


class Workloads(pulumi.ComponentResource):
    """The app's services on Kubernetes, each with its Deployment, NodePort Service, HPA,
    PDB and ServiceAccount, in a restricted, default-deny namespace.

    Pass the cluster's provider as `providers={"kubernetes": provider}`; every child inherits
    it through `parent=self`.
    """

    namespace: pulumi.Output[str]
    """Name of the namespace holding every object."""
    service_names: pulumi.Output[list[str]]
    """Names of the Kubernetes Services, in config order."""
    node_ports: pulumi.Output[dict[str, int]]
    """Service name -> the NodePort its ALB target group must use."""
    namespaces: dict[str, pulumi.Output[str]]
    """Namespace -> its Namespace's `metadata.name` (the app's and `extra_namespaces`): pass
    it as a namespace so the objects in it wait for it."""

    def __init__(self, name: str, args: WorkloadsArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        check_args(args)  # before the component itself is registered
        super().__init__("sofacover:workloads:Workloads", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        restricted = ("enforce", "audit", "warn")
        psa_version = f"v{args.kubernetes_version}"

        ns_labels = {
            **_labels(args),
            **{f"pod-security.kubernetes.io/{mode}": "restricted" for mode in restricted},
            **{f"pod-security.kubernetes.io/{mode}-version": psa_version
               for mode in restricted},
        }
        ns = k8s.core.v1.Namespace(f"{name}-namespace", metadata={
            "name": args.namespace, "labels": ns_labels}, opts=child)
        namespace = ns.metadata.name
        self.namespaces = {args.namespace: namespace}
        for extra in args.extra_namespaces:
            self.namespaces[extra] = k8s.core.v1.Namespace(
                f"{name}-{extra}-namespace", metadata={"name": extra, "labels": ns_labels},
                opts=child).metadata.name

        def meta(obj_name: str, svc: str | None = None) -> dict[str, Any]:
            return {"name": obj_name, "namespace": namespace, "labels": _labels(args, svc)}

        placeholders = [svc for svc in args.services if svc.placeholder]
        if placeholders:
            k8s.core.v1.ConfigMap(f"{name}-placeholder", metadata=meta(PLACEHOLDER_CONFIG_MAP),
                                  data={f"{svc.name}.conf": placeholder_server_block(
                                      svc.port, svc.health_path) for svc in placeholders},
                                  opts=child)

        services: list[k8s.core.v1.Service] = []
        for svc in args.services:
            k8s.core.v1.ServiceAccount(f"{name}-{svc.name}-sa", metadata=meta(svc.name, svc.name),
                                       automount_service_account_token=False, opts=child)
            k8s.apps.v1.Deployment(
                f"{name}-{svc.name}-deployment", metadata=meta(svc.name, svc.name),
                spec=deployment_spec(args, svc),
                # The HPA decides the replica count; a deploy must never reset it to the
                # initial value (the "apply resets desired capacity" pain point).
                opts=pulumi.ResourceOptions(parent=self, ignore_changes=["spec.replicas"]))
            services.append(k8s.core.v1.Service(
                f"{name}-{svc.name}-service", metadata=meta(svc.name, svc.name),
                spec={
                    "type": "NodePort",
                    # Cluster: every node answers on the NodePort, so the ALB's per-node
                    # health check does not depend on where the pods landed.
                    "externalTrafficPolicy": "Cluster",
                    "selector": {NAME_LABEL: svc.name},
                    "ports": [{"name": "http", "protocol": "TCP", "port": svc.port,
                               "targetPort": "http", "nodePort": svc.node_port}],
                }, opts=child))
            k8s.autoscaling.v2.HorizontalPodAutoscaler(
                f"{name}-{svc.name}-hpa", metadata=meta(svc.name, svc.name),
                spec=hpa_spec(args, svc), opts=child)
            k8s.policy.v1.PodDisruptionBudget(
                f"{name}-{svc.name}-pdb", metadata=meta(svc.name, svc.name),
                spec={
                    # maxUnavailable, not minAvailable: it scales with whatever the HPA
                    # chose and never blocks a node drain at one replica (dev).
                    "maxUnavailable": 1,
                    "selector": {"matchLabels": {NAME_LABEL: svc.name}},
                    # A crash-looping pod must not hold a node drain hostage.
                    "unhealthyPodEvictionPolicy": "AlwaysAllow",
                }, opts=child)
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{svc.name}-allow-ingress",
                metadata=meta(f"{svc.name}-allow-ingress", svc.name),
                spec={
                    "podSelector": {"matchLabels": {NAME_LABEL: svc.name}},
                    "policyTypes": ["Ingress"],
                    # NodePort traffic arrives from the nodes (source NAT by kube-proxy) and
                    # the kubelet's probes from the node itself: both inside the VPC.
                    "ingress": [{"from": [{"ipBlock": {"cidr": args.vpc_cidr}}],
                                 "ports": [{"protocol": "TCP", "port": svc.port}]}],
                }, opts=child)

        k8s.networking.v1.NetworkPolicy(f"{name}-default-deny", metadata=meta("default-deny"),
                                        spec={"podSelector": {},
                                              "policyTypes": ["Ingress", "Egress"]},
                                        opts=child)
        k8s.networking.v1.NetworkPolicy(f"{name}-allow-dns", metadata=meta("allow-dns"), spec={
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{
                "to": [{"namespaceSelector": {"matchLabels": {
                            "kubernetes.io/metadata.name": "kube-system"}},
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                "ports": [{"protocol": "UDP", "port": DNS_PORT},
                          {"protocol": "TCP", "port": DNS_PORT}],
            }],
        }, opts=child)
        k8s.networking.v1.NetworkPolicy(f"{name}-allow-data-tier",
                                        metadata=meta("allow-data-tier"), spec={
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{
                "to": [{"ipBlock": {"cidr": cidr}} for cidr in args.data_cidrs],
                "ports": [{"protocol": "TCP", "port": port} for port in args.data_ports],
            }],
        }, opts=child)
        if args.pgbouncer_namespace is not None:
            k8s.networking.v1.NetworkPolicy(f"{name}-allow-pgbouncer",
                                            metadata=meta("allow-pgbouncer"), spec={
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [{
                    "to": [{"namespaceSelector": {"matchLabels": {
                                "kubernetes.io/metadata.name": args.pgbouncer_namespace}},
                            "podSelector": {"matchLabels": {NAME_LABEL: PGBOUNCER_NAME}}}],
                    "ports": [{"protocol": "TCP", "port": PGBOUNCER_PORT}],
                }],
            }, opts=child)

        self.namespace = namespace
        self.service_names = pulumi.Output.all(*[s.metadata.name for s in services])
        self.node_ports = pulumi.Output.all(**{
            svc.name: s.spec.ports.apply(_node_port)
            for svc, s in zip(args.services, services, strict=True)})
        self.register_outputs({
            "namespace": self.namespace,
            "service_names": self.service_names,
            "node_ports": self.node_ports,
        })
