"""SofaCover scaling stack: one program, composed per stack by role and phase.

Roles (sofacover:role): `all-in-one` (dev), `primary` (prod, us-east-1), `secondary`
(prod-<region>, reads `prod` through a StackReference) and `edge` (prod-edge, the global
Cloudflare edge, deployed last). See README.md and docs/architecture.md. Components are
imported where they are used, so a stack never pays the import time of a provider SDK it
does not use (pulumi_cloudflare alone takes seconds).
"""

from __future__ import annotations

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
           dbSubnetGroupName=network.db_subnet_group_name,
           cacheSubnetGroupName=network.cache_subnet_group_name,
           natPublicIps=network.nat_public_ips)

    app = web_tier(cfg, network, opts) if cfg.hosts_app else None
    db = cache = None
    if cfg.role in ("all-in-one", "primary"):
        assert app is not None
        db, cache = data_tier(cfg, network, app, opts)
    if cfg.hosts_replica:
        assert primary is not None
        db = replica(cfg, network, primary, opts)
    monitoring(cfg, app, db, cache, opts)


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


def data_tier(cfg: StackConfig, network, app: AppTier,
              opts: pulumi.ResourceOptions) -> tuple[Any, Any]:
    """The primary's RDS PostgreSQL, Redis, PgBouncer and (on Kubernetes) the partition job."""
    from components.cache import Cache, CacheArgs
    from components.database import Database, DatabaseArgs
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
    db = Database(f"{name}-database", db_args, opts)
    cache = Cache(f"{name}-cache", CacheArgs.from_config(
        cfg.cache, vpc_id=network.vpc_id, subnet_group_name=network.cache_subnet_group_name,
        auth_token=secrets.require_secret("redisAuthToken"), protect=prod,
        availability_zones=network.availability_zones,
        allowed_security_group_ids=app.client_security_group_ids, tags=cfg.tags), opts)
    passwords = {"sofacover_app": secrets.require_secret("dbAppPassword"),
                 "pgbouncer_admin": secrets.require_secret("pgbouncerAdminPassword"),
                 "pgbouncer_stats": secrets.require_secret("pgbouncerStatsPassword")}
    on_k8s = app.eks is not None
    # On Kubernetes, the namespace's Output: PgBouncer's and the job's objects wait for it.
    data_namespace = app.namespaces[PGBOUNCER_NAMESPACE] if app.namespaces else \
        PGBOUNCER_NAMESPACE
    k8s_opts = app.k8s_opts
    # Without Kubernetes every instance runs PgBouncer: the server budget is divided by the
    # group's maximum size, so a full scale-out still fits max_connections.
    pgbouncer = PgBouncer(name, PgBouncerArgs.from_config(
        cfg.pgbouncer, cfg.database, database_host=db.address, passwords=passwords,
        kubernetes=on_k8s, instances=None if on_k8s else cfg.compute.max_size,
        namespace=data_namespace, parameter_path=sidecar_path(cfg)),
        k8s_opts if on_k8s else opts)
    if on_k8s:
        from components.partitions import PartitionJob, PartitionJobArgs

        PartitionJob(f"{name}-partitions", PartitionJobArgs(
            database_host=db.address, password=passwords["sofacover_app"],
            avoid_windows=(db_args.backup_window, db_args.maintenance_window),
            namespace=data_namespace), k8s_opts)
    export(dbArn=db.arn, dbIdentifier=db.identifier, dbAddress=db.address, dbPort=db.port,
           dbMasterUserSecretArn=db.master_user_secret_arn,
           cacheEndpoint=cache.endpoint_address,
           cacheReaderEndpoint=cache.reader_endpoint_address, pgbouncerHost=pgbouncer.host)
    return db, cache


def replica(cfg: StackConfig, network, primary: pulumi.StackReference,
            opts: pulumi.ResourceOptions) -> Any:
    """This region's cross-region read replica of the primary (or, promoted, a primary)."""
    from components.database import Database, DatabaseArgs

    assert cfg.database is not None and cfg.network is not None
    db = Database(f"sofacover-{cfg.stack}-database", DatabaseArgs.from_config(
        cfg.database, vpc_id=network.vpc_id, subnet_group_name=network.db_subnet_group_name,
        protect=True, promote=cfg.promote,
        replicate_source_db=None if cfg.promote else primary.require_output("dbArn"),
        allowed_cidrs=[cfg.network.cidr], tags=cfg.tags), opts)
    export(dbArn=db.arn, dbIdentifier=db.identifier, dbAddress=db.address,
           dbMasterUserSecretArn=db.master_user_secret_arn)
    return db


def monitoring(cfg: StackConfig, app: AppTier | None, db: Any, cache: Any,
               opts: pulumi.ResourceOptions) -> None:
    """Alarms, the alert topic and the dashboard for whatever this stack runs; on
    Kubernetes also the PrometheusRule. Thresholds: config/thresholds.py."""
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
                if cfg.role in ("all-in-one", "primary") else ())
    if db is not None and cfg.database is not None:
        key = "db_replica_ids" if cfg.role == "secondary" and not cfg.promote \
            else "db_instance_id"
        resources[key] = (db.identifier,) if key == "db_replica_ids" else db.identifier
        resources["db_allocated_storage_gb"] = cfg.database.allocated_storage_gb
    if cache is not None and cfg.cache is not None:
        resources.update(redis_replication_group_id=cache.arn.apply(arn_resource_id),
                         redis_node_count=cfg.cache.num_nodes)
    if cfg.pgbouncer is not None:
        resources["pool_budget"] = cfg.pgbouncer.max_server_connections
    alerts = Monitoring(f"sofacover-{cfg.stack}",
                        MonitoringArgs.from_config(cfg.alerts, **resources), opts)
    export(alertTopicArn=alerts.topic_arn, dashboardName=alerts.dashboard_name)


def edge(cfg: StackConfig) -> None:
    """The global edge: Cloudflare in front of every region that serves this phase."""
    from components.edge import Edge, EdgeArgs, Origin

    assert cfg.edge is not None
    # Primary first: DNS points at it and it is every region's last resort.
    origins = []
    for region in cfg.regions.serving:
        stack = cfg.edge.origins[region]
        ref = pulumi.StackReference(f"{stack}-ref", stack_name=qualified(stack))
        origins.append(Origin(region, ref.require_output("albDnsName")))
    site = Edge(f"sofacover-{cfg.stack}", EdgeArgs.from_config(cfg.edge, origins))
    export(zoneName=cfg.edge.zone_name, hostnames=site.hostnames,
           originRegions=[o.region for o in origins], loadBalancerPools=site.load_balancer_pools)


cfg = load_stack_config()
export(stack=cfg.stack, environment=cfg.environment, role=cfg.role, phase=cfg.phase)
if cfg.role == "edge":
    edge(cfg)
else:
    regional(cfg)
