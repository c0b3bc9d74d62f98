"""Hand-written mutation benchmark (issue 14, item 6): a kept set of bugs a real change could
introduce, each run against the tests that should catch it. Not part of CI or `make test`.

Each mutant in bench/mutants.yaml replaces one exact text (it must occur exactly once) in one
file of an isolated copy of the project, runs its test selection there, and is

- killed:   the selection failed (or timed out) with the mutant in place;
- survived: the selection passed, so the tests miss that bug;
- error:    the mutant did not apply (its `old` text is missing or not unique) or its
            selection collected no test.

The copy is `git archive HEAD` (default) or the working tree (`--source worktree`, to try
tests not yet committed) under --workdir; the project's own venv runs the tests with the copy
as cwd and first on PYTHONPATH, so the copy's modules win over the editable install of
the project's checkout (the canary mutants prove it: they must be killed, else the run
stops). Nothing under the project directory is written.

    python bench/mutants.py                 # every mutant (about 25 minutes on 2 cores)
    python bench/mutants.py --only ID ...   # some
    python bench/mutants.py --list
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = ROOT / "bench" / "mutants.yaml"
DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "sofacover-mutants"
# Never copied: environments, caches and VCS data.
SKIP = {".git", ".venv", ".venv-checkov", "__pycache__", ".pytest_cache", ".ruff_cache",
        "node_modules", "sofacover_infra.egg-info"}


@dataclasses.dataclass(frozen=True)
class Mutant:
    id: str
    file: str
    old: str
    new: str
    what: str
    tests: tuple[str, ...]
    runner: str = "pytest"  # or "node" (node --test in workers/)
    canary: bool = False


@dataclasses.dataclass
class Result:
    mutant: Mutant
    status: str  # killed | survived | error
    seconds: float
    detail: str = ""


def load(path: Path = MUTANTS) -> list[Mutant]:
    data = yaml.safe_load(path.read_text())
    mutants = []
    for row in data["mutants"]:
        tests = row["tests"]
        mutants.append(Mutant(id=row["id"], file=row["file"], old=row["old"], new=row["new"],
                              what=row["what"],
                              tests=tuple([tests] if isinstance(tests, str) else tests),
                              runner=row.get("runner", "pytest"),
                              canary=bool(row.get("canary", False))))
    ids = [m.id for m in mutants]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise SystemExit(f"{path}: duplicate ids {sorted(dupes)}")
    return mutants


# -- the isolated copy ------------------------------------------------------------------------

def make_copy(workdir: Path, source: str, overlay: list[str] = ()) -> Path:
    """A fresh copy of the project at workdir/tree (HEAD's files, or the working tree's),
    with `overlay` (project-relative paths) taken from the working tree."""
    tree = workdir / "tree"
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)
    if source == "head":
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "HEAD"],
                                 check=True, capture_output=True).stdout
        with tempfile.TemporaryFile() as f:
            f.write(archive)
            f.seek(0)
            with tarfile.open(fileobj=f) as tar:
                tar.extractall(tree, filter="data")
    else:
        shutil.copytree(ROOT, tree, dirs_exist_ok=True,
                        ignore=lambda _d, names: [n for n in names if n in SKIP])
    for rel in overlay:
        src = ROOT / rel
        if not src.is_file():
            raise SystemExit(f"--overlay {rel}: no such file in {ROOT}")
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, tree / rel)
    # checkov's own venv (tests/test_workloads.py runs it), used read-only.
    if (ROOT / ".venv-checkov").is_dir():
        (tree / ".venv-checkov").symlink_to(ROOT / ".venv-checkov")
    return tree


def env_for(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree) + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
    # No .pyc in the copy: a mutant of the same size written within the second of an
    # earlier compile could otherwise be served from a stale cache.
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def check_isolation(tree: Path, python: str) -> None:
    """The copy's packages are the ones imported there, not the checkout's editable install."""
    code = ("import components, config, planner; "
            "print('\\n'.join(m.__file__ for m in (components, config, planner)))")
    out = subprocess.run([python, "-c", code], cwd=tree, env=env_for(tree), check=True,
                         capture_output=True, text=True).stdout.split()
    wrong = [f for f in out if not Path(f).resolve().is_relative_to(tree.resolve())]
    if wrong:
        raise SystemExit(f"isolation broken: imported {wrong} instead of the copy at {tree}")


def command(m: Mutant, python: str) -> tuple[list[str], str]:
    if m.runner == "node":
        return ["node", "--test", *m.tests], "workers"
    if m.runner != "pytest":
        raise SystemExit(f"{m.id}: unknown runner {m.runner!r}")
    return [python, "-m", "pytest", "-x", "-q", "-rfE", "-p", "no:cacheprovider",
            "-o", "addopts=", *m.tests], "."


def run_tests(tree: Path, cmd: list[str], cwd: str, timeout: float) -> tuple[int | None, str]:
    try:
        proc = subprocess.run(cmd, cwd=tree / cwd, env=env_for(tree), capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "timeout"
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    # The first failing test (what killed the mutant), else the last line.
    failed = [ln for ln in lines if ln.startswith(("FAILED ", "ERROR tests", "not ok "))]
    if any("not found" in ln for ln in lines if ln.startswith("ERROR")):
        failed = [next(ln for ln in lines if "not found" in ln)]
    return proc.returncode, (failed or lines or [""])[0 if failed else -1][:200]


def run_mutant(tree: Path, m: Mutant, python: str, timeout: float) -> Result:
    target = (tree / m.file).resolve()
    if not target.is_relative_to(tree.resolve()):
        raise SystemExit(f"{m.id}: {m.file} is outside the copy")
    start = time.monotonic()
    if not target.exists():
        return Result(m, "error", 0.0, f"{m.file} does not exist")
    original = target.read_text()
    count = original.count(m.old)
    if count != 1:
        return Result(m, "error", 0.0, f"`old` occurs {count} times in {m.file}")
    cmd, cwd = command(m, python)
    try:
        target.write_text(original.replace(m.old, m.new))
        code, tail = run_tests(tree, cmd, cwd, timeout)
    finally:
        target.write_text(original)
    seconds = time.monotonic() - start
    if code is None:
        return Result(m, "killed", seconds, "timeout")
    # 5: no test collected; 4 with "not found": a test path or node id that does not exist
    # (4 is otherwise a conftest the mutant broke: a kill).
    if m.runner == "pytest" and (code == 5 or (code == 4 and "not found" in tail)):
        return Result(m, "error", seconds, f"pytest exit {code}: {tail}")
    return Result(m, "killed" if code else "survived", seconds, tail)


def baseline(tree: Path, mutants: list[Mutant], python: str, timeout: float) -> None:
    """Every selection passes on the unmutated copy, else a kill would mean nothing."""
    groups: dict[str, list[str]] = {}
    for m in mutants:
        if m.runner == "pytest" and any(t.startswith("-") for t in m.tests):
            groups.setdefault(m.id, list(m.tests))  # a -k selection runs on its own
        else:
            bucket = groups.setdefault(m.runner, [])
            bucket.extend(t for t in m.tests if t not in bucket)
    for key, tests in groups.items():
        runner = "node" if key == "node" else "pytest"
        probe = Mutant("baseline", "", "", "", "", tuple(tests), runner)
        cmd, cwd = command(probe, python)
        start = time.monotonic()
        code, tail = run_tests(tree, cmd, cwd, timeout * 3)
        print(f"baseline {key}: exit {code} in {time.monotonic() - start:.0f} s ({tail})",
              flush=True)
        if code != 0:
            raise SystemExit(f"baseline failed for {key}: {tail}")


def table(results: list[Result]) -> str:
    lines = [f"{'id':32} {'status':9} {'s':>5}  what"]
    for r in results:
        flag = " (canary)" if r.mutant.canary else ""
        lines.append(f"{r.mutant.id:32} {r.status:9} {r.seconds:5.0f}  {r.mutant.what}{flag}")
        lines.append(f"{'':32} -> {r.detail}")
    scored = [r for r in results if not r.mutant.canary and r.status != "error"]
    killed = sum(r.status == "killed" for r in scored)
    errors = sum(r.status == "error" for r in results)
    if scored:
        lines.append(f"\nscore: {killed}/{len(scored)} killed = {100 * killed / len(scored):.1f}%"
                     f" (errors: {errors}; canaries not counted)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="+", metavar="ID", help="run these mutants only")
    p.add_argument("--list", action="store_true", help="list the mutants and exit")
    p.add_argument("--source", choices=("head", "worktree"), default="head",
                   help="copy HEAD (default) or the working tree, uncommitted files included")
    p.add_argument("--overlay", nargs="+", default=[], metavar="PATH",
                   help="with --source head: take these files from the working tree")
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    p.add_argument("--timeout", type=float, default=600, help="seconds per mutant")
    p.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"))
    p.add_argument("--no-baseline", action="store_true",
                   help="skip running the selections on the unmutated copy first")
    p.add_argument("--drop-test", nargs="+", default=[], metavar="PATH",
                   help="leave these test files out of every selection (e.g. to show what "
                   "survives without tests/test_mutant_gaps.py)")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)

    mutants = load()
    if args.list:
        for m in mutants:
            print(f"{m.id:32} {m.file:40} {m.what}")
        return 0
    if args.only:
        unknown = set(args.only) - {m.id for m in mutants}
        if unknown:
            raise SystemExit(f"unknown mutant ids: {sorted(unknown)}")
        mutants = [m for m in mutants if m.id in args.only]
    if args.drop_test:
        mutants = [dataclasses.replace(m, tests=tuple(t for t in m.tests
                                                      if t not in args.drop_test))
                   for m in mutants]
    if args.workdir.resolve().is_relative_to(ROOT):
        raise SystemExit("--workdir must be outside the project")

    started = dt.datetime.now()
    tree = make_copy(args.workdir, args.source, args.overlay)
    check_isolation(tree, args.python)
    print(f"copy of {args.source} at {tree}; {len(mutants)} mutants; {os.cpu_count()} cores",
          flush=True)
    if not args.no_baseline:
        baseline(tree, mutants, args.python, args.timeout)
    results = []
    for m in sorted(mutants, key=lambda m: not m.canary):  # canaries first
        r = run_mutant(tree, m, args.python, args.timeout)
        results.append(r)
        print(f"{m.id:32} {r.status:9} {r.seconds:5.0f} s  {r.detail}", flush=True)
        if m.canary and r.status != "killed":
            raise SystemExit(f"canary {m.id} {r.status}: the copy is not what the tests run")
    print()
    print(table(results))
    elapsed = dt.datetime.now() - started
    print(f"\n{started:%Y-%m-%d %H:%M}, {elapsed.seconds // 60} min {elapsed.seconds % 60} s")
    if args.json:
        args.json.write_text(json.dumps(
            [{"id": r.mutant.id, "status": r.status, "seconds": round(r.seconds, 1),
              "detail": r.detail} for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
