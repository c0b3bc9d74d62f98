"""Secrets through the whole path: a sentinel value, distinct from every mask and
placeholder, given as `pulumi up` gives it (decrypted, flagged secret), never reaches the
plan's tree, JSON, outputs, messages or findings; and the placeholder is not the mask."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from config.secrets import UNKNOWN_SECRET
from planner import preflight
from planner.engine import plan_stack
from planner.mocks import SECRET_MASK
from planner.render import print_findings, print_plans

# Valid for each key's format, and unlike anything the program or the mocks write.
SENTINELS = {
    "sofacover:redisAuthToken": "S3ntinelRedis0TokenQ7x9Zk2Lm4",
    "sofacover:dbAppPassword": "S3ntinel-db-app-Wq8Rt5Yu",
    "sofacover:pgbouncerAdminPassword": "S3ntinel-pgb-admin-Jh6Kl3",
    "sofacover:pgbouncerStatsPassword": "S3ntinel-pgb-stats-Zx1Cv9",
}


def test_the_offline_placeholder_is_not_the_plans_mask():
    assert UNKNOWN_SECRET != SECRET_MASK


@pytest.fixture(scope="module")
def planned_with_sentinels(project):
    # Phase 2: the secrets reach RDS, ElastiCache, Kubernetes Secrets (PgBouncer's auth
    # file, the partition job) and the exporter's connection string.
    return plan_stack(project, "prod", phase=2, secret_values=SENTINELS)


def test_sentinel_secrets_never_reach_tree_json_outputs_messages_or_findings(
        planned_with_sentinels):
    plan = planned_with_sentinels
    buffer = io.StringIO()
    console = Console(file=buffer, width=400, color_system=None)
    print_plans([plan], console)
    print_findings(preflight.check([plan]), console)
    texts = {"tree": buffer.getvalue(), "json": json.dumps(plan.as_json()),
             "messages": "\n".join(plan.messages)}
    for where, text in texts.items():
        for key, sentinel in SENTINELS.items():
            # Also no fragment long enough to recover it, URL-encoded or not.
            assert sentinel[:12] not in text, f"{key} leaks into the {where}"


def test_the_secret_inputs_arrive_masked_so_the_program_passed_them_as_secrets(
        planned_with_sentinels):
    by_type = {}
    for res in planned_with_sentinels.resources:
        by_type.setdefault(res.type, []).append(res)
    (group,) = by_type["aws:elasticache/replicationGroup:ReplicationGroup"]
    assert group.inputs["authToken"] == SECRET_MASK
    secrets = by_type["kubernetes:core/v1:Secret"]
    assert secrets
    for secret in secrets:
        payload = secret.inputs.get("stringData", secret.inputs.get("data"))
        values = payload.values() if isinstance(payload, dict) else [payload]
        assert all(v == SECRET_MASK for v in values), secret.name


def test_a_sentinel_of_the_wrong_format_is_refused_without_showing_it(project):
    from config import ConfigError

    bad = {**SENTINELS, "sofacover:redisAuthToken": "S3ntinel+base64/="}
    with pytest.raises(ConfigError) as caught:
        plan_stack(project, "prod", secret_values=bad)
    (problem,) = caught.value.problems
    assert "sofacover:redisAuthToken does not have the format" in problem
    assert "S3ntinel" not in problem


def _leaks(text: str) -> list[str]:
    return [key for key, sentinel in SENTINELS.items() if sentinel[:12] in text]


def test_sentinels_never_reach_the_json_tfplan_diff_policy_or_report(
        planned_with_sentinels, project, tmp_path):
    from planner import diff as plan_diff
    from planner import policy as plan_policy
    from planner import report as report_files
    from planner import tfplan
    from planner.render import write_json

    plan = planned_with_sentinels
    findings = preflight.check([plan])
    write_json([plan], tmp_path / "plan.json", findings)
    tfplan.write([plan], tmp_path / "tfplan.json")
    # The diff against a plan without the sentinels: the secret inputs differ, if at all,
    # only as masks.
    before = plan_stack(project, "prod", phase=2)
    write_json([before], tmp_path / "before.json", [])
    diffs = plan_diff.diff([plan], plan_diff.load(tmp_path / "before.json"))
    policy = plan_policy.check([plan])
    buffer = io.StringIO()
    plan_policy.print_report(policy, Console(file=buffer, width=400, color_system=None))
    rep = report_files.build([plan], scope="stack prod")
    paths = report_files.write(rep, tmp_path / "report")
    texts = {
        "json": (tmp_path / "plan.json").read_text(),
        "tfplan": (tmp_path / "tfplan.json").read_text(),
        "diff": "\n".join(plan_diff.lines(diffs, tmp_path / "before.json"))
        + json.dumps([d.as_json() for d in diffs]),
        "policy": buffer.getvalue() + json.dumps(policy.as_json()),
        **{p.name: p.read_bytes().decode("latin-1") for p in paths},
    }
    for where, text in texts.items():
        assert not _leaks(text), f"{_leaks(text)} leak into the {where}"


# What the CLI sees of a secret is its ciphertext (it cannot decrypt): that must not be
# shown either, in any output or file of any command, including the errors.
CIPHER = "v1:U2VudGluZWxDaXBoZXJ0ZXh0:Q2lwaGVyU2VudGluZWw="


def _with_cipher(tmp_path):
    from tests.test_program import copy_project

    tmp_path.mkdir(exist_ok=True)
    root = copy_project(tmp_path)
    for path in root.glob("Pulumi.*.yaml"):
        path.write_text(path.read_text().replace(
            "v1:placeholder:replace-with-pulumi-config-set-secret", CIPHER))
    return root


def test_the_ciphertext_never_reaches_plan_json_tfplan_diff_or_report(dev, tmp_path):
    from typer.testing import CliRunner

    from planner.cli import app
    from planner.render import write_json

    root = _with_cipher(tmp_path / "project")
    write_json([dev], tmp_path / "before.json", [])
    runner = CliRunner()
    plan = runner.invoke(app, ["plan", "--project", str(root), "--stack", "dev",
                               "--json", str(tmp_path / "plan.json"),
                               "--tfplan", str(tmp_path / "tfplan.json"),
                               "--diff-from", str(tmp_path / "before.json")])
    assert plan.exit_code in (0, 1), plan.output  # 1: findings, still a whole plan
    report = runner.invoke(app, ["report", "--project", str(root), "--stack", "dev",
                                 "--out", str(tmp_path / "report")])
    assert report.exit_code == 0, report.output
    files = [tmp_path / "plan.json", tmp_path / "tfplan.json",
             *(tmp_path / "report").iterdir()]
    assert len(files) > 3
    for text, where in [(plan.output, "plan"), (report.output, "report"),
                        *((f.read_bytes().decode("latin-1"), f.name) for f in files)]:
        assert CIPHER not in text and CIPHER.split(":")[1] not in text, where


def test_the_ciphertext_and_plain_values_never_reach_config_errors(tmp_path):
    from typer.testing import CliRunner

    from planner.cli import app

    root = _with_cipher(tmp_path)
    stack_file = root / "Pulumi.dev.yaml"
    sentinel = SENTINELS["sofacover:dbAppPassword"]
    text = stack_file.read_text().replace(
        f"  sofacover:dbAppPassword:\n    secure: {CIPHER}",
        f"  sofacover:dbAppPassword: {sentinel}")
    stack_file.write_text(text + "  sofacover:compute:\n    minSize: -1\n")
    runner = CliRunner()
    for command in (["plan"], ["report"]):
        result = runner.invoke(app, [*command, "--project", str(root), "--stack", "dev"])
        assert result.exit_code == 2, result.output
        assert "sofacover:dbAppPassword is stored in plain text" in result.output
        assert sentinel[:12] not in result.output and CIPHER not in result.output
