"""The Network component, built inside each test under the recording mocks."""

from __future__ import annotations

import ipaddress
import itertools

import pulumi
import pulumi_aws as aws
import pytest

from components.network import Network, NetworkArgs, plan_subnets
from config.regions import AZ_COUNT
from planner.mocks import ACCOUNT_ID
from tests.conftest import of_type

NAT = "aws:ec2/natGateway:NatGateway"
ROUTE = "aws:ec2/route:Route"
SUBNET = "aws:ec2/subnet:Subnet"


def network(nat: str = "perAz", az_count: int = 3, region: str | None = None, **kw):
    """The program building Network (under a provider of `region` when given) and exporting
    its subnet ids and groups. The args are made here, so the `build` fixture's key is their
    value: programs of equal args (test_security's too) share one build."""
    built = NetworkArgs(cidr="10.20.0.0/16", az_count=az_count, nat_gateways=nat, **kw)

    def fn() -> None:
        opts = None
        if region:
            provider = aws.Provider("aws-test", region=region)
            opts = pulumi.ResourceOptions(providers={"aws": provider})
        net = Network("net", built, opts)
        pulumi.export("ids", net.private_subnet_ids)
        pulumi.export("groups", pulumi.Output.all(net.db_subnet_group_name,
                                                  net.cache_subnet_group_name))
    return fn


# --- subnet layout -------------------------------------------------------------------------

@pytest.mark.parametrize("cidr", ["10.10.0.0/16", "172.16.0.0/18", "192.168.0.0/20"])
@pytest.mark.parametrize("azs", [2, 3, 6])
def test_subnets_are_disjoint_and_inside_the_vpc(cidr, azs):
    layout = plan_subnets(cidr, azs)
    vpc = ipaddress.IPv4Network(cidr)
    nets = [ipaddress.IPv4Network(n) for tier in layout.values() for n in tier]
    assert all(len(tier) == azs for tier in layout.values())
    assert all(n.subnet_of(vpc) for n in nets)
    assert not any(a.overlaps(b) for a, b in itertools.combinations(nets, 2))
    assert all(n.prefixlen <= 28 for n in nets)  # AWS's smallest subnet


def test_private_subnets_are_the_largest_tier():
    layout = plan_subnets("10.10.0.0/16", 3)
    size = {t: ipaddress.IPv4Network(layout[t][0]).num_addresses for t in layout}
    assert size["private"] > size["public"] and size["private"] > size["data"]


@pytest.mark.parametrize("azs", [0, 7])
def test_subnet_layout_refuses_impossible_az_counts(azs):
    with pytest.raises(ValueError, match="az_count"):
        plan_subnets("10.10.0.0/16", azs)


# --- NAT modes -------------------------------------------------------------------------------

def test_per_az_nat_gives_each_private_subnet_its_own_gateway(build):
    res = build(network("perAz")).resources
    assert len(of_type(res, NAT)) == 3
    private_routes = [r for r in res if r.type == ROUTE and "private" in r.name]
    assert len({r.inputs["natGatewayId"] for r in private_routes}) == 3


def test_single_nat_is_shared_by_every_private_subnet(build):
    res = build(network("single")).resources
    assert len(of_type(res, NAT)) == 1
    private_routes = [r for r in res if r.type == ROUTE and "private" in r.name]
    assert len(private_routes) == 3
    assert len({r.inputs["natGatewayId"] for r in private_routes}) == 1


def test_no_nat_means_no_route_to_the_internet_from_private_subnets(build):
    res = build(network("none")).resources
    assert not of_type(res, NAT)
    assert [r.name for r in of_type(res, ROUTE)] == ["net-public-default"]


def test_nat_gateways_sit_in_public_subnets_and_wait_for_the_igw(build):
    res = build(network("perAz")).resources
    public_ids = {r.id for r in of_type(res, SUBNET) if "public" in r.name}
    igw = next(r for r in res if r.type == "aws:ec2/internetGateway:InternetGateway")
    for nat in of_type(res, NAT):
        assert nat.inputs["subnetId"] in public_ids
        assert igw.urn in nat.options["depends_on"]


# --- tiers and groups ------------------------------------------------------------------------

def test_data_subnets_have_no_internet_route(build):
    res = build(network("perAz")).resources
    data_rt = next(r for r in res if r.name == "net-data-rt")
    routes = [r for r in of_type(res, ROUTE) if r.inputs["routeTableId"] == data_rt.id]
    assert routes == []


def test_db_and_cache_subnet_groups_use_exactly_the_data_subnets(build):
    res = build(network()).resources
    data_ids = sorted(r.id for r in of_type(res, SUBNET) if "-data-" in r.name)
    for token in ("aws:rds/subnetGroup:SubnetGroup", "aws:elasticache/subnetGroup:SubnetGroup"):
        (group,) = of_type(res, token)
        assert sorted(group.inputs["subnetIds"]) == data_ids


def test_no_subnet_hands_out_public_ips(build):
    res = build(network()).resources
    assert all(r.inputs["mapPublicIpOnLaunch"] is False for r in of_type(res, SUBNET))


def test_subnets_are_tagged_for_kubernetes_load_balancers(build):
    res = build(network()).resources
    public = [r for r in of_type(res, SUBNET) if "public" in r.name]
    private = [r for r in of_type(res, SUBNET) if "private" in r.name]
    assert all(r.inputs["tags"]["kubernetes.io/role/elb"] == "1" for r in public)
    assert all(r.inputs["tags"]["kubernetes.io/role/internal-elb"] == "1" for r in private)


def test_default_security_group_is_stripped_of_rules(build):
    (sg,) = of_type(build(network()).resources,
                    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert sg.inputs.get("ingress", []) == [] and sg.inputs.get("egress", []) == []


def test_flow_logs_go_to_cloudwatch_with_their_retention(build):
    res = build(network(flow_logs_retention_days=365)).resources
    (group,) = of_type(res, "aws:cloudwatch/logGroup:LogGroup")
    (flow,) = of_type(res, "aws:ec2/flowLog:FlowLog")
    assert group.inputs["retentionInDays"] == 365
    arn = f"arn:aws:logs:us-east-1:{ACCOUNT_ID}:log-group:{group.id}"
    assert flow.inputs["logDestination"] == arn
    assert flow.inputs["trafficType"] == "ALL"
    (role,) = of_type(res, "aws:iam/role:Role")
    assert "vpc-flow-logs.amazonaws.com" in role.inputs["assumeRolePolicy"]
    assert "aws:SourceAccount" in role.inputs["assumeRolePolicy"]


def test_flow_logs_can_be_turned_off(build):
    res = build(network(flow_logs_enabled=False)).resources
    assert not of_type(res, "aws:ec2/flowLog:FlowLog")


# --- provider, parents, region ----------------------------------------------------------------

def test_every_child_is_parented_to_the_component(build):
    res = build(network()).resources
    (component,) = of_type(res, "sofacover:network:Network")
    assert all(r.parent == component.urn for r in res if r is not component)


def test_the_callers_provider_and_region_reach_every_child_and_invoke(build):
    region = "eu-west-1"
    res = build(network(region=region)).resources
    children = [r for r in res if r.type.startswith("aws:")]
    assert all(r.provider and "aws-test" in r.provider for r in children)
    assert all(r.region == region for r in children)
    zones = [r.inputs["availabilityZone"] for r in of_type(res, SUBNET)]
    assert set(zones) == {f"{region}a", f"{region}b", f"{region}c"}
    (endpoint,) = of_type(res, "aws:ec2/vpcEndpoint:VpcEndpoint")
    assert endpoint.inputs["serviceName"] == f"com.amazonaws.{region}.s3"


def test_more_azs_than_the_region_offers_fails_with_the_key_to_change(build):
    region = "us-west-1"
    with pytest.raises(pulumi.RunError, match="lower sofacover:network.azCount"):
        build(network(az_count=AZ_COUNT[region] + 1, region=region))


def test_outputs_are_set_and_registered(build):
    run = build(network())
    assert len(run.outputs["ids"]) == 3
    assert all(name for name in run.outputs["groups"])


def test_builds_in_preview_mode_with_unknown_outputs(build):
    res = build(network(), preview=True).resources
    assert len(of_type(res, SUBNET)) == 9


def test_subnets_never_land_in_a_zone_id_eks_refuses(build):
    # moto maps us-east-1e to use1-az3; with five zones wanted, a-d and f are used instead.
    res = build(network(az_count=5, region="us-east-1")).resources
    zone_ids = {s.outputs["availabilityZoneId"] for s in of_type(res, SUBNET)}
    assert len(zone_ids) == 5 and "use1-az3" not in zone_ids
    assert {s.inputs["availabilityZone"] for s in of_type(res, SUBNET)} == \
        {"us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1f"}
