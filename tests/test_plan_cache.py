"""The test session's plan cache (planner/plan_cache.py) and the engine's two SDK
replacements (planner/engine.py): faster, and answering exactly as before."""

from __future__ import annotations

import asyncio
import pickle

import pulumi
import pytest

from planner import engine
from planner.engine import execute, plan_stack, plans_cached, sdk_patched
from planner.plan_cache import PlanCache
from planner.project import Project
from tests.conftest import ROOT
from tests.test_global import copy_project, set_config

# --- the SDK replacements ------------------------------------------------------------------


def test_both_replacements_are_in_force_for_this_sdk():
    # Another pulumi version keeps its own wait_for_rpcs: this fails so that someone compares
    # the two functions and updates engine._SDK_WAIT_FOR_RPCS (or the replacement).
    execute(lambda: None, project="p", stack="s", values={})
    assert sdk_patched() == {"wait_for_rpcs": True, "stack_trace": True}


async def _later(value: int, delay: float) -> int:
    await asyncio.sleep(delay)
    return value


def _chain() -> None:
    # Outputs that only exist once others resolve: the wait must pick them up too.
    first = pulumi.Output.from_input(_later(1, 0.05))
    nested = first.apply(lambda v: pulumi.Output.from_input(_later(v + 1, 0.05)).apply(
        lambda w: pulumi.Output.from_input(_later(w * 10, 0.01))))
    pulumi.export("nested", nested)
    pulumi.export("many", pulumi.Output.all(*[pulumi.Output.from_input(_later(i, 0.001 * i))
                                               for i in range(200)]).apply(sum))


def test_outputs_made_while_the_run_waits_are_awaited():
    run = execute(_chain, project="p", stack="s", values={})
    assert run.outputs == {"nested": 20, "many": sum(range(200))}


def _fails_late() -> None:
    def boom(_):
        raise pulumi.RunError("late failure")

    pulumi.export("slow", pulumi.Output.from_input(_later(1, 0.3)))
    pulumi.Output.from_input(_later(2, 0.05)).apply(boom)


def test_a_failure_among_pending_outputs_is_raised():
    with pytest.raises(pulumi.RunError, match="late failure"):
        execute(_fails_late, project="p", stack="s", values={})


# --- the plan cache ------------------------------------------------------------------------

def test_a_second_plan_of_the_same_inputs_is_a_copy_of_the_first(project, tmp_path):
    cache = PlanCache(tmp_path / "plans")
    with plans_cached(cache):
        first = plan_stack(project, "dev")
        first.resources.clear()  # callers may change what they get
        second = plan_stack(project, "dev")
    assert (cache.misses, cache.hits) == (1, 1)
    assert second.resources and second is not first
    with plans_cached(None):
        fresh = plan_stack(project, "dev")
    assert second.as_json() == fresh.as_json()
    assert second.messages == fresh.messages and second.config == fresh.config


def test_every_input_of_a_plan_is_in_its_key(project):
    sv = project.phased_values("prod")

    def key(**changes):
        args = dict(project=project, stack="prod", values=sv.values,
                    secret_keys=sv.secret_keys, references=None, preview=False)
        return PlanCache.key(**{**args, **changes})

    base = key()
    assert key() == base
    changed = [key(stack="prod-us-west-2"),
               key(values={**sv.values, "sofacover:phase": "2"}),
               key(secret_keys=sv.secret_keys | {"sofacover:x"}),
               key(references={"organization/sofacover/prod": {"region": "us-east-1"}}),
               key(preview=True)]
    assert base not in changed and len(set(changed)) == len(changed)


@pytest.mark.fresh_plans
def test_a_copy_of_the_project_with_the_phase_in_its_file_is_the_same_plan(project, tmp_path,
                                                                          dev_phases):
    """The key leaves out where the project sits and takes the phase from the values: a
    copy elsewhere with `phase: 2` in the stack file plans exactly as `--phase 2` here
    (the session's plan of dev at phase 2, against the copy's, planned afresh)."""
    copy = Project(copy_project(tmp_path))
    set_config(copy.root, "dev", phase=2)

    def key(project: Project, sv) -> str:
        return PlanCache.key(project, "dev", sv.values, sv.secret_keys, None, False)

    here, there = project.phased_values("dev", 2), copy.phased_values("dev")
    assert key(project, here) == key(copy, there)
    assert dev_phases[2].as_json() == plan_stack(copy, "dev").as_json()
    # and a copy whose program differs is another key
    (tmp_path / "__main__.py").write_text((ROOT / "__main__.py").read_text() + "\n# edited\n")
    assert key(copy, there) != key(project, here)


def test_workers_sharing_a_folder_plan_once(tmp_path):
    calls = []

    def make():
        calls.append(1)
        return {"plan": len(calls)}

    one, two = PlanCache(tmp_path), PlanCache(tmp_path)  # two xdist workers, one run
    assert one.get_or_plan("k", make) == two.get_or_plan("k", make) == {"plan": 1}
    assert len(calls) == 1 and (two.hits, two.misses) == (1, 0)
    assert not list(tmp_path.glob("*.partial"))


def test_a_plan_that_fails_is_not_kept(tmp_path):
    cache = PlanCache(tmp_path)

    def fail():
        raise RuntimeError("program failed")

    with pytest.raises(RuntimeError):
        cache.get_or_plan("k", fail)
    assert cache.get_or_plan("k", lambda: "planned") == "planned"
    assert pickle.loads((tmp_path / "k.pickle").read_bytes()) == "planned"


def test_the_session_caches_plans():
    assert isinstance(engine._plan_cache, PlanCache)


@pytest.mark.fresh_plans
def test_a_test_marked_fresh_plans_runs_the_program():
    assert engine._plan_cache is None


def test_a_test_that_monkeypatches_runs_the_program(monkeypatch):
    assert engine._plan_cache is None


# --- the build cache (tests/conftest.py) ----------------------------------------------------

SETTING = {"value": 1}


def exporter(label: str):
    def fn() -> None:
        pulumi.export("label", label)
        pulumi.export("value", SETTING["value"])
    return fn


def test_a_repeated_build_is_a_copy(build):
    first = build(exporter("a"))
    first.outputs.clear()  # callers may change what they get
    again = build(exporter("a"))
    assert again.outputs == {"label": "a", "value": 1}
    assert build(exporter("b")).outputs["label"] == "b"  # other values, another build


def test_a_build_in_a_monkeypatching_test_runs_again(build, monkeypatch):
    # exporter("a") was built (and kept) by the test above; the patch must show.
    monkeypatch.setitem(SETTING, "value", 2)
    assert build(exporter("a")).outputs["value"] == 2


def test_a_closure_over_an_identity_is_never_kept():
    from tests.conftest import _build_key

    def over(obj):
        return lambda: obj

    assert _build_key(over({"a": 1}), "us-east-1") is not None
    assert _build_key(over(object()), "us-east-1") is None
    assert _build_key(over(lambda: None), "us-east-1") is None
