"""Tests added for the survivors of the hand-written mutation run (bench/mutants.yaml,
docs/benchmarks.md "Mutation run"): each pins, as a literal value, a property that no other
test checked on what the program deploys, so the surviving mutant is now killed."""

from __future__ import annotations

import configparser

import pytest

from config.thresholds import alert_rules
from planner.engine import PlannedResource
from planner.mocks import SECRET_MASK, AutonameError, autoname
from planner.preflight.aws import NAMES
from tests.conftest import of_type, preflight_of


@pytest.fixture(scope="module")
def every_phase(prod, prod_phase2, prod_phase3):
    return {1: prod, 2: prod_phase2, 3: prod_phase3}


# main-alb-deletion-protection-off, main-eks-deletion-protection-off: the components default
# to protected and their tests pass protection in, so only the program's plan shows the
# prod wiring.
def test_prod_load_balancers_and_clusters_keep_deletion_protection_at_every_phase(every_phase):
    clusters = 0
    for phase, plans in every_phase.items():
        for plan in plans.values():
            where = f"phase {phase} {plan.stack}"
            for lb in of_type(plan.resources, "aws:lb/loadBalancer:LoadBalancer"):
                assert lb.inputs["enableDeletionProtection"] is True, where
            for cluster in of_type(plan.resources, "aws:eks/cluster:Cluster"):
                assert cluster.inputs["deletionProtection"] is True, where
                clusters += 1
    assert clusters, "phases 2-3 run EKS"


# presets-prod-flow-log-retention: the network test builds the component with 365 itself.
def test_prod_flow_logs_are_kept_a_year_in_every_region(every_phase):
    for phase, plans in every_phase.items():
        for plan in plans.values():
            for log in of_type(plan.resources, "aws:ec2/flowLog:FlowLog"):
                (group,) = [g for g in of_type(plan.resources, "aws:cloudwatch/logGroup:LogGroup")
                            if g.id and g.id in str(log.inputs["logDestination"])]
                assert group.inputs["retentionInDays"] == 365, (phase, plan.stack)


# presets-client-connections: the PgBouncer tests read the component's own default, not the
# preset the program deploys. The seed's one-year peak is 2,000 users; 25% headroom.
def test_prod_pgbouncer_admits_the_one_year_peak_with_headroom(prod, prod_phase2):
    (ini,) = [r for r in of_type(prod["prod"].resources, "aws:ssm/parameter:Parameter")
              if r.inputs["name"].endswith("/pgbouncer.ini")]
    (config_map,) = [r for r in of_type(prod_phase2["prod"].resources,
                                        "kubernetes:core/v1:ConfigMap")
                     if "pgbouncer.ini" in (r.inputs.get("data") or {})]
    for text in (ini.inputs["insecureValue"], config_map.inputs["data"]["pgbouncer.ini"]):
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string(text)
        assert int(parser["pgbouncer"]["max_client_conn"]) == 2_500


# thresholds-hpa-at-max-duration: the rule tests read the duration from the table.
PLATFORM_DURATIONS = {  # name: (for seconds, severity)
    "HPAAtMaxReplicas": (15 * 60, "warning"),  # issue 5: "HPA at max replicas for 15 minutes"
    "DiskSpaceLow": (10 * 60, "warning"),
    "DiskSpaceCritical": (10 * 60, "critical"),
    "HighResponseTimeP95": (5 * 60, "warning"),
    "CriticalResponseTimeP95": (2 * 60, "critical"),
}


def test_platform_alert_durations_as_written():
    rules = {r.name: r for r in alert_rules()}
    for name, (seconds, severity) in PLATFORM_DURATIONS.items():
        assert (rules[name].for_seconds, rules[name].severity) == (seconds, severity), name


# autonaming-table-iam-role: the mocks' tests read each limit from the table they check.
# The provider's per-type overrides (planner/preflight/data/aws_autonaming.yaml's sources).
AUTONAME_LIMITS = {
    "aws:iam/role:Role": 64,
    "aws:lb/targetGroup:TargetGroup": 32,
    "aws:elasticache/replicationGroup:ReplicationGroup": 40,
    "aws:s3/bucket:Bucket": 63,
    "aws:sns/topic:Topic": 80,
}


@pytest.mark.parametrize("token, limit", AUTONAME_LIMITS.items())
def test_autoname_limits_are_the_providers(token, limit):
    fits = autoname(token, "a" * (limit - 8), {}, "0123456789abcdef")
    assert len(next(v for v in fits.values() if isinstance(v, str))) == limit
    with pytest.raises(AutonameError, match=f"maximum length {limit}$"):
        autoname(token, "a" * (limit - 7), {}, "0123456789abcdef")


def test_alb_and_target_group_names_are_at_most_32_characters():
    for token in ("aws:lb/loadBalancer:LoadBalancer", "aws:lb/targetGroup:TargetGroup"):
        _, max_len, _, _ = NAMES[(token, "name")]
        assert max_len == 32, token


# preflight-secret-ssm-unchecked: the secret-inputs test covered Redis and Kubernetes only.
def _res(token: str, logical: str, **inputs) -> PlannedResource:
    return PlannedResource(urn=f"urn:pulumi:test::sofacover::{token}::{logical}", type=token,
                           name=logical, stack="test", region="us-east-1", parent=None,
                           custom=True, provider=None, inputs=inputs, options={})


def test_a_plain_secure_string_parameter_is_a_finding_a_plain_string_is_not():
    ssm = "aws:ssm/parameter:Parameter"
    plain = _res(ssm, "plain", type="SecureString", value="hunter2hunter2")
    masked = _res(ssm, "masked", type="SecureString", value=SECRET_MASK)
    public = _res(ssm, "public", type="String", insecureValue="pool_size=50")
    found = [f for f in preflight_of([plain, masked, public], "secret-inputs")
             if f.severity == "error"]
    assert {f.resource.split()[-1] for f in found} == {"plain"}
