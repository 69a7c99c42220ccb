//! `{"ok":true}` for every request: the workers-rs floor.
use worker::{event, Context, Env, Request, Response, Result};

#[event(fetch)]
async fn fetch(_req: Request, _env: Env, _ctx: Context) -> Result<Response> {
    Response::from_json(&serde_json_ok())
}

fn serde_json_ok() -> std::collections::BTreeMap<&'static str, bool> {
    std::collections::BTreeMap::from([("ok", true)])
}
