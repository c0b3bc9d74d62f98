"""Shared fixtures: the recording mocks and the planned stacks.

Getting plans cheaply (the suite's time is mostly plans and component builds):
- Use the session fixtures below (`prod`, `prod_phase2`, `prod_phase3`, `dev`,
  `dev_phases`) when the committed stacks are what the test reads; never plan them again in
  a module fixture or at import time.
- Any other plan (`plan_stacks`, `plan_stack`, `sofacover plan` through CliRunner) is
  answered from the session's plan cache (planner/plan_cache.py) when a plan of the same
  inputs was made before in this run, by this process or another pytest-xdist worker. Each
  caller gets its own copy, so changing it is safe.
- A test that needs the program to really run again (determinism, the engine itself) is
  marked `@pytest.mark.fresh_plans`. A test that takes `monkeypatch` gets fresh plans
  automatically, since what it patches may change the plan.
- `build(fn)` answers a build of the same function over the same values from the
  process's earlier build (a copy), unless the test takes `monkeypatch` or is marked
  `fresh_plans`; a closure over an object that prints as an identity is always built.
- The suite runs in parallel (`-n 2`, pyproject.toml): a real engine takes its own free port
  (tests/engines.py free_port) and its own temporary directory.

The recording Mocks live in planner/ (planner.mocks.PlanMocks with planner.engine's
RecordingMonitor) because the offline plan and the tests must answer exactly alike; this
file wraps them as fixtures rather than keeping a second copy.
"""

# ruff: noqa: E402 - the bytecode switch below must come before the project's imports

from __future__ import annotations

import sys

# Bytecode caches (git-ignored __pycache__) even where PYTHONDONTWRITEBYTECODE is set, as on
# these machines: a later run neither recompiles the project's modules nor rewrites the test
# modules' asserts again (pytest keeps its rewritten modules only when bytecode may be
# written): collection 10.8 -> 7.3 s of CPU per worker (docs/benchmarks.md, "Test time").
sys.dont_write_bytecode = False

import gc

# Collection is mostly importing the provider SDKs (pulumi_cloudflare alone is ~4 s): millions
# of long-lived objects and next to no garbage, yet the cyclic collector would walk them
# hundreds of times on the way. Off until pytest_collection_finish freezes what is there.
gc.disable()

import contextlib
import os
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from config import seed
from planner.cli import plan_stacks
from planner.engine import (
    GC_THRESHOLDS,
    Execution,
    PlannedResource,
    StackPlan,
    execute,
    plans_cached,
)
from planner.plan_cache import PlanCache
from planner.project import Project

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_finish(session: pytest.Session) -> None:
    """The cyclic collector back on, as the engine runs it (planner/engine.py GC_THRESHOLDS),
    for the whole run, and the modules imported so far kept out of its full collections: a
    run's CPU 181 -> 170 s, and off during collection 6.2 -> 5.5 s of CPU per worker
    (docs/benchmarks.md, "Test time"). Only when it runs changes, not what it frees."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    gc.enable()


def pytest_sessionstart(session: pytest.Session) -> None:
    if session.config.pluginmanager.hasplugin("dsession"):
        gc.enable()  # pytest-xdist's controller: it collects nothing, its workers do


def pytest_sessionfinish(session: pytest.Session) -> None:
    gc.enable()  # a collection that failed never reached pytest_collection_finish


@pytest.fixture(scope="session", autouse=True)
def plan_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlanCache]:
    """The session's plan cache, shared through a folder by the xdist workers of a run."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "plans"
    cache = PlanCache(folder)
    with plans_cached(cache):
        yield cache


@pytest.fixture(autouse=True)
def _fresh_plans_when_asked(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("fresh_plans") or "monkeypatch" in \
            request.fixturenames:
        with plans_cached(None):
            yield
    else:
        yield


@pytest.fixture(scope="session")
def project() -> Project:
    return Project(ROOT)


@pytest.fixture(scope="session")
def prod(project: Project) -> dict[str, StackPlan]:
    """Every prod stack planned once, in rollout order, phase as committed (1)."""
    return {p.stack: p for p in plan_stacks(project, env="prod")}


@pytest.fixture(scope="session")
def prod_phase3(project: Project) -> dict[str, StackPlan]:
    return {p.stack: p for p in plan_stacks(project, env="prod", phase=3)}


@pytest.fixture(scope="session")
def prod_phase2(project: Project) -> dict[str, StackPlan]:
    """Every prod stack planned as in phase 2 (EKS, the Worker), once per session."""
    return {p.stack: p for p in plan_stacks(project, env="prod", phase=2)}


@pytest.fixture(scope="session")
def dev(project: Project) -> StackPlan:
    return plan_stacks(project, stack="dev")[0]


@pytest.fixture(scope="session")
def dev_phases(project: Project, dev: StackPlan) -> dict[int, StackPlan]:
    """dev planned at every phase (1 is the committed one)."""
    return {1: dev, **{n: plan_stacks(project, stack="dev", phase=n)[0] for n in (2, 3)}}


Build = Callable[..., Execution]


_builds: dict[str, bytes] = {}


def _build_key(fn: Callable[[], None], *options: object) -> str | None:
    """What a build depends on: the function's code and the values it closes over, when
    every one of them prints as its value. None (never cached) when one prints as an
    identity (`<function ... at 0x...>`, a provider object) or a cell is empty."""
    try:
        cells = [cell.cell_contents for cell in fn.__closure__ or ()]
    except ValueError:
        return None
    code = fn.__code__
    text = repr((code.co_filename, code.co_firstlineno, fn.__qualname__, cells,
                 fn.__defaults__, fn.__kwdefaults__, options))
    return None if " at 0x" in text or " object at " in text else text


@pytest.fixture
def build(request: pytest.FixtureRequest) -> Build:
    """Run a function that builds components, under the recording mocks.

    `build(fn, region="eu-west-1", preview=False)` returns the Execution: every
    registration (type, name, inputs, provider, parent, options) and the outputs.
    A build of the same function over the same values (`build(compute())` in ten tests) is
    a copy of the first one of this process, except in tests that take `monkeypatch` or are
    marked `fresh_plans`: what they patch may change the build.
    """
    cacheable = not (request.node.get_closest_marker("fresh_plans")
                     or "monkeypatch" in request.fixturenames)

    def run(fn: Callable[[], None], *, region: str = seed.PRIMARY_REGION,
            preview: bool = False, stack: str = "test") -> Execution:
        key = _build_key(fn, region, preview, stack) if cacheable else None
        if key is not None and key in _builds:
            return pickle.loads(_builds[key])
        done = execute(fn, project="sofacover", stack=stack,
                       values={"aws:region": region}, preview=preview)
        if key is not None:
            with contextlib.suppress(pickle.PicklingError, TypeError, AttributeError):
                _builds[key] = pickle.dumps(done, protocol=pickle.HIGHEST_PROTOCOL)
        return done

    return run


def of_type(resources: list[PlannedResource], token: str) -> list[PlannedResource]:
    return [r for r in resources if r.type == token]


def named(resources: list[PlannedResource], name: str) -> PlannedResource:
    matches = [r for r in resources if r.name == name]
    assert len(matches) == 1, f"{name}: {len(matches)} resources"
    return matches[0]


def preflight_of(resources: list[PlannedResource], *rules: str, config=None,
                 stack: str = "test", today=None) -> list:
    """The findings of the named preflight rules over resources built in a test
    (`build(fn).resources`), as if they were one stack's plan."""
    from planner import preflight

    plan = StackPlan(stack=stack, project="sofacover", environment="prod", role="primary",
                     phase=1, region=seed.PRIMARY_REGION, resources=list(resources),
                     config=config)
    return preflight.check([plan], only=rules or None, today=today)
