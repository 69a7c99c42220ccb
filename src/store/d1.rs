//! The D1 adapter: binds [`Statement`]s to `worker::D1Database`. The only file in the store
//! that touches the runtime.

use super::{Database, QueryMeta, RowSet, SqlValue, Statement};
use crate::error::{AppError, AppResult};
use serde::de::DeserializeOwned;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, D1Result};

pub struct D1(pub std::rc::Rc<D1Database>);

/// Every D1 failure is treated as transient: the client gets 503 with `Retry-After`, and the
/// message (which may quote SQL) goes only to the log.
fn d1_err(e: worker::Error) -> AppError {
    let detail = match &e {
        worker::Error::D1(d1) => {
            let js: &worker::js_sys::Error = d1.as_ref();
            let message: String = js.message().into();
            match d1.cause() {
                cause if cause == "unknown error" => message,
                cause => format!("{message} ({cause})"),
            }
        }
        other => other.to_string(),
    };
    AppError::unavailable(format!("D1: {}", detail.replace('\n', " ")))
}

impl D1 {
    fn prepare(&self, st: &Statement) -> AppResult<D1PreparedStatement> {
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
        self.0.prepare(st.sql).bind(&params).map_err(d1_err)
    }
}

impl RowSet for D1Result {
    fn decode<T: DeserializeOwned>(&self) -> AppResult<Vec<T>> {
        self.results()
            .map_err(|e| AppError::internal(format!("decoding D1 rows: {e}")))
    }

    fn meta(&self) -> QueryMeta {
        match D1Result::meta(self) {
            Ok(Some(m)) => QueryMeta {
                rows_read: m.rows_read.unwrap_or(0) as u64,
                rows_written: m.rows_written.unwrap_or(0) as u64,
                changes: m.changes.unwrap_or(0) as u64,
            },
            _ => QueryMeta::default(),
        }
    }
}

impl Database for D1 {
    type Rows = D1Result;

    async fn query(&self, statement: Statement) -> AppResult<D1Result> {
        self.prepare(&statement)?.all().await.map_err(d1_err)
    }

    async fn batch(&self, statements: Vec<Statement>) -> AppResult<Vec<D1Result>> {
        let prepared = statements
            .iter()
            .map(|s| self.prepare(s))
            .collect::<AppResult<Vec<_>>>()?;
        self.0.batch(prepared).await.map_err(d1_err)
    }
}
