// A/B: this checkout's release worker against an earlier commit's, served side by side in one
// Miniflare each, measured in turn by the same wrk in the same run (this machine is shared and
// noisy: only figures from one run compare). Each side gets its own D1 with its own migrations,
// the same user with the same calls (seeded through signed webhooks, which both accept), and
// the same read, primed into memory first; the ingest scenario sends each side new signed
// webhooks every round. Rounds alternate A, B, A, B, … so drift hits both.
// Besides req/s it reports each side's workerd CPU time per request (from /proc), which moves
// far less with the machine's other load than throughput does.
//
//   node scripts/bench-ab.mjs [base-ref]   (npm run bench:ab -- <ref>; default: 609e865, the
//                                           last commit before versions came from D1)
//   BENCH_AB_SECONDS  seconds per round (default 5)
//   BENCH_AB_ROUNDS   rounds per side (default 3)
//   BENCH_CONNECTIONS wrk connections (default 8)
//   BENCH_AB_ONLY     run only the scenarios whose name contains this text (e.g. "ingest")
//
// The base is checked out with `git worktree` under bench/.ab/ and built there with this
// checkout's tools; both sides run without the live feed's binding (the base has no such
// object, and reads never touch it).
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { BENCH_VARS, callUpsertLines, cpuSeconds, gzipBytes, standardHeaders, workerdPids, wrk as wrkCycling } from "./bench-common.mjs";
import { ROOT, applyMigrations, signJwt, startWorker } from "./runtime.mjs";

const BASE = process.argv[2] ?? "609e865";
const SECONDS = Number(process.env.BENCH_AB_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_AB_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 8);
const CALLS = 120;
const USER = "ab-user";
const VARS = BENCH_VARS;
const SCENARIOS = [
  ["floor: /api/health", "/api/health", false],
  ["page 1 (limit 50), memory hit", "/api/webhook-calls", true],
  ["summary (limit 20), memory hit", "/api/intent-analysis?limit=20", true],
  // Each side's second worker keeps no memory tier: every read is a KV hit.
  ["page 1 (limit 50), KV hit", "/api/webhook-calls", true, undefined, { CACHE_MEMORY_ENABLED: "false" }],
  // Pages over 100 bypass the cache: every request reads D1.
  ["page (limit 101), D1 every time", "/api/webhook-calls?limit=101", true],
  // Signed call.upserted webhooks never sent before (a fresh set per side and round), so every
  // one is claimed and applied: the whole ingest batch.
  ["webhook ingest (call.upserted)", "/webhooks/events", false, "webhooks"],
];

const log = (...a) => console.error("[bench:ab]", ...a);
const git = (...args) => execFileSync("git", args, { cwd: ROOT, encoding: "utf8" }).trim();

/** The base commit's release build, in a worktree kept between runs (rebuilt when missing). */
function baseCheckout(ref) {
  const sha = git("rev-parse", "--verify", `${ref}^{commit}`);
  const dir = join(ROOT, "bench/.ab", sha.slice(0, 12));
  if (!existsSync(join(dir, "build/index.js"))) {
    if (!existsSync(dir)) {
      mkdirSync(join(ROOT, "bench/.ab"), { recursive: true });
      git("worktree", "add", "--detach", dir, sha);
    }
    log(`building ${sha.slice(0, 12)} in ${dir}`);
    const env = {
      ...process.env,
      PATH: `${join(ROOT, "node_modules/.bin")}:${process.env.HOME}/.cargo/bin:${process.env.PATH}`,
      ESBUILD_BIN: join(ROOT, "node_modules/.bin/esbuild"),
      // The base's build runs binaryen's wasm-opt (from scripts/build.sh on) with this
      // checkout's copy: the worktree has no node_modules of its own.
      WASM_OPT_BIN: join(ROOT, "node_modules/.bin/wasm-opt"),
    };
    // The base's own build script (it builds the checkout it stands in); its crates compile
    // into the base's own target/, so this checkout's incremental state is left alone.
    execFileSync("bash", [join(dir, "scripts/build.sh")], { cwd: dir, env, stdio: ["ignore", "ignore", "inherit"] });
  }
  return { sha, dir };
}

function signedCall(i) {
  const id = `msg_ab_${i}`;
  const body = JSON.stringify({
    type: "call.upserted",
    data: { userId: USER, id: `CAB${String(i).padStart(4, "0")}`, status: "completed", durationSeconds: 30 + i, startedAt: new Date(Date.now() - i * 60_000).toISOString() },
  });
  return { body, headers: standardHeaders(VARS.WEBHOOK_SECRET, id, body) };
}

async function side(label, root, vars = {}) {
  const dir = mkdtempSync(join(tmpdir(), `bench-ab-${label}-`));
  applyMigrations(dir, root);
  const before = new Set(workerdPids());
  const worker = await startWorker({ persistDir: dir, vars: { ...VARS, ...vars }, root, live: false, assets: null });
  const pid = workerdPids().find((p) => !before.has(p));
  for (let i = 0; i < CALLS; i++) {
    const { body, headers } = signedCall(i);
    const res = await fetch(`${worker.url}/webhooks/events`, { method: "POST", headers, body });
    if (!res.ok) throw new Error(`${label}: seeding webhook ${i} answered ${res.status}: ${await res.text()}`);
  }
  return { label, root, dir, worker, pid };
}

const wrk = (url, file) => wrkCycling(url, file, { seconds: SECONDS, connections: CONNECTIONS });

async function main() {
  if (spawnSync("wrk", ["--version"]).error) throw new Error("wrk is not installed (npm run bench:ab installs it)");
  const base = baseCheckout(BASE);
  const head = git("rev-parse", "--short=12", "HEAD");
  const dirty = git("status", "--porcelain", "--untracked-files=no") !== "";
  // A pair of sides per distinct set of scenario vars, started when first needed.
  const pairs = new Map();
  const sidesFor = async (vars = {}) => {
    const key = JSON.stringify(vars);
    if (!pairs.has(key)) pairs.set(key, [await side("A", base.dir, vars), await side("B", ROOT, vars)]);
    return pairs.get(key);
  };
  const scratch = mkdtempSync(join(tmpdir(), "bench-ab-"));
  const auth = `Bearer ${signJwt(VARS.JWT_SECRET, { sub: USER, iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 3600 })}`;
  const results = [];
  try {
    const only = process.env.BENCH_AB_ONLY ?? "";
    const chosen = SCENARIOS.filter(([name]) => name.includes(only));
    if (!chosen.length) throw new Error(`BENCH_AB_ONLY=${only} names no scenario`);
    for (const [name, path, authed, webhooks, vars] of chosen) {
      const sides = await sidesFor(vars);
      const file = join(scratch, `${results.length}.txt`);
      writeFileSync(file, `GET\t${path}\t${authed ? `Authorization: ${auth}` : ""}\t\n`);
      const stamp = Date.now().toString(36);
      const fileFor = (label, round) => {
        if (!webhooks) return file;
        const f = join(scratch, `${results.length}-${label}-${round}.txt`);
        const tag = `${stamp}${label}${round}`;
        writeFileSync(f, callUpsertLines(VARS.WEBHOOK_SECRET, 20_000, (i) => ({ webhookId: `msg_ab_${tag}_${i}`, userId: USER, callId: `CAB${tag}x${i}` })));
        return f;
      };
      const runs = { A: [], B: [] };
      for (const s of webhooks ? [] : sides) {
        for (let i = 0; i < 3; i++) {
          const res = await fetch(s.worker.url + path, { headers: authed ? { Authorization: auth } : {} });
          if (!res.ok) throw new Error(`${s.label} ${path}: ${res.status}`);
          await res.arrayBuffer();
        }
      }
      await new Promise((r) => setTimeout(r, 200));
      for (let round = 0; round < ROUNDS; round++) {
        // Alternate which side goes first, so neither always follows the other's load.
        const order = round % 2 === 0 ? sides : [...sides].reverse();
        for (const s of order) {
          log(`${name}: ${s.label} round ${round + 1}`);
          const cpu = s.pid ? cpuSeconds(s.pid) : NaN;
          const r = wrk(s.worker.url, fileFor(s.label, round));
          r.cpuUsPerRequest = s.pid ? ((cpuSeconds(s.pid) - cpu) * 1e6) / r.requests : NaN;
          if (r.non2xx) throw new Error(`${s.label} ${path}: ${r.non2xx} non-2xx responses`);
          runs[s.label].push(r);
        }
      }
      results.push({ name, runs });
    }
  } finally {
    for (const s of [...pairs.values()].flat()) {
      await s.worker.dispose();
      rmSync(s.dir, { recursive: true, force: true });
    }
    rmSync(scratch, { recursive: true, force: true });
  }

  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const lines = [];
  lines.push(`# A/B: ${base.sha.slice(0, 12)} (A) against ${head}${dirty ? " + uncommitted changes" : ""} (B)`);
  lines.push("");
  lines.push(`${new Date().toISOString()} · ${cpus().length} cores · wrk 1 thread × ${CONNECTIONS} connections · ${ROUNDS} alternating rounds of ${SECONDS} s per side · one user, ${CALLS} calls · \`npm run bench:ab -- ${BASE}\``);
  lines.push("");
  lines.push("| scenario | A req/s (rounds) | B req/s (rounds) | A mean | B mean | B / A | A p99 ms | B p99 ms | A workerd CPU µs/req | B workerd CPU µs/req | B / A CPU |");
  lines.push("|---|---|---|---|---|---|---|---|---|---|---|");
  for (const { name, runs } of results) {
    const a = mean(runs.A.map((r) => r.rps));
    const b = mean(runs.B.map((r) => r.rps));
    const p99 = (rs) => (mean(rs.map((r) => r.p99_us)) / 1000).toFixed(2);
    const each = (rs) => rs.map((r) => r.rps.toFixed(0)).join(", ");
    const cpuA = mean(runs.A.map((r) => r.cpuUsPerRequest));
    const cpuB = mean(runs.B.map((r) => r.cpuUsPerRequest));
    lines.push(`| ${name} | ${each(runs.A)} | ${each(runs.B)} | ${a.toFixed(0)} | ${b.toFixed(0)} | ${(b / a).toFixed(3)} | ${p99(runs.A)} | ${p99(runs.B)} | ${cpuA.toFixed(0)} | ${cpuB.toFixed(0)} | ${(cpuB / cpuA).toFixed(3)} |`);
  }
  const wasm = (root) => {
    const raw = readFileSync(join(root, "build/index_bg.wasm"));
    return { raw: raw.length / 1024, gz: gzipBytes(join(root, "build/index_bg.wasm")) / 1024 };
  };
  const [wa, wb] = [wasm(base.dir), wasm(ROOT)];
  lines.push("");
  lines.push("| wasm module | A | B | B − A |");
  lines.push("|---|---:|---:|---:|");
  lines.push(`| raw KB | ${wa.raw.toFixed(1)} | ${wb.raw.toFixed(1)} | ${(wb.raw - wa.raw).toFixed(1)} |`);
  lines.push(`| gzip -9 KB | ${wa.gz.toFixed(1)} | ${wb.gz.toFixed(1)} | ${(wb.gz - wa.gz).toFixed(1)} |`);
  const report = lines.join("\n");
  console.log(report);
  writeFileSync(join(ROOT, "bench/ab-results.md"), report + "\n");
  log("written to bench/ab-results.md");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
