//! Edge API for a voice-AI call dashboard.
//!
//! Layers (see README.md):
//! - `entry` (wasm only): the Workers runtime glue — reads bindings once, converts requests and
//!   responses, maps errors. Nothing else touches `worker` types but the store's D1 adapter.
//! - [`http`]: routing, authentication, parameters, the response envelope.
//! - [`reads`]: the read model the routes use; the store implements it, the cache will wrap it.
//! - [`store`]: the D1 repository; all SQL lives there.
//! - [`domain`]: identifiers, the call model and the normalized webhook delivery, parsed at the
//!   boundary.

pub mod auth;
pub mod cache;
pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod live;
pub mod reads;
pub mod store;
pub mod webhooks;

#[cfg(target_arch = "wasm32")]
mod entry;

#[cfg(test)]
mod testing;
