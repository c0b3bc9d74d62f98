"""PgBouncer in front of RDS: the rendered config, and the Kubernetes deployment that runs it.

`render_pgbouncer_ini()` and `render_userlist()` are pure functions of typed inputs, so the
same text is tested against a real PgBouncer and PostgreSQL (tests/test_pgbouncer.py), runs
on Kubernetes (ConfigMap + Secret) and, without Kubernetes, goes into the instances' user
data (the `ini` output).

The server-connection budget (the seed's 100) is divided across the PgBouncer instances:
each gets `default_pool_size = max_db_connections = budget // instances`, and the total must
fit the database's max_connections minus PostgreSQL's reserved superuser slots (the rule of
config.models.pool_budget_problem, applied here too, not rewritten).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import stringprep
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import pulumi
import pulumi_kubernetes as k8s

from components.database import RDS_CA_IDENTIFIER
from config import seed
from config.models import DatabaseConfig, PgBouncerConfig, pool_budget_problem
from config.thresholds import PGBOUNCER_IDLE_TRANSACTION_TIMEOUT_S

PORT = 6432
EXPORTER_PORT = 9127
PGBOUNCER_IMAGE = "ghcr.io/cloudnative-pg/pgbouncer:1.24.1"
EXPORTER_IMAGE = "prometheuscommunity/pgbouncer-exporter:v0.10.2"
# The RDS root certificates PgBouncer verifies the servers against (server_tls_sslmode
# verify-full), shipped with the config rather than downloaded at boot: a pod or an
# instance starts without reaching the internet, and what it trusts is reviewed in the
# repository. components/data/rds-ca-bundle.pem holds the unexpired roots of AWS's global
# bundle (its README: source URL, fetch date, checksum); each PgBouncer gets the roots of
# the CA its databases use (database.RDS_CA_IDENTIFIER) in the regions it connects to.
RDS_CA_DIR = "/etc/pgbouncer/ca"
RDS_CA_FILE = f"{RDS_CA_DIR}/rds-ca.pem"
RDS_CA_BUNDLE = Path(__file__).parent / "data" / "rds-ca-bundle.pem"
# ca_cert_identifier -> the root's common-name suffix (RDS user guide, "Using SSL/TLS to
# encrypt a connection to a DB instance", certificate authorities table).
RDS_CA_ROOTS = {"rds-ca-rsa2048-g1": "RSA2048 G1", "rds-ca-rsa4096-g1": "RSA4096 G1",
                "rds-ca-ecc384-g1": "ECC384 G1"}
# SCRAM-SHA-256 iterations of the stored secrets: PostgreSQL's default
# (scram_iterations, PostgreSQL 16 docs), so a role set from the same secret matches.
SCRAM_ITERATIONS = 4096
SCRAM_SALT_BYTES = 16
# PgBouncer learned max_prepared_statements (protocol-level prepared statements in
# transaction pooling) in 1.21; older versions refuse to start on the unknown key.
PREPARED_STATEMENTS_SINCE = (1, 21)

PoolMode = Literal["transaction", "session", "statement"]
SslMode = Literal["verify-full", "verify-ca", "require", "prefer", "disable"]


class PoolBudgetError(ValueError):
    """The server-connection budget does not fit the instances or the database."""


@dataclass(frozen=True)
class PoolBudget:
    """How the server-connection budget is split across PgBouncer instances."""

    total: int
    """max_server_connections: what all instances together may open to the primary."""
    instances: int
    per_instance: int
    """default_pool_size and max_db_connections of each instance."""


def pool_budget(max_server_connections: int, instances: int,
                database_max_connections: int) -> PoolBudget:
    """Divide the budget across instances; refuse one that does not fit, naming the numbers."""
    if instances < 1:
        raise PoolBudgetError(f"pgbouncer.replicas is {instances}; it must be >= 1")
    per_instance = max_server_connections // instances
    if per_instance < 1:
        raise PoolBudgetError(
            f"pgbouncer.maxServerConnections is {max_server_connections} across {instances} "
            f"instances: {max_server_connections} // {instances} = {per_instance} server "
            "connections each; raise maxServerConnections or lower replicas")
    problem = pool_budget_problem(per_instance * instances, database_max_connections)
    if problem:
        raise PoolBudgetError(
            f"pgbouncer.maxServerConnections ({per_instance} x {instances} instances) "
            + problem)
    return PoolBudget(max_server_connections, instances, per_instance)


@dataclass(frozen=True)
class PgBouncerIni:
    """Typed inputs of `render_pgbouncer_ini`."""

    database_host: str
    """The primary's address (read-write)."""
    database_max_connections: int
    """PostgreSQL max_connections of the primary; the budget must fit under it."""
    max_server_connections: int = seed.PGBOUNCER_MAX_SERVER_CONNECTIONS
    instances: int = 2
    """PgBouncer replicas (pods, or instances without Kubernetes) sharing the budget."""
    max_client_connections: int = seed.ONE_YEAR.peak_concurrent_users * 5 // 4
    """Per instance: each must be able to take every client when its peers are gone."""
    database_port: int = 5432
    database_name: str = "sofacover"
    replica_host: str | None = None
    """This region's read replica: adds a `<database_name>_ro` entry pointed at it."""
    replica_port: int = 5432
    replica_server_connections: int | None = None
    """The read pool's budget (all instances together) on the replica, which has its own
    max_connections (at least the primary's); None: the same as max_server_connections."""
    pool_mode: PoolMode = "transaction"
    server_tls_sslmode: SslMode = "verify-full"
    server_tls_ca_file: str = RDS_CA_FILE
    max_prepared_statements: int = 200
    idle_transaction_timeout_s: int = PGBOUNCER_IDLE_TRANSACTION_TIMEOUT_S
    """A client idle inside a transaction this long is disconnected (config/thresholds.py)."""
    pgbouncer_version: tuple[int, int] = (1, 24)
    """Of the binary that will read the file (the image's, by default)."""
    admin_users: tuple[str, ...] = ("pgbouncer_admin",)
    stats_users: tuple[str, ...] = ("pgbouncer_stats",)
    auth_type: Literal["scram-sha-256", "md5", "plain", "trust"] = "scram-sha-256"
    auth_file: str = "/etc/pgbouncer/auth/userlist.txt"
    listen_addr: str = "0.0.0.0"
    listen_port: int = PORT
    unix_socket_dir: str = ""
    """Empty: no unix socket (a read-only root filesystem in the pod)."""
    logfile: str = ""
    """Empty: log to stderr (the container's log)."""
    pidfile: str = ""

    @property
    def budget(self) -> PoolBudget:
        return pool_budget(self.max_server_connections, self.instances,
                           self.database_max_connections)


def _db_line(name: str, host: str, port: int, dbname: str, pool_size: int) -> str:
    return (f"{name} = host={host} port={port} dbname={dbname} pool_size={pool_size} "
            f"max_db_connections={pool_size}")


def render_pgbouncer_ini(cfg: PgBouncerIni) -> str:
    """pgbouncer.ini for one instance. Raises PoolBudgetError when the budget does not fit."""
    budget = cfg.budget
    dbs = [_db_line(cfg.database_name, cfg.database_host, cfg.database_port,
                    cfg.database_name, budget.per_instance)]
    if cfg.replica_host:
        # The replica has its own max_connections (at least the primary's), so the read
        # pool is budgeted against it on its own.
        reads = pool_budget(cfg.replica_server_connections or cfg.max_server_connections,
                            cfg.instances, cfg.database_max_connections)
        dbs.append(_db_line(f"{cfg.database_name}_ro", cfg.replica_host, cfg.replica_port,
                            cfg.database_name, reads.per_instance))
    settings: list[tuple[str, object]] = [
        ("listen_addr", cfg.listen_addr),
        ("listen_port", cfg.listen_port),
        ("unix_socket_dir", cfg.unix_socket_dir),
        ("auth_type", cfg.auth_type),
        ("auth_file", cfg.auth_file),
        ("admin_users", ", ".join(cfg.admin_users)),
        ("stats_users", ", ".join(cfg.stats_users)),
        ("pool_mode", cfg.pool_mode),
        ("max_client_conn", cfg.max_client_connections),
        ("default_pool_size", budget.per_instance),
        ("min_pool_size", 0),
        # No reserve pool: it would open connections beyond the budget checked above.
        ("reserve_pool_size", 0),
        ("max_db_connections", budget.per_instance),
        # The app pool gives up after 30 s; PgBouncer should not keep a client queued longer.
        ("query_wait_timeout", seed.APP_POOL_ACQUIRE_TIMEOUT_S),
        ("server_idle_timeout", seed.APP_POOL_IDLE_TIMEOUT_S),
        ("server_lifetime", 3600),
        # A client idle inside a transaction holds a server connection: closed past this.
        ("idle_transaction_timeout", cfg.idle_transaction_timeout_s),
        # JDBC and psycopg send extra_float_digits at startup; PgBouncer would refuse it.
        ("ignore_startup_parameters", "extra_float_digits"),
        ("server_tls_sslmode", cfg.server_tls_sslmode),
    ]
    if cfg.server_tls_sslmode.startswith("verify"):
        settings.append(("server_tls_ca_file", cfg.server_tls_ca_file))
    if cfg.server_tls_sslmode != "disable":
        settings.append(("server_tls_protocols", "secure"))
    if cfg.pgbouncer_version >= PREPARED_STATEMENTS_SINCE:
        settings.append(("max_prepared_statements", cfg.max_prepared_statements))
    settings += [
        ("log_connections", 0),
        ("log_disconnections", 0),
        ("stats_period", 60),
        ("logfile", cfg.logfile),
        ("pidfile", cfg.pidfile),
    ]
    lines = ["; Rendered by components/pgbouncer.py; do not edit by hand.",
             f"; Server budget: {budget.total} over {budget.instances} instances = "
             f"{budget.per_instance} each; database max_connections "
             f"{cfg.database_max_connections}.",
             "[databases]", *dbs, "", "[pgbouncer]"]
    lines += [f"{k} = {v}" for k, v in settings]
    return "\n".join(lines) + "\n"


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def render_userlist(users: Mapping[str, str]) -> str:
    """auth_file lines `"user" "password"` (a plaintext or SCRAM secret), sorted by user."""
    for user, password in users.items():
        if not user or not password:
            raise ValueError(f"userlist: user {user!r} has an empty name or password")
        if "\n" in user or "\n" in password:
            raise ValueError(f"userlist: user {user!r} contains a newline")
    return "".join(f"{_quote(u)} {_quote(p)}\n" for u, p in sorted(users.items()))


def saslprep(password: str) -> bytes:
    """The password as PostgreSQL hashes it for SCRAM: SASLprep (RFC 4013) when the result
    is valid, else the raw UTF-8 bytes, as PostgreSQL's pg_saslprep falls back to
    (src/common/saslprep.c)."""
    raw = password.encode()
    if password.isascii() and password.isprintable():
        return raw
    mapped = "".join(" " if stringprep.in_table_c12(c) else c for c in password
                     if not stringprep.in_table_b1(c))
    text = unicodedata.normalize("NFKC", mapped)
    prohibited = (stringprep.in_table_c12, stringprep.in_table_c21, stringprep.in_table_c22,
                  stringprep.in_table_c3, stringprep.in_table_c4, stringprep.in_table_c5,
                  stringprep.in_table_c6, stringprep.in_table_c7, stringprep.in_table_c8,
                  stringprep.in_table_c9, stringprep.in_table_a1)
    if not text or any(check(c) for c in text for check in prohibited):
        return raw
    if any(stringprep.in_table_d1(c) for c in text) and (
            any(stringprep.in_table_d2(c) for c in text)
            or not (stringprep.in_table_d1(text[0]) and stringprep.in_table_d1(text[-1]))):
        return raw
    return text.encode()


def scram_salt(user: str, password: str) -> bytes:
    """A salt that is the same on every run for the same user and password (a random one
    would change the userlist, and roll the pods, on every `pulumi up`), unique per user,
    and new whenever the password changes: HMAC-SHA-256 keyed by the password."""
    digest = hmac.new(password.encode(), b"sofacover/pgbouncer/scram-salt\0" + user.encode(),
                      hashlib.sha256).digest()
    return digest[:SCRAM_SALT_BYTES]


def scram_secret(password: str, salt: bytes, iterations: int = SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 secret PostgreSQL stores in pg_authid.rolpassword and PgBouncer
    reads from its auth_file: `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`,
    base64. RFC 5802 section 3 (SaltedPassword, ClientKey, StoredKey, ServerKey) with
    SHA-256 (RFC 7677); the text form is PostgreSQL's (src/common/scram-common.c,
    scram_build_secret)."""
    salted = hashlib.pbkdf2_hmac("sha256", saslprep(password), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def scram_userlist(passwords: Mapping[str, str]) -> str:
    """The auth_file with SCRAM secrets instead of passwords: nothing on disk logs in.

    PgBouncer then checks clients against the secret, and logs into PostgreSQL by passing
    the client's SCRAM proof through, which works only when the role's secret in
    PostgreSQL is this same string (same salt and iterations, not merely the same
    password): set it with `ALTER ROLE <user> PASSWORD '<secret>'`. Source: PgBouncer
    config reference, "Authentication file format" (https://www.pgbouncer.org/config.html).
    The admin and stats users exist only in PgBouncer."""
    return render_userlist({u: scram_secret(p, scram_salt(u, p)) for u, p in passwords.items()})


def rds_ca_roots(regions: Sequence[str], ca_identifier: str) -> str:
    """The PEM roots of `ca_identifier` (e.g. rds-ca-rsa2048-g1) for each region, from the
    shipped bundle; a ValueError names a region or CA the bundle lacks."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    if ca_identifier not in RDS_CA_ROOTS:
        raise ValueError(f"ca_identifier is {ca_identifier!r}; known: "
                         f"{', '.join(RDS_CA_ROOTS)}")
    by_name = {c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value: c
               for c in x509.load_pem_x509_certificates(RDS_CA_BUNDLE.read_bytes())}
    pems = []
    for region in dict.fromkeys(regions):
        name = f"Amazon RDS {region} Root CA {RDS_CA_ROOTS[ca_identifier]}"
        if name not in by_name:
            raise ValueError(f"{RDS_CA_BUNDLE.name} has no {name!r}; refresh it from AWS's "
                             "global bundle (components/data/README.md)")
        pems.append(by_name[name].public_bytes(Encoding.PEM).decode())
    if not pems:
        raise ValueError("regions is empty; PgBouncer needs the region of each database")
    return "".join(pems)


@dataclass(frozen=True)
class PgBouncerArgs:
    """Inputs of `PgBouncer`."""

    database_host: pulumi.Input[str]
    """The primary's address (Database.address)."""
    database_max_connections: int
    passwords: Mapping[str, pulumi.Output[str]]
    """User -> password, as Pulumi secret Outputs: the app user, the admin and stats users."""
    server_regions: Sequence[str]
    """The regions of the databases it connects to (the writer's, the replica's): their RDS
    root certificates are shipped with the config."""
    max_server_connections: int = seed.PGBOUNCER_MAX_SERVER_CONNECTIONS
    replicas: int = 2
    max_client_connections: int = seed.ONE_YEAR.peak_concurrent_users * 5 // 4
    pool_mode: PoolMode = "transaction"
    database_name: str = "sofacover"
    replica_host: pulumi.Input[str] | None = None
    """The region's read replica, for the `<db>_ro` entry."""
    replica_server_connections: int | None = None
    """The `<db>_ro` pool's budget on the replica; None: max_server_connections."""
    server_tls_sslmode: Literal["verify-full", "require"] = "verify-full"
    admin_user: str = "pgbouncer_admin"
    stats_user: str = "pgbouncer_stats"
    kubernetes: bool = True
    """Deploy on Kubernetes (the provider comes through opts); False: publish the config
    for the instances' PgBouncer sidecar (see `parameter_path`)."""
    parameter_path: str | None = None
    """Without Kubernetes: SSM path the config is published under (`<path>/pgbouncer.ini`,
    and `<path>/userlist.txt` as a SecureString); the instances' user data reads it."""
    namespace: pulumi.Input[str] = "data"
    """Pass the Namespace resource's `metadata.name`, so every object waits for it."""
    image: str = PGBOUNCER_IMAGE
    exporter_image: str = EXPORTER_IMAGE
    labels: dict[str, str] = field(default_factory=dict)
    ca_identifier: str = RDS_CA_IDENTIFIER
    """The RDS CA of the databases' certificates (components/database.py sets it)."""

    @classmethod
    def from_config(cls, cfg: PgBouncerConfig, db: DatabaseConfig, *,
                    database_host: pulumi.Input[str],
                    passwords: Mapping[str, pulumi.Output[str]], kubernetes: bool,
                    server_regions: Sequence[str],
                    replica_host: pulumi.Input[str] | None = None,
                    instances: int | None = None,
                    namespace: pulumi.Input[str] = "data",
                    parameter_path: str | None = None) -> PgBouncerArgs:
        """`instances`: without Kubernetes, how many hosts run PgBouncer at most (the Auto
        Scaling group's maxSize): the budget is divided by that, not by cfg.replicas."""
        return cls(database_host=database_host, database_max_connections=db.max_connections,
                   passwords=passwords, server_regions=tuple(server_regions),
                   max_server_connections=cfg.max_server_connections,
                   replicas=instances or cfg.replicas,
                   max_client_connections=cfg.max_client_connections,
                   pool_mode=cfg.pool_mode, replica_host=replica_host,
                   replica_server_connections=cfg.replica_server_connections,
                   kubernetes=kubernetes, namespace=namespace,
                   parameter_path=None if kubernetes else parameter_path)

    def ini(self) -> PgBouncerIni:
        """The render inputs, with a placeholder host until the Outputs resolve."""
        return PgBouncerIni(
            database_host="-", database_max_connections=self.database_max_connections,
            max_server_connections=self.max_server_connections, instances=self.replicas,
            max_client_connections=self.max_client_connections, pool_mode=self.pool_mode,
            database_name=self.database_name, server_tls_sslmode=self.server_tls_sslmode,
            replica_server_connections=self.replica_server_connections,
            admin_users=(self.admin_user,), stats_users=(self.stats_user,),
            # On an instance the sidecar serves that instance only (host networking):
            # nothing else may reach it. In a pod it serves the Service.
            listen_addr="0.0.0.0" if self.kubernetes else "127.0.0.1")


def _render_with_hosts(hosts: Sequence[str | None], *, base: PgBouncerIni) -> str:
    primary, replica = hosts
    return render_pgbouncer_ini(replace(base, database_host=primary, replica_host=replica))


def _userlist(passwords: Sequence[str], *, users: Sequence[str]) -> str:
    return scram_userlist(dict(zip(users, passwords, strict=True)))


def _exporter_dsn(password: str, *, user: str) -> str:
    # Percent-encoded: a password with @, :, / or # would otherwise end the userinfo early
    # and the exporter would dial the wrong host or fail to parse the URL.
    return (f"postgres://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{PORT}"
            "/pgbouncer?sslmode=disable")


def pod_selector(name: str) -> dict[str, str]:
    """The labels of the PgBouncer component `name`'s pods."""
    return {"app.kubernetes.io/name": "pgbouncer", "app.kubernetes.io/instance": name}


def exporter_pod_monitor(name: str, namespace: str):
    """How Prometheus finds the exporter of the PgBouncer component `name` (the
    PgBouncerClientWait alerts read its pgbouncer_pools_* series)."""
    from components.prometheus import PodMonitorArgs

    return PodMonitorArgs(name=f"{name}-pgbouncer", namespace=namespace,
                          match_labels=pod_selector(name), port="metrics")


def _checksum(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_args(args: PgBouncerArgs) -> PoolBudget:
    """Refuse a budget or topology that does not fit, before anything is registered."""
    budget = args.ini().budget
    if args.replica_host is not None:  # the read pool, on the replica's own budget
        pool_budget(args.replica_server_connections or args.max_server_connections,
                    args.replicas, args.database_max_connections)
    for user in (args.admin_user, args.stats_user):
        if user not in args.passwords:
            raise ValueError(f"passwords has no entry for {user!r}; the admin and stats "
                             "users need one")
    if args.kubernetes and args.replicas < 2:
        raise ValueError(f"replicas is {args.replicas}; on Kubernetes PgBouncer runs at "
                         "least 2 pods so a drain or a node loss keeps the pool up")
    if args.kubernetes:
        # A rolling update surges one pod while a draining one still holds its
        # connections: replicas + 1 pools must fit too.
        problem = pool_budget_problem(budget.per_instance * (args.replicas + 1),
                                      args.database_max_connections)
        if problem:
            raise PoolBudgetError(
                f"pgbouncer pools during a rolling update ({budget.per_instance} x "
                f"{args.replicas + 1} pods) " + problem)
    return budget


# Drain on shutdown: wait for the endpoint to leave the Service (new clients go to the
# peers), then SIGINT, which is PgBouncer's PAUSE + SHUTDOWN: running transactions finish,
# then the process exits. The grace period covers both.
DRAIN_SECONDS, GRACE_SECONDS = 10, 60
PRE_STOP = ["/bin/sh", "-c",
            f"sleep {DRAIN_SECONDS}; kill -INT 1; while kill -0 1 2>/dev/null; do sleep 1; done"]


class PgBouncer(pulumi.ComponentResource):
    """PgBouncer: rendered config; on Kubernetes a Deployment, Service, PDB and exporter."""

    ini: pulumi.Output[str]
    """The rendered pgbouncer.ini (no secrets in it)."""
    userlist: pulumi.Output[str]
    """The auth_file (secret)."""
    pool_size_per_instance: pulumi.Output[int]
    host: pulumi.Output[str | None]
    """The Service's cluster DNS name on Kubernetes; 127.0.0.1 (the sidecar) when published
    for instances; None when only rendered."""
    port: pulumi.Output[int]

    def __init__(self, name: str, args: PgBouncerArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        budget = check_args(args)  # before anything is registered
        super().__init__("sofacover:pgbouncer:PgBouncer", name, None, opts)
        base = args.ini()
        ca = rds_ca_roots(args.server_regions, args.ca_identifier)
        users = sorted(args.passwords)
        ini = pulumi.Output.all(args.database_host, args.replica_host).apply(
            functools.partial(_render_with_hosts, base=base))
        userlist = pulumi.Output.secret(pulumi.Output.all(
            *[args.passwords[u] for u in users]).apply(functools.partial(_userlist,
                                                                         users=users)))
        host: pulumi.Output[str | None] = pulumi.Output.from_input(None)
        if args.kubernetes:
            host = self._kubernetes(name, args, ini, userlist, ca)
        elif args.parameter_path is not None:
            # Every instance's sidecar reads these at boot (components/compute.py), so a new
            # database address or password reaches new instances without a new template.
            import pulumi_aws as aws

            child = pulumi.ResourceOptions(parent=self)
            # insecure_value: the ini holds no secret, and a reviewer should see its pool
            # sizes in the preview (the provider masks `value` as if it were one).
            aws.ssm.Parameter(f"{name}-ini", name=f"{args.parameter_path}/pgbouncer.ini",
                              type="String", insecure_value=ini, tier="Standard",
                              description="pgbouncer.ini of the instances' sidecar", opts=child)
            aws.ssm.Parameter(f"{name}-userlist", name=f"{args.parameter_path}/userlist.txt",
                              type="SecureString", value=userlist, tier="Standard",
                              description="PgBouncer auth_file (secret)", opts=child)
            aws.ssm.Parameter(f"{name}-rds-ca", name=f"{args.parameter_path}/rds-ca.pem",
                              type="String", insecure_value=ca, tier="Standard",
                              description="RDS root certificates PgBouncer verifies against",
                              opts=child)
            host = pulumi.Output.from_input("127.0.0.1")

        self.ini = ini
        self.userlist = userlist
        self.pool_size_per_instance = pulumi.Output.from_input(budget.per_instance)
        self.host = host
        self.port = pulumi.Output.from_input(PORT)
        self.register_outputs({
            "ini": self.ini,
            "userlist": self.userlist,
            "pool_size_per_instance": self.pool_size_per_instance,
            "host": self.host,
            "port": self.port,
        })

    def _kubernetes(self, name: str, args: PgBouncerArgs, ini: pulumi.Output[str],
                    userlist: pulumi.Output[str], ca: str) -> pulumi.Output[str]:
        child = pulumi.ResourceOptions(parent=self)
        labels = {"app.kubernetes.io/name": "pgbouncer", "app.kubernetes.io/instance": name,
                  **args.labels}
        meta = functools.partial(k8s.meta.v1.ObjectMetaArgs, namespace=args.namespace,
                                 labels=labels)
        config = k8s.core.v1.ConfigMap(f"{name}-config", metadata=meta(name=f"{name}-config"),
                                       data={"pgbouncer.ini": ini, "rds-ca.pem": ca},
                                       opts=child)
        secret = k8s.core.v1.Secret(
            f"{name}-auth", metadata=meta(name=f"{name}-auth"), type="Opaque",
            string_data={
                "userlist.txt": userlist,
                "exporter-dsn": pulumi.Output.secret(args.passwords[args.stats_user]).apply(
                    functools.partial(_exporter_dsn, user=args.stats_user)),
            }, opts=child)

        restricted = k8s.core.v1.SecurityContextArgs(
            allow_privilege_escalation=False, read_only_root_filesystem=True,
            run_as_non_root=True, capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"))
        tcp = k8s.core.v1.TCPSocketActionArgs(port=PORT)
        pgbouncer = k8s.core.v1.ContainerArgs(
            name="pgbouncer", image=args.image,
            command=["pgbouncer", "/etc/pgbouncer/pgbouncer.ini"],
            ports=[k8s.core.v1.ContainerPortArgs(name="pgbouncer", container_port=PORT)],
            readiness_probe=k8s.core.v1.ProbeArgs(tcp_socket=tcp, period_seconds=5,
                                                  failure_threshold=2),
            liveness_probe=k8s.core.v1.ProbeArgs(tcp_socket=tcp, initial_delay_seconds=10,
                                                 period_seconds=10, failure_threshold=6),
            lifecycle=k8s.core.v1.LifecycleArgs(pre_stop=k8s.core.v1.LifecycleHandlerArgs(
                exec_=k8s.core.v1.ExecActionArgs(command=PRE_STOP))),
            # One core: PgBouncer is single-threaded, more CPU is never used.
            resources=k8s.core.v1.ResourceRequirementsArgs(
                requests={"cpu": "500m", "memory": "128Mi"},
                limits={"cpu": "1", "memory": "256Mi"}),
            security_context=restricted,
            volume_mounts=[
                k8s.core.v1.VolumeMountArgs(name="config", mount_path="/etc/pgbouncer/"
                                            "pgbouncer.ini", sub_path="pgbouncer.ini",
                                            read_only=True),
                k8s.core.v1.VolumeMountArgs(name="auth", mount_path="/etc/pgbouncer/auth",
                                            read_only=True),
                k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
                k8s.core.v1.VolumeMountArgs(name="config", mount_path=RDS_CA_FILE,
                                            sub_path="rds-ca.pem", read_only=True),
            ])
        exporter = k8s.core.v1.ContainerArgs(
            name="exporter", image=args.exporter_image,
            args=["--pgBouncer.connectionString=$(PGBOUNCER_DSN)",
                  f"--web.listen-address=:{EXPORTER_PORT}"],
            env=[k8s.core.v1.EnvVarArgs(
                name="PGBOUNCER_DSN", value_from=k8s.core.v1.EnvVarSourceArgs(
                    secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(
                        name=secret.metadata.name, key="exporter-dsn")))],
            ports=[k8s.core.v1.ContainerPortArgs(name="metrics", container_port=EXPORTER_PORT)],
            resources=k8s.core.v1.ResourceRequirementsArgs(
                requests={"cpu": "50m", "memory": "32Mi"}, limits={"memory": "64Mi"}),
            # TCP, not /metrics: the exporter answers /metrics (pgbouncer_up 0) even when
            # PgBouncer is down, and restarting the exporter would not help then.
            readiness_probe=k8s.core.v1.ProbeArgs(
                tcp_socket=k8s.core.v1.TCPSocketActionArgs(port=EXPORTER_PORT),
                period_seconds=10),
            liveness_probe=k8s.core.v1.ProbeArgs(
                tcp_socket=k8s.core.v1.TCPSocketActionArgs(port=EXPORTER_PORT),
                period_seconds=20, failure_threshold=3),
            security_context=restricted)

        selector = pod_selector(name)
        k8s.apps.v1.Deployment(
            f"{name}-deployment", metadata=meta(name=name),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=args.replicas,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate", rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(
                        max_unavailable=0, max_surge=1)),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        labels=labels,
                        # A new config rolls the pods (PgBouncer reads its file at start).
                        annotations={"checksum/config": pulumi.Output.concat(ini, ca).apply(
                                         _checksum),
                                     "prometheus.io/scrape": "true",
                                     "prometheus.io/port": str(EXPORTER_PORT)}),
                    spec=k8s.core.v1.PodSpecArgs(
                        termination_grace_period_seconds=GRACE_SECONDS,
                        security_context=k8s.core.v1.PodSecurityContextArgs(
                            run_as_non_root=True, run_as_user=70, run_as_group=70,
                            fs_group=70, seccomp_profile=k8s.core.v1.SeccompProfileArgs(
                                type="RuntimeDefault")),
                        affinity=k8s.core.v1.AffinityArgs(
                            pod_anti_affinity=k8s.core.v1.PodAntiAffinityArgs(
                                # Never two pods on one node: a node loss takes one pod.
                                required_during_scheduling_ignored_during_execution=[
                                    k8s.core.v1.PodAffinityTermArgs(
                                        label_selector=k8s.meta.v1.LabelSelectorArgs(
                                            match_labels=selector),
                                        topology_key="kubernetes.io/hostname")],
                                # And in different zones where the nodes allow it.
                                preferred_during_scheduling_ignored_during_execution=[
                                    k8s.core.v1.WeightedPodAffinityTermArgs(
                                        weight=100,
                                        pod_affinity_term=k8s.core.v1.PodAffinityTermArgs(
                                            label_selector=k8s.meta.v1.LabelSelectorArgs(
                                                match_labels=selector),
                                            topology_key="topology.kubernetes.io/zone"))])),
                        containers=[pgbouncer, exporter],
                        volumes=[
                            k8s.core.v1.VolumeArgs(
                                name="config", config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                                    name=config.metadata.name)),
                            k8s.core.v1.VolumeArgs(
                                name="auth", secret=k8s.core.v1.SecretVolumeSourceArgs(
                                    secret_name=secret.metadata.name,
                                    items=[k8s.core.v1.KeyToPathArgs(key="userlist.txt",
                                                                     path="userlist.txt")])),
                            k8s.core.v1.VolumeArgs(
                                name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs()),
                        ]))),
            opts=child)
        service = k8s.core.v1.Service(
            f"{name}-service", metadata=meta(name=name),
            spec=k8s.core.v1.ServiceSpecArgs(
                selector=selector, ports=[
                    k8s.core.v1.ServicePortArgs(name="pgbouncer", port=PORT, target_port=PORT),
                    k8s.core.v1.ServicePortArgs(name="metrics", port=EXPORTER_PORT,
                                                target_port=EXPORTER_PORT)]),
            opts=child)
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb", metadata=meta(name=name),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                max_unavailable=1,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector)),
            opts=child)
        return pulumi.Output.concat(service.metadata.name, ".", args.namespace,
                                    ".svc.cluster.local")
