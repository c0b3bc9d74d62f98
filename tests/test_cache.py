"""The Cache component (ElastiCache Redis), built under the recording mocks."""

from __future__ import annotations

from typing import NamedTuple

import pulumi
import pytest

from components.cache import MAXMEMORY_POLICY, Cache, CacheArgs, spread
from config import seed
from config.models import CacheConfig
from config.presets import PHASES
from planner.mocks import SECRET_MASK
from tests.conftest import of_type

GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
CFG = CacheConfig.model_validate(PHASES[1]["cache"])
ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"]


class Token(NamedTuple):
    """How the program passes the AUTH token: a `secret` Output, a plain `output` or a
    `plain` string. Made inside the program (Outputs need the runtime); a value, not a
    function, so the `build` fixture shares the build of equal programs."""

    kind: str
    value: str

    def __call__(self):
        if self.kind == "secret":
            return pulumi.Output.secret(self.value)
        return pulumi.Output.from_input(self.value) if self.kind == "output" else self.value


secret_token = Token("secret", "s3cr3t-t0ken-of-32-characters!!")


def cache(token=secret_token, **kw):
    """`token` makes the AUTH token inside the program (Outputs need the runtime)."""
    def fn() -> None:
        base = CacheArgs.from_config(
            CFG, vpc_id="vpc-0a1b2c3d4e5f67890", subnet_group_name="sofacover-cache",
            auth_token=token(), protect=True, availability_zones=ZONES,
            allowed_security_group_ids=["sg-0123456789abcdef0"])
        c = Cache("cache", CacheArgs(**{**base.__dict__, **kw}))
        pulumi.export("endpoint", c.endpoint_address)
        pulumi.export("reader", c.reader_endpoint_address)
    return fn


def group(build, **kw):
    (g,) = of_type(build(cache(**kw)).resources, GROUP)
    return g


def test_default_is_three_nodes_one_primary_two_replicas_across_azs(build):
    g = group(build)
    assert g.inputs["numCacheClusters"] == seed.REDIS_NODES == 3
    assert g.inputs["preferredCacheClusterAzs"] == ZONES
    assert g.inputs["clusterMode"] == "disabled"


def test_nodes_spread_round_robin_over_fewer_zones():
    assert spread(["a", "b"], count=3) == ["a", "b", "a"]


def test_group_fails_over_automatically_across_azs(build):
    g = group(build)
    assert g.inputs["automaticFailoverEnabled"] is True
    assert g.inputs["multiAzEnabled"] is True


def test_group_is_encrypted_at_rest_with_its_own_key_and_in_transit(build):
    res = build(cache()).resources
    (g,) = of_type(res, GROUP)
    (key,) = of_type(res, "aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True
    assert g.inputs["atRestEncryptionEnabled"] is True
    assert g.inputs["kmsKeyId"] == f"arn:aws:kms:us-east-1:123456789012:key/{key.id}"
    assert g.inputs["transitEncryptionEnabled"] is True


def test_auth_token_is_secret_in_the_recorded_inputs(build):
    assert group(build).inputs["authToken"] == SECRET_MASK


def test_a_plain_output_token_is_still_recorded_as_secret(build):
    # A caller forgetting `secret` on an Output does not leak the token: the component
    # wraps it.
    g = group(build, token=Token("output", "plain-token-of-32-characters!!!!"))
    assert g.inputs["authToken"] == SECRET_MASK


def test_a_plain_string_token_is_refused(build):
    with pytest.raises(TypeError, match="auth_token must be a Pulumi secret Output"):
        build(cache(token=Token("plain", "plain-token-of-32-characters!!!!")))


def test_eviction_policy_evicts_only_keys_with_a_ttl(build):
    res = build(cache()).resources
    (params,) = of_type(res, "aws:elasticache/parameterGroup:ParameterGroup")
    values = {p["name"]: p["value"] for p in params.inputs["parameters"]}
    assert values["maxmemory-policy"] == MAXMEMORY_POLICY == "volatile-lru"
    assert values["cluster-enabled"] == "no"
    assert params.inputs["family"] == "redis7"


def test_snapshots_are_kept_with_a_window_and_a_final_one_when_protected(build):
    g = group(build)
    assert g.inputs["snapshotRetentionLimit"] >= 1
    assert g.inputs["snapshotWindow"]
    assert g.inputs["finalSnapshotIdentifier"] == "cache-final"
    assert g.options["protect"] is True


def test_unprotected_group_takes_no_final_snapshot(build):
    g = group(build, protect=False)
    assert "finalSnapshotIdentifier" not in g.inputs
    assert g.options["protect"] is False


def test_slow_log_goes_to_its_cloudwatch_log_group(build):
    res = build(cache()).resources
    (g,) = of_type(res, GROUP)
    (log,) = of_type(res, "aws:cloudwatch/logGroup:LogGroup")
    (delivery,) = g.inputs["logDeliveryConfigurations"]
    assert delivery == {"destination": log.id, "destinationType": "cloudwatch-logs",
                        "logFormat": "json", "logType": "slow-log"}


def test_security_group_admits_6379_only_from_the_app(build):
    (sg,) = of_type(build(cache()).resources, "aws:ec2/securityGroup:SecurityGroup")
    (rule,) = sg.inputs["ingress"]
    assert (rule["fromPort"], rule["toPort"]) == (6379, 6379)
    assert rule["securityGroups"] == ["sg-0123456789abcdef0"]
    assert "cidrBlocks" not in rule


def test_cluster_mode_makes_shards_of_one_primary_and_replicas(build):
    res = build(cache(cluster_mode=True, num_shards=2)).resources
    (g,) = of_type(res, GROUP)
    assert g.inputs["clusterMode"] == "enabled"
    assert g.inputs["numNodeGroups"] == 2
    assert g.inputs["replicasPerNodeGroup"] == CFG.num_nodes - 1
    assert "numCacheClusters" not in g.inputs
    (params,) = of_type(res, "aws:elasticache/parameterGroup:ParameterGroup")
    assert {"name": "cluster-enabled", "value": "yes"} in params.inputs["parameters"]


def test_cluster_mode_endpoint_is_the_configuration_endpoint(build):
    run = build(cache(cluster_mode=True))
    assert run.outputs["endpoint"].startswith("clustercfg.")
    assert run.outputs["reader"] is None


def test_endpoints_without_cluster_mode_are_primary_and_reader(build):
    run = build(cache())
    assert run.outputs["endpoint"].startswith("master.")
    assert run.outputs["reader"].startswith("replica.")


def test_shards_without_cluster_mode_are_refused(build):
    with pytest.raises(ValueError, match="num_shards is 2 but cluster_mode is off"):
        build(cache(num_shards=2))


def test_failover_with_a_single_node_is_refused_with_the_config_rule(build):
    with pytest.raises(ValueError, match="numNodes.*failover needs a replica"):
        build(cache(num_nodes=1))


def test_single_node_without_failover_is_allowed_and_has_no_multi_az(build):
    g = group(build, num_nodes=1, automatic_failover=False)
    assert g.inputs["numCacheClusters"] == 1
    assert g.inputs["automaticFailoverEnabled"] is False
    assert g.inputs["multiAzEnabled"] is False


def test_cluster_mode_without_failover_is_refused(build):
    with pytest.raises(ValueError, match="cluster mode requires automatic failover"):
        build(cache(cluster_mode=True, automatic_failover=False))


def test_cache_is_never_open_to_the_internet(build):
    with pytest.raises(ValueError, match="0.0.0.0/0"):
        build(cache(allowed_cidrs=["0.0.0.0/0"]))


def test_every_child_is_parented_to_the_component(build):
    res = build(cache()).resources
    (component,) = of_type(res, "sofacover:cache:Cache")
    assert all(r.parent == component.urn for r in res if r is not component)


def test_builds_in_preview_mode(build):
    assert len(of_type(build(cache(), preview=True).resources, GROUP)) == 1
