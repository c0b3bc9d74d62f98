"""Preflight rules: AWS API constraints, tags and dated offerings.

Three kinds of rule, as terraform-linters/tflint-ruleset-aws does it:
- constraints generated from AWS's own API models: botocore ships every service's model
  (min/max length and value, pattern, enum per request member), so a table maps each
  planned property to its request member and the model supplies the constraint;
- hand-written constraints the models do not carry (documented only in the API reference:
  ALB and target-group names, RDS identifiers, IOPS by volume type and size, ...);
- dated offerings (engine and cluster versions, instance families) from
  data/offerings.yaml, each row with its source and the date it was read.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import ipaddress
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from planner.engine import PlannedResource
from planner.preflight import Context, rule, value

DATA = Path(__file__).parent / "data"
CHECKED = "2026-11-27"


@functools.cache
def offerings() -> dict[str, Any]:
    return yaml.safe_load((DATA / "offerings.yaml").read_text())


# -- constraints from AWS's API models (botocore) ------------------------------------------

# (type token, planned property, service, operation, request member). A dotted property
# reaches into an object input; the member is the API's name for the same value.
API_MEMBERS: tuple[tuple[str, str, str, str, str], ...] = (
    ("aws:iam/role:Role", "name", "iam", "CreateRole", "RoleName"),
    ("aws:iam/role:Role", "path", "iam", "CreateRole", "Path"),
    ("aws:iam/role:Role", "description", "iam", "CreateRole", "Description"),
    ("aws:iam/role:Role", "maxSessionDuration", "iam", "CreateRole", "MaxSessionDuration"),
    ("aws:iam/policy:Policy", "name", "iam", "CreatePolicy", "PolicyName"),
    ("aws:iam/instanceProfile:InstanceProfile", "name", "iam", "CreateInstanceProfile",
     "InstanceProfileName"),
    ("aws:iam/rolePolicy:RolePolicy", "name", "iam", "PutRolePolicy", "PolicyName"),
    ("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "policyArn", "iam",
     "AttachRolePolicy", "PolicyArn"),
    ("aws:cloudwatch/logGroup:LogGroup", "name", "logs", "CreateLogGroup", "logGroupName"),
    ("aws:cloudwatch/logGroup:LogGroup", "retentionInDays", "logs", "PutRetentionPolicy",
     "retentionInDays"),
    ("aws:cloudwatch/metricAlarm:MetricAlarm", "name", "cloudwatch", "PutMetricAlarm",
     "AlarmName"),
    ("aws:cloudwatch/metricAlarm:MetricAlarm", "alarmDescription", "cloudwatch",
     "PutMetricAlarm", "AlarmDescription"),
    ("aws:cloudwatch/metricAlarm:MetricAlarm", "comparisonOperator", "cloudwatch",
     "PutMetricAlarm", "ComparisonOperator"),
    ("aws:cloudwatch/metricAlarm:MetricAlarm", "evaluationPeriods", "cloudwatch",
     "PutMetricAlarm", "EvaluationPeriods"),
    ("aws:cloudwatch/metricAlarm:MetricAlarm", "datapointsToAlarm", "cloudwatch",
     "PutMetricAlarm", "DatapointsToAlarm"),
    ("aws:cloudwatch/metricAlarm:MetricAlarm", "period", "cloudwatch", "PutMetricAlarm",
     "Period"),
    ("aws:cloudwatch/metricAlarm:MetricAlarm", "statistic", "cloudwatch", "PutMetricAlarm",
     "Statistic"),
    ("aws:cloudwatch/metricAlarm:MetricAlarm", "treatMissingData", "cloudwatch",
     "PutMetricAlarm", "TreatMissingData"),
    ("aws:cloudwatch/dashboard:Dashboard", "dashboardName", "cloudwatch", "PutDashboard",
     "DashboardName"),
    ("aws:eks/cluster:Cluster", "name", "eks", "CreateCluster", "name"),
    ("aws:eks/addon:Addon", "addonName", "eks", "CreateAddon", "addonName"),
    ("aws:eks/addon:Addon", "resolveConflictsOnCreate", "eks", "CreateAddon",
     "resolveConflicts"),
    ("aws:eks/accessEntry:AccessEntry", "type", "eks", "CreateAccessEntry", "type"),
    ("aws:autoscaling/group:Group", "name", "autoscaling", "CreateAutoScalingGroup",
     "AutoScalingGroupName"),
    ("aws:autoscaling/group:Group", "healthCheckType", "autoscaling",
     "CreateAutoScalingGroup", "HealthCheckType"),
    ("aws:autoscaling/group:Group", "defaultInstanceWarmup", "autoscaling",
     "CreateAutoScalingGroup", "DefaultInstanceWarmup"),
    ("aws:autoscaling/policy:Policy", "name", "autoscaling", "PutScalingPolicy",
     "PolicyName"),
    ("aws:autoscaling/policy:Policy", "policyType", "autoscaling", "PutScalingPolicy",
     "PolicyType"),
    ("aws:lb/targetGroup:TargetGroup", "port", "elbv2", "CreateTargetGroup", "Port"),
    ("aws:lb/targetGroup:TargetGroup", "protocol", "elbv2", "CreateTargetGroup", "Protocol"),
    ("aws:lb/targetGroup:TargetGroup", "targetType", "elbv2", "CreateTargetGroup",
     "TargetType"),
    ("aws:lb/targetGroup:TargetGroup", "healthCheck.path", "elbv2", "CreateTargetGroup",
     "HealthCheckPath"),
    ("aws:lb/targetGroup:TargetGroup", "healthCheck.interval", "elbv2", "CreateTargetGroup",
     "HealthCheckIntervalSeconds"),
    ("aws:lb/targetGroup:TargetGroup", "healthCheck.timeout", "elbv2", "CreateTargetGroup",
     "HealthCheckTimeoutSeconds"),
    ("aws:lb/targetGroup:TargetGroup", "healthCheck.healthyThreshold", "elbv2",
     "CreateTargetGroup", "HealthyThresholdCount"),
    ("aws:lb/targetGroup:TargetGroup", "healthCheck.unhealthyThreshold", "elbv2",
     "CreateTargetGroup", "UnhealthyThresholdCount"),
    ("aws:lb/listener:Listener", "port", "elbv2", "CreateListener", "Port"),
    ("aws:lb/listener:Listener", "protocol", "elbv2", "CreateListener", "Protocol"),
    ("aws:lb/listenerRule:ListenerRule", "priority", "elbv2", "CreateRule", "Priority"),
    ("aws:lb/loadBalancer:LoadBalancer", "loadBalancerType", "elbv2", "CreateLoadBalancer",
     "Type"),
    ("aws:kms/key:Key", "description", "kms", "CreateKey", "Description"),
    ("aws:kms/key:Key", "deletionWindowInDays", "kms", "ScheduleKeyDeletion",
     "PendingWindowInDays"),
    ("aws:kms/alias:Alias", "name", "kms", "CreateAlias", "AliasName"),
    ("aws:acm/certificate:Certificate", "domainName", "acm", "RequestCertificate",
     "DomainName"),
    ("aws:acm/certificate:Certificate", "validationMethod", "acm", "RequestCertificate",
     "ValidationMethod"),
    ("aws:ec2/flowLog:FlowLog", "trafficType", "ec2", "CreateFlowLogs", "TrafficType"),
    ("aws:ec2/flowLog:FlowLog", "logDestinationType", "ec2", "CreateFlowLogs",
     "LogDestinationType"),
    ("aws:ec2/vpcEndpoint:VpcEndpoint", "vpcEndpointType", "ec2", "CreateVpcEndpoint",
     "VpcEndpointType"),
    ("aws:ec2/natGateway:NatGateway", "connectivityType", "ec2", "CreateNatGateway",
     "ConnectivityType"),
    ("aws:ec2/eip:Eip", "domain", "ec2", "AllocateAddress", "Domain"),
    ("aws:elasticache/replicationGroup:ReplicationGroup", "clusterMode", "elasticache",
     "CreateReplicationGroup", "ClusterMode"),
    ("aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication",
     "retentionPeriod", "rds", "StartDBInstanceAutomatedBackupsReplication",
     "BackupRetentionPeriod"),
)


@functools.cache
def _botocore_session() -> Any:
    import botocore.session

    return botocore.session.get_session()


@functools.cache
def api_member(service: str, operation: str, member: str) -> Any:
    """The botocore shape of one request member (its metadata holds min, max, pattern)."""
    model = _botocore_session().get_service_model(service)
    shape = model.operation_model(operation).input_shape
    if member not in shape.members:
        raise KeyError(f"{service} {operation} has no member {member}; members: "
                       + ", ".join(shape.members))
    return shape.members[member]


def botocore_version() -> str:
    import botocore

    return botocore.__version__


@functools.cache
def _java_pattern(pattern: str) -> re.Pattern[str] | None:
    # AWS's patterns are Java regexes, matched against the whole value. \p{..} classes have
    # no equivalent in Python's re: such a pattern is not checked (length still is).
    try:
        return re.compile(pattern)
    except re.error:
        return None


def model_problem(shape: Any, planned: Any) -> str | None:
    """What the API model says is wrong with `planned`, or None."""
    meta = shape.metadata
    enum = getattr(shape, "enum", None) or []
    if shape.type_name == "string" and isinstance(planned, str):
        if "min" in meta and len(planned) < meta["min"]:
            return f"{planned!r} is {len(planned)} characters; the API's minimum is {meta['min']}"
        if "max" in meta and len(planned) > meta["max"]:
            return f"{planned!r} is {len(planned)} characters; the API's maximum is {meta['max']}"
        if enum and planned not in enum:
            return f"{planned!r} is not one of {', '.join(enum)}"
        pattern = _java_pattern(meta["pattern"]) if "pattern" in meta else None
        if pattern is not None and not pattern.fullmatch(planned):
            return f"{planned!r} does not match the API's pattern {meta['pattern']}"
    if shape.type_name in ("integer", "long") and isinstance(planned, (int, float)) \
            and not isinstance(planned, bool):
        if "min" in meta and planned < meta["min"]:
            return f"is {planned}; the API's minimum is {meta['min']}"
        if "max" in meta and planned > meta["max"]:
            return f"is {planned}; the API's maximum is {meta['max']}"
    return None


@rule("aws-api-model", "Lengths, patterns, enums and ranges of every planned property "
      "mapped to its AWS API request member",
      source="AWS API models as shipped in botocore (data/<service>/*/service-2.json)",
      checked=CHECKED)
def api_model(ctx: Context) -> Iterator:
    by_type: dict[str, list[tuple[str, str, str, str]]] = {}
    for token, prop, service, op, member in API_MEMBERS:
        by_type.setdefault(token, []).append((prop, service, op, member))
    for res in ctx.resources:
        for prop, service, op, member in by_type.get(res.type, ()):
            planned = value(res, prop)
            if planned is None or planned == "[unknown]":
                continue
            problem = model_problem(api_member(service, op, member), planned)
            if problem:
                yield ctx.error(res, prop, problem, source=(
                    f"AWS API model {service} {op}.{member} (botocore {botocore_version()})"))


# -- hand-written constraints (the API reference, not the model) ---------------------------

def _name_rule(pattern: str, max_len: int, words: str) -> tuple[re.Pattern[str], int, str]:
    return re.compile(pattern), max_len, words


ALB_NAME = _name_rule(r"(?!internal-)[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?", 32,
                      "1-32 letters, digits and hyphens, not starting or ending with a "
                      "hyphen nor starting with 'internal-'")
# (type, property) -> (pattern, max length, words, source)
NAMES: dict[tuple[str, str], tuple[re.Pattern[str], int, str, str]] = {
    ("aws:lb/loadBalancer:LoadBalancer", "name"): (
        *ALB_NAME, "https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/"
        "API_CreateLoadBalancer.html (Name)"),
    ("aws:lb/targetGroup:TargetGroup", "name"): (
        re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"), 32,
        "1-32 letters, digits and hyphens, not starting or ending with a hyphen",
        "https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/"
        "API_CreateTargetGroup.html (Name)"),
    ("aws:rds/instance:Instance", "identifier"): (
        re.compile(r"[a-z](?!.*--)[a-z0-9-]*(?<!-)"), 63,
        "1-63 lowercase letters, digits and hyphens, starting with a letter, no two "
        "consecutive hyphens, not ending with a hyphen",
        "https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBInstance.html"
        " (DBInstanceIdentifier)"),
    ("aws:rds/parameterGroup:ParameterGroup", "name"): (
        re.compile(r"[a-z](?!.*--)[a-z0-9-]*(?<!-)"), 255,
        "1-255 lowercase letters, digits and hyphens, starting with a letter, no two "
        "consecutive hyphens, not ending with a hyphen",
        "https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/"
        "API_CreateDBParameterGroup.html (DBParameterGroupName)"),
    ("aws:rds/subnetGroup:SubnetGroup", "name"): (
        re.compile(r"[a-z0-9 ._-]+"), 255,
        "1-255 lowercase letters, digits, spaces, periods, underscores and hyphens",
        "https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/"
        "API_CreateDBSubnetGroup.html (DBSubnetGroupName)"),
    ("aws:rds/instance:Instance", "finalSnapshotIdentifier"): (
        re.compile(r"[A-Za-z](?!.*--)[A-Za-z0-9-]*(?<!-)"), 255,
        "1-255 letters, digits and hyphens, starting with a letter, no two consecutive "
        "hyphens, not ending with a hyphen",
        "https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DeleteDBInstance.html"
        " (FinalDBSnapshotIdentifier)"),
    ("aws:elasticache/replicationGroup:ReplicationGroup", "replicationGroupId"): (
        re.compile(r"[a-z](?!.*--)[a-z0-9-]*(?<!-)"), 40,
        "1-40 lowercase letters, digits and hyphens, starting with a letter, no two "
        "consecutive hyphens, not ending with a hyphen",
        "https://docs.aws.amazon.com/AmazonElastiCache/latest/APIReference/"
        "API_CreateReplicationGroup.html (ReplicationGroupId)"),
    ("aws:elasticache/subnetGroup:SubnetGroup", "name"): (
        re.compile(r"[a-z0-9-]+"), 255, "1-255 lowercase letters, digits and hyphens",
        "https://docs.aws.amazon.com/AmazonElastiCache/latest/APIReference/"
        "API_CreateCacheSubnetGroup.html (CacheSubnetGroupName)"),
    ("aws:elasticache/parameterGroup:ParameterGroup", "name"): (
        re.compile(r"[a-z](?!.*--)[a-z0-9-]*(?<!-)"), 255,
        "letters, digits and hyphens, starting with a letter, no two consecutive hyphens, "
        "not ending with a hyphen",
        "https://docs.aws.amazon.com/AmazonElastiCache/latest/APIReference/"
        "API_CreateCacheParameterGroup.html"),
    ("aws:ec2/securityGroup:SecurityGroup", "name"): (
        re.compile(r"(?!sg-)[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]+"), 255,
        "1-255 of a-z A-Z 0-9 spaces and ._-:/()#,@[]+=&;{}!$*, not starting with 'sg-'",
        "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/"
        "API_CreateSecurityGroup.html (GroupName)"),
    ("aws:ec2/securityGroup:SecurityGroup", "description"): (
        re.compile(r"[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]+"), 255,
        "1-255 of a-z A-Z 0-9 spaces and ._-:/()#,@[]+=&;{}!$*",
        "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/"
        "API_CreateSecurityGroup.html (GroupDescription)"),
    ("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "description"): (
        re.compile(r"[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]*"), 255,
        "0-255 of a-z A-Z 0-9 spaces and ._-:/()#,@[]+=&;{}!$*",
        "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_IpRange.html"),
    ("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", "description"): (
        re.compile(r"[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]*"), 255,
        "0-255 of a-z A-Z 0-9 spaces and ._-:/()#,@[]+=&;{}!$*",
        "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_IpRange.html"),
    ("aws:ec2/launchTemplate:LaunchTemplate", "name"): (
        re.compile(r"[a-zA-Z0-9().\-/_]{3,}"), 128,
        "3-128 of letters, digits and ( ) . - / _",
        "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/"
        "API_CreateLaunchTemplate.html (LaunchTemplateName)"),
    ("aws:sns/topic:Topic", "name"): (
        re.compile(r"[A-Za-z0-9_-]+"), 256, "1-256 letters, digits, underscores and hyphens",
        "https://docs.aws.amazon.com/sns/latest/api/API_CreateTopic.html (Name)"),
    ("aws:s3/bucket:Bucket", "bucket"): (
        re.compile(r"(?!xn--|sthree-|amzn-s3-demo-)[a-z0-9](?!.*\.\.)[a-z0-9.-]{1,61}"
                   r"[a-z0-9](?<!-s3alias)(?<!--ol-s3)(?<!\.mrap)(?<!--x-s3)"), 63,
        "3-63 lowercase letters, digits, dots and hyphens, beginning and ending with a letter "
        "or digit, no '..', no reserved prefix or suffix",
        "https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html"),
    ("aws:kms/alias:Alias", "name"): (
        re.compile(r"alias/(?!aws/)[a-zA-Z0-9/_-]+"), 256,
        "'alias/' then letters, digits, / _ -, not 'alias/aws/' (reserved)",
        "https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateAlias.html"),
}


@rule("aws-names", "Names and identifiers AWS documents but its API models do not carry: "
      "ALB and target-group names, RDS and ElastiCache identifiers, security-group names "
      "and rule descriptions, launch templates, SNS topics, S3 buckets, KMS aliases",
      source="AWS API references (per property, in each finding)", checked=CHECKED)
def names(ctx: Context) -> Iterator:
    for res in ctx.resources:
        for (token, prop), (pattern, max_len, words, source) in NAMES.items():
            if res.type != token:
                continue
            planned = value(res, prop)
            if not isinstance(planned, str) or planned == "[unknown]":
                continue
            if len(planned) > max_len or not pattern.fullmatch(planned):
                yield ctx.error(res, prop, f"{planned!r} ({len(planned)} characters) is not "
                                f"{words}", source=source)


RDS_STORAGE = ("https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/"
               "CHAP_Storage.html#gp3-storage (gp3, io1, io2 for PostgreSQL)")


def rds_iops_problem(storage_type: str, gib: int, iops: int | None) -> str | None:
    """What RDS for PostgreSQL refuses in (volume type, size, IOPS), or None."""
    if storage_type == "gp3":
        if gib < 400:
            if iops:
                return (f"gp3 below 400 GiB ({gib} GiB) has a fixed 3,000 IOPS baseline; RDS "
                        f"refuses a provisioned iops ({iops}): leave it unset")
            return None
        if iops is not None and not 12_000 <= iops <= 64_000:
            return f"gp3 from 400 GiB takes 12,000-64,000 IOPS; planned {iops}"
        if iops is not None and iops > 500 * gib:
            return f"gp3 allows at most 500 IOPS per GiB ({500 * gib} at {gib} GiB); planned {iops}"
        return None
    if storage_type in ("io1", "io2"):
        if iops is None:
            return f"{storage_type} needs a provisioned iops"
        if not 1_000 <= iops <= 256_000:
            return f"{storage_type} takes 1,000-256,000 IOPS; planned {iops}"
        ratio = 50 if storage_type == "io1" else 1_000
        if iops > ratio * gib:
            return (f"{storage_type} allows at most {ratio} IOPS per GiB ({ratio * gib} at "
                    f"{gib} GiB); planned {iops}")
    return None


@rule("aws-ranges", "Numeric ranges and combinations: RDS storage and IOPS by volume type "
      "and size, backup retention, ElastiCache node counts, target-group health-check "
      "timing, Auto Scaling sizes, CloudWatch alarm periods",
      source="AWS user guides and API references (per finding)", checked=CHECKED)
def ranges(ctx: Context) -> Iterator:
    for res in ctx.of_type("aws:rds/instance:Instance"):
        storage = value(res, "allocatedStorage")
        kind = value(res, "storageType") or "gp2"
        if isinstance(storage, int):
            if not 20 <= storage <= 65_536:
                yield ctx.error(res, "allocatedStorage", f"is {storage} GiB; RDS for "
                                "PostgreSQL takes 20-65,536", source=RDS_STORAGE)
            problem = rds_iops_problem(kind, storage, value(res, "iops"))
            if problem:
                yield ctx.error(res, "iops", problem, source=RDS_STORAGE)
        retention = value(res, "backupRetentionPeriod")
        if isinstance(retention, int) and not 0 <= retention <= 35:
            yield ctx.error(res, "backupRetentionPeriod", f"is {retention}; RDS keeps 0-35 "
                            "days", source="https://docs.aws.amazon.com/AmazonRDS/latest/"
                            "APIReference/API_CreateDBInstance.html (BackupRetentionPeriod)")
    for res in ctx.of_type("aws:elasticache/replicationGroup:ReplicationGroup"):
        source = ("https://docs.aws.amazon.com/AmazonElastiCache/latest/APIReference/"
                  "API_CreateReplicationGroup.html")
        count = value(res, "numCacheClusters")
        if isinstance(count, int) and not 1 <= count <= 6:
            yield ctx.error(res, "numCacheClusters", f"is {count}; a replication group "
                            "without cluster mode has 1-6 nodes (a primary and up to 5 "
                            "replicas)", source=source)
        replicas = value(res, "replicasPerNodeGroup")
        if isinstance(replicas, int) and not 0 <= replicas <= 5:
            yield ctx.error(res, "replicasPerNodeGroup", f"is {replicas}; 0-5 allowed",
                            source=source)
        if value(res, "automaticFailoverEnabled") and isinstance(count, int) and count < 2:
            yield ctx.error(res, "automaticFailoverEnabled", "needs at least 2 nodes "
                            f"(numCacheClusters is {count})", source=source)
    for res in ctx.of_type("aws:lb/targetGroup:TargetGroup"):
        interval = value(res, "healthCheck.interval")
        timeout = value(res, "healthCheck.timeout")
        if isinstance(interval, int) and isinstance(timeout, int) and timeout >= interval:
            yield ctx.error(res, "healthCheck.timeout", f"is {timeout} s but the interval is "
                            f"{interval} s; the timeout must be shorter than the interval",
                            source="https://docs.aws.amazon.com/elasticloadbalancing/latest/"
                            "APIReference/API_CreateTargetGroup.html")
    for res in ctx.of_type("aws:autoscaling/group:Group"):
        low, high = value(res, "minSize"), value(res, "maxSize")
        desired = value(res, "desiredCapacity")
        if isinstance(low, int) and isinstance(high, int) and low > high:
            yield ctx.error(res, "minSize", f"{low} is above maxSize {high}",
                            source="https://docs.aws.amazon.com/autoscaling/ec2/APIReference/"
                            "API_CreateAutoScalingGroup.html")
        if all(isinstance(v, int) for v in (low, high, desired)) and \
                not low <= desired <= high:
            yield ctx.error(res, "desiredCapacity", f"{desired} is outside {low}-{high}",
                            source="https://docs.aws.amazon.com/autoscaling/ec2/APIReference/"
                            "API_CreateAutoScalingGroup.html")
    for res in ctx.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
        yield from _alarm_periods(ctx, res)
        missing = value(res, "treatMissingData")
        if missing is not None and missing not in TREAT_MISSING:
            yield ctx.error(res, "treatMissingData", f"{missing!r} is not one of "
                            f"{', '.join(TREAT_MISSING)}", source=ALARM_SOURCE)
    for res in ctx.of_type("aws:cloudwatch/logGroup:LogGroup"):
        days = value(res, "retentionInDays")
        if days is not None and days not in LOG_RETENTION_DAYS:
            yield ctx.error(res, "retentionInDays", f"is {days}; CloudWatch Logs keeps one of "
                            f"{', '.join(map(str, LOG_RETENTION_DAYS))} days",
                            source="https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/"
                            "APIReference/API_PutRetentionPolicy.html")
    for res in ctx.of_type("aws:kms/key:Key"):
        window = value(res, "deletionWindowInDays")
        if isinstance(window, int) and not 7 <= window <= 30:
            yield ctx.error(res, "deletionWindowInDays", f"is {window}; KMS waits 7-30 days",
                            source="https://docs.aws.amazon.com/kms/latest/APIReference/"
                            "API_ScheduleKeyDeletion.html (PendingWindowInDays)")


TREAT_MISSING = ("breaching", "notBreaching", "ignore", "missing")
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096,
                      1827, 2192, 2557, 2922, 3288, 3653)


ALARM_SOURCE = ("https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/"
                "API_PutMetricAlarm.html (Period, EvaluationPeriods)")


def _alarm_periods(ctx: Context, res: PlannedResource) -> Iterator:
    periods = []
    if isinstance(value(res, "period"), int):
        periods.append(("period", value(res, "period")))
    for i, query in enumerate(value(res, "metricQueries") or []):
        period = (query.get("metric") or {}).get("period") if isinstance(query, dict) else None
        if isinstance(period, int):
            periods.append((f"metricQueries[{i}].metric.period", period))
    evaluations = value(res, "evaluationPeriods")
    for prop, period in periods:
        if period not in (10, 20, 30) and period % 60:
            yield ctx.error(res, prop, f"is {period} s; CloudWatch takes 10, 20, 30 or a "
                            "multiple of 60", source=ALARM_SOURCE)
        if isinstance(evaluations, int) and period * evaluations > 86_400 and period < 3600:
            yield ctx.error(res, "evaluationPeriods", f"{evaluations} x {period} s is over "
                            "one day; alarms on periods under an hour evaluate at most 86,400 s",
                            source=ALARM_SOURCE)


# -- tags ------------------------------------------------------------------------------------

TAG_SOURCE = ("https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html "
              "(Tag naming limits and requirements)")
# Letters, spaces, digits and _ . : / = + - @ (the documented set, ASCII letters and
# digits plus any Unicode letter).
_TAG_TEXT = re.compile(r"[\w\s.:/=+\-@]*", re.UNICODE)
MAX_TAGS = 50


def _provider_tags(ctx: Context, res: PlannedResource) -> dict[str, str]:
    if not res.provider:
        return {}
    urn = res.provider.rsplit("::", 1)[0]
    for provider in ctx.plan.resources:
        if provider.urn == urn:
            tags = (value(provider, "defaultTags") or {})
            if isinstance(tags, str):  # providers carry object inputs as JSON strings
                tags = json.loads(tags)
            return dict(tags.get("tags") or {})
    return {}


@rule("aws-tags", "Tag keys and values AWS accepts, at most 50 a resource counting the "
      "provider's default tags, no `aws:` prefix",
      source=TAG_SOURCE, checked=CHECKED)
def tags(ctx: Context) -> Iterator:
    for res in ctx.resources:
        if not res.type.startswith("aws:"):
            continue
        own = value(res, "tags")
        if not isinstance(own, dict) and not res.provider:
            continue
        merged = {**_provider_tags(ctx, res), **(own if isinstance(own, dict) else {})}
        if not merged or "tags" not in res.inputs and not own:
            continue
        if len(merged) > MAX_TAGS:
            yield ctx.error(res, "tags", f"{len(merged)} tags with the provider's default "
                            f"tags; AWS allows {MAX_TAGS}")
        for key, val in merged.items():
            if not 1 <= len(key) <= 128 or not _TAG_TEXT.fullmatch(key):
                yield ctx.error(res, f"tags.{key}", "a tag key is 1-128 letters, digits, "
                                "spaces and _ . : / = + - @")
            elif key.lower().startswith("aws:"):
                yield ctx.error(res, f"tags.{key}", "the aws: prefix is reserved for AWS")
            if not isinstance(val, str) or len(val) > 256 or not _TAG_TEXT.fullmatch(val):
                yield ctx.error(res, f"tags.{key}", f"value {val!r} is not 0-256 letters, "
                                "digits, spaces and _ . : / = + - @")


# -- dated offerings ---------------------------------------------------------------------------

def _date(text: Any) -> dt.date:
    return text if isinstance(text, dt.date) else dt.date.fromisoformat(str(text))


def support_finding(ctx: Context, res: PlannedResource, prop: str, what: str,
                    ends: dt.date | None, source: str, warn_days: int = 90) -> Iterator:
    """Error past the end of standard support, warning within `warn_days` of it."""
    if ends is None:
        return
    if ctx.today > ends:
        yield ctx.error(res, prop, f"{what} left standard support on {ends}; new resources "
                        "on it are billed as extended support: choose a supported version",
                        source=source)
    elif (ends - ctx.today).days <= warn_days:
        yield ctx.warning(res, prop, f"{what} leaves standard support on {ends} "
                          f"({(ends - ctx.today).days} days): plan the upgrade", source=source)


@rule("aws-rds-engine-version", "RDS for PostgreSQL engine versions AWS still creates, and "
      "their end of standard support (a minor version pins a version AWS retires)",
      source="data/offerings.yaml rds_postgres (RDS release calendar, AWS Health notices)",
      checked=CHECKED)
def rds_engine_version(ctx: Context) -> Iterator:
    data = offerings()["rds_postgres"]
    majors = {row["major"]: row for row in data["majors"]}
    for res in ctx.of_type("aws:rds/instance:Instance"):
        version = value(res, "engineVersion")
        if value(res, "engine") not in (None, "postgres") or not isinstance(version, str):
            continue
        major = version.split(".")[0]
        if major not in majors:
            yield ctx.error(res, "engineVersion", f"{version!r}: RDS for PostgreSQL creates "
                            f"majors {', '.join(majors)}", source=data["majors"][0]["source"])
            continue
        for retired in data["retired_minors"]:
            if version in retired["versions"] and ctx.today >= _date(retired["no_create_from"]):
                yield ctx.error(res, "engineVersion", f"{version} can no longer be created "
                                f"(since {retired['no_create_from']}); name the major version "
                                f"({major!r}) and let automatic minor upgrades choose, or "
                                f"{retired['upgrade_to'].get(major, 'a newer minor')}+",
                                source=retired["source"])
        if "." in version and value(res, "autoMinorVersionUpgrade") is not False:
            yield ctx.error(res, "engineVersion", f"{version} names a minor version while "
                            "automatic minor upgrades are on: after AWS upgrades the "
                            "instance, the next deploy would try to downgrade it; name the "
                            f"major ({major!r}) or turn autoMinorVersionUpgrade off",
                            source="pulumi_aws rds.Instance engine_version docstring (a "
                            "version prefix with auto_minor_version_upgrade)")
        row = majors[major]
        yield from support_finding(ctx, res, "engineVersion", f"PostgreSQL {major}",
                                   _date(row["standard_support_ends"]), row["source"])


@rule("aws-rds-instance-class", "RDS instance classes: `db.<family>.<size>` of a family RDS "
      "for PostgreSQL offers",
      source="data/offerings.yaml rds_postgres.instance_families", checked=CHECKED)
def rds_instance_class(ctx: Context) -> Iterator:
    data = offerings()["rds_postgres"]["instance_families"]
    for res in ctx.of_type("aws:rds/instance:Instance"):
        cls = value(res, "instanceClass")
        if not isinstance(cls, str):
            continue
        family = ".".join(cls.split(".")[:2])
        if cls.count(".") != 2 or family not in data["families"]:
            yield ctx.error(res, "instanceClass", f"{cls!r} is not a class of a family RDS for "
                            f"PostgreSQL offers ({', '.join(data['families'])})",
                            source=data["source"])


@rule("aws-eks-version", "EKS Kubernetes versions: refused past standard support, warned "
      "90 days before",
      source="data/offerings.yaml eks (EKS Kubernetes version lifecycle)", checked=CHECKED)
def eks_version(ctx: Context) -> Iterator:
    data = offerings()["eks"]
    versions = {row["version"]: row for row in data["versions"]}
    for res in ctx.of_type("aws:eks/cluster:Cluster"):
        version = value(res, "version")
        if not isinstance(version, str):
            continue
        row = versions.get(version)
        if row is None:
            yield ctx.error(res, "version", f"{version!r} is not an EKS version this project "
                            f"knows ({', '.join(versions)}); add it to "
                            "planner/preflight/data/offerings.yaml with its dates",
                            source=data["versions"][-1]["source"])
            continue
        yield from support_finding(ctx, res, "version", f"Kubernetes {version} on EKS",
                                   _date(row["standard_support_ends"]), row["source"],
                                   data["warn_days"])


@rule("aws-elasticache-engine", "ElastiCache engine and version offered, parameter-group "
      "family matching it, node type of a current family",
      source="data/offerings.yaml elasticache", checked=CHECKED)
def elasticache_engine(ctx: Context) -> Iterator:
    data = offerings()["elasticache"]
    offered = {(row["engine"], row["version"]): row for row in data["engines"]}
    groups = {r.urn: r for r in ctx.of_type("aws:elasticache/parameterGroup:ParameterGroup")}
    for res in ctx.of_type("aws:elasticache/replicationGroup:ReplicationGroup"):
        engine = value(res, "engine") or "redis"
        version = value(res, "engineVersion")
        if isinstance(version, str):
            short = ".".join(version.split(".")[:2])
            row = offered.get((engine, short))
            if row is None:
                yield ctx.error(res, "engineVersion", f"{engine} {version} is not offered; "
                                "offered: " + ", ".join(f"{e} {v}" for e, v in offered),
                                source=data["engines"][0]["source"])
            else:
                ends = row.get("standard_support_ends")
                yield from support_finding(ctx, res, "engineVersion", f"{engine} {short}",
                                           _date(ends) if ends else None, row["source"])
                family = data["parameter_families"].get(f"{engine}{short}")
                for group in groups.values():
                    if value(group, "family") not in (None, family):
                        yield ctx.error(group, "family", f"{value(group, 'family')} does not "
                                        f"match {engine} {short} (family {family})",
                                        source=row["source"])
        node = value(res, "nodeType")
        families = data["node_families"]
        if isinstance(node, str) and ".".join(node.split(".")[:2]) not in families["families"]:
            yield ctx.error(res, "nodeType", f"{node!r} is not of a current node family "
                            f"({', '.join(families['families'])})", source=families["source"])


@rule("aws-cidr", "VPC and subnet CIDR blocks: valid, /16 to /28, subnets inside their VPC",
      source="https://docs.aws.amazon.com/vpc/latest/userguide/vpc-cidr-blocks.html",
      checked=CHECKED)
def cidrs(ctx: Context) -> Iterator:
    vpcs: dict[str, ipaddress.IPv4Network] = {}
    for res in ctx.of_type("aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet"):
        text = value(res, "cidrBlock")
        if not isinstance(text, str):
            continue
        try:
            net = ipaddress.IPv4Network(text)
        except ValueError as exc:
            yield ctx.error(res, "cidrBlock", f"{text!r} is not an IPv4 CIDR block ({exc})")
            continue
        if not 16 <= net.prefixlen <= 28:
            yield ctx.error(res, "cidrBlock", f"{text} is a /{net.prefixlen}; AWS takes /16 "
                            "to /28")
        if res.type == "aws:ec2/vpc:Vpc":
            vpcs[res.id or res.urn] = net
    for res in ctx.of_type("aws:ec2/subnet:Subnet"):
        text, vpc = value(res, "cidrBlock"), value(res, "vpcId")
        if isinstance(text, str) and vpc in vpcs:
            try:
                net = ipaddress.IPv4Network(text)
            except ValueError:
                continue
            if not net.subnet_of(vpcs[vpc]):
                yield ctx.error(res, "cidrBlock", f"{text} is outside its VPC {vpcs[vpc]}")


# -- wiring a real deploy depends on -----------------------------------------------------------

def _node_groups(ctx: Context) -> set[str]:
    """URNs of Auto Scaling groups whose instances join an EKS cluster: access entry
    (EC2_LINUX) -> its role -> the instance profile of that role -> the launch template
    using the profile -> the groups launching that template."""
    roles = {str(value(e, "principalArn")).rsplit("/", 1)[-1]
             for e in ctx.of_type("aws:eks/accessEntry:AccessEntry")
             if value(e, "type") == "EC2_LINUX"}
    profiles = {value(p, "arn") for p in ctx.of_type("aws:iam/instanceProfile:InstanceProfile")
                if value(p, "role") in roles}
    templates = {t.id for t in ctx.of_type("aws:ec2/launchTemplate:LaunchTemplate")
                 if (value(t, "iamInstanceProfile") or {}).get("arn") in profiles}
    groups = set()
    for group in ctx.of_type("aws:autoscaling/group:Group"):
        spec = value(group, "launchTemplate") or {}
        mixed = ((value(group, "mixedInstancesPolicy") or {}).get("launchTemplate") or {}) \
            .get("launchTemplateSpecification") or {}
        if spec.get("id") in templates or mixed.get("launchTemplateId") in templates:
            groups.add(group.urn)
    return groups


@rule("aws-eks-node-health-check", "An Auto Scaling group of EKS nodes uses EC2 health "
      "checks: with ELB ones, one failing app health check on a NodePort terminates a node "
      "and every pod on it",
      source="https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-health-"
      "checks.html (an instance failing the ELB health check is replaced); EKS nodes are "
      "judged by the kubelet (node conditions), not by one service's target group",
      checked=CHECKED)
def eks_node_health_check(ctx: Context) -> Iterator:
    nodes = _node_groups(ctx)
    for group in ctx.of_type("aws:autoscaling/group:Group"):
        if group.urn in nodes and value(group, "healthCheckType") == "ELB":
            yield ctx.error(group, "healthCheckType", "is ELB on a group of EKS nodes; use EC2")


@rule("aws-listener-waits-for-certificate", "An HTTPS listener uses a certificate that is "
      "issued: the CertificateValidation's ARN (or an ARN given in config), never a "
      "just-requested Certificate's",
      source="ELBv2 CreateListener refuses a certificate that is not issued yet "
      "(CertificateNotFound; aws/aws-cdk#6081)", checked=CHECKED)
def listener_certificate(ctx: Context) -> Iterator:
    requested = {value(c, "arn") or c.id
                 for c in ctx.of_type("aws:acm/certificate:Certificate")}
    validations = {v.urn for v in
                   ctx.of_type("aws:acm/certificateValidation:CertificateValidation")}
    for listener in ctx.of_type("aws:lb/listener:Listener"):
        arn = value(listener, "certificateArn")
        if arn in requested and not validations & set(listener.options.get("depends_on", [])):
            yield ctx.error(listener, "certificateArn", "is a requested certificate's ARN "
                            "with no CertificateValidation in between; the listener would be "
                            "created before ACM issues it")


@rule("acm-validation-records", "ACM's DNS validation records in Cloudflare are DNS-only "
      "CNAMEs with a TTL Cloudflare accepts, and each is created by one stack only",
      source="https://docs.aws.amazon.com/acm/latest/userguide/dns-validation.html; "
      "pulumi_cloudflare 6.x DnsRecord (ttl 1 = automatic, else 60-86400); a record created "
      "twice is refused (Cloudflare 81053, hashicorp/terraform-provider-aws#13653)",
      checked=CHECKED)
def acm_validation_records(ctx: Context) -> Iterator:
    seen: dict[str, str] = {}
    for plan in ctx.environment.values():
        if plan.stack == ctx.stack:
            break
        for rec in plan.resources:
            if rec.type == "cloudflare:index/dnsRecord:DnsRecord" and \
                    str(value(rec, "content")).endswith("acm-validations.aws"):
                seen[str(value(rec, "name"))] = plan.stack
    for rec in ctx.of_type("cloudflare:index/dnsRecord:DnsRecord"):
        if not str(value(rec, "content")).endswith("acm-validations.aws"):
            continue
        if value(rec, "proxied"):
            yield ctx.error(rec, "proxied", "is true; ACM reads the CNAME itself, so it must "
                            "be DNS-only")
        ttl = value(rec, "ttl")
        if isinstance(ttl, int) and ttl != 1 and not 60 <= ttl <= 86_400:
            yield ctx.error(rec, "ttl", f"is {ttl}; Cloudflare takes 1 (automatic) or 60-86400")
        name = str(value(rec, "name"))
        if name in seen:
            yield ctx.error(rec, "name", f"{name} is already created by stack {seen[name]}; "
                            "ACM issues one record per name and account, so create it once "
                            "(compute.dnsValidation external here)")


@rule("aws-instance-type-offered", "Every EC2 instance type a launch template or a mixed "
      "instances policy names is offered in the stack's region and in each availability "
      "zone its Auto Scaling group spans",
      source="EC2 DescribeInstanceTypeOfferings as shipped in moto's data "
      "(ec2/resources/instance_type_offerings; planner/mocks.py pins the version)",
      checked=CHECKED)
def instance_type_offered(ctx: Context) -> Iterator:
    from planner.mocks import MOTO_VERSION, instance_type_offered, instance_types_in_zone

    source = f"moto {MOTO_VERSION} instance_type_offerings (region and availability-zone)"
    zones = {s.id: value(s, "availabilityZone") for s in ctx.of_type("aws:ec2/subnet:Subnet")}
    templates: dict[str | None, set[str]] = {}
    for lt in ctx.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        kind = value(lt, "instanceType")
        if isinstance(kind, str):
            templates.setdefault(lt.id, set()).add(kind)
            if lt.region and not instance_type_offered(lt.region, kind):
                yield ctx.error(lt, "instanceType", f"{kind} is not offered in {lt.region}",
                                source=source)
    for group in ctx.of_type("aws:autoscaling/group:Group"):
        kinds = set(templates.get((value(group, "launchTemplate") or {}).get("id"), ()))
        policy = value(group, "mixedInstancesPolicy") or {}
        for override in (policy.get("launchTemplate") or {}).get("overrides") or []:
            if isinstance(override.get("instanceType"), str):
                kinds.add(override["instanceType"])
        for subnet in value(group, "vpcZoneIdentifiers") or []:
            az = zones.get(subnet)
            if not isinstance(az, str):
                continue
            for kind in sorted(kinds - instance_types_in_zone(az)):
                yield ctx.error(group, "vpcZoneIdentifiers", f"{kind} is not offered in "
                                f"{az}: instances cannot launch there", source=source)


@rule("aws-eks-endpoint-reachable", "The Kubernetes provider reaches the EKS API from where "
      "`pulumi up` runs: with no public endpoint, it must run inside the VPC",
      source="https://docs.aws.amazon.com/eks/latest/userguide/cluster-endpoint.html "
      "(private-only endpoint: reachable only from the VPC or connected networks)",
      checked=CHECKED)
def eks_endpoint_reachable(ctx: Context) -> Iterator:
    for cluster in ctx.of_type("aws:eks/cluster:Cluster"):
        vpc = value(cluster, "vpcConfig") or {}
        if vpc.get("endpointPublicAccess") is False:
            yield ctx.warning(cluster, "vpcConfig.endpointPublicAccess", "is false: `pulumi "
                              "up` must run inside the VPC (or a network joined to it) to "
                              "create the Kubernetes resources; or list the runner's egress "
                              "CIDRs in sofacover:kubernetes.endpointPublicAccessCidrs")
        elif "0.0.0.0/0" in (vpc.get("publicAccessCidrs") or ["0.0.0.0/0"]):
            yield ctx.warning(cluster, "vpcConfig.publicAccessCidrs", "the API endpoint is "
                              "open to the internet (only IAM authentication guards it)")


@rule("aws-eks-subnet-zones", "EKS control-plane subnets are not in a zone id EKS refuses "
      "(use1-az3, usw1-az2, cac1-az3)",
      source="https://docs.aws.amazon.com/eks/latest/userguide/network-reqs.html (subnet "
      "requirements; UnsupportedAvailabilityZoneException)", checked=CHECKED)
def eks_subnet_zones(ctx: Context) -> Iterator:
    from components.network import EKS_UNSUPPORTED_ZONE_IDS

    zone_ids = {s.id: value(s, "availabilityZoneId") for s in ctx.of_type("aws:ec2/subnet:Subnet")}
    for cluster in ctx.of_type("aws:eks/cluster:Cluster"):
        for subnet in (value(cluster, "vpcConfig") or {}).get("subnetIds") or []:
            if zone_ids.get(subnet) in EKS_UNSUPPORTED_ZONE_IDS:
                yield ctx.error(cluster, "vpcConfig.subnetIds", f"{subnet} is in "
                                f"{zone_ids[subnet]}, where EKS places no control plane")


# -- the rest of what the program creates ------------------------------------------------------

IAM_QUOTAS = ("https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html "
              "(role inline policies: 10,240 characters in all; managed policy 6,144)")
USER_DATA_LIMIT = 16 * 1024
PROTOCOLS = ("tcp", "udp", "icmp", "icmpv6", "-1")


def _decoded_length(text: str) -> int:
    try:
        return len(base64.b64decode(text.strip('"'), validate=True))
    except (binascii.Error, ValueError):
        return len(text.encode())


@rule("aws-limits", "Sizes and ranges AWS enforces on what the program creates beyond its "
      "names: launch-template user data (16 KB), a role's inline policies (10,240 characters "
      "in all), security-group rule ports and protocols, route and endpoint targets in the "
      "stack's region, subnets in a zone of the region",
      source="AWS API references and quotas (per finding)", checked=CHECKED)
def limits(ctx: Context) -> Iterator:
    from planner.mocks import region_zones

    for lt in ctx.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        data = value(lt, "userData")
        if isinstance(data, str) and data != "[unknown]" and \
                _decoded_length(data) > USER_DATA_LIMIT:
            yield ctx.error(lt, "userData", f"is {_decoded_length(data)} bytes; EC2 takes "
                            f"{USER_DATA_LIMIT} at most", source="https://docs.aws.amazon.com/"
                            "AWSEC2/latest/UserGuide/user-data.html (16 KB, before base64)")
    inline: dict[str, int] = {}
    for policy in ctx.of_type("aws:iam/rolePolicy:RolePolicy"):
        text = value(policy, "policy")
        if isinstance(text, str):
            key = str(value(policy, "role"))
            inline[key] = inline.get(key, 0) + len("".join(text.split()))
    for role, size in inline.items():
        if size > 10_240:
            res = next(p for p in ctx.of_type("aws:iam/rolePolicy:RolePolicy")
                       if str(value(p, "role")) == role)
            yield ctx.error(res, "policy", f"role {role}'s inline policies come to {size} "
                            "characters (whitespace aside); IAM allows 10,240", source=IAM_QUOTAS)
    for pol in ctx.of_type("aws:iam/policy:Policy"):
        text = value(pol, "policy")
        if isinstance(text, str) and len("".join(text.split())) > 6_144:
            yield ctx.error(pol, "policy", "is over IAM's 6,144 characters for a managed "
                            "policy", source=IAM_QUOTAS)
    sg_source = ("https://docs.aws.amazon.com/AWSEC2/latest/APIReference/"
                 "API_AuthorizeSecurityGroupIngress.html (IpProtocol, FromPort, ToPort)")
    for sg_rule in ctx.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
                               "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"):
        protocol = str(value(sg_rule, "ipProtocol"))
        low, high = value(sg_rule, "fromPort"), value(sg_rule, "toPort")
        if protocol not in PROTOCOLS and not protocol.isdigit():
            yield ctx.error(sg_rule, "ipProtocol", f"{protocol!r} is not tcp, udp, icmp, "
                            "icmpv6, -1 or a protocol number", source=sg_source)
        elif protocol in ("tcp", "udp") and not (
                isinstance(low, int) and isinstance(high, int) and 0 <= low <= high <= 65_535):
            yield ctx.error(sg_rule, "fromPort", f"ports {low}-{high} are not a range within "
                            "0-65535", source=sg_source)
    for endpoint in ctx.of_type("aws:ec2/vpcEndpoint:VpcEndpoint"):
        service = str(value(endpoint, "serviceName"))
        if endpoint.region and service.startswith("com.amazonaws.") and \
                service.split(".")[2] != endpoint.region:
            yield ctx.error(endpoint, "serviceName", f"{service} is another region's "
                            f"service; this VPC is in {endpoint.region}",
                            source="https://docs.aws.amazon.com/vpc/latest/privatelink/"
                            "create-interface-endpoint.html")
    for route in ctx.of_type("aws:ec2/route:Route"):
        cidr = value(route, "destinationCidrBlock")
        try:
            ipaddress.IPv4Network(str(cidr))
        except ValueError:
            yield ctx.error(route, "destinationCidrBlock", f"{cidr!r} is not an IPv4 CIDR",
                            source="https://docs.aws.amazon.com/AWSEC2/latest/APIReference/"
                            "API_CreateRoute.html")
    for subnet in ctx.of_type("aws:ec2/subnet:Subnet"):
        az = value(subnet, "availabilityZone")
        zones = {name for name, _ in region_zones(subnet.region)} if subnet.region else set()
        if isinstance(az, str) and zones and az not in zones:
            yield ctx.error(subnet, "availabilityZone", f"{az} is not a zone of "
                            f"{subnet.region}", source="EC2 DescribeAvailabilityZones "
                            "(moto's data, planner/mocks.py)")


# AWS types the program creates whose planned properties no rule above constrains, and why.
UNCONSTRAINED: dict[str, str] = {
    "aws:ec2/internetGateway:InternetGateway": "only a VPC id and tags",
    "aws:ec2/routeTable:RouteTable": "only a VPC id and tags",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "only ids of the same stack",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "adopts the VPC's group, no rules",
    "aws:ec2/natGateway:NatGateway": "connectivity type checked by aws-api-model; ids only",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": "an AWS managed policy ARN and a "
    "role of the same stack (the ARN pattern is in aws-api-model)",
    "aws:acm/certificateValidation:CertificateValidation": "a certificate ARN of the stack",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": "a fixed enum the SDK types",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": "four booleans",
    "aws:s3/bucketServerSideEncryptionConfiguration:"
    "BucketServerSideEncryptionConfiguration": "AES256, the one ALB log delivery accepts",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": "one expiry rule",
    "aws:s3/bucketPolicy:BucketPolicy": "a policy far under S3's 20 KB",
    "aws:eks/podIdentityAssociation:PodIdentityAssociation": "namespace and service account "
    "are checked by the Kubernetes contract",
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": "AWS's managed policy ARN",
}


@rule("aws-vpc-peering", "An inter-region VPC peering is accepted by an accepter resource in "
      "the peer region (the requester's auto_accept works only within one account and "
      "region)",
      source="https://docs.aws.amazon.com/vpc/latest/peering/accept-vpc-peering-connection.html "
      "(an inter-Region request is accepted in the accepter's Region); pulumi-aws 7.51.1 "
      "ec2.VpcPeeringConnection and ec2.VpcPeeringConnectionAccepter docstrings "
      "(auto_accept; \"Cross-Region Peering (Same Account) AWS Provider v7\")",
      checked=CHECKED)
def vpc_peering(ctx: Context) -> Iterator:
    accepter_type = "aws:ec2/vpcPeeringConnectionAccepter:VpcPeeringConnectionAccepter"
    accepters = {value(a, "vpcPeeringConnectionId"): a for a in ctx.of_type(accepter_type)}
    for pcx in ctx.of_type("aws:ec2/vpcPeeringConnection:VpcPeeringConnection"):
        peer = value(pcx, "peerRegion")
        if not peer or peer == pcx.region:
            continue
        if value(pcx, "autoAccept"):
            yield ctx.error(pcx, "autoAccept", f"is true on a peering to {peer}; across "
                            "regions the requester cannot accept: set it false and accept "
                            f"with a VpcPeeringConnectionAccepter in {peer}")
        accepter = accepters.get(pcx.id)
        if accepter is None:
            yield ctx.warning(pcx, "peerRegion", f"is {peer} but no accepter in this stack "
                              "accepts the connection: it stays pending-acceptance (and "
                              "expires after 7 days) unless accepted elsewhere")
        elif accepter.region != peer:
            yield ctx.error(accepter, "region", f"is {accepter.region} but the connection's "
                            f"peer region is {peer}; the accepter must run there")
