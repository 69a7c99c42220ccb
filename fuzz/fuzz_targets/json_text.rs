//! The worker's JSON parser (`json::parse`) against serde_json's: any bytes either parse to
//! the same value in both (floats within a relative 1e-15, where both scale by more than one
//! rounding) or are refused by both. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() && y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x == y || ((x - y) / x.abs().max(y.abs())).abs() <= 1e-15
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((ka, a), (kb, b))| ka == kb && same(a, b))
        }
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    let ours = call_dashboard_worker::json::parse(data).ok();
    let theirs = serde_json::from_slice::<Value>(data).ok();
    match (&ours, &theirs) {
        (Some(a), Some(b)) => assert!(same(a, b), "{ours:?} against {theirs:?}"),
        (None, None) => {}
        _ => panic!("ours {ours:?}, serde_json {theirs:?}"),
    }
});
