//! Building responses: the success and error envelopes, conditional GETs and CORS.

use super::{Body, Method, Request, Response};
use crate::config::AllowedOrigins;
use crate::error::AppError;
use crate::json_writer::{self, ToJson};
use crate::reads::{Payload, Served};

const JSON: &str = "application/json; charset=utf-8";

/// Headers every dashboard read carries: per-user data must never sit in a shared cache, and
/// must be revalidated by the browser (ETag) before reuse.
const READ_CACHE_CONTROL: &str = "private, no-cache";

/// `{"success":true,"data":…,"meta":{…,"source":…,"cacheHit":…}}` with ETag and `X-Cache`, or
/// 304 when the client already holds this ETag.
pub fn read(
    req: &Request,
    served: &Served<Payload>,
    extra_meta: &[(&str, &dyn ToJson)],
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
            body: Body::default(),
        };
    }
    headers.push(("content-type", JSON.to_owned()));
    let meta = meta_json(served, extra_meta);
    Response {
        status: 200,
        headers,
        body: Body::Shared(payload.body(&meta)),
    }
}

/// A read's `meta` as JSON: `extra_meta`, the page's `count` and `nextCursor`, then `source`,
/// `cacheHit` and `version` (these win over an extra of the same name), keys in byte order —
/// the text a `serde_json::Map` of them writes, built without the map: it is what a hit's body
/// already built is found by (`Payload::body`), so it is made on every hit.
fn meta_json(served: &Served<Payload>, extra_meta: &[(&str, &dyn ToJson)]) -> String {
    let quoted = |s: &str| json_writer::to_string(s);
    let mut fields: Vec<(&str, String)> = Vec::with_capacity(extra_meta.len() + 5);
    if let Some(page) = &served.value.page {
        fields.push(("count", page.count.to_string()));
        fields.push((
            "nextCursor",
            page.next_cursor
                .as_deref()
                .map_or("null".to_owned(), quoted),
        ));
    }
    fields.push(("source", quoted(served.source.as_str())));
    fields.push(("cacheHit", served.outcome.is_hit().to_string()));
    fields.push(("version", quoted(&served.version.token())));
    for (k, v) in extra_meta {
        if !fields.iter().any(|(name, _)| name == k) {
            fields.push((k, json_writer::to_string(v)));
        }
    }
    // In name order. A handful of fields with distinct names: an insertion sort, rather than
    // a copy of the standard library's unstable sort (about 1 KB of the gzipped module).
    for i in 1..fields.len() {
        let mut j = i;
        while j > 0 && fields[j - 1].0 > fields[j].0 {
            fields.swap(j - 1, j);
            j -= 1;
        }
    }
    let mut out = String::with_capacity(
        fields
            .iter()
            .map(|(k, v)| k.len() + v.len() + 4)
            .sum::<usize>()
            + 2,
    );
    out.push('{');
    for (n, (k, v)) in fields.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        // Keys are the code's own identifiers: nothing in them needs escaping.
        debug_assert!(k.bytes().all(|b| b.is_ascii_alphanumeric()), "meta key {k}");
        out.push('"');
        out.push_str(k);
        out.push_str("\":");
        out.push_str(v);
    }
    out.push('}');
    out
}

/// `{"success": true, "data": …, "meta": …}`, fields in that order.
pub struct Envelope<D, M> {
    pub success: bool,
    pub data: D,
    pub meta: M,
}

impl<D: ToJson, M: ToJson> ToJson for Envelope<D, M> {
    fn write_json(&self, out: &mut String) {
        out.push_str(if self.success {
            "{\"success\":true,\"data\":"
        } else {
            "{\"success\":false,\"data\":"
        });
        self.data.write_json(out);
        out.push_str(",\"meta\":");
        self.meta.write_json(out);
        out.push('}');
    }
}

struct ErrorEnvelope<'a> {
    success: bool,
    error: ErrorBody<'a>,
}
crate::json_object!(ErrorEnvelope<'_> { "success": success, "error": error });

struct ErrorBody<'a> {
    code: &'a str,
    message: String,
}
crate::json_object!(ErrorBody<'_> { "code": code, "message": message });

/// A non-read JSON response (admin routes, health, errors); never stored by any cache.
pub fn json<T: ToJson + ?Sized>(status: u16, body: &T) -> Response {
    Response {
        status,
        headers: vec![
            ("content-type", JSON.to_owned()),
            ("cache-control", "no-store".to_owned()),
        ],
        body: json_writer::to_vec(body).into(),
    }
}

pub fn no_content() -> Response {
    Response {
        status: 204,
        headers: vec![("cache-control", "no-store".to_owned())],
        body: Body::default(),
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
    use crate::reads::Outcome;
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
    fn meta_is_the_text_a_serde_map_of_its_fields_writes() {
        use crate::reads::{PageMeta, Source};
        let by_map = |served: &Served<Payload>, extra: &[(&str, serde_json::Value)]| {
            let mut meta = serde_json::Map::new();
            for (k, v) in extra {
                meta.insert((*k).to_owned(), v.clone());
            }
            if let Some(page) = &served.value.page {
                meta.insert("count".into(), page.count.into());
                meta.insert("nextCursor".into(), page.next_cursor.clone().into());
            }
            meta.insert("source".into(), served.source.as_str().into());
            meta.insert("cacheHit".into(), served.outcome.is_hit().into());
            meta.insert("version".into(), served.version.token().into());
            serde_json::Value::Object(meta).to_string()
        };
        let page = |next: Option<&str>| {
            Payload::from_json(
                "[]".into(),
                Some(PageMeta {
                    count: 3,
                    next_cursor: next.map(str::to_owned),
                }),
            )
        };
        let filters = serde_json::json!({"status": ["failed"], "from": "2026-01-01T00:00:00Z"});
        let cases: [(Payload, Vec<(&str, serde_json::Value)>); 5] = [
            (page(None), vec![("limit", 50.into()), ("offset", 0.into())]),
            (
                page(Some("f1:ab\"c")),
                vec![
                    ("limit", 2.into()),
                    ("cursor", "x\"y".into()),
                    ("filters", filters),
                ],
            ),
            (
                Payload::from_json("{}".into(), None),
                vec![("limit", 20.into())],
            ),
            (Payload::from_json("{}".into(), None), vec![]),
            // An extra named like a field the read sets: the read's own wins.
            (
                page(None),
                vec![("source", "x".into()), ("aa", serde_json::Value::Null)],
            ),
        ];
        for (payload, extra) in cases {
            for (outcome, source) in [
                (Outcome::HitMemory, Source::Memory),
                (Outcome::Miss, Source::D1),
            ] {
                let served = served(&payload, outcome, source, 9_007_199_254_740_993);
                let fields: Vec<(&str, &dyn ToJson)> =
                    extra.iter().map(|(k, v)| (*k, v as &dyn ToJson)).collect();
                assert_eq!(meta_json(&served, &fields), by_map(&served, &extra));
            }
        }
    }

    #[test]
    fn a_hit_with_the_same_envelope_sends_the_body_already_built_and_any_other_builds_its_own() {
        use crate::reads::{PageMeta, Source};
        let payload = Payload::from_json(
            r#"[{"id":"CA1"}]"#.into(),
            Some(PageMeta {
                count: 1,
                next_cursor: None,
            }),
        );
        let limit: [(&str, &dyn ToJson); 1] = [("limit", &50u32)];
        let hit = served(&payload, Outcome::HitMemory, Source::Memory, 7);
        let first = read(&get(None), &hit, &limit);
        let again = read(&get(None), &hit, &limit);
        let (Body::Shared(a), Body::Shared(b)) = (&first.body, &again.body) else {
            panic!("a read's body is the payload's: {:?}", first.body);
        };
        assert!(Rc::ptr_eq(a, b), "nothing is assembled for the second");
        assert_eq!(again.headers, first.headers);
        let sent: serde_json::Value = serde_json::from_slice(&first.body).expect("JSON");
        assert_eq!(sent["data"][0]["id"], "CA1");
        assert_eq!(sent["meta"]["version"], "7");

        // Whatever else the envelope says builds the body afresh: the first would be wrong.
        for other in [
            read(
                &get(None),
                &served(&payload, Outcome::HitMemory, Source::Memory, 8),
                &limit,
            ),
            read(&get(None), &hit, &[("limit", &20u32)]),
            read(
                &get(None),
                &served(&payload, Outcome::HitKv, Source::Kv, 7),
                &limit,
            ),
        ] {
            assert!(!other.body.is_empty());
            assert_ne!(other.body, first.body);
        }
        // The first body is still whole for whoever holds it.
        assert_eq!(first.body, again.body);
    }

    #[test]
    fn a_304_has_no_body() {
        use crate::reads::Source;
        let payload = Payload::from_json("{}".into(), None);
        let hit = served(&payload, Outcome::HitMemory, Source::Memory, 1);
        let unchanged = read(&get(Some(&payload.etag)), &hit, &[]);
        assert_eq!(unchanged.status, 304);
        assert!(unchanged.body.is_empty());
    }
}
