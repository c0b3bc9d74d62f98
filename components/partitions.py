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
from collections.abc import Sequence
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
    schedule: str = "17 6 * * *"
    """Daily (UTC), `minute hour * * *`; each run is idempotent. It must not overlap
    `avoid_windows`: DDL during a backup or maintenance slows both, and a maintenance
    reboot fails the run."""
    avoid_windows: Sequence[str] = ()
    """The database's backup window (`hh:mm-hh:mm`, daily) and maintenance window
    (`ddd:hh:mm-ddd:hh:mm`, weekly), UTC, as RDS writes them."""
    active_deadline_seconds: int = 600
    """How long one run may take; the whole run must fit between the windows."""
    namespace: pulumi.Input[str] = "data"
    """Pass the Namespace resource's `metadata.name`, so every object waits for it."""
    image: str = PSQL_IMAGE


MINUTES_PER_DAY, MINUTES_PER_WEEK = 24 * 60, 7 * 24 * 60
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _minute_of_day(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _window_intervals(window: str) -> list[tuple[int, int]]:
    """A window as [start, end) minutes of the week (a daily window once per day)."""
    start, end = window.lower().split("-")
    if start[:3] in DAYS:  # weekly: ddd:hh:mm-ddd:hh:mm
        first = DAYS.index(start[:3]) * MINUTES_PER_DAY + _minute_of_day(start[4:])
        last = DAYS.index(end[:3]) * MINUTES_PER_DAY + _minute_of_day(end[4:])
        return [(first, last if last > first else last + MINUTES_PER_WEEK)]
    first, last = _minute_of_day(start), _minute_of_day(end)
    if last <= first:
        last += MINUTES_PER_DAY
    return [(d * MINUTES_PER_DAY + first, d * MINUTES_PER_DAY + last) for d in range(7)]


def schedule_conflict(schedule: str, run_seconds: int, windows: Sequence[str]) -> str | None:
    """Which window a daily `minute hour * * *` run (of up to `run_seconds`) overlaps, or
    None. Other cron forms are refused: the check could not vouch for them."""
    fields = schedule.split()
    if len(fields) != 5 or fields[2:] != ["*", "*", "*"] or not all(
            f.isdigit() for f in fields[:2]) or int(fields[0]) > 59 or int(fields[1]) > 23:
        return (f"is {schedule!r}; give a daily `minute hour * * *` schedule (UTC) so it can "
                "be checked against the database's windows")
    start = int(fields[1]) * 60 + int(fields[0])
    length = -(-run_seconds // 60)
    for window in windows:
        for w_start, w_end in _window_intervals(window):
            for day in range(7):
                r_start = day * MINUTES_PER_DAY + start
                # Shifted a week both ways: a Sunday-night run reaches into Monday's window.
                for shift in (-MINUTES_PER_WEEK, 0, MINUTES_PER_WEEK):
                    if r_start < w_end + shift and w_start + shift < r_start + length:
                        return (f"is {schedule!r} (UTC): a run of up to {length} min overlaps "
                                f"the database window {window}; move it outside")
    return None


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
        problem = schedule_conflict(args.schedule, args.active_deadline_seconds,
                                    args.avoid_windows)
        if problem:
            raise ValueError(f"PartitionJobArgs.schedule {problem}")
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
                        backoff_limit=3,
                        active_deadline_seconds=args.active_deadline_seconds,
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
