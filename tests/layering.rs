//! The layering the README describes, held by a test: the domain knows no transport, store or
//! cache; the store knows no sender; the cache knows no transport. Test-only files may reach
//! across (they build inputs with the real parsers).

use std::fs;
use std::path::Path;

fn sources(dir: &str) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut out = Vec::new();
    for entry in fs::read_dir(&root).expect("the folder exists") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let is_test_file =
            name == "tests.rs" || name.ends_with("_tests.rs") || name == "testing.rs";
        if path.extension().is_some_and(|e| e == "rs") && !is_test_file {
            out.push((name, fs::read_to_string(&path).expect("readable")));
        }
    }
    out
}

fn assert_no_imports(dir: &str, forbidden: &[&str]) {
    for (file, text) in sources(dir) {
        // Only code before the file's own test module counts.
        let code = text
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap_or_default();
        for module in forbidden {
            assert!(
                !code.contains(&format!("crate::{module}")),
                "{dir}/{file} imports crate::{module}"
            );
        }
    }
}

#[test]
fn the_domain_imports_no_transport_store_cache_or_sender() {
    assert_no_imports("src/domain", &["http", "store", "cache", "webhooks"]);
}

#[test]
fn the_store_imports_no_sender_transport_or_cache() {
    assert_no_imports("src/store", &["webhooks", "http", "cache"]);
}

#[test]
fn the_cache_imports_no_transport_or_sender() {
    assert_no_imports("src/cache", &["http", "webhooks"]);
}

/// `dir`'s files other than `adapter` (its runtime adapter, which may use everything) import
/// none of `forbidden`, and do not touch the runtime (`worker::`).
fn assert_rules_stand_alone(dir: &str, adapter: &str, forbidden: &[&str]) {
    for (file, text) in sources(dir).into_iter().filter(|(f, _)| f != adapter) {
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for module in forbidden {
            assert!(
                !code.contains(&format!("crate::{module}")),
                "{dir}/{file} imports crate::{module}"
            );
        }
        assert!(!code.contains("worker::"), "{dir}/{file} uses the runtime");
    }
}

#[test]
fn the_live_feeds_rules_import_no_transport_store_cache_or_sender() {
    // `src/live/workers.rs` is the runtime adapter (the Durable Object).
    assert_rules_stand_alone(
        "src/live",
        "workers.rs",
        &["http", "store", "cache", "webhooks"],
    );
}

#[test]
fn token_rules_import_no_transport_store_cache_or_sender() {
    // `src/auth/workers.rs` is the runtime adapter (fetch, KV, WebCrypto).
    assert_rules_stand_alone(
        "src/auth",
        "workers.rs",
        &["http", "store", "cache", "webhooks", "live"],
    );
}
