// `npm start` reads .dev.vars when present, else .dev.vars.example, over wrangler.toml [vars];
// and the values it reads are the ones the running worker uses.
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { ROOT, devVarsFile, localVars, signJwt } from "../scripts/runtime.mjs";
import { spawnApp } from "./support/app.mjs";

const dir = mkdtempSync(join(tmpdir(), "cdw-vars-"));
copyFileSync(join(ROOT, "wrangler.toml"), join(dir, "wrangler.toml"));
copyFileSync(join(ROOT, ".dev.vars.example"), join(dir, ".dev.vars.example"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("without .dev.vars the example's values are used over wrangler.toml's vars", () => {
  assert.equal(devVarsFile(dir), join(dir, ".dev.vars.example"));
  const vars = localVars({}, dir);
  assert.equal(vars.JWT_SECRET, "dev-jwt-secret-change-me");
  assert.equal(vars.CACHE_ENABLED, "true", "wrangler.toml [vars] still apply");
  assert.match(vars.ALLOWED_ORIGINS, /127\.0\.0\.1:8787/, ".dev.vars.example overrides wrangler.toml");
});

test(".dev.vars wins when present, and its secrets and vars take effect in the worker", async () => {
  writeFileSync(
    join(dir, ".dev.vars"),
    '# local\nJWT_SECRET="from-dot-dev-vars"\nADMIN_TOKEN=local-admin\nALLOWED_ORIGINS=https://mine.example\nPUBLIC_BASE_URL=https://tunnel.example\n',
  );
  assert.equal(devVarsFile(dir), join(dir, ".dev.vars"));
  const vars = localVars({}, dir);
  assert.equal(vars.JWT_SECRET, "from-dot-dev-vars");
  assert.equal(vars.PUBLIC_BASE_URL, "https://tunnel.example");
  assert.equal(vars.WEBHOOK_SECRET, undefined, "only .dev.vars is read when it exists, like wrangler");

  const app = await spawnApp({ vars: { ...Object.fromEntries(Object.keys(localVars({}, dir)).map((k) => [k, undefined])), ...vars } });
  try {
    const now = Math.floor(Date.now() / 1000);
    const mine = signJwt("from-dot-dev-vars", { sub: "ada", exp: now + 60 });
    const example = signJwt("dev-jwt-secret-change-me", { sub: "ada", exp: now + 60 });
    assert.equal((await app.get("/api/webhook-calls", { token: mine })).status, 200);
    assert.equal((await app.get("/api/webhook-calls", { token: example })).status, 401);
    const cors = await app.get("/api/health", { headers: { origin: "https://mine.example" } });
    assert.equal(cors.headers.get("access-control-allow-origin"), "https://mine.example");
    const del = await app.request("DELETE", "/api/admin/phone-numbers/+14155550100", { token: "local-admin" });
    assert.equal(del.status, 404, "the admin token from .dev.vars is accepted");
  } finally {
    await app.close();
  }
});
