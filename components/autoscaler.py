"""Nodes that follow pods: the Kubernetes Cluster Autoscaler on the node group (the Compute
component's Auto Scaling group), and spare capacity held by low-priority placeholder pods.

Why Cluster Autoscaler and not Karpenter: the nodes already are one Auto Scaling group
with a launch template, an ALB attachment (NodePort target groups) and instance refresh;
Cluster Autoscaler drives exactly that group through its desired capacity, while Karpenter
would launch instances outside it (no target-group attachment, a second node lifecycle).
Karpenter launches faster, but no node launch fits in 2 minutes with the HPA's own minute
in front of it: the spare capacity is what meets the KPI, either way.

- The autoscaler finds the group by its tags (`k8s.io/cluster-autoscaler/enabled`,
  `k8s.io/cluster-autoscaler/<cluster>`: `autoscaler_tags`), as kubernetes/autoscaler
  cluster-autoscaler/cloudprovider/aws/README.md ("Auto-Discovery Setup") describes, and
  only ever changes its desired capacity within its min and max.
- Its AWS identity is an IAM role reached through an EKS Pod Identity association (the
  `eks-pod-identity-agent` add-on, components/eks.py), with the least-privilege policy of
  the EKS best-practices guide (https://docs.aws.amazon.com/eks/latest/best-practices/
  cas.html, "Employ least privileged access to the IAM role"): describe calls on `*`,
  SetDesiredCapacity and TerminateInstanceInAutoScalingGroup only on groups tagged for
  this cluster.
- Spare capacity: pause pods at a PriorityClass below every real pod (the Cluster
  Autoscaler FAQ, "How can I configure overprovisioning with Cluster Autoscaler?": value
  -10, the lowest priority that still triggers a scale-up). A real pod that does not fit
  pre-empts them and starts at once; the evicted placeholders turn Pending and make the
  autoscaler add a node, which restores the spare before the next spike.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from config.offerings import CLUSTER_AUTOSCALER_RELEASES

CHART = "cluster-autoscaler"
CHART_REPO = "https://kubernetes.github.io/autoscaler"
# Chart and image pinned per cluster minor: config/offerings.py (with their sources), where
# the stack config checks kubernetes.version against them before anything is created.
RELEASES = CLUSTER_AUTOSCALER_RELEASES
RELEASE_NAME = "cluster-autoscaler"
NAMESPACE = "kube-system"
# The chart's ServiceAccount name (fullnameOverride and rbac.serviceAccount.name set to
# it); the Pod Identity association names the same one (the preflight checks the pair).
SERVICE_ACCOUNT = "cluster-autoscaler"
# The tags the chart's autoDiscovery.tags looks for by default (values.yaml): both must
# exist on the group; the second scopes it to one cluster.
ENABLED_TAG = "k8s.io/cluster-autoscaler/enabled"
CLUSTER_TAG_PREFIX = "k8s.io/cluster-autoscaler/"
Expander = Literal["least-waste", "random", "most-pods", "price", "priority"]
# What the autoscaler's own pod requests (the capacity rules count it).
REQUESTS = {"cpu": "100m", "memory": "300Mi"}
# Placeholder pods: -10 is the lowest priority Cluster Autoscaler still scales up for
# (--expendable-pods-priority-cutoff, default -10; cluster-autoscaler/FAQ.md).
SPARE_PRIORITY = -10
EXPENDABLE_PODS_PRIORITY_CUTOFF = -10
SPARE_PRIORITY_CLASS = "sofacover-spare-capacity"
SPARE_NAME = "spare-capacity"
# The pause image of Kubernetes 1.35's kubeadm defaults; it runs as 65535 (its Dockerfile).
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
PAUSE_USER = 65535


def autoscaler_tags(cluster_name: pulumi.Input[str]) -> list[tuple[pulumi.Input[str], str]]:
    """The Auto Scaling group tags (key, value) Cluster Autoscaler's auto-discovery matches;
    the values are the ones the IAM policy's conditions require."""
    return [(ENABLED_TAG, "true"),
            (pulumi.Output.concat(CLUSTER_TAG_PREFIX, cluster_name), "owned")]


def release_for(kubernetes_version: str) -> tuple[str, str]:
    """(chart version, image tag) for the cluster's minor; ValueError naming the valid
    minors for one this module has not pinned."""
    try:
        return RELEASES[kubernetes_version]
    except KeyError:
        raise ValueError(
            f"Cluster Autoscaler is pinned for Kubernetes {', '.join(sorted(RELEASES))}, "
            f"not {kubernetes_version}: pin the chart and image of that minor in "
            "config/offerings.py (CLUSTER_AUTOSCALER_RELEASES)") from None


@dataclass(frozen=True)
class ScaleUp:
    """One HPA's scale-up as the spare capacity is sized from: its bounds and the larger
    of its two policies (Percent and Pods per period), as components/workloads.py renders
    them."""

    min_replicas: int
    max_replicas: int
    percent: int
    pods: int
    period_s: int


def pods_added_within(hpa: ScaleUp, seconds: int) -> int:
    """Pods the HPA's rate limits let it add in `seconds` from its minimum, one step per
    period (selectPolicy Max: the larger of ceil(n x (1 + percent)) and n + pods), capped at
    maxReplicas. The first step comes at t = 0, so `seconds` // period + 1 steps."""
    n = hpa.min_replicas
    for _ in range(seconds // hpa.period_s + 1):
        n = min(hpa.max_replicas, max(math.ceil(n * (1 + hpa.percent / 100)), n + hpa.pods))
    return n - hpa.min_replicas


def spare_pods(hpas: Sequence[ScaleUp], seconds: int) -> int:
    """Placeholder pods to hold: whatever every HPA can add before a node the autoscaler
    starts at the first pre-emption is Ready (`seconds`: scan + launch + join). Pods the
    HPAs want later land on the new nodes."""
    return sum(pods_added_within(h, seconds) for h in hpas)


@dataclass(frozen=True)
class ClusterAutoscalerArgs:
    """Inputs of `ClusterAutoscaler`."""

    cluster_name: pulumi.Input[str]
    """The EKS cluster: auto-discovery scope, IAM condition and Pod Identity association."""
    region: pulumi.Input[str]
    """The node group's region (the autoscaler's AWS calls)."""
    kubernetes_version: str
    """The cluster's minor: picks the chart and image (RELEASES)."""
    expander: Expander = "least-waste"
    """Which node group grows when several could (one group here: any is instant)."""
    scan_interval_s: int = 10
    """How often it looks for Pending pods (the --scan-interval default; cluster-autoscaler
    FAQ): the delay between a pre-empted placeholder and the new node's launch."""
    spare_pods: int = 0
    """Placeholder pods held as spare capacity (0: no placeholder Deployment)."""
    spare_pod_requests: Mapping[str, str] = field(
        default_factory=lambda: {"cpu": "250m", "memory": "512Mi"})
    """Each placeholder's requests: the largest app pod's, so one pre-emption makes room
    for any one app pod."""
    tags: dict[str, str] = field(default_factory=dict)

    def check(self) -> None:
        release_for(self.kubernetes_version)
        if not 1 <= self.scan_interval_s <= 60:
            raise ValueError(f"ClusterAutoscalerArgs: scan_interval_s is "
                             f"{self.scan_interval_s}; it must be 1-60 s")
        if self.spare_pods < 0:
            raise ValueError(f"ClusterAutoscalerArgs: spare_pods is {self.spare_pods}; it "
                             "must be >= 0")


def _trust() -> str:
    # Pod Identity: the EKS Pod Identity service assumes the role and tags the session
    # (https://docs.aws.amazon.com/eks/latest/userguide/pod-id-role.html).
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
        "Action": ["sts:AssumeRole", "sts:TagSession"]}]})


DESCRIBE_ACTIONS = (
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeLaunchConfigurations",
    "autoscaling:DescribeScalingActivities",
    "autoscaling:DescribeTags",
    "ec2:DescribeImages",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:GetInstanceTypesFromInstanceRequirements",
    "eks:DescribeNodegroup",
)
SCALE_ACTIONS = ("autoscaling:SetDesiredCapacity",
                 "autoscaling:TerminateInstanceInAutoScalingGroup")


def autoscaler_policy(cluster_name: str) -> str:
    """The EKS best-practices policy: read anything (describe calls take no resource),
    scale only the groups tagged for this cluster."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": list(SCALE_ACTIONS), "Resource": "*",
         "Condition": {"StringEquals": {
             f"aws:ResourceTag/{ENABLED_TAG}": "true",
             f"aws:ResourceTag/{CLUSTER_TAG_PREFIX}{cluster_name}": "owned"}}},
        {"Effect": "Allow", "Action": list(DESCRIBE_ACTIONS), "Resource": "*"},
    ]})


def chart_values(parts: list[str], *, args: ClusterAutoscalerArgs) -> dict[str, Any]:
    cluster_name, region = parts
    _, image_tag = release_for(args.kubernetes_version)
    return {
        "cloudProvider": "aws",
        "awsRegion": region,
        "autoDiscovery": {"clusterName": cluster_name},
        "fullnameOverride": RELEASE_NAME,
        "image": {"tag": image_tag},
        "rbac": {"serviceAccount": {"create": True, "name": SERVICE_ACCOUNT}},
        "resources": {"requests": dict(REQUESTS), "limits": {"memory": REQUESTS["memory"]}},
        "extraArgs": {
            "expander": args.expander,
            "scan-interval": f"{args.scan_interval_s}s",
            # The placeholders' priority must stay at or above this for their Pending
            # copies to trigger a scale-up (the preflight holds the two together).
            "expendable-pods-priority-cutoff": EXPENDABLE_PODS_PRIORITY_CUTOFF,
            # Nodes in three AZs: keep them balanced as the group grows.
            "balance-similar-node-groups": True,
            # kube-system pods (CoreDNS, metrics-server) must not pin a node forever.
            "skip-nodes-with-system-pods": False,
        },
    }


class ClusterAutoscaler(pulumi.ComponentResource):
    """Cluster Autoscaler (Helm) with its Pod Identity role, and the spare-capacity
    placeholders. Needs the cluster's Kubernetes provider through `opts`."""

    role_arn: pulumi.Output[str]
    release: k8s.helm.v3.Release
    spare_pods: int
    """Placeholder pods held (0: none)."""

    def __init__(self, name: str, args: ClusterAutoscalerArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        args.check()
        super().__init__("sofacover:autoscaler:ClusterAutoscaler", name, None, opts)
        association = self._identity(name, args)
        self.release = self._release(name, args, association)
        self.spare_pods = args.spare_pods
        if args.spare_pods:
            self._spare_capacity(name, args)
        self.register_outputs({"role_arn": self.role_arn})

    def _identity(self, name: str, args: ClusterAutoscalerArgs
                  ) -> aws.eks.PodIdentityAssociation:
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(f"{name}-role", assume_role_policy=_trust(),
                            description="Cluster Autoscaler: scale this cluster's node group",
                            tags=args.tags, opts=child)
        aws.iam.RolePolicy(f"{name}-scale", role=role.id,
                           policy=pulumi.Output.from_input(args.cluster_name)
                           .apply(autoscaler_policy), opts=child)
        self.role_arn = role.arn
        return aws.eks.PodIdentityAssociation(
            f"{name}-identity", cluster_name=args.cluster_name, namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT, role_arn=role.arn, tags=args.tags, opts=child)

    def _release(self, name: str, args: ClusterAutoscalerArgs,
                 association: aws.eks.PodIdentityAssociation) -> k8s.helm.v3.Release:
        chart_version, _ = release_for(args.kubernetes_version)
        values = pulumi.Output.all(args.cluster_name, args.region).apply(
            functools.partial(chart_values, args=args))
        return k8s.helm.v3.Release(
            f"{name}-release", name=RELEASE_NAME, chart=CHART, version=chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPO),
            namespace=NAMESPACE, values=values, atomic=True, timeout=600,
            # Pod Identity injects credentials when a pod is created: the association
            # must exist before the autoscaler's pod does.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[association]))

    def _spare_capacity(self, name: str, args: ClusterAutoscalerArgs) -> None:
        child = pulumi.ResourceOptions(parent=self)
        priority = k8s.scheduling.v1.PriorityClass(
            f"{name}-spare-priority", metadata={"name": SPARE_PRIORITY_CLASS},
            value=SPARE_PRIORITY, global_default=False,
            # Placeholders never pre-empt anything themselves.
            preemption_policy="Never",
            description="Spare capacity: pause pods every real pod pre-empts", opts=child)
        labels = {"app.kubernetes.io/name": SPARE_NAME,
                  "app.kubernetes.io/part-of": "sofacover",
                  "app.kubernetes.io/managed-by": "pulumi"}
        # The placeholders outnumber the group's desired nodes on purpose: they are Pending
        # until the autoscaler adds nodes. So they come after the autoscaler, and Pulumi does
        # not wait for them to be ready (its default await would time out a first `up` while
        # nodes launch: pulumi-kubernetes "pulumi.com/skipAwait" annotation docs).
        k8s.apps.v1.Deployment(
            f"{name}-spare", metadata={"name": SPARE_NAME, "namespace": NAMESPACE,
                                       "labels": labels,
                                       "annotations": {"pulumi.com/skipAwait": "true"}},
            spec={
                "replicas": args.spare_pods,
                "selector": {"matchLabels": {"app.kubernetes.io/name": SPARE_NAME}},
                "template": {"metadata": {"labels": labels}, "spec": {
                    "priorityClassName": priority.metadata.name,
                    # Pre-empted pods leave at once: the real pod waits for nothing.
                    "terminationGracePeriodSeconds": 0,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": PAUSE_USER,
                                        "runAsGroup": PAUSE_USER,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "pause", "image": PAUSE_IMAGE,
                        "resources": {"requests": dict(args.spare_pod_requests),
                                      "limits": {"memory": args.spare_pod_requests["memory"]}},
                        "securityContext": {
                            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
                    }],
                }},
            }, opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release]))
