"""The offline plan in Terraform's plan JSON shape, for scanners built for it (checkov
`--framework terraform_plan`, trivy, conftest).

The shape follows Terraform's "JSON Output Format" (https://developer.hashicorp.com/
terraform/internals/json-format): format_version, planned_values.root_module.resources,
resource_changes (every resource a create) and configuration. Pulumi's AWS provider bridges
Terraform's, so each Pulumi type maps to one Terraform type and each camelCase property to
its snake_case attribute; nested blocks become lists, as Terraform writes them.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import yaml

from planner.engine import StackPlan
from planner.mocks import SECRET_MASK
from planner.replace_props import MANUAL, UPSTREAM

FORMAT_VERSION = "1.2"
TERRAFORM_VERSION = "1.9.8"  # the version the document claims to be written by
AWS_PROVIDER = "registry.terraform.io/hashicorp/aws"


@functools.cache
def _upstream() -> tuple[dict[str, str], dict[str, set[str]], dict[str, dict[str, str]]]:
    """(Pulumi type -> Terraform type, Terraform type -> its top-level attributes, Pulumi
    type -> {Terraform attribute: Pulumi name}), from the replace data the diff keeps
    (planner/data/replace_manual.yaml `upstream_types` and `upstream_renames`: pulumi-aws
    provider/resources.go's mapping; replace_upstream.yaml: the attributes terraform-
    provider-aws registers), so the project has one table of Terraform names."""
    manual = yaml.safe_load(MANUAL.read_text())
    upstream = yaml.safe_load(UPSTREAM.read_text())
    types = {k: v for k, v in manual["upstream_types"].items() if k.startswith("aws:")}
    attrs = {tf: set(entry.get("attributes") or ())
             for tf, entry in upstream["aws"]["types"].items()}
    return types, attrs, manual.get("upstream_renames") or {}


def tf_type(token: str) -> str | None:
    return _upstream()[0].get(token)


LIST_RENAMES = {
    # Pulumi pluralises the name of a Terraform list whose MaxItems is not 1 (a repeated
    # block, or a list attribute with a singular name). Top-level names are matched against
    # the attributes Terraform registers (top_level); inside blocks, where the table has no
    # attributes, these are the ones this program sets, back to Terraform's names
    # (pulumi-aws provider/cmd/pulumi-resource-aws/bridge-metadata.json,
    # "renamedProperties": e.g. "statements": "statement",
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


def _singulars(name: str) -> list[str]:
    out = [name]
    if name.endswith("ies"):
        out.append(name[:-3] + "y")
    if name.endswith("es"):
        out.append(name[:-2])
    if name.endswith("s"):
        out.append(name[:-1])
    return out


def top_level(token: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """A resource's inputs as Terraform's top-level attributes: the Pulumi name snake_cased,
    or singular where Terraform registers the singular (default_action, vpc_zone_identifier,
    tag), or the bridge's rename (a metric alarm's name is alarm_name)."""
    _, attrs, renames = _upstream()
    known = attrs.get(tf_type(token) or "", set())
    back = {pulumi: tf for tf, pulumi in renames.get(token, {}).items()}
    out: dict[str, Any] = {}
    for key, value in inputs.items():
        if key in back:
            name = back[key]
        elif known:
            name = next((n for n in _singulars(snake(key)) if n in known), snake(key))
        else:
            name = _tf_name(key, value)
        out[name] = tf_values(value, key)
    return out


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
            tf = tf_type(res.type)
            if tf is None or res.read:
                continue
            address = f"{tf}.{_address_name(plan.stack, res.name)}"
            for value in (res.id, *(res.outputs.get(k) for k in REFERENCE_OUTPUTS)):
                if isinstance(value, str) and len(value) > 8:
                    index.setdefault(value, address)
    return index


def _expressions(token: str, inputs: dict[str, Any], targets: dict[str, str], own: str
                 ) -> dict[str, Any]:
    """Terraform's `expressions` for the inputs that name another resource: what lets a
    scanner's graph connect a bucket to its public access block, a VPC to its flow log."""
    out: dict[str, Any] = {}
    for key, value in inputs.items():
        values = value if isinstance(value, list) else [value]
        refs = sorted({targets[v] for v in values if isinstance(v, str) and v in targets}
                      - {own})
        if refs:
            out[next(iter(top_level(token, {key: value})))] = {
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
            tf = tf_type(res.type)
            if tf is None:
                if res.type.startswith("aws:"):
                    unmapped.add(res.type)
                continue
            name = _address_name(plan.stack, res.name)
            address = f"{tf}.{name}"
            values = top_level(res.type, res.inputs)
            common = {"address": address, "mode": "managed", "type": tf, "name": name,
                      "provider_name": AWS_PROVIDER}
            planned.append({**common, "schema_version": 0, "values": values,
                            "sensitive_values": {}})
            changes.append({**common, "change": {
                "actions": ["create"], "before": None, "after": values,
                "after_unknown": {}, "before_sensitive": False, "after_sensitive": {}}})
            config.append({"address": address, "mode": "managed", "type": tf,
                           "name": name, "provider_config_key": "aws",
                           "expressions": _expressions(res.type, res.inputs, targets,
                                                        address),
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
