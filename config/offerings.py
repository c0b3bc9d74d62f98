"""What AWS offers, as the stack config checks it: one reader over the project's two sources.

- EC2 instance types and where they are offered: the DescribeInstanceTypes and
  DescribeInstanceTypeOfferings data moto ships (planner/mocks.py reads it; the offline plan
  and the preflight answer from the same files).
- RDS for PostgreSQL majors and instance families, ElastiCache node families and EKS
  versions: planner/preflight/data/offerings.yaml, each row dated and sourced there.

Read by file path, not by importing planner.preflight (which imports the plan engine, which
imports this package). Everything is read on first use and cached.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import yaml

OFFERINGS_FILE = Path(__file__).resolve().parents[1] / "planner" / "preflight" / "data" / \
    "offerings.yaml"
# The size part of an EC2, RDS or ElastiCache type name (db.m6i.2xlarge -> 2xlarge), as the
# sizes in moto's DescribeInstanceTypes data are written (nano ... 224xlarge, metal-48xl).
SIZE = re.compile(r"nano|micro|small|medium|large|xlarge|[1-9][0-9]{0,2}xlarge|"
                  r"metal(?:-[1-9][0-9]{0,2}xl)?")


@functools.cache
def offerings() -> dict[str, Any]:
    return yaml.safe_load(OFFERINGS_FILE.read_text())


def source(*path: str) -> str:
    """The `source` of an offerings.yaml entry (for the error message)."""
    node: Any = offerings()
    for part in path:
        node = node[part]
    return str(node["source"] if isinstance(node, dict) else node[0]["source"])


def rds_families() -> tuple[str, ...]:
    return tuple(offerings()["rds_postgres"]["instance_families"]["families"])


def rds_majors() -> tuple[str, ...]:
    return tuple(str(row["major"]) for row in offerings()["rds_postgres"]["majors"])


def cache_families() -> tuple[str, ...]:
    return tuple(offerings()["elasticache"]["node_families"]["families"])


def eks_versions() -> tuple[str, ...]:
    return tuple(str(row["version"]) for row in offerings()["eks"]["versions"])


def family_type_problem(value: str, prefix: str, families: tuple[str, ...]) -> str | None:
    """Why `value` is not `<prefix>.<family>.<size>` of one of `families`, or None."""
    parts = value.split(".")
    if len(parts) != 3 or parts[0] != prefix or not SIZE.fullmatch(parts[2]):
        return f"is not a {prefix}.<family>.<size> name like {families[0]}.large"
    if f"{parts[0]}.{parts[1]}" not in families:
        return f"is of family {parts[0]}.{parts[1]}, which is not offered; families: " \
            + ", ".join(families)
    return None


# Cluster Autoscaler is released per Kubernetes minor and meant to run with that minor
# (kubernetes/autoscaler cluster-autoscaler/README.md, "Releases"). Chart and image pinned
# per cluster minor, read from the tags of kubernetes/autoscaler on 2026-11-27:
# cluster-autoscaler-chart-9.59.0 (5a0b98e45f896e98132737240ac131a519d3b33d, appVersion
# 1.35.0), cluster-autoscaler-1.35.2 (2d42588803c71fe9b35dcd9e3669ac6bb550ca22);
# cluster-autoscaler-chart-9.53.0 (a2db9eb71c285fe5779c622e9255b17b08e78147, appVersion
# 1.34.2), cluster-autoscaler-1.34.5 (cb2123ed13148c38fbdb1ede42d8e99761ee2909).
CLUSTER_AUTOSCALER_RELEASES: dict[str, tuple[str, str]] = {
    # cluster minor: (chart version, image tag)
    "1.34": ("9.53.0", "v1.34.5"),
    "1.35": ("9.59.0", "v1.35.2"),
}


def ec2_instance_types() -> frozenset[str]:
    """Every EC2 instance type AWS describes (moto's DescribeInstanceTypes data)."""
    from planner.mocks import instance_types  # planner.mocks imports nothing of config

    return frozenset(instance_types())


def ec2_offered(region: str, instance_type: str) -> bool:
    from planner.mocks import instance_type_offered

    return instance_type_offered(region, instance_type)


def ec2_source() -> str:
    from planner.mocks import MOTO_VERSION

    return f"EC2 DescribeInstanceTypes/DescribeInstanceTypeOfferings as moto {MOTO_VERSION} " \
        "ships them"
