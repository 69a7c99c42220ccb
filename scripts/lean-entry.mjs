#!/usr/bin/env node
// worker-build's esbuild step, with the worker's handlers exported as a plain object instead of
// its proxied entry class. scripts/build.sh hands this file to worker-build as ESBUILD_BIN; it
// runs in the staging folder where worker-build has just written `shim.js`, edits that one
// line, then runs the real esbuild (LEAN_ENTRY_ESBUILD) with the arguments it was given.
//
// Why: worker-build's shim exports `new Proxy(Entrypoint, classProxyHooks)`, a
// `WorkerEntrypoint` class. workerd builds an entrypoint per request, so every request pays
// for the instance, a construct trap, a wrapper object and a `get` trap that allocates a second
// proxy around `fetch` before the call reaches wasm — work a plain JavaScript worker
// (`export default { fetch }`) never does. The proxies exist to re-create instances and to
// check for a crashed wasm instance around every call. The entrypoint holds no wasm state (it
// only carries `env` and `ctx`) and nothing here uses its RPC, so the handlers are exported
// as a plain object's methods, which workerd calls with `(request, env, ctx)`: each calls the
// template's handler with a `{ env, ctx }` of its own as `this` (what the handler reads), with
// the crash check kept once per call: `checkReinitialize()` before the call and
// `handleMaybeCritical()` on a synchronous throw, exactly what the proxy's apply trap did for
// these (plain, promise-returning) handlers — and a `fetch` the instance trapped on is
// answered with the API's 500 envelope the instance handed over (src/runtime/settle.js).
// Against the class (even without its proxies) that took about 3 % off workerd's CPU per
// request on the health route and on a memory hit (`npm run profile`, unsampled, alternated).
// The Durable Object class keeps its proxy: it holds wasm state, and its instances live
// across requests.
//
// The edit is checked: if worker-build's template ever changes (another worker-build version),
// the line is not found and the build fails here rather than shipping the stock entry silently.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";

const SHIM = "./shim.js";
const PROXIED = "export default new Proxy(Entrypoint, classProxyHooks);";
const LEAN = `// The handlers as a plain object (scripts/lean-entry.mjs): no proxy, no entrypoint per request.
const entry = {};
for (const name of Object.getOwnPropertyNames(Entrypoint.prototype)) {
  const handler = Entrypoint.prototype[name];
  if (name === "constructor" || typeof handler !== "function") continue;
  const answers = name === "fetch";
  entry[name] = function (arg, env, ctx) {
    checkReinitialize();
    let answer;
    try {
      answer = handler.call({ env, ctx }, arg);
    } catch (e) {
      handleMaybeCritical(e);
      if (answers && e instanceof WebAssembly.RuntimeError) return crashAnswer(e);
      throw e;
    }
    return answers && answer instanceof Promise ? answer.catch(crashAnswer) : answer;
  };
}
// A request the instance trapped on (a panic), before its first await or after (then
// src/runtime/settle.js rejects it with the trap): the API's 500 envelope the instance handed
// over, made here, in the request's own context, rather than the runtime's own 500.
function crashAnswer(e) {
  if (!(e instanceof WebAssembly.RuntimeError) || !globalThis.__worker_crash_answer) throw e;
  return globalThis.__worker_crash_answer();
}
export default entry;`;

const fail = (message) => {
  console.error(`[lean-entry] ${message}`);
  process.exit(1);
};

if (existsSync(SHIM)) {
  const shim = readFileSync(SHIM, "utf8");
  const lines = shim.split("\n");
  const at = lines.indexOf(PROXIED);
  if (at < 0 || lines.indexOf(PROXIED, at + 1) >= 0) {
    fail(`${SHIM} does not hold exactly one line \`${PROXIED}\`: worker-build's shim changed; review scripts/lean-entry.mjs against it`);
  }
  for (const needed of ["class Entrypoint extends WorkerEntrypoint", "function checkReinitialize()", "function handleMaybeCritical("]) {
    if (!shim.includes(needed)) fail(`${SHIM} has no \`${needed}\`: worker-build's shim changed`);
  }
  lines[at] = LEAN;
  writeFileSync(SHIM, lines.join("\n"));
}

const esbuild = process.env.LEAN_ENTRY_ESBUILD;
if (!esbuild) fail("LEAN_ENTRY_ESBUILD is not set (scripts/build.sh sets it to the real esbuild)");
const run = spawnSync(esbuild, process.argv.slice(2), { stdio: "inherit" });
if (run.error) fail(`running ${esbuild}: ${run.error.message}`);
process.exit(run.status ?? 1);
