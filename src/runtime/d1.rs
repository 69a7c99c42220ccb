//! The D1 adapter: binds the store's [`Statement`]s to the runtime's D1 binding (the store
//! itself never touches the runtime).
//!
//! It drives the binding's own objects (`prepare`, `all`, `batch`) rather than
//! `worker::D1Result`, so that a read's JSON texts can leave D1's result as bytes
//! ([`RowSet::texts`]); everything else is read column by column, one call per value
//! ([`Row`]). A query or a batch crosses into JavaScript once, its parameters packed into two
//! values ([`Encoded`]), and each statement's SQL, like each column name rows are read by, is
//! a JavaScript string made once per isolate; a result's `meta` counts cross in one call.

use crate::error::{AppError, AppResult};
use crate::store::{Columns, Database, FromRow, QueryMeta, Row, RowSet, SqlValue, Statement};
use js_sys::{self, Array, Promise, Reflect, Uint8Array};
use std::cell::RefCell;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};

/// The D1 binding (a `D1Database`), shared by the isolate's requests.
pub struct D1(pub std::rc::Rc<JsValue>);

#[wasm_bindgen]
extern "C" {
    /// The rows and metadata of one statement, as the runtime returned them.
    pub type D1Result;
    #[wasm_bindgen(method, getter)]
    fn results(this: &D1Result) -> Option<Array>;
}

pub struct D1Rows(D1Result);

/// Every D1 failure is treated as transient: the client gets 503 with `Retry-After`, and the
/// message (which may quote SQL) goes only to the log.
fn d1_err(e: JsValue) -> AppError {
    let detail = match e.dyn_ref::<js_sys::Error>() {
        Some(error) => {
            let message: String = error.message().into();
            match error.cause().dyn_ref::<js_sys::Error>() {
                Some(cause) => format!("{message} ({})", String::from(cause.message())),
                None => message,
            }
        }
        None => format!("{e:?}"),
    };
    AppError::unavailable(format!("D1: {}", detail.replace('\n', " ")))
}

#[wasm_bindgen(inline_js = r#"
const SQL = [];
export function d1_sql(text) {
  return SQL.push(text) - 1;
}
function statements(db, layout, texts) {
  const out = [];
  let i = 0;
  let at = 0;
  while (i < layout.length) {
    const sql = SQL[layout[i++]];
    const params = new Array(layout[i++]);
    for (let k = 0; k < params.length; k++) {
      const kind = layout[i++];
      if (kind === 0) {
        params[k] = null;
      } else if (kind === 1) {
        params[k] = layout[i++];
      } else {
        const end = at + layout[i++];
        params[k] = texts.slice(at, end);
        at = end;
      }
    }
    out.push(db.prepare(sql).bind(...params));
  }
  return out;
}
export function d1_all(db, layout, texts) {
  return statements(db, layout, texts)[0].all();
}
export function d1_batch(db, layout, texts) {
  return db.batch(statements(db, layout, texts));
}
const count = (n) => (typeof n === "number" && n >= 0 ? n : 0);
export function d1_cell(row, key, number) {
  const value = row[key];
  if (typeof value === "number") {
    number[0] = 1;
    number[1] = value;
    return undefined;
  }
  if (typeof value === "string") {
    number[0] = 2;
    return value;
  }
  number[0] = value === undefined ? 0 : 3;
  return undefined;
}
export function d1_meta(result, out) {
  const meta = result.meta;
  if (meta) {
    out[0] = count(meta.rows_read);
    out[1] = count(meta.rows_written);
    out[2] = count(meta.changes);
  }
}"#)]
extern "C" {
    /// Keeps a statement's SQL as a JavaScript string for the isolate's life; its index.
    fn d1_sql(text: &str) -> f64;
    /// `prepare(…).bind(…).all()` of the one statement `layout` and `texts` describe.
    #[wasm_bindgen(catch)]
    fn d1_all(db: &JsValue, layout: &[f64], texts: &str) -> Result<Promise, JsValue>;
    /// `batch` of the statements `layout` and `texts` describe.
    #[wasm_bindgen(catch)]
    fn d1_batch(db: &JsValue, layout: &[f64], texts: &str) -> Result<Promise, JsValue>;
    /// `rows_read`, `rows_written` and `changes` of a result's `meta` into `out` (left as
    /// they are when absent): one crossing, where reading them field by field took two
    /// crossings and a key string made from wasm memory each.
    fn d1_meta(result: &D1Result, out: &mut [f64]);
    /// Column `key` of `row` in one crossing: its kind into `number[0]` (0 absent, 1 a
    /// number, then in `number[1]`, 2 text, returned, 3 null or anything else), where reading
    /// the value, then asking whether it is a number, then a string, took three or four.
    fn d1_cell(row: &JsValue, key: &JsValue, number: &mut [f64]) -> Option<String>;
}

#[wasm_bindgen]
extern "C" {
    /// The runtime's `TextEncoder`, taking the JavaScript string as it is: web-sys's binding
    /// takes a Rust `&str`, the other direction.
    #[wasm_bindgen(js_name = TextEncoder)]
    type Utf8Encoder;
    #[wasm_bindgen(constructor, js_class = "TextEncoder")]
    fn new() -> Utf8Encoder;
    #[wasm_bindgen(method, js_class = "TextEncoder")]
    fn encode(this: &Utf8Encoder, text: &JsValue) -> Uint8Array;
}

thread_local! {
    static ENCODER: Utf8Encoder = Utf8Encoder::new();
    /// Each statement's SQL as an index into the JavaScript side's list, which holds it as a
    /// string made once per isolate: the texts are `'static` and up to a few KB, and decoding
    /// them from wasm memory on every request was a visible part of a webhook's time. Keyed by
    /// the text's address (a few dozen statements, so a list).
    static SQL_INDEX: RefCell<Vec<(usize, f64)>> = const { RefCell::new(Vec::new()) };
    /// Column names as JavaScript strings, made once per isolate: rows are read column by
    /// column, by name, and each name made anew was a string decoded from wasm memory. The
    /// store reads a few dozen distinct columns; past [`MAX_COLUMN_KEYS`] names are made
    /// per use.
    static COLUMN_KEYS: RefCell<Vec<(Box<str>, JsValue)>> = const { RefCell::new(Vec::new()) };
}

const MAX_COLUMN_KEYS: usize = 256;

/// `column` as a JavaScript string, made once per isolate.
fn column_key(column: &str) -> JsValue {
    COLUMN_KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        if let Some((_, key)) = keys.iter().find(|(name, _)| **name == *column) {
            return key.clone();
        }
        let key = JsValue::from_str(column);
        if keys.len() < MAX_COLUMN_KEYS {
            keys.push((column.into(), key.clone()));
        }
        key
    })
}

fn sql_index(sql: &'static str) -> f64 {
    SQL_INDEX.with(|known| {
        let mut known = known.borrow_mut();
        let key = sql.as_ptr() as usize;
        if let Some(&(_, index)) = known.iter().find(|(k, _)| *k == key) {
            return index;
        }
        let index = d1_sql(sql);
        known.push((key, index));
        index
    })
}

/// Statements as the JavaScript side binds them, all parameters in two values so that a batch
/// crosses into JavaScript once: per parameter a JavaScript call and a string decoded each
/// were, for a webhook's batch of 50-odd parameters, more than the rest of preparing it.
/// `layout` holds, per statement, its SQL's index and parameter count, then per parameter a
/// kind (0 null, 1 number and the number, 2 text and its length in UTF-16 units); `texts` is
/// every text parameter, in order, in one string.
#[derive(Default)]
struct Encoded {
    layout: Vec<f64>,
    texts: String,
}

impl Encoded {
    fn push(&mut self, st: &Statement) {
        self.layout.push(sql_index(st.sql));
        self.layout.push(st.params.len() as f64);
        for p in &st.params {
            match p {
                SqlValue::Null => self.layout.push(0.0),
                // Epoch milliseconds and counts stay well inside f64's exact integer range.
                SqlValue::Integer(i) => self.layout.extend([1.0, *i as f64]),
                SqlValue::Real(f) => self.layout.extend([1.0, *f]),
                SqlValue::Text(s) => {
                    let units = if s.is_ascii() {
                        s.len()
                    } else {
                        s.chars().map(char::len_utf16).sum()
                    };
                    self.layout.extend([2.0, units as f64]);
                    self.texts.push_str(s);
                }
            }
        }
    }
}

/// A JavaScript string as a Rust one, encoded by the runtime and copied in once. wasm-bindgen's
/// own conversion (what serde and `as_string` use) copies a string into wasm memory one
/// character at a time in JavaScript, which for a page of call JSON (32 KB) cost more than the
/// rest of reading it.
fn string_from_js(value: &JsValue) -> Option<String> {
    if !value.is_string() {
        return None;
    }
    let bytes = ENCODER.with(|e| e.encode(value)).to_vec();
    String::from_utf8(bytes).ok()
}

impl D1 {
    fn database(&self) -> &JsValue {
        &self.0
    }
}

/// A row as the runtime returned it: a JavaScript object of its columns.
struct JsRow(JsValue);

impl Row for JsRow {
    fn value(&self, column: &str) -> Option<SqlValue> {
        let mut number = [0.0; 2];
        let text = d1_cell(&self.0, &column_key(column), &mut number);
        match number[0] as u8 {
            0 => None,
            1 => {
                // D1 hands INTEGER and REAL alike to JavaScript as a number; a whole one within
                // f64's exact range is read as the integer it was.
                const EXACT: f64 = 9_007_199_254_740_992.0;
                let n = number[1];
                Some(if n.fract() == 0.0 && n.abs() <= EXACT {
                    SqlValue::Integer(n as i64)
                } else {
                    SqlValue::Real(n)
                })
            }
            2 => Some(text.map_or(SqlValue::Null, SqlValue::Text)),
            _ => Some(SqlValue::Null),
        }
    }
}

impl D1Rows {
    /// The result's rows; none when it has no `results` (a statement that returns nothing).
    fn rows(&self) -> Array {
        self.0.results().unwrap_or_default()
    }
}

impl RowSet for D1Rows {
    fn decode<T: FromRow>(&self) -> AppResult<Vec<T>> {
        self.rows()
            .iter()
            .map(|row| T::from_row(&Columns::new(&JsRow(row))))
            .collect()
    }

    fn texts(&self, column: &str) -> AppResult<Vec<String>> {
        let missing = || AppError::internal(format!("a D1 row without text {column}"));
        let key = column_key(column);
        self.rows()
            .iter()
            .map(|row| {
                let value = Reflect::get(&row, &key).map_err(|_| missing())?;
                string_from_js(&value).ok_or_else(missing)
            })
            .collect()
    }

    fn meta(&self) -> QueryMeta {
        let mut counts = [0.0; 3];
        d1_meta(&self.0, &mut counts);
        let [rows_read, rows_written, changes] = counts.map(|n| n as u64);
        QueryMeta {
            rows_read,
            rows_written,
            changes,
        }
    }
}

impl Database for D1 {
    type Rows = D1Rows;

    async fn query(&self, statement: Statement) -> AppResult<D1Rows> {
        let mut encoded = Encoded::default();
        encoded.push(&statement);
        let promise = d1_all(self.database(), &encoded.layout, &encoded.texts).map_err(d1_err)?;
        drop(encoded);
        let result = super::settle::settled(&promise).await.map_err(d1_err)?;
        Ok(D1Rows(result.unchecked_into()))
    }

    async fn batch(&self, statements: Vec<Statement>) -> AppResult<Vec<D1Rows>> {
        let mut encoded = Encoded::default();
        for statement in &statements {
            encoded.push(statement);
        }
        drop(statements);
        let promise = d1_batch(self.database(), &encoded.layout, &encoded.texts).map_err(d1_err)?;
        drop(encoded);
        let results = super::settle::settled(&promise).await.map_err(d1_err)?;
        let results: Array = results
            .dyn_into()
            .map_err(|_| AppError::internal("D1: a batch answered something other than a list"))?;
        Ok(results.iter().map(|r| D1Rows(r.unchecked_into())).collect())
    }
}
