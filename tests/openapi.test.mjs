// openapi.yaml is itself a valid OpenAPI 3.1 document, and names every route the worker serves.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Validator } from "@seriousme/openapi-schema-validator";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../scripts/runtime.mjs";
import { spec } from "./support/openapi.mjs";

test("openapi.yaml is a valid OpenAPI 3.1 document", async () => {
  const validator = new Validator();
  const result = await validator.validate(spec);
  assert.equal(spec.openapi, "3.1.0");
  assert.ok(result.valid, JSON.stringify(result.errors, null, 2));
});

test("openapi.yaml and the route table in src/http/routes.rs list the same routes and methods", () => {
  const source = readFileSync(join(ROOT, "src/http/routes.rs"), "utf8");
  // The table's named `Allow` lists (`const READ: &str = "…";`), then its rows.
  const named = Object.fromEntries([...source.matchAll(/^const ([A-Z_]+): &str = "([^"]+)";/gm)].map(([, k, v]) => [k, v]));
  const table = [...source.matchAll(/path: "([^"]+)",\s*allow: (?:"([^"]+)"|([A-Z_]+)),/g)].flatMap(([, path, literal, name]) =>
    (literal ?? named[name] ?? "")
      .split(",")
      .map((m) => m.trim())
      // HEAD comes with GET and OPTIONS with every path; openapi.yaml documents neither.
      .filter((m) => m !== "HEAD" && m !== "OPTIONS")
      .map((m) => `${m} ${path}`),
  );
  const documented = Object.entries(spec.paths).flatMap(([path, item]) =>
    Object.keys(item).filter((k) => k !== "parameters").map((m) => `${m.toUpperCase()} ${path}`),
  );
  assert.ok(table.length >= 8, "route table found");
  assert.deepEqual([...table].sort(), [...documented].sort());
});
