"""The Kubernetes cluster contract (planner/preflight/kubernetes.py): each rule where it
holds and where it is broken, and every stack's phase-2 and phase-3 plan passing it."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pytest

from planner import preflight
from planner.preflight import kubernetes as rules
from tests.conftest import preflight_of

K8S_RULES = ("k8s-namespace-exists", "k8s-custom-kind-installed",
             "k8s-prometheus-rule-selected", "k8s-hpa-metrics-api",
             "k8s-network-policy-enforced", "k8s-capacity-at-max")


def _cm(name: str, namespace, **opts) -> k8s.core.v1.ConfigMap:
    return k8s.core.v1.ConfigMap(name, metadata={"name": name, "namespace": namespace},
                                 data={"a": "b"}, opts=pulumi.ResourceOptions(**opts))


def _messages(findings) -> list[str]:
    return [f.message for f in findings]


# --- k8s-namespace-exists -------------------------------------------------------------------

def test_objects_in_a_created_namespace_they_depend_on_or_a_system_one_pass(build):
    def fn():
        ns = k8s.core.v1.Namespace("ns", metadata={"name": "data"})
        _cm("in-data", ns.metadata.name)
        _cm("in-kube-system", "kube-system")
        _cm("in-default", None)
    assert preflight_of(build(fn).resources, "k8s-namespace-exists") == []


def test_an_object_in_a_namespace_nobody_creates_is_an_error(build):
    findings = preflight_of(build(lambda: _cm("orphan", "data")).resources,
                            "k8s-namespace-exists")
    assert [(f.resource, f.property) for f in findings] == [
        ("kubernetes:core/v1:ConfigMap orphan", "metadata.namespace")]
    assert "'data'" in findings[0].message and findings[0].severity == "error"


def test_an_object_that_does_not_wait_for_its_namespace_is_an_error(build):
    def fn():
        k8s.core.v1.Namespace("ns", metadata={"name": "data"})
        _cm("racing", "data")  # the name as a plain string: no dependency
    (finding,) = preflight_of(build(fn).resources, "k8s-namespace-exists")
    assert "does not depend on it" in finding.message


# --- k8s-custom-kind-installed and k8s-prometheus-rule-selected ------------------------------

def _rule(labels, **opts):
    return k8s.apiextensions.CustomResource(
        "rule", api_version="monitoring.coreos.com/v1", kind="PrometheusRule",
        metadata={"name": "r", "namespace": "kube-system", "labels": labels},
        spec={"groups": []}, opts=pulumi.ResourceOptions(**opts))


def _kps(values=None):
    return k8s.helm.v3.Release("kps", name="kube-prometheus-stack",
                               chart="kube-prometheus-stack", version="67.8.0",
                               namespace="kube-system", values=values or {})


def test_a_prometheus_rule_after_its_operator_release_passes(build):
    def fn():
        release = _kps()
        _rule({"release": "kube-prometheus-stack"}, depends_on=[release])
    assert preflight_of(build(fn).resources, "k8s-custom-kind-installed",
                        "k8s-prometheus-rule-selected") == []


def test_a_custom_kind_without_its_operator_is_an_error(build):
    (finding,) = preflight_of(build(lambda: _rule({})).resources,
                              "k8s-custom-kind-installed")
    assert "kube-prometheus-stack" in finding.message and finding.property == "apiVersion"


def test_a_custom_kind_applied_alongside_its_operator_is_an_error(build):
    def fn():
        _kps()
        _rule({"release": "kube-prometheus-stack"})
    (finding,) = preflight_of(build(fn).resources, "k8s-custom-kind-installed")
    assert "does not depend on" in finding.message


def test_a_rule_without_the_selected_labels_is_never_loaded(build):
    def fn():
        release = _kps({"prometheus": {"prometheusSpec": {
            "ruleSelectorNilUsesHelmValues": False,
            "ruleSelector": {"matchLabels": {"team": "sofacover"}}}}})
        _rule({"release": "kube-prometheus-stack"}, depends_on=[release])
    (finding,) = preflight_of(build(fn).resources, "k8s-prometheus-rule-selected")
    assert "{'team': 'sofacover'}" in finding.message


# --- k8s-hpa-metrics-api and k8s-network-policy-enforced --------------------------------------

def _hpa():
    k8s.autoscaling.v2.HorizontalPodAutoscaler("hpa", metadata={"namespace": "default"}, spec={
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 1, "maxReplicas": 3, "metrics": [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]})


def _policy():
    k8s.networking.v1.NetworkPolicy("deny", metadata={"namespace": "default"},
                                    spec={"podSelector": {}, "policyTypes": ["Ingress"]})


def _addon(name, values=None):
    aws.eks.Addon(name, cluster_name="c", addon_name=name,
                  configuration_values=json.dumps(values) if values else None)


def test_hpas_with_metrics_server_pass_and_without_it_fail(build):
    def with_it():
        _hpa()
        _addon("metrics-server")
    assert preflight_of(build(with_it).resources, "k8s-hpa-metrics-api") == []
    (finding,) = preflight_of(build(_hpa).resources, "k8s-hpa-metrics-api")
    assert "FailedGetResourceMetric" in finding.message


@pytest.mark.parametrize("values, enforced", [
    ({"enableNetworkPolicy": "true"}, True), (None, False),
    ({"enableNetworkPolicy": "false"}, False)])
def test_network_policies_need_the_vpc_cni_policy_agent(build, values, enforced):
    def fn():
        _policy()
        _addon("vpc-cni", values)
    findings = preflight_of(build(fn).resources, "k8s-network-policy-enforced")
    assert (findings == []) is enforced
    assert all("enableNetworkPolicy" in m for m in _messages(findings))


# --- k8s-capacity-at-max ----------------------------------------------------------------------

def _cluster_with(max_size: int, instance_type: str, services: int, max_replicas: int):
    def fn():
        aws.eks.Cluster("c", role_arn="arn:aws:iam::123456789012:role/c",
                        vpc_config={"subnet_ids": ["subnet-a"]})
        lt = aws.ec2.LaunchTemplate("lt", instance_type=instance_type)
        aws.autoscaling.Group("asg", min_size=1, max_size=max_size,
                              launch_template={"id": lt.id, "version": "1"})
        for i in range(services):
            name = f"svc{i}"
            k8s.apps.v1.Deployment(name, metadata={"name": name, "namespace": "default"},
                                   spec={"selector": {"matchLabels": {"a": name}},
                                         "template": {"metadata": {"labels": {"a": name}},
                                                      "spec": {"containers": [{
                                                          "name": "c", "image": "x",
                                                          "resources": {"requests": {
                                                              "cpu": "250m",
                                                              "memory": "512Mi"}}}]}}})
            k8s.autoscaling.v2.HorizontalPodAutoscaler(
                name, metadata={"name": name, "namespace": "default"},
                spec={"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                         "name": name},
                      "minReplicas": 1, "maxReplicas": max_replicas})
    return fn


def test_services_at_max_replicas_that_fit_the_group_pass(build):
    res = build(_cluster_with(8, "m5.xlarge", 4, 20)).resources
    assert preflight_of(res, "k8s-capacity-at-max") == []


def test_services_at_max_replicas_beyond_the_group_are_an_error(build):
    # The preset before the fix: 4 x 20 x 250m = 20 vCPU on 8 x m5.large (about 15).
    res = build(_cluster_with(8, "m5.large", 4, 20)).resources
    (finding,) = preflight_of(res, "k8s-capacity-at-max")
    assert finding.property == "maxSize" and "20 vCPU" in finding.message
    assert "8 x m5.large" in finding.message


def test_kube_reserved_follows_the_eks_ami_formula():
    # m5.large: 2 vCPU, 29 pods: 70m CPU; 11 x 29 + 255 MiB, plus 100 MiB eviction.
    assert rules.kube_reserved(rules.INSTANCE_TYPES["m5.large"]) == (70, 574 + 100)
    assert rules.INSTANCE_TYPES["m5.xlarge"].max_pods == 58
    assert rules.kube_reserved(rules.INSTANCE_TYPES["m5.xlarge"])[0] == 80


def test_the_instance_table_matches_moto_data():
    import moto

    path = Path(moto.__file__).parent / "ec2" / "resources" / "instance_types.json.gz"
    with gzip.open(path) as f:
        data = json.load(f)
    for name, t in rules.INSTANCE_TYPES.items():
        d = data[name]
        assert (t.vcpus, t.memory_mib, t.enis, t.ips_per_eni) == (
            d["VCpuInfo"]["DefaultVCpus"], d["MemoryInfo"]["SizeInMiB"],
            d["NetworkInfo"]["MaximumNetworkInterfaces"],
            d["NetworkInfo"]["Ipv4AddressesPerInterface"]), name


def test_quantities_parse_as_the_scheduler_reads_them():
    assert rules.cpu_millis("250m") == 250 and rules.cpu_millis("1") == 1000
    assert rules.memory_mib("512Mi") == 512 and rules.memory_mib("2Gi") == 2048


# --- the real program --------------------------------------------------------------------------

def test_every_rule_carries_a_source_and_date():
    preflight._load_rules()
    for rule_id in K8S_RULES:
        r = preflight.RULES[rule_id]
        assert r.source and r.checked == rules.CHECKED


def test_prod_and_dev_plan_at_phase_2_and_3_with_no_kubernetes_finding(prod_phase2,
                                                                       prod_phase3,
                                                                       dev_phases):
    plans = [*prod_phase2.values(), *prod_phase3.values(), dev_phases[2], dev_phases[3]]
    assert preflight.check(plans, only=K8S_RULES) == []
