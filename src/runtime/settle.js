// The JavaScript side of src/runtime/settle.rs: the one callback every awaited promise settles
// through, the promises a request's task answers with, and what happens to those when the
// wasm instance traps (a panic) while running one of them.
//
// A trap inside a promise's reaction or a drained microtask throws here, not to the runtime:
// uncaught, every answer the instance still owes would never settle, and the runtime would
// cancel each of those requests as hung. Caught, every owed answer is rejected at once with the
// trap; the entry (scripts/lean-entry.mjs) answers a request so rejected, in that request's own
// context, with the crash answer kept here (the API's 500 envelope). The instance is replaced
// before its next call (the panic hook marks it crashed).

let settled;
const deferred = new Map();

export function set_settled(callback) {
  settled = callback;
}

// The try blocks are written out in each reaction rather than through a helper taking a
// closure: a reaction runs for every promise the instance awaits.
export function on_settled(promise, id) {
  promise.then(
    (value) => {
      try {
        settled(id, true, value);
      } catch (trap) {
        crashed(trap);
      }
    },
    (error) => {
      try {
        settled(id, false, error);
      } catch (trap) {
        crashed(trap);
      }
    },
  );
}

/** `callback` on the microtask queue, its trap caught as a reaction's is. */
export function queue_guarded(callback) {
  queueMicrotask(() => {
    try {
      callback();
    } catch (trap) {
      crashed(trap);
    }
  });
}

/** A new promise, settled later by `settle` with the same id (or rejected by a crash). */
export function promise_for(id) {
  return new Promise((resolve, reject) => deferred.set(id, [resolve, reject]));
}

export function settle(id, ok, value) {
  const d = deferred.get(id);
  deferred.delete(id);
  if (d) d[ok ? 0 : 1](value);
}

/** Rejects every answer still owed with `trap`: the instance can no longer give them. */
export function crashed(trap) {
  const owed = [...deferred.values()];
  deferred.clear();
  for (const [, reject] of owed) reject(trap);
}

/** Keeps the answer to a request the instance trapped on, as its parts: a `Response` is bound
 * to the request it was made in, so each such request gets one made in its own context, by
 * the entry's catch, through this global (as the entry reads the instance's crash bookkeeping
 * through `__worker_init_state`). */
export function set_crash_answer(status, headerLines, body) {
  // A `Headers` is no request's I/O: made once here, copied by each `Response` made from it.
  const lines = headerLines.split("\n");
  const headers = new Headers();
  for (let i = 0; i + 1 < lines.length; i += 2) headers.append(lines[i], lines[i + 1]);
  globalThis.__worker_crash_answer = () => new Response(body, { status, headers });
}
