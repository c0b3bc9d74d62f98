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
