"""The policy pack (policy/) run over the offline plan.

Every planned resource becomes the argument pulumi_policy itself builds for the CLI
(ResourceValidationArgs with the inputs, options and provider; PolicyResource with the
state for stack policies), and the pack's own wrappers run on it: the same functions, the
same exceptions file, the same enforcement levels as `pulumi preview --policy-pack policy`.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from typing import Any

from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from rich.console import Console
from rich.markup import escape

from planner.engine import PlannedResource, StackPlan
from policy.pack import EXCEPTIONS_RULE, level, policies
from policy.rules import RULES

ROOT_STACK_TYPE = "pulumi:pulumi:Stack"


@dataclass(frozen=True)
class PolicyFinding:
    stack: str
    policy: str
    level: str
    urn: str
    message: str

    def as_json(self) -> dict[str, str]:
        return asdict(self)

    def line(self) -> str:
        what = self.urn.rsplit("::", 2)[-2:] if self.urn else [self.stack]
        return f"{self.level}: {self.stack}: {' '.join(what)}: {self.message} [{self.policy}]"


@dataclass
class PolicyReport:
    rules: int
    findings: list[PolicyFinding]

    @property
    def mandatory(self) -> int:
        return sum(f.level == "mandatory" for f in self.findings)

    @property
    def advisory(self) -> int:
        return len(self.findings) - self.mandatory

    def summary(self) -> str:
        return (f"policy: {self.rules} rules, {self.mandatory} mandatory violations, "
                f"{self.advisory} advisory")

    def as_json(self) -> dict[str, Any]:
        return {"rules": self.rules, "mandatory": self.mandatory, "advisory": self.advisory,
                "findings": [f.as_json() for f in self.findings]}


def _options(res: PlannedResource) -> PolicyResourceOptions:
    opts = res.options
    timeouts = PolicyCustomTimeouts(0, 0, 0)
    return PolicyResourceOptions(
        protect=bool(opts.get("protect")), ignore_changes=list(opts.get("ignore_changes", [])),
        delete_before_replace=opts.get("delete_before_replace"),
        aliases=[], custom_timeouts=timeouts, additional_secret_outputs=[], parent=res.parent)


def _providers(plan: StackPlan) -> dict[str, PolicyProviderResource]:
    """Provider reference (`<urn>::<id>`) -> the provider as pulumi_policy describes it."""
    return {f"{r.urn}::{r.id}": PolicyProviderResource(r.type, r.inputs, r.urn, r.name)
            for r in plan.resources if r.type.startswith("pulumi:providers:")}


def _analyzed(plan: StackPlan) -> list[PlannedResource]:
    return [r for r in plan.resources if not r.read and r.type != ROOT_STACK_TYPE]


def resource_args(res: PlannedResource, providers: dict[str, PolicyProviderResource]
                  ) -> ResourceValidationArgs:
    return ResourceValidationArgs(res.type, res.inputs, res.urn, res.name, _options(res),
                                  providers.get(res.provider or ""))


def stack_args(plan: StackPlan) -> StackValidationArgs:
    providers = _providers(plan)
    resources = []
    for res in _analyzed(plan):
        # The engine hands stack policies the state: the inputs as the provider kept them,
        # the outputs it computed, and (bridged providers) the id.
        state = {**res.inputs, **res.outputs, "id": res.id}
        resources.append(PolicyResource(res.type, state, res.urn, res.name, _options(res),
                                        providers.get(res.provider or ""), None, [], {}))
    by_urn = {r.urn: r for r in resources}
    for r in resources:
        r.parent = by_urn.get(r.opts.parent or "")
    return StackValidationArgs(resources)


def _stack_findings(plan: StackPlan, pack: list) -> list[PolicyFinding]:
    findings: list[PolicyFinding] = []
    providers = _providers(plan)
    resources = _analyzed(plan)
    for policy in pack:
        def report(message: str, urn: str | None = None, *, _policy=policy,
                   _default: str = "") -> None:
            findings.append(PolicyFinding(plan.stack, _policy.name, level(_policy),
                                          urn or _default, message))
        if isinstance(policy, ResourceValidationPolicy):
            for res in resources:
                policy.validate(resource_args(res, providers),
                                functools.partial(report, _default=res.urn))
        elif isinstance(policy, StackValidationPolicy):
            policy.validate(stack_args(plan), report)
    return findings


def check(plans: list[StackPlan]) -> PolicyReport:
    """Run every policy of the pack on every planned stack."""
    pack = policies()
    findings = [f for plan in plans for f in _stack_findings(plan, pack)]
    findings.sort(key=lambda f: (f.level != "mandatory", f.stack, f.policy, f.urn))
    return PolicyReport(rules=len(pack), findings=findings)


def print_report(report: PolicyReport, console: Console) -> None:
    """After the preflight: one line per finding (mandatory first), then the summary."""
    for f in report.findings:
        style = "red" if f.level == "mandatory" else "yellow"
        console.print(f"[{style}]{escape(f.line())}[/]", soft_wrap=True)
    console.print(report.summary(), markup=False)


def rules_markdown() -> str:
    """Every rule of the pack with its level and source (docs/policy.md is this output)."""
    lines = ["# Policy pack rules", "",
             "Generated by `sofacover policy-rules`; the rules live in policy/rules.py, the "
             "exceptions in policy/exceptions.yaml. `pulumi preview --policy-pack policy` "
             "runs them; so does `sofacover plan`.", "",
             "| rule | level | what it requires | source |", "|---|---|---|---|"]
    for r in RULES:
        scope = "whole stack" if r.check_stack else ", ".join(f"`{t}`" for t in r.types) \
            or "every resource"
        lines.append(f"| `{r.name}` | {r.level} | {r.description} ({scope}) | {r.source} |")
    lines.append(f"| `{EXCEPTIONS_RULE}` | mandatory | Every exception waives a rule that "
                 "would fire, on a resource that exists. | policy/exceptions.py |")
    return "\n".join(lines) + "\n"
