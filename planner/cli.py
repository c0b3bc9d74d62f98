"""`sofacover plan`: print what `pulumi preview` would create, with no CLI, cloud or network."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from config import ConfigError
from planner import diff as plan_diff
from planner import policy as plan_policy
from planner import preflight, tfplan
from planner.engine import StackPlan, plan_stack, qualified_stack
from planner.project import Project, ProjectError, back_references, references
from planner.render import print_findings, print_plans, program_warnings, write_json
from policy.exceptions import PolicyExceptionError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="SofaCover infrastructure tools.")
DEFAULT_STACK = "prod"
PIPE_WIDTH = 100_000  # wide enough that rich never wraps a line of the plan
# What a failback source's outputs look like to the stand-in plan (plan_stacks).
FAILBACK_STAND_IN = {"dbArn": "[unknown]"}


def _default_project() -> Path:
    cwd = Path.cwd()
    for folder in (cwd, *cwd.parents):
        if (folder / "Pulumi.yaml").exists():
            return folder
    return Path(__file__).resolve().parents[1]


def plan_stacks(project: Project, *, stack: str | None = None, env: str | None = None,
                phase: int | None = None) -> list[StackPlan]:
    """Plan one stack (after the stacks it reads) or every stack of an environment.

    Returns the plans to show: the one stack, or the environment in rollout order.
    StackReferences resolve to the outputs planned for the earlier stacks.
    """
    if env is None:
        stack = stack or DEFAULT_STACK
        env = project.stack_config(stack, phase).environment
    rollout = project.rollout(env, phase)
    wanted = [c.stack for c in rollout] if stack is None else [stack]
    needed: set[str] = set()
    pending = list(wanted)
    by_name = {c.stack: c for c in rollout}
    while pending:  # the stacks wanted, and every stack they read, transitively
        name = pending.pop()
        if name not in needed:
            needed.add(name)
            pending += [ref for ref, _ in references(by_name[name])]
    done: dict[str, dict] = {}
    plans = []
    back = back_references(rollout)
    for cfg in rollout:
        if cfg.stack not in needed:
            continue
        for target in back.get(cfg.stack, []):
            # Failback: the primary reads its promoted secondary, deployed after it (the
            # rollout's one exception), which itself reads the primary's network. That
            # secondary is planned first against a plan of this stack whose reference to it
            # is a stand-in; the stand-in plan is dropped, and the secondary is planned
            # again in its place in the rollout.
            stand_in = plan_stack(project, cfg.stack, phase=phase, cfg=cfg, references={
                **done, qualified_stack(project.name, target): FAILBACK_STAND_IN})
            ahead = plan_stack(project, target, phase=phase, cfg=by_name[target],
                               references={**done, stand_in.qualified: stand_in.outputs})
            done[ahead.qualified] = ahead.outputs
        plan = plan_stack(project, cfg.stack, phase=phase, references=done, cfg=cfg)
        done[plan.qualified] = plan.outputs
        if cfg.stack in wanted:
            plans.append(plan)
    return plans


def _stderr() -> Console:
    """Errors: literal, and unwrapped when they go to a pipe or a file (one problem a line,
    so a script or grep sees each whole)."""
    if sys.stderr.isatty():
        return Console(stderr=True, emoji=False)
    return Console(stderr=True, emoji=False, width=PIPE_WIDTH, color_system=None,
                   highlight=False)


@contextlib.contextmanager
def _stdout() -> Iterator[Console]:
    """The console for the plan. Values print literally (no emoji codes: an ARN's `:secret:`
    stays text). To a terminal it wraps to the window; to a pipe or a file nothing wraps and
    no line ends in padding, so each resource and each finding stays on its own line."""
    if sys.stdout.isatty():
        yield Console(emoji=False)
        return
    buffer = io.StringIO()
    yield Console(file=buffer, width=PIPE_WIDTH, emoji=False, color_system=None,
                  highlight=False)
    sys.stdout.write("".join(line.rstrip() + "\n"
                             for line in buffer.getvalue().splitlines()))


@contextlib.contextmanager
def _config_errors(err: Console) -> Iterator[None]:
    """A bad stack or project file: one line per problem and exit 2, never a traceback."""
    try:
        yield
    except ConfigError as exc:
        err.print("[red]error: invalid stack configuration[/]")
        for problem in exc.problems:
            err.print(f"  {problem}", markup=False)
        raise typer.Exit(2) from None
    except ProjectError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(2) from None


@app.command()
def plan(
    stack: Annotated[str | None, typer.Option(
        "--stack", "-s", help="Stack to plan (default: prod).")] = None,
    env: Annotated[str | None, typer.Option(
        "--env", "-e", help="Plan every stack of this environment, in rollout order.")] = None,
    phase: Annotated[int | None, typer.Option(
        "--phase", "-p", min=1, max=3,
        help="Plan as if sofacover:phase were N (1, 2 or 3).")] = None,
    json_file: Annotated[Path | None, typer.Option(
        "--json", help="Also write the full plan as JSON to FILE.")] = None,
    tfplan_file: Annotated[Path | None, typer.Option(
        "--tfplan", help="Also write the plan in Terraform's plan JSON shape to FILE, for "
        "checkov, trivy or conftest.")] = None,
    project_dir: Annotated[Path | None, typer.Option(
        "--project", help="Pulumi project directory (default: the one holding Pulumi.yaml).",
        exists=True, file_okay=False)] = None,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Fail (exit 1) on warnings too: the program's and the preflight's.")
    ] = False,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", metavar="YYYY-MM-DD",
        help="Judge dated offerings (versions, support ends) as of this day, not today.")
    ] = None,
    diff_from: Annotated[Path | None, typer.Option(
        "--diff-from", metavar="FILE",
        help="Also show what the plan changes against FILE: an earlier `--json` plan or "
        "`pulumi stack export` output (create, update, replace, delete per resource).")
    ] = None,
    allow_destroy: Annotated[bool, typer.Option(
        "--allow-destroy",
        help="With --diff-from: do not refuse (exit 3) a delete or replace of a resource "
        "that holds data.")] = False,
) -> None:
    """Print what `pulumi preview` would create for a stack or a whole environment."""
    err = _stderr()
    if stack is not None and env is not None:
        err.print("error: --stack and --env are exclusive: plan one stack, or every stack "
                  "of an environment")
        raise typer.Exit(2)
    today = None
    if as_of is not None:
        try:
            today = dt.date.fromisoformat(as_of)
        except ValueError:
            err.print(f"error: --as-of {as_of!r} is not a date; use YYYY-MM-DD", markup=False)
            raise typer.Exit(2) from None
    if tfplan_file is not None and not tfplan_file.parent.is_dir():
        err.print(f"error: --tfplan {tfplan_file}: folder {tfplan_file.parent} does not exist")
        raise typer.Exit(2)
    if json_file is not None and not json_file.parent.is_dir():
        err.print(f"error: --json {json_file}: folder {json_file.parent} does not exist")
        raise typer.Exit(2)
    old_state = None
    if diff_from is not None:
        try:
            old_state = plan_diff.load(diff_from)
        except plan_diff.DiffFileError as exc:
            err.print(f"error: --diff-from {exc}", markup=False, soft_wrap=True)
            raise typer.Exit(2) from None
    with _config_errors(err):
        project = Project(project_dir or _default_project())
        try:
            plans = plan_stacks(project, stack=stack, env=env, phase=phase)
        except (ConfigError, ProjectError):
            raise
        except Exception as exc:  # noqa: BLE001 - the program failed: say why, not where
            err.print(f"[red]error: the program failed while planning:[/] {exc}")
            raise typer.Exit(1) from None
    findings = preflight.check(plans, today=today)
    try:
        policy_report = plan_policy.check(plans)
    except PolicyExceptionError as exc:
        for line in str(exc).splitlines():
            err.print(f"error: policy/{line}", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    diffs = None if old_state is None else plan_diff.diff(plans, old_state)
    with _stdout() as out:
        print_plans(plans, out)
        if diffs is not None:
            for line in plan_diff.lines(diffs, diff_from):
                out.print(line, markup=False, highlight=False, soft_wrap=True)
        print_findings(findings, out, plans)
        plan_policy.print_report(policy_report, out)
    if json_file is not None:
        write_json(plans, json_file, findings)
        doc = json.loads(json_file.read_text())  # the policy findings join the plan's JSON
        doc["policy"] = policy_report.as_json()
        json_file.write_text(json.dumps(doc, indent=2) + "\n")
        if diffs is not None:  # the diff joins the plan's JSON under "diff"
            doc = json.loads(json_file.read_text())
            doc["diff"] = {"from": str(diff_from), "stacks": [d.as_json() for d in diffs]}
            json_file.write_text(json.dumps(doc, indent=2) + "\n")
        _stderr().print(f"plan written to {json_file}")
    if tfplan_file is not None:
        unmapped = tfplan.write(plans, tfplan_file)
        _stderr().print(f"Terraform-shaped plan written to {tfplan_file}"
                        + (f" (left out, no Terraform type known: {', '.join(unmapped)})"
                           if unmapped else ""), markup=False, soft_wrap=True)
    if diffs is not None and not allow_destroy and plan_diff.destroying(diffs):
        n = len(plan_diff.destroying(diffs))
        err.print(f"error: the diff deletes or replaces {n} resource{'s' * (n != 1)} that "
                  "hold data (DESTROYS DATA above); rerun with --allow-destroy if that is "
                  "intended", markup=False, soft_wrap=True)
        raise typer.Exit(plan_diff.EXIT_DESTROYS_DATA)
    if any(f.severity == "error" for f in findings) or policy_report.mandatory:
        raise typer.Exit(1)
    if strict and (findings or program_warnings(plans) or policy_report.advisory):
        err.print("error: --strict: the run has warnings (listed at the end of the plan)",
                  markup=False)
        raise typer.Exit(1)


@app.command("preflight-rules")
def preflight_rules() -> None:
    """Print every preflight rule with its source, as Markdown (docs/preflight.md)."""
    sys.stdout.write(preflight.rules_markdown())


@app.command("policy-rules")
def policy_rules() -> None:
    """Print every policy-pack rule with its level and source, as Markdown (docs/policy.md)."""
    sys.stdout.write(plan_policy.rules_markdown())


@app.command()
def report(
    stack: Annotated[str | None, typer.Option(
        "--stack", "-s", help="Report one serving stack (default: every serving stack of "
        "--env).")] = None,
    env: Annotated[str | None, typer.Option(
        "--env", "-e", help="Report every serving stack of this environment (default: prod).")
    ] = None,
    phase: Annotated[int | None, typer.Option(
        "--phase", "-p", min=1, max=3,
        help="As if sofacover:phase were N (1, 2 or 3).")] = None,
    load: Annotated[float, typer.Option(
        "--load", "-n", min=1.0, help="The load step, as a multiple of 1x (default 10).")
    ] = 10.0,
    timeline: Annotated[bool, typer.Option(
        "--timeline", help="Also print the timeline, one row per 15 s.")] = False,
    compare_phase: Annotated[int | None, typer.Option(
        "--compare-phase", min=1, max=3,
        help="Also cost the plan at phase M, to set against --phase.")] = None,
    out_dir: Annotated[Path, typer.Option(
        "--out", "-o", help="Folder for report.md, report.json and the pictures.",
        file_okay=True, dir_okay=True)] = Path("report"),
    project_dir: Annotated[Path | None, typer.Option(
        "--project", help="Pulumi project directory (default: the one holding Pulumi.yaml).",
        exists=True, file_okay=False)] = None,
) -> None:
    """Seconds until each serving stack has capacity for a step of N x load, against the
    seed's 2-minute KPI, and the setting that binds when it misses (planner/capacity.py);
    then writes report.md, report.json and pictures with cost, availability and the
    connection budget into --out (docs/report.md)."""
    from config import seed
    from planner import capacity
    from planner import report as report_files
    from planner.cost import PriceError

    err = _stderr()
    if stack is not None and env is not None:
        err.print("error: --stack and --env are exclusive: report one stack, or every "
                  "serving stack of an environment")
        raise typer.Exit(2)
    if (problem := report_files.check_out_dir(out_dir)) is not None:
        err.print(f"error: {problem}", markup=False)
        raise typer.Exit(2)
    with _config_errors(err):
        project = Project(project_dir or _default_project())
        if stack is not None:
            configs = [project.stack_config(stack, phase)]
        else:
            configs = project.rollout(env or DEFAULT_STACK, phase)
    serving = [c for c in configs if c.hosts_app and c.compute is not None]
    if not serving:
        which = stack or f"environment {env or DEFAULT_STACK}"
        err.print(f"error: {which} serves no traffic at phase {configs[0].phase} "
                  "(sofacover:regions.serving); nothing to report", markup=False)
        raise typer.Exit(2)
    kpi = seed.SCALE_OUT_KPI_S
    timing = capacity.Timing()
    out = Console(highlight=False, emoji=False)
    out.print(f"{load:g}x load step; KPI: capacity within {kpi} s (config/seed.py). "
              f"Assumed: {timing.assumptions()}", markup=False)
    results: dict[str, capacity.Result] = {}
    literals: dict[str, capacity.Result] = {}  # the report's files reuse both
    for cfg in serving:
        result = capacity.analyse_stack(cfg, load=load, timing=timing, kpi_s=kpi)
        results[cfg.stack] = result
        took = (f"{result.seconds} s" if result.seconds is not None
                else f"not within {timing.horizon_s} s")
        verdict = "PASS" if result.meets(kpi) else "MISS"
        out.print(f"{cfg.stack} (phase {cfg.phase}, {result.platform}): {took} to capacity: "
                  f"{verdict}", markup=False)
        for i, setting in enumerate(result.binding):
            out.print(f"  {'binds' if i == 0 else 'then'}: {setting}", markup=False)
        for note in result.notes:
            out.print(f"  note: {note}", markup=False)
        if result.platform == "kubernetes":  # what the project's HPA choices buy
            literal = capacity.analyse_seed_literal(cfg, load=load, timing=timing, kpi_s=kpi)
            literals[cfg.stack] = literal
            out.print("  the seed's literal HPA (60 s up window, CPU limit = request): "
                      + (f"{literal.seconds} s" if literal.seconds is not None
                         else f"not within {timing.horizon_s} s")
                      + (": PASS" if literal.meets(kpi) else ": MISS; binds: "
                         + "; then ".join(literal.binding)), markup=False)
        if timeline:
            unit = "CPU m" if result.platform == "kubernetes" else "instance-CPU %"
            out.print(f"  {'t':>5} {'load':>5} {'demand':>9} {'capacity':>9} {'ready':>6} "
                      f"{'total':>6} {'pending':>8} {'desired':>8} {'nodes':>6} "
                      f"{'launching':>10}   ({unit}; capacity = ready at the target)",
                      markup=False)
            for row in result.timeline:
                if row.t % 15 == 0 or row.t == result.seconds:
                    out.print(f"  {row.t:>5} {row.load:>5g} {row.demand:>9.0f} "
                              f"{row.capacity:>9.0f} {row.ready:>6} {row.total:>6} "
                              f"{row.pending:>8} {row.desired:>8} {row.nodes_ready:>6} "
                              f"{row.nodes_launching:>10}", markup=False)
    # The files: the plan of the same scope (and of --compare-phase), priced and composed.
    with _config_errors(err):
        try:
            scope_env = None if stack is not None else env or DEFAULT_STACK
            plans = plan_stacks(project, stack=stack, env=scope_env, phase=phase)
            compare = (plan_stacks(project, stack=stack, env=scope_env, phase=compare_phase)
                       if compare_phase is not None else None)
        except (ConfigError, ProjectError):
            raise
        except Exception as exc:  # noqa: BLE001 - the program failed: say why, not where
            err.print(f"error: the program failed while planning: {exc}", markup=False)
            raise typer.Exit(1) from None
    scope = f"stack {stack}" if stack is not None else f"environment {scope_env}"
    try:
        rep = report_files.build(plans, scope=scope, load=load, compare_plans=compare,
                                 analyse=lambda plan: results[plan.stack],
                                 analyse_literal=lambda plan: literals[plan.stack])
    except PriceError as exc:  # the price table itself is unreadable
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(2) from None
    paths = report_files.write(rep, out_dir)
    out.print(f"report written to {out_dir}: {', '.join(p.name for p in paths)}",
              markup=False)


@app.command()
def capacity(
    stack: Annotated[str, typer.Option(
        "--stack", "-s", help="The deployed stack to read (its resources are found by the "
        "Project and Stack tags the program sets).")],
    days: Annotated[int, typer.Option(
        "--days", "-d", min=1, max=455,
        help="Days of CloudWatch history to read (hourly data is kept 455 days).")] = 28,
    project_dir: Annotated[Path | None, typer.Option(
        "--project", help="Pulumi project directory (default: the one holding Pulumi.yaml).",
        exists=True, file_okay=False)] = None,
) -> None:
    """Headroom and days of runway per resource of a deployed stack, from its CloudWatch
    metrics (boto3, the usual AWS credentials), and the setting or phase to move next
    (planner/watch.py). Exit 1 when the account cannot be read or holds no such stack."""
    import boto3
    import botocore.exceptions

    from planner import watch

    err = _stderr()
    with _config_errors(err):
        project = Project(project_dir or _default_project())
        cfg = project.stack_config(stack)
    if cfg.region is None:
        err.print(f"error: {stack}: aws:region is not set; capacity reads that region",
                  markup=False)
        raise typer.Exit(2)
    try:
        found, readings = watch.analyse(cfg, boto3.Session(), days=days, project=project.name)
    except botocore.exceptions.NoCredentialsError:
        err.print("error: no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/"
                  "AWS_SECRET_ACCESS_KEY for the account the stack is deployed in",
                  markup=False)
        raise typer.Exit(1) from None
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        err.print(f"error: reading {stack} in {cfg.region}: {exc}", markup=False)
        raise typer.Exit(1) from None
    if found.empty:
        err.print(f"error: nothing in {cfg.region} is tagged Project={project.name}, "
                  f"Stack={stack}: the stack is not deployed in this account", markup=False)
        raise typer.Exit(1)
    with _stdout() as out:
        out.print(f"{stack} ({cfg.region}, phase {cfg.phase}): the last {days} days of "
                  "CloudWatch, hourly", markup=False)
        for reading in readings:
            out.print(watch.describe(reading), markup=False)
        counts = {k: sum(r.status == k for r in readings)
                  for k in ("act", "watch", "ok", "no data")}
        out.print("capacity: " + ", ".join(f"{n} {k}" for k, n in counts.items()),
                  markup=False)


def _prices_app() -> typer.Typer:
    from planner.prices import app as prices_app  # its command imports boto3 when run

    return prices_app


app.add_typer(_prices_app(), name="prices")


@app.callback()
def _root() -> None:
    """SofaCover infrastructure tools (run `sofacover plan --help`)."""


def main() -> None:
    sys.exit(app())
