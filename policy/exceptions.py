"""policy/exceptions.yaml: the one place a rule may be waived, per resource, with a reason.

An entry names the rule and the resource, either by URN or by type and logical name (an
fnmatch pattern, so one entry can cover the same resource of every stack, optionally limited
to `stacks`), and says why. The pack's `policy-exceptions-current` rule fails on an entry
whose rule holds for what it matches, or that matches no resource of a stack it names (its
URN's, or one of `stacks`): a stale waiver hides nothing and must go.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from policy.rules import Res

EXCEPTIONS_FILE = Path(__file__).with_name("exceptions.yaml")


class PolicyExceptionError(ValueError):
    """The exceptions file cannot be read: one line per problem."""


class PolicyException(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: str = Field(min_length=1)
    reason: str = Field(min_length=20)
    urn: str | None = None
    type: str | None = None
    name: str | None = None
    """The logical name; an fnmatch pattern (`sofacover-*-autoscaler-spare`)."""
    stacks: list[str] | None = None
    """Only these stacks (default: every stack with a matching resource)."""

    @model_validator(mode="after")
    def _one_way_to_name_it(self) -> Self:
        if self.urn is None and not (self.type and self.name):
            raise ValueError("name the resource by urn, or by type and name")
        if self.urn is not None and (self.type or self.name or self.stacks):
            raise ValueError("urn and type/name/stacks are exclusive")
        return self

    def named_stacks(self) -> set[str]:
        """The stacks this entry names explicitly: there it must match something."""
        if self.urn:
            return {self.urn.split("::", 1)[0].rsplit(":", 1)[-1]}
        return set(self.stacks or ())

    def matches(self, policy: str, res: Res) -> bool:
        if policy != self.policy:
            return False
        if self.urn:
            return res.urn == self.urn
        return res.type == self.type and fnmatch.fnmatchcase(res.name, self.name or "") \
            and (self.stacks is None or res.stack in self.stacks)

    def describe(self) -> str:
        what = self.urn or f"{self.type} {self.name}"
        return f"exception for {self.policy} on {what}"


def load(path: Path = EXCEPTIONS_FILE, known: set[str] | None = None) -> list[PolicyException]:
    """The exceptions of `path`; PolicyExceptionError names the entry and the key."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PolicyExceptionError(f"{path.name}: cannot be read: {exc}") from None
    if not isinstance(raw, list):
        raise PolicyExceptionError(f"{path.name}: must be a list of entries "
                                   "(policy, reason, and urn or stack/type/name)")
    problems: list[str] = []
    entries: list[PolicyException] = []
    for i, item in enumerate(raw):
        try:
            entry = PolicyException.model_validate(item)
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"]) or "entry"
                problems.append(f"{path.name}: [{i}].{loc}: {err['msg']}")
            continue
        if known is not None and entry.policy not in known:
            problems.append(f"{path.name}: [{i}].policy: {entry.policy!r} is not a rule of "
                            f"the pack; valid: {', '.join(sorted(known))}")
        entries.append(entry)
    if problems:
        raise PolicyExceptionError("\n".join(problems))
    return entries


def covers(exceptions: list[PolicyException], policy: str, res: Res) -> bool:
    return any(e.matches(policy, res) for e in exceptions)
