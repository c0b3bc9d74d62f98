"""Nodes that follow pods (components/autoscaler.py): Cluster Autoscaler with its Pod
Identity role and discovery tags, the spare-capacity placeholders, the node group's own
policies switched off, the config rule on the group's maximum, and the preflight rules that
keep them working, each where it holds and where it is broken."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pytest

from components import autoscaler as ca
from components.compute import Compute, ComputeArgs, Route
from config import ConfigError, parse_stack_config, seed
from config.secrets import UNKNOWN_SECRET
from planner.capacity import NodeFit, node_group_fit, spare_pods_for
from planner.project import Project
from tests.conftest import of_type, preflight_of

CLUSTER = "sofacover-test-cluster"
ROOT = Path(__file__).resolve().parents[1]


def autoscaler(**kw):
    """The program building ClusterAutoscaler. The args are made here, so the `build`
    fixture's key is their value: a change that restates a default shares its build."""
    args = dict(cluster_name=CLUSTER, region=seed.PRIMARY_REGION, kubernetes_version="1.35",
                spare_pods=6)
    built = ca.ClusterAutoscalerArgs(**{**args, **kw})

    def fn() -> None:
        ca.ClusterAutoscaler("ca", built)
    return fn


# --- the component ---------------------------------------------------------------------------

def test_release_pins_the_chart_and_image_of_the_cluster_minor(build):
    for minor, (chart, image) in ca.RELEASES.items():
        (rel,) = of_type(build(autoscaler(kubernetes_version=minor)).resources,
                         "kubernetes:helm.sh/v3:Release")
        assert (rel.inputs["chart"], rel.inputs["version"]) == ("cluster-autoscaler", chart)
        values = rel.inputs["values"]
        assert values["image"]["tag"] == image
        assert image.startswith(f"v{minor}.")  # same Kubernetes minor as the cluster
        assert values["autoDiscovery"]["clusterName"] == CLUSTER
        assert values["awsRegion"] == seed.PRIMARY_REGION
        assert values["extraArgs"]["scan-interval"] == "10s"


def test_a_minor_without_a_pinned_release_is_refused_before_anything_exists(build):
    with pytest.raises(ValueError, match="pinned for Kubernetes 1.34, 1.35, not 1.31"):
        ca.ClusterAutoscalerArgs(cluster_name=CLUSTER, region="us-east-1",
                                 kubernetes_version="1.31").check()


def test_its_role_scales_only_groups_tagged_for_this_cluster_through_pod_identity(build):
    res = build(autoscaler()).resources
    (role,) = of_type(res, "aws:iam/role:Role")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    (policy,) = of_type(res, "aws:iam/rolePolicy:RolePolicy")
    scale, describe = json.loads(policy.inputs["policy"])["Statement"]
    assert set(scale["Action"]) == {"autoscaling:SetDesiredCapacity",
                                    "autoscaling:TerminateInstanceInAutoScalingGroup"}
    # the condition asks for exactly the tags the group gets (asserted on the group below)
    tags = {ca.ENABLED_TAG: "true", f"{ca.CLUSTER_TAG_PREFIX}{CLUSTER}": "owned"}
    assert scale["Condition"]["StringEquals"] == {f"aws:ResourceTag/{k}": v
                                                  for k, v in tags.items()}
    assert not any(a.startswith(("autoscaling:Set", "autoscaling:Terminate", "ec2:Run"))
                   for a in describe["Action"])
    (assoc,) = of_type(res, "aws:eks/podIdentityAssociation:PodIdentityAssociation")
    (rel,) = of_type(res, "kubernetes:helm.sh/v3:Release")
    assert (assoc.inputs["namespace"], assoc.inputs["serviceAccount"]) == (
        rel.inputs["namespace"], rel.inputs["values"]["rbac"]["serviceAccount"]["name"])
    assert assoc.urn in rel.options["depends_on"]  # credentials exist before the pod


def test_placeholders_run_at_the_overprovisioning_priority_and_hold_what_is_asked(build):
    res = build(autoscaler(spare_pods=6,
                           spare_pod_requests={"cpu": "500m", "memory": "1Gi"})).resources
    (pc,) = of_type(res, "kubernetes:scheduling.k8s.io/v1:PriorityClass")
    (dep,) = of_type(res, "kubernetes:apps/v1:Deployment")
    assert pc.inputs["value"] < 0 and pc.inputs["globalDefault"] is False
    assert pc.inputs["value"] >= ca.EXPENDABLE_PODS_PRIORITY_CUTOFF
    spec = dep.inputs["spec"]["template"]["spec"]
    assert dep.inputs["spec"]["replicas"] == 6
    assert spec["priorityClassName"] == pc.inputs["metadata"]["name"]
    assert spec["terminationGracePeriodSeconds"] == 0
    assert spec["containers"][0]["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
    # They wait for nodes the autoscaler adds: after its release, and not awaited by Pulumi
    # (a first `up` would time out while the nodes launch).
    (release,) = of_type(res, "kubernetes:helm.sh/v3:Release")
    assert release.urn in dep.options["depends_on"]
    assert dep.inputs["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}
    # no placeholders asked: no Deployment, no PriorityClass
    none = build(autoscaler(spare_pods=0)).resources
    assert not of_type(none, "kubernetes:apps/v1:Deployment")
    assert not of_type(none, "kubernetes:scheduling.k8s.io/v1:PriorityClass")


def node_group(autoscaled: bool):
    def fn() -> None:
        Compute("web", ComputeArgs(
            vpc_id="vpc-1", vpc_cidr="10.10.0.0/16", public_subnet_ids=["a", "b"],
            private_subnet_ids=["c", "d"], min_size=2, max_size=8, desired_capacity=2,
            platform="kubernetes", user_data="#!/bin/sh", dns_validation="manual",
            requests_per_target=None,
            certificate_arn="arn:aws:acm:us-east-1:123456789012:certificate/"
                            "11111111-2222-3333-4444-555555555555",
            routes=(Route("web", "/*", 30080, "/healthz"),),
            autoscaler_tags=ca.autoscaler_tags(CLUSTER) if autoscaled else ()))
    return fn


def test_an_autoscaled_node_group_carries_the_discovery_tags_and_no_policy_of_its_own(build):
    res = build(node_group(autoscaled=True)).resources
    (asg,) = of_type(res, "aws:autoscaling/group:Group")
    tags = {t["key"]: t["value"] for t in asg.inputs["tags"]}
    assert tags[ca.ENABLED_TAG] == "true"
    assert tags[f"{ca.CLUSTER_TAG_PREFIX}{CLUSTER}"] == "owned"
    assert not of_type(res, "aws:autoscaling/policy:Policy")
    assert not of_type(res, "aws:cloudwatch/metricAlarm:MetricAlarm")
    plain = build(node_group(autoscaled=False)).resources
    assert of_type(plain, "aws:autoscaling/policy:Policy")


# --- sizing the spare capacity ------------------------------------------------------------------

def test_pods_added_within_follows_the_rate_policies_step_by_step():
    hpa = ca.ScaleUp(3, 20, 100, 4, 15)
    # one step at t = 0: max(ceil(3 x 2) = 6, 3 + 4 = 7) = 7 -> 4 added
    assert ca.pods_added_within(hpa, 0) == 4
    # 29 s: steps at 0 and 15: 7 -> max(14, 11) = 14 -> 11 added
    assert ca.pods_added_within(hpa, 29) == 11
    # 45 s: 14 -> 28, clamped at 20 -> 17 added
    assert ca.pods_added_within(hpa, 45) == 17
    assert ca.spare_pods([hpa, ca.ScaleUp(1, 2, 100, 4, 15)], 0) == 4 + 1


@pytest.fixture(scope="module")
def project() -> Project:
    return Project(ROOT)


def test_prod_holds_every_pod_the_hpas_can_add_while_a_node_starts(project):
    # scan 10 s + launch 90 s: 7 HPA periods, enough for each service to go min -> max
    cfg = project.stack_config("prod", 2)
    services = len(cfg.kubernetes.services)
    assert spare_pods_for(cfg) == services * (seed.HPA_MAX - seed.HPA_MIN)


# --- the group's maximum (config) ----------------------------------------------------------------

def test_node_fit_names_the_smallest_max_size_that_holds_the_pods():
    fit = NodeFit("m5.xlarge", 2, need_cpu_m=8_000, offer_cpu_m=2 * 3_745, need_mib=1_000,
                  offer_mib=2 * 14_000, need_pods=30, offer_pods=2 * 54,
                  per_node_cpu_m=3_745, system_cpu_m=1_000)
    # 8,000m over 3,745m a node: ceil(2.14) = 3 nodes
    assert fit.nodes_needed == 3
    assert "maxSize must be at least 3" in (fit.problem() or "")
    assert NodeFit("m5.xlarge", 3, 8_000, 3 * 3_745, 1_000, 3 * 14_000, 30, 3 * 54, 3_745,
                   1_000).problem() is None


def prod_phase2(**compute) -> dict[str, str]:
    base = {"aws:region": seed.PRIMARY_REGION, "sofacover:environment": "prod",
            "sofacover:role": "primary", "sofacover:phase": "2",
            **{f"sofacover:{k}": UNKNOWN_SECRET for k in
               ("redisAuthToken", "dbAppPassword", "pgbouncerAdminPassword",
                "pgbouncerStatsPassword")}}
    if compute:
        base["sofacover:compute"] = json.dumps(compute)
    return base


def test_a_node_group_too_small_for_the_pods_at_their_maximum_is_refused():
    secrets = {k for k, v in prod_phase2().items() if v == UNKNOWN_SECRET}
    cfg = parse_stack_config("prod", prod_phase2(), secrets)
    fit = node_group_fit(cfg)
    assert fit.problem() is None  # the preset holds them
    # the four services at HPA_MAX alone ask 4 x 20 x 250m = 20 vCPU
    assert fit.need_cpu_m > len(cfg.kubernetes.services) * seed.HPA_MAX * 250
    small = fit.nodes_needed - 1
    with pytest.raises(ConfigError) as exc:
        parse_stack_config("prod", prod_phase2(maxSize=small), secrets)
    (problem,) = [p for p in exc.value.problems if "compute.maxSize" in p]
    assert f"is {small} but" in problem and f"at least {fit.nodes_needed}" in problem
    # on ec2 (phase 1) the same maximum is no Kubernetes question
    ec2 = {**prod_phase2(maxSize=small), "sofacover:phase": "1"}
    assert parse_stack_config("prod", ec2, secrets).compute.max_size == small


# --- preflight -----------------------------------------------------------------------------------

def cluster_with_autoscaler(*, tagged: bool = True, policy: bool = False,
                            priority: int = ca.SPARE_PRIORITY, service_account: str | None = None,
                            agent: bool = True):
    def fn() -> None:
        if agent:
            aws.eks.Addon("agent", cluster_name=CLUSTER, addon_name="eks-pod-identity-agent")
        tags = [{"key": k, "value": v, "propagate_at_launch": False}
                for k, v in (ca.autoscaler_tags(CLUSTER) if tagged else [])]
        asg = aws.autoscaling.Group("nodes", min_size=1, max_size=8, tags=tags,
                                    availability_zones=["us-east-1a"])
        if policy:
            aws.autoscaling.Policy("cpu", autoscaling_group_name=asg.name,
                                   policy_type="TargetTrackingScaling")
        rel = ca.ClusterAutoscaler("ca", ca.ClusterAutoscalerArgs(
            cluster_name=CLUSTER, region=seed.PRIMARY_REGION, kubernetes_version="1.35",
            spare_pods=0))
        if service_account is not None:
            aws.eks.PodIdentityAssociation("other", cluster_name=CLUSTER,
                                           namespace=ca.NAMESPACE,
                                           service_account=service_account, role_arn="arn")
        pc = k8s.scheduling.v1.PriorityClass("spare", metadata={"name": "spare"},
                                             value=priority)
        k8s.apps.v1.Deployment("pause", metadata={"name": "pause", "namespace": "kube-system"},
                               spec={"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
                                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": {
                                         "priorityClassName": pc.metadata.name,
                                         "containers": [{"name": "p",
                                                         "image": ca.PAUSE_IMAGE}]}}},
                               opts=pulumi.ResourceOptions(depends_on=[rel]))
    return fn


NODE_RULES = ("k8s-autoscaler-discovers-group", "k8s-spare-capacity-priority",
              "aws-pod-identity-service-account")


def test_a_complete_autoscaler_passes_every_node_rule(build):
    assert preflight_of(build(cluster_with_autoscaler()).resources, *NODE_RULES) == []


def test_an_untagged_group_is_one_the_autoscaler_never_finds(build):
    (finding,) = preflight_of(build(cluster_with_autoscaler(tagged=False)).resources,
                              "k8s-autoscaler-discovers-group")
    assert finding.severity == "error" and ca.ENABLED_TAG in finding.message


def test_a_scaling_policy_on_the_autoscaled_group_fights_it(build):
    (finding,) = preflight_of(build(cluster_with_autoscaler(policy=True)).resources,
                              "k8s-autoscaler-discovers-group")
    assert finding.resource.endswith(" cpu") and "undo each other" in finding.message


@pytest.mark.parametrize("priority, words", [
    (0, "cannot pre-empt"), (ca.EXPENDABLE_PODS_PRIORITY_CUTOFF - 1, "expendable cutoff")])
def test_placeholders_at_the_wrong_priority_are_refused(build, priority, words):
    (finding,) = preflight_of(build(cluster_with_autoscaler(priority=priority)).resources,
                              "k8s-spare-capacity-priority")
    assert words in finding.message


def test_an_association_for_a_service_account_nobody_creates_gives_no_credentials(build):
    (finding,) = preflight_of(
        build(cluster_with_autoscaler(service_account="autoscaler")).resources,
        "aws-pod-identity-service-account")
    assert "kube-system/autoscaler" in finding.message
    missing = preflight_of(build(cluster_with_autoscaler(agent=False)).resources,
                           "aws-pod-identity-service-account")
    assert missing and all("eks-pod-identity-agent" in f.message for f in missing)


def test_capacity_check_knows_the_autoscaler_chart_and_skips_the_placeholders(build):
    def fn() -> None:
        aws.eks.Cluster("c", role_arn="arn", vpc_config={"subnet_ids": ["a"]})
        lt = aws.ec2.LaunchTemplate("lt", instance_type="m5.xlarge")
        aws.autoscaling.Group("nodes", min_size=1, max_size=1, availability_zones=["x"],
                              launch_template={"id": lt.id})
        ca.ClusterAutoscaler("ca", ca.ClusterAutoscalerArgs(
            cluster_name=CLUSTER, region=seed.PRIMARY_REGION, kubernetes_version="1.35",
            # 100 x 250m = 25 vCPU of placeholders on one 4-vCPU node: yielded, not needed
            spare_pods=100))
    # no "pods are not counted" warning for the chart, no error for the placeholders
    assert preflight_of(build(fn).resources, "k8s-capacity-at-max") == []


# --- the EC2 platform's spare capacity: the warm pool ------------------------------------------

def test_warm_instances_are_held_until_their_app_answers_then_reused(build):
    from components.compute import READY_HOOK
    from tests.test_compute import compute

    res = build(compute(warm_pool=True)).resources
    (asg,) = of_type(res, "aws:autoscaling/group:Group")
    assert asg.inputs["warmPool"]["instanceReusePolicy"] == {"reuseOnScaleIn": True}
    (hook,) = asg.inputs["initialLifecycleHooks"]
    assert (hook["name"], hook["lifecycleTransition"], hook["defaultResult"]) == (
        READY_HOOK, "autoscaling:EC2_INSTANCE_LAUNCHING", "ABANDON")
    (lt,) = of_type(res, "aws:ec2/launchTemplate:LaunchTemplate")
    script = base64.b64decode(lt.inputs["userData"]).decode()
    # every boot (a warm start reruns no user data): a unit that completes the action
    assert "systemctl enable sofacover-ready.service" in script
    assert f"--lifecycle-hook-name {READY_HOOK}" in script
    assert "--lifecycle-action-result CONTINUE" in script
    policies = [json.loads(p.inputs["policy"]) for p in
                of_type(res, "aws:iam/rolePolicy:RolePolicy")]
    complete = [s for p in policies for s in p["Statement"]
                if s["Action"] == "autoscaling:CompleteLifecycleAction"]
    assert [s["Resource"].rsplit("/", 1)[1] for s in complete] == ["web-asg-*"]
    # no warm pool: no hook, no unit, no permission
    plain = build(compute(warm_pool=False)).resources
    (asg,) = of_type(plain, "aws:autoscaling/group:Group")
    assert "initialLifecycleHooks" not in asg.inputs
    (lt,) = of_type(plain, "aws:ec2/launchTemplate:LaunchTemplate")
    assert "sofacover-ready" not in base64.b64decode(lt.inputs["userData"]).decode()


def test_a_warm_pool_of_eks_nodes_is_refused(build):
    from tests.test_compute import K8S, args

    with pytest.raises(ValueError, match="warm_pool is true but platform is kubernetes"):
        args(**{**K8S, "warm_pool": True}).check()
    with pytest.raises(ConfigError) as exc:
        parse_stack_config("prod", prod_phase2(warmPool={"enabled": True}),
                           {k for k, v in prod_phase2().items() if v == UNKNOWN_SECRET})
    assert any("compute.warmPool.enabled" in p and "kubernetes" in p
               for p in exc.value.problems)


def test_phase1_presets_warm_a_pool_without_spot(project):
    cfg = project.stack_config("prod", 1)
    assert cfg.compute.warm_pool.enabled and cfg.compute.spot_percent == 0
    assert not project.stack_config("prod", 2).compute.warm_pool.enabled


def test_a_negative_priority_as_the_cluster_default_is_refused(build):
    def fn() -> None:
        k8s.scheduling.v1.PriorityClass("everyone", metadata={"name": "everyone"}, value=-1,
                                        global_default=True)
        k8s.scheduling.v1.PriorityClass("spare", metadata={"name": "spare"}, value=-1)
    (finding,) = preflight_of(build(fn).resources, "k8s-spare-capacity-priority")
    assert finding.resource.endswith(" everyone") and finding.property == "globalDefault"


def warm_group(*, hook: bool = True, mixed: bool = False, autoscaled: bool = False):
    def fn() -> None:
        lt = aws.ec2.LaunchTemplate("lt", instance_type="m5.large")
        aws.autoscaling.Group(
            "web", min_size=2, max_size=8, availability_zones=["us-east-1a"],
            warm_pool={"pool_state": "Stopped"},
            launch_template=None if mixed else {"id": lt.id},
            mixed_instances_policy={"launch_template": {
                "launch_template_specification": {"launch_template_id": lt.id}}}
            if mixed else None,
            initial_lifecycle_hooks=[{"name": "ready", "default_result": "ABANDON",
                                      "lifecycle_transition":
                                          "autoscaling:EC2_INSTANCE_LAUNCHING"}]
            if hook else None,
            tags=[{"key": k, "value": v, "propagate_at_launch": False}
                  for k, v in (ca.autoscaler_tags(CLUSTER) if autoscaled else [])])
    return fn


def test_a_warm_pool_held_by_a_launch_hook_passes(build):
    assert preflight_of(build(warm_group()).resources, "aws-warm-pool-usable") == []


@pytest.mark.parametrize("changes, severity, words", [
    (dict(hook=False), "warning", "no launch lifecycle hook"),
    (dict(mixed=True), "error", "mixed instances policy"),
    (dict(autoscaled=True), "error", "Cluster Autoscaler manages"),
])
def test_a_warm_pool_that_cannot_work_is_reported(build, changes, severity, words):
    (finding,) = preflight_of(build(warm_group(**changes)).resources, "aws-warm-pool-usable")
    assert finding.severity == severity and words in finding.message
