// Deterministic demo data: a few users with their phone numbers and hundreds of calls with
// recordings, analyses and enrichments. Written straight to D1; the aggregate triggers of
// migrations/0002 keep the intent summaries exact as rows land.

export const DEMO_USERS = [
  { id: "demo-ada", numbers: ["+14155550100", "+14155550101"], calls: 320 },
  { id: "demo-bob", numbers: ["+14155550200"], calls: 180 },
  { id: "demo-cy", numbers: ["+442071838750"], calls: 60 },
];

const INTENTS = ["billing", "support", "sales", "reschedule", "cancellation", "complaint"];
const CARRIERS = ["Verizon", "AT&T", "T-Mobile", "Vodafone", null];
const NAMES = ["Grace Hopper", "Alan Turing", "Katherine Johnson", "Linus T.", null, "Acme Corp"];

/** mulberry32: a small, fast, reproducible generator of numbers in [0, 1). */
export function prng(seed) {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = (rand, list) => list[Math.floor(rand() * list.length)];

/**
 * Statements ({sql, params}) that load the demo data, relative to `nowMs`.
 * `scale` multiplies the number of calls per user.
 */
export function demoStatements(nowMs, { users = DEMO_USERS, scale = 1, seed = 42 } = {}) {
  const rand = prng(seed);
  const out = [];
  for (const user of users) {
    for (const number of user.numbers) {
      out.push({
        sql: "INSERT INTO phone_numbers (e164, user_id, created_at, updated_at) VALUES (?1, ?2, ?3, ?3) ON CONFLICT (e164) DO NOTHING",
        params: [number, user.id, nowMs],
      });
    }
    const n = Math.round(user.calls * scale);
    for (let i = 0; i < n; i++) {
      const id = `CA${user.id.replace(/[^a-z0-9]/g, "")}${String(i).padStart(6, "0")}`;
      const inbound = rand() < 0.7;
      const ours = pick(rand, user.numbers);
      const theirs = `+1${Math.floor(2_000_000_000 + rand() * 7_000_000_000)}`;
      const started = nowMs - Math.floor(rand() * 30 * 86_400_000);
      const r = rand();
      const status = r < 0.78 ? "completed" : r < 0.86 ? "no-answer" : r < 0.92 ? "busy" : r < 0.96 ? "failed" : "in-progress";
      const answered = status === "completed" || status === "in-progress" ? 1 : 0;
      const duration = status === "completed" ? 15 + Math.floor(rand() * 600) : status === "in-progress" ? null : 0;
      const ended = duration === null ? null : started + duration * 1000 + 5_000;
      const provider = rand() < 0.75 ? "twilio" : "retell";
      out.push({
        sql: "INSERT INTO calls (id, user_id, provider, direction, from_number, to_number, status, status_rank, answered, started_at, ended_at, duration_seconds, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?10, ?13) ON CONFLICT (id) DO NOTHING",
        params: [id, user.id, provider, inbound ? "inbound" : "outbound", inbound ? theirs : ours, inbound ? ours : theirs, status, status === "in-progress" ? 2 : 3, answered, started, ended, duration, ended ?? started],
      });
      if (status === "completed") {
        out.push({
          sql: "INSERT INTO recordings (call_id, id, url, duration_seconds, status, updated_at) VALUES (?1, ?2, ?3, ?4, 'completed', ?5) ON CONFLICT (call_id) DO NOTHING",
          params: [id, `RE${id.slice(2)}`, `https://api.twilio.com/2010-04-01/Accounts/AC0000/Recordings/RE${id.slice(2)}`, Math.max(1, duration - 1), ended],
        });
        const a = rand();
        if (a < 0.85) {
          const analysisStatus = a < 0.78 ? "completed" : a < 0.82 ? "pending" : "failed";
          const intent = analysisStatus === "completed" ? pick(rand, INTENTS) : null;
          const confidence = analysisStatus === "completed" ? Math.round((0.55 + rand() * 0.44) * 100) / 100 : null;
          out.push({
            sql: "INSERT INTO analyses (call_id, user_id, status, intent, confidence, summary, completed_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (call_id) DO NOTHING",
            params: [id, user.id, analysisStatus, intent, confidence, intent ? `Caller asked about ${intent}.` : null, analysisStatus === "pending" ? null : ended + 20_000, ended + 20_000],
          });
        }
      }
      if (rand() < 0.7) {
        out.push({
          sql: "INSERT INTO enrichments (call_id, user_id, phone_number, caller_name, caller_type, line_type, carrier, spam_score, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (call_id) DO NOTHING",
          params: [id, user.id, theirs, pick(rand, NAMES), pick(rand, ["business", "consumer", "undetermined"]), pick(rand, ["mobile", "landline", "voip"]), pick(rand, CARRIERS), Math.round(rand() * 100) / 100, started + 60_000],
        });
      }
    }
  }
  return out;
}

/** Runs statements against a D1 binding in batches (one transaction per batch). */
export async function loadStatements(db, statements, batchSize = 200) {
  for (let i = 0; i < statements.length; i += batchSize) {
    await db.batch(statements.slice(i, i + batchSize).map((s) => db.prepare(s.sql).bind(...s.params)));
  }
}

/** Draws indexes in [0, n) with a Zipf skew of exponent `s`, using `rand` in [0, 1). */
export function zipfSampler(n, s, rand = Math.random) {
  const cdf = [];
  let acc = 0;
  for (let i = 0; i < n; i++) cdf.push((acc += 1 / Math.pow(i + 1, s)));
  return () => {
    const x = rand() * acc;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}
