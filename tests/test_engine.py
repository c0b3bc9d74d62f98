"""The in-process engine itself: isolation between runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap

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
