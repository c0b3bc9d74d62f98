"""The Eks component under mocks, and the program's kubernetes platform."""

from __future__ import annotations

import json

import pulumi
import pytest

from components.eks import ADDONS, NODE_ADDONS, NODE_POLICIES, Eks, EksArgs, render_kubeconfig
from tests.conftest import of_type


def eks(**kw):
    def fn() -> None:
        cluster = Eks("k", EksArgs(subnet_ids=["subnet-a", "subnet-b", "subnet-c"], **kw))
        nodes = pulumi.CustomResource("test:index:NodeGroup", "nodes", {})
        cluster.connect_nodes([nodes])
    return fn


def test_cluster_encrypts_secrets_logs_audit_and_uses_api_auth(build):
    res = build(eks()).resources
    (cluster,) = of_type(res, "aws:eks/cluster:Cluster")
    (key,) = of_type(res, "aws:kms/key:Key")
    assert cluster.inputs["encryptionConfig"]["resources"] == ["secrets"]
    assert cluster.inputs["encryptionConfig"]["provider"]["keyArn"].endswith(key.id)
    assert key.inputs["enableKeyRotation"] is True
    assert "audit" in cluster.inputs["enabledClusterLogTypes"]
    assert cluster.inputs["accessConfig"]["authenticationMode"] == "API"
    assert cluster.inputs["vpcConfig"]["endpointPrivateAccess"] is True
    assert cluster.inputs["deletionProtection"] is True


def test_nodes_join_through_an_access_entry_for_the_node_role(build):
    res = build(eks()).resources
    (entry,) = of_type(res, "aws:eks/accessEntry:AccessEntry")
    node_role = next(r for r in res if r.name == "k-node-role")
    assert entry.inputs["type"] == "EC2_LINUX"
    assert entry.inputs["principalArn"].endswith(f"role/{node_role.id}")
    attached = {r.inputs["policyArn"] for r in
                of_type(res, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                if r.inputs["role"] == node_role.id}
    assert attached == set(NODE_POLICIES)


def test_core_addons_are_managed(build):
    addons = {r.inputs["addonName"] for r in
              of_type(build(eks()).resources, "aws:eks/addon:Addon")}
    assert addons == set(ADDONS) | set(NODE_ADDONS)


def test_addons_that_need_a_node_and_the_kubernetes_provider_wait_for_the_nodes(build):
    res = build(eks()).resources
    (nodes,) = [r for r in res if r.type == "test:index:NodeGroup"]
    addons = {r.inputs["addonName"]: r for r in of_type(res, "aws:eks/addon:Addon")}
    for name in NODE_ADDONS:  # Deployments: DEGRADED, and a failed create, with no node
        assert nodes.urn in addons[name].options["depends_on"], name
    for name in ADDONS:  # DaemonSets the nodes need to join: not after them
        assert nodes.urn not in addons[name].options["depends_on"], name
    (provider,) = of_type(res, "pulumi:providers:kubernetes")
    assert {addons[n].urn for n in NODE_ADDONS} <= set(provider.options["depends_on"])


def test_kubeconfig_is_secret_and_holds_no_static_credentials(build):
    res = build(eks()).resources
    (provider,) = of_type(res, "pulumi:providers:kubernetes")
    assert provider.inputs["kubeconfig"] == "[secret]"
    doc = json.loads(render_kubeconfig(["c", "https://x", "Y2E=", "eu-west-1"]))
    user = doc["users"][0]["user"]
    assert "token" not in user and user["exec"]["command"] == "aws"
    assert "eu-west-1" in user["exec"]["args"]


@pytest.fixture
def k8s_plan(prod_phase2):
    return prod_phase2["prod"]


def test_phase2_prod_runs_eks_nodes_from_the_auto_scaling_group(k8s_plan):
    res = k8s_plan.resources
    (cluster,) = of_type(res, "aws:eks/cluster:Cluster")
    (lt,) = of_type(res, "aws:ec2/launchTemplate:LaunchTemplate")
    assert len(lt.inputs["vpcSecurityGroupIds"]) == 2  # app rules + the cluster's group
    import base64
    user_data = base64.b64decode(lt.inputs["userData"]).decode()
    assert "kind: NodeConfig" in user_data and f"name: {cluster.id}" in user_data
    (profile,) = of_type(res, "aws:iam/instanceProfile:InstanceProfile")
    node_role = next(r for r in res if r.name == "sofacover-prod-node-role")
    assert profile.inputs["role"] == node_role.id
    assert k8s_plan.outputs["kubeconfig"] == "[secret]"


def test_phase1_prod_has_no_cluster(prod):
    assert not of_type(prod["prod"].resources, "aws:eks/cluster:Cluster")
    assert of_type(prod["prod"].resources, "aws:autoscaling/group:Group")


def test_phase2_prod_runs_every_service_on_the_clusters_own_provider(k8s_plan, project):
    cfg = project.stack_config("prod", phase=2)
    provider = next(r for r in k8s_plan.resources if r.type == "pulumi:providers:kubernetes")
    deployments = [d for d in of_type(k8s_plan.resources, "kubernetes:apps/v1:Deployment")
                   if d.inputs["metadata"]["namespace"] == cfg.kubernetes.namespace]
    assert {d.inputs["metadata"]["name"] for d in deployments} == {
        s.name for s in cfg.kubernetes.services}
    assert all(d.provider.startswith(provider.urn) for d in deployments)
    assert k8s_plan.outputs["appNodePorts"] == {s.name: s.node_port
                                                for s in cfg.kubernetes.services}


def test_the_api_endpoint_is_private_unless_cidrs_are_listed(build):
    (cluster,) = of_type(build(eks()).resources, "aws:eks/cluster:Cluster")
    vpc = cluster.inputs["vpcConfig"]
    assert vpc["endpointPublicAccess"] is False and "publicAccessCidrs" not in vpc
    (cluster,) = of_type(build(eks(public_access_cidrs=("203.0.113.0/24",))).resources,
                         "aws:eks/cluster:Cluster")
    vpc = cluster.inputs["vpcConfig"]
    assert vpc["endpointPublicAccess"] is True and vpc["publicAccessCidrs"] == ["203.0.113.0/24"]
    assert vpc["endpointPrivateAccess"] is True


def test_metrics_server_and_network_policy_enforcement_are_installed(build):
    addons = {r.inputs["addonName"]: r for r in
              of_type(build(eks()).resources, "aws:eks/addon:Addon")}
    assert "metrics-server" in addons and "eks-pod-identity-agent" in addons
    assert json.loads(addons["vpc-cni"].inputs["configurationValues"]) == {
        "enableNetworkPolicy": "true"}


@pytest.mark.parametrize("cidrs, environment, error", [
    (["203.0.113.0/24"], "prod", None),
    (["0.0.0.0/0"], "dev", None),
    (["0.0.0.0/0"], "prod", "whole internet"),
    (["203.0.113.1/24"], "dev", "host bits"),
    (["not-a-cidr"], "dev", "not an IPv4 CIDR"),
])
def test_endpoint_cidrs_are_validated_and_never_open_in_prod(cidrs, environment, error):
    from tests.test_config import parse, problems, values

    env = {} if environment == "prod" else {"sofacover__environment": "dev",
                                             "sofacover__role": "all-in-one"}
    vals = values(sofacover__kubernetes={"endpointPublicAccessCidrs": cidrs}, **env)
    stack = "prod" if environment == "prod" else "dev"
    if error is None:
        assert parse(vals, stack=stack).kubernetes.endpoint_public_access_cidrs == cidrs
    else:
        (msg,) = problems(vals, stack=stack)
        assert "sofacover:kubernetes.endpointPublicAccessCidrs" in msg and error in msg


def test_admin_principals_get_an_entry_and_the_cluster_admin_policy(build):
    ci = "arn:aws:iam::123456789012:role/ci-deployer"
    res = build(eks(admin_principal_arns=(ci,))).resources
    entries = [r for r in of_type(res, "aws:eks/accessEntry:AccessEntry")
               if r.inputs["principalArn"] == ci]
    (entry,) = entries
    assert entry.inputs["type"] == "STANDARD"
    (association,) = of_type(res, "aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    assert association.inputs["principalArn"] == ci
    assert association.inputs["policyArn"].endswith("/AmazonEKSClusterAdminPolicy")
    assert association.inputs["accessScope"] == {"type": "cluster"}
    assert entry.urn in association.options["depends_on"]
    # None listed: only the creator (bootstrap) and the nodes have entries.
    assert not of_type(build(eks()).resources,
                       "aws:eks/accessPolicyAssociation:AccessPolicyAssociation")


def test_a_fixed_cluster_name_is_replaced_by_deleting_first(build):
    # The name is fixed for the control-plane log group; EKS refuses a second cluster of
    # that name (ResourceInUseException), so a replacement must delete first.
    (cluster,) = of_type(build(eks()).resources, "aws:eks/cluster:Cluster")
    assert cluster.inputs["name"] == cluster.name
    assert cluster.options["delete_before_replace"] is True
