"""RDS PostgreSQL: the primary, or a cross-region read replica of it (one component, two modes).

Primary: Multi-AZ, encrypted with a customer-managed KMS key, storage autoscaling up to a
ceiling, daily backups with a window (and a copy of them replicated to another region),
deletion protection, a final snapshot and Pulumi `protect` in prod, Performance Insights
and enhanced monitoring, a parameter group with pg_stat_statements, auto_explain, slow-query
logging and an explicit max_connections, log exports, the master password kept by RDS in
Secrets Manager, and IAM database authentication.

Replica (`replicate_source_db` = the primary's ARN, read from the primary stack): the same,
minus what AWS refuses on a replica: no master user or password settings (they conflict
with `replicate_source_db`), no backup replication and no final snapshot. It gets a KMS key
in its own region (an encrypted cross-region replica cannot use the primary's key), its own
parameter group, and the subnet group of its own region's network.

Promotion for disaster recovery is a config change (`promote=True`) on the secondary stack:
the same resources, `replicate_source_db` dropped, backups and the managed password turned
on. Nothing is replaced, because every child keeps its name across modes. The procedure is
in docs/runbook-dr.md.

Failback never turns a standalone instance back into a replica (RDS cannot give it a new
source). The stack builds a new Database under a new name (a new generation, __main__.py)
as a replica of the promoted one, beside the old one, and promotes it in turn.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_aws as aws

from components.kms import DEFAULT_LOG_RETENTION_DAYS, LogGroupArgs, encrypted_log_group, key_policy
from components.shared import port_security_group
from config.models import (  # noqa: F401 - the gp3 numbers are re-exported for the tests
    GP3_IOPS_THRESHOLD_GB,
    GP3_LARGE_BASELINE_IOPS,
    GP3_SMALL_IOPS,
    DatabaseConfig,
    engine_version_problem,
    gp3_iops_problem,
)

PORT = 5432
LOG_EXPORTS = ["postgresql", "upgrade"]
# The CA of the instance's server certificate; clients (PgBouncer) trust its region's root.
RDS_CA_IDENTIFIER = "rds-ca-rsa2048-g1"
ENHANCED_MONITORING_POLICY = "policy/service-role/AmazonRDSEnhancedMonitoringRole"

Mode = Literal["primary", "replica", "promoted"]


def parameter_family(engine_version: str) -> str:
    """`16` or `16.11` -> `postgres16`: the parameter-group family of an engine version."""
    major = engine_version.split(".")[0]
    if not major.isdigit() or int(major) < 10:
        raise ValueError(f"engine_version is {engine_version!r}; expected a PostgreSQL "
                         "major version like 16")
    return f"postgres{major}"


@dataclass(frozen=True)
class DatabaseArgs:
    """Inputs of `Database`."""

    vpc_id: pulumi.Input[str]
    """VPC of the security group (the region's own network)."""
    subnet_group_name: pulumi.Input[str]
    """RDS subnet group over the data subnets of this region's network."""
    engine_version: str
    """PostgreSQL major version, e.g. `16` (a full minor only without automatic minor
    upgrades); the parameter-group family derives from its major."""
    instance_class: str
    """RDS instance class, e.g. `db.m6i.2xlarge`."""
    allocated_storage_gb: int
    """Initial storage (GiB). Ignored by AWS for a replica (it takes the primary's)."""
    max_allocated_storage_gb: int
    """Storage autoscaling ceiling (GiB), >= allocated_storage_gb."""
    iops: int
    """Provisioned IOPS; with gp3 below 400 GiB only the 3,000 baseline is possible."""
    max_connections: int
    """PostgreSQL max_connections, set explicitly so the PgBouncer budget can be checked
    against it. A hot standby needs at least the primary's value, so replicas use the same."""
    storage_type: Literal["gp3", "io1", "io2"] = "gp3"
    multi_az: bool = True
    """A synchronous standby in another AZ (failover 60-120 s)."""
    auto_minor_version_upgrade: bool = True
    """RDS applies minor versions in the maintenance window; engine_version is then the
    major only, and the running version is the instance's engine_version_actual."""
    backup_retention_days: int = 30
    backup_window: str = "03:00-04:00"
    """Daily backup window (UTC); must not overlap maintenance_window."""
    maintenance_window: str = "sun:04:30-sun:05:30"
    protect: bool = False
    """Prod: deletion protection and Pulumi `protect`, so neither the API nor a stray
    `pulumi destroy` can delete the instance."""
    allowed_security_group_ids: list[pulumi.Input[str]] = field(default_factory=list)
    """Security groups admitted on 5432 (the app, PgBouncer)."""
    allowed_cidrs: list[str] = field(default_factory=list)
    """CIDRs admitted on 5432 (e.g. a peered VPC); never 0.0.0.0/0."""
    extra_security_group_ids: list[pulumi.Input[str]] = field(default_factory=list)
    """More groups on the instance, beside its own (the peered regions' group,
    components/peering.py peer_security_group, whose rules other stacks add)."""
    replicate_source_db: pulumi.Input[str] | None = None
    """ARN of the primary: makes this a cross-region read replica."""
    promote: bool = False
    """Disaster recovery: this instance was a replica and is now promoted to a standalone
    primary (replicate_source_db is dropped). See docs/runbook-dr.md."""
    backup_replication_region: str | None = None
    """Primary only: a second region that receives a copy of the automated backups."""
    backup_replication_retention_days: int = 7
    db_name: str = "sofacover"
    username: str = "sofacover_admin"
    """Master user (primary only); its password lives in Secrets Manager, managed by RDS."""
    monitoring_interval_seconds: Literal[1, 5, 10, 15, 30, 60] = 60
    performance_insights_retention_days: int = 7
    """7 is the free tier; otherwise a multiple of 31 up to 731."""
    slow_query_ms: int = 500
    """log_min_duration_statement and auto_explain.log_min_duration, milliseconds."""
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def mode(self) -> Mode:
        if self.promote:
            return "promoted"
        return "replica" if self.replicate_source_db is not None else "primary"

    @classmethod
    def from_config(cls, cfg: DatabaseConfig, *, vpc_id: pulumi.Input[str],
                    subnet_group_name: pulumi.Input[str], protect: bool,
                    replicate_source_db: pulumi.Input[str] | None = None,
                    promote: bool = False, backup_replication_region: str | None = None,
                    allowed_security_group_ids: list[pulumi.Input[str]] | None = None,
                    allowed_cidrs: list[str] | None = None,
                    extra_security_group_ids: list[pulumi.Input[str]] | None = None,
                    tags: dict[str, str] | None = None) -> DatabaseArgs:
        return cls(
            vpc_id=vpc_id, subnet_group_name=subnet_group_name,
            engine_version=cfg.engine_version, instance_class=cfg.instance_class,
            allocated_storage_gb=cfg.allocated_storage_gb,
            max_allocated_storage_gb=cfg.max_allocated_storage_gb, iops=cfg.iops,
            max_connections=cfg.max_connections, storage_type=cfg.storage_type,
            multi_az=cfg.multi_az, backup_retention_days=cfg.backup_retention_days,
            # The copy in the other region keeps as long as the primary: after losing the
            # primary's region, a restore can still reach back the seed's 30 days.
            backup_replication_retention_days=cfg.backup_retention_days,
            auto_minor_version_upgrade=cfg.auto_minor_version_upgrade,
            protect=protect, replicate_source_db=replicate_source_db, promote=promote,
            backup_replication_region=backup_replication_region,
            allowed_security_group_ids=list(allowed_security_group_ids or []),
            allowed_cidrs=list(allowed_cidrs or []),
            extra_security_group_ids=list(extra_security_group_ids or []),
            tags=dict(tags or {}),
        )


def check_args(args: DatabaseArgs) -> None:
    """Refuse inputs AWS would refuse (or that would lose data), before creating anything."""
    parameter_family(args.engine_version)
    problem = engine_version_problem(args.engine_version, args.auto_minor_version_upgrade)
    if problem:
        raise ValueError(f"engine_version {problem}")
    if args.max_allocated_storage_gb < args.allocated_storage_gb:
        raise ValueError(
            f"max_allocated_storage_gb is {args.max_allocated_storage_gb} but "
            f"allocated_storage_gb is {args.allocated_storage_gb}; the autoscaling ceiling "
            "must be >= the allocated storage")
    problem = gp3_iops_problem(args.storage_type, args.allocated_storage_gb, args.iops)
    if problem:  # the stack config applies the same rule (config/models.py)
        raise ValueError(f"iops {problem}")
    if args.promote and args.replicate_source_db is not None:
        raise ValueError("promote is set but replicate_source_db is too; a promoted instance "
                         "has no source: pass replicate_source_db=None")
    # A promoted instance keeps its own automated backups, so it may replicate them too
    # (the primary stack's database after failback, docs/runbook-dr.md); a replica has none.
    if args.mode == "replica" and args.backup_replication_region is not None:
        raise ValueError(f"backup_replication_region is {args.backup_replication_region} "
                         "but this is a replica; only the primary replicates its backups")
    if "0.0.0.0/0" in args.allowed_cidrs:
        raise ValueError("allowed_cidrs contains 0.0.0.0/0; the database is never open to "
                         "the internet")
    if args.backup_retention_days < 1:
        raise ValueError("backup_retention_days must be >= 1; backups are never off")


def _source_in_other_region(arn_and_region: list[str], *, destination: str) -> str:
    arn, own = arn_and_region
    if destination == own:
        raise pulumi.RunError(f"backup_replication_region is {destination}, the database's "
                              "own region; backups must be copied to another region")
    return arn


def _monitoring_assume_role() -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                       "Principal": {"Service": "monitoring.rds.amazonaws.com"}}],
    })


def _parameters(args: DatabaseArgs) -> list[aws.rds.ParameterGroupParameterArgs]:
    slow = str(args.slow_query_ms)
    static = "pending-reboot"  # static parameters take effect at the next reboot only
    return [
        aws.rds.ParameterGroupParameterArgs(
            name="shared_preload_libraries", value="pg_stat_statements,auto_explain",
            apply_method=static),
        aws.rds.ParameterGroupParameterArgs(
            name="max_connections", value=str(args.max_connections), apply_method=static),
        aws.rds.ParameterGroupParameterArgs(name="log_min_duration_statement", value=slow),
        aws.rds.ParameterGroupParameterArgs(name="auto_explain.log_min_duration", value=slow),
        aws.rds.ParameterGroupParameterArgs(name="auto_explain.log_analyze", value="0"),
        aws.rds.ParameterGroupParameterArgs(name="pg_stat_statements.track", value="top"),
        # Clients (PgBouncer) must use TLS; plaintext logins are refused.
        aws.rds.ParameterGroupParameterArgs(name="rds.force_ssl", value="1",
                                            apply_method=static),
    ]


def _secret_arn(secrets: list | None) -> str | None:
    if not secrets:
        return None
    first = secrets[0]
    return first.get("secret_arn") if isinstance(first, dict) else first.secret_arn


class Database(pulumi.ComponentResource):
    """RDS PostgreSQL primary or cross-region read replica, with its key, groups and role."""

    arn: pulumi.Output[str]
    """ARN of the instance (the primary's is what replicas replicate from: export it)."""
    identifier: pulumi.Output[str]
    """DB instance identifier."""
    address: pulumi.Output[str]
    """DNS name of the instance (the Multi-AZ writer, or the replica)."""
    port: pulumi.Output[int]
    endpoint: pulumi.Output[str]
    """`address:port`."""
    kms_key_arn: pulumi.Output[str]
    """The customer-managed key of the storage, Performance Insights and the secret."""
    security_group_id: pulumi.Output[str]
    parameter_group_name: pulumi.Output[str]
    master_user_secret_arn: pulumi.Output[str | None]
    """Secrets Manager secret with the master password; None on a replica."""

    def __init__(self, name: str, args: DatabaseArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        check_args(args)  # before anything is registered
        super().__init__("sofacover:database:Database", name, None, opts)
        mode = args.mode
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        family = parameter_family(args.engine_version)

        def tags(role: str) -> dict[str, str]:
            return {**args.tags, "Name": f"{name}-{role}"}

        partition = aws.get_partition_output(opts=invoke).partition
        region = aws.get_region_output(opts=invoke).region

        # One key per instance, in the instance's region: a cross-region encrypted replica
        # cannot use the primary's key, and the key outlives a failed region. A protected
        # database's keys are also retained on delete: when failback retires a generation
        # (docs/runbook-dr.md F7), its final snapshot and replicated backups stay encrypted
        # under them and readable; the operator schedules the keys' deletion once those
        # expire (KMS makes encrypted data unreadable when its key is deleted).
        key = aws.kms.Key(
            f"{name}-kms", description=f"{name}: RDS storage, Performance Insights, secret",
            enable_key_rotation=True, deletion_window_in_days=30, tags=tags("kms"),
            policy=key_policy(self, via_services=("rds", "secretsmanager"), logs=True),
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect,
                                        retain_on_delete=args.protect))
        aws.kms.Alias(f"{name}-kms-alias", name=f"alias/{name}-rds", target_key_id=key.key_id,
                      opts=child)

        sg = port_security_group(
            f"{name}-sg", vpc_id=args.vpc_id, port=PORT, what=f"{name}: PostgreSQL",
            source_group_ids=args.allowed_security_group_ids, source_cidrs=args.allowed_cidrs,
            tags=tags("sg"), opts=child)

        # name_prefix, not name: a family change (postgres16 -> postgres17) replaces the
        # group, and with a generated name the new one is created before the old one is
        # deleted (the instance moves over in between) instead of colliding on the name.
        params = aws.rds.ParameterGroup(
            f"{name}-params", name_prefix=f"{name}-{family}-", family=family,
            description=f"{name}: {family}", parameters=_parameters(args),
            tags=tags("params"), opts=child)

        monitoring_role = aws.iam.Role(
            f"{name}-monitoring", assume_role_policy=_monitoring_assume_role(),
            tags=tags("monitoring"), opts=child)
        aws.iam.RolePolicyAttachment(
            f"{name}-monitoring-policy", role=monitoring_role.name,
            policy_arn=pulumi.Output.concat("arn:", partition, ":iam::aws:",
                                            ENHANCED_MONITORING_POLICY),
            opts=child)

        gp3_small = (args.storage_type == "gp3"
                     and args.allocated_storage_gb < GP3_IOPS_THRESHOLD_GB)
        common = dict(
            instance_class=args.instance_class, storage_type=args.storage_type,
            iops=None if gp3_small else args.iops,
            allocated_storage=args.allocated_storage_gb,
            max_allocated_storage=args.max_allocated_storage_gb,
            storage_encrypted=True, kms_key_id=key.arn, multi_az=args.multi_az,
            db_subnet_group_name=args.subnet_group_name,
            vpc_security_group_ids=[sg.id, *args.extra_security_group_ids],
            parameter_group_name=params.name, publicly_accessible=False, port=PORT,
            maintenance_window=args.maintenance_window,
            auto_minor_version_upgrade=args.auto_minor_version_upgrade,
            copy_tags_to_snapshot=True,
            deletion_protection=args.protect,
            iam_database_authentication_enabled=True,
            enabled_cloudwatch_logs_exports=LOG_EXPORTS,
            performance_insights_enabled=True, performance_insights_kms_key_id=key.arn,
            performance_insights_retention_period=args.performance_insights_retention_days,
            monitoring_interval=args.monitoring_interval_seconds,
            monitoring_role_arn=monitoring_role.arn,
            ca_cert_identifier=RDS_CA_IDENTIFIER,
            tags=tags("db"),
        )
        if mode == "replica":
            # No username, password, db_name or managed-password settings: AWS refuses them
            # with replicate_source_db. No final snapshot: AWS refuses one for a replica.
            extra = dict(replicate_source_db=args.replicate_source_db,
                         skip_final_snapshot=True)
        else:
            extra = dict(
                backup_retention_period=args.backup_retention_days,
                backup_window=args.backup_window, delete_automated_backups=False,
                skip_final_snapshot=False, final_snapshot_identifier=f"{name}-final",
                manage_master_user_password=True, master_user_secret_kms_key_id=key.arn)
            if mode == "primary":
                extra.update(engine="postgres", engine_version=args.engine_version,
                             db_name=args.db_name, username=args.username)
            # promoted: engine, version, user and database came from the primary; naming
            # them again would show as a replacement.
        # RDS writes the exports to /aws/rds/instance/<identifier>/<log>, creating the group
        # without a key unless it exists: so the identifier is fixed (not autonamed) and the
        # groups come first, encrypted with the instance's key. Source: RDS user guide,
        # "Publishing PostgreSQL logs to Amazon CloudWatch Logs",
        # https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_LogAccess.Concepts.PostgreSQL.html
        identifier = f"{name}-db"
        log_groups = [encrypted_log_group(
            f"{name}-log-{export}", LogGroupArgs(
                name=f"/aws/rds/instance/{identifier}/{export}",
                retention_days=DEFAULT_LOG_RETENTION_DAYS, kms_key_arn=key.arn,
                tags=tags(f"log-{export}")), child) for export in LOG_EXPORTS]
        instance = aws.rds.Instance(
            f"{name}-db", identifier=identifier, **common, **extra,
            # A fixed identifier cannot be created before the old one is gone: a replacement
            # (kms key, db name, engine: planner/data/replace_upstream.yaml) must delete first
            # or stop at DBInstanceAlreadyExists. In prod `protect` and the diff's exit 3
            # refuse any replacement before this matters (Pulumi docs, deleteBeforeReplace).
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect,
                                        depends_on=log_groups, delete_before_replace=True))

        if args.backup_replication_region is not None:
            dest = args.backup_replication_region
            backup_key = aws.kms.Key(
                f"{name}-backup-kms", region=dest, enable_key_rotation=True,
                deletion_window_in_days=30,
                description=f"{name}: replicated automated backups in {dest}",
                policy=key_policy(self, via_services=("rds",), region=dest),
                tags=tags("backup-kms"),
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect,
                                            retain_on_delete=args.protect))
            # `region=` (pulumi-aws 7) rather than a second provider: the stack's provider,
            # credentials and default tags stay the only ones, and the plan shows the region.
            aws.rds.InstanceAutomatedBackupsReplication(
                f"{name}-backup-replication", region=dest,
                source_db_instance_arn=pulumi.Output.all(instance.arn, region).apply(
                    functools.partial(_source_in_other_region, destination=dest)),
                kms_key_id=backup_key.arn,
                retention_period=args.backup_replication_retention_days, opts=child)

        self.arn = instance.arn
        self.identifier = instance.identifier
        self.address = instance.address
        self.port = instance.port
        self.endpoint = instance.endpoint
        self.kms_key_arn = key.arn
        self.security_group_id = sg.id
        self.parameter_group_name = params.name
        self.master_user_secret_arn = (
            pulumi.Output.from_input(None) if mode == "replica"
            else instance.master_user_secrets.apply(_secret_arn))
        self.register_outputs({
            "arn": self.arn,
            "identifier": self.identifier,
            "address": self.address,
            "port": self.port,
            "endpoint": self.endpoint,
            "kms_key_arn": self.kms_key_arn,
            "security_group_id": self.security_group_id,
            "parameter_group_name": self.parameter_group_name,
            "master_user_secret_arn": self.master_user_secret_arn,
        })
