"""Cloudflare preflight rules: each where it holds and where it is broken, on resources
built with the Edge component (or raw Cloudflare resources) and on the committed plans."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import pulumi_cloudflare as cloudflare
import pytest

from components.edge import Origin
from config import seed
from planner import preflight
from tests.conftest import preflight_of
from tests.test_edge import edge as edge_program

ZONE = "z" * 32
ACCOUNT = "a" * 32
REGIONS = (seed.PRIMARY_REGION, *seed.SECONDARY_REGIONS)


def cfg(plan: str = "free", *add_ons: str):
    return SimpleNamespace(edge=SimpleNamespace(plan=plan, add_ons=list(add_ons)))


ORIGINS = tuple(Origin(r, f"alb-{r}.elb.amazonaws.com") for r in REGIONS)


def edge(**changes):
    """Edge over sofacoverpro.com, account ACCOUNT and an origin in every region: test_edge's
    program, whose build is keyed by the args' value, so a program of the same args there
    and here is built once in a process."""
    return edge_program(**{"origins": ORIGINS, **changes})


def errors(findings) -> list:
    return [f for f in findings if f.severity == "error"]


def test_regional_tiered_cache_needs_enterprise(build):
    res = build(edge(plan="enterprise", tiered_cache=True, regional_tiered_cache=True)).resources
    assert not preflight_of(res, "cloudflare-regional-tiered-cache", config=cfg("enterprise"))
    (f,) = preflight_of(res, "cloudflare-regional-tiered-cache", config=cfg("business"))
    assert f.severity == "error" and "needs the enterprise plan" in f.message
    assert "on business" in f.message and "RegionalTieredCache" in f.resource


def test_regional_tiered_cache_without_smart_topology_is_a_warning(build):
    res = build(edge(plan="enterprise", regional_tiered_cache=True)).resources
    (f,) = preflight_of(res, "cloudflare-regional-tiered-cache", config=cfg("enterprise"))
    assert f.severity == "warning" and "Smart" in f.message


def test_polish_and_webp_need_pro(build):
    res = build(edge(image_optimization=True)).resources
    assert not preflight_of(res, "cloudflare-image-optimization", config=cfg("pro"))
    found = preflight_of(res, "cloudflare-image-optimization", config=cfg("free"))
    assert {f.message.split(" needs")[0] for f in errors(found)} == {
        "Polish", "WebP (a Polish option)"}
    assert all("needs the pro plan" in f.message for f in found)


def test_load_balancing_needs_its_add_on(build):
    res = build(edge(geo_load_balancing=True)).resources
    assert not preflight_of(res, "cloudflare-load-balancing",
                            config=cfg("business", "loadBalancing"))
    found = preflight_of(res, "cloudflare-load-balancing", config=cfg("enterprise"))
    # 3 load balancers, a pool per region and the monitor: every one needs the add-on.
    assert len(errors(found)) == 3 + len(REGIONS) + 1
    assert all("'loadBalancing'" in f.message for f in found)


def test_a_pool_holds_twenty_origins_below_enterprise(build):
    def fn() -> None:
        cloudflare.LoadBalancerPool("big", account_id=ACCOUNT, name="big", origins=[
            {"name": f"o{i}", "address": f"o{i}.example.com"} for i in range(21)])
    res = build(fn).resources
    (f,) = preflight_of(res, "cloudflare-load-balancing", config=cfg("business", "loadBalancing"))
    assert "up to 20" in f.message
    assert not preflight_of(res, "cloudflare-load-balancing",
                            config=cfg("enterprise", "loadBalancing"))


def test_argo_smart_routing_needs_its_add_on_tiered_cache_does_not(build):
    def fn() -> None:
        cloudflare.ArgoSmartRouting("argo", zone_id=ZONE, value="on")
    res = build(fn).resources
    (f,) = preflight_of(res, "cloudflare-argo", config=cfg("enterprise"))
    assert "'argo'" in f.message
    assert not preflight_of(res, "cloudflare-argo", config=cfg("free", "argo"))
    smart = build(edge(tiered_cache=True)).resources
    assert not preflight_of(smart, "cloudflare-argo", config=cfg("free"))


def test_custom_cache_key_needs_enterprise(build):
    res = build(edge(plan="enterprise")).resources
    assert not preflight_of(res, "cloudflare-cache-rules-plan", config=cfg("enterprise"))
    found = preflight_of(res, "cloudflare-cache-rules-plan", config=cfg("business"))
    assert [f.property for f in found] == [
        "rules[0](static_assets).actionParameters.cacheKey.customKey.queryString",
        "rules[1](html).actionParameters.cacheKey.customKey.queryString"]
    # Below Enterprise the component leaves the custom key out.
    assert not preflight_of(build(edge(plan="business")).resources,
                            "cloudflare-cache-rules-plan", config=cfg("business"))


def test_edge_ttl_below_the_plans_minimum_is_refused(build):
    res = build(edge(plan="pro", html_edge_ttl_seconds=120)).resources
    (f,) = preflight_of(res, "cloudflare-cache-rules-plan", config=cfg("pro"))
    assert f.property == "rules[1](html).actionParameters.edgeTtl.default"
    assert "minimum of 3600 s" in f.message and "needs the business plan" in f.message
    ok = build(edge(plan="pro", html_edge_ttl_seconds=3600)).resources
    assert not preflight_of(ok, "cloudflare-cache-rules-plan", config=cfg("pro"))


def _ruleset(rules, phase="http_request_cache_settings"):
    def fn() -> None:
        cloudflare.Ruleset("r", zone_id=ZONE, kind="zone", phase=phase, name="r", rules=rules)
    return fn


def test_enterprise_cache_settings_regex_and_rule_count(build):
    rule = {"ref": "x", "expression": 'http.request.uri.path matches "^/a"',
            "action": "set_cache_settings",
            "action_parameters": {"cache": True, "read_timeout": 900,
                                  "edge_ttl": {"mode": "respect_origin", "status_code_ttls": [
                                      {"status_code": 404, "value": 60}]}}}
    res = build(_ruleset([rule])).resources
    found = preflight_of(res, "cloudflare-cache-rules-plan", config=cfg("pro"))
    assert {f.property.split(".")[-1] for f in found} == {
        "statusCodeTtls", "readTimeout", "expression"}
    business = preflight_of(res, "cloudflare-cache-rules-plan", config=cfg("business"))
    assert {f.property.split(".")[-1] for f in business} == {"statusCodeTtls", "readTimeout"}
    assert not preflight_of(res, "cloudflare-cache-rules-plan", config=cfg("enterprise"))
    many = build(_ruleset([{"ref": f"r{i}", "expression": "true",
                            "action": "set_cache_settings",
                            "action_parameters": {"cache": True}} for i in range(11)])).resources
    (f,) = preflight_of(many, "cloudflare-cache-rules-plan", config=cfg("free"))
    assert "11 cache rules; the free plan allows 10" in f.message


def test_ruleset_fields_phase_and_action_are_the_sdks(build):
    assert not preflight_of(build(edge()).resources, "cloudflare-ruleset-schema")
    rule = {"ref": "x", "expression": "true", "action": "set_cache_setting",
            "action_parameters": {"cache": True, "cache_key": {"custom_key": {
                "query_string": {"exclude": {"list": ["utm_source"]}}}},
                "edge_ttl": {"mode": "override_origin", "defaults": 60}}}
    res = build(_ruleset([rule], phase="http_request_cache_setting")).resources
    found = {f.property: f.message for f in preflight_of(res, "cloudflare-ruleset-schema")}
    assert "is not a ruleset phase" in found["phase"]
    assert "is not a rule action" in found["rules[0].action"]
    bad_key = "rules[0].actionParameters.cacheKey.customKey.queryString.exclude.list"
    assert "has no 'list'" in found[bad_key] and "lists" in found[bad_key]
    assert "has no 'defaults'" in found["rules[0].actionParameters.edgeTtl.defaults"]


def test_deprecated_brotli_setting_is_flagged(build):
    assert not preflight_of(build(edge()).resources, "cloudflare-deprecated-zone-setting")

    def fn() -> None:
        cloudflare.ZoneSetting("brotli", zone_id=ZONE, setting_id="brotli", value="on")
    (f,) = preflight_of(build(fn).resources, "cloudflare-deprecated-zone-setting")
    assert f.severity == "warning" and "2024-06-14" in f.message


def _script(main: str, files: dict[str, str] | None = None):
    def fn() -> None:
        cloudflare.WorkersScript(
            "w", account_id=ACCOUNT, script_name="w", main_module="main.js", content=main,
            files={k: {"content_type": "application/javascript+module",
                       "content_base64": base64.b64encode(v.encode()).decode()}
                   for k, v in (files or {}).items()})
    return fn


def test_the_worker_main_module_exports_only_handlers(build):
    assert not preflight_of(build(edge(api_edge_cache=True)).resources,
                            "cloudflare-worker-modules")
    res = build(_script('export const LIST = ["a"];\nexport function helper() {}\n'
                        "export default { async fetch() {} };\n")).resources
    (f,) = preflight_of(res, "cloudflare-worker-modules")
    assert "exports 'LIST', which is not a function" in f.message


def test_every_imported_worker_module_is_uploaded(build):
    main = 'import { a } from "./lib.js";\nexport default { fetch() { return a; } };\n'
    (f,) = preflight_of(build(_script(main)).resources, "cloudflare-worker-modules")
    assert "imports ./lib.js, which is not uploaded" in f.message
    assert not preflight_of(build(_script(main, {"lib.js": "export const a = 1;\n"})).resources,
                            "cloudflare-worker-modules")


def test_worker_routes_on_workers_free_are_a_warning(build):
    res = build(edge(api_edge_cache=True)).resources
    (f,) = preflight_of(res, "cloudflare-workers-plan", config=cfg("business"))
    assert f.severity == "warning" and "100,000 requests a day" in f.message
    assert not preflight_of(res, "cloudflare-workers-plan", config=cfg("business", "workersPaid"))


def test_without_edge_config_a_zone_is_checked_as_free(build):
    res = build(edge(image_optimization=True)).resources
    assert errors(preflight_of(res, "cloudflare-image-optimization", config=None))


@pytest.mark.parametrize("phase", [1, 2, 3])
def test_committed_prod_edge_plans_clean_at_every_phase(project, phase):
    from planner.engine import plan_stack

    refs = {f"organization/sofacover/{stack}": {"albDnsName": f"alb-{i}.elb.amazonaws.com"}
            for i, stack in enumerate(("prod", "prod-us-west-2", "prod-eu-west-1",
                                       "prod-ap-southeast-1"))}
    plan = plan_stack(project, "prod-edge", phase=phase, references=refs)
    found = preflight.check([plan], only=_cloudflare_rules())
    assert not found, [f.line() for f in found]


def _cloudflare_rules() -> list[str]:
    preflight._load_rules()
    return [r for r in preflight.RULES if r.startswith("cloudflare-")]
