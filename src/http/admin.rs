//! `/api/admin/phone-numbers/{e164}`: which user a provider number's calls belong to.

use super::{percent_decode, respond, App, Request, Response, Services};
use crate::clock::Clock;
use crate::domain::{PhoneRoute, UserId, E164};
use crate::error::{AppError, AppResult};
use crate::store::PhoneDirectory;

/// Admin bodies are tiny; anything bigger is a mistake.
const MAX_BODY: usize = 16 * 1024;

fn number(raw: &str) -> AppResult<E164> {
    percent_decode(raw)
        .as_deref()
        .and_then(E164::parse)
        .ok_or_else(|| {
            AppError::invalid_parameter(
                "e164",
                "must be a phone number in E.164 form, like +14155550100",
            )
        })
}

struct Created {
    created: bool,
}
crate::json_object!(Created { "created": created });

pub async fn put_phone_number<S: Services>(
    app: &App<'_, S>,
    req: &Request,
    raw: &str,
) -> AppResult<Response> {
    app.admin(req).await?;
    let number = number(raw)?;
    let shape = "{\"userId\": \"…\"}";
    // Other members are ignored, as they always were.
    let body = super::small_object(req, MAX_BODY, shape, None)?;
    let Some(user_id) = body.get("userId") else {
        return Err(AppError::InvalidJson(format!(
            "the body must be {shape}: missing field `userId`"
        )));
    };
    let user = user_id.as_str().and_then(UserId::parse).ok_or_else(|| {
        AppError::invalid_parameter(
            "userId",
            "must be a user id (letters, digits and . _ - @ |, at most 128)",
        )
    })?;
    let now = app.clock.now();
    let created = app.writes.put_route(&number, &user, now).await?;
    let route = PhoneRoute {
        phone_number: number,
        user_id: user,
        updated_at: now,
    };
    Ok(respond::json(
        if created { 201 } else { 200 },
        &respond::Envelope {
            success: true,
            data: route,
            meta: Created { created },
        },
    ))
}

pub async fn delete_phone_number<S: Services>(
    app: &App<'_, S>,
    req: &Request,
    raw: &str,
) -> AppResult<Response> {
    app.admin(req).await?;
    let number = number(raw)?;
    if app.writes.delete_route(&number).await? {
        Ok(respond::no_content())
    } else {
        Err(AppError::NotFound)
    }
}

/// Dead letters listed (and requeued) by one request at most.
const MAX_DEAD_LETTERS: usize = 100;

struct ParkedView {
    /// Deliveries waiting for D1 (up to the listing limit).
    queued: usize,
    /// Deliveries moved aside after failing while D1 answered, or unreadable.
    dead_letters: Vec<crate::webhooks::parking::DeadLetterInfo>,
    max_attempts: u32,
}
crate::json_object!(ParkedView {
    "queued": queued,
    "deadLetters": dead_letters,
    "maxAttempts": max_attempts,
});

struct Requeued {
    requeued: usize,
}
crate::json_object!(Requeued { "requeued": requeued });

struct Limit {
    limit: usize,
}
crate::json_object!(Limit { "limit": limit });

/// `GET /api/admin/parked`: what waits for D1 and what was moved aside, without payloads.
pub async fn parked<S: Services>(app: &App<'_, S>, req: &Request) -> AppResult<Response> {
    use crate::webhooks::parking;
    app.admin(req).await?;
    let (queued, dead_letters) = parking::inspect(app.parking, MAX_DEAD_LETTERS).await?;
    Ok(respond::json(
        200,
        &respond::Envelope {
            success: true,
            data: ParkedView {
                queued,
                dead_letters,
                max_attempts: parking::MAX_ATTEMPTS,
            },
            meta: Limit {
                limit: MAX_DEAD_LETTERS,
            },
        },
    ))
}

/// `POST /api/admin/parked/requeue`: puts dead letters back in the queue (after the cause was
/// fixed); the next replay applies them.
pub async fn requeue_parked<S: Services>(app: &App<'_, S>, req: &Request) -> AppResult<Response> {
    app.admin(req).await?;
    let requeued = crate::webhooks::parking::requeue(app.parking, MAX_DEAD_LETTERS).await?;
    Ok(respond::json(
        200,
        &respond::Envelope {
            success: true,
            data: Requeued { requeued },
            meta: Limit {
                limit: MAX_DEAD_LETTERS,
            },
        },
    ))
}
