"""The thresholds table: every alerting number of the project, in one place.

Three parts, all read at call time so a value changed here (or monkeypatched in a test)
changes the Prometheus rules, the CloudWatch alarms and the tests' expectations together:

- `METRICS`: warning and critical levels with their direction. The first nine rows are the
  seed plan's metric thresholds as written; the rows marked
  `platform` are this project's additions for what the seed does not cover.
- `SEED_ALERTS`: the seed's three alert rules, exactly as written.
- `alert_rules()`: every alert as data (name, PromQL built from the threshold, for-duration,
  severity, summary, description), the seed's three first. `components/monitoring.py`
  renders them as a PrometheusRule and maps the AWS-managed ones onto CloudWatch alarms.

Numbers live only here and in config/seed.py (targets such as the PgBouncer pool budget).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from config import seed

Direction = Literal["above", "below"]
"""`above`: higher is worse (alert when the value rises over the level); `below`: lower is
worse (throughput, conversion, satisfaction)."""
Severity = Literal["warning", "critical"]
Source = Literal["seed", "platform"]


@dataclass(frozen=True)
class Threshold:
    """One row of the table: a metric's warning and critical levels."""

    title: str
    """What is measured, for alert texts and dashboard annotations."""
    unit: str
    """Unit of the levels, as printed after a value ("%", " ms", " s")."""
    warning: float
    critical: float
    direction: Direction
    source: Source

    def __post_init__(self) -> None:
        worse = self.critical >= self.warning if self.direction == "above" \
            else self.critical <= self.warning
        if not worse:
            raise ValueError(f"{self.title}: critical {self.critical} must be worse than "
                             f"warning {self.warning} (direction {self.direction})")

    def level(self, severity: Severity) -> float:
        return self.warning if severity == "warning" else self.critical

    @property
    def operator(self) -> str:
        """The PromQL comparison that means "breached"."""
        return ">" if self.direction == "above" else "<"


METRICS: dict[str, Threshold] = {
    # The seed's metric thresholds (warning / critical), as written.
    "response_time_ms": Threshold("p95 response time", " ms", 2000, 5000, "above", "seed"),
    # The seed gives no unit for throughput; requests per minute is this project's reading
    # (its baseline of 200 concurrent users makes ~1,000 rpm plausible). Dashboard only:
    # an alert on low throughput would fire every night.
    "throughput_rpm": Threshold("throughput", " rpm", 1000, 500, "below", "seed"),
    "error_rate_percent": Threshold("5xx error rate", "%", 1, 5, "above", "seed"),
    # CPU warning 70 equals the HPA / target-tracking target: the fleet is *meant* to run
    # there, so the alerts use the seed's alert rules (80 / 90) and 70 is drawn on the
    # dashboard only.
    "cpu_percent": Threshold("CPU utilisation", "%", 70, 90, "above", "seed"),
    "memory_percent": Threshold("memory used", "%", 80, 95, "above", "seed"),
    "disk_percent": Threshold("disk used", "%", 85, 95, "above", "seed"),
    "conversion_rate_percent": Threshold("conversion rate", "%", 2, 1, "below", "seed"),
    "cart_abandonment_percent": Threshold("cart abandonment", "%", 70, 80, "above", "seed"),
    "satisfaction_score": Threshold("customer satisfaction", "/5", 4.0, 3.5, "below", "seed"),
    # Platform additions. Replica lag: the query cache holds results 15 min, so 30 s of lag
    # is invisible to users and 5 min is stale reads worth waking someone for.
    "replica_lag_seconds": Threshold("database replica lag", " s", 30, 300, "above",
                                     "platform"),
    # Redis replication is normally sub-second; 30 s means a replica is falling behind.
    "redis_replication_lag_seconds": Threshold("Redis replication lag", " s", 5, 30, "above",
                                               "platform"),
    # Evictions mean the cache is too small for its working set (keys with a TTL go first).
    "redis_evictions_per_minute": Threshold("Redis evictions", "/min", 100, 1000, "above",
                                            "platform"),
    # Longest wait of a client for a server connection in PgBouncer. Critical at half the
    # app pool's acquire timeout: beyond it, requests start to time out.
    "pgbouncer_client_wait_seconds": Threshold(
        "PgBouncer client wait", " s", 1, seed.APP_POOL_ACQUIRE_TIMEOUT_S / 2, "above",
        "platform"),
    # Database connections as a share of the PgBouncer server-connection budget.
    "pool_budget_percent": Threshold("share of the pool budget in use", "%", 80, 95, "above",
                                     "platform"),
}


@dataclass(frozen=True)
class SeedAlert:
    """One of the seed's alert rules, as written."""

    name: str
    signal: str
    """Key of `SIGNALS`."""
    threshold: float
    for_seconds: int
    severity: Severity


# "HighCPUUsage cpu > 80 for 5m (warning); CriticalCPUUsage cpu > 90 for 2m (critical);
# DatabaseConnectionsHigh connections > 80 for 3m (warning)."
SEED_ALERTS: tuple[SeedAlert, ...] = (
    SeedAlert("HighCPUUsage", "cpu_percent", 80, 5 * 60, "warning"),
    SeedAlert("CriticalCPUUsage", "cpu_percent", 90, 2 * 60, "critical"),
    # 80 connections is 80% of the seed's PgBouncer budget of 100; the platform rule
    # DatabaseConnectionsNearPoolBudget follows a configured budget.
    SeedAlert("DatabaseConnectionsHigh", "db_connections", 80, 3 * 60, "warning"),
)


def seed_alert(name: str) -> SeedAlert:
    return next(a for a in SEED_ALERTS if a.name == name)


# How long a condition must hold. Warning and critical follow the seed's CPU rules (critical
# acts sooner: it is bad enough that waiting costs more than a false page).
def for_seconds(severity: Severity) -> int:
    name = "HighCPUUsage" if severity == "warning" else "CriticalCPUUsage"
    return seed_alert(name).for_seconds


DISK_FOR_SECONDS = 10 * 60  # disks fill slowly; a log burst that is rotated away is noise
HPA_AT_MAX_FOR_SECONDS = 15 * 60  # the issue: "HPA at max replicas for 15 minutes"
BUSINESS_FOR_SECONDS = 30 * 60  # business ratios are noisy; act on trends, not minutes
HOST_ALARM_FOR_SECONDS = 2 * 60  # two ALB health-check failures (2 x 30 s) plus a margin
UNHEALTHY_TARGETS_ALLOWED = 0  # any unhealthy target behind the ALB is worth a look
HEALTHY_TARGETS_MIN = 1  # below this, nobody serves: an outage
LATENCY_QUANTILE = 0.95  # "p95"

# Capacity planning after deploy (`sofacover capacity`, planner/watch.py). A month's runway is
# the time a size change takes to plan, review and roll out with margin ("act"); a quarter is
# when to put it on the roadmap ("watch"). Seed: "capacity planning automation" (month 4).
RUNWAY_ACT_DAYS = 30
RUNWAY_WATCH_DAYS = 90
HEADROOM_WATCH_PERCENT = 20  # under a fifth of the limit left at the weekly peak

# PgBouncer's idle_transaction_timeout: a client idle inside an open transaction holds one
# of the pool's few server connections (transaction pooling). Past the app pool's acquire
# timeout, clients queued behind it have already given up, so holding it longer only fails
# more requests; PgBouncer then closes that client, and PostgreSQL rolls the transaction
# back. Source: PgBouncer config reference, idle_transaction_timeout
# (https://www.pgbouncer.org/config.html); the seed's acquire timeout (config/seed.py).
PGBOUNCER_IDLE_TRANSACTION_TIMEOUT_S = seed.APP_POOL_ACQUIRE_TIMEOUT_S

# AWS WAF's rate-based rule, requests per client IP in its 5-minute window (the ALB when no
# Cloudflare edge fronts the stack). Without the CDN every asset reaches the ALB: a shopper
# opening a page every 10 s at about 50 requests a page makes 1,500 in 5 minutes; twice
# that leaves room for a few shoppers behind one office NAT, and a scraper or credential-
# stuffing bot at 10 requests a second (3,000) is blocked. AWS WAF accepts 10 to
# 2,000,000,000 (RateBasedStatement.Limit, AWS WAF API reference).
WAF_RATE_LIMIT_PER_IP = 3_000
WAF_RATE_WINDOW_S = 300


@dataclass(frozen=True)
class Signal:
    """A measured quantity and the PromQL that measures it.

    The exporters assumed: node_exporter (cpu, memory, disk), the app's own
    http_requests_total / http_request_duration_seconds, postgres_exporter, redis_exporter,
    pgbouncer_exporter, kube-state-metrics, and the app's business counters (sofacover_*).
    """

    query: str
    metric: str | None
    """Key of `METRICS` giving the unit and title, or None (HPA: a comparison, no number)."""
    labels: tuple[str, ...]
    """Labels an alert of this signal carries (the `by` labels), for the alert texts."""
    what: str


_NODE_FS = 'fstype!~"tmpfs|overlay|squashfs"'
SIGNALS: dict[str, Signal] = {
    # Idle time as a share of all CPU time (not of wall time): right on any core count and
    # across scrape gaps.
    "cpu_percent": Signal(
        '100 * (1 - sum by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m])) '
        "/ sum by (instance) (rate(node_cpu_seconds_total[5m])))",
        "cpu_percent", ("instance",), "CPU on {{ $labels.instance }}"),
    "memory_percent": Signal(
        "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)",
        "memory_percent", ("instance",), "Memory used on {{ $labels.instance }}"),
    "disk_percent": Signal(
        f"100 * (1 - node_filesystem_avail_bytes{{{_NODE_FS}}} "
        f"/ node_filesystem_size_bytes{{{_NODE_FS}}})",
        "disk_percent", ("instance", "mountpoint"),
        "Disk used on {{ $labels.instance }} {{ $labels.mountpoint }}"),
    "latency_p95_ms": Signal(
        f"1000 * histogram_quantile({LATENCY_QUANTILE}, "
        "sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
        "response_time_ms", (), "The p95 response time"),
    "error_rate_percent": Signal(
        '100 * sum(rate(http_requests_total{code=~"5.."}[5m])) '
        "/ sum(rate(http_requests_total[5m]))",
        "error_rate_percent", (), "The share of 5xx responses"),
    "db_connections": Signal(
        "sum by (instance) (pg_stat_database_numbackends)", None, ("instance",),
        "Connections to database {{ $labels.instance }}"),
    "replica_lag_seconds": Signal(
        "max by (instance) (pg_replication_lag_seconds)", "replica_lag_seconds",
        ("instance",), "Replication lag of database replica {{ $labels.instance }}"),
    "redis_memory_percent": Signal(
        # maxmemory 0 means "no limit": drop those series rather than divide by zero.
        "100 * redis_memory_used_bytes / (redis_memory_max_bytes > 0)",
        "memory_percent", ("instance",), "Redis memory used on {{ $labels.instance }}"),
    "redis_evictions_per_minute": Signal(
        "60 * rate(redis_evicted_keys_total[5m])", "redis_evictions_per_minute",
        ("instance",), "Redis evictions on {{ $labels.instance }}"),
    "redis_replication_lag_seconds": Signal(
        "max by (instance) (redis_connected_slave_lag_seconds)",
        "redis_replication_lag_seconds", ("instance",),
        "Redis replication lag behind {{ $labels.instance }}"),
    "pgbouncer_client_wait_seconds": Signal(
        "max by (instance) (pgbouncer_pools_client_maxwait_seconds)",
        "pgbouncer_client_wait_seconds", ("instance",),
        "The longest PgBouncer client wait on {{ $labels.instance }}"),
    "hpa_at_max": Signal(
        "kube_horizontalpodautoscaler_status_current_replicas "
        ">= kube_horizontalpodautoscaler_spec_max_replicas",
        None, ("namespace", "horizontalpodautoscaler"),
        "HPA {{ $labels.namespace }}/{{ $labels.horizontalpodautoscaler }}"),
    "conversion_rate_percent": Signal(
        "100 * sum(increase(sofacover_orders_total[1h])) "
        "/ sum(increase(sofacover_sessions_total[1h]))",
        "conversion_rate_percent", (), "The conversion rate (orders per session, last hour)"),
    "cart_abandonment_percent": Signal(
        "100 * (1 - sum(increase(sofacover_checkouts_total[1h])) "
        "/ sum(increase(sofacover_carts_total[1h])))",
        "cart_abandonment_percent", (), "Cart abandonment (last hour)"),
    "satisfaction_score": Signal(
        "avg(avg_over_time(sofacover_satisfaction_score[1h]))", "satisfaction_score", (),
        "Customer satisfaction (rolling, last hour)"),
}


def number(value: float) -> str:
    """A threshold as PromQL and people write it: 80, 3.5, 0.95."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def duration(seconds: int) -> str:
    """A Prometheus duration: 300 -> 5m, 3600 -> 1h."""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class AlertRule:
    """One alert, as data. `expr` is built from `threshold`; no number is written twice."""

    name: str
    signal: str | None
    """Key of `SIGNALS`; None for a CloudWatch-only rule (no PromQL, not rendered)."""
    severity: Severity
    for_seconds: int
    threshold: float | None
    """None when the signal is itself the condition (HPA at its maximum)."""
    operator: str
    group: Literal["seed", "platform", "business"]
    action: str
    """What to do, appended to the description."""
    unit: str = ""
    subject: str = ""
    """What is measured, for a CloudWatch-only rule (a signal brings its own)."""

    @property
    def what(self) -> str:
        return SIGNALS[self.signal].what if self.signal else self.subject

    @property
    def expr(self) -> str:
        if self.signal is None:
            raise ValueError(f"{self.name} is a CloudWatch-only rule; it has no PromQL")
        query = SIGNALS[self.signal].query
        if self.threshold is None:
            return query
        return f"{query} {self.operator} {number(self.threshold)}"

    @property
    def for_(self) -> str:
        return duration(self.for_seconds)

    @property
    def summary(self) -> str:
        if self.threshold is None:
            return f"{self.what} has been at its maximum for {self.for_}"
        side = "above" if self.operator.startswith(">") else "below"
        return (f"{self.what} has been {side} "
                f"{number(self.threshold)}{self.unit} "
                f"for {self.for_}")

    @property
    def description(self) -> str:
        return f"{self.summary} ({self.severity}). {self.action}"


def _pair(prefix: tuple[str, str], signal: str, action: str, *,
          group: Literal["platform", "business"] = "platform",
          hold: int | None = None) -> list[AlertRule]:
    """A warning and a critical rule for a signal, from its METRICS row."""
    row = METRICS[SIGNALS[signal].metric or ""]
    return [
        AlertRule(name, signal, severity, hold or for_seconds(severity), row.level(severity),
                  row.operator, group, action, row.unit)
        for name, severity in zip(prefix, ("warning", "critical"), strict=True)
    ]


def alert_rules(pool_budget: int = seed.PGBOUNCER_MAX_SERVER_CONNECTIONS) -> list[AlertRule]:
    """Every alert, the seed's three first. `pool_budget` is pgbouncer.maxServerConnections."""
    if pool_budget < 1:
        raise ValueError(f"pool_budget is {pool_budget}; it must be >= 1")
    cpu = METRICS["cpu_percent"]
    seed_actions = {
        "cpu_percent": "Check that autoscaling is adding capacity and what is using the CPU.",
        "db_connections": "Look for connections around PgBouncer and for long transactions.",
    }
    rules = [
        AlertRule(a.name, a.signal, a.severity, a.for_seconds, a.threshold, ">", "seed",
                  seed_actions[a.signal], cpu.unit if a.signal == "cpu_percent" else "")
        for a in SEED_ALERTS
    ]
    budget = METRICS["pool_budget_percent"]
    rules += _pair(("HighResponseTimeP95", "CriticalResponseTimeP95"), "latency_p95_ms",
                   "Check the database, the cache hit rate and recent deploys.")
    rules += _pair(("HighErrorRate", "CriticalErrorRate"), "error_rate_percent",
                   "Check the app logs and recent deploys; roll back if a deploy caused it.")
    rules += _pair(("HighMemoryUsage", "CriticalMemoryUsage"), "memory_percent",
                   "Look for a leak or an undersized node.")
    rules += _pair(("DiskSpaceLow", "DiskSpaceCritical"), "disk_percent",
                   "Free space or grow the volume before writes fail.", hold=DISK_FOR_SECONDS)
    rules.append(AlertRule(
        "DatabaseConnectionsNearPoolBudget", "db_connections", "critical",
        for_seconds("critical"), pool_budget * budget.critical / 100, ">", "platform",
        f"PgBouncer may open {pool_budget} server connections; more than that means clients "
        "bypass it, and new connections will soon be refused."))
    rules += _pair(("DatabaseReplicaLagHigh", "DatabaseReplicaLagCritical"),
                   "replica_lag_seconds",
                   "Reads from this region are stale; check replica load and the network.")
    rules += _pair(("RedisMemoryHigh", "RedisMemoryCritical"), "redis_memory_percent",
                   "Evictions follow; check key TTLs or move to a larger node type.")
    rules += _pair(("RedisEvictionsHigh", "RedisEvictionsCritical"),
                   "redis_evictions_per_minute",
                   "The cache is smaller than its working set: hit rate and database load suffer.")
    rules += _pair(("RedisReplicationLagHigh", "RedisReplicationLagCritical"),
                   "redis_replication_lag_seconds",
                   "A failover now would lose writes; check the primary's load and network.")
    rules += _pair(("PgBouncerClientWaitHigh", "PgBouncerClientWaitCritical"),
                   "pgbouncer_client_wait_seconds",
                   "The server pool is saturated: look for slow queries or raise the budget.")
    rules.append(AlertRule(
        "HPAAtMaxReplicas", "hpa_at_max", "warning", HPA_AT_MAX_FOR_SECONDS, None, "", "platform",
        "Autoscaling can add no more pods: raise maxReplicas or find what is using the CPU."))
    rules += _pair(("ConversionRateLow", "ConversionRateCritical"), "conversion_rate_percent",
                   "Check checkout errors, payment provider status and recent releases.",
                   group="business", hold=BUSINESS_FOR_SECONDS)
    rules += _pair(("CartAbandonmentHigh", "CartAbandonmentCritical"),
                   "cart_abandonment_percent",
                   "Check checkout latency and errors, and shipping or price changes.",
                   group="business", hold=BUSINESS_FOR_SECONDS)
    rules += _pair(("SatisfactionLow", "SatisfactionCritical"), "satisfaction_score",
                   "Read the latest reviews and support tickets.",
                   group="business", hold=BUSINESS_FOR_SECONDS)
    return rules


def target_rules() -> list[AlertRule]:
    """CloudWatch-only rules on the ALB's targets (Prometheus sees pods, not ALB targets)."""
    return [
        AlertRule("UnhealthyTargets", None, "warning", HOST_ALARM_FOR_SECONDS,
                  UNHEALTHY_TARGETS_ALLOWED, ">", "platform",
                  "Check the failing targets' health-check responses and logs.",
                  subject="Unhealthy targets behind the ALB"),
        AlertRule("NoHealthyTargets", None, "critical", HOST_ALARM_FOR_SECONDS,
                  HEALTHY_TARGETS_MIN, "<", "platform",
                  "Nobody serves: check the Auto Scaling group, the pods and recent deploys.",
                  subject="Healthy targets behind the ALB"),
    ]


def rule(name: str, rules: list[AlertRule] | None = None) -> AlertRule:
    """The rule called `name` (of `rules`, default the table at the seed's pool budget)."""
    for r in alert_rules() if rules is None else rules:
        if r.name == name:
            return r
    raise KeyError(f"no alert rule named {name!r} in config/thresholds.py")


# --- config: where alerts go ----------------------------------------------------------------

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _check_email(value: str) -> str:
    if not _EMAIL.fullmatch(value):  # fullmatch: "a@b.com\n" is not an address
        raise PydanticCustomError("email", "{value!r} is not an email address",
                                  {"value": value})
    return value


def _check_https(value: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname or "." not in parts.hostname \
            or any(c.isspace() for c in value):
        raise PydanticCustomError("https", "{value!r} must be an https:// URL with a host, "
                                  "like https://alerts.example.com/hook (SNS would send "
                                  "alerts in clear text to http://)", {"value": value})
    return value


# Kubernetes label syntax (kubernetes.io/docs/concepts/overview/working-with-objects/labels,
# "Syntax and character set"): a key is an optional DNS-subdomain prefix (at most 253) and
# `/`, then a name of at most 63 alphanumerics, - _ . with an alphanumeric at each end; a
# value is empty or such a name. RFC 1123 label: a namespace's name.
_LABEL_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
LABEL_KEY = re.compile(rf"(?:(?=.{{1,253}}/){_DNS_LABEL}(?:\.{_DNS_LABEL})*/)?{_LABEL_NAME}")
LABEL_VALUE = re.compile(rf"(?:{_LABEL_NAME})?")


def _check_labels(labels: dict[str, str]) -> dict[str, str]:
    if not labels:
        raise PydanticCustomError("labels", "is empty; Prometheus's ruleSelector would then "
                                  "load every PrometheusRule in the cluster", {})
    for key, value in labels.items():
        if not LABEL_KEY.fullmatch(key):
            raise PydanticCustomError(
                "label_key", "has key {key}, not a Kubernetes label key ([prefix/]name, the "
                "name 1-63 letters, digits, - _ . starting and ending alphanumeric)",
                {"key": repr(key)})
        if not LABEL_VALUE.fullmatch(value):
            raise PydanticCustomError(
                "label_value", "has {key}: {value}, not a Kubernetes label value (0-63 "
                "letters, digits, - _ . starting and ending alphanumeric)",
                {"key": repr(key), "value": repr(value)})
    return labels


class AlertsConfig(BaseModel):
    """`sofacover:alerts`: who receives alerts, and how Prometheus finds the rules."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel,
                              populate_by_name=False, strict=True)

    emails: list[Annotated[str, AfterValidator(_check_email)]] = []
    """Email subscribers of the alert topic (each must confirm the subscription)."""
    https_endpoints: list[Annotated[str, AfterValidator(_check_https)]] = []
    """HTTPS webhooks (e.g. an incident tool's SNS integration URL)."""
    prometheus_namespace: str = Field(default="monitoring", pattern=rf"^{_DNS_LABEL}$")
    """Namespace of the PrometheusRule (where the Prometheus Operator runs)."""
    prometheus_rule_labels: Annotated[dict[str, str], AfterValidator(_check_labels)] = {
        "release": "kube-prometheus-stack"}
    """Labels the Prometheus ruleSelector matches (kube-prometheus-stack's default)."""
