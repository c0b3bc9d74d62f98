"""`sofacover plan --diff-from FILE`: what the planned stacks change against an earlier plan.

FILE is a plan written by `sofacover plan --json` (format `sofacover-plan/1`) or the output
of `pulumi stack export`. Resources are matched by URN within each stack: create, update
(each changed input, old -> new, by dotted path), replace (a changed input that forces a new
resource, from planner/data/replace_properties.yaml, or listed in the resource's
replace_on_changes) or delete. A delete or replace of a type that holds data (the same
file's data_holders) is flagged DESTROYS DATA; the CLI then refuses (exit 3) unless
--allow-destroy is given. Secrets compare and print as [secret], never their value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner.engine import StackPlan
from planner.mocks import SECRET_MASK
from planner.replace_props import conditional_properties, holds_data, replace_properties

PLAN_FORMAT = "sofacover-plan/1"
UNKNOWN = "[unknown]"
EXPORT_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # the engine's secret signature
SIG_KEY = "4dabf18193072939515e22adb298388d"
EXIT_DESTROYS_DATA = 3
VALUE_WIDTH = 60
_MISSING = object()


class DiffFileError(Exception):
    """FILE is missing, not JSON, or neither a plan nor a stack export."""


@dataclass
class OldResource:
    urn: str
    type: str
    name: str
    inputs: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Change:
    path: str
    old: Any
    new: Any

    def text(self) -> str:
        old, new = _text(self.old), _text(self.new)
        if old is None or new is None:  # (none), [secret], (known after apply): whole
            return f"{self.path}: {_show(self.old)} -> {_show(self.new)}"
        # Long values: show both from a little before where they first differ.
        start = 0
        if max(len(old), len(new)) > VALUE_WIDTH:
            same = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b),
                        min(len(old), len(new)))
            start = max(0, same - 20)
        return f"{self.path}: {_cut(old, start)} -> {_cut(new, start)}"


@dataclass
class ResourceDiff:
    op: str  # create | update | replace | delete
    urn: str
    type: str
    name: str
    changes: list[Change] = field(default_factory=list)
    forced_by: list[str] = field(default_factory=list)
    may_force: dict[str, str] = field(default_factory=dict)
    """Changed inputs the provider replaces on only under a condition the offline diff cannot
    evaluate (an upstream CustomizeDiff or plan modifier): path -> the condition's source."""
    destroys: str | None = None
    """Why this delete or replace destroys data (None: it does not)."""
    may_destroy: str | None = None
    """Why a conditional replace (may_force) would destroy data, if it happens."""
    protected: bool = False

    SIGN = {"create": "+", "update": "~", "replace": "+-", "delete": "-"}

    def line(self) -> str:
        text = f"{self.SIGN[self.op]} {self.op} {self.type} {self.name}"
        if self.forced_by:
            text += f" (forced by {', '.join(self.forced_by)})"
        if self.changes:
            text += ": " + "; ".join(c.text() for c in self.changes)
        if self.may_force:
            text += "  MAY REPLACE: " + "; ".join(f"{p} (upstream {why})"
                                                 for p, why in self.may_force.items())
        if self.may_destroy:
            text += f"  MAY DESTROY DATA: {self.may_destroy}"
        if self.protected and self.op in ("delete", "replace"):
            text += "  [protect: the engine refuses until the resource is unprotected]"
        if self.destroys:
            text += f"  DESTROYS DATA: {self.destroys}"
        return text

    def as_json(self) -> dict[str, Any]:
        return {"op": self.op, "urn": self.urn, "type": self.type, "name": self.name,
                "changes": [{"path": c.path, "old": _json(c.old), "new": _json(c.new)}
                            for c in self.changes],
                "forced_by": self.forced_by, "may_force": self.may_force,
                "may_destroy_data": self.may_destroy,
                "destroys_data": self.destroys,
                "protect": self.protected}


@dataclass
class StackDiff:
    stack: str
    resources: list[ResourceDiff]
    found: bool = True
    """Whether FILE had this stack at all (if not, everything is a create)."""

    def count(self, op: str) -> int:
        return sum(r.op == op for r in self.resources)

    def summary(self) -> str:
        return (f"{self.stack}: +{self.count('create')} ~{self.count('update')} "
                f"-{self.count('delete')} +-{self.count('replace')}")

    @property
    def destroying(self) -> list[ResourceDiff]:
        return [r for r in self.resources if r.destroys]

    def as_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "in_file": self.found,
                "counts": {op: self.count(op) for op in ResourceDiff.SIGN},
                "resources": [r.as_json() for r in self.resources]}


# -- loading ---------------------------------------------------------------------------------

def load(path: Path) -> dict[str, dict[str, OldResource]]:
    """stack -> urn -> the resource as FILE has it."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise DiffFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DiffFileError(f"{path}: cannot read it ({exc})") from None
    except json.JSONDecodeError as exc:
        raise DiffFileError(f"{path}: not JSON ({exc})") from None
    if isinstance(doc, dict) and doc.get("format") == PLAN_FORMAT:
        return _from_plan(doc, path)
    if isinstance(doc, dict) and isinstance(doc.get("deployment"), dict):
        return _from_export(doc, path)
    fmt = doc.get("format") if isinstance(doc, dict) else None
    raise DiffFileError(f"{path}: unknown format{f' {fmt!r}' if fmt else ''}: expected a plan "
                        f"written by `sofacover plan --json` ({PLAN_FORMAT}) or the output of "
                        "`pulumi stack export`")


def _from_plan(doc: dict, path: Path) -> dict[str, dict[str, OldResource]]:
    out: dict[str, dict[str, OldResource]] = {}
    try:
        for stack in doc["stacks"]:
            res = out.setdefault(stack["stack"], {})
            for r in stack["resources"]:
                res[r["urn"]] = OldResource(r["urn"], r["type"], r["name"],
                                            _unsecret(r.get("inputs") or {}),
                                            r.get("options") or {})
    except (KeyError, TypeError) as exc:
        raise DiffFileError(f"{path}: not a valid {PLAN_FORMAT} plan (missing {exc})") from None
    return out


def _from_export(doc: dict, path: Path) -> dict[str, dict[str, OldResource]]:
    out: dict[str, dict[str, OldResource]] = {}
    try:
        for r in doc["deployment"].get("resources") or []:
            urn, type_ = r["urn"], r["type"]
            if type_ == "pulumi:pulumi:Stack":
                continue
            name = urn.rsplit("::", 1)[1]
            if type_.startswith("pulumi:providers:") and name.startswith("default"):
                continue  # the engine's default providers: the plan does not register them
            stack = urn.split("::")[0].split(":", 2)[2]
            inputs = {k: v for k, v in (r.get("inputs") or {}).items()
                      if not k.startswith("__")}  # __defaults and the like: bridge metadata
            options = {"protect": bool(r.get("protect")),
                       "retain_on_delete": bool(r.get("retainOnDelete"))}
            out.setdefault(stack, {})[urn] = OldResource(urn, type_, name, _unsecret(inputs),
                                                         options)
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        raise DiffFileError(f"{path}: not a valid `pulumi stack export` document ({exc!r})") \
            from None
    return out


def _unsecret(value: Any) -> Any:
    """A value with every secret (an export's {sig: secret, ciphertext|plaintext}) masked."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == EXPORT_SECRET_SIG:
            return SECRET_MASK
        return {k: _unsecret(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unsecret(v) for v in value]
    return value


# -- comparing -------------------------------------------------------------------------------

def _leaves(old: Any, new: Any, prefix: str = "") -> list[Change]:
    """The changed values by dotted path (dicts by key, lists and scalars whole)."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes = []
        for key in sorted(set(old) | set(new)):
            path = f"{prefix}.{key}" if prefix else key
            changes += _leaves(old.get(key, _MISSING), new.get(key, _MISSING), path)
        return changes
    if _norm(old) == _norm(new):
        return []
    return [Change(prefix, old, new)]


def _norm(value: Any) -> Any:
    # An absent input, null, and an empty map or list ask the provider for the same thing.
    return None if value is _MISSING or value in (None, {}, []) else value


def _matches(change: Change, rule: str) -> bool:
    """Whether a changed input is at or below (or, changed whole, above) a rule's path. A
    rule inside a list (`rules[*].bucket`) holds only when the elements' values at the rest
    of the path differ: the diff compares lists whole, so a change of another field of an
    element is not one of this field."""
    path = change.path
    rule = rule.replace("[\"", ".").replace("\"]", "")
    if "[*]" not in rule:
        return rule == "*" or path == rule or path.startswith(rule + ".") or \
            rule.startswith(path + ".")
    head, _, rest = rule.partition("[*].")
    head = head.removesuffix("[*]")
    if path.startswith(head + ".") or path == head and not rest:
        return True
    if not (path == head or head.startswith(path + ".")):
        return False
    below = head[len(path) + 1:] if head != path else ""
    return _project(change.old, below, rest) != _project(change.new, below, rest)


def _at(value: Any, dotted: str) -> Any:
    for key in [k for k in dotted.split(".") if k]:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _project(value: Any, below: str, rest: str) -> list[str]:
    """The values at `rest` (which may hold further `[*]`) of each element of the list at
    `below`, as sorted JSON (a set's order carries no meaning)."""
    items = _at(None if value is _MISSING else value, below)
    if not isinstance(items, list):
        return [] if _norm(items) is None else [json.dumps(items, sort_keys=True)]
    head, _, deeper = rest.partition("[*].")
    out = []
    for item in items:
        if deeper or head.endswith("[*]"):
            out += _project(item, head.removesuffix("[*]"), deeper)
        else:
            out.append(json.dumps(_norm(_at(item, head)), sort_keys=True))
    return sorted(out)


def compare(plan: StackPlan, old: dict[str, OldResource] | None) -> StackDiff:
    old = old or {}
    diffs: list[ResourceDiff] = []
    new_urns = {r.urn for r in plan.resources}
    for res in plan.resources:
        before = old.get(res.urn)
        if before is None:
            diffs.append(ResourceDiff("create", res.urn, res.type, res.name))
            continue
        ignored = res.options.get("ignore_changes") or []
        changes = [c for c in _leaves(before.inputs, res.inputs)
                   if not any(_matches_ignore(c.path, ig) for ig in ignored)]
        if not changes:
            continue
        rules = dict(replace_properties(res.type))
        rules.update({p: "replace_on_changes" for p in res.options.get("replace_on_changes")
                      or []})
        forced = sorted({c.path for c in changes for rule in rules if _matches(c, rule)
                         and not _same_region(c, res, plan.region)})
        maybe = {c.path: why for c in changes if c.path not in forced
                 for rule, why in conditional_properties(res.type).items()
                 if _matches(c, rule)}
        op = "replace" if forced else "update"
        diffs.append(ResourceDiff(
            op, res.urn, res.type, res.name, changes, forced, dict(sorted(maybe.items())),
            destroys=_destroys(before, res.options) if forced else None,
            protected=bool(before.options.get("protect") or res.options.get("protect")),
            may_destroy=_destroys(before, res.options) if maybe and not forced else None))
    for urn, before in old.items():
        if urn not in new_urns:
            diffs.append(ResourceDiff("delete", urn, before.type, before.name,
                                      destroys=_destroys(before, {}),
                                      protected=bool(before.options.get("protect"))))
    diffs.sort(key=lambda d: (d.type, d.name, d.urn))
    return StackDiff(plan.stack, diffs, found=bool(old))


def _same_region(change: Change, res: Any, stack_region: str | None) -> bool:
    """terraform-provider-aws replaces on a change of `region` except when one side is unset
    and the other names the provider's own region (internal/provider/sdkv2
    forceNewIfRegionChanges). Known here for the stack's default provider (its region is the
    stack's); with an explicit provider the change counts as forcing."""
    region = None if res.provider else stack_region
    if change.path != "region" or not region:
        return False
    old, new = _norm(change.old), _norm(change.new)
    return (old is None and new == region) or (new is None and old == region)


def _matches_ignore(path: str, ignored: str) -> bool:
    ignored = ignored.replace("[\"", ".").replace("\"]", "")
    return path == ignored or path.startswith(ignored + ".")


def _destroys(before: OldResource, new_options: dict[str, Any]) -> str | None:
    if before.options.get("retain_on_delete") or new_options.get("retain_on_delete"):
        return None  # the engine forgets it; the cloud resource and its data stay
    return holds_data(before.type, before.inputs)


def diff(plans: list[StackPlan], old: dict[str, dict[str, OldResource]]) -> list[StackDiff]:
    return [compare(plan, old.get(plan.stack)) for plan in plans]


def destroying(diffs: list[StackDiff]) -> list[ResourceDiff]:
    return [r for d in diffs for r in d.destroying]


# -- showing ---------------------------------------------------------------------------------

def _show(value: Any) -> str:
    if value is _MISSING or value is None:
        return "(none)"
    if value == UNKNOWN:
        return "(known after apply)"
    if value == SECRET_MASK:
        return SECRET_MASK
    return _cut(_text(value), 0)


def _text(value: Any) -> str | None:
    """A plain value as one line of text; None for the ones shown by name."""
    if value is _MISSING or value is None or value in (UNKNOWN, SECRET_MASK):
        return None
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _cut(text: str, start: int) -> str:
    """At most VALUE_WIDTH characters of text from `start`, marked where cut."""
    head = "..." if start else ""
    part = text[start:start + VALUE_WIDTH]
    return head + part + ("..." if start + VALUE_WIDTH < len(text) else "")


def _json(value: Any) -> Any:
    return None if value is _MISSING else value


def lines(diffs: list[StackDiff], source: Path) -> list[str]:
    """The diff as text: per stack a header, one line per resource, then the summaries."""
    out = []
    for d in diffs:
        where = "" if d.found else f" (not in {source}: every resource is new)"
        out.append(f"diff {d.stack} against {source}{where}")
        out += [f"  {r.line()}" for r in d.resources] or ["  (no changes)"]
    out += [d.summary() for d in diffs]
    return out
