//! Instants as Unix epoch milliseconds, written as RFC 3339 UTC (`2026-11-21T10:00:00Z`).
//!
//! D1 stores the integer (it sorts and indexes cheaply); JSON carries the string.

use serde::{Serialize, Serializer};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

const MS_PER_DAY: i64 = 86_400_000;

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    /// A calendar instant at a UTC offset, if every field is in range. A leap second is
    /// folded into the minute's last second.
    fn from_civil(fields: [i64; 6], millis: i64, offset_minutes: i64) -> Option<Self> {
        let [year, month, day, hour, minute, second] = fields;
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return None;
        }
        let days = days_from_civil(year, month, day);
        let secs = hour * 3600 + minute * 60 + second.min(59);
        Some(Self(
            days * MS_PER_DAY + secs * 1000 + millis - offset_minutes * 60_000,
        ))
    }

    /// Parses RFC 3339 (`2026-11-21T10:00:00Z`, `…T10:00:00.123+02:00`); `None` when malformed.
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
            return None;
        }
        if b[13] != b':' || b[16] != b':' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let part = s.get(r)?;
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        let mut rest = &s[19..];
        let mut millis = 0;
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            let scaled: String = frac[..digits]
                .chars()
                .chain("000".chars())
                .take(3)
                .collect();
            millis = scaled.parse::<i64>().ok()?;
            rest = &frac[digits..];
        }
        let offset_minutes = match rest {
            "Z" | "z" => 0,
            _ => {
                let ob = rest.as_bytes();
                if ob.len() != 6 || ob[3] != b':' {
                    return None;
                }
                let sign = match ob[0] {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let h: i64 = rest.get(1..3)?.parse().ok()?;
                let m: i64 = rest.get(4..6)?.parse().ok()?;
                if h > 23 || m > 59 {
                    return None;
                }
                sign * (h * 60 + m)
            }
        };
        Self::from_civil(
            [year, month, day, hour, minute, second],
            millis,
            offset_minutes,
        )
    }

    /// Parses the RFC 2822 dates Twilio sends (`Tue, 05 Mar 2024 18:22:13 +0000`); the
    /// weekday is optional and ignored.
    pub fn parse_rfc2822(s: &str) -> Option<Self> {
        let s = s.trim();
        let s = match s.split_once(',') {
            Some((_, rest)) => rest.trim(),
            None => s,
        };
        let mut parts = s.split_ascii_whitespace();
        let day: i64 = parts.next()?.parse().ok()?;
        let month = match parts.next()? {
            "Jan" => 1,
            "Feb" => 2,
            "Mar" => 3,
            "Apr" => 4,
            "May" => 5,
            "Jun" => 6,
            "Jul" => 7,
            "Aug" => 8,
            "Sep" => 9,
            "Oct" => 10,
            "Nov" => 11,
            "Dec" => 12,
            _ => return None,
        };
        let year: i64 = parts.next()?.parse().ok()?;
        let mut hms = parts.next()?.split(':');
        let hour: i64 = hms.next()?.parse().ok()?;
        let minute: i64 = hms.next()?.parse().ok()?;
        let second: i64 = hms.next().map_or(Some(0), |x| x.parse().ok())?;
        let zone = parts.next().unwrap_or("+0000");
        if parts.next().is_some() || hms.next().is_some() {
            return None;
        }
        let offset_minutes = match zone {
            "GMT" | "UT" | "UTC" | "Z" => 0,
            z if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => {
                let h: i64 = z.get(1..3)?.parse().ok()?;
                let m: i64 = z.get(3..5)?.parse().ok()?;
                let sign = if z.starts_with('-') { -1 } else { 1 };
                sign * (h * 60 + m)
            }
            _ => return None,
        };
        Self::from_civil([year, month, day, hour, minute, second], 0, offset_minutes)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(MS_PER_DAY);
        let ms_of_day = self.0.rem_euclid(MS_PER_DAY);
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

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's days-from-civil algorithms, proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

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
