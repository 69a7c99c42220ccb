//! The worker's JSON parser (`json::parse`) against serde_json's: any bytes either parse to
//! the same value in both (`json::same_value`: floats within a relative 1e-15, where both
//! scale by more than one rounding) or are refused by both. Whatever parses is then written
//! back by the worker's writer (`json_writer`) byte for byte as serde_json writes it. Nothing
//! may panic.
#![no_main]

use call_dashboard_worker::json::{parse, same_value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ours = parse(data).ok();
    let theirs = serde_json::from_slice::<serde_json::Value>(data).ok();
    match (&ours, &theirs) {
        (Some(a), Some(b)) => {
            assert!(same_value(a, b), "{ours:?} against {theirs:?}");
            let written = serde_json::to_string(a).expect("a value serializes");
            assert_eq!(call_dashboard_worker::json_writer::to_string(a), written);
        }
        (None, None) => {}
        _ => panic!("ours {ours:?}, serde_json {theirs:?}"),
    }
});
