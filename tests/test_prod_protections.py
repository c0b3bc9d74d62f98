"""What matters in prod, on the whole program's plan of every prod stack at every phase:
protections of stateful data, encryption, flow logs, IMDSv2, TLS, asserted as literal
values (not the modules' own constants), so a wiring slip in __main__.py or a weakened
default fails here even when every component test passes."""

from __future__ import annotations

import re

import pytest

from policy.rules import PROTECT_NOT_REQUIRED, RULES, STATEFUL_TYPES, UNPROTECTED_BY_DESIGN
from tests.conftest import of_type

TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"  # AWS's TLS 1.3 + 1.2, forward secrecy only


@pytest.fixture(scope="module", params=[1, 2, 3])
def phase_plans(request, prod, prod_phase2, prod_phase3):
    return request.param, {1: prod, 2: prod_phase2, 3: prod_phase3}[request.param]


def _all(plans, token):
    return [(p.stack, r) for p in plans.values() for r in of_type(p.resources, token)]


def test_every_database_is_protected_encrypted_and_kept(phase_plans):
    phase, plans = phase_plans
    dbs = _all(plans, "aws:rds/instance:Instance")
    assert dbs, phase
    for stack, db in dbs:
        where = f"phase {phase} {stack}"
        assert db.options["protect"] is True, where
        assert db.inputs["deletionProtection"] is True, where
        assert db.inputs["storageEncrypted"] is True and db.inputs["kmsKeyId"], where
        assert db.inputs["multiAz"] is True, where
        assert db.inputs["publiclyAccessible"] is False, where
        if db.inputs.get("replicateSourceDb"):
            # A read replica takes no final snapshot (RDS refuses one); its key is its region's.
            assert f":{db.region}:" in db.inputs["kmsKeyId"], where
        else:
            assert db.inputs["backupRetentionPeriod"] == 30, where
            assert db.inputs["skipFinalSnapshot"] is False, where
            assert db.inputs["finalSnapshotIdentifier"], where
            assert db.inputs["deleteAutomatedBackups"] is False, where


def test_the_primary_database_replicates_its_backups_to_another_region(prod):
    (replication,) = of_type(prod["prod"].resources, "aws:rds/instanceAutomatedBackupsReplication:"
                             "InstanceAutomatedBackupsReplication")
    assert replication.region == "us-west-2"
    assert replication.inputs["retentionPeriod"] == 30
    assert ":us-west-2:" in replication.inputs["kmsKeyId"]


def test_every_cache_is_protected_encrypted_and_snapshotted(phase_plans):
    phase, plans = phase_plans
    caches = _all(plans, "aws:elasticache/replicationGroup:ReplicationGroup")
    assert caches, phase
    for stack, cache in caches:
        assert cache.options["protect"] is True, stack
        assert cache.inputs["atRestEncryptionEnabled"] is True, stack
        assert cache.inputs["transitEncryptionEnabled"] is True, stack
        assert cache.inputs["kmsKeyId"], stack
        assert cache.inputs["finalSnapshotIdentifier"], stack
        assert cache.inputs["snapshotRetentionLimit"] >= 1, stack
        assert cache.inputs["authToken"] == "[secret]", stack


def test_every_vpc_has_flow_logs_of_all_traffic(phase_plans):
    _, plans = phase_plans
    for plan in plans.values():
        vpcs = of_type(plan.resources, "aws:ec2/vpc:Vpc")
        logs = of_type(plan.resources, "aws:ec2/flowLog:FlowLog")
        assert len(logs) == len(vpcs), plan.stack
        assert all(log.inputs["trafficType"] == "ALL" for log in logs), plan.stack


def test_every_launch_template_requires_imdsv2_and_encrypts_its_volumes(phase_plans):
    _, plans = phase_plans
    for stack, lt in _all(plans, "aws:ec2/launchTemplate:LaunchTemplate"):
        assert lt.inputs["metadataOptions"]["httpTokens"] == "required", stack
        assert lt.inputs["metadataOptions"]["httpPutResponseHopLimit"] <= 2, stack
        for mapping in lt.inputs["blockDeviceMappings"]:
            assert mapping["ebs"]["encrypted"] in (True, "true"), stack


def test_every_listener_is_https_with_the_modern_policy_or_redirects_to_it(phase_plans):
    _, plans = phase_plans
    listeners = _all(plans, "aws:lb/listener:Listener")
    assert listeners
    for stack, listener in listeners:
        if listener.inputs["protocol"] == "HTTPS":
            assert listener.inputs["sslPolicy"] == TLS_POLICY, stack
        else:
            (action,) = listener.inputs["defaultActions"]
            assert action["type"] == "redirect", stack
            assert action["redirect"]["protocol"] == "HTTPS", stack


def test_every_kms_key_rotates_and_topic_and_bucket_are_encrypted(phase_plans):
    _, plans = phase_plans
    for stack, key in _all(plans, "aws:kms/key:Key"):
        assert key.inputs["enableKeyRotation"] is True, stack
    for stack, topic in _all(plans, "aws:sns/topic:Topic"):
        assert topic.inputs["kmsMasterKeyId"], stack
    for stack, block in _all(plans, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"):
        assert all(block.inputs[k] is True for k in ("blockPublicAcls", "blockPublicPolicy",
                                                      "ignorePublicAcls",
                                                      "restrictPublicBuckets")), stack


# --- connection budgets, read from what the plan would deploy ------------------------------

RESERVED = 3  # PostgreSQL's superuser_reserved_connections default


def _ini_value(ini: str, key: str) -> int:
    (line,) = [ln for ln in ini.splitlines() if ln.split("=")[0].strip() == key]
    return int(line.split("=", 1)[1])


def _max_connections(plan) -> int:
    (group,) = of_type(plan.resources, "aws:rds/parameterGroup:ParameterGroup")
    (param,) = [p for p in group.inputs["parameters"] if p["name"] == "max_connections"]
    return int(param["value"])


def test_ec2_sidecars_at_full_scale_out_fit_the_databases_connections(prod):
    plan = prod["prod"]
    (ini,) = [r for r in of_type(plan.resources, "aws:ssm/parameter:Parameter")
              if r.inputs["name"].endswith("/pgbouncer.ini")]
    per_instance = _ini_value(ini.inputs["insecureValue"], "max_db_connections")
    (group,) = of_type(plan.resources, "aws:autoscaling/group:Group")
    # Every instance the group may launch runs a sidecar with its own pools.
    assert per_instance * group.inputs["maxSize"] <= _max_connections(plan) - RESERVED
    assert per_instance >= 1


def test_kubernetes_pgbouncer_pods_during_a_rollout_fit_the_databases_connections(
        prod_phase2):
    plan = prod_phase2["prod"]
    by_urn = {r.urn: r for r in plan.resources}
    (config,) = [r for r in of_type(plan.resources, "kubernetes:core/v1:ConfigMap")
                 if "pgbouncer.ini" in (r.inputs.get("data") or {})]
    per_pod = _ini_value(config.inputs["data"]["pgbouncer.ini"], "max_db_connections")
    (deployment,) = [r for r in of_type(plan.resources, "kubernetes:apps/v1:Deployment")
                     if by_urn[r.parent].type == "sofacover:pgbouncer:PgBouncer"]
    spec = deployment.inputs["spec"]
    surge = spec["strategy"]["rollingUpdate"]["maxSurge"]
    assert isinstance(surge, int), "a percentage surge makes the pod count unbounded here"
    pods = spec["replicas"] + surge
    assert per_pod * pods <= _max_connections(plan) - RESERVED


# --- every stateful resource type, walked ---------------------------------------------------

# A property name that says a resource holds data (or copies of it).
DATA_HINT = re.compile(r"snapshot|backup|storage|retention|volumeSize|persistentVolumeClaim|"
                       r"volumeClaimTemplates", re.IGNORECASE)

HOLDS_NO_DATA_TO_PROTECT = {
    **PROTECT_NOT_REQUIRED,  # data holders the pack exempts from `protect`, with the reason
    "aws:ec2/launchTemplate:LaunchTemplate":
        "root volumes of disposable instances (deleteOnTermination), rebuilt from the image",
    "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication":
        "copies of the protected primary's backups; their retention is tested above",
    "kubernetes:helm.sh/v3:Release":
        "the monitoring chart's metrics retention: operational history, not business data",
}
"""Types whose properties look like data but hold none that outlives the stack, and why."""


def _keys(value):
    if isinstance(value, dict):
        for key, inner in value.items():
            yield key
            yield from _keys(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _keys(inner)


def test_every_type_that_holds_data_is_a_known_stateful_type(phase_plans):
    """A new resource type with snapshot, backup, storage or retention properties fails
    here until it is a data holder (planner/data/replace_manual.yaml `data_holders`, which
    policy/rules.py STATEFUL_TYPES reads, so it is protected in prod) or listed above with
    the reason it holds nothing to protect."""
    phase, plans = phase_plans
    unknown = {r.type for p in plans.values() for r in p.resources
               if not r.read and any(DATA_HINT.search(k) for k in _keys(r.inputs))
               and r.type not in STATEFUL_TYPES and r.type not in HOLDS_NO_DATA_TO_PROTECT}
    assert unknown == set(), f"phase {phase}: stateful types the walk does not know"


def test_every_prod_resource_of_a_stateful_type_is_protected(phase_plans):
    phase, plans = phase_plans
    walked = set()
    for stack, plan in plans.items():
        for res in plan.resources:
            if res.read or res.type not in STATEFUL_TYPES:
                continue
            walked.add(res.type)
            where = f"phase {phase} {stack} {res.name}"
            if res.type in UNPROTECTED_BY_DESIGN:
                # S3 refuses to delete a bucket that holds objects unless forceDestroy.
                flag = UNPROTECTED_BY_DESIGN[res.type]
                assert res.options["protect"] or res.inputs.get(flag) is False, where
            elif res.type == "aws:kms/key:Key":
                # A key is as stateful as what it encrypts (policy rule prod-data-keys-protected).
                users = [r for r in plan.resources if r.type in STATEFUL_TYPES
                         and res.outputs.get("arn") in (r.inputs.get("kmsKeyId"),
                                                        r.inputs.get("kmsMasterKeyId"))]
                assert not users or res.options["protect"] is True, where
                assert res.inputs["deletionWindowInDays"] == 30, where
            else:
                assert res.options["protect"] is True, where
    expected = {"aws:rds/instance:Instance", "aws:kms/key:Key", "aws:s3/bucket:Bucket"}
    assert expected <= walked, phase
    if phase == 1:
        assert "aws:elasticache/replicationGroup:ReplicationGroup" in walked


def test_the_walk_and_the_policy_pack_know_the_same_stateful_types():
    # One list: the pack's rule and this walk read policy/rules.py STATEFUL_TYPES.
    (rule,) = [r for r in RULES if r.name == "prod-stateful-protected"]
    assert set(rule.types) | {"aws:kms/key:Key"} == set(STATEFUL_TYPES)
