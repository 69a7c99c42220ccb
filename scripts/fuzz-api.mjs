// `npm run fuzz:api`: schemathesis generates requests for every operation in openapi.yaml
// against the release worker (seeded) and fails on any 5xx or any response outside the spec.
//
// Passes (each prints its operation and case counts):
//   1. the dashboard routes (reads, deletion, the live feed) with a valid JWT;
//   2. the operator routes (/api/admin, /api/cache) with ADMIN_TOKEN;
//   3. the webhook routes unsigned (every answer must be a documented refusal);
//   4. the webhook routes correctly signed: schemathesis talks to a loopback proxy that signs
//      each generated body exactly as sent, the way each provider does (Twilio, Standard
//      Webhooks, Retell), and forwards it to the worker.
// FUZZ_API_EXAMPLES per operation (default 100); every pass is bounded by it and by a
// request timeout, on loopback only.
import { spawn } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEMO_USERS, demoStatements, loadStatements } from "./demo-data.mjs";
import { ROOT, applyMigrations, devToken, startWorker } from "./runtime.mjs";

const EXAMPLES = process.env.FUZZ_API_EXAMPLES ?? "100";
const ST = join(ROOT, ".venv-tools/schemathesis/bin/st");
const PUBLIC = "https://fuzz.example.com";
const VARS = {
  JWT_SECRET: "fuzz-jwt-secret",
  ADMIN_TOKEN: "fuzz-admin-token",
  TWILIO_AUTH_TOKEN: "fuzz-twilio",
  WEBHOOK_SECRET: "whsec_ZnV6ei13ZWJob29rLXNlY3JldC0zMi1ieXRlcy0h",
  RETELL_API_KEY: "fuzz-retell",
  ALLOWED_ORIGINS: "http://localhost",
  PUBLIC_BASE_URL: PUBLIC,
};

/** Signs `body` for `path` as the provider behind that route would. */
function signatureHeaders(path, body, contentType) {
  if (path.startsWith("/webhooks/twilio/")) {
    // Twilio: HMAC-SHA1 over the public URL + every form parameter sorted by name.
    const params = contentType.includes("x-www-form-urlencoded") ? [...new URLSearchParams(body.toString("utf8"))] : [];
    params.sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0));
    const signed = PUBLIC + path + params.map(([k, v]) => k + v).join("");
    return { "x-twilio-signature": createHmac("sha1", VARS.TWILIO_AUTH_TOKEN).update(signed).digest("base64") };
  }
  if (path.startsWith("/webhooks/events")) {
    const id = `msg_${randomUUID()}`;
    const ts = Math.floor(Date.now() / 1000);
    const key = Buffer.from(VARS.WEBHOOK_SECRET.slice("whsec_".length), "base64");
    const sig = createHmac("sha256", key).update(Buffer.concat([Buffer.from(`${id}.${ts}.`), body])).digest("base64");
    return { "webhook-id": id, "webhook-timestamp": String(ts), "webhook-signature": `v1,${sig}` };
  }
  if (path.startsWith("/webhooks/retell")) {
    const ms = Date.now();
    const digest = createHmac("sha256", VARS.RETELL_API_KEY).update(Buffer.concat([body, Buffer.from(String(ms))])).digest("hex");
    return { "x-retell-signature": `v=${ms},d=${digest}` };
  }
  return {};
}

/** A loopback proxy that signs what schemathesis sends and forwards it to the worker. */
function signingProxy(target) {
  const upstream = new URL(target);
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const headers = { ...req.headers, ...signatureHeaders(req.url, body, String(req.headers["content-type"] ?? "")) };
      headers.host = upstream.host;
      const out = httpRequest({ hostname: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers }, (up) => {
        res.writeHead(up.statusCode, up.headers);
        up.pipe(res);
      });
      out.on("error", () => {
        res.writeHead(599);
        res.end();
      });
      out.end(body);
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() })));
}

/** Runs one schemathesis pass; resolves to its exit status and the counts it reported.
 * Asynchronous, so the signing proxy in this process keeps answering meanwhile. */
function pass(name, url, args) {
  console.log(`\n==> ${name}`);
  const child = spawn(
    ST,
    [
      "run", join(ROOT, "openapi.yaml"),
      "--url", url,
      "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
      "--max-examples", EXAMPLES,
      "--generation-deterministic",
      "--request-timeout", "10",
      "--suppress-health-check", "all",
      ...args,
    ],
    { env: { ...process.env, SCHEMATHESIS_TELEMETRY: "false", NO_COLOR: "1" } },
  );
  let out = "";
  for (const stream of [child.stdout, child.stderr]) {
    stream.on("data", (d) => {
      out += d;
      process.stdout.write(d);
    });
  }
  return new Promise((resolve) =>
    child.on("close", (status) => {
      const operations = Number(out.match(/(\d+) selected/)?.[1] ?? 0);
      const cases = Number(out.match(/(\d+) generated/)?.[1] ?? 0);
      resolve({ name, status, operations, cases });
    }),
  );
}

const dir = mkdtempSync(join(tmpdir(), "fuzz-api-"));
applyMigrations(dir);
const worker = await startWorker({ persistDir: dir, vars: VARS, onLog: () => {} });
await loadStatements(worker.db, demoStatements(Date.now()));
const proxy = await signingProxy(worker.url);
const results = [];
const started = Date.now();
try {
  const jwt = devToken(VARS.JWT_SECRET, DEMO_USERS[0].id);
  results.push(await pass("dashboard routes with a valid JWT", worker.url, ["--header", `Authorization: Bearer ${jwt}`, "--include-path-regex", "^/api/(health|webhook-calls|intent-analysis|live)"]));
  results.push(await pass("operator routes with ADMIN_TOKEN", worker.url, ["--header", `Authorization: Bearer ${VARS.ADMIN_TOKEN}`, "--include-path-regex", "^/api/(admin|cache)/"]));
  results.push(await pass("webhook routes unsigned", worker.url, ["--include-path-regex", "^/webhooks/"]));
  results.push(await pass("webhook routes signed by each provider's scheme", proxy.url, ["--include-path-regex", "^/webhooks/"]));
} finally {
  proxy.close();
  await worker.dispose();
  rmSync(dir, { recursive: true, force: true });
}
const failed = results.filter((r) => r.status !== 0);
console.log("\n| pass | operations | cases | result |\n| --- | ---: | ---: | --- |");
for (const r of results) console.log(`| ${r.name} | ${r.operations} | ${r.cases} | ${r.status === 0 ? "ok" : "FAILED"} |`);
const total = results.reduce((n, r) => n + r.cases, 0);
console.log(
  failed.length
    ? `\nfuzz:api: ${failed.length} pass(es) FAILED`
    : `\nfuzz:api: ${total} cases over ${results.reduce((n, r) => n + r.operations, 0)} operation runs in ${Math.round((Date.now() - started) / 1000)} s — no 5xx and no response outside openapi.yaml`,
);
process.exit(failed.length ? 1 : 0);
