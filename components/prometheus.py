"""The Prometheus Operator stack on the cluster: the operator and its CRDs, Prometheus,
Alertmanager, kube-state-metrics and node-exporter, from the kube-prometheus-stack Helm chart.

Without it a PrometheusRule is an object nobody reads: this is what evaluates the alert
rules (components/monitoring.py renders them) and sends what fires to the stack's SNS
alert topic, the same topic the CloudWatch alarms use.

Alertmanager publishes to SNS with its built-in `sns_configs` receiver (SigV4), under an
IAM role it gets through an EKS Pod Identity association (the `eks-pod-identity-agent`
add-on, components/eks.py): no static keys, no OIDC provider to manage. The role may
publish to that one topic and use its KMS key, nothing else.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

CHART = "kube-prometheus-stack"
# Pinned: a chart upgrade changes CRDs and every component at once; move it deliberately.
CHART_VERSION = "67.8.0"
CHART_REPO = "https://prometheus-community.github.io/helm-charts"
RELEASE_NAME = "kube-prometheus-stack"
ALERTMANAGER_SERVICE_ACCOUNT = "alertmanager"
# Always-firing and informational alerts of the chart's default rules: no page for them.
SILENCED_ALERTS = "Watchdog|InfoInhibitor"


@dataclass(frozen=True)
class PodMonitorArgs:
    """Pods Prometheus scrapes (rendered by the chart as a PodMonitor)."""

    name: str
    namespace: str
    match_labels: Mapping[str, str]
    port: str
    """Name of the container port serving /metrics."""


@dataclass(frozen=True)
class PrometheusStackArgs:
    """Inputs of `PrometheusStack`."""

    cluster_name: pulumi.Input[str]
    """The EKS cluster, for Alertmanager's Pod Identity association."""
    topic_arn: pulumi.Input[str]
    """The SNS alert topic Alertmanager publishes to."""
    topic_key_arn: pulumi.Input[str]
    """The topic's KMS key (publishing to an encrypted topic needs it)."""
    region: pulumi.Input[str]
    """The topic's region (Alertmanager signs its SNS calls for it)."""
    rule_labels: Mapping[str, str]
    """Labels a PrometheusRule must carry to be loaded (the Prometheus ruleSelector)."""
    namespace: str = "monitoring"
    kubernetes_version: str = "1.33"
    pod_monitors: Sequence[PodMonitorArgs] = ()
    prometheus_requests: Mapping[str, str] = field(
        default_factory=lambda: {"cpu": "500m", "memory": "2Gi"})
    prometheus_retention: str = "15d"
    tags: dict[str, str] = field(default_factory=dict)


# What each part of the chart requests; the scheduler (and the capacity preflight) counts
# exactly these. Sized for this stack's few hundred series per node.
OPERATOR_REQUESTS = {"cpu": "100m", "memory": "128Mi"}
ALERTMANAGER_REQUESTS = {"cpu": "50m", "memory": "64Mi"}
KUBE_STATE_METRICS_REQUESTS = {"cpu": "50m", "memory": "128Mi"}
NODE_EXPORTER_REQUESTS = {"cpu": "50m", "memory": "32Mi"}


def _limits(requests: Mapping[str, str]) -> dict[str, str]:
    return {"memory": requests["memory"]}


def alertmanager_config(topic_arn: str, region: str) -> dict[str, Any]:
    """Every alert to the SNS topic, grouped per alert name; the chart's always-firing
    Watchdog and InfoInhibitor go nowhere."""
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": "sns",
            "group_by": ["alertname", "severity"],
            "group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h",
            "routes": [{"receiver": "null",
                        "matchers": [f'alertname=~"{SILENCED_ALERTS}"']}],
        },
        "receivers": [
            {"name": "null"},
            {"name": "sns", "sns_configs": [{
                "topic_arn": topic_arn,
                "sigv4": {"region": region},
                "send_resolved": True,
                "subject": '[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}',
            }]},
        ],
    }


def _values(parts: list[Any], *, args: PrometheusStackArgs) -> dict[str, Any]:
    topic_arn, region = parts
    selector = {"matchLabels": dict(args.rule_labels)}
    return {
        "crds": {"enabled": True},
        # CloudWatch dashboards are the stack's graphs; Grafana would be a second copy.
        "grafana": {"enabled": False},
        # EKS runs these on its managed control plane, where nothing can scrape them: their
        # targets would be down forever and their alerts fire.
        "kubeControllerManager": {"enabled": False},
        "kubeScheduler": {"enabled": False},
        "kubeEtcd": {"enabled": False},
        "kubeProxy": {"enabled": False},
        "prometheusOperator": {"resources": {"requests": OPERATOR_REQUESTS,
                                             "limits": _limits(OPERATOR_REQUESTS)}},
        "prometheus": {
            "prometheusSpec": {
                "replicas": 1,
                "retention": args.prometheus_retention,
                "resources": {"requests": dict(args.prometheus_requests),
                              "limits": _limits(args.prometheus_requests)},
                # Load exactly the rules that carry these labels, from any namespace.
                "ruleSelectorNilUsesHelmValues": False,
                "ruleSelector": selector,
                "ruleNamespaceSelector": {},
            },
            "additionalPodMonitors": [{
                "name": m.name,
                "namespaceSelector": {"matchNames": [m.namespace]},
                "selector": {"matchLabels": dict(m.match_labels)},
                "podMetricsEndpoints": [{"port": m.port}],
            } for m in args.pod_monitors],
        },
        "alertmanager": {
            "serviceAccount": {"create": True, "name": ALERTMANAGER_SERVICE_ACCOUNT},
            "alertmanagerSpec": {"replicas": 1,
                                 "resources": {"requests": ALERTMANAGER_REQUESTS,
                                               "limits": _limits(ALERTMANAGER_REQUESTS)}},
            "config": alertmanager_config(topic_arn, region),
        },
        "kube-state-metrics": {"resources": {"requests": KUBE_STATE_METRICS_REQUESTS,
                                             "limits": _limits(KUBE_STATE_METRICS_REQUESTS)}},
        "prometheus-node-exporter": {"resources": {
            "requests": NODE_EXPORTER_REQUESTS, "limits": _limits(NODE_EXPORTER_REQUESTS)}},
    }


def _trust() -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
        "Action": ["sts:AssumeRole", "sts:TagSession"]}]})


def _publish_policy(arns: list[str]) -> str:
    topic_arn, key_arn = arns
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sns:Publish", "Resource": topic_arn},
        {"Effect": "Allow", "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
         "Resource": key_arn},
    ]})


class PrometheusStack(pulumi.ComponentResource):
    """kube-prometheus-stack in its own namespace, Alertmanager publishing to SNS.

    Needs the cluster's Kubernetes provider (`providers={"kubernetes": ...}`) and the AWS
    provider of the topic's region, both through `opts`.
    """

    namespace: pulumi.Output[str]
    release: k8s.helm.v3.Release
    """Depend on it before applying any monitoring.coreos.com object: it installs the CRDs."""
    alertmanager_role_arn: pulumi.Output[str]

    def __init__(self, name: str, args: PrometheusStackArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        if not args.rule_labels:
            raise ValueError("PrometheusStackArgs.rule_labels is empty; a ruleSelector with "
                             "no labels would load every PrometheusRule in the cluster")
        super().__init__("sofacover:prometheus:PrometheusStack", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ns = k8s.core.v1.Namespace(f"{name}-namespace", metadata={
            "name": args.namespace,
            "labels": {
                "app.kubernetes.io/part-of": "sofacover",
                "app.kubernetes.io/managed-by": "pulumi",
                # node-exporter needs the host's network, PID namespace and filesystem: no
                # Pod Security level below privileged admits it. Audit and warn still
                # report anything beyond baseline.
                "pod-security.kubernetes.io/enforce": "privileged",
                "pod-security.kubernetes.io/audit": "baseline",
                "pod-security.kubernetes.io/warn": "baseline",
                **{f"pod-security.kubernetes.io/{m}-version": f"v{args.kubernetes_version}"
                   for m in ("enforce", "audit", "warn")},
            },
        }, opts=child)

        role = aws.iam.Role(f"{name}-alertmanager", assume_role_policy=_trust(),
                            description="Alertmanager: publish alerts to the SNS alert topic",
                            tags=args.tags, opts=child)
        aws.iam.RolePolicy(f"{name}-alertmanager-publish", role=role.id,
                           policy=pulumi.Output.all(args.topic_arn, args.topic_key_arn)
                           .apply(_publish_policy), opts=child)
        association = aws.eks.PodIdentityAssociation(
            f"{name}-alertmanager", cluster_name=args.cluster_name,
            namespace=args.namespace, service_account=ALERTMANAGER_SERVICE_ACCOUNT,
            role_arn=role.arn, tags=args.tags, opts=child)

        values = pulumi.Output.all(args.topic_arn, args.region).apply(
            functools.partial(_values, args=args))
        self.release = k8s.helm.v3.Release(
            f"{name}-release", name=RELEASE_NAME, chart=CHART, version=CHART_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPO),
            namespace=ns.metadata.name, values=values,
            # Alertmanager's pods must start with their role already associated: Pod
            # Identity injects credentials at pod creation only.
            atomic=True, timeout=900,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[association]))

        self.namespace = ns.metadata.name
        self.alertmanager_role_arn = role.arn
        self.register_outputs({"namespace": self.namespace,
                               "alertmanager_role_arn": self.alertmanager_role_arn})
