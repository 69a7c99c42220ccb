//! `/api/webhook-calls`, `/api/webhook-calls/{callId}`, `/api/webhook-calls/{callId}/enhanced`.

use super::params::Query;
use super::{min_version, path_call_id, respond, App, Request, Response, Services};
use crate::domain::PagePosition;
use crate::error::{AppError, AppResult};
use crate::json_writer::ToJson;
use crate::reads::ReadModel;

pub const DEFAULT_LIMIT: u32 = super::DEFAULT_PAGE_LIMIT;

pub async fn list<S: Services>(app: &App<'_, S>, req: &Request) -> AppResult<Response> {
    let user = app.user(req).await?;
    let page = Query::parse(&req.query)?.page(DEFAULT_LIMIT)?;
    let served = app.reads.call_page(&user, &page, min_version(req)?).await?;
    let tag = page.filter.tag();
    let limit = page.limit.get();
    let (offset, cursor);
    let position: (&str, &dyn ToJson) = match &page.position {
        PagePosition::Offset(o) => {
            offset = *o;
            ("offset", &offset)
        }
        PagePosition::After(c) => {
            cursor = c.encode_for(tag.as_deref());
            ("cursor", &cursor)
        }
    };
    let echo = tag.is_some().then(|| page.filter.echo());
    let mut meta: Vec<(&str, &dyn ToJson)> = vec![("limit", &limit), position];
    if let Some(echo) = &echo {
        meta.push(("filters", echo));
    }
    Ok(respond::read(req, &served, &meta))
}

pub async fn detail<S: Services>(
    app: &App<'_, S>,
    req: &Request,
    raw_id: &str,
) -> AppResult<Response> {
    let user = app.user(req).await?;
    let id = path_call_id(raw_id)?;
    let served = app.reads.call_detail(&user, &id, min_version(req)?).await?;
    found(req, served)
}

pub async fn enhanced<S: Services>(
    app: &App<'_, S>,
    req: &Request,
    raw_id: &str,
) -> AppResult<Response> {
    let user = app.user(req).await?;
    let id = path_call_id(raw_id)?;
    let served = app
        .reads
        .call_enrichment(&user, &id, min_version(req)?)
        .await?;
    found(req, served)
}

/// 200 with the payload, or 404 when it is absent or another user's.
pub(super) fn found(
    req: &Request,
    served: crate::reads::Served<Option<crate::reads::Payload>>,
) -> AppResult<Response> {
    let crate::reads::Served {
        value,
        source,
        outcome,
        version,
    } = served;
    let Some(value) = value else {
        // A remembered 404 still says which tier answered.
        let mut res = respond::error(&AppError::NotFound);
        res.headers.retain(|(k, _)| *k != "cache-control");
        res.headers.push(("x-cache", outcome.header().to_owned()));
        res.headers
            .push(("cache-control", "private, no-cache".to_owned()));
        return Ok(res);
    };
    Ok(respond::read(
        req,
        &crate::reads::Served {
            value,
            source,
            outcome,
            version,
        },
        &[],
    ))
}

/// The owner deletes a call (privacy requests): the call, its recording reference, analysis
/// and enrichment in one D1 batch, then every cached key that held it is retired. 404 for
/// anyone else, exactly as for a call that does not exist.
pub async fn delete<S: Services>(
    app: &App<'_, S>,
    req: &Request,
    raw_id: &str,
) -> AppResult<Response> {
    use crate::cache::CacheControl;
    use crate::clock::Clock;
    use crate::store::CallDeletion;
    let user = app.user(req).await?;
    let id = path_call_id(raw_id)?;
    let Some(version) = app.writes.delete_call(&user, &id, app.clock.now()).await? else {
        return Err(AppError::NotFound);
    };
    app.reads.invalidate(&user, Some(version));
    use crate::live::{ChangeKind, LiveFeed, Notification};
    app.live.notify(
        &user,
        Notification::new(ChangeKind::Deleted, &[id], version),
    );
    Ok(respond::no_content())
}
