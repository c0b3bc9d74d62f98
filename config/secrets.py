"""Formats the services require of secret values, checked where the value enters: the
stack config, whenever the value is known (under `pulumi up` the engine hands the program
the decrypted value; the offline plan has only the placeholder and cannot check).

A broken secret is reported by key and rule, never by value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# What the offline plan passes for a secret it cannot decrypt (planner/project.py). Not the
# plan's mask ("[secret]"): a program that leaked a secret's value would show this instead.
UNKNOWN_SECRET = "[undecrypted secret]"


@dataclass(frozen=True)
class SecretFormat:
    pattern: re.Pattern[str]
    rule: str
    source: str


# Passwords reach PgBouncer's auth file, a libpq key=value string and a URL; the project
# keeps them to characters none of those needs to escape (project choice, not a service's).
_PASSWORD = SecretFormat(
    re.compile(r"[A-Za-z0-9!#$%&()*+,.:;<=>?\[\]^_{|}~-]{16,128}"),
    "16-128 characters: letters, digits and !#$%&()*+,.:;<=>?[]^_{|}~- (no spaces, quotes, "
    "backslash, @ or /, which PgBouncer's auth file, libpq strings and URLs would need "
    "escaped)",
    "project rule (PgBouncer auth_file and libpq quoting: pgbouncer.org/config.html, "
    "postgresql.org/docs/16/libpq-connect.html); RDS master passwords also refuse / @ \" and "
    "space (RDS API CreateDBInstance MasterUserPassword)")

FORMATS: dict[str, SecretFormat] = {
    "sofacover:redisAuthToken": SecretFormat(
        re.compile(r"[A-Za-z0-9!&#$^<>-]{16,128}"),
        "16-128 printable characters, the only non-alphanumerics ! & # $ ^ < > - (so base64 "
        "output is refused: generate one with `openssl rand -hex 32`)",
        "https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/auth.html (AUTH token "
        "constraints), read 2026-11-27"),
    "sofacover:dbAppPassword": _PASSWORD,
    "sofacover:pgbouncerAdminPassword": _PASSWORD,
    "sofacover:pgbouncerStatsPassword": _PASSWORD,
}


def secret_problem(key: str, value: object) -> str | None:
    """Why a known secret value breaks its format (naming the rule, not the value), or None."""
    fmt = FORMATS.get(key)
    if fmt is None or not isinstance(value, str) or value == UNKNOWN_SECRET:
        return None
    if fmt.pattern.fullmatch(value):
        return None
    return (f"{key} does not have the format the service requires: {fmt.rule} (the value "
            f"is not shown; source: {fmt.source})")
