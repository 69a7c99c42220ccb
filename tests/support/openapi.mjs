// Validates real responses against openapi.yaml, and records which documented responses the
// run exercised so a test can insist that every one was seen.
import Ajv2020 from "ajv/dist/2020.js";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { ROOT } from "../../scripts/runtime.mjs";

export const spec = parse(readFileSync(join(ROOT, "openapi.yaml"), "utf8"));

const ajv = new Ajv2020({ strict: false, allErrors: true });
// Component refs become refs into one schema document holding every component schema.
const rewrite = (node) =>
  JSON.parse(JSON.stringify(node).replaceAll('"#/components/schemas/', '"components#/$defs/'));
ajv.addSchema({ $id: "components", $defs: rewrite(spec.components.schemas) });

const resolve = (node) => {
  if (node && node.$ref) {
    const path = node.$ref.replace(/^#\//, "").split("/");
    return resolve(path.reduce((n, k) => n[k], spec));
  }
  return node;
};

/** The spec's path template matching a concrete path, e.g. /api/webhook-calls/{callId}. */
export function templateFor(path) {
  const parts = path.split("?")[0].split("/");
  for (const template of Object.keys(spec.paths)) {
    const t = template.split("/");
    if (t.length === parts.length && t.every((seg, i) => seg.startsWith("{") || seg === parts[i])) {
      return template;
    }
  }
  return undefined;
}

export const seen = new Set();

/** Throws unless (method, path, status, body) is a response the spec documents. */
export function assertMatchesSpec(method, path, res) {
  const template = templateFor(path);
  if (!template) throw new Error(`${path}: no such path in openapi.yaml`);
  // A 405 is documented on the operations the path does have.
  const op =
    res.status === 405
      ? Object.values(spec.paths[template]).find((o) => o?.responses?.["405"])
      : spec.paths[template][method.toLowerCase()];
  if (res.status === 405) method = Object.keys(spec.paths[template]).find((m) => spec.paths[template][m] === op)?.toUpperCase() ?? method;
  if (!op) throw new Error(`${method} ${template}: not in openapi.yaml`);
  const documented = op.responses[String(res.status)];
  if (!documented) throw new Error(`${method} ${template}: status ${res.status} is not documented`);
  seen.add(`${method.toUpperCase()} ${template} ${res.status}`);
  const response = resolve(documented);
  if (response.content?.["text/xml"]) {
    if (!(res.headers.get("content-type") ?? "").startsWith("text/xml")) {
      throw new Error(`${method} ${template} ${res.status}: expected text/xml, got ${res.headers.get("content-type")}`);
    }
    return;
  }
  const schema = response.content?.["application/json"]?.schema;
  if (!schema) {
    if (res.text) throw new Error(`${method} ${template} ${res.status}: documented without a body, got ${res.text.slice(0, 200)}`);
    return;
  }
  if (!(res.headers.get("content-type") ?? "").startsWith("application/json")) {
    throw new Error(`${method} ${template} ${res.status}: content-type ${res.headers.get("content-type")}`);
  }
  const validate = ajv.compile(rewrite(schema));
  if (!validate(res.json)) {
    throw new Error(
      `${method} ${template} ${res.status}: body does not match openapi.yaml:\n` +
        JSON.stringify(validate.errors, null, 2) + "\nbody: " + res.text.slice(0, 500),
    );
  }
  for (const [name, header] of Object.entries(response.headers ?? {})) {
    const value = res.headers.get(name);
    if (value === null) throw new Error(`${method} ${template} ${res.status}: header ${name} missing`);
    const hs = resolve(header).schema;
    const v = ajv.compile(rewrite(hs));
    if (!v(value)) throw new Error(`${method} ${template} ${res.status}: header ${name}=${value} off spec`);
  }
}

/** Every (METHOD template status) the spec documents, for paths starting with `prefix`. */
export function documentedResponses(prefix = "/") {
  const out = [];
  for (const [template, item] of Object.entries(spec.paths)) {
    if (!template.startsWith(prefix)) continue;
    for (const [method, op] of Object.entries(item)) {
      if (!op.responses) continue;
      for (const status of Object.keys(op.responses)) out.push(`${method.toUpperCase()} ${template} ${status}`);
    }
  }
  return out;
}
