"""The Cloudflare edge per phase: DNS, zone settings, cache rules in order, the Worker,
tiered caching and geo load balancing."""

from __future__ import annotations

import base64
import re
from dataclasses import replace

import pytest

from components.edge import (
    CREDENTIAL_COOKIES,
    GEO_PREFERENCE,
    IMAGE_SETTINGS,
    MARKETING_PARAMS,
    WORKER_SOURCE,
    WORKERS,
    ZONE_SETTINGS,
    Edge,
    EdgeArgs,
    Origin,
    cache_rules,
)
from config import seed
from tests.conftest import of_type

REGIONS = (seed.PRIMARY_REGION, *seed.SECONDARY_REGIONS)
LB = "cloudflare:index/loadBalancer:LoadBalancer"
POOL = "cloudflare:index/loadBalancerPool:LoadBalancerPool"
SETTING = "cloudflare:index/zoneSetting:ZoneSetting"


def args(**changes) -> EdgeArgs:
    base = EdgeArgs(zone_name="sofacoverpro.com", account_id="a" * 32,
                    origins=tuple(Origin(r, f"alb-{r}.elb.amazonaws.com") for r in REGIONS[:1]))
    return replace(base, **changes)


def edge(**changes):
    """The program building Edge over `args(**changes)`. The args are made here, so the
    `build` fixture's key is their value: programs of equal args (test_preflight_cloudflare's
    too) share one build."""
    built = args(**changes)

    def fn() -> None:
        Edge("e", built)
    return fn


def test_site_and_api_hostnames_are_proxied_cnames_to_the_primary(build):
    records = of_type(build(edge()).resources, "cloudflare:index/dnsRecord:DnsRecord")
    assert {r.inputs["name"] for r in records} == {
        "sofacoverpro.com", "www.sofacoverpro.com", "api.sofacoverpro.com"}
    assert all(r.inputs["proxied"] is True and r.inputs["type"] == "CNAME" for r in records)
    primary = f"alb-{seed.PRIMARY_REGION}.elb.amazonaws.com"
    assert {r.inputs["content"] for r in records} == {primary}


def test_zone_settings_enforce_strict_tls_and_modern_protocols(build):
    settings = {r.inputs["settingId"]: r.inputs["value"]
                for r in of_type(build(edge()).resources, SETTING)}
    assert settings == ZONE_SETTINGS
    assert settings["ssl"] == "strict" and settings["min_tls_version"] == "1.2"


def test_image_optimisation_adds_polish_and_webp(build):
    settings = {r.inputs["settingId"]: r.inputs["value"] for r in of_type(
        build(edge(image_optimization=True)).resources, SETTING)}
    assert settings == {**ZONE_SETTINGS, **IMAGE_SETTINGS}


def test_cache_rules_are_in_order_with_the_bypass_last(build):
    (ruleset,) = of_type(build(edge()).resources, "cloudflare:index/ruleset:Ruleset")
    assert ruleset.inputs["phase"] == "http_request_cache_settings"
    refs = [r["ref"] for r in ruleset.inputs["rules"]]
    assert refs == ["static_assets", "html", "bypass_private"]
    static, html, bypass = ruleset.inputs["rules"]
    assert static["actionParameters"]["edgeTtl"]["default"] >= 30 * 86400
    assert html["actionParameters"]["edgeTtl"]["default"] == args().html_edge_ttl_seconds
    assert bypass["actionParameters"] == {"cache": False}
    for path in ("/cart", "/checkout", "/account"):
        assert f'"{path}"' in bypass["expression"]
    assert 'http.request.method ne "GET"' in bypass["expression"]
    assert "authorization" in bypass["expression"]


def test_no_deprecated_brotli_setting():
    assert "brotli" not in ZONE_SETTINGS


def test_cache_key_drops_marketing_parameters_only_on_enterprise():
    for rule in cache_rules(args(plan="enterprise"))[:2]:
        excluded = rule["action_parameters"]["cache_key"]["custom_key"]["query_string"]
        assert excluded["exclude"]["lists"] == list(MARKETING_PARAMS)
    for plan in ("free", "pro", "business"):
        for rule in cache_rules(args(plan=plan))[:2]:
            assert rule["action_parameters"]["cache_key"] == {"ignore_query_strings_order": True}


def test_bypass_rule_covers_every_credential_cookie_of_the_worker():
    lib = (WORKERS / "api-cache-lib.js").read_text()
    listed = re.search(r"CREDENTIAL_COOKIES = \[([^\]]*)\]", lib).group(1)
    assert tuple(re.findall(r'"([^"]+)"', listed)) == CREDENTIAL_COOKIES
    bypass = cache_rules(args())[2]["expression"]
    for cookie in CREDENTIAL_COOKIES:
        assert f'lower(http.cookie) contains "{cookie}="' in bypass
        assert f'lower(http.cookie) contains "{cookie}_"' in bypass


def test_phase1_has_no_worker_tiered_cache_or_load_balancer(build):
    res = build(edge()).resources
    for token in ("cloudflare:index/workersScript:WorkersScript", LB,
                  "cloudflare:index/tieredCache:TieredCache"):
        assert not of_type(res, token)


def test_api_edge_cache_deploys_the_repo_worker_with_its_routes_and_ttl(build):
    res = build(edge(api_edge_cache=True, api_cache_ttl_seconds=90)).resources
    (script,) = of_type(res, "cloudflare:index/workersScript:WorkersScript")
    assert script.inputs["content"] == WORKER_SOURCE.read_text()
    assert script.inputs["mainModule"] == "api-cache.js"
    # The helpers the main module imports travel as a second ES module of the upload.
    (part,) = script.inputs["files"]
    assert part == "api-cache-lib.js" and f'from "./{part}"' in WORKER_SOURCE.read_text()
    lib = script.inputs["files"][part]
    assert lib["contentType"] == "application/javascript+module"
    assert base64.b64decode(lib["contentBase64"]).decode() == (WORKERS / part).read_text()
    assert script.inputs["bindings"] == [
        {"name": "CACHE_TTL_SECONDS", "type": "plain_text", "text": "90"}]
    routes = of_type(res, "cloudflare:index/workersRoute:WorkersRoute")
    assert {r.inputs["pattern"] for r in routes} == {
        "*sofacoverpro.com/api/catalog*", "*sofacoverpro.com/api/products*",
        "*sofacoverpro.com/api/categories*"}
    assert all(r.inputs["script"] == script.inputs["scriptName"] for r in routes)


def test_geo_load_balancing_has_a_pool_per_region_and_falls_back_to_the_primary(build):
    origins = tuple(Origin(r, f"alb-{r}.elb.amazonaws.com") for r in REGIONS)
    res = build(edge(origins=origins, geo_load_balancing=True)).resources
    pools = {r.inputs["name"].removeprefix("sofacover-"): r for r in of_type(res, POOL)}
    assert set(pools) == set(REGIONS)
    (monitor,) = of_type(res, "cloudflare:index/loadBalancerMonitor:LoadBalancerMonitor")
    assert monitor.inputs["path"] == args().health_check_path
    assert all(p.inputs["monitor"] == monitor.id for p in pools.values())
    lbs = of_type(res, LB)
    assert len(lbs) == 3
    primary = pools[seed.PRIMARY_REGION].id
    for lb in lbs:
        assert lb.inputs["steeringPolicy"] == "geo" and lb.inputs["proxied"] is True
        assert lb.inputs["fallbackPool"] == primary
        assert set(lb.inputs["regionPools"]) == set(GEO_PREFERENCE)
        assert all(primary in ids for ids in lb.inputs["regionPools"].values())
        assert lb.inputs["regionPools"]["WEU"][0] == pools["eu-west-1"].id


def test_pools_appear_only_for_regions_that_serve(build):
    res = build(edge(geo_load_balancing=True)).resources
    assert [p.inputs["name"] for p in of_type(res, POOL)] == [f"sofacover-{seed.PRIMARY_REGION}"]


def test_an_edge_without_origins_is_refused(build):
    with pytest.raises(ValueError, match="origins is empty"):
        build(edge(origins=()))


def test_dev_without_a_zone_plans_without_the_edge(dev):
    # Its only Cloudflare resource is its certificate's validation record (DNS only).
    cloudflare = [r for r in dev.resources if r.type.startswith(("cloudflare:",
                                                                  "sofacover:edge"))]
    assert [r.type for r in cloudflare] == ["cloudflare:index/dnsRecord:DnsRecord"]
    assert cloudflare[0].inputs["content"].endswith("acm-validations.aws")
    assert cloudflare[0].inputs["proxied"] is False


def test_prod_edge_phases_add_features_in_order(prod, prod_phase2, prod_phase3):
    def types(plan) -> set[str]:
        return {r.type for r in plan.resources}

    one, two, three = (types(p["prod-edge"]) for p in (prod, prod_phase2, prod_phase3))
    assert "cloudflare:index/ruleset:Ruleset" in one
    assert "cloudflare:index/workersScript:WorkersScript" in two - one
    assert "cloudflare:index/tieredCache:TieredCache" in two - one
    assert {LB, POOL} <= three - two
    # prod-edge is on Business: Regional Tiered Cache (Enterprise) stays off in phase 3.
    assert prod_phase3["prod-edge"].config.edge.plan == "business"
    assert "cloudflare:index/regionalTieredCache:RegionalTieredCache" not in three


def test_regional_tiered_cache_rides_on_smart_tiered_cache(build):
    res = build(edge(plan="enterprise", tiered_cache=True, regional_tiered_cache=True)).resources
    types = {r.type for r in res}
    assert {"cloudflare:index/argoTieredCaching:ArgoTieredCaching",
            "cloudflare:index/tieredCache:TieredCache",
            "cloudflare:index/regionalTieredCache:RegionalTieredCache"} <= types


@pytest.mark.parametrize("zone_plan, configured, fails", [
    ("business", "business", False), ("enterprise", "business", False),
    ("pro", "business", True), ("free", "pro", True),
])
def test_a_zone_on_a_lower_plan_than_configured_stops_the_deploy(build, monkeypatch,
                                                                 zone_plan, configured, fails):
    import pulumi

    from planner import mocks

    monkeypatch.setattr(mocks, "ZONE_PLAN", zone_plan)
    program = edge(plan=configured, image_optimization=False, regional_tiered_cache=False,
                   geo_load_balancing=False, api_edge_cache=False, tiered_cache=False,
                   html_edge_ttl_seconds=7200)
    if not fails:
        assert of_type(build(program).resources, "cloudflare:index/dnsRecord:DnsRecord")
        return
    with pytest.raises(pulumi.RunError, match=f"is on the {zone_plan} plan but "
                                              f"sofacover:edge.plan is {configured}"):
        build(program)
