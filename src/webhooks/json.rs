//! Reading fields out of a JSON webhook body (Standard Webhooks, Retell), each failure a
//! [`ParseError`] naming the field. Absent and `null` mean the same: senders use either.

use super::ParseError;
use serde_json::{Map, Value};

/// A JSON object's fields.
pub type Fields = Map<String, Value>;

/// The body as a JSON object.
pub fn object(body: &[u8]) -> Result<Map<String, Value>, ParseError> {
    match crate::json::parse(body) {
        Ok(Value::Object(root)) => Ok(root),
        Ok(_) => Err(ParseError::Malformed(
            "the body must be a JSON object".into(),
        )),
        Err(e) => Err(ParseError::Malformed(format!("the body is not JSON: {e}"))),
    }
}

/// `name` as `read` turns it; absent, or a value `read` refuses, is an error giving `reason`.
fn required<'a, T>(
    map: &'a Fields,
    name: &'static str,
    read: impl FnOnce(&'a Value) -> Option<T>,
    reason: &'static str,
) -> Result<T, ParseError> {
    map.get(name)
        .and_then(read)
        .ok_or_else(|| ParseError::field(name, reason))
}

/// `name`, which must be an object.
pub fn required_object<'a>(map: &'a Fields, name: &'static str) -> Result<&'a Fields, ParseError> {
    required(
        map,
        name,
        Value::as_object,
        "is required and must be an object",
    )
}

/// `name`, which must be a string (the empty string included).
pub fn required_str<'a>(map: &'a Fields, name: &'static str) -> Result<&'a str, ParseError> {
    required(map, name, Value::as_str, "is required and must be a string")
}

/// `name`, which must be a string that is not empty (the same error as when it is absent).
pub fn non_empty_str<'a>(map: &'a Fields, name: &'static str) -> Result<&'a str, ParseError> {
    let read = |v: &'a Value| v.as_str().filter(|s| !s.is_empty());
    required(map, name, read, "is required and must be a string")
}

/// `name` as `read` turns it, `None` when absent or null; a value `read` refuses is an error
/// giving `reason`.
pub fn optional<'a, T>(
    map: &'a Fields,
    name: &'static str,
    read: impl FnOnce(&'a Value) -> Option<T>,
    reason: &'static str,
) -> Result<Option<T>, ParseError> {
    crate::json::optional(map, name, read).ok_or_else(|| ParseError::field(name, reason))
}

/// `name` as an owned string, `None` when absent or null; any other value is an error giving
/// `reason`.
pub fn opt_string(
    map: &Fields,
    name: &'static str,
    reason: &'static str,
) -> Result<Option<String>, ParseError> {
    optional(map, name, crate::json::string, reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Fields {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn absent_and_null_are_both_none_and_other_shapes_name_the_field() {
        let m = map(json!({"a": null, "n": 1.5, "s": "x"}));
        assert_eq!(opt_string(&m, "a", "r"), Ok(None));
        assert_eq!(opt_string(&m, "missing", "r"), Ok(None));
        assert_eq!(opt_string(&m, "s", "r"), Ok(Some("x".to_owned())));
        assert_eq!(opt_string(&m, "n", "r"), Err(ParseError::field("n", "r")));
        assert_eq!(optional(&m, "n", Value::as_f64, "r"), Ok(Some(1.5)));
    }

    #[test]
    fn a_required_string_may_be_empty_unless_it_must_not_be() {
        let m = map(json!({"e": "", "s": "x", "o": {}}));
        assert_eq!(required_str(&m, "e"), Ok(""));
        assert!(non_empty_str(&m, "e").is_err());
        assert_eq!(non_empty_str(&m, "s"), Ok("x"));
        assert!(required_object(&m, "o").is_ok());
        assert!(required_object(&m, "s").is_err());
    }

    #[test]
    fn a_body_that_is_not_a_json_object_is_malformed() {
        for bad in [&b"{not json"[..], b"[1]", b"\"s\""] {
            assert!(
                matches!(object(bad), Err(ParseError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert!(object(br#"{"a":1}"#).is_ok());
    }
}
