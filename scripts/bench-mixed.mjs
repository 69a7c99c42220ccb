// The mixed workload of `npm run bench` (95 % Zipf-skewed reads over the data set's users, 5 %
// signed webhooks) and its priming, shared with `npm run profile -- mixed`, which replays the
// same list under V8's profiler.
import { prng, zipfSampler } from "./demo-data.mjs";
import { BENCH_VARS as VARS, line, standardHeaders } from "./bench-common.mjs";
import { signJwt } from "./runtime.mjs";

export const USERS = 1000;
export const CALLS = 100_000;
export const HEAVY = [12_000, 12_000, 12_000]; // the first users: 10,000+ calls each

export const userId = (i) => `u${String(i).padStart(4, "0")}`;
export const callId = (u, n) => `CB${u}x${n}`;

/** Calls per user: three heavy users, the rest spread with a Zipf-like skew. */
export function callCounts() {
  const counts = [...HEAVY];
  const rest = CALLS - HEAVY.reduce((a, b) => a + b, 0);
  const weights = Array.from({ length: USERS - HEAVY.length }, (_, i) => 1 / Math.pow(i + 1, 0.6));
  const total = weights.reduce((a, b) => a + b, 0);
  let assigned = 0;
  for (const w of weights) {
    const n = Math.max(1, Math.floor((w / total) * rest));
    counts.push(n);
    assigned += n;
  }
  counts[HEAVY.length] += rest - assigned;
  return counts;
}


/**
 * Requests in the mixed list. Each mixed run replays the whole list once, in order, after the
 * priming below: a few seconds' window starting at a random line measured mostly where that
 * window fell relative to the priming order (68.8 % and 96.5 % memory hits in two identical
 * runs), not the cache.
 */
export const MIXED_REQUESTS = 8_000;

/** A signed bearer token for `user`, valid for an hour. */
export function token(user) {
  const now = Math.floor(Date.now() / 1000);
  return signJwt(VARS.JWT_SECRET, { sub: user, iat: now, exp: now + 3600 });
}


/**
 * 95 % reads over users with a Zipf skew, 5 % signed webhooks (none when `webhookShare` is 0).
 * `round` names the webhooks apart (a delivery seen before is not applied again), so a list
 * per round can be replayed on the same data. `webhookUser`, when given, owns every webhook's
 * call instead of the user drawn (a user nobody reads: webhooks that leave the cache alone).
 */
export function mixedRequests(count, counts, { seed = 99, webhookShare = 0.05, round = 0, webhookUser } = {}) {
  const rand = prng(seed);
  const pickUser = zipfSampler(USERS, 1.1, rand);
  const tokens = new Map();
  const auth = (u) => {
    if (!tokens.has(u)) tokens.set(u, `Bearer ${token(u)}`);
    return { Authorization: tokens.get(u) };
  };
  const ts = Math.floor(Date.now() / 1000);
  const out = [];
  let webhooks = 0;
  for (let i = 0; i < count; i++) {
    const u = pickUser();
    const user = userId(u);
    const r = rand();
    if (r < webhookShare) {
      const tag = round ? `r${round}x${i}` : `${i}`;
      const id = `msg_bench_${tag}`;
      const body = JSON.stringify({ type: "call.upserted", data: { userId: webhookUser ?? user, id: `CW${user}x${tag}`, status: "completed", durationSeconds: 30 } });
      out.push(line("POST", "/webhooks/events", standardHeaders(VARS.WEBHOOK_SECRET, id, body, ts), body));
      webhooks++;
    } else if (r < 0.6) {
      out.push(line("GET", "/api/webhook-calls", auth(user)));
    } else if (r < 0.85) {
      out.push(line("GET", "/api/intent-analysis", auth(user)));
    } else if (r < 0.95) {
      // People open a handful of the calls they see, not the whole history.
      out.push(line("GET", `/api/webhook-calls/${callId(user, Math.floor(rand() * Math.min(counts[u], 10)))}`, auth(user)));
    } else {
      out.push(line("GET", `/api/intent-analysis/${callId(user, Math.floor(rand() * Math.min(counts[u], 10)))}`, auth(user)));
    }
  }
  return { lines: out, webhooks };
}

/**
 * Steady state: a seconds-long run would otherwise measure mostly the first read of each key
 * in the long tail, which a long-lived deployment has long since cached. Every distinct read
 * of the mixed list is made once (8 at a time) before it is measured.
 */
export async function prime(url, lines, label, log = () => {}) {
  const reads = [...new Set(lines.filter((l) => l.startsWith("GET\t")))];
  log(`${label}: priming ${reads.length} distinct reads`);
  let next = 0;
  const worker = async () => {
    while (next < reads.length) {
      const [, path, headers] = reads[next++].split("\t");
      const h = Object.fromEntries(headers.split("\u0001").filter(Boolean).map((kv) => kv.split(": ")));
      await (await fetch(url + path, { headers: h })).arrayBuffer();
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  await new Promise((r) => setTimeout(r, 300)); // KV writes finish after their responses
}
