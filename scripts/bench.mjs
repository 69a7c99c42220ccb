// The benchmark: the release worker in workerd through Miniflare's own server, local D1 and
// KV loaded with 1,000 users and 100,000 calls (a few users with 12,000 each), and wrk on
// loopback as a separate process. Prints one table and writes it to bench/results.md.
// Requests reach the worker directly, as /api/* and /webhooks/* do in production
// (`run_worker_first`); one row shows the floor behind Miniflare's emulation of the
// static-asset router, which runs in the same process in front of every request.
//
//   BENCH_SECONDS   seconds per scenario (default 8)
//   BENCH_CONNECTIONS  wrk connections (default 8)
//   BENCH_MODES     comma-separated subset of the modes (off, kv, all, warm; default all four;
//                   "none" runs only the race)
//   BENCH_RACE      "0" leaves out the race against the reference workers (scripts/race.mjs)
//   BENCH_RACE_ROUNDS  alternating rounds per side in the race (default 8): a target reads the
//                   median of the rounds' ratios (one round's moves by ±15 % on a shared host)
//   BENCH_RACE_SECONDS  seconds per side and round in the race (default 3)
//   BENCH_VARS      JSON object of extra worker vars for every mode (e.g. a CACHE_* setting)
//   BENCH_WEBHOOK_SHARE  share of signed webhooks in the mixed workload (default 0.05)
//   BENCH_MIXED_ROUNDS  rounds of the interleaved mixed comparison (default 5; 0 leaves it out)
//   BENCH_TIER_ROUNDS  rounds of the interleaved tier comparison (default 7; 0 leaves it out)
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { prng } from "./demo-data.mjs";
import { CALLS, HEAVY, USERS, callCounts, callId, MIXED_REQUESTS, mixedRequests, prime as primeReads, token, userId } from "./bench-mixed.mjs";
import { BENCH_VARS, SETTLE_MS, cpuSeconds, gzipBytes, line, median, standardHeaders, workerdPids, wrk as wrkCycling, wrkInBackground, wrkOnce } from "./bench-common.mjs";
import { race } from "./race.mjs";
import { ROOT, applyMigrations, signJwt, startWorker } from "./runtime.mjs";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 8);
/** The mixed workload's share of signed webhooks (the targets are stated for 0.05). */
const WEBHOOK_SHARE = Number(process.env.BENCH_WEBHOOK_SHARE ?? 0.05);
const VARS = BENCH_VARS;
/** Rounds of the tiers' page reads and the floor in turn (`interleavedTiers`). */
const TIER_ROUNDS = Number(process.env.BENCH_TIER_ROUNDS ?? 7);
/** Seconds of each run in those rounds. */
const TIER_SECONDS = 3;
/** Rounds of the mixed list on a cache-off and an all-tiers worker in turn (`interleavedMixed`). */
const MIXED_ROUNDS = Number(process.env.BENCH_MIXED_ROUNDS ?? 5);
/** The module's gzip budget, read from scripts/build.sh so the two never disagree. */
const WASM_BUDGET_KB = Number(
  /WASM_GZIP_BUDGET_KB:-(\d+)/.exec(readFileSync(join(ROOT, "scripts/build.sh"), "utf8"))?.[1] ?? NaN,
);
/** Bump when datasetStatements() changes, so the cached data set is rebuilt. */
const DATASET_VERSION = 1;
const INTENTS = ["billing", "support", "sales", "reschedule", "cancellation", "complaint", "other"];

const log = (...a) => console.error("[bench]", ...a);



const q = (s) => (s === null || s === undefined ? "NULL" : typeof s === "number" ? String(s) : `'${String(s).replaceAll("'", "''")}'`);

/** Multi-row INSERTs with literal values (D1 caps bound parameters at 100 per statement). */
function* datasetStatements(now) {
  const rand = prng(7);
  const counts = callCounts();
  const rows = { analyses: [], enrichments: [], recordings: [], calls: [] };
  const flush = function* (table, columns, force) {
    if (rows[table].length >= 400 || (force && rows[table].length)) {
      yield `INSERT INTO ${table} (${columns}) VALUES ${rows[table].join(",")}`;
      rows[table] = [];
    }
  };
  const cols = {
    analyses: "call_id, user_id, status, intent, confidence, summary, completed_at, updated_at",
    enrichments: "call_id, user_id, phone_number, caller_name, caller_type, line_type, carrier, spam_score, updated_at",
    recordings: "call_id, id, url, duration_seconds, status, updated_at",
    calls: "id, user_id, provider, direction, from_number, to_number, status, status_rank, answered, started_at, ended_at, duration_seconds, created_at, updated_at",
  };
  for (let u = 0; u < USERS; u++) {
    const user = userId(u);
    for (let n = 0; n < counts[u]; n++) {
      const id = callId(user, n);
      const started = now - Math.floor(rand() * 90 * 86_400_000);
      const r = rand();
      const status = r < 0.8 ? "completed" : r < 0.9 ? "no-answer" : r < 0.95 ? "busy" : "failed";
      const answered = status === "completed" ? 1 : 0;
      const duration = answered ? 10 + Math.floor(rand() * 600) : 0;
      const ended = started + duration * 1000 + 3000;
      const theirs = `+1${2_000_000_000 + Math.floor(rand() * 7_000_000_000)}`;
      if (answered) {
        rows.recordings.push(`(${q(id)},${q("RE" + id.slice(2))},${q("https://api.twilio.com/rec/RE" + id.slice(2))},${duration},'completed',${ended})`);
        if (rand() < 0.85) {
          const done = rand() < 0.92;
          const intent = done ? INTENTS[Math.floor(rand() * INTENTS.length)] : null;
          rows.analyses.push(`(${q(id)},${q(user)},${q(done ? "completed" : "failed")},${q(intent)},${done ? Math.round((0.5 + rand() * 0.5) * 100) / 100 : "NULL"},${q(intent ? "Caller asked about " + intent : null)},${ended + 20000},${ended + 20000})`);
        }
      }
      if (rand() < 0.8) {
        rows.enrichments.push(`(${q(id)},${q(user)},${q(theirs)},${q(rand() < 0.5 ? "Acme Corp" : null)},'consumer','mobile','Verizon',${Math.round(rand() * 100) / 100},${started + 60000})`);
      }
      rows.calls.push(`(${q(id)},${q(user)},'twilio','inbound',${q(theirs)},'+14155550100',${q(status)},3,${answered},${started},${ended},${duration},${started},${ended})`);
      // Side tables first, so each call's insert pulls its copies in (as a late join would).
      yield* flush("analyses", cols.analyses, false);
      yield* flush("enrichments", cols.enrichments, false);
      yield* flush("recordings", cols.recordings, false);
      if (rows.calls.length >= 400) {
        yield* flush("analyses", cols.analyses, true);
        yield* flush("enrichments", cols.enrichments, true);
        yield* flush("recordings", cols.recordings, true);
        yield* flush("calls", cols.calls, true);
      }
    }
  }
  for (const t of ["analyses", "enrichments", "recordings", "calls"]) yield* flush(t, cols[t], true);
  yield `INSERT INTO webhook_deliveries (provider, delivery_key, event_type, user_id, outcome, received_at) SELECT 'api', 'seed-' || user_id, 'seed', user_id, 'applied', ${now} FROM user_stats`;
}

/** A migrated, loaded local state, built once and reused while migrations and this file stay the same. */
async function datasetTemplate(now) {
  const hash = createHash("sha256");
  for (const f of readdirSync(join(ROOT, "migrations")).sort()) hash.update(readFileSync(join(ROOT, "migrations", f)));
  hash.update(`dataset v${DATASET_VERSION} ${USERS} ${CALLS} ${HEAVY}`);
  const dir = join(ROOT, "bench/.state", hash.digest("hex").slice(0, 16));
  if (existsSync(join(dir, "ready"))) return dir;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  log(`building the data set (${USERS} users, ${CALLS} calls) in ${dir}`);
  const t = Date.now();
  applyMigrations(dir);
  const worker = await startWorker({ persistDir: dir, vars: VARS });
  const batch = [];
  for (const sql of datasetStatements(now)) {
    batch.push(worker.db.prepare(sql));
    if (batch.length === 20) await worker.db.batch(batch.splice(0));
  }
  if (batch.length) await worker.db.batch(batch);
  const { n } = await worker.db.prepare("SELECT COUNT(*) AS n FROM calls").first();
  await worker.dispose();
  if (n !== CALLS) throw new Error(`expected ${CALLS} calls, loaded ${n}`);
  writeFileSync(join(dir, "ready"), new Date().toISOString());
  log(`data set ready in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  return dir;
}



/** The most a mixed run may take (the whole list with the cache off takes about a minute). */
const MIXED_CAP_SECONDS = 240;


const wrk = (url, file, seconds = SECONDS) => wrkCycling(url, file, { seconds, connections: CONNECTIONS });
const wrkAsync = (url, file, seconds) => wrkInBackground(url, file, { seconds, connections: CONNECTIONS });

const percentile = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN);

/**
 * The live feed under load: sockets open for the busiest users while the mixed workload runs;
 * signed webhooks for those users, one every 50 ms; the time from each webhook's response to
 * the `changed` message naming its call.
 */
async function liveScenario(url, mixedFile) {
  const users = [0, 1, 2, 3, 4].map(userId);
  const sockets = [];
  const waiting = new Map(); // call id -> resolve
  for (const user of users) {
    for (let tab = 0; tab < 2; tab++) {
      const res = await fetch(`${url}/api/live/tickets`, { method: "POST", headers: { Authorization: `Bearer ${token(user)}` } });
      const { data } = await res.json();
      const ws = new WebSocket(`${url.replace(/^http/, "ws")}/api/live?ticket=${data.ticket}`);
      ws.addEventListener("message", (e) => {
        const msg = JSON.parse(e.data);
        if (msg.type !== "changed") return;
        for (const id of msg.callIds) waiting.get(id)?.(performance.now());
      });
      await new Promise((resolve, reject) => {
        ws.addEventListener("open", resolve, { once: true });
        ws.addEventListener("error", reject, { once: true });
      });
      sockets.push(ws);
    }
  }
  const load = wrkAsync(url, mixedFile, SECONDS);
  const latencies = [];
  let lost = 0;
  const deadline = Date.now() + (SECONDS - 1) * 1000;
  for (let i = 0; Date.now() < deadline; i++) {
    const user = users[i % users.length];
    const id = `msg_live_${Date.now()}_${i}`;
    const call = `CL${user}x${Date.now()}x${i}`;
    const body = JSON.stringify({ type: "call.upserted", data: { userId: user, id: call, status: "ringing" } });
    // Each of the user's two sockets must see it; the first one counts.
    const seen = new Promise((resolve) => waiting.set(call, resolve));
    const res = await fetch(`${url}/webhooks/events`, { method: "POST", headers: standardHeaders(VARS.WEBHOOK_SECRET, id, body), body });
    const answered = performance.now();
    await res.arrayBuffer();
    const at = await Promise.race([seen, new Promise((r) => setTimeout(() => r(null), 2000))]);
    waiting.delete(call);
    if (at === null) lost++;
    else latencies.push(Math.max(0, at - answered));
    await new Promise((r) => setTimeout(r, 50));
  }
  const mixed = await load;
  for (const ws of sockets) ws.close();
  latencies.sort((a, b) => a - b);
  return { count: latencies.length, lost, p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1) ?? NaN, mixedRps: mixed.rps, sockets: sockets.length };
}

function workerdPeakRssMb() {
  let peak = 0;
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      if (!/^Name:\s+workerd/m.test(status)) continue;
      if (!status.includes(`PPid:\t${process.pid}`)) continue;
      const hwm = status.match(/VmHWM:\s+(\d+) kB/);
      if (hwm) peak = Math.max(peak, Number(hwm[1]) / 1024);
    } catch {
      // the process went away
    }
  }
  return peak;
}

async function stats(url) {
  const res = await fetch(`${url}/api/cache/stats`, { headers: { Authorization: `Bearer ${VARS.ADMIN_TOKEN}` } });
  return (await res.json()).data.counters;
}

/** CPU seconds used so far by this process's workerd children (each Miniflare runs one). */
function workerdCpu() {
  return workerdPids().reduce((sum, pid) => sum + cpuSeconds(pid), 0);
}

function delta(a, b) {
  return Object.fromEntries(Object.keys(b).map((k) => [k, b[k] - a[k]]));
}

const MODES = {
  off: { label: "cache off", vars: { CACHE_ENABLED: "false" } },
  kv: { label: "KV only", vars: { CACHE_MEMORY_ENABLED: "false" } },
  all: { label: "all tiers", vars: {} },
  warm: { label: "all tiers + warm after invalidate", vars: { CACHE_WARM_AFTER_INVALIDATE: "true" }, mixedOnly: true },
};

async function main() {
  if (spawnSync("wrk", ["--version"]).error) throw new Error("wrk is not installed (npm run bench installs it)");
  const now = Date.now();
  const template = await datasetTemplate(now);
  const counts = callCounts();
  const scratch = mkdtempSync(join(tmpdir(), "bench-"));
  const heavy = userId(0);
  const files = {
    list: join(scratch, "list.txt"),
    summary: join(scratch, "summary.txt"),
    health: join(scratch, "health.txt"),
  };
  writeFileSync(files.list, line("GET", "/api/webhook-calls", { Authorization: `Bearer ${token(heavy)}` }) + "\n");
  writeFileSync(files.summary, line("GET", "/api/intent-analysis?limit=20", { Authorization: `Bearer ${token(heavy)}` }) + "\n");
  writeFileSync(files.health, line("GET", "/api/health", {}) + "\n");

  const rows = [];
  let peakRss = 0;
  let live;
  const only = process.env.BENCH_MODES?.split(",").map((m) => m.trim());
  const extraVars = JSON.parse(process.env.BENCH_VARS ?? "{}");
  for (const [mode, { label, vars: modeVars, mixedOnly }] of Object.entries(MODES)) {
    if (only && !only.includes(mode)) continue;
    const vars = { ...modeVars, ...extraVars };
    const dir = join(scratch, mode);
    cpSync(template, dir, { recursive: true });
    // The API as production serves it: `run_worker_first` sends /api/* and /webhooks/* to the
    // worker before any asset lookup, in Cloudflare's router, not the worker's isolate.
    // Miniflare emulates that router with a JavaScript worker in the same process, in front of
    // every request; its cost is shown apart (the floor behind it), not charged to each row.
    const worker = await startWorker({ persistDir: dir, vars: { ...VARS, ...vars }, assets: null });
    try {
      const run = async (name, file, prime, opts) => {
        if (prime) {
          for (let i = 0; i < 3; i++) await fetch(worker.url + prime.path, { headers: prime.headers });
          await new Promise((r) => setTimeout(r, 200));
        }
        const before = await stats(worker.url);
        const cpuBefore = workerdCpu();
        log(`${label}: ${name} ${opts?.once ? "(the whole list, once)" : `for ${SECONDS}s`}`);
        const r = opts?.once ? await wrkOnce(worker.url, file, { capSeconds: MIXED_CAP_SECONDS, connections: CONNECTIONS }) : wrk(worker.url, file);
        const cpuUs = ((workerdCpu() - cpuBefore) * 1e6) / r.requests;
        const d = delta(before, await stats(worker.url));
        const reads = d.hitsMemory + d.hitsKv + d.misses + d.staleServed + d.bypassed + d.coalesced;
        rows.push({ mode: label, name, ...r, cpuUs, d, reads });
        log(`${label}: ${name}: ${r.requests} requests, ${Math.round(r.rps)} req/s, ${Math.round(cpuUs)} workerd CPU µs/req, counters ${JSON.stringify(d)}`);
        peakRss = Math.max(peakRss, workerdPeakRssMb());
      };
      if (mode === "all") {
        await run("floor: /api/health", files.health);
        cpSync(template, join(scratch, "routed"), { recursive: true });
        const routed = await startWorker({ persistDir: join(scratch, "routed"), vars: { ...VARS, ...vars } });
        try {
          const cpuBefore = workerdCpu();
          log(`${label}: floor behind Miniflare's asset router for ${SECONDS}s`);
          const r = wrk(routed.url, files.health);
          // Both workerd processes run meanwhile; the idle one's CPU is noise.
          const cpuUs = ((workerdCpu() - cpuBefore) * 1e6) / r.requests;
          rows.push({ mode: label, name: "floor: /api/health, behind Miniflare's static-asset router", ...r, cpuUs, d: delta({}, {}), reads: 0 });
        } finally {
          await routed.dispose();
        }
      }
      const auth = { Authorization: `Bearer ${token(heavy)}` };
      if (!mixedOnly) {
        await run("page 1 (limit 50), 12k-call user", files.list, { path: "/api/webhook-calls", headers: auth });
        await run("summary (limit 20), 12k-call user", files.summary, { path: "/api/intent-analysis?limit=20", headers: auth });
      }
      const mixed = mixedRequests(MIXED_REQUESTS, counts, { webhookShare: WEBHOOK_SHARE });
      await primeReads(worker.url, mixed.lines, label, log);
      const mixedFile = join(scratch, `mixed-${mode}.txt`);
      writeFileSync(mixedFile, mixed.lines.join("\n") + "\n");
      const pct = Math.round(WEBHOOK_SHARE * 100);
      await run(`mixed: ${100 - pct}% Zipf reads, ${pct}% webhooks`, mixedFile, null, { once: true });
      if (mode === "all") {
        log(`${label}: live feed under the mixed load for ${SECONDS}s`);
        live = await liveScenario(worker.url, mixedFile);
      }
    } finally {
      await worker.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  // Before the scratch folder goes: the tiers' runs read its request files.
  const tiers =
    TIER_ROUNDS > 0 && (!only || ["off", "kv", "all"].every((m) => only.includes(m)))
      ? await interleavedTiers(template, files, heavy, extraVars)
      : [];
  rmSync(scratch, { recursive: true, force: true });

  const interleaved =
    MIXED_ROUNDS > 0 && (!only || (only.includes("off") && only.includes("all")))
      ? await interleavedMixed(template, counts, extraVars)
      : [];

  // Single misses, measured on their own: rows read by one uncached load.
  const missDir = mkdtempSync(join(tmpdir(), "bench-miss-"));
  cpSync(template, missDir, { recursive: true });
  const missWorker = await startWorker({ persistDir: missDir, vars: { ...VARS, CACHE_ENABLED: "false" } });
  const miss = {};
  // Ranges end on the day after the heavy user's newest call (the data set may be older than today).
  const { m: newest } = await missWorker.db.prepare("SELECT MAX(started_at) AS m FROM calls WHERE user_id = ?1").bind(heavy).first();
  const endDay = Math.floor(newest / 86_400_000) + 1;
  const date = (day) => new Date(day * 86_400_000).toISOString().slice(0, 10);
  const days = (n) => `from=${date(endDay - n)}&to=${date(endDay)}`;
  miss.reads = [
    ["page", "page 1 (limit 50)", "/api/webhook-calls"],
    ["summary", "summary, all time (limit 20)", "/api/intent-analysis?limit=20"],
    ["summary7", "summary, 7 days (limit 20)", `/api/intent-analysis?limit=20&${days(7)}`],
    ["summary30", "summary, 30 days (limit 20)", `/api/intent-analysis?limit=20&${days(30)}`],
    ["summary90", "summary, 90 days (limit 20)", `/api/intent-analysis?limit=20&${days(90)}`],
    ["failed", "page, status=failed (its index)", "/api/webhook-calls?status=failed"],
    ["intent", "page, intent=billing (its index)", "/api/webhook-calls?intent=billing"],
    ["week", "page, the last 7 days (the range in the index)", `/api/webhook-calls?${days(7)}`],
    ["busyFailed", "page, status=busy,failed (matched as scanned)", "/api/webhook-calls?status=busy,failed"],
    ["outbound", "page, direction=outbound (no call matches: the scan stops)", "/api/webhook-calls?direction=outbound"],
  ];
  for (const [key, , path] of miss.reads) {
    const before = await stats(missWorker.url);
    const res = await fetch(missWorker.url + path, { headers: { Authorization: `Bearer ${token(heavy)}` } });
    if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    miss[key] = { ...delta(before, await stats(missWorker.url)), count: (await res.json()).data?.length };
  }
  await missWorker.dispose();
  rmSync(missDir, { recursive: true, force: true });

  // The race against the plain JavaScript worker and a bare workers-rs one (scripts/race.mjs).
  const raced =
    process.env.BENCH_RACE === "0"
      ? []
      : await race({
          template,
          vars: VARS,
          auth: `Bearer ${token(heavy)}`,
          heavy,
          users: Array.from({ length: 40 }, (_, i) => userId(i)),
          seconds: Math.max(1, Number(process.env.BENCH_RACE_SECONDS ?? 3) || 3),
          connections: CONNECTIONS,
          rounds: Math.max(1, Number(process.env.BENCH_RACE_ROUNDS ?? 8) || 8),
        });

  const wasmFile = join(ROOT, "build/index_bg.wasm");
  const report = [render(rows, miss, peakRss, readFileSync(wasmFile).length, gzipBytes(wasmFile), live, interleaved, tiers), ...(raced.length ? ["", ...raced] : [])].join("\n");
  console.log(report);
  mkdirSync(join(ROOT, "bench"), { recursive: true });
  writeFileSync(join(ROOT, "bench/results.md"), report + "\n");
  log("written to bench/results.md");
}

/**
 * The mixed scenario's ratio measured side by side: a cache-off and an all-tiers worker on
 * copies of the same data, the mixed list replayed once on each in turn (off, all; then all,
 * off; …), its webhooks renamed each round (a delivery seen before is not applied again).
 * A new list each round measured something else: the all-tiers side slowed round after round
 * (3.14, 2.60, 2.40), likely as each round's new reads crowded the memory tier. The modes
 * above run minutes apart, and this host's speed drifts by a fifth within minutes; here both
 * sides of a round meet the same drift, and the median of the rounds is the figure the target
 * reads. Each run's CPU window includes SETTLE_MS after its last response, so the refreshed
 * views' KV writes (1 s later) are charged to the run that caused them.
 */
/**
 * Workers on copies of the same data, one per entry of `configs` (`[name, vars]`), handed to
 * `measure` as `{ name, dir, worker }`; all disposed, and their copies removed, afterwards.
 */
async function sideBySide(template, configs, extraVars, measure) {
  const sides = [];
  try {
    for (const [name, vars] of configs) {
      const dir = mkdtempSync(join(tmpdir(), "bench-sides-"));
      cpSync(template, dir, { recursive: true });
      // Listed before it starts, so that its copy is removed even if starting fails.
      const side = { name, dir, worker: undefined };
      sides.push(side);
      side.worker = await startWorker({ persistDir: dir, vars: { ...VARS, ...vars, ...extraVars }, assets: null });
    }
    return await measure(sides);
  } finally {
    for (const side of sides) {
      await side.worker?.dispose();
      rmSync(side.dir, { recursive: true, force: true });
    }
  }
}

async function interleavedMixed(template, counts, extraVars) {
  return sideBySide(template, [["cache off", { CACHE_ENABLED: "false" }], ["all tiers", {}]], extraVars, async (sides) => {
    const rounds = [];
    for (let round = 1; round <= MIXED_ROUNDS; round++) {
      // The same reads every round (the working set stays the one the table above measured);
      // the webhooks renamed, so that each round's are new deliveries.
      const mixed = mixedRequests(MIXED_REQUESTS, counts, { webhookShare: WEBHOOK_SHARE, round });
      const file = join(sides[0].dir, `mixed-round-${round}.txt`);
      writeFileSync(file, mixed.lines.join("\n") + "\n");
      const measured = {};
      for (const side of round % 2 ? sides : [...sides].reverse()) {
        await primeReads(side.worker.url, mixed.lines, `interleaved round ${round}, ${side.name}`, log);
        const cpuBefore = workerdCpu();
        const r = await wrkOnce(side.worker.url, file, { capSeconds: MIXED_CAP_SECONDS, connections: CONNECTIONS });
        await new Promise((done) => setTimeout(done, SETTLE_MS));
        const cpuUs = ((workerdCpu() - cpuBefore) * 1e6) / r.requests;
        measured[side.name] = { rps: r.rps, cpuUs };
        log(`interleaved round ${round}, ${side.name}: ${Math.round(r.rps)} req/s, ${Math.round(cpuUs)} workerd CPU µs/req`);
      }
      rounds.push({ round, off: measured["cache off"], all: measured["all tiers"] });
    }
    return rounds;
  });
}

/**
 * The targets that compare tiers (a memory hit against the floor and against cache off, a KV
 * hit against cache off) measured side by side, as the mixed one is: a cache-off, a KV-only
 * and an all-tiers worker on copies of the same data, page 1 read on each and the floor on the
 * all-tiers one, in turn (the order reversed every other round), for TIER_ROUNDS rounds of
 * TIER_SECONDS each. The modes above measure the same reads minutes apart, and this host's
 * speed drifts by more than these targets' margins in that time; each ratio here is the median
 * of its rounds' ratios.
 */
async function interleavedTiers(template, files, heavy, extraVars) {
  const configs = [["off", { CACHE_ENABLED: "false" }], ["kv", { CACHE_MEMORY_ENABLED: "false" }], ["all", {}]];
  return sideBySide(template, configs, extraVars, async (sides) => {
    const runs = [...sides.map((side) => ({ key: side.name, side, file: files.list })), { key: "floor", side: sides[2], file: files.health }];
    for (const { worker } of sides) {
      for (let i = 0; i < 3; i++) await (await fetch(worker.url + "/api/webhook-calls", { headers: { Authorization: `Bearer ${token(heavy)}` } })).arrayBuffer();
    }
    await new Promise((done) => setTimeout(done, 300)); // KV writes land after their responses
    const rounds = [];
    for (let round = 1; round <= TIER_ROUNDS; round++) {
      const measured = {};
      for (const run of round % 2 ? runs : [...runs].reverse()) {
        const r = wrk(run.side.worker.url, run.file, TIER_SECONDS);
        if (r.non2xx) throw new Error(`tiers round ${round}, ${run.key}: ${r.non2xx} non-2xx responses`);
        measured[run.key] = r.rps;
      }
      log(`tiers round ${round}: ${Object.entries(measured).map(([k, v]) => `${k} ${Math.round(v)}`).join(", ")} req/s`);
      rounds.push(measured);
    }
    return rounds;
  });
}

function render(rows, miss, peakRss, wasmRaw, wasmGz, live, interleaved, tiers) {
  // A mode left out by BENCH_MODES measures nothing: its figures print as "–".
  const absent = { rps: NaN, reads: 0, requests: 0, d: new Proxy({}, { get: () => NaN }) };
  const find = (mode, prefix) => rows.find((r) => r.mode === mode && r.name.startsWith(prefix)) ?? absent;
  const floor = find("all tiers", "floor");
  const fmt = (n, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : "–");
  const lines = [];
  lines.push(`# Benchmark results`);
  lines.push("");
  lines.push(`${new Date().toISOString()} · ${cpus().length} cores · wrk 1 thread × ${CONNECTIONS} connections, ${SECONDS} s per scenario · ${USERS} users, ${CALLS} calls · \`npm run bench\``);
  lines.push("");
  lines.push(
    `Mixed runs replay all ${MIXED_REQUESTS} requests once, in order, after each distinct read among them was made once (steady state); ` +
      "reads are page 1, the summary, and details/analyses of ten calls per user; their non-2xx are analyses that do not exist (404). " +
      "workerd CPU is the whole workerd process's (the worker, Miniflare's D1 and KV simulators, its static-asset router, the live feed's objects) per request: less noisy than req/s on a shared machine.",
  );
  lines.push("");
  lines.push("| mode | scenario | req/s | workerd CPU µs/req | p50 ms | p99 ms | non-2xx | D1 queries/read | D1 rows/req | version syncs/read | sync rows/read | memory hit | KV hit | miss | × cache off | × floor |");
  lines.push("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const r of rows) {
    const off = rows.find((o) => o.mode === "cache off" && o.name.startsWith(r.name.split(":")[0].split(" (")[0]));
    const per = (x) => (r.requests ? x / r.requests : NaN);
    const share = (x) => (r.reads ? `${fmt((100 * x) / r.reads, 1)} %` : "–");
    lines.push(`| ${r.mode} | ${r.name} | ${fmt(r.rps)} | ${fmt(r.cpuUs)} | ${fmt(r.p50_us / 1000, 2)} | ${fmt(r.p99_us / 1000, 2)} | ${r.non2xx + r.socket_errors} | ${fmt(r.reads ? (r.d.misses + r.d.bypassed) / r.reads : 0, 3)} | ${fmt(per(r.d.d1RowsRead + (r.d.refreshRowsRead ?? 0)), 1)} | ${fmt(r.reads ? r.d.versionSyncs / r.reads : 0, 4)} | ${fmt(r.reads ? r.d.versionRowsRead / r.reads : 0, 3)} | ${share(r.d.hitsMemory + r.d.coalesced)} | ${share(r.d.hitsKv)} | ${share(r.d.misses + r.d.bypassed)} | ${off && r.name !== "floor: /api/health" ? fmt(r.rps / off.rps, 2) : "–"} | ${fmt(r.rps / floor.rps, 2)} |`);
  }
  const all = (p) => find("all tiers", p);
  const kv = (p) => find("KV only", p);
  const off = (p) => find("cache off", p);
  const mixedAll = all("mixed");
  const mixedOff = off("mixed");
  const readsAll = mixedAll.reads || 1;
  // Each miss or bypass is one D1 round trip made for a read; refreshes and warming are
  // counted apart (backgroundLoads), as work after the response.
  const perRead = (r) => (r.d.misses + r.d.bypassed) / (r.reads || 1);
  const d1PerReadAll = perRead(mixedAll);
  const d1PerReadOff = perRead(mixedOff);
  // With warming, webhooks pay for reloads after their response; reads are what is measured here.
  const mixedWarm = find("all tiers + warm after invalidate", "mixed");
  const warmReads = perRead(mixedWarm);
  // Every D1 round trip made for reads, version syncs included.
  const tripsPerRead = (r) => (r.d.misses + r.d.bypassed + r.d.versionSyncs) / (r.reads || 1);
  // The tier targets from the modes' rows when the side-by-side rounds were left out.
  const fromModes = { all: all("page"), kv: kv("page"), off: off("page"), floor };
  const targets = [
    ["mixed: ≤ 0.02 D1 round trips per read, version syncs included", tripsPerRead(mixedAll), (x) => x <= 0.02, 4],
    ["mixed: ≤ 5.6 D1 rows read per request (refresh on write included)", (mixedAll.d.d1RowsRead + (mixedAll.d.refreshRowsRead ?? 0)) / (mixedAll.requests || 1), (x) => x <= 5.6, 2],
    interleaved.length
      ? [`mixed: ≥ 3 × cache off req/s (median of ${interleaved.length} interleaved rounds)`, median(interleaved.map((r) => r.all.rps / r.off.rps)), (x) => x >= 3, 2]
      : ["mixed: ≥ 3 × cache off req/s", mixedAll.rps / mixedOff.rps, (x) => x >= 3, 2],
    ["live feed: p99 webhook response → `changed` < 1000 ms", live?.p99 ?? NaN, (x) => x < 1000, 1],
    ...[
      ["memory hit ≥ 0.85 × floor req/s", "all", "floor", 0.85],
      ["memory hit ≥ 5 × cache off (page 1)", "all", "off", 5],
      ["KV hit ≥ 2 × cache off (page 1)", "kv", "off", 2],
    ].map(([name, a, b, want]) =>
      tiers.length
        ? [`${name} (median of ${tiers.length} interleaved rounds)`, median(tiers.map((r) => r[a] / r[b])), (x) => x >= want, 2]
        : [name, fromModes[a].rps / fromModes[b].rps, (x) => x >= want, 2],
    ),
    ["mixed: ≤ 0.05 D1 queries per read", d1PerReadAll, (x) => x <= 0.05, 3],
    ["mixed, warm after invalidate: ≤ 0.05 D1 queries per read", warmReads, (x) => x <= 0.05, 3],
    ["mixed: ≥ 95 % fewer D1 queries than cache off", 1 - d1PerReadAll / d1PerReadOff, (x) => x >= 0.95, 3],
    ["mixed, warm after invalidate: ≥ 95 % fewer than cache off", 1 - warmReads / d1PerReadOff, (x) => x >= 0.95, 3],
    ["summary miss ≤ 50 rows read (12k-call user, limit 20)", miss.summary.d1RowsRead, (x) => x <= 50, 0],
    ["page miss ≤ limit + 5 rows read (limit 50)", miss.page.d1RowsRead, (x) => x <= 55, 0],
    ["filtered page its index decides ≤ limit + 5 rows read (status=failed, limit 50)", miss.failed.d1RowsRead, (x) => x <= 55, 0],
    ["90-day summary ≤ 90 + limit + 5 rows read (one per day, whatever the calls or intents; limit 20)", miss.summary90.d1RowsRead, (x) => x <= 115, 0],
    [`wasm ≤ ${WASM_BUDGET_KB} KB gzipped (the build's budget, scripts/build.sh)`, wasmGz / 1024, (x) => x <= WASM_BUDGET_KB, 1],
  ];
  lines.push("");
  lines.push("| target | measured | met |");
  lines.push("| --- | ---: | :---: |");
  for (const [name, value, ok, d] of targets) lines.push(`| ${name} | ${fmt(value, d)} | ${ok(value) ? "yes" : "**no**"} |`);
  lines.push("");
  lines.push("| one uncached read, the 12,000-call user | calls listed | D1 queries | D1 rows read |");
  lines.push("| --- | ---: | ---: | ---: |");
  for (const [key, name] of miss.reads) lines.push(`| ${name} | ${fmt(miss[key].count)} | ${fmt(miss[key].d1Queries)} | ${fmt(miss[key].d1RowsRead)} |`);
  if (live) {
    lines.push("");
    lines.push("| live feed (all tiers, under the mixed load) | sockets | webhooks | lost | p50 ms | p99 ms | max ms | mixed req/s meanwhile |");
    lines.push("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    lines.push(`| webhook response → \`changed\` message | ${live.sockets} | ${live.count} | ${live.lost} | ${fmt(live.p50, 1)} | ${fmt(live.p99, 1)} | ${fmt(live.max, 1)} | ${fmt(live.mixedRps)} |`);
  }
  lines.push("");
  lines.push(
    "With refresh on write (the default), a webhook for a user whose first page or summary was read in the last 60 s patches the ones held in memory " +
      "with the one call its own batch read back (a few rows), and reads the others back whole in that batch, so the next reads of those are hits; " +
      "the rows those read-backs cost are counted in D1 rows/req. A call's detail and analysis are carried past changes about other calls " +
      "(the version feed names each change's call), from memory and from KV (a call's KV key holds no version, its entry does). " +
      "Version syncs are the version feed's reads (one per 4 s per isolate while it serves reads) and syncs by name for users the isolate has not seen.",
  );
  if (mixedAll.d.refreshedOnWrite !== undefined) {
    const d = mixedAll.d;
    lines.push("");
    lines.push(
      `Mixed, all tiers: ${d.refreshedOnWrite} views refreshed on write, ${d.patchedOnWrite} of them patched, ${d.refreshRowsRead} rows read back; ` +
        `${d.kvWritesCoalesced} KV writes of refreshed views coalesced; ${d.carriedForward} call entries carried; ` +
        `misses: ${d.misses} (${d.missesCallScoped} for a call's key, ${d.missesRetired} of keys memory held at a retired version).`,
    );
  }
  if (interleaved.length) {
    lines.push("");
    lines.push(
      `The mixed list on a cache-off and an all-tiers worker served side by side, replayed once on each in turn (the order alternating), ` +
        `its webhooks renamed each round; each run's CPU includes the ${SETTLE_MS / 1000} s after its last response (refreshed views reach KV 1 s after their webhook). ` +
        "The target reads the median ratio: the modes above run minutes apart, and this host's speed drifts more than the target's margin in that time.",
    );
    lines.push("");
    lines.push("| round | cache off req/s | all tiers req/s | × cache off | cache off CPU µs/req | all tiers CPU µs/req | × on CPU |");
    lines.push("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (const r of interleaved) {
      lines.push(`| ${r.round} | ${fmt(r.off.rps)} | ${fmt(r.all.rps)} | ${fmt(r.all.rps / r.off.rps, 2)} | ${fmt(r.off.cpuUs)} | ${fmt(r.all.cpuUs)} | ${fmt(r.off.cpuUs / r.all.cpuUs, 2)} |`);
    }
    lines.push(`| median | | | ${fmt(median(interleaved.map((r) => r.all.rps / r.off.rps)), 2)} | | | ${fmt(median(interleaved.map((r) => r.off.cpuUs / r.all.cpuUs)), 2)} |`);
  }
  if (tiers.length) {
    lines.push("");
    lines.push(
      `Page 1 of the 12,000-call user on a cache-off, a KV-only and an all-tiers worker served side by side, and the floor (\`/api/health\`) on the all-tiers one, ${TIER_SECONDS} s each in turn (the order reversed every other round), after each page was read three times. ` +
        "The tier targets read the median of the rounds' ratios, for the same reason as the mixed one.",
    );
    lines.push("");
    lines.push("| round | cache off req/s | KV hit req/s | memory hit req/s | floor req/s | memory hit × floor | memory hit × cache off | KV hit × cache off |");
    lines.push("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    tiers.forEach((r, i) => lines.push(`| ${i + 1} | ${fmt(r.off)} | ${fmt(r.kv)} | ${fmt(r.all)} | ${fmt(r.floor)} | ${fmt(r.all / r.floor, 2)} | ${fmt(r.all / r.off, 2)} | ${fmt(r.kv / r.off, 2)} |`));
    lines.push(`| median | | | | | ${fmt(median(tiers.map((r) => r.all / r.floor)), 2)} | ${fmt(median(tiers.map((r) => r.all / r.off)), 2)} | ${fmt(median(tiers.map((r) => r.kv / r.off)), 2)} |`);
  }
  lines.push("");
  lines.push(`wasm: ${fmt(wasmRaw / 1024, 1)} KB raw, ${fmt(wasmGz / 1024, 1)} KB gzipped · workerd peak RSS: ${fmt(peakRss, 0)} MB · mixed workload: ${mixedAll.requests} requests, ${Math.round(WEBHOOK_SHARE * 100)} % signed webhooks`);
  return lines.join("\n");
}

await main();
