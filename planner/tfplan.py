"""The offline plan in Terraform's plan JSON shape, for scanners built for it (checkov
`--framework terraform_plan`, trivy, conftest).

The shape follows Terraform's "JSON Output Format" (https://developer.hashicorp.com/
terraform/internals/json-format): format_version, planned_values.root_module.resources,
resource_changes (every resource a create) and configuration. Pulumi's AWS provider bridges
Terraform's, so each Pulumi type maps to one Terraform type and each camelCase property to
its snake_case attribute; nested blocks become lists, as Terraform writes them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from planner.engine import StackPlan
from planner.mocks import SECRET_MASK

FORMAT_VERSION = "1.2"
TERRAFORM_VERSION = "1.9.8"  # the version the document claims to be written by
AWS_PROVIDER = "registry.terraform.io/hashicorp/aws"

# Pulumi type token -> Terraform resource type, as pulumi-aws maps them
# (pulumi/pulumi-aws provider/resources.go, commit 00ba5ea53c2548fd367776345b7c52f191ce1372,
# the `Resources: map[string]*tfbridge.ResourceInfo` table and its module tokens). Only the
# types this program creates are listed; others are left out of the document and counted.
TF_TYPES: dict[str, str] = {
    "aws:acm/certificate:Certificate": "aws_acm_certificate",
    "aws:acm/certificateValidation:CertificateValidation": "aws_acm_certificate_validation",
    "aws:autoscaling/group:Group": "aws_autoscaling_group",
    "aws:autoscaling/policy:Policy": "aws_autoscaling_policy",
    "aws:cloudwatch/dashboard:Dashboard": "aws_cloudwatch_dashboard",
    "aws:cloudwatch/logGroup:LogGroup": "aws_cloudwatch_log_group",
    "aws:cloudwatch/metricAlarm:MetricAlarm": "aws_cloudwatch_metric_alarm",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "aws_default_security_group",
    "aws:ec2/eip:Eip": "aws_eip",
    "aws:ec2/flowLog:FlowLog": "aws_flow_log",
    "aws:ec2/internetGateway:InternetGateway": "aws_internet_gateway",
    "aws:ec2/launchTemplate:LaunchTemplate": "aws_launch_template",
    "aws:ec2/natGateway:NatGateway": "aws_nat_gateway",
    "aws:ec2/route:Route": "aws_route",
    "aws:ec2/routeTable:RouteTable": "aws_route_table",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "aws_route_table_association",
    "aws:ec2/securityGroup:SecurityGroup": "aws_security_group",
    "aws:ec2/securityGroupRule:SecurityGroupRule": "aws_security_group_rule",
    "aws:ec2/subnet:Subnet": "aws_subnet",
    "aws:ec2/vpc:Vpc": "aws_vpc",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "aws_vpc_endpoint",
    "aws:ec2/vpcPeeringConnection:VpcPeeringConnection": "aws_vpc_peering_connection",
    "aws:ec2/vpcPeeringConnectionAccepter:VpcPeeringConnectionAccepter":
        "aws_vpc_peering_connection_accepter",
    "aws:eks/accessEntry:AccessEntry": "aws_eks_access_entry",
    "aws:eks/addon:Addon": "aws_eks_addon",
    "aws:eks/cluster:Cluster": "aws_eks_cluster",
    "aws:eks/podIdentityAssociation:PodIdentityAssociation": "aws_eks_pod_identity_association",
    "aws:elasticache/parameterGroup:ParameterGroup": "aws_elasticache_parameter_group",
    "aws:elasticache/replicationGroup:ReplicationGroup": "aws_elasticache_replication_group",
    "aws:elasticache/subnetGroup:SubnetGroup": "aws_elasticache_subnet_group",
    "aws:iam/instanceProfile:InstanceProfile": "aws_iam_instance_profile",
    "aws:iam/policy:Policy": "aws_iam_policy",
    "aws:iam/role:Role": "aws_iam_role",
    "aws:iam/rolePolicy:RolePolicy": "aws_iam_role_policy",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": "aws_iam_role_policy_attachment",
    "aws:kms/alias:Alias": "aws_kms_alias",
    "aws:kms/key:Key": "aws_kms_key",
    "aws:lb/listener:Listener": "aws_lb_listener",
    "aws:lb/listenerRule:ListenerRule": "aws_lb_listener_rule",
    "aws:lb/loadBalancer:LoadBalancer": "aws_lb",
    "aws:lb/targetGroup:TargetGroup": "aws_lb_target_group",
    "aws:rds/instance:Instance": "aws_db_instance",
    "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication":
        "aws_db_instance_automated_backups_replication",
    "aws:rds/parameterGroup:ParameterGroup": "aws_db_parameter_group",
    "aws:rds/subnetGroup:SubnetGroup": "aws_db_subnet_group",
    "aws:s3/bucket:Bucket": "aws_s3_bucket",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration":
        "aws_s3_bucket_lifecycle_configuration",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": "aws_s3_bucket_ownership_controls",
    "aws:s3/bucketPolicy:BucketPolicy": "aws_s3_bucket_policy",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock":
        "aws_s3_bucket_public_access_block",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration":
        "aws_s3_bucket_server_side_encryption_configuration",
    "aws:s3/bucketVersioning:BucketVersioning": "aws_s3_bucket_versioning",
    "aws:sns/topic:Topic": "aws_sns_topic",
    "aws:sns/topicSubscription:TopicSubscription": "aws_sns_topic_subscription",
    "aws:ssm/parameter:Parameter": "aws_ssm_parameter",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule":
        "aws_vpc_security_group_egress_rule",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        "aws_vpc_security_group_ingress_rule",
    "aws:wafv2/webAcl:WebAcl": "aws_wafv2_web_acl",
    "aws:wafv2/webAclAssociation:WebAclAssociation": "aws_wafv2_web_acl_association",
    "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration":
        "aws_wafv2_web_acl_logging_configuration",
}

LIST_RENAMES = {
    # Pulumi pluralises the name of a Terraform list whose MaxItems is not 1 (a repeated
    # block, or a list attribute with a singular name); these are the ones this program
    # sets, back to Terraform's names (pulumi-aws provider/cmd/pulumi-resource-aws/
    # bridge-metadata.json, "renamedProperties": e.g. "statements": "statement",
    # "textTransformations": "text_transformation"; the Terraform names from the
    # terraform-provider-aws resource docs).
    "defaultActions": "default_action",  # aws_lb_listener
    "actions": "action",  # aws_lb_listener_rule
    "conditions": "condition",  # aws_lb_listener_rule
    "metricQueries": "metric_query",  # aws_cloudwatch_metric_alarm
    "rules": "rule",  # aws_s3_bucket_lifecycle_configuration, _sse_configuration, wafv2
    "parameters": "parameter",  # aws_db_parameter_group, aws_elasticache_parameter_group
    "vpcZoneIdentifiers": "vpc_zone_identifier",  # aws_autoscaling_group
    "stepAdjustments": "step_adjustment",  # aws_autoscaling_policy
    "routes": "route",  # aws_route_table
    "validationOptions": "validation_option",  # aws_acm_certificate
    "ruleActionOverrides": "rule_action_override",  # aws_wafv2_web_acl
    "logDeliveryConfigurations": "log_delivery_configuration",  # elasticache
    "inlinePolicies": "inline_policy",  # aws_iam_role
    "tags": "tag",  # aws_autoscaling_group: tag blocks (a list); elsewhere tags is a map
}

MAP_ATTRIBUTES = frozenset({"tags", "tagsAll", "dimensions", "variables", "parameters_map"})
"""Properties that are maps in Terraform's schema (kept as objects, not blocks)."""

_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def snake(name: str) -> str:
    return _CAMEL.sub(r"_\1", name).lower()


def _tf_name(key: str, value: Any) -> str:
    if isinstance(value, list) and key in LIST_RENAMES:
        return LIST_RENAMES[key]
    return snake(key)


def _body(value: dict[str, Any]) -> dict[str, Any]:
    return {_tf_name(k, v): tf_values(v, k) for k, v in value.items()}


def tf_values(value: Any, key: str | None = None) -> Any:
    """camelCase -> snake_case; a nested object becomes a one-element list (a block, as
    Terraform writes a MaxItems=1 block that Pulumi flattens); a list of objects stays a
    list of blocks; maps (tags, dimensions) stay maps."""
    if isinstance(value, dict):
        if key in MAP_ATTRIBUTES:
            return {k: tf_values(v) for k, v in value.items()}
        return _body(value) if key is None else [_body(value)]
    if isinstance(value, list):
        return [_body(v) if isinstance(v, dict) else tf_values(v) for v in value]
    if value == SECRET_MASK:
        return None  # never a secret, even masked, in a scanner's input
    if isinstance(value, str) and value in ("true", "false"):
        return value == "true"  # nested booleans reach the engine as strings
    return value


def _address_name(stack: str, name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{stack}__{name}")


REFERENCE_OUTPUTS = ("arn", "name", "bucket")
"""Outputs (beside the id) another resource's input may carry as a reference."""


def _targets(plans: list[StackPlan]) -> dict[str, str]:
    """Provider-assigned value (id, ARN, name) -> the address of the resource holding it."""
    index: dict[str, str] = {}
    for plan in plans:
        for res in plan.resources:
            tf_type = TF_TYPES.get(res.type)
            if tf_type is None or res.read:
                continue
            address = f"{tf_type}.{_address_name(plan.stack, res.name)}"
            for value in (res.id, *(res.outputs.get(k) for k in REFERENCE_OUTPUTS)):
                if isinstance(value, str) and len(value) > 8:
                    index.setdefault(value, address)
    return index


def _expressions(inputs: dict[str, Any], targets: dict[str, str], own: str
                 ) -> dict[str, Any]:
    """Terraform's `expressions` for the inputs that name another resource: what lets a
    scanner's graph connect a bucket to its public access block, a VPC to its flow log."""
    out: dict[str, Any] = {}
    for key, value in inputs.items():
        values = value if isinstance(value, list) else [value]
        refs = sorted({targets[v] for v in values if isinstance(v, str) and v in targets}
                      - {own})
        if refs:
            out[_tf_name(key, value)] = {
                "references": [r for ref in refs for r in (f"{ref}.id", ref)]}
    return out


def document(plans: list[StackPlan]) -> tuple[dict[str, Any], list[str]]:
    """The Terraform plan JSON of `plans`, and the Pulumi types it had no mapping for."""
    planned, changes, config = [], [], []
    unmapped: set[str] = set()
    targets = _targets(plans)
    for plan in plans:
        for res in plan.resources:
            if res.read or not res.custom or res.type.startswith("pulumi:"):
                continue
            tf_type = TF_TYPES.get(res.type)
            if tf_type is None:
                if res.type.startswith("aws:"):
                    unmapped.add(res.type)
                continue
            name = _address_name(plan.stack, res.name)
            address = f"{tf_type}.{name}"
            values = tf_values(res.inputs)
            common = {"address": address, "mode": "managed", "type": tf_type, "name": name,
                      "provider_name": AWS_PROVIDER}
            planned.append({**common, "schema_version": 0, "values": values,
                            "sensitive_values": {}})
            changes.append({**common, "change": {
                "actions": ["create"], "before": None, "after": values,
                "after_unknown": {}, "before_sensitive": False, "after_sensitive": {}}})
            config.append({"address": address, "mode": "managed", "type": tf_type,
                           "name": name, "provider_config_key": "aws",
                           "expressions": _expressions(res.inputs, targets, address),
                           "schema_version": 0})
    doc = {
        "format_version": FORMAT_VERSION, "terraform_version": TERRAFORM_VERSION,
        "planned_values": {"root_module": {"resources": planned}},
        "resource_changes": changes,
        "configuration": {
            "provider_config": {"aws": {"name": "aws", "full_name": AWS_PROVIDER}},
            "root_module": {"resources": config}},
    }
    return doc, sorted(unmapped)


def write(plans: list[StackPlan], path: Path) -> list[str]:
    doc, unmapped = document(plans)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return unmapped
