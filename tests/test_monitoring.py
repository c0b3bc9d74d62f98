"""The Monitoring component, built inside each test under the recording mocks.

Every level asserted here is read from config/thresholds.py (through `thresholds.rule`), so
these tests follow the table when it changes.
"""

from __future__ import annotations

import dataclasses
import json

import pulumi
import pulumi_kubernetes as k8s
import pytest
from pydantic import ValidationError

from components.monitoring import (
    GIB,
    MS_PER_S,
    Monitoring,
    MonitoringArgs,
    arn_resource_id,
    render_prometheus_rules,
)
from config import seed, thresholds
from config.thresholds import METRICS, AlertsConfig, target_rules
from planner.engine import execute
from planner.mocks import ACCOUNT_ID
from tests.conftest import of_type

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC = "aws:sns/topic:Topic"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
KEY = "aws:kms/key:Key"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"

EVERYTHING = dict(
    emails=("oncall@example.com",), https_endpoints=("https://events.example.com/sns",),
    alb_arn_suffix="app/sofacover-prod/50dc6c495c0c9188",
    target_group_arn_suffixes={"app": "targetgroup/sofacover-app/73e2d6bc24d8a067"},
    asg_name="sofacover-prod-asg", db_instance_id="sofacover-prod-db",
    db_replica_ids=("sofacover-prod-db-replica",), redis_replication_group_id="sofacover-prod",
)


def monitoring(k8s_in: str | None = None, **kw):
    """A builder: `k8s_in` is None, "args" or "opts" (where the kubernetes provider goes)."""
    def fn() -> None:
        opts = None
        extra = {}
        if k8s_in is not None:
            provider = k8s.Provider("k8s", kubeconfig="{}")
            extra["kubernetes_cluster_name"] = "sofacover-test"
            if k8s_in == "args":
                extra["kubernetes_provider"] = provider
            else:
                opts = pulumi.ResourceOptions(providers={"kubernetes": provider})
        m = Monitoring("mon", MonitoringArgs(**{**kw, **extra}), opts)
        pulumi.export("topicArn", m.topic_arn)
        pulumi.export("kmsKeyArn", m.kms_key_arn)
        pulumi.export("alarmArns", m.alarm_arns)
        pulumi.export("dashboardName", m.dashboard_name)
        pulumi.export("prometheusRuleName", m.prometheus_rule_name)
    return fn


@pytest.fixture(scope="module")
def full():
    """Everything a primary has, built once for the tests that only read it."""
    return execute(monitoring(**EVERYTHING), project="sofacover", stack="test",
                   values={"aws:region": seed.PRIMARY_REGION})


def alarms(run) -> dict[str, dict]:
    return {r.name: r.inputs for r in of_type(run.resources, ALARM)}


def by_rule(run, key: str, severity: str) -> dict:
    return alarms(run)[f"mon-{key}-{severity}"]


# --- the alert topic -------------------------------------------------------------------------

def test_alert_topic_is_encrypted_with_its_own_key(full):
    (topic,) = of_type(full.resources, TOPIC)
    (key,) = of_type(full.resources, KEY)
    assert topic.inputs["kmsMasterKeyId"] == full.outputs["kmsKeyArn"]
    assert key.inputs["enableKeyRotation"] is True


def test_the_key_lets_cloudwatch_publish_and_the_account_administer(full):
    (key,) = of_type(full.resources, KEY)
    statements = {s["Sid"]: s for s in json.loads(key.inputs["policy"])["Statement"]}
    cloudwatch = statements["CloudWatchAlarmsPublish"]
    assert cloudwatch["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    admin = statements["AccountAdministers"]
    assert admin["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}


def test_subscriptions_come_from_the_args(full):
    subs = {(s.inputs["protocol"], s.inputs["endpoint"]) for s in
            of_type(full.resources, SUBSCRIPTION)}
    assert subs == {("email", e) for e in EVERYTHING["emails"]} | \
        {("https", u) for u in EVERYTHING["https_endpoints"]}
    topic_arn = full.outputs["topicArn"]
    assert all(s.inputs["topic"] == topic_arn for s in of_type(full.resources, SUBSCRIPTION))


def test_subscriber_names_do_not_depend_on_list_order(build):
    emails = ("a@example.com", "b@example.com")
    one = {r.name for r in of_type(build(monitoring(emails=emails)).resources, SUBSCRIPTION)}
    two = {r.name for r in of_type(build(monitoring(emails=emails[::-1])).resources,
                                   SUBSCRIPTION)}
    assert one == two and len(one) == 2


def test_a_topic_without_subscribers_is_reported(build):
    run = build(monitoring())
    assert not of_type(run.resources, SUBSCRIPTION)
    assert any("no subscribers" in m for m in run.messages)


def test_http_endpoints_are_refused(build):
    with pytest.raises(Exception, match="https://"):
        build(monitoring(https_endpoints=("http://events.example.com/sns",)))


# --- alarms: levels from the table ----------------------------------------------------------

def test_every_alarm_notifies_the_topic_on_alarm_and_on_recovery(full):
    topic_arn = full.outputs["topicArn"]
    for name, a in alarms(full).items():
        assert a["alarmActions"] == [topic_arn], name
        assert a["okActions"] == [topic_arn], name


def test_every_alarm_carries_the_level_and_duration_of_its_rule(full):
    rules = {r.name: r for r in [*thresholds.alert_rules(), *target_rules()]}
    converted = ("-p95-", "-free-storage-", "-freeable-memory-")
    for name, a in alarms(full).items():
        r = rules[a["tags"]["Rule"]]
        assert a["tags"]["Severity"] == r.severity
        period = a.get("period") or 60
        assert a["evaluationPeriods"] * period >= r.for_seconds, name
        if not any(c in name for c in converted):
            assert a["threshold"] == r.threshold, name


def test_seed_cpu_rules_drive_the_auto_scaling_group_alarms(full):
    for severity, rule in (("warning", "HighCPUUsage"), ("critical", "CriticalCPUUsage")):
        a = by_rule(full, "asg-cpu", severity)
        r = thresholds.rule(rule)
        assert a["threshold"] == r.threshold
        assert a["evaluationPeriods"] * a["period"] == r.for_seconds
        assert a["comparisonOperator"] == "GreaterThanThreshold"
        assert a["dimensions"] == {"AutoScalingGroupName": EVERYTHING["asg_name"]}


def test_basic_ec2_monitoring_lengthens_the_cpu_period(build):
    run = build(monitoring(asg_name="asg", ec2_detailed_monitoring=False))
    assert by_rule(run, "asg-cpu", "warning")["period"] == 300


def test_alb_5xx_rate_is_metric_math_over_requests(full):
    a = by_rule(full, "alb-5xx-rate", "critical")
    queries = {q["id"]: q for q in a["metricQueries"]}
    assert queries["target5xx"]["metric"]["metricName"] == "HTTPCode_Target_5XX_Count"
    assert queries["requests"]["metric"]["metricName"] == "RequestCount"
    (result,) = [q for q in a["metricQueries"] if q["returnData"]]
    assert "target5xx" in result["expression"] and result["expression"].endswith("/ requests")
    assert a["threshold"] == thresholds.rule("CriticalErrorRate").threshold
    assert "period" not in a and "metricName" not in a  # not allowed beside metric_queries


def test_p95_alarm_uses_the_response_time_levels_in_seconds(full):
    for severity in ("warning", "critical"):
        a = by_rule(full, "alb-p95", severity)
        assert a["extendedStatistic"] == "p95"
        assert a["threshold"] == METRICS["response_time_ms"].level(severity) / MS_PER_S
        assert a["evaluateLowSampleCountPercentiles"] == "ignore"


def test_rds_storage_and_memory_alarm_on_the_free_share_the_table_allows(full):
    for severity in ("warning", "critical"):
        storage = by_rule(full, "db-free-storage", severity)
        used = METRICS["disk_percent"].level(severity)
        assert storage["threshold"] == pytest.approx(
            (100 - used) / 100 * seed.DB_STORAGE_GB * GIB)
        assert storage["comparisonOperator"] == "LessThanThreshold"
        memory = by_rule(full, "db-freeable-memory", severity)
        used = METRICS["memory_percent"].level(severity)
        assert memory["threshold"] == pytest.approx((100 - used) / 100 * seed.DB_MEMORY_GB * GIB)


def test_database_connections_alarm_on_the_seed_rule_and_the_pool_budget(build):
    budget = seed.PGBOUNCER_MAX_SERVER_CONNECTIONS // 2
    run = build(monitoring(db_instance_id="db", pool_budget=budget))
    assert by_rule(run, "db-connections", "warning")["threshold"] == \
        thresholds.seed_alert("DatabaseConnectionsHigh").threshold
    assert by_rule(run, "db-connections", "critical")["threshold"] == \
        budget * METRICS["pool_budget_percent"].critical / 100


def test_only_replicas_get_replica_lag_alarms(full):
    names = set(alarms(full))
    assert {"mon-db-replica-0-lag-warning", "mon-db-replica-0-lag-critical"} <= names
    assert not any(n.startswith("mon-db-lag") for n in names)
    lag = by_rule(full, "db-replica-0-lag", "critical")
    assert lag["threshold"] == METRICS["replica_lag_seconds"].critical
    assert lag["dimensions"] == {"DBInstanceIdentifier": EVERYTHING["db_replica_ids"][0]}


def test_redis_alarms_cover_every_node(full):
    names = set(alarms(full))
    for i in range(1, seed.REDIS_NODES + 1):
        for metric in ("engine-cpu", "memory", "evictions", "replication-lag"):
            assert f"mon-redis-{i}-{metric}-critical" in names
    node = by_rule(full, "redis-2-memory", "warning")
    group = EVERYTHING["redis_replication_group_id"]
    assert node["dimensions"] == {"CacheClusterId": f"{group}-002"}
    assert node["metricName"] == "DatabaseMemoryUsagePercentage"
    assert node["threshold"] == METRICS["memory_percent"].warning
    evictions = by_rule(full, "redis-1-evictions", "critical")
    assert evictions["threshold"] == METRICS["redis_evictions_per_minute"].critical


@pytest.mark.parametrize(("alarm", "missing"), [
    ("alb-5xx-rate-critical", "notBreaching"),  # no traffic is no error rate
    ("alb-p95-warning", "notBreaching"),  # no requests, nothing slow
    ("alb-app-unhealthy-hosts-warning", "notBreaching"),  # ELB reports only under traffic
    ("alb-app-healthy-hosts-critical", "breaching"),  # no healthy host reported: outage
    ("asg-cpu-critical", "notBreaching"),
    ("db-cpu-critical", "missing"),
    ("db-replica-0-lag-critical", "breaching"),  # a silent replica has stopped replicating
    ("redis-1-evictions-warning", "notBreaching"),
    ("redis-1-replication-lag-critical", "notBreaching"),  # the primary publishes no lag
])
def test_missing_data_is_chosen_per_alarm(full, alarm, missing):
    assert alarms(full)[f"mon-{alarm}"]["treatMissingData"] == missing


def test_target_alarms_use_the_table_and_both_dimensions(full):
    unhealthy, no_healthy = target_rules()
    a = by_rule(full, "alb-app-unhealthy-hosts", unhealthy.severity)
    assert a["threshold"] == unhealthy.threshold
    assert a["dimensions"] == {"TargetGroup": EVERYTHING["target_group_arn_suffixes"]["app"],
                               "LoadBalancer": EVERYTHING["alb_arn_suffix"]}
    b = by_rule(full, "alb-app-healthy-hosts", no_healthy.severity)
    assert (b["threshold"], b["comparisonOperator"]) == (no_healthy.threshold,
                                                         "LessThanThreshold")


def test_a_threshold_changed_in_the_table_changes_the_alarms(build, monkeypatch):
    row = METRICS["memory_percent"]
    monkeypatch.setitem(METRICS, "memory_percent",
                        dataclasses.replace(row, warning=row.warning - 10))
    run = build(monitoring(db_instance_id="db", redis_replication_group_id="rg"))
    assert by_rule(run, "redis-1-memory", "warning")["threshold"] == row.warning - 10
    assert by_rule(run, "db-freeable-memory", "warning")["threshold"] == pytest.approx(
        (100 - (row.warning - 10)) / 100 * seed.DB_MEMORY_GB * GIB)


def test_alarms_attach_only_to_what_the_stack_has(build):
    run = build(monitoring(db_replica_ids=("replica",)))
    names = set(alarms(run))
    assert names and all(n.startswith("mon-db-replica-0-") for n in names)
    assert not alarms(build(monitoring()))


def test_target_groups_without_a_load_balancer_are_refused(build):
    with pytest.raises(Exception, match="alb_arn_suffix"):
        build(monitoring(target_group_arn_suffixes={"app": "targetgroup/x/1"}))


# --- dashboard ---------------------------------------------------------------------------------

def test_dashboard_shows_every_alarm_and_the_stack_resources(full):
    (dash,) = of_type(full.resources, DASHBOARD)
    body = json.loads(dash.inputs["dashboardBody"])
    (alarm_widget,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    assert sorted(alarm_widget["properties"]["alarms"]) == sorted(full.outputs["alarmArns"])
    assert all(a.startswith("arn:aws:cloudwatch:us-east-1:") for a in full.outputs["alarmArns"])
    text = dash.inputs["dashboardBody"]
    for value in (EVERYTHING["alb_arn_suffix"], EVERYTHING["asg_name"],
                  EVERYTHING["db_instance_id"], f"{EVERYTHING['redis_replication_group_id']}-003"):
        assert value in text
    graphs = [w for w in body["widgets"] if w["type"] == "metric"]
    assert graphs and all(w["properties"]["region"] == "us-east-1" for w in graphs)
    assert full.outputs["dashboardName"] == dash.inputs["dashboardName"]


def test_dashboard_draws_the_table_levels(full):
    (dash,) = of_type(full.resources, DASHBOARD)
    body = json.loads(dash.inputs["dashboardBody"])
    lines = {(w["properties"]["title"], a["value"]) for w in body["widgets"]
             if w["type"] == "metric" for a in w["properties"]["annotations"]["horizontal"]}
    assert ("ALB target p95 response time (s)",
            METRICS["response_time_ms"].critical / MS_PER_S) in lines
    assert ("ALB requests per minute", METRICS["throughput_rpm"].critical) in lines


def test_a_stack_without_aws_resources_still_gets_a_dashboard(build):
    run = build(monitoring())
    (dash,) = of_type(run.resources, DASHBOARD)
    assert [w["type"] for w in json.loads(dash.inputs["dashboardBody"])["widgets"]] == ["text"]
    assert run.outputs["alarmArns"] == []


# --- PrometheusRule ------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["args", "opts"])
def test_prometheus_rule_is_created_with_a_kubernetes_provider(build, where):
    run = build(monitoring(k8s_in=where, pool_budget=seed.PGBOUNCER_MAX_SERVER_CONNECTIONS))
    (rule,) = of_type(run.resources, PROMETHEUS_RULE)
    (provider,) = of_type(run.resources, "pulumi:providers:kubernetes")
    assert rule.provider.startswith(provider.urn)
    assert rule.inputs["spec"] == render_prometheus_rules()
    assert rule.inputs["metadata"]["namespace"] == AlertsConfig().prometheus_namespace
    assert AlertsConfig().prometheus_rule_labels.items() <= \
        rule.inputs["metadata"]["labels"].items()
    assert run.outputs["prometheusRuleName"] == rule.inputs["metadata"]["name"]


def test_no_prometheus_rule_without_a_kubernetes_provider(full):
    assert not of_type(full.resources, PROMETHEUS_RULE)
    assert full.outputs["prometheusRuleName"] is None


def test_prometheus_rule_follows_the_pool_budget(build):
    budget = seed.PGBOUNCER_MAX_SERVER_CONNECTIONS * 3
    run = build(monitoring(k8s_in="args", pool_budget=budget))
    (rule,) = of_type(run.resources, PROMETHEUS_RULE)
    assert rule.inputs["spec"] == render_prometheus_rules(pool_budget=budget)


def test_rendered_rules_carry_severity_labels_and_texts():
    rendered = render_prometheus_rules()
    entries = [r for g in rendered["groups"] for r in g["rules"]]
    by_name = {r.name: r for r in thresholds.alert_rules()}
    for e in entries:
        r = by_name[e["alert"]]
        assert e["labels"]["severity"] == r.severity
        assert e["annotations"] == {"summary": r.summary, "description": r.description}
        assert e["for"] == r.for_ and e["expr"] == r.expr
    assert not {t.name for t in target_rules()} & {e["alert"] for e in entries}


# --- component hygiene ---------------------------------------------------------------------

def test_every_child_is_parented_to_the_component(build):
    run = build(monitoring(k8s_in="args", **EVERYTHING))
    (component,) = of_type(run.resources, "sofacover:monitoring:Monitoring")
    by_urn = {r.urn: r for r in run.resources}

    def under_component(r) -> bool:  # the Prometheus stack's children are grandchildren
        while r.parent in by_urn and r.parent != component.urn:
            r = by_urn[r.parent]
        return r.parent == component.urn

    children = [r for r in run.resources
                if r is not component and not r.type.startswith("pulumi:providers:")]
    assert children and all(under_component(r) for r in children)


def test_prometheus_stack_evaluates_the_rule_and_alerts_reach_the_topic(build):
    run = build(monitoring(k8s_in="args", **EVERYTHING))
    (release,) = of_type(run.resources, "kubernetes:helm.sh/v3:Release")
    (rule,) = of_type(run.resources, PROMETHEUS_RULE)
    (topic,) = of_type(run.resources, "aws:sns/topic:Topic")
    (association,) = of_type(run.resources, "aws:eks/podIdentityAssociation:PodIdentityAssociation")
    (namespace,) = of_type(run.resources, "kubernetes:core/v1:Namespace")
    assert release.inputs["chart"] == "kube-prometheus-stack" and release.inputs["version"]
    assert release.inputs["repositoryOpts"]["repo"].startswith("https://")
    assert release.urn in rule.options["depends_on"]
    assert namespace.urn in rule.options["depends_on"]
    values = release.inputs["values"]
    assert values["prometheus"]["prometheusSpec"]["ruleSelector"]["matchLabels"].items() <= \
        rule.inputs["metadata"]["labels"].items()
    (sns,) = [r for r in values["alertmanager"]["config"]["receivers"] if r.get("sns_configs")]
    assert sns["sns_configs"][0]["topic_arn"] == topic.outputs["arn"]
    assert association.inputs["serviceAccount"] == \
        values["alertmanager"]["serviceAccount"]["name"]
    assert association.inputs["clusterName"] == "sofacover-test"


def test_a_kubernetes_provider_without_the_cluster_name_is_refused(build):
    def fn() -> None:
        Monitoring("mon", MonitoringArgs(kubernetes_provider=k8s.Provider("k8s",
                                                                          kubeconfig="{}")))
    with pytest.raises(Exception, match="kubernetes_cluster_name"):
        build(fn)


def test_preview_with_unknown_outputs_builds(build):
    run = build(monitoring(k8s_in="args", **EVERYTHING), preview=True)
    assert of_type(run.resources, ALARM) and of_type(run.resources, DASHBOARD)


def test_resource_id_from_an_arn():
    arn = f"arn:aws:elasticache:us-east-1:{ACCOUNT_ID}:replicationgroup:sofacover-prod"
    assert arn_resource_id(arn) == "sofacover-prod"
    assert arn_resource_id(f"arn:aws:rds:us-east-1:{ACCOUNT_ID}:db:sofacover-prod") == \
        "sofacover-prod"


# --- config --------------------------------------------------------------------------------

def test_alerts_config_reads_camel_case_keys():
    cfg = AlertsConfig.model_validate({"emails": ["oncall@example.com"],
                                       "httpsEndpoints": ["https://events.example.com/sns"],
                                       "prometheusNamespace": "observability"})
    args = MonitoringArgs.from_config(cfg, asg_name="asg")
    assert args.emails == ("oncall@example.com",)
    assert args.https_endpoints == ("https://events.example.com/sns",)
    assert args.prometheus_namespace == "observability" and args.asg_name == "asg"


@pytest.mark.parametrize(("raw", "message"), [
    ({"emails": ["not-an-address"]}, "not an email address"),
    ({"httpsEndpoints": ["http://events.example.com"]}, "must be an https:// URL"),
    ({"emailz": []}, "Extra inputs are not permitted"),
    ({"prometheusNamespace": ""}, "should match pattern"),  # a Kubernetes name, not empty
])
def test_alerts_config_refuses_bad_values(raw, message):
    with pytest.raises(ValidationError, match=message):
        AlertsConfig.model_validate(raw)
