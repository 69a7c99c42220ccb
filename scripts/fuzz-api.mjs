// `npm run fuzz:api`: schemathesis generates requests from openapi.yaml against the release
// worker (seeded, with valid tokens) and fails on any 5xx or any response outside the schema.
// Two passes: a dashboard JWT (every route), then ADMIN_TOKEN (the operator routes).
// FUZZ_API_EXAMPLES per operation (default 100).
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEMO_USERS, demoStatements, loadStatements } from "./demo-data.mjs";
import { ROOT, applyMigrations, devToken, startWorker } from "./runtime.mjs";

const EXAMPLES = process.env.FUZZ_API_EXAMPLES ?? "100";
const ST = join(ROOT, ".venv-tools/schemathesis/bin/st");
const VARS = {
  JWT_SECRET: "fuzz-jwt-secret",
  ADMIN_TOKEN: "fuzz-admin-token",
  TWILIO_AUTH_TOKEN: "fuzz-twilio",
  WEBHOOK_SECRET: "whsec_ZnV6ei13ZWJob29rLXNlY3JldC0zMi1ieXRlcy0h",
  RETELL_API_KEY: "fuzz-retell",
  ALLOWED_ORIGINS: "http://localhost",
};

const dir = mkdtempSync(join(tmpdir(), "fuzz-api-"));
applyMigrations(dir);
const worker = await startWorker({ persistDir: dir, vars: VARS, onLog: () => {} });
await loadStatements(worker.db, demoStatements(Date.now()));
let failed = 0;
try {
  const passes = [
    ["dashboard JWT", devToken(VARS.JWT_SECRET, DEMO_USERS[0].id), []],
    ["ADMIN_TOKEN", VARS.ADMIN_TOKEN, ["--include-path-regex", "^/api/(admin|cache)/"]],
  ];
  for (const [name, token, filter] of passes) {
    console.log(`\n==> schemathesis with a ${name}`);
    const res = spawnSync(
      ST,
      [
        "run", join(ROOT, "openapi.yaml"),
        "--url", worker.url,
        "--header", `Authorization: Bearer ${token}`,
        "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
        "--max-examples", EXAMPLES,
        "--generation-deterministic",
        "--request-timeout", "10",
        "--suppress-health-check", "all",
        ...filter,
      ],
      { stdio: "inherit", env: { ...process.env, SCHEMATHESIS_TELEMETRY: "false" } },
    );
    if (res.status !== 0) failed++;
  }
} finally {
  await worker.dispose();
  rmSync(dir, { recursive: true, force: true });
}
console.log(failed ? `\nfuzz:api: ${failed} pass(es) FAILED` : "\nfuzz:api: no 5xx and no response outside openapi.yaml");
process.exit(failed ? 1 : 0);
