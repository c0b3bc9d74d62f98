"""The plan in Terraform's plan JSON shape (`sofacover plan --tfplan`, planner/tfplan.py), as
checkov, trivy or conftest read it; tests/test_checkov.py runs checkov's AWS checks over it."""

from __future__ import annotations

import json

from planner import tfplan


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
