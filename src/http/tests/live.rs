//! The live feed through the app: notifications on writes, tickets and the WebSocket upgrade.

use super::*;

fn listening(w: &World, user: &str) -> crate::store::Listening {
    let user = crate::domain::UserId::parse(user).expect("a user id");
    crate::testing::block_on(w.store.listen(&user)).expect("marked as listening")
}

#[test]
fn a_committed_webhook_tells_the_owners_feed_once_with_the_call_and_its_new_version() {
    let w = with_webhook_secrets(World::new());
    listening(&w, "ada");
    let req = twilio_post("/webhooks/twilio/voice-status", TWILIO_DONE, "twilio-token");
    assert_eq!(w.send(req.clone()).status, 200);
    assert_eq!(w.send(req).status, 200, "a retry");
    let sent = w.live.sent.borrow();
    assert_eq!(
        sent.len(),
        1,
        "a retry changes nothing, so tells nothing: {sent:?}"
    );
    let (user, n) = &sent[0];
    assert_eq!(user.as_str(), "ada");
    assert_eq!(n.kind, crate::live::ChangeKind::Changed);
    assert_eq!(n.call_ids, vec!["CAtw1".to_owned()]);
    let page = body(&w.send(get("/api/webhook-calls", Some(&token("ada")))));
    assert_eq!(page["meta"]["version"], json!(n.version));
}

#[test]
fn a_webhook_for_a_user_nobody_listens_to_tells_no_feed_and_one_cleared_listener_is_not_told() {
    let w = with_webhook_secrets(World::new());
    let req = twilio_post("/webhooks/twilio/voice-status", TWILIO_DONE, "twilio-token");
    assert_eq!(w.send(req).status, 200);
    assert!(
        w.live.sent.borrow().is_empty(),
        "ada never opened the feed: no request to her object"
    );
    // Ada's object opened a socket, then found none and cleared the mark at its generation.
    let ada = crate::domain::UserId::parse("ada").expect("a user id");
    let mark = listening(&w, "ada");
    assert!(crate::testing::block_on(w.store.stop_listening(&ada, mark.generation)).expect("D1"));
    let another_call = TWILIO_DONE.replace("CAtw1", "CAtw2");
    let req = twilio_post(
        "/webhooks/twilio/voice-status",
        &another_call,
        "twilio-token",
    );
    assert_eq!(w.send(req).status, 200);
    assert!(w.live.sent.borrow().is_empty(), "the mark was cleared");
    // A socket opened again: the next change is told.
    listening(&w, "ada");
    let third_call = TWILIO_DONE.replace("CAtw1", "CAtw3");
    let req = twilio_post("/webhooks/twilio/voice-status", &third_call, "twilio-token");
    assert_eq!(w.send(req).status, 200);
    assert_eq!(w.live.sent.borrow().len(), 1, "marked again");
}

#[test]
fn a_deletion_tells_the_owners_feed_and_a_refused_one_tells_nobody() {
    let w = World::new();
    let mut del = get("/api/webhook-calls/CAada1", Some(&token("bob")));
    del.method = Method::Delete;
    assert_eq!(w.send(del.clone()).status, 404);
    assert!(w.live.sent.borrow().is_empty());
    del.headers = vec![("authorization".into(), format!("Bearer {}", token("ada")))];
    assert_eq!(w.send(del).status, 204);
    let sent = w.live.sent.borrow();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (
            sent[0].0.as_str(),
            sent[0].1.kind,
            sent[0].1.call_ids.clone()
        ),
        (
            "ada",
            crate::live::ChangeKind::Deleted,
            vec!["CAada1".to_owned()]
        )
    );
}

#[test]
fn a_live_ticket_needs_a_dashboard_token_and_the_upgrade_needs_a_well_formed_ticket() {
    let w = World::new();
    let issued = w.send(post_json("/api/live/tickets", &token("ada"), ""));
    assert_eq!(issued.status, 201);
    let t = body(&issued)["data"]["ticket"]
        .as_str()
        .expect("a ticket")
        .to_owned();
    assert_eq!(
        w.send(post_json("/api/live/tickets", ADMIN, "")).status,
        401
    );
    let upgrade = |query: &str, websocket: bool| {
        let mut r = get(&format!("/api/live{query}"), None);
        if websocket {
            r.headers.push(("upgrade".into(), "websocket".into()));
        }
        w.handle(r)
    };
    let plain = upgrade(&format!("?ticket={t}"), false);
    assert_eq!(
        (plain.response.status, plain.upgrade.is_none()),
        (426, true)
    );
    assert_eq!(body(&plain.response)["error"]["code"], "upgrade_required");
    for bad in ["", "?ticket=", "?ticket=ada", "?ticket=00.11"] {
        assert_eq!(upgrade(bad, true).response.status, 401, "{bad}");
    }
    let admitted = upgrade(&format!("?ticket={t}"), true);
    assert_eq!(
        admitted.upgrade.map(|t| t.encode()),
        Some(t),
        "handed to the entry"
    );
}

#[test]
fn without_a_live_feed_the_live_routes_are_503_not_configured() {
    let w = World::new();
    let app: App<'_, TestServices<crate::live::NoLiveFeed>> = App {
        config: &w.config,
        reads: &w.reads,
        writes: &w.store,
        parking: &w.parking,
        clock: &w.clock,
        live: &crate::live::NoLiveFeed,
        keys: &crate::auth::NoPublicKeys,
    };
    let ticket = block_on(app.handle(&post_json("/api/live/tickets", &token("ada"), "")));
    let mut up = get("/api/live?ticket=ab.0123456789abcdef0123456789abcdef", None);
    up.headers.push(("upgrade".into(), "websocket".into()));
    let upgrade = block_on(app.handle(&up));
    for res in [ticket.response, upgrade.response] {
        assert_eq!(
            (res.status, body(&res)["error"]["code"].clone()),
            (503, json!("not_configured"))
        );
    }
}
