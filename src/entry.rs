//! The Workers runtime entry: read bindings once per isolate, convert the request, hand it to
//! [`App`], convert the response. Errors are mapped by the app; nothing here formats one for a
//! client, and no error text from the runtime reaches a response.

use crate::clock::RuntimeClock;
use crate::config::Config;
use crate::error::AppError;
use crate::http::{respond, App, Method, Request};
use crate::store::{d1::D1, Store};
use std::rc::Rc;
use worker::{event, Context, Env, Headers};

/// Bodies larger than this are refused before they are read.
const MAX_BODY_BYTES: usize = 1024 * 1024;

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
    let handled = match env.d1("DB") {
        Ok(db) => {
            let store = Store::new(D1(db));
            let app = App {
                config: &config,
                reads: &store,
                phones: &store,
                clock: &RuntimeClock,
            };
            app.handle(&request).await
        }
        Err(_) => {
            let e = AppError::NotConfigured("the DB binding");
            crate::http::Handled {
                response: respond::error(&e),
                error: Some(e),
            }
        }
    };
    if let Some(e) = &handled.error {
        if handled.response.status >= 500 {
            worker::console_error!(
                "{} {} -> {}: {}",
                method_name(request.method),
                request.path,
                handled.response.status,
                e
            );
        }
    }
    to_worker_response(handled.response)
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
        Method::Post | Method::Put | Method::Delete => {
            let bytes = req
                .bytes()
                .await
                .map_err(|_| AppError::InvalidRequest("the body could not be read".into()))?;
            if bytes.len() > MAX_BODY_BYTES {
                return Err(AppError::PayloadTooLarge);
            }
            bytes
        }
        _ => Vec::new(),
    };
    Ok(Request {
        method,
        path: url.path().to_owned(),
        query: url.query().unwrap_or("").to_owned(),
        headers,
        body,
    })
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
