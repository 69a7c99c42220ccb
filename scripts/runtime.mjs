// Runs the built worker in workerd through Miniflare's own server, with local D1 and KV on
// disk. Shared by `npm start`, the end-to-end tests and the benchmarks so all three run the
// same configuration.
import { Miniflare } from "miniflare";
import { execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { cpSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

/** The binding ids of wrangler.toml, so wrangler and Miniflare open the same local files. */
export function wranglerSettings(root = ROOT) {
  const toml = readFileSync(join(root, "wrangler.toml"), "utf8");
  const pick = (re, what) => {
    const m = toml.match(re);
    if (!m) throw new Error(`wrangler.toml: ${what} not found`);
    return m[1];
  };
  const vars = {};
  const section = toml.split(/^\[vars\]\s*$/m)[1]?.split(/^\[/m)[0] ?? "";
  for (const line of section.split("\n")) {
    const m = line.match(/^\s*([A-Z0-9_]+)\s*=\s*"(.*)"\s*$/);
    if (m) vars[m[1]] = m[2];
  }
  return {
    compatibilityDate: pick(/^compatibility_date\s*=\s*"([^"]+)"/m, "compatibility_date"),
    d1Id: pick(/binding\s*=\s*"DB"[\s\S]*?database_id\s*=\s*"([^"]+)"/, "the DB database_id"),
    kvId: pick(/binding\s*=\s*"CACHE"[\s\S]*?\bid\s*=\s*"([^"]+)"/, "the CACHE namespace id"),
    vars,
  };
}

/** Parses a dotenv-style file (KEY=VALUE, # comments, optional quotes). */
export function parseDotenv(text) {
  const out = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq < 1) continue;
    let value = line.slice(eq + 1).trim();
    if (/^(["']).*\1$/.test(value)) value = value.slice(1, -1);
    out[line.slice(0, eq).trim()] = value;
  }
  return out;
}

/** Which vars file local runs use: `.dev.vars` when present, else the committed example. */
export function devVarsFile(root = ROOT) {
  const own = join(root, ".dev.vars");
  return existsSync(own) ? own : join(root, ".dev.vars.example");
}

/** wrangler.toml [vars], overridden by the dev vars file, overridden by `overrides`. */
export function localVars(overrides = {}, root = ROOT) {
  return {
    ...wranglerSettings(root).vars,
    ...parseDotenv(readFileSync(devVarsFile(root), "utf8")),
    ...overrides,
  };
}

/**
 * Applies migrations/ to the local D1 under `persistDir` with wrangler, as an operator would.
 * `root` is the checkout whose wrangler.toml and migrations/ are used (the A/B bench passes an
 * older one); wrangler itself is always this checkout's.
 */
export function applyMigrations(persistDir, root = ROOT) {
  execFileSync(
    join(ROOT, "node_modules/.bin/wrangler"),
    ["d1", "migrations", "apply", "DB", "--local", "--persist-to", persistDir],
    { cwd: root, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false" } },
  );
}

/**
 * A JS wrapper around the real D1 binding that fails on demand, for fault-injection tests.
 * It must be a class named D1Database (workers-rs checks the constructor's name), and may only
 * fail from the async methods: workers-rs unwraps `prepare()` and `bind()`, so a synchronous
 * throw there would abort the wasm instance.
 */
const D1_FAULTS_SCRIPT = `
async function check(env) {
  const res = await env.FAULTS.fetch("http://faults/d1");
  const { fail } = await res.json();
  if (fail) throw new Error("D1_ERROR: injected failure: database unavailable");
}
class D1PreparedStatement {
  constructor(env, inner) { this.env = env; this.inner = inner; }
  bind(...values) { return new D1PreparedStatement(this.env, this.inner.bind(...values)); }
  async first(col) { await check(this.env); return this.inner.first(col); }
  async all() { await check(this.env); return this.inner.all(); }
  async run() { await check(this.env); return this.inner.run(); }
  async raw(opts) { await check(this.env); return this.inner.raw(opts); }
}
class D1Database {
  constructor(env) { this.env = env; }
  prepare(sql) { return new D1PreparedStatement(this.env, this.env.REAL.prepare(sql)); }
  async batch(statements) { await check(this.env); return this.env.REAL.batch(statements.map((s) => s.inner)); }
  async exec(sql) { await check(this.env); return this.env.REAL.exec(sql); }
  async dump() { await check(this.env); return this.env.REAL.dump(); }
}
export default function (env) { return new D1Database(env); }
`;

/** The same for KV: every method fails while `faults.kv` is true. */
const KV_FAULTS_SCRIPT = `
async function check(env) {
  const res = await env.FAULTS.fetch("http://faults/kv");
  const { fail } = await res.json();
  if (fail) throw new Error("KV GET failed: injected failure: 503 Service Unavailable");
}
class KvNamespace {
  constructor(env) { this.env = env; }
  async get(key, opts) { await check(this.env); return this.env.REAL.get(key, opts); }
  async getWithMetadata(key, opts) { await check(this.env); return this.env.REAL.getWithMetadata(key, opts); }
  async put(key, value, opts) { await check(this.env); return this.env.REAL.put(key, value, opts); }
  async list(opts) { await check(this.env); return this.env.REAL.list(opts); }
  async delete(key) { await check(this.env); return this.env.REAL.delete(key); }
}
export default function (env) { return new KvNamespace(env); }
`;

/** A live-feed object that fails every call, for the test that webhooks never depend on it. */
const LIVE_FAILING_SCRIPT = `
export class LiveFeedObject {
  constructor(state, env) {}
  async fetch() { throw new Error("injected failure: the live feed object is down"); }
}
export default { fetch() { return new Response("live-failing"); } };
`;

/**
 * Starts the worker. `vars` replaces the binding values entirely (use localVars() to build
 * them). With `faults` (an object the caller may change at any time: `{ d1, kv }`), the DB and
 * CACHE bindings go through wrappers that fail while the matching flag is true. `copies` > 1
 * runs that many copies of the worker — separate isolates sharing one D1 and one KV — reached
 * with `fetchCopy(i, url, init)` (copy 0 is the one served on `url`). `live: false` leaves the
 * LIVE Durable Object binding out (a deployment without the live feed); `live: "failing"` binds
 * it to an object that throws on every call. `root` is the checkout whose build/ and
 * wrangler.toml are run (the A/B bench runs an older commit's build beside this one);
 * `scriptPath` another worker entirely, with the same bindings (the bench's reference workers).
 * Returns { url, mf, db, kv, scheduled, fetchCopy, dispose }.
 */
export async function startWorker({ persistDir, vars, port = 0, host = "127.0.0.1", faults, copies = 1, onLog, assets = join(ROOT, "public"), live = true, root = ROOT, scriptPath = join(root, "build/index.js"), inspectorPort }) {
  const settings = wranglerSettings(root);
  if (!existsSync(scriptPath)) {
    throw new Error(`${scriptPath} is missing: run \`bash scripts/build.sh\` first`);
  }
  const names = Array.from({ length: copies }, (_, i) => (i === 0 ? "main" : `copy-${i}`));
  const workers = names.map((name) => {
    const w = {
      name,
      modules: true,
      scriptPath,
      modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
      compatibilityDate: settings.compatibilityDate,
      bindings: vars,
    };
    if (live === "failing") {
      w.durableObjects = { LIVE: { className: "LiveFeedObject", scriptName: "live-failing" } };
    } else if (live) {
      // One LiveFeedObject namespace for every copy: a user's object is the same whichever
      // isolate took the webhook (as in production).
      w.durableObjects = { LIVE: name === "main" ? "LiveFeedObject" : { className: "LiveFeedObject", scriptName: "main" } };
    }
    if (name === "main" && assets) {
      // Static assets (the console) answer first; anything else reaches the worker.
      // API and webhook paths skip the asset lookup (as `run_worker_first` in wrangler.toml).
      w.assets = {
        directory: assets,
        routerConfig: { has_user_worker: true, static_routing: { user_worker: ["/api/*", "/webhooks/*"] } },
      };
    }
    if (faults) {
      // The worker sees the wrappers as DB and CACHE; tests seed and inspect through RAW_*.
      w.d1Databases = { RAW_DB: settings.d1Id };
      w.kvNamespaces = { RAW_CACHE: settings.kvId };
      w.wrappedBindings = { DB: { scriptName: "d1-faults" }, CACHE: { scriptName: "kv-faults" } };
    } else {
      w.d1Databases = { DB: settings.d1Id };
      w.kvNamespaces = { CACHE: settings.kvId };
    }
    return w;
  });
  if (live === "failing") {
    workers.push({ name: "live-failing", modules: true, script: LIVE_FAILING_SCRIPT, durableObjects: { SELF: "LiveFeedObject" } });
  }
  if (faults) {
    const flags = (which) => async () => new Response(JSON.stringify({ fail: Boolean(faults[which]) }));
    workers.push(
      { name: "d1-faults", modules: true, script: D1_FAULTS_SCRIPT, d1Databases: { REAL: settings.d1Id }, serviceBindings: { FAULTS: flags("d1") } },
      { name: "kv-faults", modules: true, script: KV_FAULTS_SCRIPT, kvNamespaces: { REAL: settings.kvId }, serviceBindings: { FAULTS: flags("kv") } },
    );
  }
  // With `onLog`, everything the runtime prints (the worker's console included) goes to it,
  // line by line, instead of this process's output.
  const logging = onLog
    ? {
        handleStructuredLogs: ({ level, message }) => {
          onLog(`${level}: ${message}`);
        },
        handleRuntimeStdio: (stdout, stderr) => {
          for (const stream of [stdout, stderr]) {
            stream.setEncoding("utf8");
            // Structured lines also reach handleStructuredLogs; pass each on once.
            const structured = (l) => l.startsWith('{"timestamp"');
            stream.on("data", (chunk) => chunk.split("\n").filter((l) => l && !structured(l)).forEach((l) => onLog(l)));
          }
        },
      }
    : {};
  const mf = new Miniflare({
    workers,
    d1Persist: join(persistDir, "v3/d1"),
    kvPersist: join(persistDir, "v3/kv"),
    durableObjectsPersist: join(persistDir, "v3/do"),
    host,
    port,
    ...(inspectorPort ? { inspectorPort } : {}),
    ...logging,
  });
  const url = (await mf.ready).toString().replace(/\/$/, "");
  const db = await mf.getD1Database(faults ? "RAW_DB" : "DB");
  const kv = await mf.getKVNamespace(faults ? "RAW_CACHE" : "CACHE");
  const scheduled = async (copy = 0) => (await mf.getWorker(names[copy])).scheduled({ cron: "* * * * *" });
  const fetchCopy = async (copy, target, init) => (await mf.getWorker(names[copy])).fetch(target, init);
  return { url, mf, db, kv, scheduled, fetchCopy, dispose: () => mf.dispose() };
}

/**
 * The console's files plus `dev-token.json` (a token for `sub`), in a directory outside the
 * repository: local runs offer the token on the page, deployments never have the file.
 */
export function consoleWithDevToken(dir, secret, sub) {
  cpSync(join(ROOT, "public"), dir, { recursive: true });
  writeFileSync(join(dir, "dev-token.json"), JSON.stringify({ sub, token: devToken(secret, sub) }));
  return dir;
}

/** An HS256 JWT for `sub`, signed like the dashboard's identity provider would. */
export function signJwt(secret, claims) {
  const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");
  const input = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  const sig = createHmac("sha256", secret).update(input).digest("base64url");
  return `${input}.${sig}`;
}

export function devToken(secret, sub, ttlSeconds = 12 * 3600) {
  const now = Math.floor(Date.now() / 1000);
  return signJwt(secret, { sub, iat: now, exp: now + ttlSeconds });
}
