"""The app's endpoints in one region: where it writes, where it reads, where its sessions are.

A ConfigMap in the app's namespace (`sofacover-endpoints`), one key per setting, so the
services read them as environment variables (`envFrom`) and a failover that moves the
writer changes one object the plan shows. Writes and reads both go through the region's
own PgBouncer: `sofacover` is the write pool (the primary, across the peering from a
secondary; the region's own database once promoted), `sofacover_ro` the read pool (the
region's replica). Redis is the region's own replication group: sessions stay in the
region the edge keeps the user in (components/edge.py, session affinity).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.workloads import ENDPOINTS_CONFIG_MAP as CONFIG_MAP_NAME  # what pods read


@dataclass(frozen=True)
class AppEndpointsArgs:
    """Inputs of `AppEndpoints`."""

    namespace: pulumi.Input[str]
    """The app's namespace (pass the Namespace's name Output, so this waits for it)."""
    region: str
    write_region: str
    """Where the writer is: the primary's region, or this one once promoted."""
    pgbouncer_host: pulumi.Input[str]
    pgbouncer_port: int
    write_database: str
    """The PgBouncer database entry for writes (`sofacover`)."""
    read_database: str
    """The entry for reads: `sofacover_ro` where the region has a replica, else the writer."""
    redis_host: pulumi.Input[str]
    redis_reader_host: pulumi.Input[str | None]
    redis_port: int


def _reader_or_primary(hosts: list[str | None]) -> str:
    """The reader endpoint, or the primary's where there is none (cluster mode)."""
    reader, primary = hosts
    return reader or str(primary)


class AppEndpoints(pulumi.ComponentResource):
    """The `sofacover-endpoints` ConfigMap of one region's app."""

    data: pulumi.Output[dict[str, str]]
    """What the ConfigMap holds (no secrets: passwords stay in Secrets)."""

    def __init__(self, name: str, args: AppEndpointsArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sofacover:regional:AppEndpoints", name, None, opts)
        port = str(args.pgbouncer_port)
        data: dict[str, pulumi.Input[str]] = {
            "SOFACOVER_REGION": args.region,
            "SOFACOVER_WRITE_REGION": args.write_region,
            "DATABASE_WRITE_HOST": args.pgbouncer_host,
            "DATABASE_WRITE_PORT": port,
            "DATABASE_WRITE_NAME": args.write_database,
            "DATABASE_READ_HOST": args.pgbouncer_host,
            "DATABASE_READ_PORT": port,
            "DATABASE_READ_NAME": args.read_database,
            "REDIS_HOST": args.redis_host,
            # Without a reader endpoint (cluster mode), reads go to the primary endpoint.
            "REDIS_READER_HOST": pulumi.Output.all(args.redis_reader_host,
                                                   args.redis_host).apply(_reader_or_primary),
            "REDIS_PORT": str(args.redis_port),
            "REDIS_TLS": "true",  # the replication groups have in-transit encryption on
        }
        config = k8s.core.v1.ConfigMap(
            f"{name}-endpoints",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=CONFIG_MAP_NAME, namespace=args.namespace,
                labels={"app.kubernetes.io/part-of": "sofacover"}),
            data=data, opts=pulumi.ResourceOptions(parent=self))
        self.data = config.data
        self.register_outputs({"data": self.data})
