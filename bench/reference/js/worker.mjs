// The reference the bench races: the plain JavaScript worker a team would write instead of this
// project. Same routes, same D1 tables and data, same answers in shape, the same TTLs as this
// project's defaults — and nothing more (the summary counts over the user's calls, as a team
// without trigger-kept aggregates would): a `Map` in front of KV in front of D1, HS256 tokens
// checked with WebCrypto on every request, a webhook checked, deduplicated and applied in one
// D1 batch, then the owner's cached landing keys deleted. No versions, no cross-isolate
// freshness bound, no live feed, no parking: it is the yardstick for speed, not a design.
//
// Bindings: DB (D1), CACHE (KV), JWT_SECRET, WEBHOOK_SECRET, and MEMORY ("false" turns the Map
// off so KV hits can be measured) and CACHE ("false" via CACHE_ENABLED turns both tiers off).
// PROJECT_INGEST_SQL (a JSON object: the project's statement for a one-event delivery, its claim
// and call write returning the outcome, kept in project-ingest-sql.json and checked against the
// store by a host test) makes the ingest run the project's own batch with the parameters the
// project binds, instead of its plain two statements: the same SQL from plain JavaScript, which prices the project's handling around the
// batch apart from the SQL its contract asks for (ownership, deletion marks, versions).

const TTL_PAGE_SECONDS = 300; // this project's CACHE_TTL_RECORDINGS default
const TTL_SUMMARY_SECONDS = 120; // CACHE_TTL_SUMMARY
const MAX_MEMORY_ENTRIES = 10_000;

const memory = new Map(); // key -> { body, expires }
let hmacKey; // the imported JWT_SECRET, once per isolate
let webhookKey;

const CALL_COLUMNS =
  "c.id, c.provider, c.direction, c.from_number, c.to_number, c.status, c.answered, " +
  "c.started_at, c.ended_at, c.duration_seconds, c.created_at, c.updated_at, " +
  "c.rec_id, c.rec_url, c.rec_duration, c.rec_status, " +
  "c.an_status, c.an_intent, c.an_confidence, c.an_summary, c.an_completed_at, " +
  "c.en_phone, c.en_caller_name, c.en_caller_type, c.en_line_type, c.en_carrier, c.en_spam_score, c.en_updated_at";

const iso = (ms) => (ms === null || ms === undefined ? null : new Date(ms).toISOString());

function callJson(r) {
  return {
    id: r.id,
    provider: r.provider,
    direction: r.direction,
    from: r.from_number,
    to: r.to_number,
    status: r.status,
    answered: r.answered === 1,
    startedAt: iso(r.started_at),
    endedAt: iso(r.ended_at),
    durationSeconds: r.duration_seconds,
    recording: r.rec_id === null ? null : { id: r.rec_id, url: r.rec_url, durationSeconds: r.rec_duration, status: r.rec_status },
    analysis: r.an_status === null ? null : { status: r.an_status, intent: r.an_intent, confidence: r.an_confidence, summary: r.an_summary, completedAt: iso(r.an_completed_at) },
    enrichment:
      r.en_phone === null
        ? null
        : { phoneNumber: r.en_phone, callerName: r.en_caller_name, callerType: r.en_caller_type, lineType: r.en_line_type, carrier: r.en_carrier, spamScore: r.en_spam_score, updatedAt: iso(r.en_updated_at) },
    createdAt: iso(r.created_at),
    updatedAt: iso(r.updated_at),
  };
}

function reply(status, body, extra = {}) {
  return new Response(typeof body === "string" ? body : JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", "cache-control": "private, no-cache", ...extra },
  });
}

const failure = (status, code, message) => reply(status, { success: false, error: { code, message } });

function b64urlDecode(s) {
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

async function user(request, env) {
  const auth = request.headers.get("authorization") ?? "";
  const token = auth.startsWith("Bearer ") ? auth.slice(7) : null;
  if (!token) return null;
  const [h, p, s] = token.split(".");
  if (!s) return null;
  try {
    const header = JSON.parse(new TextDecoder().decode(b64urlDecode(h)));
    if (header.alg !== "HS256") return null;
    hmacKey ??= await crypto.subtle.importKey("raw", new TextEncoder().encode(env.JWT_SECRET), { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
    const ok = await crypto.subtle.verify("HMAC", hmacKey, b64urlDecode(s), new TextEncoder().encode(`${h}.${p}`));
    if (!ok) return null;
    const claims = JSON.parse(new TextDecoder().decode(b64urlDecode(p)));
    if (typeof claims.exp !== "number" || claims.exp * 1000 < Date.now()) return null;
    return typeof claims.sub === "string" ? claims.sub : null;
  } catch {
    return null;
  }
}

/** Map → KV → D1, with the tier in X-Cache as this project reports it. */
async function cached(env, ctx, key, ttl, load) {
  const useCache = env.CACHE_ENABLED !== "false";
  const useMemory = useCache && env.MEMORY !== "false";
  if (useMemory) {
    const hit = memory.get(key);
    if (hit && hit.expires > Date.now()) return reply(200, hit.body, { "x-cache": "HIT-MEMORY" });
  }
  if (useCache) {
    const body = await env.CACHE.get(key);
    if (body !== null) {
      if (useMemory) remember(key, body, ttl);
      return reply(200, body, { "x-cache": "HIT-KV" });
    }
  }
  const body = JSON.stringify(await load());
  if (useCache) {
    ctx.waitUntil(env.CACHE.put(key, body, { expirationTtl: Math.max(60, ttl) }));
    if (useMemory) remember(key, body, ttl);
  }
  return reply(200, body, { "x-cache": "MISS" });
}

function remember(key, body, ttl) {
  if (memory.size >= MAX_MEMORY_ENTRIES) memory.delete(memory.keys().next().value);
  memory.set(key, { body, expires: Date.now() + ttl * 1000 });
}

const pageKey = (u, limit, offset) => `ref:page:${u}:${limit}:${offset}`;
const summaryKey = (u, limit) => `ref:summary:${u}:${limit}`;

async function page(env, ctx, u, url) {
  const limit = Math.min(500, Math.max(1, Number(url.searchParams.get("limit") ?? 50) || 50));
  const offset = Math.max(0, Number(url.searchParams.get("offset") ?? 0) || 0);
  return cached(env, ctx, pageKey(u, limit, offset), TTL_PAGE_SECONDS, async () => {
    const { results } = await env.DB.prepare(`SELECT ${CALL_COLUMNS} FROM calls c WHERE c.user_id = ?1 ORDER BY c.started_at DESC, c.id DESC LIMIT ?2 OFFSET ?3`)
      .bind(u, limit, offset)
      .all();
    return { success: true, data: results.map(callJson), meta: { count: results.length, limit, offset, source: "d1", cacheHit: false } };
  });
}

async function summary(env, ctx, u, url) {
  const limit = Math.min(100, Math.max(1, Number(url.searchParams.get("limit") ?? 20) || 20));
  return cached(env, ctx, summaryKey(u, limit), TTL_SUMMARY_SECONDS, async () => {
    const [calls, stats, intents] = await env.DB.batch([
      env.DB.prepare(`SELECT ${CALL_COLUMNS} FROM calls c WHERE c.user_id = ?1 AND c.analyzed = 1 ORDER BY c.started_at DESC, c.id DESC LIMIT ?2`).bind(u, limit),
      // What a team writes without trigger-kept aggregates: count over the user's calls.
      env.DB.prepare(
        "SELECT COUNT(*) AS total_calls, COALESCE(SUM(answered), 0) AS answered_calls, " +
          "COALESCE(SUM(an_status = 'completed'), 0) AS completed_analyses, " +
          "COALESCE(SUM(CASE WHEN an_status = 'completed' THEN an_confidence END), 0) AS confidence_sum " +
          "FROM calls WHERE user_id = ?1",
      ).bind(u),
      env.DB.prepare("SELECT an_intent AS intent, COUNT(*) AS calls FROM calls WHERE user_id = ?1 AND an_status = 'completed' AND an_intent IS NOT NULL GROUP BY an_intent").bind(u),
    ]);
    const s = stats.results[0] ?? { total_calls: 0, answered_calls: 0, completed_analyses: 0, confidence_sum: 0 };
    return {
      success: true,
      data: {
        calls: calls.results.map(callJson),
        stats: {
          totalCalls: s.total_calls,
          answeredCalls: s.answered_calls,
          analyzedCalls: s.completed_analyses,
          averageConfidence: s.completed_analyses ? s.confidence_sum / s.completed_analyses : null,
          intents: Object.fromEntries(intents.results.map((r) => [r.intent, r.calls])),
        },
      },
      meta: { count: calls.results.length, limit, source: "d1", cacheHit: false },
    };
  });
}

/** Standard Webhooks: signature over `id.timestamp.body`, 5 minutes of tolerance. */
async function ingest(request, env, ctx) {
  const id = request.headers.get("webhook-id");
  const ts = request.headers.get("webhook-timestamp");
  const signatures = request.headers.get("webhook-signature") ?? "";
  const body = await request.text();
  if (!id || !ts || Math.abs(Date.now() / 1000 - Number(ts)) > 300) return failure(401, "invalid_signature", "missing or stale webhook headers");
  webhookKey ??= await crypto.subtle.importKey("raw", b64urlDecode(env.WEBHOOK_SECRET.replace(/^whsec_/, "")), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", webhookKey, new TextEncoder().encode(`${id}.${ts}.${body}`)));
  const expected = btoa(String.fromCharCode(...mac));
  if (!signatures.split(" ").some((s) => s === `v1,${expected}`)) return failure(401, "invalid_signature", "signature does not verify");
  let event;
  try {
    event = JSON.parse(body);
  } catch {
    return failure(400, "invalid_json", "the body is not JSON");
  }
  const d = event.data ?? {};
  if (event.type !== "call.upserted" || typeof d.userId !== "string" || typeof d.id !== "string") return failure(400, "invalid_payload", "expected call.upserted with userId and id");
  const now = Date.now();
  const started = d.startedAt ? Date.parse(d.startedAt) : now;
  const status = d.status ?? "completed";
  const answered = status === "completed" || status === "in-progress" ? 1 : 0;
  if (env.PROJECT_INGEST_SQL) {
    await projectBatch(env, id, event.type, d, status, answered, started, now);
    return reply(200, { success: true, data: { received: true } });
  }
  const [claim] = await env.DB.batch([
    env.DB.prepare("INSERT INTO webhook_deliveries (provider, delivery_key, event_type, user_id, call_id, outcome, received_at) VALUES ('api', ?1, ?2, ?3, ?4, 'applied', ?5) ON CONFLICT DO NOTHING").bind(id, event.type, d.userId, d.id, now),
    env.DB.prepare(
      "INSERT INTO calls (id, user_id, provider, direction, from_number, to_number, status, status_rank, answered, started_at, duration_seconds, created_at, updated_at) " +
        "SELECT ?1, ?2, 'api', ?3, ?4, ?5, ?6, 3, ?7, ?8, ?9, ?10, ?10 WHERE changes() = 1 " +
        "ON CONFLICT (id) DO UPDATE SET status = excluded.status, answered = excluded.answered, duration_seconds = excluded.duration_seconds, updated_at = excluded.updated_at",
    ).bind(d.id, d.userId, d.direction ?? "inbound", d.from ?? "", d.to ?? "", status, answered, started, d.durationSeconds ?? null, now),
  ]);
  if (claim.meta.changes === 1 && env.CACHE_ENABLED !== "false") {
    for (const key of [...memory.keys()]) if (key.includes(`:${d.userId}:`)) memory.delete(key);
    ctx.waitUntil(Promise.all([env.CACHE.delete(pageKey(d.userId, 50, 0)), env.CACHE.delete(summaryKey(d.userId, 20))]));
  }
  return reply(200, { success: true, data: { received: true } });
}

let projectSql; // PROJECT_INGEST_SQL, parsed once per isolate
const hex = (bytes) => Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
/** The project's digest of a key (`store::ingest::digest`): 16 bytes of SHA-256 over the parts, each NUL-ended. */
async function digest(tag, parts) {
  const data = new TextEncoder().encode(parts.map((p) => `${p}\0`).join(""));
  return `${tag}:${hex((await crypto.subtle.digest("SHA-256", data)).slice(0, 16))}`;
}

/** The project's batch for a `call.upserted` delivery: one statement, the claim and the call's write, returning the outcome. */
async function projectBatch(env, id, type, d, status, answered, started, now) {
  projectSql ??= JSON.parse(env.PROJECT_INGEST_SQL);
  const direction = d.direction ?? "inbound";
  const duration = d.durationSeconds ?? null;
  const guard = ["api", await digest("k1", ["api", id]), hex(crypto.getRandomValues(new Uint8Array(16)))];
  // What the project keeps when a delivery cannot be applied now: the delivery, normalized.
  const kept = JSON.stringify({
    provider: "api", key: id, event_type: type, call_id: d.id,
    events: [{ kind: "call", call_id: d.id, owner: { user: d.userId, number: null }, provider: "api", direction, from: d.from ?? "", to: d.to ?? "", status, started_at: started, ended_at: null, duration_seconds: duration, at: now }],
    received_at: now, payload: null,
  });
  const claim = [type, d.userId, null, d.id, 1, 1, kept, now, started, id, await digest("c1", [d.id]), 1];
  // 3: the rank of `completed`, the one status the bench sends (as the plain upsert above).
  const call = [d.id, "api", direction, d.from ?? "", d.to ?? "", status, 3, answered, started, null, duration, now, now];
  const [result] = await env.DB.batch([env.DB.prepare(projectSql.claim_and_call).bind(...guard, ...claim, ...call)]);
  // [fresh, user, call, outcome, version before, version after, listening]
  const outcome = JSON.parse(result.results[0]?.o ?? "null");
  if (outcome?.[0] !== 1 || outcome[3] !== "applied" || typeof outcome[5] !== "number") {
    throw new Error(`the project's batch did not apply a fresh delivery: ${JSON.stringify(outcome)}`);
  }
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (url.pathname === "/api/health") return reply(200, { success: true, data: { status: "ok" } });
    if (url.pathname === "/webhooks/events" && request.method === "POST") return ingest(request, env, ctx);
    if (request.method !== "GET") return failure(405, "method_not_allowed", "method not allowed");
    const u = await user(request, env);
    if (!u) return failure(401, "unauthorized", "a valid bearer token is required");
    if (url.pathname === "/api/webhook-calls") return page(env, ctx, u, url);
    if (url.pathname === "/api/intent-analysis") return summary(env, ctx, u, url);
    return failure(404, "not_found", "no such route");
  },
};
