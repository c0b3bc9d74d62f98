"""2,000 concurrent clients through the generated PgBouncer config, and straight at PostgreSQL.

Not a test: it prints throughput, latency and failures for each case, for docs/benchmarks.md.
Needs the Debian packages (`apt-get install -y postgresql pgbouncer`); as root it runs the
servers as the `postgres` user. Everything listens on 127.0.0.1 only.

    python bench/pgbouncer_bench.py [--clients 2000] [--seconds 90] [--scale 10]

Cases, all against one PostgreSQL with max_connections 100 (3 reserved for superusers):
- pgbouncer: the prod config rendered by components/pgbouncer.py (one of its 2 instances:
  a pool of 50 server connections, max_client_conn 2,500, transaction pooling), with only
  the local host, port and paths substituted; server TLS `require` (the file says
  verify-full with the RDS CA, which a local server cannot present).
- direct: the same clients straight at PostgreSQL.
- direct-97: as many clients as PostgreSQL admits, for the per-connection baseline.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.pgbouncer import PgBouncerIni, render_pgbouncer_ini, render_userlist  # noqa: E402
from config.models import SUPERUSER_RESERVED_CONNECTIONS, DatabaseConfig, PgBouncerConfig  # noqa: E402
from config.presets import PHASES  # noqa: E402
from tests import engines  # noqa: E402

USER, PASSWORD = "sofacover_app", "bench-password"
ADMIN, STATS = "pgbouncer_admin", "pgbouncer_stats"
MAX_CONNECTIONS = 100


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=2000)
    # Long enough to outlast the login storm: 2,000 SCRAM logins take tens of seconds on a
    # small machine, and pgbench's clock starts before them.
    parser.add_argument("--seconds", type=int, default=90)
    parser.add_argument("--scale", type=int, default=10, help="pgbench -i scale (10 = 1M rows)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    opts = parser.parse_args()

    tools = engines.find_tools()
    engines.raise_open_files(4 * opts.clients + 4096)
    pool = PgBouncerConfig.model_validate(PHASES[1]["pgbouncer"])
    db = DatabaseConfig.model_validate(PHASES[1]["database"])
    results: list[tuple[str, engines.BenchResult, str]] = []

    with engines.Postgres(tools, max_connections=MAX_CONNECTIONS) as pg:
        pg.psql(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'")
        pg.psql(f"CREATE DATABASE sofacover OWNER {USER}")
        subprocess.run([str(tools.pgbench), "-i", "-q", "-s", str(opts.scale), "-h",
                        "127.0.0.1", "-p", str(pg.port), "-U", USER, "sofacover"],
                       check=True, capture_output=True,
                       env={**os.environ, "PGPASSWORD": PASSWORD})
        port = engines.free_port()
        workdir = pg.dir / "pgbouncer"
        ini = render_pgbouncer_ini(PgBouncerIni(
            database_host="127.0.0.1", database_port=pg.port,
            database_max_connections=db.max_connections,
            max_server_connections=pool.max_server_connections, instances=pool.replicas,
            max_client_connections=pool.max_client_connections, pool_mode=pool.pool_mode,
            server_tls_sslmode="require", pgbouncer_version=tools.pgbouncer_version,
            listen_addr="127.0.0.1", listen_port=port,
            auth_file=str(workdir / "userlist.txt"), logfile=str(workdir / "pgbouncer.log"),
            pidfile=str(workdir / "pgbouncer.pid")))
        users = {USER: PASSWORD, ADMIN: "admin-bench", STATS: "stats-bench"}
        with engines.PgBouncer(tools, ini, render_userlist(users), workdir, port,
                               open_files=2 * pool.max_client_connections + 4096) as pgb:
            res = engines.pgbench(tools, port=port, user=USER, password=PASSWORD,
                                  dbname="sofacover", clients=opts.clients,
                                  threads=opts.threads, seconds=opts.seconds)
            servers = len(pgb.admin("SHOW SERVERS", ADMIN, users[ADMIN]))
            results.append(("pgbouncer", res, f"{servers} server connections"))
        time.sleep(1)
        res = engines.pgbench(tools, port=pg.port, user=USER, password=PASSWORD,
                              dbname="sofacover", clients=opts.clients, threads=opts.threads,
                              seconds=opts.seconds)
        results.append(("direct", res, f"max_connections {MAX_CONNECTIONS}"))
        usable = MAX_CONNECTIONS - SUPERUSER_RESERVED_CONNECTIONS
        res = engines.pgbench(tools, port=pg.port, user=USER, password=PASSWORD,
                              dbname="sofacover", clients=usable, threads=opts.threads,
                              seconds=opts.seconds)
        results.append((f"direct-{usable}", res, "every connection PostgreSQL admits"))

    version = subprocess.run([str(tools.bindir / "postgres"), "--version"],
                             capture_output=True, text=True).stdout.strip()
    print(f"{version}; PgBouncer {'.'.join(map(str, tools.pgbouncer_version))}; "
          f"{os.cpu_count()} cores; {platform.python_version()}; pgbench -S (select-only), "
          f"scale {opts.scale}, {opts.seconds} s, -j {opts.threads}")
    print(f"{'case':<11} {'clients':>7} {'tps':>9} {'latency ms':>11} {'connect s':>10} "
          f"{'txns':>9} {'failed':>7}  notes")
    for name, r, note in results:
        latency = f"{r.latency_ms:.1f}" if r.latency_ms is not None else "-"
        connect = f"{r.connect_ms / 1000:.1f}" if r.connect_ms is not None else "-"
        print(f"{name:<11} {r.clients:>7} {r.tps:>9.0f} {latency:>11} {connect:>10} "
              f"{r.transactions:>9} {r.failed:>7}  {note}"
              + (f"; ERROR: {r.error}" if r.error else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
