"""Composite availability per stack and environment, from the providers' published SLAs.

The SLA figures are the monthly uptime each provider commits to (below it, service credits):
a floor they stand behind, not a measurement. Composition, for independent failures:

- series (every part needed): the product of the parts;
- parallel copies (any one will do): 1 - product(1 - A_i);
- parallel with failover: a copy's failure still costs its users the failover time F,
  once per outage. An outage of mean length MTTR happens (1 - A_i) x month / MTTR times a
  month, so the lost share is (1 - A_i) x min(1, F / MTTR), weighted by the traffic share.

An environment has two paths, both reported:
- read path (browse the catalogue): the edge, then any serving region with its own
  database (the primary, or a read replica);
- write path (orders, carts): the edge, any serving region, and the primary's data tier,
  whose cross-region replicas stand by only through a manual promotion (docs/runbook-dr.md).
`availability` in the report is the write path: the stricter one, and what checkout sees.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from config import seed

if TYPE_CHECKING:
    from planner.engine import PlannedResource, StackPlan


@dataclass(frozen=True)
class Sla:
    percent: float
    source: str
    note: str = ""

    @property
    def fraction(self) -> float:
        return self.percent / 100


# The published monthly uptime commitments (read 2026-11-27).
SLAS: dict[str, Sla] = {
    "alb": Sla(99.99, "https://aws.amazon.com/elasticloadbalancing/sla/"),
    "ec2-multi-az": Sla(99.99, "https://aws.amazon.com/compute/sla/",
                        "region-level, instances in two or more AZs"),
    "ec2-single-az": Sla(99.5, "https://aws.amazon.com/compute/sla/", "instance-level"),
    "eks": Sla(99.95, "https://aws.amazon.com/eks/sla/", "the cluster's API endpoint"),
    "rds-multi-az": Sla(99.95, "https://aws.amazon.com/rds/sla/", "Multi-AZ instance"),
    "rds-single-az": Sla(99.5, "https://aws.amazon.com/rds/sla/", "Single-AZ instance"),
    "elasticache-multi-az": Sla(99.99, "https://aws.amazon.com/elasticache/sla/",
                                "Multi-AZ with automatic failover"),
    "elasticache-single-az": Sla(99.9, "https://aws.amazon.com/elasticache/sla/",
                                 "other configurations; UNVERIFIED at the page"),
    "cloudflare-business": Sla(100.0, "https://www.cloudflare.com/business-sla/",
                               "Business and Enterprise plans: 100% uptime"),
    "cloudflare-free": Sla(99.99, "https://www.cloudflare.com/plans/",
                           "Free and Pro carry no SLA; 99.99% is this project's estimate, "
                           "UNVERIFIED"),
}

TARGETS = (seed.SIX_MONTHS.uptime_percent, seed.ONE_YEAR.uptime_percent)
"""The seed's uptime targets the report is set against (99.9% and 99.95%)."""


@dataclass(frozen=True)
class Assumptions:
    """Timings the SLAs do not give; the report prints them."""

    mttr_s: float = 3600
    """Mean length of an outage the SLA allows. UNVERIFIED estimate."""
    promotion_s: float = 1800
    """Promoting a cross-region replica by the runbook: a deploy, then AWS's "several
    minutes or longer" with a reboot. UNVERIFIED estimate."""


# === composition ==============================================================================

def series(parts: Sequence[float]) -> float:
    return math.prod(parts)


def parallel(parts: Sequence[float]) -> float:
    return 1 - math.prod(1 - a for a in parts)


def parallel_failover(parts: Sequence[float], failover_s: float, mttr_s: float,
                      weights: Sequence[float] | None = None) -> float:
    """Copies in parallel where each copy's outage costs its share of users `failover_s`."""
    if not parts:
        raise ValueError("no copies to compose")
    weights = weights or [1 / len(parts)] * len(parts)
    lost = min(1.0, failover_s / mttr_s) if mttr_s > 0 else 1.0
    penalty = sum(w * (1 - a) * lost for w, a in zip(weights, parts, strict=True))
    return max(0.0, parallel(parts) - penalty)


def standby_failover(active: float, standbys: Sequence[float], failover_s: float,
                     mttr_s: float) -> float:
    """One active copy, standbys taking over after `failover_s` (everyone waits)."""
    if not standbys:
        return active
    lost = min(1.0, failover_s / mttr_s) if mttr_s > 0 else 1.0
    return max(0.0, parallel([active, *standbys]) - (1 - active) * lost)


# === from the plan ============================================================================

@dataclass(frozen=True)
class Part:
    name: str
    sla: str
    availability: float


@dataclass
class StackAvailability:
    stack: str
    region: str | None
    serving: list[Part] = field(default_factory=list)
    """In series on a request's way: load balancer, instances, cluster."""
    data: list[Part] = field(default_factory=list)
    """The stack's own database and cache."""
    replica: bool = False
    """Its database is a read replica (the write path needs the primary's)."""

    @property
    def serving_availability(self) -> float:
        return series([p.availability for p in self.serving])

    @property
    def data_availability(self) -> float:
        return series([p.availability for p in self.data])

    @property
    def availability(self) -> float:
        """The stack on its own: every part of it in series."""
        return self.serving_availability * self.data_availability


def _res(plan: StackPlan, type_: str) -> list[PlannedResource]:
    return [r for r in plan.resources if r.type == type_ and not r.read]


def _part(name: str, key: str) -> Part:
    return Part(name, key, SLAS[key].fraction)


def stack_availability(plan: StackPlan) -> StackAvailability:
    out = StackAvailability(plan.stack, plan.region)
    if _res(plan, "aws:lb/loadBalancer:LoadBalancer"):
        out.serving.append(_part("ALB", "alb"))
    for asg in _res(plan, "aws:autoscaling/group:Group"):
        azs = len(asg.inputs.get("vpcZoneIdentifiers") or ())
        out.serving.append(_part("EC2 instances", "ec2-multi-az" if azs >= 2
                                 else "ec2-single-az"))
    # Counted in series: while the API endpoint is down pods keep serving, but nothing
    # scales (the HPA and the autoscaler go through it), which a 10x step needs.
    if _res(plan, "aws:eks/cluster:Cluster"):
        out.serving.append(_part("EKS control plane", "eks"))
    for db in _res(plan, "aws:rds/instance:Instance"):
        multi = bool(db.inputs.get("multiAz"))
        out.replica = out.replica or bool(db.inputs.get("replicateSourceDb"))
        out.data.append(_part("RDS (replica)" if db.inputs.get("replicateSourceDb")
                              else "RDS", "rds-multi-az" if multi else "rds-single-az"))
    for rg in _res(plan, "aws:elasticache/replicationGroup:ReplicationGroup"):
        failover = bool(rg.inputs.get("multiAzEnabled")) and \
            bool(rg.inputs.get("automaticFailoverEnabled"))
        out.data.append(_part("ElastiCache", "elasticache-multi-az" if failover
                              else "elasticache-single-az"))
    return out


def _edge_sla(plans: Sequence[StackPlan]) -> str | None:
    for plan in plans:
        cfg = plan.config
        if cfg is not None and cfg.edge is not None and cfg.role in ("edge", "all-in-one"):
            return ("cloudflare-business" if cfg.edge.plan in ("business", "enterprise")
                    else "cloudflare-free")
    return None


def region_failover_s(plans: Sequence[StackPlan]) -> float | None:
    """Seconds until the edge stops sending a lost region traffic: the load balancer
    monitor's interval x consecutive failures + its timeout (Cloudflare "Monitors":
    an origin is marked unhealthy after consecutive_down failed checks). None: no
    load balancer, so no failover between regions."""
    for plan in plans:
        for m in _res(plan, "cloudflare:index/loadBalancerMonitor:LoadBalancerMonitor"):
            i = m.inputs
            return (float(i.get("interval", 60)) * int(i.get("consecutiveDown") or
                                                         i.get("retries") or 1)
                    + float(i.get("timeout", 5)))
    return None


@dataclass
class EnvironmentAvailability:
    environment: str
    phase: int
    stacks: list[StackAvailability]
    edge: Part | None
    failover_s: float | None
    assumptions: Assumptions
    read_path: float
    write_path: float

    @property
    def availability(self) -> float:
        return self.write_path

    def meets(self, target_percent: float) -> bool:
        return self.availability * 100 >= target_percent - 1e-9


def environment_availability(plans: Sequence[StackPlan],
                             a: Assumptions = Assumptions()) -> EnvironmentAvailability:
    stacks = [stack_availability(p) for p in plans]
    serving = [s for s in stacks if s.serving]
    edge_key = _edge_sla(plans)
    edge = _part("Cloudflare", edge_key) if edge_key else None
    edge_a = edge.availability if edge else 1.0
    failover = region_failover_s(plans)
    if not serving:
        return EnvironmentAvailability(plans[0].environment if plans else "", 0, stacks,
                                       edge, failover, a, 0.0, 0.0)

    def regions(values: list[float]) -> float:
        # Without a load balancer across regions, only one region is reachable: the first
        # (the primary, in rollout order).
        if failover is None or len(values) == 1:
            return values[0]
        return parallel_failover(values, failover, a.mttr_s)

    primary = next((s for s in stacks if s.data and not s.replica), None)
    replicas = [s.data_availability for s in stacks if s.replica]
    if primary is not None:
        data = standby_failover(primary.data_availability, replicas, a.promotion_s,
                                a.mttr_s)
    else:
        # The primary is outside these plans (a secondary reported alone): its own data
        # tier is the best this scope can say for either path.
        data = min((s.data_availability for s in stacks if s.data), default=1.0)
    # Reads: each region from its own database; the primary's region from the primary,
    # which a promoted replica replaces as it does for writes.
    read = edge_a * regions([s.serving_availability * (data if s is primary or
                                                       primary is None else
                                                       s.data_availability)
                             for s in serving])
    write = edge_a * regions([s.serving_availability for s in serving]) * data
    return EnvironmentAvailability(plans[0].environment, plans[0].phase, stacks, edge,
                                   failover, a, read, write)
