"""PgBouncer: the rendered config (pure), the component under mocks, and the real engines.

The real-engine tests start PostgreSQL (one server for the module, a fresh database per test)
and their own PgBouncer on loopback (tests/engines.py), and run the rendered pgbouncer.ini with
only the local host, port and paths substituted.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import configparser
import contextlib
import dataclasses
import functools
import subprocess
import tempfile
import time
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import pytest

from components.pgbouncer import (
    PORT,
    PRE_STOP,
    RDS_CA_BUNDLE,
    RDS_CA_FILE,
    RDS_CA_ROOTS,
    PgBouncer,
    PgBouncerArgs,
    PgBouncerIni,
    PoolBudgetError,
    pool_budget,
    rds_ca_roots,
    render_pgbouncer_ini,
    render_userlist,
    scram_salt,
    scram_secret,
    scram_userlist,
)
from config import seed
from config.models import SUPERUSER_RESERVED_CONNECTIONS, DatabaseConfig, PgBouncerConfig
from config.presets import PHASES
from planner.mocks import SECRET_MASK
from tests import engines
from tests.conftest import of_type

DB = DatabaseConfig.model_validate(PHASES[1]["database"])
POOL = PgBouncerConfig.model_validate(PHASES[1]["pgbouncer"])
APP_USER, APP_PASSWORD = "sofacover_app", "app-password-for-tests"
ADMIN, STATS = "pgbouncer_admin", "pgbouncer_stats"
PASSWORDS = {APP_USER: APP_PASSWORD, ADMIN: "admin-pw", STATS: "stats-pw"}
SERVER_REGIONS = (seed.PRIMARY_REGION,)


def parse(ini: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(delimiters=("=",), comment_prefixes=(";",),
                                       interpolation=None)
    parser.read_string(ini)
    return parser


def prod_ini(**kw) -> PgBouncerIni:
    base = PgBouncerIni(database_host="db.example.internal",
                        database_max_connections=DB.max_connections,
                        max_server_connections=POOL.max_server_connections,
                        instances=POOL.replicas,
                        max_client_connections=POOL.max_client_connections)
    return dataclasses.replace(base, **kw)


# --- budget ----------------------------------------------------------------------------------

def test_seed_budget_is_divided_across_replicas():
    budget = pool_budget(seed.PGBOUNCER_MAX_SERVER_CONNECTIONS, 2, DB.max_connections)
    assert budget.per_instance == seed.PGBOUNCER_MAX_SERVER_CONNECTIONS // 2


def test_budget_rounds_down_so_the_total_never_exceeds_it():
    budget = pool_budget(100, 3, 200)
    assert budget.per_instance * budget.instances <= 100


def test_per_replica_pool_of_zero_is_refused_with_the_numbers():
    with pytest.raises(PoolBudgetError, match=r"is 2 across 3 instances: 2 // 3 = 0"):
        pool_budget(2, 3, 200)


def test_budget_above_max_connections_minus_reserved_is_refused_with_the_numbers():
    usable = 100 - SUPERUSER_RESERVED_CONNECTIONS
    assert pool_budget(usable, 1, 100).per_instance == usable
    with pytest.raises(PoolBudgetError,
                       match=rf"is {usable + 1} but database.maxConnections 100 minus "
                             rf"{SUPERUSER_RESERVED_CONNECTIONS} reserved slots leaves {usable}"):
        pool_budget(usable + 1, 1, 100)


def test_render_refuses_a_budget_that_does_not_fit():
    with pytest.raises(PoolBudgetError):
        render_pgbouncer_ini(prod_ini(database_max_connections=50))


# --- rendered ini ----------------------------------------------------------------------------

def test_ini_pools_transactions_within_the_per_instance_budget():
    ini = parse(render_pgbouncer_ini(prod_ini()))
    per = POOL.max_server_connections // POOL.replicas
    pgb = ini["pgbouncer"]
    assert pgb["pool_mode"] == "transaction"
    assert int(pgb["default_pool_size"]) == int(pgb["max_db_connections"]) == per
    assert int(pgb["reserve_pool_size"]) == 0
    assert int(pgb["max_client_conn"]) == POOL.max_client_connections
    assert f"max_db_connections={per}" in ini["databases"]["sofacover"]


def test_max_client_conn_covers_the_one_year_peak_with_headroom():
    pgb = parse(render_pgbouncer_ini(prod_ini()))["pgbouncer"]
    assert int(pgb["max_client_conn"]) > seed.ONE_YEAR.peak_concurrent_users


def test_ini_verifies_the_server_certificate_and_names_the_admin_and_stats_users():
    pgb = parse(render_pgbouncer_ini(prod_ini()))["pgbouncer"]
    assert pgb["server_tls_sslmode"] == "verify-full"
    assert pgb["server_tls_ca_file"].endswith(".pem")
    assert pgb["admin_users"] == ADMIN and pgb["stats_users"] == STATS
    assert pgb["ignore_startup_parameters"] == "extra_float_digits"
    assert pgb["auth_type"] == "scram-sha-256"


def test_require_mode_has_no_ca_file():
    pgb = parse(render_pgbouncer_ini(prod_ini(server_tls_sslmode="require")))["pgbouncer"]
    assert pgb["server_tls_sslmode"] == "require"
    assert "server_tls_ca_file" not in pgb


def test_prepared_statements_are_set_for_pgbouncer_1_21_and_left_out_before():
    assert int(parse(render_pgbouncer_ini(prod_ini()))["pgbouncer"]
               ["max_prepared_statements"]) > 0
    old = parse(render_pgbouncer_ini(prod_ini(pgbouncer_version=(1, 18))))["pgbouncer"]
    assert "max_prepared_statements" not in old


def test_read_only_entry_points_at_the_local_replica_when_there_is_one():
    dbs = parse(render_pgbouncer_ini(prod_ini(replica_host="replica.eu-west-1")))["databases"]
    assert "host=replica.eu-west-1" in dbs["sofacover_ro"]
    assert "host=db.example.internal" in dbs["sofacover"]


def test_no_read_only_entry_without_a_replica():
    assert "sofacover_ro" not in parse(render_pgbouncer_ini(prod_ini()))["databases"]


def test_userlist_quotes_names_and_passwords():
    assert render_userlist({"b": 'p"w', "a": "x"}) == '"a" "x"\n"b" "p""w"\n'


@pytest.mark.parametrize("users", [{"a": ""}, {"": "x"}, {"a": "x\ny"}])
def test_userlist_refuses_empty_or_multiline_entries(users):
    with pytest.raises(ValueError, match="userlist"):
        render_userlist(users)


# --- component under mocks -------------------------------------------------------------------

def pgbouncer(kubernetes: bool = True, **kw):
    def fn() -> None:
        opts = None
        if kubernetes:
            provider = k8s.Provider("k8s-test", kubeconfig="{}")
            opts = pulumi.ResourceOptions(providers={"kubernetes": provider})
        passwords = {u: pulumi.Output.secret(p) for u, p in PASSWORDS.items()}
        base = PgBouncerArgs.from_config(POOL, DB, database_host="db.example.internal",
                                         passwords=passwords, kubernetes=kubernetes,
                                         server_regions=SERVER_REGIONS)
        pgb = PgBouncer("pgbouncer", dataclasses.replace(base, **kw), opts)
        pulumi.export("ini", pgb.ini)
        pulumi.export("userlist", pgb.userlist)
        pulumi.export("host", pgb.host)
    return fn


def deployment(res):
    (dep,) = of_type(res, "kubernetes:apps/v1:Deployment")
    return dep.inputs["spec"]


def test_kubernetes_deployment_runs_two_pods_spread_over_nodes(build):
    spec = deployment(build(pgbouncer()).resources)
    assert spec["replicas"] == POOL.replicas >= 2
    anti = spec["template"]["spec"]["affinity"]["podAntiAffinity"]
    (required,) = anti["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required["topologyKey"] == "kubernetes.io/hostname"


def test_pods_have_probes_a_drain_hook_and_the_exporter(build):
    pod = deployment(build(pgbouncer()).resources)["template"]["spec"]
    main, exporter = pod["containers"]
    assert main["readinessProbe"]["tcpSocket"]["port"] == PORT
    assert main["livenessProbe"]["tcpSocket"]["port"] == PORT
    assert main["lifecycle"]["preStop"]["exec"]["command"] == PRE_STOP
    assert "kill -INT 1" in PRE_STOP[-1]  # SIGINT = PAUSE + SHUTDOWN
    assert pod["terminationGracePeriodSeconds"] > 10
    assert exporter["image"].startswith("prometheuscommunity/pgbouncer-exporter:")


def test_containers_run_with_a_restricted_security_context(build):
    pod = deployment(build(pgbouncer()).resources)["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    for container in [*pod["containers"], *pod.get("initContainers", [])]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert sc["seccompProfile"]["type"] == "RuntimeDefault"


def test_config_map_holds_the_rendered_ini_and_the_secret_stays_secret(build):
    run = build(pgbouncer())
    (cm,) = of_type(run.resources, "kubernetes:core/v1:ConfigMap")
    assert cm.inputs["data"]["pgbouncer.ini"] == run.outputs["ini"]
    assert "host=db.example.internal" in run.outputs["ini"]
    (secret,) = of_type(run.resources, "kubernetes:core/v1:Secret")
    assert secret.inputs["stringData"] == SECRET_MASK or all(
        v == SECRET_MASK for v in secret.inputs["stringData"].values())
    assert run.outputs["userlist"] == SECRET_MASK
    assert APP_PASSWORD not in str([r.inputs for r in run.resources])


def test_service_and_disruption_budget_cover_the_pods(build):
    res = build(pgbouncer()).resources
    (svc,) = of_type(res, "kubernetes:core/v1:Service")
    (pdb,) = of_type(res, "kubernetes:policy/v1:PodDisruptionBudget")
    selector = deployment(res)["selector"]["matchLabels"]
    assert svc.inputs["spec"]["selector"] == selector
    assert pdb.inputs["spec"]["selector"]["matchLabels"] == selector
    assert pdb.inputs["spec"]["maxUnavailable"] == 1


def test_every_kubernetes_child_uses_the_callers_provider(build):
    res = build(pgbouncer()).resources
    children = [r for r in res if r.type.startswith("kubernetes:")]
    assert len(children) == 5
    assert all(r.provider and "k8s-test" in r.provider for r in children)


def test_one_pod_on_kubernetes_is_refused(build):
    with pytest.raises(ValueError, match="at least 2 pods"):
        build(pgbouncer(replicas=1))


def test_a_rolling_update_that_would_overrun_the_database_is_refused(build):
    # 3 x 50 during a surge = 150 > 150 - 3 reserved.
    with pytest.raises(PoolBudgetError, match="rolling update"):
        build(pgbouncer(database_max_connections=150))


def test_without_kubernetes_only_the_rendered_config_is_exposed(build):
    run = build(pgbouncer(kubernetes=False))
    assert not [r for r in run.resources if r.type.startswith("kubernetes:")]
    assert "[pgbouncer]" in run.outputs["ini"]
    assert run.outputs["host"] is None


# --- real engines ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tools() -> engines.Tools:
    return engines.find_tools()  # fails (never skips) with the install command


@pytest.fixture(scope="module")
def server(tools):
    # A small server, so the test shows PgBouncer holding many more clients than it admits.
    # One per module (a start and stop cost more than half a second); each test gets its own
    # database (the `postgres` fixture) and its own PgBouncer (`bouncer_dir`).
    with engines.Postgres(tools, max_connections=30) as pg:
        # The role's secret is the userlist's (same salt and iterations): PgBouncer logs in
        # to the server by passing the client's SCRAM proof through.
        pg.psql(f"CREATE ROLE {APP_USER} LOGIN PASSWORD "
                f"'{scram_secret(APP_PASSWORD, scram_salt(APP_USER, APP_PASSWORD))}'")
        yield pg


@pytest.fixture
def postgres(server):
    # A fresh, empty database per test; FORCE also ends any session a previous test's
    # PgBouncer left behind, so pg_stat_activity holds only this test's connections.
    server.psql("DROP DATABASE IF EXISTS sofacover WITH (FORCE)")
    server.psql(f"CREATE DATABASE sofacover OWNER {APP_USER}")
    return server


def bouncer_dir(pg: engines.Postgres) -> Path:
    """A new folder for one PgBouncer's files, inside the server's folder (tmp_path is not
    reachable by the postgres user)."""
    return Path(tempfile.mkdtemp(prefix="pgbouncer-", dir=pg.dir))


def local_ini(pg: engines.Postgres, tools: engines.Tools, workdir: Path, port: int,
              **kw) -> str:
    """The rendered config with only the local host, port and file paths substituted."""
    return render_pgbouncer_ini(PgBouncerIni(
        database_host="127.0.0.1", database_port=pg.port, replica_host="127.0.0.1",
        replica_port=pg.port, database_max_connections=pg.max_connections,
        listen_addr="127.0.0.1", listen_port=port, auth_file=str(workdir / "userlist.txt"),
        logfile=str(workdir / "pgbouncer.log"), pidfile=str(workdir / "pgbouncer.pid"),
        pgbouncer_version=tools.pgbouncer_version,
        **{"server_tls_sslmode": "require", **kw}))


def test_missing_tools_fail_with_the_install_command(monkeypatch):
    monkeypatch.setattr(engines.shutil, "which", lambda _name: None)
    monkeypatch.setattr(engines.Path, "glob", lambda *_a: iter(()))
    monkeypatch.setattr(engines, "_first", lambda _paths: None)
    with pytest.raises(engines.MissingTool, match="apt-get install -y postgresql pgbouncer"):
        engines.find_tools()


def test_rendered_config_serves_many_concurrent_clients_without_a_failed_transaction(
        tools, postgres, tmp_path):
    pg = postgres
    port = engines.free_port()
    workdir = bouncer_dir(pg)
    # 20 server connections over 2 instances: 10 here, far below the 150 clients.
    ini = local_ini(pg, tools, workdir, port, max_server_connections=20, instances=2,
                    max_client_connections=400)
    subprocess.run([str(tools.pgbench), "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p",
                    str(pg.port), "-U", APP_USER, "sofacover"], check=True,
                   capture_output=True, env={"PGPASSWORD": APP_PASSWORD, "PATH": "/usr/bin"})
    script = tmp_path / "txn.sql"
    # A read-write transaction, as the checkout would do: update and log in one COMMIT.
    script.write_text(
        "\\set aid random(1, 100000)\n\\set delta random(-5000, 5000)\n"
        "BEGIN;\n"
        "UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;\n"
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
        "VALUES (1, 1, :aid, :delta, CURRENT_TIMESTAMP);\n"
        "END;\n")
    with engines.PgBouncer(tools, ini, scram_userlist(PASSWORDS), workdir, port) as pgb:
        clients = 150
        assert clients > pg.max_connections  # straight at PostgreSQL this would be refused
        result = engines.pgbench(tools, port=port, user=APP_USER, password=APP_PASSWORD,
                                 dbname="sofacover", clients=clients, threads=2,
                                 transactions=20, script=script)
        assert result.error is None, f"{result.error}\n{pgb.log()}"
        assert result.transactions == clients * 20
        assert result.failed == 0
        servers = pgb.admin("SHOW SERVERS", ADMIN, PASSWORDS[ADMIN])
        assert 0 < len(servers) <= 10
        history = pg.psql("SELECT count(*) FROM pgbench_history", dbname="sofacover")
        assert int(history) == clients * 20
        # Server connections went over TLS (server_tls_sslmode=require).
        ssl = pg.psql("SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) "
                      f"WHERE usename = '{APP_USER}' AND ssl", dbname="sofacover")
        assert int(ssl) == len(servers)


def test_read_only_entry_and_stats_user_work_against_the_real_server(tools, postgres, tmp_path):
    pg = postgres
    port = engines.free_port()
    workdir = bouncer_dir(pg)
    ini = local_ini(pg, tools, workdir, port, max_server_connections=10, instances=2)
    with engines.PgBouncer(tools, ini, scram_userlist(PASSWORDS), workdir, port) as pgb:
        result = engines.pgbench(tools, port=port, user=APP_USER, password=APP_PASSWORD,
                                 dbname="sofacover_ro", clients=20, threads=2,
                                 transactions=5, script=_select_one(tmp_path))
        assert result.error is None and result.failed == 0, result.error
        pools = pgb.admin("SHOW POOLS", STATS, PASSWORDS[STATS])
        assert {row[0] for row in pools} >= {"sofacover_ro"}


def test_a_wrong_password_is_refused_by_pgbouncer(tools, postgres, tmp_path):
    pg = postgres
    port = engines.free_port()
    workdir = bouncer_dir(pg)
    ini = local_ini(pg, tools, workdir, port, max_server_connections=10, instances=2)
    with engines.PgBouncer(tools, ini, scram_userlist(PASSWORDS), workdir, port):
        result = engines.pgbench(tools, port=port, user=APP_USER, password="wrong",
                                 dbname="sofacover", clients=1, threads=1, transactions=1,
                                 script=_select_one(tmp_path))
        assert result.error is not None and "authentication failed" in result.error


def _select_one(tmp_path: Path) -> Path:
    script = tmp_path / "select.sql"
    script.write_text("SELECT 1;\n")
    return script



def _unknown() -> pulumi.Output[str]:
    """An Output whose value is not known, as a preview sees a database not yet created."""
    loop = asyncio.get_event_loop()
    value, known = loop.create_future(), loop.create_future()
    value.set_result(None)
    known.set_result(False)
    return pulumi.Output(set(), value, known)


def test_builds_in_preview_mode_with_an_unknown_database_host(build):
    def fn() -> None:
        provider = k8s.Provider("k8s-test", kubeconfig="{}")
        passwords = {u: pulumi.Output.secret(p) for u, p in PASSWORDS.items()}
        PgBouncer("pgbouncer", PgBouncerArgs.from_config(
            POOL, DB, database_host=_unknown(), passwords=passwords, kubernetes=True,
            server_regions=SERVER_REGIONS),
            pulumi.ResourceOptions(providers={"kubernetes": provider}))

    res = build(fn, preview=True).resources
    (cm,) = of_type(res, "kubernetes:core/v1:ConfigMap")
    assert len(of_type(res, "kubernetes:apps/v1:Deployment")) == 1
    assert cm.inputs["data"]["pgbouncer.ini"] == "[unknown]"


def test_without_kubernetes_the_budget_is_divided_by_the_most_instances(build):
    def fn() -> None:
        passwords = {u: pulumi.Output.secret(p) for u, p in PASSWORDS.items()}
        pgb = PgBouncer("pgbouncer", PgBouncerArgs.from_config(
            POOL, DB, database_host="db.example.internal", passwords=passwords,
            kubernetes=False, instances=seed.ASG_MAX, server_regions=SERVER_REGIONS))
        pulumi.export("pool", pgb.pool_size_per_instance)

    assert build(fn).outputs["pool"] == seed.PGBOUNCER_MAX_SERVER_CONNECTIONS // seed.ASG_MAX


def test_the_exporter_dsn_percent_encodes_user_and_password():
    from urllib.parse import unquote, urlsplit

    from components.pgbouncer import _exporter_dsn

    password = "p@ss:w/rd#?%"
    url = urlsplit(_exporter_dsn(password, user="stats@x"))
    assert url.hostname == "127.0.0.1" and url.port == PORT
    assert unquote(url.password) == password and unquote(url.username) == "stats@x"


# --- security findings: SCRAM secrets, idle transactions, loopback sidecar, shipped CA -------

def test_scram_secret_matches_rfc_7677s_worked_example():
    # RFC 7677 section 3: user "user", password "pencil", this salt, 4096 iterations; the
    # server's final message carries v = HMAC(ServerKey, AuthMessage).
    import base64
    import hashlib
    import hmac

    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    secret = scram_secret("pencil", salt, 4096)
    head, keys = secret.split("$", 1)[1].split("$")
    assert head == "4096:W22ZaJ0SNY7soEsUEjb6gQ=="
    server_key = base64.b64decode(keys.split(":")[1])
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth_message = (f"n=user,r=rOprNGfwEbeRWgbNEkqO,r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,"
                    f"i=4096,c=biws,r={nonce}")
    signature = hmac.new(server_key, auth_message.encode(), hashlib.sha256).digest()
    assert base64.b64encode(signature).decode() == \
        "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_the_salt_is_stable_per_user_and_password_and_changes_with_either():
    assert scram_salt(APP_USER, APP_PASSWORD) == scram_salt(APP_USER, APP_PASSWORD)
    assert scram_salt(APP_USER, APP_PASSWORD) != scram_salt(ADMIN, APP_PASSWORD)
    assert scram_salt(APP_USER, APP_PASSWORD) != scram_salt(APP_USER, APP_PASSWORD + "x")


def test_the_userlist_holds_scram_secrets_and_no_password():
    text = scram_userlist(PASSWORDS)
    assert text == scram_userlist(PASSWORDS)  # no diff, no pod roll, on every run
    lines = text.splitlines()
    assert len(lines) == len(PASSWORDS)
    assert all('" "SCRAM-SHA-256$4096:' in line for line in lines)
    assert not any(p in text for p in PASSWORDS.values())


def test_ini_closes_clients_idle_in_a_transaction_after_the_thresholds_timeout():
    from config.thresholds import PGBOUNCER_IDLE_TRANSACTION_TIMEOUT_S

    pgb = parse(render_pgbouncer_ini(prod_ini()))["pgbouncer"]
    assert int(pgb["idle_transaction_timeout"]) == PGBOUNCER_IDLE_TRANSACTION_TIMEOUT_S > 0
    assert PGBOUNCER_IDLE_TRANSACTION_TIMEOUT_S <= seed.APP_POOL_ACQUIRE_TIMEOUT_S


def test_the_instances_sidecar_listens_on_loopback_and_the_pods_on_every_interface(build):
    sidecar = build(pgbouncer(kubernetes=False, parameter_path="/sofacover/test/pgbouncer"))
    (ini,) = [r for r in of_type(sidecar.resources, "aws:ssm/parameter:Parameter")
              if r.inputs["name"].endswith("/pgbouncer.ini")]
    assert parse(ini.inputs["insecureValue"])["pgbouncer"]["listen_addr"] == "127.0.0.1"
    assert sidecar.outputs["host"] == "127.0.0.1"
    pods = build(pgbouncer())
    assert parse(pods.outputs["ini"])["pgbouncer"]["listen_addr"] == "0.0.0.0"


def test_the_shipped_bundle_is_unexpired_self_signed_rds_roots():
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    certs = x509.load_pem_x509_certificates(RDS_CA_BUNDLE.read_bytes())
    assert len(certs) > 50
    today = dt.datetime.now(dt.UTC)
    for cert in certs:
        assert cert.issuer == cert.subject  # a root
        assert cert.not_valid_before_utc <= today < cert.not_valid_after_utc
        assert x509.BasicConstraints(ca=True, path_length=None) == \
            cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        key = cert.public_key()  # the bytes are intact: its own signature verifies
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                       cert.signature_hash_algorithm)
        else:
            assert isinstance(key, ec.EllipticCurvePublicKey)
            key.verify(cert.signature, cert.tbs_certificate_bytes,
                       ec.ECDSA(cert.signature_hash_algorithm))


@pytest.mark.parametrize("region", [seed.PRIMARY_REGION, *seed.SECONDARY_REGIONS])
def test_each_serving_region_has_the_root_of_the_databases_ca(region):
    from cryptography import x509

    from components.database import RDS_CA_IDENTIFIER

    (cert,) = x509.load_pem_x509_certificates(rds_ca_roots([region], RDS_CA_IDENTIFIER).encode())
    cn = cert.subject.rfc4514_string()
    assert f"Amazon RDS {region} Root CA {RDS_CA_ROOTS[RDS_CA_IDENTIFIER]}" in cn


def test_a_region_or_ca_the_bundle_lacks_is_refused_by_name():
    with pytest.raises(ValueError, match="no 'Amazon RDS mars-north-1 Root CA RSA2048 G1'"):
        rds_ca_roots(["mars-north-1"], "rds-ca-rsa2048-g1")
    with pytest.raises(ValueError, match="ca_identifier is 'rds-ca-2019'"):
        rds_ca_roots([seed.PRIMARY_REGION], "rds-ca-2019")


def test_pods_read_the_ca_from_the_config_map_and_fetch_nothing_at_start(build):
    from components.database import RDS_CA_IDENTIFIER

    run = build(pgbouncer())
    (cm,) = of_type(run.resources, "kubernetes:core/v1:ConfigMap")
    assert cm.inputs["data"]["rds-ca.pem"] == rds_ca_roots(SERVER_REGIONS, RDS_CA_IDENTIFIER)
    pod = deployment(run.resources)["template"]["spec"]
    assert "initContainers" not in pod
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"]
                if m["mountPath"] == RDS_CA_FILE]
    assert mount["subPath"] == "rds-ca.pem" and mount["name"] == "config"
    ini = parse(run.outputs["ini"])["pgbouncer"]
    assert ini["server_tls_ca_file"] == RDS_CA_FILE
    assert ini["server_tls_sslmode"] == "verify-full"


def test_instances_get_the_ca_through_ssm_with_the_config(build):
    from components.database import RDS_CA_IDENTIFIER

    run = build(pgbouncer(kubernetes=False, parameter_path="/sofacover/test/pgbouncer"))
    params = {r.inputs["name"]: r for r in of_type(run.resources, "aws:ssm/parameter:Parameter")}
    ca = params["/sofacover/test/pgbouncer/rds-ca.pem"]
    assert ca.inputs["insecureValue"] == rds_ca_roots(SERVER_REGIONS, RDS_CA_IDENTIFIER)
    # SSM's Standard tier holds 4 KB.
    assert len(ca.inputs["insecureValue"].encode()) <= 4096


def test_postgresql_accepts_the_password_against_the_computed_secret(tools, postgres,
                                                                      tmp_path):
    # Straight at PostgreSQL (host auth is scram-sha-256): the role's secret is ours.
    pg = postgres
    ok = engines.pgbench(tools, port=pg.port, user=APP_USER, password=APP_PASSWORD,
                         dbname="sofacover", clients=1, threads=1, transactions=1,
                         script=_select_one(tmp_path))
    assert ok.error is None, ok.error
    bad = engines.pgbench(tools, port=pg.port, user=APP_USER, password=APP_PASSWORD + "x",
                          dbname="sofacover", clients=1, threads=1, transactions=1,
                          script=_select_one(tmp_path))
    assert bad.error is not None and "authentication failed" in bad.error


IDLE_S = 3
"""How long each client idles inside its transaction: past the short timeout, within the long."""


def test_pgbouncer_closes_a_client_idle_in_a_transaction(tools, postgres):
    # Idle 3 s inside a transaction: past a 1 s timeout the client is cut, within 10 s not.
    # The two PgBouncers (the timeout is global to one) and their clients run side by side,
    # so the 3 s are waited once.
    pg = postgres
    assert 1 < IDLE_S < 10
    env = {"PGPASSWORD": APP_PASSWORD, "PGSSLMODE": "disable", "PGCONNECT_TIMEOUT": "30",
           "PATH": "/usr/bin:/bin"}
    with contextlib.ExitStack() as stack:
        bouncers, sessions = {}, {}
        for timeout_s in (1, 10):
            port, workdir = engines.free_port(), bouncer_dir(pg)
            ini = local_ini(pg, tools, workdir, port, max_server_connections=10, instances=2,
                            idle_transaction_timeout_s=timeout_s)
            bouncers[timeout_s] = stack.enter_context(
                engines.PgBouncer(tools, ini, scram_userlist(PASSWORDS), workdir, port))
            sessions[timeout_s] = stack.enter_context(subprocess.Popen(
                [str(tools.psql), "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                 "-p", str(port), "-U", APP_USER, "-d", "sofacover"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
        for session in sessions.values():
            session.stdin.write("BEGIN;\nSELECT 1;\n")
            session.stdin.flush()
        for timeout_s, session in sessions.items():  # both are inside their transaction
            opened = [session.stdout.readline().strip() for _ in range(2)]
            assert opened == ["BEGIN", "1"], (timeout_s, opened, bouncers[timeout_s].log())
        time.sleep(IDLE_S)
        outs = {t: (*session.communicate("SELECT 2;\nCOMMIT;\n", timeout=30),
                    session.returncode) for t, session in sessions.items()}
        logs = {t: pgb.log() for t, pgb in bouncers.items()}
    stdout, stderr, returncode = outs[10]
    assert returncode == 0 and stdout.split() == ["2", "COMMIT"], (stdout, stderr, logs[10])
    assert "idle transaction timeout" not in logs[10], logs[10]
    stdout, stderr, returncode = outs[1]
    assert returncode != 0 and "2" not in stdout.split(), (stdout, stderr)
    assert "idle transaction timeout" in logs[1], logs[1]


def _sign_server_certificate(pg: engines.Postgres) -> Path:
    """Give the test server a certificate for 127.0.0.1 signed by a throw-away CA (as RDS's
    is signed by its region's root) and return the CA's PEM file. The server keeps its key;
    the CA's is ECDSA P-384 like RDS's rds-ca-ecc384-g1 roots (milliseconds to make, where an
    RSA key takes up to a second)."""
    ca, key = pg.dir / "test-ca.pem", pg.dir / "test-ca.key"
    csr = pg.dir / "server.csr"
    run = functools.partial(subprocess.run, check=True, capture_output=True)
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384",
         "-nodes", "-days", "1", "-subj", "/CN=sofacover test root", "-keyout", str(key),
         "-out", str(ca)])
    run(["openssl", "req", "-new", "-key", str(pg.dir / "server.key"), "-subj", "/CN=127.0.0.1",
         "-out", str(csr)])
    ext = pg.dir / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(key),
         "-CAcreateserial", "-days", "1", "-extfile", str(ext),
         "-out", str(pg.dir / "server.crt")])
    (pg.dir / "server.key").chmod(0o600)
    engines._own(pg.dir)
    pg.psql("SELECT pg_reload_conf()")  # PostgreSQL re-reads its certificate on reload
    return ca


@pytest.fixture(scope="module")
def server_ca(server) -> Path:
    """The module's server, from here on with a certificate signed by a throw-away CA (made
    once, not per test; PgBouncer in require mode does not mind which certificate)."""
    return _sign_server_certificate(server)


@pytest.mark.parametrize("trusted", ["signing-ca", "rds-roots"])
def test_verify_full_logs_in_only_to_a_server_its_ca_file_vouches_for(tools, postgres,
                                                                      server_ca, tmp_path,
                                                                      trusted):
    from components.database import RDS_CA_IDENTIFIER

    pg = postgres
    workdir = bouncer_dir(pg)
    ca_file = workdir / "ca.pem"
    ca_file.write_text(server_ca.read_text() if trusted == "signing-ca"
                       else rds_ca_roots(SERVER_REGIONS, RDS_CA_IDENTIFIER))
    port = engines.free_port()
    ini = local_ini(pg, tools, workdir, port, max_server_connections=10, instances=2,
                    server_tls_sslmode="verify-full", server_tls_ca_file=str(ca_file))
    login = functools.partial(engines.pgbench, tools, port=port, user=APP_USER,
                              password=APP_PASSWORD, dbname="sofacover", clients=1, threads=1,
                              transactions=1, script=_select_one(tmp_path))
    with engines.PgBouncer(tools, ini, scram_userlist(PASSWORDS), workdir, port) as pgb:
        if trusted == "signing-ca":
            result = login()
            assert result.error is None and result.failed == 0, f"{result.error}\n{pgb.log()}"
            return
        # The RDS roots do not vouch for this server: no server login. PgBouncer logs the
        # failed handshake at once and keeps the client waiting for a server (until the
        # client's connect timeout): wait for the log line, not for the timeout.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            client = pool.submit(login)
            deadline = time.monotonic() + 30
            while "certificate verify failed" not in pgb.log():
                assert time.monotonic() < deadline and not client.done(), pgb.log()
                time.sleep(0.02)
            # The client has no session: still waiting to log in, no server connection.
            clients = pgb.admin("SHOW CLIENTS", ADMIN, PASSWORDS[ADMIN])
            (app,) = [c for c in clients if c[1] == APP_USER]  # type, user, database, state
            assert app[2:4] == ["sofacover", "waiting"], clients
            # PgBouncer may be retrying the handshake (a server in state "new", not yet
            # logged in; SHOW SERVERS in pgbouncer.org/usage.html): none may be past it.
            servers = pgb.admin("SHOW SERVERS", ADMIN, PASSWORDS[ADMIN])
            assert [s for s in servers if s[3] != "new"] == [], servers
            assert not client.done(), client.result()
            pgb.stop()  # ends the wait
            result = client.result(timeout=30)
        assert result.error is not None and result.transactions == 0, result
        assert "certificate verify failed" in pgb.log(), pgb.log()
