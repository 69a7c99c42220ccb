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

/// How many values `sql::call_values!` lists for a call.
const CALL_VALUES: usize = 28;

/// One call as the API writes it (the bytes `json_writer` gives a `domain::Call`) from the
/// values SQLite listed for it (`sql::call_values!`): `[…]` → `{"id":…}`.
pub(super) fn call_from_values(values: &str) -> AppResult<String> {
    let mut out = String::with_capacity(values.len() * 2 + 256);
    let mut at = Values::new(values);
    write_call(&mut at, &mut out)?;
    at.finish()?;
    Ok(out)
}

/// A list of calls as the API writes it from a list of their values
/// (`sql::call_json_array!`): `[[…],[…]]` → `[{"id":…},{"id":…}]`, `[]` → `[]`.
pub(super) fn calls_from_values(list: &str) -> AppResult<String> {
    // The keys about double a call's values; one allocation for a page.
    let mut out = String::with_capacity(list.len() * 2 + 256);
    let mut at = Values::new(list);
    at.expect(b'[')?;
    out.push('[');
    if !at.eat(b']') {
        loop {
            write_call(&mut at, &mut out)?;
            if at.eat(b',') {
                out.push(',');
                continue;
            }
            at.expect(b']')?;
            break;
        }
    }
    out.push(']');
    at.finish()?;
    Ok(out)
}

/// What a call's JSON is written from: each entry's text (a key, with what closes and
/// separates before it), then what follows it.
#[derive(Clone, Copy)]
enum Put {
    /// The value at this index, as SQLite wrote it.
    Value(usize),
    /// The timestamp at this index (epoch milliseconds or `null`) as RFC 3339.
    Time(usize),
    /// `true` when the value at this index is 1, `false` otherwise (0 or `null`).
    Flag(usize),
    /// An object whose entries are the next ones, up to its `End`: `null` instead, skipping
    /// them, when the value at either index is `null`.
    ObjectUnlessNull(usize, usize),
    /// The end of an object (`}`).
    End,
}

/// A call as `domain::Call` serializes it, from the values `sql::call_values!` lists: the
/// keys in its order, a recording, an analysis or an enrichment `null` when its first value
/// is (an enrichment also without its time).
const CALL_LAYOUT: [(&str, Put); 35] = [
    ("{\"id\":", Put::Value(0)),
    (",\"provider\":", Put::Value(1)),
    (",\"direction\":", Put::Value(2)),
    (",\"from\":", Put::Value(3)),
    (",\"to\":", Put::Value(4)),
    (",\"status\":", Put::Value(5)),
    (",\"answered\":", Put::Flag(6)),
    (",\"startedAt\":", Put::Time(7)),
    (",\"endedAt\":", Put::Time(8)),
    (",\"durationSeconds\":", Put::Value(9)),
    (",\"recording\":", Put::ObjectUnlessNull(10, 10)),
    ("{\"id\":", Put::Value(10)),
    (",\"url\":", Put::Value(11)),
    (",\"durationSeconds\":", Put::Value(12)),
    (",\"status\":", Put::Value(13)),
    ("}", Put::End),
    (",\"analysis\":", Put::ObjectUnlessNull(14, 14)),
    ("{\"status\":", Put::Value(14)),
    (",\"intent\":", Put::Value(15)),
    (",\"confidence\":", Put::Value(16)),
    (",\"summary\":", Put::Value(17)),
    (",\"completedAt\":", Put::Time(18)),
    ("}", Put::End),
    (",\"enrichment\":", Put::ObjectUnlessNull(19, 25)),
    ("{\"phoneNumber\":", Put::Value(19)),
    (",\"callerName\":", Put::Value(20)),
    (",\"callerType\":", Put::Value(21)),
    (",\"lineType\":", Put::Value(22)),
    (",\"carrier\":", Put::Value(23)),
    (",\"spamScore\":", Put::Value(24)),
    (",\"updatedAt\":", Put::Time(25)),
    ("}", Put::End),
    (",\"createdAt\":", Put::Time(26)),
    (",\"updatedAt\":", Put::Time(27)),
    ("}", Put::End),
];

/// The next call's values from `at`, written as the API's call (`CALL_LAYOUT`): each value's
/// JSON as SQLite wrote it (strings already escaped, numbers as `json_object` writes them),
/// `answered` as a boolean, the timestamps as RFC 3339.
fn write_call(at: &mut Values<'_>, out: &mut String) -> AppResult<()> {
    let values = at.call()?;
    let value = |n: usize| values.get(n).copied().unwrap_or(NULL);
    let mut entries = CALL_LAYOUT.iter();
    while let Some(&(text, put)) = entries.next() {
        out.push_str(text);
        match put {
            Put::Value(n) => out.push_str(value(n)),
            Put::Time(n) => push_time(out, value(n))?,
            Put::Flag(n) => out.push_str(if value(n) == "1" { "true" } else { "false" }),
            Put::ObjectUnlessNull(first, other) => {
                if value(first) == NULL || value(other) == NULL {
                    out.push_str(NULL);
                    entries.find(|(_, put)| matches!(put, Put::End));
                }
            }
            Put::End => {}
        }
    }
    Ok(())
}

/// Values SQLite did not list as `sql::call_values!` does: a data bug, never a wrong call.
fn misshapen() -> AppError {
    AppError::internal("a call's values from D1 of an unexpected shape")
}

/// SQL's NULL as JSON.
const NULL: &str = "null";

/// A timestamp value (epoch milliseconds, or `null`) as the API writes it.
fn push_time(out: &mut String, value: &str) -> AppResult<()> {
    if value == NULL {
        out.push_str(NULL);
        return Ok(());
    }
    let ms = parse_millis(value.as_bytes()).ok_or_else(|| bad("timestamp", value))?;
    out.push('"');
    Timestamp::from_millis(ms).push_rfc3339(out);
    out.push('"');
    Ok(())
}

/// A reader over SQLite's JSON arrays of SQL values: strings (escaped, never holding an
/// unescaped quote), numbers and `null`, nothing nested but the list of calls itself.
struct Values<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Values<'a> {
    fn new(text: &'a str) -> Self {
        Values { text, at: 0 }
    }

    fn eat(&mut self, byte: u8) -> bool {
        let hit = self.text.as_bytes().get(self.at) == Some(&byte);
        if hit {
            self.at += 1;
        }
        hit
    }

    fn expect(&mut self, byte: u8) -> AppResult<()> {
        if self.eat(byte) {
            Ok(())
        } else {
            Err(misshapen())
        }
    }

    fn finish(&self) -> AppResult<()> {
        if self.at == self.text.len() {
            Ok(())
        } else {
            Err(misshapen())
        }
    }

    /// One call's values: `[v0,…,v27]`.
    fn call(&mut self) -> AppResult<[&'a str; CALL_VALUES]> {
        let bytes = self.text.as_bytes();
        let mut values = [NULL; CALL_VALUES];
        for (n, value) in values.iter_mut().enumerate() {
            if bytes.get(self.at) != Some(if n == 0 { &b'[' } else { &b',' }) {
                return Err(misshapen());
            }
            let start = self.at + 1;
            let end = value_end(bytes, start).ok_or_else(misshapen)?;
            // Both ends are next to ASCII, so both are char boundaries.
            *value = self.text.get(start..end).ok_or_else(misshapen)?;
            self.at = end;
        }
        self.expect(b']')?;
        Ok(values)
    }
}

/// Where the value starting at `start` ends: after a string's closing quote, or after a
/// number's or `null`'s last byte. `None` for anything else.
fn value_end(bytes: &[u8], start: usize) -> Option<usize> {
    let rest = bytes.get(start..)?;
    if rest.first() == Some(&b'"') {
        // To the first quote no backslash escapes; an escape is two bytes, or six for `\u`
        // and four hex digits, none of which is a quote or a backslash.
        let mut i = 1;
        loop {
            match rest.get(i)? {
                b'"' => return Some(start + i + 1),
                b'\\' => i += 2,
                _ => i += 1,
            }
        }
    }
    let len = rest
        .iter()
        .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E' | b'a'..=b'z'))
        .unwrap_or(rest.len());
    (len > 0).then_some(start + len)
}

/// Epoch milliseconds as SQLite writes an integer: an optional `-`, then digits. `None` for
/// anything else or a value past `i64`.
fn parse_millis(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, text),
    };
    // Nineteen digits always fit a u64, so no multiply needs an overflow check (on wasm32,
    // a call to a 128-bit multiply per digit); the sign's range is checked once.
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    if negative {
        0i64.checked_sub_unsigned(value)
    } else {
        i64::try_from(value).ok()
    }
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
    use super::{call_from_values, calls_from_values, parse_millis};

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

    /// One call's values as `sql::call_values!` lists them, with `$id` for its id.
    fn values(id: &str) -> String {
        format!(
            concat!(
                r#"["{}","twilio","inbound","+1 \"555\"","+1\\555","completed",1,1709662933045,null,"#,
                r#"42,"RE1","https://x/r?a=1&b=\u0001",42,"completed","#,
                r#""completed","sales",0.875,"said \"buy\"",-1,"#,
                r#""+15550100",null,"consumer","mobile","AT&T",1.5e-07,1709662933000,0,-62167219200000]"#
            ),
            id
        )
    }

    #[test]
    fn a_calls_values_are_written_with_the_apis_keys_nesting_and_times() {
        let want = concat!(
            r#"{"id":"CA1","provider":"twilio","direction":"inbound","from":"+1 \"555\"","to":"+1\\555","#,
            r#""status":"completed","answered":true,"startedAt":"2024-03-05T18:22:13.045Z","endedAt":null,"#,
            r#""durationSeconds":42,"recording":{"id":"RE1","url":"https://x/r?a=1&b=\u0001","durationSeconds":42,"status":"completed"},"#,
            r#""analysis":{"status":"completed","intent":"sales","confidence":0.875,"summary":"said \"buy\"","completedAt":"1969-12-31T23:59:59.999Z"},"#,
            r#""enrichment":{"phoneNumber":"+15550100","callerName":null,"callerType":"consumer","lineType":"mobile","carrier":"AT&T","spamScore":1.5e-07,"updatedAt":"2024-03-05T18:22:13Z"},"#,
            r#""createdAt":"1970-01-01T00:00:00Z","updatedAt":"0000-01-01T00:00:00Z"}"#
        );
        assert_eq!(call_from_values(&values("CA1")).expect("writes"), want);
        assert!(serde_json::from_str::<serde_json::Value>(want).is_ok());
    }

    #[test]
    fn a_missing_recording_analysis_or_enrichment_is_null_and_answered_is_true_only_for_one() {
        let bare = r#"["CA2","retell","outbound","a","b","failed",0,5,6,null,null,null,null,"completed",null,null,null,null,null,"+1",null,null,null,null,null,null,7,8]"#;
        let want = concat!(
            r#"{"id":"CA2","provider":"retell","direction":"outbound","from":"a","to":"b","status":"failed","#,
            r#""answered":false,"startedAt":"1970-01-01T00:00:00.005Z","endedAt":"1970-01-01T00:00:00.006Z","#,
            r#""durationSeconds":null,"recording":null,"analysis":null,"enrichment":null,"#,
            r#""createdAt":"1970-01-01T00:00:00.007Z","updatedAt":"1970-01-01T00:00:00.008Z"}"#
        );
        assert_eq!(call_from_values(bare).expect("writes"), want);
        let unknown = bare.replacen(",0,5,", ",null,5,", 1);
        assert_eq!(call_from_values(&unknown).expect("writes"), want);
    }

    #[test]
    fn a_whole_list_is_written_as_each_of_its_calls_would_be() {
        let (one, two) = (values("CA1"), values("CA\\\"2"));
        let list = format!("[{one},{two}]");
        assert_eq!(
            calls_from_values(&list).expect("writes"),
            format!(
                "[{},{}]",
                call_from_values(&one).expect("writes"),
                call_from_values(&two).expect("writes")
            )
        );
        assert_eq!(calls_from_values("[]").expect("writes"), "[]");
    }

    #[test]
    fn values_of_an_unexpected_shape_are_an_error_not_a_wrong_call() {
        let good = values("CA1");
        let too_few = good.replacen("\"CA1\",", "", 1);
        let too_many = good.replacen("[", "[1,", 1);
        let bad_time = good.replacen("1709662933045", "1-2", 1);
        let open_string = good[..good.len() - 40].to_owned();
        let nested = good.replacen("42,", "[42],", 1);
        for text in [
            &too_few,
            &too_many,
            &bad_time,
            &open_string,
            &nested,
            &format!("{good}x"),
            "",
        ] {
            assert!(call_from_values(text).is_err(), "{text}");
        }
        for text in [
            "[",
            "[[]]",
            &format!("[{good}"),
            &format!("[{good},]"),
            &good,
        ] {
            assert!(calls_from_values(text).is_err(), "{text}");
        }
    }
}
