// What the API-caching Worker decides, kept out of its main module: workerd treats every
// named export of the main module as an entrypoint and may refuse one that is not a handler
// (cloudflare/workers-sdk#10626), so api-cache.js exports only its default handler and
// imports these. components/edge.py uploads this file as a second module of the Worker.

export const CACHEABLE_PREFIXES = ["/api/catalog", "/api/products", "/api/categories"];
// Cookies that mark a signed-in or personal request; `<name>_<anything>` counts too. The
// zone's cache-bypass rule (components/edge.py CREDENTIAL_COOKIES) lists the same names.
export const CREDENTIAL_COOKIES = ["session", "sofacover_session", "auth", "cart"];
export const MARKETING_PARAMS = [
  "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
  "gclid", "fbclid", "msclkid",
];

/** True when the request carries an Authorization header or a credential cookie. */
export function hasCredentials(request) {
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

/** A copy of `response` saying in X-Edge-Cache what happened: HIT, MISS or BYPASS. */
export function mark(response, state) {
  const marked = new Response(response.body, response);
  marked.headers.set("X-Edge-Cache", state);
  return marked;
}

export function ttlSeconds(env) {
  const ttl = Number.parseInt(env?.CACHE_TTL_SECONDS ?? "60", 10);
  return Number.isFinite(ttl) && ttl > 0 ? ttl : 60;
}
