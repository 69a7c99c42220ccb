//! The runtime's own objects, bound directly: the worker's `env` and `ctx`, the Durable Object
//! namespace, its ids and stubs, an object's state and storage, the socket pair, timers, body
//! streams, WebCrypto, the console, and the start of an instance.
//!
//! Why not the `worker` crate: the project had come to use it for little more than these
//! names, and linking it kept its error type with its formatting, its request and response
//! wrappers, its binding checks, its timer, and wasm-bindgen's own executor (which its
//! `#[event]` handlers and `Context::wait_until` need), plus classes it exports whether or not
//! anything uses them: about 9 KB of the gzipped module in all. Every call here is the one
//! `worker` made.

use super::settle;
use crate::cache::LocalFuture;
use js_sys::{Array, Promise};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};

#[wasm_bindgen]
extern "C" {
    /// The worker's `env`: its vars, secrets and bindings.
    #[derive(Clone)]
    pub type Env;

    /// The `ctx` a request or a scheduled event comes with.
    pub type ExecutionContext;
    #[wasm_bindgen(method, js_name = waitUntil)]
    fn wait_until(this: &ExecutionContext, promise: &Promise);

    /// A Durable Object namespace binding.
    #[derive(Clone)]
    pub type ObjectNamespace;
    #[wasm_bindgen(method, catch, js_name = idFromName)]
    pub fn id_from_name(this: &ObjectNamespace, name: &str) -> Result<ObjectId, JsValue>;
    #[wasm_bindgen(method, catch, js_name = idFromString)]
    pub fn id_from_string(this: &ObjectNamespace, id: &str) -> Result<ObjectId, JsValue>;
    #[wasm_bindgen(method, catch)]
    pub fn get(this: &ObjectNamespace, id: &ObjectId) -> Result<ObjectStub, JsValue>;

    pub type ObjectId;
    #[wasm_bindgen(method, js_name = toString)]
    pub fn to_string(this: &ObjectId) -> String;

    /// The stub of one object: `fetch` reaches it.
    pub type ObjectStub;
    #[wasm_bindgen(method, catch)]
    fn fetch(this: &ObjectStub, request: &web_sys::Request) -> Result<Promise, JsValue>;

    /// An object's `state`.
    pub type ObjectState;
    #[wasm_bindgen(method, getter)]
    pub fn storage(this: &ObjectState) -> ObjectStorage;
    #[wasm_bindgen(method, catch, js_name = acceptWebSocket)]
    pub fn accept_websocket(this: &ObjectState, socket: &web_sys::WebSocket)
        -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch, js_name = getWebSockets)]
    pub fn get_websockets(this: &ObjectState) -> Result<Array, JsValue>;

    /// An object's transactional storage.
    pub type ObjectStorage;
    #[wasm_bindgen(method, catch, js_name = get)]
    pub fn get_value(this: &ObjectStorage, key: &str) -> Result<Promise, JsValue>;
    #[wasm_bindgen(method, catch)]
    pub fn put(this: &ObjectStorage, key: &str, value: JsValue) -> Result<Promise, JsValue>;

    #[wasm_bindgen(js_namespace = console)]
    pub fn log(text: &str);
    #[wasm_bindgen(js_namespace = console)]
    pub fn warn(text: &str);
    #[wasm_bindgen(js_namespace = console)]
    pub fn error(text: &str);

    /// The global `fetch`.
    #[wasm_bindgen(js_name = fetch)]
    pub fn global_fetch(request: &web_sys::Request, init: &web_sys::RequestInit) -> Promise;
}

#[wasm_bindgen(inline_js = r#"
export function socket_pair() {
  const pair = new WebSocketPair();
  return [pair[0], pair[1]];
}
export function delay(ms) {
  let timer;
  const promise = new Promise((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  promise.timer = timer;
  return promise;
}
export function cancel_delay(promise) {
  clearTimeout(promise.timer);
}
export function subtle_crypto() {
  return crypto.subtle;
}
export function reader_of(stream) {
  return stream.getReader();
}
export function next_chunk(reader) {
  return reader.read().then((r) => (r.done ? undefined : r.value));
}
export const init_state = (globalThis.__worker_init_state = { criticalError: false, instanceId: 0 });
"#)]
extern "C" {
    /// A `WebSocketPair` as `[client, server]`.
    fn socket_pair() -> Array;
    fn delay(ms: u32) -> Promise;
    fn cancel_delay(promise: &Promise);
    /// `crypto.subtle`.
    pub fn subtle_crypto() -> web_sys::SubtleCrypto;
    #[wasm_bindgen(catch)]
    fn reader_of(stream: &web_sys::ReadableStream) -> Result<JsValue, JsValue>;
    /// The reader's next chunk, or `undefined` at the end.
    fn next_chunk(reader: &JsValue) -> Promise;

    /// What the generated entry checks before every call (`criticalError`, `instanceId`): it
    /// starts a new instance after a crash.
    type InitState;
    #[wasm_bindgen(thread_local_v2, js_name = init_state)]
    static INIT_STATE: InitState;
    #[wasm_bindgen(method, setter, js_name = criticalError)]
    fn set_critical_error(this: &InitState, value: bool);
    #[wasm_bindgen(method, getter, js_name = instanceId)]
    fn instance_id(this: &InitState) -> u32;
    #[wasm_bindgen(method, setter, js_name = instanceId)]
    fn set_instance_id(this: &InitState, value: u32);
}

/// The entry's crash bookkeeping, asked for by the generated entry when it loads.
#[wasm_bindgen(js_name = __worker_init_state)]
pub fn worker_init_state() -> JsValue {
    INIT_STATE.with(|s| s.into())
}

fn on_abort() {
    wasm_bindgen::handler::schedule_reinit();
}

/// When an instance starts: a panic is printed to the console and marks the instance as
/// crashed, so the entry replaces it before the next call; an abort replaces it too; the
/// answer to a request it traps on is handed over (`entry::keep_crash_answer`).
/// Private: not exported to JavaScript (worker-build would otherwise make it a handler of the
/// entry, callable by anything bound to this worker).
#[wasm_bindgen(start, private)]
fn start() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        INIT_STATE.with(|s| s.set_critical_error(true));
    }));
    INIT_STATE.with(|s| s.set_instance_id(s.instance_id().wrapping_add(1)));
    wasm_bindgen::handler::set_on_abort(on_abort);
    super::entry::keep_crash_answer();
}

impl Env {
    /// The var or secret `name`, when it is a string.
    pub fn var(&self, name: &str) -> Option<String> {
        js_sys::Reflect::get(self, &JsValue::from_str(name))
            .ok()?
            .as_string()
    }

    /// The binding `name`, when there is one.
    pub fn binding<T: JsCast>(&self, name: &str) -> Option<T> {
        let value = js_sys::Reflect::get(self, &JsValue::from_str(name)).ok()?;
        if value.is_null_or_undefined() {
            return None;
        }
        Some(value.unchecked_into())
    }
}

impl ExecutionContext {
    /// Runs `work` in the background of the request (`ctx.waitUntil`). It starts from the next
    /// microtask, not within the caller, as wasm-bindgen's executor started it.
    pub fn wait_until_done(&self, work: LocalFuture) {
        let later = settle::answer(async move {
            NextMicrotask(false).await;
            work.await;
            Ok(JsValue::UNDEFINED)
        });
        if let Ok(promise) = later {
            if let Some(promise) = promise.dyn_ref::<Promise>() {
                self.wait_until(promise);
            }
        }
    }
}

/// Pending once, waking itself: the task it is in goes on from the executor's next drain.
struct NextMicrotask(bool);

impl Future for NextMicrotask {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl ObjectStub {
    /// The object's answer to `request`.
    pub async fn fetch_request(
        &self,
        request: &web_sys::Request,
    ) -> Result<web_sys::Response, JsValue> {
        let answer = settle::settled(&self.fetch(request)?).await?;
        answer.dyn_into()
    }
}

/// `[client, server]` of a new `WebSocketPair`.
pub fn web_socket_pair() -> (web_sys::WebSocket, web_sys::WebSocket) {
    let pair = socket_pair();
    (pair.get(0).unchecked_into(), pair.get(1).unchecked_into())
}

/// `ms` milliseconds (`setTimeout`); the timer is cleared when this is dropped first.
pub struct Delay {
    promise: Promise,
    wait: settle::Settled,
}

impl Delay {
    pub fn new(ms: u32) -> Self {
        let promise = delay(ms);
        let wait = settle::settled(&promise);
        Delay { promise, wait }
    }
}

impl Future for Delay {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.wait).poll(cx).map(|_| ())
    }
}

impl Drop for Delay {
    fn drop(&mut self) {
        cancel_delay(&self.promise);
    }
}

/// A byte stream read chunk by chunk (a request's or a response's body).
pub struct Chunks(JsValue);

impl Chunks {
    pub fn new(stream: &web_sys::ReadableStream) -> Result<Self, JsValue> {
        Ok(Chunks(reader_of(stream)?))
    }

    /// The next chunk's bytes; `None` at the end of the stream.
    pub async fn next(&self) -> Result<Option<Vec<u8>>, JsValue> {
        let chunk = settle::settled(&next_chunk(&self.0)).await?;
        if chunk.is_undefined() {
            return Ok(None);
        }
        // A byte stream's chunks are `Uint8Array`s already: copied once, into wasm memory
        // (`new Uint8Array(chunk)` would copy them in JavaScript first).
        let bytes = chunk
            .dyn_into::<js_sys::Uint8Array>()
            .unwrap_or_else(|other| js_sys::Uint8Array::new(&other));
        Ok(Some(bytes.to_vec()))
    }
}

/// A JavaScript error as text for a log line: `Name: message` for an `Error`, the string
/// itself for a string, else the value's debug form.
pub fn error_text(e: &JsValue) -> String {
    match e.dyn_ref::<js_sys::Error>() {
        Some(error) => format!(
            "{}: {}",
            String::from(error.name()),
            String::from(error.message())
        ),
        None => e.as_string().unwrap_or_else(|| format!("{e:?}")),
    }
}
