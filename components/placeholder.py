"""The placeholder app, until the app's own images exist: nginx-unprivileged (uid 101, pid
and temp files in /tmp, so it runs on a read-only root filesystem) with a server block that
listens on the service's port and answers its health path. Both platforms run it the same
way: Kubernetes mounts the block from a ConfigMap (components/workloads.py), the ec2
platform writes it from user data (components/compute.py). Pure: no provider imports."""

from __future__ import annotations

from config.presets import PLACEHOLDER_IMAGE

__all__ = ["PLACEHOLDER_CONF", "PLACEHOLDER_IMAGE", "placeholder_server_block"]

# Where nginx-unprivileged reads its server block.
PLACEHOLDER_CONF = "/etc/nginx/conf.d/default.conf"


def placeholder_server_block(port: int, health_path: str) -> str:
    """The placeholder's nginx server: the service's port, 200 on its health path (an
    exact location matches the path alone: a health check's ?query is not part of it)."""
    path = health_path.split("?", 1)[0]
    return "\n".join([
        "server {",
        f"    listen {port};",
        f"    location = {path} {{",
        "        access_log off;",
        "        default_type text/plain;",
        '        return 200 "ok\\n";',
        "    }",
        "    location / {",
        "        root /usr/share/nginx/html;",
        "        index index.html;",
        "    }",
        "}",
        "",
    ])
