"""Preflight rules: aws (see planner/preflight/__init__.py)."""

from __future__ import annotations

from planner.preflight import Context, rule  # noqa: F401
