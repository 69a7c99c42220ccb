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
