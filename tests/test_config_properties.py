"""Properties of the stack config, with generated stack files (hypothesis).

Invalid files are mutations of the committed Pulumi.<stack>.yaml files (a value of the wrong
type, an unknown key, a number out of range, a malformed string, a required key deleted,
random YAML or bytes): each must fail cleanly through the real CLI, `sofacover plan`, run
in-process: exit 2, one line per problem naming the stack file (and a key wherever the file
parsed), no traceback, no plan. Valid files are generated within the models' ranges: each
must validate, and a few are planned under the mocks (no real engines) with no preflight
error.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from annotated_types import Ge, Le
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from typer.testing import CliRunner

from config import ConfigError, StackConfig, seed
from config.loader import REQUIRED_SECRETS
from config.offerings import cache_families, rds_families, rds_majors
from config.regions import usable_az_count
from planner.cli import app
from planner.project import Project, ProjectError

ROOT = Path(__file__).resolve().parents[1]
STACKS = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml"))
COMMITTED = {s: yaml.safe_load((ROOT / f"Pulumi.{s}.yaml").read_text()) for s in STACKS}
PROJECT = Project(ROOT)
ENVIRONMENT = {s: PROJECT.stack_config(s).environment for s in STACKS}
# Keys a stack file holds outside the models (the model's `stack` and `region` come from
# elsewhere; the scalars are mutated through their own keys below).
SCALARS = ("environment", "role", "phase", "promote")
DERIVED = ("stack", "region")
# Fields that are maps of free keys (not models): mutated only as a whole.
FREE_MAPS = {"tags", "origins", "prometheusRuleLabels"}
# Strings with a grammar of their own: a malformed one must be refused.
CHECKED_STRINGS = (
    "compute.instanceType", "compute.appImage", "compute.domainName",
    "compute.healthCheckPath", "database.instanceClass", "database.engineVersion",
    "cache.nodeType", "kubernetes.version", "kubernetes.namespace", "network.cidr",
    "edge.zoneName", "edge.accountId", "edge.healthCheckPath", "alerts.prometheusNamespace",
    "primary.region",
)
SETTINGS = settings(max_examples=20, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

runner = CliRunner()


# --- helpers ------------------------------------------------------------------------------

def effective(stack: str) -> dict[str, Any]:
    """The stack's whole config as the models hold it, by stack-file key (camelCase)."""
    doc = PROJECT.stack_config(stack).model_dump(by_alias=True, exclude_none=True)
    return {k: v for k, v in doc.items() if k not in SCALARS + DERIVED}


def leaves(doc: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, value) of every value under a model, not descending into free maps or lists."""
    if isinstance(doc, dict) and (not path or path[-1] not in FREE_MAPS):
        for key, value in doc.items():
            yield from leaves(value, (*path, key))
    elif path:
        yield path, doc


def field_at(path: tuple[str, ...]):
    """The pydantic FieldInfo of a camelCase path into StackConfig."""
    model: type[BaseModel] = StackConfig
    info = None
    for part in path:
        info = next(f for n, f in model.model_fields.items() if (f.alias or n) == part)
        inner = [a for a in getattr(info.annotation, "__args__", (info.annotation,))
                 if isinstance(a, type) and issubclass(a, BaseModel)]
        model = inner[0] if inner else model
    return info


def with_value(stack: str, path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """The committed stack file with `sofacover:<path>` set to value (maps merged)."""
    doc = copy.deepcopy(COMMITTED[stack])
    config = doc["config"]
    key = f"sofacover:{path[0]}"
    if len(path) == 1:
        config[key] = value
        return doc
    top = config.setdefault(key, {})
    if not isinstance(top, dict):
        top = config[key] = {}
    for part in path[1:-1]:
        top = top.setdefault(part, {})
    top[path[-1]] = value
    return doc


@contextmanager
def project_with(stack: str, content: bytes | dict) -> Iterator[Path]:
    """A copy of the project whose Pulumi.<stack>.yaml is `content`."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for item in ["Pulumi.yaml", "__main__.py", *(f"Pulumi.{s}.yaml" for s in STACKS)]:
            shutil.copy(ROOT / item, root / item)
        data = content if isinstance(content, bytes) else \
            yaml.safe_dump(content, sort_keys=False).encode()
        (root / f"Pulumi.{stack}.yaml").write_bytes(data)
        yield root


def assert_fails_cleanly(stack: str, content: bytes | dict) -> None:
    """Exit 2 from `sofacover plan`, a line per problem naming a stack file, no traceback;
    the validation alone must already refuse it (so a quietly accepted file fails here
    rather than planning)."""
    with project_with(stack, content) as root:
        project = Project(root)
        try:
            project.stack_config(stack)
            project.rollout(ENVIRONMENT[stack])
        except (ConfigError, ProjectError):
            pass
        else:
            pytest.fail(f"Pulumi.{stack}.yaml was accepted: {content!r}")
        result = runner.invoke(app, ["plan", "--project", str(root), "--stack", stack])
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    assert "Resources to create" not in result.output  # no plan
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert f"Pulumi.{stack}.yaml" in result.output
    if lines[0] == "error: invalid stack configuration":
        for line in lines[1:]:
            assert line.startswith("  Pulumi.") and ".yaml: " in line, line
            assert any(ns in line for ns in ("sofacover:", "aws:", "cloudflare:")), line
    else:  # the file itself is unreadable: one line naming it
        (line,) = lines
        assert line.startswith("error: ") and ".yaml" in line


# --- invalid files ------------------------------------------------------------------------

def wrong_type(value: Any) -> st.SearchStrategy:
    text = st.text(min_size=1, max_size=8).filter(lambda t: t != "auto")
    if isinstance(value, bool):
        return st.one_of(st.integers(), text, st.lists(st.booleans(), max_size=2))
    if isinstance(value, int):
        return st.one_of(text, st.booleans(), st.floats(allow_nan=False), st.lists(
            st.integers(), max_size=2))
    if isinstance(value, str):
        return st.one_of(st.integers(), st.booleans(), st.lists(text, max_size=2),
                         st.dictionaries(text, text, max_size=2))
    if isinstance(value, list):
        return st.one_of(st.integers(), text, st.dictionaries(text, text, min_size=1,
                                                              max_size=2))
    return st.one_of(st.integers(), st.lists(st.integers(), min_size=1, max_size=2))


@st.composite
def wrong_types(draw):
    stack = draw(st.sampled_from(STACKS))
    path, value = draw(st.sampled_from(sorted(leaves(effective(stack)), key=str)))
    return stack, with_value(stack, path, draw(wrong_type(value)))


@st.composite
def unknown_keys(draw):
    stack = draw(st.sampled_from(STACKS))
    models = [path for path, _ in _model_paths(effective(stack))]
    path = draw(st.sampled_from(models))
    known = set(_model_keys(path))
    name = draw(st.from_regex(r"\A[a-z][a-zA-Z]{2,12}\Z").filter(lambda n: n not in known))
    return stack, with_value(stack, (*path, name), draw(st.integers() | st.text(max_size=5)))


def _model_paths(doc: dict, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], dict]]:
    """Every map in the config that is a model (where an unknown key is an error)."""
    for key, value in doc.items():
        if isinstance(value, dict) and key not in FREE_MAPS:
            yield (*path, key), value
            yield from _model_paths(value, (*path, key))


def _model_keys(path: tuple[str, ...]) -> list[str]:
    info = field_at(path)
    inner = [a for a in getattr(info.annotation, "__args__", (info.annotation,))
             if isinstance(a, type) and issubclass(a, BaseModel)]
    return [f.alias or n for n, f in inner[0].model_fields.items()]


@st.composite
def out_of_range(draw):
    stack = draw(st.sampled_from(STACKS))
    ints = [(p, v) for p, v in leaves(effective(stack))
            if isinstance(v, int) and not isinstance(v, bool)]
    path, _ = draw(st.sampled_from(sorted(ints, key=str)))
    bounds = field_at(path).metadata
    low = next((m.ge for m in bounds if isinstance(m, Ge)), None)
    high = next((m.le for m in bounds if isinstance(m, Le)), None)
    choices = []
    if low is not None:
        choices.append(st.integers(max_value=low - 1, min_value=low - 10**6))
    if high is not None:
        choices.append(st.integers(min_value=high + 1, max_value=high + 10**6))
    if not choices:  # a Literal set (log retention days): a number not in it
        choices.append(st.integers(-10**6, -1))
    return stack, with_value(stack, path, draw(st.one_of(choices)))


@st.composite
def malformed_strings(draw):
    stack = draw(st.sampled_from(STACKS))
    values = dict(leaves(effective(stack)))
    paths = [tuple(p.split(".")) for p in CHECKED_STRINGS if tuple(p.split(".")) in values]
    path = draw(st.sampled_from(paths))
    good = values[path]
    bad = draw(st.one_of(
        st.sampled_from(["\n", " ", "\t", ";rm -rf /", "$(id)", "../"]).map(lambda s: good + s),
        st.sampled_from(["", " ", "-"]).map(lambda s: s + good.upper() + "!"),
        st.just(""),
    ))
    return stack, with_value(stack, path, bad)


@st.composite
def deleted_required(draw):
    stack = draw(st.sampled_from(STACKS))
    doc = copy.deepcopy(COMMITTED[stack])
    role = doc["config"]["sofacover:role"]
    cloudflare = role == "edge" or (doc["config"].get("sofacover:compute") or {}).get(
        "dnsValidation") == "cloudflare"
    required = [k for k in doc["config"] if k in (
        "sofacover:environment", "sofacover:role", "sofacover:phase", "aws:region",
        "sofacover:primary", "sofacover:edge", *REQUIRED_SECRETS[role])
        or (k == "cloudflare:apiToken" and cloudflare)]
    del doc["config"][draw(st.sampled_from(required))]
    return stack, doc


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=8)


@st.composite
def random_yaml(draw):
    stack = draw(st.sampled_from(STACKS))
    shape = draw(st.sampled_from(["document", "config", "bytes"]))
    if shape == "document":
        return stack, yaml.safe_dump(draw(yaml_values)).encode()
    if shape == "config":  # a `config:` of random keys and values
        return stack, {"config": draw(st.dictionaries(
            st.text(min_size=1, max_size=12), yaml_values, max_size=4))}
    return stack, draw(st.binary(max_size=64))


@SETTINGS
@given(case=st.one_of(wrong_types(), unknown_keys(), out_of_range(), malformed_strings(),
                      deleted_required(), random_yaml()))
def test_every_invalid_stack_file_fails_cleanly_naming_file_and_key(case):
    stack, content = case
    assert_fails_cleanly(stack, content)


@pytest.mark.parametrize("strategy", [wrong_types, unknown_keys, out_of_range,
                                      malformed_strings, deleted_required])
def test_each_kind_of_mutation_is_exercised(strategy):
    # The combined property above draws from all; each kind also runs on its own, briefly.
    @settings(max_examples=5, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(case=strategy())
    def run(case):
        assert_fails_cleanly(*case)

    run()


# --- valid files --------------------------------------------------------------------------

@st.composite
def valid_prod(draw):
    """prod's file with settings drawn within the models' ranges and the seed's targets."""
    # From the preset's maximum up: on EKS (phases 2-3) the group must hold every pod at its
    # HPA maximum, which the preset's size is chosen for.
    max_size = draw(st.integers(seed.ASG_MAX, 3 * seed.ASG_MAX))
    min_size = draw(st.integers(1, max_size))
    nodes = draw(st.integers(2, 6))
    # Up to the seed's maximum: the node group is sized for it (k8s-capacity-at-max).
    hpa_max = draw(st.integers(seed.HPA_MIN, seed.HPA_MAX))
    doc = copy.deepcopy(COMMITTED["prod"])
    config = doc["config"]
    config["sofacover:compute"] = {**config.get("sofacover:compute", {}),
                                   "minSize": min_size, "maxSize": max_size,
                                   "desiredCapacity": draw(st.integers(min_size, max_size)),
                                   "cpuTargetPercent": draw(st.integers(20, 90))}
    config["sofacover:network"] = {"azCount": draw(st.integers(
        2, usable_az_count(seed.PRIMARY_REGION)))}
    config["sofacover:cache"] = {"numNodes": nodes, "nodeType": draw(st.sampled_from(
        [f"{f}.{size}" for f in cache_families()[:4] for size in ("large", "xlarge")]))}
    config["sofacover:kubernetes"] = {"hpa": {
        "minReplicas": draw(st.integers(1, hpa_max)), "maxReplicas": hpa_max}}
    config["sofacover:database"] = {
        "backupRetentionDays": draw(st.integers(seed.BACKUP_RETENTION_DAYS, 35)),
        "engineVersion": draw(st.sampled_from(rds_majors()[-2:])),  # the two newest
        "instanceClass": draw(st.sampled_from(
            [f"{f}.{size}" for f in ("db.m6i", "db.r6g", "db.m7g") if f in rds_families()
             for size in ("xlarge", "2xlarge", "4xlarge")]))}
    config["sofacover:tags"] = draw(st.dictionaries(
        st.from_regex(r"\A[A-Za-z][A-Za-z0-9_.:/=+@-]{0,20}\Z").filter(
            lambda k: not k.lower().startswith("aws:") and k not in (
                "Project", "Environment", "Stack", "ManagedBy")),
        st.from_regex(r"\A[A-Za-z0-9 _.:/=+@-]{0,30}\Z"), max_size=3))
    config["sofacover:phase"] = draw(st.integers(1, 3))
    return doc


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(doc=valid_prod())
def test_valid_stack_files_validate(doc):
    with project_with("prod", doc) as root:
        cfg = Project(root).stack_config("prod")
    assert cfg.compute.min_size == doc["config"]["sofacover:compute"]["minSize"]


# No shrinking: each example is a whole plan (seconds); the failing file is shown as drawn.
@settings(max_examples=2, deadline=None, derandomize=True,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow])
@given(doc=valid_prod())
def test_valid_stack_files_plan_with_no_preflight_error(doc):
    from planner import preflight
    from planner.engine import plan_stack

    with project_with("prod", doc) as root:
        plan = plan_stack(Project(root), "prod")
    assert plan.resources
    errors = [f for f in preflight.check([plan]) if f.severity == "error"]
    assert not errors, errors


def test_the_mutations_start_from_valid_files():
    # The properties are about the mutations: the committed files themselves are valid, in
    # every phase.
    for stack in STACKS:
        for phase in (1, 2, 3):
            assert PROJECT.stack_config(stack, phase).phase == phase
