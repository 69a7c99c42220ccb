// The three-tier cache end to end, in workerd: tiers named on every read, read-your-writes,
// the cross-isolate staleness bound (two copies of the worker sharing one D1 and one KV),
// KV and D1 faults, stampedes, warming, purge and the tier switches.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, describe, test } from "node:test";
import { insertCall, spawnApp } from "./support/app.mjs";
import { assertMatchesSpec, documentedResponses, seen } from "./support/openapi.mjs";
import { standardHeaders } from "./support/signers.mjs";

const T0 = Date.parse("2026-11-20T00:00:00Z");
const apps = [];
after(() => Promise.all(apps.map((a) => a.close())));

async function start(opts) {
  const app = await spawnApp(opts);
  apps.push(app);
  for (let i = 0; i < 5; i++) {
    await insertCall(app, { user: "ada", id: `CAc${i}`, startedAt: T0 + i * 1000, analysis: { intent: "billing", confidence: 0.5 } });
  }
  return app;
}

async function call(app, method, path, opts) {
  const res = await app.request(method, path, opts);
  assertMatchesSpec(method, path, res);
  return res;
}

const read = (app, path, opts = {}) => call(app, "GET", path, { token: app.token(opts.user ?? "ada"), ...opts });
const tier = (res) => [res.headers.get("x-cache"), res.json?.meta?.source, res.json?.meta?.cacheHit];

function upsert(app, data, copy = 0) {
  const body = JSON.stringify({ type: "call.upserted", data: { userId: "ada", ...data } });
  const headers = { "content-type": "application/json", ...standardHeaders(app.vars.WEBHOOK_SECRET, `msg_${Math.random()}`, body) };
  return call(app, "POST", "/webhooks/events", { headers, body, copy });
}

async function adminStats(app, copy = 0) {
  return (await call(app, "GET", "/api/cache/stats", { token: app.vars.ADMIN_TOKEN, copy })).json.data;
}

describe("tiers", () => {
  test("a read is MISS from D1, then HIT-MEMORY; another isolate gets HIT-KV", async () => {
    const app = await start({ copies: 2 });
    assert.deepEqual(tier(await read(app, "/api/webhook-calls?limit=3")), ["MISS", "d1", false]);
    const hit = await read(app, "/api/webhook-calls?limit=3");
    assert.deepEqual(tier(hit), ["HIT-MEMORY", "memory", true]);
    await sleep(50); // the KV write runs after the response
    const other = await read(app, "/api/webhook-calls?limit=3", { copy: 1 });
    assert.deepEqual(tier(other), ["HIT-KV", "kv", true]);
    assert.equal(other.headers.get("etag"), hit.headers.get("etag"));
    assert.deepEqual(other.json.data, hit.json.data);
    assert.deepEqual(tier(await read(app, "/api/webhook-calls?limit=3", { copy: 1 })), ["HIT-MEMORY", "memory", true]);
  });

  test("repeated memory hits send the same bytes and headers as the first, CORS only when asked, also after a webhook changes the page; HEAD sends no body", async () => {
    const app = await start();
    const path = "/api/webhook-calls?limit=3";
    assert.equal((await read(app, path)).headers.get("x-cache"), "MISS");
    // The first hit builds its body; the ones after it send the copy the runtime kept.
    const hits = [];
    for (let i = 0; i < 4; i++) hits.push(await read(app, path));
    for (const hit of hits) {
      assert.deepEqual(tier(hit), ["HIT-MEMORY", "memory", true]);
      assert.equal(hit.text, hits[0].text);
      assert.equal(hit.headers.get("etag"), hits[0].headers.get("etag"));
    }
    // A hit for an allowed origin carries its CORS headers; the next without one carries none.
    const cors = await read(app, path, { headers: { origin: "https://dash.example" } });
    assert.equal(cors.headers.get("access-control-allow-origin"), "https://dash.example");
    assert.equal(cors.text, hits[0].text);
    const plain = await read(app, path);
    assert.equal(plain.headers.get("access-control-allow-origin"), null);
    assert.equal(plain.headers.get("etag"), hits[0].headers.get("etag"));
    assert.equal(plain.headers.get("cache-control"), hits[0].headers.get("cache-control"));
    const head = await app.request("HEAD", path, { token: app.token("ada") });
    assert.equal(head.status, 200);
    assert.equal(head.text, "");
    assert.equal((await upsert(app, { id: "CAc9", status: "completed", startedAt: new Date(T0 + 9000).toISOString() })).status, 200);
    const moved = [await read(app, path), await read(app, path), await read(app, path)];
    assert.notEqual(moved[0].text, hits[0].text);
    assert.equal(moved[0].json.data[0].id, "CAc9");
    for (const m of moved.slice(1)) {
      assert.deepEqual(tier(m), ["HIT-MEMORY", "memory", true]);
      assert.equal(m.text, moved[1].text);
      assert.equal(m.json.meta.version, moved[0].json.meta.version);
    }
    assert.notEqual(moved[0].json.meta.version, hits[0].json.meta.version);
  });

  test("every read route is cached; pages over 100 bypass", async () => {
    const app = await start();
    for (const path of ["/api/webhook-calls/CAc1", "/api/intent-analysis/CAc1", "/api/intent-analysis?limit=5", "/api/webhook-calls?limit=100"]) {
      assert.equal((await read(app, path)).headers.get("x-cache"), "MISS", path);
      assert.equal((await read(app, path)).headers.get("x-cache"), "HIT-MEMORY", path);
    }
    for (let i = 0; i < 2; i++) assert.deepEqual(tier(await read(app, "/api/webhook-calls?limit=101")), ["BYPASS", "d1", false]);
  });

  test("a 404 is remembered, and forgotten as soon as the call arrives", async () => {
    const app = await start();
    const first = await read(app, "/api/webhook-calls/CAlate");
    assert.deepEqual([first.status, first.headers.get("x-cache")], [404, "MISS"]);
    const again = await read(app, "/api/webhook-calls/CAlate");
    assert.deepEqual([again.status, again.headers.get("x-cache")], [404, "HIT-MEMORY"]);
    await upsert(app, { id: "CAlate", status: "ringing" });
    const found = await read(app, "/api/webhook-calls/CAlate");
    assert.deepEqual([found.status, found.headers.get("x-cache")], [200, "MISS"]);
  });
});

describe("invalidation", () => {
  test("after a webhook the next read in the same isolate is fresh at every tier, at a newer version", async () => {
    const app = await start();
    const before = await read(app, "/api/intent-analysis");
    assert.equal((await read(app, "/api/intent-analysis")).headers.get("x-cache"), "HIT-MEMORY");
    const detail = await read(app, "/api/webhook-calls/CAc1");
    await upsert(app, { id: "CAnew", status: "completed", startedAt: "2026-11-21T00:00:00Z" });
    // The summary was being looked at: the webhook's own batch read it back (refresh on write).
    const summary = await read(app, "/api/intent-analysis");
    assert.equal(summary.headers.get("x-cache"), "HIT-MEMORY");
    assert.equal(summary.json.data.stats.totalCalls, before.json.data.stats.totalCalls + 1);
    assert.ok(BigInt(summary.json.meta.version) > BigInt(before.json.meta.version), "the version moved forward");
    const page = await read(app, "/api/webhook-calls?limit=1");
    assert.equal(page.json.data[0].id, "CAnew");
    // The webhook was about CAnew: CAc1's detail stays in memory, carried to the new version.
    const again = await read(app, "/api/webhook-calls/CAc1");
    assert.equal(again.headers.get("x-cache"), "HIT-MEMORY");
    assert.equal(again.headers.get("etag"), detail.headers.get("etag"));
    assert.equal(again.json.meta.version, summary.json.meta.version);
    assert.ok(BigInt(again.json.meta.version) > BigInt(detail.json.meta.version));
  });

  test("refresh on write: the landing view someone looks at is read back by the webhook's batch, and another isolate finds it in KV", async () => {
    const app = await start({ copies: 2 });
    const first = await read(app, "/api/webhook-calls?limit=10");
    assert.equal(first.headers.get("x-cache"), "MISS");
    const res = await upsert(app, { id: "CAfresh", status: "ringing", startedAt: "2026-11-23T00:00:00Z" });
    assert.equal(res.status, 200);
    const here = await read(app, "/api/webhook-calls?limit=10");
    assert.deepEqual([here.headers.get("x-cache"), here.json.data[0].id], ["HIT-MEMORY", "CAfresh"]);
    assert.ok(BigInt(here.json.meta.version) > BigInt(first.json.meta.version));
    // The KV copy is written CACHE_REFRESH_KV_DELAY_MS (1 s) after the webhook, unless a newer
    // refresh of the same view comes first.
    await sleep(1300);
    const before = await adminStats(app, 1);
    const there = await read(app, "/api/webhook-calls?limit=10", { copy: 1, headers: { "x-min-version": here.json.meta.version } });
    assert.deepEqual([there.headers.get("x-cache"), there.json.data[0].id], ["HIT-KV", "CAfresh"]);
    assert.equal(there.headers.get("etag"), here.headers.get("etag"), "the same bytes");
    const after = await adminStats(app, 1);
    assert.equal(after.counters.d1Queries, before.counters.d1Queries, "no data load from D1 in the other isolate");
    const stats = await adminStats(app);
    assert.deepEqual([stats.counters.refreshedOnWrite, stats.counters.patchedOnWrite], [1, 1], "patched: the page was held at the version before");
  });

  test("another isolate serves the write within the stated bound (CACHE_SYNC_MS, versions from D1)", async () => {
    const syncMs = 1000;
    const app = await start({ copies: 2, vars: { CACHE_SYNC_MS: String(syncMs) } });
    const first = await read(app, "/api/webhook-calls?limit=1", { copy: 1 });
    assert.equal(first.json.data[0].id, "CAc4");
    const wroteAt = Date.now();
    await upsert(app, { id: "CAx", status: "completed", startedAt: "2026-11-21T00:00:00Z" }, 0);
    let seenAt;
    for (let i = 0; i < 100; i++) {
      const res = await read(app, "/api/webhook-calls?limit=1", { copy: 1 });
      if (res.json.data[0].id === "CAx") {
        seenAt = Date.now();
        break;
      }
      await sleep(50);
    }
    assert.ok(seenAt, "the other isolate never saw the write");
    // The bound is the sync interval (plus scheduling slack); KV plays no part in it.
    assert.ok(seenAt - wroteAt <= syncMs + 500, `stale for ${seenAt - wroteAt} ms`);
  });

  test("X-Min-Version makes another isolate answer with the write at once, inside the bound", async () => {
    const app = await start({ copies: 2, vars: { CACHE_SYNC_MS: "60000" } });
    assert.equal((await read(app, "/api/webhook-calls?limit=1", { copy: 1 })).json.data[0].id, "CAc4");
    await upsert(app, { id: "CAmine", status: "completed", startedAt: "2026-11-21T00:00:00Z" }, 0);
    const mine = await read(app, "/api/webhook-calls?limit=1", { copy: 0 });
    assert.equal(mine.json.data[0].id, "CAmine");
    const stale = await read(app, "/api/webhook-calls?limit=1", { copy: 1 });
    assert.equal(stale.json.data[0].id, "CAc4", "without it: inside the (60 s) bound, may be stale");
    const other = await read(app, "/api/webhook-calls?limit=1", { copy: 1, headers: { "x-min-version": mine.json.meta.version } });
    assert.equal(other.json.data[0].id, "CAmine");
    assert.ok(BigInt(other.json.meta.version) >= BigInt(mine.json.meta.version));
    const bad = await read(app, "/api/webhook-calls?limit=1", { headers: { "x-min-version": "-1" } });
    assert.deepEqual([bad.status, bad.json.error.code], [400, "invalid_parameter"]);
    assert.match(bad.json.error.message, /X-Min-Version/);
  });

  test("a deleted call is served by no tier: not here at once, not in another isolate past the bound", async () => {
    const syncMs = 1000;
    const app = await start({ copies: 2, vars: { CACHE_SYNC_MS: String(syncMs) } });
    for (const copy of [0, 1]) {
      assert.equal((await read(app, "/api/webhook-calls/CAc4", { copy })).status, 200);
      assert.equal((await read(app, "/api/webhook-calls?limit=1", { copy })).json.data[0].id, "CAc4");
    }
    const del = await app.request("DELETE", "/api/webhook-calls/CAc4", { token: app.token("ada") });
    assert.equal(del.status, 204);
    assert.equal((await read(app, "/api/webhook-calls/CAc4")).status, 404, "this isolate: at once");
    assert.equal((await read(app, "/api/webhook-calls?limit=1")).json.data[0].id, "CAc3");
    await sleep(syncMs + 300);
    assert.equal((await read(app, "/api/webhook-calls/CAc4", { copy: 1 })).status, 404, "the other isolate, past the bound");
    assert.equal((await read(app, "/api/webhook-calls?limit=1", { copy: 1 })).json.data[0].id, "CAc3");
    const summary = await read(app, "/api/intent-analysis", { copy: 1 });
    assert.equal(summary.json.data.stats.totalCalls, 4);
    // A late event for the deleted call does not bring it back.
    await upsert(app, { id: "CAc4", status: "completed", startedAt: "2026-11-20T00:00:04Z" });
    assert.equal((await read(app, "/api/webhook-calls/CAc4")).status, 404);
  });

  test("a burst of webhooks writes nothing to KV when nobody is looking: versions live in D1", async () => {
    const app = await start();
    for (let i = 0; i < 10; i++) await upsert(app, { id: `CAb${i}`, status: "ringing", startedAt: `2026-11-22T00:00:0${i}Z` });
    await sleep(100);
    const stats = await adminStats(app);
    assert.equal(stats.counters.invalidations, 10);
    const { keys } = await app.kv.list();
    assert.deepEqual(keys.filter((k) => !k.name.includes("|v")), [], "only data entries, keyed by version");
    const page = await read(app, "/api/webhook-calls?limit=1");
    assert.equal(page.json.data[0].id, "CAb9");
  });
});

describe("faults", () => {
  test("with KV throwing on every call, every read still succeeds from D1", async () => {
    const faults = { kv: true };
    const app = await start({ faults });
    for (const path of ["/api/webhook-calls?limit=3", "/api/webhook-calls/CAc2", "/api/intent-analysis", "/api/intent-analysis/CAc2", "/api/webhook-calls/CAc2/enhanced"]) {
      for (let i = 0; i < 2; i++) {
        const res = await read(app, path);
        assert.ok([200, 404].includes(res.status), `${path}: ${res.status}`);
      }
    }
    const stats = await adminStats(app);
    assert.ok(stats.counters.kvErrors >= 3);
    assert.equal(stats.kvBreakerOpen, true);
  });

  test("with D1 failing, cached and stale-within-grace reads succeed; the rest are 503 with Retry-After", async () => {
    const faults = { d1: false };
    const app = await start({ faults, vars: { CACHE_TTL_RECORDINGS: "1" } });
    await read(app, "/api/webhook-calls?limit=2"); // TTL 1 s: soon stale
    await read(app, "/api/intent-analysis"); // TTL 120 s: stays fresh
    await sleep(1200);
    faults.d1 = true;
    const fresh = await read(app, "/api/intent-analysis");
    assert.deepEqual([fresh.status, fresh.headers.get("x-cache")], [200, "HIT-MEMORY"]);
    const stale = await read(app, "/api/webhook-calls?limit=2");
    assert.deepEqual([stale.status, ...tier(stale)], [200, "STALE", "memory", true]);
    const none = await read(app, "/api/webhook-calls/CAc3");
    assert.deepEqual([none.status, none.json.error.code], [503, "unavailable"]);
    assert.ok(Number(none.headers.get("retry-after")) > 0);
    faults.d1 = false;
    assert.equal((await read(app, "/api/webhook-calls/CAc3")).status, 200);
    assert.equal((await adminStats(app)).counters.staleServed, 1);
  });
});

describe("stampedes", () => {
  test("concurrent misses on one key cost one D1 query", async () => {
    const app = await start();
    const before = (await adminStats(app)).counters.d1Queries;
    const replies = await Promise.all(Array.from({ length: 20 }, () => read(app, "/api/webhook-calls?limit=4")));
    assert.ok(replies.every((r) => r.status === 200));
    const stats = await adminStats(app);
    assert.equal(stats.counters.d1Queries - before, 1, JSON.stringify(replies.map((r) => r.headers.get("x-cache"))));
  });
});

describe("warming", () => {
  test("POST /api/cache/warm loads the landing view into memory and KV", async () => {
    const app = await start({ copies: 2 });
    const res = await call(app, "POST", "/api/cache/warm", { token: app.vars.ADMIN_TOKEN, headers: { "content-type": "application/json" }, body: JSON.stringify({ userIds: ["ada"] }) });
    assert.deepEqual(res.json.data, { warmed: ["ada"], failed: [] });
    assert.equal((await read(app, "/api/webhook-calls")).headers.get("x-cache"), "HIT-MEMORY");
    await sleep(50);
    assert.equal((await read(app, "/api/intent-analysis", { copy: 1 })).headers.get("x-cache"), "HIT-KV");
  });

  test("the cron warms recently active users; an empty warm does the same", async () => {
    const app = await start({ copies: 2 });
    await upsert(app, { id: "CAw1", status: "completed" });
    await app.scheduled(1);
    assert.equal((await read(app, "/api/webhook-calls", { copy: 1 })).headers.get("x-cache"), "HIT-MEMORY");
    const res = await call(app, "POST", "/api/cache/warm", { token: app.vars.ADMIN_TOKEN });
    assert.deepEqual(res.json.data.warmed, ["ada"]);
  });

  test("warm refuses bad input and non-admins", async () => {
    const app = await start();
    const body = JSON.stringify({ userIds: ["a:b"] });
    const json = { "content-type": "application/json" };
    assert.equal((await call(app, "POST", "/api/cache/warm", { token: app.vars.ADMIN_TOKEN, headers: json, body })).status, 400);
    assert.equal((await call(app, "POST", "/api/cache/warm", { token: app.vars.ADMIN_TOKEN, headers: { "content-type": "text/plain" }, body })).status, 415);
    assert.equal((await call(app, "POST", "/api/cache/warm", { headers: json, body: "{}" })).status, 401);
    assert.equal((await call(app, "POST", "/api/cache/warm", { token: app.token("ada"), headers: json, body: "{}" })).status, 403);
    assert.equal((await call(app, "GET", "/api/cache/warm", { token: app.vars.ADMIN_TOKEN })).status, 405);
  });
});

describe("stats and purge", () => {
  test("stats are the caller's own with a JWT and the isolate's with the admin token", async () => {
    const app = await start();
    await read(app, "/api/webhook-calls");
    await read(app, "/api/webhook-calls");
    await read(app, "/api/webhook-calls", { user: "bob" });
    const mine = (await call(app, "GET", "/api/cache/stats", { token: app.token("ada") })).json;
    assert.equal(mine.meta.scope, "user");
    assert.deepEqual([mine.data.counters.misses, mine.data.counters.hitsMemory, mine.data.hitRate], [1, 1, 0.5]);
    assert.ok(mine.data.counters.d1RowsAvoided > 0);
    const all = await adminStats(app);
    assert.equal(all.counters.misses, 2);
    assert.equal(all.memory.entries, 2);
    assert.equal((await call(app, "GET", "/api/cache/stats")).status, 401);
    assert.equal((await call(app, "POST", "/api/cache/stats", { token: app.vars.ADMIN_TOKEN })).status, 405);
  });

  test("purge retires a user's entries or all of them, and only for admins", async () => {
    const app = await start();
    const admin = { token: app.vars.ADMIN_TOKEN, headers: { "content-type": "application/json" } };
    await read(app, "/api/webhook-calls");
    const res = await call(app, "POST", "/api/cache/purge", { ...admin, body: '{"userId":"ada"}' });
    assert.deepEqual(res.json.data, { purged: "user", userId: "ada" });
    assert.equal((await read(app, "/api/webhook-calls")).headers.get("x-cache"), "MISS");
    assert.equal((await call(app, "POST", "/api/cache/purge", { ...admin, body: '{"all":true}' })).json.data.purged, "all");
    assert.equal((await read(app, "/api/webhook-calls")).headers.get("x-cache"), "MISS");
    assert.equal((await call(app, "POST", "/api/cache/purge", { ...admin, body: "{}" })).status, 400);
    assert.equal((await call(app, "POST", "/api/cache/purge", { ...admin, headers: { "content-type": "text/plain" }, body: "x" })).status, 415);
    assert.equal((await call(app, "POST", "/api/cache/purge", { token: app.token("ada"), headers: admin.headers, body: "{}" })).status, 403);
    assert.equal((await call(app, "POST", "/api/cache/purge", { headers: admin.headers, body: "{}" })).status, 401);
    assert.equal((await call(app, "DELETE", "/api/cache/purge", admin)).status, 405);
  });
});

describe("GET /api/cache/keys", () => {
  test("lists a user's memory keys with their state, age, TTL and KV presence", async () => {
    const app = await start();
    await read(app, "/api/webhook-calls?limit=5");
    await read(app, "/api/webhook-calls/CAnope");
    await read(app, "/api/webhook-calls", { user: "bob" });
    await sleep(100);
    const res = await call(app, "GET", "/api/cache/keys?userId=ada", { token: app.vars.ADMIN_TOKEN });
    const keys = res.json.data.keys;
    assert.equal(keys.length, 2);
    assert.ok(keys.every((k) => k.key.includes(":user:ada:") && k.tier === "memory" && k.state === "fresh" && k.inKv));
    assert.equal(keys.filter((k) => k.notFound).length, 1);
    assert.ok(keys.every((k) => k.ttlRemainingSeconds > 0 && k.ageSeconds >= 0));
    assert.equal((await call(app, "GET", "/api/cache/keys", { token: app.vars.ADMIN_TOKEN })).status, 400);
    assert.equal((await call(app, "GET", "/api/cache/keys?userId=ada")).status, 401);
    assert.equal((await call(app, "GET", "/api/cache/keys?userId=ada", { token: app.token("ada") })).status, 403);
    assert.equal((await call(app, "POST", "/api/cache/keys?userId=ada", { token: app.vars.ADMIN_TOKEN })).status, 405);
  });
});

describe("settings", () => {
  test("TTLs and memory bounds take effect from vars; a bad value is reported once and its default used", async () => {
    const logs = [];
    const app = await start({
      vars: { CACHE_TTL_RECORDINGS: "2", CACHE_MEMORY_MAX_ENTRIES: "3", CACHE_TTL_SUMMARY: "soon", CACHE_TTL_INTENT: "-1" },
      onLog: (l) => logs.push(l),
    });
    for (const path of ["/api/webhook-calls/CAc0", "/api/webhook-calls/CAc1", "/api/webhook-calls/CAc2", "/api/webhook-calls/CAc3", "/api/intent-analysis"]) {
      assert.equal((await read(app, path)).status, 200, path);
    }
    const stats = await adminStats(app);
    assert.equal(stats.memory.maxEntries, 3);
    assert.ok(stats.memory.entries <= 3, `${stats.memory.entries} entries`);
    const keys = (await call(app, "GET", "/api/cache/keys?userId=ada", { token: app.vars.ADMIN_TOKEN })).json.data.keys;
    const summary = keys.find((k) => k.key.includes(":summary:"));
    assert.ok(summary && summary.ttlRemainingSeconds > 100, "the summary kept its default TTL (120 s)");
    for (const k of keys.filter((k) => k.key.includes(":call:"))) assert.ok(k.ttlRemainingSeconds <= 2.3, `${k.key}: ${k.ttlRemainingSeconds}`);
    await sleep(200);
    const warnings = logs.filter((l) => l.includes("config:"));
    assert.equal(warnings.filter((l) => l.includes("CACHE_TTL_SUMMARY")).length, 1, warnings.join("\n"));
    assert.equal(warnings.filter((l) => l.includes("CACHE_TTL_INTENT")).length, 1);
  });
});

describe("switches", () => {
  test("CACHE_ENABLED=false bypasses every tier", async () => {
    const app = await start({ vars: { CACHE_ENABLED: "false" } });
    for (let i = 0; i < 2; i++) assert.deepEqual(tier(await read(app, "/api/webhook-calls")), ["BYPASS", "d1", false]);
  });

  test("CACHE_MEMORY_ENABLED=false serves repeats from KV", async () => {
    const app = await start({ vars: { CACHE_MEMORY_ENABLED: "false" } });
    await read(app, "/api/webhook-calls");
    await sleep(50);
    assert.deepEqual(tier(await read(app, "/api/webhook-calls")), ["HIT-KV", "kv", true]);
  });

  test("CACHE_KV_ENABLED=false serves repeats from memory and writes no entries to KV", async () => {
    const app = await start({ vars: { CACHE_KV_ENABLED: "false" } });
    await read(app, "/api/webhook-calls");
    await sleep(50);
    assert.deepEqual(tier(await read(app, "/api/webhook-calls")), ["HIT-MEMORY", "memory", true]);
    const keys = (await app.kv.list({ prefix: "v1:" })).keys;
    assert.deepEqual(keys, []);
  });
});

describe("unconfigured", () => {
  test("stats, warm and purge answer 503 not_configured without their secrets", async () => {
    const app = await start({ vars: { JWT_SECRET: undefined, ADMIN_TOKEN: undefined } });
    assert.equal((await call(app, "GET", "/api/cache/stats", { token: "x" })).status, 503);
    assert.equal((await call(app, "POST", "/api/cache/warm", { token: "x" })).status, 503);
    assert.equal((await call(app, "POST", "/api/cache/purge", { token: "x" })).status, 503);
    assert.equal((await call(app, "GET", "/api/cache/keys?userId=ada", { token: "x" })).status, 503);
  });
});

describe("openapi.yaml", () => {
  test("every documented /api/cache response was produced and matched its schema", () => {
    const missing = documentedResponses("/api/cache/").filter((r) => !seen.has(r));
    assert.deepEqual(missing, [], "documented responses never exercised");
  });
});
