//! Building responses: the success and error envelopes, conditional GETs and CORS.

use super::{Method, Rendering, Request, Response};
use crate::config::AllowedOrigins;
use crate::error::AppError;
use crate::reads::{Outcome, Payload, Served};
use serde::Serialize;

const JSON: &str = "application/json; charset=utf-8";

/// Headers every dashboard read carries: per-user data must never sit in a shared cache, and
/// must be revalidated by the browser (ETag) before reuse.
const READ_CACHE_CONTROL: &str = "private, no-cache";

/// `{"success":true,"data":…,"meta":{…,"source":…,"cacheHit":…}}` with ETag and `X-Cache`, or
/// 304 when the client already holds this ETag.
pub fn read(
    req: &Request,
    served: &Served<Payload>,
    extra_meta: &[(&str, serde_json::Value)],
) -> Response {
    let payload = &served.value;
    let mut headers = vec![
        ("etag", payload.etag.clone()),
        ("x-cache", served.outcome.header().to_owned()),
        ("cache-control", READ_CACHE_CONTROL.to_owned()),
        ("vary", "Authorization, Origin".to_owned()),
    ];
    if if_none_match_hits(req.header("if-none-match"), &payload.etag) {
        return Response {
            status: 304,
            headers,
            body: Vec::new(),
            rendered: None,
        };
    }
    headers.push(("content-type", JSON.to_owned()));
    let mut meta = serde_json::Map::new();
    for (k, v) in extra_meta {
        meta.insert((*k).to_owned(), v.clone());
    }
    if let Some(page) = &payload.page {
        meta.insert("count".into(), page.count.into());
        meta.insert(
            "nextCursor".into(),
            page.next_cursor
                .clone()
                .map_or(serde_json::Value::Null, Into::into),
        );
    }
    meta.insert("source".into(), served.source.as_str().into());
    meta.insert("cacheHit".into(), served.outcome.is_hit().into());
    meta.insert("version".into(), served.version.token().into());
    let meta = serde_json::Value::Object(meta).to_string();
    if let Some(copy) = payload.rendered.get(&meta) {
        return Response {
            status: 200,
            headers,
            body: Vec::new(),
            rendered: Some(Rendering::Kept(copy)),
        };
    }
    let mut body = Vec::with_capacity(payload.data_json.len() + meta.len() + 40);
    body.extend_from_slice(b"{\"success\":true,\"data\":");
    body.extend_from_slice(payload.data_json.as_bytes());
    body.extend_from_slice(b",\"meta\":");
    body.extend_from_slice(meta.as_bytes());
    body.push(b'}');
    // Only a memory hit's body is worth a copy: it is the one the next hit sends again.
    let rendered = (served.outcome == Outcome::HitMemory).then(|| Rendering::Keep {
        slot: payload.rendered.clone(),
        meta: meta.into_boxed_str(),
    });
    Response {
        status: 200,
        headers,
        body,
        rendered,
    }
}

/// `{"success": true, "data": …, "meta": …}`, fields in that order.
#[derive(Serialize)]
pub struct Envelope<D, M> {
    pub success: bool,
    pub data: D,
    pub meta: M,
}

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    success: bool,
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: String,
}

/// A non-read JSON response (admin routes, health, errors); never stored by any cache.
pub fn json<T: Serialize>(status: u16, body: &T) -> Response {
    Response {
        status,
        headers: vec![
            ("content-type", JSON.to_owned()),
            ("cache-control", "no-store".to_owned()),
        ],
        // Serializing plain data structures cannot fail.
        body: serde_json::to_vec(body).unwrap_or_default(),
        rendered: None,
    }
}

pub fn no_content() -> Response {
    Response {
        status: 204,
        headers: vec![("cache-control", "no-store".to_owned())],
        body: Vec::new(),
        rendered: None,
    }
}

/// The error envelope, with the headers some statuses call for.
pub fn error(err: &AppError) -> Response {
    let body = ErrorEnvelope {
        success: false,
        error: ErrorBody {
            code: err.code(),
            message: err.public_message(),
        },
    };
    let mut res = json(err.status(), &body);
    match err {
        AppError::Unauthorized(_) => res
            .headers
            .push(("www-authenticate", "Bearer realm=\"dashboard\"".to_owned())),
        AppError::MethodNotAllowed { allow } => res.headers.push(("allow", (*allow).to_owned())),
        _ => {}
    }
    if let Some(secs) = err.retry_after() {
        res.headers.push(("retry-after", secs.to_string()));
    }
    res
}

/// RFC 9110 §13.1.2: a list of entity tags or `*`, compared weakly.
fn if_none_match_hits(header: Option<&str>, etag: &str) -> bool {
    let Some(header) = header else { return false };
    let bare = etag.trim_start_matches("W/");
    header
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == bare)
}

const CORS_METHODS: &str = "GET, HEAD, POST, PUT, DELETE, OPTIONS";
const CORS_HEADERS: &str = "Authorization, Content-Type, If-None-Match, X-Min-Version";
const CORS_EXPOSE: &str = "ETag, X-Cache, Retry-After";

/// Adds CORS headers when the request's `Origin` is allowed; answers nothing for others, so
/// the browser refuses the response.
pub fn with_cors(mut res: Response, req: &Request, origins: &AllowedOrigins) -> Response {
    let Some(origin) = req.header("origin") else {
        return res;
    };
    if !origins.allows(origin) {
        return res;
    }
    res.headers
        .push(("access-control-allow-origin", origin.to_owned()));
    res.headers
        .push(("access-control-expose-headers", CORS_EXPOSE.to_owned()));
    if !res.headers.iter().any(|(k, _)| *k == "vary") {
        res.headers.push(("vary", "Origin".to_owned()));
    }
    if req.method == Method::Options {
        res.headers
            .push(("access-control-allow-methods", CORS_METHODS.to_owned()));
        let requested = req
            .header("access-control-request-headers")
            .map(|h| h.to_owned())
            .unwrap_or_else(|| CORS_HEADERS.to_owned());
        // Echo only the headers the API understands.
        let allowed: Vec<&str> = requested
            .split(',')
            .map(str::trim)
            .filter(|h| CORS_HEADERS.split(", ").any(|a| a.eq_ignore_ascii_case(h)))
            .collect();
        res.headers.push((
            "access-control-allow-headers",
            if allowed.is_empty() {
                CORS_HEADERS.to_owned()
            } else {
                allowed.join(", ")
            },
        ));
        res.headers
            .push(("access-control-max-age", "600".to_owned()));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn if_none_match_accepts_lists_wildcards_and_weak_tags() {
        let tag = "\"abc\"";
        assert!(if_none_match_hits(Some("\"abc\""), tag));
        assert!(if_none_match_hits(Some("\"x\", W/\"abc\""), tag));
        assert!(if_none_match_hits(Some("*"), tag));
        assert!(!if_none_match_hits(Some("\"abd\""), tag));
        assert!(!if_none_match_hits(None, tag));
    }

    #[test]
    fn unauthorized_errors_challenge_for_a_bearer_token() {
        let res = error(&AppError::Unauthorized("missing bearer token"));
        assert_eq!(res.status, 401);
        assert!(res
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")));
    }

    #[test]
    fn unavailable_errors_say_when_to_retry() {
        let res = error(&AppError::unavailable("D1_ERROR"));
        assert_eq!(res.header("retry-after"), Some("5"));
        assert!(!String::from_utf8_lossy(&res.body).contains("D1_ERROR"));
    }

    fn get(if_none_match: Option<&str>) -> Request {
        Request {
            method: Method::Get,
            url: "https://api.test/api/webhook-calls".into(),
            path: "/api/webhook-calls".into(),
            query: String::new(),
            headers: if_none_match
                .map(|tag| ("if-none-match".to_owned(), tag.to_owned()))
                .into_iter()
                .collect(),
            body: Vec::new(),
        }
    }

    fn served(
        payload: &Payload,
        outcome: Outcome,
        source: crate::reads::Source,
        version: u64,
    ) -> Served<Payload> {
        Served {
            value: payload.clone(),
            source,
            outcome,
            version: crate::domain::Version::new(version),
        }
    }

    #[test]
    fn a_memory_hit_offers_its_body_to_keep_and_the_next_identical_hit_sends_the_kept_copy() {
        use crate::reads::{PageMeta, Source};
        let payload = Payload::from_json(
            r#"[{"id":"CA1"}]"#.into(),
            Some(PageMeta {
                count: 1,
                next_cursor: None,
            }),
        );
        let limit = [("limit", serde_json::Value::from(50))];
        let hit = served(&payload, Outcome::HitMemory, Source::Memory, 7);
        let first = read(&get(None), &hit, &limit);
        let Some(Rendering::Keep { slot, meta }) = first.rendered.clone() else {
            panic!(
                "a memory hit's fresh body is offered to keep: {:?}",
                first.rendered
            );
        };
        // The runtime keeps its own copy; here, the bytes themselves.
        slot.keep(meta, Rc::new(first.body.clone()));

        let again = read(&get(None), &hit, &limit);
        let Some(Rendering::Kept(copy)) = &again.rendered else {
            panic!("the same hit again sends the copy: {:?}", again.rendered);
        };
        assert_eq!(copy.downcast_ref::<Vec<u8>>(), Some(&first.body));
        assert!(again.body.is_empty(), "nothing is assembled for it");
        assert_eq!(again.headers, first.headers);

        // Whatever else the envelope says builds the body afresh: the copy would be wrong.
        for other in [
            read(
                &get(None),
                &served(&payload, Outcome::HitMemory, Source::Memory, 8),
                &limit,
            ),
            read(&get(None), &hit, &[("limit", serde_json::Value::from(20))]),
            read(
                &get(None),
                &served(&payload, Outcome::HitKv, Source::Kv, 7),
                &limit,
            ),
        ] {
            assert!(!matches!(other.rendered, Some(Rendering::Kept(_))));
            assert!(!other.body.is_empty());
            assert_ne!(other.body, first.body);
        }
    }

    #[test]
    fn only_a_memory_hits_body_is_offered_to_keep_and_a_304_has_none() {
        use crate::reads::Source;
        let payload = Payload::from_json("{}".into(), None);
        for (outcome, source) in [
            (Outcome::Miss, Source::D1),
            (Outcome::HitKv, Source::Kv),
            (Outcome::Stale, Source::Memory),
        ] {
            let res = read(&get(None), &served(&payload, outcome, source, 1), &[]);
            assert!(res.rendered.is_none(), "{outcome:?}");
        }
        let hit = served(&payload, Outcome::HitMemory, Source::Memory, 1);
        let unchanged = read(&get(Some(&payload.etag)), &hit, &[]);
        assert_eq!(unchanged.status, 304);
        assert!(unchanged.rendered.is_none() && unchanged.body.is_empty());
    }
}
