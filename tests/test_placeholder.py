"""The placeholder app answers as the ALB and the kubelet expect: real nginx on loopback runs
the server block both platforms give it, as a non-root user, on a read-only config, and
answers the health path with 200 on the service's port."""

from __future__ import annotations

import os
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
