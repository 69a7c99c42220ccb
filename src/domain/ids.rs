//! Identifier newtypes. Each has one constructor that checks its alphabet and length.

use serde::{Deserialize, Deserializer};
use std::fmt;

fn id_ok(s: &str, max: usize, extra: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $max:expr, $extra:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const MAX_LEN: usize = $max;

            pub fn parse(s: &str) -> Option<Self> {
                id_ok(s, $max, $extra).then(|| Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl crate::json_writer::ToJson for $name {
            fn write_json(&self, out: &mut String) {
                crate::json_writer::write_str(out, &self.0);
            }
        }

        /// A plain string, checked as [`Self::parse`] checks it: what was serialized (a parked
        /// delivery) reads back as the same id, and nothing else becomes one.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                if id_ok(&s, $max, $extra) {
                    Ok(Self(s))
                } else {
                    Err(serde::de::Error::custom(concat!(
                        "not a valid ",
                        stringify!($name)
                    )))
                }
            }
        }
    };
}

string_id!(
    /// The dashboard user a call belongs to: the JWT `sub`. ASCII letters, digits and
    /// `. _ - @ |` (so `auth0|abc` and e-mail-like subjects work), at most 128 bytes.
    UserId,
    128,
    b"._-@|"
);

string_id!(
    /// A provider's call id (`CA…` for Twilio, `call_…` for Retell, anything alike for the API):
    /// ASCII letters, digits and `. _ -`, at most 128 bytes.
    CallId,
    128,
    b"._-"
);

/// A phone number in E.164: `+`, then 2 to 15 digits, the first not zero.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct E164(String);

impl E164 {
    pub fn parse(s: &str) -> Option<Self> {
        let digits = s.strip_prefix('+')?;
        let ok = (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        ok.then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl crate::json_writer::ToJson for E164 {
    fn write_json(&self, out: &mut String) {
        crate::json_writer::write_str(out, &self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_accept_common_subject_shapes() {
        for ok in ["user_1", "auth0|5f1c", "ada@example.com", "u-1.2"] {
            assert!(UserId::parse(ok).is_some(), "{ok}");
        }
    }

    #[test]
    fn user_ids_reject_separators_unicode_and_empties() {
        let long = "a".repeat(129);
        for bad in [
            "",
            "a:b",
            "a/b",
            "ü",
            "a b",
            "a\u{0}b",
            "../x",
            long.as_str(),
        ] {
            assert!(UserId::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn call_ids_reject_path_tricks() {
        assert!(CallId::parse("CA0123abc").is_some());
        assert!(CallId::parse("call_0001").is_some());
        for bad in ["", "..%2F", "a/b", "a:b", "a|b", "é"] {
            assert!(CallId::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn ids_are_plain_json_strings_and_read_back_only_when_valid() {
        let call = CallId::parse("CA0123abc").expect("valid");
        assert_eq!(
            Some(crate::json_writer::to_string(&call)).as_deref(),
            Some(r#""CA0123abc""#)
        );
        assert_eq!(
            serde_json::from_str::<CallId>(r#""CA0123abc""#).ok(),
            Some(call)
        );
        let user = UserId::parse("auth0|5f1c").expect("valid");
        assert_eq!(
            serde_json::from_str::<UserId>(r#""auth0|5f1c""#).ok(),
            Some(user)
        );
        for bad in [r#""a/b""#, r#""""#, "1", "null"] {
            assert!(serde_json::from_str::<CallId>(bad).is_err(), "{bad}");
            assert!(serde_json::from_str::<UserId>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn e164_needs_a_plus_and_two_to_fifteen_digits() {
        assert!(E164::parse("+14155550100").is_some());
        assert!(E164::parse("+44").is_some());
        for bad in [
            "14155550100",
            "+",
            "+0123",
            "+1234567890123456",
            "+1-415",
            "+1a",
        ] {
            assert!(E164::parse(bad).is_none(), "{bad:?}");
        }
    }
}
