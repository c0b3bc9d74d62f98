// Edge cache for public catalogue API reads (SofaCover, Cloudflare Worker, module syntax).
//
// Serves GET requests for the catalogue, product and category endpoints from the edge
// cache for env.CACHE_TTL_SECONDS. Never caches a request that carries credentials (an
// Authorization header or a session/auth cookie), any method but GET, or an origin
// response that is not a plain 200 or that sets a cookie. Every response says what
// happened in the X-Edge-Cache header: HIT, MISS or BYPASS.

export const CACHEABLE_PREFIXES = ["/api/catalog", "/api/products", "/api/categories"];
export const CREDENTIAL_COOKIES = ["session", "sofacover_session", "auth", "cart"];
export const MARKETING_PARAMS = [
  "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
  "gclid", "fbclid", "msclkid",
];

function hasCredentials(request) {
  if (request.headers.has("Authorization")) return true;
  const cookie = request.headers.get("Cookie");
  if (!cookie) return false;
  return cookie.split(";").some((part) => {
    const name = part.split("=")[0].trim().toLowerCase();
    return CREDENTIAL_COOKIES.some((c) => name === c || name.startsWith(`${c}_`));
  });
}

/** Why a request must not be served from the edge cache, or null when it may. */
export function bypassReason(request) {
  if (request.method !== "GET") return "method";
  const url = new URL(request.url);
  if (!CACHEABLE_PREFIXES.some((p) => url.pathname === p || url.pathname.startsWith(`${p}/`))) {
    return "path";
  }
  if (hasCredentials(request)) return "credentials";
  return null;
}

/** The cache key: the URL without marketing parameters, its query sorted. */
export function cacheKey(request) {
  const url = new URL(request.url);
  for (const name of MARKETING_PARAMS) url.searchParams.delete(name);
  url.searchParams.sort();
  return new Request(url.toString(), { method: "GET" });
}

function mark(response, state) {
  const marked = new Response(response.body, response);
  marked.headers.set("X-Edge-Cache", state);
  return marked;
}

export function ttlSeconds(env) {
  const ttl = Number.parseInt(env?.CACHE_TTL_SECONDS ?? "60", 10);
  return Number.isFinite(ttl) && ttl > 0 ? ttl : 60;
}

export default {
  async fetch(request, env, ctx) {
    if (bypassReason(request) !== null) {
      return mark(await fetch(request), "BYPASS");
    }
    const cache = caches.default;
    const key = cacheKey(request);
    const hit = await cache.match(key);
    if (hit) return mark(hit, "HIT");

    const origin = await fetch(request);
    if (origin.status !== 200 || origin.headers.has("Set-Cookie")) {
      return mark(origin, "BYPASS");
    }
    const response = new Response(origin.body, origin);
    response.headers.set("Cache-Control", `public, max-age=${ttlSeconds(env)}`);
    ctx.waitUntil(cache.put(key, response.clone()));
    return mark(response, "MISS");
  },
};
