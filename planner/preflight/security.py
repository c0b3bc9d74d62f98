"""Preflight rules for the security scan's findings: KMS key policies, log groups encrypted
with a key CloudWatch Logs may use, the log groups AWS services would otherwise create
unencrypted, the WAF log group's name, and security-group descriptions.

Each is something AWS refuses at apply time, or something that deploys but leaves the
feature (encryption with the customer-managed key) silently off.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from planner.engine import PlannedResource
from planner.preflight import Context, rule, value

CHECKED = "2026-11-27"
KEY = "aws:kms/key:Key"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SG_RULES = ("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
            "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
            "aws:ec2/securityGroupRule:SecurityGroupRule")

KEY_POLICY_DOCS = ("https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html"
                   " (the account statement; PutKeyPolicy refuses a policy that locks the "
                   "caller out unless BypassPolicyLockoutSafetyCheck)")
LOGS_KMS_DOCS = ("https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/"
                 "encrypt-log-data-kms.html (the key policy must allow logs.<region>."
                 "amazonaws.com, kms:EncryptionContext:aws:logs:arn)")
WAF_LOGS_DOCS = ("https://docs.aws.amazon.com/waf/latest/developerguide/logging-cw-logs.html "
                 "(log group names must start with aws-waf-logs-)")
SG_DOCS = ("https://docs.aws.amazon.com/AWSEC2/latest/APIReference/"
           "API_CreateSecurityGroup.html and API_IpRange.html (GroupDescription and rule "
           "Description: up to 255 characters of a-z A-Z 0-9, spaces and ._-:/()#,@[]+=&;{}!$*)")


def _policy(res: PlannedResource) -> dict[str, Any] | None:
    text = value(res, "policy")
    if isinstance(text, dict):
        return text
    if not isinstance(text, str):
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _statements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    found = doc.get("Statement", [])
    return [s for s in (found if isinstance(found, list) else [found]) if isinstance(s, dict)]


def _as_list(node: Any) -> list[Any]:
    return node if isinstance(node, list) else [node]


def _account_administers(doc: dict[str, Any]) -> bool:
    """An Allow of kms:* (or kms:PutKeyPolicy) to an account root principal."""
    for s in _statements(doc):
        principals = _as_list((s.get("Principal") or {}).get("AWS", []))
        actions = _as_list(s.get("Action", []))
        if (s.get("Effect") == "Allow" and "Condition" not in s
                and any(isinstance(p, str) and p.endswith(":root") for p in principals)
                and any(a in ("kms:*", "*", "kms:PutKeyPolicy") for a in actions)):
            return True
    return False


def logs_may_use(doc: dict[str, Any], region: str) -> bool:
    """Whether the policy lets CloudWatch Logs of `region` encrypt with the key."""
    service = f"logs.{region}.amazonaws.com"
    for s in _statements(doc):
        principals = _as_list((s.get("Principal") or {}).get("Service", []))
        actions = _as_list(s.get("Action", []))
        if (s.get("Effect") == "Allow" and service in principals
                and any(a in ("kms:*", "kms:GenerateDataKey*", "kms:Encrypt*")
                        for a in actions)):
            return True
    return False


@rule("aws-kms-key-policy", "Every KMS key has an explicit key policy in which the account "
      "administers the key (else KMS refuses it, or nobody can ever change it), and rotation "
      "on", source=KEY_POLICY_DOCS, checked=CHECKED)
def kms_key_policy(ctx: Context) -> Iterator:
    for key in ctx.of_type(KEY):
        doc = _policy(key)
        # The inputs, not the provider's answer: AWS would fill in its default policy.
        if key.inputs.get("policy") is None:
            yield ctx.error(key, "policy", "is not set: the key gets AWS's implicit default "
                            "policy, which grants no service principal (CloudWatch Logs, "
                            "alarms) what it needs; build it with components/kms.key_policy")
        elif doc is not None and not _account_administers(doc):
            yield ctx.error(key, "policy", "has no unconditioned Allow of kms:* for the "
                            "account root: KMS refuses a policy that locks the account out")
        if value(key, "enableKeyRotation") is not True:
            yield ctx.error(key, "enableKeyRotation", "is not true: the key material is "
                            "never rotated")


@rule("aws-log-group-kms", "Every CloudWatch log group is encrypted with a customer-managed "
      "key of its region whose policy lets CloudWatch Logs of that region use it (else "
      "CreateLogGroup fails with AccessDeniedException)", source=LOGS_KMS_DOCS,
      checked=CHECKED)
def log_group_kms(ctx: Context) -> Iterator:
    keys = {value(k, "arn"): k for k in ctx.of_type(KEY)}
    for group in ctx.of_type(LOG_GROUP):
        arn = group.inputs.get("kmsKeyId")  # the program's, not a default AWS fills in
        region = value(group, "region") or group.region or ctx.plan.region
        if arn is None:
            yield ctx.error(group, "kmsKeyId", "is not set: the log group is encrypted with "
                            "an AWS-owned key only")
            continue
        key = keys.get(arn)
        doc = _policy(key) if key is not None else None
        key_region = arn.split(":")[3] if isinstance(arn, str) and arn.count(":") >= 5 else None
        if key_region and key_region != region:
            yield ctx.error(group, "kmsKeyId", f"names a key of {key_region}; CloudWatch Logs "
                            f"in {region} uses keys of its own region only")
        elif doc is not None and not logs_may_use(doc, region):
            yield ctx.error(group, "kmsKeyId", f"names the key {key.name}, whose policy does "
                            f"not allow logs.{region}.amazonaws.com")


def _group_names(ctx: Context) -> set[str]:
    """Names the program sets (an autonamed group never matches a service's fixed name)."""
    return {n for n in (g.inputs.get("name") for g in ctx.of_type(LOG_GROUP))
            if isinstance(n, str)}


@rule("aws-service-log-groups", "The log groups AWS services write to by name (EKS control "
      "plane /aws/eks/<cluster>/cluster, RDS exports /aws/rds/instance/<id>/<log>) are created "
      "by the program first, with its key; otherwise the service creates them unencrypted",
      source="https://docs.aws.amazon.com/eks/latest/userguide/control-plane-logs.html; "
      "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/"
      "USER_LogAccess.Concepts.PostgreSQL.html", checked=CHECKED)
def service_log_groups(ctx: Context) -> Iterator:
    names = _group_names(ctx)
    for cluster in ctx.of_type("aws:eks/cluster:Cluster"):
        if value(cluster, "enabledClusterLogTypes"):
            wanted = f"/aws/eks/{value(cluster, 'name')}/cluster"
            if wanted not in names:
                yield ctx.error(cluster, "enabledClusterLogTypes", f"EKS writes to {wanted}, "
                                "which the program does not create: EKS would create it "
                                "without the customer-managed key")
    for db in ctx.of_type("aws:rds/instance:Instance"):
        for export in value(db, "enabledCloudwatchLogsExports") or []:
            wanted = f"/aws/rds/instance/{value(db, 'identifier')}/{export}"
            if wanted not in names:
                yield ctx.error(db, "enabledCloudwatchLogsExports", f"RDS writes {export} to "
                                f"{wanted}, which the program does not create: RDS would "
                                "create it without the customer-managed key")


@rule("aws-waf-log-group", "AWS WAF logs only to a CloudWatch log group whose name starts "
      "with aws-waf-logs-", source=WAF_LOGS_DOCS, checked=CHECKED)
def waf_log_group(ctx: Context) -> Iterator:
    for logging in ctx.of_type(
            "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"):
        for arn in value(logging, "logDestinationConfigs") or []:
            if not isinstance(arn, str) or ":logs:" not in arn:
                continue
            name = arn.split(":log-group:", 1)[-1].removesuffix(":*")
            if not name.startswith("aws-waf-logs-"):
                yield ctx.error(logging, "logDestinationConfigs", f"names the log group "
                                f"{name}; AWS WAF refuses names not starting with "
                                "aws-waf-logs-")


SG_TEXT = re.compile(r"[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]{1,255}")


def _description_problems(text: Any) -> str | None:
    if text is None or text == "":
        return "is missing: say what the group or rule admits and why"
    if isinstance(text, str) and not SG_TEXT.fullmatch(text):
        return (f"is {text!r}: AWS accepts up to 255 characters of a-z A-Z 0-9, spaces and "
                "._-:/()#,@[]+=&;{}!$*")
    return None


@rule("aws-security-group-descriptions", "Every security group and every rule (inline or "
      "separate) has a description AWS accepts", source=SG_DOCS, checked=CHECKED)
def security_group_descriptions(ctx: Context) -> Iterator:
    for group in ctx.of_type(SECURITY_GROUP):
        problem = _description_problems(group.inputs.get("description"))
        if problem:
            yield ctx.error(group, "description", problem)
        for direction in ("ingress", "egress"):
            for i, inline in enumerate(group.inputs.get(direction) or []):
                problem = _description_problems(inline.get("description"))
                if problem:
                    yield ctx.error(group, f"{direction}[{i}].description", problem)
    for sg_rule in ctx.of_type(*SG_RULES):
        problem = _description_problems(sg_rule.inputs.get("description"))
        if problem:
            yield ctx.error(sg_rule, "description", problem)


WAF_METRIC = re.compile(r"[\w#:.\-/]{1,255}")
WAF_WINDOWS = (60, 120, 300, 600)


def _visibility_problem(config: Any) -> str | None:
    if not isinstance(config, dict):
        return "is missing"
    metric = config.get("metricName")
    if not isinstance(metric, str) or not WAF_METRIC.fullmatch(metric) or \
            metric in ("All", "Default_Action"):
        return (f"metricName {metric!r}: AWS WAF takes 1-255 of letters, digits and _ # : . "
                "- /, not All or Default_Action")
    return None


@rule("aws-wafv2", "AWS WAF web ACLs: a REGIONAL ACL on an ALB of the same region, unique "
      "rule priorities, metric names WAF accepts, rate limits of 10 to 2,000,000,000 over a "
      "60, 120, 300 or 600 s window",
      source="https://docs.aws.amazon.com/waf/latest/APIReference/API_VisibilityConfig.html; "
      "API_RateBasedStatement.html; API_AssociateWebACL.html (an ALB takes a REGIONAL web "
      "ACL of its region)", checked=CHECKED)
def wafv2(ctx: Context) -> Iterator:
    acls = {value(a, "arn"): a for a in ctx.of_type("aws:wafv2/webAcl:WebAcl")}
    for acl in acls.values():
        problem = _visibility_problem(value(acl, "visibilityConfig"))
        if problem:
            yield ctx.error(acl, "visibilityConfig", problem)
        rules = value(acl, "rules") or []
        priorities = [r.get("priority") for r in rules]
        if len(set(priorities)) != len(priorities):
            yield ctx.error(acl, "rules", f"priorities {priorities} repeat; each rule needs "
                            "its own")
        for i, r in enumerate(rules):
            problem = _visibility_problem(r.get("visibilityConfig"))
            if problem:
                yield ctx.error(acl, f"rules[{i}].visibilityConfig", problem)
            rate = (r.get("statement") or {}).get("rateBasedStatement")
            if rate:
                if not 10 <= int(rate.get("limit", 0)) <= 2_000_000_000:
                    yield ctx.error(acl, f"rules[{i}].statement.rateBasedStatement.limit",
                                    f"is {rate.get('limit')}; AWS WAF takes 10 to "
                                    "2,000,000,000")
                if rate.get("evaluationWindowSec", 300) not in WAF_WINDOWS:
                    yield ctx.error(acl, f"rules[{i}].statement.rateBasedStatement."
                                    "evaluationWindowSec", f"is "
                                    f"{rate.get('evaluationWindowSec')}; AWS WAF takes "
                                    "60, 120, 300 or 600")
    for assoc in ctx.of_type("aws:wafv2/webAclAssociation:WebAclAssociation"):
        target, acl = str(value(assoc, "resourceArn")), acls.get(value(assoc, "webAclArn"))
        if ":elasticloadbalancing:" in target and acl is not None:
            if value(acl, "scope") != "REGIONAL":
                yield ctx.error(assoc, "webAclArn", f"names a {value(acl, 'scope')} web ACL; "
                                "an ALB takes a REGIONAL one")
            region = target.split(":")[3]
            if acl.region and region != acl.region:
                yield ctx.error(assoc, "resourceArn", f"is an ALB of {region}; the web ACL "
                                f"is in {acl.region}")


SSM_VALUE_LIMITS = {"Standard": 4096, "Advanced": 8192}


@rule("aws-ssm-parameter-size", "An SSM parameter's value fits its tier: 4 KB Standard, 8 KB "
      "Advanced (the PgBouncer sidecar's config, userlist and RDS roots travel this way)",
      source="https://docs.aws.amazon.com/systems-manager/latest/userguide/"
      "parameter-store-advanced-parameters.html (value size per tier)", checked=CHECKED)
def ssm_parameter_size(ctx: Context) -> Iterator:
    from planner.mocks import SECRET_MASK

    for param in ctx.of_type("aws:ssm/parameter:Parameter"):
        tier = value(param, "tier") or "Standard"
        limit = SSM_VALUE_LIMITS.get(tier)
        for prop in ("insecureValue", "value"):
            text = param.inputs.get(prop)
            if limit is None or not isinstance(text, str) or text in (SECRET_MASK,
                                                                       "[unknown]"):
                continue
            if len(text.encode()) > limit:
                yield ctx.error(param, prop, f"is {len(text.encode())} bytes; the {tier} "
                                f"tier holds {limit}")
