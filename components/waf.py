"""AWS WAF in front of a public ALB: the web application firewall of a stack that no
Cloudflare edge fronts (with the edge, Cloudflare's managed WAF rules do it: components/
edge.py).

A regional web ACL (scope REGIONAL: the one an ALB takes) that allows by default and runs,
cheapest and most certain first:
1. AWSManagedRulesAmazonIpReputationList: addresses Amazon's threat intelligence flags;
2. AWSManagedRulesKnownBadInputsRuleSet: request patterns known to exploit (Log4j, ...);
3. AWSManagedRulesCommonRuleSet: the OWASP-style baseline (XSS, LFI, size limits, ...);
4. a rate-based rule per client IP (config/thresholds.py WAF_RATE_LIMIT_PER_IP).
Every rule and the ACL publish CloudWatch metrics and keep sampled requests (visibility
config). Full logs go to a CloudWatch log group named `aws-waf-logs-...` (WAF refuses any
other name), encrypted with a customer-managed key; the Authorization and Cookie headers
are redacted, so no credential reaches the logs.

Sources (read 2026-11-27): AWS WAF developer guide, "AWS Managed Rules rule groups list"
(https://docs.aws.amazon.com/waf/latest/developerguide/aws-managed-rule-groups-list.html),
"Rate-based rule statement"
(https://docs.aws.amazon.com/waf/latest/developerguide/waf-rule-statement-type-rate-based.html),
"Sending web ACL traffic logs to an Amazon CloudWatch Logs log group"
(https://docs.aws.amazon.com/waf/latest/developerguide/logging-cw-logs.html), and
"Associating a web ACL with an AWS resource" (an ALB takes a REGIONAL web ACL).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.kms import (
    DEFAULT_LOG_RETENTION_DAYS,
    WAF_LOG_GROUP_PREFIX,
    LogGroupArgs,
    encrypted_log_group,
    key_policy,
)
from config.thresholds import WAF_RATE_LIMIT_PER_IP, WAF_RATE_WINDOW_S

# AWS managed rule groups, in evaluation order (the first match decides).
MANAGED_RULE_GROUPS = ("AWSManagedRulesAmazonIpReputationList",
                       "AWSManagedRulesKnownBadInputsRuleSet",
                       "AWSManagedRulesCommonRuleSet")
# Headers never written to the WAF logs: they carry sessions and tokens.
REDACTED_HEADERS = ("authorization", "cookie")
# RateBasedStatement.Limit and EvaluationWindowSec as the AWS WAF API accepts them.
RATE_LIMIT_RANGE = (10, 2_000_000_000)
RATE_WINDOWS_S = (60, 120, 300, 600)


@dataclass(frozen=True)
class WafArgs:
    """Inputs of `Waf`."""

    resource_arn: pulumi.Input[str]
    """The ALB the web ACL protects."""
    rate_limit_per_ip: int = WAF_RATE_LIMIT_PER_IP
    """Requests one client IP may make in `rate_window_s` before it is blocked."""
    rate_window_s: int = WAF_RATE_WINDOW_S
    log_retention_days: int = DEFAULT_LOG_RETENTION_DAYS
    tags: dict[str, str] = field(default_factory=dict)


def check_args(args: WafArgs) -> None:
    low, high = RATE_LIMIT_RANGE
    if not low <= args.rate_limit_per_ip <= high:
        raise ValueError(f"rate_limit_per_ip is {args.rate_limit_per_ip}; AWS WAF accepts "
                         f"{low} to {high}")
    if args.rate_window_s not in RATE_WINDOWS_S:
        raise ValueError(f"rate_window_s is {args.rate_window_s}; AWS WAF accepts "
                         f"{', '.join(map(str, RATE_WINDOWS_S))}")


def _visibility(metric: str) -> dict[str, Any]:
    return {"cloudwatch_metrics_enabled": True, "metric_name": metric,
            "sampled_requests_enabled": True}


def web_acl_rules(args: WafArgs) -> list[dict[str, Any]]:
    """The web ACL's rules, in priority order."""
    rules: list[dict[str, Any]] = [
        {"name": group, "priority": i, "override_action": {"none": {}},
         "statement": {"managed_rule_group_statement": {"vendor_name": "AWS",
                                                        "name": group}},
         "visibility_config": _visibility(group)}
        for i, group in enumerate(MANAGED_RULE_GROUPS)]
    rules.append({
        "name": "rate-per-ip", "priority": len(rules), "action": {"block": {}},
        "statement": {"rate_based_statement": {
            "limit": args.rate_limit_per_ip, "aggregate_key_type": "IP",
            "evaluation_window_sec": args.rate_window_s}},
        "visibility_config": _visibility("rate-per-ip")})
    return rules


class Waf(pulumi.ComponentResource):
    """A regional AWS WAF web ACL on an ALB, with managed rules, a rate limit and logs."""

    web_acl_arn: pulumi.Output[str]
    """ARN of the web ACL."""
    log_group_name: pulumi.Output[str]
    """The CloudWatch log group of the WAF's full logs (`aws-waf-logs-...`)."""

    def __init__(self, name: str, args: WafArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        check_args(args)  # before anything is registered
        super().__init__("sofacover:waf:Waf", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        def tags(role: str) -> dict[str, str]:
            return {**args.tags, "Name": f"{name}-{role}"}

        acl = aws.wafv2.WebAcl(
            f"{name}-acl", scope="REGIONAL", description=f"{name}: the public ALB",
            default_action={"allow": {}}, rules=web_acl_rules(args),
            visibility_config=_visibility(f"{name}-acl"), tags=tags("acl"), opts=child)
        aws.wafv2.WebAclAssociation(f"{name}-acl-alb", resource_arn=args.resource_arn,
                                    web_acl_arn=acl.arn, opts=child)

        key = aws.kms.Key(f"{name}-logs-key", description=f"{name}: WAF logs",
                          enable_key_rotation=True, deletion_window_in_days=30,
                          policy=key_policy(self, logs=True), tags=tags("logs-key"),
                          opts=child)
        log_group = encrypted_log_group(f"{name}-logs", LogGroupArgs(
            name=f"{WAF_LOG_GROUP_PREFIX}{name}", retention_days=args.log_retention_days,
            kms_key_arn=key.arn, tags=tags("logs")), child)
        aws.wafv2.WebAclLoggingConfiguration(
            f"{name}-logging", resource_arn=acl.arn,
            log_destination_configs=[log_group.arn],
            redacted_fields=[{"single_header": {"name": h}} for h in REDACTED_HEADERS],
            opts=child)

        self.web_acl_arn = acl.arn
        self.log_group_name = log_group.name
        self.register_outputs({"web_acl_arn": self.web_acl_arn,
                               "log_group_name": self.log_group_name})
