// What the benchmarks share: the worker's vars, the request-file line format of
// bench/wrk-replay.lua, Standard Webhooks signing, and wrk itself (cycling for a duration, in
// the background, or every line exactly once), and workerd's CPU time per process.
import { spawn, spawnSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./runtime.mjs";

export const BENCH_VARS = {
  JWT_SECRET: "bench-jwt-secret",
  ADMIN_TOKEN: "bench-admin-token",
  WEBHOOK_SECRET: "whsec_YmVuY2gtd2ViaG9vay1zZWNyZXQtMzItYnl0ZXMh",
  TWILIO_AUTH_TOKEN: "bench-twilio",
  RETELL_API_KEY: "bench-retell",
  ALLOWED_ORIGINS: "http://localhost",
};

/**
 * After a mixed run, how long its CPU window stays open: time for the work it leaves past its
 * responses (refreshed views reach KV 1 s after their webhook) to be charged to that run.
 */
export const SETTLE_MS = 1500;

/** One line of a request file: method \t path \t headers joined by \1 \t body. */
export function line(method, path, headers, body = "") {
  const h = Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join("\u0001");
  return `${method}\t${path}\t${h}\t${body}`;
}

/**
 * `count` signed `call.upserted` webhooks as request-file lines (POST /webhooks/events);
 * `names(i)` gives the i-th its webhook id, user and call id.
 */
export function callUpsertLines(secret, count, names) {
  const ts = Math.floor(Date.now() / 1000);
  const out = [];
  for (let i = 0; i < count; i++) {
    const { webhookId, userId, callId } = names(i);
    const body = JSON.stringify({ type: "call.upserted", data: { userId, id: callId, status: "completed", durationSeconds: 30, startedAt: new Date(Date.now() - i * 1000).toISOString() } });
    out.push(line("POST", "/webhooks/events", standardHeaders(secret, webhookId, body, ts), body));
  }
  return out.join("\n") + "\n";
}

/** Headers that sign `body` as delivery `id` the Standard Webhooks way, with `secret`. */
export function standardHeaders(secret, id, body, ts = Math.floor(Date.now() / 1000)) {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const mac = createHmac("sha256", key).update(`${id}.${ts}.${body}`).digest("base64");
  return { "Content-Type": "application/json", "webhook-id": id, "webhook-timestamp": String(ts), "webhook-signature": `v1,${mac}` };
}

const wrkArgs = (url, file, seconds, connections, extra = []) => [
  "-t1",
  `-c${connections}`,
  `-d${seconds}s`,
  "--latency",
  "-s",
  join(ROOT, extra.length ? "bench/wrk-once.lua" : "bench/wrk-replay.lua"),
  url,
  "--",
  file,
  ...extra,
];

function summary(out, what) {
  const m = out.match(/BENCH_JSON (\{.*\})/);
  if (!m) throw new Error(`wrk failed: ${what}`);
  const r = JSON.parse(m[1]);
  return { ...r, rps: r.requests / (r.duration_us / 1e6) };
}

/** wrk cycling through `file` from a random line for `seconds`. */
export function wrk(url, file, { seconds, connections }) {
  const res = spawnSync("wrk", wrkArgs(url, file, seconds, connections), { encoding: "utf8" });
  return summary(res.stdout ?? "", `${res.stderr}\n${res.stdout}`);
}

/** The same in the background, for scenarios that measure something else meanwhile. */
export function wrkInBackground(url, file, { seconds, connections }) {
  return new Promise((resolve, reject) => {
    const child = spawn("wrk", wrkArgs(url, file, seconds, connections));
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.on("error", reject);
    child.on("close", () => {
      try {
        resolve(summary(out, out));
      } catch (e) {
        reject(e);
      }
    });
  });
}

/**
 * wrk replaying every line of `file` exactly once, from the first (bench/wrk-once.lua). wrk's
 * main thread sleeps for the whole -d (here only a cap), so when the script says every line
 * was answered it is sent SIGINT, and reports the time it really ran.
 */
export function wrkOnce(url, file, { capSeconds, connections }) {
  return new Promise((resolve, reject) => {
    const child = spawn("wrk", wrkArgs(url, file, capSeconds, connections, ["once"]));
    let out = "";
    let stopped = false;
    child.stdout.on("data", (d) => {
      out += d;
      if (!stopped && out.includes("BENCH_ONCE_DONE")) {
        stopped = true;
        child.kill("SIGINT");
      }
    });
    child.on("error", reject);
    child.on("close", () => {
      if (!stopped) return reject(new Error(`wrk did not answer the whole list within ${capSeconds} s: ${out}`));
      try {
        resolve(summary(out, out));
      } catch (e) {
        reject(e);
      }
    });
  });
}

/** This process's workerd children (each Miniflare runs one). */
export function workerdPids() {
  const pids = [];
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      if (/^Name:\s+workerd/m.test(status) && status.includes(`PPid:\t${process.pid}`)) pids.push(pid);
    } catch {
      // the process went away
    }
  }
  return pids;
}

/**
 * CPU seconds (user + system) the process has used: less noisy than req/s on a shared box. With
 * `mainThread`, only its main thread's (a local workerd runs every isolate on that thread; its
 * other threads are V8's compiler and collector helpers).
 */
export function cpuSeconds(pid, { mainThread = false } = {}) {
  const stat = readFileSync(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(") ") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

/**
 * The bytes of `file` through `gzip -9`: the measure scripts/build.sh holds the module's budget
 * to (node's zlib at level 9 writes a stream about 0.5 % longer, enough to disagree with the
 * build's check at the budget's edge).
 */
export function gzipBytes(file) {
  const res = spawnSync("gzip", ["-9", "-c", file], { maxBuffer: 64 << 20 });
  if (res.status !== 0) throw new Error(`gzip -9 ${file} failed: ${res.stderr}`);
  return res.stdout.length;
}

/** The median of `xs`: what a target reads from rounds measured side by side. */
export function median(xs) {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
