"""Time to capacity: a step of N x load on a serving stack as configured, simulated second by
second, and the setting that binds when it misses the seed's 2-minute KPI.

Two platforms (config/presets.py): `kubernetes` (phases 2-3: every service's HPA, the pods'
start-up, the node group that must hold them) and `ec2` (phase 1: the Auto Scaling group's
policies, CloudWatch's periods, instance launch or warm-pool start, the ALB health check).

The HPA is the controller's own algorithm, read from kubernetes/kubernetes
pkg/controller/podautoscaler/replica_calculator.go (GetResourceReplicas, groupPods) and
horizontal.go (reconcileAutoscaler, stabilizeRecommendationWithBehaviors,
convertDesiredReplicasWithBehaviorRate, calculateScaleUp/DownLimitWithScalingRules), as
documented in kubernetes.io "Horizontal Pod Autoscaling". Every timing that is an estimate, not a
documented figure, is a `Timing` field named UNVERIFIED in its comment: the report prints the
timings it used.

The load model: 1x is the load the minimum fleet carries at its CPU target (the most load
that does not scale anything); N x multiplies it at t = 0. A service has capacity when its
ready pods carry the demand within the HPA's tolerance of the target (the point where the
controller stops adding), or when it runs maxReplicas ready pods (all the config allows).
The seconds to capacity are the first second every service of the stack has it.

Pure Python: no Pulumi import here (the adapter reads the validated StackConfig only).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from config.quantity import cpu_millis, memory_mib

if TYPE_CHECKING:
    from config.models import StackConfig

# --- the HPA controller's constants (kube-controller-manager defaults) ----------------------
TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance
SYNC_PERIOD_S = 15  # --horizontal-pod-autoscaler-sync-period
CPU_INITIALIZATION_PERIOD_S = 300  # --horizontal-pod-autoscaler-cpu-initialization-period

SelectPolicy = Literal["Max", "Min", "Disabled"]
Provisioning = Literal["fixed", "cpu-target-tracking", "cluster-autoscaler"]


# === the HPA, as the controller computes it ==================================================

@dataclass(frozen=True)
class Policy:
    """One HPAScalingPolicy: `kind` Percent or Pods, `value` per `period_s`."""

    kind: Literal["Percent", "Pods"]
    value: int
    period_s: int


@dataclass(frozen=True)
class Rules:
    """One direction of an HPA's behavior (HPAScalingRules)."""

    window_s: int
    policies: tuple[Policy, ...]
    select: SelectPolicy = "Max"


@dataclass(frozen=True)
class Hpa:
    min_replicas: int
    max_replicas: int
    cpu_target: int
    """averageUtilization of CPU, percent of the request."""
    up: Rules
    down: Rules
    memory_target: int | None = None
    tolerance: float = TOLERANCE


@dataclass(frozen=True)
class PodSample:
    """What the replica calculator sees of one pod for one resource metric.

    `state`: `pending` (not scheduled), `unready` (running but not Ready, or Ready without a
    sample taken a whole metric window after readiness), `ready`. `usage` is the latest metric
    value (None: metrics-server has none: a "missing" pod)."""

    request: int
    usage: int | None
    state: Literal["pending", "unready", "ready"] = "ready"


def utilization_ratio(usage: Sequence[int], requests: Sequence[int],
                      target: int) -> tuple[float, int]:
    """metrics.GetResourceUtilizationRatio: (ratio, utilization). The utilization is an
    integer percent (Go's integer division), the ratio that integer over the target."""
    utilization = (sum(usage) * 100) // sum(requests)
    return utilization / target, utilization


def replicas_for_resource(current: int, pods: Sequence[PodSample], target: int, *,
                          cpu: bool, tolerance: float = TOLERANCE) -> int | None:
    """ReplicaCalculator.GetResourceReplicas; None where the controller gets an error (no
    metric for any ready pod), so the metric proposes nothing."""
    metrics: dict[int, int] = {}
    ignored: list[int] = []
    missing: list[int] = []
    for i, pod in enumerate(pods):  # groupPods
        if pod.state == "pending":
            ignored.append(i)
        elif pod.usage is None:
            missing.append(i)
        elif cpu and pod.state == "unready":
            ignored.append(i)
        else:
            metrics[i] = pod.usage
    if not metrics:
        return None
    ratio, _ = utilization_ratio(list(metrics.values()), [pods[i].request for i in metrics],
                                 target)
    rebalance_ignored = bool(ignored) and ratio > 1.0
    if not rebalance_ignored and not missing:
        if abs(1.0 - ratio) <= tolerance:
            return current
        return math.ceil(ratio * len(metrics))
    if missing:
        if ratio < 1.0:  # scale-down: missing pods count as using their whole request
            metrics.update({i: pods[i].request for i in missing})
        elif ratio > 1.0:  # scale-up: missing pods count as 0
            metrics.update({i: 0 for i in missing})
    if rebalance_ignored:  # scale-up: unready and pending pods count as 0
        metrics.update({i: 0 for i in ignored})
    new_ratio, _ = utilization_ratio(list(metrics.values()),
                                     [pods[i].request for i in metrics], target)
    if abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0 < new_ratio) or \
            (ratio > 1.0 > new_ratio):
        return current
    new = math.ceil(new_ratio * len(metrics))
    if (new_ratio < 1.0 and new > current) or (new_ratio > 1.0 and new < current):
        return current
    return new


@dataclass
class HpaState:
    """The controller's memory of one HPA: recommendations and scale events, (time, value)."""

    recommendations: list[tuple[float, int]] = field(default_factory=list)
    up_events: list[tuple[float, int]] = field(default_factory=list)
    down_events: list[tuple[float, int]] = field(default_factory=list)


def _changed_in_period(events: list[tuple[float, int]], now: float, period_s: int) -> int:
    # getReplicasChangePerPeriod: events strictly after now - period.
    return sum(change for when, change in events if when > now - period_s)


def stabilize(state: HpaState, hpa: Hpa, now: float, current: int, desired: int) -> int:
    """stabilizeRecommendationWithBehaviors: up, the lowest recommendation of the up window
    (this one included); down, the highest of the down window. Stores `desired`."""
    up = desired >= current
    window = hpa.up.window_s if up else hpa.down.window_s
    better = min if up else max
    out = desired
    for when, rec in state.recommendations:
        if when > now - window:
            out = better(out, rec)
    keep = max(hpa.up.window_s, hpa.down.window_s)
    state.recommendations = [r for r in state.recommendations if r[0] >= now - keep]
    state.recommendations.append((now, desired))
    return out


def scale_up_limit(current: int, state: HpaState, rules: Rules, now: float) -> int:
    """calculateScaleUpLimitWithScalingRules: periodStart = current - added + removed in the
    period; Percent rounds up, Pods adds; selectPolicy picks among the policies."""
    if rules.select == "Disabled":
        return current
    proposals = []
    for p in rules.policies:
        start = (current - _changed_in_period(state.up_events, now, p.period_s)
                 + _changed_in_period(state.down_events, now, p.period_s))
        proposals.append(start + p.value if p.kind == "Pods"
                         else math.ceil(start * (1 + p.value / 100)))
    return min(proposals) if rules.select == "Min" else max(proposals)


def scale_down_limit(current: int, state: HpaState, rules: Rules, now: float) -> int:
    """calculateScaleDownLimitWithBehaviors: Percent truncates (floor), Pods subtracts; the
    default Max selects the largest change, i.e. the lowest count."""
    if rules.select == "Disabled":
        return current
    proposals = []
    for p in rules.policies:
        start = (current + _changed_in_period(state.down_events, now, p.period_s)
                 - _changed_in_period(state.up_events, now, p.period_s))
        proposals.append(start - p.value if p.kind == "Pods"
                         else int(start * (1 - p.value / 100)))
    return max(proposals) if rules.select == "Min" else min(proposals)


def rate_limited(state: HpaState, hpa: Hpa, now: float, current: int, desired: int) -> int:
    """convertDesiredReplicasWithBehaviorRate: the rate limit, then min/max replicas."""
    if desired > current:
        limit = max(scale_up_limit(current, state, hpa.up, now), current)
        return min(desired, hpa.max_replicas, limit)
    if desired < current:
        limit = min(scale_down_limit(current, state, hpa.down, now), current)
        return max(desired, hpa.min_replicas, limit)
    return desired


def reconcile(state: HpaState, hpa: Hpa, now: float, current: int,
              proposals: Sequence[int | None]) -> int:
    """reconcileAutoscaler with a behavior: the new spec replicas of the target. `current` is
    the target's spec replicas; `proposals` one per metric (None: that metric failed)."""
    if current > hpa.max_replicas:
        desired = hpa.max_replicas
    elif current < hpa.min_replicas:
        desired = hpa.min_replicas
    else:
        valid = [p for p in proposals if p is not None]
        if not valid:
            return current  # every metric failed: no rescale
        desired = rate_limited(state, hpa, now, current,
                               stabilize(state, hpa, now, current, max(valid)))
    if desired != current:  # storeScaleEvent
        longest = max((p.period_s for p in (hpa.up if desired > current else hpa.down).policies),
                      default=0)
        events = state.up_events if desired > current else state.down_events
        events[:] = [e for e in events if e[0] > now - longest]
        events.append((now, abs(desired - current)))
    return desired


# === the stack as the simulator sees it =====================================================

@dataclass(frozen=True)
class Service:
    """One Deployment under an HPA."""

    name: str
    cpu_request_m: int
    cpu_limit_m: int | None
    hpa: Hpa
    memory_request_mib: int = 512
    memory_usage_mib: int = 256
    """Steady memory per pod: it does not grow with load, so memory never drives a scale-up."""


@dataclass(frozen=True)
class NodeGroup:
    """The worker nodes (the Compute component's Auto Scaling group on kubernetes)."""

    instance_type: str
    vcpus: int
    allocatable_cpu_m: int
    """Per node, after kube-reserved and the per-node DaemonSets' requests."""
    min_size: int
    max_size: int
    desired: int
    provisioning: Provisioning
    system_cpu_m: int = 0
    """Requests of the cluster's other pods (PgBouncer, Prometheus, CoreDNS, metrics-server)."""
    cpu_target_percent: int = 70
    fast_margin: int = 15
    fast_percent: int = 50
    warmup_s: int = 90
    spare_nodes: int = 0
    """Nodes running beyond what the minimum pods need at t < 0 (idle, no placeholders)."""
    spare_pods: int = 0
    """Placeholder pods at the lowest priority (components/autoscaler.py): they hold room
    that any app pod pre-empts at once; pre-empted, they turn Pending and the autoscaler
    adds nodes for them (their priority is above its expendable cutoff)."""
    spare_pod_cpu_m: int = 250


@dataclass(frozen=True)
class Ec2Group:
    """The phase-1 Auto Scaling group behind the ALB (components/compute.py)."""

    instance_type: str
    min_size: int
    max_size: int
    desired: int
    cpu_target_percent: int
    requests_per_target: int | None
    warmup_s: int
    warm_pool: bool
    warm_pool_min_size: int = 1
    warm_pool_max_prepared: int | None = None
    fast_margin: int = 15
    fast_percent: int = 50
    fast_period_s: int = 60
    """The spike alarm's period: 60 s on EC2's own CPU metric, 10 s on the CloudWatch
    agent's high-resolution one (components/compute.py)."""
    health_interval_s: int = 15
    healthy_threshold: int = 2


@dataclass(frozen=True)
class Timing:
    """How long things take. Documented figures cite their source; estimates say UNVERIFIED."""

    sync_s: int = SYNC_PERIOD_S
    metric_resolution_s: int = 15
    """metrics-server --metric-resolution (15 s default; 15-60 s, kubernetes-sigs/
    metrics-server docs): a pod's sample is its average over the last window, so the HPA sees
    usage up to 2 windows late."""
    pod_start_s: int = 10
    """Scheduled to Ready with the image cached (startup probe every 2 s, readiness every 5 s);
    UNVERIFIED estimate."""
    image_pull_s: int = 15
    """Extra on a node that has not pulled the image yet; UNVERIFIED estimate."""
    node_launch_s: int = 90
    """EKS node: instance launch, nodeadm join, Ready (60-120 s for AL2023 in public
    reports, UNVERIFIED)."""
    ca_scan_s: int = 10
    """Cluster Autoscaler's scan interval (--scan-interval default, kubernetes/autoscaler FAQ)."""
    preemption_s: int = 2
    """A pending pod pre-empting placeholders until it is bound: the scheduler's next cycle
    after the victims (grace period 0) are gone; UNVERIFIED estimate."""
    instance_launch_s: int = 30
    """EC2 launch to running (26-29 s in independent public measurements)."""
    app_bootstrap_s: int = 60
    """ec2 user data: docker install, image pulls, PgBouncer config, app start; UNVERIFIED."""
    warm_start_s: int = 30
    """A stopped warm-pool instance started with its containers; UNVERIFIED estimate."""
    cloudwatch_period_s: int = 60
    cloudwatch_delay_s: int = 30
    """A 1-minute datapoint reaches the alarm this long after its minute ends; UNVERIFIED."""
    highres_delay_s: int = 15
    """A 10 s agent datapoint reaches its alarm this long after its period ends (agent
    flush every 10 s, then ingestion); UNVERIFIED estimate."""
    tracking_datapoints: int = 3
    """Target tracking's scale-out alarm: 3 of 3 datapoints of 60 s (reported in
    aws/copilot-cli#4233 and hashicorp/terraform-provider-aws#42553)."""
    horizon_s: int = 1200

    def assumptions(self) -> str:
        """The timings a report rests on, for the reader to weigh (the estimates among them
        are UNVERIFIED in the field comments above)."""
        return (f"metric resolution {self.metric_resolution_s} s, pod start "
                f"{self.pod_start_s} s (+{self.image_pull_s} s image pull on a new node), "
                f"pre-empting a placeholder {self.preemption_s} s, autoscaler scan "
                f"{self.ca_scan_s} s, node launch and join {self.node_launch_s} s, EC2 launch "
                f"{self.instance_launch_s} s + bootstrap {self.app_bootstrap_s} s, warm start "
                f"{self.warm_start_s} s, CloudWatch delay {self.cloudwatch_delay_s} s "
                f"(10 s agent datapoints {self.highres_delay_s} s)")


@dataclass(frozen=True)
class Row:
    """One second of the timeline (totals over the stack's services)."""

    t: int
    load: float
    demand: float
    """kubernetes: CPU millicores the load needs; ec2: instance-CPU percent."""
    capacity: float
    """Ready capacity at the target: ready pods x request x target (or instances x target)."""
    ready: int
    total: int
    pending: int
    desired: int
    nodes_ready: int
    nodes_launching: int


@dataclass(frozen=True)
class Result:
    stack: str
    platform: str
    load: float
    seconds: int | None
    """First second every service has capacity; None: not within the horizon."""
    per_service: dict[str, int | None]
    timeline: list[Row]
    notes: list[str] = field(default_factory=list)
    binding: list[str] = field(default_factory=list)

    def meets(self, kpi_s: int) -> bool:
        return self.seconds is not None and self.seconds <= kpi_s


LoadProfile = Callable[[int], float]


def step(load: float) -> LoadProfile:
    """1x before t = 0, `load` x from t = 0."""
    return lambda t: 1.0 if t < 0 else load


SIMULATIONS_KEPT = 128
"""Results a process keeps per simulator (the oldest used goes first)."""


def _memoised(simulate: Callable[..., Result]) -> Callable[..., Result]:
    """A simulation is a pure function of its inputs (frozen dataclasses, numbers, strings):
    the same inputs in one process are simulated once and each caller gets its own copy of
    the result. The key is the inputs' repr, so 10 and 10.0 (or a list and a tuple of the
    same services) are different keys, never a wrong answer; a load profile (a function)
    is always simulated."""
    signature = inspect.signature(simulate)
    kept: OrderedDict[str, Result] = OrderedDict()

    @functools.wraps(simulate)
    def run(*args: object, **kwargs: object) -> Result:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        values = list(bound.arguments.values())
        if any(callable(v) for v in values):
            return simulate(*args, **kwargs)
        key = repr(values)
        got = kept.get(key)
        if got is None:
            got = kept[key] = simulate(*args, **kwargs)
            if len(kept) > SIMULATIONS_KEPT:
                kept.popitem(last=False)
        else:
            kept.move_to_end(key)
        return replace(got, per_service=dict(got.per_service), timeline=list(got.timeline),
                       notes=list(got.notes), binding=list(got.binding))

    return run


# === Kubernetes ==============================================================================

@dataclass
class _Pod:
    svc: int
    created: int
    node: int | None = None
    ready_at: int | None = None
    usage: float = 0.0
    acc: float = 0.0
    acc_at_scrape: float = 0.0
    sample: int | None = None
    sample_at: int | None = None


@dataclass
class _Node:
    ready_at: int
    free_m: int
    images: set[int]


def _baseline_m(svc: Service) -> float:
    return svc.hpa.min_replicas * svc.cpu_request_m * svc.hpa.cpu_target / 100


def _has_capacity(svc: Service, demand_m: float, ready: int) -> bool:
    if ready >= svc.hpa.max_replicas:
        return True
    if ready == 0:
        return False
    per_target = ready * svc.cpu_request_m * svc.hpa.cpu_target / 100
    return demand_m / per_target <= 1 + svc.hpa.tolerance


@_memoised
def simulate_kubernetes(services: Sequence[Service], nodes: NodeGroup, *,
                        load: LoadProfile | float = 10.0, timing: Timing = Timing(),
                        stack: str = "", start_s: int | None = None) -> Result:
    """Second by second from a settled 1x state (t < 0) through the load step at t = 0."""
    stop_early = isinstance(load, (int, float))  # a plain step: done once it has capacity
    profile = step(load) if stop_early else load
    peak = max(profile(t) for t in range(0, timing.horizon_s + 1, 15))
    warm = start_s if start_s is not None else -(max(
        [s.hpa.up.window_s for s in services] + [timing.metric_resolution_s * 2]) + 60)
    warm -= warm % timing.sync_s  # the controller syncs on multiples of the period
    alloc = nodes.allocatable_cpu_m
    settled = nodes.system_cpu_m + sum(s.hpa.min_replicas * s.cpu_request_m for s in services)
    count = min(nodes.max_size, max(nodes.desired, nodes.min_size, math.ceil(settled / alloc))
                + nodes.spare_nodes)
    all_images = set(range(len(services)))
    node_list = [_Node(warm - 10_000, alloc, set(all_images)) for _ in range(count)]
    system_left = nodes.system_cpu_m
    for n in node_list:  # the cluster's own pods first
        take = min(n.free_m, system_left)
        n.free_m -= take
        system_left -= take
    pods: list[_Pod] = []
    spec = [s.hpa.min_replicas for s in services]
    states = [HpaState() for _ in services]
    for i, s in enumerate(services):
        for _ in range(s.hpa.min_replicas):
            pods.append(_Pod(i, warm - 10_000, ready_at=warm - 10_000))
    for p in pods:  # settled: every minimum pod placed (first fit)
        for j, n in enumerate(node_list):
            if n.free_m >= services[p.svc].cpu_request_m:
                n.free_m -= services[p.svc].cpu_request_m
                p.node = j
                break
        else:
            p.ready_at = None
    # placeholders (spare capacity): first fit; the autoscaler has added nodes for them
    # long before t < 0, up to maxSize. `spare[j]`: placeholders on node j.
    spare = [0] * len(node_list)
    spare_cpu = nodes.spare_pod_cpu_m
    spare_pending = nodes.spare_pods
    while spare_pending:
        j = next((j for j, n in enumerate(node_list) if n.free_m >= spare_cpu), None)
        if j is None:
            if len(node_list) >= nodes.max_size:
                break
            node_list.append(_Node(warm - 10_000, alloc, set(all_images)))
            spare.append(0)
            continue
        node_list[j].free_m -= spare_cpu
        spare[j] += 1
        spare_pending -= 1
    count = len(node_list)
    # CloudWatch state for the node group's own policies
    cw_points: list[tuple[int, float]] = []  # (available at, avg node CPU %)
    cw_acc: list[float] = []
    fast_until = -10**9
    group_desired = count
    met: dict[int, int | None] = {i: None for i in range(len(services))}
    rows: list[Row] = []
    baseline = [_baseline_m(s) for s in services]
    ceiling = [s.cpu_limit_m if s.cpu_limit_m is not None else nodes.vcpus * 1000
               for s in services]
    t = warm
    while t <= timing.horizon_s:
        factor = profile(t)
        # nodes that became Ready
        ready_nodes = [j for j, n in enumerate(node_list) if n.ready_at <= t]
        spare += [0] * (len(node_list) - len(spare))
        # scheduler: pending pods, oldest first, first fit on a Ready node; failing that,
        # pre-empting placeholders on the first node where enough of them make room.
        # The same pass counts each service's Ready pods (a pod's readiness changes only
        # when this pass schedules it); a pod not Ready uses nothing.
        ready_count = [0] * len(services)
        ready_pods: list[_Pod] = []
        room: int | None = None  # the most a Ready node offers, placeholders included
        for p in pods:
            if p.node is None:
                req = services[p.svc].cpu_request_m
                if room is None:
                    room = max((node_list[j].free_m + (spare[j] * spare_cpu if spare_cpu > 0
                                                       else 0) for j in ready_nodes),
                               default=None)
                if room is None or req > room:  # no node can take it: it stays Pending
                    p.usage = 0.0
                    continue
                room = None  # free room changes with what follows
                delay = 0
                j = next((j for j in ready_nodes if node_list[j].free_m >= req), None)
                if j is None and spare_cpu > 0:
                    j = next((j for j in ready_nodes
                              if node_list[j].free_m + spare[j] * spare_cpu >= req), None)
                    if j is not None:
                        evict = math.ceil((req - node_list[j].free_m) / spare_cpu)
                        spare[j] -= evict
                        node_list[j].free_m += evict * spare_cpu
                        spare_pending += evict  # recreated by their ReplicaSet: Pending
                        delay = timing.preemption_s
                if j is not None:
                    n = node_list[j]
                    n.free_m -= req
                    p.node = j
                    pull = 0 if p.svc in n.images else timing.image_pull_s
                    n.images.add(p.svc)
                    p.ready_at = t + delay + timing.pod_start_s + pull
            if p.ready_at is not None and p.ready_at <= t:
                ready_count[p.svc] += 1
                ready_pods.append(p)
            else:
                p.usage = 0.0
        # pending placeholders take whatever room is left (they pre-empt nothing)
        for j in ready_nodes:
            while spare_pending and node_list[j].free_m >= spare_cpu:
                node_list[j].free_m -= spare_cpu
                spare[j] += 1
                spare_pending -= 1
        # the load, spread over each service's Ready pods (the Service routes only to them)
        per_node_use = [0.0] * len(node_list)
        use = [min(baseline[i] * factor / ready_count[i] if ready_count[i] else 0.0,
                   ceiling[i]) for i in range(len(services))]
        for p in ready_pods:
            p.usage = use[p.svc]
            per_node_use[p.node] += p.usage  # type: ignore[index]
        # a node cannot give more CPU than it has: its pods share it
        system_use = [0.0] * len(node_list)
        left = nodes.system_cpu_m
        for j, n in enumerate(node_list):
            if n.ready_at <= t and left > 0:
                system_use[j] = min(left, alloc)
                left -= system_use[j]
        for j, used in enumerate(per_node_use):
            room = nodes.vcpus * 1000 - system_use[j]
            if used > room > 0:
                scale = room / used
                for p in pods:
                    if p.node == j:
                        p.usage *= scale
                per_node_use[j] = room
        # metrics-server: every resolution, each pod Ready for a whole window gets a sample,
        # its average over the seconds before this one
        res = timing.metric_resolution_s
        if t % res == 0:
            for p in pods:
                if p.ready_at is not None and p.ready_at <= t - res:
                    p.sample = int((p.acc - p.acc_at_scrape) / res)
                    p.sample_at = t
                p.acc_at_scrape = p.acc
        for p in ready_pods:  # the others use 0.0
            p.acc += p.usage
        # the HPA controller
        if t % timing.sync_s == 0:
            for i, s in enumerate(services):
                mine = [p for p in pods if p.svc == i]
                cpu_view, mem_view = [], []
                for p in mine:
                    if p.node is None:
                        state = "pending"
                    else:
                        # groupPods: not Ready, or (within the CPU initialisation period)
                        # no sample taken a whole window after it became Ready
                        fresh = (p.ready_at is not None and p.sample_at is not None
                                 and t - p.ready_at < CPU_INITIALIZATION_PERIOD_S
                                 and p.sample_at < p.ready_at + res)
                        not_ready = p.ready_at is None or p.ready_at > t
                        state = "unready" if not_ready or fresh else "ready"
                    cpu_view.append(PodSample(s.cpu_request_m, p.sample, state))
                    mem_view.append(PodSample(s.memory_request_mib,
                                              s.memory_usage_mib if p.sample is not None
                                              else None, state))
                proposals = [replicas_for_resource(spec[i], cpu_view, s.hpa.cpu_target,
                                                   cpu=True, tolerance=s.hpa.tolerance)]
                if s.hpa.memory_target is not None:
                    proposals.append(replicas_for_resource(
                        spec[i], mem_view, s.hpa.memory_target, cpu=False,
                        tolerance=s.hpa.tolerance))
                new = reconcile(states[i], s.hpa, t, spec[i], proposals)
                if new > spec[i]:
                    pods += [_Pod(i, t) for _ in range(new - spec[i])]
                elif new < spec[i]:
                    # the ReplicaSet deletes unscheduled, then unready, then newest pods
                    doomed = sorted(mine, key=lambda p: (p.node is not None,
                                                         p.ready_at is not None
                                                         and p.ready_at <= t, p.created),
                                    )[: spec[i] - new]
                    for p in doomed:
                        if p.node is not None:
                            node_list[p.node].free_m += s.cpu_request_m
                        pods.remove(p)
                spec[i] = new
        # node provisioning
        launching = [n for n in node_list if n.ready_at > t]
        if nodes.provisioning == "cluster-autoscaler" and t % timing.ca_scan_s == 0:
            # placeholders count: their priority is at the expendable cutoff, not below
            pending_m = (sum(services[p.svc].cpu_request_m for p in pods if p.node is None)
                         + spare_pending * spare_cpu)
            want = math.ceil(pending_m / alloc) - len(launching)
            add = max(0, min(want, nodes.max_size - len(node_list)))
            node_list += [_Node(t + timing.node_launch_s, alloc, set()) for _ in range(add)]
        elif nodes.provisioning == "cpu-target-tracking":
            period = timing.cloudwatch_period_s
            if t % period == 0 and cw_acc:  # the minute before this second
                cw_points.append((t + timing.cloudwatch_delay_s, sum(cw_acc) / len(cw_acc)))
                cw_acc = []
            counted = [j for j, n in enumerate(node_list) if n.ready_at + nodes.warmup_s <= t]
            if counted:
                cw_acc.append(sum(per_node_use[j] + system_use[j] for j in counted)
                              / (len(counted) * nodes.vcpus * 10))
            seen = [v for at, v in cw_points if at <= t]
            if seen and (t - timing.cloudwatch_delay_s) % period == 0:
                target = nodes.cpu_target_percent
                n_in = len([n for n in node_list if n.ready_at <= t])
                last = seen[-timing.tracking_datapoints:]
                if len(last) == timing.tracking_datapoints and all(v > target for v in last):
                    group_desired = max(group_desired, math.ceil(n_in * last[-1] / target))
                if seen[-1] >= target + nodes.fast_margin and t >= fast_until:
                    group_desired += max(1, group_desired * nodes.fast_percent // 100)
                    fast_until = t + nodes.warmup_s
                group_desired = min(group_desired, nodes.max_size)
                add = group_desired - len(node_list)
                node_list += [_Node(t + timing.node_launch_s, alloc, set())
                              for _ in range(max(0, add))]
        # record
        if t >= 0:
            demand_total = cap_total = 0.0
            for i, s in enumerate(services):
                ready_n = ready_count[i]
                demand = baseline[i] * factor
                demand_total += demand
                cap_total += ready_n * s.cpu_request_m * s.hpa.cpu_target / 100
                if met[i] is None and _has_capacity(s, demand, ready_n):
                    met[i] = t
            ready_all = sum(ready_count)
            rows.append(Row(t, factor, demand_total, cap_total, ready_all, len(pods),
                            [p.node for p in pods].count(None), sum(spec),
                            sum(1 for n in node_list if n.ready_at <= t),
                            sum(1 for n in node_list if n.ready_at > t)))
            if stop_early and all(v is not None for v in met.values()) and t >= 60:
                break
        t += 1
    seconds = None if any(v is None for v in met.values()) else max(
        v for v in met.values() if v is not None)
    notes = []
    for s in services:
        need = _baseline_m(s) * peak / (s.cpu_request_m * s.hpa.cpu_target / 100)
        if need > s.hpa.max_replicas * (1 + s.hpa.tolerance):
            at_max = _baseline_m(s) * peak / (s.hpa.max_replicas * s.cpu_request_m) * 100
            notes.append(f"{s.name}: {peak:g}x needs {math.ceil(need)} pods at the "
                         f"{s.hpa.cpu_target}% target; maxReplicas {s.hpa.max_replicas} "
                         f"carries it at {at_max:.0f}% of the request")
            if s.cpu_limit_m is not None and at_max > s.cpu_limit_m / s.cpu_request_m * 100:
                notes.append(f"{s.name}: above the CPU limit: part of the load is never "
                             "served")
    return Result(stack, "kubernetes", peak, seconds,
                  {s.name: met[i] for i, s in enumerate(services)}, rows, notes)


# === EC2 (phase 1) ===========================================================================

@dataclass
class _Instance:
    launched: int
    in_service_at: int
    healthy_at: int


@_memoised
def simulate_ec2(group: Ec2Group, *, load: LoadProfile | float = 10.0,
                 timing: Timing = Timing(), stack: str = "") -> Result:
    """The group's three policies as components/compute.py configures them: target tracking
    on CPU and on ALB requests per target (3 x 60 s datapoints), and the step policy that
    adds `fast_percent` on one datapoint of `fast_period_s` `fast_margin` points above the
    CPU target."""
    stop_early = isinstance(load, (int, float))  # a plain step: done once it has capacity
    profile = step(load) if stop_early else load
    peak = max(profile(t) for t in range(0, timing.horizon_s + 1, 15))
    target = group.cpu_target_percent
    baseline = group.min_size * target  # instance-CPU percent
    health = group.health_interval_s * group.healthy_threshold
    far = -10_000
    insts = [_Instance(far, far, far) for _ in range(group.desired)]
    prepared = (group.warm_pool_max_prepared if group.warm_pool_max_prepared is not None
                else group.max_size)
    warm = max(group.warm_pool_min_size, prepared - group.desired) if group.warm_pool else 0
    desired = group.desired
    fast_until = -10**9
    cpu_acc: list[float] = []
    req_acc: list[float] = []
    points: list[tuple[int, float, float]] = []
    rows: list[Row] = []
    met: int | None = None
    period = timing.cloudwatch_period_s
    spike_period = group.fast_period_s
    spike_delay = (timing.cloudwatch_delay_s if spike_period >= 60
                   else timing.highres_delay_s)
    spike_acc: list[float] = []
    spikes: list[tuple[int, float]] = []  # (available at, avg CPU %) of the spike alarm
    t = -(period * timing.tracking_datapoints + timing.cloudwatch_delay_s)
    t -= t % period
    while t <= timing.horizon_s:
        factor = profile(t)
        demand = baseline * factor
        healthy = [i for i in insts if i.healthy_at <= t]
        per = min(100.0, demand / len(healthy)) if healthy else 0.0
        if t % period == 0 and cpu_acc:  # the minute before this second
            points.append((t + timing.cloudwatch_delay_s, sum(cpu_acc) / len(cpu_acc),
                           sum(req_acc) / len(req_acc) if req_acc else 0.0))
            cpu_acc, req_acc = [], []
        if t % spike_period == 0 and spike_acc:
            spikes.append((t + spike_delay, sum(spike_acc) / len(spike_acc)))
            spike_acc = []
        # with default instance warmup, an instance's metrics count once it is warm
        counted = [i for i in insts if i.in_service_at + group.warmup_s <= t]
        if counted:
            used = sum(per if i.healthy_at <= t else 0.0 for i in counted)
            cpu_acc.append(used / len(counted))
            spike_acc.append(used / len(counted))
        if healthy and group.requests_per_target is not None:
            # 1x puts requests per target at the target on minSize instances
            req_acc.append(group.requests_per_target * group.min_size * factor / len(healthy))
        seen = [(c, r) for at, c, r in points if at <= t]
        if seen and (t - timing.cloudwatch_delay_s) % period == 0:
            in_service = len([i for i in insts if i.in_service_at <= t])
            last = seen[-timing.tracking_datapoints:]
            full = len(last) == timing.tracking_datapoints
            if full and all(c > target for c, _ in last):
                desired = max(desired, math.ceil(in_service * last[-1][0] / target))
            if full and group.requests_per_target is not None and \
                    all(r > group.requests_per_target for _, r in last):
                desired = max(desired, math.ceil(in_service * last[-1][1]
                                                 / group.requests_per_target))
            desired = min(desired, group.max_size)
        spiked = [c for at, c in spikes if at <= t]
        if spiked and (t - spike_delay) % spike_period == 0 and t >= fast_until and \
                spiked[-1] >= min(100, target + group.fast_margin):
            # PercentChangeInCapacity: rounded down, at least 1 (min_adjustment_magnitude)
            desired = min(group.max_size,
                          desired + max(1, desired * group.fast_percent // 100))
            fast_until = t + group.warmup_s
        while len(insts) < desired:
            if warm > 0:  # a pre-initialised instance: started, its containers restart
                warm -= 1
                in_service = app_up = t + timing.warm_start_s
            else:
                in_service = t + timing.instance_launch_s
                app_up = in_service + timing.app_bootstrap_s
            # the target's first check passes within an interval of the app answering
            insts.append(_Instance(t, in_service, app_up + health))
        if t >= 0:
            ready = len([i for i in insts if i.healthy_at <= t])
            need = min(group.max_size, math.ceil(demand / target))
            if met is None and ready >= need:
                met = t
            rows.append(Row(t, factor, demand, ready * target, ready, len(insts),
                            len(insts) - ready, desired, ready, len(insts) - ready))
            if stop_early and met is not None and t >= 60:
                break
        t += 1
    notes = []
    need = math.ceil(baseline * peak / target)
    if need > group.max_size:
        notes.append(f"{peak:g}x needs {need} instances at the {target}% CPU target; maxSize "
                     f"{group.max_size} runs them at "
                     f"{min(100.0, baseline * peak / group.max_size):.0f}% CPU"
                     + (" (saturated: part of the load is never served)"
                        if baseline * peak / group.max_size > 100 else ""))
    return Result(stack, "ec2", peak, met, {"web": met}, rows, notes)


# === which setting binds ======================================================================

def _relaxations_k8s(services: Sequence[Service], nodes: NodeGroup, timing: Timing
                     ) -> list[tuple[str, Sequence[Service], NodeGroup, Timing]]:
    out = []
    s0 = services[0]
    limited = [s for s in services if s.cpu_limit_m is not None]
    if limited:
        s = limited[0]
        cap = s.cpu_limit_m / s.cpu_request_m * 100 / s.hpa.cpu_target  # type: ignore[operator]
        what = ("limit = request" if s.cpu_limit_m == s.cpu_request_m
                else f"limit {s.cpu_limit_m}m, request {s.cpu_request_m}m")
        out.append((f"CPU limit ({what}) caps each step at {cap:.2f}x "
                    f"({s.cpu_limit_m / s.cpu_request_m * 100:.0f}/{s.hpa.cpu_target})",
                    [replace(x, cpu_limit_m=None) for x in services], nodes, timing))
    if any(s.hpa.up.select == "Disabled" for s in services):
        out.append(("scale-up selectPolicy Disabled",
                    [replace(x, hpa=replace(x.hpa, up=replace(x.hpa.up, select="Max")))
                     for x in services], nodes, timing))
    if any(s.hpa.up.window_s for s in services):
        out.append((f"scale-up stabilisation window {s0.hpa.up.window_s} s",
                    [replace(x, hpa=replace(x.hpa, up=replace(x.hpa.up, window_s=0)))
                     for x in services], nodes, timing))
    pol = ", ".join(f"{p.value}{'%' if p.kind == 'Percent' else ' pods'} per {p.period_s} s"
                    for p in s0.hpa.up.policies)
    out.append((f"scale-up rate policies ({pol}, selectPolicy {s0.hpa.up.select})",
                [replace(x, hpa=replace(x.hpa, up=replace(
                    x.hpa.up, select="Max", policies=(Policy("Pods", 1000, 1),))))
                 for x in services], nodes, timing))
    out.append((f"metrics lag (metric resolution {timing.metric_resolution_s} s)",
                services, nodes, replace(timing, metric_resolution_s=1)))
    out.append((f"pod start-up {timing.pod_start_s} s (+{timing.image_pull_s} s image pull "
                "on a new node)", services, nodes,
                replace(timing, pod_start_s=0, image_pull_s=0)))
    if nodes.provisioning != "cluster-autoscaler":
        how = ("fixed nodes" if nodes.provisioning == "fixed" else
               f"the node group scales on node CPU only (target tracking at "
               f"{nodes.cpu_target_percent}%, {timing.tracking_datapoints} x "
               f"{timing.cloudwatch_period_s} s datapoints)")
        out.append((f"no autoscaler for pending pods: {how}", services,
                    replace(nodes, provisioning="cluster-autoscaler"), timing))
    out.append((f"node launch and join {timing.node_launch_s} s (no spare nodes)", services,
                nodes, replace(timing, node_launch_s=0)))
    out.append((f"node group maxSize {nodes.max_size} ({nodes.max_size} x "
                f"{nodes.instance_type})", services,
                replace(nodes, max_size=nodes.max_size * 4), timing))
    return out


def _relaxations_ec2(group: Ec2Group, timing: Timing
                     ) -> list[tuple[str, Ec2Group, Timing]]:
    out = [(f"target tracking needs {timing.tracking_datapoints} datapoints of "
            f"{timing.cloudwatch_period_s} s (+{timing.cloudwatch_delay_s} s CloudWatch delay)",
            group, replace(timing, tracking_datapoints=1, cloudwatch_delay_s=0))]
    delay = timing.cloudwatch_delay_s if group.fast_period_s >= 60 else timing.highres_delay_s
    out.append((f"spike alarm on {group.fast_period_s} s datapoints (+{delay} s until the "
                f"alarm sees one), a step of {group.fast_percent}%",
                replace(group, fast_period_s=1, fast_percent=1000),
                replace(timing, highres_delay_s=0)))
    if not group.warm_pool:
        out.append(("no warm pool: every instance launches cold "
                    f"({timing.instance_launch_s} s launch + {timing.app_bootstrap_s} s "
                    "bootstrap)", replace(group, warm_pool=True), timing))
    out.append((f"instance start ({timing.instance_launch_s} s launch + "
                f"{timing.app_bootstrap_s} s bootstrap, {timing.warm_start_s} s from the warm "
                "pool)", group, replace(timing, instance_launch_s=0, app_bootstrap_s=0,
                                       warm_start_s=0)))
    out.append((f"ALB health check ({group.healthy_threshold} x {group.health_interval_s} s)",
                replace(group, healthy_threshold=0), timing))
    out.append((f"maxSize {group.max_size}", replace(group, max_size=group.max_size * 4),
                timing))
    return out


def _worse(a: int | None, b: int | None) -> bool:
    """True when `a` is a later time to capacity than `b` (None: never)."""
    return (a is None and b is not None) or (a is not None and b is not None and a > b)


def explain(result: Result, kpi_s: int, rerun: Callable[..., Result],
            candidates: list[tuple[str, tuple]]) -> list[str]:
    """Greedy: the relaxation that alone cuts the time most binds; apply it and look again,
    until the KPI is met or nothing helps."""
    chain: list[str] = []
    current = result.seconds
    applied: tuple = ()
    for _ in range(3):
        if current is not None and current <= kpi_s:
            break
        best: tuple[str, int | None, tuple] | None = None
        for label, change in candidates:
            if label in chain:
                continue
            got = rerun(*applied, change).seconds
            if _worse(current, got) and (best is None or _worse(best[1], got)):
                best = (label, got, change)
        if best is None:
            break
        chain.append(best[0])
        applied = (*applied, best[2])
        current = best[1]
    return chain


def analyse_kubernetes(services: Sequence[Service], nodes: NodeGroup, *, load: float = 10.0,
                       timing: Timing = Timing(), stack: str = "",
                       kpi_s: int | None = None) -> Result:
    """simulate_kubernetes, and when the KPI is missed, the settings that bind, in order."""
    base = simulate_kubernetes(services, nodes, load=load, timing=timing, stack=stack)
    if kpi_s is None or base.meets(kpi_s):
        return base
    cands = [(label, (s, n, tm)) for label, s, n, tm in
             _relaxations_k8s(services, nodes, timing)]

    def rerun(*changes: tuple) -> Result:
        svc, ng, tm = list(services), nodes, timing
        for s, n, c in changes:  # each change is a whole (services, nodes, timing) variant
            svc = _merge_services(svc, s, services)
            ng = _merge(ng, n, nodes)
            tm = _merge(tm, c, timing)
        return simulate_kubernetes(svc, ng, load=load, timing=tm)

    return replace(base, binding=explain(base, kpi_s, rerun, cands))


def analyse_ec2(group: Ec2Group, *, load: float = 10.0, timing: Timing = Timing(),
                stack: str = "", kpi_s: int | None = None) -> Result:
    base = simulate_ec2(group, load=load, timing=timing, stack=stack)
    if kpi_s is None or base.meets(kpi_s):
        return base
    cands = [(label, (g, tm)) for label, g, tm in _relaxations_ec2(group, timing)]

    def rerun(*changes: tuple) -> Result:
        g, tm = group, timing
        for g2, t2 in changes:
            g, tm = _merge(g, g2, group), _merge(tm, t2, timing)
        return simulate_ec2(g, load=load, timing=tm)

    return replace(base, binding=explain(base, kpi_s, rerun, cands))


def _merge(current, variant, original):  # noqa: ANN001, ANN202 - frozen dataclasses
    """`current` with the fields `variant` changed from `original`, nested dataclasses
    field by field (two relaxations of one HPA both survive)."""
    changed = {}
    for f in original.__dataclass_fields__:
        new, old = getattr(variant, f), getattr(original, f)
        if new != old:
            nested = hasattr(old, "__dataclass_fields__") and \
                hasattr(getattr(current, f), "__dataclass_fields__")
            changed[f] = _merge(getattr(current, f), new, old) if nested else new
    return replace(current, **changed) if changed else current


def _merge_services(current: list[Service], variant: Sequence[Service],
                    original: Sequence[Service]) -> list[Service]:
    return [_merge(c, v, o) for c, v, o in zip(current, variant, original, strict=True)]


# === the adapter: StackConfig -> what the simulator needs ====================================

def _instance_types() -> dict[str, dict]:
    # Imported here: planner.mocks imports Pulumi, which this module keeps off its top level.
    from planner.mocks import instance_types

    return instance_types()


def instance_vcpus(instance_type: str) -> int:
    """EC2 DescribeInstanceTypes VCpuInfo.DefaultVCpus, as moto ships it."""
    data = _instance_types().get(instance_type)
    if data is None:
        raise ValueError(f"instance type {instance_type!r} is not in moto's "
                         "DescribeInstanceTypes data")
    return int(data["VCpuInfo"]["DefaultVCpus"])


# The cluster's own pods as the program deploys them, (cpu millicores, memory MiB) each:
# PgBouncer and its exporter (components/pgbouncer.py), kube-prometheus-stack
# (components/prometheus.py: Prometheus, operator, Alertmanager, kube-state-metrics) and
# node-exporter on every node. Cluster Autoscaler's pod: components/autoscaler.py REQUESTS.
PGBOUNCER_POD = (500 + 50, 128 + 32)
PROMETHEUS_STACK = (500 + 100 + 50 + 50, 2048 + 128 + 64 + 128)
NODE_EXPORTER = (50, 32)
PGBOUNCER_POD_CPU_M = PGBOUNCER_POD[0]
PROMETHEUS_STACK_CPU_M = PROMETHEUS_STACK[0]
NODE_EXPORTER_CPU_M = NODE_EXPORTER[0]


def hpa_from_config(cfg_hpa, service=None) -> Hpa:  # noqa: ANN001 - config models
    """The HPA components/workloads.py renders: both policies per direction, selectPolicy
    Max, the service's own replica bounds over the shared ones."""
    def rules(r) -> Rules:  # noqa: ANN001
        return Rules(r.stabilization_window_seconds,
                     (Policy("Percent", r.percent, r.period_seconds),
                      Policy("Pods", r.pods, r.period_seconds)), "Max")
    low = (service.min_replicas if service is not None and service.min_replicas
           else cfg_hpa.min_replicas)
    high = (service.max_replicas if service is not None and service.max_replicas
            else cfg_hpa.max_replicas)
    return Hpa(low, high, cfg_hpa.cpu_utilization, rules(cfg_hpa.scale_up),
               rules(cfg_hpa.scale_down), memory_target=cfg_hpa.memory_utilization)


@dataclass(frozen=True)
class NodeFit:
    """The node group at its maxSize against every pod at its maximum (issue 13, item 1):
    what the scheduler would have to place, what the nodes offer after kube-reserved, the
    eviction threshold and the per-node pods. Pods: the VPC CNI's per-node limit."""

    instance_type: str
    max_size: int
    need_cpu_m: int
    offer_cpu_m: int
    need_mib: int
    offer_mib: int
    need_pods: int
    offer_pods: int
    per_node_cpu_m: int
    """Allocatable CPU of one node for pods that are not DaemonSets."""
    system_cpu_m: int
    """The cluster's own pods (add-ons, PgBouncer, Prometheus, the autoscaler)."""

    @property
    def nodes_needed(self) -> int:
        per_mib = self.offer_mib // self.max_size
        per_pods = self.offer_pods // self.max_size
        return max(math.ceil(self.need_cpu_m / self.per_node_cpu_m),
                   math.ceil(self.need_mib / per_mib), math.ceil(self.need_pods / per_pods))

    def problem(self) -> str | None:
        """Why the group cannot hold the pods at their maximum, or None."""
        if self.nodes_needed <= self.max_size:
            return None
        return (f"is {self.max_size} but every pod at its maximum replicas requests "
                f"{self.need_cpu_m / 1000:g} vCPU, {self.need_mib / 1024:.1f} GiB and "
                f"{self.need_pods} pod slots, while {self.max_size} x {self.instance_type} "
                f"offer {self.offer_cpu_m / 1000:g} vCPU, {self.offer_mib / 1024:.1f} GiB and "
                f"{self.offer_pods} after kube-reserved, eviction and the per-node pods (EKS "
                "AMI nodeadm kube-reserved; VPC CNI max pods); maxSize must be at least "
                f"{self.nodes_needed}, or choose a larger instance type")


def node_group_fit(cfg: StackConfig) -> NodeFit:
    """The node group's room at maxSize for the stack as configured (kubernetes platform).
    Reservations and the add-ons' pods come from the preflight's tables
    (planner/preflight/kubernetes.py), so the config rule and the preflight count alike."""
    from planner.preflight.kubernetes import (  # the preflight imports Pulumi: only here
        ADDON_PODS_PER_CLUSTER,
        ADDON_PODS_PER_NODE,
        InstanceType,
        kube_reserved,
    )
    assert cfg.kubernetes is not None and cfg.compute is not None
    k8s, compute = cfg.kubernetes, cfg.compute
    data = _instance_types()[compute.instance_type]
    itype = InstanceType(int(data["VCpuInfo"]["DefaultVCpus"]),
                         int(data["MemoryInfo"]["SizeInMiB"]),
                         int(data["NetworkInfo"]["MaximumNetworkInterfaces"]),
                         int(data["NetworkInfo"]["Ipv4AddressesPerInterface"]))
    node_cpu = sum(cpu for cpu, _ in ADDON_PODS_PER_NODE.values()) + NODE_EXPORTER[0]
    node_mib = sum(mib for _, mib in ADDON_PODS_PER_NODE.values()) + NODE_EXPORTER[1]
    node_pods = len(ADDON_PODS_PER_NODE) + 1
    sys_cpu = sum(n * cpu for n, cpu, _ in ADDON_PODS_PER_CLUSTER.values())
    sys_mib = sum(n * mib for n, _, mib in ADDON_PODS_PER_CLUSTER.values())
    sys_pods = sum(n for n, _, _ in ADDON_PODS_PER_CLUSTER.values())
    sys_cpu += PROMETHEUS_STACK[0]
    sys_mib += PROMETHEUS_STACK[1]
    sys_pods += 4
    if cfg.pgbouncer is not None:
        sys_cpu += cfg.pgbouncer.replicas * PGBOUNCER_POD[0]
        sys_mib += cfg.pgbouncer.replicas * PGBOUNCER_POD[1]
        sys_pods += cfg.pgbouncer.replicas
    if k8s.autoscaler.enabled:
        from components.autoscaler import REQUESTS

        sys_cpu += cpu_millis(REQUESTS["cpu"])
        sys_mib += memory_mib(REQUESTS["memory"])
        sys_pods += 1
    app_cpu = app_mib = app_pods = 0
    for s in k8s.services:
        high = hpa_from_config(k8s.hpa, s).max_replicas
        app_cpu += high * cpu_millis(s.cpu_request)
        app_mib += high * memory_mib(s.memory_request)
        app_pods += high
    res_cpu, res_mib = kube_reserved(itype)
    per_node_cpu = itype.vcpus * 1000 - res_cpu - node_cpu
    return NodeFit(
        compute.instance_type, compute.max_size, app_cpu + sys_cpu,
        compute.max_size * per_node_cpu, app_mib + sys_mib,
        compute.max_size * (itype.memory_mib - res_mib - node_mib), app_pods + sys_pods,
        compute.max_size * (itype.max_pods - node_pods), per_node_cpu, sys_cpu)


def spare_pods_for(cfg: StackConfig) -> int:
    """Placeholder pods the stack holds: `kubernetes.autoscaler.sparePods`, or sized from
    the HPAs' scale-up over one node's provisioning (components/autoscaler.py)."""
    from components.autoscaler import ScaleUp, spare_pods

    assert cfg.kubernetes is not None
    k8s = cfg.kubernetes
    auto = k8s.autoscaler
    if not auto.enabled:
        return 0
    if auto.spare_pods is not None:
        return auto.spare_pods
    up = k8s.hpa.scale_up
    hpas = [ScaleUp(h.min_replicas, h.max_replicas, up.percent, up.pods, up.period_seconds)
            for h in (hpa_from_config(k8s.hpa, s) for s in k8s.services)]
    return spare_pods(hpas, auto.scan_interval_seconds + Timing().node_launch_s)


def kubernetes_inputs(cfg: StackConfig, provisioning: Provisioning | None = None,
                      spare_nodes: int = 0) -> tuple[list[Service], NodeGroup]:
    """Services and the node group from the validated stack config: Cluster Autoscaler and
    its placeholder pods when `kubernetes.autoscaler.enabled`, else the group's own CPU
    target tracking."""
    assert cfg.kubernetes is not None and cfg.compute is not None
    k8s, compute = cfg.kubernetes, cfg.compute
    services = [Service(s.name, cpu_millis(s.cpu_request), cpu_millis(s.cpu_limit) or None,
                        hpa_from_config(k8s.hpa, s), memory_mib(s.memory_request))
                for s in k8s.services]
    fit = node_group_fit(cfg)
    auto = k8s.autoscaler.enabled
    nodes = NodeGroup(
        compute.instance_type, instance_vcpus(compute.instance_type), fit.per_node_cpu_m,
        compute.min_size, compute.max_size, compute.desired_capacity,
        provisioning or ("cluster-autoscaler" if auto else "cpu-target-tracking"),
        system_cpu_m=fit.system_cpu_m,
        cpu_target_percent=compute.cpu_target_percent,
        warmup_s=compute.instance_warmup_seconds, spare_nodes=spare_nodes,
        spare_pods=spare_pods_for(cfg),
        spare_pod_cpu_m=max(s.cpu_request_m for s in services))
    return services, nodes


def seed_literal_hpa() -> Hpa:
    """The seed plan's HPA as written (config/seed.py): min 3, max 20, CPU 70 %, memory
    80 %; up: window 60 s, +100 % per 15 s; down: window 300 s, -10 % per 60 s. Only the
    policies the seed names (no +4 pods, no -1 pod)."""
    from config import seed

    return Hpa(seed.HPA_MIN, seed.HPA_MAX, seed.HPA_CPU_PERCENT,
               Rules(seed.HPA_UP_WINDOW_S,
                     (Policy("Percent", seed.HPA_UP_PERCENT, seed.HPA_UP_PERIOD_S),)),
               Rules(seed.HPA_DOWN_WINDOW_S,
                     (Policy("Percent", seed.HPA_DOWN_PERCENT, seed.HPA_DOWN_PERIOD_S),)),
               memory_target=seed.HPA_MEMORY_PERCENT)


def analyse_seed_literal(cfg: StackConfig, *, load: float = 10.0, timing: Timing = Timing(),
                         kpi_s: int | None = None) -> Result:
    """The stack's services and nodes as configured, but under the seed's literal HPA and
    a CPU limit equal to the request (the seed's manifests): what the project's choices
    (no scale-up window, no CPU limit, +4 pods) buy, with what binds when it misses."""
    services, nodes = kubernetes_inputs(cfg)
    literal = [replace(s, hpa=seed_literal_hpa(), cpu_limit_m=s.cpu_request_m)
               for s in services]
    return analyse_kubernetes(literal, nodes, load=load, timing=timing,
                              stack=f"{cfg.stack} (seed's literal HPA)", kpi_s=kpi_s)


def steady_nodes(cfg: StackConfig) -> int:
    """Nodes the kubernetes group runs at 1x, placeholders included (what Cluster Autoscaler
    keeps up between spikes, and what the cost of spare capacity is counted in): the
    simulator's settled state at t = 0."""
    services, nodes = kubernetes_inputs(cfg)
    at_rest = simulate_kubernetes(services, nodes, load=1.0, timing=Timing(horizon_s=0))
    return at_rest.timeline[0].nodes_ready


def ec2_inputs(cfg: StackConfig) -> Ec2Group:
    """The phase-1 group from the validated stack config. The target group's health check
    (15 s interval, 2 healthy) is components/compute.py's; tests/test_compute.py holds the
    two together."""
    from components.compute import (  # imports Pulumi: only here
        FAST_SCALE_MARGIN,
        SPIKE_PERIOD_S,
        fast_scale_percent,
    )
    assert cfg.compute is not None
    c = cfg.compute
    return Ec2Group(c.instance_type, c.min_size, c.max_size, c.desired_capacity,
                    c.cpu_target_percent, c.requests_per_target, c.instance_warmup_seconds,
                    c.warm_pool.enabled, c.warm_pool.min_size,
                    c.warm_pool.max_prepared_capacity, fast_margin=FAST_SCALE_MARGIN,
                    fast_percent=fast_scale_percent(c.min_size, c.max_size),
                    fast_period_s=SPIKE_PERIOD_S)


def analyse_stack(cfg: StackConfig, *, load: float = 10.0, timing: Timing = Timing(),
                  kpi_s: int | None = None, provisioning: Provisioning | None = None,
                  spare_nodes: int = 0) -> Result:
    """Time to capacity of one serving stack as configured (and what binds, given a KPI)."""
    if cfg.compute is None:
        raise ValueError(f"{cfg.stack} serves no traffic (no compute config)")
    if cfg.compute.platform == "kubernetes":
        services, nodes = kubernetes_inputs(cfg, provisioning, spare_nodes)
        return analyse_kubernetes(services, nodes, load=load, timing=timing,
                                  stack=cfg.stack, kpi_s=kpi_s)
    return analyse_ec2(ec2_inputs(cfg), load=load, timing=timing, stack=cfg.stack,
                       kpi_s=kpi_s)


# Kubernetes' defaults for a behavior that leaves a direction out (autoscaling/v2).
DEFAULT_UP = Rules(0, (Policy("Percent", 100, 15), Policy("Pods", 4, 15)), "Max")
DEFAULT_DOWN = Rules(300, (Policy("Percent", 100, 15),), "Max")


def hpa_from_manifest(spec: dict) -> Hpa:
    """An autoscaling/v2 HorizontalPodAutoscaler spec as rendered: what the controller reads,
    selectPolicy included."""
    def rules(given: dict | None, default: Rules) -> Rules:
        if not given:
            return default
        policies = tuple(Policy(p["type"], int(p["value"]), int(p["periodSeconds"]))
                         for p in given.get("policies") or ()) or default.policies
        return Rules(int(given.get("stabilizationWindowSeconds", default.window_s)), policies,
                     given.get("selectPolicy", "Max"))
    targets = {m["resource"]["name"]: int(m["resource"]["target"]["averageUtilization"])
               for m in spec.get("metrics") or () if m.get("type") == "Resource"}
    behavior = spec.get("behavior") or {}
    return Hpa(int(spec.get("minReplicas", 1)), int(spec["maxReplicas"]), targets["cpu"],
               rules(behavior.get("scaleUp"), DEFAULT_UP),
               rules(behavior.get("scaleDown"), DEFAULT_DOWN),
               memory_target=targets.get("memory"))


def service_from_manifests(name: str, container: dict, hpa_spec: dict) -> Service:
    """A Deployment's (single) container resources and its HPA, as rendered."""
    resources = container.get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    return Service(name, cpu_millis(requests["cpu"]),
                   cpu_millis(limits["cpu"]) if "cpu" in limits else None,
                   hpa_from_manifest(hpa_spec), memory_mib(requests.get("memory", "512Mi")))
