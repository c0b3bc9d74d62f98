"""The in-process engine itself: isolation between runs."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading

import pulumi
import pytest

from planner.engine import RecordingMonitor, execute
from planner.mocks import PlanMocks
from tests.conftest import ROOT

# A program that fails while an output is still pending, then a good run in the same
# process. The SDK keeps pending tasks in a set it shares between contexts; the engine
# must give every run its own, or the second run waits for the first one's task forever.
SCRIPT = textwrap.dedent('''
    import asyncio
    import pulumi
    from planner.engine import execute

    async def slow():
        await asyncio.sleep(2)
        return 1

    def boom(_):
        raise RuntimeError("boom")

    def failing():
        pulumi.export("slow", pulumi.Output.from_input(slow()).apply(str))
        pulumi.export("bad", pulumi.Output.from_input(1).apply(boom))

    def good():
        pulumi.export("answer", pulumi.Output.from_input(41).apply(lambda v: v + 1))

    try:
        execute(failing, project="p", stack="a", values={})
    except RuntimeError as exc:
        assert str(exc) == "boom", exc
    else:
        raise AssertionError("the failing program did not fail")
    print(execute(good, project="p", stack="b", values={}).outputs["answer"])
''')


def test_a_failed_run_leaves_nothing_pending_for_the_next_run():
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "42"


def _fails_with_work_in_flight() -> None:
    import pulumi_aws as aws

    def boom(_):
        raise pulumi.RunError("boom")

    # Registrations and invokes still running in the SDK's worker threads when the
    # program fails: the engine closes the run while they call the monitor.
    for i in range(12):
        aws.ec2.Vpc(f"vpc{i}", cidr_block="10.0.0.0/16")
        aws.get_availability_zones_output(state="available").names.apply(
            boom if i == 2 else len)


def test_many_failing_runs_in_one_process_each_report_their_own_error():
    # Before the fix, close_loops iterated a set the worker threads were still adding to:
    # about half of these runs failed with "Set changed size during iteration" (or
    # "Cannot close a running event loop") instead of the program's own error.
    errors = []
    for i in range(30):
        with pytest.raises(Exception) as caught:
            execute(_fails_with_work_in_flight, project="p", stack=f"race{i}",
                    values={"aws:region": "us-east-1"})
        errors.append(str(caught.value))
    assert errors == ["boom"] * 30


def test_closing_a_run_leaves_a_busy_loop_to_its_call_and_closes_it_when_the_call_ends():
    monitor = RecordingMonitor(PlanMocks("s", "us-east-1"), "s")
    inside, release = threading.Event(), threading.Event()
    seen: list[asyncio.AbstractEventLoop] = []

    def straggler() -> None:
        with monitor._call():
            seen.append(asyncio.get_event_loop())
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=straggler)
    thread.start()
    assert inside.wait(5)
    with monitor._call():  # an idle loop of this thread, closed by close_loops
        idle = asyncio.get_event_loop()
    monitor.close_loops(wait=0.05)
    assert idle.is_closed()
    assert not seen[0].is_closed(), "a loop was closed under a call still using it"
    release.set()
    thread.join(5)
    assert seen[0].is_closed() and not monitor.loops
    asyncio.set_event_loop(None)


def test_urns_are_built_as_the_engine_builds_them():
    # pulumi/pulumi generateURN + NewURN: the parent's whole qualified type chain, `$`, the
    # type; nothing for a child of the root stack (whose type the engine leaves out).
    def program() -> None:
        outer = pulumi.ComponentResource("test:index:Outer", "outer")
        inner = pulumi.ComponentResource("test:index:Inner", "inner",
                                         opts=pulumi.ResourceOptions(parent=outer))
        pulumi.CustomResource("test:index:Leaf", "leaf", {},
                              opts=pulumi.ResourceOptions(parent=inner))
        pulumi.CustomResource("test:index:Top", "top", {})

    urns = {r.name: r.urn for r in execute(program, project="proj", stack="dev",
                                           values={}).resources}
    assert urns == {
        "outer": "urn:pulumi:dev::proj::test:index:Outer::outer",
        "inner": "urn:pulumi:dev::proj::test:index:Outer$test:index:Inner::inner",
        "leaf": "urn:pulumi:dev::proj::test:index:Outer$test:index:Inner$test:index:Leaf::leaf",
        "top": "urn:pulumi:dev::proj::test:index:Top::top",
    }


def test_a_run_relaxes_the_cyclic_collector_and_gives_the_thresholds_back():
    import gc

    from planner.engine import GC_THRESHOLDS

    seen = []

    def program() -> None:
        seen.append(gc.get_threshold())
        raise RuntimeError("the program failed")

    session = gc.get_threshold()  # tests/conftest.py relaxes it for the whole run too
    gc.set_threshold(700, 10, 10)  # Python's defaults
    try:
        with pytest.raises(Exception, match="the program failed"):
            execute(program, project="sofacover", stack="test", values={})
        assert seen == [GC_THRESHOLDS] and gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*session)
