"""`sofacover plan`: the tree, the JSON plan, --env, --phase, and its errors."""

from __future__ import annotations

import contextlib
import json

import pytest
from typer.testing import CliRunner

from config import seed
from planner.cli import app
from planner.engine import plans_cached
from tests.test_program import copy_project

runner = CliRunner()


def plan(*args: str):
    return runner.invoke(app, ["plan", *args], env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def prod_json(tmp_path_factory):
    path = tmp_path_factory.mktemp("plan") / "plan.json"
    result = plan("--json", str(path))
    assert result.exit_code == 0, result.output
    return result, json.loads(path.read_text())


def test_default_plan_is_prod_printed_as_region_component_resource_tree(prod_json):
    result, _ = prod_json
    out = result.stdout
    assert "prod  role=primary  environment=prod  phase=1" in out
    region = out.index(seed.PRIMARY_REGION)
    component = out.index("sofacover:network:Network  sofacover-prod")
    vpc = out.index("aws:ec2/vpc:Vpc  sofacover-prod-vpc  cidrBlock=10.10.0.0/16")
    assert region < component < vpc
    assert "aws:ec2/natGateway:NatGateway" in out
    assert "Resources to create, by type" in out
    assert "total" in out


def test_json_plan_holds_every_resource_with_inputs_options_and_parent(prod_json):
    result, doc = prod_json
    (stack,) = doc["stacks"]
    assert stack["stack"] == "prod" and stack["region"] == seed.PRIMARY_REGION
    assert stack["outputs"]["vpcCidr"] == "10.10.0.0/16"
    by_key = {(r["type"], r["name"]): r for r in stack["resources"]}
    vpc = by_key["aws:ec2/vpc:Vpc", "sofacover-prod-vpc"]
    network = by_key["sofacover:network:Network", "sofacover-prod"]
    assert vpc["parent"] == network["urn"]
    assert vpc["type"] == "aws:ec2/vpc:Vpc" and vpc["region"] == seed.PRIMARY_REGION
    assert vpc["urn"].endswith("sofacover:network:Network$aws:ec2/vpc:Vpc::sofacover-prod-vpc")
    assert vpc["inputs"]["enableDnsHostnames"] is True
    assert set(vpc["options"]) >= {"protect", "ignore_changes", "delete_before_replace",
                                   "retain_on_delete"}
    # the tree's count is the JSON's count
    created = [r for r in stack["resources"] if not r["read"]]
    assert f"{len(created)} │ total" in result.stdout or f"{len(created)} | total" in \
        result.stdout.replace("│", "|")


def test_env_plans_every_stack_in_rollout_order_resolving_references(tmp_path):
    path = tmp_path / "env.json"
    result = plan("--env", "prod", "--json", str(path))
    assert result.exit_code == 0, result.output
    stacks = [s["stack"] for s in json.loads(path.read_text())["stacks"]]
    assert stacks[0] == "prod" and stacks[-1] == "prod-edge" and len(stacks) == 5
    headers = [result.stdout.index(f"{s}  role=") for s in stacks]
    assert headers == sorted(headers)
    secondary = json.loads(path.read_text())["stacks"][1]
    assert secondary["outputs"]["primaryRegion"] == seed.PRIMARY_REGION


def test_phase_option_plans_a_stack_as_if_its_phase_were_n():
    region = "ap-southeast-1"
    assert "NatGateway" not in plan("--stack", f"prod-{region}").stdout
    result = plan("--stack", f"prod-{region}", "--phase", "3")
    assert result.exit_code == 0, result.output
    assert "phase=3" in result.stdout and "aws:ec2/natGateway:NatGateway" in result.stdout


@pytest.mark.parametrize("args,expected", [
    (["--phase", "4"], "--phase"),
    (["--stack", "prod", "--env", "prod"], "--stack and --env are exclusive"),
    (["--stack", "staging"], "no stack 'staging'"),
    (["--env", "qa"], "no stack has sofacover:environment 'qa'"),
    (["--json", "/nonexistent/dir/plan.json"], "--json"),
])
def test_bad_arguments_exit_2_with_a_message_naming_them(args, expected):
    result = plan(*args)
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output


def test_bad_stack_config_exits_2_listing_each_problem_without_traceback(tmp_path):
    root = copy_project(tmp_path)
    stack_file = root / "Pulumi.prod.yaml"
    stack_file.write_text(stack_file.read_text() + (
        "  sofacover:compute:\n    minSize: 6\n    maxSize: 2\n"
        "  sofacover:colour: blue\n"))
    result = plan("--project", str(root))
    assert result.exit_code == 2
    assert "Pulumi.prod.yaml: sofacover:compute.maxSize is 2 but minSize is 6" in result.output
    assert "Pulumi.prod.yaml: sofacover:colour is not a known key" in result.output
    assert "Traceback" not in result.output


def test_unparseable_stack_file_names_the_file(tmp_path):
    root = copy_project(tmp_path)
    (root / "Pulumi.prod.yaml").write_text("config: [unclosed\n")
    result = plan("--project", str(root))
    assert result.exit_code == 2 and "Pulumi.prod.yaml: not valid YAML" in result.output


def test_secrets_are_planned_masked_and_never_printed(tmp_path):
    root = copy_project(tmp_path)
    stack_file = root / "Pulumi.prod.yaml"
    cipher = "v1:bm90LWEtcmVhbC1jaXBoZXI=:VE9QU0VDUkVU"
    text = stack_file.read_text().replace("v1:placeholder:replace-with-pulumi-config-set-secret",
                                          cipher)
    stack_file.write_text(text)
    path = tmp_path / "plan.json"
    result = plan("--project", str(root), "--json", str(path))
    assert result.exit_code == 0, result.output
    assert cipher not in result.output and cipher not in path.read_text()


def test_a_secret_in_plain_text_is_a_config_error(tmp_path):
    root = copy_project(tmp_path)
    stack_file = root / "Pulumi.prod.yaml"
    secure = "\n    secure: v1:placeholder:replace-with-pulumi-config-set-secret"
    text = stack_file.read_text().replace(f"  sofacover:redisAuthToken:{secure}",
                                          "  sofacover:redisAuthToken: hunter2")
    stack_file.write_text(text)
    result = plan("--project", str(root))
    assert result.exit_code == 2
    assert "sofacover:redisAuthToken is stored in plain text" in result.output
    assert "hunter2" not in result.output


def test_piped_output_is_literal_unwrapped_and_unpadded(prod_json):
    result, _ = prod_json
    lines = result.stdout.splitlines()
    # rich would turn ":secret:" into an emoji and wrap the ARN at the window's width.
    (arn,) = [ln for ln in lines if ln.strip().startswith("dbMasterUserSecretArn:")]
    assert ":123456789012:secret:rds!db-" in arn
    assert not [ln for ln in lines if ln != ln.rstrip()], "a line ends in padding"
    (db,) = [ln for ln in lines if "aws:rds/instance:Instance  sofacover-prod-database-db" in ln]
    # the options close the line, on the same line as the inputs
    assert "engineVersion=16" in db and db.rstrip().endswith("[protect]  [delete_before_replace]")


@pytest.mark.parametrize("content, message", [
    (b"- a\n- b\n", "Pulumi.prod.yaml: must be a mapping with a `config:` key"),
    (b"config:\n  1: x\n", "Pulumi.prod.yaml: config key 1 is not a string"),
    (b"confg:\n  sofacover:phase: 1\n",
     "Pulumi.prod.yaml: top-level key 'confg' is not a stack file key (did you mean 'config'?)"),
    (b"config:\n  sofacover:phase: 1\n  sofacover:tags: {team: \xff}\n",
     "Pulumi.prod.yaml: not UTF-8 text (byte 54)"),
])
def test_a_malformed_stack_file_is_named_with_what_is_wrong(tmp_path, content, message):
    root = copy_project(tmp_path)
    (root / "Pulumi.prod.yaml").write_bytes(content)
    result = plan("--project", str(root))
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_stack_files_are_read_as_yaml_1_2_like_the_pulumi_cli(tmp_path):
    # Go's yaml.v3 (the CLI) keeps `yes` as text; YAML 1.1 would make it true.
    root = copy_project(tmp_path)
    stack_file = root / "Pulumi.prod-us-west-2.yaml"
    stack_file.write_text(stack_file.read_text() + "  sofacover:promote: yes\n")
    result = plan("--project", str(root), "--stack", "prod-us-west-2")
    assert result.exit_code == 2
    assert "sofacover:promote is 'yes'; valid: true, false" in result.output


def test_two_plans_of_the_same_inputs_are_byte_identical(tmp_path):
    # Registration order and protobuf key order vary from run to run; the plan must not.
    # Both runs are the program's: the first is the session's plan of these inputs (made
    # once in this run, by this process or the other worker: prod_phase2's, or now), the
    # second runs the program again here with the plan cache off.
    runs = []
    for i, cache in ((1, contextlib.nullcontext()), (2, plans_cached(None))):
        path = tmp_path / f"plan{i}.json"
        with cache:
            result = plan("--phase", "2", "--json", str(path))
        assert result.exit_code == 0, result.output
        runs.append((result.stdout, path.read_bytes()))
    assert runs[0] == runs[1]


def test_the_end_of_the_run_has_a_line_per_stack_the_warnings_and_strict_fails_on_them(
        prod_json):
    result, doc = prod_json
    lines = result.stdout.splitlines()
    (created,) = [ln for ln in lines if ln.startswith("prod: +")]
    count = sum(1 for r in doc["stacks"][0]["resources"] if not r["read"])
    assert created == f"prod: +{count} to create"
    # The program's warning is repeated at the end, after the tree, naming the stack.
    warning = ("warning: prod: sofacover-prod: the alert topic has no subscribers; set "
               "sofacover:alerts.emails or httpsEndpoints")
    assert lines.index(warning) > lines.index(created)
    # Then the preflight's count, and the policy pack's summary last (tests/test_policy_plan.py).
    assert lines[-2] == "preflight: no findings; program warnings: 1"
    assert lines[-1].startswith("policy: ") and "0 mandatory violations" in lines[-1]
    strict = plan("--strict")
    assert strict.exit_code == 1 and "--strict: the run has warnings" in strict.output


def test_a_secondarys_primary_region_is_checked_before_anything_is_planned(tmp_path):
    # The stack files of the environment say where the primary is: no plan is needed.
    root = copy_project(tmp_path)
    stack_file = root / "Pulumi.prod-us-west-2.yaml"
    stack_file.write_text(stack_file.read_text().replace(f"region: {seed.PRIMARY_REGION}",
                                                         "region: eu-central-1"))
    result = plan("--project", str(root), "--stack", "prod-us-west-2")
    assert result.exit_code == 2, result.output
    assert ("Pulumi.prod-us-west-2.yaml: sofacover:primary.region is eu-central-1 but stack "
            f"prod's aws:region is {seed.PRIMARY_REGION}") in " ".join(result.output.split())
    assert "Resources to create" not in result.output


def test_a_config_error_found_while_the_program_runs_is_a_config_error(project, prod):
    # Under `pulumi up` of one stack the primary's real region is known only from its
    # outputs (a StackReference): the program refuses a primary that reports another one.
    from config import ConfigError
    from planner.engine import plan_stack

    primary = prod["prod"]
    moved = {primary.qualified: {**primary.outputs, "region": "eu-central-1"}}
    with pytest.raises(ConfigError) as caught:
        plan_stack(project, f"prod-{seed.READ_REPLICA_REGIONS[0]}", references=moved)
    assert (f"sofacover:primary.region is {seed.PRIMARY_REGION} but stack prod reports "
            "region eu-central-1") in " ".join(caught.value.problems)


def test_kubernetes_objects_are_summarised_by_what_matters(prod_phase2):
    from planner.render import summary

    by_name = {r.name: r for r in prod_phase2["prod"].resources}
    deployment = summary(by_name["sofacover-prod-cart-deployment"])
    assert deployment.startswith("namespace=sofacover  replicas=3  image=")
    assert "[ignore_changes=spec.replicas]" in deployment
    assert summary(by_name["sofacover-prod-cart-hpa"]).startswith(
        "namespace=sofacover  replicas=3-20  target=")
    assert "chart=kube-prometheus-stack@" in summary(by_name["sofacover-prod-prometheus-release"])


def test_piped_errors_keep_each_problem_on_one_line(tmp_path):
    root = copy_project(tmp_path)
    (root / "Pulumi.prod.yaml").write_text("confg:\n  sofacover:phase: 1\n")
    result = plan("--project", str(root))
    assert result.exit_code == 2
    assert ("error: Pulumi.prod.yaml: top-level key 'confg' is not a stack file key (did you "
            "mean 'config'?); valid: config, secretsprovider, encryptedkey, encryptionsalt, "
            "environment") in result.output.splitlines()


def test_dev_plans_at_every_phase_with_no_preflight_error(dev_phases):
    from planner import preflight

    for phase, plan in dev_phases.items():
        assert plan.phase == phase and plan.resources
        errors = [f for f in preflight.check([plan]) if f.severity == "error"]
        assert not errors, (phase, errors)
    # phases 2-3 run on EKS, where PgBouncer needs two pods: the dev preset has them
    assert any(r.type == "aws:eks/cluster:Cluster" for r in dev_phases[2].resources)
