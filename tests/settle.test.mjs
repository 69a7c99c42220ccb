// The crash path of src/runtime/settle.js, run in Node: when the wasm instance traps (a panic)
// inside a promise's reaction or a drained microtask, every answer it still owes is rejected
// at once with the trap — where, uncaught, each of those requests would wait until the
// runtime cancelled it as hung — and the entry can make each such request the API's 500
// envelope. A panic cannot be caused through the API, so this drives the module directly.
import assert from "node:assert/strict";
import { test } from "node:test";
import { crashed, on_settled, promise_for, queue_guarded, set_crash_answer, set_settled, settle } from "../src/runtime/settle.js";

/** `promise`, or a rejection naming it still pending after `ms`. */
const within = (promise, ms = 2000) =>
  Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms))]);

const trap = () => {
  throw new WebAssembly.RuntimeError("unreachable");
};

test("answers settle as the instance gives them while nothing traps", async () => {
  set_settled(() => {});
  const fulfilled = promise_for(1);
  const rejected = promise_for(2);
  settle(1, true, "a response");
  settle(2, false, new Error("refused"));
  assert.equal(await within(fulfilled), "a response");
  await assert.rejects(within(rejected), /refused/);
});

test("a trap in a promise's reaction rejects every answer still owed with the trap", async () => {
  const owed = [promise_for(10), promise_for(11), promise_for(12)];
  set_settled(trap);
  on_settled(Promise.resolve("a D1 result"), 13);
  for (const answer of owed) await assert.rejects(within(answer), WebAssembly.RuntimeError);
});

test("a trap in a rejected promise's reaction rejects the answers still owed too", async () => {
  const owed = promise_for(20);
  set_settled(trap);
  on_settled(Promise.reject(new Error("D1 unavailable")), 21);
  await assert.rejects(within(owed), WebAssembly.RuntimeError);
});

test("a trap in a drained microtask rejects the answers still owed", async () => {
  const owed = promise_for(30);
  queue_guarded(trap);
  await assert.rejects(within(owed), WebAssembly.RuntimeError);
});

test("after a crash nothing is owed twice: an answer the instance gives later finds no promise", async () => {
  const owed = promise_for(40);
  crashed(new WebAssembly.RuntimeError("unreachable"));
  await assert.rejects(within(owed), WebAssembly.RuntimeError);
  settle(40, true, "too late");
  crashed(new WebAssembly.RuntimeError("again"));
});

test("the crash answer handed over is a new 500 in the envelope, with its headers, each time it is asked for", async () => {
  const envelope = { success: false, error: { code: "internal", message: "internal error" } };
  set_crash_answer(500, "content-type\napplication/json; charset=utf-8\ncache-control\nno-store\n", JSON.stringify(envelope));
  const first = globalThis.__worker_crash_answer();
  const second = globalThis.__worker_crash_answer();
  assert.notEqual(first, second);
  for (const res of [first, second]) {
    assert.equal(res.status, 500);
    assert.equal(res.headers.get("content-type"), "application/json; charset=utf-8");
    assert.equal(res.headers.get("cache-control"), "no-store");
    assert.deepEqual(await res.json(), envelope);
  }
});
