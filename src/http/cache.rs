//! `/api/cache/stats`, `/api/cache/warm`, `/api/cache/purge`.

use super::{respond, App, Request, Response, Services};
use crate::cache::CacheControl;
use crate::clock::Clock;
use crate::domain::{Timestamp, UserId};
use crate::error::{AppError, AppResult};
use crate::store::ActivityLog;

/// Users warmed by one request at most.
const MAX_WARM_USERS: usize = 100;
const MAX_BODY: usize = 64 * 1024;

/// Counters for the caller: the whole isolate with `ADMIN_TOKEN`, their own with a JWT.
pub async fn stats<S: Services>(app: &App<'_, S>, req: &Request) -> AppResult<Response> {
    let (stats, scope) = if app.is_admin(req) {
        (app.reads.stats(None), "isolate")
    } else {
        let user = app.user(req).await?;
        (app.reads.stats(Some(&user)), "user")
    };
    Ok(respond::json(
        200,
        &respond::Envelope {
            success: true,
            data: stats,
            meta: Scope { scope },
        },
    ))
}

struct Scope {
    scope: &'static str,
}
crate::json_object!(Scope { "scope": scope });

/// The route's body as an object of its `known` members; an empty body is an empty object.
fn json_body(
    req: &Request,
    known: &[&str],
) -> AppResult<serde_json::Map<String, serde_json::Value>> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    super::small_object(
        req,
        MAX_BODY,
        "a JSON object with this route's fields",
        Some(known),
    )
}

struct Warmed {
    warmed: Vec<UserId>,
    failed: Vec<UserId>,
}
crate::json_object!(Warmed { "warmed": warmed, "failed": failed });

/// Warms the given users, or the recently active ones, into every tier.
pub async fn warm<S: Services>(app: &App<'_, S>, req: &Request) -> AppResult<Response> {
    app.admin(req).await?;
    let body = json_body(req, &["userIds"])?;
    let user_ids = super::member(&body, "userIds", "a list of user ids", crate::json::strings)?;
    let users = match user_ids {
        Some(ids) => {
            if ids.len() > MAX_WARM_USERS {
                return Err(AppError::invalid_parameter(
                    "userIds",
                    format!("may list at most {MAX_WARM_USERS} users"),
                ));
            }
            ids.iter()
                .map(|id| {
                    UserId::parse(id).ok_or_else(|| {
                        AppError::invalid_parameter("userIds", format!("{id:?} is not a user id"))
                    })
                })
                .collect::<AppResult<Vec<_>>>()?
        }
        None => {
            let since =
                Timestamp::from_millis(app.clock.now().millis() - super::RECENT_ACTIVITY_WINDOW_MS);
            app.writes
                .recently_active_users(since, MAX_WARM_USERS as u32)
                .await?
        }
    };
    let (mut warmed, mut failed) = (Vec::new(), Vec::new());
    for user in users {
        match app.reads.warm(&user).await {
            Ok(()) => warmed.push(user),
            Err(_) => failed.push(user),
        }
    }
    Ok(respond::json(
        200,
        &respond::Envelope {
            success: true,
            data: Warmed { warmed, failed },
            meta: serde_json::Map::new(),
        },
    ))
}

struct Purged {
    purged: &'static str,
    /// Left out when the purge was for everyone.
    user_id: Option<UserId>,
}
crate::json_object!(Purged { "purged": purged, "userId"?: user_id });

/// Retires a user's cached entries, or everyone's, in every isolate (within the staleness
/// bound) without touching KV keys one by one.
pub async fn purge<S: Services>(app: &App<'_, S>, req: &Request) -> AppResult<Response> {
    app.admin(req).await?;
    let body = json_body(req, &["userId", "all"])?;
    let user_id = super::member(&body, "userId", "a string", crate::json::string)?;
    let all = super::member(&body, "all", "true or false", serde_json::Value::as_bool)?;
    let purged = match (user_id, all) {
        (Some(id), None | Some(false)) => {
            let user = UserId::parse(&id)
                .ok_or_else(|| AppError::invalid_parameter("userId", "is not a user id"))?;
            app.reads.purge_user(&user).await?;
            Purged {
                purged: "user",
                user_id: Some(user),
            }
        }
        (None, Some(true)) => {
            app.reads.purge_all().await?;
            Purged {
                purged: "all",
                user_id: None,
            }
        }
        _ => {
            return Err(AppError::InvalidRequest(
                "give either {\"userId\": \"…\"} or {\"all\": true}".into(),
            ))
        }
    };
    Ok(respond::json(
        200,
        &respond::Envelope {
            success: true,
            data: purged,
            meta: serde_json::Map::new(),
        },
    ))
}

struct KeysData {
    user_id: UserId,
    keys: Vec<crate::cache::KeyInfo>,
}
crate::json_object!(KeysData { "userId": user_id, "keys": keys });

struct KeysMeta {
    count: usize,
    max: usize,
    tier: &'static str,
}
crate::json_object!(KeysMeta { "count": count, "max": max, "tier": tier });

/// `GET /api/cache/keys?userId=…`: what this isolate's memory holds for a user, for debugging
/// a stale report without reading KV by hand.
pub async fn keys<S: Services>(app: &App<'_, S>, req: &Request) -> AppResult<Response> {
    app.admin(req).await?;
    let query = super::params::Query::parse(&req.query)?;
    let user = query
        .get("userId")
        .ok_or_else(|| AppError::invalid_parameter("userId", "is required"))?;
    let user = UserId::parse(user)
        .ok_or_else(|| AppError::invalid_parameter("userId", "is not a user id"))?;
    let keys = app.reads.keys(&user).await?;
    let count = keys.len();
    Ok(respond::json(
        200,
        &respond::Envelope {
            success: true,
            data: KeysData {
                user_id: user,
                keys,
            },
            meta: KeysMeta {
                count,
                max: crate::cache::MAX_LISTED_KEYS,
                tier: "memory of the isolate that answered",
            },
        },
    ))
}
