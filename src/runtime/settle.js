// The JavaScript side of src/runtime/settle.rs: the one callback every awaited promise settles
// through, the promises a request's task answers with, and what happens to those when the
// wasm instance traps (a panic) while running one of them.
//
// A trap inside a promise's reaction or a drained microtask throws here, not to the runtime:
// without a catch, every answer still owed by the instance would never settle, and the runtime
// would cancel each request as hung. Caught, every owed answer is given at once: a request's
// with the crash answer it was made with (a 500 in the API's envelope, cloned), the rest
// (background work, the scheduled handler) rejected with the error. The instance is replaced
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

/** A new promise, settled later by `settle` with the same id; after a crash, with a clone of
 * `crashAnswer` when it is given, else rejected. */
export function promise_for(id, crashAnswer) {
  return new Promise((resolve, reject) => deferred.set(id, [resolve, reject, crashAnswer]));
}

export function settle(id, ok, value) {
  const d = deferred.get(id);
  deferred.delete(id);
  if (d) d[ok ? 0 : 1](value);
}

/** Gives every answer still owed: the instance can no longer give them. */
export function crashed(error) {
  const owed = [...deferred.values()];
  deferred.clear();
  for (const [resolve, reject, crashAnswer] of owed) {
    if (crashAnswer) resolve(crashAnswer.clone());
    else reject(error);
  }
}
