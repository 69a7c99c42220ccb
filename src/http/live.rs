//! `/api/live/tickets` and `/api/live`: the live feed's two routes (see `crate::live`).
//!
//! A ticket is issued to a dashboard JWT; the upgrade carries only the ticket, because a
//! browser cannot set headers on a WebSocket and a bearer token must never sit in a URL.

use super::params::Query;
use super::{respond, App, Request, Response, Services};
use crate::domain::Timestamp;
use crate::error::{AppError, AppResult};
use crate::live::{LiveFeed, Ticket};
use std::cell::RefCell;

struct TicketData {
    ticket: String,
    expires_at: Timestamp,
}
crate::json_object!(TicketData { "ticket": ticket, "expiresAt": expires_at });

/// `POST /api/live/tickets`: a single-use ticket, valid 60 s, bound to the caller.
pub async fn ticket<S: Services>(app: &App<'_, S>, req: &Request) -> AppResult<Response> {
    let user = app.user(req).await?;
    let issued = app.live.issue_ticket(&user).await?;
    let mut res = respond::json(
        201,
        &respond::Envelope {
            success: true,
            data: TicketData {
                ticket: issued.ticket,
                expires_at: Timestamp::from_millis(issued.expires_at_ms),
            },
            meta: serde_json::Map::new(),
        },
    );
    res.headers.retain(|(k, _)| *k != "cache-control");
    res.headers.push(("cache-control", "no-store".to_owned()));
    Ok(res)
}

/// `GET /api/live?ticket=…`: admits a well-formed ticket on a WebSocket upgrade. The runtime
/// entry then hands the request to the ticket's object, which redeems it (401 when used,
/// expired or never issued). Without an upgrade the answer is 426 and the ticket is not spent.
pub fn connect<S: Services>(
    app: &App<'_, S>,
    req: &Request,
    upgrade: &RefCell<Option<Ticket>>,
) -> AppResult<Response> {
    if !app.live.configured() {
        return Err(AppError::NotConfigured("the LIVE binding"));
    }
    let query = Query::parse(&req.query)?;
    if query.count("ticket") > 1 {
        return Err(AppError::invalid_parameter(
            "ticket",
            "is given more than once",
        ));
    }
    let ticket = query
        .get("ticket")
        .and_then(Ticket::parse)
        .ok_or(AppError::Unauthorized(
            "a live ticket from POST /api/live/tickets is required",
        ))?;
    let is_websocket = req
        .header("upgrade")
        .is_some_and(|u| u.trim().eq_ignore_ascii_case("websocket"));
    if !is_websocket {
        return Err(AppError::UpgradeRequired);
    }
    *upgrade.borrow_mut() = Some(ticket);
    // Never sent: the entry answers with the object's 101 (or its refusal).
    Ok(Response {
        status: 101,
        headers: Vec::new(),
        body: Default::default(),
    })
}
