"""Pulumi mocks that answer like AWS would: realistic ids, ARNs, addresses and zones.

Every value is derived from a hash of the stack, type and name, so a plan is the same on
every run and every machine. Resource types the table does not know still get an id (and
an ARN for AWS types); an invoke it does not know is an error, so nothing is faked silently.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Callable, Mapping
from typing import Any

import pulumi

from config.regions import zone_suffixes

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
}
_GLOBAL_SERVICES = {"iam", "s3", "cloudfront", "route53"}


def digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def public_ip(seed: str) -> str:
    """An address in TEST-NET-3 (203.0.113.0/24): realistic, and never anyone's real host."""
    return str(ipaddress.IPv4Address("203.0.113.0") + 1 + int(seed[:4], 16) % 254)


def _service(token: str) -> str:
    return token.split(":")[1].split("/")[0]


# Where the ARN's service differs from the token's module.
_ARN_SERVICE = {"aws:cloudwatch/logGroup:LogGroup": "logs"}


def _arn(token: str, region: str, resource: str) -> str:
    service = _ARN_SERVICE.get(token, _service(token))
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
        state: dict[str, Any] = dict(inputs)
        if token in _EC2:
            prefix, arn = _EC2[token]
            rid = f"{prefix}-{h[:17]}"
            if arn:
                state["arn"] = _arn(token, region, arn.format(id=rid))
            state["ownerId"] = ACCOUNT_ID
            self._ec2_extras(token, rid, h, inputs, state)
        elif token in _NAMED:
            # name_prefix: AWS appends a 26-character unique suffix.
            rname = inputs.get("name") or (inputs["namePrefix"] + h[:26] if
                                           inputs.get("namePrefix") else f"{name}-{h[:7]}")
            state["name"] = rname
            state["arn"] = _arn(token, region, _NAMED[token].format(name=rname))
            rid = rname
            if token == "aws:iam/role:Role":
                state["uniqueId"] = "AROA" + h[:17].upper()
        elif token == "aws:iam/rolePolicy:RolePolicy":
            rname = inputs.get("name") or f"{name}-{h[:7]}"
            state["name"] = rname
            rid = f"{inputs.get('role')}:{rname}"
        elif token in _DATA_TIER:
            rid = _DATA_TIER[token](name, h, region, inputs, state)
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
            az = inputs.get("availabilityZone") or ""
            state["availabilityZoneId"] = _zone_id(az)
        elif token == "aws:ec2/eip:Eip":
            state.update(publicIp=public_ip(h), allocationId=rid,
                         publicDns=f"ec2-{public_ip(h).replace('.', '-')}.compute-1.amazonaws.com")
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
    ident = inputs.get("identifier") or f"{name}-{h[:7]}"
    # RDS endpoints: <identifier>.<12-char account/region hash>.<region>.rds.amazonaws.com
    address = f"{ident}.c{h[12:23]}.{region}.rds.amazonaws.com"
    port = int(inputs.get("port") or 5432)
    state.update(identifier=ident, address=address, port=port, endpoint=f"{address}:{port}",
                 arn=_arn("aws:rds/instance:Instance", region, f"db:{ident}"),
                 resourceId="db-" + h[23:49].upper(), hostedZoneId="Z2R2ITUGPM61AM",
                 engine=inputs.get("engine") or "postgres", status="available",
                 engineVersionActual=inputs.get("engineVersion") or "16.6",
                 latestRestorableTime="2026-11-27T00:00:00Z")
    if inputs.get("manageMasterUserPassword"):
        state["masterUserSecrets"] = [{
            "secretArn": _arn("aws:secretsmanager/secret:Secret", region,
                              f"secret:rds!db-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-"
                              f"{h[20:32]}-{h[32:38]}"),
            "kmsKeyId": inputs.get("masterUserSecretKmsKeyId") or "",
            "secretStatus": "active"}]
    return ident


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
    gid = inputs.get("replicationGroupId") or f"{name}-{h[:7]}"[:40]
    short = _zone_id(f"{region}a").split("-")[0]
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


_DATA_TIER: dict[str, Callable[[str, str, str, Mapping[str, Any], dict[str, Any]], str]] = {
    "aws:rds/instance:Instance": _rds_instance,
    "aws:kms/key:Key": _kms_key,
    "aws:kms/alias:Alias": _kms_alias,
    "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication":
        _backup_replication,
    "aws:elasticache/replicationGroup:ReplicationGroup": _replication_group,
}


def _zone_id(az: str) -> str:
    if not az:
        return ""
    # AWS's own short form: us-east-1 -> use1, ap-southeast-1 -> apse1.
    region, letter = az[:-1], az[-1]
    area, direction, number = region.split("-")
    short = area + _DIRECTIONS.get(direction, direction[:1]) + number
    return f"{short}-az{ord(letter) - ord('a') + 1}"


_DIRECTIONS = {"north": "n", "south": "s", "east": "e", "west": "w", "central": "c",
               "northeast": "ne", "southeast": "se", "northwest": "nw", "southwest": "sw"}


def _azs(m: PlanMocks, region: str, a: dict) -> dict:
    names = [f"{region}{s}" for s in zone_suffixes(region)]
    return {"id": region, "names": names, "zoneIds": [_zone_id(n) for n in names],
            "groupNames": [region] * len(names), "state": a.get("state")}


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


_INVOKES: dict[str, Callable[[PlanMocks, str, dict], dict]] = {
    "aws:index/getAvailabilityZones:getAvailabilityZones": _azs,
    "aws:index/getRegion:getRegion": _region,
    "aws:index/getCallerIdentity:getCallerIdentity": _identity,
    "aws:index/getPartition:getPartition": _partition,
    "aws:ec2/getAmi:getAmi": _ami,
}
