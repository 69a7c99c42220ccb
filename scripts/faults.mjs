// `npm run faults`: the release worker under load while its dependencies fail, phase by phase:
// healthy, KV failing, D1 failing, both failing, recovered. Each phase reports reads served
// fresh, served stale, and errored, and webhooks accepted or refused. After recovery the cron
// replays what was parked, and every accepted webhook must be in D1 — none lost.
// FAULT_PHASE_SECONDS (default 10), FAULT_CONCURRENCY (default 8). Exits non-zero on a loss.
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { demoStatements, loadStatements } from "./demo-data.mjs";
import { applyMigrations, signJwt, startWorker } from "./runtime.mjs";

const PHASE = Number(process.env.FAULT_PHASE_SECONDS ?? 10);
const CONCURRENCY = Number(process.env.FAULT_CONCURRENCY ?? 8);
const VARS = {
  JWT_SECRET: "faults-jwt-secret",
  ADMIN_TOKEN: "faults-admin-token",
  WEBHOOK_SECRET: "whsec_ZmF1bHRzLXdlYmhvb2stc2VjcmV0LTMyLWJ5dGVz",
  ALLOWED_ORIGINS: "http://localhost",
  // Short TTLs so that entries expire during the D1 outage and stale serving shows.
  CACHE_TTL_RECORDINGS: "5",
  CACHE_TTL_SUMMARY: "5",
};
const USERS = Array.from({ length: 50 }, (_, i) => ({ id: `f${String(i).padStart(2, "0")}`, numbers: [`+1415700${String(i).padStart(4, "0")}`], calls: 30 }));
const PHASES = [
  ["healthy", { d1: false, kv: false }],
  ["KV failing", { d1: false, kv: true }],
  ["D1 failing", { d1: true, kv: false }],
  ["KV and D1 failing", { d1: true, kv: true }],
  ["recovered", { d1: false, kv: false }],
];

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "faults-"));
  applyMigrations(dir);
  const faults = { d1: false, kv: false };
  const worker = await startWorker({ persistDir: dir, vars: VARS, faults, onLog: () => {} });
  await loadStatements(worker.db, demoStatements(Date.now(), { users: USERS }));
  const tokens = new Map(USERS.map((u) => [u.id, `Bearer ${signJwt(VARS.JWT_SECRET, { sub: u.id, exp: Math.floor(Date.now() / 1000) + 3600 })}`]));
  const key = Buffer.from(VARS.WEBHOOK_SECRET.slice(6), "base64");
  const accepted = new Set();
  let seq = 0;
  const rows = [];

  for (const [name, state] of PHASES) {
    Object.assign(faults, state);
    const c = { fresh: 0, stale: 0, errored: 0, other: 0, accepted: 0, refused: 0 };
    const deadline = Date.now() + PHASE * 1000;
    const client = async () => {
      while (Date.now() < deadline) {
        const user = USERS[Math.floor(Math.random() * 10)]; // a hot set, so entries get cached
        if (Math.random() < 0.1) {
          const id = `fault_${seq++}`;
          const body = JSON.stringify({ type: "call.upserted", data: { userId: user.id, id: `CF${id}`, status: "completed" } });
          const ts = Math.floor(Date.now() / 1000);
          const sig = createHmac("sha256", key).update(`${id}.${ts}.${body}`).digest("base64");
          const res = await fetch(`${worker.url}/webhooks/events`, { method: "POST", headers: { "content-type": "application/json", "webhook-id": id, "webhook-timestamp": String(ts), "webhook-signature": `v1,${sig}` }, body });
          await res.arrayBuffer();
          if (res.status === 200) {
            accepted.add(id);
            c.accepted++;
          } else c.refused++; // 503: the provider retries later
        } else {
          const path = Math.random() < 0.6 ? "/api/webhook-calls" : "/api/intent-analysis";
          const res = await fetch(worker.url + path, { headers: { authorization: tokens.get(user.id) } });
          await res.arrayBuffer();
          if (res.status === 200 && res.headers.get("x-cache") === "STALE") c.stale++;
          else if (res.status === 200) c.fresh++;
          else if (res.status === 503 && res.headers.get("retry-after")) c.errored++;
          else c.other++;
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, client));
    rows.push([name, c]);
  }

  // Recovery: the cron replays what was parked while D1 was down (several runs if needed).
  let parked = Infinity;
  for (let i = 0; i < 10 && parked > 0; i++) {
    await worker.scheduled();
    parked = (await worker.kv.list({ prefix: "parked:" })).keys.length;
  }
  const ids = [...accepted];
  let found = 0;
  for (let i = 0; i < ids.length; i += 50) {
    const chunk = ids.slice(i, i + 50);
    const r = await worker.db.prepare(`SELECT COUNT(*) AS n FROM calls WHERE id IN (${chunk.map(() => "?").join(",")})`).bind(...chunk.map((id) => `CF${id}`)).first();
    found += r.n;
  }
  await worker.dispose();
  rmSync(dir, { recursive: true, force: true });

  console.log(`# Fault runs\n\n${new Date().toISOString()} · ${PHASE} s per phase · ${CONCURRENCY} clients · 90 % reads, 10 % signed webhooks\n`);
  console.log("| phase | reads fresh | reads stale | reads 503 + Retry-After | reads other | webhooks accepted | webhooks refused (503, retried by the sender) |");
  console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const [name, c] of rows) console.log(`| ${name} | ${c.fresh} | ${c.stale} | ${c.errored} | ${c.other} | ${c.accepted} | ${c.refused} |`);
  const checks = [
    ["no verified webhook lost once D1 recovered", found === accepted.size, `${found} of ${accepted.size} accepted webhooks in D1`],
    ["nothing left parked", parked === 0, `${parked} parked`],
    ["every read answered per the contract (200, or 503 with Retry-After)", rows.every(([, c]) => c.other === 0), rows.map(([n, c]) => `${n}: ${c.other}`).join(", ")],
    ["with KV failing, every read succeeds", rows[1][1].errored === 0 && rows[1][1].fresh > 0, `${rows[1][1].errored} errors`],
    ["with D1 failing, cached and stale reads are served", rows[2][1].fresh + rows[2][1].stale > 0, `${rows[2][1].fresh} fresh, ${rows[2][1].stale} stale`],
    ["webhooks are accepted while D1 fails (parked)", rows[2][1].accepted > 0, `${rows[2][1].accepted} accepted`],
  ];
  console.log("\n| check | result | detail |\n| --- | :---: | --- |");
  for (const [name, ok, detail] of checks) console.log(`| ${name} | ${ok ? "pass" : "**FAIL**"} | ${detail} |`);
  const failed = checks.filter(([, ok]) => !ok).length;
  console.log(`\n${checks.length - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

await main();
