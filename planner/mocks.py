"""Pulumi mocks that answer like AWS would: realistic ids, ARNs, addresses and zones.

Every value is derived from a hash of the stack, type and name, so a plan is the same on
every run and every machine. Resource types the table does not know still get an id (and
an ARN for AWS types); an invoke it does not know is an error, so nothing is faked silently.
"""

from __future__ import annotations

import ast
import base64
import functools
import gzip
import hashlib
import importlib.util
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime.rpc import UNKNOWN  # an input not known yet in preview

ACCOUNT_ID = "123456789012"  # the example account of the AWS documentation
SECRET_MASK = "[secret]"

# type token -> (id prefix, ARN resource part with {id}/{name}); the service comes from the token
_EC2: dict[str, tuple[str, str]] = {
    "aws:ec2/vpc:Vpc": ("vpc", "vpc/{id}"),
    "aws:ec2/subnet:Subnet": ("subnet", "subnet/{id}"),
    "aws:ec2/internetGateway:InternetGateway": ("igw", "internet-gateway/{id}"),
    "aws:ec2/eip:Eip": ("eipalloc", "elastic-ip/{id}"),
    "aws:ec2/natGateway:NatGateway": ("nat", "natgateway/{id}"),
    "aws:ec2/routeTable:RouteTable": ("rtb", "route-table/{id}"),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": ("rtbassoc", ""),
    "aws:ec2/route:Route": ("r-rtb", ""),
    "aws:ec2/vpcEndpoint:VpcEndpoint": ("vpce", "vpc-endpoint/{id}"),
    "aws:ec2/flowLog:FlowLog": ("fl", "vpc-flow-log/{id}"),
    "aws:ec2/securityGroup:SecurityGroup": ("sg", "security-group/{id}"),
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": ("sg", "security-group/{id}"),
    "aws:ec2/launchTemplate:LaunchTemplate": ("lt", "launch-template/{id}"),
    "aws:ec2/vpcPeeringConnection:VpcPeeringConnection": ("pcx", "vpc-peering-connection/{id}"),
}
# Types whose id is their (auto-)name, with the ARN resource part.
_NAMED: dict[str, str] = {
    "aws:cloudwatch/logGroup:LogGroup": "log-group:{name}",
    "aws:iam/role:Role": "role/{name}",
    "aws:iam/policy:Policy": "policy/{name}",
    "aws:iam/instanceProfile:InstanceProfile": "instance-profile/{name}",
    "aws:rds/subnetGroup:SubnetGroup": "subgrp:{name}",
    "aws:rds/parameterGroup:ParameterGroup": "pg:{name}",
    "aws:elasticache/subnetGroup:SubnetGroup": "subnetgroup:{name}",
    "aws:elasticache/parameterGroup:ParameterGroup": "parametergroup:{name}",
    "aws:s3/bucket:Bucket": "{name}",
    "aws:s3/bucketV2:BucketV2": "{name}",
    "aws:sns/topic:Topic": "{name}",
    "aws:cloudwatch/metricAlarm:MetricAlarm": "alarm:{name}",
}
_GLOBAL_SERVICES = {"iam", "s3", "cloudfront", "route53"}


# -- autonaming, as pulumi-aws's Check does it -------------------------------------------------

AUTONAMING_TABLE = Path(__file__).parent / "preflight" / "data" / "aws_autonaming.yaml"


class AutonameError(pulumi.RunError):
    """The provider's Check refused the name it would generate (or was given)."""


@functools.cache
def autonaming_table() -> dict[str, dict[str, Any]]:
    """type token -> its autonaming rule (property, max_length, separator, randlen, ...)."""
    data = yaml.safe_load(AUTONAMING_TABLE.read_text())
    return {token: {**data["defaults"], **rule} for token, rule in data["types"].items()}


def autoname(token: str, name: str, inputs: Mapping[str, Any], seed: str) -> dict[str, Any]:
    """The inputs as the provider's Check returns them: the name property filled in.

    `<logical name><separator><randlen hex chars>`, the logical name lowercased first where
    the provider does; longer than the type's maximum is an error, never a shorter name.
    A resource given its name (or a namePrefix, which the provider expands itself) keeps it.
    """
    rule = autonaming_table().get(token)
    out = dict(inputs)
    if rule is None:
        return out
    prop = rule["property"]
    if not out.get(prop) and not out.get(prop + "Prefix"):
        prefix = (name.lower() if rule["lowercase"] else name) + rule["separator"]
        randlen, limit = rule["randlen"], rule["max_length"]
        if len(prefix) + randlen > limit:
            raise AutonameError(
                f"could not make instance of '{token}': name '{prefix}' plus {randlen} random "
                f"chars is longer than maximum length {limit}")
        out[prop] = rule.get("prefix", "") + prefix + seed[:randlen]
    value = out.get(prop)
    check_max = rule.get("check_max_length")
    if check_max and isinstance(value, str) and value != UNKNOWN and len(value) > check_max:
        raise AutonameError(f"{token} resource '{name}' has a problem: "
                            + rule["check_error"].format(value=value))
    return out


# -- AWS's own data, as moto ships it ----------------------------------------------------------
# Read from moto's package files directly (no moto import: importing moto.ec2 loads boto3 and
# costs about 2 s per process). Availability zones and zone ids are moto's; the real mapping
# of zone names (us-east-1a) to zone ids (use1-az6) differs from account to account, so a
# real account may see other ids for the same names.

MOTO_VERSION = "5.2.5"  # pinned in pyproject.toml; the data below is as this version ships it


@functools.cache
def _moto_dir() -> Path:
    return _package_dir("moto")


def _moto_json(*parts: str) -> Any:
    path = _moto_dir().joinpath(*parts)
    if not path.exists():
        return None
    with gzip.open(path, "rt") if path.suffix == ".gz" else path.open() as f:
        return json.load(f)


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise pulumi.RunError(f"{package} is not installed; the offline plan reads AWS's zones, "
                              "instance-type offerings and public SSM parameters from moto")
    return Path(next(iter(spec.submodule_search_locations)))


@functools.cache
def availability_zones() -> dict[str, list[tuple[str, str]]]:
    """region -> [(zone name, zone id)], as moto's RegionsAndZonesBackend.zones has them.

    moto keeps a table for the regions whose zones are irregular (as Python literals, read
    here with `ast` rather than by importing the module, which imports boto3) and gives every
    other EC2 region of botocore's endpoint data zones a, b, c with ids az1..az3 by the same
    rule as moto (tests/test_mocks.py compares the two for every region).
    """
    source = _moto_dir() / "ec2" / "models" / "availability_zones_and_regions.py"
    zones: dict[str, list[tuple[str, str]]] = {}
    for node in ast.walk(ast.parse(source.read_text())):
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
                and any(isinstance(t, ast.Name) and t.id == "zones" for t in node.targets)):
            continue
        for key, value in zip(node.value.keys, node.value.values, strict=True):
            for call in value.elts:
                kw = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
                zones.setdefault(ast.literal_eval(key), []).append((kw["name"], kw["zone_id"]))
    if not zones:
        raise pulumi.RunError(f"no availability zones found in {source}")
    endpoints = json.loads((_package_dir("botocore") / "data" / "endpoints.json").read_text())
    for partition in endpoints["partitions"]:
        if partition["partition"] not in ("aws", "aws-us-gov", "aws-cn"):  # as moto
            continue
        pattern = re.compile(partition["regionRegex"])
        for region in partition["services"].get("ec2", {}).get("endpoints", {}):
            if region in zones or not pattern.match(region):
                continue
            parts = region.split("-")
            short = "usg" if region.startswith("us-gov") else parts[0]
            short += "".join(c[0] for c in ("north", "south", "central", "east", "west")
                             if c in region) + parts[-1]
            zones[region] = [(f"{region}{c}", f"{short}-az{i}") for i, c in enumerate("abc", 1)]
    return zones


def region_zones(region: str) -> list[tuple[str, str]]:
    zones = availability_zones().get(region)
    if not zones:
        raise pulumi.RunError(f"getAvailabilityZones: moto {MOTO_VERSION} knows no "
                              f"availability zones for {region}")
    return zones


def zone_id(az: str) -> str:
    """The zone id of an availability-zone name (moto's mapping; see the note above)."""
    if not az:
        return ""
    zones = dict(region_zones(az[:-1]))
    if az not in zones:
        raise pulumi.RunError(f"{az} is not an availability zone of {az[:-1]} "
                              f"(moto {MOTO_VERSION}: {', '.join(zones)})")
    return zones[az]


@functools.cache
def _offerings(kind: str, region: str) -> dict[str, frozenset[str]]:
    """location (region, zone name or zone id) -> instance types offered there."""
    rows = _moto_json("ec2", "resources", "instance_type_offerings", kind, f"{region}.json.gz")
    by_location: dict[str, set[str]] = {}
    for row in rows or []:
        by_location.setdefault(row["Location"], set()).add(row["InstanceType"])
    return {k: frozenset(v) for k, v in by_location.items()}


@functools.cache
def instance_types() -> dict[str, dict[str, Any]]:
    """EC2 DescribeInstanceTypes by type (vCPUs, memory, network), as moto ships it."""
    return _moto_json("ec2", "resources", "instance_types.json.gz") or {}


def instance_type_offered(region: str, instance_type: str) -> bool:
    """Whether EC2 offers `instance_type` in `region` (moto's DescribeInstanceTypeOfferings)."""
    return instance_type in _offerings("region", region).get(region, frozenset())


def instance_types_in_zone(az: str) -> frozenset[str]:
    """Instance types offered in one availability zone, by zone name (us-east-1a)."""
    return _offerings("availability-zone", az[:-1]).get(az, frozenset())


@functools.cache
def _public_parameters(region: str) -> dict[str, dict[str, Any]]:
    """AWS's public Amazon Linux AMI parameters (/aws/service/ami-amazon-linux-latest/...)
    as moto ships them for a region (moto also ships ECS and global-infrastructure trees,
    which the program does not read)."""
    rows = _moto_json("ssm", "resources", "ami-amazon-linux-latest", f"{region}.json.gz")
    return {row["Name"]: row for row in rows or []}


def public_parameter(region: str, name: str) -> dict[str, Any] | None:
    return _public_parameters(region).get(name)


def digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def public_ip(seed: str) -> str:
    """An address in TEST-NET-3 (203.0.113.0/24): realistic, and never anyone's real host."""
    return str(ipaddress.IPv4Address("203.0.113.0") + 1 + int(seed[:4], 16) % 254)


def _service(token: str) -> str:
    return token.split(":")[1].split("/")[0]


# Where the ARN's service differs from the token's module.
# Where the ARN's service differs from the token's module (by token, or by module).
_ARN_SERVICE = {"aws:cloudwatch/logGroup:LogGroup": "logs", "lb": "elasticloadbalancing"}


def _arn(token: str, region: str, resource: str) -> str:
    module = _service(token)
    service = _ARN_SERVICE.get(token) or _ARN_SERVICE.get(module) or module
    where = "" if service in _GLOBAL_SERVICES else region
    account = "" if service == "s3" else ACCOUNT_ID
    return f"arn:aws:{service}:{where}:{account}:{resource}"


class PlanMocks(pulumi.runtime.Mocks):
    """Realistic answers for `new_resource` and `call`.

    `region` is the stack's `aws:region`; explicit AWS providers override it per resource.
    `references` maps a qualified stack name to the outputs planned for it, and answers
    StackReferences. `region_of(provider_ref)` tells the region of a provider reference.
    """

    def __init__(self, stack: str, region: str | None,
                 references: Mapping[str, Mapping[str, Any]] | None = None,
                 region_of: Callable[[str | None], str | None] | None = None):
        self.stack = stack
        self.region = region or "us-east-1"
        self.references = dict(references or {})
        self._region_of = region_of or (lambda _ref: None)

    def resource_region(self, inputs: Mapping[str, Any], provider: str | None) -> str:
        return inputs.get("region") or self._region_of(provider) or self.region

    # -- resources -------------------------------------------------------------------------
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        token, name, inputs = args.typ, args.name, dict(args.inputs)
        h = digest(self.stack, token, name)
        if token == "pulumi:pulumi:StackReference":
            return self._stack_reference(inputs.get("name") or args.resource_id or name)
        if token.startswith("pulumi:providers:"):
            return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32], inputs
        region = self.resource_region(inputs, args.provider)
        # As the provider's Check: fill in the autoname (or refuse it); it lands in the state.
        inputs = autoname(token, name, inputs, h)
        state: dict[str, Any] = dict(inputs)
        if token in _EC2:
            prefix, arn = _EC2[token]
            rid = f"{prefix}-{h[:17]}"
            if arn:
                state["arn"] = _arn(token, region, arn.format(id=rid))
            state["ownerId"] = ACCOUNT_ID
            self._ec2_extras(token, rid, h, inputs, state)
        elif token in _NAMED:
            # name_prefix: the Terraform provider appends a 26-character unique suffix.
            rname = inputs.get("name") or inputs.get("bucket") or (inputs["namePrefix"] + h[:26])
            state["name"] = rname
            state["arn"] = _arn(token, region, _NAMED[token].format(name=rname))
            if token == "aws:s3/bucket:Bucket":
                state.update(bucket=rname, bucketDomainName=f"{rname}.s3.amazonaws.com",
                             bucketRegionalDomainName=f"{rname}.s3.{region}.amazonaws.com")
            rid = rname
            if token == "aws:iam/role:Role":
                state["uniqueId"] = "AROA" + h[:17].upper()
        elif token == "aws:iam/rolePolicy:RolePolicy":
            rid = f"{inputs.get('role')}:{inputs['name']}"
        elif token in _OUTPUTS:
            rid = _OUTPUTS[token](name, h, region, inputs, state)
        elif token.startswith("cloudflare:"):
            rid = inputs.get("scriptName") or h[:32]  # Cloudflare ids: 32 hex characters
        else:
            rid = f"{name}-{h[:12]}"
            if token.startswith("aws:"):
                state.setdefault("arn", _arn(token, region, f"{name}/{rid}"))
        if token.startswith("aws:"):
            state.setdefault("tagsAll", inputs.get("tags") or {})
            if "region" not in state and _service(token) not in _GLOBAL_SERVICES:
                state["region"] = region
        return rid, state

    def _ec2_extras(self, token: str, rid: str, h: str, inputs: Mapping[str, Any],
                    state: dict[str, Any]) -> None:
        if token == "aws:ec2/vpc:Vpc":
            state.update(defaultRouteTableId=f"rtb-{h[17:34]}", mainRouteTableId=f"rtb-{h[17:34]}",
                         defaultSecurityGroupId=f"sg-{h[20:37]}",
                         defaultNetworkAclId=f"acl-{h[23:40]}", instanceTenancy="default")
        elif token == "aws:ec2/subnet:Subnet":
            state["availabilityZoneId"] = zone_id(inputs.get("availabilityZone") or "")
        elif token == "aws:ec2/eip:Eip":
            state.update(publicIp=public_ip(h), allocationId=rid,
                         publicDns=f"ec2-{public_ip(h).replace('.', '-')}.compute-1.amazonaws.com")
        elif token == "aws:ec2/launchTemplate:LaunchTemplate":
            state.update(latestVersion=1, defaultVersion=1)
        elif token == "aws:ec2/natGateway:NatGateway":
            state.update(networkInterfaceId=f"eni-{h[17:34]}", publicIp=public_ip(h))

    def _stack_reference(self, qualified: str) -> tuple[str, dict]:
        if qualified not in self.references:
            known = ", ".join(sorted(self.references)) or "none"
            raise pulumi.RunError(
                f"StackReference to {qualified}: that stack has not been planned before this "
                f"one (planned: {known}); plan the environment with --env to resolve it")
        outputs = dict(self.references[qualified])
        secret = sorted(k for k, v in outputs.items() if v == SECRET_MASK)
        return qualified, {"name": qualified, "outputs": outputs, "secretOutputNames": secret}

    # -- invokes ---------------------------------------------------------------------------
    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list] | dict:
        token, a = args.token, dict(args.args)
        region = self.resource_region(a, args.provider)
        answer = _INVOKES.get(token)
        if answer is None:
            raise pulumi.RunError(f"the offline plan has no answer for invoke {token}; add "
                                  "one to planner/mocks.py")
        return answer(self, region, a)


# -- data tier: RDS, KMS, ElastiCache ----------------------------------------------------------

def _rds_instance(name: str, h: str, region: str, inputs: Mapping[str, Any],
                  state: dict[str, Any]) -> str:
    ident = inputs["identifier"]
    # RDS endpoints: <identifier>.<12-char account/region hash>.<region>.rds.amazonaws.com
    address = f"{ident}.c{h[12:23]}.{region}.rds.amazonaws.com"
    port = int(inputs.get("port") or 5432)
    state.update(identifier=ident, address=address, port=port, endpoint=f"{address}:{port}",
                 arn=_arn("aws:rds/instance:Instance", region, f"db:{ident}"),
                 resourceId="db-" + h[23:49].upper(), hostedZoneId="Z2R2ITUGPM61AM",
                 engine=inputs.get("engine") or "postgres", status="available",
                 engineVersionActual=_actual_engine_version(inputs.get("engineVersion")),
                 latestRestorableTime="2026-11-27T00:00:00Z")
    if inputs.get("manageMasterUserPassword"):
        state["masterUserSecrets"] = [{
            "secretArn": _arn("aws:secretsmanager/secret:Secret", region,
                              f"secret:rds!db-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-"
                              f"{h[20:32]}-{h[32:38]}"),
            "kmsKeyId": inputs.get("masterUserSecretKmsKeyId") or "",
            "secretStatus": "active"}]
    return ident


def _actual_engine_version(asked: str | None) -> str:
    """What RDS runs when asked for a version: a major alone gets a minor AWS still creates
    (the oldest one the dated offerings name for it), a full version itself."""
    from planner.preflight.aws import offerings  # the one table of dated versions

    version = asked or "16"
    if "." in version:
        return version
    for retired in offerings()["rds_postgres"]["retired_minors"]:
        if version in retired["upgrade_to"]:
            return str(retired["upgrade_to"][version])
    return f"{version}.0"


def _kms_key(name: str, h: str, region: str, inputs: Mapping[str, Any],
             state: dict[str, Any]) -> str:
    key_id = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"
    state.update(keyId=key_id, arn=_arn("aws:kms/key:Key", region, f"key/{key_id}"),
                 keyUsage="ENCRYPT_DECRYPT", customerMasterKeySpec="SYMMETRIC_DEFAULT")
    return key_id


def _kms_alias(name: str, h: str, region: str, inputs: Mapping[str, Any],
               state: dict[str, Any]) -> str:
    alias = inputs.get("name") or f"alias/{name}"
    state.update(arn=_arn("aws:kms/alias:Alias", region, alias),
                 targetKeyArn=_arn("aws:kms/key:Key", region,
                                   f"key/{inputs.get('targetKeyId', '')}"))
    return alias


def _backup_replication(name: str, h: str, region: str, inputs: Mapping[str, Any],
                        state: dict[str, Any]) -> str:
    # Its id is the ARN of the replicated backups in the destination region.
    return _arn("aws:rds/instance:Instance", region, f"auto-backup:ab-{h[:26]}")


def _replication_group(name: str, h: str, region: str, inputs: Mapping[str, Any],
                       state: dict[str, Any]) -> str:
    gid = inputs["replicationGroupId"]
    short = region_zones(region)[0][1].split("-")[0]  # use1-az6 -> use1
    suffix = f"{h[12:18]}.{short}.cache.amazonaws.com"
    port = int(inputs.get("port") or 6379)
    clustered = inputs.get("clusterMode") == "enabled"
    groups = int(inputs.get("numNodeGroups") or 1)
    per_group = 1 + int(inputs.get("replicasPerNodeGroup") or 0)
    count = groups * per_group if clustered else int(inputs.get("numCacheClusters") or 1)
    state.update(
        arn=_arn("aws:elasticache/replicationGroup:ReplicationGroup", region,
                 f"replicationgroup:{gid}"),
        port=port, memberClusters=[f"{gid}-{i + 1:03d}" for i in range(count)],
        engineVersionActual=inputs.get("engineVersion") or "7.1.0")
    if clustered:
        state["configurationEndpointAddress"] = f"clustercfg.{gid}.{suffix}"
    else:
        state.update(primaryEndpointAddress=f"master.{gid}.{suffix}",
                     readerEndpointAddress=f"replica.{gid}.{suffix}")
    return gid


def _azs(m: PlanMocks, region: str, a: dict) -> dict:
    # Every zone moto lists is "available" and opt-in-not-required, so the state filter and
    # allAvailabilityZones change nothing.
    # The provider filters excludeNames / excludeZoneIds itself, after DescribeAvailabilityZones.
    skip = set(a.get("excludeNames") or []) | set(a.get("excludeZoneIds") or [])
    zones = [(n, z) for n, z in region_zones(region) if n not in skip and z not in skip]
    return {"id": region, "names": [n for n, _ in zones], "zoneIds": [z for _, z in zones],
            "groupNames": [region] * len(zones), "state": a.get("state")}


def _region(m: PlanMocks, region: str, a: dict) -> dict:
    return {"id": region, "region": region, "name": region,
            "endpoint": f"ec2.{region}.amazonaws.com", "description": region}


def _identity(m: PlanMocks, region: str, a: dict) -> dict:
    return {"id": ACCOUNT_ID, "accountId": ACCOUNT_ID, "userId": "AIDA" + "EXAMPLE" * 2,
            "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/deployer"}


def _partition(m: PlanMocks, region: str, a: dict) -> dict:
    return {"id": "aws", "partition": "aws", "dnsSuffix": "amazonaws.com",
            "reverseDnsPrefix": "com.amazonaws"}


def _ami(m: PlanMocks, region: str, a: dict) -> dict:
    h = digest(region, json.dumps(a, sort_keys=True, default=str))
    return {"id": f"ami-{h[:17]}", "imageId": f"ami-{h[:17]}", "architecture": "x86_64",
            "name": "al2023-ami-2023.9.20261101.0-kernel-6.12-x86_64", "ownerId": "137112412989",
            "rootDeviceName": "/dev/xvda"}


# -- compute: ALB, ACM, Auto Scaling, EKS ------------------------------------------------------

def _uuid(h: str) -> str:
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


# The ALB's canonical hosted zone per region (AWS's published table).
_ALB_ZONE = {"us-east-1": "Z35SXDOTRQ7X7K", "us-west-2": "Z1H1FL5HABSF5",
             "eu-west-1": "Z32O12XQLNTSW2", "ap-southeast-1": "Z1LMS91P8CMLE5"}
# Elastic Load Balancing's log-delivery account per region (AWS's published table).
_ELB_ACCOUNT = {"us-east-1": "127311923021", "us-east-2": "033677994240",
                "us-west-1": "027434742980", "us-west-2": "797873946194",
                "eu-west-1": "156460612806", "eu-central-1": "054676820928",
                "ap-southeast-1": "114774131450", "ap-northeast-1": "582318560864"}


def _load_balancer(name: str, h: str, region: str, inputs: Mapping[str, Any],
                   state: dict[str, Any]) -> str:
    lb = inputs["name"]
    suffix = f"app/{lb}/{h[:16]}"
    arn = _arn("aws:lb/loadBalancer:LoadBalancer", region, f"loadbalancer/{suffix}")
    state.update(name=lb, arn=arn, arnSuffix=suffix, zoneId=_ALB_ZONE.get(region, "Z3EXAMPLE"),
                 dnsName=f"{lb}-{int(h[:8], 16) % 10**10}.{region}.elb.amazonaws.com",
                 vpcId=inputs.get("vpcId", ""))
    return arn


def _target_group(name: str, h: str, region: str, inputs: Mapping[str, Any],
                  state: dict[str, Any]) -> str:
    tg = inputs["name"]
    suffix = f"targetgroup/{tg}/{h[:16]}"
    arn = _arn("aws:lb/targetGroup:TargetGroup", region, suffix)
    state.update(name=tg, arn=arn, arnSuffix=suffix)
    return arn


def _listener(name: str, h: str, region: str, inputs: Mapping[str, Any],
              state: dict[str, Any]) -> str:
    kind = "listener-rule" if "listenerArn" in inputs else "listener"
    arn = _arn("aws:lb/listener:Listener", region, f"{kind}/app/{name}/{h[:16]}/{h[16:32]}")
    state["arn"] = arn
    return arn


def _certificate(name: str, h: str, region: str, inputs: Mapping[str, Any],
                 state: dict[str, Any]) -> str:
    arn = _arn("aws:acm/certificate:Certificate", region, f"certificate/{_uuid(h)}")
    domains = [inputs.get("domainName", ""), *inputs.get("subjectAlternativeNames", [])]
    records = []
    for domain in domains:  # a wildcard validates with its base domain's record
        base = domain.removeprefix("*.")
        d = digest(base)
        records.append({"domainName": domain, "resourceRecordType": "CNAME",
                        "resourceRecordName": f"_{d[:32]}.{base}.",
                        "resourceRecordValue": f"_{d[32:64]}.xlfgrmvvlj.acm-validations.aws."})
    state.update(arn=arn, domainValidationOptions=records, status="PENDING_VALIDATION")
    return arn


def _certificate_validation(name: str, h: str, region: str, inputs: Mapping[str, Any],
                            state: dict[str, Any]) -> str:
    return str(inputs.get("certificateArn", ""))


def _asg(name: str, h: str, region: str, inputs: Mapping[str, Any],
         state: dict[str, Any]) -> str:
    group = inputs["name"]
    state.update(name=group, arn=_arn("aws:autoscaling/group:Group", region,
                                      f"autoScalingGroup:{_uuid(h)}:autoScalingGroupName/{group}"))
    return group


def _scaling_policy(name: str, h: str, region: str, inputs: Mapping[str, Any],
                    state: dict[str, Any]) -> str:
    policy = inputs["name"]
    state.update(name=policy, arn=_arn(
        "aws:autoscaling/group:Group", region, f"scalingPolicy:{_uuid(h)}:autoScalingGroupName/"
        f"{inputs.get('autoscalingGroupName', '')}:policyName/{policy}"))
    return policy


def _eks_cluster(name: str, h: str, region: str, inputs: Mapping[str, Any],
                 state: dict[str, Any]) -> str:
    cluster = inputs["name"]
    ca = base64.b64encode(f"-----BEGIN CERTIFICATE-----\n{h}\n-----END CERTIFICATE-----\n"
                          .encode()).decode()
    endpoint = f"https://{h[:32].upper()}.gr7.{region}.eks.amazonaws.com"
    state.update(
        name=cluster, arn=_arn("aws:eks/cluster:Cluster", region, f"cluster/{cluster}"),
        endpoint=endpoint, status="ACTIVE", platformVersion="eks.10",
        certificateAuthority={"data": ca},
        vpcConfig={**dict(inputs.get("vpcConfig") or {}),
                   "clusterSecurityGroupId": f"sg-{h[32:49]}", "vpcId": f"vpc-{h[40:57]}"},
        kubernetesNetworkConfig={"serviceIpv4Cidr": "172.20.0.0/16", "ipFamily": "ipv4"},
        identities=[{"oidcs": [{"issuer": f"https://oidc.eks.{region}.amazonaws.com/id/"
                                          f"{h[:32].upper()}"}]}])
    return cluster


# Resource types whose outputs need more than an id: (name, hash, region, inputs, state)
# -> id, filling `state` with what the provider would return.
OutputBuilder = Callable[[str, str, str, Mapping[str, Any], dict[str, Any]], str]
_OUTPUTS: dict[str, OutputBuilder] = {
    "aws:rds/instance:Instance": _rds_instance,
    "aws:kms/key:Key": _kms_key,
    "aws:kms/alias:Alias": _kms_alias,
    "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication":
        _backup_replication,
    "aws:elasticache/replicationGroup:ReplicationGroup": _replication_group,
    "aws:lb/loadBalancer:LoadBalancer": _load_balancer,
    "aws:lb/targetGroup:TargetGroup": _target_group,
    "aws:lb/listener:Listener": _listener,
    "aws:lb/listenerRule:ListenerRule": _listener,
    "aws:acm/certificate:Certificate": _certificate,
    "aws:acm/certificateValidation:CertificateValidation": _certificate_validation,
    "aws:autoscaling/group:Group": _asg,
    "aws:autoscaling/policy:Policy": _scaling_policy,
    "aws:eks/cluster:Cluster": _eks_cluster,
}


def _elb_account(m: PlanMocks, region: str, a: dict) -> dict:
    if region not in _ELB_ACCOUNT:
        raise pulumi.RunError(f"the offline plan knows no ELB log-delivery account for {region}")
    account = _ELB_ACCOUNT[region]
    return {"id": account, "arn": f"arn:aws:iam::{account}:root", "region": region}


# AWS publishes the EKS-optimised AMI ids as public parameters of this shape; moto does not
# ship them, so they are answered by pattern (any Kubernetes minor version and architecture:
# whether the version is still offered is the preflight's rule, not the mocks').
_EKS_AMI_PARAMETER = re.compile(
    r"^/aws/service/eks/optimized-ami/1\.[0-9]{2}/amazon-linux-2023/(x86_64|arm64)/"
    r"(standard|nvidia|neuron)/recommended/image_id$")


def _ssm_parameter(m: PlanMocks, region: str, a: dict) -> dict:
    name = str(a.get("name") or "")
    known = public_parameter(region, name)
    if known is None and _EKS_AMI_PARAMETER.match(name):
        image = f"ami-{digest(region, name)[:17]}"
        known = {"Name": name, "Type": "String", "Value": image, "Version": 1,
                 "DataType": "aws:ec2:image"}
    if known is None:
        where = ("AWS's public parameters as moto " + MOTO_VERSION + " ships them"
                 if name.startswith("/aws/service/") else
                 "a parameter of the account, which the offline plan cannot read")
        # As AWS: "ParameterNotFound: ... when calling the GetParameter operation".
        raise pulumi.RunError(f"reading SSM Parameter ({name}) in {region}: ParameterNotFound: "
                              f"the parameter does not exist ({where})")
    arn = known.get("ARN") or f"arn:aws:ssm:{region}::parameter{name}"
    return {"id": name, "name": name, "type": known["Type"], "version": known["Version"],
            "value": known["Value"], "insecureValue": known["Value"], "arn": arn,
            "withDecryption": a.get("withDecryption", True)}


ZONE_PLAN = "enterprise"


def _cloudflare_zone(m: PlanMocks, region: str, a: dict) -> dict:
    name = (a.get("filter") or {}).get("name") or "example.com"
    zone = digest("zone", name)[:32]
    # The plan of a real zone is the account's, which the offline plan cannot see: it
    # answers the top plan, so the program's check that the zone is on the configured plan
    # (components/edge.py, zone_on_plan) passes here and bites against the real zone.
    return {"id": zone, "zoneId": zone, "name": name, "status": "active", "type": "full",
            "plan": {"id": digest("plan", name)[:32], "name": f"{ZONE_PLAN.title()} Website",
                     "legacyId": ZONE_PLAN, "price": 200, "currency": "USD",
                     "frequency": "monthly", "isSubscribed": True, "canSubscribe": True,
                     "legacyDiscount": False, "externallyManaged": False},
            "nameServers": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"],
            "account": {"id": digest("account", name)[:32], "name": "SofaCover"}}


_INVOKES: dict[str, Callable[[PlanMocks, str, dict], dict]] = {
    "cloudflare:index/getZone:getZone": _cloudflare_zone,
    "aws:elb/getServiceAccount:getServiceAccount": _elb_account,
    "aws:ssm/getParameter:getParameter": _ssm_parameter,
    "aws:index/getAvailabilityZones:getAvailabilityZones": _azs,
    "aws:index/getRegion:getRegion": _region,
    "aws:index/getCallerIdentity:getCallerIdentity": _identity,
    "aws:index/getPartition:getPartition": _partition,
    "aws:ec2/getAmi:getAmi": _ami,
}
