//! Dashboard reads through the app: auth, envelope, per-user isolation, parameters, CORS, routing.

use super::*;

#[test]
fn health_answers_without_auth_and_reveals_no_config() {
    let w = World::new();
    let res = w.send(get("/api/health", None));
    assert_eq!(res.status, 200);
    let b = body(&res);
    assert_eq!(b["ok"], true);
    assert_eq!(b["data"]["version"], VERSION);
    assert!(!String::from_utf8_lossy(&res.body).contains(SECRET));
}

#[test]
fn a_read_without_a_token_is_401_with_a_bearer_challenge() {
    let w = World::new();
    let res = w.send(get("/api/webhook-calls", None));
    assert_eq!(res.status, 401);
    assert!(res.header("www-authenticate").is_some());
    assert_eq!(body(&res)["error"]["code"], "unauthorized");
}

#[test]
fn an_expired_token_is_401() {
    let w = World::new();
    let t = token("ada");
    w.clock.advance(3_600_000);
    assert_eq!(w.send(get("/api/webhook-calls", Some(&t))).status, 401);
}

#[test]
fn the_list_is_the_callers_own_calls_in_the_envelope_with_cache_headers() {
    let w = World::new();
    let res = w.send(get("/api/webhook-calls?limit=2", Some(&token("ada"))));
    assert_eq!(res.status, 200);
    let b = body(&res);
    assert_eq!(b["success"], true);
    let ids: Vec<&str> = b["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, ["CAada0", "CAada1"]);
    assert_eq!(b["meta"]["count"], 2);
    assert_eq!(b["meta"]["limit"], 2);
    assert_eq!(b["meta"]["offset"], 0);
    assert!(b["meta"]["nextCursor"].is_string());
    assert_eq!(b["meta"]["source"], "d1");
    assert_eq!(b["meta"]["cacheHit"], false);
    assert_eq!(res.header("x-cache"), Some("MISS"));
    assert_eq!(res.header("cache-control"), Some("private, no-cache"));
    assert!(res.header("etag").is_some());
    let next = b["meta"]["nextCursor"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let res = w.send(get(
        &format!("/api/webhook-calls?limit=2&cursor={next}"),
        Some(&token("ada")),
    ));
    let b = body(&res);
    assert_eq!(b["data"][0]["id"], "CAada2");
    assert_eq!(b["meta"]["cursor"], next.as_str());
    assert_eq!(b["meta"]["nextCursor"], Value::Null);
}

#[test]
fn a_call_embeds_its_analysis_and_enrichment() {
    let w = World::new();
    let b = body(&w.send(get("/api/webhook-calls/CAada0", Some(&token("ada")))));
    assert_eq!(b["data"]["analysis"]["intent"], "billing");
    assert_eq!(b["data"]["enrichment"]["callerName"], "Ada L.");
    assert_eq!(b["data"]["recording"], Value::Null);
    assert_eq!(b["data"]["startedAt"], "2027-01-15T08:00:00Z");
}

#[test]
fn user_b_never_sees_user_a_calls_by_any_route() {
    let w = World::new();
    let bob = token("bob");
    for path in [
        "/api/webhook-calls/CAada0",
        "/api/webhook-calls/CAada0/enhanced",
        "/api/intent-analysis/CAada0",
    ] {
        let res = w.send(get(path, Some(&bob)));
        assert_eq!(res.status, 404, "{path}");
        assert_eq!(body(&res)["error"]["code"], "not_found");
    }
    let list = body(&w.send(get("/api/webhook-calls?limit=500", Some(&bob))));
    assert!(list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|c| c["id"].as_str().is_some_and(|id| id.starts_with("CAbob"))));
    let summary = body(&w.send(get("/api/intent-analysis", Some(&bob))));
    assert_eq!(summary["data"]["stats"]["totalCalls"], 2);
    assert_eq!(summary["data"]["calls"], json!([]));
}

#[test]
fn the_intent_summary_has_stats_over_all_calls() {
    let w = World::new();
    let b = body(&w.send(get("/api/intent-analysis?limit=1", Some(&token("ada")))));
    assert_eq!(b["data"]["stats"]["totalCalls"], 3);
    assert_eq!(b["data"]["stats"]["answeredCalls"], 3);
    assert_eq!(b["data"]["stats"]["avgConfidence"], 0.9);
    assert_eq!(
        b["data"]["stats"]["intentDistribution"],
        json!({"billing": 1})
    );
    assert_eq!(b["data"]["calls"][0]["id"], "CAada0");
    assert_eq!(b["meta"]["limit"], 1);
}

#[test]
fn a_matching_if_none_match_gets_304_without_a_body() {
    let w = World::new();
    let t = token("ada");
    let first = w.send(get("/api/webhook-calls", Some(&t)));
    let etag = first.header("etag").unwrap_or_default().to_owned();
    let mut again = get("/api/webhook-calls", Some(&t));
    again.headers.push(("if-none-match".into(), etag.clone()));
    let res = w.send(again);
    assert_eq!(res.status, 304);
    assert!(res.body.is_empty());
    assert_eq!(res.header("etag"), Some(etag.as_str()));
}

#[test]
fn bad_parameters_are_400_naming_the_field() {
    let w = World::new();
    let t = token("ada");
    for (q, field) in [
        ("limit=0", "limit"),
        ("offset=-3", "offset"),
        ("cursor=%%%", "cursor"),
    ] {
        let b = body(&w.send(get(&format!("/api/webhook-calls?{q}"), Some(&t))));
        assert_eq!(b["error"]["code"], "invalid_parameter", "{q}");
        assert!(
            b["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(field)),
            "{q}"
        );
    }
    let b = body(&w.send(get("/api/intent-analysis?limit=501", Some(&t))));
    assert_eq!(b["error"]["code"], "invalid_parameter");
}

#[test]
fn call_ids_with_separators_unicode_or_path_tricks_are_not_found() {
    let w = World::new();
    let t = token("ada");
    for id in ["..%2FCAada0", "CA%3Aada0", "%C3%A9", "CAada0%00", "%ZZ"] {
        let res = w.send(get(&format!("/api/webhook-calls/{id}"), Some(&t)));
        assert_eq!(res.status, 404, "{id}");
    }
}

#[test]
fn unknown_routes_are_404_and_wrong_methods_405_with_allow() {
    let w = World::new();
    assert_eq!(w.send(get("/nope", None)).status, 404);
    let mut post = get("/api/webhook-calls", Some(&token("ada")));
    post.method = Method::Post;
    let res = w.send(post);
    assert_eq!(res.status, 405);
    assert!(res.header("allow").is_some_and(|a| a.contains("GET")));
}

#[test]
fn every_route_answers_each_method_it_lacks_with_405_and_exactly_its_rows_allow() {
    let w = World::new();
    let methods = [
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Delete,
        Method::Other,
    ];
    for route in crate::http::routes::ROUTES {
        let path = route
            .path
            .replace("{callId}", "CAada0")
            .replace("{e164}", "+14155550100");
        for method in methods.into_iter().filter(|m| !route.allows(*m)) {
            let mut req = get(&path, Some(&token("ada")));
            req.method = method;
            let res = w.send(req);
            assert_eq!(res.status, 405, "{method:?} {}", route.path);
            assert_eq!(
                res.header("allow"),
                Some(route.allow),
                "{method:?} {}",
                route.path
            );
        }
    }
}

#[test]
fn an_allowed_origin_gets_cors_headers_and_a_preflight_204() {
    let w = World::new();
    let mut req = get("/api/webhook-calls", Some(&token("ada")));
    req.headers
        .push(("origin".into(), "https://dash.example".into()));
    let res = w.send(req.clone());
    assert_eq!(
        res.header("access-control-allow-origin"),
        Some("https://dash.example")
    );
    req.method = Method::Options;
    req.headers.push((
        "access-control-request-headers".into(),
        "authorization".into(),
    ));
    let pre = w.send(req);
    assert_eq!(pre.status, 204);
    assert!(pre
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("GET")));
    let mut evil = get("/api/webhook-calls", Some(&token("ada")));
    evil.headers
        .push(("origin".into(), "https://evil.example".into()));
    assert_eq!(w.send(evil).header("access-control-allow-origin"), None);
}

#[test]
fn without_a_jwt_secret_reads_are_503_not_configured() {
    let mut w = World::new();
    w.config.jwt_secret = None;
    let res = w.send(get("/api/webhook-calls", Some(&token("ada"))));
    assert_eq!(res.status, 503);
    assert_eq!(body(&res)["error"]["code"], "not_configured");
}

#[test]
fn head_requests_get_headers_without_a_body() {
    let w = World::new();
    let mut req = get("/api/webhook-calls", Some(&token("ada")));
    req.method = Method::Head;
    let res = w.send(req);
    assert_eq!(res.status, 200);
    assert!(res.body.is_empty());
    assert!(res.header("etag").is_some());
}
