"""The pulumi_policy wrappers around policy/rules.py, with the exceptions applied.

`policies()` is what `pulumi preview --policy-pack policy` serves (policy/__main__.py) and
what the offline plan calls (planner/policy.py): both hand the same wrappers pulumi_policy's
own ResourceValidationArgs / StackValidationArgs.
"""

from __future__ import annotations

from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policy import exceptions as exc_file
from policy.exceptions import PolicyException, covers
from policy.rules import RULES, Res, Rule, rules_by_name

PACK_NAME = "sofacover"
EXCEPTIONS_RULE = "policy-exceptions-current"
LEVELS = {"mandatory": EnforcementLevel.MANDATORY, "advisory": EnforcementLevel.ADVISORY}


def view(obj: Any) -> Res:
    """A rule's view of a ResourceValidationArgs or a PolicyResource."""
    provider = getattr(obj, "provider", None)
    opts = getattr(obj, "opts", None)
    parent = getattr(obj, "parent", None)
    return Res(type=obj.resource_type, name=obj.name, urn=obj.urn, props=obj.props,
               protect=bool(getattr(opts, "protect", False)),
               provider_props=provider.props if provider is not None else {},
               parent=getattr(parent, "urn", None) or getattr(opts, "parent", None))


def _resource_policy(rule: Rule, waived: list[PolicyException]) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        res = view(args)
        messages = rule.run(res)
        if messages and not covers(waived, rule.name, res):
            for message in messages:
                report(message)

    return ResourceValidationPolicy(name=rule.name, description=rule.description,
                                    validate=validate, enforcement_level=LEVELS[rule.level],
                                    url=rule.source if rule.source.startswith("http") else None)


def _stack_policy(rule: Rule, waived: list[PolicyException]) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        resources = [view(r) for r in args.resources]
        by_urn = {r.urn: r for r in resources}
        assert rule.check_stack is not None
        for urn, message in rule.check_stack(resources):
            if urn not in by_urn or not covers(waived, rule.name, by_urn[urn]):
                report(message, urn)

    return StackValidationPolicy(name=rule.name, description=rule.description,
                                 validate=validate, enforcement_level=LEVELS[rule.level],
                                 url=rule.source if rule.source.startswith("http") else None)


def stale(entry: PolicyException, resources: list[Res]) -> str | None:
    """Why an exception is stale for this stack's resources, or None if it is needed."""
    rule = rules_by_name()[entry.policy]
    matched = [r for r in resources if entry.matches(entry.policy, r)]
    if not matched:
        named = entry.named_stacks() & {r.stack for r in resources}
        if named:
            return f"{entry.describe()} matches no resource of stack {', '.join(sorted(named))}"
        return None  # a pattern for resources this stack does not have
    if rule.check is not None:
        broken = [r for r in matched if rule.run(r)]
    else:
        assert rule.check_stack is not None
        flagged = {urn for urn, _ in rule.check_stack(resources)}
        broken = [r for r in matched if r.urn in flagged]
    if not broken:
        return f"{entry.describe()} is stale: the rule holds for it; remove the entry"
    return None


def _exceptions_policy(waived: list[PolicyException]) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        resources = [view(r) for r in args.resources]
        for entry in waived:
            reason = stale(entry, resources)
            if reason:
                report(reason)

    return StackValidationPolicy(
        name=EXCEPTIONS_RULE, validate=validate, enforcement_level=EnforcementLevel.MANDATORY,
        description="Every entry of policy/exceptions.yaml waives a rule that would fire.")


def policies(waived: list[PolicyException] | None = None) -> list[Policy]:
    """Every rule as a pulumi_policy policy, then the check of the exceptions file."""
    if waived is None:
        waived = exc_file.load(known=set(rules_by_name()))
    built: list[Policy] = [
        _resource_policy(r, waived) if r.check is not None else _stack_policy(r, waived)
        for r in RULES]
    return [*built, _exceptions_policy(waived)]


def level(policy: Policy) -> str:
    return "mandatory" if policy.enforcement_level == EnforcementLevel.MANDATORY \
        else "advisory"
