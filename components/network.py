"""The network: a VPC over N availability zones with public, private (app) and data tiers.

Public subnets hold the ALB and the NAT gateways; private subnets hold the app (instances
or EKS pods, hence the large blocks); data subnets hold RDS and ElastiCache and have no
route to the internet at all. One NAT per AZ in prod (an AZ outage cannot cut the other
AZs off), one in dev (cost). Flow logs go to CloudWatch Logs.
"""

from __future__ import annotations

import functools
import ipaddress
import json
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_aws as aws

from components.kms import LogGroupArgs, encrypted_log_group, key_policy
from config.models import NetworkConfig
from config.regions import EKS_UNSUPPORTED_ZONE_IDS

TIERS = ("public", "private", "data")


# EKS_UNSUPPORTED_ZONE_IDS (config/regions.py, with its source): left out of every VPC.


def plan_subnets(cidr: str, az_count: int) -> dict[str, list[str]]:
    """Carve the VPC into per-AZ subnets for each tier, deterministically.

    The VPC splits into eight equal blocks: blocks 0-5 are the private subnets (one per AZ,
    1/8 of the VPC each, room for EKS pod IPs), block 6 is cut into the public subnets and
    block 7 into the data subnets (1/256 of the VPC each: a /24 in a /16).
    """
    if not 1 <= az_count <= 6:
        raise ValueError(f"az_count is {az_count}; it must be between 1 and 6")
    vpc = ipaddress.IPv4Network(cidr)
    blocks = list(vpc.subnets(prefixlen_diff=3))
    small = vpc.prefixlen + 8
    return {
        "private": [str(b) for b in blocks[:az_count]],
        "public": [str(s) for s in list(blocks[6].subnets(new_prefix=small))[:az_count]],
        "data": [str(s) for s in list(blocks[7].subnets(new_prefix=small))[:az_count]],
    }


@dataclass(frozen=True)
class NetworkArgs:
    """Inputs of `Network`."""

    cidr: str
    """IPv4 CIDR of the VPC, /16 to /20."""
    az_count: int = 3
    """How many availability zones the subnets span (the region's first N available ones)."""
    nat_gateways: Literal["none", "single", "perAz"] = "perAz"
    """One NAT gateway per AZ, a single one shared by all private subnets, or none (a
    region that only holds a read replica needs no egress)."""
    flow_logs_enabled: bool = True
    flow_logs_traffic_type: Literal["ALL", "ACCEPT", "REJECT"] = "ALL"
    flow_logs_retention_days: int = 90
    """Retention of the flow-log group in CloudWatch Logs, days."""
    tags: dict[str, str] = field(default_factory=dict)
    """Extra tags for every resource (the provider adds the stack-wide default tags)."""

    @classmethod
    def from_config(cls, cfg: NetworkConfig, *, egress: bool = True,
                    tags: dict[str, str] | None = None) -> NetworkArgs:
        return cls(
            cidr=cfg.cidr,
            az_count=cfg.az_count,
            nat_gateways=cfg.nat_gateways if egress else "none",
            flow_logs_enabled=cfg.flow_logs.enabled,
            flow_logs_traffic_type=cfg.flow_logs.traffic_type,
            flow_logs_retention_days=cfg.flow_logs.retention_days,
            tags=dict(tags or {}),
        )


def _assume_role_policy(account_id: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
            "Action": "sts:AssumeRole",
            # Confused-deputy guard: only flow logs of this account may assume the role.
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
        }],
    })


def _flow_log_policy(log_group_arn: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogGroups",
                       "logs:DescribeLogStreams"],
            "Resource": [log_group_arn, f"{log_group_arn}:*"],
        }],
    })


def _check_zones(names: list[str], wanted: int) -> list[str]:
    if len(names) < wanted:
        raise pulumi.RunError(
            f"network.azCount is {wanted} but the region offers {len(names)} availability "
            f"zones ({', '.join(names)}); lower sofacover:network.azCount"
        )
    return names[:wanted]


class Network(pulumi.ComponentResource):
    """VPC, subnets in three tiers, NAT, flow logs, and the DB and cache subnet groups."""

    vpc_id: pulumi.Output[str]
    """ID of the VPC."""
    vpc_cidr: pulumi.Output[str]
    """CIDR block of the VPC."""
    availability_zones: pulumi.Output[list[str]]
    """The AZ names the subnets use, in subnet order."""
    public_subnet_ids: pulumi.Output[list[str]]
    """One per AZ: ALB and NAT gateways."""
    private_subnet_ids: pulumi.Output[list[str]]
    """One per AZ: app instances and pods; egress through NAT."""
    data_subnet_ids: pulumi.Output[list[str]]
    """One per AZ: databases and caches; no internet route."""
    private_route_table_ids: pulumi.Output[list[str]]
    """Route tables of the private subnets (for peering and endpoints)."""
    data_route_table_id: pulumi.Output[str]
    """The data subnets' route table (a peering's route to the databases)."""
    db_subnet_group_name: pulumi.Output[str]
    """RDS subnet group over the data subnets."""
    cache_subnet_group_name: pulumi.Output[str]
    """ElastiCache subnet group over the data subnets."""
    nat_public_ips: pulumi.Output[list[str]]
    """Egress addresses of the NAT gateways (for partners' allow-lists)."""

    def __init__(self, name: str, args: NetworkArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sofacover:network:Network", name, None, opts)
        layout = plan_subnets(args.cidr, args.az_count)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)

        def tags(role: str, **extra: str) -> dict[str, str]:
            return {**args.tags, "Name": f"{name}-{role}", **extra}

        # Zones by id, not name: names map to different zones in every account, and EKS
        # refuses control-plane subnets in a few zone ids. Left out from the start on every
        # platform, so moving a phase to EKS never moves a subnet.
        zones = aws.get_availability_zones_output(
            state="available",
            filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}],
            exclude_zone_ids=list(EKS_UNSUPPORTED_ZONE_IDS),
            opts=invoke,
        ).names.apply(functools.partial(_check_zones, wanted=args.az_count))
        region = aws.get_region_output(opts=invoke).region
        account_id = aws.get_caller_identity_output(opts=invoke).account_id

        vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=args.cidr, enable_dns_hostnames=True,
                          enable_dns_support=True, tags=tags("vpc"), opts=child)
        # Take over the default security group and strip its rules (CIS AWS 5.4): nothing
        # should ever land in it by accident and be open to the whole VPC.
        aws.ec2.DefaultSecurityGroup(f"{name}-default-sg", vpc_id=vpc.id, ingress=[], egress=[],
                                     tags=tags("default-sg"), opts=child)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=tags("igw"), opts=child)

        subnets: dict[str, list[aws.ec2.Subnet]] = {tier: [] for tier in TIERS}
        elb_tag = {"public": {"kubernetes.io/role/elb": "1"},
                   "private": {"kubernetes.io/role/internal-elb": "1"}, "data": {}}
        for tier in TIERS:
            for i, cidr in enumerate(layout[tier]):
                subnets[tier].append(aws.ec2.Subnet(
                    f"{name}-{tier}-{i}", vpc_id=vpc.id, cidr_block=cidr,
                    availability_zone=zones[i], map_public_ip_on_launch=False,
                    tags=tags(f"{tier}-{i}", Tier=tier, **elb_tag[tier]), opts=child))

        public_rt = aws.ec2.RouteTable(f"{name}-public-rt", vpc_id=vpc.id,
                                       tags=tags("public-rt"), opts=child)
        aws.ec2.Route(f"{name}-public-default", route_table_id=public_rt.id,
                      destination_cidr_block="0.0.0.0/0", gateway_id=igw.id, opts=child)
        for i, subnet in enumerate(subnets["public"]):
            aws.ec2.RouteTableAssociation(f"{name}-public-rta-{i}", subnet_id=subnet.id,
                                          route_table_id=public_rt.id, opts=child)

        nat_count = {"none": 0, "single": 1, "perAz": args.az_count}[args.nat_gateways]
        eips, nats = [], []
        for i in range(nat_count):
            eip = aws.ec2.Eip(f"{name}-nat-eip-{i}", domain="vpc", tags=tags(f"nat-eip-{i}"),
                              opts=child)
            eips.append(eip)
            nats.append(aws.ec2.NatGateway(
                f"{name}-nat-{i}", allocation_id=eip.id, subnet_id=subnets["public"][i].id,
                connectivity_type="public", tags=tags(f"nat-{i}"),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[igw])))

        private_rts = []
        for i, subnet in enumerate(subnets["private"]):
            rt = aws.ec2.RouteTable(f"{name}-private-rt-{i}", vpc_id=vpc.id,
                                    tags=tags(f"private-rt-{i}"), opts=child)
            if nats:
                aws.ec2.Route(f"{name}-private-default-{i}", route_table_id=rt.id,
                              destination_cidr_block="0.0.0.0/0",
                              nat_gateway_id=nats[i % nat_count].id, opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-private-rta-{i}", subnet_id=subnet.id,
                                          route_table_id=rt.id, opts=child)
            private_rts.append(rt)

        data_rt = aws.ec2.RouteTable(f"{name}-data-rt", vpc_id=vpc.id, tags=tags("data-rt"),
                                     opts=child)
        for i, subnet in enumerate(subnets["data"]):
            aws.ec2.RouteTableAssociation(f"{name}-data-rta-{i}", subnet_id=subnet.id,
                                          route_table_id=data_rt.id, opts=child)

        # S3 through a free gateway endpoint instead of NAT ($0.045/GB): images, backups, logs.
        aws.ec2.VpcEndpoint(
            f"{name}-s3-endpoint", vpc_id=vpc.id, vpc_endpoint_type="Gateway",
            service_name=pulumi.Output.concat("com.amazonaws.", region, ".s3"),
            route_table_ids=[rt.id for rt in private_rts], tags=tags("s3-endpoint"), opts=child)

        if args.flow_logs_enabled:
            # Encrypted with a customer-managed key whose policy lets CloudWatch Logs of this
            # region use it (components/kms.py has the statement and its source).
            key = aws.kms.Key(f"{name}-flow-logs-key", description=f"{name}: VPC flow logs",
                              enable_key_rotation=True, deletion_window_in_days=30,
                              policy=key_policy(self, logs=True), tags=tags("flow-logs-key"),
                              opts=child)
            log_group = encrypted_log_group(f"{name}-flow-logs", LogGroupArgs(
                retention_days=args.flow_logs_retention_days, kms_key_arn=key.arn,
                tags=tags("flow-logs")), child)
            role = aws.iam.Role(f"{name}-flow-logs-role",
                                assume_role_policy=account_id.apply(_assume_role_policy),
                                tags=tags("flow-logs-role"), opts=child)
            aws.iam.RolePolicy(f"{name}-flow-logs-policy", role=role.id,
                               policy=log_group.arn.apply(_flow_log_policy), opts=child)
            aws.ec2.FlowLog(f"{name}-flow-log", vpc_id=vpc.id,
                            traffic_type=args.flow_logs_traffic_type,
                            log_destination_type="cloud-watch-logs",
                            log_destination=log_group.arn, iam_role_arn=role.arn,
                            max_aggregation_interval=60, tags=tags("flow-log"), opts=child)

        data_ids = [s.id for s in subnets["data"]]
        db_group = aws.rds.SubnetGroup(f"{name}-db", subnet_ids=data_ids,
                                       description=f"{name}: RDS in the data subnets",
                                       tags=tags("db"), opts=child)
        cache_group = aws.elasticache.SubnetGroup(
            f"{name}-cache", subnet_ids=data_ids,
            description=f"{name}: ElastiCache in the data subnets", tags=tags("cache"),
            opts=child)

        self.vpc_id = vpc.id
        self.vpc_cidr = vpc.cidr_block
        self.availability_zones = zones
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in subnets["public"]])
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in subnets["private"]])
        self.data_subnet_ids = pulumi.Output.all(*data_ids)
        self.private_route_table_ids = pulumi.Output.all(*[rt.id for rt in private_rts])
        self.data_route_table_id = data_rt.id
        self.db_subnet_group_name = db_group.name
        self.cache_subnet_group_name = cache_group.name
        self.nat_public_ips = pulumi.Output.all(*[e.public_ip for e in eips])
        self.register_outputs({
            "vpc_id": self.vpc_id,
            "vpc_cidr": self.vpc_cidr,
            "availability_zones": self.availability_zones,
            "public_subnet_ids": self.public_subnet_ids,
            "private_subnet_ids": self.private_subnet_ids,
            "data_subnet_ids": self.data_subnet_ids,
            "private_route_table_ids": self.private_route_table_ids,
            "data_route_table_id": self.data_route_table_id,
            "db_subnet_group_name": self.db_subnet_group_name,
            "cache_subnet_group_name": self.cache_subnet_group_name,
            "nat_public_ips": self.nat_public_ips,
        })
