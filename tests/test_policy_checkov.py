"""checkov's AWS checks over the prod environment at phase 3, in Terraform's plan shape
(`sofacover plan --env prod --phase 3 --tfplan`): every failed check must be listed with
its reason in tests/checkov-skips-aws.yaml, and every listed check must still fail."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from planner import tfplan
from tests.test_workloads import checkov

ROOT = Path(__file__).resolve().parents[1]
SKIPS = ROOT / "tests" / "checkov-skips-aws.yaml"


@pytest.fixture(scope="module")
def failed(prod_phase3, tmp_path_factory) -> set[str]:
    doc, unmapped = tfplan.document(list(prod_phase3.values()))
    assert unmapped == [], "add these types to planner/data/replace_manual.yaml upstream_types"
    path = tmp_path_factory.mktemp("tfplan") / "plan.json"
    path.write_text(json.dumps(doc))
    done = subprocess.run([checkov(), "-f", str(path), "--framework", "terraform_plan",
                           "-o", "json", "--skip-download", "--compact", "--quiet"],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "LOG_LEVEL": "ERROR"})
    assert done.returncode in (0, 1), done.stderr[-2000:]
    report = json.loads(done.stdout)
    (report,) = report if isinstance(report, list) else [report]
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 0
    return {c["check_id"] for c in report["results"]["failed_checks"]}


def test_checkov_aws_finds_nothing_beyond_the_listed_skips(failed):
    assert sorted(failed - set(yaml.safe_load(SKIPS.read_text()))) == []


def test_every_aws_skip_has_a_reason_and_still_fails(failed):
    skips = yaml.safe_load(SKIPS.read_text())
    assert all(len(entry["reason"]) > 20 for entry in skips.values())
    assert sorted(set(skips) - failed) == [], "stale skips: remove them"


def test_the_export_is_terraform_shaped(prod_phase3):
    doc, _ = tfplan.document(list(prod_phase3.values()))
    assert doc["format_version"] and doc["resource_changes"]
    (db, *_) = [r for r in doc["planned_values"]["root_module"]["resources"]
                if r["type"] == "aws_db_instance"]
    assert db["values"]["storage_encrypted"] is True
    assert isinstance(db["values"]["tags"], dict)
    (lt, *_) = [r for r in doc["planned_values"]["root_module"]["resources"]
                if r["type"] == "aws_launch_template"]
    assert lt["values"]["metadata_options"][0]["http_tokens"] == "required"
    assert "[secret]" not in json.dumps(doc)


def test_the_export_names_blocks_and_references_as_terraform_does(prod_phase3):
    doc, _ = tfplan.document(list(prod_phase3.values()))
    resources = doc["planned_values"]["root_module"]["resources"]
    (listener, *_) = [r for r in resources if r["type"] == "aws_lb_listener"
                      and r["values"]["protocol"] == "HTTP"]
    # Pulumi's defaultActions is Terraform's default_action: a list of blocks.
    assert listener["values"]["default_action"][0]["redirect"][0]["protocol"] == "HTTPS"
    (group, *_) = [r for r in resources if r["type"] == "aws_autoscaling_group"]
    assert {t["key"] for t in group["values"]["tag"]} >= {"Name"}
    config = {r["address"]: r for r in doc["configuration"]["root_module"]["resources"]}
    (block, *_) = [r for r in resources if r["type"] == "aws_s3_bucket_public_access_block"]
    refs = config[block["address"]]["expressions"]["bucket"]["references"]
    assert any(ref.startswith("aws_s3_bucket.") for ref in refs)
