"""The Cloudflare edge: proxied DNS, zone settings, cache rules, image optimisation, tiered
caching, the API-caching Worker and, in phase 3, geo load balancing across the regions.

Everything is pulumi-cloudflare 6.x. Only the edge stack (or a stack with its own edge)
imports this module: pulumi_cloudflare costs seconds of import time.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_cloudflare as cloudflare

from config.models import EDGE_PLANS, EdgeConfig, plan_includes

WORKERS = Path(__file__).resolve().parents[1] / "workers"
WORKER_SOURCE = WORKERS / "api-cache.js"
"""The Worker's main module; it exports only its handler and imports the rest."""
WORKER_MODULE_TYPE = "application/javascript+module"
# The public API reads the Worker serves (the Worker re-checks the path itself).
WORKER_PATHS = ("/api/catalog*", "/api/products*", "/api/categories*")
STATIC_EXTENSIONS = ("js", "css", "woff2", "png", "jpg", "jpeg", "webp", "avif", "gif",
                     "svg", "ico")
MARKETING_PARAMS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
                    "gclid", "fbclid", "msclkid")
# Paths and cookies that mark personal traffic: never cached.
PRIVATE_PATHS = ("/cart", "/checkout", "/account", "/api/cart", "/api/checkout",
                 "/api/account")
# Cookies of signed-in or personal traffic, `<name>` or `<name>_<anything>`: the Worker's
# bypass (workers/api-cache-lib.js CREDENTIAL_COOKIES) uses the same names, a test keeps
# the two lists equal.
CREDENTIAL_COOKIES = ("session", "sofacover_session", "auth", "cart")
YEAR = 31_536_000
# No `brotli`: Cloudflare deprecated the setting and its API (end of life 2024-06-14) and
# compresses with Brotli on every zone (developers.cloudflare.com/fundamentals/api/
# reference/deprecations/).
ZONE_SETTINGS: dict[str, str] = {
    "ssl": "strict",              # Full (strict): the origin's certificate is verified
    "min_tls_version": "1.2",
    "always_use_https": "on",
    "http3": "on",
}
IMAGE_SETTINGS: dict[str, str] = {"polish": "lossless", "webp": "on"}
# Cloudflare's managed WAF rulesets, run on every request to the zone (phase
# http_request_firewall_managed): the Cloudflare Managed Ruleset and the OWASP Core Ruleset,
# by their fixed ids. Both need the Pro plan or higher; on Free only the Cloudflare Free
# Managed Ruleset runs, which Cloudflare deploys itself. Source: Cloudflare WAF docs,
# "Managed rules" (https://developers.cloudflare.com/waf/managed-rules/, rulesets, ids and
# availability; read 2026-11-27).
WAF_MANAGED_RULESETS: dict[str, tuple[str, str]] = {
    "cloudflare_managed": ("efb7b8c949ac4650a09736fc376e9aee", "Cloudflare Managed Ruleset"),
    "owasp_core": ("4814384a9e5d4991b9815dcfc25d2f1f", "Cloudflare OWASP Core Ruleset"),
}
WAF_MANAGED_PHASE = "http_request_firewall_managed"
WAF_MANAGED_PLAN = "pro"
# Cloudflare geo regions -> AWS regions, nearest first; the primary is always the last resort.
GEO_PREFERENCE: dict[str, tuple[str, ...]] = {
    "WNAM": ("us-west-2", "us-east-1"), "ENAM": ("us-east-1", "us-west-2"),
    "NSAM": ("us-east-1",), "SSAM": ("us-east-1",),
    "WEU": ("eu-west-1", "us-east-1"), "EEU": ("eu-west-1", "us-east-1"),
    "ME": ("eu-west-1", "ap-southeast-1"), "NAF": ("eu-west-1",), "SAF": ("eu-west-1",),
    "SAS": ("ap-southeast-1", "eu-west-1"), "SEAS": ("ap-southeast-1",),
    "NEAS": ("ap-southeast-1", "us-west-2"), "OC": ("ap-southeast-1", "us-west-2"),
}


# Sessions live in each region's own Redis (no Global Datastore: it replicates to two other
# regions at most, and its secondaries are read-only; docs/architecture.md, "Global expansion"), so
# the load balancer keeps a user on the region that holds their session: Cloudflare's
# session-affinity cookie (__cflb) pins the client to the origin it first reached, for
# SESSION_AFFINITY_TTL_SECONDS, and picks another only when that origin is unhealthy
# (pulumi-cloudflare LoadBalancer.session_affinity docstring; accepted range 1800-604800 s).
# zero_downtime_failover stays "none": Cloudflare documents it as incompatible with Tiered
# Cache, which the edge turns on.
SESSION_AFFINITY = "cookie"
SESSION_AFFINITY_TTL_SECONDS = 86_400  # a day: longer than the app's session lifetime
SESSION_AFFINITY_ATTRIBUTES = {"samesite": "Lax", "secure": "Always"}


@dataclass(frozen=True)
class Origin:
    """A region's entry point: its ALB's DNS name."""

    region: str
    address: pulumi.Input[str]
    enabled: bool = True
    """False: drained (sofacover:edge.drain): its pool stays, with the origin disabled."""


def zone_on_plan(found: Any, *, zone: str, wanted: str) -> str:
    """The zone's id (from a getZone result), or a RunError if the zone's real plan is
    below the configured one."""
    # Read without the property getter, which logs that `plan` is deprecated for *changing*
    # a zone's plan (through the subscription API); reading it is what this needs.
    plan = pulumi.get(found, "plan")
    actual = getattr(plan, "legacy_id", None)
    if actual in EDGE_PLANS and not plan_includes(actual, wanted):
        raise pulumi.RunError(
            f"the Cloudflare zone {zone} is on the {actual} plan but sofacover:edge.plan is "
            f"{wanted}; upgrade the zone or set sofacover:edge.plan to {actual} (features "
            "above the plan are then refused by the config, naming the plan they need)")
    return found.zone_id


@dataclass(frozen=True)
class EdgeArgs:
    """Inputs of `Edge`."""

    zone_name: str
    account_id: str
    origins: Sequence[Origin]
    """Serving regions, the primary first: DNS points at it and it is the fallback pool."""
    hostnames: Sequence[str] = ("@", "www", "api")
    plan: str = "free"
    """The zone's Cloudflare plan; decides what the cache rules may use (custom cache keys
    are Enterprise-only)."""
    add_ons: Sequence[str] = ()
    image_optimization: bool = False
    tiered_cache: bool = False
    regional_tiered_cache: bool = False
    api_edge_cache: bool = False
    api_cache_ttl_seconds: int = 60
    html_edge_ttl_seconds: int = 120
    geo_load_balancing: bool = False
    health_check_path: str = "/healthz"

    @classmethod
    def from_config(cls, cfg: EdgeConfig, origins: Sequence[Origin]) -> EdgeArgs:
        return cls(zone_name=cfg.zone_name, account_id=cfg.account_id, origins=tuple(origins),
                   hostnames=tuple(cfg.hostnames), plan=cfg.plan, add_ons=tuple(cfg.add_ons),
                   image_optimization=cfg.image_optimization,
                   tiered_cache=cfg.tiered_cache,
                   regional_tiered_cache=cfg.regional_tiered_cache,
                   api_edge_cache=cfg.api_edge_cache,
                   api_cache_ttl_seconds=cfg.api_cache_ttl_seconds,
                   html_edge_ttl_seconds=cfg.html_edge_ttl_seconds,
                   geo_load_balancing=cfg.geo_load_balancing,
                   health_check_path=cfg.health_check_path)

    def check(self) -> None:
        if not self.origins:
            raise ValueError("EdgeArgs: origins is empty; the edge needs at least the primary")
        if not any(o.enabled for o in self.origins):
            raise ValueError("EdgeArgs: every origin is drained; at least one must serve")

    @property
    def home(self) -> Origin:
        """Where DNS points and the fallback pool: the first origin not drained (the
        primary, or during a failover the promoted region)."""
        return next(o for o in self.origins if o.enabled)

    def fqdn(self, host: str) -> str:
        return self.zone_name if host == "@" else f"{host}.{self.zone_name}"


def waf_managed_rules() -> list[dict]:
    """The zone's managed-WAF entry point: execute each managed ruleset on every request,
    with its own default actions (overrides, if ever needed, go in action_parameters)."""
    return [{"ref": ref, "description": f"Execute the {title}", "expression": "true",
             "action": "execute", "enabled": True, "action_parameters": {"id": ruleset_id}}
            for ref, (ruleset_id, title) in WAF_MANAGED_RULESETS.items()]


def cache_rules(args: EdgeArgs) -> list[dict]:
    """The zone's cache rules, in order. When several match, Cloudflare applies them in
    order and a later rule's settings win, so the bypass rule comes last."""
    exts = " ".join(f'"{e}"' for e in STATIC_EXTENSIONS)
    static = f"http.request.uri.path.extension in {{{exts}}}"
    # Sorting the query is on every plan; leaving marketing parameters out of the key is a
    # custom cache key, which only Enterprise has (Cloudflare's cache-key plan table). Below
    # Enterprise they split the cache; the API Worker drops them from its own key.
    cache_key: dict = {"ignore_query_strings_order": True}
    if plan_includes(args.plan, "enterprise"):
        cache_key["custom_key"] = {
            "query_string": {"exclude": {"lists": list(MARKETING_PARAMS)}}}
    # Substring tests: `contains "cart="` also matches `mycart=`; bypassing too much is
    # the safe side.
    cookies = [f'lower(http.cookie) contains "{c}{sep}"' for c in CREDENTIAL_COOKIES
               for sep in ("=", "_")]
    private = " or ".join(
        [f'starts_with(http.request.uri.path, "{p}")' for p in PRIVATE_PATHS]
        + cookies
        + ['any(lower(http.request.headers.names[*])[*] == "authorization")',
           '(starts_with(http.request.uri.path, "/api/") and http.request.method ne "GET")'])
    return [
        {"ref": "static_assets", "description": "Fingerprinted static assets and images: a year",
         "expression": static, "action": "set_cache_settings", "enabled": True,
         "action_parameters": {"cache": True, "cache_key": cache_key,
                               "edge_ttl": {"mode": "override_origin", "default": YEAR},
                               "browser_ttl": {"mode": "override_origin", "default": YEAR}}},
        {"ref": "html", "description": "Pages: a short edge TTL, the browser revalidates",
         "expression": f'http.request.method eq "GET" and not {static} and '
                       f'not starts_with(http.request.uri.path, "/api/")',
         "action": "set_cache_settings", "enabled": True,
         "action_parameters": {"cache": True, "cache_key": cache_key,
                               "edge_ttl": {"mode": "override_origin",
                                            "default": args.html_edge_ttl_seconds},
                               "browser_ttl": {"mode": "respect_origin"}}},
        {"ref": "bypass_private", "description":
            "Carts, checkout, accounts, signed-in users and API writes: never cached",
         "expression": private, "action": "set_cache_settings", "enabled": True,
         "action_parameters": {"cache": False}},
    ]


_RELATIVE_IMPORT = re.compile(r"""^\s*(?:import|export)\b[^;]*?\bfrom\s+["']\./([^"']+)["']""",
                              re.MULTILINE)


def module_imports(source: str) -> list[str]:
    """The sibling modules an ES module imports (`from "./x.js"`), in order."""
    return _RELATIVE_IMPORT.findall(source)


def worker_modules(main: Path) -> dict[str, str]:
    """Every module the main module reaches through relative imports: part name -> text.
    The main module itself is not among them (it is the script's `content`)."""
    found: dict[str, str] = {}
    pending = module_imports(main.read_text())
    while pending:
        part = pending.pop(0)
        if part in found or part == main.name:
            continue
        found[part] = (main.parent / part).read_text()
        pending.extend(module_imports(found[part]))
    return found


class Edge(pulumi.ComponentResource):
    """Cloudflare in front of the regions' ALBs."""

    zone_id: pulumi.Output[str]
    hostnames: pulumi.Output[list[str]]
    """The proxied names."""
    load_balancer_pools: pulumi.Output[dict[str, str]]
    """Region -> pool id (empty until geo load balancing)."""

    def __init__(self, name: str, args: EdgeArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        args.check()
        super().__init__("sofacover:edge:Edge", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        zone = cloudflare.get_zone_output(filter={"name": args.zone_name},
                                          opts=pulumi.InvokeOutputOptions(parent=self))
        # Every resource takes the zone id through this check: the features are chosen for
        # sofacover:edge.plan, so a zone on a lower plan stops the deploy before anything
        # is written to it (Cloudflare would refuse some of it half-way through).
        zone_id = zone.apply(functools.partial(zone_on_plan, zone=args.zone_name,
                                               wanted=args.plan))
        primary = args.home

        # DNS stays pointed at the home origin (the primary) in every phase: the load
        # balancers of phase 3 take precedence over records of the same name, and the
        # records are the fallback.
        for host in args.hostnames:
            cloudflare.DnsRecord(f"{name}-dns-{host.replace('@', 'apex')}", zone_id=zone_id,
                                 name=args.fqdn(host), type="CNAME", content=primary.address,
                                 proxied=True, ttl=1, comment="managed by pulumi (sofacover)",
                                 opts=child)

        settings = {**ZONE_SETTINGS, **(IMAGE_SETTINGS if args.image_optimization else {})}
        for setting, value in settings.items():
            cloudflare.ZoneSetting(f"{name}-{setting.replace('_', '-')}", zone_id=zone_id,
                                   setting_id=setting, value=value, opts=child)

        cloudflare.Ruleset(f"{name}-cache-rules", zone_id=zone_id, kind="zone",
                           phase="http_request_cache_settings", name="sofacover cache rules",
                           description="Static a year, HTML briefly, private never",
                           rules=cache_rules(args), opts=child)
        if plan_includes(args.plan, WAF_MANAGED_PLAN):
            # A zone holds one entry-point ruleset per phase: if managed rules were deployed
            # from the dashboard, import that ruleset into this resource instead of creating.
            cloudflare.Ruleset(f"{name}-waf-managed", zone_id=zone_id, kind="zone",
                               phase=WAF_MANAGED_PHASE, name="sofacover managed WAF",
                               description="Cloudflare Managed and OWASP Core rulesets",
                               rules=waf_managed_rules(), opts=child)
        else:
            pulumi.log.warn(f"{name}: the zone is on the {args.plan} plan, so only "
                            "Cloudflare's Free Managed Ruleset guards it; the Cloudflare "
                            f"Managed and OWASP rulesets need {WAF_MANAGED_PLAN} or higher",
                            resource=self)
        if args.tiered_cache:
            # Tiered Cache on, then its Smart topology: the two calls of Cloudflare's
            # "Enable Tiered Cache via API" (developers.cloudflare.com/cache/how-to/
            # tiered-cache/); both are on every plan.
            cloudflare.ArgoTieredCaching(f"{name}-tiered-caching", zone_id=zone_id,
                                         value="on", opts=child)
            cloudflare.TieredCache(f"{name}-tiered-cache", zone_id=zone_id, value="on",
                                   opts=child)
        if args.regional_tiered_cache:
            cloudflare.RegionalTieredCache(f"{name}-regional-tiered-cache", zone_id=zone_id,
                                           value="on", opts=child)

        if args.api_edge_cache:
            source = WORKER_SOURCE.read_text()
            modules = worker_modules(WORKER_SOURCE)
            digest = hashlib.sha256(source.encode())
            for text in modules.values():
                digest.update(text.encode())
            script = cloudflare.WorkersScript(
                f"{name}-api-cache", account_id=args.account_id,
                script_name=f"{name}-api-cache", main_module=WORKER_SOURCE.name,
                content=source, compatibility_date="2025-09-01",
                # The modules the main module imports, each a part of the upload named as
                # the import names it.
                files={part: {"content_type": WORKER_MODULE_TYPE,
                              "content_base64": base64.b64encode(text.encode()).decode(),
                              "content_sha256": hashlib.sha256(text.encode()).hexdigest()}
                       for part, text in modules.items()},
                bindings=[{"name": "CACHE_TTL_SECONDS", "type": "plain_text",
                           "text": str(args.api_cache_ttl_seconds)}],
                observability={"enabled": True},
                # Shown in the plan: a change to any module is a change to this hash.
                annotations={"workers_message": "sha256 " + digest.hexdigest()[:16]},
                opts=child)
            for i, path in enumerate(WORKER_PATHS):
                cloudflare.WorkersRoute(f"{name}-api-cache-route-{i}", zone_id=zone_id,
                                        pattern=f"*{args.zone_name}{path}",
                                        script=script.script_name, opts=child)

        pools: dict[str, pulumi.Output[str]] = {}
        if args.geo_load_balancing:
            monitor = cloudflare.LoadBalancerMonitor(
                f"{name}-health", account_id=args.account_id, type="https", method="GET",
                path=args.health_check_path, expected_codes="200", interval=60, timeout=5,
                retries=2, consecutive_down=2, consecutive_up=2, follow_redirects=False,
                allow_insecure=False, header={"Host": [args.zone_name]},
                description="SofaCover app health", opts=child)
            for origin in args.origins:
                pools[origin.region] = cloudflare.LoadBalancerPool(
                    f"{name}-pool-{origin.region}", account_id=args.account_id,
                    name=f"sofacover-{origin.region}", monitor=monitor.id, minimum_origins=1,
                    # Drained: a disabled pool gets no traffic and no health checks.
                    enabled=origin.enabled,
                    origins=[{"name": origin.region, "address": origin.address,
                              "enabled": origin.enabled, "weight": 1,
                              "header": {"hosts": [args.zone_name]}}],
                    check_regions=["WNAM", "ENAM", "WEU", "SEAS"],
                    description=f"ALB in {origin.region}", opts=child).id
            regions = {geo: [pools[r] for r in prefs if r in pools] + [pools[primary.region]]
                       for geo, prefs in GEO_PREFERENCE.items()}
            regions = {geo: list(dict.fromkeys(ids)) for geo, ids in regions.items()}
            for host in args.hostnames:
                cloudflare.LoadBalancer(
                    f"{name}-lb-{host.replace('@', 'apex')}", zone_id=zone_id,
                    name=args.fqdn(host), proxied=True, steering_policy="geo",
                    default_pools=list(dict.fromkeys(
                        [pools[primary.region], *[pools[o.region] for o in args.origins]])),
                    fallback_pool=pools[primary.region], region_pools=regions,
                    session_affinity=SESSION_AFFINITY,
                    session_affinity_ttl=SESSION_AFFINITY_TTL_SECONDS,
                    session_affinity_attributes=SESSION_AFFINITY_ATTRIBUTES,
                    description="nearest healthy region",
                    opts=child)

        self.zone_id = zone_id
        self.hostnames = pulumi.Output.from_input([args.fqdn(h) for h in args.hostnames])
        self.load_balancer_pools = pulumi.Output.all(**pools) if pools else \
            pulumi.Output.from_input({})
        self.register_outputs({"zone_id": self.zone_id, "hostnames": self.hostnames,
                               "load_balancer_pools": self.load_balancer_pools})
