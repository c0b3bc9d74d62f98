"""Capacity planning after deploy: `sofacover capacity --stack S [--days N]`.

Reads a deployed stack's CloudWatch metrics through boto3 and says, per resource, how much
headroom is left at the recent peak, how many days of runway the measured growth leaves
before a limit, and which setting (or phase) to move next.

How it finds the stack's resources: by the tags every AWS resource of the program carries
(`Project` = the Pulumi project's name, `Stack` = the stack; __main__.py sets them as the
provider's default tags). No Pulumi CLI or state is needed, only read access to the account:
elasticloadbalancing:DescribeLoadBalancers/DescribeTags, autoscaling:DescribeAutoScalingGroups,
rds:DescribeDBInstances, elasticache:DescribeReplicationGroups/ListTagsForResource,
cloudwatch:GetMetricData.

The model, per signal:
- the series is read hourly (the hour's Maximum, or Sum for counts);
- `peak` is the highest hourly value of the last PEAK_WINDOW_DAYS days: capacity must hold
  peaks, spikes included;
- growth is the Theil-Sen slope (the median of the slopes between every pair of days) of the
  daily peaks: one spike neither makes a trend nor hides one;
- runway is the days until the trend line reaches the limit; none when it does not grow.
Limits come from the stack's validated config and the thresholds table
(config/thresholds.py), never from numbers of this module.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import combinations
from typing import TYPE_CHECKING, Any, Literal

from config import thresholds

if TYPE_CHECKING:
    from config.models import StackConfig

Stat = Literal["Maximum", "Sum", "Average"]
Status = Literal["ok", "watch", "act", "no data"]

PEAK_WINDOW_DAYS = 7
"""The peak is taken over the last week: one full weekly cycle of an e-commerce site."""
MIN_DAYS_FOR_TREND = 3
"""Fewer days of data give a peak but no growth (a slope over two points is noise)."""
HOUR = 3600
GIB = 1024 ** 3


@dataclass(frozen=True)
class Signal:
    """One CloudWatch series of one resource and the limit it is held against."""

    resource: str
    """What the operator recognises: `<kind> <name>`."""
    label: str
    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...]
    stat: Stat
    limit: float | None
    """None: a driver without a limit of its own (the traffic), reported for its growth."""
    unit: str
    next_step: str
    scale: float = 1.0
    """Multiplier from CloudWatch's unit to `unit` (bytes to GiB, per hour to per minute)."""
    falling: bool = False
    """The limit is reached going down (free storage)."""


@dataclass(frozen=True)
class Reading:
    signal: Signal
    days_of_data: int
    peak: float | None
    growth_per_day: float | None
    runway_days: float | None

    @property
    def headroom_percent(self) -> float | None:
        s = self.signal
        if self.peak is None or s.limit is None or s.limit == 0:
            return None
        left = (self.peak - s.limit) if s.falling else (s.limit - self.peak)
        return 100.0 * left / s.limit

    @property
    def status(self) -> Status:
        """act: past the limit or within a month of it; watch: little headroom or within a
        quarter (config/thresholds.py); no data: nothing read yet."""
        if self.peak is None:
            return "no data"
        headroom, runway = self.headroom_percent, self.runway_days
        if self.signal.limit is None:
            return "ok"
        if (headroom is not None and headroom <= 0) or \
                (runway is not None and runway < thresholds.RUNWAY_ACT_DAYS):
            return "act"
        if (headroom is not None and headroom < thresholds.HEADROOM_WATCH_PERCENT) or \
                (runway is not None and runway < thresholds.RUNWAY_WATCH_DAYS):
            return "watch"
        return "ok"


# --- discovery -----------------------------------------------------------------------------

def _tagged(tags: Iterable[dict[str, str]], project: str, stack: str) -> bool:
    found = {t["Key"]: t["Value"] for t in tags}
    return found.get("Project") == project and found.get("Stack") == stack


@dataclass(frozen=True)
class Deployed:
    """The stack's resources found in the account (names as CloudWatch dimensions use them)."""

    load_balancers: tuple[str, ...] = ()
    """`app/<name>/<id>`: the ARN's tail, CloudWatch's LoadBalancer dimension."""
    groups: tuple[tuple[str, int], ...] = ()
    """(Auto Scaling group name, MaxSize)."""
    databases: tuple[tuple[str, float], ...] = ()
    """(DB instance identifier, the storage it may grow to, GiB)."""
    caches: tuple[str, ...] = ()
    """Cache cluster ids (the replication group's members)."""

    @property
    def empty(self) -> bool:
        return not (self.load_balancers or self.groups or self.databases or self.caches)


def discover(session: Any, region: str, project: str, stack: str) -> Deployed:
    elbv2 = session.client("elbv2", region_name=region)
    lbs: list[str] = []
    arns = [lb["LoadBalancerArn"] for page in
            elbv2.get_paginator("describe_load_balancers").paginate()
            for lb in page["LoadBalancers"]]
    for i in range(0, len(arns), 20):  # DescribeTags takes at most 20 ARNs
        for desc in elbv2.describe_tags(ResourceArns=arns[i:i + 20])["TagDescriptions"]:
            if _tagged(desc.get("Tags", []), project, stack):
                lbs.append(desc["ResourceArn"].split(":loadbalancer/", 1)[1])

    asg = session.client("autoscaling", region_name=region)
    groups = [(g["AutoScalingGroupName"], int(g["MaxSize"])) for page in
              asg.get_paginator("describe_auto_scaling_groups").paginate()
              for g in page["AutoScalingGroups"] if _tagged(g.get("Tags", []), project, stack)]

    rds = session.client("rds", region_name=region)
    dbs = [(d["DBInstanceIdentifier"],
            float(d.get("MaxAllocatedStorage") or d["AllocatedStorage"]))
           for page in rds.get_paginator("describe_db_instances").paginate()
           for d in page["DBInstances"] if _tagged(d.get("TagList", []), project, stack)]

    ec = session.client("elasticache", region_name=region)
    caches: list[str] = []
    for page in ec.get_paginator("describe_replication_groups").paginate():
        for group in page["ReplicationGroups"]:
            tags = ec.list_tags_for_resource(ResourceName=group["ARN"])["TagList"]
            if _tagged(tags, project, stack):
                caches.extend(group.get("MemberClusters", []))
    return Deployed(tuple(sorted(lbs)), tuple(sorted(groups)), tuple(sorted(dbs)),
                    tuple(sorted(caches)))


# --- what to watch ---------------------------------------------------------------------------

def _threshold(key: str) -> float:
    """The warning level of a thresholds.METRICS entry: where the team wants to act."""
    return float(thresholds.METRICS[key].warning)


def signals(cfg: StackConfig, found: Deployed) -> list[Signal]:
    """Every series to read for a stack, each with its limit and the setting that moves it."""
    out: list[Signal] = []
    compute = cfg.compute
    later = "; phase 2 (Kubernetes, PgBouncer, read replicas) is the seed's next step" \
        if cfg.phase < 2 else ""
    for lb in found.load_balancers:
        limit = None
        step = "the traffic itself: watch its growth against the fleet below"
        if compute is not None and compute.platform == "ec2":
            # Target tracking holds requests per target at this value: the fleet's maximum
            # carries max_size x requests_per_target a minute.
            limit = float(compute.max_size * compute.requests_per_target)
            step = (f"sofacover:compute.maxSize (now {compute.max_size}) or "
                    f"compute.requestsPerTarget (now {compute.requests_per_target}){later}")
        out.append(Signal(f"load balancer {lb}", "requests per minute", "AWS/ApplicationELB",
                          "RequestCount", (("LoadBalancer", lb),), "Sum", limit, "/min", step,
                          scale=1 / 60))
    for name, max_size in found.groups:
        step = (f"sofacover:compute.maxSize (now {max_size}){later}"
                if compute is None or compute.platform == "ec2" else
                f"sofacover:compute.maxSize (now {max_size}): the node group's maximum")
        out.append(Signal(f"auto scaling group {name}", "instances in service",
                          "AWS/AutoScaling", "GroupInServiceInstances",
                          (("AutoScalingGroupName", name),), "Maximum", float(max_size), "",
                          step))
    db = cfg.database
    for ident, storage_gib in found.databases:
        dims = (("DBInstanceIdentifier", ident),)
        cls = db.instance_class if db is not None else "?"
        cpu_step = ("phase 2 adds read replicas and PgBouncer" if cfg.phase < 2 else
                    f"sofacover:database.instanceClass (now {cls}): the next size")
        out.append(Signal(f"database {ident}", "CPU", "AWS/RDS", "CPUUtilization", dims,
                          "Maximum", _threshold("cpu_percent"), "%", cpu_step))
        if db is not None:
            # Connections count against max_connections; the warning share of it is where
            # PgBouncer's budget alert fires too.
            limit = db.max_connections * _threshold("pool_budget_percent") / 100
            out.append(Signal(
                f"database {ident}", "connections", "AWS/RDS", "DatabaseConnections", dims,
                "Maximum", limit, "",
                f"sofacover:pgbouncer.maxServerConnections and database.maxConnections "
                f"(now {db.max_connections})" + ("; phase 2 brings PgBouncer" if cfg.phase < 2
                                                  else "")))
        free_floor = storage_gib * (100 - _threshold("disk_percent")) / 100
        out.append(Signal(f"database {ident}", "free storage", "AWS/RDS", "FreeStorageSpace",
                          dims, "Maximum", free_floor, " GiB",
                          f"sofacover:database.maxAllocatedStorageGb (now {storage_gib:g})",
                          scale=1 / GIB, falling=True))
    node = cfg.cache.node_type if cfg.cache is not None else "?"
    for cluster in found.caches:
        dims = (("CacheClusterId", cluster),)
        out.append(Signal(f"cache {cluster}", "memory used", "AWS/ElastiCache",
                          "DatabaseMemoryUsagePercentage", dims, "Maximum",
                          _threshold("memory_percent"), "%",
                          f"sofacover:cache.nodeType (now {node}): the next size"))
        out.append(Signal(f"cache {cluster}", "evictions per minute", "AWS/ElastiCache",
                          "Evictions", dims, "Sum",
                          _threshold("redis_evictions_per_minute"), "/min",
                          f"sofacover:cache.nodeType (now {node}): the working set does not fit",
                          scale=1 / 60))
    return out


# --- reading and judging ---------------------------------------------------------------------

def fetch(session: Any, region: str, sigs: Sequence[Signal], *, days: int,
          now: datetime) -> dict[Signal, list[tuple[datetime, float]]]:
    """Hourly points of every signal, oldest first (GetMetricData, 500 queries a call)."""
    cw = session.client("cloudwatch", region_name=region)
    ids = {f"m{i}": s for i, s in enumerate(sigs)}
    series: dict[Signal, list[tuple[datetime, float]]] = {s: [] for s in sigs}
    items = list(ids.items())
    for i in range(0, len(items), 500):
        queries = [{"Id": key, "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": s.namespace, "MetricName": s.metric,
                       "Dimensions": [{"Name": n, "Value": v} for n, v in s.dimensions]},
            "Period": HOUR, "Stat": s.stat}} for key, s in items[i:i + 500]]
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"MetricDataQueries": queries,
                                      "StartTime": now - timedelta(days=days), "EndTime": now}
            if token:
                kwargs["NextToken"] = token
            page = cw.get_metric_data(**kwargs)
            for result in page["MetricDataResults"]:
                sig = ids[result["Id"]]
                series[sig].extend((t, v * sig.scale) for t, v in
                                   zip(result["Timestamps"], result["Values"], strict=True))
            token = page.get("NextToken")
            if not token:
                break
    return {s: sorted(points) for s, points in series.items()}


def theil_sen(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Slope and intercept of the Theil-Sen line: the median of the pairwise slopes, and the
    median of y - slope x (Sen 1968). Robust to a minority of spikes."""
    slopes = [(y2 - y1) / (x2 - x1) for (x1, y1), (x2, y2) in combinations(points, 2)
              if x2 != x1]
    slope = statistics.median(slopes) if slopes else 0.0
    intercept = statistics.median(y - slope * x for x, y in points)
    return slope, intercept


def judge(signal: Signal, points: Sequence[tuple[datetime, float]], *,
          now: datetime) -> Reading:
    if not points:
        return Reading(signal, 0, None, None, None)
    pick = min if signal.falling else max
    by_day: dict[int, float] = {}
    for t, v in points:
        day = (now - t).days
        by_day[day] = pick(by_day.get(day, v), v)
    recent = [v for t, v in points if now - t <= timedelta(days=PEAK_WINDOW_DAYS)]
    peak = pick(recent or [v for _, v in points])
    growth = runway = None
    if len(by_day) >= MIN_DAYS_FOR_TREND:
        # x = days since the oldest day: a positive slope is growth.
        oldest = max(by_day)
        slope, intercept = theil_sen([(oldest - d, v) for d, v in sorted(by_day.items())])
        growth = slope
        level = intercept + slope * oldest
        limit = signal.limit
        towards = -slope if signal.falling else slope
        if limit is not None and towards > 0:
            gap = (level - limit) if signal.falling else (limit - level)
            runway = max(gap, 0.0) / towards
    return Reading(signal, len(by_day), peak, growth, runway)


def analyse(cfg: StackConfig, session: Any, *, days: int, project: str,
            now: datetime | None = None) -> tuple[Deployed, list[Reading]]:
    now = now or datetime.now(UTC)
    region = cfg.region
    if region is None:
        raise ValueError(f"{cfg.stack}: the stack has no aws:region")
    found = discover(session, region, project, cfg.stack)
    sigs = signals(cfg, found)
    series = fetch(session, region, sigs, days=days, now=now) if sigs else {}
    return found, [judge(s, series[s], now=now) for s in sigs]


def describe(reading: Reading) -> str:
    """One line per resource and signal, for people and for grep."""
    s = reading.signal
    if reading.peak is None:
        return f"{s.resource}: {s.label}: no data yet"
    parts = [f"{s.resource}: {s.label}: peak {reading.peak:.1f}{s.unit}"]
    if s.limit is not None:
        parts.append(f"limit {s.limit:.1f}{s.unit}")
        parts.append(f"headroom {reading.headroom_percent:.0f}%")
    if reading.growth_per_day is None:
        parts.append(f"growth: n/a ({reading.days_of_data} day(s) of data, "
                     f"{MIN_DAYS_FOR_TREND} needed)")
    else:
        parts.append(f"growth {reading.growth_per_day:+.2f}{s.unit}/day")
        if s.limit is not None:
            parts.append("runway: not growing towards the limit" if reading.runway_days is None
                         else f"runway {reading.runway_days:.0f} days")
    line = ", ".join(parts) + f" [{reading.status}]"
    if reading.status in ("act", "watch"):
        line += f"; next: {s.next_step}"
    return line
