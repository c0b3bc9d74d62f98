"""The web tier: an ALB in the public subnets and an Auto Scaling group in the private ones.

On the `ec2` platform the instances run the app container from user data and sit in one
target group. On `kubernetes` they are EKS worker nodes (user data from the Eks component)
and each app service gets its own target group, reached on the service's NodePort, and its
own listener rule by path: no AWS Load Balancer Controller is needed.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import pulumi
import pulumi_aws as aws

from components.pgbouncer import PGBOUNCER_IMAGE, RDS_CA_DIR, RDS_CA_FILE
from components.pgbouncer import PORT as PGBOUNCER_PORT
from components.placeholder import PLACEHOLDER_CONF, PLACEHOLDER_IMAGE, placeholder_server_block
from config.cloudflare import IPV4_RANGES
from config.models import (
    HOSTNAME,
    IMAGE_REFERENCE,
    URL_PATH,
    ComputeConfig,
    ServiceConfig,
    capacity_problem,
    certificate_problem,
    warm_pool_problem,
)

# TLS 1.3 with TLS 1.2 fallback, forward secrecy only (AWS's recommended policy, 2023+).
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
# Amazon Linux 2023, resolved per region from AWS's public SSM parameter, never pinned.
AL2023_AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
SSM_POLICY = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
# Scale out fast on a spike: this much CPU above the tracking target for one alarm period
# adds at least half the group again (target tracking alone needs 3 minutes of datapoints).
FAST_SCALE_MARGIN = 15
FAST_SCALE_PERCENT = 50
# ec2 platform: the spike alarm reads the CloudWatch agent's CPU every 10 s (a
# high-resolution custom metric; the EC2 metric comes once a minute), and its step takes the
# group from minSize to maxSize at once, from the warm pool: 10x within 2 minutes (issue 13).
# AWS: high-resolution metrics and 10 s alarms, https://docs.aws.amazon.com/AmazonCloudWatch/
# latest/monitoring/publishingMetrics.html#high-resolution-metrics; the agent's
# metrics_collection_interval below 60 s stores high-resolution metrics, and
# append_dimensions ${aws:AutoScalingGroupName} with aggregation_dimensions give one series
# per group (CloudWatch agent configuration file reference,
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/
# CloudWatch-Agent-Configuration-File-Details.html).
SPIKE_PERIOD_S = 10
AGENT_NAMESPACE = "CWAgent"
AGENT_CPU_METRIC = "cpu_usage_active"
AGENT_CONFIG = "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json"
AGENT_POLICY = "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy"


def fast_scale_percent(min_size: int, max_size: int) -> int:
    """The spike step (PercentChangeInCapacity): minSize to maxSize in one step, at least
    FAST_SCALE_PERCENT."""
    return max(FAST_SCALE_PERCENT, -(-(max_size - max(min_size, 1)) * 100 // max(min_size, 1)))


def agent_config() -> str:
    """CloudWatch agent: total CPU every 10 s, flushed every 10 s, one series per group."""
    return json.dumps({
        "agent": {"metrics_collection_interval": SPIKE_PERIOD_S,
                  "force_flush_interval": SPIKE_PERIOD_S},
        "metrics": {
            "namespace": AGENT_NAMESPACE,
            "append_dimensions": {"AutoScalingGroupName": "${aws:AutoScalingGroupName}"},
            "aggregation_dimensions": [["AutoScalingGroupName"]],
            "metrics_collected": {"cpu": {"measurement": ["usage_active"], "totalcpu": True,
                                          "metrics_collection_interval": SPIKE_PERIOD_S}},
        },
    }, sort_keys=True)
# An SSM parameter path: AWS allows letters, digits and _ . - / only.
SSM_PATH = r"^(?:/[A-Za-z0-9_.-]+)+$"


@dataclass(frozen=True)
class Route:
    """One app service behind the ALB: a target group and a path rule."""

    name: str
    path: str
    port: int
    health_path: str = "/healthz"


@dataclass(frozen=True)
class ComputeArgs:
    """Inputs of `Compute`."""

    vpc_id: pulumi.Input[str]
    vpc_cidr: pulumi.Input[str]
    public_subnet_ids: pulumi.Input[Sequence[str]]
    """The ALB's subnets, one per AZ."""
    private_subnet_ids: pulumi.Input[Sequence[str]]
    """The instances' subnets, one per AZ (the group balances across them)."""
    min_size: int
    max_size: int
    desired_capacity: int
    """Initial size only: later deploys never reset what scaling chose (ignore_changes)."""
    instance_type: str = "m5.large"
    instance_types: Sequence[str] = ()
    """More types for the mixed-instances policy (spot diversification)."""
    spot_percent: int = 0
    """Share of capacity above `on_demand_base` bought as spot (0 = all on-demand)."""
    on_demand_base: int = 0
    warm_pool: bool = False
    warm_pool_min_size: int = 1
    warm_pool_max_prepared: int | None = None
    cpu_target_percent: int = 70
    requests_per_target: int | None = 1000
    """ALB requests per target per minute to track; None turns that policy off."""
    instance_warmup_seconds: int = 90
    health_check_grace_seconds: int = 120
    root_volume_gb: int = 30
    platform: Literal["ec2", "kubernetes"] = "ec2"
    app_image: str = PLACEHOLDER_IMAGE
    app_port: int = 8080
    health_check_path: str = "/healthz"
    routes: Sequence[Route] = ()
    """kubernetes: one target group and path rule per service (ports are NodePorts)."""
    user_data: pulumi.Input[str] | None = None
    """Overrides the rendered app user data (the EKS node bootstrap on kubernetes)."""
    ami_parameter: pulumi.Input[str] = AL2023_AMI_PARAMETER
    """SSM parameter holding the AMI id (the EKS-optimised one on kubernetes)."""
    sidecar_parameter_path: str | None = None
    """ec2 platform: SSM path holding the PgBouncer sidecar's config (pgbouncer.ini and
    userlist.txt, published by the PgBouncer component); None runs no sidecar."""
    instance_role_name: pulumi.Input[str] | None = None
    """An existing role for the instances (the EKS node role); else one is created."""
    autoscaler_tags: Sequence[tuple[pulumi.Input[str], str]] = ()
    """kubernetes: Cluster Autoscaler's discovery tags (components/autoscaler.py
    `autoscaler_tags`). With them the autoscaler owns the group's desired capacity, and the
    group gets no scaling policy of its own: two writers of one desired capacity undo each
    other (the EKS user guide, "Cluster Autoscaler": it "controls the .DesiredReplicas
    field of Amazon EC2 Auto Scaling groups"); node CPU says nothing of Pending pods, and a
    CPU scale-in would terminate nodes the autoscaler keeps for placeholder pods."""
    extra_security_group_ids: Sequence[pulumi.Input[str]] = ()
    domain_name: str = "sofacoverpro.com"
    certificate_arn: pulumi.Input[str] | None = None
    """An issued ACM certificate (dns_validation manual); without one a DNS-validated
    certificate for domain_name and its wildcard is requested."""
    dns_validation: Literal["cloudflare", "external", "manual"] = "external"
    """Who creates the validation records: this stack in the Cloudflare zone `dns_zone`
    (`cloudflare`), another stack of the same AWS account (`external`: the listener waits
    for them), or nobody because certificate_arn is given (`manual`)."""
    dns_zone: str | None = None
    """The Cloudflare zone holding domain_name (`cloudflare`); default domain_name."""
    origin_access: Literal["public", "cloudflare"] = "public"
    """`cloudflare`: the ALB admits only Cloudflare's ranges, on 443 only."""
    deletion_protection: bool = True
    access_log_days: int = 90
    tags: dict[str, str] = field(default_factory=dict)
    group_tags: dict[str, str] = field(default_factory=dict)
    """The provider's default tags, copied onto the Auto Scaling group (propagated to its
    instances): the AWS provider's default_tags do not reach aws_autoscaling_group (its
    tags are blocks; the SDK's Group has no tags_all, unlike the resources it tags)."""

    @classmethod
    def from_config(cls, cfg: ComputeConfig, *, vpc_id: pulumi.Input[str],
                    vpc_cidr: pulumi.Input[str], public_subnet_ids: pulumi.Input[Sequence[str]],
                    private_subnet_ids: pulumi.Input[Sequence[str]], deletion_protection: bool,
                    services: Sequence[ServiceConfig] = (), **overrides: object) -> ComputeArgs:
        args = cls(
            vpc_id=vpc_id, vpc_cidr=vpc_cidr, public_subnet_ids=public_subnet_ids,
            private_subnet_ids=private_subnet_ids, min_size=cfg.min_size,
            max_size=cfg.max_size, desired_capacity=cfg.desired_capacity,
            instance_type=cfg.instance_type, instance_types=tuple(cfg.instance_types),
            spot_percent=cfg.spot_percent, on_demand_base=cfg.on_demand_base,
            warm_pool=cfg.warm_pool.enabled, warm_pool_min_size=cfg.warm_pool.min_size,
            warm_pool_max_prepared=cfg.warm_pool.max_prepared_capacity,
            cpu_target_percent=cfg.cpu_target_percent,
            requests_per_target=cfg.requests_per_target if cfg.platform == "ec2" else None,
            instance_warmup_seconds=cfg.instance_warmup_seconds,
            health_check_grace_seconds=cfg.health_check_grace_seconds,
            root_volume_gb=cfg.root_volume_gb, platform=cfg.platform,
            app_image=cfg.app_image, app_port=cfg.app_port,
            health_check_path=cfg.health_check_path, domain_name=cfg.domain_name,
            certificate_arn=cfg.certificate_arn, dns_validation=cfg.dns_validation,
            dns_zone=cfg.dns_zone, origin_access=cfg.origin_access,
            deletion_protection=deletion_protection, access_log_days=cfg.access_log_days,
            routes=tuple(Route(s.name, s.path, s.node_port, s.health_path) for s in services)
            if cfg.platform == "kubernetes" else (),
        )
        return replace(args, **overrides)  # type: ignore[arg-type]

    def check(self) -> None:
        """Refuse inputs that do not add up, before anything is created."""
        for arg, problem in (
                ("desired_capacity", capacity_problem(self.min_size, self.max_size,
                                                      self.desired_capacity)),
                ("warm_pool", warm_pool_problem(self.warm_pool, self.spot_percent,
                                                self.instance_types, self.platform))):
            if problem:
                raise ValueError(f"ComputeArgs: {arg} {problem}")
        problem = certificate_problem(self.dns_validation, self.certificate_arn,
                                      self.domain_name, self.dns_zone)
        if problem:
            raise ValueError(f"ComputeArgs: {problem[0]} {problem[1]}")
        # Config validates these where they enter; checked again here because a component
        # can be built without the config, and they reach the instances' root shell.
        for arg, value, pattern, what in (
                ("app_image", self.app_image, IMAGE_REFERENCE, "an OCI image reference"),
                ("health_check_path", self.health_check_path, URL_PATH, "an HTTP path"),
                ("domain_name", self.domain_name, HOSTNAME, "a lower-case DNS name"),
                ("sidecar_parameter_path", self.sidecar_parameter_path, SSM_PATH,
                 "an SSM path like /sofacover/prod/pgbouncer")):
            if value is not None and not re.fullmatch(pattern, value):
                raise ValueError(f"ComputeArgs: {arg} is {value!r}; it must be {what}")
        if self.platform == "kubernetes" and not self.routes:
            raise ValueError("ComputeArgs: platform kubernetes needs at least one route")
        if self.platform == "kubernetes" and self.user_data is None:
            raise ValueError("ComputeArgs: platform kubernetes needs user_data (the EKS node "
                             "bootstrap from the Eks component)")


SIDECAR_SCRIPT = "/usr/local/sbin/sofacover-pgbouncer"
SIDECAR_UNIT = "sofacover-pgbouncer.service"
# Warm pool: a launch lifecycle hook holds each instance until its app answers, both when it
# enters the warm pool (else it is stopped before user data has installed Docker and pulled
# the image, and user data never runs again) and when it leaves it for service (else the
# ALB gets it before its containers are back). AWS: "Use lifecycle hooks with a warm pool",
# https://docs.aws.amazon.com/autoscaling/ec2/userguide/warm-pool-instance-lifecycle.html.
# A boot unit (every boot: a warm start does not rerun user data) completes the action.
READY_HOOK = "sofacover-app-ready"
READY_HOOK_TIMEOUT_S = 600
READY_SCRIPT = "/usr/local/sbin/sofacover-ready"
READY_UNIT = "sofacover-ready.service"


def render_app_user_data(image: str, port: int, region: str = "",
                         sidecar_path: str | None = None, health_path: str = "/healthz",
                         ready_hook: str | None = None) -> str:
    """cloud-init for the ec2 platform: Docker, the PgBouncer sidecar as a systemd unit that
    waits for its config in SSM in the background, then at once the app container,
    read-only, pointed at the sidecar.

    Every value is shell-quoted (shlex.quote) although the config already refuses
    anything but an image reference, a path and a region: user data runs as root."""
    q = shlex.quote
    lines = ["#!/bin/bash", "set -euo pipefail", "dnf install -y docker amazon-cloudwatch-agent",
             "systemctl enable --now docker",
             f"cat > {AGENT_CONFIG} <<'SOFACOVER_AGENT'", agent_config(), "SOFACOVER_AGENT",
             "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config "
             f"-m ec2 -s -c file:{AGENT_CONFIG}"]
    env = f"-e PORT={q(str(port))}"
    if sidecar_path:
        get = (f"aws ssm get-parameter --region {q(region)} --query Parameter.Value "
               "--output text")
        ini, userlist = q(f"{sidecar_path}/pgbouncer.ini"), q(f"{sidecar_path}/userlist.txt")
        # The RDS roots come with the config (SSM), not from the internet at boot.
        ca = q(f"{sidecar_path}/rds-ca.pem")
        sidecar = [
            "#!/bin/bash", "set -euo pipefail",
            f"mkdir -p {q(RDS_CA_DIR)} /etc/pgbouncer/auth",
            # The data tier publishes the config after the instances may already boot.
            f"until {get} --name {ca} > {q(RDS_CA_FILE)}; do sleep 10; done",
            f"until {get} --name {ini} > /etc/pgbouncer/pgbouncer.ini; do sleep 10; done",
            f"until {get} --with-decryption --name {userlist}"
            " > /etc/pgbouncer/auth/userlist.txt; do sleep 10; done",
            # PgBouncer refuses to run as root: it runs as nobody, who alone reads the files.
            "chown -R 65534:65534 /etc/pgbouncer && chmod 0400 /etc/pgbouncer/auth/userlist.txt",
            "docker rm -f pgbouncer >/dev/null 2>&1 || true",
            f"docker run -d --name pgbouncer --restart always --network host --read-only "
            f"--user 65534:65534 -v /etc/pgbouncer:/etc/pgbouncer:ro {q(PGBOUNCER_IMAGE)} "
            "pgbouncer /etc/pgbouncer/pgbouncer.ini",
        ]
        # A unit of its own, started without waiting: on a first deploy the database (and
        # so the config) arrives 20-40 minutes after the instances, and the app must answer
        # the ALB's health checks meanwhile, or the group replaces instances in a loop.
        lines += [
            f"cat > {SIDECAR_SCRIPT} <<'SOFACOVER_SIDECAR'", *sidecar, "SOFACOVER_SIDECAR",
            f"chmod 0755 {SIDECAR_SCRIPT}",
            f"cat > /etc/systemd/system/{SIDECAR_UNIT} <<'SOFACOVER_UNIT'",
            "[Unit]",
            "Description=PgBouncer sidecar: waits for its config in SSM, then runs it",
            "After=docker.service network-online.target",
            "Requires=docker.service",
            "Wants=network-online.target",
            "[Service]",
            "Type=oneshot",
            "RemainAfterExit=yes",
            f"ExecStart={SIDECAR_SCRIPT}",
            "[Install]",
            "WantedBy=multi-user.target",
            "SOFACOVER_UNIT",
            "systemctl daemon-reload",
            f"systemctl enable {SIDECAR_UNIT}",
            f"systemctl start --no-block {SIDECAR_UNIT}",
        ]
        env += f" -e DATABASE_HOST=127.0.0.1 -e DATABASE_PORT={q(str(PGBOUNCER_PORT))}"
    publish = "--network host" if sidecar_path else f"-p {q(f'{port}:{port}')}"
    mount = ""
    if image == PLACEHOLDER_IMAGE:
        # The placeholder listens on the app port and answers the health path only with
        # its server block (components/placeholder.py), as on Kubernetes.
        lines += ["mkdir -p /etc/sofacover",
                  "cat > /etc/sofacover/placeholder.conf <<'SOFACOVER_EOF'",
                  placeholder_server_block(port, health_path).rstrip("\n"),
                  "SOFACOVER_EOF"]
        mount = f" -v /etc/sofacover/placeholder.conf:{PLACEHOLDER_CONF}:ro"
    lines += [
        f"docker pull {q(image)}",
        f"docker run -d --name app --restart always --read-only --tmpfs /tmp "
        f"--cap-drop ALL --security-opt no-new-privileges {env}{mount} {publish} {q(image)}",
    ]
    if ready_hook:
        lines += _ready_unit(ready_hook, port, region, health_path)
    return "\n".join([*lines, ""])


def _ready_unit(hook: str, port: int, region: str, health_path: str) -> list[str]:
    """A unit run at every boot: once the app answers its health path, complete the launch
    lifecycle action, so the instance goes on to the warm pool or into service. If the app
    never answers, nothing is sent and the hook's ABANDON terminates the instance."""
    q = shlex.quote
    imds = "http://169.254.169.254/latest"
    script = [
        "#!/bin/bash", "set -uo pipefail",
        f"for _ in $(seq 1 {READY_HOOK_TIMEOUT_S // 5}); do",
        f"  curl -fsS -o /dev/null {q(f'http://127.0.0.1:{port}{health_path}')} && break",
        "  sleep 5", "done",
        f"curl -fsS -o /dev/null {q(f'http://127.0.0.1:{port}{health_path}')} || exit 1",
        f"token=$(curl -fsS -X PUT {imds}/api/token "
        "-H 'X-aws-ec2-metadata-token-ttl-seconds: 300')",
        f'id=$(curl -fsS -H "X-aws-ec2-metadata-token: $token" {imds}/meta-data/instance-id)',
        # the IAM policy for this call may be a little younger than the first instances
        "for _ in $(seq 1 30); do",
        f"  group=$(aws autoscaling describe-auto-scaling-instances --region {q(region)} "
        '--instance-ids "$id" --query "AutoScalingInstances[0].AutoScalingGroupName" '
        "--output text) &&",
        f"  aws autoscaling complete-lifecycle-action --region {q(region)} "
        f'--lifecycle-hook-name {q(hook)} --auto-scaling-group-name "$group" '
        '--instance-id "$id" --lifecycle-action-result CONTINUE && exit 0',
        # no action pending (a plain reboot) is an error too: give up after the retries
        "  sleep 10", "done",
    ]
    return [
        f"cat > {READY_SCRIPT} <<'SOFACOVER_READY'", *script, "SOFACOVER_READY",
        f"chmod 0755 {READY_SCRIPT}",
        f"cat > /etc/systemd/system/{READY_UNIT} <<'SOFACOVER_UNIT'",
        "[Unit]",
        "Description=Tell Auto Scaling the app answers (warm pool lifecycle hook)",
        "After=docker.service network-online.target",
        "Wants=network-online.target",
        "[Service]",
        "Type=oneshot",
        f"ExecStart={READY_SCRIPT}",
        "[Install]",
        "WantedBy=multi-user.target",
        "SOFACOVER_UNIT",
        "systemctl daemon-reload",
        f"systemctl enable {READY_UNIT}",
        f"systemctl start --no-block {READY_UNIT}",
    ]


def _app_user_data(region: str, image: str, port: int, sidecar_path: str | None,
                   health_path: str, ready_hook: str | None = None) -> str:
    return render_app_user_data(image, port, region, sidecar_path, health_path, ready_hook)


def _ready_hook_policy(args: list[str], group_prefix: str) -> str:
    """The instances may complete launch lifecycle actions of their own group only (its
    autonamed name starts with the logical name), and look up which group they are in."""
    region, account = args
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "autoscaling:CompleteLifecycleAction",
         "Resource": f"arn:aws:autoscaling:{region}:{account}:autoScalingGroup:*:"
                     f"autoScalingGroupName/{group_prefix}-*"},
        # DescribeAutoScalingInstances takes no resource (AWS Service Authorization
        # Reference, Amazon EC2 Auto Scaling actions).
        {"Effect": "Allow", "Action": "autoscaling:DescribeAutoScalingInstances",
         "Resource": "*"}]})


def validation_names(domain_name: str) -> list[str]:
    """The names that get a validation record: the certificate's names, a wildcard folded
    into its base (ACM gives `*.example.com` the record of `example.com`)."""
    return list(dict.fromkeys(d.removeprefix("*.") for d in (domain_name,
                                                               f"*.{domain_name}")))


def _validation_field(options: list, *, domain: str, field: str) -> str:
    """One field of the certificate's validation record for `domain`, without the trailing
    dot (Cloudflare stores names and targets without it, so a dot would diff forever)."""
    for option in options or []:
        get = option.get if isinstance(option, dict) else functools.partial(getattr, option)
        if get("domain_name").removeprefix("*.") == domain:
            return str(get(field)).rstrip(".")
    raise pulumi.RunError(f"the certificate has no validation record for {domain}")


def _sidecar_policy(args: list[str], path: str) -> str:
    region, account = args
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["ssm:GetParameter"],
        "Resource": f"arn:aws:ssm:{region}:{account}:parameter{path}/*"}]})


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _log_bucket_policy(args: list[str]) -> str:
    bucket_arn, elb_principal, account_id = args
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "AlbAccessLogs", "Effect": "Allow",
             "Principal": {"AWS": elb_principal},
             "Action": "s3:PutObject",
             "Resource": f"{bucket_arn}/alb/AWSLogs/{account_id}/*"},
            {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*",
             "Action": "s3:*", "Resource": [bucket_arn, f"{bucket_arn}/*"],
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        ],
    })


def _assume_ec2() -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
        "Action": "sts:AssumeRole"}]})


def health_check_type(platform: str) -> str:
    """The Auto Scaling group's health check: ELB on ec2, EC2 status checks on kubernetes."""
    return "ELB" if platform == "ec2" else "EC2"


def _catch_all_last(route: Route) -> tuple[bool, str]:
    # Rules match by priority: specific paths first, the catch-all "/*" last.
    return (route.path == "/*", route.path)


def _resource_label(parts: list[str]) -> str:
    return f"{parts[0]}/{parts[1]}"


# AWS's short region codes, as in zone ids (use1-az4, apse1-az2).
_REGION = re.compile(r"\b([a-z]{2})-(central|north|south|(?:north|south)?(?:east|west))-(\d+)\b")
_DIRECTION = {"central": "c", "north": "n", "south": "s", "east": "e", "west": "w"}


def _short_region(match: re.Match[str]) -> str:
    area, direction, number = match.groups()
    short = _DIRECTION.get(direction) or "".join(_DIRECTION[d] for d in
                                                  re.findall("north|south|east|west", direction))
    return f"{area}{short}{number}"


def aws_name_stem(name: str) -> str:
    """A short stem for the children whose AWS names are capped at 32 characters.

    A deliberate exception to the `f"{name}-<role>"` rule: pulumi-aws autonames the ALB and
    the target groups `<logical name>-<7 random chars>` and refuses (it never shortens) a
    result over 32 characters, which `sofacover-prod-ap-southeast-1-tg-storefront-...` is.
    So they take `sc-<stack>` with the region in AWS's short form:
    sofacover-prod-ap-southeast-1 -> sc-prod-apse1. The random suffix keeps the AWS names
    unique; their old logical names stay as aliases, so a deployed ALB is not replaced.
    """
    return _REGION.sub(_short_region, re.sub(r"^sofacover-", "sc-", name))


class Compute(pulumi.ComponentResource):
    """ALB (HTTPS, redirect, access logs) and an Auto Scaling group that scales on load."""

    alb_arn: pulumi.Output[str]
    alb_arn_suffix: pulumi.Output[str]
    """For CloudWatch metrics (dimension LoadBalancer)."""
    alb_dns_name: pulumi.Output[str]
    """The origin the edge points at."""
    alb_zone_id: pulumi.Output[str]
    alb_security_group_id: pulumi.Output[str]
    instance_security_group_id: pulumi.Output[str]
    target_group_arn_suffixes: pulumi.Output[dict[str, str]]
    """Route name (`app` on ec2) -> target group ARN suffix, for metrics."""
    asg_name: pulumi.Output[str]
    certificate_validation_records: pulumi.Output[list[dict[str, str]]]
    """DNS records that validate the requested certificate (empty with certificate_arn)."""

    def __init__(self, name: str, args: ComputeArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        args.check()
        super().__init__("sofacover:compute:Compute", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        tags = {**args.tags}

        account_id = aws.get_caller_identity_output(opts=invoke).account_id
        region = aws.get_region_output(opts=invoke).region
        elb_account = aws.elb.get_service_account_output(opts=invoke).arn

        # --- access logs: SSE-S3 (ALB log delivery supports no KMS), expiring --------------
        logs = aws.s3.Bucket(f"{name}-alb-logs", force_destroy=False,
                             tags={**tags, "Name": f"{name}-alb-logs"}, opts=child)
        aws.s3.BucketOwnershipControls(f"{name}-alb-logs-ownership", bucket=logs.id,
                                       rule={"object_ownership": "BucketOwnerEnforced"},
                                       opts=child)
        aws.s3.BucketPublicAccessBlock(f"{name}-alb-logs-block", bucket=logs.id,
                                       block_public_acls=True, block_public_policy=True,
                                       ignore_public_acls=True, restrict_public_buckets=True,
                                       opts=child)
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-alb-logs-sse", bucket=logs.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=child)
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-alb-logs-lifecycle", bucket=logs.id,
            rules=[{"id": "expire-access-logs", "status": "Enabled", "filter": {"prefix": ""},
                    "expiration": {"days": args.access_log_days},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 7}}],
            opts=child)
        policy = aws.s3.BucketPolicy(
            f"{name}-alb-logs-policy", bucket=logs.id,
            policy=pulumi.Output.all(logs.arn, elb_account, account_id).apply(_log_bucket_policy),
            opts=child)

        # --- security groups ----------------------------------------------------------------
        alb_sg = aws.ec2.SecurityGroup(f"{name}-alb-sg", vpc_id=args.vpc_id,
                                       description=f"{name}: ALB",
                                       tags={**tags, "Name": f"{name}-alb"}, opts=child)
        sources = IPV4_RANGES if args.origin_access == "cloudflare" else ("0.0.0.0/0",)
        ports = (443,) if args.origin_access == "cloudflare" else (443, 80)
        for port in ports:
            for i, cidr in enumerate(sources):
                aws.vpc.SecurityGroupIngressRule(
                    f"{name}-alb-in-{port}-{i}", security_group_id=alb_sg.id,
                    ip_protocol="tcp", from_port=port, to_port=port, cidr_ipv4=cidr,
                    description="Cloudflare" if args.origin_access == "cloudflare" else "internet",
                    opts=child)
        node_sg = aws.ec2.SecurityGroup(f"{name}-instance-sg", vpc_id=args.vpc_id,
                                        description=f"{name}: app instances",
                                        tags={**tags, "Name": f"{name}-instances"}, opts=child)
        target_ports = [r.port for r in args.routes] or [args.app_port]
        for port in target_ports:
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-alb-out-{port}", security_group_id=alb_sg.id, ip_protocol="tcp",
                from_port=port, to_port=port, referenced_security_group_id=node_sg.id,
                description="to the app instances", opts=child)
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-instance-in-{port}", security_group_id=node_sg.id, ip_protocol="tcp",
                from_port=port, to_port=port, referenced_security_group_id=alb_sg.id,
                description="from the ALB", opts=child)
        # Instances pull images and reach AWS APIs through NAT and endpoints.
        aws.vpc.SecurityGroupEgressRule(f"{name}-instance-out", security_group_id=node_sg.id,
                                        ip_protocol="-1", cidr_ipv4="0.0.0.0/0",
                                        description="images, AWS APIs, the data tier",
                                        opts=child)

        # --- load balancer, certificate, listeners -----------------------------------------
        stem = aws_name_stem(name)  # ALB and target-group names: 32 characters at most
        alb = aws.lb.LoadBalancer(
            f"{stem}-alb", load_balancer_type="application", internal=False,
            subnets=args.public_subnet_ids, security_groups=[alb_sg.id],
            drop_invalid_header_fields=True, desync_mitigation_mode="strictest",
            enable_deletion_protection=args.deletion_protection, idle_timeout=60,
            access_logs={"bucket": logs.id, "prefix": "alb", "enabled": True},
            tags={**tags, "Name": f"{name}-alb"},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy],
                                        aliases=[pulumi.Alias(name=f"{name}-alb")]))

        if args.certificate_arn is not None:
            certificate_arn = pulumi.Output.from_input(args.certificate_arn)
            validation_records: pulumi.Output = pulumi.Output.from_input([])
        else:
            cert = aws.acm.Certificate(
                f"{name}-cert", domain_name=args.domain_name,
                subject_alternative_names=[f"*.{args.domain_name}"], validation_method="DNS",
                tags={**tags, "Name": args.domain_name}, opts=child)
            records = (self._cloudflare_validation_records(name, args, cert)
                       if args.dns_validation == "cloudflare" else [])
            # The listener refuses a certificate until it is issued (CertificateNotFound), so
            # it waits here: minutes once the records exist; `external` relies on another
            # stack of this account having created them (the README's deploy order).
            validated = aws.acm.CertificateValidation(
                f"{name}-cert-validation", certificate_arn=cert.arn,
                opts=pulumi.ResourceOptions(parent=self, depends_on=records,
                                            custom_timeouts=pulumi.CustomTimeouts(create="45m")))
            certificate_arn = validated.certificate_arn
            validation_records = cert.domain_validation_options

        def target_group(key: str, port: int, health_path: str) -> aws.lb.TargetGroup:
            return aws.lb.TargetGroup(
                f"{stem}-{key}", port=port, protocol="HTTP", target_type="instance",
                vpc_id=args.vpc_id, deregistration_delay=30,
                # Sessions live in Redis: any instance can serve any request.
                stickiness={"enabled": False, "type": "lb_cookie"},
                health_check={"enabled": True, "path": health_path, "matcher": "200",
                              "protocol": "HTTP", "port": "traffic-port", "interval": 15,
                              "timeout": 5, "healthy_threshold": 2, "unhealthy_threshold": 3},
                tags={**tags, "Name": f"{name}-{key}"},
                opts=pulumi.ResourceOptions(parent=self,
                                            aliases=[pulumi.Alias(name=f"{name}-tg-{key}")]))

        if args.routes:
            groups = {r.name: target_group(r.name, r.port, r.health_path) for r in args.routes}
            default_action = {"type": "fixed-response", "fixed_response": {
                "content_type": "text/plain", "message_body": "not found",
                "status_code": "404"}}
        else:
            groups = {"app": target_group("app", args.app_port, args.health_check_path)}
            default_action = {"type": "forward", "target_group_arn": groups["app"].arn}

        https = aws.lb.Listener(
            f"{name}-https", load_balancer_arn=alb.arn, port=443, protocol="HTTPS",
            ssl_policy=TLS_POLICY, certificate_arn=certificate_arn,
            default_actions=[default_action], opts=child)
        aws.lb.Listener(
            f"{name}-http", load_balancer_arn=alb.arn, port=80, protocol="HTTP",
            default_actions=[{"type": "redirect", "redirect": {
                "port": "443", "protocol": "HTTPS", "status_code": "HTTP_301"}}], opts=child)
        for i, route in enumerate(sorted(args.routes, key=_catch_all_last)):
            aws.lb.ListenerRule(
                f"{name}-rule-{route.name}", listener_arn=https.arn, priority=10 * (i + 1),
                conditions=[{"path_pattern": {"values": [route.path]}}],
                actions=[{"type": "forward", "target_group_arn": groups[route.name].arn}],
                opts=child)

        # --- instances ------------------------------------------------------------------------
        if args.instance_role_name is None:
            role = aws.iam.Role(f"{name}-instance-role", assume_role_policy=_assume_ec2(),
                                tags=tags, opts=child)
            aws.iam.RolePolicyAttachment(f"{name}-instance-ssm", role=role.name,
                                         policy_arn=SSM_POLICY, opts=child)
            # the CloudWatch agent: PutMetricData, and DescribeTags for the group's name
            aws.iam.RolePolicyAttachment(f"{name}-instance-agent", role=role.name,
                                         policy_arn=AGENT_POLICY, opts=child)
            if args.sidecar_parameter_path:
                aws.iam.RolePolicy(
                    f"{name}-instance-sidecar-config", role=role.name,
                    policy=pulumi.Output.all(region, account_id).apply(functools.partial(
                        _sidecar_policy, path=args.sidecar_parameter_path)), opts=child)
            if args.warm_pool:
                aws.iam.RolePolicy(
                    f"{name}-instance-ready-hook", role=role.name,
                    policy=pulumi.Output.all(region, account_id).apply(functools.partial(
                        _ready_hook_policy, group_prefix=f"{name}-asg")), opts=child)
            role_name: pulumi.Input[str] = role.name
        else:
            role_name = args.instance_role_name
        profile = aws.iam.InstanceProfile(f"{name}-instance-profile", role=role_name,
                                          tags=tags, opts=child)
        ami = aws.ssm.get_parameter_output(name=args.ami_parameter, opts=invoke).value
        user_data = (args.user_data if args.user_data is not None
                     else region.apply(functools.partial(
                         _app_user_data, image=args.app_image, port=args.app_port,
                         sidecar_path=args.sidecar_parameter_path,
                         health_path=args.health_check_path,
                         ready_hook=READY_HOOK if args.warm_pool else None)))
        template = aws.ec2.LaunchTemplate(
            f"{name}-lt", image_id=ami, instance_type=args.instance_type,
            iam_instance_profile={"arn": profile.arn},
            vpc_security_group_ids=[node_sg.id, *args.extra_security_group_ids],
            metadata_options={
                "http_endpoint": "enabled", "http_tokens": "required",
                # Containers on the ec2 platform sit one hop further; pods on EKS must not
                # reach the node's credentials at all.
                "http_put_response_hop_limit": 2 if args.platform == "ec2" else 1,
                "instance_metadata_tags": "disabled"},
            block_device_mappings=[{"device_name": "/dev/xvda", "ebs": {
                "volume_size": args.root_volume_gb, "volume_type": "gp3", "encrypted": "true",
                "delete_on_termination": "true"}}],
            # 1-minute metrics: the fast scale-out alarm needs them.
            monitoring={"enabled": True},
            user_data=pulumi.Output.from_input(user_data).apply(_b64),
            update_default_version=True,
            tag_specifications=[{"resource_type": "instance", "tags": {**tags,
                                                                         "Name": name}},
                                {"resource_type": "volume", "tags": {**tags, "Name": name}}],
            tags=tags, opts=child)
        # Pinned to the template's version number (not $Latest), so a new version is a
        # change to the group and starts an instance refresh.
        template_ref = {"id": template.id, "version": template.latest_version.apply(str)}

        mixed = args.spot_percent > 0 or bool(args.instance_types)
        group = aws.autoscaling.Group(
            f"{name}-asg", vpc_zone_identifiers=args.private_subnet_ids,
            min_size=args.min_size, max_size=args.max_size,
            desired_capacity=args.desired_capacity,
            # ec2: the instance is the app, so a failing target health check replaces it.
            # kubernetes: a node carries many pods; one app's failing health check must not
            # terminate the node (the kubelet restarts the pod), so only EC2 status checks.
            health_check_type=health_check_type(args.platform),
            health_check_grace_period=args.health_check_grace_seconds,
            default_instance_warmup=args.instance_warmup_seconds,
            target_group_arns=[tg.arn for tg in groups.values()],
            launch_template=None if mixed else template_ref,
            mixed_instances_policy={
                "instances_distribution": {
                    "on_demand_base_capacity": args.on_demand_base,
                    "on_demand_percentage_above_base_capacity": 100 - args.spot_percent,
                    "spot_allocation_strategy": "price-capacity-optimized"},
                "launch_template": {
                    "launch_template_specification": {"launch_template_id": template.id,
                                                      "version": template_ref["version"]},
                    "overrides": [{"instance_type": t} for t in
                                  (args.instance_type, *args.instance_types)]},
            } if mixed else None,
            capacity_rebalance=args.spot_percent > 0,
            instance_refresh={"strategy": "Rolling", "preferences": {
                "min_healthy_percentage": 90, "skip_matching": True, "auto_rollback": True}},
            # Stopped: only the volumes are paid while warm. Reuse on scale-in: instances go
            # back to the pool instead of being terminated and rebuilt.
            warm_pool={"pool_state": "Stopped", "min_size": args.warm_pool_min_size,
                       "max_group_prepared_capacity": args.warm_pool_max_prepared,
                       "instance_reuse_policy": {"reuse_on_scale_in": True}}
            if args.warm_pool else None,
            initial_lifecycle_hooks=[{
                "name": READY_HOOK, "lifecycle_transition": "autoscaling:EC2_INSTANCE_LAUNCHING",
                "heartbeat_timeout": READY_HOOK_TIMEOUT_S, "default_result": "ABANDON"}]
            if args.warm_pool else None,
            enabled_metrics=["GroupDesiredCapacity", "GroupInServiceInstances",
                             "GroupPendingInstances", "GroupTotalInstances"],
            metrics_granularity="1Minute",
            tags=[{"key": k, "value": v, "propagate_at_launch": True}
                  for k, v in {**args.group_tags, **tags, "Name": name}.items()]
            + [{"key": k, "value": v, "propagate_at_launch": False}
               for k, v in args.autoscaler_tags],
            # Scaling owns the desired capacity once the group exists.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["desiredCapacity"]))

        if not args.autoscaler_tags:
            self._scaling_policies(name, args, group, alb, groups)

        self.alb_arn = alb.arn
        self.alb_arn_suffix = alb.arn_suffix
        self.alb_dns_name = alb.dns_name
        self.alb_zone_id = alb.zone_id
        self.alb_security_group_id = alb_sg.id
        self.instance_security_group_id = node_sg.id
        self.target_group_arn_suffixes = pulumi.Output.all(
            **{k: tg.arn_suffix for k, tg in groups.items()})
        self.asg_name = group.name
        self.certificate_validation_records = validation_records
        self.register_outputs({
            "alb_arn": self.alb_arn, "alb_arn_suffix": self.alb_arn_suffix,
            "alb_dns_name": self.alb_dns_name, "alb_zone_id": self.alb_zone_id,
            "alb_security_group_id": self.alb_security_group_id,
            "instance_security_group_id": self.instance_security_group_id,
            "target_group_arn_suffixes": self.target_group_arn_suffixes,
            "asg_name": self.asg_name,
            "certificate_validation_records": self.certificate_validation_records,
        })

    def _scaling_policies(self, name: str, args: ComputeArgs, group: aws.autoscaling.Group,
                          alb: aws.lb.LoadBalancer, groups: dict[str, aws.lb.TargetGroup]
                          ) -> None:
        """CPU and request tracking, and the fast step on a CPU spike (the group's own
        scaling: every platform but a Cluster-Autoscaler-managed node group)."""
        child = pulumi.ResourceOptions(parent=self)
        aws.autoscaling.Policy(
            f"{name}-cpu-tracking", autoscaling_group_name=group.name,
            policy_type="TargetTrackingScaling",
            target_tracking_configuration={
                "predefined_metric_specification": {
                    "predefined_metric_type": "ASGAverageCPUUtilization"},
                "target_value": args.cpu_target_percent}, opts=child)
        if args.requests_per_target is not None:
            aws.autoscaling.Policy(
                f"{name}-requests-tracking", autoscaling_group_name=group.name,
                policy_type="TargetTrackingScaling",
                target_tracking_configuration={
                    "predefined_metric_specification": {
                        "predefined_metric_type": "ALBRequestCountPerTarget",
                        "resource_label": pulumi.Output.all(
                            alb.arn_suffix, groups["app"].arn_suffix).apply(_resource_label)},
                    "target_value": args.requests_per_target}, opts=child)
        # ec2: the agent's 10 s CPU, and a step to maxSize; kubernetes nodes (no agent, no
        # autoscaler): EC2's own 1-minute CPU and half the group again.
        agent = args.platform == "ec2"
        percent = (fast_scale_percent(args.min_size, args.max_size) if agent
                   else FAST_SCALE_PERCENT)
        period = SPIKE_PERIOD_S if agent else 60
        fast = aws.autoscaling.Policy(
            f"{name}-fast-scale-out", autoscaling_group_name=group.name,
            policy_type="StepScaling", adjustment_type="PercentChangeInCapacity",
            min_adjustment_magnitude=1, metric_aggregation_type="Average",
            step_adjustments=[{"scaling_adjustment": percent,
                               "metric_interval_lower_bound": "0"}], opts=child)
        aws.cloudwatch.MetricAlarm(
            f"{name}-cpu-spike", alarm_description=(
                f"CPU {FAST_SCALE_MARGIN} points above the {args.cpu_target_percent}% target "
                f"for {period} s: add {percent}% capacity"),
            namespace=AGENT_NAMESPACE if agent else "AWS/EC2",
            metric_name=AGENT_CPU_METRIC if agent else "CPUUtilization", statistic="Average",
            period=period, evaluation_periods=1, datapoints_to_alarm=1,
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=min(100, args.cpu_target_percent + FAST_SCALE_MARGIN),
            dimensions={"AutoScalingGroupName": group.name},
            # No data means no instances reporting yet: do not scale on silence.
            treat_missing_data="notBreaching", alarm_actions=[fast.arn], opts=child)

    def _cloudflare_validation_records(self, name: str, args: ComputeArgs,
                                       cert: aws.acm.Certificate) -> list[pulumi.Resource]:
        """One DNS-only CNAME per distinct validation name in the Cloudflare zone. The names
        are known now, so the records are too; only their values come from the certificate
        (no resource is created inside an apply)."""
        # Imported here: pulumi_cloudflare costs seconds of import time that a stack without
        # Cloudflare validation need not pay.
        import pulumi_cloudflare as cloudflare

        zone_id = cloudflare.get_zone_output(
            filter={"name": args.dns_zone or args.domain_name},
            opts=pulumi.InvokeOutputOptions(parent=self)).zone_id
        records: list[pulumi.Resource] = []
        for domain in validation_names(args.domain_name):
            def field(key: str, domain: str = domain) -> pulumi.Output[str]:
                return cert.domain_validation_options.apply(functools.partial(
                    _validation_field, domain=domain, field=key))
            records.append(cloudflare.DnsRecord(
                f"{name}-cert-validation-{domain.replace('.', '-')}", zone_id=zone_id,
                name=field("resource_record_name"), type="CNAME",
                content=field("resource_record_value"),
                # DNS only: ACM must see the CNAME itself, not Cloudflare's proxy.
                proxied=False, ttl=60,
                comment=f"ACM validation of {domain} (pulumi, {name})",
                opts=pulumi.ResourceOptions(parent=self)))
        return records
