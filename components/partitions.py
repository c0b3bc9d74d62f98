"""Quarterly orders partitions, kept N quarters ahead, and the CronJob that keeps them so.

sql/partitions.sql creates the partitioned tables (idempotent). This module generates the
quarterly `CREATE TABLE IF NOT EXISTS orders_<yyyy>q<n> PARTITION OF orders ...` statements:
`order_partitions_sql()` for explicit dates (reviewable, testable), and
`rolling_partitions_sql()`, the same statements computed by the database from its own
`current_date`, which is what the scheduled job runs so it stays ahead without a redeploy.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "sql" / "partitions.sql"
TABLE = "orders"
PSQL_IMAGE = "postgres:16.6-alpine"


def quarter_start(day: dt.date) -> dt.date:
    return dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def next_quarter(start: dt.date) -> dt.date:
    month = start.month + 3
    return dt.date(start.year + (month > 12), (month - 1) % 12 + 1, 1)


def partition_name(start: dt.date) -> str:
    """`orders_2026q4` for the quarter starting 2026-10-01."""
    return f"{TABLE}_{start.year}q{(start.month - 1) // 3 + 1}"


def quarters(today: dt.date, ahead: int) -> list[tuple[dt.date, dt.date]]:
    """The current quarter and the `ahead` next ones, as [start, end) pairs."""
    if ahead < 0:
        raise ValueError(f"ahead is {ahead}; it must be >= 0")
    out, start = [], quarter_start(today)
    for _ in range(ahead + 1):
        end = next_quarter(start)
        out.append((start, end))
        start = end
    return out


def order_partitions_sql(today: dt.date, ahead: int) -> str:
    """CREATE TABLE IF NOT EXISTS ... PARTITION OF orders for this quarter and `ahead` more."""
    return "".join(
        f"CREATE TABLE IF NOT EXISTS {partition_name(start)} PARTITION OF {TABLE}\n"
        f"    FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}');\n"
        for start, end in quarters(today, ahead))


def rolling_partitions_sql(ahead: int) -> str:
    """The same statements, computed from the server's current_date, then a check that the
    default partition is still empty (a row there means the job fell behind; the job fails
    so the failure alerts)."""
    if ahead < 0:
        raise ValueError(f"ahead is {ahead}; it must be >= 0")
    return f"""DO $$
DECLARE
    q date := date_trunc('quarter', current_date)::date;
BEGIN
    FOR i IN 0..{ahead} LOOP
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS %I PARTITION OF {TABLE} FOR VALUES FROM (%L) TO (%L)',
            '{TABLE}_' || to_char(q, 'YYYY') || 'q' || to_char(q, 'Q'),
            q, (q + interval '3 months')::date);
        q := (q + interval '3 months')::date;
    END LOOP;
END
$$;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM {TABLE}_default) THEN
        RAISE EXCEPTION '{TABLE}_default holds rows: a quarter had no partition; move them '
                        'out before creating that quarter';
    END IF;
END
$$;
"""


def job_sql(ahead: int) -> str:
    """What the CronJob runs: the schema (idempotent), then the rolling partitions."""
    return SCHEMA_FILE.read_text() + "\n" + rolling_partitions_sql(ahead)


@dataclass(frozen=True)
class PartitionJobArgs:
    """Inputs of `PartitionJob`."""

    database_host: pulumi.Input[str]
    """The primary's address (DDL goes to the primary, not through PgBouncer)."""
    password: pulumi.Output[str]
    """The table owner's password, a Pulumi secret Output."""
    user: str = "sofacover_app"
    """The owner of the orders table (only the owner may add partitions)."""
    database_name: str = "sofacover"
    quarters_ahead: int = 4
    schedule: str = "17 3 * * *"
    """Daily (UTC), away from the backup window; each run is idempotent."""
    namespace: str = "data"
    image: str = PSQL_IMAGE


def _secret_env(name: str, key: str, secret: pulumi.Output[str]) -> k8s.core.v1.EnvVarArgs:
    return k8s.core.v1.EnvVarArgs(name=name, value_from=k8s.core.v1.EnvVarSourceArgs(
        secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=secret, key=key)))


class PartitionJob(pulumi.ComponentResource):
    """A Kubernetes CronJob that runs the partition SQL with psql on a schedule."""

    sql: pulumi.Output[str]
    """The SQL each run applies."""
    schedule: pulumi.Output[str]

    def __init__(self, name: str, args: PartitionJobArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        if args.quarters_ahead < 1:
            raise ValueError(f"quarters_ahead is {args.quarters_ahead}; keep at least the "
                             "next quarter ready so inserts never reach the default")
        super().__init__("sofacover:partitions:PartitionJob", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        sql = job_sql(args.quarters_ahead)
        labels = {"app.kubernetes.io/name": "partition-job", "app.kubernetes.io/instance": name}
        meta = functools.partial(k8s.meta.v1.ObjectMetaArgs, namespace=args.namespace,
                                 labels=labels)
        config = k8s.core.v1.ConfigMap(f"{name}-sql", metadata=meta(name=f"{name}-sql"),
                                       data={"partitions.sql": sql}, opts=child)
        secret = k8s.core.v1.Secret(f"{name}-auth", metadata=meta(name=f"{name}-auth"),
                                    string_data={"password": pulumi.Output.secret(
                                        args.password)}, opts=child)
        restricted = k8s.core.v1.SecurityContextArgs(
            allow_privilege_escalation=False, read_only_root_filesystem=True,
            run_as_non_root=True, run_as_user=70,
            capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"))
        container = k8s.core.v1.ContainerArgs(
            name="psql", image=args.image,
            command=["psql", "-X", "-v", "ON_ERROR_STOP=1", "-f", "/sql/partitions.sql"],
            env=[k8s.core.v1.EnvVarArgs(name="PGHOST", value=args.database_host),
                 k8s.core.v1.EnvVarArgs(name="PGDATABASE", value=args.database_name),
                 k8s.core.v1.EnvVarArgs(name="PGUSER", value=args.user),
                 # The image has no RDS CA bundle: encrypted, not verified (see report).
                 k8s.core.v1.EnvVarArgs(name="PGSSLMODE", value="require"),
                 k8s.core.v1.EnvVarArgs(name="PGCONNECT_TIMEOUT", value="30"),
                 _secret_env("PGPASSWORD", "password", secret.metadata.name)],
            security_context=restricted,
            resources=k8s.core.v1.ResourceRequirementsArgs(
                requests={"cpu": "50m", "memory": "32Mi"}, limits={"memory": "128Mi"}),
            volume_mounts=[k8s.core.v1.VolumeMountArgs(name="sql", mount_path="/sql",
                                                       read_only=True)])
        job = k8s.batch.v1.CronJob(
            f"{name}-cronjob", metadata=meta(name=name),
            spec=k8s.batch.v1.CronJobSpecArgs(
                schedule=args.schedule, time_zone="Etc/UTC",
                # Two runs at once would race on the same CREATE TABLE; one is enough.
                concurrency_policy="Forbid", starting_deadline_seconds=3600,
                successful_jobs_history_limit=3, failed_jobs_history_limit=5,
                job_template=k8s.batch.v1.JobTemplateSpecArgs(
                    spec=k8s.batch.v1.JobSpecArgs(
                        backoff_limit=3, active_deadline_seconds=600,
                        ttl_seconds_after_finished=86400,
                        template=k8s.core.v1.PodTemplateSpecArgs(
                            metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                            spec=k8s.core.v1.PodSpecArgs(
                                restart_policy="Never",
                                security_context=k8s.core.v1.PodSecurityContextArgs(
                                    run_as_non_root=True, seccomp_profile=(
                                        k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"))),
                                containers=[container],
                                volumes=[k8s.core.v1.VolumeArgs(
                                    name="sql", config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                                        name=config.metadata.name))]))))),
            opts=child)

        self.sql = pulumi.Output.from_input(sql)
        self.schedule = job.spec.schedule
        self.register_outputs({"sql": self.sql, "schedule": self.schedule})
