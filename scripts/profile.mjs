// `npm run profile -- <scenario>`: where the worker's own JavaScript and wasm time goes on one
// route. Serves a release build with its names kept (scripts/profile.sh builds it into
// build-profile/, leaving build/ alone), seeds one user's calls through signed webhooks, makes
// the route's first reads so the tiers are warm, then runs wrk on loopback while V8's sampling
// profiler records the worker's isolate through Miniflare's inspector. Prints the functions
// with the most self time and writes the whole profile as a `.cpuprofile` (open it in Chrome's
// DevTools) to bench/profile-<scenario>.cpuprofile.
//
// Only the worker's isolate is sampled: time spent in workerd itself, in Miniflare's KV and
// D1 simulators and in wrk does not appear, so the figures say what this code costs, not what
// a request costs end to end (the bench's tables say that).
//
//   scenario: health | page | summary | kv-page | d1-page | webhook (the user's page and
//             summary watched, the live feed bound) | ingest (webhooks as the race sends
//             them: cache off, no live feed) | mixed (the bench's mixed list, all tiers,
//             primed as the bench primes it and replayed once; needs PROFILE_DATA=bench)
//             | mixed-parts (unsampled: the mixed list whole, its reads alone and its
//             webhooks alone, with the webhooks for their users and for a user nobody
//             reads, all tiers, cache off and the race's plain JavaScript worker; prints
//             what the whole costs beyond its parts)
//             (default: page)
//   PROFILE_SECONDS  seconds of load (default 8); PROFILE_TOP  rows printed (default 40)
//   PROFILE_CONNECTIONS  wrk's connections (default 8, as the bench)
//   PROFILE_WEBHOOK_SHARE  the mixed scenario's share of webhooks (default 0.05, as the bench)
//   PROFILE_WEBHOOK_USER  the mixed scenario's webhooks all for this user (e.g. one nobody
//                    reads, so that they leave the cache alone)
//   PROFILE_VARS  JSON object of extra worker vars (e.g. a CACHE_* setting)
//   PROFILE_MIXED_ONLY  a regular expression: replay only the mixed list's requests whose
//                    path matches it, to price one kind of request
//   PROFILE_PRIME_ALL=1  prime every read of the whole mixed list even when PROFILE_MIXED_ONLY
//                    replays only some of it (e.g. webhooks for users whose views are watched)
//   PROFILE_SCRIPT  another worker to serve instead (a path in the repository, e.g.
//                    bench/reference/js/worker.mjs, the race's plain JavaScript worker)
//   PROFILE_TARGET  a regular expression: sample the first inspector target whose title
//                    matches it instead of the worker's isolate (the targets are logged): e.g.
//                    `d1:db$`, Miniflare's D1 simulator, where a cache-off read or a webhook
//                    spends most of its time, so two SQL variants compare there
//   PROFILE_BUILD  the build directory to serve (default build-profile, which profile.sh
//                    makes): another build of the same kind, to compare two versions
//   PROFILE_SAMPLE=0  run the scenario without the profiler and print only workerd's CPU per
//                    request, counting PROFILE_SETTLE_MS after the last response (default
//                    1500, as the bench does, for the KV writes a run leaves behind): V8's
//                    sampler (every 100 µs) adds about a third to it and inflates wasm
//                    functions most, so compare variants (PROFILE_VARS, two builds) this way
//                    and look for where the time goes with the sampler on
//   PROFILE_DATA=bench  read the benchmark's data set instead (the newest one `npm run bench`
//                    left in bench/.state/; its user u0000 has 12,000 calls with recordings,
//                    analyses and enrichments), so pages weigh what the bench's pages weigh
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BENCH_VARS, SETTLE_MS as BENCH_SETTLE_MS, cpuSeconds, line, standardHeaders, workerdPids, wrk, wrkOnce } from "./bench-common.mjs";
import { MIXED_REQUESTS, callCounts, mixedRequests, prime } from "./bench-mixed.mjs";
import { ROOT, applyMigrations, signJwt, startWorker } from "./runtime.mjs";

const SCENARIO = process.argv[2] ?? "page";
const SECONDS = Number(process.env.PROFILE_SECONDS ?? 8);
/** wrk's connections (the bench's 8 unless told). */
const CONNECTIONS = Number(process.env.PROFILE_CONNECTIONS ?? 8);
const TOP = Number(process.env.PROFILE_TOP ?? 40);
const BENCH_DATA = process.env.PROFILE_DATA === "bench";
const USER = BENCH_DATA ? "u0000" : "profile-user";
const CALLS = 120;
/** The mixed scenario's share of signed webhooks (the bench's default). */
const WEBHOOK_SHARE = Number(process.env.PROFILE_WEBHOOK_SHARE ?? 0.05);
const SAMPLE = process.env.PROFILE_SAMPLE !== "0";
/** Unsampled: how long after the last response the CPU window stays open (the bench's). */
const SETTLE_MS = Number(process.env.PROFILE_SETTLE_MS ?? BENCH_SETTLE_MS);
/** Another worker's script to serve instead of a build of this one (no live feed bound). */
const SCRIPT = process.env.PROFILE_SCRIPT ? join(ROOT, process.env.PROFILE_SCRIPT) : undefined;
/** Only the mixed list's requests whose path matches (e.g. `^/api/webhook-calls/`). */
const MIXED_ONLY = new RegExp(process.env.PROFILE_MIXED_ONLY ?? "");
const INSPECTOR_PORT = 9300 + Math.floor(Math.random() * 500);
const log = (...a) => console.error("[profile]", ...a);

const auth = () => {
  const now = Math.floor(Date.now() / 1000);
  return { Authorization: `Bearer ${signJwt(BENCH_VARS.JWT_SECRET, { sub: USER, iat: now, exp: now + 3600 })}` };
};

function signedCall(i, prefix = "seed") {
  const id = `msg_${prefix}_${i}`;
  const body = JSON.stringify({
    type: "call.upserted",
    data: { userId: USER, id: `CP${prefix}${String(i).padStart(5, "0")}`, status: "completed", durationSeconds: 30 + (i % 90), startedAt: new Date(Date.now() - i * 60_000).toISOString() },
  });
  return { body, headers: standardHeaders(BENCH_VARS.WEBHOOK_SECRET, id, body) };
}

/** The scenario's request lines, and the vars that put its reads on the tier it measures. */
function scenario(name) {
  switch (name) {
    case "health":
      return { lines: [line("GET", "/api/health", {})], vars: {} };
    case "page":
      return { lines: [line("GET", "/api/webhook-calls", auth())], vars: {} };
    case "summary":
      return { lines: [line("GET", "/api/intent-analysis?limit=20", auth())], vars: {} };
    case "kv-page":
      return { lines: [line("GET", "/api/webhook-calls", auth())], vars: { CACHE_MEMORY_ENABLED: "false" } };
    case "d1-page":
      return { lines: [line("GET", "/api/webhook-calls", auth())], vars: { CACHE_ENABLED: "false" } };
    case "webhook":
    case "ingest":
      return {
        lines: Array.from({ length: 20_000 }, (_, i) => signedCall(i, "load")).map(({ body, headers }) => line("POST", "/webhooks/events", headers, body)),
        vars: name === "ingest" ? { CACHE_ENABLED: "false" } : {},
      };
    case "mixed": {
      if (!BENCH_DATA) throw new Error("the mixed scenario reads the benchmark's data set: PROFILE_DATA=bench");
      const webhookUser = process.env.PROFILE_WEBHOOK_USER || undefined;
      const all = mixedRequests(MIXED_REQUESTS, callCounts(), { webhookShare: WEBHOOK_SHARE, webhookUser }).lines;
      const lines = all.filter((l) => MIXED_ONLY.test(l.split("\t")[1]));
      return { lines, primed: process.env.PROFILE_PRIME_ALL === "1" ? all : lines, vars: {} };
    }
    default:
      throw new Error(`unknown scenario ${name} (health | page | summary | kv-page | d1-page | webhook | ingest | mixed | mixed-parts)`);
  }
}

/** A Chrome DevTools Protocol session over the inspector's WebSocket. */
async function inspect(url) {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error(`inspector at ${url} refused the connection`));
  });
  let next = 1;
  const waiting = new Map();
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    const w = waiting.get(msg.id);
    if (!w) return;
    waiting.delete(msg.id);
    if (msg.error) w.reject(new Error(`${msg.error.message}`));
    else w.resolve(msg.result);
  };
  const send = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const id = next++;
      waiting.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params }));
    });
  return { send, close: () => ws.close() };
}

/** Self time per function (name + where it is), in ms, from a V8 CPU profile. */
function selfTimes(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const ticks = new Map();
  for (const id of profile.samples) ticks.set(id, (ticks.get(id) ?? 0) + 1);
  const interval = (profile.endTime - profile.startTime) / 1000 / profile.samples.length; // ms per sample
  const totals = new Map();
  for (const [id, n] of ticks) {
    const f = byId.get(id).callFrame;
    const where = f.url ? `${f.url.split("/").pop()}:${f.lineNumber + 1}` : "";
    const key = `${f.functionName || "(anonymous)"}${where ? `  ${where}` : ""}`;
    totals.set(key, (totals.get(key) ?? 0) + n * interval);
  }
  return [...totals].sort((a, b) => b[1] - a[1]);
}

/**
 * `mixed-parts`: each mode's mixed list run whole, then its reads alone and its webhooks alone
 * (on fresh copies of the data, the views primed as for the whole), each unsampled in a child
 * run of this script; the whole's CPU less the sum of its parts is what reads and webhooks
 * cost each other when they meet. The webhooks go to the users drawn, then to a user nobody
 * reads (they leave the cache alone: what is left of the excess then is not the cache's).
 */
async function mixedParts() {
  const nobody = "u-nobody-reads";
  const modes = [
    ["all tiers", {}, undefined],
    ["all tiers, webhooks for a user nobody reads", {}, nobody],
    ["cache off", { PROFILE_VARS: JSON.stringify({ CACHE_ENABLED: "false" }) }, undefined],
    // The reference a team would otherwise write, on the same list: Map, KV, D1 (its details
    // and analyses answer 404; a webhook deletes its user's two landing keys).
    ["plain JavaScript worker, webhooks for a user nobody reads", { PROFILE_SCRIPT: "bench/reference/js/worker.mjs" }, nobody],
  ];
  const run = (env) => {
    const res = spawnSync(process.execPath, [process.argv[1], "mixed"], {
      encoding: "utf8",
      env: { ...process.env, PROFILE_SAMPLE: "0", PROFILE_DATA: "bench", ...env },
    });
    const m = res.stdout?.match(/mixed: (\d+) requests, .*; workerd CPU (\d+) µs per request/);
    if (!m) throw new Error(`mixed-parts: a child run failed: ${res.stderr}`);
    return { requests: Number(m[1]), cpuUs: Number(m[2]) };
  };
  const seconds = (r) => (r.requests * r.cpuUs) / 1e6;
  console.log("\n| mode | whole: µs/req | reads alone: µs/req | webhooks alone: µs/webhook | whole s | sum of the parts s | excess s | excess per webhook ms |");
  console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const [name, vars, webhookUser] of modes) {
    const common = { PROFILE_VARS: "{}", ...vars, ...(webhookUser ? { PROFILE_WEBHOOK_USER: webhookUser } : {}) };
    log(`mixed-parts: ${name}`);
    const whole = run(common);
    const reads = run({ ...common, PROFILE_MIXED_ONLY: "^/api/" });
    const hooks = run({ ...common, PROFILE_MIXED_ONLY: "^/webhooks", PROFILE_PRIME_ALL: "1" });
    const parts = seconds(reads) + seconds(hooks);
    const excess = seconds(whole) - parts;
    console.log(
      `| ${name} | ${whole.cpuUs} | ${reads.cpuUs} | ${hooks.cpuUs} | ${seconds(whole).toFixed(2)} | ${parts.toFixed(2)} | ${excess.toFixed(2)} | ${((excess * 1000) / hooks.requests).toFixed(1)} |`,
    );
  }
}

async function main() {
  if (SCENARIO === "mixed-parts") return mixedParts();
  const { lines, vars, primed = lines } = scenario(SCENARIO);
  const dir = mkdtempSync(join(tmpdir(), "profile-"));
  if (BENCH_DATA) {
    const state = join(ROOT, "bench/.state");
    const ready = existsSync(state) ? readdirSync(state).map((d) => join(state, d)).filter((d) => existsSync(join(d, "ready"))) : [];
    if (!ready.length) throw new Error("no benchmark data set in bench/.state/: run `npm run bench` once first");
    const newest = ready.sort((a, b) => statSync(join(b, "ready")).mtimeMs - statSync(join(a, "ready")).mtimeMs)[0];
    cpSync(newest, dir, { recursive: true });
  } else {
    applyMigrations(dir);
  }
  const worker = await startWorker({
    persistDir: dir,
    vars: { ...BENCH_VARS, ...vars, ...JSON.parse(process.env.PROFILE_VARS ?? "{}") },
    live: !SCRIPT && (SCENARIO === "webhook" || SCENARIO === "mixed"),
    assets: null,
    scriptPath: SCRIPT ?? join(ROOT, process.env.PROFILE_BUILD ?? "build-profile", "index.js"),
    inspectorPort: SAMPLE ? INSPECTOR_PORT : undefined,
  });
  const scratch = mkdtempSync(join(tmpdir(), "profile-wrk-"));
  try {
    for (let i = 0; i < (SCENARIO === "mixed" ? 0 : CALLS); i++) {
      const { body, headers } = signedCall(i);
      const res = await fetch(`${worker.url}/webhooks/events`, { method: "POST", headers, body });
      if (!res.ok) throw new Error(`seeding webhook ${i} answered ${res.status}`);
    }
    const file = join(scratch, "lines.txt");
    writeFileSync(file, lines.join("\n") + "\n");
    if (SCENARIO === "mixed") {
      await prime(worker.url, primed, SCENARIO, log);
    } else if (SCENARIO === "ingest") {
      // nothing to warm: every webhook is new
    } else if (SCENARIO === "webhook") {
      // The user's first page and summary read just now: the webhooks refresh them on write,
      // as they would for a user with the dashboard open.
      for (const path of ["/api/webhook-calls", "/api/intent-analysis"]) {
        await (await fetch(worker.url + path, { headers: auth() })).arrayBuffer();
      }
    } else {
      const [, path, headers] = lines[0].split("\t");
      const h = Object.fromEntries(headers.split("\u0001").filter(Boolean).map((kv) => kv.split(": ")));
      for (let i = 0; i < 3; i++) await (await fetch(worker.url + path, { headers: h })).arrayBuffer();
      await new Promise((r) => setTimeout(r, 300));
    }
    let cdp;
    if (SAMPLE) {
      const targets = await (await fetch(`http://127.0.0.1:${INSPECTOR_PORT}/json/list`)).json();
      const wanted = process.env.PROFILE_TARGET ? new RegExp(process.env.PROFILE_TARGET) : undefined;
      if (wanted) log(`inspector targets: ${targets.map((t) => t.title ?? t.id).join(", ")}`);
      const target = wanted
        ? targets.find((t) => wanted.test(t.title ?? "") || wanted.test(t.id ?? ""))
        : (targets.find((t) => t.title?.includes("main") || t.id?.includes("main")) ?? targets[0]);
      if (!target) throw new Error("the inspector lists no worker");
      cdp = await inspect(target.webSocketDebuggerUrl);
      await cdp.send("Profiler.enable");
      await cdp.send("Profiler.setSamplingInterval", { interval: 100 }); // µs
      await cdp.send("Profiler.start");
    }
    const workerdCpu = () => workerdPids().reduce((sum, pid) => sum + cpuSeconds(pid), 0);
    const stats = async () => {
      const res = await fetch(`${worker.url}/api/cache/stats`, { headers: { Authorization: `Bearer ${BENCH_VARS.ADMIN_TOKEN}` } });
      return res.ok ? (await res.json()).data : {};
    };
    const counters = async () => (await stats()).counters ?? {};
    const countersBefore = await counters();
    const cpuBefore = workerdCpu();
    log(`${SCENARIO}: wrk ${SCENARIO === "mixed" ? "over the list once" : `for ${SECONDS}s`}${SAMPLE ? " while sampling the worker's isolate" : ", not sampled"}`);
    const r =
      SCENARIO === "mixed"
        ? await wrkOnce(worker.url, file, { capSeconds: 240, connections: CONNECTIONS })
        : wrk(worker.url, file, { seconds: SECONDS, connections: CONNECTIONS });
    // Unsampled, the CPU window takes in the work a run leaves for after its responses
    // (refreshed views reach KV 1 s after their webhook), as the bench's mixed rounds do.
    if (!SAMPLE) await new Promise((done) => setTimeout(done, SETTLE_MS));
    const cpuMs = (workerdCpu() - cpuBefore) * 1000;
    const perRequest = (ms) => (r.requests ? (ms * 1000) / r.requests : NaN);
    if (!SAMPLE) {
      console.log(`\n${SCENARIO}: ${r.requests} requests, ${Math.round(r.rps)} req/s; workerd CPU ${perRequest(cpuMs).toFixed(0)} µs per request (not sampled)`);
      const after = await counters();
      const moved = Object.entries(after).filter(([k, v]) => typeof v === "number" && v !== countersBefore[k]);
      console.log(`counters: ${moved.map(([k, v]) => `${k} ${v - (countersBefore[k] ?? 0)}`).join(", ")}`);
      const memory = (await stats()).memory;
      if (memory) console.log(`memory tier: ${memory.entries} entries, ${(memory.bytes / 1048576).toFixed(1)} MiB of ${(memory.maxBytes / 1048576).toFixed(0)}`);
      return;
    }
    const { profile } = await cdp.send("Profiler.stop");
    cdp.close();
    const out = join(ROOT, `bench/profile-${SCENARIO}.cpuprofile`);
    writeFileSync(out, JSON.stringify(profile));
    const times = selfTimes(profile);
    const total = times.reduce((a, [, ms]) => a + ms, 0);
    const idle = times.filter(([k]) => /^\((idle|program|garbage collector)\)/.test(k)).reduce((a, [, ms]) => a + ms, 0);
    const busy = total - idle;
    console.log(`\n${SCENARIO}: ${r.requests} requests, ${Math.round(r.rps)} req/s; the isolate busy ${busy.toFixed(0)} ms of ${total.toFixed(0)} sampled (${perRequest(busy).toFixed(1)} µs per request); workerd CPU ${perRequest(cpuMs).toFixed(0)} µs per request, the sampler's own cost included\n`);
    console.log("| self ms | µs/request | % of busy | function |");
    console.log("| ---: | ---: | ---: | --- |");
    for (const [k, ms] of times.slice(0, TOP)) {
      console.log(`| ${ms.toFixed(1)} | ${perRequest(ms).toFixed(1)} | ${((100 * ms) / busy).toFixed(1)} | ${k.replaceAll("|", "\\|")} |`);
    }
    log(`the whole profile: ${out}`);
  } finally {
    await worker.dispose();
    rmSync(dir, { recursive: true, force: true });
    rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
