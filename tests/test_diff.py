"""`sofacover plan --diff-from`: create/update/replace/delete by URN, the replace data, the
data holders and the refusal (exit 3) without --allow-destroy."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from planner import diff as plan_diff
from planner import replace_props
from planner.cli import app
from planner.engine import PlannedResource, StackPlan
from tests.conftest import ROOT

RDS = "aws:rds/instance:Instance"
URN = "urn:pulumi:test::sofacover::{}::{}"


def res(type_: str, name: str, inputs: dict, **options) -> PlannedResource:
    return PlannedResource(urn=URN.format(type_, name), type=type_, name=name, stack="test",
                           region=None, parent=None, custom=True, provider=None,
                           inputs=inputs, options={"ignore_changes": [],
                                                   "replace_on_changes": [], **options})


def plan_of(*resources: PlannedResource) -> StackPlan:
    return StackPlan(stack="test", project="sofacover", environment="dev", role="primary",
                     phase=1, region="us-east-1", resources=list(resources))


def old_file(tmp_path, *resources: PlannedResource):
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"format": "sofacover-plan/1",
                                "stacks": [plan_of(*resources).as_json()]}))
    return plan_diff.load(path)


def one(tmp_path, old: list, new: list) -> plan_diff.StackDiff:
    (d,) = plan_diff.diff([plan_of(*new)], old_file(tmp_path, *old))
    return d


def test_create_update_delete_by_urn_with_nested_paths(tmp_path):
    vpc = res("aws:ec2/vpc:Vpc", "vpc", {"cidrBlock": "10.0.0.0/16", "tags": {"a": "1"}})
    eks = res("aws:eks/cluster:Cluster", "eks",
              {"vpcConfig": {"publicAccessCidrs": ["1.2.3.4/32"], "subnetIds": ["s1"]}})
    eks2 = copy.deepcopy(eks)
    eks2.inputs["vpcConfig"]["publicAccessCidrs"] = ["5.6.7.8/32"]
    new_sg = res("aws:ec2/securityGroup:SecurityGroup", "sg", {})
    d = one(tmp_path, [vpc, eks], [eks2, new_sg])
    ops = {r.name: r for r in d.resources}
    assert ops["sg"].op == "create" and ops["vpc"].op == "delete"
    assert ops["eks"].op == "update"
    assert [c.path for c in ops["eks"].changes] == ["vpcConfig.publicAccessCidrs"]
    assert ops["eks"].line() == ('~ update aws:eks/cluster:Cluster eks: vpcConfig.'
                                 'publicAccessCidrs: ["1.2.3.4/32"] -> ["5.6.7.8/32"]')
    assert d.summary() == "test: +1 ~1 -1 +-0"
    assert [r.type for r in d.resources] == sorted(r.type for r in d.resources)


def test_replace_names_the_forcing_property_and_flags_a_data_holder(tmp_path):
    db = res(RDS, "db", {"dbName": "sofacover", "instanceClass": "db.m6i.large"})
    db2 = res(RDS, "db", {"dbName": "other", "instanceClass": "db.m6i.xlarge"})
    (r,) = one(tmp_path, [db], [db2]).resources
    assert r.op == "replace" and r.forced_by == ["dbName"]
    assert r.destroys and "DESTROYS DATA" in r.line()
    assert r.line().startswith("+- replace aws:rds/instance:Instance db (forced by dbName)")
    # an in-place change of the same instance is an update and destroys nothing
    db3 = res(RDS, "db", {"dbName": "sofacover", "instanceClass": "db.m6i.xlarge"})
    (r,) = one(tmp_path, [db], [db3]).resources
    assert r.op == "update" and r.destroys is None


def test_replace_on_changes_and_ignore_changes_options(tmp_path):
    dep = "kubernetes:apps/v1:Deployment"
    old = res(dep, "app", {"spec": {"replicas": 2, "template": {"x": 1}}})
    ignored = res(dep, "app", {"spec": {"replicas": 9, "template": {"x": 1}}},
                  ignore_changes=["spec.replicas"])
    assert one(tmp_path, [old], [ignored]).resources == []
    forced = res(dep, "app", {"spec": {"replicas": 2, "template": {"x": 2}}},
                 replace_on_changes=["spec.template"])
    (r,) = one(tmp_path, [old], [forced]).resources
    assert r.op == "replace" and r.forced_by == ["spec.template.x"]
    # the provider's own rule: a Deployment's selector
    sel = res(dep, "app", {"spec": {"replicas": 2, "template": {"x": 1},
                                    "selector": {"matchLabels": {"a": "b"}}}})
    (r,) = one(tmp_path, [old], [sel]).resources
    assert r.op == "replace" and r.forced_by == ["spec.selector"] and r.destroys is None


def test_secrets_compare_masked_and_never_print(tmp_path):
    token = "hunter2-very-secret"
    old = {"format": "sofacover-plan/1", "stacks": [{"stack": "test", "resources": []}]}
    export = {"version": 3, "deployment": {"resources": [
        {"urn": "urn:pulumi:test::sofacover::pulumi:pulumi:Stack::sofacover-test",
         "type": "pulumi:pulumi:Stack"},
        {"urn": "urn:pulumi:test::sofacover::pulumi:providers:aws::default_7_51_1",
         "type": "pulumi:providers:aws", "inputs": {}},
        {"urn": URN.format("kubernetes:core/v1:Secret", "s"), "type": "kubernetes:core/v1:Secret",
         "protect": False, "inputs": {"__defaults": [], "stringData": {
             "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
             "plaintext": json.dumps({"password": token})}, "type": "Opaque"}},
        {"urn": URN.format("aws:ssm/parameter:Parameter", "p"),
         "type": "aws:ssm/parameter:Parameter", "inputs": {"value": {
             "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
             "ciphertext": "AAAA" + token}, "type": "SecureString"}},
    ]}}
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    state = plan_diff.load(path)
    assert set(state) == {"test"} and len(state["test"]) == 2  # no root stack, no default
    same = res("kubernetes:core/v1:Secret", "s", {"stringData": "[secret]", "type": "Opaque"})
    plain = res("aws:ssm/parameter:Parameter", "p", {"value": "now-plain",
                                                      "type": "SecureString"})
    (d,) = plan_diff.diff([plan_of(same, plain)], state)
    (r,) = d.resources
    assert r.name == "p" and r.op == "update"
    assert r.line().endswith("value: [secret] -> now-plain")
    text = "\n".join(plan_diff.lines([d], path)) + json.dumps(d.as_json())
    assert token not in text and "ciphertext" not in text and "AAAA" not in text
    del old


def test_unknowns_print_as_known_after_apply(tmp_path):
    lt = res("aws:ec2/launchTemplate:LaunchTemplate", "lt", {"userData": "abc"})
    lt2 = res("aws:ec2/launchTemplate:LaunchTemplate", "lt", {"userData": "[unknown]"})
    (r,) = one(tmp_path, [lt], [lt2]).resources
    assert r.op == "update" and r.line().endswith("userData: abc -> (known after apply)")
    db = res(RDS, "db", {"kmsKeyId": "arn:1"})
    db2 = res(RDS, "db", {"kmsKeyId": "[unknown]"})
    (r,) = one(tmp_path, [db], [db2]).resources
    assert r.op == "replace" and r.forced_by == ["kmsKeyId"]


@pytest.mark.parametrize("content,message", [
    (None, "no such file"), ("{not json", "not JSON"), ('{"format": "other/2"}',
                                                        "unknown format 'other/2'")])
def test_bad_file_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "old.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(plan_diff.DiffFileError, match=message) as exc:
        plan_diff.load(path)
    assert str(path) in str(exc.value)
    result = CliRunner().invoke(app, ["plan", "--diff-from", str(path)])
    assert result.exit_code == 2 and message in result.output


# -- the replace data -----------------------------------------------------------------------

def test_replace_table_is_what_the_generator_derives_from_the_installed_sdks():
    result = subprocess.run([sys.executable, str(ROOT / "scripts/replace-properties"),
                             "--check"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    table = replace_props.table()
    assert table["sdks"] == replace_props.sdk_versions()
    # the docstrings are really read: the EKS cluster's own sentence, in the wire name
    assert "bootstrapSelfManagedAddons" in table["types"]["aws:eks/cluster:Cluster"]["derived"]


def test_every_type_the_program_creates_is_covered(prod, prod_phase2, prod_phase3, dev_phases):
    plans = [*prod.values(), *prod_phase2.values(), *prod_phase3.values(),
             *dev_phases.values()]
    types = {r.type for p in plans for r in p.resources if r.custom}
    table = replace_props.table()["types"]
    assert types <= set(table), sorted(types - set(table))
    for token in types:
        entry = table[token]
        has = entry["derived"] or entry.get("manual", {}).get("properties")
        assert has or entry.get("reason") or entry.get("manual", {}).get("reason"), token
    manual = yaml.safe_load(replace_props.MANUAL.read_text())
    for token, entry in manual["types"].items():
        assert entry.get("source") or entry.get("reason"), token


# -- the real program: prod's phase move ------------------------------------------------------

@pytest.fixture(scope="module")
def phase1_file(tmp_path_factory, prod):
    path = tmp_path_factory.mktemp("diff") / "phase1.json"
    path.write_text(json.dumps({"format": "sofacover-plan/1",
                                "stacks": [p.as_json() for p in prod.values()]}))
    return path


def test_phase_move_of_prod_in_full(phase1_file, prod_phase2):
    diffs = plan_diff.diff(list(prod_phase2.values()), plan_diff.load(phase1_file))
    d = diffs[0]
    assert d.stack == "prod"
    by = {(r.op, r.type, r.name) for r in d.resources}
    assert ("create", "aws:eks/cluster:Cluster", "sofacover-prod-cluster") in by
    assert ("update", "aws:ec2/launchTemplate:LaunchTemplate", "sofacover-prod-lt") in by
    assert ("delete", "aws:lb/targetGroup:TargetGroup", "sc-prod-app") in by
    assert (d.count("update"), d.count("delete"), d.count("replace")) == (7, 11, 0)
    lt = next(r for r in d.resources if r.name == "sofacover-prod-lt")
    assert {"userData", "instanceType"} <= {c.path for c in lt.changes}
    assert plan_diff.destroying(diffs) == []  # the database is untouched
    assert not any(r.type == RDS for r in d.resources)


def test_a_change_that_replaces_the_database_is_refused(tmp_path, phase1_file):
    doc = json.loads(phase1_file.read_text())
    (db,) = [r for r in doc["stacks"][0]["resources"] if r["type"] == RDS]
    db["inputs"]["dbName"] = "sofacover_old"
    path = tmp_path / "old.json"
    path.write_text(json.dumps(doc))
    result = CliRunner().invoke(app, ["plan", "--stack", "prod", "--diff-from", str(path)])
    assert result.exit_code == 3, result.output
    line = next(x for x in result.stdout.splitlines() if "DESTROYS DATA" in x)
    assert line.strip().startswith(f"+- replace {RDS} sofacover-prod-database-db "
                                   "(forced by dbName)")
    assert "prod: +0 ~0 -0 +-1" in result.stdout
    allowed = CliRunner().invoke(app, ["plan", "--stack", "prod", "--diff-from", str(path),
                                       "--allow-destroy", "--json", str(tmp_path / "p.json")])
    assert allowed.exit_code == 0, allowed.output
    (stack,) = json.loads((tmp_path / "p.json").read_text())["diff"]["stacks"]
    (r,) = stack["resources"]
    assert r["op"] == "replace" and r["forced_by"] == ["dbName"] and r["destroys_data"]
