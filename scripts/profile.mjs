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
//             (default: page)
//   PROFILE_SECONDS  seconds of load (default 8); PROFILE_TOP  rows printed (default 40)
//   PROFILE_WEBHOOK_SHARE  the mixed scenario's share of webhooks (default 0.05, as the bench)
//   PROFILE_VARS  JSON object of extra worker vars (e.g. a CACHE_* setting)
//   PROFILE_MIXED_ONLY  a regular expression: replay only the mixed list's requests whose
//                    path matches it, to price one kind of request
//   PROFILE_BUILD  the build directory to serve (default build-profile, which profile.sh
//                    makes): another build of the same kind, to compare two versions
//   PROFILE_SAMPLE=0  run the scenario without the profiler and print only workerd's CPU per
//                    request: V8's sampler (every 100 µs) adds about a third to it and
//                    inflates wasm functions most, so compare variants (PROFILE_VARS, two
//                    builds) this way and look for where the time goes with the sampler on
//   PROFILE_DATA=bench  read the benchmark's data set instead (the newest one `npm run bench`
//                    left in bench/.state/; its user u0000 has 12,000 calls with recordings,
//                    analyses and enrichments), so pages weigh what the bench's pages weigh
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BENCH_VARS, cpuSeconds, line, standardHeaders, workerdPids, wrk, wrkOnce } from "./bench-common.mjs";
import { MIXED_REQUESTS, callCounts, mixedRequests, prime } from "./bench-mixed.mjs";
import { ROOT, applyMigrations, signJwt, startWorker } from "./runtime.mjs";

const SCENARIO = process.argv[2] ?? "page";
const SECONDS = Number(process.env.PROFILE_SECONDS ?? 8);
const TOP = Number(process.env.PROFILE_TOP ?? 40);
const BENCH_DATA = process.env.PROFILE_DATA === "bench";
const USER = BENCH_DATA ? "u0000" : "profile-user";
const CALLS = 120;
/** The mixed scenario's share of signed webhooks (the bench's default). */
const WEBHOOK_SHARE = Number(process.env.PROFILE_WEBHOOK_SHARE ?? 0.05);
const SAMPLE = process.env.PROFILE_SAMPLE !== "0";
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
    case "mixed":
      if (!BENCH_DATA) throw new Error("the mixed scenario reads the benchmark's data set: PROFILE_DATA=bench");
      return { lines: mixedRequests(MIXED_REQUESTS, callCounts(), { webhookShare: WEBHOOK_SHARE }).lines.filter((l) => MIXED_ONLY.test(l.split("\t")[1])), vars: {} };
    default:
      throw new Error(`unknown scenario ${name} (health | page | summary | kv-page | d1-page | webhook | ingest | mixed)`);
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

async function main() {
  const { lines, vars } = scenario(SCENARIO);
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
    live: SCENARIO === "webhook" || SCENARIO === "mixed",
    assets: null,
    scriptPath: join(ROOT, process.env.PROFILE_BUILD ?? "build-profile", "index.js"),
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
      await prime(worker.url, lines, SCENARIO, log);
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
      const target = targets.find((t) => t.title?.includes("main") || t.id?.includes("main")) ?? targets[0];
      if (!target) throw new Error("the inspector lists no worker");
      cdp = await inspect(target.webSocketDebuggerUrl);
      await cdp.send("Profiler.enable");
      await cdp.send("Profiler.setSamplingInterval", { interval: 100 }); // µs
      await cdp.send("Profiler.start");
    }
    const workerdCpu = () => workerdPids().reduce((sum, pid) => sum + cpuSeconds(pid), 0);
    const counters = async () => {
      const res = await fetch(`${worker.url}/api/cache/stats`, { headers: { Authorization: `Bearer ${BENCH_VARS.ADMIN_TOKEN}` } });
      return res.ok ? (await res.json()).data.counters : {};
    };
    const countersBefore = await counters();
    const cpuBefore = workerdCpu();
    log(`${SCENARIO}: wrk ${SCENARIO === "mixed" ? "over the list once" : `for ${SECONDS}s`}${SAMPLE ? " while sampling the worker's isolate" : ", not sampled"}`);
    const r =
      SCENARIO === "mixed"
        ? await wrkOnce(worker.url, file, { capSeconds: 240, connections: 8 })
        : wrk(worker.url, file, { seconds: SECONDS, connections: 8 });
    const cpuMs = (workerdCpu() - cpuBefore) * 1000;
    const perRequest = (ms) => (r.requests ? (ms * 1000) / r.requests : NaN);
    if (!SAMPLE) {
      console.log(`\n${SCENARIO}: ${r.requests} requests, ${Math.round(r.rps)} req/s; workerd CPU ${perRequest(cpuMs).toFixed(0)} µs per request (not sampled)`);
      await new Promise((done) => setTimeout(done, 300)); // work left for after the responses
      const after = await counters();
      const moved = Object.entries(after).filter(([k, v]) => typeof v === "number" && v !== countersBefore[k]);
      console.log(`counters: ${moved.map(([k, v]) => `${k} ${v - (countersBefore[k] ?? 0)}`).join(", ")}`);
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
