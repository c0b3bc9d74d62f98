"""`sofacover plan --diff-from`: create/update/replace/delete by URN, the replace data, the
data holders and the refusal (exit 3) without --allow-destroy."""

from __future__ import annotations

import copy
import importlib.machinery
import importlib.util
import json
import sys

import pytest
from typer.testing import CliRunner

from planner import diff as plan_diff
from planner import replace_props
from planner.cli import app
from planner.engine import PlannedResource, StackPlan
from tests.conftest import ROOT

RDS = "aws:rds/instance:Instance"
CACHE = "aws:elasticache/replicationGroup:ReplicationGroup"
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

def test_replace_table_is_what_the_generator_builds(capsys):
    """Offline: the table is what scripts/replace-properties builds from the upstream data,
    the manual entries and the installed SDKs (no mirror needed). The script's `--check`
    runs in this process: in a new one, importing the SDK modules it reads cost ~9 s of CPU
    that the plans in this process have mostly paid already."""
    path = str(ROOT / "scripts" / "replace-properties")
    loader = importlib.machinery.SourceFileLoader("replace_properties", path)
    spec = importlib.util.spec_from_file_location(loader.name, path, loader=loader)
    assert spec is not None
    script = importlib.util.module_from_spec(spec)
    loader.exec_module(script)
    argv, sys.argv = sys.argv, ["replace-properties", "--check"]
    try:
        code = script.main()
    finally:
        sys.argv = argv
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    assert out.out.strip() == "up to date"
    table = replace_props.table()
    assert table["sdks"] == replace_props.sdk_versions()
    assert set(table["upstream"]) == {"aws", "cloudflare"}
    for side in table["upstream"].values():
        assert side["version"] in side["read_from"] and len(side["read_from"].split()[-1]) == 40


def test_every_type_the_program_creates_has_replace_data(prod, prod_phase2, prod_phase3,
                                                          dev_phases):
    """A planned type with no replace data fails here: a bridged (AWS, Cloudflare) type needs
    upstream data with the files it was read from; any other type a hand-kept entry with
    its source or reason."""
    plans = [*prod.values(), *prod_phase2.values(), *prod_phase3.values(),
             *dev_phases.values()]
    types = {r.type for p in plans for r in p.resources if r.custom}
    table = replace_props.table()["types"]
    manual = replace_props.load_yaml(replace_props.MANUAL)
    assert types <= set(table), f"no replace data for {sorted(types - set(table))}: add " \
        "them to replace_manual.yaml and run scripts/replace-properties (see its --help)"
    for token in sorted(types):
        entry = table[token]
        if token.split(":")[0] in ("aws", "cloudflare"):
            assert token in manual["upstream_types"], token
            assert entry["files"] and entry["upstream"], token
            assert entry["properties"] or entry["reason"], token
        else:
            hand = entry.get("manual", {})
            assert entry.get("derived") or hand.get("properties") or hand.get("reason") \
                or entry.get("reason"), token
    for token, entry in manual["types"].items():
        assert entry.get("source") or entry.get("reason"), token


def test_forcing_attributes_map_to_sdk_inputs():
    """Every upstream forcing attribute of a bridged type is an SDK input, except the
    computed ones the table lists: a rename the generator missed would show up here."""
    table = replace_props.table()["types"]
    for token, entry in table.items():
        for tf_path in entry.get("forcing_but_not_inputs", []):
            assert tf_path in ("id",), (token, tf_path)
        _, args = replace_props.sdk_class(token)
        inputs = set(replace_props.wire_properties(args))
        for prop in entry.get("properties", {}):
            assert prop.split(".")[0].removesuffix("[*]") in inputs, (token, prop)


@pytest.mark.parametrize("type_,old,new,forced", [
    ("aws:elasticache/replicationGroup:ReplicationGroup", {"subnetGroupName": "a"},
     {"subnetGroupName": "b"}, ["subnetGroupName"]),
    ("aws:rds/instance:Instance", {"storageEncrypted": False}, {"storageEncrypted": True},
     ["storageEncrypted"]),
    ("cloudflare:index/dnsRecord:DnsRecord", {"zoneId": "z1", "name": "shop"},
     {"zoneId": "z2", "name": "shop"}, ["zoneId"]),
    ("aws:eks/cluster:Cluster", {"kubernetesNetworkConfig": {"serviceIpv4Cidr": "10.100.0.0/16"}},
     {"kubernetesNetworkConfig": {"serviceIpv4Cidr": "172.20.0.0/16"}},
     ["kubernetesNetworkConfig.serviceIpv4Cidr"]),
    ("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
     {"securityGroupId": "sg-1", "fromPort": 443}, {"securityGroupId": "sg-2", "fromPort": 443},
     ["securityGroupId"]),
])
def test_a_real_replace_names_the_forcing_property(tmp_path, type_, old, new, forced):
    (r,) = one(tmp_path, [res(type_, "x", old)], [res(type_, "x", new)]).resources
    assert r.op == "replace" and r.forced_by == forced
    assert f"(forced by {', '.join(forced)})" in r.line()
    assert (r.destroys is not None) == (replace_props.holds_data(type_) is not None)


@pytest.mark.parametrize("type_,old,new", [
    # the launch template's user data and instance type change in place (a new version)
    ("aws:ec2/launchTemplate:LaunchTemplate",
     {"name": "lt", "userData": "YQ==", "instanceType": "m5.large"},
     {"name": "lt", "userData": "Yg==", "instanceType": "m5.xlarge"}),
    # terraform-provider-aws renames a DB instance in place (ModifyDBInstance
    # NewDBInstanceIdentifier): identifier is not ForceNew upstream
    ("aws:rds/instance:Instance", {"identifier": "db-a", "dbName": "shop"},
     {"identifier": "db-b", "dbName": "shop"}),
    ("cloudflare:index/dnsRecord:DnsRecord", {"zoneId": "z1", "ttl": 300},
     {"zoneId": "z1", "ttl": 60}),
])
def test_an_in_place_change_is_an_update(tmp_path, type_, old, new):
    (r,) = one(tmp_path, [res(type_, "x", old)], [res(type_, "x", new)]).resources
    assert r.op == "update" and r.forced_by == [] and r.destroys is None


def test_region_forces_a_new_resource_unless_it_only_names_the_stacks_region(tmp_path):
    """terraform-provider-aws v6 replaces a resource whose `region` changes, except unset <->
    the provider's region; plan_of's stack is in us-east-1 with the default provider."""
    key = "aws:kms/key:Key"
    (r,) = one(tmp_path, [res(key, "k", {"region": "us-west-2"})],
               [res(key, "k", {"region": "eu-west-1"})]).resources
    assert r.op == "replace" and r.forced_by == ["region"] and r.destroys
    (r,) = one(tmp_path, [res(key, "k", {})], [res(key, "k", {"region": "us-east-1"})]).resources
    assert r.op == "update"
    (r,) = one(tmp_path, [res(key, "k", {})], [res(key, "k", {"region": "us-west-2"})]).resources
    assert r.op == "replace"


def test_a_conditional_replace_is_shown_not_assumed(tmp_path):
    """ElastiCache replaces on an engine version only when it is a downgrade (upstream
    CustomizeDiff): the diff says it may, and stays an update."""
    rg = "aws:elasticache/replicationGroup:ReplicationGroup"
    (r,) = one(tmp_path, [res(rg, "c", {"engineVersion": "7.1"})],
               [res(rg, "c", {"engineVersion": "6.2"})]).resources
    assert r.op == "update" and set(r.may_force) == {"engineVersion"}
    assert "MAY REPLACE: engineVersion (upstream engine_version:" in r.line()
    assert r.as_json()["may_force"] == r.may_force
    # the cache holds data: said, but not refused (the condition is not known offline)
    assert r.destroys is None and r.may_destroy == replace_props.holds_data(rg)
    assert r.line().endswith(f"MAY DESTROY DATA: {r.may_destroy}")
    assert plan_diff.destroying([plan_diff.StackDiff("test", [r])]) == []


def test_a_rule_inside_a_list_holds_only_for_that_field():
    rule = "rules[*].bucket"
    other = plan_diff.Change("rules", [{"bucket": "a", "days": 1}], [{"bucket": "a", "days": 2}])
    same_field = plan_diff.Change("rules", [{"bucket": "a"}], [{"bucket": "b"}])
    added = plan_diff.Change("rules", [{"bucket": "a"}], [{"bucket": "a"}, {"bucket": "b"}])
    reordered = plan_diff.Change("rules", [{"bucket": "a"}, {"bucket": "b"}],
                                 [{"bucket": "b"}, {"bucket": "a"}])
    assert not plan_diff._matches(other, rule)
    assert plan_diff._matches(same_field, rule) and plan_diff._matches(added, rule)
    assert not plan_diff._matches(reordered, rule)
    whole = plan_diff.Change("spec", {"rules": [{"bucket": "a"}]}, {"rules": [{"bucket": "c"}]})
    assert plan_diff._matches(whole, "spec.rules[*].bucket")


# -- the Go source reader ------------------------------------------------------------------

SDKV2 = """package x
func resourceThing() *schema.Resource {
	return &schema.Resource{
		SchemaFunc: func() map[string]*schema.Schema {
			inner := func() *schema.Schema {
				return &schema.Schema{Type: schema.TypeString, ForceNew: true}
			}
			return map[string]*schema.Schema{
				names.AttrName: {
					Type:     schema.TypeString,
					Required: true,
					ForceNew: true, // a comment, ForceNew: false
				},
				"description": {Type: schema.TypeString, Optional: true},
				names.AttrKMSKeyID: inner(),
				"rule": {
					Type: schema.TypeList,
					Elem: &schema.Resource{
						Schema: map[string]*schema.Schema{
							"bucket": {Type: schema.TypeString, ForceNew: true},
							"days":   {Type: schema.TypeInt},
						},
					},
				},
				"config": {
					Type:     schema.TypeList,
					MaxItems: 1,
					Elem:     configSchema(),
				},
			}
		},
		CustomizeDiff: customdiff.All(
			customdiff.ForceNewIfChange("engine_version", isDowngrade),
		),
	}
}
"""
CONFIG = """package x
func configSchema() *schema.Resource {
	return &schema.Resource{Schema: map[string]*schema.Schema{
		"mode": {Type: schema.TypeString, ForceNew: true, Description: "a, b: c"},
	}}
}
"""
FRAMEWORK = """package dns
func ResourceSchema(ctx context.Context) schema.Schema {
	return schema.Schema{
		Attributes: map[string]schema.Attribute{
			"zone_id": schema.StringAttribute{
				Required:      true,
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"ttl": schema.Float64Attribute{Optional: true},
			"account_id": schema.StringAttribute{
				PlanModifiers: []planmodifier.String{
					stringplanmodifier.RequiresReplaceIfConfigured(),
				},
			},
			"kind": schema.StringAttribute{
				PlanModifiers: []planmodifier.String{
					stringplanmodifier.RequiresReplaceIf(f, "", ""),
				},
			},
			"rules": schema.ListNestedAttribute{
				NestedObject: schema.NestedAttributeObject{
					Attributes: map[string]schema.Attribute{
						"ref": schema.StringAttribute{
							PlanModifiers: []planmodifier.String{
								stringplanmodifier.RequiresReplace(),
							},
						},
					},
				},
			},
			"settings": schema.SingleNestedAttribute{
				Attributes: map[string]schema.Attribute{
					"flat": schema.BoolAttribute{Optional: true},
				},
			},
		},
	}
}
"""


def test_the_go_reader_finds_forcenew_and_requiresreplace(tmp_path):
    from planner import replace_upstream as up

    pkg = tmp_path / "index/internal/service/x"
    pkg.mkdir(parents=True)
    (pkg / "func.resourceThing.goindex").write_text(SDKV2)
    (pkg / "func.configSchema.goindex").write_text(CONFIG)
    (pkg / "method.servicePackage.SDKResources.goindex").write_text(
        'Factory:  resourceThing,\n\t\t\tTypeName: "aws_thing",')
    tree = up.Tree(tmp_path)
    _, registry = up.aws_registry(tree)
    found = up.aws_resource(tree, "aws_thing", registry)
    assert found.unresolved == []
    assert set(found.forces) == {"name", "kms_key_id", "rule[*].bucket", "config.mode"}
    assert found.conditional == {"engine_version": "CustomizeDiff: ForceNewIfChange"}
    assert found.top == {"name", "description", "kms_key_id", "rule", "config"}
    svc = tmp_path / "cf/internal/services/dns_record"
    svc.mkdir(parents=True)
    (svc / "schema.go").write_text(FRAMEWORK)
    found = up.cloudflare_resource(up.Tree(tmp_path / "cf"), "cloudflare_dns_record")
    assert found.forces == {"zone_id": "RequiresReplace()",
                            "account_id": "RequiresReplaceIfConfigured()",
                            "rules[*].ref": "RequiresReplace()"}
    assert found.conditional == {"kind": "RequiresReplaceIf"}
    assert found.lists == {"rules"}


def test_terraform_paths_map_to_the_sdk_names():
    _, args = replace_props.sdk_class("aws:ec2/launchTemplate:LaunchTemplate")
    assert replace_props.pulumi_path("block_device_mappings[*].device_name", args) == \
        "blockDeviceMappings[*].deviceName"
    assert replace_props.pulumi_path("latest_version", args) is None  # computed only
    _, args = replace_props.sdk_class("aws:s3/bucketLifecycleConfiguration:"
                                      "BucketLifecycleConfiguration")
    assert replace_props.pulumi_path("rule[*].filter", args) == "rules[*].filter"
    _, alarm = replace_props.sdk_class("aws:cloudwatch/metricAlarm:MetricAlarm")
    assert replace_props.pulumi_path("alarm_name", alarm, {"alarm_name": "name"}) == "name"


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
    lt = next(r for r in d.resources if r.name == "sofacover-prod-lt")
    assert {"userData", "instanceType"} <= {c.path for c in lt.changes}
    # Phase 2 drops the instance-ready lifecycle hook the group was created with, and
    # terraform-provider-aws marks initial_lifecycle_hook ForceNew: the fleet's group is
    # replaced (a new group, then the old one deleted), which the old table showed as an update.
    asg = next(r for r in d.resources if r.type == "aws:autoscaling/group:Group")
    assert asg.op == "replace" and asg.forced_by == ["initialLifecycleHooks"]
    assert asg.destroys is None
    assert d.count("replace") == len([r for r in d.resources if r.forced_by])
    assert d.summary() == (f"prod: +{d.count('create')} ~{d.count('update')} "
                           f"-{d.count('delete')} +-{d.count('replace')}")
    assert plan_diff.destroying(diffs) == []  # the database is untouched
    assert not any(r.type == RDS for r in d.resources)


def test_a_change_that_replaces_the_database_is_refused(tmp_path, phase1_file):
    doc = json.loads(phase1_file.read_text())
    (db,) = [r for r in doc["stacks"][0]["resources"] if r["type"] == RDS]
    db["inputs"]["dbName"] = "sofacover_old"
    (cache,) = [r for r in doc["stacks"][0]["resources"] if r["type"] == CACHE]
    cache["inputs"]["subnetGroupName"] = "sofacover-prod-old-subnets"
    path = tmp_path / "old.json"
    path.write_text(json.dumps(doc))
    result = CliRunner().invoke(app, ["plan", "--stack", "prod", "--diff-from", str(path)])
    assert result.exit_code == 3, result.output
    lines = [x.strip() for x in result.stdout.splitlines() if "DESTROYS DATA" in x]
    assert any(x.startswith(f"+- replace {RDS} sofacover-prod-database-db (forced by dbName)")
               for x in lines), lines
    assert any(x.startswith(f"+- replace {CACHE} ") and "(forced by subnetGroupName)" in x
               for x in lines), lines
    assert "prod: +0 ~0 -0 +-2" in result.stdout
    allowed = CliRunner().invoke(app, ["plan", "--stack", "prod", "--diff-from", str(path),
                                       "--allow-destroy", "--json", str(tmp_path / "p.json")])
    assert allowed.exit_code == 0, allowed.output
    (stack,) = json.loads((tmp_path / "p.json").read_text())["diff"]["stacks"]
    by = {r["type"]: r for r in stack["resources"]}
    assert set(by) == {RDS, CACHE}
    assert by[RDS]["op"] == "replace" and by[RDS]["forced_by"] == ["dbName"]
    assert by[CACHE]["forced_by"] == ["subnetGroupName"]
    assert all(r["destroys_data"] for r in by.values())
