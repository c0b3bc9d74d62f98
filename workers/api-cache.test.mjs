// node --test workers/ : the Worker against a fake edge cache and a fake origin.
import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";

import * as main from "./api-cache.js";
import {
  CREDENTIAL_COOKIES, bypassReason, cacheKey, hasCredentials, ttlSeconds,
} from "./api-cache-lib.js";

const worker = main.default;

let store;
let originCalls;
let originResponse;

beforeEach(() => {
  store = new Map();
  originCalls = 0;
  originResponse = () => new Response(JSON.stringify({ items: [1, 2] }), {
    status: 200, headers: { "Content-Type": "application/json" },
  });
  globalThis.caches = {
    default: {
      async match(req) {
        const hit = store.get(req.url);
        return hit ? hit.clone() : undefined;
      },
      async put(req, res) { store.set(req.url, res); },
    },
  };
  globalThis.fetch = async () => { originCalls += 1; return originResponse(); };
});

const ctx = () => {
  const pending = [];
  return { waitUntil: (p) => pending.push(p), done: () => Promise.all(pending) };
};
const env = { CACHE_TTL_SECONDS: "120" };
const url = "https://api.sofacoverpro.com/api/products/42";

async function send(request) {
  const c = ctx();
  const response = await worker.fetch(request, env, c);
  await c.done();
  return response;
}

test("a public catalogue GET is a miss, then a hit served without the origin", async () => {
  const first = await send(new Request(url));
  assert.equal(first.headers.get("X-Edge-Cache"), "MISS");
  assert.equal(first.headers.get("Cache-Control"), "public, max-age=120");
  const second = await send(new Request(url));
  assert.equal(second.headers.get("X-Edge-Cache"), "HIT");
  assert.deepEqual(await second.json(), { items: [1, 2] });
  assert.equal(originCalls, 1);
});

test("marketing parameters do not split the cache", async () => {
  await send(new Request(`${url}?utm_source=mail&color=grey`));
  const again = await send(new Request(`${url}?color=grey&gclid=abc`));
  assert.equal(again.headers.get("X-Edge-Cache"), "HIT");
  assert.equal(cacheKey(new Request(`${url}?utm_medium=x&b=2&a=1`)).url, `${url}?a=1&b=2`);
});

for (const method of ["POST", "PUT", "PATCH", "DELETE"]) {
  test(`a ${method} is never cached`, async () => {
    const r = await send(new Request(url, { method, body: method === "DELETE" ? null : "{}" }));
    assert.equal(r.headers.get("X-Edge-Cache"), "BYPASS");
    assert.equal(store.size, 0);
  });
}

test("a request with an Authorization header is never cached", async () => {
  const r = await send(new Request(url, { headers: { Authorization: "Bearer t" } }));
  assert.equal(r.headers.get("X-Edge-Cache"), "BYPASS");
  assert.equal(store.size, 0);
});

test("the main module exports only its fetch handler (workers-sdk#10626)", () => {
  assert.deepEqual(Object.keys(main), ["default"]);
  assert.equal(typeof worker.fetch, "function");
});

test("the bypass knows exactly the four credential cookies", () => {
  assert.deepEqual([...CREDENTIAL_COOKIES].sort(), ["auth", "cart", "session", "sofacover_session"]);
});

for (const name of CREDENTIAL_COOKIES) {
  for (const cookie of [`${name}=abc`, `${name}_v2=abc`, `${name.toUpperCase()}=abc`]) {
    test(`a request with the credential cookie ${cookie} is never cached`, async () => {
      const r = await send(new Request(url, { headers: { Cookie: `theme=dark; ${cookie}` } }));
      assert.equal(r.headers.get("X-Edge-Cache"), "BYPASS");
      assert.equal(store.size, 0);
      assert.equal(originCalls, 1);
    });
  }
}

test("cookies that only resemble a credential cookie are cached", async () => {
  for (const cookie of ["theme=dark", "cartoon=1; authorised_view=grid", "xsession=1"]) {
    assert.equal(hasCredentials(new Request(url, { headers: { Cookie: cookie } })), false, cookie);
  }
  const plain = await send(new Request(url, { headers: { Cookie: "theme=dark" } }));
  assert.equal(plain.headers.get("X-Edge-Cache"), "MISS");
});

test("paths outside the catalogue, product and category APIs pass through", async () => {
  for (const path of ["/api/cart", "/api/checkout/pay", "/api/productsx", "/"]) {
    const r = await send(new Request(`https://api.sofacoverpro.com${path}`));
    assert.equal(r.headers.get("X-Edge-Cache"), "BYPASS", path);
  }
  assert.equal(store.size, 0);
  assert.equal(bypassReason(new Request("https://x.test/api/categories")), null);
});

test("an origin error or a response setting a cookie is not cached", async () => {
  originResponse = () => new Response("busy", { status: 503 });
  assert.equal((await send(new Request(url))).headers.get("X-Edge-Cache"), "BYPASS");
  originResponse = () => new Response("{}", { status: 200, headers: { "Set-Cookie": "a=b" } });
  assert.equal((await send(new Request(url))).headers.get("X-Edge-Cache"), "BYPASS");
  assert.equal(store.size, 0);
});

test("the TTL comes from the environment, with a safe default", () => {
  assert.equal(ttlSeconds({ CACHE_TTL_SECONDS: "300" }), 300);
  assert.equal(ttlSeconds({}), 60);
  assert.equal(ttlSeconds({ CACHE_TTL_SECONDS: "zero" }), 60);
});
