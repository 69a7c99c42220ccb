//! The Workers runtime adapters: the only code that touches `wasm_bindgen`, `web_sys` or `js_sys`
//! types (wasm32 only; a layering test holds every other file to that). Each implements one
//! of the plain-Rust traits the rest of the crate is written against, so the host tests run
//! the same code with in-memory or SQLite stand-ins.
//!
//! | file | what it adapts | the trait it implements |
//! | --- | --- | --- |
//! | `bind.rs` | the runtime's own objects, bound directly: `env`, `ctx`, Durable Object namespaces, stubs, state and storage, the socket pair, timers, body streams, the console, the instance's start | — (the others use it) |
//! | `entry.rs` | the `fetch` and `scheduled` events: bindings read once per isolate, the runtime's request in and response out | — (it drives `http::App`) |
//! | `d1.rs` | the D1 binding | `store::Database` |
//! | `kv.rs` | the KV binding, and `ctx.waitUntil` / timers for the cache's background work | `cache::KvTier`, `cache::Runtime` |
//! | `parking.rs` | KV as the parking place of deliveries D1 could not take | `webhooks::parking::Parking` |
//! | `jwks.rs` | the JWKS fetch, its KV shelf, and WebCrypto signature checks | `auth::PublicKeys` |
//! | `live.rs` | the per-user Durable Object of the live feed, and the worker's side of it | `live::LiveFeed` |
//! | `clock.rs` | `Date.now()` | `clock::Clock` |
//! | `settle.rs` | awaiting the runtime's promises through one callback, and a request's promise | — (the JavaScript side of `tasks`) |

pub mod bind;
pub mod clock;
pub mod d1;
mod entry;
pub mod jwks;
pub mod kv;
pub mod live;
pub mod parking;
pub mod settle;
