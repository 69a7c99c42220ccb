//! A user's data version: an opaque token that only moves forward as that user's data changes
//! (`meta.version`, `X-Min-Version`). D1 is its one authority (`migrations/0008`): the version
//! moves in the same statement as the change, and a read learns it in the same batch as the
//! data it describes.

/// Ordered: a larger version reflects every change a smaller one does, and more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Version(u64);

impl Version {
    /// Never written: nothing to be newer than.
    pub const ZERO: Version = Version(0);
    /// The longest token this service issues (`u64::MAX` has 20 digits).
    const MAX_TOKEN_LEN: usize = 20;

    pub fn new(n: u64) -> Self {
        Self(n)
    }

    pub fn get(self) -> u64 {
        self.0
    }

    /// The token clients see. Decimal today; clients must treat it as opaque.
    pub fn token(self) -> String {
        self.0.to_string()
    }

    /// A token this service issued; `None` for anything else (signs, spaces, overflow).
    pub fn parse_token(s: &str) -> Option<Self> {
        if s.is_empty() || s.len() > Self::MAX_TOKEN_LEN || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok().map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_orders_like_its_version() {
        let v = Version::new(1_099_511_627_793);
        assert_eq!(Version::parse_token(&v.token()), Some(v));
        assert!(Version::new(2) > Version::new(1));
    }

    #[test]
    fn anything_but_digits_within_u64_is_not_a_token() {
        for bad in [
            "",
            "-1",
            "+1",
            " 1",
            "1 ",
            "1.0",
            "0x10",
            "18446744073709551616",
            "abc",
        ] {
            assert_eq!(Version::parse_token(bad), None, "{bad:?}");
        }
        assert_eq!(
            Version::parse_token("18446744073709551615"),
            Some(Version::new(u64::MAX))
        );
    }
}
