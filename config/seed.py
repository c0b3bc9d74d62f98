"""The seed plan's targets, in one place (its targets table, as written).

Phase presets (config/presets.py) and the tests derive their numbers from here, so a target
changed in this table changes every place that depends on it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Milestone:
    """One column of the seed's target table."""

    daily_active_users: int
    peak_concurrent_users: int
    orders_per_day: int
    database_gb: int
    monthly_traffic_gb: int
    response_time_ms: int
    uptime_percent: float


BASELINE = Milestone(1_000, 200, 50, 5, 100, 2_000, 99.5)
SIX_MONTHS = Milestone(5_000, 1_000, 250, 25, 500, 1_500, 99.9)
ONE_YEAR = Milestone(10_000, 2_000, 500, 50, 1_000, 1_000, 99.95)

PRIMARY_REGION = "us-east-1"
SECONDARY_REGIONS = ("us-west-2", "eu-west-1", "ap-southeast-1")
# "Read replicas in us-west-2 and eu-west-1 from month 2" (month 2 falls in phase 1).
READ_REPLICA_REGIONS = ("us-west-2", "eu-west-1")

# Phase 1, the horizontal-scaling step (issue 3: "2-8 instances").
ASG_MIN, ASG_MAX = 2, 8

# Database vertical step, month 1: 4 -> 8 vCPU, 16 -> 32 GB, 100 -> 500 GB, 3,000 -> 10,000 IOPS.
DB_VCPU, DB_MEMORY_GB, DB_STORAGE_GB, DB_IOPS = 8, 32, 500, 10_000
BACKUP_RETENTION_DAYS = 30

# Connection pooling.
PGBOUNCER_MAX_SERVER_CONNECTIONS = 100
APP_POOL_MIN, APP_POOL_MAX = 10, 100
APP_POOL_ACQUIRE_TIMEOUT_S, APP_POOL_IDLE_TIMEOUT_S = 30, 300

# Redis: 3 nodes with replication.
REDIS_NODES = 3

# HPA as written in the plan.
HPA_MIN, HPA_MAX = 3, 20
HPA_CPU_PERCENT, HPA_MEMORY_PERCENT = 70, 80
HPA_UP_WINDOW_S, HPA_UP_PERCENT, HPA_UP_PERIOD_S = 60, 100, 15
HPA_DOWN_WINDOW_S, HPA_DOWN_PERCENT, HPA_DOWN_PERIOD_S = 300, 10, 60

# KPI: auto-scale within 2 minutes.
SCALE_OUT_KPI_S = 120

# The seed's monthly budget, USD: today's cost by category, and the 6-month projection
# (its total only). Phases: 1 = months 1-2, 2 = months 3-4, 3 = months 5-6.
BUDGET_BASELINE_USD = {"compute": 500, "database": 300, "storage": 100, "bandwidth": 200,
                       "monitoring": 50}
BUDGET_SIX_MONTHS_USD = 4_550
PHASE_END_MONTH = {1: 2, 2: 4, 3: 6}
# KPI: cost per user down 20% (from the baseline's budget / daily active users).
COST_PER_USER_REDUCTION = 0.20
