// spawnApp(): the built worker in workerd (Miniflare) on a free port, with its own fresh local
// D1 (migrated by wrangler) and KV, and helpers to call it.
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyMigrations, signJwt, startWorker } from "../../scripts/runtime.mjs";

export const TEST_VARS = {
  JWT_SECRET: "e2e-jwt-secret",
  ADMIN_TOKEN: "e2e-admin-token",
  TWILIO_AUTH_TOKEN: "e2e-twilio-token",
  WEBHOOK_SECRET: "whsec_ZTJlLXdlYmhvb2stc2VjcmV0LWUyZS13ZWJob29rLXNlY3JldA==",
  RETELL_API_KEY: "e2e-retell-key",
  ALLOWED_ORIGINS: "https://dash.example",
  CACHE_ENABLED: "true",
  CACHE_MEMORY_ENABLED: "true",
  CACHE_KV_ENABLED: "true",
};

let migratedTemplate;

/** A migrated local D1, made once per test process and copied for each app. */
function freshState() {
  if (!migratedTemplate) {
    migratedTemplate = mkdtempSync(join(tmpdir(), "cdw-template-"));
    // Made once per test process, so removed when it ends (each app removes its own copy).
    const template = migratedTemplate;
    process.once("exit", () => rmSync(template, { recursive: true, force: true }));
    applyMigrations(migratedTemplate);
  }
  const dir = mkdtempSync(join(tmpdir(), "cdw-state-"));
  cpSync(migratedTemplate, dir, { recursive: true });
  return dir;
}

export async function spawnApp({ vars = {}, faults, copies, onLog, assets, live } = {}) {
  const persistDir = freshState();
  const allVars = { ...TEST_VARS, ...vars };
  for (const [k, v] of Object.entries(allVars)) if (v === undefined) delete allVars[k];
  const worker = await startWorker({ persistDir, vars: allVars, faults, copies, onLog, ...(assets ? { assets } : {}), ...(live === undefined ? {} : { live }) });
  const app = {
    ...worker,
    vars: allVars,
    /** A valid dashboard token for `sub` (claims may override exp, nbf, …). */
    token(sub, claims = {}) {
      const now = Math.floor(Date.now() / 1000);
      return signJwt(allVars.JWT_SECRET, { sub, iat: now, exp: now + 600, ...claims });
    },
    async request(method, path, { token, headers = {}, body, copy = 0 } = {}) {
      const h = { ...headers };
      if (token) h.authorization = `Bearer ${token}`;
      const init = { method, headers: h, body };
      const res = copy === 0 ? await fetch(app.url + path, init) : await worker.fetchCopy(copy, app.url + path, init);
      const text = await res.text();
      let json;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      return { status: res.status, headers: res.headers, text, json };
    },
    get(path, opts) {
      return app.request("GET", path, opts);
    },
    async exec(sql, ...params) {
      return worker.db.prepare(sql).bind(...params).run();
    },
    async close() {
      await worker.dispose();
      rmSync(persistDir, { recursive: true, force: true });
    },
  };
  return app;
}

/** Inserts a call row (and optional analysis/enrichment/recording) for fixtures. */
export async function insertCall(app, { user, id, startedAt, status = "completed", analysis, enrichment, recording }) {
  const answered = status === "completed" || status === "in-progress" ? 1 : 0;
  await app.exec(
    "INSERT INTO calls (id, user_id, provider, direction, from_number, to_number, status, status_rank, answered, started_at, ended_at, duration_seconds, created_at, updated_at) VALUES (?1, ?2, 'twilio', 'inbound', '+14155550100', '+14155550199', ?3, 3, ?4, ?5, ?6, 42, ?5, ?5)",
    id, user, status, answered, startedAt, startedAt + 42_000,
  );
  if (analysis) {
    await app.exec(
      "INSERT INTO analyses (call_id, user_id, status, intent, confidence, summary, completed_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
      id, user, analysis.status ?? "completed", analysis.intent ?? null, analysis.confidence ?? null, analysis.summary ?? null, startedAt + 60_000,
    );
  }
  if (enrichment) {
    await app.exec(
      "INSERT INTO enrichments (call_id, user_id, phone_number, caller_name, caller_type, line_type, carrier, spam_score, updated_at) VALUES (?1, ?2, '+14155550100', ?3, 'consumer', 'mobile', 'Verizon', 0.1, ?4)",
      id, user, enrichment.callerName ?? null, startedAt + 30_000,
    );
  }
  if (recording) {
    await app.exec(
      "INSERT INTO recordings (call_id, id, url, duration_seconds, status, updated_at) VALUES (?1, ?2, 'https://api.twilio.com/rec', 41, 'completed', ?3)",
      id, `RE${id}`, startedAt + 45_000,
    );
  }
}
