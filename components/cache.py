"""ElastiCache (Redis OSS 7) replication group for sessions and the query cache.

Default topology: one shard of 3 nodes (1 primary, 2 replicas) spread over the AZs, with
automatic failover and Multi-AZ; encrypted at rest with a customer-managed KMS key and in
transit; clients authenticate with an AUTH token that only ever arrives as a Pulumi secret.
Cluster mode (the seed's "3-node cluster") is an option: N shards of that same shape.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
from pydantic import ValidationError

from components.kms import LogGroupArgs, encrypted_log_group, key_policy
from components.shared import port_security_group
from config.models import CacheConfig

PORT = 6379
ENGINE, ENGINE_VERSION, FAMILY = "redis", "7.1", "redis7"
# Sessions are written with a TTL and the query cache (15 min) too, so under memory pressure
# Redis should evict among keys that expire anyway, least recently used first. allkeys-lru
# could evict a key written without a TTL on purpose (a rate-limit counter, a lock), and
# noeviction would turn a full cache into write errors for the app.
MAXMEMORY_POLICY = "volatile-lru"


@dataclass(frozen=True)
class CacheArgs:
    """Inputs of `Cache`."""

    vpc_id: pulumi.Input[str]
    subnet_group_name: pulumi.Input[str]
    """ElastiCache subnet group over the data subnets."""
    auth_token: pulumi.Output[str]
    """Redis AUTH token: a Pulumi secret Output (`config.require_secret`), never a str."""
    node_type: str = "cache.r6g.large"
    num_nodes: int = 3
    """Nodes per shard: 1 primary + (num_nodes - 1) replicas."""
    cluster_mode: bool = False
    num_shards: int = 1
    """Shards (node groups) in cluster mode; must be 1 without it."""
    automatic_failover: bool = True
    availability_zones: pulumi.Input[list[str]] | None = None
    """The network's AZs; the nodes are placed round-robin over them."""
    allowed_security_group_ids: list[pulumi.Input[str]] = field(default_factory=list)
    allowed_cidrs: list[str] = field(default_factory=list)
    snapshot_retention_days: int = 7
    snapshot_window: str = "05:00-06:00"
    """Daily snapshot window (UTC); must not overlap maintenance_window."""
    maintenance_window: str = "sun:06:30-sun:07:30"
    slow_log_retention_days: int = 30
    protect: bool = False
    """Prod: Pulumi `protect` and a final snapshot on deletion."""
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: CacheConfig, *, vpc_id: pulumi.Input[str],
                    subnet_group_name: pulumi.Input[str], auth_token: pulumi.Output[str],
                    protect: bool, availability_zones: pulumi.Input[list[str]] | None = None,
                    allowed_security_group_ids: list[pulumi.Input[str]] | None = None,
                    allowed_cidrs: list[str] | None = None,
                    tags: dict[str, str] | None = None) -> CacheArgs:
        return cls(vpc_id=vpc_id, subnet_group_name=subnet_group_name, auth_token=auth_token,
                   node_type=cfg.node_type, num_nodes=cfg.num_nodes,
                   cluster_mode=cfg.cluster_mode, automatic_failover=cfg.automatic_failover,
                   availability_zones=availability_zones, protect=protect,
                   allowed_security_group_ids=list(allowed_security_group_ids or []),
                   allowed_cidrs=list(allowed_cidrs or []), tags=dict(tags or {}))


def check_args(args: CacheArgs) -> None:
    """Refuse a topology that cannot fail over, with the same rule as the stack config."""
    if not isinstance(args.auth_token, pulumi.Output):
        raise TypeError("auth_token must be a Pulumi secret Output (config.require_secret), "
                        f"not {type(args.auth_token).__name__}; a plain value would be stored "
                        "and shown in clear")
    try:
        # The failover rules live in config.models.CacheConfig; apply them, not a copy.
        CacheConfig.model_validate({"nodeType": args.node_type, "numNodes": args.num_nodes,
                                    "clusterMode": args.cluster_mode,
                                    "automaticFailover": args.automatic_failover})
    except ValidationError as exc:
        problems = "; ".join(f"{_key(e)} {e['msg']}" for e in exc.errors())
        raise ValueError(problems) from None
    if not args.cluster_mode and args.num_shards != 1:
        raise ValueError(f"num_shards is {args.num_shards} but cluster_mode is off; without "
                         "cluster mode there is exactly one shard")
    if args.num_shards < 1:
        raise ValueError(f"num_shards is {args.num_shards}; it must be >= 1")
    if "0.0.0.0/0" in args.allowed_cidrs:
        raise ValueError("allowed_cidrs contains 0.0.0.0/0; the cache is never open to the "
                         "internet")


def _key(error: dict) -> str:
    """The cache key a pydantic error is about (`rule()` errors carry it in ctx)."""
    parts = [*map(str, error["loc"]), *([error["ctx"]["field"]]
                                        if "field" in error.get("ctx", {}) else [])]
    return "cache." + ".".join(parts) if parts else "cache"


def spread(zones: list[str], *, count: int) -> list[str]:
    """`count` AZs round-robin over `zones`: the primary and each replica in another AZ."""
    return [zones[i % len(zones)] for i in range(count)]


class Cache(pulumi.ComponentResource):
    """Redis replication group with failover, encryption, AUTH, snapshots and slow-log."""

    arn: pulumi.Output[str]
    endpoint_address: pulumi.Output[str]
    """Where clients connect: the primary endpoint, or the configuration endpoint in
    cluster mode."""
    reader_endpoint_address: pulumi.Output[str | None]
    """Spreads reads over the replicas; None in cluster mode (the client routes)."""
    port: pulumi.Output[int]
    kms_key_arn: pulumi.Output[str]
    security_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: CacheArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        check_args(args)  # before anything is registered
        super().__init__("sofacover:cache:Cache", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        protected = pulumi.ResourceOptions(parent=self, protect=args.protect)

        def tags(role: str) -> dict[str, str]:
            return {**args.tags, "Name": f"{name}-{role}"}

        key = aws.kms.Key(f"{name}-kms", description=f"{name}: ElastiCache at rest, slow log",
                          enable_key_rotation=True, deletion_window_in_days=30,
                          policy=key_policy(self, via_services=("elasticache",), logs=True),
                          tags=tags("kms"), opts=protected)
        sg = port_security_group(
            f"{name}-sg", vpc_id=args.vpc_id, port=PORT, what=f"{name}: Redis",
            source_group_ids=args.allowed_security_group_ids, source_cidrs=args.allowed_cidrs,
            tags=tags("sg"), opts=child)
        params = aws.elasticache.ParameterGroup(
            f"{name}-params", family=FAMILY, description=f"{name}: sessions and cache",
            parameters=[
                aws.elasticache.ParameterGroupParameterArgs(name="maxmemory-policy",
                                                            value=MAXMEMORY_POLICY),
                aws.elasticache.ParameterGroupParameterArgs(
                    name="cluster-enabled", value="yes" if args.cluster_mode else "no"),
            ],
            tags=tags("params"), opts=child)
        # Encrypted with the cache's key (its policy lets CloudWatch Logs use it).
        slow_log = encrypted_log_group(f"{name}-slow-log", LogGroupArgs(
            retention_days=args.slow_log_retention_days, kms_key_arn=key.arn,
            tags=tags("slow-log")), child)

        topology: dict = (
            dict(cluster_mode="enabled", num_node_groups=args.num_shards,
                 replicas_per_node_group=args.num_nodes - 1)
            if args.cluster_mode else
            dict(cluster_mode="disabled", num_cache_clusters=args.num_nodes,
                 preferred_cache_cluster_azs=None if args.availability_zones is None else
                 pulumi.Output.from_input(args.availability_zones).apply(
                     functools.partial(spread, count=args.num_nodes))))
        group = aws.elasticache.ReplicationGroup(
            f"{name}-redis", description=f"{name}: sessions and query cache",
            engine=ENGINE, engine_version=ENGINE_VERSION, node_type=args.node_type,
            port=PORT, parameter_group_name=params.name,
            subnet_group_name=args.subnet_group_name, security_group_ids=[sg.id],
            automatic_failover_enabled=args.automatic_failover,
            # Multi-AZ needs automatic failover; both come from the same validated switch.
            multi_az_enabled=args.automatic_failover,
            at_rest_encryption_enabled=True, kms_key_id=key.arn,
            transit_encryption_enabled=True,
            auth_token=pulumi.Output.secret(args.auth_token),
            snapshot_retention_limit=args.snapshot_retention_days,
            snapshot_window=args.snapshot_window, maintenance_window=args.maintenance_window,
            final_snapshot_identifier=f"{name}-final" if args.protect else None,
            auto_minor_version_upgrade=True,
            log_delivery_configurations=[aws.elasticache.ReplicationGroupLogDeliveryConfigurationArgs(
                destination=slow_log.name, destination_type="cloudwatch-logs",
                log_format="json", log_type="slow-log")],
            tags=tags("redis"), **topology, opts=protected)

        self.arn = group.arn
        self.endpoint_address = (group.configuration_endpoint_address if args.cluster_mode
                                 else group.primary_endpoint_address)
        self.reader_endpoint_address = (pulumi.Output.from_input(None) if args.cluster_mode
                                        else group.reader_endpoint_address)
        self.port = group.port
        self.kms_key_arn = key.arn
        self.security_group_id = sg.id
        self.register_outputs({
            "arn": self.arn,
            "endpoint_address": self.endpoint_address,
            "reader_endpoint_address": self.reader_endpoint_address,
            "port": self.port,
            "kms_key_arn": self.kms_key_arn,
            "security_group_id": self.security_group_id,
        })
