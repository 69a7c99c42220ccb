//! The runtime's promises awaited through one callback, and a request's task settled through
//! one call: the JavaScript side of [`crate::tasks`].
//!
//! [`settled`] hands a promise to `on_settled`, which attaches a reaction calling the one
//! callback this isolate made (`CALLBACK`) with the wait's id and outcome; the callback stores
//! the outcome and wakes the waiting task inside [`tasks::from_settled_promise`], so the task
//! is polled right there. Per awaited promise that is one crossing each way, with no closure
//! made or dropped (`JsFuture` made two and dropped them, and its wake-up went through a
//! `queueMicrotask` round trip).
//!
//! The JavaScript side lives in `settle.js`. A trap of the instance (a panic) inside a
//! reaction or a drained microtask is caught there, and every answer the instance still owes
//! is rejected at once — a request's then answered by the entry with the API's 500 envelope
//! ([`set_crash_answer`]) — where the runtime would otherwise cancel each of them as hung.

use crate::tasks;
use js_sys::Promise;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use wasm_bindgen::prelude::{wasm_bindgen, Closure};
use wasm_bindgen::JsValue;

#[wasm_bindgen(module = "/src/runtime/settle.js")]
extern "C" {
    fn set_settled(callback: &Closure<dyn FnMut(f64, bool, JsValue)>);
    fn on_settled(promise: &Promise, id: f64);
    /// `queueMicrotask(callback)`, a trap in it caught as one in a promise's reaction is.
    fn queue_guarded(callback: &Closure<dyn FnMut()>);
    /// A new promise, settled later by `settle` with the same id (or rejected by a trap).
    fn promise_for(id: f64) -> Promise;
    fn settle(id: f64, ok: bool, value: JsValue);
    /// Keeps the answer to a request the instance traps on: its status, its headers as
    /// `name\nvalue\n` lines, its body.
    pub fn set_crash_answer(status: u16, header_lines: &str, body: &str);
}

/// A wait on one promise.
enum Wait {
    /// Not settled yet: the waker of the last poll.
    Pending(Option<Waker>),
    Settled(Result<JsValue, JsValue>),
}

thread_local! {
    /// The waits on promises not yet taken by their future: a few per request in flight, so a
    /// list searched by id (smaller in the module than a map).
    static WAITS: RefCell<Vec<(u64, Wait)>> = const { RefCell::new(Vec::new()) };
    /// Ids of waits and of task promises; f64-exact far beyond an isolate's life.
    static NEXT_ID: Cell<u64> = const { Cell::new(0) };
    /// The callback every awaited promise settles through, made once per isolate.
    static CALLBACK: Closure<dyn FnMut(f64, bool, JsValue)> = {
        let callback = Closure::new(on_settle);
        set_settled(&callback);
        callback
    };
    static DRAIN: Closure<dyn FnMut()> = {
        tasks::set_drain_scheduler(|| DRAIN.with(queue_guarded));
        Closure::new(tasks::drain)
    };
}

fn find(waits: &mut [(u64, Wait)], id: u64) -> Option<&mut Wait> {
    waits
        .iter_mut()
        .find(|(w, _)| *w == id)
        .map(|(_, wait)| wait)
}

fn take(waits: &mut Vec<(u64, Wait)>, id: u64) -> Option<Wait> {
    let at = waits.iter().position(|(w, _)| *w == id)?;
    Some(waits.swap_remove(at).1)
}

fn next_id() -> u64 {
    NEXT_ID.with(|n| {
        n.set(n.get() + 1);
        n.get()
    })
}

fn on_settle(id: f64, ok: bool, value: JsValue) {
    let outcome = if ok { Ok(value) } else { Err(value) };
    let waker = WAITS.with(|w| {
        // A wait dropped before its promise settled has no entry: its outcome is dropped.
        match find(&mut w.borrow_mut(), id as u64) {
            Some(wait @ Wait::Pending(_)) => {
                match std::mem::replace(wait, Wait::Settled(outcome)) {
                    Wait::Pending(waker) => waker,
                    Wait::Settled(_) => None,
                }
            }
            _ => None,
        }
    });
    if let Some(waker) = waker {
        tasks::from_settled_promise(|| waker.wake());
    }
}

/// Makes sure this isolate's callback and drain exist (the first wait or task makes them).
fn ready() {
    CALLBACK.with(|_| ());
    DRAIN.with(|_| ());
}

/// The outcome of `promise`, awaited.
pub fn settled(promise: &Promise) -> Settled {
    ready();
    let id = next_id();
    WAITS.with(|w| w.borrow_mut().push((id, Wait::Pending(None))));
    on_settled(promise, id as f64);
    Settled(id)
}

/// A promise being awaited ([`settled`]).
pub struct Settled(u64);

impl Future for Settled {
    type Output = Result<JsValue, JsValue>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        WAITS.with(|w| {
            let mut w = w.borrow_mut();
            match find(&mut w, self.0) {
                Some(Wait::Pending(waker)) => {
                    *waker = Some(cx.waker().clone());
                    Poll::Pending
                }
                Some(_) => match take(&mut w, self.0) {
                    Some(Wait::Settled(outcome)) => Poll::Ready(outcome),
                    _ => Poll::Pending,
                },
                None => Poll::Ready(Err(JsValue::from_str("a settled promise awaited again"))),
            }
        })
    }
}

impl Drop for Settled {
    fn drop(&mut self) {
        WAITS.with(|w| take(&mut w.borrow_mut(), self.0));
    }
}

/// `future`'s output at once when it never waits; otherwise a promise of it, the future going
/// on as a task ([`tasks::start`]). Should the instance trap before the task ends, the promise
/// is rejected with the trap (`settle.js`).
pub fn answer(
    future: impl Future<Output = Result<JsValue, JsValue>> + 'static,
) -> Result<JsValue, JsValue> {
    ready();
    let later = || {
        let id = next_id() as f64;
        let finish: Box<dyn FnOnce(Result<JsValue, JsValue>)> =
            Box::new(move |outcome| match outcome {
                Ok(value) => settle(id, true, value),
                Err(error) => settle(id, false, error),
            });
        (promise_for(id), finish)
    };
    match tasks::start(future, later) {
        Ok(now) => now,
        Err(promise) => Ok(promise.into()),
    }
}
