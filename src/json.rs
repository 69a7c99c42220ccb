//! Every JSON text the worker reads (webhook bodies, tokens, key sets, operator bodies, what it
//! parked or shelved itself) is parsed here into a `serde_json::Value` ([`parse`]), and its
//! members are read by hand ([`optional`] and the readers after it): where a derived decoder
//! per shape cost the module one each, and serde_json's own deserializer (generic over its
//! readers and visitors, with its error positions and float tables) cost it 22 KB. Each
//! caller turns a refused member into its own error.

use serde_json::{Map, Number, Value};
use std::fmt;

/// Nesting deeper than this is refused, where serde_json refuses it: the parser recurses once
/// per level, and no text the worker reads nests more than a few levels.
pub const MAX_DEPTH: usize = 127;

/// Why a text is not JSON, and where: the line and column (in characters from 1) of the byte
/// the parser stopped at, as serde_json words its own errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    reason: &'static str,
    line: usize,
    column: usize,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {} column {}",
            self.reason, self.line, self.column
        )
    }
}

/// Parses one JSON text (RFC 8259): one value, whitespace around it, nothing else.
///
/// What it gives is what `serde_json::from_slice::<Value>` gives (a differential test holds
/// the two together): objects keep the last of duplicate members; a whole number is an
/// unsigned or a signed integer when it fits (`-0` is the float `-0.0`), else a float; a lone
/// surrogate escape, a control character in a string, a leading zero, invalid UTF-8 and a
/// number beyond `f64` are refused. Floats are exact for up to 15 significant digits with an
/// exponent within ±22 (every number a provider sends), and otherwise within a few units in
/// the last place, as serde_json's default is.
pub fn parse(text: &[u8]) -> Result<Value, ParseError> {
    // No pass over the whole text for UTF-8: outside strings the grammar admits ASCII only,
    // and each string is checked as it is made.
    let mut p = Parser { text, at: 0 };
    p.skip_whitespace();
    let value = p.value(0)?;
    p.skip_whitespace();
    if p.at < text.len() {
        return Err(p.error("trailing characters"));
    }
    Ok(value)
}

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
}

/// 10^0 to 10^22: each exactly an `f64`, so a product or quotient with one is rounded once.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

impl Parser<'_> {
    fn error(&self, reason: &'static str) -> ParseError {
        let before = &self.text[..self.at.min(self.text.len())];
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        // Characters, not bytes: count the bytes that start one.
        let column = 1 + before[line_start..]
            .iter()
            .filter(|&&b| b & 0xC0 != 0x80)
            .count();
        ParseError {
            reason,
            line,
            column,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn literal(&mut self, word: &'static [u8], value: Value) -> Result<Value, ParseError> {
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.error("expected value"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        match self.peek() {
            None => Err(self.error("EOF while parsing a value")),
            Some(b'n') => self.literal(b"null", Value::Null),
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number().map(Value::Number),
            Some(b'[') => self.array(depth + 1),
            Some(b'{') => self.object(depth + 1),
            Some(_) => Err(self.error("expected value")),
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error("recursion limit exceeded"));
        }
        self.at += 1; // [
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_whitespace();
            items.push(self.value(depth)?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(Value::Array(items));
                }
                None => return Err(self.error("EOF while parsing a list")),
                Some(_) => return Err(self.error("expected `,` or `]`")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error("recursion limit exceeded"));
        }
        self.at += 1; // {
        let mut members = Map::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_whitespace();
            match self.peek() {
                Some(b'"') => {}
                None => return Err(self.error("EOF while parsing an object")),
                Some(_) => return Err(self.error("key must be a string")),
            }
            let key = self.string()?;
            self.skip_whitespace();
            match self.peek() {
                Some(b':') => self.at += 1,
                None => return Err(self.error("EOF while parsing an object")),
                Some(_) => return Err(self.error("expected `:`")),
            }
            self.skip_whitespace();
            let value = self.value(depth)?;
            members.insert(key, value);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(Value::Object(members));
                }
                None => return Err(self.error("EOF while parsing an object")),
                Some(_) => return Err(self.error("expected `,` or `}`")),
            }
        }
    }

    /// A string from its opening quote, checked as UTF-8 once it is whole: what is copied is the
    /// text's own bytes between escapes and whole characters for escapes, so a sequence that
    /// is invalid in the text is invalid in the string.
    fn string(&mut self) -> Result<String, ParseError> {
        self.at += 1; // "
        let mut out = Vec::new();
        loop {
            let start = self.at;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.at += 1;
            }
            out.extend_from_slice(&self.text[start..self.at]);
            match self.peek() {
                None => return Err(self.error("EOF while parsing a string")),
                Some(b'"') => {
                    self.at += 1;
                    // Runs end at ASCII bytes and an escape writes a whole character, so no
                    // valid character of the text is split here.
                    return String::from_utf8(out).map_err(|_| self.error("invalid UTF-8"));
                }
                Some(b'\\') => {
                    self.at += 1;
                    self.escape(&mut out)?;
                }
                Some(_) => return Err(self.error("control character in a string")),
            }
        }
    }

    /// One escape after its backslash, appended to `out` as UTF-8.
    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), ParseError> {
        let Some(b) = self.peek() else {
            return Err(self.error("EOF while parsing a string"));
        };
        self.at += 1;
        let simple = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0C,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let c = self.unicode_escape()?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                return Ok(());
            }
            _ => {
                self.at -= 1;
                return Err(self.error("invalid escape"));
            }
        };
        out.push(simple);
        Ok(())
    }

    /// The character of a `\u` escape (read from its four hex digits, after the `u`), a
    /// surrogate pair taking two escapes.
    fn unicode_escape(&mut self) -> Result<char, ParseError> {
        let first = self.hex4()?;
        if (0xDC00..0xE000).contains(&first) {
            return Err(self.error("lone trailing surrogate in hex escape"));
        }
        if !(0xD800..0xDC00).contains(&first) {
            return char::from_u32(first).ok_or_else(|| self.error("invalid unicode code point"));
        }
        if !self.text[self.at..].starts_with(b"\\u") {
            return Err(self.error("lone leading surrogate in hex escape"));
        }
        self.at += 2;
        let second = self.hex4()?;
        if !(0xDC00..0xE000).contains(&second) {
            return Err(self.error("lone leading surrogate in hex escape"));
        }
        let c = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
        char::from_u32(c).ok_or_else(|| self.error("invalid unicode code point"))
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let mut n = 0;
        for _ in 0..4 {
            let digit = match self.peek() {
                Some(b @ b'0'..=b'9') => b - b'0',
                Some(b @ b'a'..=b'f') => b - b'a' + 10,
                Some(b @ b'A'..=b'F') => b - b'A' + 10,
                None => return Err(self.error("EOF while parsing a string")),
                Some(_) => return Err(self.error("invalid escape")),
            };
            n = n * 16 + u32::from(digit);
            self.at += 1;
        }
        Ok(n)
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at - start
    }

    /// A number (RFC 8259's grammar) as serde_json makes it.
    fn number(&mut self) -> Result<Number, ParseError> {
        let start = self.at;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let int_start = self.at;
        match self.digits() {
            0 => return Err(self.error("invalid number")),
            n if n > 1 && self.text[int_start] == b'0' => {
                self.at = int_start + 1;
                return Err(self.error("invalid number"));
            }
            _ => {}
        }
        let int_end = self.at;
        let mut fraction = (int_end, int_end);
        if self.peek() == Some(b'.') {
            self.at += 1;
            let from = self.at;
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
            fraction = (from, self.at);
        }
        let mut exponent: i64 = 0;
        let has_exponent = matches!(self.peek(), Some(b'e' | b'E'));
        if has_exponent {
            self.at += 1;
            let minus = match self.peek() {
                Some(b'-') => {
                    self.at += 1;
                    true
                }
                Some(b'+') => {
                    self.at += 1;
                    false
                }
                _ => false,
            };
            let from = self.at;
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
            // Saturating far past any f64 and any text's digit count (which moves the scale
            // back by at most the text's length): such an exponent only decides zero or out of
            // range, whatever the digits before it.
            for &d in &self.text[from..self.at] {
                exponent = (exponent * 10 + i64::from(d - b'0')).min(100_000_000_000_000_000);
            }
            if minus {
                exponent = -exponent;
            }
        }
        let integer = &self.text[int_start..int_end];
        if fraction.0 == fraction.1 && !has_exponent {
            if let Some(n) = whole_number(integer, negative) {
                return Ok(n);
            }
        }
        let value = decimal(integer, &self.text[fraction.0..fraction.1], exponent);
        if value.is_infinite() {
            self.at = start;
            return Err(self.error("number out of range"));
        }
        let value = if negative { -value } else { value };
        Number::from_f64(value).ok_or_else(|| self.error("number out of range"))
    }
}

/// A whole number that fits serde_json's integers: `u64` when positive, `i64` when negative
/// (but `-0`, which serde_json makes the float `-0.0`); `None` past them.
fn whole_number(digits: &[u8], negative: bool) -> Option<Number> {
    let mut n: u64 = 0;
    for &d in digits {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if !negative {
        return Some(Number::from(n));
    }
    if n == 0 {
        return Number::from_f64(-0.0);
    }
    let magnitude = i64::try_from(n).ok().map(|m| -m).or_else(|| {
        // -2^63 is an i64 whose magnitude is not.
        (n == 1 << 63).then_some(i64::MIN)
    })?;
    Some(Number::from(magnitude))
}

/// The magnitude of `integer.fraction × 10^exponent`. The first 19 significant digits are
/// kept (those past them only move the exponent), then scaled once by an exact power of ten
/// when the digits fit 2^53 and the scale is within 10^±22 (one rounding: the nearest
/// `f64`), else by repeated powers (a few roundings).
fn decimal(integer: &[u8], fraction: &[u8], exponent: i64) -> f64 {
    let mut significand: u64 = 0;
    let mut scale = exponent;
    let mut kept = 0;
    for (i, &d) in integer.iter().chain(fraction).enumerate() {
        let in_fraction = i >= integer.len();
        if significand == 0 && d == b'0' {
            // Leading zeros are not significant digits.
            scale -= i64::from(in_fraction);
            continue;
        }
        if kept < 19 {
            significand = significand * 10 + u64::from(d - b'0');
            kept += 1;
            scale -= i64::from(in_fraction);
        } else if !in_fraction {
            scale += 1;
        }
    }
    if significand == 0 {
        return 0.0;
    }
    // Trailing zeros are not precision: `1.50000000000000000000` is exact as 15 × 10^-1.
    while significand.is_multiple_of(10) {
        significand /= 10;
        scale += 1;
    }
    let mut value = significand as f64;
    let exact = significand <= 1 << 53;
    if exact && (0..=22).contains(&scale) {
        return value * EXACT_POWERS_OF_TEN[scale as usize];
    }
    if exact && (-22..0).contains(&scale) {
        return value / EXACT_POWERS_OF_TEN[(-scale) as usize];
    }
    while scale > 0 && value.is_finite() {
        let step = scale.min(22);
        value *= EXACT_POWERS_OF_TEN[step as usize];
        scale -= step;
    }
    while scale < 0 && value != 0.0 {
        let step = (-scale).min(22);
        value /= EXACT_POWERS_OF_TEN[step as usize];
        scale += step;
    }
    value
}

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

/// Whether two parsed values are the same, floats within a relative 1e-15: what the parser
/// is held to against serde_json (by the tests and the `json_text` fuzz target), where both
/// scale a long or far-out number by more than one rounding, not always the same way.
#[cfg(any(test, fuzzing))]
pub fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() && y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x == y || ((x - y) / x.abs().max(y.abs())).abs() <= 1e-15
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, a), (kb, b))| ka == kb && same_value(a, b))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What serde_json makes of `text`, for comparison.
    fn reference(text: &[u8]) -> Option<Value> {
        serde_json::from_slice(text).ok()
    }

    fn agrees(text: &[u8]) {
        let ours = parse(text).ok();
        let theirs = reference(text);
        let agree = match (&ours, &theirs) {
            (Some(a), Some(b)) => same_value(a, b),
            (None, None) => true,
            _ => false,
        };
        assert!(
            agree,
            "{:?}: ours {ours:?} ({:?}), serde_json {theirs:?}",
            String::from_utf8_lossy(text),
            parse(text).err().map(|e| e.to_string())
        );
    }

    #[test]
    fn a_text_parses_as_serde_json_parses_it() {
        for text in [
            "null",
            "true",
            "false",
            " \t\r\n[1 , 2]\n",
            "{}",
            "[]",
            "{\"a\":1,\"a\":2}",
            "\"\"",
            "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"",
            "\"\\u00e9\\u20AC\"",
            "\"\\ud83d\\ude00\"",
            "\"é€😀\"",
            "0",
            "-0",
            "-0.0",
            "0.0",
            "1",
            "-1",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "0.87",
            "-12.5e-3",
            "1E2",
            "1e+2",
            "1e400",
            "-1e400",
            "1e-400",
            "123456789012345678901234567890",
            "0.1234567890123456789012345",
            "4.9e-324",
            "1.7976931348623157e308",
            "2.2250738585072014e-308",
            "[[[]]]",
            "{\"k\":{\"l\":[null,{\"m\":\"n\"}]}}",
            "1.0",
            "100e-2",
            "0.000001",
            // refused
            "",
            " ",
            "nul",
            "tru",
            "[1,]",
            "[1 2]",
            "{\"a\"}",
            "{\"a\":}",
            "{a:1}",
            "{\"a\":1,}",
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "1e+",
            "+1",
            "--1",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "\"a\nb\"",
            "\"open",
            "[1] 2",
            "{} x",
            "NaN",
            "Infinity",
            "[",
            "{",
            "\"\\",
            "\u{feff}1",
        ] {
            agrees(text.as_bytes());
        }
        agrees(b"\"\xff\"");
        agrees(b"[\xc3]");
        agrees(b"\"\xed\xa0\x80\"");
    }

    #[test]
    fn a_number_with_up_to_15_significant_digits_is_the_nearest_float_whatever_its_zeros() {
        for text in [
            "273878288.000000000000e-19",
            "0.87000000000000000000000",
            "1.000000000000000000000000",
            "123456789012345e-20",
            "0.000000000000000000000000000001",
            "1500000000000000000000000000e-10",
        ] {
            let want: f64 = text.parse().expect("a float");
            let got = parse(text.as_bytes()).ok().and_then(|v| v.as_f64());
            assert_eq!(got, Some(want), "{text}");
        }
    }

    #[test]
    fn an_exponent_is_never_outweighed_by_the_digits_before_it() {
        // A million digits move the scale by a million; the exponent must not be capped
        // below that (a body may be 1 MiB).
        let zeros = "0".repeat(1_000_000);
        let tiny = format!("1{zeros}e-1000300");
        let value = parse(tiny.as_bytes()).ok().and_then(|v| v.as_f64());
        assert!(
            value.is_some_and(|v| ((v - 1e-300) / 1e-300).abs() < 1e-14),
            "{value:?}"
        );
        agrees(tiny.as_bytes());
        let huge = format!("0.{zeros}1e1000400");
        assert!(
            parse(huge.as_bytes()).is_err(),
            "out of range, as serde_json says"
        );
        agrees(huge.as_bytes());
    }

    #[test]
    fn nesting_past_the_limit_is_refused_and_within_it_parses() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse(deep(MAX_DEPTH).as_bytes()).is_ok());
        assert!(parse(deep(MAX_DEPTH + 1).as_bytes()).is_err());
        let objects = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
        assert!(parse(objects(MAX_DEPTH).as_bytes()).is_ok());
        assert!(parse(objects(MAX_DEPTH + 1).as_bytes()).is_err());
        for n in [MAX_DEPTH, MAX_DEPTH + 1] {
            agrees(deep(n).as_bytes());
            agrees(objects(n).as_bytes());
        }
    }

    #[test]
    fn an_error_says_where_the_text_went_wrong() {
        let e = parse(b"{\n  \"a\": 1,\n  \"b\": tru\n}").expect_err("not JSON");
        assert_eq!(e.to_string(), "expected value at line 3 column 8");
        let e = parse("[\"é\", x]".as_bytes()).expect_err("not JSON");
        assert_eq!(e.to_string(), "expected value at line 1 column 7");
    }

    /// Texts made by mutating valid JSON (a byte replaced, inserted, dropped, or a piece of
    /// JSON spliced in), parsed by both: the same value, or both refused.
    #[test]
    fn mutated_texts_parse_or_fail_as_serde_json_does() {
        const PIECES: [&str; 24] = [
            "{", "}", "[", "]", ",", ":", "\"", "\\", "\\u", "\\ud83d", "\\ude00", "0", "-", ".",
            "e", "E+", "1e308", "9", "null", "true", " ", "\n", "é", "\u{1}",
        ];
        let seeds = [
            r#"{"type":"call.upserted","data":{"id":"c1","userId":"u1","durationSeconds":42,"confidence":0.87}}"#,
            r#"[1,-2,3.5,-4e-2,{"a":[true,false,null]},"s\"t\\u","\u00e9\ud83d\ude00"]"#,
            r#"{"keys":[{"kty":"RSA","n":"abc","e":"AQAB","alg":"RS256"}],"x":1e10,"y":-0}"#,
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        for round in 0..20_000 {
            let mut text = seeds[round % seeds.len()].as_bytes().to_vec();
            for _ in 0..1 + next(3) {
                let at = next(text.len() + 1);
                match next(4) {
                    0 if at < text.len() => text[at] = PIECES[next(PIECES.len())].as_bytes()[0],
                    1 => {
                        let piece = PIECES[next(PIECES.len())].as_bytes();
                        text.splice(at..at, piece.iter().copied());
                    }
                    2 if at < text.len() => {
                        text.remove(at);
                    }
                    _ => {
                        let end = (at + next(6)).min(text.len());
                        text.drain(at..end);
                    }
                }
            }
            agrees(&text);
        }
    }

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
