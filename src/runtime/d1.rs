//! The D1 adapter: binds the store's [`Statement`]s to the runtime's D1 binding (the store
//! itself never touches the runtime).
//!
//! It drives the binding's own objects (`prepare`, `all`, `batch`) rather than
//! `worker::D1Result`, so that a read's JSON texts can leave D1's result as bytes
//! ([`RowSet::texts`]); everything else is read column by column ([`Row`]).

use crate::error::{AppError, AppResult};
use crate::store::{Columns, Database, FromRow, QueryMeta, Row, RowSet, SqlValue, Statement};
use std::cell::RefCell;
use std::collections::HashMap;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::js_sys::{self, Array, Reflect, Uint8Array};
use worker::worker_sys::types::{
    D1Database as D1DatabaseSys, D1PreparedStatement as D1PreparedStatementSys,
    D1Result as D1ResultSys,
};
use worker::D1Database;

pub struct D1(pub std::rc::Rc<D1Database>);

/// The rows and metadata of one statement, as the runtime returned them.
pub struct D1Rows(D1ResultSys);

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

#[wasm_bindgen]
extern "C" {
    /// The D1 binding seen only for `prepare` with the SQL as a JavaScript string already
    /// made (worker-sys's binding takes a Rust `&str`, decoded again on every call).
    type D1Prepare;
    #[wasm_bindgen(method, catch, js_name = prepare)]
    fn prepare_js(this: &D1Prepare, query: &JsValue) -> Result<D1PreparedStatementSys, JsValue>;

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
    /// Each statement's SQL as a JavaScript string, made once per isolate: the texts are
    /// `'static` and up to a few KB, and decoding them from wasm memory on every request
    /// was a visible part of a webhook's time. Keyed by the text's address (there are a few
    /// dozen statements, so the map stays that small).
    static SQL_TEXTS: RefCell<HashMap<usize, JsValue>> = RefCell::new(HashMap::new());
}

fn sql_text(sql: &'static str) -> JsValue {
    SQL_TEXTS.with(|texts| {
        texts
            .borrow_mut()
            .entry(sql.as_ptr() as usize)
            .or_insert_with(|| JsValue::from_str(sql))
            .clone()
    })
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
    fn database(&self) -> &D1DatabaseSys {
        self.0.as_ref().as_ref().unchecked_ref()
    }

    fn prepare(&self, st: &Statement) -> AppResult<D1PreparedStatementSys> {
        let params: Array = st
            .params
            .iter()
            .map(|p| match p {
                SqlValue::Null => JsValue::NULL,
                // Epoch milliseconds and counts stay well inside f64's exact integer range.
                SqlValue::Integer(i) => JsValue::from_f64(*i as f64),
                SqlValue::Real(f) => JsValue::from_f64(*f),
                SqlValue::Text(s) => JsValue::from_str(s),
            })
            .collect();
        let binding: &D1Prepare = self.0.as_ref().as_ref().unchecked_ref();
        let prepared = binding.prepare_js(&sql_text(st.sql)).map_err(d1_err)?;
        prepared.bind(params).map_err(d1_err)
    }
}

/// A row as the runtime returned it: a JavaScript object of its columns.
struct JsRow(JsValue);

impl Row for JsRow {
    fn value(&self, column: &str) -> Option<SqlValue> {
        let value = Reflect::get(&self.0, &JsValue::from_str(column)).ok()?;
        if value.is_undefined() {
            return None;
        }
        if let Some(n) = value.as_f64() {
            // D1 hands INTEGER and REAL alike to JavaScript as a number; a whole one within
            // f64's exact range is read as the integer it was.
            const EXACT: f64 = 9_007_199_254_740_992.0;
            return Some(if n.fract() == 0.0 && n.abs() <= EXACT {
                SqlValue::Integer(n as i64)
            } else {
                SqlValue::Real(n)
            });
        }
        Some(match value.as_string() {
            Some(text) => SqlValue::Text(text),
            None => SqlValue::Null,
        })
    }
}

/// A number field of a result's `meta`, when it is one.
fn meta_count(meta: &JsValue, name: &str) -> u64 {
    Reflect::get(meta, &JsValue::from_str(name))
        .ok()
        .and_then(|v| v.as_f64())
        .filter(|n| *n >= 0.0)
        .map_or(0, |n| n as u64)
}

impl D1Rows {
    fn rows(&self) -> AppResult<Array> {
        match self.0.results() {
            Ok(Some(rows)) => Ok(rows),
            Ok(None) => Ok(Array::new()),
            Err(e) => Err(AppError::internal(format!("reading D1 rows: {e:?}"))),
        }
    }
}

impl RowSet for D1Rows {
    fn decode<T: FromRow>(&self) -> AppResult<Vec<T>> {
        self.rows()?
            .iter()
            .map(|row| T::from_row(&Columns::new(&JsRow(row))))
            .collect()
    }

    fn texts(&self, column: &str) -> AppResult<Vec<String>> {
        let missing = || AppError::internal(format!("a D1 row without text {column}"));
        let key = JsValue::from_str(column);
        self.rows()?
            .iter()
            .map(|row| {
                let value = Reflect::get(&row, &key).map_err(|_| missing())?;
                string_from_js(&value).ok_or_else(missing)
            })
            .collect()
    }

    fn meta(&self) -> QueryMeta {
        match self.0.meta() {
            Ok(meta) => {
                let meta = JsValue::from(meta);
                QueryMeta {
                    rows_read: meta_count(&meta, "rows_read"),
                    rows_written: meta_count(&meta, "rows_written"),
                    changes: meta_count(&meta, "changes"),
                }
            }
            Err(_) => QueryMeta::default(),
        }
    }
}

impl Database for D1 {
    type Rows = D1Rows;

    async fn query(&self, statement: Statement) -> AppResult<D1Rows> {
        let prepared = self.prepare(&statement)?;
        let promise = prepared.all().map_err(d1_err)?;
        let result = super::settle::settled(&promise).await.map_err(d1_err)?;
        Ok(D1Rows(result.unchecked_into()))
    }

    async fn batch(&self, statements: Vec<Statement>) -> AppResult<Vec<D1Rows>> {
        let prepared = statements
            .iter()
            .map(|s| self.prepare(s).map(JsValue::from))
            .collect::<AppResult<Array>>()?;
        let promise = self.database().batch(prepared).map_err(d1_err)?;
        let results = super::settle::settled(&promise).await.map_err(d1_err)?;
        let results: Array = results
            .dyn_into()
            .map_err(|_| AppError::internal("D1: a batch answered something other than a list"))?;
        Ok(results.iter().map(|r| D1Rows(r.unchecked_into())).collect())
    }
}
