// The crash path of src/runtime/settle.js, run in Node: when the wasm instance traps (a panic)
// inside a promise's reaction or a drained microtask, every answer it still owes is given at
// once — where, uncaught, each of those requests would wait until the runtime cancelled it as
// hung. A panic cannot be caused through the API, so this drives the module directly.
import assert from "node:assert/strict";
import { test } from "node:test";
import { crashed, on_settled, promise_for, queue_guarded, set_settled, settle } from "../src/runtime/settle.js";

/** `promise`, or a rejection naming it still pending after `ms`. */
const within = (promise, ms = 2000) =>
  Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms))]);

const ENVELOPE = { success: false, error: { code: "internal", message: "internal error" } };
const crashAnswer = () => new Response(JSON.stringify(ENVELOPE), { status: 500, headers: { "content-type": "application/json; charset=utf-8" } });
const trap = () => {
  throw new WebAssembly.RuntimeError("unreachable");
};

test("answers settle as the instance gives them while nothing traps", async () => {
  set_settled(() => {});
  const fulfilled = promise_for(1, crashAnswer());
  const rejected = promise_for(2, undefined);
  settle(1, true, "a response");
  settle(2, false, new Error("refused"));
  assert.equal(await within(fulfilled), "a response");
  await assert.rejects(within(rejected), /refused/);
});

test("a trap in a promise's reaction answers every request still owed with a 500 in the envelope, and rejects the background work", async () => {
  const template = crashAnswer();
  const first = promise_for(10, template);
  const second = promise_for(11, template);
  const background = promise_for(12, undefined);
  set_settled(trap);
  on_settled(Promise.resolve("a D1 result"), 13);
  const answers = await within(Promise.all([first, second]));
  for (const res of answers) {
    assert.equal(res.status, 500);
    assert.equal(res.headers.get("content-type"), "application/json; charset=utf-8");
    assert.deepEqual(await res.json(), ENVELOPE);
  }
  await assert.rejects(within(background), WebAssembly.RuntimeError);
  // Each request got a clone: the template itself is still unread, for the next crash.
  assert.equal(template.bodyUsed, false);
});

test("a trap in a rejected promise's reaction answers the requests still owed too", async () => {
  const owed = promise_for(20, crashAnswer());
  set_settled(trap);
  on_settled(Promise.reject(new Error("D1 unavailable")), 21);
  assert.equal((await within(owed)).status, 500);
});

test("a trap in a drained microtask answers the requests still owed", async () => {
  const owed = promise_for(30, crashAnswer());
  queue_guarded(trap);
  assert.equal((await within(owed)).status, 500);
});

test("after a crash nothing is owed twice: an answer the instance gives later finds no promise", async () => {
  const owed = promise_for(40, crashAnswer());
  crashed(new Error("trapped"));
  const res = await within(owed);
  assert.equal(res.status, 500);
  settle(40, true, "too late");
  crashed(new Error("trapped again"));
});
