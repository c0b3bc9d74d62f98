"""Print a plan as a tree (region, component, resource) and write it as JSON."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from planner.engine import PlannedResource, StackPlan
from planner.preflight import Finding

# Inputs worth a glance, in the order they are shown; the JSON plan has all of them.
KEY_INPUTS = (
    "region", "cidrBlock", "availabilityZone", "destinationCidrBlock", "domain",
    "connectivityType", "vpcEndpointType", "serviceName", "trafficType", "logDestinationType",
    "maxAggregationInterval", "retentionInDays", "name", "instanceType", "instanceClass",
    "engine", "engineVersion", "minSize", "maxSize", "desiredCapacity", "settingId", "value",
    "type", "content", "proxied", "phase", "pattern", "steeringPolicy", "port", "protocol",
    "kind", "metadata",
)
MAX_SHOWN = 4


def kubernetes_summary(res: PlannedResource) -> list[str]:
    """What matters of a Kubernetes object: its namespace, images, replicas, HPA range,
    a Helm release's chart; the rest is in the JSON plan."""
    inputs = res.inputs
    meta = inputs.get("metadata") if isinstance(inputs.get("metadata"), dict) else {}
    spec = inputs.get("spec") if isinstance(inputs.get("spec"), dict) else {}
    shown = []
    namespace = meta.get("namespace") or inputs.get("namespace")
    if namespace:
        shown.append(f"namespace={namespace}")
    if res.type.endswith("HorizontalPodAutoscaler"):
        shown.append(f"replicas={spec.get('minReplicas')}-{spec.get('maxReplicas')}")
        target = (spec.get("scaleTargetRef") or {}).get("name")
        if target:
            shown.append(f"target={target}")
    elif "replicas" in spec:
        shown.append(f"replicas={spec['replicas']}")
    pod = ((spec.get("jobTemplate") or {}).get("spec") or spec).get("template") or {}
    containers = (pod.get("spec") or {}).get("containers") or []
    images = sorted({c.get("image") for c in containers if c.get("image")})
    if images:
        shown.append("image=" + ",".join(images))
    if "schedule" in spec:
        shown.append(f"schedule={spec['schedule']}")
    if inputs.get("chart"):
        shown.append(f"chart={inputs['chart']}@{inputs.get('version', '?')}")
    return shown


def summary(res: PlannedResource) -> str:
    if res.type.startswith("kubernetes:") and not res.type.startswith("kubernetes:index"):
        return _with_flags(res, kubernetes_summary(res))
    shown = []
    for key in KEY_INPUTS:
        value = res.inputs.get(key)
        if key == "region" and res.type.startswith("aws:") and value == res.region:
            continue  # the tree already groups by region
        if value not in (None, "", [], {}):
            shown.append(f"{key}={_short(value)}")
        if len(shown) == MAX_SHOWN:
            break
    return _with_flags(res, shown)


def _with_flags(res: PlannedResource, shown: list[str]) -> str:
    flags = [name for name in ("protect", "retain_on_delete", "delete_before_replace")
             if res.options.get(name)]
    if res.options.get("ignore_changes"):
        flags.append("ignore_changes=" + ",".join(res.options["ignore_changes"]))
    if res.read:
        flags.append("read")
    return "  ".join(shown + [f"[{f}]" for f in flags])


def _short(value: Any, width: int = 48) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def tree(plan: StackPlan) -> Tree:
    title = (f"[bold]{plan.stack}[/]  role={plan.role}  environment={plan.environment}  "
             f"phase={plan.phase}")
    root = Tree(title)
    by_urn = {r.urn: r for r in plan.resources}
    children: dict[str | None, list[PlannedResource]] = {}
    for res in plan.resources:
        parent = res.parent if res.parent in by_urn else None
        children.setdefault(parent, []).append(res)

    regions: dict[str, Tree] = {}

    def region_node(res: PlannedResource) -> Tree:
        label = res.region or _region_of_component(res, children) or "global"
        if label not in regions:
            regions[label] = root.add(f"[bold cyan]{escape(label)}[/]")
        return regions[label]

    def add(node: Tree, res: PlannedResource) -> None:
        style = "magenta" if not res.custom else "green"
        text = f"[{style}]{escape(res.type)}[/]  {escape(res.name)}"
        detail = summary(res)
        if detail:
            text += f"  [dim]{escape(detail)}[/]"
        branch = node.add(text)
        for child in sorted(children.get(res.urn, []), key=_order):
            add(branch, child)

    for res in sorted(children.get(None, []), key=_order):
        add(region_node(res), res)
    return root


def _order(res: PlannedResource) -> tuple:
    # Registration order depends on when outputs resolve; type then name reads better.
    return (res.custom, res.type, len(res.name), res.name)


def _region_of_component(res: PlannedResource, children: dict) -> str | None:
    for child in children.get(res.urn, []):
        region = child.region or _region_of_component(child, children)
        if region:
            return region
    return None


def counts(plans: list[StackPlan]) -> Table:
    table = Table(title="Resources to create, by type", show_edge=False)
    table.add_column("count", justify="right")
    table.add_column("type")
    counter = Counter(r.type for p in plans for r in p.resources if not r.read)
    for type_, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row(str(n), type_)
    reads = sum(1 for p in plans for r in p.resources if r.read)
    table.add_section()
    table.add_row(str(sum(counter.values())), "[bold]total[/]"
                  + (f"  (+{reads} read: stack references)" if reads else ""))
    return table


def print_plans(plans: list[StackPlan], console: Console) -> None:
    for plan in plans:
        console.print(tree(plan))
        for message in plan.messages:
            console.print(f"  [yellow]{escape(message)}[/]")
        if plan.outputs:
            console.print("  [bold]outputs[/]")
            for key, value in plan.outputs.items():
                console.print(f"    {key}: {escape(_short(value, 120))}")
        console.print()
    console.print(counts(plans))


def program_warnings(plans: list[StackPlan]) -> list[str]:
    """The program's own warnings (pulumi.log.warn), one line each naming the stack."""
    return [f"warning: {p.stack}: {m.removeprefix('warning: ')}" for p in plans
            for m in p.messages if m.startswith("warning: ")]


def print_findings(findings: list[Finding], console: Console,
                   plans: list[StackPlan] = ()) -> None:
    """At the end of the run: a summary line per stack, the program's warnings, then the
    preflight's findings, one line each (errors first), then a count."""
    for plan in plans:
        created = sum(1 for r in plan.resources if not r.read)
        reads = len(plan.resources) - created
        console.print(f"{plan.stack}: +{created} to create"
                      + (f" ({reads} read)" if reads else ""), markup=False)
    warnings = program_warnings(list(plans))
    for line in warnings:
        console.print(f"[yellow]{escape(line)}[/]", soft_wrap=True)
    if not findings:
        console.print(f"preflight: no findings; program warnings: {len(warnings)}")
        return
    console.print("[bold]preflight[/]")
    for f in sorted(findings, key=lambda f: f.severity != "error"):
        style = "red" if f.severity == "error" else "yellow"
        console.print(f"[{style}]{escape(f.line())}[/]", soft_wrap=True)
    errors = sum(f.severity == "error" for f in findings)
    console.print(f"preflight: {errors} errors, {len(findings) - errors} warnings; "
                  f"program warnings: {len(warnings)}")


def write_json(plans: list[StackPlan], path: Path, findings: list[Finding] = ()) -> None:
    doc = {"format": "sofacover-plan/1", "stacks": [p.as_json() for p in plans],
           "findings": [f.as_json() for f in findings]}
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
