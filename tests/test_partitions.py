"""Partitioning: the generator (pure), the CronJob under mocks, and the DDL on a real server."""

from __future__ import annotations

import datetime as dt
import re

import pulumi
import pulumi_kubernetes as k8s
import pytest

from components.partitions import (
    SCHEMA_FILE,
    PartitionJob,
    PartitionJobArgs,
    order_partitions_sql,
    partition_name,
    quarter_start,
    quarters,
    rolling_partitions_sql,
    schedule_conflict,
)
from planner.mocks import SECRET_MASK
from tests import engines
from tests.conftest import of_type

TODAY = dt.date(2026, 11, 27)


# --- generator -------------------------------------------------------------------------------

@pytest.mark.parametrize(("day", "start"), [
    (dt.date(2026, 1, 1), dt.date(2026, 1, 1)), (dt.date(2026, 3, 31), dt.date(2026, 1, 1)),
    (dt.date(2026, 4, 1), dt.date(2026, 4, 1)), (dt.date(2026, 12, 31), dt.date(2026, 10, 1)),
])
def test_quarter_start(day, start):
    assert quarter_start(day) == start


def test_quarters_are_contiguous_and_cross_the_year():
    qs = quarters(TODAY, 4)
    assert qs[0] == (dt.date(2026, 10, 1), dt.date(2027, 1, 1))
    assert qs[-1] == (dt.date(2027, 10, 1), dt.date(2028, 1, 1))
    assert all(a[1] == b[0] for a, b in zip(qs, qs[1:], strict=False))
    assert [partition_name(s) for s, _ in qs] == [
        "orders_2026q4", "orders_2027q1", "orders_2027q2", "orders_2027q3", "orders_2027q4"]


def test_generated_statements_are_idempotent_partition_of_orders():
    sql = order_partitions_sql(TODAY, 2)
    statements = [s for s in sql.split(";") if s.strip()]
    assert len(statements) == 3
    assert all("CREATE TABLE IF NOT EXISTS" in s and "PARTITION OF orders" in s
               for s in statements)


def test_negative_lookahead_is_refused():
    with pytest.raises(ValueError, match="ahead is -1"):
        quarters(TODAY, -1)
    with pytest.raises(ValueError, match="ahead is -1"):
        rolling_partitions_sql(-1)


def test_schema_partitions_orders_by_range_and_products_by_list_with_defaults():
    sql = SCHEMA_FILE.read_text()
    assert "PARTITION BY RANGE (order_date)" in sql
    assert "PARTITION BY LIST (category)" in sql
    assert "orders_default PARTITION OF orders DEFAULT" in sql
    assert "products_default PARTITION OF products DEFAULT" in sql
    assert not re.search(r"CREATE (TABLE|INDEX) (?!IF NOT EXISTS)", sql)


# --- the CronJob under mocks -----------------------------------------------------------------

def job(**kw):
    def fn() -> None:
        provider = k8s.Provider("k8s-test", kubeconfig="{}")
        PartitionJob("partitions", PartitionJobArgs(
            database_host="db.example.internal", password=pulumi.Output.secret("pw"), **kw),
            pulumi.ResourceOptions(providers={"kubernetes": provider}))
    return fn


def test_cronjob_runs_the_schema_and_rolling_partitions_with_psql(build):
    res = build(job(quarters_ahead=4)).resources
    (cron,) = of_type(res, "kubernetes:batch/v1:CronJob")
    (cm,) = of_type(res, "kubernetes:core/v1:ConfigMap")
    spec = cron.inputs["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"][0] == "psql" and "ON_ERROR_STOP=1" in container["command"]
    sql = cm.inputs["data"]["partitions.sql"]
    assert SCHEMA_FILE.read_text() in sql and "FOR i IN 0..4 LOOP" in sql
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    (secret,) = of_type(res, "kubernetes:core/v1:Secret")
    assert SECRET_MASK in str(secret.inputs)
    assert all(r.provider and "k8s-test" in r.provider for r in res
               if r.type.startswith("kubernetes:"))


def test_cronjob_without_lookahead_is_refused(build):
    with pytest.raises(ValueError, match="quarters_ahead is 0"):
        build(job(quarters_ahead=0))


# --- real engine -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server():
    # One server for the module (a start and stop cost about half a second); each test gets
    # its tables afresh from the `pg` fixture.
    with engines.Postgres(engines.find_tools(), ssl=False) as server:
        yield server


@pytest.fixture
def pg(server):
    # The schema holds only tables and indexes in public: an empty public schema is a fresh
    # database for these tests.
    server.psql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    server.psql(SCHEMA_FILE.read_text())
    return server


def routed(pg, sql: str) -> list[str]:
    return pg.psql(sql).splitlines()


def test_rows_route_to_their_quarter_and_category_partitions(pg):
    pg.psql(order_partitions_sql(dt.date(2026, 1, 15), 7))
    pg.psql("INSERT INTO orders (customer_id, order_date, total_cents) VALUES "
            "(1, '2026-02-14', 100), (2, '2026-06-30', 200), (3, '2026-07-01', 300), "
            "(4, '2027-12-31', 400), (5, '2031-01-01', 500)")
    rows = routed(pg, "SELECT customer_id || ' ' || tableoid::regclass FROM orders "
                      "ORDER BY customer_id")
    assert rows == ["1 orders_2026q1", "2 orders_2026q2", "3 orders_2026q3",
                    "4 orders_2027q4", "5 orders_default"]
    pg.psql("INSERT INTO products (category, sku, name, price_cents) VALUES "
            "('sofa-covers', 'S1', 'Stretch 3-seat', 4999), "
            "('cushion-covers', 'C1', 'Velvet 45cm', 1299), ('pet-beds', 'P1', 'Bed', 2999)")
    rows = routed(pg, "SELECT sku || ' ' || tableoid::regclass FROM products ORDER BY sku")
    assert rows == ["C1 products_cushion_covers", "P1 products_default",
                    "S1 products_sofa_covers"]


def test_a_date_range_query_is_pruned_to_its_quarters(pg):
    pg.psql(order_partitions_sql(dt.date(2026, 1, 1), 7))
    plan = pg.psql("EXPLAIN (COSTS OFF) SELECT count(*) FROM orders "
                   "WHERE order_date >= '2026-05-01' AND order_date < '2026-08-15'")
    scanned = sorted(set(re.findall(r"Scan on (orders_\w+) ", plan)))
    assert scanned == ["orders_2026q2", "orders_2026q3"], plan
    # A customer's history uses the index on every partition it touches.
    plan = pg.psql("SET enable_seqscan = off; EXPLAIN (COSTS OFF) SELECT * FROM orders "
                   "WHERE customer_id = 7 AND order_date >= '2026-10-01'")
    assert "orders_2026q1" not in plan and "Index" in plan


def test_schema_and_generator_are_idempotent(pg):
    pg.psql(SCHEMA_FILE.read_text())
    pg.psql(order_partitions_sql(TODAY, 4))
    pg.psql(order_partitions_sql(TODAY, 4))
    count = pg.psql("SELECT count(*) FROM pg_inherits WHERE inhparent = 'orders'::regclass")
    assert int(count) == 5 + 1  # five quarters and the default


def test_rolling_sql_creates_the_same_partitions_as_the_generator_for_today(pg):
    today = dt.date.fromisoformat(pg.psql("SELECT current_date"))
    pg.psql(rolling_partitions_sql(4))
    pg.psql(rolling_partitions_sql(4))  # again: a second run of the job is a no-op
    names = set(pg.psql("SELECT inhrelid::regclass FROM pg_inherits "
                        "WHERE inhparent = 'orders'::regclass").splitlines())
    expected = {partition_name(s) for s, _ in quarters(today, 4)}
    assert names == expected | {"orders_default"}


def test_rolling_sql_fails_when_rows_fell_into_the_default(pg):
    pg.psql("INSERT INTO orders (customer_id, order_date, total_cents) "
            "VALUES (1, '2040-01-01', 1)")
    with pytest.raises(RuntimeError, match="orders_default holds rows"):
        pg.psql(rolling_partitions_sql(1))


# --- schedule against the database's windows ---------------------------------------------

RDS_WINDOWS = ("03:00-04:00", "sun:04:30-sun:05:30")


@pytest.mark.parametrize("schedule, clash", [
    ("17 3 * * *", "03:00-04:00"),            # inside the backup window (the old default)
    ("55 2 * * *", "03:00-04:00"),            # starts before, runs into it
    ("35 4 * * *", "sun:04:30-sun:05:30"),    # Sundays only, still every week
    ("17 6 * * *", None),
    ("0 12 * * *", None),
])
def test_schedule_stays_outside_the_backup_and_maintenance_windows(schedule, clash):
    problem = schedule_conflict(schedule, 600, RDS_WINDOWS)
    assert (problem is None) if clash is None else (clash in problem)


def test_a_sunday_night_run_reaching_into_a_monday_window_is_caught():
    assert "mon:00:05" in schedule_conflict("55 23 * * *", 1200, ["mon:00:05-mon:01:00"])


def test_a_schedule_the_check_cannot_read_is_refused():
    assert "daily" in schedule_conflict("*/5 * * * *", 600, RDS_WINDOWS)


def test_the_default_schedule_clears_the_database_components_windows(build):
    from components.database import DatabaseArgs

    fields = DatabaseArgs.__dataclass_fields__
    windows = (fields["backup_window"].default, fields["maintenance_window"].default)
    assert schedule_conflict(PartitionJobArgs.schedule, 600, windows) is None

    def fn() -> None:
        PartitionJob("p", PartitionJobArgs(database_host="db", schedule="17 3 * * *",
                                           avoid_windows=windows,
                                           password=pulumi.Output.secret("pw")))
    with pytest.raises(Exception, match="03:00-04:00"):
        build(fn)
