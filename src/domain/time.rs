//! Instants as Unix epoch milliseconds, written as RFC 3339 UTC (`2026-11-21T10:00:00Z`), read
//! from RFC 3339 and RFC 2822 with chrono behind a stricter gate (`fuzz/fuzz_targets/time_parsers.rs`
//! holds both to the RFC grammars).
//!
//! D1 stores the integer (it sorts and indexes cheaply); JSON carries the string.

use serde::{Serialize, Serializer};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

pub const MS_PER_DAY: i64 = 86_400_000;

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Parses RFC 3339 (`2026-11-21T10:00:00Z`, `…T10:00:00.123+02:00`); `None` for anything
    /// the RFC refuses or outside the range an epoch-millisecond `i64` can hold.
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .and_then(|t| Self::within_years(t.timestamp_millis()))
    }

    /// Instants from 0000-01-01 to 9999-12-31 UTC: what RFC 3339's four-digit year can write
    /// back, so whatever is accepted formats again.
    fn within_years(ms: i64) -> Option<Self> {
        const FIRST: i64 = -62_167_219_200_000; // 0000-01-01T00:00:00Z
        const LAST: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
        (FIRST..=LAST).contains(&ms).then_some(Self(ms))
    }

    /// Parses an RFC 3339 `full-date` (`2026-11-21`) as that day's first instant, UTC.
    pub fn parse_date(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        let shaped = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
        if !shaped {
            return None;
        }
        // The digits were checked above; `from_ymd_opt` refuses impossible dates. (chrono's
        // format parser would weigh several KB of the module for this one shape.)
        let n = |r: std::ops::Range<usize>| s[r].parse::<u32>().ok();
        let year = i32::try_from(n(0..4)?).ok()?;
        let date = chrono::NaiveDate::from_ymd_opt(year, n(5..7)?, n(8..10)?)?;
        let ms = date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis();
        Self::within_years(ms)
    }

    /// The UTC day this instant falls on, as days since 1970-01-01 (negative before).
    pub const fn day(self) -> i64 {
        self.0.div_euclid(MS_PER_DAY)
    }

    /// The first instant of UTC day `day` (days since 1970-01-01), if it is one.
    pub fn start_of_day(day: i64) -> Option<Self> {
        day.checked_mul(MS_PER_DAY).and_then(Self::within_years)
    }

    /// Whether this is the first instant of a UTC day.
    pub const fn is_midnight(self) -> bool {
        self.0.rem_euclid(MS_PER_DAY) == 0
    }

    /// UTC day `day` as an RFC 3339 `full-date` (`2026-11-21`).
    pub fn date_of_day(day: i64) -> String {
        let (y, m, d) = civil_from_days(day);
        format!("{y:04}-{m:02}-{d:02}")
    }

    /// Parses the RFC 2822 dates Twilio sends (`Tue, 05 Mar 2024 18:22:13 +0000`); the
    /// weekday is optional and, when present, must be the date's. `None` for anything the RFC
    /// refuses: signed or out-of-range fields, malformed zones, impossible dates.
    pub fn parse_rfc2822(s: &str) -> Option<Self> {
        // Tokens are separated by spaces and tabs only, and each field is one token: chrono
        // alone would also skip other whitespace and whitespace inside the time, and take
        // comments, which the RFC allows but no provider sends.
        let allowed = |b: u8| b == b' ' || b == b'\t' || (b.is_ascii_graphic() && b != b'(');
        if !s.bytes().all(allowed) {
            return None;
        }
        let normalized = s
            .split([' ', '\t'])
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        // Numbers are at most four digits (day, year): no zero-padded giant years.
        let short_numbers = normalized
            .split(' ')
            .all(|t| t.len() <= 4 || !t.bytes().all(|b| b.is_ascii_digit()));
        if !short_numbers || normalized.contains(": ") || normalized.contains(" :") {
            return None;
        }
        chrono::DateTime::parse_from_rfc2822(&normalized)
            .ok()
            .and_then(|t| Self::within_years(t.timestamp_millis()))
    }
}

impl Timestamp {
    /// Appends the instant as [`Display`](fmt::Display) writes it. Years 0 to 9999 (every
    /// instant a call can carry) are written digit by digit: a page of 100 calls writes 500
    /// timestamps, and `core::fmt`'s padding machinery was most of a D1 page's own time.
    pub fn push_rfc3339(self, out: &mut String) {
        match self.rfc3339_bytes() {
            Some((bytes, len)) => out.push_str(std::str::from_utf8(&bytes[..len]).unwrap_or("")),
            None => {
                use fmt::Write;
                let _ = write!(out, "{}", Formatted(self));
            }
        }
    }

    /// `YYYY-MM-DDTHH:MM:SS[.mmm]Z` as bytes and their length, for years 0 to 9999.
    fn rfc3339_bytes(self) -> Option<([u8; 24], usize)> {
        let days = self.0.div_euclid(MS_PER_DAY);
        let ms_of_day = self.0.rem_euclid(MS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        if !(0..=9999).contains(&y) {
            return None;
        }
        let secs = ms_of_day / 1000;
        let millis = ms_of_day % 1000;
        let mut out = [0u8; 24];
        let digit = |n: i64, place: i64| b'0' + (n / place % 10) as u8;
        out[..4].copy_from_slice(&[digit(y, 1000), digit(y, 100), digit(y, 10), digit(y, 1)]);
        out[4] = b'-';
        out[5..7].copy_from_slice(&[digit(m, 10), digit(m, 1)]);
        out[7] = b'-';
        out[8..10].copy_from_slice(&[digit(d, 10), digit(d, 1)]);
        out[10] = b'T';
        let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
        out[11..13].copy_from_slice(&[digit(hh, 10), digit(hh, 1)]);
        out[13] = b':';
        out[14..16].copy_from_slice(&[digit(mm, 10), digit(mm, 1)]);
        out[16] = b':';
        out[17..19].copy_from_slice(&[digit(ss, 10), digit(ss, 1)]);
        let mut len = 19;
        if millis != 0 {
            out[19..23].copy_from_slice(&[
                b'.',
                digit(millis, 100),
                digit(millis, 10),
                digit(millis, 1),
            ]);
            len = 23;
        }
        out[len] = b'Z';
        Some((out, len + 1))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rfc3339_bytes() {
            Some((bytes, len)) => {
                f.write_str(std::str::from_utf8(&bytes[..len]).map_err(|_| fmt::Error)?)
            }
            None => Formatted(*self).fmt(f),
        }
    }
}

/// The general writer behind [`Timestamp`]'s `Display`, for years outside 0 to 9999 too
/// (a sign, and more than four digits).
struct Formatted(Timestamp);

impl fmt::Display for Formatted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0 .0.div_euclid(MS_PER_DAY);
        let ms_of_day = self.0 .0.rem_euclid(MS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        let secs = ms_of_day / 1000;
        let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
        write!(f, "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}")?;
        let millis = ms_of_day % 1000;
        if millis != 0 {
            write!(f, ".{millis:03}")?;
        }
        f.write_str("Z")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

// Howard Hinnant's civil-from-days algorithm, proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digit_by_digit_writer_writes_what_the_general_one_does_for_every_year() {
        let mut instants = vec![
            0,
            1,
            999,
            1_000,
            -1,
            -999,
            -1_000,
            -1_001,
            1_800_000_000_123,
            253_402_300_799_999, // 9999-12-31T23:59:59.999Z, the last four-digit instant
            253_402_300_800_000, // year 10000: the general writer
            -62_167_219_200_000, // 0000-01-01T00:00:00Z
            -62_167_219_200_001, // year -1: the general writer
            i64::MAX,
            i64::MIN,
        ];
        let mut x: i64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..2_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            instants.push(x % 400_000_000_000_000);
        }
        for ms in instants {
            let t = Timestamp::from_millis(ms);
            let general = Formatted(t).to_string();
            let mut pushed = String::from("x");
            t.push_rfc3339(&mut pushed);
            assert_eq!(t.to_string(), general, "{ms}");
            assert_eq!(pushed, format!("x{general}"), "{ms}");
        }
    }

    #[test]
    fn a_full_date_is_its_first_instant_and_days_count_from_the_epoch_both_ways() {
        let d = Timestamp::parse_date("2026-11-20").expect("a date");
        assert_eq!(d.to_string(), "2026-11-20T00:00:00Z");
        assert!(d.is_midnight());
        assert_eq!(Timestamp::date_of_day(d.day()), "2026-11-20");
        assert_eq!(Timestamp::start_of_day(d.day()), Some(d));
        assert_eq!(Timestamp::from_millis(-1).day(), -1);
        assert_eq!(Timestamp::date_of_day(-1), "1969-12-31");
        assert!(!Timestamp::from_millis(1).is_midnight());
        for bad in [
            "2026-02-30",
            "2026-1-20",
            "2026-11-20T00:00:00Z",
            "+2026-11-2",
            "",
            "２０２６-11-20",
        ] {
            assert_eq!(Timestamp::parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_epoch_and_a_known_instant_format_as_rfc3339() {
        assert_eq!(
            Timestamp::from_millis(0).to_string(),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            Timestamp::from_millis(1_709_662_933_000).to_string(),
            "2024-03-05T18:22:13Z"
        );
        assert_eq!(
            Timestamp::from_millis(1_709_662_933_045).to_string(),
            "2024-03-05T18:22:13.045Z"
        );
    }

    #[test]
    fn formatting_and_parsing_round_trip_across_leap_days_and_centuries() {
        for ms in [
            0,
            951_782_400_000,   // 2000-02-29
            4_107_542_400_000, // 2100-03-01
            1_795_000_000_123,
            -86_400_000,
        ] {
            let t = Timestamp::from_millis(ms);
            assert_eq!(Timestamp::parse_rfc3339(&t.to_string()), Some(t), "{t}");
        }
    }

    #[test]
    fn offsets_and_fractions_are_honoured() {
        let utc = Timestamp::parse_rfc3339("2026-11-21T10:00:00Z");
        assert_eq!(Timestamp::parse_rfc3339("2026-11-21T12:00:00+02:00"), utc);
        assert_eq!(Timestamp::parse_rfc3339("2026-11-21T05:30:00-04:30"), utc);
        assert_eq!(
            Timestamp::parse_rfc3339("2026-11-21T10:00:00.5Z").map(Timestamp::millis),
            utc.map(|t| t.millis() + 500)
        );
    }

    #[test]
    fn twilio_rfc2822_dates_parse_with_or_without_weekday() {
        let expected = Some(Timestamp::from_millis(1_709_662_933_000));
        assert_eq!(
            Timestamp::parse_rfc2822("Tue, 05 Mar 2024 18:22:13 +0000"),
            expected
        );
        assert_eq!(
            Timestamp::parse_rfc2822("5 Mar 2024 18:22:13 GMT"),
            expected
        );
        assert_eq!(
            Timestamp::parse_rfc2822("Tue, 05 Mar 2024 19:22:13 +0100"),
            expected
        );
        for bad in [
            "",
            "Tue, 32 Mar 2024 18:22:13 +0000",
            "05 Foo 2024 18:22:13 +0000",
            "05 Mar 2024 18:22:13 EST x",
        ] {
            assert_eq!(Timestamp::parse_rfc2822(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn signed_fields_and_signed_offsets_are_refused() {
        for bad in [
            "05 Mar 2024 -1:22:13 +0000",
            "05 Mar 2024 18:-1:13 +0000",
            "-5 Mar 2024 18:22:13 +0000",
            "05 Mar 2024 18:22:13 +-100",
            "05 Mar 2024 18:22:13 -+100",
        ] {
            assert_eq!(Timestamp::parse_rfc2822(bad), None, "{bad:?}");
        }
        for bad in [
            "2026-11-21T10:00:00+-1:00",
            "2026-11-21T-1:00:00Z",
            "2026-11-2-T10:00:00Z",
            "+2026-11-21T10:00:00Z",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn years_beyond_the_range_are_refused_without_overflow() {
        assert_eq!(
            Timestamp::parse_rfc2822("Tue,5 Mar 250024 18:22 +0000"),
            None,
            "a year RFC 3339 could not write back"
        );
        assert_eq!(
            Timestamp::parse_rfc2822("05 Mar 123456789 18:22:13 +0000"),
            None
        );
        assert_eq!(Timestamp::parse_rfc3339("123456789-01-01T00:00:00Z"), None);
        assert_eq!(
            Timestamp::parse_rfc2822("05 Mar 99999999999999999999 18:22:13 +0000"),
            None
        );
    }

    #[test]
    fn boundaries_of_each_field_are_accepted_and_one_past_them_refused() {
        let ok = |s: &str| Timestamp::parse_rfc3339(s).is_some();
        assert!(ok("2024-02-29T23:59:59Z") && !ok("2023-02-29T00:00:00Z"));
        assert!(ok("2026-12-31T00:00:00Z") && !ok("2026-12-32T00:00:00Z"));
        assert!(ok("2026-11-21T10:00:00+23:59") && !ok("2026-11-21T10:00:00+24:00"));
        assert!(!ok("2026-11-21T10:60:00Z") && !ok("2026-00-21T10:00:00Z"));
        let ok2822 = |s: &str| Timestamp::parse_rfc2822(s).is_some();
        assert!(ok2822("31 Dec 2026 23:59:59 +0000") && !ok2822("32 Dec 2026 23:59:59 +0000"));
        assert!(!ok2822("31 Dec 2026 24:00:00 +0000") && !ok2822("31 Dec 2026 23:60:00 +0000"));
    }

    #[test]
    fn whitespace_other_than_spaces_and_tabs_inside_the_time_or_comments_are_refused() {
        for bad in [
            "Mon, 02 Mar 4048 18:\u{c}22 EST",
            "05 Mar 2024 18: 22:13 +0000",
            "05\nMar 2024 18:22:13 +0000",
            "10 mar 4050 18:22 E(comment)",
            "5 Mar 00000000000000000000000035 22:13 +0000",
        ] {
            assert_eq!(Timestamp::parse_rfc2822(bad), None, "{bad:?}");
        }
        assert!(Timestamp::parse_rfc2822("Tue,\t05  Mar 2024 18:22:13 +0000").is_some());
    }

    #[test]
    fn a_weekday_that_is_not_the_dates_is_refused() {
        assert!(Timestamp::parse_rfc2822("Tue, 05 Mar 2024 18:22:13 +0000").is_some());
        assert_eq!(
            Timestamp::parse_rfc2822("Mon, 05 Mar 2024 18:22:13 +0000"),
            None
        );
    }

    #[test]
    fn malformed_instants_are_rejected() {
        for bad in [
            "",
            "2026-11-21",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-21T24:00:00Z",
            "2026-11-21T10:00:00",
            "2026-11-21T10:00:00.Z",
            "2026-11-21T10:00:00+0200",
            "2026-1a-21T10:00:00Z",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(bad), None, "{bad:?}");
        }
    }
}
