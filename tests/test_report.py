"""`sofacover report`'s files (planner/report.py), the connection budget
(planner/connections.py), and the command's arguments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from config import seed
from config.models import SUPERUSER_RESERVED_CONNECTIONS
from planner import report
from planner.capacity import Result, Row
from planner.cli import app
from planner.connections import connection_budget, parse_ini
from planner.engine import PlannedResource, StackPlan

HOST = "db.example.us-east-1.rds.amazonaws.com"
SECRET = "s3cr3t-auth-token-value"


def res(type_: str, name: str, inputs: dict, outputs: dict | None = None) -> PlannedResource:
    return PlannedResource(urn=f"urn:{name}", type=type_, name=name, stack="s", region=None,
                           parent=None, custom=True, provider=None, inputs=inputs,
                           options={}, outputs=outputs or {})


def ini(pool: int, host: str = HOST, replica: str | None = None) -> str:
    lines = ["; rendered", "[databases]",
             f"sofacover = host={host} port=5432 dbname=sofacover pool_size={pool} "
             f"max_db_connections={pool}"]
    if replica:
        lines.append(f"sofacover_ro = host={replica} port=5432 dbname=sofacover "
                     f"pool_size={pool} max_db_connections={pool}")
    return "\n".join([*lines, "", "[pgbouncer]", "pool_mode = transaction", ""])


def database(max_connections: int, host: str = HOST) -> list[PlannedResource]:
    return [res("aws:rds/instance:Instance", "db",
                {"instanceClass": "db.m6i.2xlarge", "multiAz": True, "allocatedStorage": 100,
                 "parameterGroupName": "pg-1"}, {"address": host}),
            res("aws:rds/parameterGroup:ParameterGroup", "pg",
                {"parameters": [{"name": "max_connections", "value": str(max_connections)}]},
                {"name": "pg-1"})]


def pgbouncer_on_kubernetes(pool: int, replicas: int, surge: int | str = 1,
                            replica_host: str | None = None) -> list[PlannedResource]:
    meta = {"namespace": "data", "labels": {"app.kubernetes.io/name": "pgbouncer"}}
    return [res("kubernetes:core/v1:ConfigMap", "cfg",
                {"metadata": {"namespace": "data"},
                 "data": {"pgbouncer.ini": ini(pool, replica=replica_host)}}),
            res("kubernetes:apps/v1:Deployment", "pgb",
                {"metadata": meta, "spec": {"replicas": replicas, "strategy": {
                    "rollingUpdate": {"maxSurge": surge}}}})]


def plan(resources: list[PlannedResource], stack: str = "prod", phase: int = 3,
         region: str | None = "us-east-1", role: str = "primary") -> StackPlan:
    return StackPlan(stack, "sofacover", "prod", role, phase, region, resources=resources)


# --- the connection budget ---------------------------------------------------------------------

def test_the_ini_parser_reads_every_pool_entry():
    pools = parse_ini(ini(50, replica="replica.host"))
    assert pools["sofacover"]["max_db_connections"] == "50"
    assert pools["sofacover_ro"]["host"] == "replica.host"


def test_pods_and_their_surge_fit_the_usable_connections():
    budget = connection_budget([plan([*database(200), *pgbouncer_on_kubernetes(50, 2)])])
    (db,) = budget.databases
    assert (db.steady, db.used) == (50 * 2, 50 * (2 + 1))
    assert db.usable == 200 - SUPERUSER_RESERVED_CONNECTIONS
    assert db.problem is None and budget.ok


def test_pools_over_max_connections_less_the_reserved_slots_are_reported():
    # 2 pods + 1 surging at 33 each = 99 server connections; max_connections 100 leaves 97.
    budget = connection_budget([plan([*database(100), *pgbouncer_on_kubernetes(33, 2)])])
    (db,) = budget.databases
    assert db.used == 99
    assert db.problem is not None and "leaves 97" in db.problem
    assert not budget.ok


def test_pools_of_several_stacks_add_up_with_only_the_largest_surge():
    # Stacks deploy one at a time: 3 PgBouncers steady (2 x 50 + 2 x 20) plus the largest
    # surge (50), never every surge at once.
    primary = plan([*database(200), *pgbouncer_on_kubernetes(50, 2)])
    secondary = plan(pgbouncer_on_kubernetes(20, 2), stack="prod-eu-west-1",
                     region="eu-west-1", role="secondary")
    (db,) = connection_budget([primary, secondary]).databases
    assert (db.steady, db.used) == (2 * 50 + 2 * 20, 2 * 50 + 2 * 20 + 50)
    assert db.problem is None
    tight = plan([*database(190), *pgbouncer_on_kubernetes(50, 2)])
    (db,) = connection_budget([tight, secondary]).databases
    assert db.used == 190 and db.problem is not None  # 190 > 190 - 3


def test_a_percent_surge_rounds_up():
    budget = connection_budget([plan([*database(200), *pgbouncer_on_kubernetes(10, 3, "25%")])])
    assert budget.databases[0].used == 10 * (3 + 1)


def test_the_read_pool_counts_against_the_replica_not_the_primary():
    replica_host = "replica.eu-west-1.rds.amazonaws.com"
    primary = plan([*database(200), *pgbouncer_on_kubernetes(40, 2, replica_host=replica_host)])
    secondary = plan(database(120, replica_host), stack="prod-eu-west-1", region="eu-west-1",
                     role="secondary")
    budget = connection_budget([primary, secondary])
    by_stack = {d.stack: d for d in budget.databases}
    assert by_stack["prod"].used == 40 * 3
    assert by_stack["prod-eu-west-1"].used == 40 * 3
    assert [p.name for p in by_stack["prod-eu-west-1"].pools] == ["sofacover_ro"]


def test_ec2_sidecars_count_once_per_instance_up_to_the_groups_maximum():
    sidecar = [res("aws:ssm/parameter:Parameter", "ini", {"insecureValue": ini(12)}),
               res("aws:autoscaling/group:Group", "asg", {"minSize": 2, "maxSize": 8})]
    budget = connection_budget([plan([*database(100), *sidecar], phase=1)])
    assert budget.databases[0].used == 12 * 8
    assert budget.ok


def _outside_pool() -> report.Report:
    """A report of PgBouncer alone, its pool pointing at a database of another stack:
    nothing in it is priced."""
    return _build([plan(pgbouncer_on_kubernetes(10, 2))])


def test_a_pool_pointing_outside_the_report_is_listed_not_judged(tmp_path):
    budget = connection_budget([plan(pgbouncer_on_kubernetes(10, 2))])
    assert [p.host for p in budget.unmatched] == [HOST]
    assert budget.ok
    report.write_text(_outside_pool(), tmp_path)
    assert "outside this report: not checked here" in (tmp_path / "report.md").read_text()


# --- the files ---------------------------------------------------------------------------------

def result(stack: str, seconds: int | None) -> Result:
    rows = [Row(t, 10.0, 1000.0, min(1000.0, 100.0 + 10 * t), min(40, 3 + t // 5),
                min(40, 3 + t // 3), 0, 40, 2 + t // 100, 1 if t < 200 else 0)
            for t in range(0, 400)]
    return Result(stack, "kubernetes", 10.0, seconds, {"web": seconds}, rows,
                  binding=[] if seconds and seconds <= 120 else ["node launch 90 s"])


@pytest.fixture(scope="module")
def synthetic() -> report.Report:
    primary = plan([
        res("aws:lb/loadBalancer:LoadBalancer", "alb", {"loadBalancerType": "application"}),
        res("aws:autoscaling/group:Group", "asg", {"minSize": 2, "maxSize": 8,
                                                   "vpcZoneIdentifiers": ["a", "b", "c"]}),
        res("aws:ec2/launchTemplate:LaunchTemplate", "lt", {"instanceType": "m5.large"}),
        res("aws:elasticache/replicationGroup:ReplicationGroup", "redis",
            {"nodeType": "cache.r6g.large", "numCacheClusters": 3, "authToken": SECRET,
             "multiAzEnabled": True, "automaticFailoverEnabled": True}),
        *database(200), *pgbouncer_on_kubernetes(50, 2)])
    return _build([primary])


def _build(plans: list[StackPlan]) -> report.Report:
    """A synthetic plan has no config, so build() simulates nothing; the capacity result is
    given here (the simulator has its own tests): the report must carry it."""
    rep = report.build(plans, scope="environment prod")
    rep.capacity["prod"] = result("prod", 95)
    return rep


@pytest.fixture(scope="module")
def written(synthetic, tmp_path_factory) -> tuple[list[Path], Path]:
    """The synthetic report written once (the pictures take a second each time): the
    paths write() returned and the folder, for the tests that read the files.

    The tests of other reports read only report.md and report.json, and write only those
    (report.write_text). The pictures are drawn here, by the command for dev
    (test_the_command_writes_the_report_for_dev), and, for the reports whose pictures take
    a path of their own, in test_the_pictures_draw_a_report_that_serves_nothing_or_costs_nothing."""
    out = tmp_path_factory.mktemp("synthetic") / "out"
    return report.write(synthetic, out), out


def _opens_as_png(path: Path) -> None:
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width >= 800 and img.height >= 400


def test_the_report_writes_its_five_files_and_the_pictures_open(written):
    paths, out = written
    assert [p.name for p in paths] == list(report.FILES)
    for p in paths:
        assert p.stat().st_size > 0
    for name in ("timeline.png", "cost.png", "environment.png"):
        _opens_as_png(out / name)


def test_the_pictures_draw_a_report_that_serves_nothing_or_costs_nothing(tmp_path):
    # No serving stack (an empty timeline), a compare phase (a third bar), a stack without
    # PgBouncer (the environment's list of components); and a report with nothing priced
    paths = report.write_pictures(_with_compare_phase(), tmp_path / "compare")
    assert [p.name for p in paths] == list(report.FILES[2:])
    report.cost_png(_outside_pool(), tmp_path / "unpriced.png")
    for p in [*paths, tmp_path / "unpriced.png"]:
        _opens_as_png(p)


def test_report_json_carries_the_keys_the_issue_names(synthetic, written):
    _, out = written
    doc = json.loads((out / "report.json").read_text())
    stack = doc["stacks"]["prod"]
    assert stack["timeToCapacitySeconds"] == 95 and stack["meetsScaleOutKpi"] is (
        seed.SCALE_OUT_KPI_S >= 95)
    assert stack["monthlyCostUsd"] == pytest.approx(synthetic.cost.stacks[0].monthly_usd,
                                                    abs=0.01)
    assert stack["availability"] == pytest.approx(
        synthetic.availability.stacks[0].availability * 100, abs=1e-4)
    env = doc["environment"]
    assert env["monthlyCostUsd"] == pytest.approx(synthetic.cost.monthly_usd, abs=0.01)
    assert env["costPerDailyUserUsd"] == pytest.approx(synthetic.cost.cost_per_daily_user,
                                                       abs=0.001)
    assert env["availability"] == pytest.approx(synthetic.availability.availability * 100,
                                                abs=1e-4)
    assert doc["connectionBudget"][0]["serverConnections"] == 150


def test_no_secret_reaches_the_files(written):
    _, out = written
    for name in ("report.md", "report.json"):
        assert SECRET not in (out / name).read_text()


def test_report_md_sets_the_figures_against_the_seed(synthetic, written):
    _, out = written
    md = (out / "report.md").read_text()
    assert f"${synthetic.cost.budget_usd:,.0f}" in md
    assert "95 s: PASS" in md
    for target in (seed.SIX_MONTHS.uptime_percent, seed.ONE_YEAR.uptime_percent):
        assert f"{target}%" in md
    for name in ("timeline.png", "cost.png", "environment.png"):
        assert f"({name})" in md


def test_a_missed_kpi_names_what_binds(tmp_path):
    rep = _build([plan([res("aws:autoscaling/group:Group", "asg", {"minSize": 2,
                                                                   "maxSize": 4})])])
    rep.capacity["prod"] = result("prod", 300)
    report.write_text(rep, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "300 s: MISS" in md and "binds: node launch 90 s" in md
    # The group has no launch template here: its instances cannot be priced, and say so.
    assert "**Not priced**" in md and "ec2:unknown in us-east-1" in md


def _with_compare_phase() -> report.Report:
    """Phase 3 with phase 1 costed beside it. The plans have no config: nothing serves."""
    primary = [res("aws:autoscaling/group:Group", "asg", {"minSize": 2, "maxSize": 8}),
               res("aws:ec2/launchTemplate:LaunchTemplate", "lt", {"instanceType": "m5.large"})]
    return report.build([plan(primary, phase=3)], scope="environment prod",
                        compare_plans=[plan(primary, phase=1)])


def test_a_compare_phase_is_costed_beside_the_report(tmp_path):
    rep = _with_compare_phase()
    report.write_text(rep, tmp_path)
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["phase"] == 3 and doc["comparePhase"]["phase"] == 1
    assert doc["comparePhase"]["monthlyCostUsd"] == pytest.approx(rep.compare.monthly_usd,
                                                                  abs=0.01)
    assert "Phase 1 for comparison" in (tmp_path / "report.md").read_text()


# --- the command -------------------------------------------------------------------------------

runner = CliRunner()


def test_out_that_is_a_file_exits_2_with_a_clear_message(tmp_path):
    f = tmp_path / "a-file"
    f.write_text("x")
    got = runner.invoke(app, ["report", "--stack", "dev", "--out", str(f)])
    assert got.exit_code == 2
    assert "is a file; give a folder" in got.output


def test_a_compare_phase_out_of_range_exits_2():
    got = runner.invoke(app, ["report", "--stack", "dev", "--compare-phase", "4"])
    assert got.exit_code == 2


def test_stack_and_env_together_exit_2():
    got = runner.invoke(app, ["report", "--stack", "dev", "--env", "dev"])
    assert got.exit_code == 2 and "exclusive" in got.output


def test_the_command_writes_the_report_for_dev(tmp_path):
    out = tmp_path / "rep"
    got = runner.invoke(app, ["report", "--stack", "dev", "--phase", "2", "--out", str(out)])
    assert got.exit_code == 0, got.output
    doc = json.loads((out / "report.json").read_text())
    dev = doc["stacks"]["dev"]
    assert isinstance(dev["timeToCapacitySeconds"], int | None)
    assert dev["monthlyCostUsd"] > 0 and 90 < dev["availability"] < 100
    assert doc["environment"]["costPerDailyUserUsd"] > 0
    assert {p.name for p in out.iterdir()} == set(report.FILES)


def test_report_is_ignored_by_git():
    root = Path(__file__).resolve().parents[1]
    assert "report/" in (root / ".gitignore").read_text().split()


# --- the seed's literal HPA beside the configured one ------------------------------------------

def test_the_seeds_literal_hpa_is_reported_beside_the_configured_result(tmp_path):
    rep = _build([plan([res("aws:autoscaling/group:Group", "asg", {"minSize": 2,
                                                                   "maxSize": 8})])])
    rep.literal["prod"] = result("prod", 373)
    report.write_text(rep, tmp_path)
    md = (tmp_path / "report.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| prod |"))
    assert "95 s: PASS" in row and "373 s: MISS" in row
    assert (f"under the seed's literal HPA ({seed.HPA_UP_WINDOW_S} s scale-up window, "
            "CPU limit = request): 373 s: MISS; binds: node launch 90 s") in md
    lit = json.loads((tmp_path / "report.json").read_text())["stacks"]["prod"]["seedLiteralHpa"]
    assert lit == {"scaleUpWindowSeconds": seed.HPA_UP_WINDOW_S, "cpuLimitEqualsRequest": True,
                   "timeToCapacitySeconds": 373, "meetsScaleOutKpi": False,
                   "binding": ["node launch 90 s"]}


def test_a_kubernetes_stack_runs_under_the_seeds_literal_hpa_and_prices_its_spare_nodes(
        project, tmp_path):
    # the real dev config at phase 2 (EKS) on a synthetic plan: build() runs the simulator
    cfg = project.stack_config("dev", 2)
    assert cfg.compute.platform == "kubernetes"
    c = cfg.compute
    sp = plan([res("aws:lb/loadBalancer:LoadBalancer", "alb",
                   {"loadBalancerType": "application"}),
               res("aws:autoscaling/group:Group", "asg", {"minSize": c.min_size,
                                                          "maxSize": c.max_size}),
               res("aws:ec2/launchTemplate:LaunchTemplate", "lt",
                   {"instanceType": c.instance_type}),
               res("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "hpa", {})],
              stack="dev", phase=2)
    sp.config = cfg
    rep = report.build([sp], scope="stack dev")
    lit = rep.literal["dev"]
    assert not lit.meets(seed.SCALE_OUT_KPI_S) and rep.capacity["dev"].meets(
        seed.SCALE_OUT_KPI_S)
    assert any(f"{seed.HPA_UP_WINDOW_S} s" in b for b in lit.binding)
    report.write_text(rep, tmp_path)
    doc = json.loads((tmp_path / "report.json").read_text())["stacks"]["dev"]
    assert doc["seedLiteralHpa"]["meetsScaleOutKpi"] is False
    assert doc["seedLiteralHpa"]["binding"] == lit.binding
    # the autoscaled node group's spare capacity: its own figure, in both files
    spare = rep.cost.spare_usd
    assert spare > 0 and doc["spareCapacityUsd"] == pytest.approx(spare, abs=0.01)
    md = (tmp_path / "report.md").read_text()
    assert f"Spare capacity for the {seed.SCALE_OUT_KPI_S} s scale-out: **${spare:,.0f}**" in md
    assert f"ec2:{c.instance_type} (spare capacity)" in md


def test_an_ec2_stack_has_no_literal_hpa(written):
    _, out = written
    doc = json.loads((out / "report.json").read_text())
    assert doc["stacks"]["prod"]["seedLiteralHpa"] is None
    row = next(line for line in (out / "report.md").read_text().splitlines()
               if line.startswith("| prod |"))
    assert row.split("|")[4].strip() == "-"
