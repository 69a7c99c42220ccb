// The read and admin routes' contract, end to end: the built worker in workerd with real local
// D1 and KV. Every response is checked against openapi.yaml, and the last test insists that
// every response the spec documents was produced at least once.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { insertCall, spawnApp } from "./support/app.mjs";
import { assertMatchesSpec, documentedResponses, seen } from "./support/openapi.mjs";
import { signJwt } from "../scripts/runtime.mjs";

const T0 = Date.parse("2026-11-01T00:00:00Z");
let app;
let unconfigured;

/** Calls the app and checks the response against openapi.yaml. */
async function call(target, method, path, opts) {
  const res = await target.request(method, path, opts);
  if (method !== "OPTIONS") assertMatchesSpec(method === "HEAD" ? "GET" : method, path, res);
  return res;
}
const get = (path, opts) => call(app, "GET", path, opts);

before(async () => {
  app = await spawnApp();
  // ada: 25 calls, several sharing a start time so paging must break ties by id.
  for (let i = 0; i < 25; i++) {
    await insertCall(app, {
      user: "ada",
      id: `CAada${String(i).padStart(3, "0")}`,
      startedAt: T0 + Math.floor(i / 3) * 60_000,
      status: i % 5 === 4 ? "no-answer" : "completed",
      analysis: i % 2 === 0 ? { intent: i % 4 === 0 ? "billing" : "support", confidence: 0.8, summary: "s" } : undefined,
      enrichment: i % 3 === 0 ? { callerName: "Grace" } : undefined,
      recording: i % 5 !== 4,
    });
  }
  await insertCall(app, { user: "bob", id: "CAbob001", startedAt: T0, analysis: { intent: "sales", confidence: 0.5 } });
  unconfigured = await spawnApp({ vars: { JWT_SECRET: undefined, ADMIN_TOKEN: undefined } });
});

after(async () => {
  await app?.close();
  await unconfigured?.close();
});

describe("GET /api/health", () => {
  test("answers ok and the version without auth", async () => {
    const res = await get("/api/health");
    assert.equal(res.status, 200);
    assert.equal(res.json.ok, true);
    assert.match(res.json.version, /^\d+\.\d+\.\d+/);
  });
});

describe("authentication on read routes", () => {
  test("a missing token is 401 with a Bearer challenge", async () => {
    const res = await get("/api/webhook-calls");
    assert.equal(res.status, 401);
    assert.match(res.headers.get("www-authenticate"), /^Bearer/);
    assert.equal(res.json.error.code, "unauthorized");
  });

  test("every read route is 401 without a token", async () => {
    for (const path of ["/api/webhook-calls/CAada000", "/api/webhook-calls/CAada000/enhanced", "/api/intent-analysis", "/api/intent-analysis/CAada000"]) {
      assert.equal((await get(path)).status, 401, path);
    }
  });

  test("a token signed with another key is 401", async () => {
    const forged = signJwt("not-the-secret", { sub: "ada", exp: Math.floor(Date.now() / 1000) + 60 });
    assert.equal((await get("/api/webhook-calls", { token: forged })).status, 401);
  });

  test("alg none, an expired token, a future nbf and a missing exp are 401", async () => {
    const now = Math.floor(Date.now() / 1000);
    const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const none = `${b64({ alg: "none" })}.${b64({ sub: "ada", exp: now + 60 })}.`;
    const tokens = [
      none,
      app.token("ada", { exp: now - 3600 }),
      app.token("ada", { nbf: now + 3600 }),
      signJwt(app.vars.JWT_SECRET, { sub: "ada" }),
    ];
    for (const token of tokens) {
      const res = await get("/api/webhook-calls", { token });
      assert.equal(res.status, 401, token);
    }
  });
});

describe("GET /api/webhook-calls", () => {
  test("lists the caller's calls newest first with page meta and read headers", async () => {
    const res = await get("/api/webhook-calls?limit=5", { token: app.token("ada") });
    assert.equal(res.status, 200);
    assert.deepEqual(res.json.data.map((c) => c.id), ["CAada024", "CAada023", "CAada022", "CAada021", "CAada020"]);
    assert.equal(res.json.meta.count, 5);
    assert.equal(res.json.meta.limit, 5);
    assert.equal(res.json.meta.offset, 0);
    assert.equal(typeof res.json.meta.nextCursor, "string");
    assert.equal(res.json.meta.source, "d1");
    assert.equal(res.json.meta.cacheHit, false);
    assert.equal(res.headers.get("x-cache"), "MISS");
    assert.equal(res.headers.get("cache-control"), "private, no-cache");
    assert.ok(res.headers.get("etag"));
  });

  test("the default page is 50 calls", async () => {
    const res = await get("/api/webhook-calls", { token: app.token("ada") });
    assert.equal(res.json.meta.limit, 50);
    assert.equal(res.json.data.length, 25);
    assert.equal(res.json.meta.nextCursor, null);
  });

  test("cursor paging walks every call exactly once in order", async () => {
    const token = app.token("ada");
    const ids = [];
    let path = "/api/webhook-calls?limit=4";
    for (let guard = 0; guard < 20; guard++) {
      const res = await get(path, { token });
      assert.equal(res.status, 200);
      ids.push(...res.json.data.map((c) => c.id));
      if (!res.json.meta.nextCursor) break;
      path = `/api/webhook-calls?limit=4&cursor=${encodeURIComponent(res.json.meta.nextCursor)}`;
    }
    assert.equal(ids.length, 25);
    assert.equal(new Set(ids).size, 25);
    const expected = Array.from({ length: 25 }, (_, i) => `CAada${String(24 - i).padStart(3, "0")}`);
    assert.deepEqual(ids, expected);
  });

  test("offset paging skips the given number of calls", async () => {
    const res = await get("/api/webhook-calls?limit=2&offset=23", { token: app.token("ada") });
    assert.deepEqual(res.json.data.map((c) => c.id), ["CAada001", "CAada000"]);
    assert.equal(res.json.meta.nextCursor, null);
  });

  test("bad limit, offset and cursor are 400 naming the field", async () => {
    const token = app.token("ada");
    const cases = [
      ["limit=0", "limit"], ["limit=501", "limit"], ["limit=ten", "limit"],
      ["offset=-1", "offset"], ["offset=1.5", "offset"],
      ["cursor=bm9wZQ", "cursor"], ["offset=0&cursor=abc", "cursor"], ["limit=1&limit=2", "limit"],
    ];
    for (const [query, field] of cases) {
      const res = await get(`/api/webhook-calls?${query}`, { token });
      assert.equal(res.status, 400, query);
      assert.equal(res.json.error.code, "invalid_parameter", query);
      assert.match(res.json.error.message, new RegExp(field), query);
    }
  });

  test("a matching If-None-Match is 304 with no body", async () => {
    const token = app.token("ada");
    const first = await get("/api/webhook-calls?limit=3", { token });
    const again = await get("/api/webhook-calls?limit=3", { token, headers: { "if-none-match": first.headers.get("etag") } });
    assert.equal(again.status, 304);
    assert.equal(again.text, "");
    const stale = await get("/api/webhook-calls?limit=3", { token, headers: { "if-none-match": '"other"' } });
    assert.equal(stale.status, 200);
  });

  test("user B never sees user A's calls", async () => {
    const res = await get("/api/webhook-calls?limit=500", { token: app.token("bob") });
    assert.deepEqual(res.json.data.map((c) => c.id), ["CAbob001"]);
  });

  test("other methods are 405 with Allow", async () => {
    const res = await call(app, "POST", "/api/webhook-calls", { token: app.token("ada") });
    assert.equal(res.status, 405);
    assert.match(res.headers.get("allow"), /GET/);
  });

  test("HEAD gets the headers without a body", async () => {
    const res = await app.request("HEAD", "/api/webhook-calls", { token: app.token("ada") });
    assert.equal(res.status, 200);
    assert.equal(res.text, "");
    assert.ok(res.headers.get("etag"));
  });
});

describe("GET /api/webhook-calls/{callId}", () => {
  test("returns the call with its recording, analysis and enrichment", async () => {
    const res = await get("/api/webhook-calls/CAada000", { token: app.token("ada") });
    assert.equal(res.status, 200);
    assert.equal(res.json.data.id, "CAada000");
    assert.equal(res.json.data.analysis.intent, "billing");
    assert.equal(res.json.data.enrichment.callerName, "Grace");
    assert.equal(res.json.data.recording.id, "RECAada000");
    assert.equal(res.json.data.startedAt, "2026-11-01T00:00:00Z");
  });

  test("is 404 for another user's call, an unknown call and an impossible id", async () => {
    for (const [user, id] of [["bob", "CAada000"], ["ada", "CAnope"], ["ada", "CA%2F..%2Fada"], ["ada", "%E2%98%83"]]) {
      const res = await get(`/api/webhook-calls/${id}`, { token: app.token(user) });
      assert.equal(res.status, 404, `${user} ${id}`);
      assert.equal(res.json.error.code, "not_found");
    }
  });

  test("revalidates with 304 and refuses other methods", async () => {
    const token = app.token("ada");
    const first = await get("/api/webhook-calls/CAada001", { token });
    const again = await get("/api/webhook-calls/CAada001", { token, headers: { "if-none-match": first.headers.get("etag") } });
    assert.equal(again.status, 304);
    const patch = await call(app, "PATCH", "/api/webhook-calls/CAada001", { token });
    assert.equal(patch.status, 405);
    assert.match(patch.headers.get("allow"), /DELETE/);
  });
});

describe("DELETE /api/webhook-calls/{callId}", () => {
  test("the owner deletes a call: 204, then it is gone from every route; others get 404", async () => {
    const ada = app.token("ada");
    await insertCall(app, { user: "ada", id: "CAdel1", startedAt: T0 + 10 * 60_000, analysis: { intent: "support", confidence: 0.7 } });
    const before = (await get("/api/intent-analysis", { token: ada })).json.data.stats;
    await get("/api/webhook-calls/CAdel1", { token: ada }); // cached now
    assert.equal((await call(app, "DELETE", "/api/webhook-calls/CAdel1", { token: app.token("bob") })).status, 404);
    assert.equal((await call(app, "DELETE", "/api/webhook-calls/CAdel1")).status, 401);
    const res = await call(app, "DELETE", "/api/webhook-calls/CAdel1", { token: ada });
    assert.deepEqual([res.status, res.text], [204, ""]);
    assert.equal((await get("/api/webhook-calls/CAdel1", { token: ada })).status, 404);
    assert.equal((await get("/api/intent-analysis/CAdel1", { token: ada })).status, 404);
    const list = await get("/api/webhook-calls?limit=100", { token: ada });
    assert.ok(!list.json.data.some((c) => c.id === "CAdel1"));
    const after = (await get("/api/intent-analysis", { token: ada })).json.data.stats;
    assert.equal(after.totalCalls, before.totalCalls - 1);
    assert.equal(after.intentDistribution.support, before.intentDistribution.support - 1);
    assert.equal((await call(app, "DELETE", "/api/webhook-calls/CAdel1", { token: ada })).status, 404);
  });
});

describe("GET /api/webhook-calls/{callId}/enhanced", () => {
  test("returns the enrichment, or 404 before one arrives or for another user", async () => {
    const token = app.token("ada");
    const res = await get("/api/webhook-calls/CAada003/enhanced", { token });
    assert.equal(res.status, 200);
    assert.equal(res.json.data.callerName, "Grace");
    assert.equal((await get("/api/webhook-calls/CAada001/enhanced", { token })).status, 404);
    assert.equal((await get("/api/webhook-calls/CAada003/enhanced", { token: app.token("bob") })).status, 404);
    const again = await get("/api/webhook-calls/CAada003/enhanced", { token, headers: { "if-none-match": res.headers.get("etag") } });
    assert.equal(again.status, 304);
    assert.equal((await call(app, "PUT", "/api/webhook-calls/CAada003/enhanced", { token })).status, 405);
  });
});

describe("GET /api/intent-analysis", () => {
  test("returns analyzed calls newest first and stats over all the user's calls", async () => {
    const res = await get("/api/intent-analysis?limit=3", { token: app.token("ada") });
    assert.equal(res.status, 200);
    const { calls, stats } = res.json.data;
    assert.deepEqual(calls.map((c) => c.id), ["CAada024", "CAada022", "CAada020"]);
    assert.ok(calls.every((c) => c.analysis.status === "completed"));
    assert.equal(stats.totalCalls, 25);
    assert.equal(stats.answeredCalls, 20);
    assert.equal(stats.avgConfidence, 0.8);
    assert.deepEqual(stats.intentDistribution, { billing: 7, support: 6 });
    assert.equal(res.json.meta.limit, 3);
  });

  test("counts only the caller's own calls", async () => {
    const res = await get("/api/intent-analysis", { token: app.token("bob") });
    assert.equal(res.json.data.stats.totalCalls, 1);
    assert.deepEqual(res.json.data.stats.intentDistribution, { sales: 1 });
    assert.deepEqual(res.json.data.calls.map((c) => c.id), ["CAbob001"]);
  });

  test("a user with no calls gets zeroes", async () => {
    const res = await get("/api/intent-analysis", { token: app.token("newcomer") });
    assert.deepEqual(res.json.data, { calls: [], stats: { totalCalls: 0, answeredCalls: 0, avgConfidence: 0, intentDistribution: {} } });
  });

  test("a bad limit is 400, a known ETag 304, another method 405", async () => {
    const token = app.token("ada");
    const bad = await get("/api/intent-analysis?limit=0", { token });
    assert.equal(bad.status, 400);
    assert.match(bad.json.error.message, /limit/);
    const first = await get("/api/intent-analysis", { token });
    assert.equal((await get("/api/intent-analysis", { token, headers: { "if-none-match": first.headers.get("etag") } })).status, 304);
    assert.equal((await call(app, "DELETE", "/api/intent-analysis", { token })).status, 405);
  });
});

describe("GET /api/intent-analysis/{callId}", () => {
  test("returns the analysis, 404 when absent or another user's", async () => {
    const token = app.token("ada");
    const res = await get("/api/intent-analysis/CAada002", { token });
    assert.equal(res.status, 200);
    assert.equal(res.json.data.intent, "support");
    assert.equal(res.json.data.status, "completed");
    assert.equal((await get("/api/intent-analysis/CAada001", { token })).status, 404);
    assert.equal((await get("/api/intent-analysis/CAada002", { token: app.token("bob") })).status, 404);
    assert.equal((await get("/api/intent-analysis/CAada002", { token, headers: { "if-none-match": res.headers.get("etag") } })).status, 304);
    assert.equal((await call(app, "POST", "/api/intent-analysis/CAada002", { token })).status, 405);
  });
});

describe("CORS", () => {
  test("an allowed origin gets CORS headers on reads and a 204 preflight", async () => {
    const origin = "https://dash.example";
    const res = await get("/api/webhook-calls?limit=1", { token: app.token("ada"), headers: { origin } });
    assert.equal(res.headers.get("access-control-allow-origin"), origin);
    assert.match(res.headers.get("access-control-expose-headers"), /ETag/);
    const pre = await app.request("OPTIONS", "/api/webhook-calls", {
      headers: { origin, "access-control-request-method": "GET", "access-control-request-headers": "authorization, if-none-match" },
    });
    assert.equal(pre.status, 204);
    assert.match(pre.headers.get("access-control-allow-methods"), /GET/);
    assert.match(pre.headers.get("access-control-allow-headers"), /authorization/i);
  });

  // The entry keeps each distinct set of response headers as a `Headers` and reuses it: every
  // response must still carry exactly its own, whatever was sent before it.
  test("each response carries its own headers, whichever responses came before it", async () => {
    const origin = "https://dash.example";
    const page = (user, headers = {}) => get("/api/webhook-calls?limit=2", { token: app.token(user), headers });
    const first = await page("ada", { origin });
    assert.equal(first.headers.get("access-control-allow-origin"), origin);
    const plain = await page("ada");
    assert.equal(plain.headers.get("x-cache"), "HIT-MEMORY");
    assert.equal(plain.headers.get("access-control-allow-origin"), null, "no CORS header left over");
    const again = await page("ada", { origin });
    assert.equal(again.headers.get("access-control-allow-origin"), origin);
    assert.equal(again.headers.get("etag"), plain.headers.get("etag"));
    const bob = await page("bob", { origin });
    assert.notEqual(bob.headers.get("etag"), plain.headers.get("etag"), "bob's page has bob's ETag");
    const unchanged = await page("ada", { "if-none-match": plain.headers.get("etag") });
    assert.equal(unchanged.status, 304);
    assert.equal(unchanged.headers.get("content-type"), null);
    const whole = await page("ada");
    assert.equal(whole.status, 200);
    assert.match(whole.headers.get("content-type"), /^application\/json/);
    assert.equal(whole.headers.get("etag"), plain.headers.get("etag"));
  });

  test("another origin gets no CORS headers", async () => {
    const res = await get("/api/webhook-calls?limit=1", { token: app.token("ada"), headers: { origin: "https://evil.example" } });
    assert.equal(res.headers.get("access-control-allow-origin"), null);
  });
});

describe("/api/admin/phone-numbers/{e164}", () => {
  const admin = () => ({ token: app.vars.ADMIN_TOKEN, headers: { "content-type": "application/json" } });

  test("routes a number (201), re-routes it (200) and deletes it (204, then 404)", async () => {
    let res = await call(app, "PUT", "/api/admin/phone-numbers/%2B14155550199", { ...admin(), body: '{"userId":"ada"}' });
    assert.equal(res.status, 201);
    assert.deepEqual([res.json.data.phoneNumber, res.json.data.userId], ["+14155550199", "ada"]);
    const row = await app.db.prepare("SELECT user_id FROM phone_numbers WHERE e164 = ?").bind("+14155550199").first();
    assert.equal(row.user_id, "ada");
    res = await call(app, "PUT", "/api/admin/phone-numbers/+14155550199", { ...admin(), body: '{"userId":"bob"}' });
    assert.equal(res.status, 200);
    assert.equal((await call(app, "DELETE", "/api/admin/phone-numbers/+14155550199", admin())).status, 204);
    assert.equal((await call(app, "DELETE", "/api/admin/phone-numbers/+14155550199", admin())).status, 404);
  });

  test("refuses a missing token (401) and a dashboard token (403)", async () => {
    const body = '{"userId":"ada"}';
    const headers = { "content-type": "application/json" };
    assert.equal((await call(app, "PUT", "/api/admin/phone-numbers/+14155550198", { headers, body })).status, 401);
    assert.equal((await call(app, "PUT", "/api/admin/phone-numbers/+14155550198", { token: app.token("ada"), headers, body })).status, 403);
    assert.equal((await call(app, "DELETE", "/api/admin/phone-numbers/+14155550198", { token: "guess" })).status, 401);
    assert.equal((await call(app, "DELETE", "/api/admin/phone-numbers/+14155550198", { token: app.token("ada") })).status, 403);
  });

  test("refuses bad numbers, bad JSON, bad user ids, other media types and big bodies", async () => {
    const put = (number, body, headers = { "content-type": "application/json" }) =>
      call(app, "PUT", `/api/admin/phone-numbers/${number}`, { token: app.vars.ADMIN_TOKEN, headers, body });
    let res = await put("14155550198", '{"userId":"ada"}');
    assert.equal(res.status, 400);
    assert.match(res.json.error.message, /e164/);
    res = await put("+14155550198", "{nope");
    assert.deepEqual([res.status, res.json.error.code], [400, "invalid_json"]);
    res = await put("+14155550198", '{"userId":"a/b"}');
    assert.match(res.json.error.message, /userId/);
    res = await put("+14155550198", '{"userId":"ada"}', { "content-type": "text/plain" });
    assert.equal(res.status, 415);
    res = await put("+14155550198", JSON.stringify({ userId: "ada", pad: "x".repeat(20_000) }));
    assert.equal(res.status, 413);
    res = await call(app, "DELETE", "/api/admin/phone-numbers/not-a-number", { token: app.vars.ADMIN_TOKEN });
    assert.equal(res.status, 400);
  });
});

describe("X-Min-Version", () => {
  test("a token that was never issued is 400 naming it on every read route; an empty one asks for nothing", async () => {
    const token = app.token("ada");
    for (const path of ["/api/webhook-calls", "/api/webhook-calls/CAada000", "/api/webhook-calls/CAada000/enhanced", "/api/intent-analysis", "/api/intent-analysis/CAada000"]) {
      for (const bad of ["-1", "v1", "1.5", "99999999999999999999999"]) {
        const res = await call(app, "GET", path, { token, headers: { "x-min-version": bad } });
        assert.deepEqual([res.status, res.json.error.code], [400, "invalid_parameter"], `${path} ${bad}`);
        assert.match(res.json.error.message, /X-Min-Version/);
      }
      const empty = await call(app, "GET", path, { token, headers: { "x-min-version": "" } });
      assert.ok([200, 404].includes(empty.status), `${path}: ${empty.status}`);
    }
  });
});

describe("/api/admin/parked", () => {
  test("lists the queue and the dead letters for the operator, requeues them, and refuses everyone else", async () => {
    const admin = { token: app.vars.ADMIN_TOKEN };
    const view = await call(app, "GET", "/api/admin/parked", admin);
    assert.equal(view.status, 200);
    assert.deepEqual([view.json.data.queued, view.json.data.deadLetters, view.json.data.maxAttempts], [0, [], 5]);
    const requeued = await call(app, "POST", "/api/admin/parked/requeue", admin);
    assert.deepEqual([requeued.status, requeued.json.data.requeued], [200, 0]);
    assert.equal((await call(app, "GET", "/api/admin/parked")).status, 401);
    assert.equal((await call(app, "POST", "/api/admin/parked/requeue", { token: app.token("ada") })).status, 403);
    assert.equal((await call(app, "GET", "/api/admin/parked", { token: app.token("ada") })).status, 403);
    assert.equal((await call(app, "PUT", "/api/admin/parked", admin)).status, 405);
    assert.equal((await call(app, "GET", "/api/admin/parked/requeue", admin)).status, 405);
    assert.equal((await call(app, "POST", "/api/admin/parked/requeue")).status, 401);
    assert.equal((await call(unconfigured, "GET", "/api/admin/parked", { token: "x" })).status, 503);
    assert.equal((await call(unconfigured, "POST", "/api/admin/parked/requeue", { token: "x" })).status, 503);
  });
});

describe("unconfigured secrets", () => {
  test("routes needing JWT_SECRET or ADMIN_TOKEN answer 503 not_configured", async () => {
    const token = app.token("ada");
    for (const path of ["/api/webhook-calls", "/api/webhook-calls/CAada000", "/api/webhook-calls/CAada000/enhanced", "/api/intent-analysis", "/api/intent-analysis/CAada000"]) {
      const res = await call(unconfigured, "GET", path, { token });
      assert.equal(res.status, 503, path);
      assert.equal(res.json.error.code, "not_configured", path);
    }
    const put = await call(unconfigured, "PUT", "/api/admin/phone-numbers/+14155550198", { token: "x", headers: { "content-type": "application/json" }, body: "{}" });
    assert.equal(put.json.error.code, "not_configured");
    const del = await call(unconfigured, "DELETE", "/api/admin/phone-numbers/+14155550198", { token: "x" });
    assert.equal(del.status, 503);
    assert.equal((await call(unconfigured, "DELETE", "/api/webhook-calls/CAada000", { token })).status, 503);
  });
});

describe("unknown routes", () => {
  test("are 404 in the envelope", async () => {
    const res = await app.get("/api/nothing-here");
    assert.equal(res.status, 404);
    assert.deepEqual(Object.keys(res.json), ["success", "error"]);
  });
});

describe("filters and daily series", () => {
  // flo's calls, around three UTC days (2026-10-10 to 2026-10-12), one on each side of them.
  const D = Date.parse("2026-10-10T00:00:00Z");
  const H = 3_600_000;
  const list = (query) => get(`/api/webhook-calls?${query}`, { token: app.token("flo") });
  const ids = (res) => res.json.data.map((c) => c.id);

  before(async () => {
    const calls = [
      ["CAflo01", D + H, "completed", { intent: "billing", confidence: 0.9 }],
      ["CAflo02", D + 2 * H, "no-answer"],
      ["CAflo03", D + 24 * H - 1000, "completed", { intent: "support", confidence: 0.5 }],
      ["CAflo04", D + 58 * H, "completed", { intent: "billing", confidence: 0.7 }],
      ["CAflo05", D + 72 * H, "failed"],
      ["CAflo06", D - 1, "completed"],
    ];
    for (const [id, startedAt, status, analysis] of calls) await insertCall(app, { user: "flo", id, startedAt, status, analysis });
    await app.exec("UPDATE calls SET direction = 'outbound' WHERE id = 'CAflo02'");
  });

  test("status, direction, intent, from and to each select their calls, newest first", async () => {
    const cases = [
      ["status=no-answer,failed", ["CAflo05", "CAflo02"]],
      ["status=completed&from=2026-10-10&to=2026-10-13", ["CAflo04", "CAflo03", "CAflo01"]],
      ["direction=outbound", ["CAflo02"]],
      ["intent=billing", ["CAflo04", "CAflo01"]],
      ["from=2026-10-13T00:00:00Z", ["CAflo05"]],
      ["to=2026-10-10", ["CAflo06"]],
      ["intent=billing&status=failed", []],
    ];
    for (const [query, want] of cases) {
      const res = await list(query);
      assert.equal(res.status, 200, query);
      assert.deepEqual(ids(res), want, query);
      assert.equal(res.json.meta.count, want.length, query);
    }
  });

  test("meta.filters echoes the canonical filter, and the same filter written two ways is one cached page", async () => {
    const first = await list("status=failed,no-answer,failed&from=2026-10-10T02:00:00%2B02:00");
    assert.deepEqual(first.json.meta.filters, { status: ["no-answer", "failed"], from: "2026-10-10T00:00:00Z" });
    assert.equal(first.headers.get("x-cache"), "MISS");
    const again = await list("from=2026-10-10&status=no-answer,failed");
    assert.equal(again.headers.get("x-cache"), "HIT-MEMORY");
    assert.deepEqual(ids(again), ids(first));
    assert.equal((await list("limit=3")).json.meta.filters, undefined, "no filter, no echo");
  });

  test("a filtered page's cursor pages on with its filter and is refused with another", async () => {
    const first = await list("status=completed&limit=2");
    assert.deepEqual(ids(first), ["CAflo04", "CAflo03"]);
    const cursor = encodeURIComponent(first.json.meta.nextCursor);
    const next = await list(`status=completed&limit=2&cursor=${cursor}`);
    assert.deepEqual(ids(next), ["CAflo01", "CAflo06"]);
    assert.equal(next.json.meta.nextCursor, null);
    for (const other of [`status=failed&limit=2&cursor=${cursor}`, `limit=2&cursor=${cursor}`]) {
      const res = await list(other);
      assert.equal(res.status, 400, other);
      assert.equal(res.json.error.code, "invalid_parameter");
      assert.match(res.json.error.message, /cursor/);
    }
    const offset = await list("status=completed&limit=2&offset=2");
    assert.deepEqual(ids(offset), ["CAflo01", "CAflo06"]);
  });

  test("bad filters are 400 naming the parameter", async () => {
    const cases = [
      ["status=done", "status"], ["status=completed,", "status"], ["direction=sideways", "direction"],
      ["intent=", "intent"], ["from=yesterday", "from"], ["to=2026-02-30", "to"],
      ["from=2026-10-12&to=2026-10-10", "to"], ["from=2025-01-01&to=2026-01-03", "to"],
      ["status=failed&status=busy", "status"], ["intent=a&intent=b", "intent"],
    ];
    for (const [query, field] of cases) {
      const res = await list(query);
      assert.equal(res.status, 400, query);
      assert.equal(res.json.error.code, "invalid_parameter", query);
      assert.match(res.json.error.message, new RegExp(`\`${field}\``), query);
    }
  });

  test("a filtered page its index decides reads no more than limit + 1 calls from D1, and counts the rows it read", async () => {
    const stats = async () => (await call(app, "GET", "/api/cache/stats", { token: app.token("flo") })).json.data.counters;
    const before = await stats();
    const res = await list("status=completed&limit=2&offset=0&from=2026-10-01");
    assert.equal(res.headers.get("x-cache"), "MISS");
    const after = await stats();
    // Two calls, the one that says a next page exists, and the version's two one-row tables.
    // At least the two calls it returns (D1 reports what each statement read).
    const read = after.d1RowsRead - before.d1RowsRead;
    assert.ok(read >= 2 && read <= 2 + 1 + 2, `${read} rows`);
  });

  test("a ranged summary lists every day of the range, zeros included, and counts only calls started in it", async () => {
    const res = await get("/api/intent-analysis?from=2026-10-10&to=2026-10-13", { token: app.token("flo") });
    assert.equal(res.status, 200);
    const { calls, stats, daily } = res.json.data;
    assert.deepEqual(calls.map((c) => c.id), ["CAflo04", "CAflo03", "CAflo01"]);
    assert.deepEqual(stats, { totalCalls: 4, answeredCalls: 3, avgConfidence: 0.7, intentDistribution: { billing: 2, support: 1 } });
    assert.deepEqual(daily, [
      { date: "2026-10-10", totalCalls: 3, answeredCalls: 2, completedAnalyses: 2, avgConfidence: 0.7, intentDistribution: { billing: 1, support: 1 } },
      { date: "2026-10-11", totalCalls: 0, answeredCalls: 0, completedAnalyses: 0, avgConfidence: 0, intentDistribution: {} },
      { date: "2026-10-12", totalCalls: 1, answeredCalls: 1, completedAnalyses: 1, avgConfidence: 0.7, intentDistribution: { billing: 1 } },
    ]);
    assert.deepEqual(res.json.meta.filters, { from: "2026-10-10T00:00:00Z", to: "2026-10-13T00:00:00Z" });
    const all = await get("/api/intent-analysis", { token: app.token("flo") });
    assert.equal(all.json.data.daily, undefined, "no range, no daily series");
    assert.equal(all.json.data.stats.totalCalls, 6);
  });

  test("a ranged summary takes whole UTC days, both ends, at most 366 of them", async () => {
    const cases = [
      ["from=2026-10-10", "to"], ["to=2026-10-10", "from"], ["from=2026-10-10T10:00:00Z&to=2026-10-13", "from"],
      ["from=2026-10-13&to=2026-10-10", "to"], ["from=2025-01-01&to=2026-01-03", "to"], ["from=nope&to=2026-10-10", "from"],
    ];
    for (const [query, field] of cases) {
      const res = await get(`/api/intent-analysis?${query}`, { token: app.token("flo") });
      assert.equal(res.status, 400, query);
      assert.match(res.json.error.message, new RegExp(`\`${field}\``), query);
    }
  });

  test("a deletion leaves the daily series of the day it started in, in every tier", async () => {
    const path = "/api/intent-analysis?from=2026-10-12&to=2026-10-13";
    const before = await get(path, { token: app.token("flo") });
    assert.equal(before.json.data.daily[0].totalCalls, 1);
    const del = await call(app, "DELETE", "/api/webhook-calls/CAflo04", { token: app.token("flo") });
    assert.equal(del.status, 204);
    const after = await get(path, { token: app.token("flo") });
    assert.equal(after.json.data.daily[0].totalCalls, 0);
    assert.deepEqual(after.json.data.calls, []);
  });
});

describe("openapi.yaml", () => {
  test("every documented /api response was produced and matched its schema", () => {
    // /api/cache/* is exercised by cache.test.mjs, /api/live* by live.test.mjs.
    const missing = documentedResponses("/api/").filter((r) => !r.includes("/api/cache/") && !r.includes("/api/live") && !seen.has(r));
    assert.deepEqual(missing, [], "documented responses never exercised");
  });
});
