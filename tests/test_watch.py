"""`sofacover capacity`: headroom and runway of a deployed stack from CloudWatch
(planner/watch.py), against moto's in-process AWS with synthetic metric series.

Limits and thresholds are read from the stack's config and config/thresholds.py, so the
expectations follow them rather than copies of their numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import boto3
import botocore.loaders
import botocore.session
import moto.core.utils
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from config import thresholds
from planner import watch
from planner.cli import app
from planner.project import Project
from tests.conftest import ROOT

STACK = "prod"
runner = CliRunner()


@pytest.fixture(scope="module")
def cfg():
    return Project(ROOT).stack_config(STACK)


@pytest.fixture(scope="module", autouse=True)
def _one_model_loader() -> Iterator[None]:
    """Every boto3 Session (the test's, the command's, moto's own) gets a new botocore
    loader, which reads and parses the service models again (EC2's alone is megabytes of
    JSON): most of this module's CPU. Here the module's sessions share one loader, so each
    model is read once; credentials, config and clients stay per session."""
    loader = botocore.loaders.create_loader()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(botocore.session, "create_loader", lambda *_: loader)
        mp.setattr(moto.core.utils, "create_loader", lambda *_: loader)  # moto reads them too
        yield


@pytest.fixture
def aws(monkeypatch) -> Iterator[boto3.Session]:
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    # moto builds its table of thousands of public AMIs at every EC2 backend creation and
    # reset; nothing here reads an image (moto does not look up a launch template's ImageId,
    # and DesiredCapacity=0 launches no instance).
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.Session()


def deploy(session: boto3.Session, region: str, *, stack: str = STACK) -> dict[str, str]:
    """One of each resource kind the command watches, tagged as the program tags them."""
    tags = [{"Key": "Project", "Value": "sofacover"}, {"Key": "Stack", "Value": stack},
            {"Key": "Environment", "Value": "prod"}, {"Key": "ManagedBy", "Value": "pulumi"}]
    ec2 = session.client("ec2", region_name=region)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24",
                                 AvailabilityZone=z)["Subnet"]["SubnetId"]
               for i, z in enumerate(zones)]
    lb = session.client("elbv2", region_name=region).create_load_balancer(
        Name=f"sc-{stack}", Subnets=subnets, Tags=tags)["LoadBalancers"][0]
    template = ec2.create_launch_template(
        LaunchTemplateName=f"app-{stack}",
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "m5.large"})
    session.client("autoscaling", region_name=region).create_auto_scaling_group(
        AutoScalingGroupName=f"app-{stack}", MinSize=0, MaxSize=6, DesiredCapacity=0,
        LaunchTemplate={"LaunchTemplateId": template["LaunchTemplate"]["LaunchTemplateId"]},
        VPCZoneIdentifier=",".join(subnets),
        Tags=[{**t, "PropagateAtLaunch": True} for t in tags])
    session.client("rds", region_name=region).create_db_instance(
        DBInstanceIdentifier=f"db-{stack}", DBInstanceClass="db.r6g.large",
        Engine="postgres", AllocatedStorage=100, MaxAllocatedStorage=400,
        MasterUsername="app", MasterUserPassword="not-a-real-one-1", Tags=tags)
    group = session.client("elasticache", region_name=region).create_replication_group(
        ReplicationGroupId=f"redis-{stack}", ReplicationGroupDescription="sessions",
        CacheNodeType="cache.r7g.large", Engine="redis", NumCacheClusters=3, Tags=tags)
    return {"lb": lb["LoadBalancerArn"].split(":loadbalancer/", 1)[1],
            "group": f"app-{stack}", "db": f"db-{stack}",
            "cache": group["ReplicationGroup"]["MemberClusters"][0]}


def put(session: boto3.Session, region: str, namespace: str, metric: str, dim: tuple[str, str],
        value: Callable[[float], float], *, days: int, now: datetime) -> None:
    """A point every 6 hours for `days` days; value(day) with day 0 the oldest."""
    points = [{"MetricName": metric, "Dimensions": [{"Name": dim[0], "Value": dim[1]}],
               "Timestamp": now - timedelta(hours=h), "Value": value(days - h / 24)}
              for h in range(6, days * 24, 6)]
    cw = session.client("cloudwatch", region_name=region)
    for i in range(0, len(points), 500):
        cw.put_metric_data(Namespace=namespace, MetricData=points[i:i + 500])


def reading(readings: list[watch.Reading], label: str) -> watch.Reading:
    [found] = [r for r in readings if r.signal.label == label]
    return found


# --- the estimator, by hand ------------------------------------------------------------------

def test_theil_sen_follows_the_line_through_a_spike():
    points = [(x, 2 * x + 1) for x in range(10)]
    points[4] = (4, 500)  # one spike: least squares would tilt; the median of slopes does not
    assert watch.theil_sen(points) == pytest.approx((2.0, 1.0))


def signal(limit: float | None, *, falling: bool = False) -> watch.Signal:
    return watch.Signal("database db", "CPU", "AWS/RDS", "CPUUtilization",
                        (("DBInstanceIdentifier", "db"),), "Maximum", limit, "%",
                        "the next size", falling=falling)


NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


def daily(values: list[float]) -> list[tuple[datetime, float]]:
    """One point a day, the last value today."""
    return [(NOW - timedelta(days=len(values) - 1 - i, hours=1), v)
            for i, v in enumerate(values)]


def test_growth_towards_the_limit_gives_its_runway_in_days():
    # 40 rising 1 a day for 20 days: today's level is 59; 80 is reached in 21 days.
    r = watch.judge(signal(80), daily([40 + d for d in range(20)]), now=NOW)
    assert r.growth_per_day == pytest.approx(1.0)
    assert r.runway_days == pytest.approx(21.0)
    assert r.status == ("act" if thresholds.RUNWAY_ACT_DAYS > 21 else "watch")


def test_flat_series_has_no_runway_and_full_headroom():
    r = watch.judge(signal(80), daily([20.0] * 14), now=NOW)
    assert (r.growth_per_day, r.runway_days, r.headroom_percent, r.status) == (0, None, 75, "ok")


def test_a_recent_spike_is_headroom_not_a_trend():
    values = [20.0] * 14
    values[-2] = 76.0  # yesterday's flash sale, 95% of the limit
    r = watch.judge(signal(80), daily(values), now=NOW)
    assert r.growth_per_day == 0 and r.runway_days is None
    assert r.peak == 76.0 and r.headroom_percent == pytest.approx(5.0)
    assert r.status == "watch"  # headroom under HEADROOM_WATCH_PERCENT
    assert thresholds.HEADROOM_WATCH_PERCENT > 5


def test_a_falling_signal_runs_out_at_its_floor():
    # Free storage: 300 GiB falling 4 a day, floor 60: (300 - 4*9 - 60) / 4 = 51 days.
    r = watch.judge(signal(60, falling=True), daily([300 - 4 * d for d in range(10)]), now=NOW)
    assert r.growth_per_day == pytest.approx(-4.0)
    assert r.runway_days == pytest.approx(51.0)
    assert r.status == "watch"


def test_at_or_past_the_limit_is_act_whatever_the_trend():
    assert watch.judge(signal(80), daily([85.0] * 5), now=NOW).status == "act"


def test_too_few_days_give_a_peak_but_no_trend():
    r = watch.judge(signal(80), daily([10.0, 50.0]), now=NOW)
    assert r.peak == 50.0 and r.growth_per_day is None and r.runway_days is None
    assert "2 day(s) of data" in watch.describe(r)


def test_no_points_is_no_data():
    r = watch.judge(signal(80), [], now=NOW)
    assert r.status == "no data" and watch.describe(r).endswith("no data yet")


# --- against moto: discovery, CloudWatch, the command ---------------------------------------

def test_finds_only_the_stacks_own_resources_by_its_tags(aws, cfg):
    mine = deploy(aws, cfg.region)
    deploy(aws, cfg.region, stack="other")
    found = watch.discover(aws, cfg.region, "sofacover", STACK)
    assert found.load_balancers == (mine["lb"],)
    assert found.groups == ((mine["group"], 6),)
    assert found.databases == ((mine["db"], 400.0),)  # MaxAllocatedStorage, not Allocated
    assert found.caches == (mine["cache"],)


def test_growing_flat_and_spiky_series_of_a_deployed_stack(aws, cfg):
    now = datetime.now(UTC)
    ids = deploy(aws, cfg.region)
    days = 28
    cpu = thresholds.METRICS["cpu_percent"].warning
    # CPU grows a point a day up to half the limit today.
    put(aws, cfg.region, "AWS/RDS", "CPUUtilization", ("DBInstanceIdentifier", ids["db"]),
        lambda d: cpu / 2 - (days - d), days=days, now=now)
    # Redis memory is flat at a quarter of its limit.
    mem = thresholds.METRICS["memory_percent"].warning
    put(aws, cfg.region, "AWS/ElastiCache", "DatabaseMemoryUsagePercentage",
        ("CacheClusterId", ids["cache"]), lambda d: mem / 4, days=days, now=now)
    # Instances in service: 2, with a spike to the maximum 3 days ago.
    put(aws, cfg.region, "AWS/AutoScaling", "GroupInServiceInstances",
        ("AutoScalingGroupName", ids["group"]),
        lambda d: 6.0 if days - 3.5 < d < days - 2.5 else 2.0, days=days, now=now)

    _, readings = watch.analyse(cfg, aws, days=days, project="sofacover")
    grow = reading(readings, "CPU")
    assert grow.growth_per_day == pytest.approx(1.0, abs=0.05)
    assert grow.runway_days == pytest.approx(cpu / 2, abs=1.5)
    flat = reading(readings, "memory used")
    assert flat.growth_per_day == 0 and flat.runway_days is None and flat.status == "ok"
    spiky = reading(readings, "instances in service")
    assert spiky.growth_per_day == 0 and spiky.peak == 6 and spiky.status == "act"
    assert reading(readings, "connections").status == "no data"

    result = runner.invoke(app, ["capacity", "--stack", STACK, "--days", str(days)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{STACK} ({cfg.region}, phase {cfg.phase})")
    [line] = [x for x in lines if "instances in service" in x]
    assert "[act]" in line and "next: sofacover:compute.maxSize (now 6)" in line
    assert lines[-1] == "capacity: " + ", ".join(
        f"{sum(r.status == k for r in readings)} {k}" for k in ("act", "watch", "ok", "no data"))


def test_a_stack_deployed_today_has_no_data_yet(aws, cfg):
    deploy(aws, cfg.region)
    result = runner.invoke(app, ["capacity", "--stack", STACK])
    assert result.exit_code == 0, result.output
    body = [x for x in result.output.splitlines()[1:-1]]
    assert body and all(x.endswith("no data yet") for x in body)


def test_a_stack_not_deployed_exits_1_saying_so(aws):
    result = runner.invoke(app, ["capacity", "--stack", STACK])
    assert result.exit_code == 1
    assert "nothing in us-east-1 is tagged Project=sofacover, Stack=prod" in result.output


@pytest.mark.parametrize("args, says", [
    (["capacity", "--stack", "nope"], "no stack 'nope'"),
    (["capacity", "--stack", STACK, "--days", "0"], "--days"),
    (["capacity"], "--stack"),
])
def test_bad_arguments_exit_2(args, says):
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and says in result.output


def test_no_credentials_is_a_clear_error(monkeypatch, tmp_path):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = runner.invoke(app, ["capacity", "--stack", STACK])
    assert result.exit_code == 1 and "no AWS credentials" in result.output
