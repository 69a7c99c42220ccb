// `npm run soak`: mixed reads and signed webhooks (5 %, one in ten sent twice as a provider
// retry) for SOAK_SECONDS (default 180) at the highest rate SOAK_CONCURRENCY (default 16)
// loopback clients sustain, against the release worker in workerd with a memory tier squeezed
// to 2 MiB. Then: every accepted webhook is in D1 exactly once, no unexpected non-2xx, and the
// memory tier stayed within its byte bound. Prints a report; exits non-zero on any failure.
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { demoStatements, loadStatements, zipfSampler } from "./demo-data.mjs";
import { applyMigrations, signJwt, startWorker } from "./runtime.mjs";

const SECONDS = Number(process.env.SOAK_SECONDS ?? 180);
const CONCURRENCY = Number(process.env.SOAK_CONCURRENCY ?? 16);
const MEMORY_BYTES = 2 * 1024 * 1024;
const VARS = {
  JWT_SECRET: "soak-jwt-secret",
  ADMIN_TOKEN: "soak-admin-token",
  WEBHOOK_SECRET: "whsec_c29hay13ZWJob29rLXNlY3JldC0zMi1ieXRlcyEh",
  TWILIO_AUTH_TOKEN: "soak-twilio",
  RETELL_API_KEY: "soak-retell",
  ALLOWED_ORIGINS: "http://localhost",
  CACHE_MEMORY_MAX_BYTES: String(MEMORY_BYTES),
};
const USERS = Array.from({ length: 200 }, (_, i) => ({ id: `s${String(i).padStart(3, "0")}`, numbers: [`+1415600${String(i).padStart(4, "0")}`], calls: 40 }));

const log = (...a) => console.error("[soak]", ...a);

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "soak-"));
  applyMigrations(dir);
  const worker = await startWorker({ persistDir: dir, vars: VARS });
  await loadStatements(worker.db, demoStatements(Date.now(), { users: USERS }));
  log(`serving on ${worker.url}; ${USERS.length} users; ${SECONDS}s at concurrency ${CONCURRENCY}`);

  const tokens = new Map(USERS.map((u) => [u.id, `Bearer ${signJwt(VARS.JWT_SECRET, { sub: u.id, exp: Math.floor(Date.now() / 1000) + SECONDS + 3600 })}`]));
  const key = Buffer.from(VARS.WEBHOOK_SECRET.slice(6), "base64");
  const pick = zipfSampler(USERS.length, 1.1);
  const counts = { reads: 0, webhooks: 0, retries: 0, accepted: new Set(), unexpected: new Map(), latencies: [] };
  const note = (what) => counts.unexpected.set(what, (counts.unexpected.get(what) ?? 0) + 1);
  let seq = 0;
  let peakBytes = 0;

  const sendWebhook = async (id, body) => {
    const ts = Math.floor(Date.now() / 1000);
    const sig = createHmac("sha256", key).update(`${id}.${ts}.${body}`).digest("base64");
    const res = await fetch(`${worker.url}/webhooks/events`, { method: "POST", headers: { "content-type": "application/json", "webhook-id": id, "webhook-timestamp": String(ts), "webhook-signature": `v1,${sig}` }, body });
    await res.arrayBuffer();
    return res.status;
  };

  const deadline = Date.now() + SECONDS * 1000;
  const client = async () => {
    while (Date.now() < deadline) {
      const user = USERS[pick()];
      const started = performance.now();
      if (Math.random() < 0.05) {
        const n = seq++;
        const id = `soak_${n}`;
        const body = JSON.stringify({ type: "call.upserted", data: { userId: user.id, id: `CS${n}`, status: "completed", durationSeconds: 30 } });
        const status = await sendWebhook(id, body);
        counts.webhooks++;
        if (status === 200) counts.accepted.add(id);
        else note(`webhook ${status}`);
        if (n % 10 === 0) {
          counts.retries++;
          const again = await sendWebhook(id, body); // the provider retrying the same delivery
          if (again !== 200) note(`webhook retry ${again}`);
        }
      } else {
        const r = Math.random();
        const path = r < 0.6 ? "/api/webhook-calls" : r < 0.85 ? "/api/intent-analysis" : `/api/webhook-calls/CA${user.id}${String(Math.floor(Math.random() * user.calls)).padStart(6, "0")}`;
        const res = await fetch(worker.url + path, { headers: { authorization: tokens.get(user.id) } });
        await res.arrayBuffer();
        counts.reads++;
        if (res.status !== 200) note(`read ${res.status}`);
      }
      counts.latencies.push(performance.now() - started);
    }
  };
  const sampler = setInterval(async () => {
    try {
      const s = await (await fetch(`${worker.url}/api/cache/stats`, { headers: { authorization: `Bearer ${VARS.ADMIN_TOKEN}` } })).json();
      peakBytes = Math.max(peakBytes, s.data.memory.bytes);
    } catch {
      note("stats sample failed");
    }
  }, 1000);
  const t0 = Date.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, client));
  clearInterval(sampler);
  const elapsed = (Date.now() - t0) / 1000;

  await new Promise((r) => setTimeout(r, 500));
  await worker.scheduled(); // replays anything parked (nothing should be)
  const stats = (await (await fetch(`${worker.url}/api/cache/stats`, { headers: { authorization: `Bearer ${VARS.ADMIN_TOKEN}` } })).json()).data;
  peakBytes = Math.max(peakBytes, stats.memory.bytes);
  const deliveries = (await worker.db.prepare("SELECT COUNT(*) AS n, COUNT(DISTINCT provider_ref) AS d FROM webhook_deliveries WHERE provider_ref LIKE 'soak_%'").first());
  const calls = (await worker.db.prepare("SELECT COUNT(*) AS n FROM calls WHERE id LIKE 'CS%'").first()).n;
  const parked = (await worker.kv.list({ prefix: "parked:" })).keys.length;
  await worker.dispose();
  rmSync(dir, { recursive: true, force: true });

  const sorted = counts.latencies.sort((a, b) => a - b);
  const pct = (p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
  const checks = [
    ["every accepted webhook is in D1 exactly once (deliveries)", deliveries.n === counts.accepted.size && deliveries.d === counts.accepted.size, `${deliveries.n} rows for ${counts.accepted.size} accepted`],
    ["every accepted webhook is in D1 exactly once (calls)", calls === counts.accepted.size, `${calls} calls for ${counts.accepted.size} accepted`],
    ["nothing left parked", parked === 0, `${parked} parked`],
    ["no unexpected non-2xx", counts.unexpected.size === 0, JSON.stringify(Object.fromEntries(counts.unexpected))],
    ["memory tier within its byte bound", peakBytes <= MEMORY_BYTES, `peak ${(peakBytes / 1024).toFixed(0)} KiB of ${(MEMORY_BYTES / 1024).toFixed(0)} KiB`],
  ];
  const total = counts.reads + counts.webhooks + counts.retries;
  console.log(`# Soak\n\n${new Date().toISOString()} · ${elapsed.toFixed(0)} s · ${CONCURRENCY} clients · ${total} requests (${(total / elapsed).toFixed(0)} req/s): ${counts.reads} reads, ${counts.webhooks} webhooks, ${counts.retries} retries · p50 ${pct(50).toFixed(1)} ms, p99 ${pct(99).toFixed(1)} ms · hit rate ${stats.hitRate}\n`);
  console.log("| check | result | detail |\n| --- | :---: | --- |");
  for (const [name, ok, detail] of checks) console.log(`| ${name} | ${ok ? "pass" : "**FAIL**"} | ${detail} |`);
  const failed = checks.filter(([, ok]) => !ok).length;
  console.log(`\n${checks.length - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

await main();
