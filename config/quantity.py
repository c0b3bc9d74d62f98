"""Kubernetes resource quantities ("250m", "1", "512Mi", "2Gi") as numbers, for the rules
that compare them: the config (limits not below requests), the preflight (what fits on the
nodes) and the capacity model. Source: k8s.io/apimachinery resource.Quantity (the decimal
suffixes k, M, G, the binary Ki, Mi, Gi, Ti, and m for milli)."""

from __future__ import annotations

import math
import re
from typing import Any

_QUANTITY = re.compile(r"^([0-9.]+)(m|Ki|Mi|Gi|Ti|k|M|G)?$")
_SCALE = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20,
          "Gi": 2**30, "Ti": 2**40}


def cpu_millis(q: Any) -> int:
    """CPU in millicores (0 for none or an unreadable quantity)."""
    m = _QUANTITY.match(str(q or 0))
    return 0 if m is None else math.ceil(float(m[1]) * _SCALE[m[2]] * 1000)


def memory_mib(q: Any) -> int:
    """Memory in MiB, rounded up (0 for none or an unreadable quantity)."""
    m = _QUANTITY.match(str(q or 0))
    return 0 if m is None else math.ceil(float(m[1]) * _SCALE[m[2]] / 2**20)
