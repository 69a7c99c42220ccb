//! The Workers runtime entry: read bindings once per isolate, convert the request, hand it to
//! [`App`], convert the response; and the cron that replays parked webhook deliveries. Errors
//! are mapped by the app; no error text from the runtime reaches a response.

use crate::clock::RuntimeClock;
use crate::config::Config;
use crate::error::AppError;
use crate::http::{respond, App, Handled, Method, Request, Services};
use crate::store::{d1::D1, Store};
use crate::webhooks::kv_parking::KvParking;
use crate::webhooks::{claim_nonce, parking};
use futures_util::StreamExt;
use std::rc::Rc;
use worker::{event, Context, Env, Headers, ScheduleContext, ScheduledEvent};

/// Bodies larger than this are refused; no more than this is ever buffered.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Parked deliveries replayed per cron run; the rest wait for the next minute.
const REPLAY_BATCH: usize = 200;

thread_local! {
    // Vars and secrets cannot change within an isolate (a deploy starts new isolates), so they
    // are read from the environment once.
    static CONFIG: std::cell::OnceCell<Rc<Config>> = const { std::cell::OnceCell::new() };
}

fn config(env: &Env) -> Rc<Config> {
    CONFIG.with(|cell| {
        cell.get_or_init(|| {
            Rc::new(Config::from_lookup(|name| {
                env.var(name).ok().map(|v| v.to_string())
            }))
        })
        .clone()
    })
}

struct Runtime;

impl Services for Runtime {
    type Reads = Store<D1>;
    type Writes = Store<D1>;
    type Parking = KvParking;
    type Clock = RuntimeClock;
}

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(
    mut req: worker::Request,
    env: Env,
    _ctx: Context,
) -> worker::Result<worker::Response> {
    let config = config(&env);
    let request = match read_request(&mut req).await {
        Ok(r) => r,
        Err(e) => return to_worker_response(respond::error(&e)),
    };
    let handled = match (env.d1("DB"), env.kv("CACHE")) {
        (Ok(db), Ok(kv)) => {
            let store = Store::new(D1(db));
            let parking = KvParking(kv);
            let app: App<'_, Runtime> = App {
                config: &config,
                reads: &store,
                writes: &store,
                parking: &parking,
                clock: &RuntimeClock,
            };
            app.handle(&request).await
        }
        _ => {
            let e = AppError::NotConfigured("the DB and CACHE bindings");
            Handled {
                response: respond::error(&e),
                error: Some(e),
                note: None,
            }
        }
    };
    let line = || {
        format!(
            "{} {} -> {}",
            method_name(request.method),
            request.path,
            handled.response.status
        )
    };
    if let Some(e) = handled
        .error
        .as_ref()
        .filter(|_| handled.response.status >= 500)
    {
        worker::console_error!("{}: {e}", line());
    }
    if let Some(note) = &handled.note {
        worker::console_warn!("{}: {note}", line());
    }
    to_worker_response(handled.response)
}

#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let (Ok(db), Ok(kv)) = (env.d1("DB"), env.kv("CACHE")) else {
        worker::console_error!("scheduled: the DB and CACHE bindings are required");
        return;
    };
    let store = Store::new(D1(db));
    match parking::replay(&KvParking(kv), &store, REPLAY_BATCH, claim_nonce).await {
        Ok(r) if r.replayed + r.failed + r.unreadable > 0 => worker::console_log!(
            "replayed parked deliveries: {} applied, {} failed, {} unreadable",
            r.replayed,
            r.failed,
            r.unreadable
        ),
        Ok(_) => {}
        Err(e) => worker::console_error!("replaying parked deliveries: {e}"),
    }
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Options => "OPTIONS",
        Method::Other => "OTHER",
    }
}

async fn read_request(req: &mut worker::Request) -> Result<Request, AppError> {
    let url = req
        .url()
        .map_err(|e| AppError::InvalidRequest(format!("bad URL: {e}")))?;
    let method = Method::parse(req.method().as_ref());
    let headers: Vec<(String, String)> = req
        .headers()
        .entries()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let declared_len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    if declared_len.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(AppError::PayloadTooLarge);
    }
    let body = match method {
        Method::Post | Method::Put | Method::Delete => read_body_capped(req).await?,
        _ => Vec::new(),
    };
    Ok(Request {
        method,
        url: url.to_string(),
        path: url.path().to_owned(),
        query: url.query().unwrap_or("").to_owned(),
        headers,
        body,
    })
}

/// Reads the body chunk by chunk and stops at the first byte past the cap, so a body without
/// (or lying about) `Content-Length` is never buffered beyond 1 MiB.
async fn read_body_capped(req: &mut worker::Request) -> Result<Vec<u8>, AppError> {
    let unreadable = || AppError::InvalidRequest("the body could not be read".into());
    let mut stream = match req.stream() {
        Ok(s) => s,
        Err(_) => return Ok(Vec::new()), // no body
    };
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| unreadable())?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(AppError::PayloadTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn to_worker_response(res: crate::http::Response) -> worker::Result<worker::Response> {
    let headers = Headers::new();
    for (k, v) in &res.headers {
        headers.append(k, v)?;
    }
    // 204 and 304 must have a null body, not an empty one.
    let base = if res.body.is_empty() {
        worker::Response::empty()?
    } else {
        worker::Response::from_bytes(res.body)?
    };
    Ok(base.with_status(res.status).with_headers(headers))
}
