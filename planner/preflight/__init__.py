"""The preflight: what a real `pulumi up` would refuse, or deploy and never work, found
before anything is deployed.

Every plan runs it (`sofacover plan`) after the program has run under the mocks and before
the plan is printed. A rule reads the planned resources (inputs as the program sent them,
outputs as the provider would return them: autonames, ARNs) and the validated stack
config, and yields findings:

- error: the provider or the API would refuse it, or the feature could never work
  (the plan exits non-zero);
- warning: it deploys and works today, but a date or a limit is near.

Each rule carries the source of its constraint (the API reference, the provider's source,
the vendor's notice) and the date that source was read. `docs/preflight.md` is generated
from the rules (`sofacover preflight-rules`) and a test keeps it current.

Rules live by provider: aws.py, kubernetes.py, cloudflare.py, secrets.py; dated offerings
(engine and cluster versions, instance classes) in data/offerings.yaml.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from planner.engine import PlannedResource, StackPlan

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One problem: where (stack, resource, property), what, and on whose authority."""

    severity: Severity
    rule: str
    stack: str
    resource: str
    """`<type> <logical name>`, or `stack config` for a stack-wide finding."""
    property: str
    message: str
    """The constraint and how the planned value breaks it."""
    source: str

    def line(self) -> str:
        return (f"{self.severity}: {self.stack}: {self.resource}: {self.property}: "
                f"{self.message} [{self.rule}; source: {self.source}]")

    def as_json(self) -> dict[str, str]:
        return {"severity": self.severity, "rule": self.rule, "stack": self.stack,
                "resource": self.resource, "property": self.property,
                "message": self.message, "source": self.source}


@dataclass(frozen=True)
class Rule:
    id: str
    """Short, stable, kebab-case: `aws-name-length`, `k8s-namespace-exists`."""
    summary: str
    source: str
    checked: str
    """ISO date the source was read."""
    check: Callable[[Context], Iterable[Finding]]


RULES: dict[str, Rule] = {}


def rule(id: str, summary: str, *, source: str, checked: str
         ) -> Callable[[Callable[[Context], Iterable[Finding]]],
                       Callable[[Context], Iterable[Finding]]]:
    """Register a rule. The function gets a Context (one stack) and yields findings made
    with `ctx.error(...)` / `ctx.warning(...)`, which fill in the rule's id and source."""
    dt.date.fromisoformat(checked)

    def register(fn: Callable[[Context], Iterable[Finding]]):
        if id in RULES:
            raise ValueError(f"preflight rule {id} is defined twice")
        RULES[id] = Rule(id, summary, source, checked, fn)
        return fn

    return register


@dataclass
class Context:
    """One stack's plan, with the rest of its environment for rules across stacks."""

    plan: StackPlan
    environment: dict[str, StackPlan] = field(default_factory=dict)
    today: dt.date = field(default_factory=dt.date.today)
    _rule: Rule | None = None

    @property
    def stack(self) -> str:
        return self.plan.stack

    @property
    def config(self) -> Any:
        return self.plan.config

    @property
    def resources(self) -> list[PlannedResource]:
        return [r for r in self.plan.resources if not r.read]

    def of_type(self, *tokens: str) -> Iterator[PlannedResource]:
        return (r for r in self.resources if r.type in tokens)

    def _finding(self, severity: Severity, res: PlannedResource | None, prop: str,
                 message: str, source: str | None) -> Finding:
        assert self._rule is not None, "findings are made while a rule runs"
        where = f"{res.type} {res.name}" if res is not None else "stack config"
        return Finding(severity, self._rule.id, self.stack, where, prop, message,
                       source or self._rule.source)

    def error(self, res: PlannedResource | None, prop: str, message: str,
              source: str | None = None) -> Finding:
        return self._finding("error", res, prop, message, source)

    def warning(self, res: PlannedResource | None, prop: str, message: str,
                source: str | None = None) -> Finding:
        return self._finding("warning", res, prop, message, source)


def value(res: PlannedResource, prop: str) -> Any:
    """A property as the provider would see it: the input, else the provider's answer
    (autonames live there). Dotted paths reach into objects: `vpcConfig.endpointPublicAccess`."""
    for source in (res.inputs, res.outputs):
        node: Any = source
        for part in prop.split("."):
            if not isinstance(node, dict) or part not in node:
                node = None
                break
            node = node[part]
        if node is not None:
            return node
    return None


def _load_rules() -> None:
    # Imported for their @rule side effect; kept here so every caller sees every rule.
    from planner.preflight import aws, cloudflare, kubernetes, secrets, security  # noqa: F401


def check(plans: list[StackPlan], *, today: dt.date | None = None,
          only: Iterable[str] | None = None) -> list[Finding]:
    """Every finding of every rule (or of the rules named in `only`) over `plans`, in
    plan order, errors and warnings alike."""
    _load_rules()
    environment = {p.stack: p for p in plans}
    wanted = [RULES[i] for i in only] if only is not None else list(RULES.values())
    findings: list[Finding] = []
    for plan in plans:
        for r in wanted:
            ctx = Context(plan, environment, today or dt.date.today(), r)
            findings.extend(r.check(ctx))
    return findings


def rules_markdown() -> str:
    """docs/preflight.md: every rule with its source and the date it was read."""
    _load_rules()
    lines = [
        "# Preflight rules",
        "",
        "Generated by `sofacover preflight-rules > docs/preflight.md`; a test keeps it "
        "current. Every `sofacover plan` runs these rules after the program has run under "
        "the mocks. An error fails the plan (exit 1); a warning is printed. Each finding "
        "is one line: severity, stack, resource, property, what is wrong, rule and source.",
        "",
        "| rule | checks | source | read on |",
        "|---|---|---|---|",
    ]
    for r in sorted(RULES.values(), key=lambda r: r.id):
        lines.append(f"| `{r.id}` | {_cell(r.summary)} | {_cell(r.source)} | {r.checked} |")
    lines += _offerings_markdown()
    from config.secrets import FORMATS

    lines += [
        "",
        "## Secret values",
        "",
        "Checked by the stack config (config/secrets.py) whenever the value is known: under "
        "`pulumi up`, where the engine decrypts it. The offline plan has only a placeholder "
        "and skips them. A broken secret is reported by key and rule, never by value.",
        "",
        "| key | format | source |",
        "|---|---|---|",
    ]
    for key, fmt in FORMATS.items():
        lines.append(f"| `{key}` | {_cell(fmt.rule)} | {_cell(fmt.source)} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _offerings_markdown() -> list[str]:
    """The dated offerings the version and class rules read, row by row with their sources."""
    from planner.preflight.aws import offerings

    data = offerings()
    lines = ["", "## Dated offerings (planner/preflight/data/offerings.yaml)", "",
             "| offering | standard support ends | source | read on |", "|---|---|---|---|"]
    for row in data["rds_postgres"]["majors"]:
        lines.append(f"| RDS for PostgreSQL {row['major']} | {row['standard_support_ends']} | "
                     f"{_cell(row['source'])} | {row['read']} |")
    for row in data["rds_postgres"]["retired_minors"]:
        lines.append(f"| RDS for PostgreSQL {', '.join(row['versions'])}: not created from "
                     f"{row['no_create_from']} | - | {_cell(row['source'])} | {row['read']} |")
    fams = data["rds_postgres"]["instance_families"]
    lines.append(f"| RDS for PostgreSQL classes: {', '.join(fams['families'])} | - | "
                 f"{_cell(fams['source'])} | {fams['read']} |")
    for row in data["eks"]["versions"]:
        lines.append(f"| EKS Kubernetes {row['version']} | {row['standard_support_ends']} | "
                     f"{_cell(row['source'])} | {row['read']} |")
    for row in data["elasticache"]["engines"]:
        lines.append(f"| ElastiCache {row['engine']} {row['version']} | "
                     f"{row.get('standard_support_ends', '-')} | {_cell(row['source'])} | "
                     f"{row['read']} |")
    fams = data["elasticache"]["node_families"]
    lines.append(f"| ElastiCache node families: {', '.join(fams['families'])} | - | "
                 f"{_cell(fams['source'])} | {fams['read']} |")
    return lines
