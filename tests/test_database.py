"""The Database component (primary, replica, promoted), built under the recording mocks."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pytest

from components.database import (
    GP3_LARGE_BASELINE_IOPS,
    GP3_SMALL_IOPS,
    LOG_EXPORTS,
    Database,
    DatabaseArgs,
    parameter_family,
)
from config.models import DatabaseConfig
from config.presets import PHASES
from tests.conftest import of_type

INSTANCE = "aws:rds/instance:Instance"
KEY = "aws:kms/key:Key"
PARAMS = "aws:rds/parameterGroup:ParameterGroup"
REPLICATION = ("aws:rds/instanceAutomatedBackupsReplication:"
               "InstanceAutomatedBackupsReplication")
PRIMARY_ARN = "arn:aws:rds:us-east-1:123456789012:db:sofacover-prod-db"
PASSWORD_KEYS = ("manageMasterUserPassword", "masterUserSecretKmsKeyId", "password",
                 "username", "dbName")
CFG = DatabaseConfig.model_validate(PHASES[1]["database"])


def args(**kw) -> DatabaseArgs:
    base = DatabaseArgs.from_config(CFG, vpc_id="vpc-0a1b2c3d4e5f67890",
                                    subnet_group_name="sofacover-db", protect=True,
                                    allowed_security_group_ids=["sg-0123456789abcdef0"])
    return DatabaseArgs(**{**base.__dict__, **kw})


def database(region: str | None = None, **kw):
    """The program building Database over `args(**kw)` (under a provider of `region` when
    given). The args are made here, so the `build` fixture's key is their value: a change
    that restates a default (`protect=True`) shares the default's build."""
    built = args(**kw)

    def fn() -> None:
        opts = None
        if region:
            provider = aws.Provider("aws-test", region=region)
            opts = pulumi.ResourceOptions(providers={"aws": provider})
        db = Database("db", built, opts)
        pulumi.export("arn", db.arn)
        pulumi.export("endpoint", db.endpoint)
        pulumi.export("secret", db.master_user_secret_arn)
    return fn


def only(resources, token):
    (res,) = of_type(resources, token)
    return res


# --- primary ---------------------------------------------------------------------------------

def test_primary_takes_engine_size_and_storage_from_config(build):
    db = only(build(database()).resources, INSTANCE)
    assert db.inputs["engine"] == "postgres"
    assert db.inputs["engineVersion"] == CFG.engine_version
    assert db.inputs["instanceClass"] == CFG.instance_class
    assert db.inputs["allocatedStorage"] == CFG.allocated_storage_gb
    assert db.inputs["maxAllocatedStorage"] == CFG.max_allocated_storage_gb
    assert db.inputs["iops"] == CFG.iops
    assert db.inputs["multiAz"] is CFG.multi_az is True
    assert db.inputs["backupRetentionPeriod"] == CFG.backup_retention_days
    assert db.inputs["backupWindow"]


def test_prod_primary_is_protected_with_deletion_protection_and_final_snapshot(build):
    res = build(database(protect=True)).resources
    db = only(res, INSTANCE)
    assert db.options["protect"] is True
    assert db.inputs["deletionProtection"] is True
    assert db.inputs["skipFinalSnapshot"] is False
    assert db.inputs["finalSnapshotIdentifier"] == "db-final"
    assert db.inputs["deleteAutomatedBackups"] is False
    assert all(k.options["protect"] for k in of_type(res, KEY))


def test_unprotected_primary_can_be_deleted_but_still_leaves_a_final_snapshot(build):
    db = only(build(database(protect=False)).resources, INSTANCE)
    assert db.options["protect"] is False
    assert db.inputs["deletionProtection"] is False
    assert db.inputs["skipFinalSnapshot"] is False


def test_primary_is_encrypted_with_its_own_rotating_key(build):
    res = build(database()).resources
    db = only(res, INSTANCE)
    key = next(k for k in of_type(res, KEY) if k.name == "db-kms")
    assert key.inputs["enableKeyRotation"] is True
    key_arn = f"arn:aws:kms:us-east-1:123456789012:key/{key.id}"
    assert db.inputs["storageEncrypted"] is True
    assert db.inputs["kmsKeyId"] == key_arn
    assert db.inputs["performanceInsightsKmsKeyId"] == key_arn
    assert db.inputs["masterUserSecretKmsKeyId"] == key_arn


def test_primary_keeps_the_master_password_in_secrets_manager(build):
    run = build(database())
    db = only(run.resources, INSTANCE)
    assert db.inputs["manageMasterUserPassword"] is True
    assert "password" not in db.inputs
    assert run.outputs["secret"].startswith("arn:aws:secretsmanager:us-east-1:")


def test_primary_has_insights_monitoring_iam_auth_and_log_exports(build):
    res = build(database()).resources
    db = only(res, INSTANCE)
    assert db.inputs["performanceInsightsEnabled"] is True
    assert db.inputs["monitoringInterval"] == 60
    assert db.inputs["iamDatabaseAuthenticationEnabled"] is True
    assert db.inputs["enabledCloudwatchLogsExports"] == LOG_EXPORTS == ["postgresql", "upgrade"]
    assert db.inputs["publiclyAccessible"] is False
    role = only(res, "aws:iam/role:Role")
    assert "monitoring.rds.amazonaws.com" in role.inputs["assumeRolePolicy"]
    assert db.inputs["monitoringRoleArn"].endswith(f"role/{role.id}")
    attach = only(res, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert attach.inputs["policyArn"] == (
        "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole")


def test_parameter_group_preloads_extensions_and_sets_max_connections(build):
    res = build(database()).resources
    params = only(res, PARAMS)
    values = {p["name"]: p for p in params.inputs["parameters"]}
    assert values["shared_preload_libraries"]["value"] == "pg_stat_statements,auto_explain"
    assert values["shared_preload_libraries"]["applyMethod"] == "pending-reboot"
    assert values["max_connections"]["value"] == str(CFG.max_connections)
    assert values["log_min_duration_statement"]["value"] == "500"
    assert values["auto_explain.log_min_duration"]["value"] == "500"
    assert params.inputs["family"] == "postgres16"
    assert only(res, INSTANCE).inputs["parameterGroupName"] == params.id


def test_parameter_group_is_named_by_prefix_so_a_family_upgrade_can_create_before_delete(build):
    params = only(build(database(engine_version="17")).resources, PARAMS)
    assert params.inputs["family"] == "postgres17"
    assert params.inputs["namePrefix"] == "db-postgres17-"
    assert "name" not in params.inputs
    assert params.options["delete_before_replace"] is False


@pytest.mark.parametrize(("version", "family"), [("16.11", "postgres16"), ("15", "postgres15")])
def test_parameter_family_comes_from_the_major_version(version, family):
    assert parameter_family(version) == family


def test_engine_version_is_the_major_only_with_automatic_minor_upgrades(build):
    # An AWS Health notice (quoted publicly): 16.5-16.8 can no longer be created; RDS moves
    # the instance on by itself, and the provider takes the major and reports engine_version_actual.
    assert CFG.engine_version == "16" and CFG.auto_minor_version_upgrade is True
    db = only(build(database()).resources, INSTANCE)
    assert db.inputs["engineVersion"] == "16"
    assert db.inputs["autoMinorVersionUpgrade"] is True
    assert only(build(database()).resources, PARAMS).inputs["family"] == "postgres16"


def test_a_minor_version_with_automatic_minor_upgrades_is_refused(build):
    with pytest.raises(ValueError, match="engine_version is 16.11, a minor version, but "
                                         "autoMinorVersionUpgrade is on"):
        build(database(engine_version="16.11"))


def test_a_minor_version_is_pinned_only_with_automatic_minor_upgrades_off(build):
    db = only(build(database(engine_version="16.11",
                             auto_minor_version_upgrade=False)).resources, INSTANCE)
    assert db.inputs["engineVersion"] == "16.11"
    assert db.inputs["autoMinorVersionUpgrade"] is False


@pytest.mark.parametrize("version", ["9.6", "latest", ""])
def test_parameter_family_refuses_what_is_not_a_supported_version(version):
    with pytest.raises(ValueError, match="engine_version"):
        parameter_family(version)


def test_security_group_admits_5432_only_from_the_given_sources(build):
    sg = only(build(database(allowed_cidrs=["10.20.0.0/16"])).resources,
              "aws:ec2/securityGroup:SecurityGroup")
    (rule,) = sg.inputs["ingress"]
    assert (rule["fromPort"], rule["toPort"], rule["protocol"]) == (5432, 5432, "tcp")
    assert rule["securityGroups"] == ["sg-0123456789abcdef0"]
    assert rule["cidrBlocks"] == ["10.20.0.0/16"]


def test_security_group_without_sources_admits_nothing(build):
    sg = only(build(database(allowed_security_group_ids=[])).resources,
              "aws:ec2/securityGroup:SecurityGroup")
    assert sg.inputs.get("ingress", []) == []


def test_database_is_never_open_to_the_internet(build):
    with pytest.raises(ValueError, match="0.0.0.0/0"):
        build(database(allowed_cidrs=["0.0.0.0/0"]))


def test_primary_replicates_its_backups_to_another_region_with_a_key_there(build):
    res = build(database(backup_replication_region="us-west-2")).resources
    rep = only(res, REPLICATION)
    db = only(res, INSTANCE)
    key = next(k for k in of_type(res, KEY) if k.name == "db-backup-kms")
    assert rep.region == key.region == "us-west-2"
    assert db.region == "us-east-1"
    assert rep.inputs["sourceDbInstanceArn"].startswith("arn:aws:rds:us-east-1:")
    assert rep.inputs["kmsKeyId"].startswith("arn:aws:kms:us-west-2:")


def test_backup_replication_into_the_databases_own_region_is_refused(build):
    with pytest.raises(Exception, match="own region"):
        build(database(backup_replication_region="us-east-1"))


def test_without_backup_replication_there_is_nothing_in_another_region(build):
    res = build(database(backup_replication_region=None)).resources
    assert not of_type(res, REPLICATION)
    assert {r.region for r in res if r.type.startswith("aws:")} == {"us-east-1"}


# --- storage rules ---------------------------------------------------------------------------

def test_autoscaling_ceiling_below_the_allocation_is_refused(build):
    with pytest.raises(ValueError, match="max_allocated_storage_gb is 400"):
        build(database(allocated_storage_gb=500, max_allocated_storage_gb=400))


def test_small_gp3_volume_gets_its_baseline_iops_and_does_not_send_iops(build):
    db = only(build(database(allocated_storage_gb=50, max_allocated_storage_gb=100,
                             iops=GP3_SMALL_IOPS)).resources, INSTANCE)
    assert "iops" not in db.inputs


def test_small_gp3_volume_cannot_promise_more_iops(build):
    with pytest.raises(ValueError, match="iops is 10000 but gp3 below 400"):
        build(database(allocated_storage_gb=100, max_allocated_storage_gb=200, iops=10_000))


def test_large_gp3_volume_below_its_baseline_is_refused(build):
    with pytest.raises(ValueError, match=f"starts at {GP3_LARGE_BASELINE_IOPS}"):
        build(database(iops=10_000))


# --- replica ---------------------------------------------------------------------------------

def replica(**kw):
    kw.setdefault("region", "eu-west-1")
    kw.setdefault("replicate_source_db", PRIMARY_ARN)
    return database(**kw)


def test_replica_replicates_from_the_primary_arn(build):
    db = only(build(replica()).resources, INSTANCE)
    assert db.inputs["replicateSourceDb"] == PRIMARY_ARN
    assert "engine" not in db.inputs and "engineVersion" not in db.inputs


def test_replica_has_its_own_kms_key_in_its_region(build):
    res = build(replica()).resources
    db = only(res, INSTANCE)
    key = only(res, KEY)
    assert key.region == db.region == "eu-west-1"
    assert db.inputs["kmsKeyId"] == f"arn:aws:kms:eu-west-1:123456789012:key/{key.id}"
    assert db.inputs["kmsKeyId"] != PRIMARY_ARN


def test_replica_has_no_master_password_settings_at_all(build):
    run = build(replica())
    db = only(run.resources, INSTANCE)
    assert not [k for k in PASSWORD_KEYS if k in db.inputs]
    assert run.outputs["secret"] is None


def test_primary_does_have_the_password_settings_a_replica_must_not(build):
    db = only(build(database()).resources, INSTANCE)
    assert all(k in db.inputs for k in PASSWORD_KEYS if k != "password")
    assert "password" not in db.inputs  # RDS generates and rotates it


def test_replica_has_its_own_subnet_group_parameter_group_and_monitoring(build):
    res = build(replica(subnet_group_name="sofacover-prod-eu-west-1-db")).resources
    db = only(res, INSTANCE)
    assert db.inputs["dbSubnetGroupName"] == "sofacover-prod-eu-west-1-db"
    params = only(res, PARAMS)
    assert params.region == "eu-west-1"
    values = {p["name"]: p["value"] for p in params.inputs["parameters"]}
    # A hot standby refuses to start with fewer connections than its primary.
    assert values["max_connections"] == str(CFG.max_connections)
    assert db.inputs["monitoringInterval"] == 60 and db.inputs["monitoringRoleArn"]
    assert db.inputs["performanceInsightsEnabled"] is True


def test_replica_takes_no_final_snapshot_and_no_backup_replication(build):
    res = build(replica()).resources
    db = only(res, INSTANCE)
    assert db.inputs["skipFinalSnapshot"] is True
    assert "finalSnapshotIdentifier" not in db.inputs
    assert not of_type(res, REPLICATION)


def test_replica_refuses_backup_replication(build):
    with pytest.raises(ValueError, match="only the primary replicates its backups"):
        build(replica(backup_replication_region="us-west-2"))


def test_every_child_of_a_replica_is_in_the_callers_region_and_provider(build):
    res = build(replica()).resources
    children = [r for r in res if r.type.startswith("aws:")]
    (component,) = of_type(res, "sofacover:database:Database")
    assert all(r.parent == component.urn for r in children)
    assert all(r.region == "eu-west-1" and "aws-test" in r.provider for r in children)


# --- promotion -------------------------------------------------------------------------------

def test_promoted_replica_drops_its_source_and_turns_backups_and_the_password_on(build):
    res = build(database(region="eu-west-1", promote=True)).resources
    db = only(res, INSTANCE)
    assert "replicateSourceDb" not in db.inputs
    assert db.inputs["backupRetentionPeriod"] == CFG.backup_retention_days
    assert db.inputs["manageMasterUserPassword"] is True
    assert db.inputs["skipFinalSnapshot"] is False
    # Inherited from the primary: naming them again would replace the instance.
    assert not [k for k in ("engine", "username", "dbName") if k in db.inputs]


def test_promotion_keeps_every_resource_name_so_nothing_is_replaced(build):
    before = {(r.type, r.name) for r in build(replica()).resources}
    after = {(r.type, r.name) for r in build(database(region="eu-west-1",
                                                     promote=True)).resources}
    assert before == after


def test_promote_with_a_source_still_set_is_refused(build):
    with pytest.raises(ValueError, match="promote is set but replicate_source_db"):
        build(replica(promote=True))


# --- outputs and preview ---------------------------------------------------------------------

def test_outputs_are_the_instances_arn_and_endpoint(build):
    run = build(database())
    assert run.outputs["arn"].startswith("arn:aws:rds:us-east-1:123456789012:db:")
    assert run.outputs["endpoint"].endswith(".us-east-1.rds.amazonaws.com:5432")


@pytest.mark.parametrize("kw", [{}, {"replicate_source_db": PRIMARY_ARN}])
def test_builds_in_preview_mode_with_unknown_outputs(build, kw):
    res = build(database(**kw), preview=True).resources
    assert len(of_type(res, INSTANCE)) == 1


def test_a_fixed_identifier_is_replaced_by_deleting_first(build):
    # The identifier is fixed so RDS's log groups can exist before it; a second instance of
    # that name cannot be created beside the first (DBInstanceAlreadyExists).
    db = only(build(database(protect=True)).resources, INSTANCE)
    assert db.inputs["identifier"] == db.name
    assert db.options["delete_before_replace"] is True and db.options["protect"] is True
