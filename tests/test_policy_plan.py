"""The policy pack over the offline plan: every stack of dev and prod plans clean at every
phase, the offline adapter hands the rules what the CLI would, and `sofacover plan` prints
the report, puts it in --json and exits 1 on a mandatory violation."""

from __future__ import annotations

import json

import pytest
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy
from typer.testing import CliRunner

from config.models import DEFAULT_TAG_KEYS
from planner import policy as plan_policy
from planner.cli import app
from planner.engine import PlannedResource, StackPlan
from policy.pack import policies

runner = CliRunner()
PROVIDER_URN = "urn:pulumi:prod::sofacover::pulumi:providers:aws::aws-us-east-1"


def _findings(plans) -> list[str]:
    return [f.line() for f in plan_policy.check(list(plans)).findings]


def test_dev_plans_clean_at_every_phase(dev_phases):
    for phase, plan in dev_phases.items():
        assert _findings([plan]) == [], phase


@pytest.mark.parametrize("fixture", ["prod", "prod_phase2", "prod_phase3"])
def test_every_prod_stack_plans_clean(request, fixture):
    assert _findings(request.getfixturevalue(fixture).values()) == []


def _resource(type_: str, name: str, inputs: dict, *, protect: bool = False,
              id_: str | None = None) -> PlannedResource:
    return PlannedResource(
        urn=f"urn:pulumi:prod::sofacover::{type_}::{name}", type=type_, name=name,
        stack="prod", region="us-east-1", parent=None, custom=True,
        provider=f"{PROVIDER_URN}::p-id", inputs=inputs, options={"protect": protect},
        id=id_ or f"{name}-id")


def _plan(*resources: PlannedResource) -> StackPlan:
    tags = dict.fromkeys(DEFAULT_TAG_KEYS, "x") | {"Environment": "prod"}
    provider = PlannedResource(
        urn=PROVIDER_URN, type="pulumi:providers:aws", name="aws-us-east-1", stack="prod",
        region="us-east-1", parent=None, custom=True, provider=None, id="p-id",
        inputs={"region": "us-east-1", "defaultTags": json.dumps({"tags": tags})},
        options={})
    return StackPlan(stack="prod", project="sofacover", environment="prod", role="primary",
                     phase=1, region="us-east-1", resources=[provider, *resources])


def test_the_adapter_passes_protect_the_provider_tags_and_the_ids():
    db = {"storageEncrypted": True, "kmsKeyId": "arn:aws:kms:us-east-1:1:key/k",
          "backupRetentionPeriod": 1, "tags": {}}
    world = {"cidrIpv4": "0.0.0.0/0", "ipProtocol": "tcp", "fromPort": 443, "toPort": 443,
             "securityGroupId": "sg-app", "description": "x"}
    report = plan_policy.check([_plan(
        _resource("aws:rds/instance:Instance", "db", db),
        _resource("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "in", world),
        _resource("aws:ec2/securityGroup:SecurityGroup", "app", {"description": "x"},
                  id_="sg-app"))])
    by_rule = {f.policy: f for f in report.findings}
    # protect comes from the options, Environment=prod from the provider's default tags.
    assert by_rule["prod-stateful-protected"].urn.endswith("::db")
    assert by_rule["prod-backups-retained"].level == "mandatory"
    assert "required-tags" not in by_rule
    assert by_rule["sg-world-ingress-on-load-balancer"].urn.endswith("::in")
    assert report.summary() == (f"policy: {len(policies())} rules, {report.mandatory} "
                                f"mandatory violations, {report.advisory} advisory")
    protected = plan_policy.check([_plan(_resource("aws:rds/instance:Instance", "db", db,
                                                    protect=True))])
    assert "prod-stateful-protected" not in {f.policy for f in protected.findings}


def test_plan_prints_the_report_and_writes_it_to_json(tmp_path):
    out = tmp_path / "plan.json"
    result = runner.invoke(app, ["plan", "--stack", "dev", "--json", str(out)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"policy: {len(policies())} rules, 0 mandatory violations, 0 advisory" \
        in result.output
    doc = json.loads(out.read_text())
    assert doc["policy"]["mandatory"] == 0 and doc["policy"]["rules"] == len(policies())


def test_a_mandatory_violation_fails_the_plan():
    def always(args, report):
        if args.resource_type == "aws:ec2/vpc:Vpc":
            report("planted violation")

    planted = ResourceValidationPolicy(name="planted", description="test",
                                       validate=always,
                                       enforcement_level=EnforcementLevel.MANDATORY)
    # The policy pack is read after the plan and changes nothing in it: patched without the
    # `monkeypatch` fixture, which would plan dev afresh (tests/conftest.py), so the plan
    # is the session's.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plan_policy, "policies", lambda: [*policies(), planted])
        result = runner.invoke(app, ["plan", "--stack", "dev"], env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    assert "mandatory: dev:" in result.output and "planted violation [planted]" \
        in result.output
    assert "1 mandatory violations" in result.output
