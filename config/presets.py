"""Phase presets and environment overlays, written as a stack file would write them.

A stack's effective config is, key by key: the phase preset, then the environment overlay,
then region defaults, then the stack file itself (which wins). Every number here comes from
the seed plan (config/seed.py) unless a comment says it is this project's choice.
"""

from __future__ import annotations

from typing import Any

from config import seed
from config.regions import DEFAULT_VPC_CIDR, DEV_VPC_CIDR, FALLBACK_VPC_CIDR

_HPA = {
    "minReplicas": seed.HPA_MIN,
    "maxReplicas": seed.HPA_MAX,
    "cpuUtilization": seed.HPA_CPU_PERCENT,
    "memoryUtilization": seed.HPA_MEMORY_PERCENT,
    "scaleUp": {
        # Project choice, not the seed's 60 s: a scale-up window only delays reacting to a
        # spike (Kubernetes' own default is 0 s); with it the 2-minute KPI is out of reach.
        "stabilizationWindowSeconds": 0,
        "percent": seed.HPA_UP_PERCENT,
        # Not in the seed: Kubernetes' own default, so a small deployment can still add
        # 4 pods a period when 100% of it is only one or two.
        "pods": 4,
        "periodSeconds": seed.HPA_UP_PERIOD_S,
    },
    "scaleDown": {
        "stabilizationWindowSeconds": seed.HPA_DOWN_WINDOW_S,
        "percent": seed.HPA_DOWN_PERCENT,
        # Not in the seed: one pod a period, so -10% of a small deployment still moves.
        "pods": 1,
        "periodSeconds": seed.HPA_DOWN_PERIOD_S,
    },
}

# The placeholder every service runs until the app's registry exists (set per stack). It
# must run as the pods are configured: nginx-unprivileged runs as any non-root UID, keeps
# its pid and temp files in /tmp (an emptyDir: the root filesystem is read-only) and listens
# on 8080; components/workloads.py mounts a server block that answers the health path.
PLACEHOLDER_IMAGE = "public.ecr.aws/nginx/nginx-unprivileged:1.28-alpine"  # stable branch

# The seed's move to focused services. Paths are ALB path patterns; the storefront takes the
# rest.
_SERVICES = [
    {"name": "catalog", "image": PLACEHOLDER_IMAGE, "path": "/api/catalog*", "nodePort": 30081},
    {"name": "cart", "image": PLACEHOLDER_IMAGE, "path": "/api/cart*", "nodePort": 30082},
    {"name": "checkout", "image": PLACEHOLDER_IMAGE, "path": "/api/checkout*",
     "nodePort": 30083},
    {"name": "storefront", "image": PLACEHOLDER_IMAGE, "path": "/*", "nodePort": 30080},
]

_DATABASE = {
    # The major only: RDS applies minor upgrades itself (autoMinorVersionUpgrade), and a
    # pinned minor ages into one AWS no longer creates (16.6 since 2026-05-01: an AWS Health
    # notice, quoted publicly).
    "engineVersion": "16",
    # 8 vCPU / 32 GiB: the seed's month-1 vertical step.
    "instanceClass": "db.m6i.2xlarge",
    "allocatedStorageGb": seed.DB_STORAGE_GB,
    # Project choice: autoscaling ceiling at twice the allocation.
    "maxAllocatedStorageGb": 2 * seed.DB_STORAGE_GB,
    "storageType": "gp3",
    # gp3 at >= 400 GiB has a 12,000 IOPS baseline on RDS, above the seed's 10,000.
    "iops": 12_000,
    "multiAz": True,
    "backupRetentionDays": seed.BACKUP_RETENTION_DAYS,
    # Explicit, so the pool budget can be checked against it (RDS's formula gives ~3,450
    # on 32 GiB); project choice: the primary's PgBouncer (100, 150 during its rolling
    # update) plus the three secondaries' write pools (3 x 40) fit with room to spare
    # (planner/project.py adds them up), and admin and replication slots besides. The
    # same in every phase and region: a hot standby refuses to run with a lower
    # max_connections than its primary (PostgreSQL, "Hot Standby", Administrator's
    # Overview), and raising it on the primary first would stop the replicas.
    "maxConnections": 300,
}

_CACHE = {"nodeType": "cache.r6g.large", "numNodes": seed.REDIS_NODES, "clusterMode": False,
          "automaticFailover": True}

_PGBOUNCER = {
    "poolMode": "transaction",
    "replicas": 2,
    "maxServerConnections": seed.PGBOUNCER_MAX_SERVER_CONNECTIONS,
    # Sized for the one-year peak with 25% headroom.
    "maxClientConnections": seed.ONE_YEAR.peak_concurrent_users * 5 // 4,
}

# Phase 1 horizontal scaling; phase 2 performance; phase 3 global expansion.
PHASES: dict[int, dict[str, Any]] = {
    1: {
        "regions": {"serving": [seed.PRIMARY_REGION],
                    "readReplicas": list(seed.READ_REPLICA_REGIONS)},
        "compute": {"platform": "ec2", "instanceType": "m5.large", "minSize": seed.ASG_MIN,
                    "maxSize": seed.ASG_MAX, "desiredCapacity": seed.ASG_MIN,
                    # Project choice: stopped instances, already bootstrapped, for every
                    # slot up to maxSize (only their volumes are paid); they start in
                    # seconds where a cold launch takes minutes. So no spot on this group:
                    # warm pools take no mixed instances policy (AWS warm pool limits).
                    "warmPool": {"enabled": True}},
        "kubernetes": {"hpa": _HPA, "services": _SERVICES},
        "database": _DATABASE,
        "cache": _CACHE,
        "pgbouncer": _PGBOUNCER,
        "edge": {"imageOptimization": False, "tieredCache": False, "regionalTieredCache": False,
                 "apiEdgeCache": False, "geoLoadBalancing": False},
    },
    2: {
        # Project choice: pods on EKS from phase 2, where the plan's HPA takes over. The node
        # group must hold every service at its HPA maximum (4 x 20 x 250m = 20 vCPU) plus
        # PgBouncer, Prometheus and the per-node system pods and reservations: 8 x m5.large
        # offer about 14 vCPU after those, 8 x m5.xlarge about 30 (the preflight's
        # k8s-capacity-at-max counts it), headroom for a rollout's surge pods included.
        # No warm pool for EKS nodes (config/models.py warm_pool_problem): the spare
        # capacity there is the autoscaler's placeholder pods (components/autoscaler.py).
        "compute": {"platform": "kubernetes", "instanceType": "m5.xlarge",
                    "warmPool": {"enabled": False}},
        # "auto": on where the zone's plan has it (Polish and WebP: Pro and up).
        "edge": {"imageOptimization": "auto", "tieredCache": True, "apiEdgeCache": True},
    },
    3: {
        # Every region serves; ap-southeast-1 gets a replica too (project choice: its reads
        # would otherwise cross the Pacific and miss the < 1 s target).
        "regions": {"serving": [seed.PRIMARY_REGION, *seed.SECONDARY_REGIONS],
                    "readReplicas": list(seed.SECONDARY_REGIONS)},
        # Geo load balancing needs the loadBalancing add-on (refused without it); Regional
        # Tiered Cache is Enterprise-only, so "auto" leaves it off on lower plans.
        "edge": {"geoLoadBalancing": True, "regionalTieredCache": "auto"},
    },
}

# dev: one small copy of everything, single NAT, no Multi-AZ.
ENVIRONMENTS: dict[str, dict[str, Any]] = {
    "dev": {
        "network": {"natGateways": "single", "flowLogs": {"retentionDays": 14}},
        # maxSize 4: on EKS (phases 2-3) the services at their HPA maximum, PgBouncer,
        # Prometheus and the system pods need about 5.3 vCPU and 9.2 GiB; 4 x t3.medium
        # offer 7 vCPU and 13.8 GiB after each node's reservations (k8s-capacity-at-max).
        "compute": {"instanceType": "t3.medium", "minSize": 1, "maxSize": 4,
                    "desiredCapacity": 1, "domainName": "dev.sofacoverpro.com",
                    "accessLogDays": 14},
        "kubernetes": {"hpa": {"minReplicas": 1, "maxReplicas": 3}},
        "database": {"instanceClass": "db.t4g.medium", "allocatedStorageGb": 50,
                     "maxAllocatedStorageGb": 100, "iops": 3_000, "multiAz": False,
                     "backupRetentionDays": 7, "maxConnections": 100},
        "cache": {"nodeType": "cache.t4g.medium", "numNodes": 2},
        # Two pods, not one: from phase 2 dev runs on Kubernetes, where one pod would drop
        # the pool on every drain (on ec2, phase 1, each instance runs its own sidecar).
        "pgbouncer": {"replicas": 2, "maxServerConnections": 40, "maxClientConnections": 200},
    },
    "prod": {
        "network": {"natGateways": "perAz", "flowLogs": {"retentionDays": 365}},
        # The seed's "backups daily, 30 days", plus a copy in a replica region.
        "database": {"backupReplicationRegion": seed.READ_REPLICA_REGIONS[0]},
        # The edge fronts prod: the ALB admits only Cloudflare's ranges.
        "compute": {"originAccess": "cloudflare", "accessLogDays": 365},
        # Cloudflare Business ($200/month, cloudflare.com/plans; the seed's budget names Pro or
        # Business): pages cached at the edge for 2 minutes need an Edge Cache TTL under
        # Pro's 1-hour minimum. Add-ons are purchases: each stack file lists its own.
        "edge": {"plan": "business"},
    },
}

# Which concerns each role's stacks carry.
CONCERNS_BY_ROLE: dict[str, tuple[str, ...]] = {
    "all-in-one": ("regions", "network", "compute", "kubernetes", "database", "cache",
                   "pgbouncer"),
    "primary": ("regions", "network", "compute", "kubernetes", "database", "cache",
                "pgbouncer"),
    # A secondary's replica takes the primary's database settings (class, storage, engine);
    # a serving secondary runs its own Redis and PgBouncer (read and write pools).
    "secondary": ("regions", "network", "compute", "kubernetes", "database", "cache",
                  "pgbouncer"),
    "edge": ("regions",),
}


# What a role changes on top of the environment. A secondary's PgBouncer has two pools:
# writes across the peering to the primary (maxServerConnections, its share of the
# primary's max_connections: project choice, 2 pods x 20) and reads to the region's own
# replica (the seed's 100).
SECONDARY_WRITE_POOL = 40
ROLES: dict[str, dict[str, Any]] = {
    "secondary": {"pgbouncer": {
        "maxServerConnections": SECONDARY_WRITE_POOL,
        "replicaServerConnections": seed.PGBOUNCER_MAX_SERVER_CONNECTIONS}},
}


REMOVE = "remove"
"""In a list of named entries, `{name: x, remove: true}` drops the preset's entry x."""


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `override` into a copy of `base`: maps key by key; lists of named maps
    (services) by name, so a stack file that adds a service keeps the preset's ones;
    anything else replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        elif _named(value) and _named(out.get(key)):
            out[key] = merge_named(out[key], value)
        else:
            out[key] = value
    return out


def _named(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(v, dict) and isinstance(v.get("name"), str) for v in value)


def merge_named(base: list[dict[str, Any]], override: list[dict[str, Any]]
                ) -> list[dict[str, Any]]:
    """Entries merged by name, in the preset's order then the new ones'; an entry with
    `remove: true` takes its name out."""
    by_name = {entry["name"]: dict(entry) for entry in base}
    twice: list[dict[str, Any]] = []
    seen: set[str] = set()
    for entry in override:
        name = entry["name"]
        if name in seen:  # the same name twice in one file: keep both, the model refuses it
            twice.append(dict(entry))
        elif entry.get(REMOVE) is True:
            by_name.pop(name, None)
        else:
            kept = {k: v for k, v in entry.items() if not (k == REMOVE and v is False)}
            by_name[name] = merge(by_name.get(name, {}), kept)
        seen.add(name)
    return [*by_name.values(), *twice]


def defaults_for(phase: int, environment: str, role: str, region: str | None,
                 has_edge: bool) -> dict[str, Any]:
    """The layered defaults a stack file overrides, for the concerns its role carries."""
    layered: dict[str, Any] = {}
    for p in range(1, phase + 1):
        layered = merge(layered, PHASES[p])
    layered = merge(layered, ENVIRONMENTS.get(environment, {}))
    layered = merge(layered, ROLES.get(role, {}))
    if environment == "dev":
        cidr = DEV_VPC_CIDR
    else:
        cidr = DEFAULT_VPC_CIDR.get(region or "", FALLBACK_VPC_CIDR)
    layered = merge(layered, {"network": {"cidr": cidr}})
    keep = set(CONCERNS_BY_ROLE.get(role, ())) | ({"edge"} if has_edge else set())
    return {k: v for k, v in layered.items() if k in keep}
