// `npm run bench:inproc`: what each worker's own handling of a signed webhook costs, with the
// network, wrk and (in the first two tables) D1 left out. One workerd serves a small harness worker
// that imports this project's build and the race's plain JavaScript reference as modules and,
// inside a single request, hands each of them the same deliveries one after another through
// their `fetch` (the runtime's own `Request` objects, bodies and signatures as a provider sends
// them). The figure is the workerd main thread's CPU time per delivery (from /proc: every
// isolate of a local workerd, D1's and KV's simulators included, runs on that one thread), so
// a worker's own code is measured to a few µs, where the race's wrk rounds move by several
// per cent with the host.
//
// Three tables:
// - D1 left out: the three workers get a D1 that answers every statement at once with what
//   its batch needs (the outcome the project's one statement returns), so the figure is the
//   worker's handling alone: reading the request, checking the signature, parsing, building
//   the batch, reading its results, answering.
// - D1 left out, one KV read in its place: the same stand-in, answering after a real KV read
//   of a key that is not there (KV's simulator, another worker of the same workerd, runs in
//   the middle of each delivery, as D1's does), so the figure is the handling with other
//   work between its two halves. The floor makes the same read, so what a worker costs above
//   the floor is its handling when it does not run back to back with itself, which is how it
//   runs in the race and in production.
// - D1 included: the same on a freshly migrated local D1, so the batch's SQL is in the figure.
// The workers: this project, the plain reference (`bench/reference/js/worker.mjs`: two
// statements), the reference running this project's one statement (`PROJECT_INGEST_SQL`), and a
// floor that reads the body and answers, which every delivery's figure includes. Written to
// bench/inproc-results.md.
//
//   INPROC_ROUNDS      rounds (default 9); each round runs every worker once, the order
//                      rotating; figures are the median of the rounds
//   INPROC_DELIVERIES  deliveries per worker and round with D1 included, and with the KV read
//                      in its place (default 2000)
//   INPROC_DELIVERIES_NO_D1  the same with D1 left out (default 20000: the CPU time is read in
//                      10 ms ticks, so a round must last a second or so to be read to 1 %)
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BENCH_VARS, cpuSeconds, median, workerdPids } from "./bench-common.mjs";
import { ROOT, applyMigrations, startWorker } from "./runtime.mjs";

const ROUNDS = Math.max(1, Number(process.env.INPROC_ROUNDS ?? 9) || 9);
const DELIVERIES = Math.max(100, Number(process.env.INPROC_DELIVERIES ?? 2000) || 2000);
const DELIVERIES_NO_D1 = Math.max(100, Number(process.env.INPROC_DELIVERIES_NO_D1 ?? 20000) || 20000);
const log = (...a) => console.error("[bench:inproc]", ...a);

// The harness: `/prep` signs a round's deliveries (not timed), `/run?who=` hands them to one
// worker (timed from outside). Each `Request` is made inside the timed request, where the
// worker reads it: a request's body cannot be read from another request's context.
const HARNESS = `
import project from "./project.mjs";
import reference from "./reference.mjs";

let standInKv = null; // the KV the stand-in D1 reads before it answers, in the "one KV read" table
// Reads the body and answers; in the "one KV read" table it makes that read too, so that what a
// worker costs above the floor there is its handling, not the read.
const floor = {
  async fetch(request) {
    await request.text();
    if (standInKv) await standInKv.get(MISSING_KEY);
    return new Response('{"success":true}');
  },
};
const MISSING_KEY = "inproc:a key that is never written";
let sql; // the project's statement, to answer it in the faked D1
let pending = [];

function fakeD1(kv) {
  const meta = (changes) => ({ changes, duration: 0, last_row_id: 0, changed_db: changes > 0, size_after: 0, rows_read: 1, rows_written: changes });
  const answer = (text) => {
    // The one statement of a one-event delivery returns its outcome: [fresh, user, call,
    // outcome, version before, version after, listening] (store::sql::delivery_outcome).
    if (text === sql.claim_and_call) return { success: true, meta: meta(1), results: [{ o: '[1,"u0001","CX1","applied",41,42,0]' }] };
    return { success: true, meta: meta(1), results: [] };
  };
  const statement = (text) => ({ bind: () => statement(text), all: async () => answer(text), run: async () => answer(text), first: async () => answer(text).results[0] ?? null, text });
  const batch = async (statements) => {
    if (kv) await kv.get(MISSING_KEY);
    return statements.map((s) => answer(s.text));
  };
  return { prepare: (text) => statement(text), batch };
}

let signingKey; // WEBHOOK_SECRET, imported once
async function sign(secret, id, ts, body) {
  const raw = Uint8Array.from(atob(secret.replace(/^whsec_/, "")), (c) => c.charCodeAt(0));
  const key = (signingKey ??= await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]));
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(id + "." + ts + "." + body)));
  return "v1," + btoa(String.fromCharCode(...mac));
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    sql ??= JSON.parse(env.SQL_JSON);
    standInKv = env.FAKE_D1 === "true" && env.FAKE_D1_IO === "kv" ? env.CACHE : null;
    const db = env.FAKE_D1 === "true" ? fakeD1(standInKv) : env.DB;
    if (url.pathname === "/prep") {
      const n = Number(url.searchParams.get("n"));
      const ts = Math.floor(Date.now() / 1000);
      const tag = url.searchParams.get("tag");
      pending = [];
      for (let i = 0; i < n; i++) {
        const id = "msg_inproc_" + tag + "_" + i;
        const body = JSON.stringify({ type: "call.upserted", data: { userId: "u000" + (i % 8), id: "CI" + tag + "x" + i, status: "completed", durationSeconds: 30, startedAt: new Date(Date.now() - i * 1000).toISOString() } });
        const headers = { "content-type": "application/json", "content-length": String(new TextEncoder().encode(body).length), "webhook-id": id, "webhook-timestamp": String(ts), "webhook-signature": await sign(env.WEBHOOK_SECRET, id, ts, body), "user-agent": "inproc" };
        pending.push({ headers, body });
      }
      return new Response("ok");
    }
    if (url.pathname === "/run") {
      const who = url.searchParams.get("who");
      const worker = { project, reference, "reference-project-sql": reference, floor }[who];
      const workerEnv = who === "project" ? { ...env, DB: db } : { JWT_SECRET: env.JWT_SECRET, WEBHOOK_SECRET: env.WEBHOOK_SECRET, CACHE_ENABLED: "false", DB: db, CACHE: env.CACHE, ...(who === "reference-project-sql" ? { PROJECT_INGEST_SQL: env.SQL_JSON } : {}) };
      for (const p of pending) {
        const req = new Request("http://127.0.0.1/webhooks/events", { method: "POST", headers: p.headers, body: p.body });
        const res = await worker.fetch(req, workerEnv, ctx);
        const text = await res.text();
        if (res.status !== 200) return new Response(who + ": " + res.status + " " + text, { status: 500 });
      }
      return new Response("ok");
    }
    return new Response("not found", { status: 404 });
  },
};
`;

const WORKERS = ["project", "reference", "reference-project-sql", "floor"];

// The three settings the tables report: D1 answered at once, after one KV read, or for real.
const MODES = {
  instant: { title: "D1 left out (a D1 that answers at once)", fakeD1: true, io: "", tag: "f" },
  kvRead: { title: "D1 left out, one KV read in its place (a D1 that answers after reading a missing KV key)", fakeD1: true, io: "kv", tag: "k" },
  d1: { title: "D1 included (a freshly migrated local D1)", fakeD1: false, io: "", tag: "r" },
};

async function measure(dir, mode) {
  const { fakeD1 } = mode;
  const deliveries = fakeD1 && !mode.io ? DELIVERIES_NO_D1 : DELIVERIES;
  const persist = mkdtempSync(join(tmpdir(), "inproc-d1-"));
  try {
    if (!fakeD1) applyMigrations(persist);
    const before = new Set(workerdPids());
    const vars = { ...BENCH_VARS, CACHE_ENABLED: "false", FAKE_D1: String(fakeD1), FAKE_D1_IO: mode.io, SQL_JSON: readFileSync(join(ROOT, "bench/reference/js/project-ingest-sql.json"), "utf8") };
    const w = await startWorker({ persistDir: persist, live: false, assets: null, vars, scriptPath: join(dir, "harness.mjs") });
    try {
      const pid = workerdPids().find((p) => !before.has(p));
      if (!pid) throw new Error("no workerd process to read the CPU time of");
      const get = async (path) => {
        const res = await fetch(w.url + path);
        const text = await res.text();
        if (!res.ok) throw new Error(`${path}: ${res.status} ${text}`);
      };
      // A warm-up round: the first calls compile the module and tier up its code.
      for (const who of WORKERS) {
        await get(`/prep?n=300&tag=warm${who}`);
        await get(`/run?who=${who}`);
      }
      const perDelivery = Object.fromEntries(WORKERS.map((k) => [k, []]));
      for (let round = 0; round < ROUNDS; round++) {
        const order = WORKERS.map((_, i) => WORKERS[(i + round) % WORKERS.length]);
        for (const who of order) {
          log(`${mode.title.split(" (")[0]}: round ${round + 1}, ${who}`);
          await get(`/prep?n=${deliveries}&tag=${mode.tag}${round}${who}`);
          const cpu = cpuSeconds(pid, { mainThread: true });
          await get(`/run?who=${who}`);
          perDelivery[who].push(((cpuSeconds(pid, { mainThread: true }) - cpu) * 1e6) / deliveries);
        }
      }
      return perDelivery;
    } finally {
      await w.dispose();
    }
  } finally {
    rmSync(persist, { recursive: true, force: true });
  }
}

function table(title, perDelivery) {
  const fmt = (n, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : "–");
  const floor = median(perDelivery.floor);
  const project = perDelivery.project;
  const lines = [`### ${title}`, "", "| worker | µs per delivery (median of rounds) | above the floor | ÷ project, median of rounds' ratios | lowest–highest round |", "| --- | ---: | ---: | ---: | ---: |"];
  for (const who of WORKERS) {
    const runs = perDelivery[who];
    const ratios = runs.map((x, i) => x / project[i]).filter(Number.isFinite);
    const spread = ratios.length ? `${fmt(Math.min(...ratios), 2)}–${fmt(Math.max(...ratios), 2)}` : "–";
    lines.push(`| ${who} | ${fmt(median(runs))} | ${who === "floor" ? "–" : fmt(median(runs) - floor)} | ${who === "project" ? "1.00" : fmt(median(ratios), 2)} | ${who === "project" ? "–" : spread} |`);
  }
  return lines;
}

async function main() {
  const build = join(ROOT, "build/index.js");
  // Inside the repository: Miniflare resolves a module's imports only below its working folder.
  const dir = mkdtempSync(join(ROOT, "bench/.inproc-"));
  try {
    // `.mjs`: Miniflare loads a `.js` module other than the entry as CommonJS.
    cpSync(build, join(dir, "project.mjs"));
    cpSync(join(ROOT, "build/index_bg.wasm"), join(dir, "index_bg.wasm"));
    cpSync(join(ROOT, "bench/reference/js/worker.mjs"), join(dir, "reference.mjs"));
    writeFileSync(join(dir, "harness.mjs"), HARNESS);
    const left = await measure(dir, MODES.instant);
    const kvRead = await measure(dir, MODES.kvRead);
    const included = await measure(dir, MODES.d1);
    const out = [
      `## A webhook's handling, in the isolate`,
      "",
      `${new Date().toISOString()} · \`npm run bench:inproc\` · ${ROUNDS} rounds of ${DELIVERIES_NO_D1} (D1 left out) and ${DELIVERIES} (a KV read in its place; D1 included) signed \`call.upserted\` deliveries per worker, handed to each worker's \`fetch\` inside one request; workerd main-thread CPU per delivery. "÷ project" below 1 is a worker cheaper than this project.`,
      "",
      ...table(MODES.instant.title, left),
      "",
      ...table(MODES.kvRead.title, kvRead),
      "",
      ...table(MODES.d1.title, included),
    ];
    const text = out.join("\n") + "\n";
    writeFileSync(join(ROOT, "bench/inproc-results.md"), text);
    console.log(text);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
