//! Strict `application/x-www-form-urlencoded` decoding for Twilio's bodies: a bad `%` escape
//! or a value that is not UTF-8 is an error, not a silently replaced character (the signature
//! is computed over the decoded values, so a lossy decode could never verify anyway).

use super::ParseError;

/// Decodes `a=1&b=x+y` into ordered pairs; repeated names are kept, in order.
pub fn parse(body: &[u8]) -> Result<Vec<(String, String)>, ParseError> {
    let mut pairs = Vec::new();
    for part in body.split(|b| *b == b'&') {
        if part.is_empty() {
            continue;
        }
        let (name, value) = match part.iter().position(|b| *b == b'=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &[][..]),
        };
        pairs.push((decode(name)?, decode(value)?));
    }
    Ok(pairs)
}

fn decode(raw: &[u8]) -> Result<String, ParseError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = raw
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| ParseError::Malformed("bad %-escape in form body".into()))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ParseError::Malformed("form body is not UTF-8".into()))
}

/// The value of `name`, if given (the first when repeated).
pub fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pluses_escapes_and_repeated_names_in_order() {
        let pairs = parse(b"From=%2B1415&Name=Ada+L.&x=1&x=2&flag").expect("valid");
        assert_eq!(
            pairs,
            vec![
                ("From".into(), "+1415".into()),
                ("Name".into(), "Ada L.".into()),
                ("x".into(), "1".into()),
                ("x".into(), "2".into()),
                ("flag".into(), String::new()),
            ]
        );
        assert_eq!(get(&pairs, "x"), Some("1"));
    }

    #[test]
    fn bad_escapes_and_non_utf8_are_errors() {
        for bad in [&b"a=%zz"[..], b"a=%4", b"a=%C3%28", b"a=\xff"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_empty_body_has_no_pairs() {
        assert_eq!(parse(b"").expect("valid"), vec![]);
    }
}
