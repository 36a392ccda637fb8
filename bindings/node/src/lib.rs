//! The Node.js face of the engine: converts arguments and results, nothing else.
//!
//! The native classes here are private to the npm package (`node/native.js`); `node/index.js`
//! wraps them into the public API of DESIGN.md (camelCase options, `AbortSignal`, async
//! iterators, `Error` subclasses). Behaviour belongs in `crates/servicetitan`.

mod cancel;
mod client;
mod error;
mod logging;
mod sandbox;
mod stream;
mod webhooks;

use napi_derive::napi;

/// The version of the engine this addon was built from.
#[napi]
pub fn engine_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
