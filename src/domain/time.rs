//! Instants as Unix epoch milliseconds, written as RFC 3339 UTC (`2026-11-21T10:00:00Z`), read
//! from RFC 3339 and RFC 2822 by parsers written for the two grammars, field ranges and real
//! dates checked (`fuzz/fuzz_targets/time_parsers.rs` holds both to the RFC grammars; a host
//! test holds them to chrono's on generated texts). chrono is only a test dependency: its
//! parsing machinery weighed about 7 KB of the gzipped module.
//!
//! D1 stores the integer (it sorts and indexes cheaply); JSON carries the string.

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
        let b = s.as_bytes();
        let mut at = Scan { b, i: 0 };
        let year = at.digits(4)?;
        at.byte(b'-')?;
        let month = at.digits(2)?;
        at.byte(b'-')?;
        let day = at.digits(2)?;
        // RFC 3339 §5.6 allows `t`, and a space in its note.
        at.one_of(b"Tt ")?;
        let hour = at.digits(2)?;
        at.byte(b':')?;
        let minute = at.digits(2)?;
        at.byte(b':')?;
        let second = at.digits(2)?;
        let mut millis = 0;
        if at.byte(b'.').is_some() {
            // Any number of digits; what is finer than a millisecond is dropped.
            let digits = at.run_of_digits();
            if digits.is_empty() {
                return None;
            }
            millis = digits
                .iter()
                .chain(b"00")
                .take(3)
                .fold(0, |n, d| n * 10 + i64::from(d - b'0'));
        }
        let offset_minutes = match at.next()? {
            b'Z' | b'z' => 0,
            sign @ (b'+' | b'-') => {
                let h = at.digits(2)?;
                at.byte(b':')?;
                let m = at.digits(2)?;
                if h > 23 || m > 59 {
                    return None;
                }
                if sign == b'-' {
                    -(h * 60 + m)
                } else {
                    h * 60 + m
                }
            }
            _ => return None,
        };
        if at.i != b.len() {
            return None;
        }
        Self::from_fields(
            year,
            month,
            day,
            (hour, minute, second),
            millis,
            offset_minutes,
        )
    }

    /// The instant of a local date and time at an offset, every field checked: hours 0–23,
    /// minutes 0–59, seconds 0–60 (a leap second reads as the next minute's first), a day
    /// the month has.
    fn from_fields(
        year: i64,
        month: i64,
        day: i64,
        (hour, minute, second): (i64, i64, i64),
        millis: i64,
        offset_minutes: i64,
    ) -> Option<Self> {
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return None;
        }
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        let seconds =
            days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
                - offset_minutes * 60;
        Self::within_years(seconds * 1000 + millis)
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
        let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().ok();
        Self::from_fields(n(0..4)?, n(5..7)?, n(8..10)?, (0, 0, 0), 0, 0)
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
        let normalized = rfc2822_tokens(s)?;
        // `[day-of-week ","] date`: a comma can only end the weekday, which may touch the day.
        let (weekday, date) = match normalized.split_once(',') {
            Some((name, rest)) => (Some(name_index(name, &WEEKDAYS)?), rest.trim_start()),
            None => (None, normalized.as_str()),
        };
        let mut tokens = date.split(' ');
        let day = number(tokens.next()?, 1, 2)?;
        let month = name_index(tokens.next()?, &MONTHS)? + 1;
        let year_token = tokens.next()?;
        // RFC 2822 §4.3: two-digit years from 1950 to 2049, three-digit ones from 1900.
        let year = match (year_token.len(), number(year_token, 2, 4)?) {
            (2, y @ 0..=49) => y + 2000,
            (2 | 3, y) => y + 1900,
            (_, y) => y,
        };
        let mut hms = tokens.next()?.split(':');
        let hour = number(hms.next()?, 2, 2)?;
        let minute = number(hms.next()?, 2, 2)?;
        let second = hms.next().map_or(Some(0), |t| number(t, 2, 2))?;
        if hms.next().is_some() {
            return None;
        }
        let offset_minutes = zone_2822(tokens.next()?)?;
        if tokens.next().is_some() {
            return None;
        }
        let t = Self::from_fields(year, month, day, (hour, minute, second), 0, offset_minutes)?;
        // The weekday, when given, must be the local date's (leap seconds aside, that is the
        // day the fields name).
        match weekday {
            Some(w) if w != (days_from_civil(year, month, day) + 3).rem_euclid(7) => None,
            _ => Some(t),
        }
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
    ///
    /// In 32-bit arithmetic after one 64-bit division: wasm32 has no 64-bit multiply-high, so
    /// every 64-bit division by a constant became a call to a software 128-bit multiply, and
    /// those were two thirds of the time here.
    fn rfc3339_bytes(self) -> Option<([u8; 24], usize)> {
        if !(FIRST_FORMATTED_MS..=LAST_FORMATTED_MS).contains(&self.0) {
            return None;
        }
        // Below 2^49; an opaque divisor makes the division one `i64.div_u`, not the
        // multiply-high call.
        let since = self.0.abs_diff(FIRST_FORMATTED_MS);
        let days = since / std::hint::black_box(MS_PER_DAY as u64);
        let of_day = u32::try_from(since - days * MS_PER_DAY as u64).ok()?;
        let (y, m, d) = civil_from_day_number(u32::try_from(days).ok()?);
        let mut out = *b"0000-00-00T00:00:00.000Z";
        let two = |out: &mut [u8; 24], at: usize, n: u32| {
            out[at] = b'0' + (n / 10 % 10) as u8;
            out[at + 1] = b'0' + (n % 10) as u8;
        };
        two(&mut out, 0, y / 100);
        two(&mut out, 2, y % 100);
        two(&mut out, 5, m);
        two(&mut out, 8, d);
        let secs = of_day / 1000;
        two(&mut out, 11, secs / 3600);
        two(&mut out, 14, secs / 60 % 60);
        two(&mut out, 17, secs % 60);
        let millis = of_day % 1000;
        if millis == 0 {
            out[19] = b'Z';
            return Some((out, 20));
        }
        out[20] = b'0' + (millis / 100) as u8;
        two(&mut out, 21, millis % 100);
        Some((out, 24))
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

impl crate::json_writer::ToJson for Timestamp {
    fn write_json(&self, out: &mut String) {
        crate::json_writer::write_str(out, &self.to_string());
    }
}

// Howard Hinnant's civil-from-days algorithm, proleptic Gregorian calendar.
/// The gate in front of the RFC 2822 grammar: the text's tokens joined by single spaces.
/// Tokens are separated by spaces and tabs only, and each field is one token (no other
/// whitespace, none inside the time, no comments: the RFC allows them, no provider sends
/// them); numbers are at most four digits (day, year: no zero-padded giant years).
fn rfc2822_tokens(s: &str) -> Option<String> {
    let allowed = |b: u8| b == b' ' || b == b'\t' || (b.is_ascii_graphic() && b != b'(');
    if !s.bytes().all(allowed) {
        return None;
    }
    let normalized = s
        .split([' ', '\t'])
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let short_numbers = normalized
        .split(' ')
        .all(|t| t.len() <= 4 || !t.bytes().all(|b| b.is_ascii_digit()));
    if !short_numbers || normalized.contains(": ") || normalized.contains(" :") {
        return None;
    }
    Some(normalized)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of `civil_from_days`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Where a three-letter name stands in `names`, in any case (ABNF literals are
/// case-insensitive).
fn name_index(token: &str, names: &[&str]) -> Option<i64> {
    let at = names.iter().position(|n| n.eq_ignore_ascii_case(token))?;
    i64::try_from(at).ok()
}

/// A token of `min` to `max` ASCII digits, and nothing else.
fn number(token: &str, min: usize, max: usize) -> Option<i64> {
    let shaped = (min..=max).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_digit());
    shaped.then(|| token.parse().ok()).flatten()
}

/// An RFC 2822 zone as minutes east of UTC: `+hhmm` / `-hhmm` (hours 0–23, minutes 0–59),
/// or an obsolete name (§4.3): UT, GMT, the US zones, and military letters, which the RFC
/// says to read as -0000 (`J` is not one).
fn zone_2822(token: &str) -> Option<i64> {
    let b = token.as_bytes();
    if let (5, Some(&sign @ (b'+' | b'-'))) = (b.len(), b.first()) {
        let (h, m) = (number(&token[1..3], 2, 2)?, number(&token[3..5], 2, 2)?);
        if h > 23 || m > 59 {
            return None;
        }
        return Some(if sign == b'-' {
            -(h * 60 + m)
        } else {
            h * 60 + m
        });
    }
    const NAMED: [(&str, i64); 11] = [
        ("ut", 0),
        ("gmt", 0),
        ("z", 0),
        ("edt", -4),
        ("est", -5),
        ("cdt", -5),
        ("cst", -6),
        ("mdt", -6),
        ("mst", -7),
        ("pdt", -7),
        ("pst", -8),
    ];
    if let Some((_, hours)) = NAMED.iter().find(|(n, _)| n.eq_ignore_ascii_case(token)) {
        return Some(hours * 60);
    }
    match b {
        [c] if c.is_ascii_alphabetic() && !c.eq_ignore_ascii_case(&b'j') => Some(0),
        _ => None,
    }
}

/// A cursor over an RFC 3339 text.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scan<'_> {
    fn next(&mut self) -> Option<u8> {
        let c = *self.b.get(self.i)?;
        self.i += 1;
        Some(c)
    }

    fn byte(&mut self, want: u8) -> Option<()> {
        (self.b.get(self.i) == Some(&want)).then(|| self.i += 1)
    }

    fn one_of(&mut self, allowed: &[u8]) -> Option<()> {
        self.next().filter(|c| allowed.contains(c)).map(drop)
    }

    /// Exactly `n` ASCII digits.
    fn digits(&mut self, n: usize) -> Option<i64> {
        let end = self.i.checked_add(n)?;
        let run = self.b.get(self.i..end)?;
        if !run.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.i = end;
        Some(run.iter().fold(0, |v, d| v * 10 + i64::from(d - b'0')))
    }

    /// Every ASCII digit from here on.
    fn run_of_digits(&mut self) -> &[u8] {
        let start = self.i;
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        &self.b[start..self.i]
    }
}

/// The first instant RFC 3339 text is written for: 0000-01-01T00:00:00Z.
const FIRST_FORMATTED_MS: i64 = -62_167_219_200_000;
/// The last: 9999-12-31T23:59:59.999Z.
const LAST_FORMATTED_MS: i64 = 253_402_300_799_999;

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let (yoe, m, d) = day_of_era((z - era * 146_097) as u32); // 0..146_097
    (
        i64::from(yoe) + era * 400 + i64::from(m <= 2),
        i64::from(m),
        i64::from(d),
    )
}

/// [`civil_from_days`] for day `n` counted from 0000-01-01 (up to 9999-12-31), in 32-bit
/// arithmetic: shifted one 400-year era later, so that every intermediate is unsigned.
fn civil_from_day_number(n: u32) -> (u32, u32, u32) {
    // Days since -0400-03-01, an era before the algorithm's 0000-03-01 (and 0000-01-01 is
    // 60 days before that: 0000 is a leap year).
    let z = n + 146_097 - 60;
    let era = z / 146_097;
    let (yoe, m, d) = day_of_era(z - era * 146_097);
    ((yoe + era * 400 + u32::from(m <= 2)) - 400, m, d)
}

/// The year of its era (counted from March), month and day of day `doe` of a 400-year era
/// that starts on a 1 March.
fn day_of_era(doe: u32) -> (u32, u32, u32) {
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the parsers were before they were written by hand: chrono behind the same gate.
    fn chrono_3339(s: &str) -> Option<i64> {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis())
            .and_then(Timestamp::within_years)
            .map(Timestamp::millis)
    }

    fn chrono_2822(s: &str) -> Option<i64> {
        // Behind the same gate as `parse_rfc2822`, as it stood with chrono.
        let normalized = rfc2822_tokens(s)?;
        chrono::DateTime::parse_from_rfc2822(&normalized)
            .ok()
            .and_then(|t| Timestamp::within_years(t.timestamp_millis()))
            .map(Timestamp::millis)
    }

    /// A deterministic stream of choices (splitmix64).
    struct Choices(u64);

    impl Choices {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) % n as u64) as usize
        }

        fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
            options[self.below(options.len())]
        }

        fn digits(&mut self, n: usize) -> String {
            (0..n)
                .map(|_| char::from(b'0' + self.below(10) as u8))
                .collect()
        }
    }

    /// Mostly well-formed texts, with one field now and then out of range or misshapen.
    fn texts_3339(c: &mut Choices) -> String {
        let year = c.pick(&[
            "2024", "1970", "0000", "9999", "2000", "1900", "0001", "202", "20245",
        ]);
        let month = c.pick(&["01", "02", "06", "12", "00", "13", "2", "11"]);
        let day = c.pick(&["01", "28", "29", "30", "31", "00", "32", "15", "5"]);
        let sep = c.pick(&["T", "t", " ", "_", "TT", ""]);
        let hour = c.pick(&["00", "12", "23", "24", "9", "07"]);
        let minute = c.pick(&["00", "30", "59", "60", "5"]);
        let second = c.pick(&["00", "45", "59", "60", "61", "1"]);
        let frac = match c.below(8) {
            0 => ".".to_owned(),
            1..=3 => String::new(),
            n => {
                let count = n * 3 - 10 + c.below(4);
                format!(".{}", c.digits(count))
            }
        };
        let zone = c.pick(&[
            "Z",
            "z",
            "+00:00",
            "-00:00",
            "+05:30",
            "-08:00",
            "+23:59",
            "+24:00",
            "-23:60",
            "+0530",
            "+05",
            "",
            "ZZ",
            "+05:30 ",
            "\u{2212}05:00",
            "UTC",
        ]);
        let text = format!("{year}-{month}-{day}{sep}{hour}:{minute}:{second}{frac}{zone}");
        if c.below(20) == 0 && text.is_ascii() {
            // A byte dropped or doubled somewhere.
            let at = c.below(text.len().max(1));
            let (a, b) = text.split_at(at.min(text.len()));
            return if c.below(2) == 0 {
                format!("{a}{}", b.get(1..).unwrap_or(""))
            } else {
                format!("{a}{}{b}", b.chars().next().unwrap_or('0'))
            };
        }
        text
    }

    fn texts_2822(c: &mut Choices) -> String {
        let weekday = c.pick(&[
            "",
            "Tue, ",
            "tue,",
            "TUE , ",
            "Mon, ",
            "Thu, ",
            "Sat,",
            "Tuesday, ",
            "Xyz, ",
        ]);
        let day = c.pick(&["05", "5", "1", "31", "30", "29", "00", "0", "32", "005"]);
        let month = c.pick(&["Mar", "mar", "FEB", "Feb", "Dec", "Jan", "Sept", "Mrz"]);
        let year = c.pick(&[
            "2024", "24", "49", "50", "99", "112", "009", "1987", "0654", "2", "2100", "2000",
        ]);
        let time = c.pick(&[
            "18:22:13",
            "18:22",
            "00:00:00",
            "23:59:60",
            "23:59:59",
            "24:00",
            "12:60",
            "7:05",
            "12:30:",
            "12:30:5",
            "12:30:45:00",
            "12 :30",
            "12: 30",
        ]);
        let zone = c.pick(&[
            "+0000",
            "-0000",
            "+0530",
            "-0800",
            "+2359",
            "+2400",
            "+0060",
            "GMT",
            "gmt",
            "UT",
            "Z",
            "EST",
            "edt",
            "CST",
            "cdt",
            "MST",
            "mdt",
            "PST",
            "pdt",
            "A",
            "J",
            "j",
            "y",
            "Q",
            "UTC",
            "+00000",
            "+000",
            "",
            "GMT+1",
            "(comment)",
        ]);
        let gap = |c: &mut Choices| c.pick(&[" ", " ", " ", "  ", "\t", " \t "]).to_owned();
        let mut text = format!(
            "{weekday}{day}{}{month}{}{year}{}{time}{}{zone}",
            gap(c),
            gap(c),
            gap(c),
            gap(c)
        );
        if c.below(6) == 0 {
            text = format!(
                "{}{text}{}",
                c.pick(&["", " ", "\t"]),
                c.pick(&["", " ", "\n", " x"])
            );
        }
        text
    }

    #[test]
    fn the_hand_written_parsers_accept_exactly_what_chrono_did_at_the_same_instant() {
        let mut c = Choices(2026);
        let (mut accepted_3339, mut accepted_2822) = (0, 0);
        for _ in 0..200_000 {
            let s = texts_3339(&mut c);
            // One deliberate difference: chrono also takes U+2212 as an offset's minus sign,
            // which RFC 3339 (ASCII only) does not.
            let want = if s.contains('\u{2212}') {
                None
            } else {
                chrono_3339(&s)
            };
            assert_eq!(
                Timestamp::parse_rfc3339(&s).map(Timestamp::millis),
                want,
                "{s:?}"
            );
            accepted_3339 += usize::from(want.is_some());
            let s = texts_2822(&mut c);
            let want = chrono_2822(&s);
            assert_eq!(
                Timestamp::parse_rfc2822(&s).map(Timestamp::millis),
                want,
                "{s:?}"
            );
            accepted_2822 += usize::from(want.is_some());
        }
        // Both sides of each grammar were exercised.
        assert!((1_000..180_000).contains(&accepted_3339), "{accepted_3339}");
        assert!((1_000..180_000).contains(&accepted_2822), "{accepted_2822}");
    }

    #[test]
    fn a_full_date_is_what_chrono_made_of_it_for_every_day_of_four_centuries() {
        for day in Timestamp::from_millis(-62_167_219_200_000).day()
            ..=Timestamp::from_millis(253_402_300_799_999).day()
        {
            let date = Timestamp::date_of_day(day);
            let want = chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc().timestamp_millis());
            assert_eq!(
                Timestamp::parse_date(&date).map(Timestamp::millis),
                want,
                "{date}"
            );
        }
        for impossible in [
            "2023-02-29",
            "2100-02-29",
            "2024-04-31",
            "2024-00-10",
            "2024-13-01",
            "2024-01-00",
        ] {
            assert_eq!(Timestamp::parse_date(impossible), None, "{impossible}");
        }
        assert!(
            Timestamp::parse_date("2000-02-29").is_some()
                && Timestamp::parse_date("2024-02-29").is_some()
        );
    }

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
    fn every_instant_from_year_0_to_9999_formats_as_chrono_writes_it() {
        const FIRST: i64 = super::FIRST_FORMATTED_MS;
        const LAST: i64 = super::LAST_FORMATTED_MS;
        let mut samples = vec![
            FIRST,
            FIRST + 1,
            FIRST + 59 * MS_PER_DAY,
            FIRST + 60 * MS_PER_DAY,
        ];
        samples.extend([-1, 0, 1, 951_782_399_999, 951_868_799_999, LAST - 1, LAST]);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let span = (LAST - FIRST) as u64 + 1;
            let ms = FIRST + (x % span) as i64;
            // Whole seconds and whole days too, where the fraction and the time go.
            samples.extend([ms, ms - ms.rem_euclid(1000), ms - ms.rem_euclid(MS_PER_DAY)]);
        }
        for ms in samples {
            let expected = chrono::DateTime::from_timestamp_millis(ms)
                .expect("in chrono's range")
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
            assert_eq!(Timestamp::from_millis(ms).to_string(), expected, "{ms}");
        }
        assert_eq!(Timestamp::from_millis(FIRST - 1).rfc3339_bytes(), None);
        assert_eq!(Timestamp::from_millis(LAST + 1).rfc3339_bytes(), None);
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
