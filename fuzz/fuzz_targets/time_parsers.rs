//! The RFC 3339 and RFC 2822 parsers: never panic, never accept what the RFC's grammar
//! refuses (checked here by an independent, syntax-only reading of each grammar), and what
//! they accept formats back to the same instant.
#![no_main]

use call_dashboard_worker::domain::Timestamp;
use libfuzzer_sys::fuzz_target;

fn digits(s: &str, n: usize) -> Option<u32> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// RFC 3339 §5.6 `date-time`, syntax and field ranges only.
fn rfc3339_grammar(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 20 || !b.is_ascii() {
        return false;
    }
    let field = |r: std::ops::Range<usize>| digits(&s[r.clone()], r.len());
    let (Some(_y), Some(mo), Some(d), Some(h), Some(mi), Some(se)) = (
        field(0..4),
        field(5..7),
        field(8..10),
        field(11..13),
        field(14..16),
        field(17..19),
    ) else {
        return false;
    };
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return false;
    }
    if b[13] != b':' || b[16] != b':' {
        return false;
    }
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest {
        "Z" | "z" => true,
        _ => {
            let o = rest.as_bytes();
            o.len() == 6
                && matches!(o[0], b'+' | b'-')
                && o[3] == b':'
                && digits(&rest[1..3], 2).is_some_and(|h| h <= 23)
                && digits(&rest[4..6], 2).is_some_and(|m| m <= 59)
        }
    }
}

/// RFC 2822 §3.3 `date-time` (with the obsolete forms §4.3 allows), syntax and ranges only.
fn rfc2822_grammar(s: &str) -> bool {
    let s = s.trim();
    if !s.is_ascii() {
        return false;
    }
    let s = match s.split_once(',') {
        Some((dow, rest)) => {
            let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
            if !days.contains(&dow.trim().to_ascii_lowercase().as_str()) {
                return false;
            }
            rest
        }
        None => s,
    };
    // Folding white space is spaces and tabs only.
    if s.bytes().any(|b| b.is_ascii_whitespace() && b != b' ' && b != b'\t') {
        return false;
    }
    let parts: Vec<&str> = s.split([' ', '\t']).filter(|t| !t.is_empty()).collect();
    let (day, month, year, time, zone) = match parts.as_slice() {
        [d, m, y, t, z] => (*d, *m, *y, *t, Some(*z)),
        [d, m, y, t] => (*d, *m, *y, *t, None),
        _ => return false,
    };
    let day_ok = (1..=2).contains(&day.len())
        && day.bytes().all(|b| b.is_ascii_digit())
        && day.parse::<u32>().is_ok_and(|d| (1..=31).contains(&d));
    // ABNF literals are case-insensitive.
    let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let month = month.to_ascii_lowercase();
    let year_ok = (2..=9).contains(&year.len()) && year.bytes().all(|b| b.is_ascii_digit());
    let hms: Vec<&str> = time.split(':').collect();
    let time_ok = (2..=3).contains(&hms.len())
        && digits(hms[0], 2).is_some_and(|h| h <= 23)
        && digits(hms[1], 2).is_some_and(|m| m <= 59)
        && hms.get(2).is_none_or(|x| digits(x, 2).is_some_and(|s| s <= 60));
    let zone_ok = match zone {
        None => true,
        Some(z) if z.len() == 5 && matches!(z.as_bytes()[0], b'+' | b'-') => {
            digits(&z[1..], 4).is_some()
        }
        // Obsolete zones: UT, GMT, US zones and single military letters.
        Some(z) => z.bytes().all(|b| b.is_ascii_alphabetic()) && (1..=3).contains(&z.len()),
    };
    day_ok && months.contains(&month.as_str()) && year_ok && time_ok && zone_ok
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(t) = Timestamp::parse_rfc3339(s) {
        assert!(rfc3339_grammar(s), "accepted what RFC 3339 refuses: {s:?}");
        assert_eq!(Timestamp::parse_rfc3339(&t.to_string()), Some(t), "{s:?}");
    }
    if let Some(t) = Timestamp::parse_rfc2822(s) {
        assert!(rfc2822_grammar(s), "accepted what RFC 2822 refuses: {s:?}");
        assert_eq!(Timestamp::parse_rfc3339(&t.to_string()), Some(t), "{s:?}");
    }
});
