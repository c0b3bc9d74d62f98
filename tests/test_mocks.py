"""The mocks behave like the providers' check step and answer invokes from AWS's own data.

Autonaming follows pulumi-aws (planner/preflight/data/aws_autonaming.yaml): the logical
name, a separator and 7 random characters, refused (never shortened) over the type's
maximum. Availability zones, instance-type offerings and public SSM parameters come from
the data moto ships.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import inspect
import re
import sys
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pytest

from config.regions import AZ_COUNT
from planner import mocks
from planner.mocks import AutonameError, autoname, autonaming_table

from .conftest import named, of_type

TG = "aws:lb/targetGroup:TargetGroup"
LB = "aws:lb/loadBalancer:LoadBalancer"
AL2023 = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
SEED = "0123456789abcdef" * 4


def _target_group(name: str):
    def program() -> None:
        aws.lb.TargetGroup(name, port=80, protocol="HTTP", vpc_id="vpc-0123456789abcdef0")
    return program


def _rules(token: str) -> dict:
    return autonaming_table()[token]


# --- autonaming: format, case, length ---------------------------------------------------------

def test_autoname_is_logical_name_dash_seven_random_chars_in_the_state(build):
    res = build(lambda: aws.iam.Role("web-role", assume_role_policy="{}")).resources
    role = named(res, "web-role")
    assert "name" not in role.inputs  # the program left it to the provider
    assert re.fullmatch(r"web-role-[0-9a-f]{7}", role.outputs["name"])
    assert role.id == role.outputs["name"]


def test_a_name_the_program_sets_is_kept_as_given(build):
    res = build(lambda: aws.iam.Role("web-role", name="Exactly-This",
                                     assume_role_policy="{}")).resources
    assert named(res, "web-role").outputs["name"] == "Exactly-This"


def test_types_the_provider_lowercases_get_a_lowercased_autoname():
    rule = _rules("aws:elasticache/replicationGroup:ReplicationGroup")
    assert rule["lowercase"] and rule["property"] == "replicationGroupId"
    out = autoname("aws:elasticache/replicationGroup:ReplicationGroup", "Web-Cache", {}, SEED)
    assert out["replicationGroupId"] == "web-cache-" + SEED[:7]
    bucket = autoname("aws:s3/bucket:Bucket", "Logs-Bucket", {}, SEED)
    assert bucket["bucket"] == "logs-bucket-" + SEED[:7]


def test_types_the_provider_does_not_lowercase_keep_the_case():
    assert not _rules("aws:iam/role:Role")["lowercase"]
    assert autoname("aws:iam/role:Role", "Web-Role", {}, SEED)["name"] == "Web-Role-" + SEED[:7]


def test_rds_instance_identifier_has_no_separator_as_in_the_provider():
    out = autoname("aws:rds/instance:Instance", "db", {}, SEED)
    assert out["identifier"] == "db" + SEED[:7]


def test_longest_logical_name_that_fits_is_autonamed_to_exactly_the_maximum(build):
    limit = _rules(TG)["max_length"]
    logical = "t" * (limit - 8)  # + "-" + 7 random chars == limit
    group = named(build(_target_group(logical)).resources, logical)
    assert len(group.outputs["name"]) == limit
    assert group.outputs["name"].startswith(logical + "-")  # nothing cut off


def test_over_long_autoname_is_refused_with_the_providers_error_not_shortened(build):
    limit = _rules(TG)["max_length"]
    logical = "t" * (limit - 7)  # one character too many
    expected = (f"could not make instance of '{TG}': name '{logical}-' plus 7 random chars "
                f"is longer than maximum length {limit}")
    with pytest.raises(AutonameError) as failure:
        build(_target_group(logical))
    assert str(failure.value) == expected


def test_over_long_autoname_is_refused_whatever_the_type():
    role = _rules("aws:iam/role:Role")["max_length"]
    with pytest.raises(AutonameError, match=f"longer than maximum length {role}$"):
        autoname("aws:iam/role:Role", "r" * (role - 7), {}, SEED)
    assert len(autoname("aws:iam/role:Role", "r" * (role - 8), {}, SEED)["name"]) == role


def test_load_balancer_name_over_32_is_refused_by_the_upstream_check():
    # pulumi-aws autonames aws_lb within its generic 255, but the Terraform schema's name
    # validator, run in the same Check, refuses more than 32 characters.
    assert _rules(LB)["max_length"] == 255 and _rules(LB)["check_max_length"] == 32
    assert len(autoname(LB, "a" * 24, {}, SEED)["name"]) == 32
    with pytest.raises(AutonameError, match='"name" cannot be longer than 32 characters'):
        autoname(LB, "a" * 25, {}, SEED)
    with pytest.raises(AutonameError, match="cannot be longer than 32"):
        autoname(LB, "lb", {"name": "n" * 33}, SEED)  # a given name is checked too


def test_a_name_not_known_until_apply_is_not_checked():
    # In a preview an input computed from another resource is the engine's unknown value.
    assert autoname(LB, "lb", {"name": mocks.UNKNOWN}, SEED) == {"name": mocks.UNKNOWN}


def test_a_name_prefix_is_left_to_the_provider():
    assert "name" not in autoname("aws:rds/parameterGroup:ParameterGroup", "x" * 300,
                                  {"namePrefix": "pg-"}, SEED)


def test_the_table_names_its_provider_source_and_version():
    import yaml

    data = yaml.safe_load(mocks.AUTONAMING_TABLE.read_text())
    assert data["provider"] == "pulumi-aws" and data["read"]
    assert all(re.fullmatch(r"[0-9a-f]{40}", c) for c in data["commits"].values())
    for token, rule in autonaming_table().items():
        assert rule["from"] in ("generic", "override"), token
        assert rule["randlen"] == 7 and rule["max_length"] > 0, token


# --- autonaming over the program's own plans --------------------------------------------------

def _plans(prod, prod_phase2, prod_phase3, dev):
    return [*prod.values(), *prod_phase2.values(), *prod_phase3.values(), dev]


def _sdk_has_input_name(token: str) -> bool:
    # pulumi-aws autonames every resource with an input `name` (setAutonaming).
    module, cls = token.split(":")[1].split("/")[0], token.split(":")[2]
    args = getattr(getattr(aws, module), f"{cls}Args", None)
    return args is not None and "name" in inspect.signature(args.__init__).parameters


def test_every_type_the_program_autonames_is_in_the_table(prod, prod_phase2, prod_phase3,
                                                           dev):
    table = autonaming_table()
    missing = set()
    for plan in _plans(prod, prod_phase2, prod_phase3, dev):
        for r in plan.resources:
            if (r.custom and not r.read and r.type.startswith("aws:")
                    and _sdk_has_input_name(r.type) and "name" not in r.inputs
                    and r.type not in table):
                missing.add(r.type)
    assert not missing, f"autonamed by pulumi-aws but not in the table: {sorted(missing)}"


def test_every_autoname_in_the_plans_is_the_full_logical_name_plus_suffix(
        prod, prod_phase2, prod_phase3, dev):
    table = autonaming_table()
    checked = 0
    for plan in _plans(prod, prod_phase2, prod_phase3, dev):
        for r in plan.resources:
            rule = table.get(r.type)
            if not rule or r.read or r.inputs.get(rule["property"]) or \
                    r.inputs.get(rule["property"] + "Prefix"):
                continue
            stem = (r.name.lower() if rule["lowercase"] else r.name) + rule["separator"]
            value = r.outputs[rule["property"]]
            assert re.fullmatch(re.escape(stem) + "[0-9a-f]{7}", value), (plan.stack, r.name)
            assert len(value) <= min(rule["max_length"], rule.get("check_max_length") or 999)
            checked += 1
    assert checked > 100


def test_prod_target_groups_and_albs_keep_their_phase_1_names_as_aliases(prod_phase3):
    for plan in prod_phase3.values():
        for r in of_type(plan.resources, TG) + of_type(plan.resources, LB):
            names = [a["spec"].get("name") for a in r.options["aliases"]]
            assert any(n and n.startswith(f"sofacover-{plan.stack}-") for n in names), r.name


# --- duplicate URNs ---------------------------------------------------------------------------

def test_two_resources_with_the_same_type_name_and_parent_fail_the_run(build):
    def program() -> None:
        aws.iam.Role("twin", assume_role_policy="{}")
        aws.iam.Role("twin", assume_role_policy="{}")

    with pytest.raises(Exception, match="Duplicate resource URN .*twin"):
        build(program)


def test_same_name_with_another_type_or_parent_is_not_a_duplicate(build):
    class Holder(pulumi.ComponentResource):
        def __init__(self, name: str) -> None:
            super().__init__("test:index:Holder", name)
            aws.iam.Role("twin", assume_role_policy="{}",
                         opts=pulumi.ResourceOptions(parent=self))

    def program() -> None:
        aws.iam.Role("twin", assume_role_policy="{}")
        aws.iam.Policy("twin", policy="{}")
        Holder("holder")

    assert len([r for r in build(program).resources if r.name == "twin"]) == 3


# --- invokes answered from moto's data ----------------------------------------------------------

@functools.cache
def _moto_zones() -> dict[str, list[tuple[str, str]]]:
    """moto's RegionsAndZonesBackend.zones. Imported through its package, the module brings in
    all of moto's EC2 models (about 2 s of CPU) when no other test has; so unless it is loaded
    already, the module file alone is run, with one botocore loader for the three sessions
    its class makes (each would parse botocore's endpoint table again)."""
    name = "moto.ec2.models.availability_zones_and_regions"
    module = sys.modules.get(name)
    if module is None:
        import botocore.loaders
        import botocore.session

        spec = importlib.util.find_spec("moto")
        assert spec is not None and spec.origin is not None
        path = Path(spec.origin).parent / "ec2" / "models" / "availability_zones_and_regions.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        loader = botocore.loaders.create_loader()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(botocore.session, "create_loader", lambda *_: loader)
            spec.loader.exec_module(module)
    return {region: [(z.name, z.zone_id) for z in zones]
            for region, zones in module.RegionsAndZonesBackend.zones.items()}


def test_zones_and_zone_ids_are_motos_for_every_region():
    assert mocks.availability_zones() == _moto_zones()


@pytest.mark.parametrize("region", ["us-east-1", "ap-southeast-1", "ap-northeast-1"])
def test_get_availability_zones_answers_motos_names_and_zone_ids(build, region):
    def program() -> None:
        zones = aws.get_availability_zones_output(state="available")
        pulumi.export("names", zones.names)
        pulumi.export("ids", zones.zone_ids)

    outputs = build(program, region=region).outputs
    expected = _moto_zones()[region]
    assert outputs["names"] == [n for n, _ in expected]
    assert outputs["ids"] == [z for _, z in expected]


def test_a_subnet_reports_motos_zone_id_for_its_zone(build):
    res = build(lambda: aws.ec2.Subnet("s", vpc_id="vpc-1", cidr_block="10.0.0.0/24",
                                       availability_zone="us-east-1a")).resources
    assert named(res, "s").outputs["availabilityZoneId"] == dict(_moto_zones()["us-east-1"])[
        "us-east-1a"]


def test_a_zone_the_region_does_not_have_is_an_error(build):
    with pytest.raises(Exception, match="us-east-1z is not an availability zone"):
        build(lambda: aws.ec2.Subnet("s", vpc_id="vpc-1", cidr_block="10.0.0.0/24",
                                     availability_zone="us-east-1z"))


def test_config_az_counts_agree_with_moto_for_every_region_both_know():
    moto = _moto_zones()
    differ = {r: (n, len(moto[r])) for r, n in AZ_COUNT.items() if r in moto
              and len(moto[r]) != n}
    assert not differ
    assert set(AZ_COUNT) <= set(moto)


def test_public_ssm_parameter_is_answered_with_motos_value(build):
    def program() -> None:
        pulumi.export("ami", aws.ssm.get_parameter_output(name=AL2023).value)

    outputs = build(program, region="eu-west-1").outputs
    assert outputs["ami"] == mocks.public_parameter("eu-west-1", AL2023)["Value"]
    assert outputs["ami"].startswith("ami-")


@pytest.mark.parametrize("name", [
    "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_65",  # typo
    "/aws/service/eks/optimized-ami/1.33/amazon-linux-2023/x86_64/standard/latest/image_id",
    "/sofacover/prod/anything",  # an account's own parameter: not readable offline
])
def test_unknown_ssm_parameter_is_refused_like_aws(build, name):
    def program() -> None:
        pulumi.export("v", aws.ssm.get_parameter_output(name=name).value)

    with pytest.raises(Exception, match="ParameterNotFound"):
        build(program)


def test_eks_ami_parameter_is_answered_by_its_documented_pattern(build):
    name = "/aws/service/eks/optimized-ami/1.34/amazon-linux-2023/x86_64/standard/" \
           "recommended/image_id"

    def program() -> None:
        pulumi.export("ami", aws.ssm.get_parameter_output(name=name).value)

    assert re.fullmatch(r"ami-[0-9a-f]{17}", build(program).outputs["ami"])


def test_instance_type_offerings_come_from_moto():
    assert mocks.instance_type_offered("us-east-1", "m5.large")
    assert not mocks.instance_type_offered("us-east-1", "m5.enormous")
    assert not mocks.instance_type_offered("xx-nowhere-1", "m5.large")
    assert "m5.large" in mocks.instance_types_in_zone("us-east-1a")
    assert not mocks.instance_types_in_zone("us-east-1z")


def test_moto_is_the_pinned_version_the_data_is_described_from():
    assert importlib.metadata.version("moto") == mocks.MOTO_VERSION


def test_rds_asked_for_a_major_reports_a_minor_aws_still_creates(prod):
    (db,) = [r for r in prod["prod"].resources if r.type == "aws:rds/instance:Instance"]
    assert db.inputs["engineVersion"] == "16"
    major, minor = db.outputs["engineVersionActual"].split(".")
    assert major == "16" and int(minor) >= 9  # 16.5-16.8 are no longer created
