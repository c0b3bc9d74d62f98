"""SofaCover scaling stack: one program, composed per stack by role and phase.

Roles (sofacover:role): `all-in-one` (dev), `primary` (prod, us-east-1), `secondary`
(prod-<region>, reads `prod` through a StackReference) and `edge` (prod-edge, the global
Cloudflare edge, deployed last). See README.md and docs/architecture.md. Components are
imported where they are used, so a stack never pays the import time of a provider SDK it
does not use (pulumi_cloudflare alone takes seconds).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

import pulumi

from config import ConfigError, StackConfig, load_stack_config
from config.models import DATA_NAMESPACE, DEFAULT_TAG_KEYS


def qualified(stack: str) -> str:
    """`org/project/stack` for a StackReference; a name with a slash is taken as given."""
    if "/" in stack:
        return stack
    return f"{pulumi.get_organization() or 'organization'}/{pulumi.get_project()}/{stack}"


def export(**outputs: Any) -> None:
    """Stack outputs, by name: what operators and later stacks read."""
    for key, value in outputs.items():
        pulumi.export(key, value)


def stack_output(ref: pulumi.StackReference, name: str) -> Any:
    """Another stack's output as a plain value now, or None when that stack has no such
    output (yet). For decisions that decide which resources exist (how many routes, which
    origins), which an Output cannot make without creating resources inside `apply`. The
    referenced stacks are deployed earlier (the rollout order), so their outputs are known
    in preview as in update. `get_output_details` is the SDK's documented way to read an
    output's value; it is a coroutine, awaited here on the program's loop."""
    from pulumi.runtime.sync_await import _sync_await

    details = _sync_await(ref.get_output_details(name))
    return details.value if details.value is not None else details.secret_value


def _item(index: int, values: list[str]) -> str:
    return values[index]


def _same_region(actual: str, declared: str, stack: str) -> str:
    if actual != declared:  # a config error found at run time: reported like the others
        raise ConfigError([
            f"Pulumi.{pulumi.get_stack()}.yaml: sofacover:primary.region is {declared} but "
            f"stack {stack} reports region {actual}; correct sofacover:primary.region"])
    return actual


PGBOUNCER_NAMESPACE = DATA_NAMESPACE  # PgBouncer and the partition job (config checks it)


def sidecar_path(cfg: StackConfig) -> str:
    """SSM path of the instances' PgBouncer sidecar config (ec2 platform)."""
    return f"/{pulumi.get_project()}/{cfg.stack}/pgbouncer"


@dataclass
class AppTier:
    """What the data tier and the alarms need from the web tier."""

    compute: Any
    client_security_group_ids: list[Any]
    eks: Any | None
    namespaces: dict[str, Any] | None = None
    """On Kubernetes: namespace -> its Namespace's name Output (depend on it by using it)."""
    k8s_opts: pulumi.ResourceOptions | None = None
    """On Kubernetes: the options every Kubernetes object of the stack is created with
    (the cluster's provider, which waits for the nodes)."""


def default_tags(cfg: StackConfig) -> dict[str, str]:
    """The AWS provider's default tags: the program's four keys, then the stack's own."""
    return {**dict(zip(DEFAULT_TAG_KEYS, (pulumi.get_project(), cfg.environment, cfg.stack,
                                          "pulumi"), strict=True)), **cfg.tags}


def regional(cfg: StackConfig) -> None:
    import pulumi_aws as aws

    from components.network import Network, NetworkArgs

    # The config keeps cfg.tags clear of these keys and within AWS's 50 with them.
    tags = default_tags(cfg)
    # An explicit provider, handed to every component, so the region and default tags are
    # decided here once; components never read the region themselves.
    provider = aws.Provider(f"aws-{cfg.region}", region=cfg.region,
                            default_tags=aws.ProviderDefaultTagsArgs(tags=tags))
    opts = pulumi.ResourceOptions(providers={"aws": provider})
    pulumi.export("region", cfg.region)

    primary = None
    if cfg.primary is not None:
        primary = pulumi.StackReference(f"{cfg.primary.stack}-ref",
                                        stack_name=qualified(cfg.primary.stack))
        pulumi.export("primaryRegion", primary.require_output("region").apply(
            functools.partial(_same_region, declared=cfg.primary.region,
                              stack=cfg.primary.stack)))
        pulumi.export("primaryVpcCidr", primary.require_output("vpcCidr"))

    pulumi.export("active", cfg.active)
    if not cfg.active:
        pulumi.log.info(f"{cfg.region} neither serves traffic nor holds a read replica in "
                        f"phase {cfg.phase}; nothing to create yet")
        return

    assert cfg.network is not None  # the model guarantees it for regional roles
    # A region that only holds a read replica needs no NAT: replication is RDS's own traffic.
    network = Network(f"sofacover-{cfg.stack}",
                      NetworkArgs.from_config(cfg.network, egress=cfg.hosts_app), opts)
    export(vpcId=network.vpc_id, vpcCidr=network.vpc_cidr,
           availabilityZones=network.availability_zones,
           publicSubnetIds=network.public_subnet_ids,
           privateSubnetIds=network.private_subnet_ids,
           dataSubnetIds=network.data_subnet_ids,
           privateRouteTableIds=network.private_route_table_ids,
           dataRouteTableId=network.data_route_table_id,
           dbSubnetGroupName=network.db_subnet_group_name,
           cacheSubnetGroupName=network.cache_subnet_group_name,
           natPublicIps=network.nat_public_ips)

    export(serving=cfg.hosts_app, promoted=cfg.promote)
    if cfg.role == "primary":
        # What a secondary's peering routes back through (components/peering.py).
        export(peerRouteTableIds=pulumi.Output.all(network.private_route_table_ids,
                                                   network.data_route_table_id).apply(
            _peer_tables))
    app = web_tier(cfg, network, opts) if cfg.hosts_app else None
    db = cache = failback = None
    if cfg.role in ("all-in-one", "primary"):
        assert app is not None
        db, cache, failback = data_tier(cfg, network, app, opts)
    if cfg.role == "secondary":
        assert primary is not None
        peering(cfg, network, primary, opts)
    if cfg.hosts_replica:
        assert primary is not None
        db = replica(cfg, network, primary, opts)
    if cfg.role == "secondary" and cfg.hosts_app:
        assert app is not None and primary is not None
        cache = secondary_data_tier(cfg, network, app, db, primary, opts)
    monitoring(cfg, app, db, cache, opts, failback=failback)


def _peer_tables(tables: list) -> list[str]:
    private, data = tables
    return [*private, data]


def peering(cfg: StackConfig, network, primary: pulumi.StackReference,
            opts: pulumi.ResourceOptions) -> None:
    """This region's VPC peered with the primary's (components/peering.py): created here,
    in the secondary's stack, so the primary never needs a stack deployed after it. Only a
    serving region's PgBouncer is admitted to the primary's PostgreSQL."""
    from components.network import plan_subnets
    from components.peering import Peering, PeeringArgs

    assert cfg.network is not None and cfg.primary is not None
    peer_tables = stack_output(primary, "peerRouteTableIds")
    if not peer_tables:
        raise ConfigError([
            f"Pulumi.{cfg.stack}.yaml: sofacover:primary.stack is {cfg.primary.stack}, whose "
            "outputs have no peerRouteTableIds; deploy that stack with this version first "
            "(the rollout order), then this one"])
    layout = plan_subnets(cfg.network.cidr, cfg.network.az_count)
    own_tables = [network.private_route_table_ids.apply(functools.partial(_item, i))
                  for i in range(cfg.network.az_count)] + [network.data_route_table_id]
    # Admitted while the region serves; kept once promoted (its writes are then local, but
    # changing a rule in the lost primary's region would make the failover depend on it).
    clients = layout["private"] if cfg.hosts_app else []
    Peering(f"sofacover-{cfg.stack}-peering", PeeringArgs(
        vpc_id=network.vpc_id, vpc_cidr=cfg.network.cidr, route_table_ids=own_tables,
        peer_region=cfg.primary.region, peer_vpc_id=primary.require_output("vpcId"),
        peer_vpc_cidr=primary.require_output("vpcCidr"),
        peer_route_table_ids=list(peer_tables),
        peer_security_group_id=primary.require_output("dbPeerSecurityGroupId")
        if clients else None,
        client_cidrs=clients, tags=cfg.tags), opts)


def web_tier(cfg: StackConfig, network, opts: pulumi.ResourceOptions) -> AppTier:
    """ALB + Auto Scaling group; on the kubernetes platform also EKS and the workloads."""
    from components.compute import Compute, ComputeArgs

    assert cfg.compute is not None and cfg.kubernetes is not None
    name = f"sofacover-{cfg.stack}"
    prod = cfg.environment == "prod"
    placement = dict(vpc_id=network.vpc_id, vpc_cidr=network.vpc_cidr,
                     public_subnet_ids=network.public_subnet_ids,
                     private_subnet_ids=network.private_subnet_ids, deletion_protection=prod,
                     group_tags=default_tags(cfg))
    eks = namespaces = None
    if cfg.compute.platform == "kubernetes":
        # Imported here: pulumi_kubernetes costs import time a plain-EC2 stack need not pay.
        from components.autoscaler import autoscaler_tags
        from components.eks import Eks, EksArgs

        eks = Eks(name, EksArgs.from_config(cfg.kubernetes,
                                            subnet_ids=network.private_subnet_ids,
                                            deletion_protection=prod), opts)
        autoscaling = cfg.kubernetes.autoscaler.enabled
        compute = Compute(name, ComputeArgs.from_config(
            cfg.compute, **placement, services=cfg.kubernetes.services,
            user_data=eks.node_user_data, ami_parameter=eks.ami_parameter,
            instance_role_name=eks.node_role_name,
            extra_security_group_ids=(eks.cluster_security_group_id,),
            autoscaler_tags=autoscaler_tags(eks.cluster_name) if autoscaling else ()), opts)
        # The provider, and so every Kubernetes object, waits for the node group and the
        # add-ons that need a node (components/eks.py, connect_nodes).
        k8s_opts = pulumi.ResourceOptions(
            providers={"kubernetes": eks.connect_nodes([compute])})
        if autoscaling:  # its IAM role and Pod Identity association: this region's
            node_autoscaler(cfg, name, eks, pulumi.ResourceOptions.merge(opts, k8s_opts))
        namespaces = workloads(cfg, name, k8s_opts)
        export(clusterName=eks.cluster_name, kubeconfig=eks.kubeconfig)
    else:
        # The instances run PgBouncer as a sidecar; data_tier publishes its config there.
        compute = Compute(name, ComputeArgs.from_config(
            cfg.compute, **placement, sidecar_parameter_path=sidecar_path(cfg)), opts)
    if cfg.compute.origin_access != "cloudflare":
        # No Cloudflare edge in front: AWS WAF guards the ALB (with the edge, Cloudflare's
        # managed WAF rules do, in prod-edge).
        from components.waf import Waf, WafArgs

        Waf(f"{name}-waf", WafArgs(resource_arn=compute.alb_arn, tags=cfg.tags), opts)
    export(albDnsName=compute.alb_dns_name, albZoneId=compute.alb_zone_id,
           albArnSuffix=compute.alb_arn_suffix, asgName=compute.asg_name,
           certificateValidationRecords=compute.certificate_validation_records)
    if cfg.edge is not None:  # a stack with its own edge (e.g. a dev zone)
        from components.edge import Edge, EdgeArgs, Origin

        site = Edge(name, EdgeArgs.from_config(
            cfg.edge, [Origin(str(cfg.region), compute.alb_dns_name)]))
        pulumi.export("hostnames", site.hostnames)
    clients = [compute.instance_security_group_id]
    if eks is not None:  # pods use the node's interfaces, which carry the cluster's group
        clients.append(eks.cluster_security_group_id)
    return AppTier(compute, clients, eks, namespaces,
                   k8s_opts if cfg.compute.platform == "kubernetes" else None)


def node_autoscaler(cfg: StackConfig, name: str, eks: Any,
                    opts: pulumi.ResourceOptions) -> None:
    """Cluster Autoscaler on the node group and its spare capacity (issue 13: 10x within
    120 s), sized as planner/capacity.py models it."""
    from components.autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs
    from config.quantity import cpu_millis, memory_mib
    from planner.capacity import spare_pods_for

    assert cfg.kubernetes is not None
    auto = cfg.kubernetes.autoscaler
    largest = max(cfg.kubernetes.services, key=lambda s: cpu_millis(s.cpu_request))
    heaviest = max(cfg.kubernetes.services, key=lambda s: memory_mib(s.memory_request))
    ClusterAutoscaler(f"{name}-autoscaler", ClusterAutoscalerArgs(
        cluster_name=eks.cluster_name, region=str(cfg.region),
        kubernetes_version=cfg.kubernetes.version, expander=auto.expander,
        scan_interval_s=auto.scan_interval_seconds, spare_pods=spare_pods_for(cfg),
        spare_pod_requests={"cpu": largest.cpu_request, "memory": heaviest.memory_request},
        tags=cfg.tags), opts)


def workloads(cfg: StackConfig, name: str, k8s_opts: pulumi.ResourceOptions
              ) -> dict[str, Any]:
    """The app services on the cluster, through the cluster's own Kubernetes provider;
    returns the namespaces it created (the app's and PgBouncer's)."""
    from components.network import plan_subnets
    from components.workloads import Workloads, WorkloadsArgs

    assert cfg.kubernetes is not None and cfg.network is not None
    apps = Workloads(name, WorkloadsArgs.from_config(
        cfg.kubernetes, vpc_cidr=cfg.network.cidr,
        data_cidrs=plan_subnets(cfg.network.cidr, cfg.network.az_count)["data"],
        # PgBouncer runs in the cluster with the app (data_tier): allow egress to it.
        pgbouncer_namespace=PGBOUNCER_NAMESPACE),
        k8s_opts)
    export(appNamespace=apps.namespace, appNodePorts=apps.node_ports)
    return apps.namespaces


def app_cache(cfg: StackConfig, name: str, network, app: AppTier, secrets: pulumi.Config, *,
              protect: bool, opts: pulumi.ResourceOptions) -> Any:
    """The region's Redis, reachable from the app tier only (primary and serving secondary)."""
    from components.cache import Cache, CacheArgs

    return Cache(name, CacheArgs.from_config(
        cfg.cache, vpc_id=network.vpc_id, subnet_group_name=network.cache_subnet_group_name,
        auth_token=secrets.require_secret("redisAuthToken"), protect=protect,
        availability_zones=network.availability_zones,
        allowed_security_group_ids=app.client_security_group_ids, tags=cfg.tags), opts)


def pgbouncer_passwords(secrets: pulumi.Config) -> dict[str, pulumi.Output[str]]:
    """PgBouncer's users and their secrets (its userlist holds their SCRAM verifiers)."""
    return {"sofacover_app": secrets.require_secret("dbAppPassword"),
            "pgbouncer_admin": secrets.require_secret("pgbouncerAdminPassword"),
            "pgbouncer_stats": secrets.require_secret("pgbouncerStatsPassword")}


def data_tier(cfg: StackConfig, network, app: AppTier,
              opts: pulumi.ResourceOptions) -> tuple[Any, Any]:
    """The primary's RDS PostgreSQL, Redis, PgBouncer and (on Kubernetes) the partition job."""
    from components.database import DatabaseArgs
    from components.pgbouncer import PgBouncer, PgBouncerArgs

    assert cfg.database and cfg.cache and cfg.pgbouncer and cfg.compute
    name = f"sofacover-{cfg.stack}"
    prod = cfg.environment == "prod"
    secrets = pulumi.Config()
    # Each data store's children are named after it (sofacover-prod-database-kms, ...), so
    # AWS consoles tell the database's key and group from the cache's.
    db_args = DatabaseArgs.from_config(
        cfg.database, vpc_id=network.vpc_id, subnet_group_name=network.db_subnet_group_name,
        protect=prod, backup_replication_region=cfg.database.backup_replication_region,
        allowed_security_group_ids=app.client_security_group_ids, tags=cfg.tags)
    peers = None
    if cfg.role == "primary":
        # The secondaries' PgBouncers reach this database across the peering; each
        # secondary's stack adds its own rules to this group (components/peering.py).
        from components.peering import peer_security_group

        peers = peer_security_group(f"{name}-database-peers-sg", vpc_id=network.vpc_id,
                                    what=f"{name}-database: PostgreSQL",
                                    tags={**cfg.tags, "Name": f"{name}-database-peers"},
                                    opts=opts)
        db_args = dataclasses.replace(db_args, extra_security_group_ids=[peers.id])
        export(dbPeerSecurityGroupId=peers.id)
    db, failback = primary_databases(cfg, db_args, opts)
    cache = app_cache(cfg, f"{name}-cache", network, app, secrets, protect=prod, opts=opts)
    passwords = pgbouncer_passwords(secrets)
    on_k8s = app.eks is not None
    # On Kubernetes, the namespace's Output: PgBouncer's and the job's objects wait for it.
    data_namespace = app.namespaces[PGBOUNCER_NAMESPACE] if app.namespaces else \
        PGBOUNCER_NAMESPACE
    k8s_opts = app.k8s_opts
    # Without Kubernetes every instance runs PgBouncer: the server budget is divided by the
    # group's maximum size, so a full scale-out still fits max_connections.
    pgbouncer = PgBouncer(name, PgBouncerArgs.from_config(
        cfg.pgbouncer, cfg.database, database_host=db.address, passwords=passwords,
        server_regions=[str(cfg.region)],
        kubernetes=on_k8s, instances=None if on_k8s else cfg.compute.max_size,
        namespace=data_namespace, parameter_path=sidecar_path(cfg)),
        k8s_opts if on_k8s else opts)
    if on_k8s:
        from components.partitions import PartitionJob, PartitionJobArgs

        PartitionJob(f"{name}-partitions", PartitionJobArgs(
            database_host=db.address, password=passwords["sofacover_app"],
            avoid_windows=(db_args.backup_window, db_args.maintenance_window),
            namespace=data_namespace), k8s_opts)
    if app.namespaces:
        endpoints(cfg, app, pgbouncer, cache, read_database="sofacover",
                  write_region=str(cfg.region))
    export(dbArn=db.arn, dbIdentifier=db.identifier, dbAddress=db.address, dbPort=db.port,
           dbMasterUserSecretArn=db.master_user_secret_arn,
           cacheEndpoint=cache.endpoint_address,
           cacheReaderEndpoint=cache.reader_endpoint_address, pgbouncerHost=pgbouncer.host)
    return db, cache, failback


def database_name(stack: str, generation: int) -> str:
    """The Database component of a stack's generation (config: database.generation); its
    children and the instance identifier are named after it, so each generation is a new
    instance beside the others."""
    base = f"sofacover-{stack}-database"
    return base if generation == 1 else f"{base}-g{generation}"


def primary_databases(cfg: StackConfig, db_args: Any,
                      opts: pulumi.ResourceOptions) -> tuple[Any, Any]:
    """The primary stack's databases: the current generation and each retained one.
    Returns (the database that takes writes and the stack's outputs, the failback replica
    or None). Failback (docs/runbook-dr.md): the current generation is a cross-region read
    replica of the promoted secondary's database (database.replicateFrom) while an earlier
    generation keeps the outputs, then `promote` makes it the primary."""
    from components.database import Database

    assert cfg.database is not None
    db_cfg = cfg.database
    gen = db_cfg.generation

    def mode(g: int) -> dict[str, Any]:
        # Generation 1 was built as the primary; every later one as a replica since promoted
        # (RDS takes engine, user and database from the source: naming them would replace).
        if g == 1:
            return {}
        return dict(promote=True, replicate_source_db=None)

    retained = {g: Database(database_name(cfg.stack, g),
                            dataclasses.replace(db_args, **mode(g)), opts)
                for g in db_cfg.retain}
    if db_cfg.replicate_from is None:
        current = Database(database_name(cfg.stack, gen),
                           dataclasses.replace(db_args, **mode(gen)), opts)
        return current, None
    source = pulumi.StackReference(f"{db_cfg.replicate_from}-ref",
                                   stack_name=qualified(db_cfg.replicate_from))
    replica_of = Database(database_name(cfg.stack, gen), dataclasses.replace(
        db_args, replicate_source_db=source.require_output("dbArn"),
        backup_replication_region=None), opts)
    export(failbackDbIdentifier=replica_of.identifier, failbackDbAddress=replica_of.address)
    return retained[max(retained)], replica_of


def replica(cfg: StackConfig, network, primary: pulumi.StackReference,
            opts: pulumi.ResourceOptions) -> Any:
    """This region's cross-region read replica of the primary (or, promoted, a primary)."""
    from components.database import Database, DatabaseArgs

    assert cfg.database is not None and cfg.network is not None

    def database(generation: int, promoted: bool) -> Any:
        return Database(database_name(cfg.stack, generation), DatabaseArgs.from_config(
            cfg.database, vpc_id=network.vpc_id,
            subnet_group_name=network.db_subnet_group_name, protect=True, promote=promoted,
            replicate_source_db=None if promoted else primary.require_output("dbArn"),
            allowed_cidrs=[cfg.network.cidr], tags=cfg.tags), opts)

    # Failback rebuilds the replica as a new generation from the primary again; a promoted
    # generation it retains (database.retain) stays as it was until removed on purpose.
    for generation in cfg.database.retain:
        database(generation, promoted=True)
    db = database(cfg.database.generation, cfg.promote)
    export(dbArn=db.arn, dbIdentifier=db.identifier, dbAddress=db.address,
           dbMasterUserSecretArn=db.master_user_secret_arn)
    return db


def secondary_data_tier(cfg: StackConfig, network, app: AppTier, db: Any,
                        primary: pulumi.StackReference, opts: pulumi.ResourceOptions) -> Any:
    """A serving secondary's own Redis and PgBouncer. PgBouncer has two pools: writes
    (`sofacover`) to the primary across the peering, or to this region's database once it
    is promoted; reads (`sofacover_ro`) to this region's replica. Sessions stay in this
    region's Redis: the edge keeps a user in one region (components/edge.py)."""
    from components.compute import aws_name_stem
    from components.pgbouncer import PgBouncer, PgBouncerArgs

    assert cfg.cache and cfg.pgbouncer and cfg.database and cfg.compute and cfg.primary
    name = f"sofacover-{cfg.stack}"
    secrets = pulumi.Config()
    # The replication group's id is autonamed from the component's name and capped at 40
    # characters (sofacover-prod-ap-southeast-1-cache-redis-xxxxxxx is 49): the short stem.
    cache = app_cache(cfg, f"{aws_name_stem(name)}-cache", network, app, secrets,
                      protect=True, opts=opts)
    passwords = pgbouncer_passwords(secrets)
    writer = db.address if cfg.promote else primary.require_output("dbAddress")
    on_k8s = app.eks is not None
    pgbouncer = PgBouncer(name, PgBouncerArgs.from_config(
        cfg.pgbouncer, cfg.database, database_host=writer,
        replica_host=db.address if db is not None else None, passwords=passwords,
        server_regions=[str(cfg.region if cfg.promote else cfg.primary.region),
                        str(cfg.region)],
        kubernetes=on_k8s, instances=None if on_k8s else cfg.compute.max_size,
        namespace=app.namespaces[PGBOUNCER_NAMESPACE] if app.namespaces else
        PGBOUNCER_NAMESPACE, parameter_path=sidecar_path(cfg)),
        app.k8s_opts if on_k8s else opts)
    if app.namespaces:
        endpoints(cfg, app, pgbouncer, cache,
                  read_database="sofacover_ro" if db is not None else "sofacover",
                  write_region=str(cfg.region if cfg.promote else cfg.primary.region))
    export(cacheEndpoint=cache.endpoint_address,
           cacheReaderEndpoint=cache.reader_endpoint_address, pgbouncerHost=pgbouncer.host,
           writeRegion=cfg.region if cfg.promote else cfg.primary.region)
    return cache


def endpoints(cfg: StackConfig, app: AppTier, pgbouncer: Any, cache: Any, *,
              read_database: str, write_region: str) -> None:
    """The app's `sofacover-endpoints` ConfigMap: its write and read pools and its Redis."""
    from components.cache import PORT as REDIS_PORT
    from components.pgbouncer import PORT as PGBOUNCER_PORT
    from components.regional import AppEndpoints, AppEndpointsArgs

    assert cfg.kubernetes is not None and app.namespaces and cfg.region
    AppEndpoints(f"sofacover-{cfg.stack}", AppEndpointsArgs(
        namespace=app.namespaces[cfg.kubernetes.namespace], region=cfg.region,
        write_region=write_region, pgbouncer_host=pgbouncer.host,
        pgbouncer_port=PGBOUNCER_PORT, write_database="sofacover",
        read_database=read_database, redis_host=cache.endpoint_address,
        redis_reader_host=cache.reader_endpoint_address, redis_port=REDIS_PORT),
        app.k8s_opts)


def monitoring(cfg: StackConfig, app: AppTier | None, db: Any, cache: Any,
               opts: pulumi.ResourceOptions, failback: Any = None) -> None:
    """Alarms, the alert topic and the dashboard for whatever this stack runs; on
    Kubernetes also the PrometheusRule. Thresholds: config/thresholds.py. `failback`: the
    primary's failback replica, watched as a replica (ReplicaLag) until it is promoted."""
    from components.monitoring import Monitoring, MonitoringArgs, arn_resource_id

    resources: dict[str, Any] = {}
    if app is not None:
        assert cfg.kubernetes is not None
        routes = [s.name for s in cfg.kubernetes.services] if app.eks is not None else ["app"]
        resources.update(
            alb_arn_suffix=app.compute.alb_arn_suffix,
            target_group_arn_suffixes={r: app.compute.target_group_arn_suffixes[r]
                                       for r in routes},
            asg_name=app.compute.asg_name,
            kubernetes_provider=app.eks.provider if app.eks is not None else None)
        if app.eks is not None:
            from components.pgbouncer import exporter_pod_monitor

            resources.update(
                kubernetes_cluster_name=app.eks.cluster_name,
                kubernetes_version=cfg.kubernetes.version,
                pod_monitors=(exporter_pod_monitor(f"sofacover-{cfg.stack}",
                                                   PGBOUNCER_NAMESPACE),)
                if cfg.hosts_app else ())
    if db is not None and cfg.database is not None:
        key = "db_replica_ids" if cfg.role == "secondary" and not cfg.promote \
            else "db_instance_id"
        resources[key] = (db.identifier,) if key == "db_replica_ids" else db.identifier
        if failback is not None:
            resources["db_replica_ids"] = (failback.identifier,)
        resources["db_allocated_storage_gb"] = cfg.database.allocated_storage_gb
    if cache is not None and cfg.cache is not None:
        resources.update(redis_replication_group_id=cache.arn.apply(arn_resource_id),
                         redis_node_count=cfg.cache.num_nodes)
    if cfg.pgbouncer is not None and cfg.hosts_app:  # PgBouncer runs where it serves
        resources["pool_budget"] = cfg.pgbouncer.max_server_connections
    alerts = Monitoring(f"sofacover-{cfg.stack}",
                        MonitoringArgs.from_config(cfg.alerts, **resources), opts)
    export(alertTopicArn=alerts.topic_arn, dashboardName=alerts.dashboard_name)


def edge(cfg: StackConfig) -> None:
    """The global edge: Cloudflare in front of every region that serves this phase."""
    from components.edge import Edge, EdgeArgs, Origin

    assert cfg.edge is not None
    # Primary first: DNS points at it and it is every region's last resort. A region is an
    # origin once its stack serves (its outputs have an ALB), not when this stack's phase
    # says it should: stacks move phase one by one in rollout order, so the edge may reach
    # phase 3 while a secondary is still at phase 1. Such a region is left out, with a
    # warning, and joins when the edge is deployed again after it.
    origins, waiting = [], []
    for i, region in enumerate(cfg.regions.serving):
        stack = cfg.edge.origins[region]
        ref = pulumi.StackReference(f"{stack}-ref", stack_name=qualified(stack))
        address = ref.require_output("albDnsName") if i == 0 else \
            stack_output(ref, "albDnsName")
        if address is None:
            waiting.append(f"{region} ({stack})")
            continue
        origins.append(Origin(region, address, enabled=region not in cfg.edge.drain))
    if waiting:
        pulumi.log.warn(
            f"phase {cfg.phase} serves {', '.join(cfg.regions.serving)}, but "
            f"{', '.join(waiting)} {'do' if len(waiting) > 1 else 'does'} not serve yet (no "
            "albDnsName output): the edge leaves them out until they do; deploy each at this "
            "phase, then this stack again")
    drained = [o.region for o in origins if not o.enabled]
    if drained:
        pulumi.log.info(f"drained at the edge (sofacover:edge.drain): {', '.join(drained)}")
    site = Edge(f"sofacover-{cfg.stack}", EdgeArgs.from_config(cfg.edge, origins))
    export(zoneName=cfg.edge.zone_name, hostnames=site.hostnames,
           originRegions=[o.region for o in origins], drainedRegions=drained,
           loadBalancerPools=site.load_balancer_pools)


cfg = load_stack_config()
export(stack=cfg.stack, environment=cfg.environment, role=cfg.role, phase=cfg.phase)
if cfg.role == "edge":
    edge(cfg)
else:
    regional(cfg)
