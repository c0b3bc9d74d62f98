"""Time the offline plan against its floor (interpreter plus provider imports).

Each case runs as a fresh process, several times; the script prints min and median
wall-clock seconds and peak RSS. Run it with `make bench`; figures go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOFACOVER = [str(Path(sys.executable).with_name("sofacover"))]

CASES: list[tuple[str, list[str]]] = [
    ("python -c pass (interpreter)", [sys.executable, "-c", "pass"]),
    ("import pulumi", [sys.executable, "-c", "import pulumi"]),
    ("import pulumi, pulumi_aws, pydantic (top-level packages only)",
     [sys.executable, "-c", "import pulumi, pulumi_aws, pydantic"]),
    ("floor: + the pulumi_aws modules the program touches",
     # pulumi_aws loads its modules lazily: touching a class is what pays for the import.
     [sys.executable, "-c", "import pulumi, pydantic, pulumi_aws as a; a.ec2.Vpc; a.iam.Role; "
      "a.cloudwatch.LogGroup; a.rds.Instance; a.elasticache.ReplicationGroup; a.s3.Bucket; "
      "a.lb.LoadBalancer; a.autoscaling.Group; a.acm.Certificate; a.ssm.Parameter; "
      "a.kms.Key; a.sns.Topic; a.vpc.SecurityGroupIngressRule; a.Provider"]),
    ("import pulumi_cloudflare (paid only by the edge stack)",
     [sys.executable, "-c", "import pulumi_cloudflare"]),
    ("sofacover plan (prod)", [*SOFACOVER, "plan"]),
    ("sofacover plan --env prod (5 stacks)", [*SOFACOVER, "plan", "--env", "prod"]),
]


def run(cmd: list[str]) -> tuple[float, int]:
    """Wall-clock seconds and peak RSS (KiB) of one fresh process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                            env={**os.environ, "COLUMNS": "120"})
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}")
    return elapsed, usage.ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="runs per case (default 5)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.runs} runs per case")
    print(f"{'case':<66} {'min s':>7} {'median s':>9} {'peak RSS MiB':>13}")
    run(CASES[2][1])  # warm the page cache so the first case is not charged for it
    for label, cmd in CASES:
        times, rss = [], 0
        for _ in range(args.runs):
            elapsed, peak = run(cmd)
            times.append(elapsed)
            rss = max(rss, peak)
        print(f"{label:<66} {min(times):>7.2f} {statistics.median(times):>9.2f} "
              f"{rss / 1024:>13.0f}")


if __name__ == "__main__":
    main()
