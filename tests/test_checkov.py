"""checkov over what the program generates, in one checkov run.

- Kubernetes checks over the Workloads objects of dev and prod (the recorded inputs of the
  kubernetes:* resources: what the provider sends the API server), and over Deployments
  with one rule each deliberately broken (checkov must catch each one). Every failed check
  must be listed with its reason in tests/checkov-skips.yaml, and every listed check must
  still fail.
- AWS checks over the prod environment at phase 3 in Terraform's plan shape (`sofacover plan
  --env prod --phase 3 --tfplan`), against tests/checkov-skips-aws.yaml the same way.

One checkov process scans everything, a `-d` per folder (each stack's objects, the broken
Deployments, the plan): checkov spends about 4 s of CPU starting whatever it scans, and the
five scans and two version checks the suite ran before cost about 25 s more
(docs/benchmarks.md, "Test time").
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from config import seed
from planner import tfplan
from planner.engine import execute
from tests.conftest import ROOT, of_type
from tests.test_workloads import DEPLOYMENT, STACKS, args_for, manifests, workloads

REQUIREMENTS = ROOT / "tests" / "requirements-checkov.txt"
K8S_SKIPS = ROOT / "tests" / "checkov-skips.yaml"
AWS_SKIPS = ROOT / "tests" / "checkov-skips-aws.yaml"
INSTALL = ("python3 -m venv .venv-checkov && "
           ".venv-checkov/bin/pip install -r tests/requirements-checkov.txt")


def _installed_version(binary: str) -> str:
    """The checkov version behind `binary`: from its venv's package metadata when it is the
    project's .venv-checkov (no checkov start-up), else from `checkov --version`."""
    venv = Path(binary).parent.parent
    found = sorted(venv.glob("lib/python*/site-packages/checkov-*.dist-info/METADATA"))
    if venv == ROOT / ".venv-checkov" and len(found) == 1:
        for line in found[0].read_text().splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
    return subprocess.run([binary, "--version"], capture_output=True, text=True,
                          check=True).stdout.strip()


@functools.cache
def checkov() -> str:
    """The pinned checkov: in .venv-checkov, else on PATH; never skipped when absent."""
    (pin,) = [line.strip() for line in REQUIREMENTS.read_text().splitlines()
              if line.strip().startswith("checkov==")]
    local = ROOT / ".venv-checkov" / "bin" / "checkov"
    binary = str(local) if local.exists() else shutil.which("checkov")
    if binary is None:
        pytest.fail(f"checkov is not installed; from {ROOT} run: {INSTALL}")
    found = _installed_version(binary)
    if f"checkov=={found}" != pin:
        pytest.fail(f"{binary} is checkov {found}, not {pin}; run: {INSTALL}")
    return binary


def stem(obj: dict[str, Any]) -> str:
    return f"{obj['kind'].lower()}-{obj['metadata']['name']}"


# --- what checkov must catch when a rule is broken, and pass when it holds -----------------

SECURITY_CHECKS = {
    "CKV_K8S_20": "allowPrivilegeEscalation",
    "CKV_K8S_22": "readOnlyRootFilesystem",
    "CKV_K8S_28": "NET_RAW dropped",
    "CKV_K8S_37": "capabilities dropped",
    "CKV_K8S_31": "seccomp RuntimeDefault",
    "CKV_K8S_40": "high UID",
    "CKV_K8S_38": "no service account token",
}
PROBE_CHECKS = {"CKV_K8S_8": "liveness probe", "CKV_K8S_9": "readiness probe"}
RESOURCE_CHECKS = {"CKV_K8S_10": "CPU request", "CKV_K8S_12": "memory request",
                   "CKV_K8S_13": "memory limit"}


def _strip_security(obj: dict[str, Any]) -> None:
    pod = obj["spec"]["template"]["spec"]
    pod.pop("securityContext")
    pod.pop("automountServiceAccountToken")
    pod["containers"][0].pop("securityContext")


def _strip_probes(obj: dict[str, Any]) -> None:
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        obj["spec"]["template"]["spec"]["containers"][0].pop(probe)


def _strip_resources(obj: dict[str, Any]) -> None:
    obj["spec"]["template"]["spec"]["containers"][0].pop("resources")


def _leave_alone(obj: dict[str, Any]) -> None:
    """The broken scan holds no NetworkPolicy at all, so this Deployment's pods have none."""


BROKEN = {
    "no-security-context": (_strip_security, SECURITY_CHECKS),
    "no-network-policy": (_leave_alone, {"CKV2_K8S_6": "a NetworkPolicy selects the pods"}),
    "no-probes": (_strip_probes, PROBE_CHECKS),
    "no-resources": (_strip_resources, RESOURCE_CHECKS),
}


# --- the one scan -------------------------------------------------------------------------

Results = dict[str, dict[str, set[str]]]  # file stem -> {"failed": ids, "passed": ids}


def _objects(project) -> dict[str, dict[str, dict[str, Any]]]:
    """The Kubernetes objects to scan, by folder: each stack's, and the broken Deployments
    (each folder is scanned as checkov scans a directory: CKV2_K8S_6 looks for a
    NetworkPolicy among the same files)."""
    configs = {stack: project.stack_config(stack) for stack in STACKS}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for stack in STACKS:
        run = execute(workloads(args_for(configs[stack], pgbouncer_namespace="data")),
                      project="sofacover", stack="test",
                      values={"aws:region": seed.PRIMARY_REGION})
        out[stack] = {stem(o): o for o in manifests(run)}
    run = execute(workloads(args_for(configs["dev"])), project="sofacover", stack="test",
                  values={"aws:region": seed.PRIMARY_REGION})
    rendered = of_type(run.resources, DEPLOYMENT)[0].inputs
    out["broken"] = {}
    for variant, (patch, _) in BROKEN.items():
        obj = copy.deepcopy(rendered)
        obj["metadata"]["name"] = variant
        patch(obj)
        out["broken"][variant] = obj
    return out


def _documents(text: str) -> list[dict[str, Any]]:
    """checkov's JSON output with several `-d`: one document per root (a report, or a list
    of one per framework), printed one after another. Each root is its own graph (a
    NetworkPolicy in one folder selects no pod in another: the broken folder's
    CKV2_K8S_6 depends on it); a later document repeats the earlier roots' results, so
    they are read by file."""
    decoder, out, at = json.JSONDecoder(), [], 0
    while at < len(text.rstrip()):
        doc, at = decoder.raw_decode(text, at)
        out.extend(doc if isinstance(doc, list) else [doc])
        while at < len(text) and text[at].isspace():
            at += 1
    return out


@pytest.fixture(scope="module")
def scan(project, prod_phase3, tmp_path_factory) -> dict[str, Any]:
    """checkov's Kubernetes checks over every folder of objects and its AWS checks over the
    prod phase-3 plan, in one process: Kubernetes results by folder and file, and the AWS
    check ids that failed."""
    root = tmp_path_factory.mktemp("checkov").resolve()
    folders = _objects(project)
    for folder, objs in folders.items():
        (root / "k8s" / folder).mkdir(parents=True)
        for name, obj in objs.items():
            (root / "k8s" / folder / f"{name}.yaml").write_text(
                yaml.safe_dump(obj, sort_keys=False))
    doc, unmapped = tfplan.document(list(prod_phase3.values()))
    assert unmapped == [], "add these types to planner/data/replace_manual.yaml upstream_types"
    (root / "aws").mkdir()
    plan = root / "aws" / "plan.json"
    plan.write_text(json.dumps(doc))
    roots = [root / "k8s" / folder for folder in folders] + [root / "aws"]
    done = subprocess.run(
        [checkov(), *[a for r in roots for a in ("-d", str(r))],
         "--framework", "kubernetes", "terraform_plan", "-o", "json", "--skip-download",
         "--compact"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "LOG_LEVEL": "ERROR"})
    assert done.returncode in (0, 1), done.stderr[-2000:]
    reports = _documents(done.stdout)
    for report in reports:
        assert report["summary"]["parsing_errors"] == 0
        assert report["summary"]["passed"] > 0
    k8s: dict[str, Results] = {
        folder: {name: {"failed": set(), "passed": set()} for name in objs}
        for folder, objs in folders.items()}
    assert {r["check_type"] for r in reports} == {"kubernetes", "terraform_plan"}
    for outcome in ("failed", "passed"):
        for check in [c for r in reports if r["check_type"] == "kubernetes"
                      for c in r["results"][f"{outcome}_checks"]]:
            path = Path(check["file_abs_path"]).resolve().relative_to(root / "k8s")
            k8s[path.parts[0]][path.stem][outcome].add(check["check_id"])
    aws = [c for r in reports if r["check_type"] == "terraform_plan"
           for c in r["results"]["failed_checks"]]
    assert {Path(c["file_abs_path"]).resolve() for c in aws} <= {plan.resolve()}
    return {"k8s": k8s, "aws": {c["check_id"] for c in aws}}


# --- Kubernetes ---------------------------------------------------------------------------

@pytest.mark.parametrize("stack", STACKS)
def test_checkov_finds_nothing_beyond_the_listed_skips(scan, stack):
    skips = yaml.safe_load(K8S_SKIPS.read_text())
    results = scan["k8s"][stack]
    unexpected = {f: sorted(r["failed"] - set(skips)) for f, r in results.items()}
    assert {f: ids for f, ids in unexpected.items() if ids} == {}
    assert any(r["passed"] for r in results.values())


def test_every_checkov_skip_has_a_reason_and_still_fires(scan):
    skips = yaml.safe_load(K8S_SKIPS.read_text())
    fired = {i for stack in STACKS for r in scan["k8s"][stack].values() for i in r["failed"]}
    for check_id, entry in skips.items():
        assert re.fullmatch(r"CKV2?_K8S_\d+", check_id), check_id
        assert len(entry["reason"].split()) >= 10, f"{check_id}: give a real reason"
        assert check_id in fired, f"{check_id} no longer fails: remove it from {K8S_SKIPS}"


def test_checkov_passes_the_rendered_deployments_on_every_rule_broken_below(scan):
    expected = {i for _, checks in BROKEN.values() for i in checks}
    for stack in STACKS:
        for file, r in scan["k8s"][stack].items():
            if file.startswith("deployment-"):
                assert expected <= r["passed"], (stack, file, sorted(expected - r["passed"]))


def test_checkov_catches_deployments_with_a_rule_broken(scan):
    results = scan["k8s"]["broken"]
    for variant, (_, checks) in BROKEN.items():
        missed = set(checks) - results[variant]["failed"]
        assert not missed, f"{variant}: checkov missed {[checks[i] for i in sorted(missed)]}"


# --- AWS, on the prod environment's plan at phase 3 ---------------------------------------

def test_checkov_aws_finds_nothing_beyond_the_listed_skips(scan):
    assert sorted(scan["aws"] - set(yaml.safe_load(AWS_SKIPS.read_text()))) == []


def test_every_aws_skip_has_a_reason_and_still_fails(scan):
    skips = yaml.safe_load(AWS_SKIPS.read_text())
    assert all(len(entry["reason"]) > 20 for entry in skips.values())
    assert sorted(set(skips) - scan["aws"]) == [], "stale skips: remove them"
