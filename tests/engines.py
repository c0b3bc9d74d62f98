"""Real PostgreSQL and PgBouncer on loopback, for the real-engine tests and the benchmark.

Each `Postgres` is its own cluster: a copy of one cluster initdb'd once per process, in a
temporary directory, its own free port on 127.0.0.1, its unix socket in that directory, TLS
with a throw-away self-signed certificate (so PgBouncer's server_tls_sslmode=require is
exercised). Both servers refuse to run as root, so as root they run as the `postgres`
system user (the Debian package creates it).

A missing tool is a failure naming the install command, never a skip: these tests are the
only check that the rendered config works.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import resource
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

INSTALL = "apt-get install -y postgresql pgbouncer"
SUPERUSER, SUPERUSER_PASSWORD = "postgres", "postgres-local-test"


class MissingTool(RuntimeError):
    pass


@dataclass(frozen=True)
class Tools:
    bindir: Path
    """PostgreSQL server binaries: initdb, pg_ctl, postgres."""
    pgbouncer: Path
    pgbench: Path
    psql: Path

    @property
    def pgbouncer_version(self) -> tuple[int, int]:
        out = subprocess.run([str(self.pgbouncer), "--version"], capture_output=True,
                             text=True, check=True).stdout
        match = re.search(r"PgBouncer (\d+)\.(\d+)", out)
        if not match:
            raise MissingTool(f"cannot read the PgBouncer version from {out!r}")
        return int(match[1]), int(match[2])


def find_tools() -> Tools:
    """The PostgreSQL and PgBouncer binaries, or an error with the install command."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    bindir = candidates[-1].parent if candidates else None
    if bindir is None and shutil.which("initdb"):
        bindir = Path(shutil.which("initdb")).parent  # type: ignore[arg-type]
    found = {
        "initdb": bindir,
        "pgbouncer": shutil.which("pgbouncer") or _first(["/usr/sbin/pgbouncer"]),
        "pgbench": (bindir / "pgbench" if bindir and (bindir / "pgbench").exists()
                    else shutil.which("pgbench")),
        "psql": shutil.which("psql") or (bindir / "psql" if bindir else None),
    }
    missing = [name for name, path in found.items() if not path]
    if missing:
        raise MissingTool(f"{', '.join(missing)} not found; install them with: {INSTALL}")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise MissingTool("running as root needs the `postgres` user to start the "
                              f"servers; it comes with the package: {INSTALL}") from None
    assert bindir is not None
    return Tools(bindir=bindir, pgbouncer=Path(found["pgbouncer"]),  # type: ignore[arg-type]
                 pgbench=Path(found["pgbench"]), psql=Path(found["psql"]))  # type: ignore


def _first(paths: list[str]) -> str | None:
    return next((p for p in paths if os.access(p, os.X_OK)), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        for p in [path, *path.rglob("*")]:
            os.chown(p, entry.pw_uid, entry.pw_gid)


def raise_open_files(limit: int) -> None:
    """Raise this process's open-file limit (children inherit it); root may raise the
    hard limit too."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if os.geteuid() == 0 and hard != resource.RLIM_INFINITY and hard < limit:
        hard = limit
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard) if hard !=
                                                resource.RLIM_INFINITY else limit, hard))


class _Started:
    """`with X(...) as x:` starts the engine and always stops it, even if start fails."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Postgres(_Started):
    """A throw-away PostgreSQL cluster on 127.0.0.1:<free port>."""

    def __init__(self, tools: Tools, *, max_connections: int = 100,
                 superuser_reserved_connections: int = 3, ssl: bool = True,
                 settings: dict[str, str] | None = None):
        self.tools = tools
        self.dir = Path(tempfile.mkdtemp(prefix="sofacover-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.max_connections = max_connections
        conf = {
            "listen_addresses": "'127.0.0.1'", "port": str(self.port),
            "unix_socket_directories": f"'{self.dir}'",
            "max_connections": str(max_connections),
            "superuser_reserved_connections": str(superuser_reserved_connections),
            # Throw-away data: trade durability for speed.
            "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
            "shared_buffers": "64MB", "log_min_messages": "warning",
            **(settings or {}),
        }
        if ssl:
            conf.update(ssl="on", ssl_cert_file=f"'{self.dir}/server.crt'",
                        ssl_key_file=f"'{self.dir}/server.key'")
        self.conf = conf
        self.ssl = ssl

    def start(self) -> Postgres:
        # A copy of a cluster initdb'd once per process (with its certificate): initdb and
        # the RSA key are most of a start, and every cluster begins identical anyway.
        template = _template(self.tools)
        shutil.copytree(template / "data", self.data, symlinks=True)
        if self.ssl:
            for name in ("server.key", "server.crt"):
                shutil.copy2(template / name, self.dir / name)
        _own(self.dir)
        with (self.data / "postgresql.conf").open("a") as f:
            f.writelines(f"{k} = {v}\n" for k, v in self.conf.items())
        for attempt in range(3):
            cmd = _as_postgres([str(self.tools.bindir / "pg_ctl"), "-D", str(self.data),
                                "-l", str(self.dir / "postgres.log"), "-w", "-t", "30",
                                "start"])
            done = subprocess.run(cmd, capture_output=True, text=True)
            if not done.returncode:
                return self
            # Another process (a parallel test worker) took the free port between
            # free_port() and the bind: take another one (a later line wins in the file).
            if attempt < 2 and "Address already in use" in self.log():
                self.port = free_port()
                self.conf["port"] = str(self.port)
                with (self.data / "postgresql.conf").open("a") as f:
                    f.write(f"port = {self.port}\n")
                continue
            raise subprocess.CalledProcessError(done.returncode, cmd, done.stdout,
                                                done.stderr + self.log())
        raise AssertionError("unreachable")

    def stop(self) -> None:
        subprocess.run(_as_postgres([str(self.tools.bindir / "pg_ctl"), "-D", str(self.data),
                                     "-m", "immediate", "-w", "stop"]), capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def dsn(self, user: str = SUPERUSER, password: str = SUPERUSER_PASSWORD,
            dbname: str = "postgres") -> str:
        return (f"host=127.0.0.1 port={self.port} user={user} password={password} "
                f"dbname={dbname} sslmode=disable")

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL as the superuser over the unix socket; return unaligned output."""
        out = subprocess.run([str(self.tools.psql), "-X", "-q", "-At", "-v",
                              "ON_ERROR_STOP=1", "-h", str(self.dir), "-p", str(self.port),
                              "-U", SUPERUSER, "-d", dbname, "-c", sql],
                             capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"psql failed: {out.stderr.strip()}")
        return out.stdout.strip()

    def log(self) -> str:
        path = self.dir / "postgres.log"
        return path.read_text() if path.exists() else ""


_templates: dict[Path, Path] = {}


def _template(tools: Tools) -> Path:
    """A fresh cluster (data/) and a throw-away certificate, made once per process and
    copied by each Postgres; removed when the process exits."""
    if tools.bindir in _templates:
        return _templates[tools.bindir]
    folder = Path(tempfile.mkdtemp(prefix="sofacover-pg-template-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    pwfile = folder / "pw"
    pwfile.write_text(SUPERUSER_PASSWORD + "\n")
    # An ECDSA key: milliseconds to make, where an RSA key takes up to a second.
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(folder / "server.key"), "-out", str(folder / "server.crt")],
                   check=True, capture_output=True)
    (folder / "server.key").chmod(0o600)
    _own(folder)
    subprocess.run(_as_postgres([str(tools.bindir / "initdb"), "-D", str(folder / "data"),
                                 "-U", SUPERUSER, f"--pwfile={pwfile}",
                                 "--auth-local=trust", "--auth-host=scram-sha-256",
                                 "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"]),
                   check=True, capture_output=True)
    _templates[tools.bindir] = folder
    return folder


class PgBouncer(_Started):
    """PgBouncer running a given pgbouncer.ini and userlist, in the foreground."""

    def __init__(self, tools: Tools, ini: str, userlist: str, workdir: Path, port: int,
                 open_files: int = 8192):
        self.tools, self.ini_text, self.userlist = tools, ini, userlist
        self.dir, self.port, self.open_files = workdir, port, open_files
        self.proc: subprocess.Popen | None = None

    def start(self) -> PgBouncer:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "pgbouncer.ini").write_text(self.ini_text)
        (self.dir / "userlist.txt").write_text(self.userlist)
        (self.dir / "userlist.txt").chmod(0o600)
        _own(self.dir)
        cmd = [str(self.tools.pgbouncer)]
        if os.geteuid() == 0:
            cmd += ["-u", "postgres"]  # PgBouncer drops root itself
        cmd.append(str(self.dir / "pgbouncer.ini"))
        limit = self.open_files
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=(self.dir / "stderr.log").open("w"),
                                     preexec_fn=lambda: raise_open_files(limit))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited {self.proc.returncode}: {self.log()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1",
                                                                         self.port), 0.2):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"pgbouncer did not listen on {self.port}: {self.log()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        return "\n".join(p.read_text() for p in (self.dir / "stderr.log",
                                                 self.dir / "pgbouncer.log") if p.exists())

    def admin(self, command: str, user: str, password: str) -> list[list[str]]:
        """A console command (SHOW POOLS...) over the simple query protocol, via psql."""
        out = subprocess.run([str(self.tools.psql), "-X", "-At", "-F", "\t", "-h",
                              "127.0.0.1", "-p", str(self.port), "-U", user, "-d",
                              "pgbouncer", "-c", command], capture_output=True, text=True,
                             env={**os.environ, "PGPASSWORD": password,
                                  "PGSSLMODE": "disable"})
        if out.returncode:
            raise RuntimeError(f"pgbouncer console: {out.stderr.strip()}")
        return [line.split("\t") for line in out.stdout.splitlines() if line]


@dataclass(frozen=True)
class BenchResult:
    clients: int
    transactions: int
    failed: int
    tps: float
    latency_ms: float | None
    connect_ms: float | None
    """pgbench's "initial connection time": every client's login, before the clock runs."""
    error: str | None
    seconds: float


def pgbench(tools: Tools, *, port: int, user: str, password: str, dbname: str,
            clients: int, threads: int, seconds: int | None = None,
            transactions: int | None = None, select_only: bool = True,
            script: Path | None = None, connect_timeout: int = 30) -> BenchResult:
    """Run pgbench (simple protocol, no vacuum) and parse what it reports."""
    cmd = [str(tools.pgbench), "-n", "-h", "127.0.0.1", "-p", str(port), "-U", user,
           "-c", str(clients), "-j", str(threads)]
    cmd += ["-T", str(seconds)] if seconds else ["-t", str(transactions or 10)]
    if script:
        cmd += ["-f", str(script)]
    elif select_only:
        cmd.append("-S")
    cmd.append(dbname)
    start = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True,
                         env={**os.environ, "PGPASSWORD": password, "PGSSLMODE": "disable",
                              "PGCONNECT_TIMEOUT": str(connect_timeout)},
                         preexec_fn=lambda: raise_open_files(4 * clients + 1024))
    elapsed = time.monotonic() - start
    text = out.stdout + out.stderr

    def number(pattern: str, cast=float):  # noqa: ANN001, ANN202
        m = re.search(pattern, text)
        return cast(m[1]) if m else None

    processed = number(r"number of transactions actually processed: (\d+)", int) or 0
    failed = number(r"number of failed transactions: (\d+)", int) or 0
    tps = number(r"tps = ([\d.]+) \((?:without initial connection time|excluding)") or 0.0
    latency = number(r"latency average = ([\d.]+) ms")
    connect = number(r"initial connection time = ([\d.]+) ms")
    error = None
    if out.returncode:
        lines = [ln for ln in text.splitlines() if "error" in ln.lower() or "fatal" in
                 ln.lower()]
        error = (lines[0] if lines else text.strip().splitlines()[-1])[:300]
    return BenchResult(clients, processed, failed, tps, latency, connect, error, elapsed)
