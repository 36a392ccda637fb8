//! The Node.js face of the engine: converts arguments and results, nothing else.
//!
//! The native classes here are private to the npm package (`node/native.js`); `node/index.js`
//! wraps them into the public API of DESIGN.md (camelCase options, `AbortSignal`, async
//! iterators, `Error` subclasses). Behaviour belongs in `crates/servicetitan`.

mod cancel;
mod client;
mod error;
mod guard;
mod json;
mod logging;
mod operations;
mod sandbox;
mod stream;
mod webhooks;

use napi_derive::napi;

/// The version of the engine this addon was built from.
#[napi]
pub fn engine_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Panics on purpose inside the guards of every entry point (`guard.rs`), synchronously or in a
/// spawned call, so that the package's tests can show what a panic turns into. Not part of the
/// package's API.
#[napi(js_name = "panicForTests", ts_return_type = "Promise<void>")]
pub fn panic_for_tests<'env>(
    env: &'env napi::Env,
    in_call: bool,
) -> napi::Result<napi::bindgen_prelude::PromiseRaw<'env, ()>> {
    guard::sync(|| {
        if !in_call {
            panic!("a panic on purpose, before the call");
        }
        guard::spawn(env, None, tracing::Span::none(), async {
            tokio::task::yield_now().await;
            panic!("a panic on purpose, inside the call")
        })
    })
}
