"""The whole program per stack: what each role and phase creates, and the rollout order."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from config import ConfigError, seed
from planner.project import Project
from tests.conftest import ROOT, of_type

NAT = "aws:ec2/natGateway:NatGateway"
VPC = "aws:ec2/vpc:Vpc"
SECONDARIES = [f"prod-{r}" for r in seed.SECONDARY_REGIONS]


def test_prod_rollout_puts_primary_first_and_edge_last(prod):
    order = list(prod)
    assert order[0] == "prod"
    assert order[-1] == "prod-edge"
    assert set(order[1:-1]) == set(SECONDARIES)


@pytest.mark.parametrize("fixture", ["prod", "prod_phase3"])
def test_no_stack_reads_a_stack_deployed_after_it(request, fixture):
    # phase 3 included: the secondaries' peerings read the primary, never the other way
    plans = request.getfixturevalue(fixture)
    order = list(plans)
    for i, plan in enumerate(plans.values()):
        for ref in of_type(plan.resources, "pulumi:pulumi:StackReference"):
            target = ref.inputs["name"].rsplit("/", 1)[-1]
            assert order.index(target) < i, f"{plan.stack} reads {target}"


def test_prod_primary_has_a_nat_per_az_in_its_region(prod):
    plan = prod["prod"]
    (vpc,) = of_type(plan.resources, VPC)
    assert vpc.region == seed.PRIMARY_REGION
    assert len(of_type(plan.resources, NAT)) == plan.outputs["availabilityZones"].__len__() == 3


def test_dev_is_all_in_one_with_a_single_nat(dev):
    assert dev.role == "all-in-one"
    assert len(of_type(dev.resources, NAT)) == 1
    assert dev.outputs["vpcCidr"] != "10.10.0.0/16"


@pytest.mark.parametrize("region", seed.READ_REPLICA_REGIONS)
def test_replica_regions_get_a_network_without_nat_in_phase1(prod, region):
    plan = prod[f"prod-{region}"]
    (vpc,) = of_type(plan.resources, VPC)
    assert vpc.region == region
    assert not of_type(plan.resources, NAT)
    assert plan.outputs["primaryRegion"] == seed.PRIMARY_REGION
    assert plan.outputs["dbSubnetGroupName"]


def test_region_without_role_in_phase1_creates_nothing_but_reads_the_primary(prod):
    (region,) = set(seed.SECONDARY_REGIONS) - set(seed.READ_REPLICA_REGIONS)
    plan = prod[f"prod-{region}"]
    assert plan.outputs["active"] is False
    assert [r.type for r in plan.resources if not r.read] == ["pulumi:providers:aws"]
    assert any("nothing to create yet" in m for m in plan.messages)


def test_phase3_every_secondary_serves_with_nat_per_az(prod_phase3):
    for stack in SECONDARIES:
        plan = prod_phase3[stack]
        assert plan.phase == 3
        assert len(of_type(plan.resources, NAT)) == 3


def test_regions_use_disjoint_cidrs(prod):
    import ipaddress
    cidrs = [ipaddress.IPv4Network(p.outputs["vpcCidr"]) for p in prod.values()
             if "vpcCidr" in p.outputs]
    assert len(cidrs) == 3
    assert not any(a.overlaps(b) for i, a in enumerate(cidrs) for b in cidrs[i + 1:])


def _references(plan) -> set[str]:
    return {r.inputs["name"].rsplit("/", 1)[-1]
            for r in of_type(plan.resources, "pulumi:pulumi:StackReference")}


def test_edge_creates_no_aws_resources_and_reads_only_the_serving_regions(prod, prod_phase3):
    plan = prod["prod-edge"]
    assert not [r for r in plan.resources if r.type.startswith(("aws:", "pulumi:providers:aws"))]
    assert _references(plan) == {"prod"}
    assert plan.outputs["originRegions"] == [seed.PRIMARY_REGION]
    assert _references(prod_phase3["prod-edge"]) == {"prod", *SECONDARIES}


def test_every_aws_resource_uses_the_stacks_explicit_provider_with_default_tags(prod):
    plan = prod["prod"]
    (provider,) = of_type(plan.resources, "pulumi:providers:aws")
    assert '"Stack": "prod"' in provider.inputs["defaultTags"]
    for res in plan.resources:
        if res.type.startswith("aws:"):
            assert res.provider and res.provider.startswith(provider.urn), res.name


def test_resource_names_are_unique_per_stack(prod, dev):
    for plan in [*prod.values(), dev]:
        urns = [r.urn for r in plan.resources]
        assert len(urns) == len(set(urns))


def test_secret_config_never_reaches_outputs_or_inputs(prod, dev):
    import json
    for plan in [*prod.values(), dev]:
        text = json.dumps(plan.as_json())
        assert "placeholder:replace" not in text


def copy_project(tmp_path: Path) -> Path:
    for item in ["Pulumi.yaml", "__main__.py", *[p.name for p in ROOT.glob("Pulumi.*.yaml")]]:
        shutil.copy(ROOT / item, tmp_path / item)
    return tmp_path


def test_a_reference_to_a_later_or_missing_stack_is_refused(tmp_path):
    root = copy_project(tmp_path)
    stack_file = root / "Pulumi.prod-us-west-2.yaml"
    stack_file.write_text(stack_file.read_text().replace("stack: prod", "stack: prod-edge"))
    with pytest.raises(ConfigError) as exc:
        Project(root).rollout("prod")
    assert any("sofacover:primary.stack names 'prod-edge', which is deployed after" in p
               for p in exc.value.problems)


def test_a_stack_that_uses_no_cloudflare_never_imports_it(tmp_path):
    # prod with a certificate validated by hand: no edge, no validation record.
    root = copy_project(tmp_path)
    stack_file = root / "Pulumi.prod.yaml"
    arn = "arn:aws:acm:us-east-1:123456789012:certificate/0c8a3b7e-1d2f-4a5b-9c6d-7e8f9a0b1c2d"
    stack_file.write_text(stack_file.read_text().replace(
        "    dnsValidation: cloudflare\n",
        f"    dnsValidation: manual\n    certificateArn: {arn}\n"))
    code = ("import sys; from pathlib import Path; from planner.cli import plan_stacks;"
            "from planner.project import Project;"
            f"plan = plan_stacks(Project(Path({str(root)!r})), stack='prod')[0];"
            "assert not [r for r in plan.resources if r.type.startswith('cloudflare:')];"
            "print('pulumi_cloudflare' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"


def test_every_active_regional_stack_has_its_alert_topic_alarms_and_dashboard(prod, dev):
    for plan in [*prod.values(), dev]:
        if plan.role == "edge" or not plan.outputs.get("active"):
            continue
        assert of_type(plan.resources, "aws:sns/topic:Topic"), plan.stack
        assert of_type(plan.resources, "aws:cloudwatch/dashboard:Dashboard"), plan.stack
        assert of_type(plan.resources, "aws:cloudwatch/metricAlarm:MetricAlarm"), plan.stack


def test_replica_regions_alarm_on_replica_lag(prod):
    for region in seed.READ_REPLICA_REGIONS:
        alarms = of_type(prod[f"prod-{region}"].resources,
                         "aws:cloudwatch/metricAlarm:MetricAlarm")
        assert any(a.inputs.get("metricName") == "ReplicaLag" for a in alarms), region


def _rollout_problems(root) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        Project(root).rollout("prod")
    return exc.value.problems


def test_two_stacks_in_one_region_are_refused(tmp_path):
    root = copy_project(tmp_path)
    stack_file = root / "Pulumi.prod-eu-west-1.yaml"
    stack_file.write_text(stack_file.read_text().replace("aws:region: eu-west-1",
                                                         "aws:region: us-west-2"))
    problems = _rollout_problems(root)
    assert any("aws:region is us-west-2, the region of stack prod-eu-west-1" in p
               or "aws:region is us-west-2, the region of stack prod-us-west-2" in p
               for p in problems), problems


def test_overlapping_vpcs_across_an_environment_are_refused(tmp_path):
    root = copy_project(tmp_path)
    stack_file = root / "Pulumi.prod-us-west-2.yaml"
    stack_file.write_text(stack_file.read_text() + "  sofacover:network:\n"
                          "    cidr: 10.10.0.0/16\n")
    (problem,) = _rollout_problems(root)
    assert "sofacover:network.cidr 10.10.0.0/16 overlaps prod's 10.10.0.0/16" in problem


def test_an_edge_origin_must_name_a_stack_of_its_region(tmp_path):
    root = copy_project(tmp_path)
    stack_file = root / "Pulumi.prod-edge.yaml"
    stack_file.write_text(stack_file.read_text().replace("us-west-2: prod-us-west-2",
                                                         "us-west-2: prod-eu-west-1"))
    problems = _rollout_problems(root)
    assert any("sofacover:edge.origins.us-west-2 names prod-eu-west-1, whose aws:region is "
               "eu-west-1" in p for p in problems), problems


def test_the_committed_environments_break_none_of_the_rules_across_stacks(project):
    assert [c.stack for c in project.rollout("prod")][0] == "prod"
    assert project.rollout("dev")
