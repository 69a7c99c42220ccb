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

#[test]
fn the_live_feeds_rules_import_no_transport_store_cache_or_sender() {
    assert_no_imports("src/live", &["http", "store", "cache", "webhooks"]);
}

#[test]
fn token_rules_import_no_transport_store_cache_or_sender() {
    assert_no_imports("src/auth", &["http", "store", "cache", "webhooks", "live"]);
}

/// Every `.rs` file below `dir`, with its path.
fn all_sources(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).expect("the folder exists") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(all_sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = fs::read_to_string(&path).expect("readable");
            out.push((path.display().to_string(), text));
        }
    }
    out
}

#[test]
fn only_the_runtime_adapters_in_src_runtime_touch_the_runtime() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let runtime = src.join("runtime");
    let mut adapters = 0;
    for (file, text) in all_sources(&src) {
        let touches = ["worker::", "web_sys", "js_sys", "wasm_bindgen"]
            .iter()
            .any(|name| text.contains(name));
        if file.starts_with(&runtime.display().to_string()) {
            adapters += usize::from(touches);
        } else {
            assert!(
                !touches,
                "{file} touches the runtime; its adapter belongs in src/runtime/"
            );
        }
    }
    assert!(adapters > 0, "src/runtime/ holds the adapters");
}
