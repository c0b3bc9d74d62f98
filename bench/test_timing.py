"""How long the test suite takes: wall time, CPU time (the run and every process it starts)
and the machine's load around it. The machine is shared, so the CPU time is the comparable
figure and the load says how much the wall time was stretched.

    python bench/test_timing.py [--runs 3] [-- extra pytest arguments]

Prints one line per run (and the failed tests, as pytest's summary names them); writes
nothing. Figures: docs/benchmarks.md ("Test time").
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="how many runs (default 1)")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments, after --")
    opts = parser.parse_args()
    if opts.runs < 1:
        parser.error(f"--runs is {opts.runs}; it must be at least 1")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; "
          f"pytest -q -p no:cacheprovider {' '.join(opts.pytest_args)}")
    print(f"{'run':>3}  {'wall s':>7}  {'cpu s':>7}  {'load before/after':>17}  result")
    worst = 0
    for n in range(1, opts.runs + 1):
        before = os.getloadavg()[0]
        start_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               *opts.pytest_args], cwd=ROOT, capture_output=True, text=True)
        wall = time.monotonic() - start
        end_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (end_cpu.ru_utime - start_cpu.ru_utime) + (end_cpu.ru_stime - start_cpu.ru_stime)
        lines = done.stdout.strip().splitlines()
        summary = next((ln for ln in reversed(lines) if re.search(r"\d+ (passed|failed)", ln)),
                       lines[-1] if lines else done.stderr.strip()[-200:])
        print(f"{n:>3}  {wall:7.1f}  {cpu:7.1f}  {before:8.2f}/{os.getloadavg()[0]:<8.2f}  "
              f"{summary.strip('= ')}", flush=True)
        for line in lines:  # which tests failed, as pytest's -ra summary names them
            if line.startswith(("FAILED ", "ERROR ")):
                print(f"     {line}", flush=True)
        worst = max(worst, done.returncode)
    return worst


if __name__ == "__main__":
    sys.exit(main())
