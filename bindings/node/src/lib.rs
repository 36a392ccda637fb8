//! The Node.js face of the engine: converts arguments and results, nothing else.
use napi_derive::napi;

/// The version of the engine this addon was built from.
#[napi]
pub fn engine_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
