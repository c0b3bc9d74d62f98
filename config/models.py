"""Frozen pydantic models, one per concern, for the `sofacover:*` stack config keys.

Field names are snake_case in Python and camelCase in the stack files (the Pulumi
convention), e.g. `sofacover:compute.maxSize`. Every model forbids unknown keys.
Cross-field rules raise `rule(field, message)` so the error names the exact key.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from config import offerings
from config.presets import PLACEHOLDER_IMAGE
from config.quantity import cpu_millis, memory_mib
from config.regions import AZ_COUNT, EKS_UNSUPPORTED_ZONES, KNOWN_REGIONS, usable_az_count
from config.thresholds import AlertsConfig

Environment = Literal["dev", "prod"]
Role = Literal["all-in-one", "primary", "secondary", "edge"]
# CloudWatch Logs accepts only these retention values.
LogRetentionDays = Literal[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
]
PositiveInt = Annotated[int, Field(ge=1)]
Percent = Annotated[int, Field(ge=1, le=100)]


def rule(field: str, message: str) -> PydanticCustomError:
    """A cross-field rule broken: `field` is appended to the error's key path."""
    return PydanticCustomError("rule", message, {"field": field})


def check_region(value: str) -> str:
    if value not in KNOWN_REGIONS:
        raise PydanticCustomError(
            "unknown_region",
            "not an AWS region this project knows; valid regions: {valid}",
            {"valid": ", ".join(sorted(KNOWN_REGIONS))},
        )
    return value


Region = Annotated[str, AfterValidator(check_region)]


class Model(BaseModel):
    # strict: a stack file's `yes` or `true` is not the number 1, nor "5" the number 5; the
    # engine hands objects over as JSON, so every value already has its real type.
    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=False,
        strict=True,
    )


class FlowLogsConfig(Model):
    """VPC flow logs to CloudWatch Logs."""

    enabled: bool = True
    traffic_type: Literal["ALL", "ACCEPT", "REJECT"] = "ALL"
    retention_days: LogRetentionDays = 90


class NetworkConfig(Model):
    """`sofacover:network`: the VPC and its subnet tiers."""

    cidr: str
    az_count: Annotated[int, Field(ge=2, le=6)] = 3
    nat_gateways: Literal["single", "perAz"] = "perAz"
    flow_logs: FlowLogsConfig = FlowLogsConfig()

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        try:
            net = ipaddress.IPv4Network(value)
        except ValueError as exc:
            raise PydanticCustomError(
                "cidr", "not an IPv4 network in CIDR form like 10.10.0.0/16 ({err})",
                {"err": str(exc)},
            ) from exc
        if not 16 <= net.prefixlen <= 20:
            raise PydanticCustomError(
                "cidr", "must be a /16 to /20 network (AWS allows /16 at most; the subnet "
                "tiers need at least a /20)", {},
            )
        if not net.is_private:
            raise PydanticCustomError("cidr", "must be a private (RFC 1918) range", {})
        return str(net)


class WarmPoolConfig(Model):
    """Pre-initialised, stopped instances that join in seconds instead of minutes."""

    enabled: bool = False
    min_size: Annotated[int, Field(ge=0)] = 1
    max_prepared_capacity: Annotated[int, Field(ge=0)] | None = None


# Strings that reach the instances' shell (user data) or AWS names, checked where they
# enter. The image reference is the OCI distribution spec's grammar (name components
# `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, tag `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`, digest
# `algorithm:hex`), with an optional registry host[:port] first, as docker's reference
# grammar (distribution/reference) allows. None of them admits a shell metacharacter; the
# user data quotes them anyway (components/compute.py).
_NAME_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_HOST_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_REGISTRY = rf"(?:{_HOST_LABEL}(?:\.{_HOST_LABEL})*(?::[0-9]{{1,5}})?/)?"
IMAGE_REFERENCE = (rf"^{_REGISTRY}{_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*"
                   r"(?::[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127})?"
                   r"(?:@[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,})?$")
# An HTTP path (RFC 3986 unreserved characters, percent-escapes, '/') with an optional
# query of name=value pairs: what an ALB health check requests.
URL_PATH = r"^/[A-Za-z0-9._~%/-]*(?:\?[A-Za-z0-9._~%=&-]*)?$"
HOSTNAME = r"^(?:[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
ACM_CERTIFICATE_ARN = (r"^arn:aws[a-z-]*:acm:[a-z]{2}(?:-[a-z]+)+-[0-9]:[0-9]{12}:"
                       r"certificate/[0-9a-f-]{36}$")


def check_image_tag(value: str) -> str:
    """A pinned image: a tag other than `latest`, or a digest. Without one the runtime pulls
    `latest` (distribution/reference: the default tag), whose content changes under a
    running deployment, so two nodes may run different code from one spec."""
    tail = value.split("@")[0].rsplit("/", 1)[-1]
    tag = tail.split(":", 1)[1] if ":" in tail else None
    if "@" not in value and tag in (None, "latest"):
        raise PydanticCustomError(
            "image_tag", "names no version ({tag}); pin a tag other than latest, like "
            "app:1.2.3, or a digest (app@sha256:<hex>)",
            {"tag": "tag latest" if tag else "no tag, so latest"})
    return value


def check_idna(value: str) -> str:
    """A hostname whose labels are valid IDNA 2008 (RFC 5891): an `xn--` label must decode,
    no other label has `--` in positions 3-4, none starts or ends with `-` (the idna
    package, which implements RFC 5891/5892)."""
    import idna

    try:
        idna.decode(value)
    except idna.IDNAError as exc:
        raise PydanticCustomError("idna", "is not a valid internationalised domain name "
                                  "(RFC 5891): {err}", {"err": str(exc)}) from exc
    return value


def matching(pattern: str, what: str, max_length: int) -> AfterValidator:
    """A validator refusing what does not match `pattern`, saying what would be valid."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if len(value) > max_length or not compiled.fullmatch(value):
            raise PydanticCustomError("pattern", "must be {what} (at most {n} characters); "
                                      "nothing else reaches the instances' shell or AWS",
                                      {"what": what, "n": max_length})
        return value
    return AfterValidator(check)


ImageReference = Annotated[str, matching(
    IMAGE_REFERENCE, "an OCI image reference like registry.example.com/team/app:1.2.3 or "
    "name@sha256:<hex>, lower-case repository", 255), AfterValidator(check_image_tag)]
UrlPath = Annotated[str, matching(URL_PATH, "an HTTP path like /healthz (letters, digits, "
                                  "- . _ ~ % /, an optional ?query)", 1024)]
Hostname = Annotated[str, matching(HOSTNAME, "a lower-case DNS name like sofacoverpro.com",
                                   253), AfterValidator(check_idna)]
CertificateArn = Annotated[str, matching(
    ACM_CERTIFICATE_ARN, "an ACM certificate ARN like "
    "arn:aws:acm:us-east-1:123456789012:certificate/<uuid>", 2048)]


def check_instance_type(value: str) -> str:
    """An EC2 instance type AWS describes (whether the stack's region offers it is checked
    with the region: _check_topology)."""
    if value not in offerings.ec2_instance_types():
        raise PydanticCustomError(
            "instance_type", "is not an EC2 instance type (like m5.large or t3.medium; "
            "source: {source})", {"source": offerings.ec2_source()})
    return value


InstanceType = Annotated[str, AfterValidator(check_instance_type)]


class ComputeConfig(Model):
    """`sofacover:compute`: the ALB and the Auto Scaling group behind it."""

    platform: Literal["ec2", "kubernetes"] = "ec2"
    instance_type: InstanceType = "m5.large"
    # Extra types for the mixed-instances policy (spot diversification); first is the base.
    instance_types: list[InstanceType] = []
    min_size: Annotated[int, Field(ge=0)]
    max_size: PositiveInt
    desired_capacity: Annotated[int, Field(ge=0)]
    spot_percent: Annotated[int, Field(ge=0, le=100)] = 0
    on_demand_base: Annotated[int, Field(ge=0)] = 0
    warm_pool: WarmPoolConfig = WarmPoolConfig()
    cpu_target_percent: Percent = 70
    requests_per_target: PositiveInt = 1000
    instance_warmup_seconds: Annotated[int, Field(ge=0, le=3600)] = 90
    health_check_grace_seconds: Annotated[int, Field(ge=0, le=3600)] = 120
    root_volume_gb: Annotated[int, Field(ge=8, le=1024)] = 30
    app_image: ImageReference = PLACEHOLDER_IMAGE
    app_port: Annotated[int, Field(ge=1, le=65535)] = 8080
    health_check_path: UrlPath = "/healthz"
    domain_name: Hostname = "sofacoverpro.com"
    certificate_arn: CertificateArn | None = None
    """An issued ACM certificate in this stack's region: with it, dnsValidation is manual."""
    # Who creates the DNS records that validate the requested ACM certificate (one per
    # distinct name: a wildcard shares its base's record):
    # - cloudflare: this stack, in the Cloudflare zone dnsZone (needs cloudflare:apiToken);
    # - external: another stack in the same AWS account already did (ACM issues the same
    #   record for a name in every region of one account, so the prod-<region> stacks reuse
    #   prod's; creating it twice fails in Cloudflare: terraform-provider-aws#13653);
    # - manual: no certificate is requested here; certificateArn is one issued by hand.
    dns_validation: Literal["cloudflare", "external", "manual"] = "external"
    dns_zone: Hostname | None = None
    """The Cloudflare zone holding domainName (dnsValidation cloudflare); default domainName."""
    # "cloudflare": the ALB admits only Cloudflare's published ranges (the edge fronts it).
    origin_access: Literal["public", "cloudflare"] = "public"
    access_log_days: PositiveInt = 90

    @model_validator(mode="after")
    def _sizes(self) -> ComputeConfig:
        if self.max_size < self.min_size:
            raise rule("maxSize", f"is {self.max_size} but minSize is {self.min_size}; "
                       "maxSize must be >= minSize")
        problem = capacity_problem(self.min_size, self.max_size, self.desired_capacity)
        if problem:
            raise rule("desiredCapacity", problem)
        problem = warm_pool_problem(self.warm_pool.enabled, self.spot_percent,
                                    self.instance_types, self.platform)
        if problem:
            raise rule("warmPool.enabled", problem)
        problem = certificate_problem(self.dns_validation, self.certificate_arn,
                                      self.domain_name, self.dns_zone)
        if problem:
            raise rule(*problem)
        if self.on_demand_base > self.max_size:
            raise rule("onDemandBase", f"is {self.on_demand_base} but maxSize is "
                       f"{self.max_size}; it must be <= maxSize")
        return self


def capacity_problem(min_size: int, max_size: int, desired: int) -> str | None:
    """Why a desired capacity does not fit its group, or None. Shared by the stack config
    and components/compute.py, so the rule is written once."""
    if not min_size <= desired <= max_size:
        return (f"is {desired}; it must lie between minSize {min_size} and maxSize "
                f"{max_size}")
    return None


def certificate_problem(dns_validation: str, certificate_arn: object, domain_name: str,
                        dns_zone: str | None) -> tuple[str, str] | None:
    """(key, why) when the certificate settings do not add up, or None. Shared by the stack
    config and components/compute.py."""
    if dns_validation == "manual" and certificate_arn is None:
        return ("certificateArn", "is not set but dnsValidation is manual; request and "
                "validate the certificate by hand and set its ARN here, or let the stack "
                "validate it (dnsValidation cloudflare or external)")
    if dns_validation != "manual" and certificate_arn is not None:
        return ("dnsValidation", f"is {dns_validation} but certificateArn is set, so no "
                "certificate is requested here; set dnsValidation to manual")
    if dns_zone is not None and dns_validation != "cloudflare":
        return ("dnsZone", f"is set but dnsValidation is {dns_validation}; the zone is used "
                "only to create the validation records (dnsValidation cloudflare)")
    if dns_zone is not None and not (domain_name == dns_zone
                                     or domain_name.endswith(f".{dns_zone}")):
        return ("dnsZone", f"is {dns_zone} but domainName {domain_name} is not in it; the "
                "validation records must go in the zone that holds domainName")
    return None


def warm_pool_problem(enabled: bool, spot_percent: int,
                      instance_types: Sequence[str], platform: str = "ec2") -> str | None:
    """Why a warm pool cannot be had, or None. EC2 warm pools support no mixed instances
    policy (AWS, "Warm pools for Amazon EC2 Auto Scaling", limitations:
    https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-warm-pools.html).
    EKS nodes: the nodeadm bootstrap joins the cluster while the instance warms, then it
    stops and stays a NotReady node; spare capacity there is kubernetes.autoscaler's."""
    if enabled and (spot_percent or instance_types):
        return (f"is true but spotPercent is {spot_percent} and instanceTypes is "
                f"{list(instance_types)}; EC2 warm pools do not support mixed instances or "
                "spot: choose one")
    if enabled and platform == "kubernetes":
        return ("is true but platform is kubernetes: a warm EKS node joins the cluster and "
                "then stops (a NotReady node); on kubernetes the spare capacity is the "
                "autoscaler's placeholder pods (kubernetes.autoscaler)")
    return None


class ScalingRule(Model):
    """One direction of an HPA `behavior`: a window, then a percent and a pods policy per
    period (the larger change wins)."""

    stabilization_window_seconds: Annotated[int, Field(ge=0, le=3600)]
    percent: Annotated[int, Field(ge=1, le=1000)]
    pods: PositiveInt
    period_seconds: Annotated[int, Field(ge=1, le=1800)]


class HpaConfig(Model):
    """`sofacover:kubernetes.hpa`: autoscaling/v2 settings for every app service."""

    min_replicas: PositiveInt
    max_replicas: PositiveInt
    cpu_utilization: Percent
    memory_utilization: Percent
    scale_up: ScalingRule
    scale_down: ScalingRule

    @model_validator(mode="after")
    def _replicas(self) -> HpaConfig:
        if self.max_replicas < self.min_replicas:
            raise rule("maxReplicas", f"is {self.max_replicas} but minReplicas is "
                       f"{self.min_replicas}; maxReplicas must be >= minReplicas")
        return self


DnsLabel = Annotated[str, Field(pattern=r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")]
# Namespaces the program cannot create: those every cluster already has (creating one is
# refused as AlreadyExists) and the kube- prefix Kubernetes reserves for itself
# (kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/).
EXISTING_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# The namespace of PgBouncer and the partition job (__main__.py), apart from the app's.
DATA_NAMESPACE = "data"


def check_namespace(value: str) -> str:
    if value in EXISTING_NAMESPACES or value.startswith("kube-"):
        raise PydanticCustomError(
            "namespace", "is a namespace every cluster has or the kube- prefix Kubernetes "
            "reserves; the program creates its namespaces, so choose another name", {})
    return value

Quantity = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?(m|Mi|Gi|Ki)?$")]
# Memory in bytes, Ki, Mi or Gi: "512m" is legal Kubernetes but means 0.512 bytes (the m is
# milli, k8s.io/apimachinery resource.Quantity), never what a stack file means by it.
MemoryQuantity = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?(Mi|Gi|Ki)?$")]


class ServiceConfig(Model):
    """One app service on Kubernetes: its own Deployment, Service, HPA, PDB and ALB rule."""

    name: DnsLabel
    image: ImageReference
    # An ALB path pattern is at most 128 characters (ELB user guide, "Listener rules for
    # your Application Load Balancer", path conditions); this project allows a subset.
    path: str = Field(pattern=r"^/[-A-Za-z0-9_./*]*$", max_length=128)
    """ALB path pattern routed to this service, e.g. /api/cart*."""
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    node_port: Annotated[int, Field(ge=30000, le=32767)]
    """The NodePort the ALB target group reaches the service on (no LB controller needed)."""
    health_path: UrlPath = "/healthz"
    cpu_request: Quantity = "250m"
    # No CPU limit by default: with limit = request the HPA can grow at most 1.43x a step
    # and misses the 2-minute KPI (kubernetes.io HPA docs; planner/capacity.py works it
    # through). Set one to cap noisy neighbours.
    cpu_limit: Quantity | None = None
    memory_request: MemoryQuantity = "512Mi"
    memory_limit: MemoryQuantity = "512Mi"
    min_replicas: PositiveInt | None = None
    max_replicas: PositiveInt | None = None

    @model_validator(mode="after")
    def _limits(self) -> ServiceConfig:
        # The HPA computes utilisation against the requests: without one (or with 0) it
        # reports "missing request for cpu/memory" and never scales (kubernetes.io HPA docs,
        # "Algorithm details"; the HPA here targets both).
        if cpu_millis(self.cpu_request) < 1:
            raise rule("cpuRequest", f"is {self.cpu_request}; the HPA needs a CPU request "
                       "of at least 1m to compute utilisation")
        if memory_mib(self.memory_request) < 1:
            raise rule("memoryRequest", f"is {self.memory_request}; the HPA needs a memory "
                       "request to compute utilisation")
        # The API server refuses a limit below its request (Invalid value: must be less
        # than or equal to ... limit), so the Deployment would never be created.
        if memory_mib(self.memory_limit) < memory_mib(self.memory_request):
            raise rule("memoryLimit", f"is {self.memory_limit} but memoryRequest is "
                       f"{self.memory_request}; a limit must be >= its request")
        if self.cpu_limit is not None and cpu_millis(self.cpu_limit) < \
                cpu_millis(self.cpu_request):
            raise rule("cpuLimit", f"is {self.cpu_limit} but cpuRequest is "
                       f"{self.cpu_request}; a limit must be >= its request")
        return self


# An IAM role or user ARN, as EKS access entries take them (CreateAccessEntry principalArn).
IAM_PRINCIPAL_ARN = r"^arn:aws:iam::[0-9]{12}:(role|user)/[A-Za-z0-9_+=,.@/-]+$"


class AutoscalerConfig(Model):
    """`sofacover:kubernetes.autoscaler`: Cluster Autoscaler on the node group and the spare
    capacity it keeps (components/autoscaler.py)."""

    enabled: bool = True
    expander: Literal["least-waste", "random", "most-pods", "price", "priority"] = "least-waste"
    scan_interval_seconds: Annotated[int, Field(ge=1, le=60)] = 10
    spare_pods: Annotated[int, Field(ge=0)] | None = None
    """Placeholder pods held as spare capacity; None: what the HPAs' scale-up rates can add
    while the autoscaler brings up one node (scan interval plus the node launch and join
    the capacity model assumes: planner/capacity.py Timing)."""


class KubernetesConfig(Model):
    """`sofacover:kubernetes`: EKS and the app services, used when compute.platform is
    kubernetes."""

    # 1.35: in EKS standard support until 2027-03 (planner/preflight/data/offerings.yaml).
    version: str = Field("1.35", pattern=r"^1\.[0-9]{2}$")
    namespace: Annotated[DnsLabel, AfterValidator(check_namespace)] = "sofacover"
    hpa: HpaConfig
    services: list[ServiceConfig] = Field(min_length=1)
    autoscaler: AutoscalerConfig = AutoscalerConfig()
    endpoint_public_access_cidrs: list[str] = []
    """Who may reach the EKS API's public endpoint (IPv4 CIDRs). Empty, the default: no
    public endpoint, only the private one inside the VPC. The Kubernetes provider runs
    where `pulumi up` runs, so either run it inside the VPC (a runner in the private
    subnets, a VPN) or list that runner's egress CIDRs here; 0.0.0.0/0 is refused in prod."""

    admin_principal_arns: list[Annotated[str, Field(pattern=IAM_PRINCIPAL_ARN,
                                                    max_length=2048)]] = []
    """IAM roles or users (besides whoever created the cluster) that may run `pulumi up`
    against it: each gets an access entry with AmazonEKSClusterAdminPolicy. A CI role that
    did not create the cluster needs to be here, or the Kubernetes provider is refused."""

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        known = offerings.eks_versions()
        if value not in known:
            raise PydanticCustomError(
                "eks_version", "is not an EKS Kubernetes version this project knows; valid: "
                "{valid} (planner/preflight/data/offerings.yaml, from {source})",
                {"valid": ", ".join(known), "source": offerings.source("eks", "versions")})
        return value

    @field_validator("endpoint_public_access_cidrs")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                ipaddress.IPv4Network(value, strict=True)
            except ValueError as exc:
                raise PydanticCustomError(
                    "cidr", "has {value!r}, not an IPv4 CIDR with its host bits zero, like "
                    "203.0.113.0/24 ({reason})", {"value": value, "reason": str(exc)}) from exc
        return values

    @model_validator(mode="after")
    def _unique(self) -> KubernetesConfig:
        for field_name, label in (("name", "name"), ("node_port", "nodePort"),
                                  ("path", "path")):
            seen: set[object] = set()
            for svc in self.services:
                value = getattr(svc, field_name)
                if value in seen:
                    raise rule("services", f"has two services with {label} {value!r}; "
                               f"each service needs its own {label}")
                seen.add(value)
        if self.namespace == DATA_NAMESPACE:
            raise rule("namespace", f"is {DATA_NAMESPACE!r}, PgBouncer's namespace; the app "
                       "needs its own (its network policies differ)")
        for svc in self.services:
            low = svc.min_replicas or self.hpa.min_replicas
            high = svc.max_replicas or self.hpa.max_replicas
            if high < low:
                raise rule("services", f"{svc.name}: maxReplicas {high} is below minReplicas "
                           f"{low}")
        return self


class DatabaseConfig(Model):
    """`sofacover:database`: the RDS PostgreSQL primary (replicas inherit its engine)."""

    engine_version: str = Field("16", pattern=r"^[0-9]{2}(\.[0-9]{1,2})?$")
    """The major version ("16") with automatic minor upgrades; a full minor ("16.11") only
    with autoMinorVersionUpgrade off (engine_version_problem)."""
    auto_minor_version_upgrade: bool = True
    instance_class: str
    allocated_storage_gb: Annotated[int, Field(ge=20, le=65536)]
    max_allocated_storage_gb: Annotated[int, Field(ge=20, le=65536)]
    storage_type: Literal["gp3", "io1", "io2"] = "gp3"
    iops: Annotated[int, Field(ge=1000, le=256000)]
    multi_az: bool
    backup_retention_days: Annotated[int, Field(ge=1, le=35)]
    # PostgreSQL's own ceiling: MAX_BACKENDS, 2^18 - 1 (postgres/postgres
    # src/include/postmaster/postmaster.h; guc_tables.c max_connections).
    max_connections: Annotated[int, Field(ge=SUPERUSER_RESERVED_CONNECTIONS + 1,
                                          le=262_143)]
    backup_replication_region: Region | None = None
    """Automated backups are also replicated to this region (not the primary's own)."""
    generation: PositiveInt = 1
    """Which database this stack builds: 1 is `sofacover-<stack>-database`, N > 1
    `sofacover-<stack>-database-gN`. A failback (docs/runbook-dr.md) never rebuilds a
    database in place: it raises the generation, so the new one is created beside the old."""
    retain: list[PositiveInt] = []
    """Earlier generations kept as they are (protected) beside the current one: the old
    primary until its final snapshot, a promoted replica until failback is done. Removing a
    generation from the list deletes that database: the runbook's explicit step."""
    replicate_from: str | None = None
    """Primary only, failback: the promoted secondary stack whose database this stack's
    current generation replicates (a cross-region read replica of that stack's `dbArn`),
    until `sofacover:promote` makes it the primary again."""

    @field_validator("instance_class")
    @classmethod
    def _class(cls, value: str) -> str:
        families = offerings.rds_families()
        problem = offerings.family_type_problem(value, "db", families)
        if problem:
            raise PydanticCustomError(
                "instance_class", "{problem} (an RDS for PostgreSQL class like "
                "db.m6i.2xlarge; source: {source})",
                {"problem": problem, "source": offerings.source("rds_postgres",
                                                                "instance_families")})
        return value

    @field_validator("engine_version")
    @classmethod
    def _major(cls, value: str) -> str:
        majors = offerings.rds_majors()
        if value.split(".")[0] not in majors:
            raise PydanticCustomError(
                "engine_version", "is not a PostgreSQL major RDS creates; valid majors: "
                "{valid} (planner/preflight/data/offerings.yaml, from {source})",
                {"valid": ", ".join(majors), "source": offerings.source("rds_postgres",
                                                                        "majors")})
        return value

    @model_validator(mode="after")
    def _storage(self) -> DatabaseConfig:
        problem = engine_version_problem(self.engine_version, self.auto_minor_version_upgrade)
        if problem:
            raise rule("engineVersion", problem)
        if self.max_allocated_storage_gb < self.allocated_storage_gb:
            raise rule("maxAllocatedStorageGb", f"is {self.max_allocated_storage_gb} but "
                       f"allocatedStorageGb is {self.allocated_storage_gb}; the autoscaling "
                       "ceiling must be >= the allocated storage")
        problem = gp3_iops_problem(self.storage_type, self.allocated_storage_gb, self.iops)
        if problem:
            raise rule("iops", problem)
        kept = [g for g in self.retain if g >= self.generation]
        if kept or len(set(self.retain)) != len(self.retain):
            raise rule("retain", f"is {self.retain} but generation is {self.generation}; "
                       "list each earlier generation (1 to generation - 1) at most once")
        return self


# RDS gp3: below 400 GiB the volume has a fixed 3,000 IOPS baseline and IOPS cannot be
# set; from 400 GiB the baseline is 12,000 and IOPS may be raised above it (RDS User Guide,
# "Amazon RDS DB instance storage", gp3 storage, PostgreSQL row).
GP3_IOPS_THRESHOLD_GB = 400
GP3_SMALL_IOPS, GP3_LARGE_BASELINE_IOPS = 3_000, 12_000


def gp3_iops_problem(storage_type: str, allocated_gb: int, iops: int) -> str | None:
    """Why `iops` does not fit gp3 storage of `allocated_gb`, or None. Shared by the stack
    config and components/database.py."""
    if storage_type != "gp3":
        return None
    if allocated_gb < GP3_IOPS_THRESHOLD_GB and iops > GP3_SMALL_IOPS:
        return (f"is {iops} but gp3 below {GP3_IOPS_THRESHOLD_GB} GiB (allocatedStorageGb "
                f"{allocated_gb}) is fixed at {GP3_SMALL_IOPS}; raise the storage or lower "
                "iops")
    if allocated_gb >= GP3_IOPS_THRESHOLD_GB and iops < GP3_LARGE_BASELINE_IOPS:
        return (f"is {iops} but gp3 from {GP3_IOPS_THRESHOLD_GB} GiB starts at "
                f"{GP3_LARGE_BASELINE_IOPS}; raise iops to at least that")
    return None


def engine_version_problem(version: str, auto_minor_upgrade: bool) -> str | None:
    """Why an RDS engine version cannot be pinned, or None. Shared by the stack config and
    components/database.py. With automatic minor upgrades AWS moves the instance past a
    pinned minor (and retires old minors: 16.5-16.8 can no longer be created from
    2026-05-01, an AWS Health notice quoted publicly), so a later deploy would try to
    downgrade it; the provider
    accepts the major alone and reports the running one as engine_version_actual."""
    if auto_minor_upgrade and "." in version:
        return (f"is {version}, a minor version, but autoMinorVersionUpgrade is on; AWS "
                "upgrades the instance past it and a later deploy would try to downgrade: "
                f"name the major version only ({version.split('.')[0]!r}) or set "
                "autoMinorVersionUpgrade to false")
    return None


class CacheConfig(Model):
    """`sofacover:cache`: the ElastiCache Redis replication group."""

    node_type: str

    @field_validator("node_type")
    @classmethod
    def _node_type(cls, value: str) -> str:
        families = offerings.cache_families()
        problem = offerings.family_type_problem(value, "cache", families)
        if problem:
            raise PydanticCustomError(
                "node_type", "{problem} (an ElastiCache node type like cache.r6g.large; "
                "source: {source})", {"problem": problem, "source": offerings.source(
                    "elasticache", "node_families")})
        return value
    num_nodes: PositiveInt
    cluster_mode: bool = False
    automatic_failover: bool = True

    @model_validator(mode="after")
    def _failover(self) -> CacheConfig:
        if not self.cluster_mode and self.num_nodes > 6:
            raise rule("numNodes", f"is {self.num_nodes}; a replication group without "
                       "cluster mode has at most 6 nodes (a primary and 5 replicas; "
                       "ElastiCache CreateReplicationGroup NumCacheClusters)")
        if self.automatic_failover and self.num_nodes < 2:
            raise rule("numNodes", f"is {self.num_nodes} but automaticFailover is on; "
                       "failover needs a replica, so numNodes must be >= 2")
        if self.cluster_mode and not self.automatic_failover:
            raise rule("automaticFailover", "is off but clusterMode is on; cluster mode "
                       "requires automatic failover")
        return self


class PgBouncerConfig(Model):
    """`sofacover:pgbouncer`: the connection pooler in front of the database."""

    pool_mode: Literal["transaction", "session", "statement"] = "transaction"
    replicas: PositiveInt
    max_server_connections: PositiveInt
    """Server connections all instances together open to the writer (the primary). On a
    secondary this is the region's write pool across the peering: its share of the
    primary's max_connections, which every serving region's write pool draws on
    (planner/project.py adds them up across the environment)."""
    max_client_connections: PositiveInt
    replica_server_connections: PositiveInt | None = None
    """Secondary only: server connections of the read pool (`<db>_ro`) to this region's
    read replica; checked against the replica's own max_connections."""


class RegionsConfig(Model):
    """`sofacover:regions`: where traffic is served and where read replicas live."""

    serving: list[Region] = Field(min_length=1)
    read_replicas: list[Region] = []

    @field_validator("serving", "read_replicas")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise PydanticCustomError("duplicate", "lists a region twice", {})
        return values


class PrimaryRef(Model):
    """`sofacover:primary`: the stack a secondary region reads from, and its region."""

    stack: str = Field(min_length=1)
    region: Region


# Cloudflare zone plans, lowest first, and the paid add-ons (account subscriptions) the edge
# can use. What each feature needs comes from Cloudflare's plan table (cloudflare-docs
# src/content/plans/index.json, shown as "Availability" on each feature's page on
# developers.cloudflare.com), read 2026-11-27; planner/preflight/cloudflare.py checks the
# planned resources against the same facts.
EdgePlan = Literal["free", "pro", "business", "enterprise"]
EdgeAddOn = Literal["loadBalancing", "argo", "workersPaid"]
EDGE_PLANS: tuple[str, ...] = ("free", "pro", "business", "enterprise")


def plan_includes(plan: str, needed: str) -> bool:
    """True when `plan` is `needed` or higher."""
    return EDGE_PLANS.index(plan) >= EDGE_PLANS.index(needed)


# EdgeConfig switch -> (what it turns on, the lowest plan, the add-on it needs).
EDGE_FEATURES: dict[str, tuple[str, str, str | None]] = {
    "image_optimization": ("Polish and WebP", "pro", None),
    "tiered_cache": ("Smart Tiered Cache", "free", None),
    "regional_tiered_cache": ("Regional Tiered Cache", "enterprise", None),
    "api_edge_cache": ("the API-caching Worker", "free", None),
    "geo_load_balancing": ("geo load balancing", "free", "loadBalancing"),
}
# The lowest Edge Cache TTL a cache rule may set on each plan.
EDGE_TTL_MINIMUM_SECONDS: dict[str, int] = {"free": 7200, "pro": 3600, "business": 1,
                                            "enterprise": 1}


class EdgeConfig(Model):
    """`sofacover:edge`: the Cloudflare edge (its own stack in prod, deployed last)."""

    zone_name: Hostname
    account_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    """The Cloudflare account (Workers, load-balancer pools and monitors live there)."""
    origins: dict[Region, str] = {}
    """Region -> the stack serving it (prod edge); empty: this stack's own ALB."""
    hostnames: list[Annotated[str, Field(
        pattern=r"^(@|[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]{0,61}"
                r"[a-z0-9])?)*)$", max_length=200)]] = Field(["@", "www", "api"], min_length=1)
    """Proxied names in the zone ("@" is the apex); each a name relative to the zone."""
    plan: EdgePlan = "free"
    """The zone's Cloudflare plan. A feature above it is refused; `auto` follows it."""
    add_ons: list[EdgeAddOn] = []
    """Paid add-ons on the account: loadBalancing, argo, workersPaid."""
    # Each switch is true, false or `auto` (the phase presets' value for a feature the plan
    # may lack): on when the plan and add-ons include it (EDGE_FEATURES).
    image_optimization: bool
    tiered_cache: bool
    regional_tiered_cache: bool
    api_edge_cache: bool
    api_cache_ttl_seconds: Annotated[int, Field(ge=1, le=86400)] = 60
    html_edge_ttl_seconds: Annotated[int, Field(ge=0, le=86400)] = 120
    geo_load_balancing: bool
    health_check_path: UrlPath = "/healthz"
    drain: list[Region] = []
    """Regions whose pool keeps its origin but disabled: Cloudflare sends them nothing
    (failover: the lost primary's region, and every region whose write pool points at it;
    docs/runbook-dr.md). DNS and the fallback pool move to the first origin not drained."""

    @model_validator(mode="before")
    @classmethod
    def _auto_features(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        plan, add_ons = data.get("plan", "free"), data.get("addOns", [])
        if plan not in EDGE_PLANS or not isinstance(add_ons, list):
            return data  # the field validators say what is wrong
        out = dict(data)
        for feature, (_, needed, add_on) in EDGE_FEATURES.items():
            key = to_camel(feature)
            if out.get(key) == "auto":
                out[key] = plan_includes(plan, needed) and (add_on is None or add_on in add_ons)
        return out

    @model_validator(mode="after")
    def _plan(self) -> EdgeConfig:
        for feature, (title, needed, add_on) in EDGE_FEATURES.items():
            if not getattr(self, feature):
                continue
            if not plan_includes(self.plan, needed):
                raise rule(to_camel(feature), f"is on but plan is {self.plan!r}; {title} needs "
                           f"the {needed} plan or higher: raise sofacover:edge.plan, or set "
                           "it to auto (on only where the plan has it) or false")
            if add_on is not None and add_on not in self.add_ons:
                raise rule(to_camel(feature), f"is on but addOns has no {add_on!r}; {title} "
                           f"is a paid add-on: add {add_on} to sofacover:edge.addOns once it "
                           "is bought, or set it to false")
        minimum = EDGE_TTL_MINIMUM_SECONDS[self.plan]
        if self.html_edge_ttl_seconds < minimum:
            needed = next((f"the {p} plan or higher" for p in EDGE_PLANS
                           if EDGE_TTL_MINIMUM_SECONDS[p] <= self.html_edge_ttl_seconds),
                          "a plan Cloudflare does not offer")
            raise rule("htmlEdgeTtlSeconds", f"is {self.html_edge_ttl_seconds} but the "
                       f"{self.plan} plan's minimum Edge Cache TTL is {minimum} s; "
                       f"{self.html_edge_ttl_seconds} s needs {needed}")
        return self


class StackConfig(Model):
    """The whole validated config of one stack."""

    stack: str
    environment: Environment
    role: Role
    phase: Annotated[int, Field(ge=1, le=3)]
    region: Region | None = None
    primary: PrimaryRef | None = None
    promote: bool = False
    """Secondary only: promote this region's read replica to a standalone primary (DR)."""
    tags: dict[str, str] = {}
    """Extra tags on every AWS resource, beside the four the program sets (DEFAULT_TAG_KEYS)."""
    regions: RegionsConfig
    network: NetworkConfig | None = None
    compute: ComputeConfig | None = None
    kubernetes: KubernetesConfig | None = None
    database: DatabaseConfig | None = None
    cache: CacheConfig | None = None
    pgbouncer: PgBouncerConfig | None = None
    edge: EdgeConfig | None = None
    alerts: AlertsConfig = AlertsConfig()

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: dict[str, str]) -> dict[str, str]:
        # AWS's tag rules (tag-editor user guide, "Tag naming limits and requirements").
        if len(tags) > MAX_TAGS - len(DEFAULT_TAG_KEYS):
            raise PydanticCustomError(
                "tags", "has {n} tags; AWS allows {max} on a resource and the program sets "
                "{default} itself", {"n": len(tags), "max": MAX_TAGS,
                                     "default": ", ".join(DEFAULT_TAG_KEYS)})
        for key, value in tags.items():
            if not TAG_TEXT.fullmatch(key) or not 1 <= len(key) <= 128 or \
                    key.lower().startswith("aws:") or key in DEFAULT_TAG_KEYS:
                raise PydanticCustomError(
                    "tags", "has key {key}: a tag key is 1-128 letters, digits, spaces "
                    "and _ . : / = + - @, not starting with aws: and not one of {default}",
                    {"key": repr(key), "default": ", ".join(DEFAULT_TAG_KEYS)})
            if not TAG_TEXT.fullmatch(value) or len(value) > 256:
                raise PydanticCustomError(
                    "tags", "has {key}: {value}, but a tag value is 0-256 letters, "
                    "digits, spaces and _ . : / = + - @", {"key": repr(key), "value": repr(value)})
        return tags

    @model_validator(mode="after")
    def _topology(self) -> StackConfig:
        _check_topology(self)
        return self

    @property
    def hosts_app(self) -> bool:
        """True where this stack runs the app tier (ALB, instances, cache)."""
        return self.role in ("all-in-one", "primary") or (
            self.role == "secondary" and self.region in self.regions.serving
        )

    @property
    def hosts_replica(self) -> bool:
        return self.role == "secondary" and self.region in self.regions.read_replicas

    @property
    def active(self) -> bool:
        """False for a secondary region that neither serves nor holds a replica this phase."""
        return (self.role in ("all-in-one", "primary", "edge") or self.hosts_app
                or self.hosts_replica)


# The tags __main__.py puts on every AWS resource through the provider's default tags.
DEFAULT_TAG_KEYS = ("Project", "Environment", "Stack", "ManagedBy")
MAX_TAGS = 50
# AWS's pattern is [\p{L}\p{Z}\p{N}_.:/=+\-@]*: letters, separators (spaces, not line
# breaks or tabs), numbers. Python's \s also holds \t \n \r \f \v and \x1c-\x1f \x85.
TAG_TEXT = re.compile(r"(?:[\w.:/=+\-@]|[^\S\t\n\r\f\v\x1c-\x1f\x85])*")


# Which roles each environment may use, and what each role needs.
ROLES_BY_ENVIRONMENT: dict[str, tuple[str, ...]] = {
    "dev": ("all-in-one",),
    "prod": ("primary", "secondary", "edge"),
}
REGIONAL_ROLES = ("all-in-one", "primary", "secondary")
APP_CONCERNS = ("network", "compute", "kubernetes", "database", "cache", "pgbouncer")
# PostgreSQL keeps superuser_reserved_connections (default 3) out of every pool's reach.
SUPERUSER_RESERVED_CONNECTIONS = 3


def _check_topology(cfg: StackConfig) -> None:
    """Rules that tie several keys together; each raises on the key to change."""
    if cfg.role not in ROLES_BY_ENVIRONMENT[cfg.environment]:
        raise rule("role", f"is {cfg.role!r} but environment {cfg.environment!r} allows only "
                   + ", ".join(repr(r) for r in ROLES_BY_ENVIRONMENT[cfg.environment]))
    if cfg.role in REGIONAL_ROLES and cfg.region is None:
        raise rule("aws:region", f"is required for a {cfg.role} stack; set it with "
                   "`pulumi config set aws:region <region>`")
    if cfg.role == "secondary":
        if cfg.primary is None:
            raise rule("primary", "is required for a secondary stack: "
                       "{stack: <primary stack>, region: <its region>}")
        if cfg.primary.region == cfg.region:
            raise rule("primary.region", f"is {cfg.region}, the same as this stack's aws:region; "
                       "a secondary must be in another region than its primary")
    elif cfg.primary is not None:
        raise rule("primary", f"is set but role is {cfg.role!r}; only a secondary stack has a "
                   "primary")
    if cfg.role == "primary" and cfg.database is not None:
        _check_failback(cfg)
    elif cfg.promote and not (cfg.role == "secondary" and cfg.hosts_replica):
        raise rule("promote", "is true but this stack holds no read replica to promote; only "
                   "a secondary listed in regions.readReplicas, or a primary's failback "
                   "replica (database.replicateFrom), can be promoted")
    elif cfg.database is not None and cfg.database.replicate_from is not None:
        raise rule("database.replicateFrom", f"is set but role is {cfg.role!r}; only the "
                   "primary stack replicates from a promoted secondary (failback)")
    elif cfg.role == "all-in-one" and cfg.database is not None and \
            cfg.database.generation > 1:
        raise rule("database.generation", f"is {cfg.database.generation} but role is "
                   "'all-in-one'; later generations come from a failback between regions "
                   "(prod's primary and secondaries)")
    if cfg.role == "edge" and cfg.edge is None:
        raise rule("edge", "is required for an edge stack: {zoneName, accountId, origins}")
    if cfg.edge is not None:
        if cfg.role == "edge":
            missing = [r for r in cfg.regions.serving if r not in cfg.edge.origins]
            if missing:
                raise rule("edge.origins", f"has no stack for {', '.join(missing)}, which "
                           "serves traffic in this phase (sofacover:regions.serving)")
        elif cfg.edge.origins:
            raise rule("edge.origins", f"is set but role is {cfg.role!r}; a stack with its "
                       "own edge fronts its own ALB")
        _check_drain(cfg)
    arn = cfg.compute.certificate_arn if cfg.compute is not None else None
    if arn is not None and cfg.region is not None and arn.split(":")[3] != cfg.region:
        raise rule("compute.certificateArn", f"is a certificate in {arn.split(':')[3]} but "
                   f"this stack is in {cfg.region}; an ALB takes certificates of its own "
                   "region only")
    home = cfg.primary.region if cfg.primary else cfg.region
    db = cfg.database
    # Only the primary replicates its backups; replicas ignore the setting.
    if cfg.role in ("all-in-one", "primary") and db is not None and \
            db.backup_replication_region == cfg.region:
        raise rule("database.backupReplicationRegion", f"is {db.backup_replication_region}, "
                   "the primary's own region; backups must be replicated to another region")
    if cfg.role in ("all-in-one", "primary"):
        for concern in APP_CONCERNS:
            if getattr(cfg, concern) is None:
                raise rule(concern, f"is required for a {cfg.role} stack")
        if cfg.region not in cfg.regions.serving:
            raise rule("regions.serving", f"must include this stack's region {cfg.region}")
    if home is not None and home in cfg.regions.read_replicas:
        raise rule("regions.readReplicas", f"lists {home}, the primary's own region; replicas "
                   "go in other regions")
    net = cfg.network
    if net is not None and cfg.region is not None:
        if net.az_count > usable_az_count(cfg.region):
            left_out = EKS_UNSUPPORTED_ZONES.get(cfg.region, ())
            raise rule("network.azCount", f"is {net.az_count} but {cfg.region} has "
                       f"{AZ_COUNT[cfg.region]} availability zones"
                       + (f", {usable_az_count(cfg.region)} without {', '.join(left_out)}, "
                          "where EKS places no control plane (left out of every VPC)"
                          if left_out else ""))
        if cfg.environment == "prod" and net.nat_gateways != "perAz":
            raise rule("network.natGateways", "is 'single' but prod needs 'perAz': one NAT "
                       "gateway per AZ, so losing an AZ does not cut the others off")
    compute = cfg.compute
    if compute is not None and cfg.region is not None and cfg.hosts_app:
        for key, kinds in (("instanceType", [compute.instance_type]),
                           ("instanceTypes", compute.instance_types)):
            missing = [k for k in kinds if not offerings.ec2_offered(cfg.region, k)]
            if missing:
                raise rule(f"compute.{key}", f"names {', '.join(missing)}, not offered in "
                           f"{cfg.region} ({offerings.ec2_source()})")
    k8s = cfg.kubernetes
    if k8s is not None and compute is not None and compute.platform == "kubernetes":
        pinned = offerings.CLUSTER_AUTOSCALER_RELEASES
        if k8s.autoscaler.enabled and k8s.version not in pinned:
            raise rule("kubernetes.version", f"is {k8s.version} but Cluster Autoscaler is "
                       f"pinned for {', '.join(sorted(pinned))} only (it runs with its own "
                       "Kubernetes minor); choose one of those, pin its release in "
                       "config/offerings.py, or set kubernetes.autoscaler.enabled false")
        monitoring = cfg.alerts.prometheus_namespace
        if monitoring in (k8s.namespace, DATA_NAMESPACE) or monitoring.startswith("kube-") \
                or monitoring in EXISTING_NAMESPACES:
            raise rule("alerts.prometheusNamespace", f"is {monitoring!r}, which the program "
                       f"cannot create as Prometheus's own: the app's is {k8s.namespace!r}, "
                       f"PgBouncer's {DATA_NAMESPACE!r}, and {', '.join(EXISTING_NAMESPACES)} "
                       "and kube-* exist in every cluster")
    if cfg.environment == "prod" and k8s is not None and any(
            ipaddress.IPv4Network(c).prefixlen == 0 for c in k8s.endpoint_public_access_cidrs):
        raise rule("kubernetes.endpointPublicAccessCidrs", "opens the EKS API endpoint to "
                   "the whole internet; in prod list the deploy runner's egress CIDRs, or "
                   "leave it empty and run `pulumi up` inside the VPC")
    if cfg.compute is not None and k8s is not None and cfg.compute.platform == "kubernetes" \
            and cfg.hosts_app:
        _check_node_group(cfg)
    if cfg.pgbouncer is not None and cfg.database is not None:
        problem = pool_budget_problem(cfg.pgbouncer.max_server_connections,
                                      cfg.database.max_connections)
        if problem:
            raise rule("pgbouncer.maxServerConnections", problem)
        read_pool = cfg.pgbouncer.replica_server_connections
        if read_pool is not None and cfg.role != "secondary":
            raise rule("pgbouncer.replicaServerConnections", f"is set but role is "
                       f"{cfg.role!r}; only a secondary has a read pool to a local replica")
        problem = pool_budget_problem(read_pool or 0, cfg.database.max_connections)
        if problem:
            raise rule("pgbouncer.replicaServerConnections", problem)
        _check_pgbouncer_topology(cfg)


def _check_node_group(cfg: StackConfig) -> None:
    """The node group at maxSize holds every pod at its maximum replicas (issue 13). (The
    autoscaler's pinned minor is checked above, with the other kubernetes rules.)"""
    # Imported here: planner.capacity reads moto's instance data and the preflight's
    # reservation tables; only a kubernetes stack pays for them.
    from planner.capacity import node_group_fit

    problem = node_group_fit(cfg).problem()
    if problem:
        raise rule("compute.maxSize", problem)


def _check_failback(cfg: StackConfig) -> None:
    """The primary's failback (docs/runbook-dr.md): its generation N > 1 is created as a
    read replica of a promoted secondary's database (database.replicateFrom), beside the
    generation that keeps the stack's outputs meanwhile (database.retain), and is then
    promoted (promote). Generation 1 is the primary as first built."""
    assert cfg.database is not None
    db = cfg.database
    source = db.replicate_from
    if source is not None and source == cfg.stack:
        raise rule("database.replicateFrom", f"is {source}, this stack itself; name the "
                   "promoted secondary stack whose database takes writes now")
    if cfg.promote and source is not None:
        raise rule("database.replicateFrom", f"is {source} but promote is true; a promoted "
                   "database has no source: remove replicateFrom in the same change")
    if (source is not None or cfg.promote) and db.generation == 1:
        key = "database.replicateFrom" if source is not None else "promote"
        raise rule(key, "is set but database.generation is 1, the primary as first built; "
                   "failback builds a new database: raise database.generation")
    if db.generation > 1 and source is None and not cfg.promote:
        raise rule("database.generation", f"is {db.generation} but neither "
                   "database.replicateFrom nor promote is set; a primary's later generation "
                   "is only made from a promoted secondary's database (failback): set "
                   "replicateFrom first, promote once it has caught up")
    if source is not None and not db.retain:
        raise rule("database.retain", "is empty but database.replicateFrom is set; until "
                   "the replica is promoted the stack's outputs and PgBouncer keep the "
                   "earlier generation: list it (e.g. [1])")


def _check_drain(cfg: StackConfig) -> None:
    """The regions an edge drains: origins it has, and never all of them."""
    assert cfg.edge is not None
    drain = cfg.edge.drain
    if not drain:
        return
    if cfg.role != "edge":
        raise rule("edge.drain", f"is set but role is {cfg.role!r}; only the edge stack "
                   "routes between regions")
    unknown = [r for r in drain if r not in cfg.edge.origins]
    if unknown:
        raise rule("edge.drain", f"lists {', '.join(unknown)}, which edge.origins does not "
                   "name; valid: " + ", ".join(cfg.edge.origins))
    if not [r for r in cfg.regions.serving if r not in drain]:
        raise rule("edge.drain", "drains every serving region; at least one must take "
                   "traffic (the promoted region during a failover)")


def _check_pgbouncer_topology(cfg: StackConfig) -> None:
    """The pooler's shape on the stack's platform: the same rules components/pgbouncer.py
    applies, here so a stack file that breaks them fails before anything is created."""
    assert cfg.pgbouncer is not None and cfg.database is not None
    pgb = cfg.pgbouncer
    if cfg.compute is None or cfg.compute.platform == "ec2":
        hosts = cfg.compute.max_size if cfg.compute is not None else pgb.replicas
        if pgb.max_server_connections // hosts < 1:
            raise rule("pgbouncer.maxServerConnections", f"is {pgb.max_server_connections} "
                       f"but every one of up to {hosts} instances (compute.maxSize) runs a "
                       "PgBouncer sidecar: each would get no server connection; raise it or "
                       "lower compute.maxSize")
        return
    if pgb.max_server_connections // pgb.replicas < 1:
        raise rule("pgbouncer.replicas", f"is {pgb.replicas} but maxServerConnections is "
                   f"{pgb.max_server_connections}: each pod would get no server connection; "
                   "raise maxServerConnections or lower replicas")
    if pgb.replicas < 2:
        raise rule("pgbouncer.replicas", f"is {pgb.replicas} but compute.platform is "
                   "kubernetes; PgBouncer runs at least 2 pods there so a drain or a node "
                   "loss keeps the pool up")
    # A rolling update surges one pod while a draining one still holds its connections.
    per_pod = pgb.max_server_connections // pgb.replicas
    problem = pool_budget_problem(per_pod * (pgb.replicas + 1), cfg.database.max_connections)
    if problem:
        raise rule("pgbouncer.replicas", f"is {pgb.replicas}: during a rolling update "
                   f"{pgb.replicas + 1} pods hold {per_pod} server connections each, and "
                   + problem.replace("is ", "that is ", 1))


def pool_budget_problem(max_server_connections: int, max_connections: int) -> str | None:
    """Why a pool budget does not fit the database's max_connections, or None if it does.

    Shared by the stack config and components/pgbouncer.py, so the rule is written once.
    """
    usable = max_connections - SUPERUSER_RESERVED_CONNECTIONS
    if max_server_connections > usable:
        return (f"is {max_server_connections} but database.maxConnections {max_connections} "
                f"minus {SUPERUSER_RESERVED_CONNECTIONS} reserved slots leaves {usable}; "
                "lower it or raise maxConnections")
    return None
