// The live feed end to end: tickets, the WebSocket served by each user's Durable Object in
// workerd, change messages after signed webhooks and deletions, the bounds, and a deployment
// without (or with a failing) LIVE binding.
import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { spawnApp } from "./support/app.mjs";
import { assertMatchesSpec, documentedResponses, seen } from "./support/openapi.mjs";
import { standardHeaders } from "./support/signers.mjs";

let app;
let seq = 0;

async function call(target, method, path, opts) {
  const res = await target.request(method, path, opts);
  assertMatchesSpec(method, path, res);
  return res;
}

function event(target, type, data) {
  const body = JSON.stringify({ type, timestamp: new Date().toISOString(), data });
  const headers = { "content-type": "application/json", ...standardHeaders(target.vars.WEBHOOK_SECRET, `msg_live_${++seq}`, body) };
  return call(target, "POST", "/webhooks/events", { headers, body });
}

const upsert = (target, user, id, extra = {}) =>
  event(target, "call.upserted", { userId: user, id, direction: "inbound", from: "+14155550100", to: "+14155550199", status: "ringing", startedAt: new Date().toISOString(), ...extra });

async function ticket(target, user) {
  const res = await call(target, "POST", "/api/live/tickets", { token: target.token(user) });
  assert.equal(res.status, 201, res.text);
  return res.json.data.ticket;
}

/** An upgrade by hand, to see the status of a refused one: { status } or { ok: true }. */
function rawUpgrade(target, path, { upgrade = true } = {}) {
  const url = new URL(target.url + path);
  return new Promise((resolve, reject) => {
    const headers = upgrade
      ? { connection: "Upgrade", upgrade: "websocket", "sec-websocket-version": "13", "sec-websocket-key": Buffer.from("0123456789abcdef").toString("base64") }
      : {};
    const req = httpRequest({ hostname: url.hostname, port: url.port, path: url.pathname + url.search, headers });
    req.on("upgrade", (_res, socket) => {
      socket.destroy();
      seen.add("GET /api/live 101");
      resolve({ status: 101 });
    });
    req.on("response", (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (text += c));
      res.on("end", () => {
        const out = { status: res.statusCode, headers: { get: (n) => res.headers[n.toLowerCase()] ?? null }, text, json: text ? JSON.parse(text) : undefined };
        assertMatchesSpec("GET", "/api/live", out);
        resolve(out);
      });
    });
    req.on("error", reject);
    req.end();
  });
}

/** A WebSocket client that queues what it receives. */
function connect(target, t) {
  const ws = new WebSocket(`${target.url.replace(/^http/, "ws")}/api/live?ticket=${encodeURIComponent(t)}`);
  const inbox = [];
  const waiters = [];
  const closed = new Promise((resolve) => ws.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason })));
  ws.addEventListener("message", (e) => {
    const msg = JSON.parse(e.data);
    const w = waiters.findIndex((x) => x.match(msg));
    if (w >= 0) waiters.splice(w, 1)[0].resolve(msg);
    else inbox.push(msg);
  });
  const opened = new Promise((resolve, reject) => {
    ws.addEventListener("open", resolve, { once: true });
    ws.addEventListener("error", reject, { once: true });
  });
  return {
    ws,
    opened,
    closed,
    inbox,
    /** The next message matching `match`, within `ms`. */
    next(match = () => true, ms = 3000) {
      const i = inbox.findIndex(match);
      if (i >= 0) return Promise.resolve(inbox.splice(i, 1)[0]);
      return new Promise((resolve, reject) => {
        const entry = { match, resolve };
        waiters.push(entry);
        setTimeout(() => {
          const at = waiters.indexOf(entry);
          if (at >= 0) {
            waiters.splice(at, 1);
            reject(new Error(`no matching message within ${ms} ms; got ${JSON.stringify(inbox)}`));
          }
        }, ms);
      });
    },
  };
}

before(async () => {
  app = await spawnApp();
});
after(async () => {
  await app?.close();
});

describe("POST /api/live/tickets", () => {
  test("issues a single-use ticket valid for 60 s to a dashboard token, and nothing to anyone else", async () => {
    const before = Date.now();
    const res = await call(app, "POST", "/api/live/tickets", { token: app.token("ada") });
    assert.equal(res.status, 201);
    assert.match(res.json.data.ticket, /^[0-9a-f]+\.[0-9a-f]{32}$/);
    const expires = Date.parse(res.json.data.expiresAt);
    assert.ok(expires >= before + 59_000 && expires <= Date.now() + 61_000, res.json.data.expiresAt);
    assert.equal(res.headers.get("cache-control"), "no-store");
    assert.ok(!res.json.data.ticket.includes("ada"), "the user id never sits in the URL");
    assert.equal((await call(app, "POST", "/api/live/tickets")).status, 401);
    assert.equal((await call(app, "POST", "/api/live/tickets", { token: app.vars.ADMIN_TOKEN })).status, 401);
    assert.equal((await call(app, "GET", "/api/live/tickets", { token: app.token("ada") })).status, 405);
  });

  test("a user holds at most 32 open tickets; past that 429 with Retry-After", async () => {
    for (let i = 0; i < 32; i++) await ticket(app, "flood");
    const res = await call(app, "POST", "/api/live/tickets", { token: app.token("flood") });
    assert.deepEqual([res.status, res.json.error.code], [429, "rate_limited"]);
    assert.ok(res.headers.get("retry-after"));
  });
});

describe("GET /api/live", () => {
  test("says hello with the user and version, then tells of a webhook's change within a second", async () => {
    const feed = connect(app, await ticket(app, "ada"));
    await feed.opened;
    const hello = await feed.next((m) => m.type === "hello");
    assert.equal(hello.userId, "ada");
    assert.match(hello.version, /^\d+$/);
    const sent = Date.now();
    assert.equal((await upsert(app, "ada", "CAlive1")).status, 200);
    const changed = await feed.next((m) => m.type === "changed", 1000);
    assert.ok(Date.now() - sent < 1000, "within a second of the webhook");
    assert.deepEqual(changed.callIds, ["CAlive1"]);
    assert.ok(BigInt(changed.version) > BigInt(hello.version), "versions move forward");
    // The message carries no call data; the client reads it through the cache at that version.
    assert.equal(Object.keys(changed).sort().join(), "callIds,type,version");
    const page = await call(app, "GET", "/api/webhook-calls", { token: app.token("ada"), headers: { "x-min-version": changed.version } });
    assert.ok(page.json.data.some((c) => c.id === "CAlive1"));
    assert.ok(BigInt(page.json.meta.version) >= BigInt(changed.version));
    feed.ws.close();
  });

  test("a webhook asks a user's feed object only while the user may be listening", async () => {
    const mark = async () => (await app.exec("SELECT listening FROM live_listeners WHERE user_id = ?1", "lena")).results[0]?.listening;
    assert.equal((await upsert(app, "lena", "CAlisten1")).status, 200);
    assert.equal(await mark(), undefined, "never opened: no mark, and no request to the object");
    const feed = connect(app, await ticket(app, "lena"));
    await feed.opened;
    await feed.next((m) => m.type === "hello");
    assert.equal(await mark(), 1, "marked before the socket was accepted");
    assert.equal((await upsert(app, "lena", "CAlisten2")).status, 200);
    assert.deepEqual((await feed.next((m) => m.type === "changed", 1000)).callIds, ["CAlisten2"]);
    feed.ws.close();
    await feed.closed;
    // The next webhook finds no socket at the object, which clears the mark (after the 2xx).
    assert.equal((await upsert(app, "lena", "CAlisten3")).status, 200);
    for (let i = 0; i < 50 && (await mark()) !== 0; i++) await sleep(50);
    assert.equal(await mark(), 0, "cleared by the object that found no socket");
    // Opening again marks again, and the change is told.
    const again = connect(app, await ticket(app, "lena"));
    await again.opened;
    const hello = await again.next((m) => m.type === "hello");
    assert.equal((await upsert(app, "lena", "CAlisten4")).status, 200);
    const changed = await again.next((m) => m.type === "changed", 1000);
    assert.deepEqual(changed.callIds, ["CAlisten4"]);
    assert.ok(BigInt(changed.version) > BigInt(hello.version));
    again.ws.close();
  });

  test("a deletion is sent as deleted, and every socket of the user gets each message", async () => {
    assert.equal((await upsert(app, "ada", "CAlive2")).status, 200);
    const one = connect(app, await ticket(app, "ada"));
    const two = connect(app, await ticket(app, "ada"));
    await Promise.all([one.opened, two.opened]);
    const res = await call(app, "DELETE", "/api/webhook-calls/CAlive2", { token: app.token("ada") });
    assert.equal(res.status, 204);
    for (const feed of [one, two]) {
      const msg = await feed.next((m) => m.type === "deleted", 1000);
      assert.deepEqual(msg.callIds, ["CAlive2"]);
      feed.ws.close();
    }
  });

  test("a user's socket never receives another user's changes", async () => {
    const bob = connect(app, await ticket(app, "bob"));
    await bob.opened;
    await bob.next((m) => m.type === "hello");
    const ada = connect(app, await ticket(app, "ada"));
    await ada.opened;
    await upsert(app, "ada", "CAlive3");
    await ada.next((m) => m.type === "changed", 1000);
    await upsert(app, "bob", "CAlive4");
    const mine = await bob.next((m) => m.type === "changed", 1000);
    assert.deepEqual(mine.callIds, ["CAlive4"]);
    assert.deepEqual(bob.inbox, [], "nothing of Ada's reached Bob");
    bob.ws.close();
    ada.ws.close();
  });

  test("a ticket is spent once; used, forged and missing tickets are 401; another user's object refuses it", async () => {
    const t = await ticket(app, "ada");
    assert.equal((await rawUpgrade(app, `/api/live?ticket=${t}`)).status, 101);
    const again = await rawUpgrade(app, `/api/live?ticket=${t}`);
    assert.deepEqual([again.status, again.json.error.code], [401, "unauthorized"]);
    const [object] = (await ticket(app, "bob")).split(".");
    const [, adaSecret] = (await ticket(app, "ada")).split(".");
    assert.equal((await rawUpgrade(app, `/api/live?ticket=${object}.${adaSecret}`)).status, 401, "Ada's secret at Bob's object");
    for (const bad of ["", "?ticket=", "?ticket=nope", `?ticket=${"ab".repeat(32)}.${"0".repeat(32)}`]) {
      const res = await rawUpgrade(app, `/api/live${bad}`);
      assert.equal(res.status, 401, bad);
      assert.equal(res.json.error.code, "unauthorized");
    }
  });

  test("without an upgrade the answer is 426 and the ticket is not spent", async () => {
    const t = await ticket(app, "ada");
    const res = await call(app, "GET", `/api/live?ticket=${t}`);
    assert.deepEqual([res.status, res.json.error.code], [426, "upgrade_required"]);
    assert.equal((await rawUpgrade(app, `/api/live?ticket=${t}`)).status, 101);
    assert.equal((await call(app, "POST", "/api/live")).status, 405);
    const twice = await rawUpgrade(app, `/api/live?ticket=${t}&ticket=${t}`);
    assert.deepEqual([twice.status, twice.json.error.code], [400, "invalid_parameter"]);
    assert.match(twice.json.error.message, /ticket/);
  });

  test("a ping gets a pong; a malformed frame closes with 1008 and an oversized one with 1009", async () => {
    const feed = connect(app, await ticket(app, "ada"));
    await feed.opened;
    await feed.next((m) => m.type === "hello");
    feed.ws.send(JSON.stringify({ type: "ping" }));
    assert.deepEqual(await feed.next((m) => m.type === "pong"), { type: "pong" });
    feed.ws.send("not json");
    assert.equal((await feed.closed).code, 1008);
    const big = connect(app, await ticket(app, "ada"));
    await big.opened;
    big.ws.send(JSON.stringify({ type: "ping", pad: "x".repeat(4096) }));
    assert.equal((await big.closed).code, 1009);
  });

  test("a user holds at most 32 sockets: the next upgrade is 429 until one closes", async () => {
    const feeds = [];
    for (let i = 0; i < 32; i++) {
      const f = connect(app, await ticket(app, "many"));
      await f.opened;
      feeds.push(f);
    }
    const refused = await rawUpgrade(app, `/api/live?ticket=${await ticket(app, "many")}`);
    assert.deepEqual([refused.status, refused.json.error.code], [429, "rate_limited"]);
    feeds[0].ws.close();
    await feeds[0].closed;
    let status;
    for (let i = 0; i < 20 && status !== 101; i++) {
      await sleep(100);
      status = (await rawUpgrade(app, `/api/live?ticket=${await ticket(app, "many")}`)).status;
    }
    assert.equal(status, 101, "room again once a socket closed");
    for (const f of feeds) f.ws.close();
  });

  test("a reconnecting client's hello carries the current version", async () => {
    const res = await upsert(app, "cy", "CAlive5");
    assert.equal(res.status, 200);
    const page = await call(app, "GET", "/api/webhook-calls", { token: app.token("cy") });
    const feed = connect(app, await ticket(app, "cy"));
    const hello = await feed.next((m) => m.type === "hello");
    assert.equal(hello.version, page.json.meta.version);
    feed.ws.close();
  });
});

describe("without the LIVE binding, or with a failing object", () => {
  test("the live routes answer 503 not_configured and webhooks and reads work as before", async () => {
    const plain = await spawnApp({ live: false });
    try {
      const res = await call(plain, "POST", "/api/live/tickets", { token: plain.token("ada") });
      assert.deepEqual([res.status, res.json.error.code], [503, "not_configured"]);
      const up = await rawUpgrade(plain, `/api/live?ticket=${"ab".repeat(32)}.${"0".repeat(32)}`);
      assert.deepEqual([up.status, up.json.error.code], [503, "not_configured"]);
      assert.equal((await upsert(plain, "ada", "CAnolive")).status, 200);
      const page = await call(plain, "GET", "/api/webhook-calls", { token: plain.token("ada") });
      assert.ok(page.json.data.some((c) => c.id === "CAnolive"));
    } finally {
      await plain.close();
    }
  });

  test("while D1 fails a socket is refused 503, never opened unmarked, and opens once D1 is back", async () => {
    const faults = { d1: false };
    const flaky = await spawnApp({ faults });
    try {
      const t = await ticket(flaky, "ada");
      faults.d1 = true;
      const refused = await rawUpgrade(flaky, `/api/live?ticket=${t}`);
      assert.deepEqual([refused.status, refused.json.error.code], [503, "unavailable"]);
      faults.d1 = false;
      const feed = connect(flaky, await ticket(flaky, "ada"));
      await feed.opened;
      await feed.next((m) => m.type === "hello");
      assert.equal((await upsert(flaky, "ada", "CAflaky1")).status, 200);
      assert.deepEqual((await feed.next((m) => m.type === "changed", 1000)).callIds, ["CAflaky1"]);
      feed.ws.close();
    } finally {
      await flaky.close();
    }
  });

  test("a failing object never fails a webhook, and nothing is lost", async () => {
    const broken = await spawnApp({ live: "failing" });
    try {
      // Ada is marked as listening (as if a socket had been opened), so every webhook asks
      // the failing object.
      await broken.exec("INSERT INTO live_listeners (user_id, listening, generation) VALUES ('ada', 1, 1)");
      for (let i = 0; i < 5; i++) assert.equal((await upsert(broken, "ada", `CAbroken${i}`)).status, 200);
      const del = await call(broken, "DELETE", "/api/webhook-calls/CAbroken0", { token: broken.token("ada") });
      assert.equal(del.status, 204);
      const page = await call(broken, "GET", "/api/webhook-calls", { token: broken.token("ada") });
      assert.deepEqual(page.json.data.map((c) => c.id).sort(), ["CAbroken1", "CAbroken2", "CAbroken3", "CAbroken4"]);
      const t = await call(broken, "POST", "/api/live/tickets", { token: broken.token("ada") });
      assert.deepEqual([t.status, t.json.error.code], [503, "unavailable"]);
    } finally {
      await broken.close();
    }
  });
});

describe("openapi.yaml", () => {
  test("every documented /api/live response was produced and matched its schema", () => {
    const missing = documentedResponses("/api/live").filter((r) => !seen.has(r));
    assert.deepEqual(missing, [], "documented responses never exercised");
  });
});
