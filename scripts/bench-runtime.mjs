// `npm run bench:runtime`: what the local runtime itself charges per operation, whatever the
// worker does with it — the price list the other tables are read against. A plain JavaScript
// worker (below, nothing of this project's) is served by Miniflare with a local D1 and KV, and
// wrk drives one route per operation: the route does that operation once per request, so its
// workerd CPU per request less the bare route's is the operation's cost, Miniflare's D1 and KV
// simulators included (they run in the same workerd process, as they do under `npm start`,
// the bench and the tests). Written to bench/runtime-results.md.
//
// Why it matters: a D1 round trip or a KV write costs the same to this project and to the
// JavaScript worker it races (`npm run bench`), so on a route made mostly of those, no worker
// code can be much faster than the other; and a change that saves one of them per request
// is worth more than any amount of work inside the worker.
//
//   BENCH_RUNTIME_SECONDS  seconds per row (default 4)
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Miniflare } from "miniflare";
import { cpuSeconds, line, workerdPids, wrk } from "./bench-common.mjs";
import { ROOT } from "./runtime.mjs";

const SECONDS = Number(process.env.BENCH_RUNTIME_SECONDS ?? 4);
const log = (...a) => console.error("[bench:runtime]", ...a);

// One operation per request, chosen by the path. Values the size of a page of 50 calls as the
// cache stores it (31 KB) and of a small entry (1 KB); KV writes use a new key each time, as
// versioned cache keys do.
const WORKER = `
const page = "x".repeat(31_000);
const small = "x".repeat(1_000);
let n = 0;
export default {
  async fetch(request, env) {
    const op = new URL(request.url).pathname.slice(1);
    const key = "k" + (n++);
    switch (op) {
      case "bare": break;
      case "d1-all": await env.DB.prepare("SELECT ?1 AS x").bind(1).all(); break;
      case "d1-batch-1": await env.DB.batch([env.DB.prepare("SELECT ?1 AS x").bind(1)]); break;
      case "d1-batch-4": await env.DB.batch([1, 2, 3, 4].map((i) => env.DB.prepare("SELECT ?1 AS x").bind(i))); break;
      case "d1-batch-8": await env.DB.batch([1, 2, 3, 4, 5, 6, 7, 8].map((i) => env.DB.prepare("SELECT ?1 AS x").bind(i))); break;
      case "d1-insert": await env.DB.prepare("INSERT INTO t (v) VALUES (?1)").bind(n).run(); break;
      case "d1-page-text": await env.DB.prepare("SELECT ?1 AS j").bind(page).all(); break;
      case "kv-get-31k": await env.KV.get("page", { type: "arrayBuffer" }); break;
      case "kv-get-31k-text": await env.KV.get("page"); break;
      case "kv-put-1k": await env.KV.put(key, small, { expirationTtl: 300 }); break;
      case "kv-put-31k": await env.KV.put(key, page, { expirationTtl: 300 }); break;
      case "kv-delete": await env.KV.delete(key); break;
      default: return new Response("no such operation", { status: 404 });
    }
    return new Response("ok");
  },
};`;

const ROWS = [
  ["bare", "the bare route (subtracted from the rest)"],
  ["d1-all", "D1: one statement, `.all()`"],
  ["d1-batch-1", "D1: a batch of 1 statement"],
  ["d1-batch-4", "D1: a batch of 4 statements"],
  ["d1-batch-8", "D1: a batch of 8 statements"],
  ["d1-insert", "D1: one INSERT, `.run()` (a write transaction)"],
  ["d1-page-text", "D1: one statement answering a 31 KB text"],
  ["kv-get-31k", "KV: get a 31 KB value as bytes"],
  ["kv-get-31k-text", "KV: get a 31 KB value as text"],
  ["kv-put-1k", "KV: put a 1 KB value (new key)"],
  ["kv-put-31k", "KV: put a 31 KB value (new key)"],
  ["kv-delete", "KV: delete a key that is not there"],
];

async function main() {
  const scratch = mkdtempSync(join(tmpdir(), "bench-runtime-"));
  const mf = new Miniflare({
    modules: true,
    script: WORKER,
    compatibilityDate: "2025-01-01",
    d1Databases: ["DB"],
    kvNamespaces: ["KV"],
    d1Persist: join(scratch, "d1"),
    kvPersist: join(scratch, "kv"),
  });
  try {
    const url = (await mf.ready).toString().replace(/\/$/, "");
    await (await mf.getD1Database("DB")).exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)");
    await (await mf.getKVNamespace("KV")).put("page", "y".repeat(31_000));
    const cpu = () => workerdPids().reduce((sum, pid) => sum + cpuSeconds(pid), 0);
    const results = [];
    for (const [op, label] of ROWS) {
      const file = join(scratch, `${op}.txt`);
      writeFileSync(file, line("GET", `/${op}`, {}) + "\n");
      wrk(url, file, { seconds: 1, connections: 4 }); // warm
      const before = cpu();
      const r = wrk(url, file, { seconds: SECONDS, connections: 4 });
      const cpuUs = ((cpu() - before) * 1e6) / r.requests;
      log(`${op}: ${r.requests} requests, ${Math.round(cpuUs)} µs workerd CPU per request`);
      results.push({ op, label, cpuUs, rps: r.rps });
    }
    const bare = results[0].cpuUs;
    const table = [
      "| operation | req/s | workerd CPU µs/request | µs over the bare route |",
      "| --- | ---: | ---: | ---: |",
      ...results.map((r) => `| ${r.label} | ${Math.round(r.rps)} | ${Math.round(r.cpuUs)} | ${r.op === "bare" ? "–" : Math.round(r.cpuUs - bare)} |`),
    ].join("\n");
    const doc =
      `# What the local runtime charges per operation\n\n${new Date().toISOString()} · \`npm run bench:runtime\` · ` +
      `wrk 1 thread × 4 connections, ${SECONDS} s per row · a plain JavaScript worker on Miniflare with a local D1 and KV ` +
      `(scripts/bench-runtime.mjs says why)\n\n${table}\n`;
    console.log(`\n${table}\n`);
    writeFileSync(join(ROOT, "bench/runtime-results.md"), doc);
    log("written to bench/runtime-results.md");
  } finally {
    await mf.dispose();
    rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
