//! Reading the members of a JSON object parsed as `serde_json::Value`: one reader for every
//! JSON text the worker reads (webhook bodies, tokens, key sets, operator bodies, what it
//! parked or shelved itself), where a derived decoder per shape cost the module one each.
//! Each caller turns a refused member into its own error.

use serde_json::{Map, Value};

/// The member `name` of `object` as `read` reads it: `Some(None)` when absent or `null` (senders
/// use either), `None` when `read` refuses what it holds.
pub fn optional<'a, T>(
    object: &'a Map<String, Value>,
    name: &str,
    read: impl FnOnce(&'a Value) -> Option<T>,
) -> Option<Option<T>> {
    match object.get(name) {
        None | Some(Value::Null) => Some(None),
        Some(v) => read(v).map(Some),
    }
}

/// A string, owned.
pub fn string(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

/// An array of strings, owned; `None` when any item is not a string.
pub fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array()?.iter().map(string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn absent_and_null_are_none_and_a_refused_member_is_nothing() {
        let v = json!({"a": null, "n": 1.5, "s": "x", "l": ["x", "y"], "m": ["x", 1]});
        let o = v.as_object().expect("an object");
        assert_eq!(optional(o, "a", string), Some(None));
        assert_eq!(optional(o, "missing", string), Some(None));
        assert_eq!(optional(o, "s", string), Some(Some("x".to_owned())));
        assert_eq!(optional(o, "n", string), None);
        assert_eq!(optional(o, "n", Value::as_f64), Some(Some(1.5)));
        assert_eq!(
            optional(o, "l", strings),
            Some(Some(vec!["x".to_owned(), "y".to_owned()]))
        );
        assert_eq!(optional(o, "m", strings), None);
        assert_eq!(optional(o, "s", strings), None);
    }
}
