// Secrets never reach logs or responses: a full run — reads, admin calls, every webhook route
// signed and mis-signed, D1 failing and recovering — with CACHE_DEBUG on, every log line
// captured, then searched for every configured secret and every bearer token used.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { insertCall, spawnApp } from "./support/app.mjs";
import { retellSignature, standardHeaders, twilioSignature } from "./support/signers.mjs";

const logs = [];
const bodies = [];
const tokensUsed = new Set();
const faults = { d1: false, kv: false };
let app;

before(async () => {
  app = await spawnApp({
    vars: { CACHE_DEBUG: "true", TWILIO_AUTH_TOKEN_SECONDARY: "e2e-twilio-secondary-secret", WEBHOOK_SECRET_SECONDARY: "whsec_c2Vjb25kYXJ5LXNlY3JldC1mb3ItdGVzdHM=", JWT_ISSUER: "https://issuer.example" },
    faults,
    onLog: (line) => logs.push(line),
  });
  await insertCall(app, { user: "ada", id: "CAsec1", startedAt: Date.now() - 1000, analysis: { intent: "billing", confidence: 0.5 } });
});

after(() => app?.close());

async function send(method, path, opts = {}) {
  if (opts.token) tokensUsed.add(opts.token);
  const res = await app.request(method, path, opts);
  bodies.push(res.text);
  return res;
}

const tok = (sub, claims = {}) => app.token(sub, { iss: "https://issuer.example", ...claims });

test("a full run through every kind of request", async () => {
  const ada = tok("ada");
  for (const path of ["/api/health", "/api/webhook-calls", "/api/webhook-calls/CAsec1", "/api/webhook-calls/CAsec1/enhanced", "/api/intent-analysis", "/api/intent-analysis/CAsec1", "/api/cache/stats"]) {
    await send("GET", path, { token: ada });
    await send("GET", path, { token: ada });
  }
  await send("GET", "/api/webhook-calls", { token: tok("ada", { exp: 1 }) }); // expired
  await send("GET", "/api/webhook-calls", { token: tok("ada").slice(0, -3) + "AAA" }); // bad signature
  await send("GET", "/api/webhook-calls", { token: app.token("ada") }); // wrong issuer
  const admin = { token: app.vars.ADMIN_TOKEN, headers: { "content-type": "application/json" } };
  await send("PUT", "/api/admin/phone-numbers/+14155550199", { ...admin, body: '{"userId":"ada"}' });
  await send("POST", "/api/cache/warm", { ...admin, body: '{"userIds":["ada"]}' });
  await send("POST", "/api/cache/purge", { ...admin, body: '{"userId":"ada"}' });
  await send("POST", "/api/cache/purge", { token: "not-the-admin-token", headers: admin.headers, body: "{}" });

  const form = "CallSid=CAsec2&CallStatus=completed&Direction=inbound&From=%2B15550001111&To=%2B14155550199&CallDuration=5";
  for (const key of [app.vars.TWILIO_AUTH_TOKEN, "e2e-twilio-secondary-secret", "wrong"]) {
    const sig = twilioSignature(key, `${app.url}/webhooks/twilio/voice-status`, form);
    await send("POST", "/webhooks/twilio/voice-status", { headers: { "content-type": "application/x-www-form-urlencoded", "x-twilio-signature": sig }, body: form });
  }
  const event = JSON.stringify({ type: "call.analysis.completed", data: { userId: "ada", callId: "CAsec1", intent: "sales", confidence: 0.9 } });
  for (const secret of [app.vars.WEBHOOK_SECRET, "whsec_d3Jvbmc="]) {
    await send("POST", "/webhooks/events", { headers: { "content-type": "application/json", ...standardHeaders(secret, `msg_${secret.length}`, event) }, body: event });
  }
  const retell = JSON.stringify({ event: "call_started", call: { call_id: "call_sec", direction: "inbound", to_number: "+14155550199", start_timestamp: Date.now() } });
  for (const key of [app.vars.RETELL_API_KEY, "wrong"]) {
    await send("POST", "/webhooks/retell", { headers: { "content-type": "application/json", "x-retell-signature": retellSignature(key, retell) }, body: retell });
  }

  // Failures log their details: D1 down (a parked delivery, a 503), KV down.
  faults.d1 = true;
  await send("GET", "/api/webhook-calls/CAnot-cached", { token: ada });
  await send("POST", "/webhooks/events", { headers: { "content-type": "application/json", ...standardHeaders(app.vars.WEBHOOK_SECRET, "msg_parked", event) }, body: event });
  faults.d1 = false;
  faults.kv = true;
  await send("GET", "/api/intent-analysis?limit=7", { token: ada });
  faults.kv = false;
  await app.scheduled();
  await new Promise((r) => setTimeout(r, 300)); // let the last lines arrive
});

test("the run was logged: one structured line per request, and the failures", () => {
  const requestLines = logs.filter((l) => l.includes('"d1Queries"'));
  assert.ok(requestLines.length >= 30, `${requestLines.length} request lines captured`);
  assert.ok(logs.some((l) => l.includes("parked api delivery")), "the parked delivery was logged");
  assert.ok(logs.some((l) => l.includes("D1_ERROR")), "the D1 failure was logged");
});

test("no configured secret and no bearer token appears in any log line or response", () => {
  const secrets = {
    JWT_SECRET: app.vars.JWT_SECRET,
    ADMIN_TOKEN: app.vars.ADMIN_TOKEN,
    TWILIO_AUTH_TOKEN: app.vars.TWILIO_AUTH_TOKEN,
    TWILIO_AUTH_TOKEN_SECONDARY: app.vars.TWILIO_AUTH_TOKEN_SECONDARY,
    WEBHOOK_SECRET: app.vars.WEBHOOK_SECRET,
    WEBHOOK_SECRET_KEY: app.vars.WEBHOOK_SECRET.replace(/^whsec_/, ""),
    WEBHOOK_SECRET_SECONDARY: app.vars.WEBHOOK_SECRET_SECONDARY,
    RETELL_API_KEY: app.vars.RETELL_API_KEY,
  };
  const haystacks = [["log", logs.join("\n")], ["response", bodies.join("\n")]];
  for (const [where, text] of haystacks) {
    for (const [name, value] of Object.entries(secrets)) {
      assert.ok(!text.includes(value), `${name} found in a ${where}`);
    }
    for (const t of tokensUsed) {
      assert.ok(!text.includes(t), `a bearer token found in a ${where}`);
      const signature = t.split(".")[2];
      if (signature) assert.ok(!text.includes(signature), `a token signature found in a ${where}`);
    }
  }
});
