// The race: this project's release worker against the plain JavaScript worker a team would
// write instead (bench/reference/js/worker.mjs) and, at the floor, a bare workers-rs worker
// (bench/reference/bare), each served by its own Miniflare on the same data, measured in turn
// by the same wrk in the same run. Called by scripts/bench.mjs; prints absolute req/s, p50/p99
// and the ratio per route and tier, and each side's workerd CPU time per request (read from
// /proc: each Miniflare runs its own workerd), which moves far less with the machine's other
// load than req/s does. The sides take turns in rounds, each round measuring them back to back,
// and a target reads the median of the rounds' ratios. A last row races the project's ingest
// against the reference running the project's own batch (`PROJECT_INGEST_SQL`).
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { callUpsertLines, cpuSeconds, line, median, workerdPids, wrk as wrkCycling } from "./bench-common.mjs";
import { ROOT, startWorker } from "./runtime.mjs";

const log = (...a) => console.error("[bench:race]", ...a);
const BARE = join(ROOT, "bench/reference/bare");
const JS = join(ROOT, "bench/reference/js/worker.mjs");
/** The store's own ingest statements, for the reference to run (a host test keeps them current). */
const PROJECT_INGEST_SQL = join(ROOT, "bench/reference/js/project-ingest-sql.json");

/** The bare workers-rs worker's release build (kept in bench/reference/bare/build/). */
export function buildBare() {
  if (existsSync(join(BARE, "build/index.js")) && process.env.BENCH_REBUILD_BARE !== "1") return;
  log("building the bare workers-rs worker (first run: a few minutes)");
  const env = {
    ...process.env,
    PATH: `${join(ROOT, "node_modules/.bin")}:${process.env.HOME}/.cargo/bin:${process.env.PATH}`,
    WASM_BINDGEN_BIN: spawnSync("bash", ["-c", "command -v wasm-bindgen"], { encoding: "utf8" }).stdout.trim(),
    ESBUILD_BIN: join(ROOT, "node_modules/.bin/esbuild"),
  };
  execFileSync("worker-build", ["--release"], { cwd: BARE, env, stdio: ["ignore", "ignore", "inherit"] });
}

const wrk = (url, file, seconds, connections) => wrkCycling(url, file, { seconds, connections });

/** Unique signed call.upserted webhooks for `users`, the way scripts/bench.mjs signs them. */
function webhookLines(secret, users, count) {
  const ts = Math.floor(Date.now() / 1000);
  return callUpsertLines(secret, count, (i) => {
    const user = users[i % users.length];
    return { webhookId: `msg_race_${ts}_${i}`, userId: user, callId: `CR${user}x${i}` };
  });
}

/**
 * `template`: the loaded bench state to copy for each worker; `vars`: the project's vars;
 * `auth`: `Bearer …` for `heavy`, the 12,000-call user. Returns the rendered table's lines.
 */
export async function race({ template, vars, auth, heavy, users, seconds, connections, rounds = 8 }) {
  buildBare();
  const scratch = mkdtempSync(join(tmpdir(), "bench-race-"));
  const file = (name, text) => {
    const path = join(scratch, name);
    writeFileSync(path, text);
    return path;
  };
  const files = {
    health: file("health.txt", line("GET", "/api/health", {}) + "\n"),
    page: file("page.txt", line("GET", "/api/webhook-calls", { Authorization: auth }) + "\n"),
    summary: file("summary.txt", line("GET", "/api/intent-analysis?limit=20", { Authorization: auth }) + "\n"),
  };
  // Each configuration is a pair (project, reference) with the same tier switched off.
  const configs = {
    all: { project: {}, js: {} },
    kv: { project: { CACHE_MEMORY_ENABLED: "false" }, js: { MEMORY: "false" } },
    off: { project: { CACHE_ENABLED: "false" }, js: { CACHE_ENABLED: "false" } },
    // The reference running this project's own ingest batch: the same SQL from plain
    // JavaScript, so that the ingest's gap splits into the SQL and the handling around it.
    sameSql: { project: { CACHE_ENABLED: "false" }, js: { CACHE_ENABLED: "false", PROJECT_INGEST_SQL: readFileSync(PROJECT_INGEST_SQL, "utf8") } },
  };
  const scenarios = [
    { route: "/api/health", tier: "trivial route", config: "all", file: files.health, vsBare: true, target: ["bare", 0.95] },
    { route: "page 1 (limit 50), 12k-call user", tier: "memory hit", config: "all", file: files.page, prime: true, target: ["js", 1.0] },
    { route: "page 1 (limit 50), 12k-call user", tier: "KV hit", config: "kv", file: files.page, prime: true, target: ["js", 1.0] },
    { route: "page 1 (limit 50), 12k-call user", tier: "D1 (cache off)", config: "off", file: files.page, target: ["js", 1.1] },
    { route: "intent summary (limit 20), 12k-call user", tier: "D1 (cache off)", config: "off", file: files.summary, target: ["js", 2.0] },
    { route: "webhook ingest (call.upserted), deliveries/s", tier: "D1 batch", config: "off", webhooks: true, target: ["js", 1.0] },
    { route: "webhook ingest, the reference running this project's batch", tier: "D1 batch", config: "sameSql", webhooks: true, target: ["js", null] },
  ];
  const started = [];
  const start = async (label, opts) => {
    const dir = join(scratch, `${label}-${started.length}`);
    cpSync(template, dir, { recursive: true });
    const before = new Set(workerdPids());
    const w = await startWorker({ persistDir: dir, live: false, assets: null, ...opts });
    w.pid = workerdPids().find((p) => !before.has(p));
    started.push(w);
    return w;
  };
  const rows = [];
  try {
    const bare = await start("bare", { vars: {}, scriptPath: join(BARE, "build/index.js") });
    const workers = {};
    for (const [name, c] of Object.entries(configs)) {
      workers[name] = {
        project: await start(`project-${name}`, { vars: { ...vars, ...c.project } }),
        js: await start(`js-${name}`, { vars: { JWT_SECRET: vars.JWT_SECRET, WEBHOOK_SECRET: vars.WEBHOOK_SECRET, ...c.js }, scriptPath: JS }),
      };
    }
    for (const s of scenarios) {
      const pair = workers[s.config];
      const sides = [["project", pair.project], ["js", pair.js]];
      if (s.vsBare) sides.push(["bare", bare]);
      const runs = Object.fromEntries(sides.map(([n]) => [n, []]));
      for (const [name, w] of sides) {
        if (s.prime) {
          for (let i = 0; i < 3; i++) await (await fetch(w.url + "/api/webhook-calls", { headers: { Authorization: auth } })).arrayBuffer();
        }
      }
      await new Promise((r) => setTimeout(r, 300)); // KV writes land after their responses
      for (let round = 0; round < rounds; round++) {
        const order = round % 2 === 0 ? sides : [...sides].reverse();
        for (const [name, w] of order) {
          // Each ingest round gets webhooks never sent before, so every one is applied.
          const f = s.webhooks ? file(`hooks-${name}-${round}.txt`, webhookLines(vars.WEBHOOK_SECRET, users, 20_000)) : s.file;
          log(`${s.route}, ${s.tier}: ${name} round ${round + 1}`);
          const cpu = w.pid ? cpuSeconds(w.pid) : NaN;
          const r = wrk(w.url, f, seconds, connections);
          r.cpuUsPerRequest = w.pid && r.requests ? ((cpuSeconds(w.pid) - cpu) * 1e6) / r.requests : NaN;
          // A non-2xx is a broken worker; a socket error (wrk's 2 s timeout) is a measurement,
          // and is counted in the table.
          if (r.non2xx) throw new Error(`${name} ${s.route}: ${r.non2xx} non-2xx responses`);
          runs[name].push(r);
        }
      }
      rows.push({ ...s, runs });
    }
  } finally {
    for (const w of started) await w.dispose();
    rmSync(scratch, { recursive: true, force: true });
  }
  return render(rows, seconds, connections, rounds, heavy);
}

function render(rows, seconds, connections, rounds, heavy) {
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const rps = (runs) => (runs?.length ? mean(runs.map((r) => r.rps)) : NaN);
  const ms = (runs, p) => (runs?.length ? (mean(runs.map((r) => r[p])) / 1000).toFixed(2) : "–");
  const fmt = (n, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : "–");
  const out = [];
  out.push("## Against the plain JavaScript worker");
  out.push("");
  out.push(
    `Each worker served by its own Miniflare on a copy of the same data (user \`${heavy}\` has 12,000 calls); ${rounds} alternating rounds of ${seconds} s per side, wrk 1 thread × ${connections} connections. ` +
      "The reference is `bench/reference/js/worker.mjs` (Map → KV → D1 with this project's default TTLs, WebCrypto HS256, one-batch ingest); the floor's third column is `bench/reference/bare` (workers-rs answering `{\"ok\":true}`). " +
      "Each round measures the two sides back to back, so the ratio a target reads is the median of the rounds' ratios: this host's speed drifts between rounds by more than a target's margin, and a ratio of the rounds' means would carry that drift. " +
      "The last row is the reference running this project's own ingest statements (`PROJECT_INGEST_SQL`): it prices the project's handling around its batch apart from the SQL its contract asks for.",
  );
  out.push("");
  out.push("| route | tier | project req/s | p50 / p99 ms | JS req/s | p50 / p99 ms | bare workers-rs req/s | timeouts (project / JS) | workerd CPU µs/req (project / reference) | reference ÷ project CPU, median of rounds | project ÷ reference req/s, median of rounds | each round's ratio, lowest–highest | target | met |");
  out.push("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |");
  for (const r of rows) {
    const p = rps(r.runs.project);
    const j = rps(r.runs.js);
    const b = rps(r.runs.bare);
    const [against, want] = r.target;
    const errors = (runs) => (runs ?? []).reduce((n, x) => n + x.socket_errors, 0);
    const cpu = (runs) => (runs?.length ? mean(runs.map((x) => x.cpuUsPerRequest)) : NaN);
    const reference = against === "bare" ? r.runs.bare : r.runs.js;
    const perRound = (r.runs.project ?? []).map((x, i) => x.rps / reference?.[i]?.rps).filter(Number.isFinite);
    const cpuPerRound = (r.runs.project ?? []).map((x, i) => reference?.[i]?.cpuUsPerRequest / x.cpuUsPerRequest).filter(Number.isFinite);
    const ratio = perRound.length ? median(perRound) : NaN;
    const spread = perRound.length ? `${fmt(Math.min(...perRound), 2)}–${fmt(Math.max(...perRound), 2)}` : "–";
    const met = want === null ? "–" : ratio >= want ? "yes" : "**no**";
    out.push(
      `| ${r.route} | ${r.tier} | ${fmt(p)} | ${ms(r.runs.project, "p50_us")} / ${ms(r.runs.project, "p99_us")} | ${fmt(j)} | ${ms(r.runs.js, "p50_us")} / ${ms(r.runs.js, "p99_us")} | ${fmt(b)} | ${errors(r.runs.project)} / ${errors(r.runs.js)} | ${fmt(cpu(r.runs.project))} / ${fmt(cpu(reference))} | ${cpuPerRound.length ? fmt(median(cpuPerRound), 2) : "–"} | ${fmt(ratio, 2)} × ${against === "bare" ? "bare" : "JS"} | ${spread} | ${want === null ? "–" : `≥ ${want}`} | ${met} |`,
    );
  }
  return out;
}
