//! The admin phone-number routes through the app.

use super::*;

fn put_number(number: &str, bearer: &str, json_body: &str) -> Request {
    let mut r = get(&format!("/api/admin/phone-numbers/{number}"), Some(bearer));
    r.method = Method::Put;
    r.headers
        .push(("content-type".into(), "application/json".into()));
    r.body = json_body.as_bytes().to_vec();
    r
}

#[test]
fn the_admin_routes_a_number_then_reroutes_then_deletes_it() {
    let w = World::new();
    let res = w.send(put_number("%2B14155550199", ADMIN, r#"{"userId":"ada"}"#));
    assert_eq!(res.status, 201);
    assert_eq!(body(&res)["data"]["phoneNumber"], "+14155550199");
    assert_eq!(
        w.send(put_number("+14155550199", ADMIN, r#"{"userId":"bob"}"#))
            .status,
        200
    );
    let mut del = get("/api/admin/phone-numbers/+14155550199", Some(ADMIN));
    del.method = Method::Delete;
    assert_eq!(w.send(del.clone()).status, 204);
    assert_eq!(w.send(del).status, 404);
}

#[test]
fn admin_routes_refuse_user_tokens_bad_numbers_and_bad_bodies() {
    let w = World::new();
    assert_eq!(
        w.send(put_number(
            "+14155550199",
            &token("ada"),
            r#"{"userId":"ada"}"#
        ))
        .status,
        403
    );
    assert_eq!(
        w.send(put_number("+14155550199", "wrong", r#"{"userId":"ada"}"#))
            .status,
        401
    );
    let bad_number = body(&w.send(put_number("4155550199", ADMIN, r#"{"userId":"ada"}"#)));
    assert_eq!(bad_number["error"]["code"], "invalid_parameter");
    assert_eq!(
        w.send(put_number("+14155550199", ADMIN, "{not json"))
            .status,
        400
    );
    let bad_user = body(&w.send(put_number("+14155550199", ADMIN, r#"{"userId":"a:b"}"#)));
    assert!(bad_user["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("userId")));
    let mut wrong_type = put_number("+14155550199", ADMIN, r#"{"userId":"ada"}"#);
    wrong_type.headers.retain(|(k, _)| k != "content-type");
    wrong_type
        .headers
        .push(("content-type".into(), "text/plain".into()));
    assert_eq!(w.send(wrong_type).status, 415);
}

#[test]
fn operator_bodies_refuse_wrong_types_and_unknown_members_where_they_always_did() {
    let w = World::new();
    let code = |res: &Response| (res.status, body(res)["error"]["code"].clone());
    // The number route takes `userId` and ignores anything else, as it always has.
    let extra = w.send(put_number(
        "+14155550199",
        ADMIN,
        r#"{"userId":"ada","note":"x"}"#,
    ));
    assert_eq!(extra.status, 201, "{:?}", body(&extra));
    let missing = w.send(put_number("+14155550199", ADMIN, r#"{"user":"ada"}"#));
    assert_eq!(code(&missing), (400, json!("invalid_json")));
    assert!(body(&missing)["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("userId")));
    assert_eq!(
        code(&w.send(put_number("+14155550199", ADMIN, "[]"))),
        (400, json!("invalid_json"))
    );
    // Warming and purging name their members exactly.
    for (path, bad) in [
        ("/api/cache/warm", r#"{"userIds":"ada"}"#),
        ("/api/cache/warm", r#"{"userIds":["ada",1]}"#),
        ("/api/cache/warm", r#"{"users":["ada"]}"#),
        ("/api/cache/purge", r#"{"all":"yes"}"#),
        ("/api/cache/purge", r#"{"userId":7}"#),
        ("/api/cache/purge", r#"{"userId":"ada","why":"x"}"#),
    ] {
        let res = w.send(post_json(path, ADMIN, bad));
        assert_eq!(code(&res), (400, json!("invalid_json")), "{path} {bad}");
    }
    let purged = w.send(post_json(
        "/api/cache/purge",
        ADMIN,
        r#"{"userId":"ada","all":null}"#,
    ));
    assert_eq!(purged.status, 200, "null is absent: {:?}", body(&purged));
}
