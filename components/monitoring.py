"""Monitoring: alerts to people, from the one thresholds table (config/thresholds.py).

- An SNS topic for alerts, encrypted with a customer-managed KMS key, and its email / HTTPS
  subscribers.
- CloudWatch alarms on the AWS-managed parts the stack has (ALB, Auto Scaling group, RDS
  primary and replicas, ElastiCache Redis nodes); each resource identifier is optional, so
  the component attaches to whatever the stack holds in its phase and role.
- A CloudWatch dashboard per stack, with the table's levels drawn on the graphs.
- On Kubernetes stacks (a kubernetes provider in `args` or `opts`), a PrometheusRule for the
  Prometheus Operator rendered from the same table by `render_prometheus_rules()`.

Why a customer-managed key and not alias/aws/sns: CloudWatch must be allowed to use the key
to publish to an encrypted topic, and the key policy of an AWS-managed key cannot be changed,
so alarms would fail to notify in silence. A customer-managed key costs $1 a month.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.kms import key_policy
from config import seed
from config.thresholds import (
    METRICS,
    AlertRule,
    AlertsConfig,
    alert_rules,
    duration,
    number,
    target_rules,
)

GIB = 2**30
MS_PER_S = 1000
# CloudWatch evaluates these alarms on one-minute datapoints: ALB, RDS and ElastiCache publish
# every minute; EC2 does with detailed monitoring (basic monitoring: five minutes).
PERIOD_S = 60
BASIC_EC2_PERIOD_S = 300
OPERATORS = {">": "GreaterThanThreshold", ">=": "GreaterThanOrEqualToThreshold",
             "<": "LessThanThreshold", "<=": "LessThanOrEqualToThreshold"}
INVERTED = {">": "<", ">=": "<=", "<": ">", "<=": ">="}


def render_prometheus_rules(rules: Sequence[AlertRule] | None = None, *,
                            pool_budget: int = seed.PGBOUNCER_MAX_SERVER_CONNECTIONS
                            ) -> dict[str, Any]:
    """The Prometheus rule file as a dict: `{"groups": [...]}`.

    It is also the `spec` of a PrometheusRule, so `yaml.safe_dump()` of it is what promtool
    checks. `rules` defaults to the table's rules at `pool_budget`.
    """
    rules = alert_rules(pool_budget) if rules is None else list(rules)
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rules:
        if r.signal is None:
            continue  # CloudWatch-only
        entry: dict[str, Any] = {"alert": r.name, "expr": r.expr}
        if r.for_seconds:
            entry["for"] = r.for_
        entry["labels"] = {"severity": r.severity, "category": r.group}
        entry["annotations"] = {"summary": r.summary, "description": r.description}
        groups.setdefault(f"sofacover-{r.group}", []).append(entry)
    return {"groups": [{"name": name, "rules": entries} for name, entries in groups.items()]}


@dataclass(frozen=True)
class MonitoringArgs:
    """Inputs of `Monitoring`. Every resource identifier is optional: alarms are created for
    what is given, so one component serves dev, the primary and the secondaries."""

    emails: Sequence[str] = ()
    """Email subscribers of the alert topic."""
    https_endpoints: Sequence[str] = ()
    """HTTPS webhook subscribers of the alert topic."""
    alb_arn_suffix: pulumi.Input[str] | None = None
    """`arn_suffix` of the ALB (the CloudWatch `LoadBalancer` dimension)."""
    target_group_arn_suffixes: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Route name -> `arn_suffix` of its target group (host-count alarms per target group);
    needs `alb_arn_suffix`."""
    asg_name: pulumi.Input[str] | None = None
    """Name of the app's Auto Scaling group."""
    ec2_detailed_monitoring: bool = True
    """Whether the instances publish one-minute metrics (the ASG CPU alarm's period)."""
    db_instance_id: pulumi.Input[str] | None = None
    """Identifier of the RDS primary."""
    db_replica_ids: Sequence[pulumi.Input[str]] = ()
    """Identifiers of RDS read replicas in this stack's region."""
    db_allocated_storage_gb: int = seed.DB_STORAGE_GB
    """Allocated storage of the database, GB (FreeStorageSpace levels are shares of it)."""
    db_memory_gb: int = seed.DB_MEMORY_GB
    """Memory of the database instance class, GiB (FreeableMemory levels are shares of it)."""
    pool_budget: int = seed.PGBOUNCER_MAX_SERVER_CONNECTIONS
    """PgBouncer's max server connections: the database connection alarms' budget."""
    redis_replication_group_id: pulumi.Input[str] | None = None
    """ID of the Redis replication group (cluster mode off); from an ARN:
    `cache.arn.apply(arn_resource_id)`."""
    redis_node_count: int = seed.REDIS_NODES
    """Nodes of the replication group; ElastiCache names them `<group id>-001`, `-002`..."""
    kubernetes_provider: k8s.Provider | None = None
    """The cluster's provider; with it (or one in `opts`) the PrometheusRule is created."""
    kubernetes_cluster_name: pulumi.Input[str] | None = None
    """The EKS cluster; required with a kubernetes provider (Alertmanager's Pod Identity)."""
    kubernetes_version: str = "1.33"
    """Pins the Pod Security Standard version of the Prometheus namespace."""
    pod_monitors: Sequence[Any] = ()
    """components.prometheus.PodMonitorArgs: pods Prometheus scrapes (PgBouncer's exporter)."""
    prometheus_namespace: str = "monitoring"
    prometheus_rule_labels: Mapping[str, str] = field(
        default_factory=lambda: dict(AlertsConfig().prometheus_rule_labels))
    """Labels the Prometheus ruleSelector matches (the Prometheus stack is set to them)."""
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, alerts: AlertsConfig, **resources: Any) -> MonitoringArgs:
        """Subscribers and Prometheus settings from `sofacover:alerts`; the resource
        identifiers and sizes (`alb_arn_suffix=...`, `pool_budget=...`) as keywords."""
        return cls(emails=tuple(alerts.emails), https_endpoints=tuple(alerts.https_endpoints),
                   prometheus_namespace=alerts.prometheus_namespace,
                   prometheus_rule_labels=dict(alerts.prometheus_rule_labels), **resources)


def _check(args: MonitoringArgs) -> None:
    if args.target_group_arn_suffixes and args.alb_arn_suffix is None:
        raise ValueError("target_group_arn_suffixes is set but alb_arn_suffix is not; the "
                         "host-count alarms need both (CloudWatch dimensions TargetGroup and "
                         "LoadBalancer)")
    if args.redis_replication_group_id is not None and args.redis_node_count < 1:
        raise ValueError(f"redis_node_count is {args.redis_node_count}; it must be >= 1")
    for attr in ("db_allocated_storage_gb", "db_memory_gb", "pool_budget"):
        if getattr(args, attr) < 1:
            raise ValueError(f"{attr} is {getattr(args, attr)}; it must be >= 1")
    for url in args.https_endpoints:
        if not url.startswith("https://"):
            raise ValueError(f"https_endpoints: {url!r} must be an https:// URL")


def _kubernetes_provider(args: MonitoringArgs,
                         opts: pulumi.ResourceOptions | None) -> pulumi.ProviderResource | None:
    if args.kubernetes_provider is not None:
        return args.kubernetes_provider
    if opts is None:
        return None
    candidates: list[Any] = [opts.provider]
    if isinstance(opts.providers, Mapping):
        candidates.append(opts.providers.get("kubernetes"))
    elif opts.providers:
        candidates.extend(opts.providers)
    return next((p for p in candidates if isinstance(p, pulumi.ProviderResource)
                 and p.package == "kubernetes"), None)


def arn_resource_id(arn: str) -> str:
    """The last part of an ARN: `...:replicationgroup:sofacover-prod` -> `sofacover-prod`."""
    return arn.rsplit(":", 1)[-1].rsplit("/", 1)[-1]


def _short(value: str) -> str:
    """A stable, PII-free name part for a subscriber (reordering the list replaces nothing)."""
    return hashlib.sha256(value.encode()).hexdigest()[:8]


def _annotations(r: AlertRule, scale: float = 1.0) -> list[dict[str, Any]]:
    """Dashboard lines at the warning and critical levels of the rule's METRICS row."""
    return [{"label": f"{r.name} {r.severity}", "value": r.threshold * scale}] \
        if r.threshold is not None else []


class Monitoring(pulumi.ComponentResource):
    """Encrypted alert topic, CloudWatch alarms and dashboard, and the PrometheusRule."""

    topic_arn: pulumi.Output[str]
    """ARN of the SNS topic every alarm notifies (subscribe more endpoints to it)."""
    kms_key_arn: pulumi.Output[str]
    """ARN of the KMS key encrypting the topic."""
    alarm_arns: pulumi.Output[list[str]]
    """ARNs of every CloudWatch alarm created."""
    dashboard_name: pulumi.Output[str]
    """Name of the stack's CloudWatch dashboard."""
    prometheus_rule_name: pulumi.Output[str | None]
    """Name of the PrometheusRule, or None on a stack without Kubernetes."""

    def __init__(self, name: str, args: MonitoringArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sofacover:monitoring:Monitoring", name, None, opts)
        _check(args)
        rules = {r.name: r for r in alert_rules(args.pool_budget)}
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        tags = {**args.tags}

        region = aws.get_region_output(opts=invoke).region

        key = aws.kms.Key(
            f"{name}-alerts-key", description=f"{name}: encrypts the alert topic",
            enable_key_rotation=True, deletion_window_in_days=30,
            policy=key_policy(self, cloudwatch_alarms=True),
            tags={**tags, "Name": f"{name}-alerts-key"}, opts=child)
        aws.kms.Alias(f"{name}-alerts-key-alias", name=f"alias/{name}-alerts",
                      target_key_id=key.key_id, opts=child)
        # The default topic policy lets same-account services publish, CloudWatch included;
        # a custom policy would only restate it.
        topic = aws.sns.Topic(f"{name}-alerts", kms_master_key_id=key.arn,
                              tags={**tags, "Name": f"{name}-alerts"}, opts=child)
        for protocol, endpoints in (("email", args.emails), ("https", args.https_endpoints)):
            for endpoint in endpoints:
                aws.sns.TopicSubscription(f"{name}-{protocol}-{_short(endpoint)}",
                                          topic=topic.arn, protocol=protocol,
                                          endpoint=endpoint, opts=child)
        if not args.emails and not args.https_endpoints:
            pulumi.log.warn(f"{name}: the alert topic has no subscribers; set "
                            "sofacover:alerts.emails or httpsEndpoints", resource=self)

        alarms: list[aws.cloudwatch.MetricAlarm] = []
        widgets: list[dict[str, Any]] = []

        def alarm(key_: str, r: AlertRule, *, missing: str, description: str,
                  threshold: float | None = None, operator: str | None = None,
                  period: int = PERIOD_S, **metric: Any) -> None:
            """One alarm from rule `r`: its level (or `threshold`, the level converted to
            the CloudWatch metric's unit), its duration and its severity."""
            level = r.threshold if threshold is None else threshold
            periods = max(1, r.for_seconds // period)
            alarms.append(aws.cloudwatch.MetricAlarm(
                f"{name}-{key_}-{r.severity}",
                comparison_operator=OPERATORS[operator or r.operator], threshold=level,
                evaluation_periods=periods, datapoints_to_alarm=periods,
                treat_missing_data=missing, alarm_actions=[topic.arn], ok_actions=[topic.arn],
                alarm_description=f"{r.name} ({r.severity}): {description} for "
                                  f"{duration(periods * period)}. {r.action} "
                                  "Levels: config/thresholds.py.",
                tags={**tags, "Severity": r.severity, "Rule": r.name},
                **({"period": period} if "metric_queries" not in metric else {}), **metric,
                opts=child))

        def pair(key_: str, names: tuple[str, str], **kw: Any) -> None:
            for n in names:
                alarm(key_, rules[n], **kw)

        def graph(title: str, metrics: list[Any], lines: list[dict[str, Any]],
                  stat: str = "Average") -> None:
            widgets.append({"type": "metric", "width": 12, "height": 6, "properties": {
                "title": title, "region": region, "view": "timeSeries", "stat": stat,
                "period": PERIOD_S, "metrics": metrics, "annotations": {"horizontal": lines}}})

        cpu = ("HighCPUUsage", "CriticalCPUUsage")
        ec2_period = PERIOD_S if args.ec2_detailed_monitoring else BASIC_EC2_PERIOD_S

        if args.alb_arn_suffix is not None:
            lb = {"LoadBalancer": args.alb_arn_suffix}
            requests = aws.cloudwatch.MetricAlarmMetricQueryArgs(
                id="requests", return_data=False,
                metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                    namespace="AWS/ApplicationELB", metric_name="RequestCount",
                    dimensions=lb, period=PERIOD_S, stat="Sum"))
            errors = [aws.cloudwatch.MetricAlarmMetricQueryArgs(
                id=qid, return_data=False,
                metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                    namespace="AWS/ApplicationELB", metric_name=metric_name,
                    dimensions=lb, period=PERIOD_S, stat="Sum"))
                for qid, metric_name in (("target5xx", "HTTPCode_Target_5XX_Count"),
                                         ("elb5xx", "HTTPCode_ELB_5XX_Count"))]
            # Users see the ALB's own 502/503/504 (no healthy target) too. The 5xx counts are
            # not published while zero, hence FILL. No traffic gives no datapoint at all:
            # notBreaching, an idle site has no error rate.
            rate = aws.cloudwatch.MetricAlarmMetricQueryArgs(
                id="rate", label="5xx % of requests", return_data=True,
                expression="100 * (FILL(target5xx, 0) + FILL(elb5xx, 0)) / requests")
            pair("alb-5xx-rate", ("HighErrorRate", "CriticalErrorRate"),
                 missing="notBreaching", description="ALB 5xx share of requests",
                 metric_queries=[requests, *errors, rate])
            # TargetResponseTime is in seconds; the table's levels are in ms. No requests, no
            # datapoints: notBreaching. Few requests make p95 noise: ignore those periods.
            for n in ("HighResponseTimeP95", "CriticalResponseTimeP95"):
                alarm("alb-p95", rules[n], missing="notBreaching",
                      threshold=(rules[n].threshold or 0) / MS_PER_S,
                      description="ALB target p95 response time (s)",
                      namespace="AWS/ApplicationELB", metric_name="TargetResponseTime",
                      dimensions=lb, extended_statistic="p95",
                      evaluate_low_sample_count_percentiles="ignore")
            graph("ALB 5xx % of requests", [
                [{"expression": "100 * (FILL(m1, 0) + FILL(m2, 0)) / m3", "label": "5xx %",
                  "id": "e1"}],
                ["AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "LoadBalancer",
                 args.alb_arn_suffix, {"id": "m1", "stat": "Sum", "visible": False}],
                ["AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", "LoadBalancer",
                 args.alb_arn_suffix, {"id": "m2", "stat": "Sum", "visible": False}],
                ["AWS/ApplicationELB", "RequestCount", "LoadBalancer", args.alb_arn_suffix,
                 {"id": "m3", "stat": "Sum", "visible": False}],
            ], [*_annotations(rules["HighErrorRate"]), *_annotations(rules["CriticalErrorRate"])])
            graph("ALB target p95 response time (s)", [
                ["AWS/ApplicationELB", "TargetResponseTime", "LoadBalancer", args.alb_arn_suffix,
                 {"stat": "p95"}]],
                [*_annotations(rules["HighResponseTimeP95"], 1 / MS_PER_S),
                 *_annotations(rules["CriticalResponseTimeP95"], 1 / MS_PER_S)])
            graph("ALB requests per minute", [
                ["AWS/ApplicationELB", "RequestCount", "LoadBalancer", args.alb_arn_suffix]],
                [{"label": f"throughput {severity}",
                  "value": METRICS["throughput_rpm"].level(severity)}
                 for severity in ("warning", "critical")], stat="Sum")

        for route, target_group in args.target_group_arn_suffixes.items():
            hosts = {"TargetGroup": target_group, "LoadBalancer": args.alb_arn_suffix}
            unhealthy, no_healthy = target_rules()
            # ELB publishes host counts only while requests flow: silence is no evidence of
            # an unhealthy host (notBreaching) ...
            alarm(f"alb-{route}-unhealthy-hosts", unhealthy, missing="notBreaching",
                  description=f"unhealthy targets of route {route}",
                  namespace="AWS/ApplicationELB", metric_name="UnHealthyHostCount",
                  dimensions=hosts, statistic="Maximum")
            # ... but no healthy host at all is an outage, and a target group that stops
            # reporting healthy hosts is treated as one (breaching).
            alarm(f"alb-{route}-healthy-hosts", no_healthy, missing="breaching",
                  description=f"healthy targets of route {route}",
                  namespace="AWS/ApplicationELB", metric_name="HealthyHostCount",
                  dimensions=hosts, statistic="Minimum")
            graph(f"ALB targets of route {route}", [
                ["AWS/ApplicationELB", "HealthyHostCount", "TargetGroup", target_group,
                 "LoadBalancer", args.alb_arn_suffix],
                ["AWS/ApplicationELB", "UnHealthyHostCount", "TargetGroup", target_group,
                 "LoadBalancer", args.alb_arn_suffix]], [], stat="Maximum")

        if args.asg_name is not None:
            # No datapoints means no instance reports, which is the host alarms' business,
            # not high CPU: notBreaching.
            pair("asg-cpu", cpu, missing="notBreaching", period=ec2_period,
                 description="average CPU of the Auto Scaling group (%)",
                 namespace="AWS/EC2", metric_name="CPUUtilization",
                 dimensions={"AutoScalingGroupName": args.asg_name}, statistic="Average")
            graph("Auto Scaling group CPU (%)", [
                ["AWS/EC2", "CPUUtilization", "AutoScalingGroupName", args.asg_name]],
                [{"label": f"CPU {s}", "value": METRICS["cpu_percent"].level(s)}
                 for s in ("warning", "critical")])

        databases = ([("db", args.db_instance_id)] if args.db_instance_id is not None else []) \
            + [(f"db-replica-{i}", rid) for i, rid in enumerate(args.db_replica_ids)]
        storage_bytes = args.db_allocated_storage_gb * GIB
        memory_bytes = args.db_memory_gb * GIB
        for key_, db_id in databases:
            db = {"DBInstanceIdentifier": db_id}
            rds = {"namespace": "AWS/RDS", "dimensions": db}
            # RDS publishes every minute while the instance runs. A gap is a monitoring or
            # instance outage that the ALB alarms see; "missing" keeps these alarms from
            # guessing (INSUFFICIENT_DATA shows on the dashboard).
            pair(f"{key_}-cpu", cpu, missing="missing", description="database CPU (%)",
                 metric_name="CPUUtilization", statistic="Average", **rds)
            for n in ("DiskSpaceLow", "DiskSpaceCritical"):
                r = rules[n]
                alarm(f"{key_}-free-storage", r, missing="missing",
                      threshold=(100 - (r.threshold or 0)) / 100 * storage_bytes,
                      operator=INVERTED[r.operator],
                      description=f"database storage used over {number(r.threshold or 0)}% "
                                  f"of {args.db_allocated_storage_gb} GB",
                      metric_name="FreeStorageSpace", statistic="Minimum", **rds)
            for n in ("HighMemoryUsage", "CriticalMemoryUsage"):
                r = rules[n]
                alarm(f"{key_}-freeable-memory", r, missing="missing",
                      threshold=(100 - (r.threshold or 0)) / 100 * memory_bytes,
                      operator=INVERTED[r.operator],
                      description=f"database memory used over {number(r.threshold or 0)}% "
                                  f"of {args.db_memory_gb} GiB",
                      metric_name="FreeableMemory", statistic="Minimum", **rds)
            pair(f"{key_}-connections",
                 ("DatabaseConnectionsHigh", "DatabaseConnectionsNearPoolBudget"),
                 missing="missing",
                 description=f"database connections (pool budget {args.pool_budget})",
                 metric_name="DatabaseConnections", statistic="Maximum", **rds)
            if key_ != "db":
                # A replica that stops reporting lag has usually stopped replicating (or is
                # being rebuilt): breaching.
                pair(f"{key_}-lag", ("DatabaseReplicaLagHigh", "DatabaseReplicaLagCritical"),
                     missing="breaching", description="replica lag (s)",
                     metric_name="ReplicaLag", statistic="Maximum", **rds)
            graph(f"RDS {key_}: CPU (%) and connections", [
                ["AWS/RDS", "CPUUtilization", "DBInstanceIdentifier", db_id],
                ["AWS/RDS", "DatabaseConnections", "DBInstanceIdentifier", db_id,
                 {"yAxis": "right", "stat": "Maximum"}]],
                [*_annotations(rules["HighCPUUsage"]), *_annotations(rules["CriticalCPUUsage"])])
            graph(f"RDS {key_}: free storage and memory (bytes)", [
                ["AWS/RDS", "FreeStorageSpace", "DBInstanceIdentifier", db_id],
                ["AWS/RDS", "FreeableMemory", "DBInstanceIdentifier", db_id]], [],
                stat="Minimum")
            if key_ != "db":
                graph(f"RDS {key_}: replica lag (s)", [
                    ["AWS/RDS", "ReplicaLag", "DBInstanceIdentifier", db_id]],
                    [*_annotations(rules["DatabaseReplicaLagHigh"]),
                     *_annotations(rules["DatabaseReplicaLagCritical"])], stat="Maximum")

        if args.redis_replication_group_id is not None:
            for i in range(1, args.redis_node_count + 1):
                node = pulumi.Output.concat(args.redis_replication_group_id, f"-{i:03d}")
                cache = {"namespace": "AWS/ElastiCache",
                         "dimensions": {"CacheClusterId": node}}
                # Redis is single-threaded: EngineCPUUtilization is the thread that matters.
                pair(f"redis-{i}-engine-cpu", cpu, missing="missing",
                     description="Redis engine CPU (%)", metric_name="EngineCPUUtilization",
                     statistic="Average", **cache)
                pair(f"redis-{i}-memory", ("RedisMemoryHigh", "RedisMemoryCritical"),
                     missing="missing", description="Redis memory used (%)",
                     metric_name="DatabaseMemoryUsagePercentage", statistic="Maximum",
                     **cache)
                # Evictions per one-minute period; a node with nothing to evict may publish
                # nothing: notBreaching.
                pair(f"redis-{i}-evictions", ("RedisEvictionsHigh", "RedisEvictionsCritical"),
                     missing="notBreaching", description="Redis evictions per minute",
                     metric_name="Evictions", statistic="Sum", **cache)
                # Only replicas publish ReplicationLag, and which node is the primary changes
                # with every failover: the primary's silence must not alarm (notBreaching).
                pair(f"redis-{i}-replication-lag",
                     ("RedisReplicationLagHigh", "RedisReplicationLagCritical"),
                     missing="notBreaching", description="Redis replication lag (s)",
                     metric_name="ReplicationLag", statistic="Maximum", **cache)
            nodes = [pulumi.Output.concat(args.redis_replication_group_id, f"-{i:03d}")
                     for i in range(1, args.redis_node_count + 1)]
            graph("Redis memory used (%)", [
                ["AWS/ElastiCache", "DatabaseMemoryUsagePercentage", "CacheClusterId", n]
                for n in nodes],
                [*_annotations(rules["RedisMemoryHigh"]),
                 *_annotations(rules["RedisMemoryCritical"])], stat="Maximum")
            graph("Redis engine CPU (%) and evictions", [
                *[["AWS/ElastiCache", "EngineCPUUtilization", "CacheClusterId", n]
                  for n in nodes],
                *[["AWS/ElastiCache", "Evictions", "CacheClusterId", n,
                   {"yAxis": "right", "stat": "Sum"}] for n in nodes]],
                [*_annotations(rules["HighCPUUsage"]), *_annotations(rules["CriticalCPUUsage"])])

        alarm_arns = [a.arn for a in alarms]
        if alarm_arns:
            widgets.insert(0, {"type": "alarm", "width": 24, "height": 4, "properties": {
                "title": "Alarms", "alarms": alarm_arns, "sortBy": "stateUpdatedTimestamp"}})
        else:
            widgets.insert(0, {"type": "text", "width": 24, "height": 2, "properties": {
                "markdown": f"{name}: no AWS-managed resources to alarm on in this stack."}})
        dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard", dashboard_name=f"{name}",
            dashboard_body=pulumi.Output.json_dumps({"widgets": widgets}), opts=child)

        k8s_provider = _kubernetes_provider(args, opts)
        rule_name: pulumi.Output[str | None] = pulumi.Output.from_input(None)
        if k8s_provider is not None:
            # The operator (and its CRDs) that evaluates the rule, Alertmanager sending what
            # fires to this topic: without them the PrometheusRule is never read.
            from components.prometheus import PrometheusStack, PrometheusStackArgs

            if args.kubernetes_cluster_name is None:
                raise ValueError("a kubernetes provider is given but kubernetes_cluster_name "
                                 "is not; Alertmanager's Pod Identity association names the "
                                 "cluster")
            prometheus = PrometheusStack(f"{name}-prometheus", PrometheusStackArgs(
                cluster_name=args.kubernetes_cluster_name, topic_arn=topic.arn,
                topic_key_arn=key.arn, region=region,
                rule_labels=dict(args.prometheus_rule_labels),
                namespace=args.prometheus_namespace, pod_monitors=tuple(args.pod_monitors),
                kubernetes_version=args.kubernetes_version, tags=tags),
                pulumi.ResourceOptions(parent=self, providers={"kubernetes": k8s_provider}))
            prometheus_rule = k8s.apiextensions.CustomResource(
                f"{name}-prometheus-rules", api_version="monitoring.coreos.com/v1",
                kind="PrometheusRule",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=f"{name}-alerts", namespace=prometheus.namespace,
                    labels={"app.kubernetes.io/part-of": "sofacover",
                            **args.prometheus_rule_labels}),
                spec=render_prometheus_rules(list(rules.values())),
                opts=pulumi.ResourceOptions(parent=self, provider=k8s_provider,
                                            depends_on=[prometheus.release]))
            rule_name = prometheus_rule.metadata.apply(_metadata_name)

        self.topic_arn = topic.arn
        self.kms_key_arn = key.arn
        self.alarm_arns = pulumi.Output.all(*alarm_arns)
        self.dashboard_name = dashboard.dashboard_name
        self.prometheus_rule_name = rule_name
        self.register_outputs({
            "topic_arn": self.topic_arn,
            "kms_key_arn": self.kms_key_arn,
            "alarm_arns": self.alarm_arns,
            "dashboard_name": self.dashboard_name,
            "prometheus_rule_name": self.prometheus_rule_name,
        })


def _metadata_name(metadata: Any) -> str | None:
    if metadata is None:
        return None
    return metadata.get("name") if isinstance(metadata, dict) else metadata.name
