"""The seed plan's numbers, pinned once, literally, as the seed plan
writes them, and checked against every table the project derives from them and against the
planned resources. Nothing here is read from config/seed.py or config/thresholds.py to make
an expectation: a typo in those tables, or a component that drops a setting, fails here.
"""

from __future__ import annotations

import pytest

from config import seed
from config.thresholds import METRICS, SEED_ALERTS, alert_rules
from tests.conftest import of_type

# --- the seed plan, as written -------------------------------------------------------------
TARGETS = {  # metric: (baseline, 6 months, 1 year)
    "daily_active_users": (1_000, 5_000, 10_000),
    "peak_concurrent_users": (200, 1_000, 2_000),
    "orders_per_day": (50, 250, 500),
    "database_gb": (5, 25, 50),
    "monthly_traffic_gb": (100, 500, 1_000),
    "response_time_ms": (2_000, 1_500, 1_000),
    "uptime_percent": (99.5, 99.9, 99.95),
}
HPA = {"min": 3, "max": 20, "cpu": 70, "memory": 80, "up_window": 60, "up_percent": 100,
       "up_period": 15, "down_window": 300, "down_percent": 10, "down_period": 60}
ALERTS = {"HighCPUUsage": (80, 300, "warning"), "CriticalCPUUsage": (90, 120, "critical"),
          "DatabaseConnectionsHigh": (80, 180, "warning")}
THRESHOLDS = {  # warning, critical, lower is worse
    "response_time_ms": (2000, 5000, False), "throughput_rpm": (1000, 500, True),
    "error_rate_percent": (1, 5, False), "cpu_percent": (70, 90, False),
    "memory_percent": (80, 95, False), "disk_percent": (85, 95, False),
    "conversion_rate_percent": (2, 1, True), "cart_abandonment_percent": (70, 80, False),
    "satisfaction_score": (4.0, 3.5, True),
}
BACKUP_RETENTION_DAYS = 30
PGBOUNCER_MAX_SERVER_CONNECTIONS = 100
APP_POOL = (10, 100, 30, 300)  # min, max, acquire timeout s, idle timeout s
REDIS_NODES = 3
REGIONS = ("us-east-1", ("us-west-2", "eu-west-1", "ap-southeast-1"), ("us-west-2", "eu-west-1"))
DATABASE_STEP = (8, 32, 500, 10_000)  # vCPU, GB RAM, GB SSD, IOPS after month 1
SCALE_OUT_KPI_S = 120


def test_seed_targets_table():
    for metric, (base, six, year) in TARGETS.items():
        got = tuple(getattr(m, metric) for m in (seed.BASELINE, seed.SIX_MONTHS, seed.ONE_YEAR))
        assert got == (base, six, year), metric


def test_seed_hpa_pool_redis_backups_regions_and_database_step():
    assert (HPA["min"], HPA["max"], HPA["cpu"], HPA["memory"]) == \
        (seed.HPA_MIN, seed.HPA_MAX, seed.HPA_CPU_PERCENT, seed.HPA_MEMORY_PERCENT)
    assert (HPA["up_window"], HPA["up_percent"], HPA["up_period"]) == \
        (seed.HPA_UP_WINDOW_S, seed.HPA_UP_PERCENT, seed.HPA_UP_PERIOD_S)
    assert (HPA["down_window"], HPA["down_percent"], HPA["down_period"]) == \
        (seed.HPA_DOWN_WINDOW_S, seed.HPA_DOWN_PERCENT, seed.HPA_DOWN_PERIOD_S)
    assert seed.BACKUP_RETENTION_DAYS == BACKUP_RETENTION_DAYS
    assert seed.PGBOUNCER_MAX_SERVER_CONNECTIONS == PGBOUNCER_MAX_SERVER_CONNECTIONS
    assert (seed.APP_POOL_MIN, seed.APP_POOL_MAX, seed.APP_POOL_ACQUIRE_TIMEOUT_S,
            seed.APP_POOL_IDLE_TIMEOUT_S) == APP_POOL
    assert seed.REDIS_NODES == REDIS_NODES
    assert (seed.PRIMARY_REGION, seed.SECONDARY_REGIONS, seed.READ_REPLICA_REGIONS) == REGIONS
    assert (seed.DB_VCPU, seed.DB_MEMORY_GB, seed.DB_STORAGE_GB, seed.DB_IOPS) == DATABASE_STEP
    assert seed.SCALE_OUT_KPI_S == SCALE_OUT_KPI_S


def test_seed_metric_thresholds_as_written():
    for key, (warning, critical, lower_is_worse) in THRESHOLDS.items():
        row = METRICS[key]
        assert (row.warning, row.critical) == (warning, critical), key
        assert row.direction == ("below" if lower_is_worse else "above"), key
        assert row.source == "seed", key


def test_seed_alert_rules_as_written_and_first_in_the_rendered_rules():
    assert {a.name: (a.threshold, a.for_seconds, a.severity) for a in SEED_ALERTS} == ALERTS
    rendered = {r.name: r for r in alert_rules()}
    for name, (threshold, hold, severity) in ALERTS.items():
        rule = rendered[name]
        assert (rule.threshold, rule.for_seconds, rule.severity, rule.operator) == \
            (threshold, hold, severity, ">"), name


# --- the seed's numbers where they reach resources -----------------------------------------

def test_prod_database_keeps_30_days_of_backups_multi_az_and_the_iops_step(prod):
    (db,) = of_type(prod["prod"].resources, "aws:rds/instance:Instance")
    assert db.inputs["backupRetentionPeriod"] == 30
    assert db.inputs["multiAz"] is True
    assert db.inputs["allocatedStorage"] == 500
    assert db.inputs["iops"] >= 10_000  # the seed's step; gp3 at 500 GiB starts at 12,000
    assert db.inputs["instanceClass"] == "db.m6i.2xlarge"  # 8 vCPU, 32 GiB


def test_prod_redis_has_three_nodes_with_failover(prod):
    (group,) = of_type(prod["prod"].resources,
                       "aws:elasticache/replicationGroup:ReplicationGroup")
    assert group.inputs["numCacheClusters"] == 3
    assert group.inputs["automaticFailoverEnabled"] is True
    assert group.inputs["multiAzEnabled"] is True


def test_prod_phase2_hpas_carry_the_seeds_numbers(prod_phase2):
    hpas = of_type(prod_phase2["prod"].resources,
                   "kubernetes:autoscaling/v2:HorizontalPodAutoscaler")
    assert len(hpas) == 4
    for hpa in hpas:
        spec = hpa.inputs["spec"]
        assert (spec["minReplicas"], spec["maxReplicas"]) == (3, 20)
        targets = {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"]
                   for m in spec["metrics"]}
        assert targets == {"cpu": 70, "memory": 80}
        down = spec["behavior"]["scaleDown"]
        assert down["stabilizationWindowSeconds"] == 300
        assert {"type": "Percent", "value": 10, "periodSeconds": 60} in down["policies"]
        up = spec["behavior"]["scaleUp"]
        assert {"type": "Percent", "value": 100, "periodSeconds": 15} in up["policies"]
        # The project's one documented departure from the seed (docs/components/workloads.md,
        # the HPA section): no 60 s scale-up window, which would put the 2-minute KPI out of reach.
        assert up["stabilizationWindowSeconds"] == 0


@pytest.mark.parametrize("phase", [1, 3])
def test_every_phase_serves_the_seeds_regions(prod, prod_phase3, phase):
    plans = prod if phase == 1 else prod_phase3
    serving = {p.region for p in plans.values()
               if p.role != "edge" and p.outputs.get("albDnsName")}
    assert serving == ({"us-east-1"} if phase == 1
                       else {"us-east-1", "us-west-2", "eu-west-1", "ap-southeast-1"})
