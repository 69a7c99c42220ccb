// The webhook routes end to end: requests signed the providers' way (support/signers.mjs), sent
// to the built worker in workerd, and their effect read back through the dashboard routes.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { ROOT } from "../scripts/runtime.mjs";
import { spawnApp } from "./support/app.mjs";
import { assertMatchesSpec, documentedResponses, seen } from "./support/openapi.mjs";
import { retellSignature, standardHeaders, twilioSignature } from "./support/signers.mjs";

const vectors = JSON.parse(readFileSync(join(ROOT, "tests/fixtures/webhook-signatures.json"), "utf8"));
const PUBLIC = "https://dash.example.com";
let app;

async function call(target, method, path, opts) {
  const res = await target.request(method, path, opts);
  assertMatchesSpec(method, path, res);
  return res;
}

/** A Twilio callback signed for the URL Twilio would have called. */
function twilio(target, path, params, { token = target.vars.TWILIO_AUTH_TOKEN, base = PUBLIC, signature } = {}) {
  const body = new URLSearchParams(params).toString();
  const sig = signature ?? twilioSignature(token, base + path, body);
  return call(target, "POST", path, {
    headers: { "content-type": "application/x-www-form-urlencoded", ...(sig ? { "x-twilio-signature": sig } : {}) },
    body,
  });
}

let seq = 0;
function event(target, type, data, { id = `msg_${++seq}`, secret = target.vars.WEBHOOK_SECRET, ts, prefix = "webhook" } = {}) {
  const body = JSON.stringify({ type, timestamp: new Date().toISOString(), data });
  const h = standardHeaders(secret, id, body, ts);
  const headers = { "content-type": "application/json" };
  for (const [k, v] of Object.entries(h)) headers[k.replace("webhook", prefix)] = v;
  return call(target, "POST", "/webhooks/events", { headers, body });
}

function retell(target, payload, { key = target.vars.RETELL_API_KEY, ms } = {}) {
  const body = typeof payload === "string" ? payload : JSON.stringify(payload);
  return call(target, "POST", "/webhooks/retell", {
    headers: { "content-type": "application/json", "x-retell-signature": retellSignature(key, body, ms) },
    body,
  });
}

const readCall = (target, user, id) => target.get(`/api/webhook-calls/${id}`, { token: target.token(user) });

before(async () => {
  app = await spawnApp({ vars: { PUBLIC_BASE_URL: PUBLIC, TWILIO_AUTH_TOKEN_SECONDARY: "e2e-twilio-next", WEBHOOK_SECRET_SECONDARY: "whsec_bmV4dC1zZWNyZXQtZm9yLXJvdGF0aW9u" } });
  for (const [number, user] of [["+14155550199", "ada"], ["+14155550100", "bob"]]) {
    const res = await app.request("PUT", `/api/admin/phone-numbers/${encodeURIComponent(number)}`, {
      token: app.vars.ADMIN_TOKEN,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ userId: user }),
    });
    assert.equal(res.status, 201);
  }
});

after(() => app?.close());

const RINGING = { CallSid: "CAe2e1", CallStatus: "ringing", Direction: "inbound", From: "+15550001111", To: "+14155550199", Timestamp: "Tue, 05 Mar 2024 18:21:00 +0000", SequenceNumber: "1" };
const COMPLETED = { ...RINGING, CallStatus: "completed", CallDuration: "42", Timestamp: "Tue, 05 Mar 2024 18:22:13 +0000", SequenceNumber: "3" };

describe("POST /webhooks/twilio/voice-status", () => {
  test("a signed callback is answered with TwiML and the call appears for the number's owner", async () => {
    const res = await twilio(app, "/webhooks/twilio/voice-status", RINGING);
    assert.equal(res.status, 200);
    assert.match(res.text, /<Response\/>/);
    const got = await readCall(app, "ada", "CAe2e1");
    assert.equal(got.json.data.status, "ringing");
    assert.equal((await readCall(app, "bob", "CAe2e1")).status, 404);
  });

  test("the completed callback moves it forward and a late ringing never moves it back", async () => {
    await twilio(app, "/webhooks/twilio/voice-status", COMPLETED);
    await twilio(app, "/webhooks/twilio/voice-status", { ...RINGING, SequenceNumber: "2" });
    const got = (await readCall(app, "ada", "CAe2e1")).json.data;
    assert.deepEqual([got.status, got.answered, got.durationSeconds], ["completed", true, 42]);
    assert.equal(got.endedAt, "2024-03-05T18:22:13Z");
  });

  test("the same delivery five times has one effect and the same 2xx", async () => {
    const params = { ...COMPLETED, CallSid: "CAdup1", SequenceNumber: "7" };
    const replies = [];
    for (let i = 0; i < 5; i++) replies.push(await twilio(app, "/webhooks/twilio/voice-status", params));
    assert.ok(replies.every((r) => r.status === 200 && r.text === replies[0].text));
    const rows = await app.db.prepare("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE provider = 'twilio' AND provider_ref = 'CAdup1:seq:7'").first();
    assert.equal(rows.n, 1);
    const summary = await app.get("/api/intent-analysis", { token: app.token("ada") });
    const calls = await app.db.prepare("SELECT COUNT(*) AS n FROM calls WHERE user_id = 'ada'").first();
    assert.equal(summary.json.data.stats.totalCalls, calls.n);
  });

  test("the secondary token and the :443 form of the public URL verify", async () => {
    const ok = await twilio(app, "/webhooks/twilio/voice-status", { ...RINGING, CallSid: "CAe2e2" }, { token: "e2e-twilio-next" });
    assert.equal(ok.status, 200);
    const port = await twilio(app, "/webhooks/twilio/voice-status", { ...RINGING, CallSid: "CAe2e3" }, { base: "https://dash.example.com:443" });
    assert.equal(port.status, 200);
  });

  test("the signature covers the query exactly as sent, characters a URL parser would rewrite included", async () => {
    const path = "/webhooks/twilio/voice-status?who=o'brien&x=%7e|^";
    const body = new URLSearchParams({ ...RINGING, CallSid: "CAquery1" }).toString();
    const send = (signedUrl) =>
      new Promise((resolve, reject) => {
        const { hostname, port } = new URL(app.url);
        const req = httpRequest({ hostname, port, method: "POST", path, headers: {
          "content-type": "application/x-www-form-urlencoded",
          "x-twilio-signature": twilioSignature(app.vars.TWILIO_AUTH_TOKEN, signedUrl, body),
        } }, (res) => { res.resume(); res.on("end", () => resolve(res.statusCode)); });
        req.on("error", reject);
        req.end(body);
      });
    // The runtime re-encodes `'` as %27 before the worker sees the URL; both forms verify,
    // and every other character is verified exactly as sent.
    assert.equal(await send(PUBLIC + path), 200, "signed over the URL as sent");
    assert.equal(await send(PUBLIC + path.replace("'", "%27")), 200, "signed over the runtime's form");
    assert.equal(await send(PUBLIC + path.replace("%7e", "~")), 403, "not over a re-serialized form");
    assert.equal(await send(PUBLIC + path.replace("|", "%7C")), 403, "nor another escape");
  });

  test("a missing signature is 401 and a wrong one 403", async () => {
    const missing = await twilio(app, "/webhooks/twilio/voice-status", RINGING, { signature: "" });
    assert.equal(missing.status, 401);
    const wrong = await twilio(app, "/webhooks/twilio/voice-status", RINGING, { token: "not-the-token" });
    assert.deepEqual([wrong.status, wrong.json.error.code], [403, "invalid_signature"]);
    const wrongUrl = await twilio(app, "/webhooks/twilio/voice-status", RINGING, { base: app.url });
    assert.equal(wrongUrl.status, 403, "PUBLIC_BASE_URL is what Twilio signs");
  });

  test("a call to an unrouted number is acknowledged, kept and shown to nobody", async () => {
    const res = await twilio(app, "/webhooks/twilio/voice-status", { ...COMPLETED, CallSid: "CAorphan", To: "+19995550000" });
    assert.equal(res.status, 200);
    const row = await app.db.prepare("SELECT outcome, payload FROM webhook_deliveries WHERE provider_ref = 'CAorphan:seq:3'").first();
    assert.equal(row.outcome, "unattributed");
    assert.match(row.payload, /CAorphan/);
    assert.equal((await readCall(app, "ada", "CAorphan")).status, 404);
  });

  test("malformed bodies are 400, wrong media types 415, other methods 405", async () => {
    const body = "CallSid=%ZZ";
    const sig = twilioSignature(app.vars.TWILIO_AUTH_TOKEN, PUBLIC + "/webhooks/twilio/voice-status", "");
    const bad = await call(app, "POST", "/webhooks/twilio/voice-status", { headers: { "content-type": "application/x-www-form-urlencoded", "x-twilio-signature": sig }, body });
    assert.equal(bad.status, 400);
    const missing = await twilio(app, "/webhooks/twilio/voice-status", { CallStatus: "completed" });
    assert.equal(missing.status, 400);
    assert.match(missing.json.error.message, /CallSid/);
    const json = await call(app, "POST", "/webhooks/twilio/voice-status", { headers: { "content-type": "application/json" }, body: "{}" });
    assert.equal(json.status, 415);
    assert.equal((await call(app, "GET", "/webhooks/twilio/voice-status")).status, 405);
  });
});

describe("POST /webhooks/twilio/recording-status", () => {
  test("the recording attaches to its call, even when it arrives first", async () => {
    const rec = { CallSid: "CAe2e9", RecordingSid: "REe2e9", RecordingStatus: "completed", RecordingUrl: "https://api.twilio.com/rec/REe2e9", RecordingDuration: "41" };
    assert.equal((await twilio(app, "/webhooks/twilio/recording-status", rec)).status, 200);
    await twilio(app, "/webhooks/twilio/voice-status", { ...COMPLETED, CallSid: "CAe2e9" });
    const got = (await readCall(app, "ada", "CAe2e9")).json.data;
    assert.deepEqual(got.recording, { id: "REe2e9", url: rec.RecordingUrl, durationSeconds: 41, status: "completed" });
  });

  test("is verified like the voice callback", async () => {
    const params = { CallSid: "CAx", RecordingSid: "REx", RecordingStatus: "completed" };
    assert.equal((await twilio(app, "/webhooks/twilio/recording-status", params, { signature: "" })).status, 401);
    assert.equal((await twilio(app, "/webhooks/twilio/recording-status", params, { token: "nope" })).status, 403);
    assert.equal((await twilio(app, "/webhooks/twilio/recording-status", { CallSid: "CAx" })).status, 400);
    assert.equal((await call(app, "POST", "/webhooks/twilio/recording-status", { headers: { "content-type": "text/plain" }, body: "x" })).status, 415);
    assert.equal((await call(app, "PUT", "/webhooks/twilio/recording-status")).status, 405);
  });
});

describe("a call keeps its owner", () => {
  const route = (number, userId) =>
    app.request(userId ? "PUT" : "DELETE", `/api/admin/phone-numbers/${encodeURIComponent(number)}`, {
      token: app.vars.ADMIN_TOKEN,
      headers: { "content-type": "application/json" },
      body: userId ? JSON.stringify({ userId }) : undefined,
    });

  test("status and recording callbacks after a re-route go to the call's owner, not the number's new one", async () => {
    const number = "+14155550177";
    assert.equal((await route(number, "ada")).status, 201);
    const ringing = { ...RINGING, CallSid: "CAmove1", To: number };
    assert.equal((await twilio(app, "/webhooks/twilio/voice-status", ringing)).status, 200);
    assert.equal((await readCall(app, "ada", "CAmove1")).json.data.status, "ringing");
    await app.get("/api/webhook-calls?limit=10", { token: app.token("bob") }); // Bob's page is cached

    assert.equal((await route(number, "bob")).status, 200);
    await twilio(app, "/webhooks/twilio/voice-status", { ...COMPLETED, CallSid: "CAmove1", To: number });
    const rec = { CallSid: "CAmove1", RecordingSid: "REmove1", RecordingStatus: "completed", RecordingUrl: "https://api.twilio.com/rec/REmove1", RecordingDuration: "40" };
    assert.equal((await twilio(app, "/webhooks/twilio/recording-status", rec)).status, 200);

    const got = (await readCall(app, "ada", "CAmove1")).json.data;
    assert.deepEqual([got.status, got.recording?.id], ["completed", "REmove1"]);
    assert.equal((await readCall(app, "bob", "CAmove1")).status, 404);
    const bobs = await app.get("/api/webhook-calls?limit=10", { token: app.token("bob") });
    assert.ok(!bobs.json.data.some((c) => c.id === "CAmove1"));

    // Un-routed while the next call rings: its completed callback still completes it.
    assert.equal((await route(number, "ada")).status, 200);
    await twilio(app, "/webhooks/twilio/voice-status", { ...RINGING, CallSid: "CAmove2", To: number });
    assert.equal((await route(number, null)).status, 204);
    await twilio(app, "/webhooks/twilio/voice-status", { ...COMPLETED, CallSid: "CAmove2", To: number });
    assert.equal((await readCall(app, "ada", "CAmove2")).json.data.status, "completed");
  });

  test("an event naming another user for an existing call is acknowledged as a conflict and applied to no one", async () => {
    await twilio(app, "/webhooks/twilio/voice-status", { ...COMPLETED, CallSid: "CAowned1" });
    const res = await event(app, "call.analysis.completed", { userId: "bob", callId: "CAowned1", intent: "sales", confidence: 0.8 }, { id: "msg_conflict1" });
    assert.equal(res.status, 200);
    const row = await app.db.prepare("SELECT outcome, user_id FROM webhook_deliveries WHERE provider_ref = 'msg_conflict1'").first();
    assert.deepEqual([row.outcome, row.user_id], ["conflict", null]);
    assert.equal((await readCall(app, "ada", "CAowned1")).json.data.analysis, null);
    assert.equal((await app.get("/api/intent-analysis/CAowned1", { token: app.token("bob") })).status, 404);
  });
});

describe("deleting a call forgets it", () => {
  /** Every text value in every table of the project's D1 database. */
  async function storedTexts(target) {
    const { results: tables } = await target.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'").all();
    const texts = [];
    for (const { name } of tables) {
      const { results } = await target.db.prepare(`SELECT * FROM "${name}"`).all();
      for (const row of results) for (const v of Object.values(row)) if (typeof v === "string") texts.push([name, v]);
    }
    return texts;
  }

  test("no stored byte names a deleted call: its rows, its webhooks' bodies and keys, late webhooks after it", async () => {
    const id = "call_forget42";
    const started = Date.now() - 120_000;
    const body = (event, extra = {}) => ({ event, call: { call_id: id, direction: "inbound", from_number: "+15550001111", to_number: "+14155550199", start_timestamp: started, ...extra } });
    await retell(app, body("call_started"));
    await retell(app, body("transcript_updated", { transcript: "Agent: hello" }));
    await retell(app, body("call_ended", { end_timestamp: started + 30_000, recording_url: "https://retell.example/forget.wav" }));
    await event(app, "call.sentiment.scored", { userId: "ada", callId: id, score: 0.3 });
    await event(app, "call.enrichment.completed", { userId: "ada", callId: id, phoneNumber: "+15550001111", callerName: "Grace" });
    assert.ok((await storedTexts(app)).some(([, v]) => v.includes(id)), "stored before");

    const del = await call(app, "DELETE", `/api/webhook-calls/${id}`, { token: app.token("ada") });
    assert.equal(del.status, 204);
    await retell(app, body("transcript_updated", { transcript: "Agent: bye" })); // late
    await retell(app, body("call_ended", { end_timestamp: started + 30_000 })); // a retry

    const naming = (await storedTexts(app)).filter(([, v]) => v.includes(id));
    assert.deepEqual(naming, []);
    assert.equal((await readCall(app, "ada", id)).status, 404);
  });

  test("a call reported again with a start after its deletion is a new call: the mark is lifted in the claim and no digest of it stays behind", async () => {
    const id = "CAreborn7";
    await event(app, "call.upserted", { userId: "ada", id, status: "completed", startedAt: new Date(Date.now() - 600_000).toISOString() });
    assert.equal((await call(app, "DELETE", `/api/webhook-calls/${id}`, { token: app.token("ada") })).status, 204);
    const marks = async () => (await app.db.prepare("SELECT COUNT(*) AS n FROM deleted_calls").first()).n;
    const before = await marks();
    assert.ok(before >= 1);
    // A retry without a start stays deleted; a report of a later start is a new call.
    await event(app, "call.upserted", { userId: "ada", id, status: "completed" });
    assert.equal((await readCall(app, "ada", id)).status, 404);
    await event(app, "call.upserted", { userId: "ada", id, status: "ringing", startedAt: new Date().toISOString() });
    const back = await readCall(app, "ada", id);
    assert.equal(back.status, 200);
    assert.equal(back.json.data.status, "ringing");
    assert.equal(await marks(), before - 1);
    const left = await app.db.prepare("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE lift_mark IS NOT NULL").first();
    assert.equal(left.n, 0);
  });
});

describe("POST /webhooks/events", () => {
  test("an analysis and an enrichment before their call are joined when it arrives", async () => {
    assert.equal((await event(app, "call.analysis.completed", { userId: "ada", callId: "CAev1", intent: "billing", confidence: 0.9, summary: "Bill query" })).status, 200);
    assert.equal((await event(app, "call.enrichment.completed", { userId: "ada", callId: "CAev1", phoneNumber: "+15550001111", callerName: "Grace", lineType: "mobile", spamScore: 0.1 })).status, 200);
    await event(app, "call.upserted", { userId: "ada", id: "CAev1", status: "completed", direction: "inbound", from: "+15550001111", to: "+14155550199", durationSeconds: 30, startedAt: "2026-11-21T10:00:00Z" });
    const got = (await readCall(app, "ada", "CAev1")).json.data;
    assert.equal(got.analysis.intent, "billing");
    assert.equal(got.enrichment.callerName, "Grace");
    const enh = await app.get("/api/webhook-calls/CAev1/enhanced", { token: app.token("ada") });
    assert.equal(enh.json.data.lineType, "mobile");
    const summary = (await app.get("/api/intent-analysis", { token: app.token("ada") })).json.data;
    assert.ok(summary.calls.some((c) => c.id === "CAev1"));
    assert.equal(summary.stats.intentDistribution.billing, 1);
  });

  test("text outside ASCII and outside the BMP is stored exactly, and the parameters after it keep their own values", async () => {
    // The D1 adapter sends a statement's texts as one string cut by UTF-16 lengths: a length
    // counted in bytes or in characters would shift every text after this one.
    const name = "José Ñúñez 😀 北京 \u0000 end";
    const res = await event(app, "call.enrichment.completed", { userId: "ada", callId: "CAutf1", phoneNumber: "+15550002222", callerName: name, callerType: "büsiness 🎉", lineType: "mobile", carrier: "Telefónica" });
    assert.equal(res.status, 200);
    await event(app, "call.upserted", { userId: "ada", id: "CAutf1", status: "completed", direction: "inbound", from: "+15550002222", to: "+14155550199", startedAt: "2026-11-21T11:00:00Z" });
    const enh = (await app.get("/api/webhook-calls/CAutf1/enhanced", { token: app.token("ada") })).json.data;
    assert.equal(enh.callerName, name);
    assert.equal(enh.callerType, "büsiness 🎉");
    assert.equal(enh.lineType, "mobile");
    assert.equal(enh.carrier, "Telefónica");
    assert.equal(enh.phoneNumber, "+15550002222");
  });

  test("a later event reporting another startedAt moves the call to its new day, in the daily series and the filtered list", async () => {
    const summary = async () => (await app.get("/api/intent-analysis?from=2026-09-01&to=2026-09-03", { token: app.token("gil") })).json.data;
    const call = { userId: "gil", id: "CAdays1", status: "completed", direction: "inbound", from: "+15550001111", to: "+14155550199" };
    assert.equal((await event(app, "call.upserted", { ...call, startedAt: "2026-09-01T10:00:00Z" })).status, 200);
    assert.equal((await event(app, "call.analysis.completed", { userId: "gil", callId: "CAdays1", intent: "billing", confidence: 0.8 })).status, 200);
    let days = (await summary()).daily;
    assert.deepEqual(days.map((d) => [d.date, d.totalCalls, d.intentDistribution]), [["2026-09-01", 1, { billing: 1 }], ["2026-09-02", 0, {}]]);
    assert.equal((await event(app, "call.upserted", { ...call, startedAt: "2026-09-02T23:30:00Z" })).status, 200);
    days = (await summary()).daily;
    assert.deepEqual(days.map((d) => [d.date, d.totalCalls, d.intentDistribution]), [["2026-09-01", 0, {}], ["2026-09-02", 1, { billing: 1 }]]);
    const listed = await app.get("/api/webhook-calls?from=2026-09-02&to=2026-09-03", { token: app.token("gil") });
    assert.deepEqual(listed.json.data.map((c) => [c.id, c.startedAt]), [["CAdays1", "2026-09-02T23:30:00Z"]]);
  });

  test("a failed analysis is recorded as failed", async () => {
    await event(app, "call.analysis.failed", { userId: "ada", callId: "CAev1x", error: "timeout" });
    const res = await app.get("/api/intent-analysis/CAev1x", { token: app.token("ada") });
    assert.equal(res.json.data.status, "failed");
  });

  test("svix-* header names and the secondary secret verify", async () => {
    assert.equal((await event(app, "call.upserted", { userId: "ada", id: "CAev2" }, { prefix: "svix" })).status, 200);
    assert.equal((await event(app, "call.upserted", { userId: "ada", id: "CAev3" }, { secret: app.vars.WEBHOOK_SECRET_SECONDARY })).status, 200);
    assert.equal((await readCall(app, "ada", "CAev3")).status, 200);
  });

  test("the same webhook-id delivered again changes nothing and gets the same 2xx", async () => {
    const first = await event(app, "call.upserted", { userId: "ada", id: "CAev4", status: "in-progress" }, { id: "msg_fixed" });
    const again = await event(app, "call.upserted", { userId: "ada", id: "CAev4", status: "failed" }, { id: "msg_fixed" });
    assert.equal(first.text, again.text);
    assert.equal((await readCall(app, "ada", "CAev4")).json.data.status, "in-progress");
  });

  test("unknown event types are acknowledged and recorded", async () => {
    const res = await event(app, "call.intent_analyzed", { call_id: "CA1" }, { id: "msg_unknown" });
    assert.equal(res.status, 200);
    const row = await app.db.prepare("SELECT outcome, payload FROM webhook_deliveries WHERE provider_ref = 'msg_unknown'").first();
    assert.equal(row.outcome, "ignored");
    assert.match(row.payload, /intent_analyzed/);
  });

  test("the signed vector's event type is recorded too", async () => {
    const v = vectors.standard_webhooks;
    const target = await spawnApp({ vars: { WEBHOOK_SECRET: v.secret } });
    try {
      // Signed by the SDK long ago: refused as a replay outside ±5 minutes…
      const old = await target.request("POST", "/webhooks/events", {
        headers: { "content-type": "application/json", "webhook-id": v["webhook-id"], "webhook-timestamp": v["webhook-timestamp"], "webhook-signature": v["webhook-signature"] },
        body: v.raw_body,
      });
      assert.equal(old.status, 403);
      // …and accepted when re-signed now with the same secret.
      const fresh = await event(target, "call.intent_analyzed", JSON.parse(v.raw_body).data, { id: v["webhook-id"] });
      assert.equal(fresh.status, 200);
    } finally {
      await target.close();
    }
  });

  test("missing headers are 401; stale timestamps, wrong secrets and tampering 403", async () => {
    const body = JSON.stringify({ type: "call.upserted", data: { userId: "ada", id: "CAev9" } });
    const h = standardHeaders(app.vars.WEBHOOK_SECRET, "msg_h", body);
    const send = (headers, b = body) => call(app, "POST", "/webhooks/events", { headers: { "content-type": "application/json", ...headers }, body: b });
    const { "webhook-signature": _dropped, ...unsigned } = h;
    assert.equal((await send(unsigned)).status, 401);
    assert.equal((await send({ "webhook-timestamp": h["webhook-timestamp"], "webhook-signature": h["webhook-signature"] })).status, 401);
    const stale = standardHeaders(app.vars.WEBHOOK_SECRET, "msg_h", body, Math.floor(Date.now() / 1000) - 600);
    assert.equal((await send(stale)).status, 403);
    const future = standardHeaders(app.vars.WEBHOOK_SECRET, "msg_h", body, Math.floor(Date.now() / 1000) + 600);
    assert.equal((await send(future)).status, 403);
    assert.equal((await send(standardHeaders("whsec_d3Jvbmc=", "msg_h", body))).status, 403);
    assert.equal((await send(h, body.replace("ada", "bob"))).status, 403);
  });

  test("a signed body that is not UTF-8 is refused and applies nothing", async () => {
    // Signed over its raw bytes, as a sender would: the invalid byte reaches the worker as
    // U+FFFD, so the signature no longer verifies (see `read_body_whole`).
    const raw = Buffer.concat([Buffer.from('{"type":"call.upserted","data":{"userId":"ada","id":"CAutf8","from":"'), Buffer.from([0xff]), Buffer.from('"}}')]);
    const ts = Math.floor(Date.now() / 1000);
    const key = Buffer.from(app.vars.WEBHOOK_SECRET.replace(/^whsec_/, ""), "base64");
    const sig = createHmac("sha256", key).update(Buffer.concat([Buffer.from(`msg_utf8.${ts}.`), raw])).digest("base64");
    const res = await call(app, "POST", "/webhooks/events", { headers: { "content-type": "application/json", "webhook-id": "msg_utf8", "webhook-timestamp": String(ts), "webhook-signature": `v1,${sig}` }, body: raw });
    assert.deepEqual([res.status, res.json.error.code], [403, "invalid_signature"]);
    assert.equal((await readCall(app, "ada", "CAutf8")).status, 404);
  });

  test("bad JSON and bad fields are 400 naming them; wrong media types 415", async () => {
    const raw = "{not json";
    const res = await call(app, "POST", "/webhooks/events", { headers: { "content-type": "application/json", ...standardHeaders(app.vars.WEBHOOK_SECRET, "msg_bad", raw) }, body: raw });
    assert.deepEqual([res.status, res.json.error.code], [400, "invalid_json"]);
    const field = await event(app, "call.analysis.completed", { userId: "ada", callId: "CA1", intent: "x", confidence: 7 });
    assert.equal(field.status, 400);
    assert.match(field.json.error.message, /confidence/);
    const form = await call(app, "POST", "/webhooks/events", { headers: { "content-type": "application/x-www-form-urlencoded" }, body: "a=1" });
    assert.equal(form.status, 415);
    assert.equal((await call(app, "DELETE", "/webhooks/events")).status, 405);
  });
});

describe("POST /webhooks/retell", () => {
  const base = JSON.parse(vectors.retell.raw_body);
  const now = Date.now();
  const payload = (event, call) => ({ event, call: { ...base.call, call_id: "call_e2e", start_timestamp: now - 60_000, end_timestamp: now - 18_000, ...call } });

  test("started, ended and analyzed events build the call, its recording and its analysis", async () => {
    assert.equal((await retell(app, payload("call_started", { end_timestamp: undefined }))).status, 200);
    assert.equal((await readCall(app, "ada", "call_e2e")).json.data.status, "in-progress");
    await retell(app, payload("call_ended", { recording_url: "https://retell.example/rec.wav" }));
    await retell(app, payload("call_analyzed", {}));
    const got = (await readCall(app, "ada", "call_e2e")).json.data;
    assert.deepEqual([got.provider, got.status, got.durationSeconds], ["retell", "completed", 42]);
    assert.equal(got.recording.url, "https://retell.example/rec.wav");
    assert.deepEqual([got.analysis.intent, got.analysis.confidence, got.analysis.summary], ["reschedule", 0.91, "Caller asked to reschedule."]);
  });

  test("the vector's body re-signed now verifies; the SDK's old signature is a stale replay", async () => {
    const target = await spawnApp({ vars: { RETELL_API_KEY: vectors.retell.api_key } });
    try {
      const old = await target.request("POST", "/webhooks/retell", { headers: { "content-type": "application/json", "x-retell-signature": vectors.retell["x-retell-signature"] }, body: vectors.retell.raw_body });
      assert.equal(old.status, 403);
      assert.equal((await retell(target, vectors.retell.raw_body)).status, 200);
    } finally {
      await target.close();
    }
  });

  test("missing, wrong and stale signatures, bad bodies and media types are refused", async () => {
    const body = JSON.stringify(payload("call_started", {}));
    assert.equal((await call(app, "POST", "/webhooks/retell", { headers: { "content-type": "application/json" }, body })).status, 401);
    assert.equal((await retell(app, body, { key: "wrong" })).status, 403);
    assert.equal((await retell(app, body, { ms: Date.now() - 6 * 60_000 })).status, 403);
    assert.equal((await retell(app, "{nope")).status, 400);
    const noId = await retell(app, { event: "call_started", call: {} });
    assert.match(noId.json.error.message, /call_id/);
    assert.equal((await call(app, "POST", "/webhooks/retell", { headers: { "content-type": "text/plain" }, body })).status, 415);
    assert.equal((await call(app, "GET", "/webhooks/retell")).status, 405);
  });
});

describe("body size", () => {
  test("a body over 1 MiB is 413, with or without Content-Length", async () => {
    const big = "x".repeat(1024 * 1024 + 1);
    for (const path of ["/webhooks/twilio/voice-status", "/webhooks/twilio/recording-status", "/webhooks/events", "/webhooks/retell"]) {
      const declared = await call(app, "POST", path, { headers: { "content-type": "application/json" }, body: big });
      assert.deepEqual([declared.status, declared.json.error.code], [413, "payload_too_large"], path);
    }
    const chunk = new TextEncoder().encode("y".repeat(64 * 1024));
    let sent = 0;
    const stream = new ReadableStream({
      pull(controller) {
        if (sent >= 40) return controller.close();
        sent++;
        controller.enqueue(chunk);
      },
    });
    const res = await fetch(`${app.url}/webhooks/retell`, { method: "POST", headers: { "content-type": "application/json" }, body: stream, duplex: "half" });
    assert.equal(res.status, 413);
    await res.text();
  });
});

describe("unconfigured secrets", () => {
  test("each webhook route answers 503 not_configured and accepts nothing", async () => {
    const target = await spawnApp({ vars: { TWILIO_AUTH_TOKEN: undefined, WEBHOOK_SECRET: undefined, RETELL_API_KEY: undefined } });
    try {
      for (const [path, type] of [["/webhooks/twilio/voice-status", "application/x-www-form-urlencoded"], ["/webhooks/twilio/recording-status", "application/x-www-form-urlencoded"], ["/webhooks/events", "application/json"], ["/webhooks/retell", "application/json"]]) {
        const res = await call(target, "POST", path, { headers: { "content-type": type }, body: type.includes("json") ? "{}" : "a=1" });
        assert.deepEqual([res.status, res.json.error.code], [503, "not_configured"], path);
      }
    } finally {
      await target.close();
    }
  });
});

describe("D1 failure", () => {
  test("a verified event is acknowledged while D1 fails, parked, and visible after the replay", async () => {
    const faults = { d1: false };
    const target = await spawnApp({ faults });
    try {
      faults.d1 = true;
      const res = await event(target, "call.upserted", { userId: "ada", id: "CAparked", status: "completed", durationSeconds: 12 });
      assert.equal(res.status, 200, "the provider still gets its 2xx");
      const parked = await target.kv.list({ prefix: "parked:v1:" });
      assert.equal(parked.keys.length, 1);
      const during = await target.get("/api/webhook-calls/CAparked", { token: target.token("ada") });
      assert.equal(during.status, 503);
      assert.ok(during.headers.get("retry-after"));

      // Still failing: the replay keeps it parked.
      await target.scheduled();
      assert.equal((await target.kv.list({ prefix: "parked:v1:" })).keys.length, 1);

      faults.d1 = false;
      await target.scheduled();
      assert.equal((await target.kv.list({ prefix: "parked:v1:" })).keys.length, 0);
      const got = await target.get("/api/webhook-calls/CAparked", { token: target.token("ada") });
      assert.equal(got.status, 200);
      assert.deepEqual([got.json.data.status, got.json.data.durationSeconds], ["completed", 12]);
    } finally {
      await target.close();
    }
  });
});

describe("parked deliveries never stall", () => {
  test("a poison entry in front of a good one: the good one applies, the poison is moved aside after its attempts, and can be requeued", async () => {
    const faults = { d1: false };
    const target = await spawnApp({ faults });
    const admin = { token: target.vars.ADMIN_TOKEN };
    try {
      faults.d1 = true;
      assert.equal((await event(target, "call.upserted", { userId: "ada", id: "CApoison", status: "completed" })).status, 200);
      await sleep(5);
      assert.equal((await event(target, "call.upserted", { userId: "ada", id: "CAgood", status: "completed" })).status, 200);
      faults.d1 = false;
      assert.equal((await target.kv.list({ prefix: "parked:v1:" })).keys.length, 2);
      // D1 answers, but refuses this one delivery every time.
      await target.db.exec("CREATE TRIGGER poison BEFORE INSERT ON calls WHEN NEW.id = 'CApoison' BEGIN SELECT RAISE(ABORT, 'poison'); END");
      await target.scheduled();
      assert.equal((await target.get("/api/webhook-calls/CAgood", { token: target.token("ada") })).status, 200, "the good one is not stuck behind it");
      for (let i = 0; i < 4; i++) await target.scheduled();
      assert.equal((await target.kv.list({ prefix: "parked:v1:" })).keys.length, 0);
      assert.equal((await target.kv.list({ prefix: "parked-dead:v1:" })).keys.length, 1, "moved aside, not deleted");
      const view = await call(target, "GET", "/api/admin/parked", admin);
      assert.equal(view.status, 200);
      assert.equal(view.json.data.queued, 0);
      assert.equal(view.json.data.deadLetters.length, 1);
      assert.equal(view.json.data.deadLetters[0].attempts, view.json.data.maxAttempts);
      assert.doesNotMatch(view.text, /CApoison/, "no payload in the listing");
      assert.equal((await call(target, "GET", "/api/admin/parked", { token: target.token("ada") })).status, 403);
      // The cause is fixed: requeue, replay, applied.
      await target.db.exec("DROP TRIGGER poison");
      const requeued = await call(target, "POST", "/api/admin/parked/requeue", admin);
      assert.deepEqual([requeued.status, requeued.json.data.requeued], [200, 1]);
      await target.scheduled();
      assert.equal((await target.get("/api/webhook-calls/CApoison", { token: target.token("ada") })).status, 200);
      assert.equal((await call(target, "DELETE", "/api/admin/parked", admin)).status, 405);
    } finally {
      await target.close();
    }
  });
});

describe("openapi.yaml", () => {
  test("every documented /webhooks response was produced and matched its schema", () => {
    const missing = documentedResponses("/webhooks/").filter((r) => !seen.has(r));
    assert.deepEqual(missing, [], "documented responses never exercised");
  });
});
