// Runs the built worker in workerd through Miniflare's own server, with local D1 and KV on
// disk. Shared by `npm start`, the end-to-end tests and the benchmarks so all three run the
// same configuration.
import { Miniflare } from "miniflare";
import { execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
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

/** Applies migrations/ to the local D1 under `persistDir` with wrangler, as an operator would. */
export function applyMigrations(persistDir) {
  execFileSync(
    join(ROOT, "node_modules/.bin/wrangler"),
    ["d1", "migrations", "apply", "DB", "--local", "--persist-to", persistDir],
    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false" } },
  );
}

/**
 * Starts the worker. `vars` replaces the binding values entirely (use localVars() to build
 * them). Returns { url, mf, db, kv, dispose }.
 */
export async function startWorker({ persistDir, vars, port = 0, host = "127.0.0.1", log = false }) {
  const settings = wranglerSettings();
  if (!existsSync(join(ROOT, "build/index.js"))) {
    throw new Error("build/index.js is missing: run `bash scripts/build.sh` first");
  }
  const mf = new Miniflare({
    modules: true,
    scriptPath: join(ROOT, "build/index.js"),
    modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
    compatibilityDate: settings.compatibilityDate,
    bindings: vars,
    d1Databases: { DB: settings.d1Id },
    kvNamespaces: { CACHE: settings.kvId },
    d1Persist: join(persistDir, "v3/d1"),
    kvPersist: join(persistDir, "v3/kv"),
    host,
    port,
    ...(log ? {} : { log: undefined }),
  });
  const url = await mf.ready;
  const db = await mf.getD1Database("DB");
  const kv = await mf.getKVNamespace("CACHE");
  return { url: url.toString().replace(/\/$/, ""), mf, db, kv, dispose: () => mf.dispose() };
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
