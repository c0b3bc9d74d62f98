"""Plans kept by everything that goes into them, for a process that plans the same stack many
times: the test session (tests/conftest.py turns it on), never `sofacover plan`.

A stack's plan is a function of the program and its inputs: the project (its name and the
`__main__.py` it runs), the stack, the flat config values with their secret keys (a phase
given on the command line is already in them: `sofacover:phase`), the outputs of the
stacks it references, and preview mode. Where the project's files sit is not an input:
the program reads its config from the values and imports the components installed with
it, so a copy of the project in a temporary folder (as the failover and failback tests
make) with the same files plans the same (tests/test_plan_cache.py checks it).

The plan is deterministic for the same inputs
(tests/test_plan_cli.py::test_two_plans_of_the_same_inputs_are_byte_identical, which compares
the session's plan with one made with the cache off), so a second plan of the same inputs can
be the first one, copied.
Plans are kept pickled: every caller gets its own objects and may change them.

With a folder, processes share it (the pytest-xdist workers of one run): the first to need a
plan computes it under a lock on its key and the others read the file, so no plan is
computed twice in a run. Nothing outlives the run's temporary directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from planner.engine import StackPlan
    from planner.project import Project


class PlanCache:
    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self._memory: dict[str, bytes] = {}
        self.hits = 0
        self.misses = 0
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(project: Project, stack: str, values: dict[str, str],
            secret_keys: frozenset[str], references: dict[str, dict[str, Any]] | None,
            preview: bool) -> str:
        inputs = {
            "project": project.name,
            "main": hashlib.sha256(project.main.read_bytes()).hexdigest(),
            "stack": stack, "values": values,
            "secret_keys": sorted(secret_keys), "references": references or {},
            "preview": preview,
        }
        text = json.dumps(inputs, sort_keys=True, default=repr)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def get_or_plan(self, key: str, make: Callable[[], StackPlan]) -> StackPlan:
        """The plan kept under `key`, or `make()`'s (kept for next time); a fresh copy
        either way. A plan that fails is not kept: the next caller runs it again."""
        data = self._memory.get(key)
        if data is None and self.folder is not None:
            data = self._shared(key, make)
        elif data is None:
            self.misses += 1
            data = pickle.dumps(make(), protocol=pickle.HIGHEST_PROTOCOL)
        else:
            self.hits += 1
        self._memory[key] = data
        return pickle.loads(data)

    def _shared(self, key: str, make: Callable[[], StackPlan]) -> bytes:
        assert self.folder is not None
        path = self.folder / f"{key}.pickle"
        with _locked(self.folder / f"{key}.lock"):
            if path.exists():
                self.hits += 1
                return path.read_bytes()
            self.misses += 1
            data = pickle.dumps(make(), protocol=pickle.HIGHEST_PROTOCOL)
            partial = path.with_suffix(f".{os.getpid()}.partial")
            partial.write_bytes(data)
            partial.replace(path)  # readers never see half a file
            return data


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
