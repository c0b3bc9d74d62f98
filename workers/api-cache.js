// Edge cache for public catalogue API reads (SofaCover, Cloudflare Worker, module syntax).
//
// Serves GET requests for the catalogue, product and category endpoints from the edge
// cache for env.CACHE_TTL_SECONDS. Never caches a request that carries credentials (an
// Authorization header or a session/auth cookie), any method but GET, or an origin
// response that is not a plain 200 or that sets a cookie. Every response says what
// happened in the X-Edge-Cache header: HIT, MISS or BYPASS.
//
// The main module exports only its handler: workerd treats every named export here as an
// entrypoint (cloudflare/workers-sdk#10626). The decisions live in api-cache-lib.js.

import { bypassReason, cacheKey, mark, ttlSeconds } from "./api-cache-lib.js";

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
