"""The placeholder app answers as the ALB and the kubelet expect: real nginx on loopback runs
the server block both platforms give it, as a non-root user, on a read-only config, and
answers the health path with 200 on the service's port."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from components.compute import render_app_user_data
from components.placeholder import PLACEHOLDER_IMAGE, placeholder_server_block
from tests.engines import MissingTool

INSTALL = "apt-get install -y nginx"


def _nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                      else None)
    if not found:
        raise MissingTool(f"nginx not found; install it with: {INSTALL}")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def placeholder():
    """nginx with the placeholder's server block, as nginx-unprivileged runs it: pid and
    temp files in a scratch dir, not root when the test runs as root."""
    port = _free_port()
    scratch = Path(tempfile.mkdtemp(prefix="placeholder-"))
    # Loopback only, and the site root in the scratch dir; the rest is the block as shipped.
    block = placeholder_server_block(port, "/healthz?probe=alb").replace(
        f"listen {port};", f"listen 127.0.0.1:{port};").replace(
        "/usr/share/nginx/html", str(scratch / "html"))
    (scratch / "default.conf").write_text(block)
    (scratch / "html").mkdir()
    (scratch / "html" / "index.html").write_text("placeholder\n")
    user = ""
    if os.geteuid() == 0:
        user = "user nobody nogroup;"
        os.chmod(scratch, 0o755)
    conf = scratch / "nginx.conf"
    conf.write_text(f"""
{user}
daemon off;
pid {scratch}/nginx.pid;
error_log {scratch}/error.log;
events {{}}
http {{
    client_body_temp_path {scratch}/body; proxy_temp_path {scratch}/proxy;
    fastcgi_temp_path {scratch}/fcgi; uwsgi_temp_path {scratch}/uwsgi;
    scgi_temp_path {scratch}/scgi; access_log off;
    include {scratch}/default.conf;
}}
""")
    nginx = _nginx()
    subprocess.run([nginx, "-t", "-c", str(conf)], check=True, capture_output=True)
    proc = subprocess.Popen([nginx, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(scratch, ignore_errors=True)


def test_the_health_path_answers_200_on_the_service_port(placeholder):
    with urllib.request.urlopen(f"{placeholder}/healthz?probe=alb", timeout=5) as resp:
        assert resp.status == 200 and resp.read() == b"ok\n"


def test_other_paths_are_not_mistaken_for_health(placeholder):
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{placeholder}/healthzz", timeout=5)
    assert caught.value.code == 404


def test_the_ec2_user_data_writes_the_same_block_and_mounts_it():
    script = render_app_user_data(PLACEHOLDER_IMAGE, 8080, "us-east-1", None, "/healthz")
    assert placeholder_server_block(8080, "/healthz").rstrip("\n") in script
    assert "-v /etc/sofacover/placeholder.conf:/etc/nginx/conf.d/default.conf:ro" in script
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    # Another image gets no placeholder config.
    assert "placeholder.conf" not in render_app_user_data("ghcr.io/sofacover/app:1.0", 8080)


def test_ec2_boot_starts_the_app_without_waiting_for_the_databases_config(tmp_path):
    """The user data runs with stand-ins for dnf, systemctl, docker, curl and aws (whose
    SSM parameters do not exist yet, as on a first deploy): it must finish, start the app
    container, and leave the sidecar to a systemd unit started without blocking."""
    script = render_app_user_data(PLACEHOLDER_IMAGE, 8080, "us-east-1",
                                  "/sofacover/prod/pgbouncer", "/healthz")
    root = tmp_path / "root"
    # Absolute paths only (not the agent's own .../amazon-cloudwatch-agent/etc/).
    script = re.sub(r"(?<![\w-])/(etc|opt|usr/local/sbin)/", lambda m: f"{root}/{m[1]}/",
                    script)
    agent = root / "opt/aws/amazon-cloudwatch-agent"
    for folder in ("etc/systemd/system", "usr/local/sbin", "etc/sofacover"):
        (root / folder).mkdir(parents=True)
    (agent / "etc").mkdir(parents=True)
    (agent / "bin").mkdir(parents=True)
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    ctl = agent / "bin/amazon-cloudwatch-agent-ctl"
    ctl.write_text(f'#!/bin/sh\necho "agent-ctl $*" >> {log}\n')
    ctl.chmod(0o755)
    for tool, status in (("dnf", 0), ("systemctl", 0), ("docker", 0), ("curl", 0), ("aws", 1)):
        stub = bin_dir / tool
        stub.write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\nexit {status}\n')
        stub.chmod(0o755)
    done = subprocess.run(["bash", "-c", script], env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert not any(c.startswith("aws ") for c in calls), "the boot waited for SSM"
    assert any(c.startswith("docker run -d --name app ") for c in calls)
    # The CloudWatch agent (the 10 s spike alarm's metric) is configured and started.
    assert any(c.startswith("agent-ctl -a fetch-config -m ec2 -s -c file:") for c in calls)
    assert '"AutoScalingGroupName"' in (agent / "etc/amazon-cloudwatch-agent.json").read_text()
    assert "systemctl start --no-block sofacover-pgbouncer.service" in calls
    sidecar = root / "usr/local/sbin/sofacover-pgbouncer"
    subprocess.run(["bash", "-n", str(sidecar)], check=True)
    assert "until aws ssm get-parameter" in sidecar.read_text()
    unit = (root / "etc/systemd/system/sofacover-pgbouncer.service").read_text()
    assert f"ExecStart={root}/usr/local/sbin/sofacover-pgbouncer" in unit
