"""The in-process engine: run `__main__.py` for one stack under recording mocks.

This is the code path `pulumi up` runs (the program, its config loading, its components);
only the resource monitor is replaced. The monitor records every registration with its
options, so the plan can show protect, ignore_changes and the rest as the engine would see
them, and masks secret inputs before anything is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import hashlib
import inspect
import logging
import runpy
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks as pmocks
from pulumi.runtime import resource as presource
from pulumi.runtime import rpc
from pulumi.runtime import settings as psettings
from pulumi.runtime import stack as pstack
from pulumi.runtime.config import set_all_config
from pulumi.runtime.proto import source_pb2
from pulumi.runtime.stack import run_in_stack
from pulumi.runtime.sync_await import _sync_await

from config import StackConfig, parse_stack_config
from planner.mocks import SECRET_MASK, PlanMocks
from planner.plan_cache import PlanCache
from planner.project import Project, StackValues

ORGANIZATION = "organization"  # what the Pulumi CLI uses with a self-managed backend


def qualified_stack(project: str, stack: str) -> str:
    """The name a StackReference to `stack` resolves: `organization/project/stack`."""
    return f"{ORGANIZATION}/{project}/{stack}"


ROOT_STACK_TYPE = "pulumi:pulumi:Stack"


# --- Two SDK costs an in-process run need not pay -------------------------------------------
# Measured with cProfile on the prod plan and on component builds (docs/benchmarks.md, "Test
# time"): together about 40% of a run's CPU, for nothing the plan reads.

async def _wait_for_rpcs(await_all_outstanding_tasks: bool = True) -> None:
    """pulumi.runtime.stack.wait_for_rpcs (pulumi 3.272.0) with one change: the outstanding
    outputs are awaited with one callback each (`asyncio.as_completed`), not with
    `asyncio.wait(FIRST_COMPLETED)` over every pending output after each completion, which
    adds and removes a callback on every pending task each time: quadratic in the outputs
    (python/cpython#74741, "asyncio.wait very slow with FIRST_COMPLETED"); a third of a
    component build's CPU. The same outputs are awaited, the first failure in completion
    order is raised, and outputs created meanwhile are picked up on the next round."""
    rpc_manager = psettings._get_rpc_manager()
    while True:
        while len(rpc_manager.rpcs) > 0:  # as the SDK: pump, then await each RPC in turn
            await asyncio.sleep(0)
            try:
                await rpc_manager.rpcs.pop()
            except Exception as exn:
                if rpc_manager.unhandled_exception is not None:
                    cause = rpc_manager.unhandled_exception.with_traceback(
                        rpc_manager.exception_traceback)
                    raise exn from cause
                raise
        if rpc_manager.unhandled_exception is not None:
            raise rpc_manager.unhandled_exception.with_traceback(
                rpc_manager.exception_traceback)
        if await_all_outstanding_tasks:
            while True:
                with psettings.SETTINGS.lock:
                    if not psettings.SETTINGS.outputs:
                        break
                    pending = list(psettings.SETTINGS.outputs)
                    psettings.SETTINGS.outputs.clear()
                for task in asyncio.as_completed(pending):
                    await task
        if len(rpc_manager.rpcs) == 0:
            break


# The SDK function replaced above, by the SHA-256 of its source: another SDK version keeps
# its own (slower, still correct) function until someone compares the two again.
_SDK_WAIT_FOR_RPCS = "c0f9027f85ad0925"


def _no_stack_trace() -> Any:
    """Stands in for pulumi.runtime.resource._get_stack_trace, which walks the whole Python
    stack and builds a file URI for every frame of every registration (about 15% of a
    build's CPU under pytest) so the engine can point at the line that created a resource.
    The recording monitor keeps no source positions, so it gets an empty trace."""
    return source_pb2.StackTrace()


_sdk_patched: list[bool] = []


def _patch_sdk() -> None:
    """Install the two replacements above, once per process (only the offline engine and
    the tests run the SDK in this process; neither talks to a real engine)."""
    if _sdk_patched:
        return
    _sdk_patched.append(True)
    presource._get_stack_trace = _no_stack_trace
    try:
        source = inspect.getsource(pstack.wait_for_rpcs)
    except (OSError, TypeError):
        return
    if hashlib.sha256(source.encode()).hexdigest()[:16] == _SDK_WAIT_FOR_RPCS:
        pstack.wait_for_rpcs = _wait_for_rpcs


def sdk_patched() -> dict[str, bool]:
    """Which replacements are in force (for the tests and the benchmark)."""
    return {"wait_for_rpcs": pstack.wait_for_rpcs is _wait_for_rpcs,
            "stack_trace": presource._get_stack_trace is _no_stack_trace}


@dataclass
class PlannedResource:
    urn: str
    type: str
    name: str
    stack: str
    region: str | None
    parent: str | None
    custom: bool
    provider: str | None
    inputs: dict[str, Any]
    options: dict[str, Any]
    read: bool = False
    id: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    """What the provider returned (the mocks' answer): autonames, ARNs, endpoints."""

    def as_json(self) -> dict[str, Any]:
        return {
            "urn": self.urn, "type": self.type, "name": self.name, "stack": self.stack,
            "region": self.region, "parent": self.parent, "custom": self.custom,
            "provider": self.provider, "read": self.read, "inputs": self.inputs,
            "options": self.options, "outputs": self.outputs,
        }


@dataclass
class StackPlan:
    stack: str
    project: str
    environment: str
    role: str
    phase: int
    region: str | None
    resources: list[PlannedResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    config: StackConfig | None = None
    """The validated stack config the program ran with (for the preflight's rules)."""

    @property
    def qualified(self) -> str:
        return qualified_stack(self.project, self.stack)

    def as_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack, "environment": self.environment, "role": self.role,
            "phase": self.phase, "region": self.region, "outputs": self.outputs,
            "resources": [r.as_json() for r in self.resources],
        }


def mask(value: Any) -> Any:
    """Plain data from a serialized property value, with secrets and unknowns masked."""
    if isinstance(value, dict):
        sig = value.get(rpc._special_sig_key)
        if sig == rpc._special_secret_sig:
            return SECRET_MASK
        if sig == rpc._special_resource_sig:
            return value.get("urn")
        if sig in (rpc._special_asset_sig, rpc._special_archive_sig):
            return {k: v for k, v in value.items() if k != rpc._special_sig_key}
        # Sorted: protobuf Structs do not keep key order, and the plan must read the same on
        # every run.
        return {k: mask(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [mask(v) for v in value]
    if value == rpc.UNKNOWN:
        return "[unknown]"
    if isinstance(value, float) and value.is_integer():
        return int(value)  # protobuf Structs carry every number as a double
    return value


class RecordingMonitor(pmocks.MockMonitor):
    """A MockMonitor that keeps every registration, options included."""

    def __init__(self, mocks: PlanMocks, stack: str):
        super().__init__(mocks)
        self.stack = stack
        self.planned: list[PlannedResource] = []
        self.provider_regions: dict[str, str] = {}
        # Loops handed to the SDK's worker threads, how many calls each is in, and whether
        # the run is over. Worker threads of a failed run can still be calling in while
        # the run closes its loops, so every use goes through one lock.
        self.loops: set[asyncio.AbstractEventLoop] = set()
        self._busy: dict[asyncio.AbstractEventLoop, int] = {}
        self._closed = False
        self._lock = threading.Condition()
        self._urns: set[str] = set()
        mocks._region_of = self.region_of

    @contextlib.contextmanager
    def _call(self) -> Iterator[None]:
        # The SDK calls the monitor from worker threads, and MockMonitor gives each thread an
        # event loop that nobody closes (Python then complains at exit). Hand out loops we
        # own instead, and close them when the run is over: idle ones at once, busy ones
        # when their call returns.
        try:
            loop = asyncio.get_event_loop()
        except RuntimeError:
            loop = None
        if loop is None or loop.is_closed():
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
        with self._lock:
            self.loops.add(loop)
            self._busy[loop] = self._busy.get(loop, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._busy[loop] -= 1
                if not self._busy[loop]:
                    del self._busy[loop]
                    if self._closed:
                        self._close(loop)
                self._lock.notify_all()

    def _close(self, loop: asyncio.AbstractEventLoop) -> None:
        # Under self._lock, for a loop no call is using.
        if not loop.is_running():
            loop.close()
        self.loops.discard(loop)

    def close_loops(self, wait: float = 5.0) -> None:
        """End the run: wait (a little) for calls still in flight, close every idle loop.

        A straggler still in a call after `wait` closes its own loop when it returns.
        """
        with self._lock:
            self._closed = True
            self._lock.wait_for(lambda: not self._busy, timeout=wait)
            for loop in list(self.loops):
                if loop not in self._busy:
                    self._close(loop)

    def Invoke(self, request):  # noqa: N802 - gRPC method name
        with self._call():
            return super().Invoke(request)

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """The URN as the engine builds it (pulumi/pulumi, pkg/resource/deploy/deployment.go
        generateURN and sdk/go/common/resource/urn.go NewURN): the parent's whole qualified
        type chain, then `$` and the type; a child of the root stack has no parent type.
        (The SDK's MockMonitor keeps only the parent's last type and adds the stack's.)"""
        if parent:
            qualified = parent.split("::")[2]
            if qualified != ROOT_STACK_TYPE:
                type_ = f"{qualified}${type_}"
        return "urn:pulumi:" + "::".join([pulumi.get_stack(), pulumi.get_project(), type_,
                                          name])

    def region_of(self, provider_ref: str | None) -> str | None:
        # A provider reference is "<provider urn>::<provider id>".
        if not provider_ref:
            return None
        return self.provider_regions.get(provider_ref.rsplit("::", 1)[0])

    def _record(self, request: Any, urn: str, inputs: dict, read: bool) -> PlannedResource:
        provider = request.provider or None
        region = inputs.get("region") if isinstance(inputs.get("region"), str) else None
        if request.type.startswith("pulumi:providers:aws"):
            self.provider_regions[urn] = inputs.get("region")
        region = region or self.region_of(provider)
        options = {} if read else {
            "protect": bool(request.protect) if request.HasField("protect") else False,
            "ignore_changes": list(request.ignoreChanges),
            "delete_before_replace": bool(request.deleteBeforeReplace),
            "retain_on_delete": bool(request.retainOnDelete)
            if request.HasField("retainOnDelete") else False,
            "replace_on_changes": list(request.replaceOnChanges),
            "depends_on": sorted(set(request.dependencies)),
            "aliases": [json_format.MessageToDict(a) for a in request.aliases],
            "custom_timeouts": json_format.MessageToDict(request.customTimeouts)
            if request.HasField("customTimeouts") else {},
        }
        with self._lock:
            if urn in self._urns:
                # As the engine: "Duplicate resource URN '...'; try giving it a unique name".
                raise pulumi.RunError(f"Duplicate resource URN '{urn}'; try giving it a "
                                      "unique name")
            self._urns.add(urn)
        record = PlannedResource(
            urn=urn, type=request.type, name=request.name, stack=self.stack, region=region,
            parent=request.parent or None, custom=bool(getattr(request, "custom", True)),
            provider=provider, inputs=inputs, options=options, read=read)
        self.planned.append(record)
        return record

    def RegisterResource(self, request):  # noqa: N802 - gRPC method name
        with self._call():
            return self._register(request)

    def _register(self, request):  # noqa: ANN001, ANN202 - gRPC request and response
        if request.type == "pulumi:pulumi:Stack":
            return super().RegisterResource(request)
        urn = self.make_urn(request.parent, request.type, request.name)
        inputs = mask(json_format.MessageToDict(request.object))
        # The SDK calls the monitor from several threads: keep this call's own record.
        record = self._record(request, urn, inputs, read=False)
        response = super().RegisterResource(request)
        record.id = response.id or None
        record.outputs = mask(json_format.MessageToDict(response.object))
        return response

    def ReadResource(self, request):  # noqa: N802 - gRPC method name
        with self._call():
            return self._read(request)

    def _read(self, request):  # noqa: ANN001, ANN202 - gRPC request and response
        urn = self.make_urn(request.parent, request.type, request.name)
        inputs = mask(json_format.MessageToDict(request.properties))
        record = self._record(request, urn, inputs, read=True)
        response = super().ReadResource(request)
        record.id = request.id or None
        return response


def _resolve(value: Any) -> Any:
    """The plain value of a stack output, secrets masked, unknowns marked."""
    output = pulumi.Output.from_input(value)

    async def get() -> Any:
        if await output.is_secret():
            return SECRET_MASK
        if not await output.is_known():
            return "[unknown]"
        return await output.future()

    return _plain(_sync_await(get()))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, pulumi.Output):
        return _resolve(value)
    return value


@dataclass
class Execution:
    """What one run of a program registered and exported."""

    resources: list[PlannedResource]
    outputs: dict[str, Any]
    messages: list[str]


# A run allocates hundreds of thousands of short-lived objects (the SDK's tasks, futures and
# Outputs, about 28 tasks per resource), so Python's cyclic collector, at its default of a
# young collection every 700 allocations, runs thousands of times for little: the prod
# environment's phase-3 plan spent 7.5 s of CPU with the defaults and 5.2 s with a young
# collection every 50,000 (bench: the same plan three times in one warm process, best of
# three; peak memory 350 -> 440 MB). A run's cyclic garbage is under 200,000 objects, and
# each young collection walks every young object still alive, so fewer, larger ones walk
# less: the prod stack's phase-3 plan, 20 times in one warm process, 1.50 s of CPU a plan
# (0.19 s of it collecting) at 50,000 and 1.32 s (0.10 s) at 1,000,000, peak memory 467 and
# 449 MB; `sofacover plan --env prod` alike (10.0 s, 339 MB both); the test run's
# collecting 11.8 -> 7.9 s of CPU (docs/benchmarks.md, "Test time"). Only when the
# collector runs changes, not what it frees (nothing in the plan waits on a finaliser), and
# the previous thresholds come back after the run.
GC_THRESHOLDS = (1_000_000, 50, 50)


@contextlib.contextmanager
def _collector_relaxed() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def execute(program: Callable[[], None], *, project: str, stack: str,
            values: dict[str, str], secret_keys: frozenset[str] = frozenset(),
            references: dict[str, dict[str, Any]] | None = None,
            preview: bool = False) -> Execution:
    """Run `program` as the Pulumi runtime would, under recording mocks.

    Used by the plan (with the real `__main__.py`) and by the tests (with a single
    component built inside the test). `values` is the flat stack config the engine would
    pass; `references` answers StackReferences by qualified stack name.
    """
    _patch_sdk()
    mocks = PlanMocks(stack, values.get("aws:region"), references)
    monitor = RecordingMonitor(mocks, stack)
    messages: list[str] = []
    roots: list[Any] = []

    def wrapped() -> None:
        # The root Stack lives in the context of run_in_stack's task; keep a handle.
        roots.append(psettings.get_root_resource())
        program()

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            psettings.configure(pmocks.MockSettings(
                monitor=monitor,
                monitor_features=set(monitor.GetDeploymentInfo(None).supportedFeatures),
                engine=pmocks.MockEngine(_ListLogger(messages)),
                project=project, stack=stack, dry_run=preview,
                organization=ORGANIZATION, callbacks=None,
                # The SDK's defaults for these are shared by every context: a run that
                # failed would leave its pending tasks for the next run to wait on forever.
                outputs=set(), lock=threading.Lock(),
            ))
            set_all_config(dict(values), sorted(secret_keys))
            _sync_await(run_in_stack(wrapped))
            outputs.update({k: _resolve(v) for k, v in sorted(roots[0].outputs.items())})
        finally:
            _cancel_pending(loop)
            monitor.close_loops()
            loop.close()
            asyncio.set_event_loop(None)

    outputs: dict[str, Any] = {}
    # A fresh context per run: the Pulumi runtime keeps its settings, config and root
    # stack in context variables, so runs one after another cannot leak into each other.
    with _collector_relaxed():
        contextvars.Context().run(run)
    default_region = values.get("aws:region")
    # In URN order: registration order depends on which output resolves first.
    monitor.planned.sort(key=lambda r: (r.urn, r.read))
    for res in monitor.planned:
        if res.region is None and res.type.startswith(("aws:", "pulumi:providers:aws")):
            res.region = default_region
    return Execution(monitor.planned, outputs, messages)


def plan_stack(project: Project, stack: str, *, phase: int | None = None,
               references: dict[str, dict[str, Any]] | None = None,
               preview: bool = False, cfg: StackConfig | None = None,
               secret_values: dict[str, str] | None = None) -> StackPlan:
    """Run the program (`__main__.py`) for `stack` and return what it would create.

    Config errors surface as config.ConfigError, before any resource is registered.
    `cfg`: the stack's config when the caller validated it already (the rollout does).
    `secret_values`: decrypted values for the stack's secret keys, as `pulumi up` hands
    them to the program (the plan alone has only placeholders).
    """
    sv = project.phased_values(stack, phase)
    if secret_values:
        unknown = sorted(set(secret_values) - sv.secret_keys)
        if unknown:
            raise ValueError(f"secret_values: {', '.join(unknown)} are not secrets of {stack}")
        sv = StackValues({**sv.values, **secret_values}, sv.secret_keys)
        cfg = None  # the values changed: validate them (formats included)
    if cfg is None:  # fail fast, before the runtime is touched
        cfg = parse_stack_config(stack, sv.values, sv.secret_keys)
    if str(project.root) not in sys.path:  # as the Python language host does
        sys.path.insert(0, str(project.root))

    def program() -> None:
        runpy.run_path(str(project.main), run_name="__main__")

    def run() -> StackPlan:
        done = execute(program, project=project.name, stack=stack, values=dict(sv.values),
                       secret_keys=sv.secret_keys, references=references, preview=preview)
        return StackPlan(stack=stack, project=project.name, environment=cfg.environment,
                         role=cfg.role, phase=cfg.phase, region=cfg.region,
                         resources=done.resources, outputs=done.outputs,
                         messages=done.messages, config=cfg)

    if _plan_cache is None:
        return run()
    key = _plan_cache.key(project, stack, sv.values, sv.secret_keys, references, preview)
    return _plan_cache.get_or_plan(key, run)


_plan_cache: PlanCache | None = None


@contextlib.contextmanager
def plans_cached(cache: PlanCache | None) -> Iterator[None]:
    """Within the block, plan_stack answers a plan of the same inputs from `cache`
    (planner/plan_cache.py; the test session's); `None` turns caching off."""
    global _plan_cache
    before, _plan_cache = _plan_cache, cache
    try:
        yield
    finally:
        _plan_cache = before


def _cancel_pending(loop: asyncio.AbstractEventLoop) -> None:
    # A failed program leaves outputs pending; cancel them and let them unwind, as
    # asyncio.run does, instead of destroying them with the loop (which logs every one).
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


class _ListLogger(logging.Logger):
    """Keeps the program's pulumi.log messages for the plan's report."""

    def __init__(self, sink: list[str]):
        super().__init__("sofacover.plan", level=logging.INFO)
        self.sink = sink

    def _log(self, level, msg, args, *a, **k):  # noqa: ANN001 - logging.Logger signature
        self.sink.append(f"{logging.getLevelName(level).lower()}: {msg % args if args else msg}")
