"""The security scan's findings (issue 12, item 4), each where it holds and where it breaks:
KMS key policies, log groups under a customer-managed key (including those AWS services
write to by name), security-group descriptions, the WAF on the public entry, and the EKS
endpoint. Components are built under the recording mocks; the whole program's plans come
from the session fixtures."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest

from components.kms import (
    LOGS_ACTIONS,
    VIA_SERVICES,
    WAF_LOG_GROUP_PREFIX,
    KeyPolicy,
    key_policy_document,
)
from components.waf import MANAGED_RULE_GROUPS, REDACTED_HEADERS, Waf, WafArgs, check_args
from config import thresholds
from planner.engine import PlannedResource
from planner.mocks import ACCOUNT_ID
from tests.conftest import of_type, preflight_of

KEY = "aws:kms/key:Key"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
WEB_ACL = "aws:wafv2/webAcl:WebAcl"
RULESET = "cloudflare:index/ruleset:Ruleset"
SECURITY_RULES = ("aws-kms-key-policy", "aws-log-group-kms", "aws-service-log-groups",
                  "aws-waf-log-group", "aws-security-group-descriptions")
ALB_ARN = ("arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/"
           "sc-dev-alb/0123456789abcdef")


def _stacks(plans):
    return plans.values() if isinstance(plans, dict) else [plans]


def _all_plans(dev_phases, prod, prod_phase2, prod_phase3):
    for plans in (dev_phases, prod, prod_phase2, prod_phase3):
        yield from _stacks(plans)


def _statement(doc: dict, sid: str) -> dict:
    (found,) = [s for s in doc["Statement"] if s["Sid"] == sid]
    return found


def _modified(res: PlannedResource, **inputs) -> PlannedResource:
    return dataclasses.replace(res, inputs={**res.inputs, **inputs})


# --- key policies ------------------------------------------------------------------------

def test_every_policy_lets_the_account_administer_the_key():
    doc = key_policy_document(KeyPolicy("aws", ACCOUNT_ID, "eu-west-1"))
    root = _statement(doc, "AccountAdministers")
    assert root["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}
    assert root["Action"] == "kms:*" and "Condition" not in root


def test_a_logs_key_admits_only_the_regions_logs_service_for_this_accounts_log_groups():
    doc = key_policy_document(KeyPolicy("aws", ACCOUNT_ID, "eu-west-1", logs=True))
    logs = _statement(doc, "CloudWatchLogs")
    assert logs["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
    assert logs["Action"] == LOGS_ACTIONS
    assert logs["Condition"] == {"ArnLike": {"kms:EncryptionContext:aws:logs:arn":
                                             f"arn:aws:logs:eu-west-1:{ACCOUNT_ID}:log-group:*"}}
    assert "CloudWatchLogs" not in {s["Sid"] for s in key_policy_document(
        KeyPolicy("aws", ACCOUNT_ID, "eu-west-1"))["Statement"]}


@pytest.mark.parametrize("service", VIA_SERVICES)
def test_a_service_uses_the_key_only_through_itself_in_the_keys_region(service):
    doc = key_policy_document(KeyPolicy("aws", ACCOUNT_ID, "us-west-2", via_services=[service]))
    via = _statement(doc, f"Via{service.capitalize()}")
    assert via["Condition"]["StringEquals"] == {
        "kms:ViaService": f"{service}.us-west-2.amazonaws.com", "kms:CallerAccount": ACCOUNT_ID}


def test_an_unknown_service_is_refused_naming_the_valid_ones():
    with pytest.raises(ValueError, match="via_services has s3; valid: rds"):
        key_policy_document(KeyPolicy("aws", ACCOUNT_ID, "us-east-1", via_services=["s3"]))


def test_every_planned_key_has_a_policy_and_rotation(dev_phases, prod, prod_phase2,
                                                     prod_phase3):
    keys = [k for plan in _all_plans(dev_phases, prod, prod_phase2, prod_phase3)
            for k in of_type(plan.resources, KEY)]
    assert keys
    for key in keys:
        doc = json.loads(key.inputs["policy"])
        assert _statement(doc, "AccountAdministers"), key.name
        assert key.inputs["enableKeyRotation"] is True, key.name


def test_the_preflight_refuses_a_key_without_policy_or_rotation_or_account_statement(build):
    from tests.test_network import network  # the default network, one build for both

    resources = build(network()).resources
    (key,) = of_type(resources, KEY)
    assert preflight_of(resources, "aws-kms-key-policy") == []
    no_policy = {k: v for k, v in key.inputs.items() if k != "policy"}
    locked = json.dumps({"Version": "2012-10-17", "Statement": [
        s for s in json.loads(key.inputs["policy"])["Statement"]
        if s["Sid"] != "AccountAdministers"]})
    for broken, prop in ((dataclasses.replace(key, inputs=no_policy), "policy"),
                         (_modified(key, policy=locked), "policy"),
                         (_modified(key, enableKeyRotation=False), "enableKeyRotation")):
        others = [r for r in resources if r is not key]
        findings = preflight_of([*others, broken], "aws-kms-key-policy")
        assert [(f.severity, f.property) for f in findings] == [("error", prop)]


# --- log groups ----------------------------------------------------------------------------

def test_every_planned_log_group_has_a_key_whose_policy_admits_logs_of_its_region(
        dev_phases, prod, prod_phase2, prod_phase3):
    checked = 0
    for plan in _all_plans(dev_phases, prod, prod_phase2, prod_phase3):
        keys = {k.outputs["arn"]: json.loads(k.inputs["policy"])
                for k in of_type(plan.resources, KEY)}
        for group in of_type(plan.resources, LOG_GROUP):
            logs = _statement(keys[group.inputs["kmsKeyId"]], "CloudWatchLogs")
            assert logs["Principal"] == {"Service": f"logs.{plan.region}.amazonaws.com"}
            checked += 1
    assert checked


def test_the_security_preflight_finds_nothing_in_any_planned_stack(dev_phases, prod,
                                                                   prod_phase2, prod_phase3):
    from planner import preflight

    for plan in _all_plans(dev_phases, prod, prod_phase2, prod_phase3):
        assert preflight.check([plan], only=SECURITY_RULES) == [], plan.stack


def test_the_preflight_refuses_a_log_group_without_a_key_or_with_one_logs_may_not_use(build):
    from tests.test_network import network  # the default network, one build for both

    resources = build(network()).resources
    (group,) = of_type(resources, LOG_GROUP)
    (key,) = of_type(resources, KEY)
    assert preflight_of(resources, "aws-log-group-kms") == []
    bare = dataclasses.replace(group, inputs={k: v for k, v in group.inputs.items()
                                              if k != "kmsKeyId"})
    findings = preflight_of([r for r in resources if r is not group] + [bare],
                            "aws-log-group-kms")
    assert [f.property for f in findings] == ["kmsKeyId"]
    closed = _modified(key, policy=json.dumps(key_policy_document(
        KeyPolicy("aws", ACCOUNT_ID, "us-east-1"))))
    findings = preflight_of([r for r in resources if r is not key] + [closed],
                            "aws-log-group-kms")
    assert len(findings) == 1 and "logs.us-east-1.amazonaws.com" in findings[0].message
    elsewhere = _modified(group, kmsKeyId=key.outputs["arn"].replace("us-east-1", "eu-west-1"))
    findings = preflight_of([r for r in resources if r is not group] + [elsewhere],
                            "aws-log-group-kms")
    assert len(findings) == 1 and "a key of eu-west-1" in findings[0].message


def test_rds_exports_go_to_groups_the_program_creates_first_with_the_instances_key(dev):
    (db,) = of_type(dev.resources, "aws:rds/instance:Instance")
    groups = {g.inputs.get("name"): g for g in of_type(dev.resources, LOG_GROUP)}
    for export in db.inputs["enabledCloudwatchLogsExports"]:
        group = groups[f"/aws/rds/instance/{db.inputs['identifier']}/{export}"]
        assert group.inputs["kmsKeyId"] == db.inputs["kmsKeyId"]
        assert group.urn in db.options["depends_on"]


def test_eks_control_plane_logs_go_to_a_group_created_first(prod_phase2):
    plan = prod_phase2["prod"]
    (cluster,) = of_type(plan.resources, "aws:eks/cluster:Cluster")
    groups = {g.inputs.get("name"): g for g in of_type(plan.resources, LOG_GROUP)}
    group = groups[f"/aws/eks/{cluster.inputs['name']}/cluster"]
    assert group.urn in cluster.options["depends_on"]
    assert group.inputs["kmsKeyId"] == cluster.inputs["encryptionConfig"]["provider"]["keyArn"]


def test_the_preflight_refuses_service_logs_the_program_does_not_create(dev, prod_phase2):
    for plan, token, prefix in ((dev, "aws:rds/instance:Instance", "/aws/rds/"),
                                (prod_phase2["prod"], "aws:eks/cluster:Cluster", "/aws/eks/")):
        assert preflight_of(plan.resources, "aws-service-log-groups") == []
        kept = [r for r in plan.resources
                if not (r.type == LOG_GROUP and str(r.inputs.get("name")).startswith(prefix))]
        findings = preflight_of(kept, "aws-service-log-groups")
        assert findings and all(f.resource.startswith(token) for f in findings)


# --- security-group descriptions ------------------------------------------------------------

def test_every_planned_group_and_rule_has_a_description(dev_phases, prod, prod_phase2,
                                                        prod_phase3):
    seen = 0
    for plan in _all_plans(dev_phases, prod, prod_phase2, prod_phase3):
        for res in plan.resources:
            if res.type == SG or res.type.startswith("aws:vpc/securityGroup"):
                assert res.inputs.get("description"), (plan.stack, res.name)
                for inline in res.inputs.get("ingress", []) + res.inputs.get("egress", []):
                    assert inline.get("description"), (plan.stack, res.name)
                seen += 1
    assert seen


@pytest.mark.parametrize("description, fails", [
    (None, True), ("", True), ("caf\u00e9 clients", True), ("x" * 256, True),
    ("from the ALB: 443/tcp (Cloudflare)", False),
])
def test_the_preflight_refuses_a_rule_without_a_description_aws_accepts(dev, description,
                                                                        fails):
    rule = of_type(dev.resources, INGRESS)[0]
    inputs = {k: v for k, v in rule.inputs.items() if k != "description"}
    if description is not None:
        inputs["description"] = description
    others = [r for r in dev.resources if r is not rule]
    findings = preflight_of([*others, dataclasses.replace(rule, inputs=inputs)],
                            "aws-security-group-descriptions")
    assert bool(findings) is fails


def test_the_preflight_reads_inline_rules_too(dev):
    group = next(g for g in of_type(dev.resources, SG) if g.inputs.get("ingress"))
    stripped = [{k: v for k, v in i.items() if k != "description"}
                for i in group.inputs["ingress"]]
    findings = preflight_of([_modified(group, ingress=stripped)],
                            "aws-security-group-descriptions")
    assert [f.property for f in findings] == ["ingress[0].description"]


# --- AWS WAF on a public ALB -------------------------------------------------------------

def _waf(**kw):
    def fn() -> None:
        Waf("waf", WafArgs(resource_arn=ALB_ARN, **kw))
    return fn


def test_the_web_acl_is_regional_runs_the_managed_groups_and_a_rate_limit(build):
    resources = build(_waf()).resources
    (acl,) = of_type(resources, WEB_ACL)
    assert acl.inputs["scope"] == "REGIONAL" and acl.inputs["defaultAction"] == {"allow": {}}
    rules = sorted(acl.inputs["rules"], key=lambda r: r["priority"])
    groups = [r["statement"]["managedRuleGroupStatement"]["name"] for r in rules[:-1]]
    assert groups == list(MANAGED_RULE_GROUPS)
    rate = rules[-1]["statement"]["rateBasedStatement"]
    assert rate == {"limit": thresholds.WAF_RATE_LIMIT_PER_IP, "aggregateKeyType": "IP",
                    "evaluationWindowSec": thresholds.WAF_RATE_WINDOW_S}
    assert rules[-1]["action"] == {"block": {}}
    for r in [*rules, {"visibilityConfig": acl.inputs["visibilityConfig"]}]:
        assert r["visibilityConfig"]["cloudwatchMetricsEnabled"] is True
        assert r["visibilityConfig"]["sampledRequestsEnabled"] is True


def test_the_web_acl_guards_the_alb_and_logs_to_an_encrypted_waf_group(build):
    resources = build(_waf()).resources
    (assoc,) = of_type(resources, "aws:wafv2/webAclAssociation:WebAclAssociation")
    assert assoc.inputs["resourceArn"] == ALB_ARN
    (group,) = of_type(resources, LOG_GROUP)
    assert group.inputs["name"].startswith(WAF_LOG_GROUP_PREFIX)
    (key,) = of_type(resources, KEY)
    assert group.inputs["kmsKeyId"] == key.outputs["arn"]
    (logging,) = of_type(resources,
                         "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration")
    assert logging.inputs["logDestinationConfigs"] == [group.outputs["arn"]]
    assert {f["singleHeader"]["name"] for f in logging.inputs["redactedFields"]} == \
        set(REDACTED_HEADERS)
    assert preflight_of(resources, *SECURITY_RULES) == []


def test_the_preflight_refuses_waf_logs_to_a_group_without_the_prefix(build):
    resources = build(_waf()).resources
    (logging,) = of_type(resources,
                         "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration")
    arn = f"arn:aws:logs:us-east-1:{ACCOUNT_ID}:log-group:waf-logs"
    broken = _modified(logging, logDestinationConfigs=[arn])
    findings = preflight_of([r for r in resources if r is not logging] + [broken],
                            "aws-waf-log-group")
    assert len(findings) == 1 and "waf-logs" in findings[0].message


@pytest.mark.parametrize("changes, message", [
    ({"rate_limit_per_ip": 9}, "rate_limit_per_ip is 9"),
    ({"rate_window_s": 30}, "rate_window_s is 30"),
])
def test_waf_args_outside_what_aws_accepts_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        check_args(WafArgs(resource_arn=ALB_ARN, **changes))


def test_a_public_alb_gets_aws_waf_and_one_behind_cloudflare_does_not(dev, prod):
    (acl,) = of_type(dev.resources, WEB_ACL)
    (assoc,) = of_type(dev.resources, "aws:wafv2/webAclAssociation:WebAclAssociation")
    (alb,) = of_type(dev.resources, "aws:lb/loadBalancer:LoadBalancer")
    assert assoc.inputs["resourceArn"] == alb.outputs["arn"]
    assert dev.config.compute.origin_access == "public"
    assert prod["prod"].config.compute.origin_access == "cloudflare"
    assert of_type(prod["prod"].resources, WEB_ACL) == []


# --- Cloudflare managed WAF ----------------------------------------------------------------

def _edge(plan: str):
    from components.edge import Edge, EdgeArgs, Origin

    def fn() -> None:
        Edge("e", EdgeArgs(zone_name="sofacoverpro.com", account_id="a" * 32, plan=plan,
                           origins=(Origin("us-east-1", "alb.example.com"),)))
    return fn


def test_the_edge_executes_the_managed_and_owasp_rulesets_on_every_request(prod):
    from components.edge import WAF_MANAGED_PHASE, WAF_MANAGED_RULESETS

    (ruleset,) = [r for r in of_type(prod["prod-edge"].resources, RULESET)
                  if r.inputs["phase"] == WAF_MANAGED_PHASE]
    assert ruleset.inputs["kind"] == "zone"
    assert [(r["action"], r["actionParameters"]["id"], r["expression"], r["enabled"])
            for r in ruleset.inputs["rules"]] == [
        ("execute", ruleset_id, "true", True) for ruleset_id, _ in WAF_MANAGED_RULESETS.values()]


def test_a_free_zone_gets_no_paid_rulesets_and_a_warning(build):
    from components.edge import WAF_MANAGED_PHASE

    run = build(_edge("free"))
    assert [r for r in of_type(run.resources, RULESET)
            if r.inputs["phase"] == WAF_MANAGED_PHASE] == []
    assert any("Free Managed Ruleset" in m for m in run.messages)


def test_the_preflight_refuses_paid_rulesets_on_a_zone_below_pro(build):
    resources = build(_edge("pro")).resources

    def config(plan):
        return SimpleNamespace(edge=SimpleNamespace(plan=plan, add_ons=[]))

    assert preflight_of(resources, "cloudflare-waf-managed-rules", config=config("pro")) == []
    findings = preflight_of(resources, "cloudflare-waf-managed-rules", config=config("free"))
    assert len(findings) == 2 and all("needs the pro plan" in f.message for f in findings)


# --- EKS endpoint (fixed earlier; verified here) ---------------------------------------------

def test_prod_eks_endpoints_are_private_or_limited_to_configured_cidrs(prod_phase2,
                                                                        prod_phase3):
    clusters = [(p, c) for plans in (prod_phase2, prod_phase3) for p in plans.values()
                for c in of_type(p.resources, "aws:eks/cluster:Cluster")]
    assert clusters
    for plan, cluster in clusters:
        vpc = cluster.inputs["vpcConfig"]
        assert vpc["endpointPrivateAccess"] is True
        cidrs = plan.config.kubernetes.endpoint_public_access_cidrs
        assert vpc["endpointPublicAccess"] is bool(cidrs)
        assert "0.0.0.0/0" not in vpc.get("publicAccessCidrs", [])



def test_the_preflight_holds_aws_waf_to_what_the_api_accepts(build):
    resources = build(_waf()).resources
    assert preflight_of(resources, "aws-wafv2") == []
    (acl,) = of_type(resources, WEB_ACL)
    rules = [dict(r) for r in acl.inputs["rules"]]
    rules[-1] = {**rules[-1], "priority": rules[0]["priority"],
                 "statement": {"rateBasedStatement": {"limit": 5, "aggregateKeyType": "IP",
                                                      "evaluationWindowSec": 30}}}
    rules[0] = {**rules[0], "visibilityConfig": {**rules[0]["visibilityConfig"],
                                                 "metricName": "has spaces"}}
    broken = _modified(acl, rules=rules, scope="CLOUDFRONT")
    findings = preflight_of([r for r in resources if r is not acl] + [broken], "aws-wafv2")
    assert sorted(f.property for f in findings) == sorted([
        "rules", "rules[0].visibilityConfig",
        f"rules[{len(rules) - 1}].statement.rateBasedStatement.limit",
        f"rules[{len(rules) - 1}].statement.rateBasedStatement.evaluationWindowSec",
        "webAclArn"])


@pytest.mark.parametrize("size, tier, fails", [
    (4096, "Standard", False), (4097, "Standard", True), (8192, "Advanced", False),
    (8193, "Advanced", True)])
def test_the_preflight_holds_ssm_values_to_their_tier(dev, size, tier, fails):
    params = of_type(dev.resources, "aws:ssm/parameter:Parameter")
    assert params and preflight_of(params, "aws-ssm-parameter-size") == []
    ca = next(p for p in params if p.inputs["name"].endswith("/rds-ca.pem"))
    resized = _modified(ca, insecureValue="x" * size, tier=tier)
    findings = preflight_of([resized], "aws-ssm-parameter-size")
    assert [f.property for f in findings] == (["insecureValue"] if fails else [])
