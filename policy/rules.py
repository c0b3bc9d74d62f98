"""The pack's rules, as plain functions over a resource view.

Each rule is a `Rule`: a name, a description, an enforcement level, the public source of the
provider/API fact it relies on, and either a per-resource check (`check(res)` yields one
message per problem) or a whole-stack check (`check_stack(resources)` yields (urn, message)).
policy/pack.py wraps them as pulumi_policy ResourceValidationPolicy / StackValidationPolicy
for `pulumi preview --policy-pack policy`; planner/policy.py builds the same pulumi_policy
argument objects from the offline plan and calls the same wrappers. Nothing here knows which
of the two is running.

Property names are the engine's (camelCase), as pulumi_policy hands them over. A provider's
nested config (defaultTags) arrives JSON-encoded, as the engine stores provider inputs.
"""

from __future__ import annotations

import functools
import importlib
import ipaddress
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from config.models import DEFAULT_TAG_KEYS
from config.seed import BACKUP_RETENTION_DAYS

Level = Literal["mandatory", "advisory"]
PROD = "prod"  # the Environment tag value of the production stacks (config/models.py)


@dataclass(frozen=True)
class Res:
    """What a rule sees of one resource, under the CLI or offline."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    protect: bool = False
    provider_props: Mapping[str, Any] = field(default_factory=dict)
    parent: str | None = None

    @property
    def stack(self) -> str:
        # urn:pulumi:<stack>::<project>::<type chain>::<name>
        return self.urn.split("::", 1)[0].rsplit(":", 1)[-1]

    def get(self, *path: str | int, default: Any = None) -> Any:
        return dig(self.props, *path, default=default)

    @property
    def region(self) -> str | None:
        region = self.props.get("region") if isinstance(self.props, Mapping) else None
        return region if isinstance(region, str) else self.provider_props.get("region")


def is_list(value: Any) -> bool:
    """A list, or pulumi_policy's read-only proxy of one (a Sequence)."""
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def dig(value: Any, *path: str | int, default: Any = None) -> Any:
    for key in path:
        if isinstance(key, int):
            if not is_list(value) or len(value) <= key:
                return default
            value = value[key]
        else:
            if not isinstance(value, Mapping) or key not in value:
                return default
            value = value[key]
    return default if value is None else value


def truthy(value: Any) -> bool:
    """A boolean input as the bridge accepts it: True or "true" (nested blocks carry strings)."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def falsy(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.lower() == "false")


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    level: Level
    source: str
    types: tuple[str, ...] = ()
    """Resource types a per-resource check applies to (empty: every type)."""
    check: Callable[[Res], Iterable[str]] | None = None
    check_stack: Callable[[list[Res]], Iterable[tuple[str, str]]] | None = None

    def applies(self, res: Res) -> bool:
        return not self.types or res.type in self.types

    def run(self, res: Res) -> list[str]:
        assert self.check is not None
        return list(self.check(res)) if self.applies(res) else []


RULES: list[Rule] = []


def rule(name: str, description: str, level: Level, source: str,
         types: Iterable[str] = ()) -> Callable:
    def register(fn: Callable[[Res], Iterable[str]]) -> Callable[[Res], Iterable[str]]:
        RULES.append(Rule(name, description, level, source, tuple(types), check=fn))
        return fn
    return register


def stack_rule(name: str, description: str, level: Level, source: str) -> Callable:
    def register(fn: Callable[[list[Res]], Iterable[tuple[str, str]]]) -> Callable:
        RULES.append(Rule(name, description, level, source, check_stack=fn))
        return fn
    return register


# --- types ---------------------------------------------------------------------------------

RDS_INSTANCE = "aws:rds/instance:Instance"
RDS_CLUSTER = "aws:rds/cluster:Cluster"
REDIS = "aws:elasticache/replicationGroup:ReplicationGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
EC2_INSTANCE = "aws:ec2/instance:Instance"
BUCKET = "aws:s3/bucket:Bucket"
BUCKET_SSE = ("aws:s3/bucketServerSideEncryptionConfiguration:"
              "BucketServerSideEncryptionConfiguration")
BUCKET_PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
TOPIC = "aws:sns/topic:Topic"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
KMS_KEY = "aws:kms/key:Key"
SG = "aws:ec2/securityGroup:SecurityGroup"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SG_EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
LISTENER = "aws:lb/listener:Listener"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
RDS_PARAMS = "aws:rds/parameterGroup:ParameterGroup"
BACKUP_REPLICATION = ("aws:rds/instanceAutomatedBackupsReplication:"
                      "InstanceAutomatedBackupsReplication")
RDS_SUBNETS = "aws:rds/subnetGroup:SubnetGroup"
CACHE_SUBNETS = "aws:elasticache/subnetGroup:SubnetGroup"
SUBNET = "aws:ec2/subnet:Subnet"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"

DATA_HOLDERS_FILE = Path(__file__).resolve().parents[1] / "planner" / "data" / \
    "replace_manual.yaml"
"""The project's one list of types whose delete destroys data (`data_holders`, kept for the
plan's diff, which refuses to destroy them): the pack requires `protect` on them in prod."""

PROTECT_NOT_REQUIRED: dict[str, str] = {
    LOG_GROUP: "operational logs kept for a retention period; they go with the stack, and "
               "`protect` on every log group would block tearing down any stack",
}
"""Data holders that need no `protect`, and why."""

STATEFUL_TYPES: dict[str, str] = {
    token: str(what) for token, what in
    (yaml.safe_load(DATA_HOLDERS_FILE.read_text(encoding="utf-8"))["data_holders"]).items()
    if token not in PROTECT_NOT_REQUIRED}
"""Stateful type -> what it holds; tests/test_prod_protections.py walks the plan with it.
(Kubernetes claims and volumes are among them: the pack cannot tell a Kubernetes object's
environment, it has no AWS tags; the walk checks them in the prod plans.)"""

UNPROTECTED_BY_DESIGN: dict[str, str] = {
    # A bucket that is not force_destroy cannot be deleted while it holds objects: S3's
    # DeleteBucket refuses a non-empty bucket (BucketNotEmpty,
    # https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteBucket.html), so the data is
    # safe without `protect`; an empty bucket holds nothing to lose.
    BUCKET: "forceDestroy",
    "aws:s3/bucketV2:BucketV2": "forceDestroy",
}

WORKLOAD_KINDS = {
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
LONG_RUNNING = ("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet",
                "kubernetes:apps/v1:DaemonSet")
DISRUPTABLE = ("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet")

WORLD = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


# --- helpers -------------------------------------------------------------------------------

def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def default_tags(res: Res) -> dict[str, str]:
    """The provider's defaultTags.tags (the engine stores nested provider config as JSON)."""
    block = _json(res.provider_props.get("defaultTags")) or {}
    tags = _json(block.get("tags")) if isinstance(block, Mapping) else None
    return dict(tags) if isinstance(tags, Mapping) else {}


@functools.cache
def aws_class(token: str) -> type | None:
    """The pulumi_aws class of a type token (aws:<module>/<name>:<Class>), or None."""
    try:
        _, mod_path, cls = token.split(":")
    except ValueError:
        return None
    module = mod_path.split("/", 1)[0]
    for candidate in (f"pulumi_aws.{module}", f"pulumi_aws.{module}_", "pulumi_aws"):
        try:
            found = getattr(importlib.import_module(candidate), cls, None)
        except ImportError:
            continue
        if isinstance(found, type):
            return found
    return None


def taggable(token: str) -> tuple[bool, bool]:
    """(has `tags`, takes the provider's default tags): read from the SDK class, where
    `tags_all` exists exactly on the resources the provider merges default_tags into
    (pulumi-aws docs, Provider defaultTags; aws_autoscaling_group is the known exception,
    it has `tags` blocks but no tags_all)."""
    cls = aws_class(token) if token.startswith("aws:") else None
    if cls is None:
        return False, False
    return isinstance(getattr(cls, "tags", None), property), \
        isinstance(getattr(cls, "tags_all", None), property)


def effective_tags(res: Res) -> dict[str, str]:
    has_tags, takes_defaults = taggable(res.type)
    if not has_tags:
        return {}
    own = res.props.get("tags")
    if is_list(own):  # aws:autoscaling/group: tags as {key, value} blocks
        own = {t.get("key"): t.get("value") for t in own if isinstance(t, Mapping)}
    tags = dict(default_tags(res)) if takes_defaults else {}
    tags.update(own if isinstance(own, Mapping) else {})
    return tags


def environment(res: Res) -> str | None:
    return effective_tags(res).get("Environment")


def is_prod(res: Res) -> bool:
    return environment(res) == PROD


def key_region(arn: Any) -> str | None:
    if isinstance(arn, str) and arn.startswith("arn:") and arn.count(":") >= 5:
        return arn.split(":")[3]
    return None


def _nets(values: Any) -> list[str]:
    if isinstance(values, str):
        return [values]
    return [v for v in values if isinstance(v, str)] if is_list(values) else []


def is_world(cidr: str) -> bool:
    try:
        return ipaddress.ip_network(cidr, strict=False) in WORLD
    except ValueError:
        return False


# --- encryption at rest and in transit -----------------------------------------------------

@rule("rds-encrypted-with-cmk",
      "RDS storage is encrypted with a customer-managed KMS key.", "mandatory",
      "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/Overview.Encryption.html",
      types=(RDS_INSTANCE, RDS_CLUSTER))
def _rds_encrypted(res: Res) -> Iterator[str]:
    replica = res.get("replicateSourceDb")
    if not truthy(res.get("storageEncrypted")) and not replica:
        yield "storageEncrypted is not true"
    if not res.get("kmsKeyId"):
        yield "kmsKeyId is not set (the AWS-managed aws/rds key cannot be shared or rotated " \
              "on your terms)"


@rule("rds-force-ssl",
      "PostgreSQL on RDS refuses unencrypted connections (rds.force_ssl = 1).", "mandatory",
      "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/PostgreSQL.Concepts.General."
      "SSL.html (rds.force_ssl defaults to 1 from PostgreSQL 15; 0 before)",
      types=(RDS_PARAMS,))
def _rds_force_ssl(res: Res) -> Iterator[str]:
    family = str(res.get("family", default=""))
    if not family.startswith("postgres"):
        return
    values = {p.get("name"): str(p.get("value")) for p in res.get("parameters", default=[])
              if isinstance(p, Mapping)}
    major = family.removeprefix("postgres")
    default_on = major.isdigit() and int(major) >= 15
    value = values.get("rds.force_ssl")
    if value == "0" or (value is None and not default_on):
        yield f"rds.force_ssl is {value or 'unset (0 on ' + family + ')'}; set it to 1"


@rule("redis-encrypted",
      "ElastiCache encrypts at rest with a customer-managed key and in transit (TLS).",
      "mandatory",
      "https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/encryption.html",
      types=(REDIS,))
def _redis_encrypted(res: Res) -> Iterator[str]:
    if not truthy(res.get("atRestEncryptionEnabled")):
        yield "atRestEncryptionEnabled is not true"
    if not truthy(res.get("transitEncryptionEnabled")):
        yield "transitEncryptionEnabled is not true"
    if not res.get("kmsKeyId"):
        yield "kmsKeyId is not set"


@rule("ebs-encrypted",
      "Every EBS volume a launch template or instance defines is encrypted.", "mandatory",
      "https://docs.aws.amazon.com/ebs/latest/userguide/ebs-encryption.html",
      types=(LAUNCH_TEMPLATE, EC2_INSTANCE))
def _ebs_encrypted(res: Res) -> Iterator[str]:
    for i, mapping in enumerate(res.get("blockDeviceMappings", default=[])):
        ebs = dig(mapping, "ebs")
        if isinstance(ebs, Mapping) and not truthy(ebs.get("encrypted")):
            yield f"blockDeviceMappings[{i}].ebs.encrypted is not true"
    root = res.get("rootBlockDevice")
    if res.type == EC2_INSTANCE and not truthy(dig(root, "encrypted")):
        yield "rootBlockDevice.encrypted is not true"


@rule("sns-encrypted-with-cmk",
      "SNS topics are encrypted with a customer-managed key.", "mandatory",
      "https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html (CloudWatch alarms "
      "cannot publish to a topic under the AWS-managed alias/aws/sns key)",
      types=(TOPIC,))
def _sns_encrypted(res: Res) -> Iterator[str]:
    key = res.get("kmsMasterKeyId")
    if not key:
        yield "kmsMasterKeyId is not set"
    elif key == "alias/aws/sns":
        yield "kmsMasterKeyId is the AWS-managed alias/aws/sns, which CloudWatch alarms " \
              "cannot use; use a customer-managed key"


@rule("log-group-encrypted-with-cmk",
      "CloudWatch log groups are encrypted with a customer-managed KMS key.", "mandatory",
      "https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html",
      types=(LOG_GROUP,))
def _log_group_cmk(res: Res) -> Iterator[str]:
    if not res.get("kmsKeyId"):
        yield "kmsKeyId is not set"


@rule("kms-key-rotation",
      "Symmetric KMS keys rotate automatically.", "mandatory",
      "https://docs.aws.amazon.com/kms/latest/developerguide/rotate-keys.html (rotation is "
      "for symmetric encryption keys only)",
      types=(KMS_KEY,))
def _kms_rotation(res: Res) -> Iterator[str]:
    spec = res.get("customerMasterKeySpec") or res.get("keySpec") or "SYMMETRIC_DEFAULT"
    if spec == "SYMMETRIC_DEFAULT" and not truthy(res.get("enableKeyRotation")):
        yield "enableKeyRotation is not true"


@rule("kms-explicit-key-policy",
      "KMS keys carry an explicit key policy (not the account-wide default).", "mandatory",
      "https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html",
      types=(KMS_KEY,))
def _kms_policy(res: Res) -> Iterator[str]:
    if not res.get("policy"):
        yield "policy is not set: the default key policy lets any IAM principal of the " \
              "account with kms:* use the key"


def _bucket_keys(res: Res) -> set[str]:
    return {v for v in (res.get("bucket"), res.get("id")) if isinstance(v, str)}


@stack_rule("s3-encrypted",
            "Every S3 bucket has a server-side encryption configuration.", "mandatory",
            "https://docs.aws.amazon.com/AmazonS3/latest/userguide/serv-side-encryption.html "
            "(ALB access-log buckets support SSE-S3 only: https://docs.aws.amazon.com/"
            "elasticloadbalancing/latest/application/enable-access-logging.html)")
def _s3_encrypted(resources: list[Res]) -> Iterator[tuple[str, str]]:
    covered = {r.get("bucket") for r in resources if r.type == BUCKET_SSE
               and dig(r.props, "rules", 0, "applyServerSideEncryptionByDefault", "sseAlgorithm")}
    for bucket in (r for r in resources if r.type == BUCKET):
        if not _bucket_keys(bucket) & covered and \
                not dig(bucket.props, "serverSideEncryptionConfiguration"):
            yield bucket.urn, "no BucketServerSideEncryptionConfiguration names this bucket"


@stack_rule("s3-public-access-blocked",
            "Every S3 bucket blocks public ACLs and policies.", "mandatory",
            "https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-"
            "public-access.html")
def _s3_public(resources: list[Res]) -> Iterator[tuple[str, str]]:
    keys = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    blocked = {r.get("bucket") for r in resources if r.type == BUCKET_PAB
               and all(truthy(r.get(k)) for k in keys)}
    for bucket in (r for r in resources if r.type == BUCKET):
        if not _bucket_keys(bucket) & blocked:
            yield bucket.urn, f"no BucketPublicAccessBlock with {', '.join(keys)} all true"


BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"


def _denies_insecure_transport(policy: Any) -> bool:
    doc = _json(policy)
    statements = dig(doc, "Statement", default=[]) if isinstance(doc, Mapping) else []
    for st in statements if is_list(statements) else [statements]:
        cond = dig(st, "Condition", "Bool", "aws:SecureTransport")
        if dig(st, "Effect") == "Deny" and str(cond).lower() == "false":
            return True
    return False


@stack_rule("s3-tls-only",
            "Every S3 bucket's policy denies requests that do not use TLS.", "mandatory",
            "https://docs.aws.amazon.com/AmazonS3/latest/userguide/security-best-practices."
            "html (aws:SecureTransport)")
def _s3_tls(resources: list[Res]) -> Iterator[tuple[str, str]]:
    enforced = {r.get("bucket") for r in resources if r.type == BUCKET_POLICY
                and _denies_insecure_transport(r.get("policy"))}
    for bucket in (r for r in resources if r.type == BUCKET):
        if not _bucket_keys(bucket) & enforced:
            yield bucket.urn, "no BucketPolicy denies aws:SecureTransport false"


# --- network exposure ----------------------------------------------------------------------

@rule("database-not-public",
      "No database or cache is publicly accessible.", "mandatory",
      "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_VPC.WorkingWithRDSInstance"
      "inaVPC.html#USER_VPC.Hiding",
      types=(RDS_INSTANCE,))
def _db_public(res: Res) -> Iterator[str]:
    if truthy(res.get("publiclyAccessible")):
        yield "publiclyAccessible is true"


@stack_rule("datastore-subnets-private",
            "Database and cache subnet groups use only subnets that assign no public IPs.",
            "mandatory",
            "https://docs.aws.amazon.com/vpc/latest/userguide/vpc-ip-addressing.html "
            "(mapPublicIpOnLaunch)")
def _datastore_subnets(resources: list[Res]) -> Iterator[tuple[str, str]]:
    public = {r.get("id") for r in resources
              if r.type == SUBNET and truthy(r.get("mapPublicIpOnLaunch"))}
    for group in (r for r in resources if r.type in (RDS_SUBNETS, CACHE_SUBNETS)):
        bad = sorted(s for s in group.get("subnetIds", default=[]) if s in public)
        if bad:
            yield group.urn, f"subnetIds include public subnets: {', '.join(bad)}"


WORLD_PORTS = (443, 80)
"""The only ports open to the world: the load balancer's HTTPS, and HTTP, whose listener
may only redirect to HTTPS (rule lb-https-only)."""


def _world_ingress(res: Res) -> Iterator[tuple[str, Any, Any, Any]]:
    """(cidr, protocol, from, to) of every world-open ingress this resource declares."""
    if res.type == SG_INGRESS:
        for cidr in _nets(res.get("cidrIpv4")) + _nets(res.get("cidrIpv6")):
            yield cidr, res.get("ipProtocol"), res.get("fromPort"), res.get("toPort")
    elif res.type == SG_RULE and res.get("type") == "ingress":
        for cidr in _nets(res.get("cidrBlocks")) + _nets(res.get("ipv6CidrBlocks")):
            yield cidr, res.get("protocol"), res.get("fromPort"), res.get("toPort")
    elif res.type == SG:
        for block in res.get("ingress", default=[]):
            for cidr in _nets(dig(block, "cidrBlocks")) + _nets(dig(block, "ipv6CidrBlocks")):
                yield cidr, dig(block, "protocol"), dig(block, "fromPort"), dig(block, "toPort")


@rule("sg-world-ingress-https-only",
      "Ingress from 0.0.0.0/0 or ::/0 is only TCP 443 (or 80, redirected to HTTPS).",
      "mandatory",
      "https://docs.aws.amazon.com/vpc/latest/userguide/security-group-rules.html",
      types=(SG, SG_RULE, SG_INGRESS))
def _sg_world(res: Res) -> Iterator[str]:
    for cidr, proto, lo, hi in _world_ingress(res):
        if not is_world(cidr):
            continue
        if str(proto) not in ("tcp", "6") or lo != hi or lo not in WORLD_PORTS:
            yield f"{cidr} may reach protocol {proto} ports {lo}-{hi}; only tcp " \
                  f"{' or '.join(map(str, WORLD_PORTS))} may be open to the world"


@stack_rule("sg-world-ingress-on-load-balancer",
            "Only a load balancer's security group admits the world.", "mandatory",
            "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-"
            "balancer-update-security-groups.html")
def _sg_world_lb(resources: list[Res]) -> Iterator[tuple[str, str]]:
    lb_groups = {g for r in resources if r.type == LOAD_BALANCER
                 for g in r.get("securityGroups", default=[])}
    for res in resources:
        if not any(is_world(c) for c, *_ in _world_ingress(res)):
            continue
        group = res.get("id") if res.type == SG else res.get("securityGroupId")
        if group not in lb_groups:
            yield res.urn, f"security group {group} admits the world but no load balancer " \
                           "uses it"


@rule("sg-described",
      "Every security group and rule says what it is for (description).", "advisory",
      "https://docs.aws.amazon.com/vpc/latest/userguide/security-group-rules.html "
      "(rule descriptions; checkov CKV_AWS_23)",
      types=(SG, SG_RULE, SG_INGRESS, SG_EGRESS))
def _sg_described(res: Res) -> Iterator[str]:
    if not res.get("description"):
        yield "description is not set"
    if res.type == SG:
        for kind in ("ingress", "egress"):
            for i, block in enumerate(res.get(kind, default=[])):
                if not dig(block, "description"):
                    yield f"{kind}[{i}].description is not set"


MODERN_TLS_PREFIXES = ("ELBSecurityPolicy-TLS13-1-2-", "ELBSecurityPolicy-TLS13-1-3-",
                       "ELBSecurityPolicy-TLS13-1-2-FIPS-", "ELBSecurityPolicy-TLS13-1-3-FIPS-")
"""TLS 1.3 policies with TLS 1.2 at least (https://docs.aws.amazon.com/elasticloadbalancing/
latest/application/describe-ssl-policies.html)."""


@rule("lb-https-only",
      "Listeners are HTTPS with a TLS 1.3 security policy; HTTP only redirects to HTTPS.",
      "mandatory",
      "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/describe-ssl-"
      "policies.html; https://docs.aws.amazon.com/elasticloadbalancing/latest/application/"
      "load-balancer-listeners.html#redirect-actions",
      types=(LISTENER,))
def _lb_https(res: Res) -> Iterator[str]:
    protocol = res.get("protocol")
    if protocol in ("HTTPS", "TLS"):
        policy = str(res.get("sslPolicy", default=""))
        if not policy.startswith(MODERN_TLS_PREFIXES):
            yield f"sslPolicy is {policy or 'unset (the API default allows TLS 1.0)'}; " \
                  "use ELBSecurityPolicy-TLS13-1-2-2021-06 or newer"
        return
    actions = res.get("defaultActions", default=[])
    if not actions or any(dig(a, "type") != "redirect"
                          or dig(a, "redirect", "protocol") != "HTTPS" for a in actions):
        yield f"a {protocol} listener must only redirect to HTTPS"


@rule("imdsv2-required",
      "Launch templates and instances require IMDSv2 (session tokens).", "mandatory",
      "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-IMDS-new-instances.html",
      types=(LAUNCH_TEMPLATE, EC2_INSTANCE))
def _imdsv2(res: Res) -> Iterator[str]:
    if res.get("metadataOptions", "httpTokens") != "required":
        yield "metadataOptions.httpTokens is not \"required\""


@rule("eks-endpoint-restricted",
      "The EKS API endpoint is private, or public only to listed CIDRs.", "mandatory",
      "https://docs.aws.amazon.com/eks/latest/userguide/cluster-endpoint.html (public "
      "access defaults to on, from 0.0.0.0/0)",
      types=(EKS_CLUSTER,))
def _eks_endpoint(res: Res) -> Iterator[str]:
    vpc = res.get("vpcConfig", default={})
    if falsy(dig(vpc, "endpointPublicAccess")):
        return
    cidrs = _nets(dig(vpc, "publicAccessCidrs"))
    if not cidrs or any(is_world(c) for c in cidrs):
        yield "vpcConfig: the public endpoint is open to the world; set " \
              "endpointPublicAccess false or list publicAccessCidrs"


@rule("eks-secrets-encrypted",
      "EKS envelope-encrypts Kubernetes secrets with a KMS key.", "mandatory",
      "https://docs.aws.amazon.com/eks/latest/userguide/envelope-encryption.html",
      types=(EKS_CLUSTER,))
def _eks_secrets(res: Res) -> Iterator[str]:
    config = res.get("encryptionConfig", default={})
    if "secrets" not in (dig(config, "resources") or []) or \
            not dig(config, "provider", "keyArn"):
        yield "encryptionConfig does not encrypt secrets with a KMS key"


ZONE_SETTING = "cloudflare:index/zoneSetting:ZoneSetting"
DNS_RECORD = "cloudflare:index/dnsRecord:DnsRecord"
EDGE_TLS = {"ssl": ("strict",), "min_tls_version": ("1.2", "1.3"), "always_use_https": ("on",)}
"""Zone settings a proxied zone must carry: TLS to the origin with its certificate checked,
TLS 1.2 or later to visitors, HTTP redirected to HTTPS."""


@stack_rule("cloudflare-tls-strict",
            "A Cloudflare zone in front of the stacks verifies the origin's certificate "
            "(ssl strict), refuses TLS below 1.2 and redirects HTTP to HTTPS.", "mandatory",
            "https://developers.cloudflare.com/ssl/origin-configuration/ssl-modes/full-strict/;"
            " https://developers.cloudflare.com/ssl/edge-certificates/additional-options/"
            "minimum-tls/; https://developers.cloudflare.com/ssl/edge-certificates/"
            "additional-options/always-use-https/")
def _cloudflare_tls(resources: list[Res]) -> Iterator[tuple[str, str]]:
    proxied = [r for r in resources if r.type == DNS_RECORD and truthy(r.get("proxied"))]
    if not proxied:
        return
    settings = {(r.get("zoneId"), r.get("settingId")): r.get("value")
                for r in resources if r.type == ZONE_SETTING}
    for zone in sorted({str(r.get("zoneId")) for r in proxied}):
        for setting, allowed in EDGE_TLS.items():
            value = settings.get((zone, setting))
            if value not in allowed:
                urn = next(r.urn for r in proxied if str(r.get("zoneId")) == zone)
                yield urn, f"zone {zone}: {setting} is {value or 'not set'}; set it to " \
                           f"{' or '.join(allowed)}"


# --- stateful data in prod -----------------------------------------------------------------

@rule("prod-backups-retained",
      f"Prod databases keep automated backups at least {BACKUP_RETENTION_DAYS} days and "
      "keep them after deletion.", "mandatory",
      "seed plan (config/seed.py BACKUP_RETENTION_DAYS); https://docs.aws.amazon.com/"
      "AmazonRDS/latest/UserGuide/USER_WorkingWithAutomatedBackups.html",
      types=(RDS_INSTANCE, RDS_CLUSTER))
def _prod_backups(res: Res) -> Iterator[str]:
    if not is_prod(res) or res.get("replicateSourceDb"):
        return  # a read replica has no backups of its own to keep
    days = res.get("backupRetentionPeriod", default=0)
    if not isinstance(days, int | float) or days < BACKUP_RETENTION_DAYS:
        yield f"backupRetentionPeriod is {days}; prod keeps {BACKUP_RETENTION_DAYS} days"
    if res.type == RDS_INSTANCE and truthy(res.get("deleteAutomatedBackups", default=True)):
        yield "deleteAutomatedBackups is not false (the backups would go with the instance)"


@rule("prod-multi-az",
      "Prod databases and caches span availability zones.", "mandatory",
      "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/Concepts.MultiAZ.html; "
      "https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/AutoFailover.html",
      types=(RDS_INSTANCE, REDIS))
def _prod_multi_az(res: Res) -> Iterator[str]:
    if not is_prod(res):
        return
    if res.type == RDS_INSTANCE and not truthy(res.get("multiAz")):
        yield "multiAz is not true"
    if res.type == REDIS and not (truthy(res.get("multiAzEnabled"))
                                  and truthy(res.get("automaticFailoverEnabled"))):
        yield "multiAzEnabled and automaticFailoverEnabled are not both true"


@rule("prod-deletion-protection",
      "Prod databases, clusters and load balancers have the API's deletion protection.",
      "mandatory",
      "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_DeleteInstance.html"
      "#USER_DeletionProtection",
      types=(RDS_INSTANCE, RDS_CLUSTER, LOAD_BALANCER, EKS_CLUSTER))
def _prod_deletion_protection(res: Res) -> Iterator[str]:
    if not is_prod(res):
        return
    key = "enableDeletionProtection" if res.type == LOAD_BALANCER else "deletionProtection"
    if not truthy(res.get(key)):
        yield f"{key} is not true"


@rule("prod-final-snapshot",
      "Deleting a prod database or cache takes a final snapshot first.", "mandatory",
      "https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DeleteDBInstance.html "
      "(read replicas take none); https://docs.aws.amazon.com/AmazonElastiCache/latest/"
      "APIReference/API_DeleteReplicationGroup.html",
      types=(RDS_INSTANCE, RDS_CLUSTER, REDIS))
def _prod_final_snapshot(res: Res) -> Iterator[str]:
    if not is_prod(res) or res.get("replicateSourceDb"):
        return
    if res.type != REDIS and not falsy(res.get("skipFinalSnapshot", default=False)):
        yield "skipFinalSnapshot is not false"
    if not res.get("finalSnapshotIdentifier"):
        yield "finalSnapshotIdentifier is not set"
    if res.type == REDIS and not res.get("snapshotRetentionLimit"):
        yield "snapshotRetentionLimit is 0 (no automatic snapshots)"


@rule("prod-stateful-protected",
      "Every prod resource that holds data has Pulumi's `protect` option.", "mandatory",
      "https://www.pulumi.com/docs/iac/concepts/options/protect/",
      types=tuple(t for t in STATEFUL_TYPES if t != KMS_KEY))
def _prod_protect(res: Res) -> Iterator[str]:
    if not is_prod(res) or res.protect:
        return
    exempt_if_false = UNPROTECTED_BY_DESIGN.get(res.type)
    if exempt_if_false and falsy(res.get(exempt_if_false, default=False)):
        return
    yield f"protect is not set on {STATEFUL_TYPES[res.type]}"


KEY_PROPS = ("kmsKeyId", "kmsMasterKeyId", "masterUserSecretKmsKeyId",
             "performanceInsightsKmsKeyId")


@stack_rule("prod-data-keys-protected",
            "Every prod KMS key that encrypts stored data (a stateful resource, its secret "
            "or its replicated backups) has Pulumi's `protect` option.", "mandatory",
            "https://docs.aws.amazon.com/kms/latest/developerguide/deleting-keys.html (data "
            "under a deleted key is unrecoverable); https://www.pulumi.com/docs/iac/concepts/"
            "options/protect/")
def _prod_data_keys(resources: list[Res]) -> Iterator[tuple[str, str]]:
    # A key is as stateful as what it encrypts: one for logs, alerts or a cluster's secrets
    # goes with the resources it serves; one for the database outlives them in snapshots.
    holders = [r for r in resources if r.type in STATEFUL_TYPES and r.type != KMS_KEY
               or r.type == BACKUP_REPLICATION]
    used = {r.get(p): r.name for r in holders for p in KEY_PROPS if r.get(p)}
    for key in (r for r in resources if r.type == KMS_KEY and is_prod(r) and not r.protect):
        holder = used.get(key.get("arn")) or used.get(key.get("id"))
        if holder:
            yield key.urn, f"protect is not set, and it encrypts {holder}"


@rule("replica-key-in-own-region",
      "Cross-region copies (read replicas, replicated backups) use a KMS key of their own "
      "region.", "mandatory",
      "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_ReadRepl.XRgn.html (an "
      "encrypted cross-region replica needs a key in the destination region)",
      types=(RDS_INSTANCE, BACKUP_REPLICATION))
def _replica_key(res: Res) -> Iterator[str]:
    if res.type == RDS_INSTANCE and not res.get("replicateSourceDb"):
        return
    key, region = res.get("kmsKeyId"), res.region
    if not key:
        yield "kmsKeyId is not set"
    elif key_region(key) and region and key_region(key) != region:
        yield f"kmsKeyId is a key of {key_region(key)}, not of {region}"


# --- tags ----------------------------------------------------------------------------------

@rule("required-tags",
      f"Every taggable AWS resource carries {', '.join(DEFAULT_TAG_KEYS)}.", "mandatory",
      "config/models.py DEFAULT_TAG_KEYS; taggable types from the pulumi_aws SDK (a `tags` "
      "property; `tags_all` where the provider's default_tags apply)")
def _required_tags(res: Res) -> Iterator[str]:
    if not taggable(res.type)[0]:
        return
    missing = [k for k in DEFAULT_TAG_KEYS if not effective_tags(res).get(k)]
    if missing:
        yield f"missing tags: {', '.join(missing)}"


# --- Kubernetes workloads ------------------------------------------------------------------

K8S_SOURCE = "https://kubernetes.io/docs/concepts/security/pod-security-standards/ (restricted)"


def pod_spec(res: Res) -> Mapping[str, Any]:
    spec = dig(res.props, *WORKLOAD_KINDS.get(res.type, ("-",)))
    return spec if isinstance(spec, Mapping) else {}


def containers(res: Res, init: bool = True) -> list[Mapping[str, Any]]:
    spec = pod_spec(res)
    kinds = ("containers", "initContainers") if init else ("containers",)
    return [c for k in kinds for c in spec.get(k) or [] if isinstance(c, Mapping)]


@rule("k8s-resource-requests",
      "Every container requests CPU and memory.", "mandatory",
      "https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/ (the "
      "HPA's utilisation is a share of the request)",
      types=tuple(WORKLOAD_KINDS))
def _k8s_requests(res: Res) -> Iterator[str]:
    for c in containers(res):
        missing = [k for k in ("cpu", "memory") if not dig(c, "resources", "requests", k)]
        if missing:
            yield f"container {c.get('name')}: no {' or '.join(missing)} request"


@rule("k8s-probes",
      "Every long-running container has readiness and liveness probes.", "mandatory",
      "https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/",
      types=LONG_RUNNING)
def _k8s_probes(res: Res) -> Iterator[str]:
    for c in containers(res, init=False):
        missing = [p for p in ("readinessProbe", "livenessProbe") if not c.get(p)]
        if missing:
            yield f"container {c.get('name')}: no {' or '.join(missing)}"


@rule("k8s-restricted-security-context",
      "Pods meet the restricted Pod Security Standard: non-root, no privilege escalation, "
      "all capabilities dropped, a seccomp profile, no host namespaces.", "mandatory",
      K8S_SOURCE, types=tuple(WORKLOAD_KINDS))
def _k8s_restricted(res: Res) -> Iterator[str]:
    spec = pod_spec(res)
    pod = spec.get("securityContext") or {}
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if truthy(spec.get(host)):
            yield f"{host} is true"
    for c in containers(res):
        sc = c.get("securityContext") or {}
        name = f"container {c.get('name')}"
        if not truthy(sc.get("runAsNonRoot", pod.get("runAsNonRoot"))):
            yield f"{name}: runAsNonRoot is not true"
        if sc.get("runAsUser", pod.get("runAsUser")) == 0:
            yield f"{name}: runAsUser is 0"
        if not falsy(sc.get("allowPrivilegeEscalation")):
            yield f"{name}: allowPrivilegeEscalation is not false"
        if truthy(sc.get("privileged")):
            yield f"{name}: privileged is true"
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            yield f"{name}: capabilities.drop does not include ALL"
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            yield f"{name}: capabilities.add beyond NET_BIND_SERVICE"
        seccomp = dig(sc, "seccompProfile", "type") or dig(pod, "seccompProfile", "type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            yield f"{name}: seccompProfile.type is not RuntimeDefault or Localhost"


def _namespace(res: Res) -> str:
    return res.get("metadata", "namespace") or "default"


@stack_rule("k8s-pod-disruption-budget",
            "Every Deployment and StatefulSet has a PodDisruptionBudget selecting its pods.",
            "mandatory",
            "https://kubernetes.io/docs/concepts/workloads/pods/disruptions/")
def _k8s_pdb(resources: list[Res]) -> Iterator[tuple[str, str]]:
    budgets = [(_namespace(r), r.get("spec", "selector", "matchLabels", default={}))
               for r in resources if r.type == PDB]
    for res in (r for r in resources if r.type in DISRUPTABLE):
        labels = res.get("spec", "template", "metadata", "labels", default={})
        ns = _namespace(res)
        if not any(bns == ns and sel and all(labels.get(k) == v for k, v in sel.items())
                   for bns, sel in budgets):
            yield res.urn, f"no PodDisruptionBudget in namespace {ns} selects its pods"


def rules_by_name() -> dict[str, Rule]:
    return {r.name: r for r in RULES}
