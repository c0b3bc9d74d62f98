"""Preflight rules: cloudflare (see planner/preflight/__init__.py).

Every Cloudflare feature the program turns on, checked against the zone's plan and the
account's add-ons (`sofacover:edge.plan`, `sofacover:edge.addOns`), and every ruleset
against what pulumi_cloudflare accepts. Plan facts come from Cloudflare's plan table
(cloudflare-docs src/content/plans/index.json, shown as "Availability" on each feature's
page), the same table config/models.py reads (EDGE_FEATURES, EDGE_TTL_MINIMUM_SECONDS).
A stack with Cloudflare resources but no `sofacover:edge` is checked as a Free zone with
no add-ons.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

from config.models import EDGE_PLANS, EDGE_TTL_MINIMUM_SECONDS, plan_includes
from planner.engine import PlannedResource
from planner.preflight import Context, Finding, rule, value

CHECKED = "2026-11-27"
CF = "cloudflare:index/"
ZONE_SETTING = CF + "zoneSetting:ZoneSetting"
RULESET = CF + "ruleset:Ruleset"
TIERED_CACHE = CF + "tieredCache:TieredCache"
REGIONAL_TIERED_CACHE = CF + "regionalTieredCache:RegionalTieredCache"
ARGO_SMART_ROUTING = CF + "argoSmartRouting:ArgoSmartRouting"
LOAD_BALANCING = (CF + "loadBalancer:LoadBalancer", CF + "loadBalancerPool:LoadBalancerPool",
                  CF + "loadBalancerMonitor:LoadBalancerMonitor")
LOAD_BALANCER_POOL = LOAD_BALANCING[1]
WORKERS_SCRIPT = CF + "workersScript:WorkersScript"
WORKERS_ROUTE = CF + "workersRoute:WorkersRoute"
CACHE_PHASE = "http_request_cache_settings"
SDK = "pulumi_cloudflare 6.23.1 (sdk/python/pulumi_cloudflare/_inputs.py, ruleset.py)"


def _edge(ctx: Context) -> tuple[str, tuple[str, ...]]:
    edge = getattr(ctx.config, "edge", None)
    if edge is None:
        return "free", ()
    return edge.plan, tuple(edge.add_ons)


def _needs(ctx: Context, res: PlannedResource, prop: str, feature: str,
           needed: str) -> Iterator[Finding]:
    plan, _ = _edge(ctx)
    if not plan_includes(plan, needed):
        yield ctx.error(res, prop, f"{feature} needs the {needed} plan or higher; the zone is "
                        f"on {plan} (sofacover:edge.plan)")


def _needs_add_on(ctx: Context, res: PlannedResource, prop: str, feature: str,
                  add_on: str) -> Iterator[Finding]:
    _, add_ons = _edge(ctx)
    if add_on not in add_ons:
        yield ctx.error(res, prop, f"{feature} is a paid add-on the account lacks: add "
                        f"{add_on!r} to sofacover:edge.addOns once it is bought (now "
                        f"{list(add_ons)})")


def _on(res: PlannedResource) -> bool:
    return value(res, "value") not in (None, "off", False)


@rule("cloudflare-regional-tiered-cache",
      "Regional Tiered Cache is Enterprise-only, and works on a Smart (or Custom) Tiered "
      "Cache topology",
      source="https://developers.cloudflare.com/cache/how-to/tiered-cache/ (Availability)",
      checked=CHECKED)
def regional_tiered_cache(ctx: Context) -> Iterator[Finding]:
    smart = any(_on(r) for r in ctx.of_type(TIERED_CACHE))
    for res in ctx.of_type(REGIONAL_TIERED_CACHE):
        if not _on(res):
            continue
        yield from _needs(ctx, res, "value", "Regional Tiered Cache", "enterprise")
        if not smart:
            yield ctx.warning(res, "value", "Regional Tiered Cache adds a middle tier to a "
                              "Smart or Custom topology; this stack turns on no TieredCache")


@rule("cloudflare-image-optimization",
      "Polish (and its WebP conversion) needs the Pro plan or higher",
      source="https://developers.cloudflare.com/images/polish/ (Availability: Pro and above)",
      checked=CHECKED)
def image_optimization(ctx: Context) -> Iterator[Finding]:
    for res in ctx.of_type(ZONE_SETTING):
        setting = value(res, "settingId")
        if setting in ("polish", "webp") and _on(res):
            feature = "Polish" if setting == "polish" else "WebP (a Polish option)"
            yield from _needs(ctx, res, "value", feature, "pro")


# The managed WAF rulesets that need the Pro plan or higher, by id; the Free Managed Ruleset
# (77454fe2d30c4220b5701f6fdfb893ba) runs on every plan. Kept beside the rule rather than
# imported from components/edge.py, which would load pulumi_cloudflare into every plan.
WAF_PAID_RULESETS = {"efb7b8c949ac4650a09736fc376e9aee": "the Cloudflare Managed Ruleset",
                     "4814384a9e5d4991b9815dcfc25d2f1f": "the Cloudflare OWASP Core Ruleset"}


@rule("cloudflare-waf-managed-rules",
      "The Cloudflare Managed Ruleset and the OWASP Core Ruleset run only on zones on the Pro "
      "plan or higher; they are executed from the http_request_firewall_managed phase",
      source="https://developers.cloudflare.com/waf/managed-rules/ (available managed "
      "rulesets, their ids and availability)",
      checked=CHECKED)
def waf_managed_rules(ctx: Context) -> Iterator[Finding]:
    for res in ctx.of_type(RULESET):
        for i, r in enumerate(value(res, "rules") or []):
            ruleset_id = ((r.get("actionParameters") or {}).get("id")
                          if isinstance(r, dict) else None)
            if r.get("action") != "execute" or ruleset_id not in WAF_PAID_RULESETS:
                continue
            if value(res, "phase") != "http_request_firewall_managed":
                yield ctx.error(res, f"rules[{i}].actionParameters.id", f"executes "
                                f"{WAF_PAID_RULESETS[ruleset_id]} from phase "
                                f"{value(res, 'phase')}; managed WAF rulesets run from "
                                "http_request_firewall_managed")
            yield from _needs(ctx, res, f"rules[{i}].actionParameters.id",
                              WAF_PAID_RULESETS[ruleset_id].removeprefix("the "), "pro")


@rule("cloudflare-load-balancing",
      "Load balancers, pools and monitors need the Load Balancing add-on; a pool holds up to "
      "20 origins below Enterprise",
      source="https://developers.cloudflare.com/load-balancing/ (Availability: paid add-on "
      "on every plan; origin servers up to 20)",
      checked=CHECKED)
def load_balancing(ctx: Context) -> Iterator[Finding]:
    plan, _ = _edge(ctx)
    for res in ctx.of_type(*LOAD_BALANCING):
        yield from _needs_add_on(ctx, res, "type", "Load Balancing", "loadBalancing")
        origins = value(res, "origins") or []
        if res.type == LOAD_BALANCER_POOL and len(origins) > 20 and plan != "enterprise":
            yield ctx.error(res, "origins", f"{len(origins)} origins; a pool holds up to 20 "
                            f"below Enterprise (the zone is on {plan})")


@rule("cloudflare-argo",
      "Argo Smart Routing needs the Argo add-on (Tiered Cache and its Smart topology are on "
      "every plan)",
      source="https://developers.cloudflare.com/argo-smart-routing/ (Availability: paid "
      "add-on); https://developers.cloudflare.com/cache/how-to/tiered-cache/",
      checked=CHECKED)
def argo(ctx: Context) -> Iterator[Finding]:
    for res in ctx.of_type(ARGO_SMART_ROUTING):
        if _on(res):
            yield from _needs_add_on(ctx, res, "value", "Argo Smart Routing", "argo")


# Cache-rule settings only Enterprise has (the settings page marks them "Enterprise-only";
# custom cache keys and cache by status code are "No" below Enterprise in the plan table).
_ENTERPRISE_CACHE_SETTINGS = {
    "additionalCacheablePorts": "caching on additional ports",
    "readTimeout": "proxy read timeout",
    "originCacheControl": "origin cache control",
}
_CUSTOM_KEY_PARTS = ("queryString", "header", "cookie", "host", "user")
_CACHE_RULES_PER_PLAN = {"free": 10, "pro": 25, "business": 50, "enterprise": 300}
# `matches` (or `~`) followed by a string: a regular expression.
_REGEX = re.compile(r"""\s(?:matches|~)\s+(?:r?#*")""")


def _lowest_plan_for_ttl(seconds: int) -> str | None:
    return next((p for p in EDGE_PLANS if EDGE_TTL_MINIMUM_SECONDS[p] <= seconds), None)


@rule("cloudflare-cache-rules-plan",
      "Cache rules use only what the zone's plan has: custom cache keys, status-code TTLs, "
      "extra ports, read timeout and origin cache control are Enterprise-only; Edge TTL at "
      "least the plan's minimum (Free 2 h, Pro 1 h, Business 1 s); rules per phase (10, 25, "
      "50, 300); regular expressions from Business",
      source="https://developers.cloudflare.com/cache/how-to/cache-rules/settings/ ; "
      "https://developers.cloudflare.com/cache/how-to/cache-keys/ ; "
      "https://developers.cloudflare.com/cache/how-to/edge-browser-cache-ttl/ "
      "(plan table: cloudflare-docs src/content/plans/index.json)",
      checked=CHECKED)
def cache_rules_plan(ctx: Context) -> Iterator[Finding]:
    plan, _ = _edge(ctx)
    for res in ctx.of_type(RULESET):
        if value(res, "phase") != CACHE_PHASE:
            continue
        rules = value(res, "rules") or []
        limit = _CACHE_RULES_PER_PLAN[plan]
        if len(rules) > limit:
            yield ctx.error(res, "rules", f"{len(rules)} cache rules; the {plan} plan allows "
                            f"{limit}")
        for i, r in enumerate(rules):
            where = f"rules[{i}]({r.get('ref', '?')})"
            params = r.get("actionParameters") or {}
            custom = (params.get("cacheKey") or {}).get("customKey") or {}
            for part in _CUSTOM_KEY_PARTS:
                if part in custom:
                    yield from _needs(ctx, res, f"{where}.actionParameters.cacheKey.customKey."
                                      f"{part}", "A custom cache key", "enterprise")
            edge_ttl = params.get("edgeTtl") or {}
            if edge_ttl.get("statusCodeTtls"):
                yield from _needs(ctx, res, f"{where}.actionParameters.edgeTtl.statusCodeTtls",
                                  "Cache by status code", "enterprise")
            for key, feature in _ENTERPRISE_CACHE_SETTINGS.items():
                if params.get(key) not in (None, False, []):
                    yield from _needs(ctx, res, f"{where}.actionParameters.{key}",
                                      feature.capitalize(), "enterprise")
            ttl = edge_ttl.get("default")
            if edge_ttl.get("mode") == "override_origin" and isinstance(ttl, int) and \
                    ttl < EDGE_TTL_MINIMUM_SECONDS[plan]:
                needed = _lowest_plan_for_ttl(ttl)
                yield ctx.error(res, f"{where}.actionParameters.edgeTtl.default",
                                f"Edge Cache TTL {ttl} s is below the {plan} plan's minimum "
                                f"of {EDGE_TTL_MINIMUM_SECONDS[plan]} s; "
                                + (f"it needs the {needed} plan or higher" if needed else
                                   "no plan allows it"))
            if _REGEX.search(" " + str(r.get("expression", ""))):
                yield from _needs(ctx, res, f"{where}.expression",
                                  "A regular expression (`matches`) in a rule", "business")


def _available_values(doc: str | None) -> set[str]:
    # The SDK's docstrings list enums as `Available values: "a*b", ...` (markdown turned
    # the underscores into asterisks).
    match = re.search(r"Available values: (.*?)\.?\s*$", doc or "", re.MULTILINE)
    if not match:
        return set()
    return {v.replace("*", "_") for v in re.findall(r'"([^"]+)"', match.group(1))}


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


def _schema_problems(node: Any, typed: str, path: str) -> Iterator[tuple[str, str]]:
    """(property path, problem) for every key of `node` pulumi_cloudflare's input type
    `typed` (an ...ArgsDict of _inputs.py) does not declare, recursively."""
    from pulumi_cloudflare import _inputs

    schema = getattr(_inputs, typed, None)
    if schema is None or not isinstance(node, dict):
        return
    fields = schema.__annotations__
    for key, child in node.items():
        name = _snake(key)
        if name not in fields:
            yield f"{path}.{key}", (f"pulumi_cloudflare has no {key!r} here; valid: "
                                    + ", ".join(sorted(fields)))
            continue
        spec = repr(fields[name])
        nested = re.search(r"ForwardRef\('(\w+ArgsDict)'\)", spec)
        if nested is None:
            continue
        items: list[tuple[str, Any]]
        if "Mapping[str" in spec.split("ForwardRef")[0]:  # a map: its values are typed
            items = [(f"{path}.{key}[{k!r}]", v) for k, v in (child or {}).items()]
        elif isinstance(child, list):
            items = [(f"{path}.{key}[{i}]", v) for i, v in enumerate(child)]
        else:
            items = [(f"{path}.{key}", child)]
        for where, v in items:
            yield from _schema_problems(v, nested.group(1), where)


@rule("cloudflare-ruleset-schema",
      "Each ruleset's phase, each rule's action and every key of its rules are ones "
      "pulumi_cloudflare accepts (read from the installed SDK's input types)",
      source=SDK, checked=CHECKED)
def ruleset_schema(ctx: Context) -> Iterator[Finding]:
    import pulumi_cloudflare as cloudflare
    from pulumi_cloudflare import _inputs

    phases = _available_values(cloudflare.RulesetArgs.phase.__doc__)
    actions = _available_values(_inputs.RulesetRuleArgs.action.__doc__)
    kinds = _available_values(cloudflare.RulesetArgs.kind.__doc__)
    for res in ctx.of_type(RULESET):
        phase, kind = value(res, "phase"), value(res, "kind")
        if phases and phase not in phases:
            yield ctx.error(res, "phase", f"{phase!r} is not a ruleset phase; valid: "
                            + ", ".join(sorted(phases)))
        if kinds and kind not in kinds:
            yield ctx.error(res, "kind", f"{kind!r} is not a ruleset kind; valid: "
                            + ", ".join(sorted(kinds)))
        for i, r in enumerate(value(res, "rules") or []):
            if actions and r.get("action") not in actions:
                yield ctx.error(res, f"rules[{i}].action", f"{r.get('action')!r} is not a "
                                "rule action; valid: " + ", ".join(sorted(actions)))
            if phase == CACHE_PHASE and r.get("action") != "set_cache_settings":
                yield ctx.error(res, f"rules[{i}].action", f"{r.get('action')!r} in the "
                                f"{CACHE_PHASE} phase; cache rules use set_cache_settings")
            for prop, problem in _schema_problems(r, "RulesetRuleArgsDict", f"rules[{i}]"):
                yield ctx.error(res, prop, problem)


# Zone settings whose API Cloudflare retired: setting -> (end of life, what replaced it).
DEPRECATED_ZONE_SETTINGS = {
    "brotli": ("2024-06-14", "Brotli compression is on by default for every zone"),
    "server_side_exclude": ("2024-06-14", "the feature was removed"),
    "mobile_redirect": ("2024-06-30", "use Single Redirects"),
    "minify": ("2024-08-05", "Auto Minify was removed"),
}


@rule("cloudflare-deprecated-zone-setting",
      "No zone setting whose API Cloudflare has retired (brotli, server_side_exclude, "
      "mobile_redirect, minify)",
      source="https://developers.cloudflare.com/fundamentals/api/reference/deprecations/",
      checked=CHECKED)
def deprecated_zone_setting(ctx: Context) -> Iterator[Finding]:
    for res in ctx.of_type(ZONE_SETTING):
        setting = value(res, "settingId")
        if setting in DEPRECATED_ZONE_SETTINGS:
            end, instead = DEPRECATED_ZONE_SETTINGS[setting]
            yield ctx.warning(res, "settingId", f"the {setting!r} setting and its API were "
                              f"deprecated, end of life {end}; {instead}: drop it")


_NAMED_EXPORT = re.compile(
    r"^\s*export\s+(?!default\b)(?:(async\s+)?(function\*?|class)|(const|let|var))\s+(\w+)"
    r"|^\s*export\s*\{([^}]*)\}", re.MULTILINE)
_IMPORT = re.compile(r"""^\s*(?:import|export)\b[^;]*?\bfrom\s+["']\./([^"']+)["']""",
                     re.MULTILINE)


def named_exports(source: str) -> list[tuple[str, bool]]:
    """(name, is a function or class) for each named export of an ES module; a name
    re-exported through `export { ... }` counts as not a function (unknown here)."""
    out: list[tuple[str, bool]] = []
    for m in _NAMED_EXPORT.finditer(source):
        if m.group(4):
            out.append((m.group(4), m.group(2) is not None))
        else:
            for item in m.group(5).split(","):
                name = item.split(" as ")[-1].strip()
                if name and name != "default":
                    out.append((name, False))
    return out


@rule("cloudflare-worker-modules",
      "A Worker's main module exports only handlers (workerd may refuse a non-function named "
      "export as an entrypoint) and every module it imports is uploaded with it",
      source="https://github.com/cloudflare/workers-sdk/issues/10626 ; "
      "https://developers.cloudflare.com/workers/configuration/multipart-upload-metadata/",
      checked=CHECKED)
def worker_modules(ctx: Context) -> Iterator[Finding]:
    for res in ctx.of_type(WORKERS_SCRIPT):
        content, main = value(res, "content"), value(res, "mainModule")
        if not isinstance(content, str) or not main:
            continue
        for name, handler in named_exports(content):
            if not handler:
                yield ctx.error(res, "content", f"the main module {main} exports {name!r}, "
                                "which is not a function; workerd treats every named export "
                                "of the main module as an entrypoint: move it to another "
                                "module")
        files = value(res, "files") or {}
        texts = {main: content}
        for part, spec in files.items():
            encoded = (spec or {}).get("contentBase64")
            if isinstance(encoded, str):
                texts[part] = base64.b64decode(encoded).decode(errors="replace")
        for part, text in texts.items():
            for imported in _IMPORT.findall(text):
                if imported not in texts:
                    yield ctx.error(res, "files", f"{part} imports ./{imported}, which is not "
                                    "uploaded: add it to files (part name "
                                    f"{imported!r})")


@rule("cloudflare-workers-plan",
      "Workers routes on the Workers Free plan (no workersPaid add-on) stop at 100,000 "
      "requests a day and 10 ms of CPU; at most 1,000 routes a zone",
      source="https://developers.cloudflare.com/workers/platform/limits/",
      checked=CHECKED)
def workers_plan(ctx: Context) -> Iterator[Finding]:
    routes = list(ctx.of_type(WORKERS_ROUTE))
    if not routes:
        return
    _, add_ons = _edge(ctx)
    if "workersPaid" not in add_ons:
        yield ctx.warning(routes[0], "pattern", f"{len(routes)} Worker routes on Workers "
                          "Free: 100,000 requests a day across the account and 10 ms of CPU "
                          "a request, then requests fail; add 'workersPaid' to "
                          "sofacover:edge.addOns with the $5/month plan")
    if len(routes) > 1000:
        yield ctx.error(routes[0], "pattern", f"{len(routes)} routes; a zone holds 1,000")
