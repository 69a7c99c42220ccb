//! The Workers runtime entry: read bindings once per isolate, convert the request, hand it to
//! [`App`], convert the response; and the cron that replays parked webhook deliveries. Errors
//! are mapped by the app; no error text from the runtime reaches a response.

use super::bind::{Chunks, Env, ExecutionContext, ObjectNamespace};
use super::clock::RuntimeClock;
use super::d1::D1;
use super::jwks::EnvKeys;
use super::kv::{WorkersKv, WorkersRuntime};
use super::live::{forward_upgrade, EnvLive};
use super::parking::KvParking;
use crate::cache::state::CacheState;
use crate::cache::{CacheControl, TieredReads};
use crate::clock::Clock;
use crate::config::Config;
use crate::domain::Timestamp;
use crate::error::AppError;
use crate::http::{respond, App, Handled, Method, Request, Services};
use crate::live::{ChangeKind, LiveFeed, Notification};
use crate::store::{ActivityLog, Store};
use crate::webhooks::{claim_nonce, parking};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;

/// Bodies larger than this are refused; no more than this is ever buffered.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// An oversized body up to this size is read and dropped before the 413, so clients that
/// send it whole see the answer instead of a reset connection; beyond it we answer at once.
const MAX_DRAINED_BYTES: usize = 8 * 1024 * 1024;
/// Parked deliveries replayed per cron run; the rest wait for the next minute.
const REPLAY_BATCH: usize = 200;

/// Users the cron warms per run at most.
const WARM_BATCH: u32 = 50;

/// What an isolate keeps between requests: settings, and the cache's memory tier and
/// bookkeeping. Vars and secrets cannot change within an isolate (a deploy starts new
/// isolates), so they are read once.
struct Isolate {
    config: Rc<Config>,
    policy: Rc<crate::cache::policy::Policy>,
    cache: Rc<CacheState>,
    bindings: Rc<Bindings>,
}

/// The bindings, looked up once per isolate: each lookup crosses into JavaScript several times
/// (the property, its constructor's name, and for KV each method), and `env` and its bindings
/// live as long as the isolate, so a request should not pay for them again.
struct Bindings {
    db: Option<Rc<JsValue>>,
    kv: Option<Rc<super::kv::KvStore>>,
    live: Option<ObjectNamespace>,
}

thread_local! {
    static ISOLATE: std::cell::OnceCell<Isolate> = const { std::cell::OnceCell::new() };
}

type IsolateParts = (
    Rc<Config>,
    Rc<crate::cache::policy::Policy>,
    Rc<CacheState>,
    Rc<Bindings>,
);

fn isolate(env: &Env) -> IsolateParts {
    ISOLATE.with(|cell| {
        let i = cell.get_or_init(|| {
            let config = Config::from_lookup(|name| env.var(name));
            for warning in &config.warnings {
                super::bind::warn(&format!("config: {warning}"));
            }
            let policy = Rc::new(config.cache.clone());
            Isolate {
                cache: Rc::new(CacheState::new(&policy)),
                policy,
                config: Rc::new(config),
                bindings: Rc::new(Bindings {
                    db: env.binding::<JsValue>("DB").map(Rc::new),
                    kv: super::kv::KvStore::from_env(env, "CACHE").map(Rc::new),
                    live: env.binding("LIVE"),
                }),
            }
        });
        (
            i.config.clone(),
            i.policy.clone(),
            i.cache.clone(),
            i.bindings.clone(),
        )
    })
}

type Reads = TieredReads<Store<D1>, WorkersKv, RuntimeClock, WorkersRuntime>;

struct Runtime;

impl Services for Runtime {
    type Reads = Reads;
    type Writes = Store<D1>;
    type Parking = KvParking;
    type Clock = RuntimeClock;
    type Live = EnvLive;
    type Keys = EnvKeys;
}

fn reads(env: &Env, rt: WorkersRuntime) -> Result<(Rc<Store<D1>>, Reads, KvParking), AppError> {
    let missing = || AppError::NotConfigured("the DB and CACHE bindings");
    let (_, policy, state, bindings) = isolate(env);
    let store = Rc::new(Store::new(D1(bindings.db.clone().ok_or_else(missing)?)));
    let kv = bindings.kv.clone().ok_or_else(missing)?;
    let reads = TieredReads::new(
        store.clone(),
        Rc::new(WorkersKv(kv.clone())),
        RuntimeClock,
        rt,
        state,
        policy,
    );
    Ok((store, reads, KvParking(kv)))
}

/// The runtime's `fetch` handler. It polls the request's future once, here, before any
/// executor sees it: a request that waits on no I/O (the health route, a memory hit, a refused
/// token) is answered with its `Response` itself, with no promise, no executor task and no
/// microtask — `#[event(fetch)]`'s async export paid for all three on every request, about a
/// fifth of the isolate's own time at the floor (`npm run profile -- health`). A request that
/// does wait goes on as a task of `crate::tasks`, answered with a promise (`settle::answer`),
/// and is polled again from the reaction of each promise it awaits through
/// `settle::settled` (KV, D1, the body), with no `queueMicrotask` round trip between: on a KV
/// hit that took about 8 % of the request's CPU time off (`npm run profile -- kv-page`,
/// unsampled, against the build before). A handler may answer with a `Response` or a promise
/// of one.
#[wasm_bindgen(js_name = fetch)]
pub fn fetch_entry(
    req: web_sys::Request,
    env: Env,
    ctx: ExecutionContext,
) -> Result<JsValue, JsValue> {
    let answer = async move {
        match fetch(req, env, ctx).await {
            Ok(response) => Ok(response.into()),
            // The runtime refused the app's own response (a header it would not take): a 500
            // in the envelope, built from nothing the request carried; if even that is
            // refused, the runtime's own 500.
            Err(e) => {
                super::bind::error(&format!(
                    "building the response: {}",
                    super::bind::error_text(&e)
                ));
                let error = AppError::internal("the runtime refused the response");
                to_runtime_response(respond::error(&error))
                    .map(JsValue::from)
                    .map_err(|_| JsValue::from_str("the runtime refused the response"))
            }
        }
    };
    super::settle::answer(answer)
}

/// Hands `settle.js` the answer to a request the instance traps on (a panic), once per
/// instance, when it starts: the API's 500 envelope, which the entry makes anew in that
/// request's own context, where the runtime would answer its own 500.
pub(crate) fn keep_crash_answer() {
    let res = respond::error(&AppError::internal("the instance crashed"));
    let lines: String = res
        .headers
        .iter()
        .map(|(k, v)| format!("{k}\n{v}\n"))
        .collect();
    super::settle::set_crash_answer(
        res.status,
        &lines,
        std::str::from_utf8(&res.body).unwrap_or_default(),
    );
}

/// Takes the runtime's own request and answers with the runtime's own response: converting to
/// `worker::Request` would read (and so parse) the request's `cf` object, which nothing here
/// uses, on every request — the largest single cost at the floor.
async fn fetch(
    req: web_sys::Request,
    env: Env,
    ctx: ExecutionContext,
) -> Result<web_sys::Response, JsValue> {
    let started = RuntimeClock.now().millis();
    let (config, _, _, bindings) = isolate(&env);
    let request = match read_request(&req).await {
        Ok(r) => r,
        Err(e) => return to_runtime_response(respond::error(&e)),
    };
    let mut usage = crate::store::Usage::default();
    let rt = WorkersRuntime::Request(Rc::new(ctx));
    let live = EnvLive::from_namespace(bindings.live.clone(), rt.clone());
    let keys = EnvKeys::new(config.jwt_jwks_url.as_deref(), bindings.kv.clone());
    let handled = match reads(&env, rt) {
        Ok((store, reads, parking)) => {
            let app: App<'_, Runtime> = App {
                config: &config,
                reads: &reads,
                writes: &store,
                parking: &parking,
                clock: &RuntimeClock,
                live: &live,
                keys: &keys,
            };
            let handled = app.handle(&request).await;
            usage = store.usage();
            handled
        }
        Err(e) => Handled {
            response: respond::error(&e),
            error: Some(e),
            note: None,
            upgrade: None,
        },
    };
    if let Some(ticket) = &handled.upgrade {
        return forward_upgrade(bindings.live.as_ref(), ticket, &req).await;
    }
    if config.cache.debug {
        log_request(&request, &handled, started, usage);
    }
    let line = || {
        format!(
            "{} {} -> {}",
            request.method.as_str(),
            request.path,
            handled.response.status
        )
    };
    if let Some(e) = handled
        .error
        .as_ref()
        .filter(|_| handled.response.status >= 500)
    {
        super::bind::error(&format!("{}: {e}", line()));
    }
    if let Some(note) = &handled.note {
        super::bind::warn(&format!("{}: {note}", line()));
    }
    to_runtime_response(handled.response)
}

/// One structured line per request (`CACHE_DEBUG=true`): route, status, tier, time and D1
/// work. Never a header value, a token or a body.
fn log_request(req: &Request, handled: &Handled, started: i64, usage: crate::store::Usage) {
    let line = RequestLine {
        d1_queries: usage.queries,
        d1_rows_read: usage.rows_read,
        d1_rows_written: usage.rows_written,
        error: handled.error.as_ref().map(|e| e.code()),
        method: req.method.as_str(),
        ms: RuntimeClock.now().millis() - started,
        path: &req.path,
        status: handled.response.status,
        tier: handled.response.header("x-cache"),
    };
    super::bind::log(&crate::json_writer::to_string(&line));
}

/// The request's log line, its members in byte order (as a `serde_json` map wrote them).
struct RequestLine<'a> {
    d1_queries: u64,
    d1_rows_read: u64,
    d1_rows_written: u64,
    error: Option<&'static str>,
    method: &'static str,
    ms: i64,
    path: &'a str,
    status: u16,
    tier: Option<&'a str>,
}
crate::json_object!(RequestLine<'_> {
    "d1Queries": d1_queries,
    "d1RowsRead": d1_rows_read,
    "d1RowsWritten": d1_rows_written,
    "error": error,
    "method": method,
    "ms": ms,
    "path": path,
    "status": status,
    "tier": tier,
});

/// Every minute: replay parked webhook deliveries, then warm the recently active users'
/// landing view (first page and summary) so their next visit hits memory or KV.
#[wasm_bindgen]
pub fn scheduled(_event: JsValue, env: Env, _ctx: JsValue) -> Result<JsValue, JsValue> {
    super::settle::answer(async move {
        run_scheduled(env).await;
        Ok(JsValue::UNDEFINED)
    })
}

async fn run_scheduled(env: Env) {
    let rt = WorkersRuntime::Collect(Rc::new(RefCell::new(Vec::new())));
    let (store, reads, parking) = match reads(&env, rt.clone()) {
        Ok(parts) => parts,
        Err(e) => {
            super::bind::error(&format!("scheduled: {e}"));
            return;
        }
    };
    let live = EnvLive::from_namespace(isolate(&env).3.live.clone(), rt.clone());
    replay_parked(&parking, &store, &reads, &live).await;
    let since = Timestamp::from_millis(
        RuntimeClock.now().millis() - crate::http::RECENT_ACTIVITY_WINDOW_MS,
    );
    match store.recently_active_users(since, WARM_BATCH).await {
        Ok(users) => {
            for user in users {
                if let Err(e) = reads.warm(&user).await {
                    super::bind::warn(&format!("warming {user}: {e}"));
                }
            }
        }
        Err(e) => super::bind::warn(&format!("listing users to warm: {e}")),
    }
    rt.drain().await;
}

async fn replay_parked(parking: &KvParking, store: &Store<D1>, reads: &Reads, live: &EnvLive) {
    let now = RuntimeClock.now().millis();
    match parking::replay(parking, store, REPLAY_BATCH, now, claim_nonce).await {
        Ok(r) => {
            if r.replayed + r.failed + r.moved_aside > 0 || r.stopped_by_outage {
                super::bind::log(&format!(
                    "replayed parked deliveries: {} applied, {} failed (attempt charged), {} moved aside{}",
                    r.replayed,
                    r.failed,
                    r.moved_aside,
                    if r.stopped_by_outage { "; stopped: D1 is down" } else { "" }
                ));
            }
            // Replayed deliveries changed data behind every cache: this isolate learns their
            // versions; the others within the sync bound.
            for (user, call, version) in &r.touched {
                reads.invalidate(user, *version);
                if let Some(version) = version {
                    let calls: Vec<_> = call.iter().cloned().collect();
                    live.notify(
                        user,
                        Notification::new(ChangeKind::Changed, &calls, *version),
                    );
                }
            }
        }
        Err(e) => super::bind::error(&format!("replaying parked deliveries: {e}")),
    }
}

#[wasm_bindgen(inline_js = r#"
export function request_head(req, reads, options, writes) {
  const method = req.method;
  const names = method === "GET" || method === "HEAD" ? reads : method === "OPTIONS" ? options : writes;
  const headers = req.headers;
  let out = method + "\n" + req.url;
  for (const name of names) {
    const value = headers.get(name);
    out += value === null ? "\n" : "\n=" + value;
  }
  return out;
}"#)]
extern "C" {
    /// The method, the URL and the value of each header `http::read_headers` lists for the
    /// method (`=value`, or an empty line when absent), one per line: one crossing and one
    /// string, where reading them one by one took a crossing and two strings each.
    fn request_head(
        req: &web_sys::Request,
        reads: &JsValue,
        options: &JsValue,
        writes: &JsValue,
    ) -> String;
}

thread_local! {
    /// `http::read_headers`' lists as the runtime's arrays, made once per isolate.
    static HEADER_NAMES: [JsValue; 3] = [Method::Get, Method::Options, Method::Post].map(|m| {
        crate::http::read_headers(m)
            .iter()
            .map(|name| JsValue::from_str(name))
            .collect::<js_sys::Array>()
            .into()
    });
}

/// The method, the URL as the runtime holds it and the headers the app reads for the method.
fn read_head(req: &web_sys::Request) -> (Method, String, Vec<(String, String)>) {
    let head =
        HEADER_NAMES.with(|[reads, options, writes]| request_head(req, reads, options, writes));
    let mut lines = head.split('\n');
    if let (Some(method), Some(url)) = (lines.next(), lines.next()) {
        let method = Method::parse(method);
        let names = crate::http::read_headers(method);
        let values: Vec<&str> = lines.collect();
        // A line break cannot occur in a header value or a URL the runtime serialized; if a
        // count ever disagrees, the headers are read one by one instead.
        if values.len() == names.len() {
            let headers = names
                .iter()
                .zip(values)
                .filter_map(|(name, v)| Some(((*name).to_owned(), v.strip_prefix('=')?.to_owned())))
                .collect();
            return (method, url.to_owned(), headers);
        }
    }
    let method = Method::parse(&req.method());
    (method, req.url(), read_headers(&req.headers(), method))
}

async fn read_request(req: &web_sys::Request) -> Result<Request, AppError> {
    // The runtime's own string, not a re-serialization: Twilio signs the URL exactly as it
    // called it, and a parse-and-print round trip may change characters such as `'`.
    let (method, url, headers) = read_head(req);
    let (path, query) =
        crate::http::split_url(&url).ok_or_else(|| AppError::InvalidRequest("bad URL".into()))?;
    let (path, query) = (path.to_owned(), query.to_owned());
    let declared_len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    if declared_len.is_some_and(|n| n > MAX_BODY_BYTES) {
        if declared_len.is_some_and(|n| n <= MAX_DRAINED_BYTES) {
            discard_body(req).await;
        }
        return Err(AppError::PayloadTooLarge);
    }
    let body = match (method, declared_len) {
        (Method::Post | Method::Put | Method::Delete, Some(len)) => {
            read_body_whole(req, len).await?
        }
        (Method::Post | Method::Put | Method::Delete, None) => read_body_capped(req).await?,
        _ => Vec::new(),
    };
    Ok(Request {
        method,
        url,
        path,
        query,
        headers,
        body,
    })
}

/// The headers the app reads for `method` ([`crate::http::read_headers`]), one lookup each: a
/// request from a browser through the edge carries a dozen or more others, and walking them
/// all costs several crossings per header.
fn read_headers(headers: &web_sys::Headers, method: Method) -> Vec<(String, String)> {
    crate::http::read_headers(method)
        .iter()
        .filter_map(|&name| {
            let value = headers.get(name).ok().flatten()?;
            Some((name.to_owned(), value))
        })
        .collect()
}

/// The request's body read chunk by chunk (`None`: there is no body).
fn body_chunks(req: &web_sys::Request) -> Option<Result<Chunks, JsValue>> {
    req.body().map(|raw| Chunks::new(&raw))
}

/// Reads a body whose `Content-Length` the runtime holds it to (`len`, already within the
/// cap) in one piece: one crossing, where reading the stream chunk by chunk cost about half a
/// millisecond per webhook in reader calls alone.
///
/// As text, not bytes: `text()` makes a string, where `arrayBuffer()` made an `ArrayBuffer`
/// (and this side a `Uint8Array` over it), whose backing store costs more to make and to
/// collect than the string's copy into wasm memory — about 10 µs of a webhook's 60 µs of
/// handling, measured in the isolate with D1 left out (over the network, below what this kind
/// of host resolves). Every provider signs UTF-8 (a form body is ASCII). A body that is not
/// UTF-8 arrives with its invalid bytes replaced by U+FFFD (and a leading byte-order mark
/// dropped): a signed one then fails its signature check (403) where it failed to parse (400),
/// an operator's its field checks (400) as before.
async fn read_body_whole(req: &web_sys::Request, len: usize) -> Result<Vec<u8>, AppError> {
    let unreadable = || AppError::InvalidRequest("the body could not be read".into());
    if len == 0 || req.body().is_none() {
        return Ok(Vec::new());
    }
    let promise = req.text().map_err(|_| unreadable())?;
    let text = super::settle::settled(&promise)
        .await
        .map_err(|_| unreadable())?;
    let body = text.as_string().ok_or_else(unreadable)?.into_bytes();
    if body.len() > MAX_BODY_BYTES {
        return Err(AppError::PayloadTooLarge);
    }
    Ok(body)
}

/// Reads the body chunk by chunk and stops at the first byte past the cap, so a body without
/// `Content-Length` (chunked) is never buffered beyond 1 MiB.
async fn read_body_capped(req: &web_sys::Request) -> Result<Vec<u8>, AppError> {
    let unreadable = || AppError::InvalidRequest("the body could not be read".into());
    let Some(chunks) = body_chunks(req) else {
        return Ok(Vec::new()); // no body
    };
    let chunks = chunks.map_err(|_| unreadable())?;
    let mut body = Vec::new();
    while let Some(chunk) = chunks.next().await.map_err(|_| unreadable())? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            let mut seen = body.len() + chunk.len();
            drop(body);
            // Read on (without keeping it) so the client gets the 413 rather than a reset.
            while seen <= MAX_DRAINED_BYTES {
                match chunks.next().await {
                    Ok(Some(c)) => seen += c.len(),
                    _ => break,
                }
            }
            return Err(AppError::PayloadTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads and drops a body, up to [`MAX_DRAINED_BYTES`].
async fn discard_body(req: &web_sys::Request) {
    let Some(Ok(chunks)) = body_chunks(req) else {
        return;
    };
    let mut seen = 0;
    while seen <= MAX_DRAINED_BYTES {
        match chunks.next().await {
            Ok(Some(c)) => seen += c.len(),
            _ => break,
        }
    }
}

#[wasm_bindgen(inline_js = r#"
const headerSets = new Map();
function headersOf(lines) {
  let headers = headerSets.get(lines);
  if (headers === undefined) {
    const parts = lines.split("\n");
    headers = new Headers();
    for (let i = 0; i + 1 < parts.length; i += 2) headers.append(parts[i], parts[i + 1]);
    if (headerSets.size >= 256) headerSets.delete(headerSets.keys().next().value);
    headerSets.set(lines, headers);
  }
  return headers;
}
export function response_of(status, lines, body, empty) {
  return new Response(empty ? null : body, { status, headers: headersOf(lines) });
}"#)]
extern "C" {
    /// `new Response(body, { status, headers })`, the headers given as `name\nvalue\n…`: one
    /// crossing and one string, where a `Headers` object filled from wasm took two strings
    /// and a crossing per header, and the init three more crossings. Each distinct set of
    /// header lines becomes a `Headers` once and is kept (per isolate, the 256 made last; a
    /// set in use is not moved up, which would cost every hit two more map operations): the
    /// constructor copies a `Headers` init without reading a JavaScript property or
    /// re-checking a name, and a read sent again has the very same lines (its ETag, its
    /// `X-Cache`), so a memory hit's headers cost a map lookup; the runtime's `Response` row
    /// fell from about 37 to 33 µs per memory hit and building the init from 11 to 3.5
    /// (`npm run profile -- page`). A name given twice keeps both values (`append`).
    /// `body` arrives as a view of wasm memory, valid during the call only: the constructor
    /// copies a `BufferSource` body as it extracts it (Fetch, "extract a body": "a copy of
    /// the bytes held by object"), so the bytes cross once, with no JavaScript array made
    /// first. `empty` gives a null body (204 and 304 must not have an empty one).
    #[wasm_bindgen(catch)]
    fn response_of(
        status: u16,
        lines: &str,
        body: &[u8],
        empty: bool,
    ) -> Result<web_sys::Response, JsValue>;
}

/// The app's response as the runtime's: status, headers and body set once each, with no
/// intermediate `worker::Response`.
pub(crate) fn to_runtime_response(
    res: crate::http::Response,
) -> Result<web_sys::Response, JsValue> {
    // A header's name and value never hold a line break (HTTP forbids it; the app writes
    // them or echoes a request header), which is what lets one string carry them all.
    let mut lines =
        String::with_capacity(res.headers.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
    for (k, v) in &res.headers {
        if k.contains('\n') || v.contains('\n') {
            return Err(JsValue::from_str(&format!("a line break in header {k}")));
        }
        lines.push_str(k);
        lines.push('\n');
        lines.push_str(v);
        lines.push('\n');
    }
    // 204 and 304 must have a null body, not an empty one.
    response_of(res.status, &lines, &res.body, res.body.is_empty())
}
