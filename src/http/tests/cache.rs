//! The cache through the app: hits, stats, purge, warming, keys, and refresh on write.

use super::*;

#[test]
fn the_second_read_is_a_memory_hit_with_the_same_etag() {
    let w = World::new();
    let t = token("ada");
    let first = w.send(get("/api/webhook-calls?limit=2", Some(&t)));
    let second = w.send(get("/api/webhook-calls?limit=2", Some(&t)));
    assert_eq!(first.header("x-cache"), Some("MISS"));
    assert_eq!(second.header("x-cache"), Some("HIT-MEMORY"));
    assert_eq!(body(&second)["meta"]["source"], "memory");
    assert_eq!(body(&second)["meta"]["cacheHit"], true);
    assert_eq!(first.header("etag"), second.header("etag"));
    assert_eq!(body(&first)["data"], body(&second)["data"]);
}

#[test]
fn a_webhook_makes_the_next_read_in_this_isolate_fresh() {
    let w = with_webhook_secrets(World::new());
    let t = token("ada");
    let before = body(&w.send(get("/api/intent-analysis", Some(&t))));
    assert_eq!(
        w.tier("/api/intent-analysis", &t).as_deref(),
        Some("HIT-MEMORY")
    );
    w.send(twilio_post(
        "/webhooks/twilio/voice-status",
        TWILIO_DONE,
        "twilio-token",
    ));
    let after = w.send(get("/api/intent-analysis", Some(&t)));
    // Read just before, so refreshed by the webhook's own batch: a hit, with the change.
    assert_eq!(after.header("x-cache"), Some("HIT-MEMORY"));
    assert_eq!(
        body(&after)["data"]["stats"]["totalCalls"].as_i64(),
        before["data"]["stats"]["totalCalls"]
            .as_i64()
            .map(|n| n + 1)
    );
}

#[test]
fn cache_stats_are_per_user_with_a_jwt_and_isolate_wide_with_the_admin_token() {
    let w = World::new();
    w.send(get("/api/webhook-calls", Some(&token("ada"))));
    w.send(get("/api/webhook-calls", Some(&token("bob"))));
    let mine = body(&w.send(get("/api/cache/stats", Some(&token("ada")))));
    assert_eq!(mine["meta"]["scope"], "user");
    assert_eq!(mine["data"]["counters"]["misses"], 1);
    let all = body(&w.send(get("/api/cache/stats", Some(ADMIN))));
    assert_eq!(all["meta"]["scope"], "isolate");
    assert_eq!(all["data"]["counters"]["misses"], 2);
    assert_eq!(w.send(get("/api/cache/stats", None)).status, 401);
}

#[test]
fn purge_retires_a_users_entries_and_needs_the_admin_token() {
    let w = World::new();
    let t = token("ada");
    w.send(get("/api/webhook-calls", Some(&t)));
    assert_eq!(
        w.send(post_json("/api/cache/purge", &t, r#"{"userId":"ada"}"#))
            .status,
        403
    );
    let res = w.send(post_json("/api/cache/purge", ADMIN, r#"{"userId":"ada"}"#));
    assert_eq!(
        (res.status, body(&res)["data"]["purged"].clone()),
        (200, json!("user"))
    );
    assert_eq!(w.tier("/api/webhook-calls", &t).as_deref(), Some("MISS"));
    assert_eq!(
        w.send(post_json("/api/cache/purge", ADMIN, r#"{"all":true}"#))
            .status,
        200
    );
    assert_eq!(
        w.send(post_json("/api/cache/purge", ADMIN, "{}")).status,
        400
    );
    assert_eq!(
        w.send(post_json("/api/cache/purge", ADMIN, r#"{"userId":"a:b"}"#))
            .status,
        400
    );
}

#[test]
fn warming_loads_the_landing_view_so_the_first_read_hits() {
    let w = World::new();
    let res = w.send(post_json(
        "/api/cache/warm",
        ADMIN,
        r#"{"userIds":["ada"]}"#,
    ));
    assert_eq!(body(&res)["data"]["warmed"], json!(["ada"]));
    let t = token("ada");
    assert_eq!(
        w.tier("/api/webhook-calls", &t).as_deref(),
        Some("HIT-MEMORY")
    );
    assert_eq!(
        w.tier("/api/intent-analysis", &t).as_deref(),
        Some("HIT-MEMORY")
    );
    let bad = w.send(post_json(
        "/api/cache/warm",
        ADMIN,
        r#"{"userIds":["a/b"]}"#,
    ));
    assert_eq!(bad.status, 400);
}

#[test]
fn large_pages_bypass_the_cache() {
    let w = World::new();
    let t = token("ada");
    for _ in 0..2 {
        let res = w.send(get("/api/webhook-calls?limit=101", Some(&t)));
        assert_eq!(res.header("x-cache"), Some("BYPASS"));
        assert_eq!(body(&res)["meta"]["source"], "d1");
    }
    w.rt.run_background();
}

#[test]
fn cache_keys_lists_a_users_memory_entries_with_age_ttl_and_kv_presence() {
    let w = World::new();
    let t = token("ada");
    w.send(get("/api/webhook-calls?limit=2", Some(&t)));
    w.send(get("/api/webhook-calls/CAada0", Some(&t)));
    w.send(get("/api/webhook-calls?limit=2", Some(&token("bob"))));
    w.rt.run_background(); // the KV writes
    w.clock.advance(10_000);
    let res = w.send(get("/api/cache/keys?userId=ada", Some(ADMIN)));
    assert_eq!(res.status, 200);
    let b = body(&res);
    let keys = b["data"]["keys"].as_array().cloned().unwrap_or_default();
    assert_eq!(keys.len(), 2, "only ada's: {keys:?}");
    for k in &keys {
        assert!(k["key"].as_str().is_some_and(|s| s.contains(":user:ada:")));
        assert_eq!(k["tier"], "memory");
        assert_eq!(k["state"], "fresh");
        assert_eq!(k["ageSeconds"], 10.0);
        assert_eq!(k["inKv"], true);
        assert!(k["ttlRemainingSeconds"]
            .as_f64()
            .is_some_and(|s| (250.0..=320.0).contains(&s)));
    }
    // After a write the entries are reported as retired.
    w.reads.invalidate(
        &UserId::parse("ada").expect("valid"),
        Some(crate::domain::Version::new(u64::from(u32::MAX))),
    );
    let b = body(&w.send(get("/api/cache/keys?userId=ada", Some(ADMIN))));
    let states: Vec<String> = b["data"]["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k["state"].as_str().map(str::to_owned))
        .collect();
    assert!(states.contains(&"retired".to_owned()), "{states:?}");
    assert_eq!(
        w.send(get("/api/cache/keys?userId=ada", Some(&t))).status,
        403
    );
    assert_eq!(w.send(get("/api/cache/keys", Some(ADMIN))).status, 400);
    assert_eq!(
        w.send(get("/api/cache/keys?userId=a:b", Some(ADMIN)))
            .status,
        400
    );
}

// ---- Refresh on write. ----

#[test]
fn after_a_webhook_the_landing_view_someone_is_looking_at_is_a_memory_hit_with_the_change() {
    let w = with_webhook_secrets(World::new());
    let t = token("ada");
    assert_eq!(w.tier("/api/webhook-calls", &t).as_deref(), Some("MISS"));
    w.send(get("/api/intent-analysis?limit=20", Some(&t)));
    w.send(twilio_post(
        "/webhooks/twilio/voice-status",
        TWILIO_DONE,
        "twilio-token",
    ));
    let queries = w.store.usage().queries;
    let page = w.send(get("/api/webhook-calls", Some(&t)));
    assert_eq!(page.header("x-cache"), Some("HIT-MEMORY"));
    assert_eq!(
        body(&page)["data"][0]["id"],
        "CAtw1",
        "with the webhook's call"
    );
    let summary = w.send(get("/api/intent-analysis?limit=20", Some(&t)));
    assert_eq!(summary.header("x-cache"), Some("HIT-MEMORY"));
    assert_eq!(body(&summary)["data"]["stats"]["totalCalls"], 4);
    assert_eq!(
        w.store.usage().queries,
        queries,
        "no D1 round trip for either"
    );
    let stats = body(&w.send(get("/api/cache/stats", Some(ADMIN))));
    assert_eq!(stats["data"]["counters"]["refreshedOnWrite"], 2);
}

#[test]
fn a_webhook_for_a_user_nobody_is_looking_at_refreshes_nothing() {
    let w = with_webhook_secrets(World::new());
    w.send(get("/api/webhook-calls", Some(&token("bob"))));
    w.send(twilio_post(
        "/webhooks/twilio/voice-status",
        TWILIO_DONE,
        "twilio-token",
    ));
    let stats = body(&w.send(get("/api/cache/stats", Some(ADMIN))));
    assert_eq!(stats["data"]["counters"]["refreshedOnWrite"], 0);
    let page = w.send(get("/api/webhook-calls", Some(&token("ada"))));
    assert_eq!(page.header("x-cache"), Some("MISS"));
}

#[test]
fn with_refresh_on_write_off_a_webhook_only_retires() {
    let mut w = with_webhook_secrets(World::new());
    w.config.cache.refresh_on_write = false;
    let policy = Rc::new(w.config.cache.clone());
    w.reads = TieredReads::new(
        w.store.clone(),
        Rc::new(FakeKv::default()),
        w.clock.clone(),
        w.rt.clone(),
        Rc::new(CacheState::new(&policy)),
        policy,
    );
    let t = token("ada");
    w.send(get("/api/webhook-calls", Some(&t)));
    w.send(twilio_post(
        "/webhooks/twilio/voice-status",
        TWILIO_DONE,
        "twilio-token",
    ));
    assert_eq!(w.tier("/api/webhook-calls", &t).as_deref(), Some("MISS"));
}

#[test]
fn after_a_webhook_about_one_call_the_details_of_the_users_other_calls_are_still_hits() {
    let w = with_webhook_secrets(World::new());
    let t = token("ada");
    assert_eq!(
        w.tier("/api/webhook-calls/CAada0", &t).as_deref(),
        Some("MISS")
    );
    w.send(twilio_post(
        "/webhooks/twilio/voice-status",
        TWILIO_DONE,
        "twilio-token",
    ));
    let again = w.send(get("/api/webhook-calls/CAada0", Some(&t)));
    assert_eq!(
        again.header("x-cache"),
        Some("HIT-MEMORY"),
        "CAtw1's webhook did not touch it"
    );
    let page = body(&w.send(get("/api/webhook-calls", Some(&t))));
    assert_eq!(
        body(&again)["meta"]["version"],
        page["meta"]["version"],
        "at the new version"
    );
}
