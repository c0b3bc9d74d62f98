"""Monthly cost of the planned resources: per resource, stack, environment and phase.

Infracost's model (github.com/infracost/infracost): each planned resource becomes cost
components, each a quantity times a unit price from a price list, with usage (GB, requests,
instance-hours) supplied apart from the resources. Here:

- prices: planner/data/prices.yaml, the one dated table (`sofacover prices refresh`);
- usage: `Usage`, derived from the seed's targets (config/seed.py) for the month a phase ends,
  and `Assumptions`, the project's estimates where the seed says nothing (each one named in
  the report, the UNVERIFIED ones marked);
- resources: the plan (`planner.engine.StackPlan`): instance types, group sizes, storage,
  Multi-AZ, node counts, log retention, as the program would create them.

Savings from reserved capacity, spot and CDN offload are computed apart from the total
(`Saving`): the total is what the plan costs at list price as planned.

Pure data in, data out: no Pulumi import at module level (the plans come in already made).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from config import seed

if TYPE_CHECKING:
    from planner.engine import PlannedResource, StackPlan

PRICES_FILE = Path(__file__).parent / "data" / "prices.yaml"
PRIMARY_PRICE_REGION = seed.PRIMARY_REGION
"""Where a row missing for a region is taken from (the report marks every such line)."""

# The report's cost categories: the seed's five budget lines, then what its table leaves out.
CATEGORIES = ("compute", "database", "storage", "bandwidth", "monitoring", "network",
              "security", "edge")


# === the price table ==========================================================================

class PriceError(ValueError):
    """A price table that cannot be read, or an item it has no row for."""


class PriceRow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str = Field(min_length=1)
    """An AWS region, or "global" for prices that do not depend on one."""
    item: str = Field(min_length=1)
    unit: str = Field(min_length=1)
    usd: float = Field(ge=0)
    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    source: str = Field(min_length=1)
    verified: bool
    note: str | None = None


class PriceTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    currency: str = "USD"
    hours_per_month: float = Field(730, alias="hoursPerMonth", gt=0)
    prices: list[PriceRow]

    def row(self, item: str, region: str | None) -> tuple[PriceRow, bool]:
        """The row for `item` in `region`; then the "global" row; then us-east-1's (the
        second value says a fallback to another region's price was taken)."""
        by_key = self._index()
        for where, fallback in ((region, False), ("global", False),
                                (PRIMARY_PRICE_REGION, region not in (None, "global"))):
            hit = by_key.get((item, where))
            if hit is not None:
                return hit, fallback
        raise PriceError(f"no price for {item!r} in {region or 'global'} "
                         f"(planner/data/prices.yaml; add a row or run `sofacover prices "
                         "refresh`)")

    def usd(self, item: str, region: str | None) -> float:
        return self.row(item, region)[0].usd

    def has(self, item: str) -> bool:
        return any(r.item == item for r in self.prices)

    def _index(self) -> dict[tuple[str, str], PriceRow]:
        return {(r.item, r.region): r for r in self.prices}


def parse_prices(data: Any, where: str = "prices.yaml") -> PriceTable:
    """A PriceTable from the YAML's data; keys starting with "_" (YAML anchors) are skipped."""
    if not isinstance(data, dict):
        raise PriceError(f"{where}: expected a mapping with date and prices")
    try:
        return PriceTable.model_validate({k: v for k, v in data.items()
                                          if not str(k).startswith("_")})
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"])
        raise PriceError(f"{where}: {path}: {first['msg']}") from None


@cache
def _load(path: str) -> PriceTable:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise PriceError(f"{path}: cannot read the price table ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PriceError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    return parse_prices(data, path)


def load_prices(path: Path | None = None) -> PriceTable:
    return _load(str(path or PRICES_FILE))


# === usage ====================================================================================

@dataclass(frozen=True)
class Usage:
    """The seed's targets for the month a phase ends, linear between the baseline (month 0)
    and the 6-month column (the seed gives no figures in between)."""

    phase: int
    month: int
    daily_users: float
    peak_concurrent_users: float
    monthly_traffic_gb: float
    database_gb: float


def _between(a: float, b: float, month: int) -> float:
    return a + (b - a) * month / 6


def usage_for_phase(phase: int) -> Usage:
    if phase not in seed.PHASE_END_MONTH:
        raise ValueError(f"phase is {phase}; valid phases are "
                         f"{', '.join(map(str, seed.PHASE_END_MONTH))}")
    m = seed.PHASE_END_MONTH[phase]
    b, s = seed.BASELINE, seed.SIX_MONTHS
    return Usage(phase, m, _between(b.daily_active_users, s.daily_active_users, m),
                 _between(b.peak_concurrent_users, s.peak_concurrent_users, m),
                 _between(b.monthly_traffic_gb, s.monthly_traffic_gb, m),
                 _between(b.database_gb, s.database_gb, m))


def budget_for_phase(phase: int) -> float:
    """The seed's budget at the month the phase ends: $1,150 at month 0, $4,550 at month 6,
    linear between (the seed gives only those two)."""
    m = seed.PHASE_END_MONTH[phase]
    return _between(sum(seed.BUDGET_BASELINE_USD.values()), seed.BUDGET_SIX_MONTHS_USD, m)


def baseline_cost_per_user() -> float:
    return sum(seed.BUDGET_BASELINE_USD.values()) / seed.BASELINE.daily_active_users


def target_cost_per_user() -> float:
    return baseline_cost_per_user() * (1 - seed.COST_PER_USER_REDUCTION)


@dataclass(frozen=True)
class Assumptions:
    """What the seed does not say and the cost needs. Each is the project's estimate; the
    report prints them all. Change one here and every figure follows."""

    peak_hours_per_day: float = 4
    """Hours a day the fleet runs at the peak's size; the rest at its minimum. UNVERIFIED
    (a retail day with an evening peak)."""
    min_fleet_users: float = seed.BASELINE.peak_concurrent_users
    """Concurrent users a serving stack's minimum fleet carries at its CPU target (the
    capacity model's 1x): sized for today's peak. UNVERIFIED until load-tested."""
    cdn_offload: float = 0.40
    """Share of the bandwidth the CDN serves from its cache: the seed's "CDN offload
    (-40% bandwidth)"."""
    requests_per_user_day: float = 100
    """HTTP requests per daily user (pages, API calls, assets past the CDN). UNVERIFIED."""
    alb_log_bytes_per_request: float = 400
    """One ALB access-log line, gzipped in S3. UNVERIFIED."""
    nat_share_of_traffic: float = 0.10
    """NAT-processed GB (image pulls, AWS APIs, payment providers) as a share of the
    stack's traffic. UNVERIFIED."""
    replication_gb_per_db_gb: float = 1.0
    """WAL shipped to each cross-region replica per month, per GB of database. UNVERIFIED."""
    backup_daily_change: float = 0.05
    """Share of the database changed a day (incremental backups). UNVERIFIED."""
    log_gb_per_group_month: float = 5.0
    """CloudWatch Logs ingested per log group a month (flow logs, slow logs, EKS control
    plane). UNVERIFIED."""


# === the result ===============================================================================

@dataclass(frozen=True)
class LineItem:
    stack: str
    region: str | None
    resource: str
    """`type name` of the planned resource the cost comes from."""
    category: str
    item: str
    quantity: float
    unit: str
    unit_usd: float
    note: str = ""
    verified: bool = True
    """False: the price row is UNVERIFIED (its note says why)."""
    spare: bool = False
    """Capacity held for the scale-out KPI (placeholder pods' nodes), not for the load."""

    @property
    def monthly_usd(self) -> float:
        return self.quantity * self.unit_usd


@dataclass(frozen=True)
class Saving:
    lever: str
    monthly_usd: float
    applied: bool
    """True: already in the total (the plan has it); False: what the lever would save."""
    how: str


@dataclass
class StackCost:
    stack: str
    region: str | None
    lines: list[LineItem] = field(default_factory=list)
    fleet: Fleet | None = None
    """The serving instances (None: the stack serves no traffic)."""

    @property
    def monthly_usd(self) -> float:
        return sum(line.monthly_usd for line in self.lines)

    @property
    def spare_usd(self) -> float:
        """What the spare capacity (the placeholder pods' nodes) costs a month."""
        return sum(line.monthly_usd for line in self.lines if line.spare)

    def by_category(self) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for line in self.lines:
            out[line.category] += line.monthly_usd
        return dict(out)


@dataclass
class EnvironmentCost:
    environment: str
    phase: int
    usage: Usage
    assumptions: Assumptions
    stacks: list[StackCost]
    savings: list[Saving]
    price_date: str
    fallbacks: list[str]
    """Items priced at another region's row: `item in region`."""
    unpriced: list[str] = field(default_factory=list)
    """Items the table has no row for: left out of the total."""

    @property
    def monthly_usd(self) -> float:
        return sum(s.monthly_usd for s in self.stacks)

    @property
    def unverified_usd(self) -> float:
        """The part of the total priced from UNVERIFIED rows."""
        return sum(li.monthly_usd for s in self.stacks for li in s.lines if not li.verified)

    @property
    def spare_usd(self) -> float:
        """What the spare capacity for the 120 s scale-out costs a month, all stacks."""
        return sum(s.spare_usd for s in self.stacks)

    @property
    def cost_per_daily_user(self) -> float:
        return self.monthly_usd / self.usage.daily_users

    @property
    def budget_usd(self) -> float:
        return budget_for_phase(self.phase)

    def by_category(self) -> dict[str, float]:
        out = {c: 0.0 for c in CATEGORIES}
        for s in self.stacks:
            for c, v in s.by_category().items():
                out[c] += v
        return out


# === from the plan ============================================================================

def _res(plan: StackPlan, type_: str) -> list[PlannedResource]:
    return [r for r in plan.resources if r.type == type_ and not r.read]


ASG = "aws:autoscaling/group:Group"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"


@dataclass(frozen=True)
class Fleet:
    """A serving stack's instances: off-peak, at the peak, and on average."""

    instance_type: str
    off_peak: int
    peak: int
    min_size: int
    max_size: int
    volume_gb: float
    warm_pool: int
    on_demand_base: int = 0
    spot_percent: float = 0.0
    """Of the instances above `on_demand_base`, the share bought as spot (the group's
    mixed-instances policy: 100 - onDemandPercentageAboveBaseCapacity)."""
    autoscaled: bool = False
    """An EKS node group Cluster Autoscaler owns (kubernetes.autoscaler.enabled): its size
    follows the pods and the placeholders, not the plan's desired capacity."""
    spare_off_peak: int = 0
    spare_peak: int = 0
    """Of `off_peak` and `peak`, the nodes that run only for the placeholder pods (spare
    capacity for the scale-out KPI): the count with them less the count without."""
    spare_pods: int = 0
    planned_desired: int = 0
    """The group's desiredCapacity in the plan (what the cluster starts with)."""

    def average(self, a: Assumptions) -> float:
        h = a.peak_hours_per_day
        return (h * self.peak + (24 - h) * self.off_peak) / 24

    def spare_average(self, a: Assumptions) -> float:
        """Average nodes held for the placeholder pods."""
        h = a.peak_hours_per_day
        return (h * self.spare_peak + (24 - h) * self.spare_off_peak) / 24

    def always_on_share(self, a: Assumptions) -> float:
        """Share of the on-demand instance-hours that run all month (the off-peak fleet's
        on-demand part): what a reservation covers."""
        spot_off = max(0, self.off_peak - self.on_demand_base) * self.spot_percent / 100
        on_demand = self.average(a) - self.spot_average(a)
        return (self.off_peak - spot_off) / on_demand if on_demand else 0.0

    def spot_average(self, a: Assumptions) -> float:
        """Average spot instances: the share above the base, at off-peak and peak sizes."""
        h = a.peak_hours_per_day
        share = self.spot_percent / 100
        above = [max(0, n - self.on_demand_base) * share for n in (self.peak, self.off_peak)]
        return (h * above[0] + (24 - h) * above[1]) / 24


def _clamp(v: float, low: int, high: int) -> int:
    return max(low, min(high, math.ceil(v - 1e-9)))


def fleet(plan: StackPlan, peak_load: float) -> Fleet | None:
    """The ASG's instances as planned, sized off-peak (1x) and at `peak_load` x.

    ec2 platform: instances scale with load from the group's minimum. Kubernetes: every
    HPA's replicas scale from minReplicas (clamped to maxReplicas), and the nodes are those
    the pods' CPU requests need (planner/capacity.py's node model: allocatable CPU per node,
    the cluster's own pods), clamped to the group's bounds."""
    groups = _res(plan, ASG)
    if not groups:
        return None
    asg = groups[0].inputs
    templates = _res(plan, LAUNCH_TEMPLATE)
    lt = templates[0].inputs if templates else {}
    itype = lt.get("instanceType") or "unknown"
    volume = sum(float((m.get("ebs") or {}).get("volumeSize") or 0)
                 for m in lt.get("blockDeviceMappings") or ())
    low, high = int(asg.get("minSize", 0)), int(asg.get("maxSize", 0))
    warm = int((asg.get("warmPool") or {}).get("minSize") or 0)
    mixed = asg.get("mixedInstancesPolicy") or {}
    dist = mixed.get("instancesDistribution") or {}
    base = int(dist.get("onDemandBaseCapacity") or 0)
    spot = 100 - float(dist.get("onDemandPercentageAboveBaseCapacity", 100)) if mixed else 0.0
    if mixed and itype == "unknown":
        overrides = (mixed.get("launchTemplate") or {}).get("overrides") or ()
        itype = next((o.get("instanceType") for o in overrides if o.get("instanceType")),
                     itype)
    hpas = _res(plan, HPA)
    cfg = plan.config
    if hpas and cfg is not None and cfg.kubernetes is not None:
        if cfg.kubernetes.autoscaler.enabled:
            planned = Fleet(itype, low, low, low, high, volume, warm, base, spot,
                            planned_desired=int(asg.get("desiredCapacity") or low))
            return _autoscaled_fleet(plan, peak_load, planned)
        off, peak = _nodes_for(plan, 1.0, low, high), _nodes_for(plan, peak_load, low, high)
    else:
        off, peak = low, _clamp(low * peak_load, low, high)
    return Fleet(itype, off, peak, low, high, volume, warm, base, spot)


SETTLE_S = 600
"""Seconds the capacity model runs a load before its node count is read: the HPA's steps,
Cluster Autoscaler's scan and a node's launch fit well inside it."""


def _settled_nodes(plan: StackPlan, load: float, *, placeholders: bool) -> int:
    """Nodes of the autoscaled group once `load` x has held for SETTLE_S (the capacity
    model: first fit on each node's allocatable CPU, the cluster's own pods, Cluster
    Autoscaler adding nodes for Pending pods and pre-empted placeholders), with or without
    the placeholder pods."""
    from planner import capacity

    assert plan.config is not None
    services, nodes = capacity.kubernetes_inputs(plan.config)
    if not placeholders:
        nodes = replace(nodes, spare_pods=0)
    held = capacity.simulate_kubernetes(
        services, nodes, load=lambda t: 1.0 if t < 0 else load,
        timing=capacity.Timing(horizon_s=SETTLE_S))
    last = held.timeline[-1]
    return last.nodes_ready + last.nodes_launching


def _autoscaled_fleet(plan: StackPlan, peak_load: float, planned: Fleet) -> Fleet:
    """Cluster Autoscaler keeps the placeholder pods scheduled, so between spikes the group
    runs capacity.steady_nodes (the pods at their minimum plus the placeholders), not the
    plan's desired capacity; at the peak, what the pods need plus the placeholders again
    (pre-empted ones go Pending and get nodes back)."""
    from planner import capacity

    assert plan.config is not None
    off = capacity.steady_nodes(plan.config)
    peak = max(off, _settled_nodes(plan, peak_load, placeholders=True))
    bare_off = _settled_nodes(plan, 1.0, placeholders=False)
    bare_peak = max(bare_off, _settled_nodes(plan, peak_load, placeholders=False))
    return replace(planned, off_peak=off, peak=peak, autoscaled=True,
                   spare_off_peak=max(0, off - bare_off), spare_peak=max(0, peak - bare_peak),
                   spare_pods=capacity.spare_pods_for(plan.config))


def _nodes_for(plan: StackPlan, load: float, low: int, high: int) -> int:
    from planner import capacity  # its adapter reads the validated stack config

    assert plan.config is not None
    services, nodes = capacity.kubernetes_inputs(plan.config)
    need = nodes.system_cpu_m + sum(
        _clamp(s.hpa.min_replicas * load, s.hpa.min_replicas, s.hpa.max_replicas)
        * s.cpu_request_m for s in services)
    return _clamp(need / nodes.allocatable_cpu_m, low, high)


class _Pricer:
    """Builds one stack's line items; remembers every fallback to another region's row."""

    def __init__(self, plan: StackPlan, prices: PriceTable, fallbacks: list[str],
                 unpriced: list[str]):
        self.plan, self.prices = plan, prices
        self.fallbacks, self.unpriced = fallbacks, unpriced
        self.cost = StackCost(plan.stack, plan.region)

    def add(self, res: PlannedResource | str, category: str, item: str, quantity: float,
            unit: str, *, region: str | None = None, note: str = "",
            factor: float = 1.0, spare: bool = False) -> None:
        where = region or self.plan.region
        try:
            row, fallback = self.prices.row(item, where)
        except PriceError:
            # Not priced: listed in the report (the total is short by it), never a crash.
            label = f"{item} in {where or 'global'}"
            if label not in self.unpriced:
                self.unpriced.append(label)
            return
        if fallback:
            label = f"{item} in {where}"
            if label not in self.fallbacks:
                self.fallbacks.append(label)
            note = "; ".join(filter(None, [note, f"priced at {PRIMARY_PRICE_REGION}'s rate "
                                           f"(no row for {where})"]))
        name = res if isinstance(res, str) else f"{res.type.split(':')[-1]} {res.name}"
        self.cost.lines.append(LineItem(self.plan.stack, where, name, category, item,
                                        quantity, unit, row.usd * factor, note,
                                        row.verified, spare))


def _region_of_arn(arn: str) -> str | None:
    parts = str(arn).split(":")
    return parts[3] if len(parts) > 4 and parts[3] else None


def stack_cost(plan: StackPlan, usage: Usage, prices: PriceTable, *, serving: int,
               edge: bool, a: Assumptions = Assumptions(),
               fallbacks: list[str] | None = None,
               unpriced: list[str] | None = None) -> StackCost:
    """One stack's monthly cost. `serving`: how many stacks share the traffic (equally);
    `edge`: the environment's CDN caches in front of the origins. Items priced at another
    region's row go to `fallbacks`, items the table lacks to `unpriced`."""
    p = _Pricer(plan, prices, fallbacks if fallbacks is not None else [],
                unpriced if unpriced is not None else [])
    hours = prices.hours_per_month
    share = 1 / serving if serving else 0.0
    fl = fleet(plan, usage.peak_concurrent_users * share / a.min_fleet_users)
    p.cost.fleet = fl
    if fl is not None:
        asg = _res(plan, ASG)[0]
        avg = fl.average(a)
        spot_avg = fl.spot_average(a)
        on_demand = (avg - spot_avg) * hours
        # The spare nodes' part of the on-demand hours (all of it when no spot is bought).
        spare = on_demand * fl.spare_average(a) / avg if avg else 0.0
        sizes = (f"{fl.off_peak} off-peak, {fl.peak} for {a.peak_hours_per_day:g} h a day "
                 f"(group {fl.min_size}-{fl.max_size})")
        if fl.autoscaled:
            sizes = (f"Cluster Autoscaler owns the group: {sizes}, sized as it keeps them "
                     f"(capacity.steady_nodes: the pods at their minimum and {fl.spare_pods} "
                     f"placeholder pods), not the planned desired capacity of "
                     f"{fl.planned_desired}")
        p.add(asg, "compute", f"ec2:{fl.instance_type}", on_demand - spare, "instance-hour",
              note=sizes + ("; less the spare capacity on the next line" if spare else "")
              + ("; on-demand share" if spot_avg else ""))
        if spare:
            p.add(asg, "compute", f"ec2:{fl.instance_type}", spare, "instance-hour",
                  spare=True,
                  note=f"spare capacity for the {seed.SCALE_OUT_KPI_S} s scale-out: "
                  f"{fl.spare_off_peak} off-peak, {fl.spare_peak} at the peak of the nodes "
                  f"above run only for the {fl.spare_pods} placeholder pods"
                  + ("; on-demand share" if spot_avg else ""))
        if spot_avg:
            off = _discount(prices, "discount:ec2-spot")
            p.add(asg, "compute", f"ec2:{fl.instance_type}", spot_avg * hours,
                  "spot instance-hour", factor=1 - off,
                  note=f"spot: {fl.spot_percent:g}% above {fl.on_demand_base} on-demand, "
                  f"{off:.0%} off (planner/data/prices.yaml)")
        if fl.volume_gb:
            p.add(asg, "storage", "ebs:gp3", (avg + fl.warm_pool) * fl.volume_gb, "GB-month",
                  note=f"{fl.volume_gb:g} GB root volume per instance"
                  + (f", {fl.warm_pool} warm-pool instance(s) stopped" if fl.warm_pool else ""))
    for res in _res(plan, "aws:eks/cluster:Cluster"):
        p.add(res, "compute", "eks:cluster", hours, "cluster-hour")
    _database(p, plan, usage, a, hours)
    for res in _res(plan, "aws:elasticache/replicationGroup:ReplicationGroup"):
        nodes = int(res.inputs.get("numCacheClusters") or 1)
        p.add(res, "database", f"elasticache:{res.inputs.get('nodeType')}", nodes * hours,
              "node-hour", note=f"{nodes} nodes")
    _network(p, plan, usage, a, hours, share, edge)
    _monitoring(p, plan, a)
    for res in _res(plan, "aws:kms/key:Key"):
        p.add(res, "security", "kms:key", 1, "key-month",
              region=res.inputs.get("region") or plan.region)
    _storage(p, plan, usage, a, share)
    _edge(p, plan, usage)
    return p.cost


def _database(p: _Pricer, plan: StackPlan, usage: Usage, a: Assumptions,
              hours: float) -> None:
    for res in _res(plan, "aws:rds/instance:Instance"):
        i = res.inputs
        multi = bool(i.get("multiAz"))
        factor = p.prices.usd("rds:multi-az-factor", None) if multi else 1.0
        p.add(res, "database", f"rds:{i.get('instanceClass')}", factor * hours,
              "instance-hour", note="Multi-AZ (x2)" if multi else "Single-AZ")
        gb = float(i.get("allocatedStorage") or 0)
        p.add(res, "storage", "rds:gp3-multi-az" if multi else "rds:gp3", gb, "GB-month")
        # RDS gp3 for PostgreSQL: 3,000 IOPS included below 400 GiB, 12,000 from 400 GiB
        # (docs.aws.amazon.com/AmazonRDS/latest/UserGuide/CHAP_Storage.html).
        included = 12_000 if gb >= 400 else 3_000
        extra = max(0, int(i.get("iops") or 0) - included)
        if extra:
            p.add(res, "storage", "rds:gp3-iops", extra * (2 if multi else 1), "IOPS-month",
                  note=f"above the {included:,} included")
        source = i.get("replicateSourceDb")
        if source:
            src_region = _region_of_arn(source)
            if src_region and src_region != plan.region:
                p.add(res, "bandwidth", "transfer:inter-region",
                      usage.database_gb * a.replication_gb_per_db_gb, "GB", region=src_region,
                      note="WAL from the primary (assumed volume)")
            continue
        if i.get("manageMasterUserPassword"):
            p.add(res, "security", "secretsmanager:secret", 1, "secret-month",
                  note="the master password RDS keeps in Secrets Manager")
        days = int(i.get("backupRetentionPeriod") or 0)
        backup_gb = usage.database_gb * (1 + a.backup_daily_change * days)
        # Backup storage up to 100% of the provisioned storage is free (RDS pricing).
        billed = max(0.0, backup_gb - gb)
        if billed:
            p.add(res, "storage", "rds:backup", billed, "GB-month")
    for res in _res(plan, "aws:rds/instanceAutomatedBackupsReplication:"
                          "InstanceAutomatedBackupsReplication"):
        dest = res.inputs.get("region")
        days = int(res.inputs.get("retentionPeriod") or 0)
        copied = usage.database_gb * (1 + a.backup_daily_change * days)
        # Replicated backups: inter-region transfer of the snapshot copies, then backup
        # storage in the destination (docs.aws.amazon.com/AmazonRDS/latest/UserGuide/
        # USER_ReplicateBackups.html); no free allocation there.
        p.add(res, "bandwidth", "transfer:inter-region",
              usage.database_gb * a.backup_daily_change * 30, "GB",
              note="a month of incremental backups copied")
        p.add(res, "storage", "rds:backup", copied, "GB-month", region=dest,
              note=f"{days} days kept in {dest}")


def _network(p: _Pricer, plan: StackPlan, usage: Usage, a: Assumptions, hours: float,
             share: float, edge: bool) -> None:
    albs = [r for r in _res(plan, "aws:lb/loadBalancer:LoadBalancer")
            if r.inputs.get("loadBalancerType", "application") == "application"]
    origin_gb = usage.monthly_traffic_gb * share * ((1 - a.cdn_offload) if edge else 1.0)
    for res in albs:
        p.add(res, "network", "alb:hour", hours, "hour")
        # LCU: the highest of its dimensions; processed bytes (1 GB/h per LCU) and new
        # connections (25/s per LCU) are the ones this traffic can reach, at least 1.
        reqs_per_s = usage.daily_users * a.requests_per_user_day * share / 86_400
        lcu = max(origin_gb / hours, reqs_per_s / 25)
        p.add(res, "network", "alb:lcu", lcu * hours, "LCU-hour",
              note=f"{lcu:.3f} LCU on average")
        p.add(res, "bandwidth", "transfer:internet", origin_gb, "GB",
              note=f"{share:.0%} of {usage.monthly_traffic_gb:,.0f} GB"
              + (f", less {a.cdn_offload:.0%} the CDN serves" if edge else ""))
    nats = _res(plan, "aws:ec2/natGateway:NatGateway")
    for res in nats:
        p.add(res, "network", "nat:hour", hours, "hour")
        if albs:
            p.add(res, "bandwidth", "nat:gb",
                  usage.monthly_traffic_gb * share * a.nat_share_of_traffic / len(nats), "GB")
    for res in _res(plan, "aws:ec2/eip:Eip"):
        p.add(res, "network", "ipv4:hour", hours, "IP-hour")
    # An internet-facing ALB holds a public IPv4 address per subnet (AZ), billed since
    # 2024-02-01 like any other (aws.amazon.com/vpc/pricing, "Public IPv4 Address").
    for res in albs:
        if not res.inputs.get("internal"):
            n = len(res.inputs.get("subnets") or ())
            if n:
                p.add(res, "network", "ipv4:hour", n * hours, "IP-hour",
                      note=f"{n} public addresses, one per AZ")
    _waf(p, plan, usage, a, share)


def _waf(p: _Pricer, plan: StackPlan, usage: Usage, a: Assumptions, share: float) -> None:
    for res in _res(plan, "aws:wafv2/webAcl:WebAcl"):
        rules = len(res.inputs.get("rules") or ())
        p.add(res, "security", "waf:web-acl", 1, "month")
        if rules:
            p.add(res, "security", "waf:rule", rules, "rule-month")
        millions = usage.daily_users * a.requests_per_user_day * share * 30.4 / 1e6
        p.add(res, "security", "waf:requests", millions, "million requests")


def _monitoring(p: _Pricer, plan: StackPlan, a: Assumptions) -> None:
    alarms = _res(plan, "aws:cloudwatch/metricAlarm:MetricAlarm")
    if alarms:
        p.add(f"{len(alarms)} MetricAlarm", "monitoring", "cloudwatch:alarm", len(alarms),
              "alarm-month")
    for res in _res(plan, "aws:cloudwatch/dashboard:Dashboard"):
        p.add(res, "monitoring", "cloudwatch:dashboard", 1, "month")
    for res in _res(plan, "aws:cloudwatch/logGroup:LogGroup"):
        days = int(res.inputs.get("retentionInDays") or 0) or 3653
        p.add(res, "monitoring", "cloudwatch:logs-ingest", a.log_gb_per_group_month, "GB")
        p.add(res, "monitoring", "cloudwatch:logs-storage",
              a.log_gb_per_group_month * days / 30, "GB-month",
              note=f"kept {days} days (steady state)")


def _storage(p: _Pricer, plan: StackPlan, usage: Usage, a: Assumptions, share: float) -> None:
    expiry = {}
    for res in _res(plan, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"):
        for rule in res.inputs.get("rules") or ():
            days = (rule.get("expiration") or {}).get("days")
            if days:
                expiry[res.inputs.get("bucket")] = int(days)
    for res in _res(plan, "aws:s3/bucket:Bucket"):
        bucket = (res.outputs or {}).get("bucket") or (res.outputs or {}).get("id")
        days = expiry.get(bucket, 365)
        monthly_gb = (usage.daily_users * a.requests_per_user_day * share * 30.4
                      * a.alb_log_bytes_per_request / 1e9)
        p.add(res, "storage", "s3:standard", monthly_gb * days / 30, "GB-month",
              note=f"ALB access logs kept {days} days")


def _edge(p: _Pricer, plan: StackPlan, usage: Usage) -> None:
    """The Cloudflare zone plan and add-ons, priced once: on the edge stack (or on an
    all-in-one stack that carries its own edge)."""
    cfg = plan.config
    if cfg is None or cfg.edge is None or cfg.role not in ("edge", "all-in-one"):
        return
    edge = cfg.edge
    label = f"zone {edge.zone_name}"
    if edge.plan == "enterprise":
        p.add(label, "edge", "cloudflare:plan-free", 0, "month",
              note="Enterprise: custom price, not in the table")
    else:
        p.add(label, "edge", f"cloudflare:plan-{edge.plan}", 1, "month")
    for add_on in edge.add_ons:
        p.add(f"account add-on {add_on}", "edge", f"cloudflare:{add_on}", 1, "month")


# === the environment ==========================================================================

def is_serving(plan: StackPlan) -> bool:
    return bool(_res(plan, ASG)) and bool(_res(plan, "aws:lb/loadBalancer:LoadBalancer"))


def has_edge_cache(plans: Iterable[StackPlan]) -> bool:
    """A CDN caches in front of the origins: a cache-settings ruleset is planned."""
    return any(r.type == "cloudflare:index/ruleset:Ruleset"
               and r.inputs.get("phase") == "http_request_cache_settings"
               for plan in plans for r in plan.resources)


def _configured_serving(plans: Sequence[StackPlan]) -> int:
    """The regions that share the traffic, as configured (sofacover:regions.serving): a
    report of one stack takes its share, not all of it."""
    return max((len(pl.config.regions.serving) for pl in plans
                if pl.config is not None and pl.config.regions is not None), default=0)


def _behind_cloudflare(plans: Sequence[StackPlan]) -> bool:
    """A stack whose ALB admits only Cloudflare is served through the edge's cache."""
    return any(pl.config is not None and pl.config.compute is not None
               and pl.config.compute.origin_access == "cloudflare" for pl in plans)


def environment_cost(plans: Sequence[StackPlan], *, prices: PriceTable | None = None,
                     a: Assumptions = Assumptions()) -> EnvironmentCost:
    """The monthly cost of an environment's (or one stack's) plans at their phase."""
    if not plans:
        raise ValueError("no stacks to cost")
    prices = prices or load_prices()
    phase = plans[0].phase
    usage = usage_for_phase(phase)
    serving = max(sum(1 for pl in plans if is_serving(pl)), _configured_serving(plans))
    edge = has_edge_cache(plans) or _behind_cloudflare(plans)
    fallbacks: list[str] = []
    unpriced: list[str] = []
    stacks = [stack_cost(pl, usage, prices, serving=serving, edge=edge, a=a,
                         fallbacks=fallbacks, unpriced=unpriced) for pl in plans]
    env = EnvironmentCost(plans[0].environment, phase, usage, a, stacks, [], prices.date,
                          fallbacks, unpriced)
    env.savings = savings(env, prices, edge)
    return env


def savings(env: EnvironmentCost, prices: PriceTable, edge: bool) -> list[Saving]:
    """Each lever apart from the total: reserved capacity on what runs all month, spot on
    the burst above the minimum fleet, and the CDN's offload of origin bandwidth."""
    lines = [line for s in env.stacks for line in s.lines]
    a = env.assumptions
    ec2 = sum(line.monthly_usd for line in lines
              if line.item.startswith("ec2:") and not line.unit.startswith("spot"))
    spot_lines = [line for line in lines if line.unit.startswith("spot")]
    rds = sum(line.monthly_usd for line in lines if line.item.startswith("rds:db."))
    # The off-peak fleet runs all month: reserve it. The rest is burst.
    base_share = {s.stack: s.fleet.always_on_share(a) for s in env.stacks
                  if s.fleet is not None}
    always_on = sum(line.monthly_usd * base_share.get(line.stack, 1.0) for line in lines
                    if line.item.startswith("ec2:") and not line.unit.startswith("spot"))
    ri_ec2 = _discount(prices, "discount:ec2-reserved-1y")
    ri_rds = _discount(prices, "discount:rds-reserved-1y")
    spot = _discount(prices, "discount:ec2-spot")
    out = [
        Saving("reserved capacity", always_on * ri_ec2 + rds * ri_rds, False,
               f"1-year reservations: {ri_ec2:.0%} off the always-on instances "
               f"(${always_on:,.0f}), {ri_rds:.0%} off the databases (${rds:,.0f})"),
    ]
    if spot_lines:
        taken = sum(line.monthly_usd for line in spot_lines) / (1 - spot) * spot \
            if spot < 1 else 0.0
        out.append(Saving("spot", taken, True,
                          f"the plan's spot share at {spot:.0%} off; the on-demand burst "
                          f"above the minimum (${max(0.0, ec2 - always_on):,.0f}) could "
                          "save more"))
    else:
        out.append(Saving("spot", (ec2 - always_on) * spot, False,
                          f"the burst above the minimum fleet (${ec2 - always_on:,.0f}) on "
                          f"spot at {spot:.0%} off; the plan runs no spot"))
    egress = sum(line.monthly_usd for line in lines if line.item == "transfer:internet")
    if edge:
        offload = egress / (1 - a.cdn_offload) * a.cdn_offload
        out.append(Saving("CDN offload", offload, True,
                          f"the edge serves {a.cdn_offload:.0%} of the bandwidth from cache"))
    else:
        out.append(Saving("CDN offload", egress * a.cdn_offload, False,
                          f"a CDN serving {a.cdn_offload:.0%} of the bandwidth from cache"))
    return out


def _discount(prices: PriceTable, item: str) -> float:
    return prices.usd(item, PRIMARY_PRICE_REGION) if prices.has(item) else 0.0
