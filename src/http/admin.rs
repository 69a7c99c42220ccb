//! `/api/admin/phone-numbers/{e164}`: which user a provider number's calls belong to.

use super::{percent_decode, respond, App, Request, Response, Services};
use crate::clock::Clock;
use crate::domain::{PhoneRoute, UserId, E164};
use crate::error::{AppError, AppResult};
use crate::store::PhoneDirectory;
use serde::Deserialize;

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

#[derive(serde::Serialize)]
struct Created {
    created: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RouteBody {
    user_id: serde_json::Value,
}

pub async fn put_phone_number<S: Services>(
    app: &App<'_, S>,
    req: &Request,
    raw: &str,
) -> AppResult<Response> {
    app.admin(req)?;
    let number = number(raw)?;
    let body: RouteBody = super::small_json(req, MAX_BODY, "{\"userId\": \"…\"}")?;
    let user = body
        .user_id
        .as_str()
        .and_then(UserId::parse)
        .ok_or_else(|| {
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
    app.admin(req)?;
    let number = number(raw)?;
    if app.writes.delete_route(&number).await? {
        Ok(respond::no_content())
    } else {
        Err(AppError::NotFound)
    }
}
