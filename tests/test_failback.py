"""Failback (docs/runbook-dr.md, F1-F7): us-east-1 takes writes again after a failover to
us-west-2. Each step is a config change, planned and diffed against the step before it (as
tests/test_global.py does for the failover): what is created, changed and deleted; nothing
that holds data replaced; a data holder deleted only in F7, the runbook's explicit step.

Provider facts the steps rest on:
- a standalone instance cannot be made a replica again: terraform-provider-aws refuses a
  new replicate_source_db ("cannot elect new source database for replication",
  internal/service/rds resourceInstanceUpdate, v6.58.0); so failback builds a NEW replica
  (database.generation) beside the old primary;
- a cross-region replica takes the source's ARN and, encrypted, a KMS key of its own region
  (pulumi_aws 7.51.1 rds.Instance `replicate_source_db` docstring; RDS user guide
  USER_ReadRepl.html); its source needs automated backups, which the promoted secondary has;
- removing replicate_source_db promotes the replica in place (the same resourceInstanceUpdate:
  PromoteReadReplica), which F3 uses as the failover's step 1 does.
"""

from __future__ import annotations

import re

import pytest
import yaml

from config import ConfigError, seed
from planner import diff as plan_diff
from planner.cli import plan_stacks
from planner.engine import plan_stack
from planner.project import Project
from tests.conftest import ROOT, of_type
from tests.test_global import (
    ALARM,
    CONFIG_MAP,
    PROMOTED,
    RDS,
    _diff,
    _references,
    copy_project,
    endpoints_of,
    ini_of,
    pool_line,
    set_config,
)

HOME = seed.PRIMARY_REGION
# At phase 3 every secondary holds a replica; these two copied the lost primary and were
# never promoted.
ORPHANS = [s for s in (f"prod-{r}" for r in seed.SECONDARY_REGIONS) if s != PROMOTED]
ORPHAN = ORPHANS[0]
KEY = "aws:kms/key:Key"
LOG = "aws:cloudwatch/logGroup:LogGroup"
BACKUP_COPY = "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication"
FAILBACK = {"generation": 2, "retain": [1], "replicateFrom": PROMOTED}
HOMECOMING = {"generation": 2, "retain": [1]}

# The runbook's failback steps: id, stack, what changes, the test that checks its plan.
# docs/runbook-dr.md lists the same rows (test_runbook_lists_the_failback_steps_in_order).
STEPS = [
    ("F1", "prod", "test_f1_builds_the_new_primary_as_a_replica_beside_the_old_one"),
    ("F2", "-", "test_f1_builds_the_new_primary_as_a_replica_beside_the_old_one"),
    ("F3", "prod", "test_f3_promotes_the_new_primary_and_moves_writes_home"),
    ("F4", "prod-edge", "test_f4_the_edge_serves_from_home_and_drains_the_old_writer"),
    ("F5", "prod-us-west-2", "test_f5_rebuilds_the_promoted_region_as_a_replica_beside_it"),
    *[("F5", s, "test_f5_replaces_an_orphaned_replica_deleting_only_it") for s in ORPHANS],
    ("F6", "prod-edge", "test_f6_undrain_returns_the_edge_to_the_phase3_plan"),
    ("F7", "prod", "test_f7_deletes_a_retained_generation_only_when_it_leaves_retain"),
    ("F7", "prod-us-west-2",
     "test_f7_deletes_a_retained_generation_only_when_it_leaves_retain"),
]


def database_urns(plan, component: str) -> set[str]:
    """URNs of a Database component and its children (named after it)."""
    return {r.urn for r in plan.resources if "sofacover:database:Database" in r.urn
            and (r.name == component or r.name.startswith(component + "-"))}


def db_of(plan, identifier_prefix: str):
    (db,) = [r for r in of_type(plan.resources, RDS)
             if r.inputs["identifier"] == f"{identifier_prefix}-db"]
    return db


@pytest.fixture(scope="module")
def steps(tmp_path_factory, prod_phase3):
    """The failover (steps 1-2 of the runbook), then failback F1-F7, each stack planned as
    `pulumi up` would run it: the stacks it reads answered by the plans before it."""
    root = copy_project(tmp_path_factory.mktemp("failback"))
    for stack in prod_phase3:
        set_config(root, stack, phase=3)
    project = Project(root)
    edge = yaml.safe_load((root / "Pulumi.prod-edge.yaml").read_text())["config"][
        "sofacover:edge"]
    p0 = prod_phase3
    out: dict[str, dict] = {"0": dict(p0)}

    def plan(stack, *refs):
        return plan_stack(project, stack, references=_references(*refs))

    # failover, as in tests/test_global.py
    set_config(root, PROMOTED, promote=True)
    promoted = plan(PROMOTED, p0["prod"])
    drain_home = [HOME, *[r for r in seed.SECONDARY_REGIONS if f"prod-{r}" != PROMOTED]]
    set_config(root, "prod-edge", edge={**edge, "drain": drain_home})
    out["2"] = {**p0, PROMOTED: promoted,
                "prod-edge": plan("prod-edge", p0["prod"], promoted,
                                  *[p0[s] for s in p0 if s not in ("prod", PROMOTED,
                                                                   "prod-edge")])}
    # F1: the new primary, a replica of the promoted database
    set_config(root, "prod", database=FAILBACK)
    out["F1"] = {**out["2"], "prod": plan("prod", promoted)}
    # F1, as `sofacover plan --env prod` plans it (the rollout's failback exception)
    out["F1-env"] = {p.stack: p for p in plan_stacks(project, env="prod")}
    # F3: promote it (replicateFrom goes in the same change)
    set_config(root, "prod", database=HOMECOMING, promote=True)
    home = plan("prod")
    out["F3"] = {**out["F1"], "prod": home}
    others = [p0[s] for s in p0 if s not in ("prod", PROMOTED, "prod-edge")]
    # F4: the edge serves from home, drains us-west-2 (its writes still go to itself)
    drain_west = list(seed.SECONDARY_REGIONS)
    set_config(root, "prod-edge", edge={**edge, "drain": drain_west})
    out["F4"] = {**out["F3"], "prod-edge": plan("prod-edge", home, promoted, *others)}
    # F5: us-west-2 rebuilt as a replica of the new primary; the promoted one retained
    set_config(root, PROMOTED, promote=False, database=HOMECOMING)
    west = plan(PROMOTED, home)
    orphans = {}
    for stack in ORPHANS:
        set_config(root, stack, database={"generation": 2})
        orphans[stack] = plan(stack, home)
    out["F5"] = {**out["F4"], PROMOTED: west, **orphans}
    # F6: undrain
    set_config(root, "prod-edge", edge=edge)
    out["F6"] = {**out["F5"], "prod-edge": plan("prod-edge", home, west, *orphans.values())}
    # F7: the retained generations leave `retain`: deleted, on purpose
    set_config(root, "prod", database={"generation": 2})
    set_config(root, PROMOTED, database={"generation": 2})
    out["F7"] = {**out["F6"], "prod": plan("prod"), PROMOTED: plan(PROMOTED, home)}
    return out


def test_f1_builds_the_new_primary_as_a_replica_beside_the_old_one(steps, tmp_path):
    before, after = steps["2"]["prod"], steps["F1"]["prod"]
    d = _diff(after, before, tmp_path, "f1")
    assert plan_diff.destroying([d]) == []
    ops = {(r.op, r.type) for r in d.resources}
    # creates, and the dashboard (an update) that now also shows the replica
    assert {op for op, _ in ops} == {"create", "update"}, sorted(ops)
    assert not [r.line() for r in d.resources if r.op == "update"
                and r.type != "aws:cloudwatch/dashboard:Dashboard"]
    created = {r.urn for r in d.resources if r.op == "create"}
    new = database_urns(after, "sofacover-prod-database-g2")
    alarms = {r.urn for r in d.resources if r.op == "create" and r.type == ALARM}
    source = {r.urn for r in d.resources if r.type == "pulumi:pulumi:StackReference"}
    assert [u.rsplit("::", 1)[1] for u in source] == [f"{PROMOTED}-ref"]
    assert created == new | alarms | source
    # the replica: of the promoted database, by ARN, with a key of its own region
    replica = db_of(after, "sofacover-prod-database-g2")
    assert replica.inputs["replicateSourceDb"] == steps["2"][PROMOTED].outputs["dbArn"]
    assert replica.region == HOME and replica.options["protect"] is True
    (key,) = [r for r in of_type(after.resources, KEY)
              if r.name == "sofacover-prod-database-g2-kms"]
    assert key.region == HOME and replica.inputs["kmsKeyId"].endswith(f":key/{key.id}")
    assert f":kms:{HOME}:" in replica.inputs["kmsKeyId"]
    assert "backupRetentionPeriod" not in replica.inputs  # a replica: AWS refuses them
    assert not [r for r in of_type(after.resources, BACKUP_COPY)
                if r.name.startswith("sofacover-prod-database-g2")]
    # its ReplicaLag is watched: F2 waits for it to reach zero
    assert [r for r in d.resources if r.op == "create" and r.type == ALARM
            and "replica" in r.name]
    # nothing else moves: the stack's outputs and PgBouncer stay with generation 1
    for key_ in ("dbArn", "dbAddress", "dbIdentifier"):
        assert after.outputs[key_] == before.outputs[key_], key_
    assert ini_of(after) == ini_of(before)
    assert after.outputs["failbackDbIdentifier"] == "sofacover-prod-database-g2-db"


def test_f1_plans_with_the_environment_through_the_failback_exception(steps):
    env = steps["F1-env"]
    # `sofacover plan --env prod`: the primary reads the promoted secondary deployed after
    # it; its replica's source is that stack's planned database
    replica = db_of(env["prod"], "sofacover-prod-database-g2")
    assert replica.inputs["replicateSourceDb"] == env[PROMOTED].outputs["dbArn"]
    assert env[PROMOTED].outputs["promoted"] is True


def test_f3_promotes_the_new_primary_and_moves_writes_home(steps, tmp_path):
    before, after = steps["F1"]["prod"], steps["F3"]["prod"]
    d = _diff(after, before, tmp_path, "f3")
    assert plan_diff.destroying([d]) == []
    ops = {(r.op, r.type) for r in d.resources}
    assert {op for op, _ in ops} <= {"create", "update", "delete", "replace"}
    # the replica's alarms, and the reference to the source it no longer reads
    deleted = {t for op, t in ops if op == "delete"}
    assert deleted == {ALARM, "pulumi:pulumi:StackReference"}, sorted(ops)
    assert {t for op, t in ops if op == "replace"} <= {CONFIG_MAP}, sorted(ops)
    # the instance is promoted in place: replicateSourceDb dropped, backups on
    (db,) = [r for r in d.resources if r.type == RDS]
    assert db.op == "update" and db.name == "sofacover-prod-database-g2-db"
    paths = {c.path for c in db.changes}
    assert {"replicateSourceDb", "backupRetentionPeriod", "manageMasterUserPassword",
            "finalSnapshotIdentifier"} <= paths
    promoted = db_of(after, "sofacover-prod-database-g2")
    assert promoted.inputs["backupRetentionPeriod"] == after.config.database.backup_retention_days
    # engine, user and database name came from the source: naming them would replace
    assert not {"engine", "username", "dbName"} & set(promoted.inputs)
    # the copy of its backups in another region, as generation 1 had
    assert [r for r in d.resources if r.op == "create" and r.type == BACKUP_COPY]
    # generation 1 (the old primary) is untouched
    old = database_urns(after, "sofacover-prod-database")
    old -= database_urns(after, "sofacover-prod-database-g2")
    assert old and not [r.line() for r in d.resources if r.urn in old]
    assert db_of(after, "sofacover-prod-database").options["protect"] is True
    # writes come home: outputs and PgBouncer's pool name generation 2
    assert "sofacover-prod-database-g2-db" in after.outputs["dbArn"]
    assert after.outputs["dbIdentifier"] == "sofacover-prod-database-g2-db"
    assert pool_line(ini_of(after), "sofacover")["host"] == after.outputs["dbAddress"]
    assert after.outputs["dbAddress"] == before.outputs["failbackDbAddress"]
    assert "failbackDbIdentifier" not in after.outputs


def test_f4_the_edge_serves_from_home_and_drains_the_old_writer(steps, tmp_path):
    d = _diff(steps["F4"]["prod-edge"], steps["F3"]["prod-edge"], tmp_path, "f4")
    assert d.resources and {r.op for r in d.resources} == {"update"}
    assert steps["F4"]["prod-edge"].outputs["drainedRegions"] == list(seed.SECONDARY_REGIONS)


def test_f5_rebuilds_the_promoted_region_as_a_replica_beside_it(steps, tmp_path):
    before, after = steps["F4"][PROMOTED], steps["F5"][PROMOTED]
    d = _diff(after, before, tmp_path, "f5")
    assert plan_diff.destroying([d]) == []
    ops = {(r.op, r.type) for r in d.resources}
    assert {t for op, t in ops if op == "delete"} <= {ALARM}, sorted(ops)
    assert {t for op, t in ops if op == "replace"} <= {CONFIG_MAP}, sorted(ops)
    # the promoted database (generation 1) is kept as it was: not in the diff at all
    kept = database_urns(after, f"sofacover-{PROMOTED}-database") - database_urns(
        after, f"sofacover-{PROMOTED}-database-g2")
    assert kept and not [r.line() for r in d.resources if r.urn in kept]
    assert db_of(after, f"sofacover-{PROMOTED}-database").options["protect"] is True
    # the new replica, of the new primary
    replica = db_of(after, f"sofacover-{PROMOTED}-database-g2")
    home = steps["F3"]["prod"]
    assert replica.inputs["replicateSourceDb"] == home.outputs["dbArn"]
    assert {r.urn for r in d.resources if r.op == "create" and r.type != ALARM} == \
        database_urns(after, f"sofacover-{PROMOTED}-database-g2")
    # PgBouncer writes home across the peering and reads the new replica
    ini = ini_of(after)
    assert pool_line(ini, "sofacover")["host"] == home.outputs["dbAddress"]
    assert pool_line(ini, "sofacover_ro")["host"] == after.outputs["dbAddress"]
    assert after.outputs["dbAddress"] != before.outputs["dbAddress"]
    assert after.outputs["dbIdentifier"] == f"sofacover-{PROMOTED}-database-g2-db"
    assert endpoints_of(after)["SOFACOVER_WRITE_REGION"] == HOME
    assert after.outputs["promoted"] is False


@pytest.mark.parametrize("stack", ORPHANS)
def test_f5_replaces_an_orphaned_replica_deleting_only_it(steps, tmp_path, stack):
    # It replicated from the lost primary: its replica is rebuilt from the new one, and the
    # old replica (a copy of generation 1, which prod keeps) is deleted: the only data
    # holders F5 deletes, flagged, protected, and named in the runbook
    before, after = steps["0"][stack], steps["F5"][stack]
    d = _diff(after, before, tmp_path, f"f5-{stack}")
    gone = plan_diff.destroying([d])
    old = database_urns(before, f"sofacover-{stack}-database")
    assert {r.urn for r in d.resources if r.op == "delete"} == old
    assert {r.op for r in gone} == {"delete"} and {r.type for r in gone} == {RDS, LOG}
    # its KMS key leaves the stack but stays in KMS (retain_on_delete): nothing it
    # encrypted becomes unreadable
    (key,) = [r for r in d.resources if r.type == KEY and r.op == "delete"]
    assert key.destroys is None
    assert [r for r in gone if r.type == RDS and r.protected]
    assert not [r.line() for r in d.resources if r.op == "replace" and r.type != CONFIG_MAP]
    assert db_of(after, f"sofacover-{stack}-database-g2").inputs["replicateSourceDb"] == \
        steps["F3"]["prod"].outputs["dbArn"]
    # its write pool named generation 1's address: now the new primary's
    assert pool_line(ini_of(after), "sofacover")["host"] == steps["F3"]["prod"].outputs[
        "dbAddress"] != steps["0"]["prod"].outputs["dbAddress"]


def test_f6_undrain_returns_the_edge_to_the_phase3_plan(steps, tmp_path):
    assert _diff(steps["F6"]["prod-edge"], steps["0"]["prod-edge"], tmp_path,
                 "f6").resources == []
    back = _diff(steps["F6"]["prod-edge"], steps["F4"]["prod-edge"], tmp_path, "f6b")
    assert {r.op for r in back.resources} == {"update"}


@pytest.mark.parametrize("stack, prefix", [
    ("prod", "sofacover-prod-database"),
    (PROMOTED, f"sofacover-{PROMOTED}-database"),
])
def test_f7_deletes_a_retained_generation_only_when_it_leaves_retain(steps, tmp_path, stack,
                                                                    prefix):
    before, after = steps["F6"][stack], steps["F7"][stack]
    d = _diff(after, before, tmp_path, f"f7-{stack}")
    old = database_urns(before, prefix) - database_urns(before, f"{prefix}-g2")
    assert {r.urn for r in d.resources if r.op == "delete"} == old
    assert {r.op for r in d.resources} == {"delete"}
    gone = plan_diff.destroying([d])
    assert {r.type for r in gone} == {RDS, LOG}
    (db,) = [r for r in gone if r.type == RDS]
    # its keys leave the stack but stay in KMS (retain_on_delete): the final snapshot and
    # the replicated backups, encrypted under them, stay readable
    keys = [r for r in d.resources if r.type == KEY]
    assert keys and all(k.destroys is None for k in keys)
    assert all(r.options["retain_on_delete"] for r in of_type(before.resources, KEY)
               if r.urn in old)
    # a final snapshot first (the runbook takes it by hand too), and protect must be lifted
    assert db.protected
    assert db_of(before, prefix).inputs["finalSnapshotIdentifier"] == f"{prefix}-final"
    assert db_of(before, prefix).inputs["skipFinalSnapshot"] is False


# -- config rules -----------------------------------------------------------------------------

@pytest.mark.parametrize("values, key, message", [
    ({"database": {"replicateFrom": PROMOTED}}, "database.replicateFrom",
     "generation is 1"),
    ({"database": {"generation": 2}}, "database.generation", "neither"),
    ({"database": {"generation": 2, "replicateFrom": PROMOTED}}, "database.retain",
     "is empty"),
    ({"database": {"generation": 2, "retain": [2], "replicateFrom": PROMOTED}},
     "database.retain", "earlier generation"),
    ({"database": {**FAILBACK, "replicateFrom": "prod"}}, "database.replicateFrom",
     "this stack itself"),
    ({"database": FAILBACK, "promote": True}, "database.replicateFrom",
     "remove replicateFrom"),
    ({"promote": True}, "promote", "generation is 1"),
    ({"database": FAILBACK}, None, None),
    ({"database": HOMECOMING, "promote": True}, None, None),
])
def test_primary_failback_config(tmp_path, values, key, message):
    project = Project(copy_project(tmp_path))
    set_config(project.root, "prod", **values)
    if key is None:
        project.stack_config("prod", 3)
        return
    with pytest.raises(ConfigError) as exc:
        project.stack_config("prod", 3)
    (problem,) = exc.value.problems
    assert f"sofacover:{key}" in problem and message in problem, problem


def test_only_the_primary_replicates_from_another_stack(tmp_path):
    project = Project(copy_project(tmp_path))
    set_config(project.root, "prod-eu-west-1", database={"replicateFrom": PROMOTED})
    with pytest.raises(ConfigError, match="replicateFrom.*only the primary"):
        project.stack_config("prod-eu-west-1", 3)


def test_dev_has_no_later_generation(tmp_path):
    project = Project(copy_project(tmp_path))
    assert project.stack_config("dev").database.generation == 1
    set_config(project.root, "dev", database={"generation": 2, "retain": [1]})
    with pytest.raises(ConfigError, match="database.generation.*'all-in-one'"):
        project.stack_config("dev")


def test_the_primary_reads_a_later_stack_only_while_it_is_promoted(tmp_path):
    project = Project(copy_project(tmp_path))
    set_config(project.root, "prod", database=FAILBACK)
    with pytest.raises(ConfigError) as exc:
        project.rollout("prod", 3)
    (problem,) = [p for p in exc.value.problems if "replicateFrom" in p]
    assert "only during failback" in problem and "sofacover:promote true" in problem
    set_config(project.root, PROMOTED, promote=True)
    assert [c.stack for c in project.rollout("prod", 3)][0] == "prod"
    # the exception is this key and this case only: the edge is never a source
    set_config(project.root, "prod", database={**FAILBACK, "replicateFrom": "prod-edge"})
    with pytest.raises(ConfigError, match="only during failback"):
        project.rollout("prod", 3)


# -- the runbook ------------------------------------------------------------------------------

def test_runbook_lists_the_failback_steps_in_order():
    text = (ROOT / "docs" / "runbook-dr.md").read_text()
    section = text[text.index("## Failback"):text.index("## What this runbook does not do")]
    rows = re.findall(r"^\| (F\d) \| `?([\w-]+)`? \| .* \| `tests/test_failback.py::"
                      r"(test_\w+)` \|$", section, re.MULTILINE)
    assert rows == STEPS
    for _, _, name in rows:
        assert name in globals(), name
    # the config each step sets is the one planned above
    assert "replicateFrom: prod-us-west-2" in section and "generation: 2" in section
    assert "retain: [1]" in section and "sofacover:promote true" in section
    # F7, and only F7, destroys data (F5's orphaned replica says so: its own flag)
    steps_text = section[section.index("\nF1."):]
    assert "--allow-destroy" in steps_text[steps_text.index("\nF7."):]
    assert "--allow-destroy" not in steps_text[:steps_text.index("\nF5.")]
