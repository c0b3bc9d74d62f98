"""Secrets through the whole path: a sentinel value, distinct from every mask and
placeholder, given as `pulumi up` gives it (decrypted, flagged secret), never reaches the
plan's tree, JSON, outputs, messages or findings; and the placeholder is not the mask."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from config.secrets import UNKNOWN_SECRET
from planner import preflight
from planner.engine import plan_stack
from planner.mocks import SECRET_MASK
from planner.render import print_findings, print_plans

# Valid for each key's format, and unlike anything the program or the mocks write.
SENTINELS = {
    "sofacover:redisAuthToken": "S3ntinelRedis0TokenQ7x9Zk2Lm4",
    "sofacover:dbAppPassword": "S3ntinel-db-app-Wq8Rt5Yu",
    "sofacover:pgbouncerAdminPassword": "S3ntinel-pgb-admin-Jh6Kl3",
    "sofacover:pgbouncerStatsPassword": "S3ntinel-pgb-stats-Zx1Cv9",
}


def test_the_offline_placeholder_is_not_the_plans_mask():
    assert UNKNOWN_SECRET != SECRET_MASK


@pytest.fixture(scope="module")
def planned_with_sentinels(project):
    # Phase 2: the secrets reach RDS, ElastiCache, Kubernetes Secrets (PgBouncer's auth
    # file, the partition job) and the exporter's connection string.
    return plan_stack(project, "prod", phase=2, secret_values=SENTINELS)


def test_sentinel_secrets_never_reach_tree_json_outputs_messages_or_findings(
        planned_with_sentinels):
    plan = planned_with_sentinels
    buffer = io.StringIO()
    console = Console(file=buffer, width=400, color_system=None)
    print_plans([plan], console)
    print_findings(preflight.check([plan]), console)
    texts = {"tree": buffer.getvalue(), "json": json.dumps(plan.as_json()),
             "messages": "\n".join(plan.messages)}
    for where, text in texts.items():
        for key, sentinel in SENTINELS.items():
            # Also no fragment long enough to recover it, URL-encoded or not.
            assert sentinel[:12] not in text, f"{key} leaks into the {where}"


def test_the_secret_inputs_arrive_masked_so_the_program_passed_them_as_secrets(
        planned_with_sentinels):
    by_type = {}
    for res in planned_with_sentinels.resources:
        by_type.setdefault(res.type, []).append(res)
    (group,) = by_type["aws:elasticache/replicationGroup:ReplicationGroup"]
    assert group.inputs["authToken"] == SECRET_MASK
    secrets = by_type["kubernetes:core/v1:Secret"]
    assert secrets
    for secret in secrets:
        payload = secret.inputs.get("stringData", secret.inputs.get("data"))
        values = payload.values() if isinstance(payload, dict) else [payload]
        assert all(v == SECRET_MASK for v in values), secret.name


def test_a_sentinel_of_the_wrong_format_is_refused_without_showing_it(project):
    from config import ConfigError

    bad = {**SENTINELS, "sofacover:redisAuthToken": "S3ntinel+base64/="}
    with pytest.raises(ConfigError) as caught:
        plan_stack(project, "prod", secret_values=bad)
    (problem,) = caught.value.problems
    assert "sofacover:redisAuthToken does not have the format" in problem
    assert "S3ntinel" not in problem
