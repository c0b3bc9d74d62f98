"""Inter-region VPC peering: a secondary region's VPC joined to the primary's.

Why VPC peering and not Transit Gateway: the environment is a hub and spokes of four VPCs
with ranges that do not overlap (planner/project.py refuses overlaps), and the only traffic
that must cross is each serving secondary's PgBouncer writing to the primary's PostgreSQL.
Peering has no hourly charge (a Transit Gateway bills every VPC attachment and every
peering attachment by the hour, plus a per-GB processing fee on top of the inter-region
transfer), no bandwidth ceiling of its own and no extra hop; what it lacks (transitive
routing, a central route table) this design does not need: the secondaries never talk to
each other. Sources: AWS VPC peering guide, "VPC peering limitations"
(https://docs.aws.amazon.com/vpc/latest/peering/vpc-peering-basics.html) and Transit
Gateway pricing (https://aws.amazon.com/transit-gateway/pricing/).

Created by the SECONDARY's stack, so no stack ever needs one deployed after it: the
requester side in the secondary's region, the accepter side and the routes back in the
primary's region (`region=`, pulumi-aws 7's per-resource region: the provider docs'
"Cross-Region Peering (Same Account) AWS Provider v7" example for
aws.ec2.VpcPeeringConnectionAccepter), reading the primary's VPC, route tables and its
database's peer security group from the primary's stack outputs. `auto_accept` on the
requester only works in one account and one region, so across regions the accepter
resource accepts (aws.ec2.VpcPeeringConnection docstring). Destroying a secondary removes
its routes and rules in the primary's region first, then the connection; the primary is
destroyed last (the rollout in reverse).

Not set: the peering's DNS options (they make EC2 public hostnames resolve privately). The
only name resolved across is the primary's RDS endpoint, and "when the DB instance isn't
publicly accessible, it is an internal DB instance with a DNS name that resolves to a
private IP address" (RDS API reference, CreateDBInstance PubliclyAccessible,
https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBInstance.html).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

PORT = 5432


def peer_security_group(name: str, *, vpc_id: pulumi.Input[str], what: str,
                        tags: dict[str, str], opts: pulumi.ResourceOptions
                        ) -> aws.ec2.SecurityGroup:
    """A security group with no in-line rules, for the primary's database: each secondary's
    stack adds its own ingress rules to it (aws.vpc.SecurityGroupIngressRule). The
    database's main group keeps its in-line rules, and the provider warns against mixing
    in-line rules with rule resources on one group: each apply would remove the other's
    rules (aws.ec2.SecurityGroup docstring, "WARNING"). With no `ingress` argument the
    provider leaves this group's ingress to the rule resources."""
    return aws.ec2.SecurityGroup(name, vpc_id=vpc_id, description=f"{what}: from peered "
                                 "regions (rules added by their stacks)", tags=tags, opts=opts)


@dataclass(frozen=True)
class PeeringArgs:
    """Inputs of `Peering`: this region (the requester) and the primary's (the accepter)."""

    vpc_id: pulumi.Input[str]
    """This region's VPC."""
    vpc_cidr: str
    """This region's VPC range: the primary routes it back over the peering."""
    route_table_ids: Sequence[pulumi.Input[str]]
    """This region's private and data route tables: each gets a route to the primary."""
    peer_region: str
    """The primary's region."""
    peer_vpc_id: pulumi.Input[str]
    peer_vpc_cidr: pulumi.Input[str]
    peer_route_table_ids: Sequence[pulumi.Input[str]]
    """The primary's private and data route tables (its stack outputs)."""
    peer_security_group_id: pulumi.Input[str] | None = None
    """The primary database's peer group; None: admit nothing (a region with no PgBouncer)."""
    client_cidrs: Sequence[str] = ()
    """Where this region's PgBouncer runs (its private subnets): admitted on PORT, nothing
    else. A security group in another region cannot be referenced across a peering, so the
    rule names CIDRs (VPC peering guide, "Update your security groups to reference peer
    security groups": same region only)."""
    tags: dict[str, str] = field(default_factory=dict)


def check_args(args: PeeringArgs) -> None:
    """Refuse what AWS would refuse or what would open too much."""
    own = ipaddress.IPv4Network(args.vpc_cidr)
    for cidr in args.client_cidrs:
        net = ipaddress.IPv4Network(cidr)
        if not net.subnet_of(own):
            raise ValueError(f"client_cidrs has {cidr}, outside this VPC's {own}; only this "
                             "region's own subnets may reach the primary's database")
    if args.client_cidrs and args.peer_security_group_id is None:
        raise ValueError("client_cidrs is set but peer_security_group_id is None; the rules "
                         "need the primary database's peer group")
    if not args.route_table_ids or not args.peer_route_table_ids:
        raise ValueError("route_table_ids and peer_route_table_ids must each name at least "
                         "one route table, or nothing crosses the peering")


def _no_overlap(cidrs: list[str]) -> str:
    own, peer = (ipaddress.IPv4Network(c) for c in cidrs)
    if own.overlaps(peer):  # AWS refuses it: InvalidVpcPeeringConnection.OverlappingCidr
        raise pulumi.RunError(f"the VPC {own} overlaps the primary's {peer}; a peering needs "
                              "ranges that do not overlap: change sofacover:network.cidr")
    return str(peer)


class Peering(pulumi.ComponentResource):
    """An inter-region VPC peering to the primary, its routes on both sides, and the rules
    admitting this region's PgBouncer to the primary's PostgreSQL."""

    connection_id: pulumi.Output[str]
    """The peering connection (pcx-...)."""

    def __init__(self, name: str, args: PeeringArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        check_args(args)
        super().__init__("sofacover:peering:Peering", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        peer = args.peer_region

        def tags(role: str, side: str) -> dict[str, str]:
            return {**args.tags, "Name": f"{name}-{role}", "Side": side}

        peer_cidr = pulumi.Output.all(args.vpc_cidr, args.peer_vpc_cidr).apply(_no_overlap)
        requester = aws.ec2.VpcPeeringConnection(
            f"{name}-pcx", vpc_id=args.vpc_id, peer_vpc_id=args.peer_vpc_id, peer_region=peer,
            auto_accept=False, tags=tags("pcx", "requester"), opts=child)
        accepter = aws.ec2.VpcPeeringConnectionAccepter(
            f"{name}-accepter", region=peer, vpc_peering_connection_id=requester.id,
            auto_accept=True, tags=tags("pcx", "accepter"), opts=child)
        # Both sides route through the accepter's id: the routes wait for the connection to
        # be active (a route to a pending connection is refused).
        for i, table in enumerate(args.route_table_ids):
            aws.ec2.Route(f"{name}-route-{i}", route_table_id=table,
                          destination_cidr_block=peer_cidr,
                          vpc_peering_connection_id=accepter.id, opts=child)
        for i, table in enumerate(args.peer_route_table_ids):
            aws.ec2.Route(f"{name}-peer-route-{i}", region=peer, route_table_id=table,
                          destination_cidr_block=args.vpc_cidr,
                          vpc_peering_connection_id=accepter.id, opts=child)
        for i, cidr in enumerate(args.client_cidrs):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-postgres-in-{i}", region=peer,
                security_group_id=args.peer_security_group_id, ip_protocol="tcp",
                from_port=PORT, to_port=PORT, cidr_ipv4=cidr,
                description=f"{name}: PgBouncer in {cidr} to PostgreSQL",
                tags=tags(f"postgres-in-{i}", "accepter"), opts=child)

        self.connection_id = accepter.id
        self.register_outputs({"connection_id": self.connection_id})
