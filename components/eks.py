"""The EKS control plane, its worker-node identity and the Kubernetes provider.

The worker nodes themselves are the Compute component's Auto Scaling group: this component
hands it the node role, the node bootstrap (nodeadm user data) and the cluster security
group, and registers the node role with an access entry so the nodes can join.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.kms import DEFAULT_LOG_RETENTION_DAYS, LogGroupArgs, encrypted_log_group, key_policy
from config.models import KubernetesConfig

CLUSTER_POLICIES = ("arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",)
NODE_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
)
# EKS add-ons and their configuration values. metrics-server: EKS installs none, and every
# HPA needs the resource metrics API. vpc-cni: NetworkPolicies are enforced only with the
# network policy agent switched on (EKS user guide, "Restrict pod network traffic with
# Kubernetes network policies"); without it the default-deny policies do nothing.
# eks-pod-identity-agent: Pod Identity associations (Alertmanager publishing to SNS).
# Add-ons that run as DaemonSets: ACTIVE with no node yet, and what a node needs to join
# and serve (pod networking, service routing, pod credentials). Created with the cluster.
ADDONS: dict[str, dict[str, str]] = {
    "vpc-cni": {"enableNetworkPolicy": "true"},
    "kube-proxy": {},
    "eks-pod-identity-agent": {},
}
# Add-ons that run as Deployments: with no node to run on they report DEGRADED and their
# create fails, so they are added once the nodes' group exists (`add_node_addons`), as
# terraform-aws-modules/eks does for every add-on but the networking ones.
NODE_ADDONS: dict[str, dict[str, str]] = {
    "coredns": {},
    "metrics-server": {},
}
# EKS's managed access policy for full cluster access (AssociateAccessPolicy).
CLUSTER_ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")


def eks_ami_parameter(version: str) -> str:
    """AWS's public SSM parameter for the EKS-optimised Amazon Linux 2023 AMI."""
    return (f"/aws/service/eks/optimized-ami/{version}/amazon-linux-2023/x86_64/standard/"
            "recommended/image_id")


def render_node_user_data(args: list[str]) -> str:
    """nodeadm NodeConfig (Amazon Linux 2023 EKS nodes) as MIME multipart user data."""
    cluster, endpoint, ca, service_cidr = args
    return "\n".join([
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="//"',
        "",
        "--//",
        "Content-Type: application/node.eks.aws",
        "",
        "---",
        "apiVersion: node.eks.aws/v1alpha1",
        "kind: NodeConfig",
        "spec:",
        "  cluster:",
        f"    name: {cluster}",
        f"    apiServerEndpoint: {endpoint}",
        f"    certificateAuthority: {ca}",
        f"    cidr: {service_cidr}",
        "",
        "--//--",
        "",
    ])


def render_kubeconfig(args: list[str]) -> str:
    """A kubeconfig that gets its token from `aws eks get-token` (no static credentials)."""
    cluster, endpoint, ca, region = args
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": cluster,
        "clusters": [{"name": cluster, "cluster": {"server": endpoint,
                                                   "certificate-authority-data": ca}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": cluster}}],
        "users": [{"name": cluster, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws",
            "args": ["eks", "get-token", "--cluster-name", cluster, "--region", region]}}}],
    })


def _trust(service: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]})


@dataclass(frozen=True)
class EksArgs:
    """Inputs of `Eks`."""

    subnet_ids: pulumi.Input[Sequence[str]]
    """Private subnets for the control plane's network interfaces."""
    version: str = KubernetesConfig.model_fields["version"].default
    public_access_cidrs: Sequence[str] = ()
    """Who may reach the public API endpoint (authentication still applies). Empty: no
    public endpoint at all, only the private one in the VPC.

    Why private by default: the API is the cluster's whole control surface, and a public
    endpoint open to 0.0.0.0/0 leaves only the IAM token between it and the internet. The
    cost: the Kubernetes provider runs where `pulumi up` runs, so that machine must reach
    the endpoint: either it runs inside the VPC (a CI runner in the private subnets, or a
    VPN), or its egress CIDRs are listed here (`sofacover:kubernetes.
    endpointPublicAccessCidrs`). The private endpoint stays on either way, so the nodes
    never leave the VPC to reach the API."""
    admin_principal_arns: Sequence[str] = ()
    """Roles or users, besides the cluster's creator, given cluster-admin access entries."""
    deletion_protection: bool = True
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: KubernetesConfig, *, subnet_ids: pulumi.Input[Sequence[str]],
                    deletion_protection: bool) -> EksArgs:
        return cls(subnet_ids=subnet_ids, version=cfg.version,
                   public_access_cidrs=tuple(cfg.endpoint_public_access_cidrs),
                   admin_principal_arns=tuple(cfg.admin_principal_arns),
                   deletion_protection=deletion_protection)


class Eks(pulumi.ComponentResource):
    """EKS cluster with encrypted secrets, audit logs and API authentication mode."""

    cluster_name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    cluster_security_group_id: pulumi.Output[str]
    """Attach to the nodes: the control plane talks to them through it."""
    node_role_name: pulumi.Output[str]
    node_user_data: pulumi.Output[str]
    """nodeadm bootstrap for the worker nodes' launch template."""
    ami_parameter: str
    """SSM parameter of the EKS-optimised AMI for this version."""
    kubeconfig: pulumi.Output[str]
    """Secret: where the cluster is and how to authenticate (via the AWS CLI)."""
    provider: k8s.Provider
    """The Kubernetes provider for this cluster's workloads; set by `connect_nodes`."""
    addons: dict[str, aws.eks.Addon]
    """The EKS add-ons by name (ADDONS)."""

    def __init__(self, name: str, args: EksArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sofacover:eks:Eks", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region

        key = aws.kms.Key(f"{name}-secrets-key",
                          description=f"{name}: EKS secrets, control-plane logs",
                          enable_key_rotation=True, deletion_window_in_days=30,
                          policy=key_policy(self, via_services=("eks",), logs=True),
                          tags=args.tags, opts=child)
        # EKS writes control-plane logs to /aws/eks/<cluster>/cluster and creates that group
        # without a key unless it exists: the cluster's name is fixed (not autonamed) and the
        # group comes first. Source: EKS user guide, "Send control plane logs to CloudWatch
        # Logs", https://docs.aws.amazon.com/eks/latest/userguide/control-plane-logs.html
        cluster_name = f"{name}-cluster"
        log_group = encrypted_log_group(f"{name}-cluster-logs", LogGroupArgs(
            name=f"/aws/eks/{cluster_name}/cluster", retention_days=DEFAULT_LOG_RETENTION_DAYS,
            kms_key_arn=key.arn, tags=args.tags), child)
        cluster_role = aws.iam.Role(f"{name}-cluster-role",
                                    assume_role_policy=_trust("eks.amazonaws.com"),
                                    tags=args.tags, opts=child)
        attachments = [aws.iam.RolePolicyAttachment(f"{name}-cluster-policy-{i}",
                                                    role=cluster_role.name, policy_arn=arn,
                                                    opts=child)
                       for i, arn in enumerate(CLUSTER_POLICIES)]
        cluster = aws.eks.Cluster(
            f"{name}-cluster", name=cluster_name, version=args.version, role_arn=cluster_role.arn,
            vpc_config={"subnet_ids": args.subnet_ids, "endpoint_private_access": True,
                        "endpoint_public_access": bool(args.public_access_cidrs),
                        # Omitted when private: EKS would fill in its default, 0.0.0.0/0.
                        **({"public_access_cidrs": list(args.public_access_cidrs)}
                           if args.public_access_cidrs else {})},
            access_config={"authentication_mode": "API",
                           "bootstrap_cluster_creator_admin_permissions": True},
            encryption_config={"provider": {"key_arn": key.arn}, "resources": ["secrets"]},
            enabled_cluster_log_types=list(LOG_TYPES),
            deletion_protection=args.deletion_protection, tags=args.tags,
            # The fixed name cannot exist twice: a replacement (service CIDR, bootstrap admin:
            # planner/data/replace_upstream.yaml) deletes first instead of stopping at
            # ResourceInUseException (Pulumi docs, deleteBeforeReplace).
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*attachments, log_group],
                                        delete_before_replace=True))

        node_role = aws.iam.Role(f"{name}-node-role",
                                 assume_role_policy=_trust("ec2.amazonaws.com"),
                                 tags=args.tags, opts=child)
        for i, arn in enumerate(NODE_POLICIES):
            aws.iam.RolePolicyAttachment(f"{name}-node-policy-{i}", role=node_role.name,
                                         policy_arn=arn, opts=child)
        aws.eks.AccessEntry(f"{name}-nodes", cluster_name=cluster.name,
                            principal_arn=node_role.arn, type="EC2_LINUX", opts=child)
        for i, principal in enumerate(args.admin_principal_arns):
            entry = aws.eks.AccessEntry(f"{name}-admin-{i}", cluster_name=cluster.name,
                                        principal_arn=principal, type="STANDARD", opts=child)
            aws.eks.AccessPolicyAssociation(
                f"{name}-admin-{i}", cluster_name=cluster.name, principal_arn=principal,
                policy_arn=CLUSTER_ADMIN_POLICY, access_scope={"type": "cluster"},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[entry]))
        self._name, self._cluster_name = name, cluster.name
        self.addons = {addon: self._addon(addon, values, child)
                       for addon, values in ADDONS.items()}

        ca = cluster.certificate_authority.data
        self.cluster_name = cluster.name
        self.endpoint = cluster.endpoint
        self.cluster_security_group_id = cluster.vpc_config.cluster_security_group_id
        self.node_role_name = node_role.name
        self.ami_parameter = eks_ami_parameter(args.version)
        self.node_user_data = pulumi.Output.all(
            cluster.name, cluster.endpoint, ca,
            cluster.kubernetes_network_config.service_ipv4_cidr).apply(render_node_user_data)
        self.kubeconfig = pulumi.Output.secret(pulumi.Output.all(
            cluster.name, cluster.endpoint, ca, region).apply(render_kubeconfig))
        self.register_outputs({
            "cluster_name": self.cluster_name, "endpoint": self.endpoint,
            "cluster_security_group_id": self.cluster_security_group_id,
            "node_role_name": self.node_role_name, "node_user_data": self.node_user_data,
            "kubeconfig": self.kubeconfig,
        })

    def _addon(self, addon: str, values: dict[str, str],
               opts: pulumi.ResourceOptions) -> aws.eks.Addon:
        return aws.eks.Addon(f"{self._name}-{addon}", cluster_name=self._cluster_name,
                             addon_name=addon,
                             configuration_values=json.dumps(values) if values else None,
                             resolve_conflicts_on_create="OVERWRITE",
                             resolve_conflicts_on_update="PRESERVE", opts=opts)

    def connect_nodes(self, nodes: Sequence[pulumi.Resource]) -> k8s.Provider:
        """The add-ons that need a node (NODE_ADDONS), after `nodes` (the node group), then
        the Kubernetes provider for the workloads, after those add-ons.

        Every object applied through the provider so waits for nodes and cluster DNS: a
        Deployment or a Helm release applied to a cluster with no node times out instead
        of rolling out. A method, not a constructor step, because the node group is built
        from this component's outputs (its user data and role)."""
        after = pulumi.ResourceOptions(parent=self, depends_on=list(nodes))
        added = [self._addon(addon, values, after) for addon, values in NODE_ADDONS.items()]
        self.addons.update({a: r for a, r in zip(NODE_ADDONS, added, strict=True)})
        self.provider = k8s.Provider(
            f"{self._name}-k8s", kubeconfig=self.kubeconfig, enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=added))
        return self.provider
