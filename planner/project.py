"""Pulumi.yaml and Pulumi.<stack>.yaml, read the way the Pulumi CLI hands them to a program."""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from config import ConfigError, StackConfig, parse_stack_config
from config.loader import stack_file
from config.models import SUPERUSER_RESERVED_CONNECTIONS
from config.secrets import UNKNOWN_SECRET

# What the plan passes for a secret it cannot decrypt (it has no passphrase); the config
# skips its format checks for it.
SECRET_PLACEHOLDER = UNKNOWN_SECRET
# Top-level keys of a Pulumi.<stack>.yaml the Pulumi CLI knows (project stack settings).
STACK_FILE_KEYS = ("config", "secretsprovider", "encryptedkey", "encryptionsalt",
                   "environment")
ROLE_ORDER = {"all-in-one": 0, "primary": 0, "secondary": 1, "edge": 2}


class ProjectError(Exception):
    """A project or stack file that cannot be read; the message names the file."""


@dataclass(frozen=True)
class StackValues:
    """One stack's config as the engine passes it: flat keys, string scalars, JSON objects."""

    values: dict[str, str]
    secret_keys: frozenset[str]


class Project:
    """A Pulumi project directory."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        doc = _read_yaml(self.root / "Pulumi.yaml")
        if not isinstance(doc, dict) or "name" not in doc:
            raise ProjectError(f"{self.root / 'Pulumi.yaml'}: not a Pulumi project file")
        self.name: str = doc["name"]
        self.declared: dict[str, Any] = doc.get("config") or {}
        self.main = self.root / "__main__.py"

    def stacks(self) -> list[str]:
        return sorted(p.name[len("Pulumi."):-len(".yaml")]
                      for p in self.root.glob("Pulumi.*.yaml"))

    def stack_values(self, stack: str) -> StackValues:
        path = self.root / stack_file(stack)
        if not path.exists():
            raise ProjectError(f"no stack {stack!r}: {path.name} does not exist; stacks: "
                               + ", ".join(self.stacks()))
        doc = _read_yaml(path) or {}
        if not isinstance(doc, dict):
            raise ProjectError(f"{path.name}: must be a mapping with a `config:` key (the "
                               f"stack's settings); found a {type(doc).__name__}")
        unknown = sorted(str(k) for k in doc if k not in STACK_FILE_KEYS)
        if unknown:
            hint = difflib.get_close_matches(unknown[0], STACK_FILE_KEYS, n=1)
            raise ProjectError(
                f"{path.name}: top-level key {unknown[0]!r} is not a stack file key"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + "; valid: " + ", ".join(STACK_FILE_KEYS))
        config = doc.get("config") or {}
        if not isinstance(config, dict):
            raise ProjectError(f"{path.name}: `config` must be a mapping of keys to values")
        bad = [k for k in config if not isinstance(k, str)]
        if bad:
            raise ProjectError(f"{path.name}: config key {bad[0]!r} is not a string; keys "
                               "look like `sofacover:phase` or `aws:region`")
        values: dict[str, str] = {}
        secrets: set[str] = set()
        for key, value in config.items():
            full = key if ":" in key else f"{self.name}:{key}"
            if _has_secure(value):
                secrets.add(full)
                value = _mask_secure(value)
            values[full] = _as_engine_value(value)
        for key, decl in self.declared.items():
            full = key if ":" in key else f"{self.name}:{key}"
            if full in values or not isinstance(decl, dict):
                continue
            if "default" in decl:
                values[full] = _as_engine_value(decl["default"])
        return StackValues(values, frozenset(secrets))

    def phased_values(self, stack: str, phase: int | None = None) -> StackValues:
        """The stack's values, with `sofacover:phase` replaced when a phase is given."""
        sv = self.stack_values(stack)
        if phase is None:
            return sv
        return StackValues({**sv.values, f"{self.name}:phase": str(phase)}, sv.secret_keys)

    def stack_config(self, stack: str, phase: int | None = None) -> StackConfig:
        sv = self.phased_values(stack, phase)
        return parse_stack_config(stack, sv.values, sv.secret_keys)

    def rollout(self, environment: str, phase: int | None = None) -> list[StackConfig]:
        """The stacks of an environment in deployment order, each validated.

        Primary (or all-in-one) first, then the secondaries, then the edge. Raises
        ConfigError if any stack's config is invalid or if a stack references one that is
        missing or deployed after it.
        """
        configs, problems = [], []
        for stack in self.stacks():
            sv = self.stack_values(stack)
            if sv.values.get(f"{self.name}:environment") != environment:
                continue
            try:
                configs.append(self.stack_config(stack, phase))
            except ConfigError as exc:
                problems.extend(exc.problems)
        if problems:
            raise ConfigError(problems)
        if not configs:
            envs = sorted({self.stack_values(s).values.get(f"{self.name}:environment", "?")
                           for s in self.stacks()})
            raise ProjectError(f"no stack has sofacover:environment {environment!r}; "
                               f"environments: {', '.join(envs)}")
        configs.sort(key=lambda c: (ROLE_ORDER[c.role], c.stack))
        order = [c.stack for c in configs]
        for cfg in configs:
            for ref, key in references(cfg):
                if ref not in order:
                    problems.append(f"{stack_file(cfg.stack)}: {key} names {ref!r}, which is "
                                    f"not a {environment} stack; stacks: {', '.join(order)}")
                elif order.index(ref) >= order.index(cfg.stack):
                    problem = _back_reference(cfg, ref, key, configs)
                    if problem:
                        problems.append(problem)
        problems += _across_stacks(configs)
        if problems:
            raise ConfigError(problems)
        return configs


def _across_stacks(configs: list[StackConfig]) -> list[str]:
    """Rules no single stack file can break alone: one regional stack per region, VPCs that
    do not overlap (they are peered or routed between later), and edge origins that name a
    stack of the region they serve."""
    problems: list[str] = []
    regional = [c for c in configs if c.role != "edge" and c.region is not None]
    by_region: dict[str, str] = {}
    for cfg in regional:
        if cfg.region in by_region:
            problems.append(f"{stack_file(cfg.stack)}: aws:region is {cfg.region}, the region "
                            f"of stack {by_region[cfg.region]} too; one regional stack per "
                            "region and environment")
        by_region.setdefault(str(cfg.region), cfg.stack)
    networks = [(c, ipaddress.IPv4Network(c.network.cidr)) for c in regional
                if c.network is not None]
    for i, (cfg, net) in enumerate(networks):
        for other, other_net in networks[:i]:
            if net.overlaps(other_net):
                problems.append(f"{stack_file(cfg.stack)}: sofacover:network.cidr {net} "
                                f"overlaps {other.stack}'s {other_net}; the environment's "
                                "VPCs are joined later, so their ranges must not overlap")
    problems += _write_budgets(configs)
    regions = {c.stack: c.region for c in regional}
    for cfg in configs:
        if cfg.role != "edge" or cfg.edge is None:
            continue
        for region, stack in cfg.edge.origins.items():
            if stack in regions and regions[stack] != region:
                problems.append(f"{stack_file(cfg.stack)}: sofacover:edge.origins.{region} "
                                f"names {stack}, whose aws:region is {regions[stack]}")
    problems += _replicas_follow_primary(configs)
    return problems


# A read replica runs its source's major version: RDS upgrades replicas with their source
# and cannot create one on another major ("Working with read replicas for Amazon RDS for
# PostgreSQL", docs.aws.amazon.com/AmazonRDS/latest/UserGuide/
# USER_PostgreSQL.Replication.ReadReplicas.html). AWS recommends the replica's class and
# storage be the same as the source's ("Working with DB instance read replicas",
# USER_ReadRepl.html): a smaller one lags under the primary's writes, and it is this
# project's DR target (promote), which must carry the primary's load and data.
REPLICA_SOURCE = "docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_ReadRepl.html"


def _replicas_follow_primary(configs: list[StackConfig]) -> list[str]:
    """Each secondary as its primary's stack declares it: the region the primary is in, and
    (where it holds a replica) the primary's engine major, class and storage."""
    problems: list[str] = []
    by_stack = {c.stack: c for c in configs}
    for cfg in configs:
        primary = by_stack.get(cfg.primary.stack) if cfg.primary is not None else None
        if cfg.primary is None or primary is None:
            continue  # a missing primary is reported by rollout()
        where = stack_file(cfg.stack)
        if primary.region != cfg.primary.region:
            problems.append(f"{where}: sofacover:primary.region is {cfg.primary.region} but "
                            f"stack {primary.stack}'s aws:region is {primary.region}; correct "
                            "sofacover:primary.region (the replica is created from there)")
        ours, theirs = cfg.database, primary.database
        if not cfg.hosts_replica or ours is None or theirs is None:
            continue
        major, source_major = (d.engine_version.split(".")[0] for d in (ours, theirs))
        if major != source_major:
            problems.append(f"{where}: sofacover:database.engineVersion is "
                            f"{ours.engine_version} but the primary {primary.stack} runs "
                            f"{theirs.engine_version}; a read replica runs its source's "
                            f"major version ({source_major})")
        if ours.instance_class != theirs.instance_class:
            problems.append(f"{where}: sofacover:database.instanceClass is "
                            f"{ours.instance_class} but the primary {primary.stack}'s is "
                            f"{theirs.instance_class}; the replica must keep up with its "
                            "writes and, promoted, carry its load: use the same class "
                            f"({REPLICA_SOURCE})")
        if ours.allocated_storage_gb < theirs.allocated_storage_gb:
            problems.append(f"{where}: sofacover:database.allocatedStorageGb is "
                            f"{ours.allocated_storage_gb} but the primary {primary.stack}'s "
                            f"is {theirs.allocated_storage_gb}; a replica holds all of its "
                            f"source's data: give it at least as much ({REPLICA_SOURCE})")
    return problems


def _surge(cfg: StackConfig) -> int:
    """Server connections a rolling update adds for a moment: one surge pod's pool on
    Kubernetes (maxSurge 1, components/pgbouncer.py); none for the instances' sidecars,
    whose budget is already divided by the group's maximum size."""
    assert cfg.pgbouncer is not None
    if cfg.compute is not None and cfg.compute.platform == "kubernetes":
        return cfg.pgbouncer.max_server_connections // cfg.pgbouncer.replicas
    return 0


def _write_budgets(configs: list[StackConfig]) -> list[str]:
    """The primary's max_connections is shared: its own PgBouncer and the write pool of
    every serving secondary (across the peering) draw on it, and one stack at a time may be
    in a rolling update. And a replica's max_connections must be at least its primary's:
    a hot standby refuses to run below it (PostgreSQL 16 docs, "Hot Standby",
    https://www.postgresql.org/docs/16/hot-standby.html#HOT-STANDBY-ADMIN)."""
    problems: list[str] = []
    for primary in configs:
        if primary.role not in ("primary", "all-in-one") or primary.database is None \
                or primary.pgbouncer is None:
            continue
        followers = [c for c in configs if c.role == "secondary" and c.primary is not None
                     and c.primary.stack == primary.stack]
        limit = primary.database.max_connections
        writers = [primary, *[c for c in followers if c.hosts_app and not c.promote
                              and c.pgbouncer is not None]]
        steady = sum(c.pgbouncer.max_server_connections for c in writers if c.pgbouncer)
        surge = max(_surge(c) for c in writers)
        usable = limit - SUPERUSER_RESERVED_CONNECTIONS
        if steady + surge > usable:
            shares = ", ".join(f"{c.stack} {c.pgbouncer.max_server_connections}"
                               for c in writers if c.pgbouncer)
            problems.append(
                f"{stack_file(primary.stack)}: sofacover:database.maxConnections is {limit}, "
                f"but the write pools of the environment ({shares}) add up to {steady}, "
                f"{steady + surge} during a rolling update, and {limit} minus "
                f"{SUPERUSER_RESERVED_CONNECTIONS} reserved slots leaves {usable}; raise it "
                "(on the replicas first) or lower a pool's pgbouncer.maxServerConnections")
        for cfg in followers:
            if cfg.hosts_replica and cfg.database is not None and \
                    cfg.database.max_connections < limit:
                problems.append(
                    f"{stack_file(cfg.stack)}: sofacover:database.maxConnections is "
                    f"{cfg.database.max_connections} but the primary {primary.stack}'s is "
                    f"{limit}; a read replica needs at least its primary's max_connections "
                    "or PostgreSQL stops replaying; raise it to >= "
                    f"{limit}")
    return problems


def _back_reference(cfg: StackConfig, ref: str, key: str,
                    configs: list[StackConfig]) -> str | None:
    """Why `cfg` may not read `ref`, deployed after it; None for the one exception: during
    failback the primary reads its promoted secondary (sofacover:database.replicateFrom),
    which is deployed already, so its outputs exist (docs/runbook-dr.md, F1)."""
    target = next(c for c in configs if c.stack == ref)
    if key == "sofacover:database.replicateFrom":
        if target.role == "secondary" and target.promote and target.primary is not None \
                and target.primary.stack == cfg.stack:
            return None
        return (f"{stack_file(cfg.stack)}: {key} names {ref!r}, which is deployed after "
                f"{cfg.stack}; the primary may read it only during failback, while it is a "
                f"secondary of {cfg.stack} with sofacover:promote true (docs/runbook-dr.md)")
    return (f"{stack_file(cfg.stack)}: {key} names {ref!r}, which is deployed after "
            f"{cfg.stack}; a stack may only read stacks deployed before it")


def back_references(configs: list[StackConfig]) -> dict[str, list[str]]:
    """stack -> the stacks deployed after it that it reads (only the failback source)."""
    order = [c.stack for c in configs]
    return {c.stack: back for c in configs if (back := [
        ref for ref, _ in references(c)
        if ref in order and order.index(ref) > order.index(c.stack)])}


def references(cfg: StackConfig) -> list[tuple[str, str]]:
    """(stack, config key) for every stack this stack reads through a StackReference."""
    out = []
    if cfg.primary is not None:
        out.append((cfg.primary.stack, "sofacover:primary.stack"))
    if cfg.database is not None and cfg.database.replicate_from is not None:
        out.append((cfg.database.replicate_from, "sofacover:database.replicateFrom"))
    if cfg.edge is not None:
        out += [(s, "sofacover:edge.origins") for s in cfg.edge.origins.values()]
    return out


# libyaml's parser when PyYAML was built with it (the wheels are): a plan reads the project
# and stack files again for every stack, about a thousand reads in a test run, and the
# pure-Python parser took about 3 s of it (3.2 ms a read). The resolver below is Python
# either way.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Yaml12Loader(_SafeLoader):  # type: ignore[misc, valid-type]
    """YAML as the Pulumi CLI reads stack files (YAML 1.2, Go's yaml.v3): only true and
    false are booleans; `yes`, `no`, `on`, `off` stay text, as they reach the program."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _first in "tTfF":
    _Yaml12Loader.yaml_implicit_resolvers.setdefault(_first, []).insert(0, (
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")))


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_bytes().decode("utf-8"), Loader=_Yaml12Loader)
    except FileNotFoundError:
        raise ProjectError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise ProjectError(f"{path.name}: not UTF-8 text (byte {exc.start}); save it as "
                           "UTF-8") from None
    except yaml.YAMLError as exc:
        raise ProjectError(f"{path.name}: not valid YAML: {exc}") from None


def _has_secure(value: Any) -> bool:
    if isinstance(value, dict):
        return set(value) == {"secure"} or any(_has_secure(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_secure(v) for v in value)
    return False


def _mask_secure(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return SECRET_PLACEHOLDER
        return {k: _mask_secure(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_secure(v) for v in value]
    return value


def _as_engine_value(value: Any) -> str:
    # The engine hands a program every top-level value as a string: objects as JSON,
    # booleans as true/false.
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
