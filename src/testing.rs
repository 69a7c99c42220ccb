//! Test helpers shared by the host tests: a minimal executor, call rows seeded with raw SQL,
//! and HS256 tokens signed the way a dashboard's issuer would.

use crate::domain::CallStatus;
use crate::store::sqlite::SqliteDatabase;
use crate::store::Store;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// A small deterministic generator (xorshift64) for generated test inputs, so a failure
/// names its case. The seed must not be zero.
pub struct Xorshift(pub u64);

impl Xorshift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform enough below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Drives a future that never waits on real I/O (fakes and the in-process SQLite) to the end.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// A call row for a fixture to seed: an inbound Twilio call. [`SeedCall::new`] gives it the
/// numbers the app's tests use and has it created and last updated when it started; a fixture
/// that needs other values overrides the fields.
pub struct SeedCall<'a> {
    pub id: &'a str,
    pub user: &'a str,
    pub status: CallStatus,
    pub from: &'a str,
    pub to: &'a str,
    pub started_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl<'a> SeedCall<'a> {
    pub fn new(id: &'a str, user: &'a str, status: CallStatus, started_at: i64) -> Self {
        Self {
            id,
            user,
            status,
            from: "+14155550100",
            to: "+14155550199",
            started_at,
            created_at: started_at,
            updated_at: started_at,
        }
    }
}

/// Writes `call` straight into `calls`, bypassing the webhook path, with the rank and
/// `answered` its status implies; the schema's triggers move the owner's version as a
/// webhook's write would.
pub fn insert_call(store: &Store<SqliteDatabase>, call: &SeedCall<'_>) {
    let SeedCall {
        id,
        user,
        status,
        from,
        to,
        started_at,
        created_at,
        updated_at,
    } = call;
    store.db_exec(&format!(
        "INSERT INTO calls (id, user_id, provider, direction, from_number, to_number, status, \
         status_rank, answered, started_at, created_at, updated_at) VALUES \
         ('{id}', '{user}', 'twilio', 'inbound', '{from}', '{to}', '{status}', {rank}, \
         {answered}, {started_at}, {created_at}, {updated_at})",
        status = status.as_str(),
        rank = status.rank(),
        answered = i64::from(status.is_answered()),
    ));
}

/// Signs claims as an HS256 JWT with `key`, for tests that need a token the verifier accepts
/// (or, with another key or claims, one it must refuse).
pub fn sign_hs256(claims: &serde_json::Value, key: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{body}");
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(signing_input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}
