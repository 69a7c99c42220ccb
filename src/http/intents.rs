//! `/api/intent-analysis` and `/api/intent-analysis/{callId}`.

use super::params::Query;
use super::{calls::found, min_version, path_call_id, respond, App, Request, Response, Services};
use crate::error::AppResult;
use crate::reads::ReadModel;

pub const DEFAULT_LIMIT: u32 = super::DEFAULT_SUMMARY_LIMIT;

pub async fn summary<S: Services>(app: &App<'_, S>, req: &Request) -> AppResult<Response> {
    let user = app.user(req).await?;
    let request = Query::parse(&req.query)?.summary(DEFAULT_LIMIT)?;
    let served = app
        .reads
        .intent_summary(&user, &request, min_version(req)?)
        .await?;
    let limit = request.limit.get();
    // The same echo as the list's, of the range alone.
    let echo = request.range.map(|range| {
        crate::domain::CallFilter::none()
            .with_range(Some(range.from()), Some(range.to()))
            .echo()
    });
    let mut meta: Vec<(&str, &dyn crate::json_writer::ToJson)> = vec![("limit", &limit)];
    if let Some(echo) = &echo {
        meta.push(("filters", echo));
    }
    Ok(respond::read(req, &served, &meta))
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
