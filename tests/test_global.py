"""Phase 3, global expansion: each serving region's network path to the primary, its own
PgBouncer (read and write pools) and Redis, the edge moving phase ahead of the secondaries,
and the failover and failback steps of docs/runbook-dr.md, each planned and diffed."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pulumi
import pytest
import yaml

from components import edge as edge_component
from components.network import plan_subnets
from components.peering import Peering, PeeringArgs
from components.pgbouncer import PgBouncerIni, render_pgbouncer_ini
from config import ConfigError, seed
from config.models import SUPERUSER_RESERVED_CONNECTIONS
from config.presets import SECONDARY_WRITE_POOL
from planner import diff as plan_diff
from planner.cli import plan_stacks
from planner.engine import plan_stack
from planner.project import Project
from planner.render import write_json
from tests.conftest import ROOT, of_type

SECONDARIES = [f"prod-{r}" for r in seed.SECONDARY_REGIONS]
PCX = "aws:ec2/vpcPeeringConnection:VpcPeeringConnection"
ACCEPTER = "aws:ec2/vpcPeeringConnectionAccepter:VpcPeeringConnectionAccepter"
ROUTE = "aws:ec2/route:Route"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
REDIS = "aws:elasticache/replicationGroup:ReplicationGroup"
RDS = "aws:rds/instance:Instance"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
POOL = "cloudflare:index/loadBalancerPool:LoadBalancerPool"
LB = "cloudflare:index/loadBalancer:LoadBalancer"
DNS = "cloudflare:index/dnsRecord:DnsRecord"
PROMOTED = "prod-us-west-2"  # the runbook's example


def peering_of(plan):
    return [r for r in plan.resources if "-peering-" in r.name and r.custom]


def ini_of(plan) -> str:
    (config,) = [r for r in of_type(plan.resources, CONFIG_MAP)
                 if "pgbouncer.ini" in (r.inputs.get("data") or {})]
    return config.inputs["data"]["pgbouncer.ini"]


def endpoints_of(plan) -> dict[str, str]:
    (config,) = [r for r in of_type(plan.resources, CONFIG_MAP)
                 if r.inputs["metadata"]["name"] == "sofacover-endpoints"]
    return config.inputs["data"]


def pool_line(ini: str, database: str) -> dict[str, str]:
    (line,) = [ln for ln in ini.splitlines() if ln.startswith(f"{database} = ")]
    return dict(kv.split("=", 1) for kv in line.split(" = ", 1)[1].split())


# -- phase 3: every serving region ------------------------------------------------------------

@pytest.mark.parametrize("stack", SECONDARIES)
def test_phase3_secondary_peers_with_the_primary_routing_both_sides(prod_phase3, stack):
    plan, primary = prod_phase3[stack], prod_phase3["prod"]
    cfg = plan.config
    (pcx,) = of_type(plan.resources, PCX)
    (accepter,) = of_type(plan.resources, ACCEPTER)
    assert pcx.region == cfg.region and pcx.inputs["peerRegion"] == seed.PRIMARY_REGION
    assert pcx.inputs["peerVpcId"] == primary.outputs["vpcId"]
    # auto_accept works only in one region: across regions the accepter accepts, there.
    assert pcx.inputs["autoAccept"] is False
    assert accepter.region == seed.PRIMARY_REGION and accepter.inputs["autoAccept"] is True
    routes = [r for r in of_type(plan.resources, ROUTE) if "-peering-" in r.name]
    here = [r for r in routes if r.region == cfg.region]
    there = [r for r in routes if r.region == seed.PRIMARY_REGION]
    # every private route table and the data one, on both sides
    assert {r.inputs["routeTableId"] for r in there} == set(primary.outputs["peerRouteTableIds"])
    assert len(here) == cfg.network.az_count + 1
    assert {r.inputs["destinationCidrBlock"] for r in here} == {primary.outputs["vpcCidr"]}
    assert {r.inputs["destinationCidrBlock"] for r in there} == {cfg.network.cidr}
    assert {r.inputs["vpcPeeringConnectionId"] for r in routes} == {accepter.id}


@pytest.mark.parametrize("stack", SECONDARIES)
def test_phase3_only_the_regions_app_subnets_reach_only_the_primarys_postgres(prod_phase3,
                                                                              stack):
    plan, primary = prod_phase3[stack], prod_phase3["prod"]
    cfg = plan.config
    rules = [r for r in of_type(plan.resources, INGRESS) if "-peering-" in r.name]
    private = plan_subnets(cfg.network.cidr, cfg.network.az_count)["private"]
    assert sorted(r.inputs["cidrIpv4"] for r in rules) == sorted(private)
    for rule in rules:
        assert rule.region == seed.PRIMARY_REGION
        assert rule.inputs["securityGroupId"] == primary.outputs["dbPeerSecurityGroupId"]
        assert rule.inputs["fromPort"] == rule.inputs["toPort"] == 5432
        assert rule.inputs["ipProtocol"] == "tcp"
    # nothing else of this stack touches the primary's region
    others = {r.type for r in plan.resources
              if r.region == seed.PRIMARY_REGION and r not in rules and r.custom}
    assert others == {ACCEPTER, ROUTE}


def test_the_primarys_database_carries_a_rule_free_group_for_the_peers(prod_phase3):
    primary = prod_phase3["prod"]
    group_id = primary.outputs["dbPeerSecurityGroupId"]
    (group,) = [r for r in of_type(primary.resources, "aws:ec2/securityGroup:SecurityGroup")
                if r.id == group_id]
    # in-line rules would remove the secondaries' rule resources on every primary update
    assert not group.inputs.get("ingress")
    (db,) = of_type(primary.resources, RDS)
    assert group_id in db.inputs["vpcSecurityGroupIds"]


@pytest.mark.parametrize("stack", SECONDARIES)
def test_phase3_secondary_pgbouncer_writes_to_the_primary_and_reads_locally(prod_phase3,
                                                                            stack):
    plan, primary = prod_phase3[stack], prod_phase3["prod"]
    pgb = plan.config.pgbouncer
    ini = ini_of(plan)
    write, read = pool_line(ini, "sofacover"), pool_line(ini, "sofacover_ro")
    assert write["host"] == primary.outputs["dbAddress"]
    assert read["host"] == plan.outputs["dbAddress"]
    assert int(write["pool_size"]) == pgb.max_server_connections // pgb.replicas
    assert int(read["pool_size"]) == pgb.replica_server_connections // pgb.replicas
    assert pgb.max_server_connections == SECONDARY_WRITE_POOL
    assert pgb.replica_server_connections == seed.PGBOUNCER_MAX_SERVER_CONNECTIONS


@pytest.mark.parametrize("stack", SECONDARIES)
def test_phase3_secondary_has_its_own_encrypted_redis_and_names_its_endpoints(prod_phase3,
                                                                             stack):
    plan = prod_phase3[stack]
    (redis,) = of_type(plan.resources, REDIS)
    assert redis.region == plan.config.region
    assert redis.inputs["transitEncryptionEnabled"] is True
    assert redis.inputs["atRestEncryptionEnabled"] is True
    assert redis.inputs["authToken"] == "[secret]"
    assert redis.options["protect"] is True
    env = endpoints_of(plan)
    assert env["SOFACOVER_REGION"] == plan.config.region
    assert env["SOFACOVER_WRITE_REGION"] == seed.PRIMARY_REGION
    assert env["DATABASE_WRITE_HOST"] == env["DATABASE_READ_HOST"] == plan.outputs["pgbouncerHost"]
    assert (env["DATABASE_WRITE_NAME"], env["DATABASE_READ_NAME"]) == ("sofacover",
                                                                       "sofacover_ro")
    assert env["REDIS_HOST"] == plan.outputs["cacheEndpoint"]
    # every app service reads it
    services = {s.name for s in plan.config.kubernetes.services}
    apps = [r for r in of_type(plan.resources, "kubernetes:apps/v1:Deployment")
            if r.inputs["metadata"]["name"] in services]
    assert len(apps) == len(services)
    for app in apps:
        (container,) = app.inputs["spec"]["template"]["spec"]["containers"]
        assert container["envFrom"] == [{"configMapRef": {"name": "sofacover-endpoints",
                                                          "optional": True}}]


def test_phase3_primary_names_its_endpoints_too(prod_phase3):
    env = endpoints_of(prod_phase3["prod"])
    assert env["SOFACOVER_WRITE_REGION"] == env["SOFACOVER_REGION"] == seed.PRIMARY_REGION
    assert env["DATABASE_READ_NAME"] == "sofacover"  # no replica in its own region


def test_phase3_edge_keeps_a_user_in_one_region(prod_phase3):
    plan = prod_phase3["prod-edge"]
    lbs = of_type(plan.resources, LB)
    assert lbs
    for lb in lbs:
        assert lb.inputs["sessionAffinity"] == edge_component.SESSION_AFFINITY == "cookie"
        # Cloudflare accepts 1800-604800 s for cookie affinity
        assert 1800 <= lb.inputs["sessionAffinityTtl"] <= 604800


def test_phase1_replica_region_is_peered_but_admits_nothing(prod):
    for region in seed.READ_REPLICA_REGIONS:
        plan = prod[f"prod-{region}"]
        assert len(of_type(plan.resources, PCX)) == 1
        assert not [r for r in of_type(plan.resources, INGRESS) if "-peering-" in r.name]
        assert not of_type(plan.resources, REDIS)


# -- the edge ahead of the secondaries --------------------------------------------------------

def copy_project(tmp_path: Path) -> Path:
    for item in ["Pulumi.yaml", "__main__.py", *[p.name for p in ROOT.glob("Pulumi.*.yaml")]]:
        shutil.copy(ROOT / item, tmp_path / item)
    return tmp_path


def set_config(root: Path, stack: str, **values) -> None:
    path = root / f"Pulumi.{stack}.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["config"].update({f"sofacover:{k}": v for k, v in values.items()})
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.fixture(scope="module")
def edge_ahead(tmp_path_factory):
    """prod and prod-edge at phase 3, every secondary still at phase 1."""
    root = copy_project(tmp_path_factory.mktemp("ahead"))
    for stack in ("prod", "prod-edge"):
        set_config(root, stack, phase=3)
    return {p.stack: p for p in plan_stacks(Project(root), env="prod")}


def test_edge_at_phase3_plans_while_secondaries_are_at_phase1_and_warns(edge_ahead):
    edge = edge_ahead["prod-edge"]
    assert edge.phase == 3 and all(edge_ahead[s].phase == 1 for s in SECONDARIES)
    assert edge.outputs["originRegions"] == [seed.PRIMARY_REGION]
    (pool,) = of_type(edge.resources, POOL)
    assert pool.inputs["origins"][0]["address"] == edge_ahead["prod"].outputs["albDnsName"]
    (warning,) = [m for m in edge.messages if m.startswith("warning") and "serve yet" in m]
    for stack in SECONDARIES:
        assert stack in warning


def test_edge_takes_a_region_in_once_its_stack_serves(tmp_path, edge_ahead):
    # prod-us-west-2 moves to phase 3 next: the edge, planned again, serves from it.
    project = Project(copy_project(tmp_path))
    set_config(project.root, "prod", phase=3)
    set_config(project.root, "prod-edge", phase=3)
    set_config(project.root, "prod-us-west-2", phase=3)
    plans = {p.stack: p for p in plan_stacks(project, stack="prod-edge")}
    assert plans["prod-edge"].outputs["originRegions"] == [seed.PRIMARY_REGION, "us-west-2"]


# -- the environment's connection budget ------------------------------------------------------

def test_environment_write_pools_fit_the_primarys_max_connections(prod_phase3):
    primary = prod_phase3["prod"].config
    pools = [p.config.pgbouncer for p in prod_phase3.values()
             if p.config.pgbouncer is not None and p.config.hosts_app]
    steady = sum(p.max_server_connections for p in pools)
    surge = max(p.max_server_connections // p.replicas for p in pools)
    assert steady + surge <= primary.database.max_connections - SUPERUSER_RESERVED_CONNECTIONS


def test_write_pools_over_the_primarys_budget_are_refused(tmp_path):
    project = Project(copy_project(tmp_path))
    limit = project.stack_config("prod", 3).database.max_connections
    set_config(project.root, "prod-eu-west-1", pgbouncer={"maxServerConnections": limit // 2})
    with pytest.raises(ConfigError) as exc:
        project.rollout("prod", 3)
    (problem,) = [p for p in exc.value.problems if "write pools" in p]
    assert problem.startswith("Pulumi.prod.yaml: sofacover:database.maxConnections")
    assert f"prod-eu-west-1 {limit // 2}" in problem
    # at phase 1 eu-west-1 does not serve: no write pool, nothing to refuse
    project.rollout("prod", 1)


def test_a_replica_below_its_primarys_max_connections_is_refused(tmp_path):
    project = Project(copy_project(tmp_path))
    limit = project.stack_config("prod").database.max_connections
    set_config(project.root, "prod", database={"maxConnections": limit + 50})
    with pytest.raises(ConfigError) as exc:
        project.rollout("prod")
    flagged = {p.split(":")[0] for p in exc.value.problems if "read replica needs" in p}
    assert flagged == {f"Pulumi.prod-{r}.yaml" for r in seed.READ_REPLICA_REGIONS}


def test_a_read_pool_outside_a_secondary_is_refused(tmp_path):
    project = Project(copy_project(tmp_path))
    set_config(project.root, "prod", pgbouncer={"replicaServerConnections": 10})
    with pytest.raises(ConfigError, match="replicaServerConnections"):
        project.stack_config("prod")


@pytest.mark.parametrize("drain, message", [
    (["sa-east-1"], "edge.origins does not name"),
    (["us-east-1"], None),
    (list(seed.SECONDARY_REGIONS), None),
])
def test_edge_drain_names_known_origins_and_never_all(tmp_path, drain, message):
    project = Project(copy_project(tmp_path))
    edge = yaml.safe_load((project.root / "Pulumi.prod-edge.yaml").read_text())
    set_config(project.root, "prod-edge",
               edge={**edge["config"]["sofacover:edge"], "drain": drain})
    if message:
        with pytest.raises(ConfigError, match=message):
            project.stack_config("prod-edge", 3)
    else:
        assert project.stack_config("prod-edge", 3).edge.drain == drain
    # at phase 1 only us-east-1 serves: draining it leaves nothing
    if "us-east-1" in drain:
        with pytest.raises(ConfigError, match="drains every serving region"):
            project.stack_config("prod-edge", 1)


# -- components -------------------------------------------------------------------------------

def _peering(**overrides) -> PeeringArgs:
    args = dict(vpc_id="vpc-1", vpc_cidr="10.20.0.0/16", route_table_ids=["rtb-1"],
                peer_region=seed.PRIMARY_REGION, peer_vpc_id="vpc-2",
                peer_vpc_cidr="10.10.0.0/16", peer_route_table_ids=["rtb-2"],
                peer_security_group_id="sg-1", client_cidrs=["10.20.0.0/19"])
    return PeeringArgs(**{**args, **overrides})


def test_peering_admits_only_its_own_subnets(build):
    with pytest.raises(ValueError, match="outside this VPC"):
        build(lambda: Peering("p", _peering(client_cidrs=["10.10.0.0/19"])))
    with pytest.raises(ValueError, match="at least one route table"):
        build(lambda: Peering("p", _peering(peer_route_table_ids=[])))
    run = build(lambda: Peering("p", _peering()), region="us-west-2")
    (rule,) = of_type(run.resources, INGRESS)
    assert rule.inputs["cidrIpv4"] == "10.20.0.0/19"


def test_peering_refuses_overlapping_ranges(build):
    with pytest.raises(Exception, match="overlaps the primary"):
        build(lambda: Peering("p", _peering(peer_vpc_cidr=pulumi.Output.from_input(
            "10.20.0.0/16"))), region="us-west-2")


def test_read_pool_has_its_own_budget_on_the_replica():
    ini = render_pgbouncer_ini(PgBouncerIni(
        database_host="primary", replica_host="replica", database_max_connections=300,
        max_server_connections=40, replica_server_connections=100, instances=2))
    assert pool_line(ini, "sofacover")["pool_size"] == "20"
    assert pool_line(ini, "sofacover_ro")["pool_size"] == "50"
    with pytest.raises(ValueError, match="reserved"):
        render_pgbouncer_ini(PgBouncerIni(
            database_host="primary", replica_host="replica", database_max_connections=100,
            max_server_connections=40, replica_server_connections=100, instances=2))


# -- failover and failback: docs/runbook-dr.md, step by step -----------------------------------

def _diff(new, old, tmp_path: Path, name: str) -> plan_diff.StackDiff:
    path = tmp_path / f"{name}.json"
    write_json([old], path)
    (d,) = plan_diff.diff([new], plan_diff.load(path))
    return d


def _references(*plans) -> dict[str, dict]:
    return {p.qualified: p.outputs for p in plans}


@pytest.fixture(scope="module")
def runbook(tmp_path_factory, prod_phase3):
    """The runbook's config changes in order, each stack planned as `pulumi up` would run
    it (the stacks it reads answered by the plans before it)."""
    root = copy_project(tmp_path_factory.mktemp("runbook"))
    for stack in prod_phase3:
        set_config(root, stack, phase=3)
    project = Project(root)
    steps = {0: dict(prod_phase3)}
    # 1. promote the us-west-2 replica
    set_config(root, PROMOTED, promote=True)
    promoted = plan_stack(project, PROMOTED, references=_references(prod_phase3["prod"]))
    steps[1] = {**steps[0], PROMOTED: promoted}
    # 2. drain the lost primary's region and every region whose writes went there
    edge_cfg = yaml.safe_load((root / "Pulumi.prod-edge.yaml").read_text())["config"]
    drain = [seed.PRIMARY_REGION, *[r for r in seed.SECONDARY_REGIONS
                                    if f"prod-{r}" != PROMOTED]]
    set_config(root, "prod-edge", edge={**edge_cfg["sofacover:edge"], "drain": drain})
    refs = _references(*[p for s, p in steps[1].items() if s != "prod-edge"])
    steps[2] = {**steps[1], "prod-edge": plan_stack(project, "prod-edge", references=refs)}
    # failback at the edge: drain emptied once us-east-1 writes again
    set_config(root, "prod-edge", edge=edge_cfg["sofacover:edge"])
    steps[3] = {**steps[2], "prod-edge": plan_stack(project, "prod-edge", references=refs)}
    # setting promote back on the promoted stack: the runbook forbids it
    set_config(root, PROMOTED, promote=False)
    steps[4] = {PROMOTED: plan_stack(project, PROMOTED,
                                     references=_references(prod_phase3["prod"]))}
    return steps


def test_failover_promotion_updates_in_place_and_touches_nothing_in_the_lost_region(
        runbook, tmp_path):
    old, new = runbook[0][PROMOTED], runbook[1][PROMOTED]
    d = _diff(new, old, tmp_path, "step1")
    assert plan_diff.destroying([d]) == []
    # What else the plan does, as the runbook lists it: the replica's alarms give way to a
    # primary's (ReplicaLag goes), and the ConfigMaps naming the writer are replaced
    # (their data is immutable to the Kubernetes provider); all else is updated in place.
    ops = {(r.op, r.type) for r in d.resources}
    assert ops <= {("update", t) for t in {r.type for r in d.resources}} | {
        ("create", ALARM), ("delete", ALARM), ("replace", CONFIG_MAP)}, sorted(ops)
    assert not [r for r in d.resources if r.op == "delete" and r.type != ALARM]
    (db,) = [r for r in d.resources if r.type == RDS]
    assert db.op == "update"
    assert "replicateSourceDb" in {c.path for c in db.changes}
    regions = {r.urn: r.region for r in new.resources}
    assert not [r.line() for r in d.resources if regions.get(r.urn) == seed.PRIMARY_REGION]
    # writes follow: the write pool and the app's endpoints name this region's database
    assert pool_line(ini_of(new), "sofacover")["host"] == new.outputs["dbAddress"]
    assert endpoints_of(new)["SOFACOVER_WRITE_REGION"] == new.config.region
    assert new.outputs["promoted"] is True


def test_failover_drain_moves_the_edge_to_the_promoted_region_by_updates_only(
        runbook, tmp_path):
    old, new = runbook[1]["prod-edge"], runbook[2]["prod-edge"]
    d = _diff(new, old, tmp_path, "step2")
    assert d.resources and {r.op for r in d.resources} == {"update"}
    promoted_alb = runbook[1][PROMOTED].outputs["albDnsName"]
    pools = {r.inputs["name"]: r for r in of_type(new.resources, POOL)}
    region = runbook[1][PROMOTED].config.region
    for name, pool in pools.items():
        serving = name == f"sofacover-{region}"
        assert pool.inputs["enabled"] is serving, name
        assert pool.inputs["origins"][0]["enabled"] is serving, name
    for record in of_type(new.resources, DNS):
        assert record.inputs["content"] == promoted_alb
    (home,) = [r for r in of_type(new.resources, POOL) if r.inputs["name"] ==
               f"sofacover-{region}"]
    for lb in of_type(new.resources, LB):
        assert lb.inputs["fallbackPool"] == home.id
    assert new.outputs["drainedRegions"] == [seed.PRIMARY_REGION, *[
        r for r in seed.SECONDARY_REGIONS if r != region]]


def test_failback_at_the_edge_returns_it_to_the_phase3_plan(runbook, tmp_path):
    assert _diff(runbook[3]["prod-edge"], runbook[0]["prod-edge"], tmp_path,
                 "step3").resources == []
    back = _diff(runbook[3]["prod-edge"], runbook[2]["prod-edge"], tmp_path, "step3b")
    assert {r.op for r in back.resources} == {"update"}


def test_unpromoting_asks_rds_for_a_new_replication_source_which_it_cannot_do(
        runbook, tmp_path):
    # promote: false again plans as an update that sets replicateSourceDb on a standalone
    # instance; terraform-provider-aws refuses it at apply ("cannot elect new source
    # database for replication": internal/service/rds resourceInstanceUpdate, v6.58.0,
    # lonegunmanb/terraform-provider-aws-index @ 2f6e22c4). So failback is never this
    # flag: the runbook rebuilds the primary from the promoted region instead.
    d = _diff(runbook[4][PROMOTED], runbook[1][PROMOTED], tmp_path, "step4")
    (db,) = [r for r in d.resources if r.type == RDS]
    assert db.op == "update"
    (change,) = [c for c in db.changes if c.path == "replicateSourceDb"]
    (before,) = of_type(runbook[1][PROMOTED].resources, RDS)
    assert "replicateSourceDb" not in before.inputs
    assert change.new == runbook[0]["prod"].outputs["dbArn"]


def test_runbook_names_the_config_steps_the_tests_plan():
    text = (ROOT / "docs" / "runbook-dr.md").read_text()
    # the promotion is not "updates only": the runbook lists its replaces and deletes
    promotion = text[text.index("## 1. Promote"):text.index("## 2. Drain")]
    assert "updates only" not in promotion
    assert "+- replace kubernetes:core/v1:ConfigMap" in promotion and "- delete" in promotion
    for needle in ("sofacover:promote true", "drain", "--diff-from", "sofacover_ro",
                   "tests/test_global.py"):
        assert needle in text, needle
    # the failback warning: promote false is refused by the provider, not a switch back
    assert re.search(r"`promote: false` is not failback.*cannot elect new", text, re.DOTALL)
    for name in re.findall(r"tests/test_global.py::(\w+)", text) + re.findall(
            r"`(test_\w+)`", text):
        assert name in globals(), name


# -- docs/compliance.md: the retention table is the plan's ------------------------------------

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


def _log_groups(plans, test) -> set:
    return {r.inputs["retentionInDays"] for p in plans for r in of_type(p.resources, LOG_GROUP)
            if test(r)}


RETENTION = {
    "rds-backups": lambda plans: {r.inputs["backupRetentionPeriod"] for r in of_type(
        plans[0].resources, RDS)},
    "rds-backup-copy": lambda plans: {r.inputs["retentionPeriod"] for r in of_type(
        plans[0].resources, "aws:rds/instanceAutomatedBackupsReplication:"
        "InstanceAutomatedBackupsReplication")},
    "performance-insights": lambda plans: {r.inputs["performanceInsightsRetentionPeriod"]
                                           for p in plans for r in of_type(p.resources, RDS)},
    "postgres-logs": lambda plans: _log_groups(plans, lambda r: str(
        r.inputs.get("name", "")).startswith("/aws/rds/instance/")),
    "redis-snapshots": lambda plans: {r.inputs["snapshotRetentionLimit"] for p in plans
                                      for r in of_type(p.resources, REDIS)},
    "redis-slow-log": lambda plans: _log_groups(plans, lambda r: r.name.endswith("-slow-log")),
    "flow-logs": lambda plans: _log_groups(plans, lambda r: r.name.endswith("-flow-logs")),
    "alb-access-logs": lambda plans: {
        rule["expiration"]["days"] for p in plans for r in of_type(
            p.resources, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
        if r.name.endswith("-alb-logs-lifecycle") for rule in r.inputs["rules"]},
    "eks-logs": lambda plans: _log_groups(plans, lambda r: str(
        r.inputs.get("name", "")).startswith("/aws/eks/")),
}


def test_compliance_retention_table_matches_the_plan(prod_phase3):
    text = (ROOT / "docs" / "compliance.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z-]+)` \|.*\| (\d+) days \|$", text, re.MULTILINE))
    assert set(rows) == set(RETENTION)
    plans = list(prod_phase3.values())
    for key, planned in RETENTION.items():
        assert planned(plans) == {int(rows[key])}, key


# -- preflight: the peering's acceptance -------------------------------------------------------

def _pcx(auto_accept: bool, accepter_region: str | None):
    import pulumi_aws as aws

    def program():
        pcx = aws.ec2.VpcPeeringConnection("pcx", vpc_id="vpc-1", peer_vpc_id="vpc-2",
                                           peer_region=seed.PRIMARY_REGION,
                                           auto_accept=auto_accept)
        if accepter_region is not None:
            aws.ec2.VpcPeeringConnectionAccepter("accepter", region=accepter_region,
                                                 vpc_peering_connection_id=pcx.id,
                                                 auto_accept=True)
    return program


@pytest.mark.parametrize("auto_accept, accepter, expected", [
    (False, seed.PRIMARY_REGION, set()),
    (True, seed.PRIMARY_REGION, {("error", "autoAccept")}),
    (False, None, {("warning", "peerRegion")}),
    (False, "us-west-2", {("error", "region")}),
])
def test_preflight_inter_region_peering_is_accepted_in_the_peer_region(
        build, auto_accept, accepter, expected):
    from tests.conftest import preflight_of

    run = build(_pcx(auto_accept, accepter), region="us-west-2")
    found = preflight_of(run.resources, "aws-vpc-peering")
    assert {(f.severity, f.property) for f in found} == expected


def test_preflight_passes_the_planned_peerings(prod_phase3):
    from planner import preflight

    assert preflight.check(list(prod_phase3.values()), only=["aws-vpc-peering"]) == []
    assert sum(len(of_type(p.resources, PCX)) for p in prod_phase3.values()) == len(SECONDARIES)
