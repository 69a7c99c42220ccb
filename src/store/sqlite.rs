//! A real SQLite behind the [`Database`] trait, with the project's migrations applied, so host
//! tests run the store's exact SQL, triggers and query plans.

use super::{Columns, Database, FromRow, QueryMeta, Row, RowSet, SqlValue, Statement};
use crate::error::{AppError, AppResult};
use rusqlite::types::{Value, ValueRef};

pub struct SqliteDatabase {
    pub conn: rusqlite::Connection,
}

pub struct SqliteRows {
    rows: Vec<serde_json::Value>,
    changes: u64,
}

fn sql_err(e: rusqlite::Error) -> AppError {
    AppError::unavailable(format!("sqlite: {e}"))
}

impl SqliteDatabase {
    /// An in-memory database with every file in `migrations/` applied in order. The
    /// migrations run once per test thread; each database is a page copy of that template
    /// (the simulation makes hundreds).
    pub fn migrated() -> Self {
        thread_local! {
            static TEMPLATE: rusqlite::Connection = SqliteDatabase::apply_migrations();
        }
        let mut conn = rusqlite::Connection::open_in_memory().expect("sqlite opens in memory");
        TEMPLATE.with(|template| {
            rusqlite::backup::Backup::new(template, &mut conn)
                .and_then(|b| b.run_to_completion(1_000, std::time::Duration::ZERO, None))
                .expect("the template copies")
        });
        conn.set_prepared_statement_cache_capacity(128);
        Self { conn }
    }

    fn apply_migrations() -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_in_memory().expect("sqlite opens in memory");
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .expect("migrations/ exists")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        files.sort();
        for f in files {
            let sql = std::fs::read_to_string(&f).expect("migration is readable");
            conn.execute_batch(&sql)
                .unwrap_or_else(|e| panic!("{} applies: {e}", f.display()));
        }
        conn
    }

    pub fn exec(&self, sql: &str) {
        self.conn
            .execute_batch(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The rows of any SQL text, as JSON objects (for test assertions).
    pub fn rows(&self, sql: &str) -> Vec<serde_json::Value> {
        self.run_sql(sql, &[])
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .rows
    }

    fn run(&self, st: &Statement) -> AppResult<SqliteRows> {
        self.run_sql(st.sql, &st.params)
    }

    fn run_sql(&self, sql: &str, params: &[SqlValue]) -> AppResult<SqliteRows> {
        // Cached: the simulation runs the same few statements many thousands of times.
        let mut prepared = self.conn.prepare_cached(sql).map_err(sql_err)?;
        let params: Vec<Value> = params
            .iter()
            .map(|p| match p {
                SqlValue::Null => Value::Null,
                SqlValue::Integer(i) => Value::Integer(*i),
                SqlValue::Real(f) => Value::Real(*f),
                SqlValue::Text(s) => Value::Text(s.clone()),
            })
            .collect();
        let names: Vec<String> = prepared
            .column_names()
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut out = Vec::new();
        let mut rows = prepared
            .query(rusqlite::params_from_iter(params))
            .map_err(sql_err)?;
        while let Some(row) = rows.next().map_err(sql_err)? {
            let mut obj = serde_json::Map::new();
            for (i, name) in names.iter().enumerate() {
                let v = match row.get_ref(i).map_err(sql_err)? {
                    ValueRef::Null => serde_json::Value::Null,
                    ValueRef::Integer(n) => n.into(),
                    ValueRef::Real(f) => f.into(),
                    ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
                    ValueRef::Blob(_) => serde_json::Value::Null,
                };
                obj.insert(name.clone(), v);
            }
            out.push(serde_json::Value::Object(obj));
        }
        drop(rows);
        Ok(SqliteRows {
            rows: out,
            changes: self.conn.changes(),
        })
    }

    /// `EXPLAIN QUERY PLAN` details for a statement, one string per plan step.
    pub fn query_plan(&self, sql: &str) -> Vec<String> {
        let mut st = self
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let n = st.parameter_count();
        let params: Vec<Value> = (0..n).map(|_| Value::Integer(1)).collect();
        st.query_map(rusqlite::params_from_iter(params), |r| {
            r.get::<_, String>(3)
        })
        .expect("plan runs")
        .collect::<Result<_, _>>()
        .expect("plan rows read")
    }
}

impl AsRef<SqliteDatabase> for SqliteDatabase {
    fn as_ref(&self) -> &SqliteDatabase {
        self
    }
}

impl SqliteRows {
    /// The rows as JSON objects, for a test's own queries.
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.rows.clone()
    }
}

/// A row as `run` keeps it: a JSON object of its columns.
struct JsonRow<'a>(&'a serde_json::Value);

impl Row for JsonRow<'_> {
    fn value(&self, column: &str) -> Option<SqlValue> {
        Some(match self.0.get(column)? {
            serde_json::Value::String(s) => SqlValue::Text(s.clone()),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => SqlValue::Integer(i),
                None => SqlValue::Real(n.as_f64()?),
            },
            _ => SqlValue::Null,
        })
    }
}

impl RowSet for SqliteRows {
    fn decode<T: FromRow>(&self) -> AppResult<Vec<T>> {
        self.rows
            .iter()
            .map(|r| T::from_row(&Columns::new(&JsonRow(r))))
            .collect()
    }

    fn texts(&self, column: &str) -> AppResult<Vec<String>> {
        self.rows
            .iter()
            .map(|r| match r.get(column) {
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                _ => Err(AppError::internal(format!("row without text {column}"))),
            })
            .collect()
    }

    fn meta(&self) -> QueryMeta {
        QueryMeta {
            rows_read: self.rows.len() as u64,
            rows_written: 0,
            changes: self.changes,
        }
    }
}

impl Database for SqliteDatabase {
    type Rows = SqliteRows;

    async fn query(&self, statement: Statement) -> AppResult<SqliteRows> {
        self.run(&statement)
    }

    async fn batch(&self, statements: Vec<Statement>) -> AppResult<Vec<SqliteRows>> {
        self.conn.execute_batch("BEGIN").map_err(sql_err)?;
        let mut out = Vec::with_capacity(statements.len());
        for st in &statements {
            match self.run(st) {
                Ok(rows) => out.push(rows),
                Err(e) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    return Err(e);
                }
            }
        }
        self.conn.execute_batch("COMMIT").map_err(sql_err)?;
        Ok(out)
    }
}
