//! The D1 adapter: binds [`Statement`]s to the runtime's D1 binding. The only file in the
//! store that touches the runtime.
//!
//! It drives the binding's own objects (`prepare`, `all`, `batch`) rather than
//! `worker::D1Result`, so that a read's JSON texts can leave D1's result as bytes
//! ([`RowSet::texts`]); everything else still decodes through serde.

use super::{Database, QueryMeta, RowSet, SqlValue, Statement};
use crate::error::{AppError, AppResult};
use serde::de::DeserializeOwned;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::js_sys::{self, Array, Reflect, Uint8Array};
use worker::wasm_bindgen_futures::JsFuture;
use worker::worker_sys::types::{D1Database as D1DatabaseSys, D1Result as D1ResultSys};
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
    fn prepare(&self, st: &Statement) -> AppResult<worker::D1PreparedStatement> {
        let params: Vec<JsValue> = st
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
        self.0
            .prepare(st.sql)
            .bind(&params)
            .map_err(|e| AppError::unavailable(format!("D1: binding a statement: {e}")))
    }
}

/// Serde over the runtime's rows: for the small shapes (versions, counts, aggregates).
fn from_js<T: DeserializeOwned>(value: JsValue) -> AppResult<T> {
    serde_wasm_bindgen::from_value(value)
        .map_err(|e| AppError::internal(format!("decoding D1 rows: {e}")))
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
    fn decode<T: DeserializeOwned>(&self) -> AppResult<Vec<T>> {
        self.rows()?.iter().map(from_js).collect()
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
        #[derive(serde::Deserialize)]
        struct Meta {
            rows_read: Option<u64>,
            rows_written: Option<u64>,
            changes: Option<u64>,
        }
        match self.0.meta().map(JsValue::from).map(from_js::<Meta>) {
            Ok(Ok(m)) => QueryMeta {
                rows_read: m.rows_read.unwrap_or(0),
                rows_written: m.rows_written.unwrap_or(0),
                changes: m.changes.unwrap_or(0),
            },
            _ => QueryMeta::default(),
        }
    }
}

impl Database for D1 {
    type Rows = D1Rows;

    async fn query(&self, statement: Statement) -> AppResult<D1Rows> {
        let prepared = self.prepare(&statement)?;
        let promise = prepared.inner().all().map_err(d1_err)?;
        let result = JsFuture::from(promise).await.map_err(d1_err)?;
        Ok(D1Rows(result.unchecked_into()))
    }

    async fn batch(&self, statements: Vec<Statement>) -> AppResult<Vec<D1Rows>> {
        let prepared = statements
            .iter()
            .map(|s| self.prepare(s).map(|p| JsValue::from(p.inner().clone())))
            .collect::<AppResult<Array>>()?;
        let db: &D1DatabaseSys = self.0.as_ref().as_ref().unchecked_ref();
        let promise = db.batch(prepared).map_err(d1_err)?;
        let results = JsFuture::from(promise).await.map_err(d1_err)?;
        let results: Array = results
            .dyn_into()
            .map_err(|_| AppError::internal("D1: a batch answered something other than a list"))?;
        Ok(results.iter().map(|r| D1Rows(r.unchecked_into())).collect())
    }
}
