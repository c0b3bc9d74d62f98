"""Preflight rules: secrets reach resources as Pulumi secrets.

The formats of secret values (the ElastiCache AUTH token's characters and length, the
passwords') are checked where the values enter, in config/secrets.py, whenever the value
is known; docs/preflight.md lists them too. Here: a property that carries a credential
must arrive as a secret, or its value lands in the state file and the plan in plain text.
"""

from __future__ import annotations

from collections.abc import Iterator

from planner.mocks import SECRET_MASK
from planner.preflight import Context, rule, value

# (type, property) that carry a credential.
SECRET_PROPERTIES: tuple[tuple[str, str], ...] = (
    ("aws:elasticache/replicationGroup:ReplicationGroup", "authToken"),
    ("aws:rds/instance:Instance", "password"),
    ("aws:ssm/parameter:Parameter", "value"),
    ("kubernetes:core/v1:Secret", "stringData"),
    ("kubernetes:core/v1:Secret", "data"),
)


@rule("secret-inputs", "Credentials (Redis AUTH token, database passwords, Secrets' data, "
      "SSM SecureString values) reach resources as Pulumi secrets, never in plain text",
      source="https://www.pulumi.com/docs/iac/concepts/secrets/ (secrets are encrypted in "
      "state only when the input is a secret)", checked="2026-11-27")
def secret_inputs(ctx: Context) -> Iterator:
    for res in ctx.resources:
        for token, prop in SECRET_PROPERTIES:
            if res.type != token or prop not in res.inputs:
                continue
            if res.type == "aws:ssm/parameter:Parameter" and \
                    value(res, "type") != "SecureString":
                continue
            planned = res.inputs[prop]
            leaked = planned != SECRET_MASK and (
                not isinstance(planned, dict)
                or any(v != SECRET_MASK for v in planned.values()))
            if leaked:
                yield ctx.error(res, prop, "carries a credential but is not a Pulumi secret; "
                                "pass it with pulumi.Output.secret or config.require_secret")
