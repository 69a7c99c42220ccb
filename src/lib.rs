//! Edge API for a voice-AI call dashboard.
//!
//! Layers (see README.md):
//! - `runtime` (wasm32 only): every adapter to the Workers runtime — the `fetch` and
//!   `scheduled` entry, D1, KV, the JWKS fetch and WebCrypto, the live feed's Durable Object,
//!   the clock. Nothing else touches the runtime's types (`tests/layering.rs` holds that).
//! - [`http`]: the route table, authentication, parameters, the handlers, the envelope.
//! - [`reads`]: the read model the routes use; the store implements it, the cache wraps it.
//! - [`cache`]: memory, then KV, then the store, under versions that never go back.
//! - [`store`]: the D1 repository; all SQL lives there.
//! - [`webhooks`]: each sender's signature check and parser into the normalized delivery.
//! - [`auth`], [`live`]: bearer tokens and the live feed's rules.
//! - [`tasks`]: the request's executor: polled where it arrives, and again from the promise
//!   reaction that ends each wait.
//! - [`sort`]: one stable sort for the whole crate (one copy of the sort in the module).
//! - [`domain`]: identifiers, the call model and the normalized webhook delivery, parsed at the
//!   boundary.

pub mod auth;
pub mod base64;
pub mod cache;
pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
pub mod hex;
pub mod http;
pub mod indexed;
pub mod json;
pub mod json_writer;
pub mod live;
pub mod reads;
pub mod sort;
pub mod store;
pub mod tasks;
pub mod webhooks;

#[cfg(target_arch = "wasm32")]
pub mod runtime;

#[cfg(test)]
mod testing;
