"""The time-to-capacity simulator (planner/capacity.py) against hand-worked cases.

Each expected number is worked out in the comment beside it from the controller's rules
(kubernetes/kubernetes pkg/controller/podautoscaler, kubernetes.io HPA docs, AWS Auto
Scaling docs), not read back from the simulator.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from config import seed
from planner.capacity import (
    DEFAULT_DOWN,
    DEFAULT_UP,
    Ec2Group,
    Hpa,
    HpaState,
    NodeGroup,
    PodSample,
    Policy,
    Rules,
    Service,
    Timing,
    analyse_kubernetes,
    analyse_stack,
    hpa_from_manifest,
    instance_vcpus,
    kubernetes_inputs,
    rate_limited,
    reconcile,
    replicas_for_resource,
    scale_down_limit,
    scale_up_limit,
    simulate_ec2,
    simulate_kubernetes,
    stabilize,
)
from planner.project import Project

KPI = seed.SCALE_OUT_KPI_S
UP = Rules(0, (Policy("Percent", 100, 15), Policy("Pods", 4, 15)))
# One roomy node that never binds: 96 vCPU.
ROOMY = NodeGroup("m5.24xlarge", 96, 95_000, 1, 1, 1, "fixed")


def hpa(**changes) -> Hpa:
    return replace(Hpa(3, 20, 70, UP, DEFAULT_DOWN), **changes)


def ready(n: int, usage: int, request: int = 100) -> list[PodSample]:
    return [PodSample(request, usage) for _ in range(n)]


# --- the replica formula ---------------------------------------------------------------------

def test_a_ratio_within_the_tolerance_changes_nothing():
    # 4 pods at 63m of 100m: utilisation 252*100 // 400 = 63 %; 63 / 60 = 1.05, within 0.1
    assert replicas_for_resource(4, ready(4, 63), 60, cpu=True) == 4
    # 72 %: 72 / 60 = 1.2 -> ceil(1.2 x 4) = ceil(4.8) = 5
    assert replicas_for_resource(4, ready(4, 72), 60, cpu=True) == 5


def test_scaling_up_counts_unready_and_missing_pods_as_idle():
    # 2 ready pods at 100 % of a 50 % target: ratio 2.0. With 2 unready pods counted as 0:
    # 200 * 100 // 400 = 50 % -> ratio 1.0, within tolerance: no change from 4
    pods = ready(2, 100) + [PodSample(100, 0, "unready")] * 2
    assert replicas_for_resource(4, pods, 50, cpu=True) == 4
    # alone they would ask for ceil(2.0 x 2) = 4 (the unready ones ignored entirely)
    assert replicas_for_resource(2, ready(2, 100), 50, cpu=True) == 4
    # 1 pod with no metric yet: 200 * 100 // 300 = 66 %, 66 / 50 = 1.32 -> ceil(3.96) = 4
    assert replicas_for_resource(3, ready(2, 100) + [PodSample(100, None)], 50, cpu=True) == 4
    # pending pods are ignored the same way: 2 at 100 % + 2 pending -> 50 %: no change
    pods = ready(2, 100) + [PodSample(100, None, "pending")] * 2
    assert replicas_for_resource(4, pods, 50, cpu=True) == 4


def test_the_largest_metric_wins():
    state = HpaState()
    # CPU asks 8, memory 5: the controller takes 8 (from 4, within 100 % per 15 s)
    assert reconcile(state, hpa(min_replicas=1), 0, 4, [8, 5]) == 8


def test_cpu_limit_equal_to_request_caps_a_step_at_1_43x():
    # 10 pods can use at most their 100m request: 100 % / 70 % = 1.43 -> ceil(14.29) = 15,
    # however heavy the load behind them
    assert replicas_for_resource(10, ready(10, 100), 70, cpu=True) == 15
    # in the simulator: 3 pods, limit = request, no window, no rate limit, room to spare.
    # Every sync can grow the count by at most ceil(n x 100/70): 3 -> 5 -> 8 -> 12 -> 18 ...
    svc = Service("s", 100, 100, hpa(max_replicas=100,
                                    up=Rules(0, (Policy("Pods", 1000, 1),))))
    result = simulate_kubernetes([svc], ROOMY, load=10)
    counts = [r.desired for r in result.timeline]
    steps = [(a, b) for a, b in zip(counts, counts[1:], strict=False) if b != a]
    assert steps[:4] == [(3, 5), (5, 8), (8, 12), (12, 18)]
    assert all(b <= -(-a * 100 // 70) for a, b in steps)


# --- rate policies and selectPolicy ------------------------------------------------------------

def test_select_policy_max_takes_the_larger_change_and_min_the_smaller():
    state = HpaState()
    # from 10: Percent 100 -> ceil(10 x 2) = 20; Pods 4 -> 14
    assert scale_up_limit(10, state, UP, 0) == 20
    assert scale_up_limit(10, state, replace(UP, select="Min"), 0) == 14
    # from 2: Percent -> 4, Pods -> 6: Max now picks the Pods policy
    assert scale_up_limit(2, state, UP, 0) == 6


def test_select_policy_disabled_never_scales_up():
    state = HpaState()
    disabled = hpa(up=replace(UP, select="Disabled"))
    assert scale_up_limit(3, state, disabled.up, 0) == 3
    assert reconcile(state, disabled, 0, 3, [20]) == 3
    result = simulate_kubernetes([Service("s", 250, None, disabled)], ROOMY, load=10)
    assert result.seconds is None
    assert max(r.desired for r in result.timeline) == 3


def test_rate_policies_count_from_the_start_of_their_period():
    # 3 -> 9 at t = 0 (6 added). At t = 10 the 15 s period still holds that event:
    # periodStart = 9 - 6 = 3, Percent 100 -> ceil(3 x 2) = 6, Pods 4 -> 7; both below 9,
    # so the limit is the current count: no growth until the period has passed
    state = HpaState(up_events=[(0, 6)])
    assert scale_up_limit(9, state, UP, 10) == 7
    assert rate_limited(state, hpa(), 10, 9, 20) == 9
    # at t = 15 the event is not after now - 15: periodStart 9 -> 18 (Percent) vs 13 (Pods)
    assert rate_limited(state, hpa(), 15, 9, 20) == 18
    # removals in the period raise the start: 9 now, 2 removed and 0 added -> start 11 -> 22
    assert scale_up_limit(9, HpaState(down_events=[(5, 2)]), UP, 10) == 22


def test_percent_rounds_up_scaling_up_and_down_scaling_down():
    state = HpaState()
    # from 3, +10 %: ceil(3.3) = 4. Go computes in float64 as Python does: from 50, +10 %
    # is 55.00000000000001, so the controller allows 56, not 55
    assert scale_up_limit(3, state, Rules(0, (Policy("Percent", 10, 60),)), 0) == 4
    assert scale_up_limit(50, state, Rules(0, (Policy("Percent", 10, 60),)), 0) == 56
    down = Rules(300, (Policy("Percent", 10, 60), Policy("Pods", 1, 60)))
    # from 15: Percent 10 -> int(13.5) = 13, Pods 1 -> 14; Max (the larger change) -> 13
    assert scale_down_limit(15, state, down, 0) == 13
    assert scale_down_limit(15, state, replace(down, select="Min"), 0) == 14


# --- stabilisation windows ------------------------------------------------------------------------

def test_scale_up_window_holds_the_lowest_recent_recommendation():
    rules = hpa(up=replace(UP, window_s=60))
    state = HpaState(recommendations=[(0, 3), (15, 6), (30, 8)])
    # at 45 every recommendation is inside (45 - 60, 45]: min(3, 6, 8, 12) = 3
    assert stabilize(state, rules, 45, 3, 12) == 3
    # at 60 the one from t = 0 is not after 60 - 60: min(6, 8, 12, 12) = 6
    assert stabilize(state, rules, 60, 3, 12) == 6


def test_scale_down_window_holds_the_highest_recent_recommendation():
    state = HpaState(recommendations=[(0, 20), (100, 15)])
    # 300 s down window at t = 200: max(20, 15, 5) = 20 (stay at 20)
    assert stabilize(state, hpa(), 200, 20, 5) == 20
    # at t = 301 the 20 has left the window: max(15, 5, 5) = 15
    assert stabilize(state, hpa(), 301, 20, 5) == 15


def test_load_falling_back_waits_for_the_scale_down_window():
    svc = Service("s", 100, None, hpa(min_replicas=2, max_replicas=10))
    # 5x for 200 s, then 1x again: the count holds for the 300 s window after the fall
    profile = lambda t: 1.0 if t < 0 or t >= 200 else 5.0  # noqa: E731
    result = simulate_kubernetes([svc], ROOMY, load=profile,
                                 timing=Timing(horizon_s=900))
    peak = max(r.desired for r in result.timeline)
    # 5x of 2 pods at 70 %: 10 pods at 70 % (7 of 10 pods' requests)
    assert peak == 10
    held = [r.t for r in result.timeline if r.t >= 200 and r.desired == peak]
    assert held[-1] >= 200 + 300 - 30  # the window's samples trail the fall by <= 2 windows
    assert result.timeline[-1].desired < peak


# --- timing: pod start, nodes ---------------------------------------------------------------

def test_pod_start_time_delays_readiness_second_for_second():
    # 1 pod of 100m at a 50 % target; load 2x -> the pod runs at 100 %.
    # t = 0..14: the first sample covering the step is taken at t = 15 (avg of 0..14 = 100m),
    # the sync at 15 asks ceil(2.0 x 1) = 2 pods; the scheduler places it at 16;
    # Ready at 16 + pod start: 10 s -> 26, 40 s -> 56
    svc = Service("s", 100, None, Hpa(1, 10, 50, DEFAULT_UP, DEFAULT_DOWN))
    fast = simulate_kubernetes([svc], ROOMY, load=2, timing=Timing(pod_start_s=10))
    slow = simulate_kubernetes([svc], ROOMY, load=2, timing=Timing(pod_start_s=40))
    assert (fast.seconds, slow.seconds) == (26, 56)


def test_pods_that_do_not_fit_wait_for_nodes_and_max_size_binds():
    # 2 pods of 500m at 70 %, 10x: 7,000m, 20 pods at the target. Nodes hold 3,500m, i.e.
    # 7 pods, 2 nodes at most (maxSize): 14 pods carry 7,000 / (14 x 350) = 1.43x the
    # target, beyond the 0.1 tolerance, and never reach maxReplicas: no capacity, ever
    svc = Service("s", 500, None, hpa(min_replicas=2, max_replicas=20))
    nodes = NodeGroup("m5.xlarge", 4, 3500, 1, 2, 1, "cluster-autoscaler")
    result = analyse_kubernetes([svc], nodes, load=10, kpi_s=KPI)
    assert result.seconds is None
    assert max(r.ready for r in result.timeline) == 14
    assert result.binding[0] == "node group maxSize 2 (2 x m5.xlarge)"
    # with room for all, the autoscaler adds nodes: scan 10 s + launch 90 s on top of the HPA
    roomy = simulate_kubernetes([svc], replace(nodes, max_size=10), load=10)
    assert roomy.seconds is not None and roomy.seconds > 100


def test_the_autoscaler_is_slower_than_nodes_already_there():
    svc = Service("s", 250, None, hpa())
    nodes = NodeGroup("m5.xlarge", 4, 3745, 1, 8, 1, "cluster-autoscaler")
    late = simulate_kubernetes([svc], nodes, load=10)
    early = simulate_kubernetes([svc], replace(nodes, spare_nodes=2), load=10)
    assert early.seconds is not None and late.seconds is not None
    assert late.seconds - early.seconds >= Timing().node_launch_s - 30


# --- the seed's HPA and the project's -----------------------------------------------------------

def seed_literal_hpa() -> Hpa:
    """The seed plan: min 3, max 20, CPU 70 %, memory 80 %; up window 60 s, +100 % per 15 s;
    down window 300 s, -10 % per 60 s (written out, not read from config/seed.py)."""
    return Hpa(3, 20, 70, Rules(60, (Policy("Percent", 100, 15),)),
               Rules(300, (Policy("Percent", 10, 60),)), memory_target=80)


def four(services_hpa: Hpa, limit_m: int | None) -> list[Service]:
    return [Service(n, 250, limit_m, services_hpa)
            for n in ("catalog", "cart", "checkout", "storefront")]


def test_seed_literal_hpa_misses_the_2_minute_kpi():
    # limit = request: each step at most 1.43x and one step per ~30 s (pods start, then a
    # full metric window): 3 -> 5 -> 8 -> 12 -> 18 -> 26, clamped at 20; behind a 60 s
    # window every step waits a minute more: about 360 s (kubernetes.io HPA docs)
    result = analyse_kubernetes(four(seed_literal_hpa(), 250), ROOMY, load=10, kpi_s=KPI)
    assert result.seconds is not None and 300 <= result.seconds <= 420
    assert not result.meets(KPI)
    assert result.binding[0].startswith(("scale-up stabilisation window 60 s",
                                         "CPU limit (limit = request) caps each step at 1.43x"))
    # and the window costs time of its own: without the limit, 60 s is slower than 0 s
    no_limit = four(seed_literal_hpa(), None)
    no_window = four(replace(seed_literal_hpa(), up=replace(seed_literal_hpa().up,
                                                           window_s=0)), None)
    slow, fast = (simulate_kubernetes(s, ROOMY, load=10).seconds for s in (no_limit, no_window))
    assert slow is not None and fast is not None and slow >= fast + 45


def test_project_hpa_meets_the_kpi_when_nodes_are_ready():
    project = Hpa(3, 20, 70, Rules(0, (Policy("Percent", 100, 15), Policy("Pods", 4, 15))),
                  Rules(300, (Policy("Percent", 10, 60), Policy("Pods", 1, 60))),
                  memory_target=80)
    result = simulate_kubernetes(four(project, None), ROOMY, load=10)
    assert result.meets(KPI)


# --- EC2 ---------------------------------------------------------------------------------

def test_ec2_target_tracking_waits_for_three_datapoints():
    # 2 instances at 70 %; load 80/70 x puts them at 80 %: below the fast alarm's 85 %.
    # Minutes [0,60), [60,120), [120,180) read 80 %; each reaches the alarm 30 s after its
    # minute: the third at 210 -> desired ceil(2 x 80/70) = 3. Launch 30 s, bootstrap 60 s,
    # 2 health checks of 15 s: healthy at 210 + 120 = 330. One datapoint: 90 + 120 = 210
    group = Ec2Group("m5.large", 2, 8, 2, 70, None, 90, False)
    assert simulate_ec2(group, load=80 / 70).seconds == 330
    assert simulate_ec2(group, load=80 / 70, timing=Timing(tracking_datapoints=1)).seconds \
        == 210


def test_ec2_warm_pool_starts_instances_faster_than_a_cold_launch():
    group = Ec2Group("m5.large", 2, 8, 2, 70, 1000, 90, False)
    cold, warm = simulate_ec2(group), simulate_ec2(replace(group, warm_pool=True))
    assert warm.seconds is not None and cold.seconds is not None
    # 30 s start instead of 30 s launch + 60 s bootstrap
    assert cold.seconds - warm.seconds == 60


# --- adapters ------------------------------------------------------------------------------------

def test_rendered_hpa_without_behaviour_gets_kubernetes_defaults():
    spec = {"minReplicas": 2, "maxReplicas": 9, "metrics": [
        {"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": 60}}}]}
    got = hpa_from_manifest(spec)
    assert (got.min_replicas, got.max_replicas, got.cpu_target) == (2, 9, 60)
    assert got.up == DEFAULT_UP and got.down.window_s == 300


def test_instance_vcpus_come_from_moto_data():
    assert (instance_vcpus("m5.xlarge"), instance_vcpus("t3.medium")) == (4, 2)
    with pytest.raises(ValueError, match="not in moto"):
        instance_vcpus("m5.huge")


@pytest.fixture(scope="module")
def project() -> Project:
    return Project(Path(__file__).resolve().parents[1])


def without_autoscaler(cfg):
    k8s = cfg.kubernetes
    return cfg.model_copy(update={"kubernetes": k8s.model_copy(update={
        "autoscaler": k8s.autoscaler.model_copy(update={"enabled": False})})})


def test_prod_phase2_without_the_autoscaler_misses_120s_because_nodes_come_late(project):
    # 4 services x 20 pods x 250m = 20 vCPU; 2 x m5.xlarge hold about 5 vCPU of app pods.
    # Without Cluster Autoscaler nothing adds nodes for Pending pods: the group scales on
    # node CPU (fast alarm after 1 minute, target tracking after 3), then a node takes 90 s.
    cfg = without_autoscaler(project.stack_config("prod", 2))
    result = analyse_stack(cfg, kpi_s=KPI)
    assert not result.meets(KPI)
    assert any(b.startswith(("no autoscaler for pending pods", "node launch and join"))
               for b in result.binding[:2])
    services, nodes = kubernetes_inputs(cfg)
    assert (nodes.provisioning, nodes.spare_pods) == ("cpu-target-tracking", 0)
    # the same HPAs with every node already up meet it: the HPA is not what binds
    ready_nodes = replace(nodes, provisioning="fixed", spare_nodes=nodes.max_size)
    assert simulate_kubernetes(services, ready_nodes, load=10).meets(KPI)


def test_placeholders_hand_their_room_to_app_pods_at_once():
    # 1 pod of 1,000m at a 50 % target, 3x load: it runs at 150 %, the sample at t = 15
    # (average of 0..14) asks ceil(3.0 x 1) = 3 pods (no rate limit), created at 15 and
    # scheduled at 16. A node's allocatable holds one pod (1,000m), at most 3 nodes.
    svc = Service("s", 1000, None, Hpa(1, 3, 50, Rules(0, (Policy("Pods", 1000, 1),)),
                                       DEFAULT_DOWN))
    nodes = NodeGroup("m5.xlarge", 4, 1000, 1, 3, 1, "cluster-autoscaler",
                      spare_pod_cpu_m=1000)
    # No spare: the 2 new pods wait; the autoscaler's scan at t = 20 starts 2 nodes, Ready
    # at 20 + 90 = 110; the pods pull the image there: 110 + 10 + 15 = 135
    assert simulate_kubernetes([svc], nodes, load=3).seconds == 135
    # 2 placeholders: the autoscaler ran 2 more nodes for them before the spike; at 16 each
    # new pod pre-empts one (2 s) and starts with the image cached: 16 + 2 + 10 = 28
    spare = simulate_kubernetes([svc], replace(nodes, spare_pods=2), load=3)
    assert spare.seconds == 16 + Timing().preemption_s + Timing().pod_start_s
    assert spare.timeline[0].nodes_ready == 3
    # the evicted placeholders are Pending, but the group is at maxSize: no node launches
    assert max(r.nodes_launching for r in spare.timeline) == 0


def serving(project: Project, phase: int):
    return [cfg for cfg in project.rollout("prod", phase)
            if cfg.compute is not None and cfg.hosts_app]


@pytest.mark.parametrize("phase", [2, 3])
def test_prod_meets_10x_within_the_kpi_on_every_serving_stack(project, phase):
    stacks = serving(project, phase)
    assert len(stacks) == (1 if phase == 2 else 1 + len(seed.SECONDARY_REGIONS))
    for cfg in stacks:
        result = analyse_stack(cfg, kpi_s=KPI)
        assert result.meets(KPI), (cfg.stack, result.seconds, result.binding)
        assert result.load == 10


def test_the_seed_literal_hpa_still_misses_on_the_autoscaled_prod_nodes(project):
    # the node side is not what binds: the seed's 60 s scale-up window and limit = request
    _, nodes = kubernetes_inputs(project.stack_config("prod", 2))
    result = analyse_kubernetes(four(seed_literal_hpa(), 250), nodes, load=10, kpi_s=KPI)
    assert not result.meets(KPI)
    assert result.binding[0].startswith(("scale-up stabilisation window 60 s",
                                         "CPU limit (limit = request)"))


def test_the_spare_capacity_keeps_nodes_running_between_spikes(project):
    from planner.capacity import node_group_fit, steady_nodes

    cfg = project.stack_config("prod", 2)
    _, nodes = kubernetes_inputs(cfg)
    fit = node_group_fit(cfg)
    services = len(cfg.kubernetes.services)
    # 1x: the cluster's own pods, every service at HPA_MIN, and the placeholders, at 250m
    # each (the preset's request), over each node's allocatable CPU
    at_rest = fit.system_cpu_m + (services * seed.HPA_MIN + nodes.spare_pods) * 250
    assert steady_nodes(cfg) >= -(-at_rest // fit.per_node_cpu_m)
    assert steady_nodes(cfg) <= cfg.compute.max_size
    # without the autoscaler and its placeholders: the group's minimum
    assert steady_nodes(without_autoscaler(cfg)) == max(
        cfg.compute.min_size, -(-(fit.system_cpu_m + services * seed.HPA_MIN * 250)
                                // fit.per_node_cpu_m))


def test_report_compares_each_kubernetes_stack_with_the_seed_literal_hpa(project):
    from planner import capacity

    # the HPA the report calls the seed's is the one written out above, by hand
    assert capacity.seed_literal_hpa() == seed_literal_hpa()
    cfg = project.stack_config("prod", 2)
    literal = capacity.analyse_seed_literal(cfg, kpi_s=KPI)
    assert not literal.meets(KPI) and analyse_stack(cfg, kpi_s=KPI).meets(KPI)
    assert literal.binding[0].startswith(("scale-up stabilisation window 60 s",
                                          "CPU limit (limit = request)"))
