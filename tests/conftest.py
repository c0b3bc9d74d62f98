"""Shared fixtures: the recording mocks and the planned stacks.

The recording Mocks live in planner/ (planner.mocks.PlanMocks with planner.engine's
RecordingMonitor) because the offline plan and the tests must answer exactly alike; this
file wraps them as fixtures rather than keeping a second copy.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from config import seed
from planner.cli import plan_stacks
from planner.engine import Execution, PlannedResource, StackPlan, execute
from planner.project import Project

ROOT = Path(__file__).resolve().parents[1]


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


@pytest.fixture
def build() -> Build:
    """Run a function that builds components, under the recording mocks.

    `build(fn, region="eu-west-1", preview=False)` returns the Execution: every
    registration (type, name, inputs, provider, parent, options) and the outputs.
    """

    def run(fn: Callable[[], None], *, region: str = seed.PRIMARY_REGION,
            preview: bool = False, stack: str = "test") -> Execution:
        return execute(fn, project="sofacover", stack=stack,
                       values={"aws:region": region}, preview=preview)

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
