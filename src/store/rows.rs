//! Row shapes as D1 returns them, and their one-way conversion into domain types. A row that
//! does not parse (an unknown status, a bad id) is a data bug: it becomes an internal error
//! naming the column, never a silently wrong response.

use super::{Columns, FromRow};
use crate::domain::{Analysis, AnalysisStatus, Enrichment, Timestamp};
#[cfg(test)]
use crate::domain::{Call, CallId, CallStatus, Direction, Provider, Recording};
use crate::error::{AppError, AppResult};

fn bad(column: &str, value: &str) -> AppError {
    AppError::internal(format!("unexpected {column} in D1 row: {value:?}"))
}

/// A call's JSON as D1 built it (`sql::call_json!`, its timestamps epoch milliseconds) with
/// each timestamp written as RFC 3339, exactly as `Timestamp` serializes. A timestamp key
/// is found by its text: `At":` cannot occur inside a string (a quote there is escaped), so
/// every occurrence ends a key, and the key is one of the call's own.
pub(super) fn with_rfc3339_times(json: &str) -> AppResult<String> {
    // A byte scan rather than `str::find`: a page of 100 calls holds 500 timestamps, and
    // building a substring searcher for each one, then `core::fmt` for each timestamp, was
    // most of a D1 page's time in wasm.
    let bytes = json.as_bytes();
    let mut out = String::with_capacity(json.len() + json.len() / 8);
    let (mut copied, mut from) = (0, 0);
    while let Some(at) = find_key_end(bytes, from) {
        from = at;
        if !is_time_key(&bytes[..at]) {
            continue;
        }
        let digits = bytes[at..]
            .iter()
            .position(|&b| !(b.is_ascii_digit() || b == b'-'))
            .map_or(bytes.len(), |n| at + n);
        if digits == at {
            continue; // null
        }
        let ms =
            parse_millis(&bytes[at..digits]).ok_or_else(|| bad("timestamp", &json[at..digits]))?;
        out.push_str(&json[copied..at]);
        out.push('"');
        Timestamp::from_millis(ms).push_rfc3339(&mut out);
        out.push('"');
        (copied, from) = (digits, digits);
    }
    out.push_str(&json[copied..]);
    Ok(out)
}

/// Whether `before` (the text up to the end of a key `…At":`) ends with one of a call's
/// timestamp keys: `"startedAt":`, `"endedAt":`, `"completedAt":`, `"createdAt":` or
/// `"updatedAt":`.
fn is_time_key(before: &[u8]) -> bool {
    let Some(name) = before.strip_suffix(b"At\":") else {
        return false;
    };
    [
        &b"\"started"[..],
        b"\"ended",
        b"\"completed",
        b"\"created",
        b"\"updated",
    ]
    .iter()
    .any(|key| name.ends_with(key))
}

/// Where the next `At":` after `from` ends: the end of a key such as `"startedAt":`. The text
/// cannot occur inside a string (a quote there is escaped), so every occurrence ends a key.
/// The `A`s are looked for eight bytes at a time (a page is tens of KB, and a byte loop
/// over it was a third of rewriting its times).
fn find_key_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    loop {
        let a = next_byte(bytes, i, b'A')?;
        if bytes.get(a..a + 4) == Some(b"At\":") {
            return Some(a + 4);
        }
        i = a + 1;
    }
}

/// The index of the first `byte` at or after `from` in `bytes`, reading a word at a time: a
/// word holds `byte` where XOR with it leaves a zero byte, and the lowest zero byte of `x`
/// is the lowest set bit of `(x - 0x01…) & !x & 0x80…` (borrows only run upward, past it).
fn next_byte(bytes: &[u8], from: usize, byte: u8) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    let pattern = ONES * u64::from(byte);
    let rest = bytes.get(from..)?;
    let mut words = rest.chunks_exact(8);
    let mut at = from;
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let x = u64::from_le_bytes(w) ^ pattern;
        let found = x.wrapping_sub(ONES) & !x & HIGHS;
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = words.remainder();
    tail.iter().position(|&b| b == byte).map(|p| at + p)
}

/// Epoch milliseconds as SQLite writes an integer: an optional `-`, then digits. `None` for
/// anything else or a value past `i64`.
fn parse_millis(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() {
        return None;
    }
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let d = i64::from(d - b'0');
        value = value
            .checked_mul(10)?
            .checked_add(if negative { -d } else { d })?;
    }
    Some(value)
}

/// A call list's row (`sql::call_json_array!`) but its JSON text, which is read apart
/// ([`super::RowSet::texts`]): how many calls the list holds (`n`) and, for a page, the
/// version the same statement saw (`v`).
pub(super) struct ListRow {
    pub n: u64,
    pub v: Option<i64>,
}

impl FromRow for ListRow {
    fn from_row(row: &Columns<'_>) -> AppResult<Self> {
        Ok(ListRow {
            n: row.count("n")?,
            v: row.opt_int("v")?,
        })
    }
}

/// A row's version column (`v`), as a versioned read's statement saw it. Only this field is
/// decoded: the row's JSON text is left alone.
pub(super) struct RowVersion {
    pub v: i64,
}

impl FromRow for RowVersion {
    fn from_row(row: &Columns<'_>) -> AppResult<Self> {
        Ok(RowVersion { v: row.int("v")? })
    }
}

/// A call column by column: the tests' reference for what D1's JSON must equal.
#[cfg(test)]
pub(super) struct CallRow {
    id: String,
    provider: String,
    direction: String,
    from_number: String,
    to_number: String,
    status: String,
    answered: i64,
    started_at: i64,
    ended_at: Option<i64>,
    duration_seconds: Option<i64>,
    created_at: i64,
    updated_at: i64,
    rec_id: Option<String>,
    rec_url: Option<String>,
    rec_duration: Option<i64>,
    rec_status: Option<String>,
    an_status: Option<String>,
    an_intent: Option<String>,
    an_confidence: Option<f64>,
    an_summary: Option<String>,
    an_completed_at: Option<i64>,
    en_phone: Option<String>,
    en_caller_name: Option<String>,
    en_caller_type: Option<String>,
    en_line_type: Option<String>,
    en_carrier: Option<String>,
    en_spam_score: Option<f64>,
    en_updated_at: Option<i64>,
}

#[cfg(test)]
impl FromRow for CallRow {
    fn from_row(row: &Columns<'_>) -> AppResult<Self> {
        Ok(CallRow {
            id: row.text("id")?,
            provider: row.text("provider")?,
            direction: row.text("direction")?,
            from_number: row.text("from_number")?,
            to_number: row.text("to_number")?,
            status: row.text("status")?,
            answered: row.int("answered")?,
            started_at: row.int("started_at")?,
            ended_at: row.opt_int("ended_at")?,
            duration_seconds: row.opt_int("duration_seconds")?,
            created_at: row.int("created_at")?,
            updated_at: row.int("updated_at")?,
            rec_id: row.opt_text("rec_id")?,
            rec_url: row.opt_text("rec_url")?,
            rec_duration: row.opt_int("rec_duration")?,
            rec_status: row.opt_text("rec_status")?,
            an_status: row.opt_text("an_status")?,
            an_intent: row.opt_text("an_intent")?,
            an_confidence: row.opt_real("an_confidence")?,
            an_summary: row.opt_text("an_summary")?,
            an_completed_at: row.opt_int("an_completed_at")?,
            en_phone: row.opt_text("en_phone")?,
            en_caller_name: row.opt_text("en_caller_name")?,
            en_caller_type: row.opt_text("en_caller_type")?,
            en_line_type: row.opt_text("en_line_type")?,
            en_carrier: row.opt_text("en_carrier")?,
            en_spam_score: row.opt_real("en_spam_score")?,
            en_updated_at: row.opt_int("en_updated_at")?,
        })
    }
}

#[cfg(test)]
impl CallRow {
    pub(super) fn into_call(self) -> AppResult<Call> {
        let analysis = match self.an_status {
            Some(status) => Some(
                AnalysisRow {
                    status,
                    intent: self.an_intent,
                    confidence: self.an_confidence,
                    summary: self.an_summary,
                    completed_at: self.an_completed_at,
                }
                .into_analysis()?,
            ),
            None => None,
        };
        let recording = self.rec_id.map(|id| Recording {
            id,
            url: self.rec_url,
            duration_seconds: self.rec_duration,
            status: self.rec_status.unwrap_or_else(|| "completed".to_owned()),
        });
        let enrichment = match (self.en_phone, self.en_updated_at) {
            (Some(phone_number), Some(updated_at)) => Some(
                EnrichmentRow {
                    phone_number,
                    caller_name: self.en_caller_name,
                    caller_type: self.en_caller_type,
                    line_type: self.en_line_type,
                    carrier: self.en_carrier,
                    spam_score: self.en_spam_score,
                    updated_at,
                }
                .into_enrichment(),
            ),
            _ => None,
        };
        Ok(Call {
            id: CallId::parse(&self.id).ok_or_else(|| bad("calls.id", &self.id))?,
            provider: Provider::parse(&self.provider)
                .ok_or_else(|| bad("calls.provider", &self.provider))?,
            direction: Direction::parse(&self.direction)
                .ok_or_else(|| bad("calls.direction", &self.direction))?,
            from: self.from_number,
            to: self.to_number,
            status: CallStatus::parse(&self.status)
                .ok_or_else(|| bad("calls.status", &self.status))?,
            answered: self.answered != 0,
            started_at: Timestamp::from_millis(self.started_at),
            ended_at: self.ended_at.map(Timestamp::from_millis),
            duration_seconds: self.duration_seconds,
            recording,
            analysis,
            enrichment,
            created_at: Timestamp::from_millis(self.created_at),
            updated_at: Timestamp::from_millis(self.updated_at),
        })
    }
}

pub(super) struct AnalysisRow {
    status: String,
    intent: Option<String>,
    confidence: Option<f64>,
    summary: Option<String>,
    completed_at: Option<i64>,
}

impl FromRow for AnalysisRow {
    fn from_row(row: &Columns<'_>) -> AppResult<Self> {
        Ok(AnalysisRow {
            status: row.text("status")?,
            intent: row.opt_text("intent")?,
            confidence: row.opt_real("confidence")?,
            summary: row.opt_text("summary")?,
            completed_at: row.opt_int("completed_at")?,
        })
    }
}

impl AnalysisRow {
    pub(super) fn into_analysis(self) -> AppResult<Analysis> {
        Ok(Analysis {
            status: AnalysisStatus::parse(&self.status)
                .ok_or_else(|| bad("analyses.status", &self.status))?,
            intent: self.intent,
            confidence: self.confidence,
            summary: self.summary,
            completed_at: self.completed_at.map(Timestamp::from_millis),
        })
    }
}

pub(super) struct EnrichmentRow {
    phone_number: String,
    caller_name: Option<String>,
    caller_type: Option<String>,
    line_type: Option<String>,
    carrier: Option<String>,
    spam_score: Option<f64>,
    updated_at: i64,
}

impl FromRow for EnrichmentRow {
    fn from_row(row: &Columns<'_>) -> AppResult<Self> {
        Ok(EnrichmentRow {
            phone_number: row.text("phone_number")?,
            caller_name: row.opt_text("caller_name")?,
            caller_type: row.opt_text("caller_type")?,
            line_type: row.opt_text("line_type")?,
            carrier: row.opt_text("carrier")?,
            spam_score: row.opt_real("spam_score")?,
            updated_at: row.int("updated_at")?,
        })
    }
}

impl EnrichmentRow {
    pub(super) fn into_enrichment(self) -> Enrichment {
        Enrichment {
            phone_number: self.phone_number,
            caller_name: self.caller_name,
            caller_type: self.caller_type,
            line_type: self.line_type,
            carrier: self.carrier,
            spam_score: self.spam_score,
            updated_at: Timestamp::from_millis(self.updated_at),
        }
    }
}

#[derive(Default)]
pub(super) struct StatsRow {
    pub total_calls: i64,
    pub answered_calls: i64,
    pub completed_analyses: i64,
    pub confidence_sum: f64,
}

impl FromRow for StatsRow {
    fn from_row(row: &Columns<'_>) -> AppResult<Self> {
        Ok(StatsRow {
            total_calls: row.int("total_calls")?,
            answered_calls: row.int("answered_calls")?,
            completed_analyses: row.int("completed_analyses")?,
            confidence_sum: row.real("confidence_sum")?,
        })
    }
}

pub(super) struct IntentRow {
    pub intent: String,
    pub calls: i64,
}

impl FromRow for IntentRow {
    fn from_row(row: &Columns<'_>) -> AppResult<Self> {
        Ok(IntentRow {
            intent: row.text("intent")?,
            calls: row.int("calls")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{next_byte, parse_millis, with_rfc3339_times};

    #[test]
    fn a_byte_is_found_a_word_at_a_time_exactly_where_a_byte_loop_finds_it() {
        let mut x: u32 = 0x2545_f491;
        let mut bytes = Vec::new();
        for _ in 0..4096 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            // Few distinct values, high bits included (where a word's borrows could mislead).
            bytes.push([b'A', 0x00, 0x40, 0x41 ^ 0x80, 0xC1, 0xFF, b'B', 0x01][(x % 8) as usize]);
        }
        for from in 0..=bytes.len() + 1 {
            for byte in [b'A', 0x00, 0xFF, 0x01, b'Z'] {
                let naive = bytes
                    .get(from..)
                    .and_then(|rest| rest.iter().position(|&b| b == byte))
                    .map(|p| from + p);
                assert_eq!(
                    next_byte(&bytes, from, byte),
                    naive,
                    "{byte:#x} from {from}"
                );
            }
        }
    }

    #[test]
    fn milliseconds_parse_as_sqlite_writes_integers_and_nothing_else() {
        for (text, want) in [
            ("0", Some(0)),
            ("-1", Some(-1)),
            ("1709662933045", Some(1_709_662_933_045)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-", None),
            ("", None),
            ("1-2", None),
            ("--1", None),
        ] {
            assert_eq!(parse_millis(text.as_bytes()), want, "{text:?}");
        }
    }

    #[test]
    fn a_whole_list_is_rewritten_as_each_of_its_calls_would_be() {
        let one = r#"{"id":"CA1","startedAt":1709662933045,"endedAt":null,"createdAt":0,"updatedAt":-62167219200000}"#;
        let list = format!("[{one},{one}]");
        let each = with_rfc3339_times(one).expect("rewrites");
        assert_eq!(
            with_rfc3339_times(&list).expect("rewrites"),
            format!("[{each},{each}]")
        );
        assert!(with_rfc3339_times(r#"{"startedAt":1-2}"#).is_err());
    }

    #[test]
    fn only_a_calls_own_timestamp_keys_are_rewritten_and_strings_that_look_like_them_are_not() {
        let json = concat!(
            r#"{"id":"CA1","from":"\"startedAt\":5","startedAt":-1,"endedAt":null,"#,
            r#""analysis":{"summary":"lastAt\":1 \\\"updatedAt\":2","completedAt":1709662933045},"#,
            r#""waitedAt":7,"createdAt":0,"updatedAt":1709662933000}"#
        );
        let want = concat!(
            r#"{"id":"CA1","from":"\"startedAt\":5","startedAt":"1969-12-31T23:59:59.999Z","endedAt":null,"#,
            r#""analysis":{"summary":"lastAt\":1 \\\"updatedAt\":2","completedAt":"2024-03-05T18:22:13.045Z"},"#,
            r#""waitedAt":7,"createdAt":"1970-01-01T00:00:00Z","updatedAt":"2024-03-05T18:22:13Z"}"#
        );
        assert_eq!(with_rfc3339_times(json).expect("rewrites"), want);
        assert!(serde_json::from_str::<serde_json::Value>(want).is_ok());
    }
}
