"""The connection budget across an environment: every PgBouncer pool, as planned, against
the max_connections of the database it points at, less PostgreSQL's reserved slots.

Read from the plan, not the config: the rendered pgbouncer.ini (a ConfigMap on Kubernetes,
an SSM parameter for the instances' sidecars), how many PgBouncer processes run it at most
(the Deployment's replicas, or the Auto Scaling group's maxSize, plus the surge of a rolling
update), and the RDS parameter groups' max_connections. Stacks deploy one at a time in
rollout order, so a database must hold every pool at once plus the largest single surge.
The rule itself is config.models.pool_budget_problem, the one the config check and
components/pgbouncer.py apply: written once.
"""

from __future__ import annotations

import configparser
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from config.models import SUPERUSER_RESERVED_CONNECTIONS, pool_budget_problem

if TYPE_CHECKING:
    from planner.engine import PlannedResource, StackPlan


@dataclass(frozen=True)
class Pool:
    stack: str
    name: str
    """The [databases] entry (`sofacover`, `sofacover_ro`)."""
    host: str
    per_instance: int
    instances: int
    """PgBouncer processes that run this config in steady state."""
    runs_on: str
    surge: int = 0
    """Extra processes while its Deployment rolls (maxSurge)."""

    @property
    def server_connections(self) -> int:
        return self.per_instance * self.instances

    @property
    def surge_connections(self) -> int:
        return self.per_instance * self.surge


@dataclass
class DatabaseBudget:
    stack: str
    resource: str
    host: str
    max_connections: int | None
    """None: not set in the parameter group (RDS's default formula applies)."""
    pools: list[Pool] = field(default_factory=list)

    @property
    def steady(self) -> int:
        return sum(p.server_connections for p in self.pools)

    @property
    def used(self) -> int:
        """Every pool at once, plus the largest one rolling (one stack deploys at a time)."""
        return self.steady + max((p.surge_connections for p in self.pools), default=0)

    @property
    def usable(self) -> int | None:
        return None if self.max_connections is None else \
            self.max_connections - SUPERUSER_RESERVED_CONNECTIONS

    @property
    def problem(self) -> str | None:
        if self.max_connections is None or not self.pools:
            return None
        return pool_budget_problem(self.used, self.max_connections)


@dataclass
class ConnectionBudget:
    databases: list[DatabaseBudget]
    unmatched: list[Pool]
    """Pools whose host is no database of these plans (not checked here)."""

    @property
    def ok(self) -> bool:
        """Every database of the report holds its pools. Pools pointing outside the report
        (one stack's write pool to another stack's primary) are listed, not judged."""
        return all(d.problem is None for d in self.databases)


def _res(plan: StackPlan, type_: str) -> list[PlannedResource]:
    return [r for r in plan.resources if r.type == type_ and not r.read]


def parse_ini(text: str) -> dict[str, dict[str, str]]:
    """The [databases] section of a pgbouncer.ini: entry -> its key=value settings."""
    parser = configparser.ConfigParser(interpolation=None, strict=False,
                                       comment_prefixes=(";", "#"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    if not parser.has_section("databases"):
        return {}
    return {name: dict(kv.split("=", 1) for kv in value.split() if "=" in kv)
            for name, value in parser.items("databases")}


def _ini_sources(plan: StackPlan) -> list[tuple[str, str, int, int]]:
    """(rendered ini, where it runs, instances, surge) for every PgBouncer of the stack."""
    out = []
    for cm in _res(plan, "kubernetes:core/v1:ConfigMap"):
        text = (cm.inputs.get("data") or {}).get("pgbouncer.ini")
        if not text:
            continue
        meta = cm.inputs.get("metadata") or {}
        replicas, surge = 1, 0
        for dep in _res(plan, "kubernetes:apps/v1:Deployment"):
            dmeta = dep.inputs.get("metadata") or {}
            if dmeta.get("namespace") == meta.get("namespace") and \
                    (dmeta.get("labels") or {}).get("app.kubernetes.io/name") == "pgbouncer":
                spec = dep.inputs.get("spec") or {}
                replicas = int(spec.get("replicas") or 1)
                rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
                surge = _surge(rolling.get("maxSurge", "25%"), replicas)
        out.append((text, f"{replicas} pods, +{surge} while rolling", replicas, surge))
    for param in _res(plan, "aws:ssm/parameter:Parameter"):
        text = param.inputs.get("insecureValue") or param.inputs.get("value")
        if not isinstance(text, str) or "[databases]" not in text:
            continue
        groups = _res(plan, "aws:autoscaling/group:Group")
        size = int(groups[0].inputs.get("maxSize") or 1) if groups else 1
        out.append((text, f"a sidecar on each of up to {size} instances", size, 0))
    return out


def _surge(value: object, replicas: int) -> int:
    # Deployment maxSurge: an int, or a percent of replicas rounded up (kubernetes.io
    # "Deployments", Max Surge).
    text = str(value)
    if text.endswith("%"):
        return -(-replicas * int(text[:-1]) // 100)
    return int(text)


def _max_connections(plan: StackPlan, db: PlannedResource) -> int | None:
    groups = _res(plan, "aws:rds/parameterGroup:ParameterGroup")
    wanted = db.inputs.get("parameterGroupName")
    for pg in groups:
        names = {pg.outputs.get("name"), pg.outputs.get("id"), pg.inputs.get("name")}
        if wanted in names or len(groups) == 1:
            for p in pg.inputs.get("parameters") or ():
                if p.get("name") == "max_connections":
                    return int(p["value"])
    return None


def connection_budget(plans: Sequence[StackPlan]) -> ConnectionBudget:
    databases: dict[str, DatabaseBudget] = {}
    for plan in plans:
        for db in _res(plan, "aws:rds/instance:Instance"):
            host = db.outputs.get("address") or ""
            databases[host] = DatabaseBudget(plan.stack, f"{db.type.split(':')[-1]} {db.name}",
                                             host, _max_connections(plan, db))
    unmatched: list[Pool] = []
    for plan in plans:
        for text, runs_on, instances, surge in _ini_sources(plan):
            for name, kv in parse_ini(text).items():
                size = int(kv.get("max_db_connections") or kv.get("pool_size") or 0)
                pool = Pool(plan.stack, name, kv.get("host", ""), size, instances, runs_on,
                            surge)
                target = databases.get(pool.host)
                (target.pools if target else unmatched).append(pool)
    return ConnectionBudget(list(databases.values()), unmatched)
