//! The Node.js face of the engine: converts arguments and results, nothing else.
//!
//! The native classes here are private to the npm package (`node/native.js`); `node/index.js`
//! wraps them into the package's public API (camelCase options, `AbortSignal`, async
//! iterators, `Error` subclasses). Behaviour belongs in `crates/servicetitan`.

mod cancel;
mod cli;
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

/// Every error code of the engine, in the order of the README's table: the package's tests
/// check that `node/errors.js` has a class for each one.
#[napi]
pub fn error_codes() -> Vec<String> {
    servicetitan::ErrorCode::ALL.iter().map(|code| code.as_str().to_owned()).collect()
}

/// The engine's settings schema as Node names them: `[option, environment variable]` for every
/// setting `new Client()` takes (`rateLimit.calls` is `calls` in the `rateLimit` object). The
/// package's tests check each option against the wrapper.
#[napi]
pub fn settings() -> Vec<Vec<String>> {
    servicetitan::settings::SETTINGS.iter().filter_map(|s| Some(vec![s.node?.to_owned(), s.env.to_owned()])).collect()
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
