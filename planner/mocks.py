"""Pulumi mocks that answer like AWS would: realistic ids, ARNs, addresses and zones.

Every value is derived from a hash of the stack, type and name, so a plan is the same on
every run and every machine. Resource types the table does not know still get an id (and
an ARN for AWS types); an invoke it does not know is an error, so nothing is faked silently.
"""

from __future__ import annotations

import base64
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
    "aws:cloudwatch/metricAlarm:MetricAlarm": "alarm:{name}",
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
            if token == "aws:s3/bucket:Bucket":
                state.update(bucket=rname, bucketDomainName=f"{rname}.s3.amazonaws.com",
                             bucketRegionalDomainName=f"{rname}.s3.{region}.amazonaws.com")
            rid = rname
            if token == "aws:iam/role:Role":
                state["uniqueId"] = "AROA" + h[:17].upper()
        elif token == "aws:iam/rolePolicy:RolePolicy":
            rname = inputs.get("name") or f"{name}-{h[:7]}"
            state["name"] = rname
            rid = f"{inputs.get('role')}:{rname}"
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
            az = inputs.get("availabilityZone") or ""
            state["availabilityZoneId"] = _zone_id(az)
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


# -- compute: ALB, ACM, Auto Scaling, EKS ------------------------------------------------------

def _uuid(h: str) -> str:
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _auto_name(name: str, h: str, inputs: Mapping[str, Any], limit: int = 255) -> str:
    # Pulumi's auto-naming: the logical name plus a random suffix, within AWS's length limit.
    return inputs.get("name") or f"{name[:limit - 8]}-{h[:7]}"


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
    lb = _auto_name(name, h, inputs, 32)
    suffix = f"app/{lb}/{h[:16]}"
    arn = _arn("aws:lb/loadBalancer:LoadBalancer", region, f"loadbalancer/{suffix}")
    state.update(name=lb, arn=arn, arnSuffix=suffix, zoneId=_ALB_ZONE.get(region, "Z3EXAMPLE"),
                 dnsName=f"{lb}-{int(h[:8], 16) % 10**10}.{region}.elb.amazonaws.com",
                 vpcId=inputs.get("vpcId", ""))
    return arn


def _target_group(name: str, h: str, region: str, inputs: Mapping[str, Any],
                  state: dict[str, Any]) -> str:
    tg = _auto_name(name, h, inputs, 32)
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
    group = _auto_name(name, h, inputs)
    state.update(name=group, arn=_arn("aws:autoscaling/group:Group", region,
                                      f"autoScalingGroup:{_uuid(h)}:autoScalingGroupName/{group}"))
    return group


def _scaling_policy(name: str, h: str, region: str, inputs: Mapping[str, Any],
                    state: dict[str, Any]) -> str:
    policy = _auto_name(name, h, inputs)
    state.update(name=policy, arn=_arn(
        "aws:autoscaling/group:Group", region, f"scalingPolicy:{_uuid(h)}:autoScalingGroupName/"
        f"{inputs.get('autoscalingGroupName', '')}:policyName/{policy}"))
    return policy


def _eks_cluster(name: str, h: str, region: str, inputs: Mapping[str, Any],
                 state: dict[str, Any]) -> str:
    cluster = _auto_name(name, h, inputs, 100)
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


def _ssm_parameter(m: PlanMocks, region: str, a: dict) -> dict:
    # The public AMI parameters hold an image id: answer with one, per region and name.
    h = digest(region, a.get("name", ""))
    return {"id": a.get("name"), "name": a.get("name"), "type": "String", "version": 1,
            "value": f"ami-{h[:17]}", "insecureValue": f"ami-{h[:17]}",
            "arn": f"arn:aws:ssm:{region}::parameter{a.get('name')}"}


def _cloudflare_zone(m: PlanMocks, region: str, a: dict) -> dict:
    name = (a.get("filter") or {}).get("name") or "example.com"
    zone = digest("zone", name)[:32]
    return {"id": zone, "zoneId": zone, "name": name, "status": "active", "type": "full",
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
