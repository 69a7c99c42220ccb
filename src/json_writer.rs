//! Writing JSON: the one writer behind every JSON text the worker makes (responses, KV and D1
//! values, messages to the live feed), byte for byte what serde_json writes for the same
//! value: strings escaped as it escapes them (`"`, `\`, and control characters, `\n`-style
//! where JSON has a short form, else `\u00xx`), integers in full, finite floats in the shortest
//! form that reads back the same (serde_json's own `zmij`), non-finite ones as `null`, objects'
//! members in the order given. The tests hold it to serde_json on generated values.
//!
//! Types say how they are written with [`ToJson`]; a struct lists its members with
//! [`json_object!`](crate::json_object). Hand-written instead of serde's derived serializers,
//! which weighed on the module more than all of this.

use serde_json::{Map, Number, Value};
use std::collections::BTreeMap;
use std::rc::Rc;

/// A value with a JSON form.
pub trait ToJson {
    fn write_json(&self, out: &mut String);
}

/// `value` as JSON text.
pub fn to_string<T: ToJson + ?Sized>(value: &T) -> String {
    let mut out = String::new();
    value.write_json(&mut out);
    out
}

/// `value` as JSON text, as bytes.
pub fn to_vec<T: ToJson + ?Sized>(value: &T) -> Vec<u8> {
    to_string(value).into_bytes()
}

/// `text` as a JSON string, quotes included.
pub fn write_str(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let bytes = text.as_bytes();
    let mut run_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        // Only ASCII bytes end a run, so each run is whole UTF-8.
        out.push_str(&text[run_start..i]);
        run_start = i + 1;
        if short.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(short);
        }
    }
    out.push_str(&text[run_start..]);
    out.push('"');
}

/// Opens an object's member: a comma unless it is the first, the key, the colon.
pub fn write_key(out: &mut String, first: bool, key: &str) {
    if !first {
        out.push(',');
    }
    write_str(out, key);
    out.push(':');
}

impl ToJson for str {
    fn write_json(&self, out: &mut String) {
        write_str(out, self);
    }
}

impl ToJson for String {
    fn write_json(&self, out: &mut String) {
        write_str(out, self);
    }
}

impl ToJson for Rc<str> {
    fn write_json(&self, out: &mut String) {
        write_str(out, self);
    }
}

impl ToJson for bool {
    fn write_json(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }
}

macro_rules! integers {
    ($($t:ty),*) => {$(
        impl ToJson for $t {
            fn write_json(&self, out: &mut String) {
                out.push_str(itoa::Buffer::new().format(*self));
            }
        }
    )*};
}
integers!(u8, u16, u32, u64, usize, i32, i64);

impl ToJson for f64 {
    fn write_json(&self, out: &mut String) {
        if self.is_finite() {
            out.push_str(zmij::Buffer::new().format_finite(*self));
        } else {
            out.push_str("null");
        }
    }
}

impl<T: ToJson + ?Sized> ToJson for &T {
    fn write_json(&self, out: &mut String) {
        (**self).write_json(out);
    }
}

impl<T: ToJson + ?Sized> ToJson for Box<T> {
    fn write_json(&self, out: &mut String) {
        (**self).write_json(out);
    }
}

impl<T: ToJson> ToJson for Option<T> {
    fn write_json(&self, out: &mut String) {
        match self {
            Some(v) => v.write_json(out),
            None => out.push_str("null"),
        }
    }
}

impl<T: ToJson> ToJson for [T] {
    fn write_json(&self, out: &mut String) {
        out.push('[');
        for (i, v) in self.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            v.write_json(out);
        }
        out.push(']');
    }
}

impl<T: ToJson, const N: usize> ToJson for [T; N] {
    fn write_json(&self, out: &mut String) {
        self.as_slice().write_json(out);
    }
}

impl<T: ToJson> ToJson for Vec<T> {
    fn write_json(&self, out: &mut String) {
        self.as_slice().write_json(out);
    }
}

impl<K: AsRef<str>, V: ToJson> ToJson for BTreeMap<K, V> {
    fn write_json(&self, out: &mut String) {
        out.push('{');
        for (i, (k, v)) in self.iter().enumerate() {
            write_key(out, i == 0, k.as_ref());
            v.write_json(out);
        }
        out.push('}');
    }
}

impl ToJson for Number {
    fn write_json(&self, out: &mut String) {
        if let Some(u) = self.as_u64() {
            u.write_json(out);
        } else if let Some(i) = self.as_i64() {
            i.write_json(out);
        } else {
            self.as_f64().unwrap_or(f64::NAN).write_json(out);
        }
    }
}

impl ToJson for Map<String, Value> {
    fn write_json(&self, out: &mut String) {
        out.push('{');
        for (i, (k, v)) in self.iter().enumerate() {
            write_key(out, i == 0, k);
            v.write_json(out);
        }
        out.push('}');
    }
}

impl ToJson for Value {
    fn write_json(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => b.write_json(out),
            Value::Number(n) => n.write_json(out),
            Value::String(s) => write_str(out, s),
            Value::Array(items) => items.write_json(out),
            Value::Object(members) => members.write_json(out),
        }
    }
}

/// Implements [`ToJson`] for a struct as an object of the members listed, in that order:
/// `"key": field`, or `"key"?: field` for an `Option` left out when it is `None`.
#[macro_export]
macro_rules! json_object {
    ($ty:ty { $($members:tt)* }) => {
        impl $crate::json_writer::ToJson for $ty {
            fn write_json(&self, out: &mut String) {
                out.push('{');
                let mut first = true;
                $crate::json_object!(@members self out first; $($members)*);
                let _ = first;
                out.push('}');
            }
        }
    };
    (@members $s:ident $o:ident $f:ident; ) => {};
    (@members $s:ident $o:ident $f:ident; $key:literal ?: $field:ident $(, $($rest:tt)*)?) => {
        if let Some(value) = &$s.$field {
            $crate::json_writer::write_key($o, $f, $key);
            $crate::json_writer::ToJson::write_json(value, $o);
            $f = false;
        }
        $crate::json_object!(@members $s $o $f; $($($rest)*)?);
    };
    (@members $s:ident $o:ident $f:ident; $key:literal : $field:ident $(, $($rest:tt)*)?) => {
        $crate::json_writer::write_key($o, $f, $key);
        $crate::json_writer::ToJson::write_json(&$s.$field, $o);
        $f = false;
        $crate::json_object!(@members $s $o $f; $($($rest)*)?);
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::Xorshift as Rng;

    fn random_text(rng: &mut Rng) -> String {
        const PIECES: &[&str] = &[
            "a", "Z", " ", "\"", "\\", "/", "\n", "\r", "\t", "\u{8}", "\u{c}", "\u{0}", "\u{1f}",
            "\u{7f}", "é", "€", "😀", "\u{2028}", "\u{fffd}", "<", "'",
        ];
        (0..rng.next() % 12)
            .map(|_| PIECES[(rng.next() % PIECES.len() as u64) as usize])
            .collect()
    }

    fn random_value(rng: &mut Rng, depth: u32) -> Value {
        match rng.next() % if depth > 3 { 6 } else { 8 } {
            0 => Value::Null,
            1 => Value::Bool(rng.next().is_multiple_of(2)),
            2 => Value::from(rng.next()),
            3 => Value::from(-((rng.next() >> 2) as i64)),
            4 => Value::from(f64::from_bits(rng.next())),
            5 => Value::String(random_text(rng)),
            6 => Value::Array(
                (0..rng.next() % 4)
                    .map(|_| random_value(rng, depth + 1))
                    .collect(),
            ),
            _ => Value::Object(
                (0..rng.next() % 4)
                    .map(|_| (random_text(rng), random_value(rng, depth + 1)))
                    .collect(),
            ),
        }
    }

    #[test]
    fn values_are_written_byte_for_byte_as_serde_json_writes_them() {
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        for _ in 0..20_000 {
            let v = random_value(&mut rng, 0);
            assert_eq!(
                to_string(&v),
                serde_json::to_string(&v).expect("serializable")
            );
        }
    }

    #[test]
    fn floats_are_written_as_serde_json_writes_them() {
        let mut rng = Rng(0xfeed_face_cafe_beef);
        let specials = [
            0.0,
            -0.0,
            1.0,
            0.1,
            1e21,
            1e-7,
            123456789.125,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
        ];
        for f in specials
            .into_iter()
            .chain((0..20_000).map(|_| f64::from_bits(rng.next())))
        {
            let ours = to_string(&f);
            let theirs = serde_json::to_string(&f).expect("serializable");
            assert_eq!(ours, theirs, "{f:e}");
        }
        assert_eq!(to_string(&f64::NAN), "null");
        assert_eq!(to_string(&f64::INFINITY), "null");
    }

    #[test]
    fn integers_strings_and_options_are_written_as_serde_json_writes_them() {
        for n in [0i64, 1, -1, i64::MIN, i64::MAX] {
            assert_eq!(to_string(&n), n.to_string());
        }
        assert_eq!(to_string(&u64::MAX), u64::MAX.to_string());
        let mut rng = Rng(42);
        for _ in 0..5_000 {
            let s = random_text(&mut rng);
            assert_eq!(
                to_string(&s),
                serde_json::to_string(&s).expect("serializable")
            );
        }
        assert_eq!(to_string(&None::<String>), "null");
        assert_eq!(to_string(&Some(3u32)), "3");
        assert_eq!(to_string(&vec![1u8, 2]), "[1,2]");
    }

    struct Sample {
        id: String,
        count: u32,
        note: Option<String>,
        extra: Option<i64>,
    }
    crate::json_object!(Sample { "id": id, "count": count, "note": note, "extra"?: extra });

    #[test]
    fn an_object_lists_its_members_in_order_and_leaves_out_the_optional_none() {
        let s = Sample {
            id: "x".into(),
            count: 2,
            note: None,
            extra: None,
        };
        assert_eq!(to_string(&s), r#"{"id":"x","count":2,"note":null}"#);
        let s = Sample {
            extra: Some(-4),
            ..s
        };
        assert_eq!(
            to_string(&s),
            r#"{"id":"x","count":2,"note":null,"extra":-4}"#
        );
    }
}
