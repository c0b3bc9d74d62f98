"""Preflight: AWS API constraints, tags, dated offerings and secret inputs; each rule where
it holds and where it is broken, and the plan exits non-zero on an error."""

from __future__ import annotations

import datetime as dt

import pytest

from planner.engine import PlannedResource
from planner.mocks import SECRET_MASK
from planner.preflight import aws
from tests.conftest import preflight_of

TODAY = dt.date(2026, 11, 27)


def res(token: str, logical: str = "r", provider: str | None = None, **inputs
        ) -> PlannedResource:
    return PlannedResource(urn=f"urn:pulumi:test::sofacover::{token}::{logical}", type=token,
                           name=logical, stack="test", region="us-east-1", parent=None,
                           custom=True, provider=provider, inputs=inputs, options={})


def errors(resources, *rules, today=TODAY):
    return [f for f in preflight_of(resources, *rules, today=today) if f.severity == "error"]


# --- the AWS API models (botocore) ---------------------------------------------------------

def test_every_mapped_property_names_a_member_of_the_aws_api_model():
    for token, prop, service, operation, member in aws.API_MEMBERS:
        assert aws.api_member(service, operation, member) is not None, (token, prop)


@pytest.mark.parametrize("token, prop, bad, good", [
    ("aws:iam/role:Role", "name", "r" * 65, "r" * 64),
    ("aws:iam/role:Role", "name", "bad name", "good-name_1"),
    ("aws:cloudwatch/logGroup:LogGroup", "name", "/app/ok?", "/app/ok"),
    ("aws:lb/targetGroup:TargetGroup", "protocol", "HTTP2", "HTTP"),
    ("aws:lb/targetGroup:TargetGroup", "port", 70000, 30080),
    ("aws:eks/cluster:Cluster", "name", "-cluster", "cluster"),
    ("aws:kms/key:Key", "deletionWindowInDays", 366, 30),
    ("aws:cloudwatch/metricAlarm:MetricAlarm", "comparisonOperator", "Above",
     "GreaterThanThreshold"),
])
def test_api_model_refuses_what_the_model_refuses_and_passes_the_rest(token, prop, bad, good):
    (finding,) = errors([res(token, **{prop: bad})], "aws-api-model")
    assert finding.property == prop and "botocore" in finding.source
    assert errors([res(token, **{prop: good})], "aws-api-model") == []


def test_api_model_reads_nested_properties_and_autonames_from_the_provider_answer():
    tg = res("aws:lb/targetGroup:TargetGroup", healthCheck={"interval": 301})
    (finding,) = errors([tg], "aws-api-model")
    assert finding.property == "healthCheck.interval"
    role = res("aws:iam/role:Role")
    role.outputs = {"name": "x" * 70}  # the autoname lives in the provider's answer
    assert [f.property for f in errors([role], "aws-api-model")] == ["name"]


# --- names the models do not carry ---------------------------------------------------------

@pytest.mark.parametrize("token, prop, bad, good", [
    ("aws:lb/loadBalancer:LoadBalancer", "name", "sofacover-prod-ap-southeast-1-alb-a1b2c3d",
     "sc-apse1-alb-a1b2c3d"),
    ("aws:lb/loadBalancer:LoadBalancer", "name", "internal-alb", "alb-internal"),
    ("aws:lb/targetGroup:TargetGroup", "name", "tg-", "tg-1"),
    ("aws:rds/instance:Instance", "identifier", "Prod--db", "prod-db"),
    ("aws:rds/instance:Instance", "finalSnapshotIdentifier", "prod-final-", "prod-final"),
    ("aws:elasticache/replicationGroup:ReplicationGroup", "replicationGroupId", "c" * 41,
     "c" * 40),
    ("aws:ec2/securityGroup:SecurityGroup", "name", "sg-app", "app-sg"),
    ("aws:ec2/securityGroup:SecurityGroup", "description", "Ünïcode", "App tier"),
    ("aws:s3/bucket:Bucket", "bucket", "My_Bucket", "my-bucket"),
    ("aws:s3/bucket:Bucket", "bucket", "logs..prod", "logs.prod"),
    ("aws:kms/alias:Alias", "name", "alias/aws/rds", "alias/sofacover/rds"),
    ("aws:ec2/launchTemplate:LaunchTemplate", "name", "lt", "lt-app"),
])
def test_names_follow_the_api_reference(token, prop, bad, good):
    (finding,) = errors([res(token, **{prop: bad})], "aws-names")
    assert finding.property == prop and finding.source.startswith("https://docs.aws")
    assert errors([res(token, **{prop: good})], "aws-names") == []


# --- numeric ranges and combinations -------------------------------------------------------

@pytest.mark.parametrize("storage_type, gib, iops, ok", [
    ("gp3", 50, None, True), ("gp3", 50, 3000, False),  # below 400 GiB: no iops at all
    ("gp3", 500, 12000, True), ("gp3", 500, 10000, False), ("gp3", 100_000, None, False),
    ("io1", 100, 5000, True), ("io1", 100, 5001, False), ("io2", 100, 100_000, True),
    ("io2", 100, None, False),
])
def test_rds_iops_by_volume_type_and_size(storage_type, gib, iops, ok):
    db = res("aws:rds/instance:Instance", storageType=storage_type, allocatedStorage=gib,
             **({"iops": iops} if iops is not None else {}))
    assert (errors([db], "aws-ranges") == []) is ok


def test_ranges_of_caches_groups_health_checks_and_alarms():
    broken = [
        res("aws:elasticache/replicationGroup:ReplicationGroup", "one", numCacheClusters=1,
            automaticFailoverEnabled=True),
        res("aws:elasticache/replicationGroup:ReplicationGroup", "seven", numCacheClusters=7),
        res("aws:lb/targetGroup:TargetGroup", healthCheck={"interval": 10, "timeout": 10}),
        res("aws:autoscaling/group:Group", minSize=3, maxSize=2, desiredCapacity=2),
        res("aws:cloudwatch/metricAlarm:MetricAlarm", period=45, evaluationPeriods=1),
        res("aws:cloudwatch/metricAlarm:MetricAlarm", "long", period=60,
            evaluationPeriods=1441),
        res("aws:rds/instance:Instance", backupRetentionPeriod=36),
        res("aws:cloudwatch/metricAlarm:MetricAlarm", "nodata", treatMissingData="zero"),
        res("aws:cloudwatch/logGroup:LogGroup", retentionInDays=0),
        res("aws:kms/key:Key", deletionWindowInDays=6),
    ]
    found = {(f.resource.split()[-1], f.property) for f in errors(broken, "aws-ranges")}
    assert found == {("one", "automaticFailoverEnabled"), ("seven", "numCacheClusters"),
                     ("r", "healthCheck.timeout"), ("r", "minSize"), ("r", "desiredCapacity"),
                     ("r", "period"), ("long", "evaluationPeriods"),
                     ("r", "backupRetentionPeriod"), ("nodata", "treatMissingData"),
                     ("r", "retentionInDays"), ("r", "deletionWindowInDays")}
    fine = [
        res("aws:elasticache/replicationGroup:ReplicationGroup", numCacheClusters=3,
            automaticFailoverEnabled=True),
        res("aws:lb/targetGroup:TargetGroup", healthCheck={"interval": 10, "timeout": 5}),
        res("aws:autoscaling/group:Group", minSize=2, maxSize=8, desiredCapacity=2),
        res("aws:cloudwatch/metricAlarm:MetricAlarm", period=30, evaluationPeriods=3),
        res("aws:rds/instance:Instance", backupRetentionPeriod=30),
        res("aws:cloudwatch/metricAlarm:MetricAlarm", treatMissingData="notBreaching"),
        res("aws:cloudwatch/logGroup:LogGroup", retentionInDays=365),
        res("aws:kms/key:Key", deletionWindowInDays=30),
    ]
    assert errors(fine, "aws-ranges") == []


# --- tags ----------------------------------------------------------------------------------

def test_tags_count_the_providers_default_tags_and_follow_aws_rules():
    provider = res("pulumi:providers:aws", "aws", defaultTags={
        "tags": {f"k{i}": "v" for i in range(45)}})
    ref = f"{provider.urn}::id"
    many = res("aws:ec2/vpc:Vpc", "many", provider=ref, tags={f"own{i}": "v" for i in range(6)})
    few = res("aws:ec2/vpc:Vpc", "few", provider=ref, tags={"Name": "vpc"})
    bad = res("aws:ec2/vpc:Vpc", "bad", tags={"aws:owner": "x", "Team": "a*b", "k" * 129: ""})
    found = [(f.resource.split()[-1], f.property) for f in errors([provider, many, few, bad],
                                                                    "aws-tags")]
    assert ("many", "tags") in found and not [f for f in found if f[0] == "few"]
    assert {p for r, p in found if r == "bad"} == {"tags.aws:owner", "tags.Team",
                                                   "tags." + "k" * 129}


# --- dated offerings -----------------------------------------------------------------------

def test_rds_refuses_a_retired_minor_and_accepts_the_major():
    (finding,) = errors([res("aws:rds/instance:Instance", engine="postgres",
                             engineVersion="16.6",
                             autoMinorVersionUpgrade=False)], "aws-rds-engine-version")
    assert "no longer be created" in finding.message and "'16'" in finding.message
    assert errors([res("aws:rds/instance:Instance", engine="postgres", engineVersion="16")],
                  "aws-rds-engine-version") == []
    # Before AWS stopped creating it, the same minor was fine.
    assert errors([res("aws:rds/instance:Instance", engine="postgres", engineVersion="16.6",
                       autoMinorVersionUpgrade=False)],
                  "aws-rds-engine-version", today=dt.date(2026, 4, 30)) == []


def test_a_pinned_minor_needs_automatic_minor_upgrades_off():
    def findings(**inputs):
        return errors([res("aws:rds/instance:Instance", engine="postgres", **inputs)],
                      "aws-rds-engine-version")

    (pinned,) = findings(engineVersion="16.11", autoMinorVersionUpgrade=True)
    assert "downgrade" in pinned.message
    assert findings(engineVersion="16.11", autoMinorVersionUpgrade=False) == []
    assert findings(engineVersion="16", autoMinorVersionUpgrade=True) == []


def test_rds_major_past_standard_support_is_refused_and_near_its_end_warned():
    old = res("aws:rds/instance:Instance", engine="postgres", engineVersion="13")
    assert [f.property for f in errors([old], "aws-rds-engine-version")] == ["engineVersion"]
    near = preflight_of([res("aws:rds/instance:Instance", engine="postgres",
                             engineVersion="14")], "aws-rds-engine-version",
                        today=dt.date(2026, 12, 15))
    assert [f.severity for f in near] == ["warning"]  # ends 2027-02-28, within 90 days


def test_rds_instance_class_must_be_of_an_offered_family():
    assert errors([res("aws:rds/instance:Instance", instanceClass="db.m6i.2xlarge")],
                  "aws-rds-instance-class") == []
    for cls in ("db.q9.large", "m6i.2xlarge"):
        assert len(errors([res("aws:rds/instance:Instance", instanceClass=cls)],
                          "aws-rds-instance-class")) == 1


def test_eks_version_past_standard_support_is_refused_within_90_days_warned():
    def findings(version):
        return preflight_of([res("aws:eks/cluster:Cluster", version=version)],
                            "aws-eks-version", today=TODAY)

    assert [f.severity for f in findings("1.33")] == ["error"]  # ended 2026-07-29
    assert [f.severity for f in findings("1.34")] == ["warning"]  # ends 2026-12-02
    assert findings("1.35") == []
    assert "not an EKS version" in findings("1.99")[0].message


def test_elasticache_engine_family_and_node_type():
    group = res("aws:elasticache/replicationGroup:ReplicationGroup", engine="redis",
                engineVersion="7.1", nodeType="cache.r6g.large")
    params = res("aws:elasticache/parameterGroup:ParameterGroup", family="redis7")
    assert errors([group, params], "aws-elasticache-engine") == []
    wrong = res("aws:elasticache/parameterGroup:ParameterGroup", "p6", family="redis6.x")
    old = res("aws:elasticache/replicationGroup:ReplicationGroup", "old", engine="redis",
              engineVersion="5.0.6", nodeType="cache.m1.small")
    found = {(f.resource.split()[-1], f.property)
             for f in errors([group, wrong, old], "aws-elasticache-engine")}
    assert found == {("p6", "family"), ("old", "engineVersion"), ("old", "nodeType")}


def test_cidrs_are_valid_sized_and_subnets_inside_their_vpc():
    vpc = res("aws:ec2/vpc:Vpc", "vpc", cidrBlock="10.10.0.0/16")
    vpc.id = "vpc-1"
    inside = res("aws:ec2/subnet:Subnet", "in", cidrBlock="10.10.1.0/24", vpcId="vpc-1")
    outside = res("aws:ec2/subnet:Subnet", "out", cidrBlock="10.20.1.0/24", vpcId="vpc-1")
    tiny = res("aws:ec2/subnet:Subnet", "tiny", cidrBlock="10.10.2.0/29", vpcId="vpc-1")
    found = {f.resource.split()[-1] for f in errors([vpc, inside, outside, tiny], "aws-cidr")}
    assert found == {"out", "tiny"}


# --- secrets -------------------------------------------------------------------------------

def test_credentials_must_reach_resources_as_secrets():
    plain = res("aws:elasticache/replicationGroup:ReplicationGroup", authToken="hunter2" * 3)
    secret = res("aws:elasticache/replicationGroup:ReplicationGroup", "s",
                 authToken=SECRET_MASK)
    k8s = res("kubernetes:core/v1:Secret", "k", stringData={"a": SECRET_MASK, "b": "plain"})
    found = {f.resource.split()[-1] for f in errors([plain, secret, k8s], "secret-inputs")}
    assert found == {"r", "k"}


# --- wiring a real deploy depends on (on the real plans, then broken on purpose) ----------

def _swap(plan, res, **changes):
    """A copy of `plan` with one resource's inputs or options changed."""
    import copy

    clone = copy.copy(plan)
    clone.resources = []
    for r in plan.resources:
        if r is res:
            r = copy.deepcopy(r)
            r.inputs.update(changes.pop("inputs", {}))
            r.options.update(changes.pop("options", {}))
        clone.resources.append(r)
    return clone


def _group(plan):
    (group,) = [r for r in plan.resources if r.type == "aws:autoscaling/group:Group"]
    return group


def test_eks_node_group_with_elb_health_checks_is_refused(prod_phase2, prod):
    from planner import preflight

    plan = prod_phase2["prod"]
    assert _group(plan).inputs["healthCheckType"] == "EC2"
    assert preflight.check([plan], only=["aws-eks-node-health-check"]) == []
    broken = _swap(plan, _group(plan), inputs={"healthCheckType": "ELB"})
    (finding,) = preflight.check([broken], only=["aws-eks-node-health-check"])
    assert finding.property == "healthCheckType"
    # On the ec2 platform ELB checks are right: the app is the instance.
    assert _group(prod["prod"]).inputs["healthCheckType"] == "ELB"
    assert preflight.check([prod["prod"]], only=["aws-eks-node-health-check"]) == []


def test_https_listener_must_wait_for_the_certificates_validation(prod):
    from planner import preflight

    plan = prod["prod"]
    (https,) = [r for r in plan.resources if r.type == "aws:lb/listener:Listener"
                and r.inputs.get("protocol") == "HTTPS"]
    assert preflight.check([plan], only=["aws-listener-waits-for-certificate"]) == []
    broken = _swap(plan, https, options={"depends_on": []})
    (finding,) = preflight.check([broken], only=["aws-listener-waits-for-certificate"])
    assert finding.property == "certificateArn"


def test_acm_validation_records_are_dns_only_and_created_once(prod):
    from planner import preflight

    plan = prod["prod"]
    (record,) = [r for r in plan.resources if r.type == "cloudflare:index/dnsRecord:DnsRecord"]
    assert record.inputs["proxied"] is False
    assert preflight.check(list(prod.values()), only=["acm-validation-records"]) == []
    proxied = _swap(plan, record, inputs={"proxied": True, "ttl": 30})
    found = {f.property for f in preflight.check([proxied], only=["acm-validation-records"])}
    assert found == {"proxied", "ttl"}
    # A second stack creating the same record (dnsValidation cloudflare in a secondary).
    twin = _swap(prod["prod-us-west-2"], None)
    twin.stack = "prod-us-west-2"
    twin.resources = [*twin.resources, record]
    (dup,) = preflight.check([plan, twin], only=["acm-validation-records"])
    assert dup.stack == "prod-us-west-2" and "already created by stack prod" in dup.message


# --- instance-type offerings and the EKS endpoint ---------------------------------------

def test_instance_types_must_be_offered_in_the_region_and_every_zone_of_the_group():
    from planner.mocks import availability_zones, instance_types_in_zone

    zones = [name for name, _ in availability_zones()["us-east-1"]]
    # A type the region offers but one of its zones does not (moto's offerings data).
    everywhere = set.intersection(*(set(instance_types_in_zone(z)) for z in zones))
    anywhere = set.union(*(set(instance_types_in_zone(z)) for z in zones))
    partial = sorted(anywhere - everywhere)[0]
    missing = next(z for z in zones if partial not in instance_types_in_zone(z))
    subnet = res("aws:ec2/subnet:Subnet", "s", availabilityZone=missing)
    subnet.id = "subnet-1"

    def plan_with(kind):
        lt = res("aws:ec2/launchTemplate:LaunchTemplate", "lt", instanceType=kind)
        lt.id = "lt-1"
        group = res("aws:autoscaling/group:Group", "g", launchTemplate={"id": "lt-1"},
                    vpcZoneIdentifiers=["subnet-1"])
        return [subnet, lt, group]

    found = errors(plan_with(partial), "aws-instance-type-offered")
    assert [(f.resource.split()[-1], f.property) for f in found] == \
        [("g", "vpcZoneIdentifiers")] and missing in found[0].message
    assert {f.property for f in errors(plan_with("m5.nonesuch"),
                                       "aws-instance-type-offered")} >= {"instanceType"}
    fine = sorted(everywhere)[0]
    assert errors(plan_with(fine), "aws-instance-type-offered") == []


def test_a_private_only_eks_endpoint_warns_where_pulumi_up_must_run():
    def findings(vpc_config):
        return preflight_of([res("aws:eks/cluster:Cluster", vpcConfig=vpc_config)],
                            "aws-eks-endpoint-reachable", today=TODAY)

    (private,) = findings({"endpointPublicAccess": False, "endpointPrivateAccess": True})
    assert private.severity == "warning" and "inside the VPC" in private.message
    (open_,) = findings({"endpointPublicAccess": True})
    assert "open to the internet" in open_.message
    assert findings({"endpointPublicAccess": True, "publicAccessCidrs": ["198.51.100.7/32"]}) \
        == []


def test_eks_control_plane_subnets_outside_the_zone_ids_eks_refuses():
    def plan_with(zone_id):
        subnet = res("aws:ec2/subnet:Subnet", "s")
        subnet.id, subnet.outputs = "subnet-1", {"availabilityZoneId": zone_id}
        cluster = res("aws:eks/cluster:Cluster", "c", vpcConfig={"subnetIds": ["subnet-1"]})
        return [subnet, cluster]

    (finding,) = errors(plan_with("use1-az3"), "aws-eks-subnet-zones")
    assert finding.property == "vpcConfig.subnetIds" and "use1-az3" in finding.message
    assert errors(plan_with("use1-az1"), "aws-eks-subnet-zones") == []


def test_limits_on_user_data_policies_rules_endpoints_routes_and_zones():
    import base64

    huge = base64.b64encode(b"#!/bin/bash\n" + b"x" * 17_000).decode()
    broken = [
        res("aws:ec2/launchTemplate:LaunchTemplate", "lt", userData=huge),
        res("aws:iam/rolePolicy:RolePolicy", "p1", role="r", policy="{" + "a" * 6_000 + "}"),
        res("aws:iam/rolePolicy:RolePolicy", "p2", role="r", policy="{" + "b" * 6_000 + "}"),
        res("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "in",
            ipProtocol="tcp", fromPort=443, toPort=80),
        res("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", "out",
            ipProtocol="http", fromPort=80, toPort=80),
        res("aws:ec2/vpcEndpoint:VpcEndpoint", "s3", serviceName="com.amazonaws.eu-west-1.s3"),
        res("aws:ec2/route:Route", "rt", destinationCidrBlock="0.0.0.0/33"),
        res("aws:ec2/subnet:Subnet", "sn", availabilityZone="us-east-1z"),
    ]
    found = {(f.resource.split()[-1], f.property) for f in errors(broken, "aws-limits")}
    assert found == {("lt", "userData"), ("p1", "policy"), ("in", "fromPort"),
                     ("out", "ipProtocol"), ("s3", "serviceName"),
                     ("rt", "destinationCidrBlock"), ("sn", "availabilityZone")}
    fine = [
        res("aws:ec2/launchTemplate:LaunchTemplate", "lt",
            userData=base64.b64encode(b"#!/bin/bash\ntrue\n").decode()),
        res("aws:iam/rolePolicy:RolePolicy", "p1", role="r", policy="{}"),
        res("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "in",
            ipProtocol="tcp", fromPort=443, toPort=443),
        res("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", "all", ipProtocol="-1"),
        res("aws:ec2/vpcEndpoint:VpcEndpoint", "s3", serviceName="com.amazonaws.us-east-1.s3"),
        res("aws:ec2/route:Route", "rt", destinationCidrBlock="0.0.0.0/0"),
        res("aws:ec2/subnet:Subnet", "sn", availabilityZone="us-east-1a"),
    ]
    assert errors(fine, "aws-limits") == []


def test_every_aws_type_the_program_creates_is_checked_or_says_why_not(prod, prod_phase2,
                                                                      prod_phase3, dev):
    import inspect

    from planner import preflight

    preflight._load_rules()
    sources = "\n".join(inspect.getsource(r.check) for r in preflight.RULES.values())
    sources += "\n".join(t for t, *_ in aws.API_MEMBERS) + "\n".join(t for t, _ in aws.NAMES)
    planned = {r.type for plans in (prod, prod_phase2, prod_phase3) for p in plans.values()
               for r in p.resources} | {r.type for r in dev.resources}
    unchecked = sorted(t for t in planned if t.startswith("aws:") and t not in sources
                       and t not in aws.UNCONSTRAINED)
    # Tags apply to every taggable type; the rest must be named by a rule or say why not.
    assert unchecked == []
