//! `/api/intent-analysis` and `/api/intent-analysis/{callId}`.

use super::params::Query;
use super::{calls::found, path_call_id, respond, App, Request, Response};
use crate::clock::Clock;
use crate::error::AppResult;
use crate::reads::ReadModel;
use crate::store::PhoneDirectory;

pub const DEFAULT_LIMIT: u32 = 100;

pub async fn summary<R: ReadModel, P: PhoneDirectory, C: Clock>(
    app: &App<'_, R, P, C>,
    req: &Request,
) -> AppResult<Response> {
    let user = app.user(req)?;
    let limit = Query::parse(&req.query)?.limit(DEFAULT_LIMIT)?;
    let served = app.reads.intent_summary(&user, limit).await?;
    Ok(respond::read(
        req,
        &served,
        &[("limit", limit.get().into())],
    ))
}

pub async fn analysis<R: ReadModel, P: PhoneDirectory, C: Clock>(
    app: &App<'_, R, P, C>,
    req: &Request,
    raw_id: &str,
) -> AppResult<Response> {
    let user = app.user(req)?;
    let id = path_call_id(raw_id)?;
    let served = app.reads.call_analysis(&user, &id).await?;
    found(req, served)
}
