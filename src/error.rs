//! The crate's one error type and its mapping onto HTTP statuses and the contract's envelope.
//!
//! Every variant has a stable `code`; the public `message` never carries internals. The
//! `detail` of `Internal` and `Unavailable` (SQL, binding names, JS error text) is for the log
//! line only.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum AppError {
    /// A query or path parameter failed validation; `field` names it.
    InvalidParameter {
        field: &'static str,
        reason: String,
    },
    InvalidRequest(String),
    InvalidJson(String),
    Unauthorized(&'static str),
    InvalidSignature,
    Forbidden,
    NotFound,
    MethodNotAllowed {
        allow: &'static str,
    },
    Conflict(String),
    PayloadTooLarge,
    UnsupportedMediaType(&'static str),
    /// The route speaks WebSocket only (`/api/live` without `Upgrade: websocket`).
    UpgradeRequired,
    /// The caller holds too many of something (live tickets, sockets); `what` says which.
    RateLimited(&'static str),
    /// A dependency (D1) failed or timed out; worth retrying shortly.
    Unavailable {
        detail: String,
    },
    /// A secret or binding the route needs is not set.
    NotConfigured(&'static str),
    Internal {
        detail: String,
    },
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn invalid_parameter(field: &'static str, reason: impl Into<String>) -> Self {
        AppError::InvalidParameter {
            field,
            reason: reason.into(),
        }
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        AppError::Internal {
            detail: detail.into(),
        }
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        AppError::Unavailable {
            detail: detail.into(),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            AppError::InvalidParameter { .. }
            | AppError::InvalidRequest(_)
            | AppError::InvalidJson(_) => 400,
            AppError::Unauthorized(_) => 401,
            AppError::InvalidSignature | AppError::Forbidden => 403,
            AppError::NotFound => 404,
            AppError::MethodNotAllowed { .. } => 405,
            AppError::Conflict(_) => 409,
            AppError::PayloadTooLarge => 413,
            AppError::UnsupportedMediaType(_) => 415,
            AppError::UpgradeRequired => 426,
            AppError::RateLimited(_) => 429,
            AppError::Internal { .. } => 500,
            AppError::Unavailable { .. } | AppError::NotConfigured(_) => 503,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::InvalidParameter { .. } => "invalid_parameter",
            AppError::InvalidRequest(_) => "invalid_request",
            AppError::InvalidJson(_) => "invalid_json",
            AppError::Unauthorized(_) => "unauthorized",
            AppError::InvalidSignature => "invalid_signature",
            AppError::Forbidden => "forbidden",
            AppError::NotFound => "not_found",
            AppError::MethodNotAllowed { .. } => "method_not_allowed",
            AppError::Conflict(_) => "conflict",
            AppError::PayloadTooLarge => "payload_too_large",
            AppError::UnsupportedMediaType(_) => "unsupported_media_type",
            AppError::UpgradeRequired => "upgrade_required",
            AppError::RateLimited(_) => "rate_limited",
            AppError::Unavailable { .. } => "unavailable",
            AppError::NotConfigured(_) => "not_configured",
            AppError::Internal { .. } => "internal",
        }
    }

    /// The human-readable message sent to the client.
    pub fn public_message(&self) -> String {
        match self {
            AppError::InvalidParameter { field, reason } => format!("`{field}` {reason}"),
            AppError::InvalidRequest(m) | AppError::InvalidJson(m) | AppError::Conflict(m) => {
                m.clone()
            }
            AppError::Unauthorized(m) => (*m).to_owned(),
            AppError::InvalidSignature => "the signature does not verify".to_owned(),
            AppError::Forbidden => "this token does not grant access to this route".to_owned(),
            AppError::NotFound => "not found".to_owned(),
            AppError::MethodNotAllowed { allow } => {
                format!("method not allowed; allowed: {allow}")
            }
            AppError::PayloadTooLarge => "the body exceeds 1 MiB".to_owned(),
            AppError::UnsupportedMediaType(expected) => format!("expected {expected}"),
            AppError::UpgradeRequired => {
                "this route needs a WebSocket upgrade (Upgrade: websocket)".to_owned()
            }
            AppError::RateLimited(what) => format!("too many {what}; retry later"),
            AppError::Unavailable { .. } => {
                "the service is briefly unavailable; retry shortly".to_owned()
            }
            AppError::NotConfigured(what) => format!("{what} is not configured"),
            AppError::Internal { .. } => "internal error".to_owned(),
        }
    }

    /// Seconds a client should wait before retrying, where that helps.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            AppError::Unavailable { .. } => Some(5),
            AppError::RateLimited(_) => Some(60),
            _ => None,
        }
    }
}

impl fmt::Display for AppError {
    /// The log form: code plus internal detail where there is one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Internal { detail } | AppError::Unavailable { detail } => {
                write!(f, "{}: {detail}", self.code())
            }
            other => write!(f, "{}: {}", other.code(), other.public_message()),
        }
    }
}

impl std::error::Error for AppError {}

/// Adds what was being done to an internal error, so the log line says where it failed.
pub trait Context<T> {
    fn context(self, what: &str) -> AppResult<T>;
}

impl<T> Context<T> for AppResult<T> {
    fn context(self, what: &str) -> AppResult<T> {
        self.map_err(|e| match e {
            AppError::Internal { detail } => AppError::Internal {
                detail: format!("{what}: {detail}"),
            },
            AppError::Unavailable { detail } => AppError::Unavailable {
                detail: format!("{what}: {detail}"),
            },
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_details_never_reach_the_public_message() {
        let e = AppError::internal("SELECT * FROM calls: no such column");
        assert_eq!(e.status(), 500);
        assert!(!e.public_message().contains("SELECT"));
        assert!(e.to_string().contains("SELECT"));
    }

    #[test]
    fn parameter_errors_name_the_field() {
        let e = AppError::invalid_parameter("limit", "must be between 1 and 500");
        assert_eq!((e.status(), e.code()), (400, "invalid_parameter"));
        assert!(e.public_message().contains("limit"));
    }

    #[test]
    fn an_unavailable_store_asks_the_client_to_retry() {
        let e: AppResult<()> = Err(AppError::unavailable("D1_ERROR: timeout"));
        let e = e.context("loading a page").expect_err("still an error");
        assert_eq!((e.status(), e.retry_after()), (503, Some(5)));
        assert!(e.to_string().contains("loading a page: D1_ERROR"));
    }
}
