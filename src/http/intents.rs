//! `/api/intent-analysis` and `/api/intent-analysis/{callId}`.

use super::params::Query;
use super::{calls::found, min_version, path_call_id, respond, App, Request, Response, Services};
use crate::error::AppResult;
use crate::reads::ReadModel;

pub const DEFAULT_LIMIT: u32 = super::DEFAULT_SUMMARY_LIMIT;

pub async fn summary<S: Services>(app: &App<'_, S>, req: &Request) -> AppResult<Response> {
    let user = app.user(req).await?;
    let limit = Query::parse(&req.query)?.limit(DEFAULT_LIMIT)?;
    let served = app
        .reads
        .intent_summary(&user, limit, min_version(req)?)
        .await?;
    Ok(respond::read(
        req,
        &served,
        &[("limit", limit.get().into())],
    ))
}

pub async fn analysis<S: Services>(
    app: &App<'_, S>,
    req: &Request,
    raw_id: &str,
) -> AppResult<Response> {
    let user = app.user(req).await?;
    let id = path_call_id(raw_id)?;
    let served = app
        .reads
        .call_analysis(&user, &id, min_version(req)?)
        .await?;
    found(req, served)
}
