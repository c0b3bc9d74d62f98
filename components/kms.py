"""KMS key policies and CloudWatch log groups encrypted with a customer-managed key.

Every key the program creates carries an explicit policy built here, so none falls back to
the implicit default and a reviewer reads who may use it in one place:

- `AccountAdministers`: the account root, `kms:*`. AWS's default key policy statement: IAM
  policies of the account decide who administers and uses the key, and the key can never
  become unmanageable (a policy without it locks the account out until AWS Support steps
  in). Source: AWS KMS developer guide, "Default key policy", section "Allows access to the
  AWS account and enables IAM policies",
  https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html
- `Via<Service>`: principals of this account, only through that service in this region
  (`kms:ViaService`, `kms:CallerAccount`): the statement AWS's own managed keys (aws/rds,
  aws/elasticache, ...) carry. RDS, ElastiCache and EKS do not call KMS as a service
  principal; they create grants with the caller's permissions. Source: AWS KMS developer
  guide, "kms:ViaService" condition key,
  https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-via-service
- `CloudWatchLogs`: the regional Logs service principal `logs.<region>.amazonaws.com`,
  limited by `kms:EncryptionContext:aws:logs:arn` to this account's log groups in this
  region. Without it, CreateLogGroup with `kmsKeyId` fails (AccessDeniedException). Source:
  CloudWatch Logs user guide, "Encrypt log data in CloudWatch Logs using AWS Key Management
  Service", step 2,
  https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html
- `CloudWatchAlarmsPublish`: `cloudwatch.amazonaws.com` may decrypt and generate data keys,
  which CloudWatch alarms need to publish to an SNS topic encrypted with this key. Source:
  SNS developer guide, "Configure AWS KMS permissions for AWS services",
  https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services

Not here: a key for EBS volumes of Auto Scaling instances. The launch templates encrypt with
the account's AWS-managed EBS key; a customer-managed one would need the
AWSServiceRoleForAutoScaling service-linked role in its policy (AWS Auto Scaling user guide,
"Required AWS KMS key policy for use with encrypted volumes",
https://docs.aws.amazon.com/autoscaling/ec2/userguide/key-policy-requirements-EBS-encryption.html),
and KMS refuses a policy naming a role that does not exist yet (MalformedPolicyDocument), which
it does not in a fresh account before the first Auto Scaling group.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

# What a log group's key statement grants the Logs service principal (the AWS docs' list).
LOGS_ACTIONS = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                "kms:Describe*"]
# What the account's principals may do through a service that uses the key via grants.
VIA_SERVICE_ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                       "kms:CreateGrant", "kms:ListGrants", "kms:DescribeKey"]
# Services whose use of a key goes through kms:ViaService (`<service>.<region>.amazonaws.com`).
VIA_SERVICES = ("rds", "elasticache", "eks", "secretsmanager")
# A log group's name must start with this for AWS WAF to log to it. Source: AWS WAF
# developer guide, "Sending web ACL traffic logs to an Amazon CloudWatch Logs log group",
# https://docs.aws.amazon.com/waf/latest/developerguide/logging-cw-logs.html
WAF_LOG_GROUP_PREFIX = "aws-waf-logs-"
# Retention of the log groups the program creates for AWS services' logs (RDS exports, EKS
# control plane, Redis slow log, WAF): a quarter, long enough to look back over an incident
# and a release cycle; CloudWatch Logs accepts 90 (config.models.LogRetentionDays).
DEFAULT_LOG_RETENTION_DAYS = 90


@dataclass(frozen=True)
class KeyPolicy:
    """Who may use a key besides the account itself (which always administers it)."""

    partition: str
    account_id: str
    region: str
    via_services: Sequence[str] = ()
    """Services of VIA_SERVICES the key serves through grants (rds, elasticache, eks)."""
    logs: bool = False
    """CloudWatch Logs encrypts log groups of this account and region with the key."""
    cloudwatch_alarms: bool = False
    """CloudWatch alarms publish to an SNS topic encrypted with the key."""


def key_policy_document(p: KeyPolicy) -> dict[str, Any]:
    """The key policy (a dict): see the module docstring for each statement's source."""
    unknown = sorted(set(p.via_services) - set(VIA_SERVICES))
    if unknown:
        raise ValueError(f"via_services has {', '.join(unknown)}; valid: "
                         f"{', '.join(VIA_SERVICES)}")
    statements: list[dict[str, Any]] = [{
        "Sid": "AccountAdministers", "Effect": "Allow",
        "Principal": {"AWS": f"arn:{p.partition}:iam::{p.account_id}:root"},
        "Action": "kms:*", "Resource": "*",
    }]
    for service in p.via_services:
        statements.append({
            "Sid": f"Via{service.capitalize()}", "Effect": "Allow",
            "Principal": {"AWS": f"arn:{p.partition}:iam::{p.account_id}:root"},
            "Action": VIA_SERVICE_ACTIONS, "Resource": "*",
            "Condition": {"StringEquals": {
                "kms:ViaService": f"{service}.{p.region}.amazonaws.com",
                "kms:CallerAccount": p.account_id}},
        })
    if p.logs:
        statements.append({
            "Sid": "CloudWatchLogs", "Effect": "Allow",
            "Principal": {"Service": f"logs.{p.region}.amazonaws.com"},
            "Action": LOGS_ACTIONS, "Resource": "*",
            "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn":
                                      f"arn:{p.partition}:logs:{p.region}:{p.account_id}"
                                      ":log-group:*"}},
        })
    if p.cloudwatch_alarms:
        statements.append({
            "Sid": "CloudWatchAlarmsPublish", "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*",
        })
    return {"Version": "2012-10-17", "Statement": statements}


def _render(ids: list[str], *, via_services: tuple[str, ...], logs: bool,
            cloudwatch_alarms: bool) -> str:
    partition, account_id, region = ids
    return json.dumps(key_policy_document(KeyPolicy(
        partition, account_id, region, via_services, logs, cloudwatch_alarms)))


def key_policy(parent: pulumi.Resource, *, via_services: Sequence[str] = (),
               logs: bool = False, cloudwatch_alarms: bool = False,
               region: pulumi.Input[str] | None = None) -> pulumi.Output[str]:
    """The policy JSON for a key created under `parent`, in the parent's account and region
    (invokes with parent=parent, so the component's provider answers), or in `region`
    when the key lives elsewhere (a cross-region backup key)."""
    invoke = pulumi.InvokeOutputOptions(parent=parent)
    partition = aws.get_partition_output(opts=invoke).partition
    account_id = aws.get_caller_identity_output(opts=invoke).account_id
    where = region if region is not None else aws.get_region_output(opts=invoke).region
    return pulumi.Output.all(partition, account_id, where).apply(functools.partial(
        _render, via_services=tuple(via_services), logs=logs,
        cloudwatch_alarms=cloudwatch_alarms))


@dataclass(frozen=True)
class LogGroupArgs:
    """Inputs of `encrypted_log_group`."""

    retention_days: int
    kms_key_arn: pulumi.Input[str]
    """A key whose policy has the CloudWatchLogs statement (`key_policy(..., logs=True)`)."""
    name: pulumi.Input[str] | None = None
    """The exact name, for logs AWS writes to a fixed name (EKS, RDS, WAF); None: autonamed."""
    tags: dict[str, str] = field(default_factory=dict)


def encrypted_log_group(resource_name: str, args: LogGroupArgs,
                        opts: pulumi.ResourceOptions) -> aws.cloudwatch.LogGroup:
    """A log group encrypted with a customer-managed key. For a service that writes to a
    fixed name, create it before the service (depends_on), or the service creates it first
    without a key."""
    return aws.cloudwatch.LogGroup(resource_name, name=args.name,
                                   retention_in_days=args.retention_days,
                                   kms_key_id=args.kms_key_arn, tags=args.tags, opts=opts)
