//! Panics stop at the addon's edge. A panic inside a call (the engine's or this binding's)
//! becomes an `internal` error of that call, thrown or rejected like any other, instead of
//! aborting the process (a panic may not unwind into Node-API) or rejecting with a bare
//! `Error`. The engine keeps no lock across a panic that could poison later calls, so the
//! client stays usable after one.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};

use futures::FutureExt;
use napi::bindgen_prelude::{PromiseRaw, ToNapiValue};
use napi::Env;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::cancel::unless_cancelled;

fn panicked(payload: Box<dyn Any + Send>) -> napi::Error {
    let error = crate::error::engine(&servicetitan::Error::from_panic(&*payload));
    // A payload whose own `Drop` panics would unwind out of here: leak it instead.
    std::mem::forget(payload);
    error
}

/// Runs the synchronous part of an entry point.
pub(crate) fn sync<T>(f: impl FnOnce() -> napi::Result<T>) -> napi::Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| Err(panicked(payload)))
}

/// Runs a call's future, a panic in any of its polls ending it with an `internal` error.
pub(crate) async fn future<T>(fut: impl Future<Output = napi::Result<T>>) -> napi::Result<T> {
    AssertUnwindSafe(fut).catch_unwind().await.unwrap_or_else(|payload| Err(panicked(payload)))
}

/// Starts a call on the runtime: guarded, cancellable through its `AbortSignal`, logged in `span`.
pub(crate) fn spawn<'env, T>(
    env: &'env Env,
    cancel: Option<CancellationToken>,
    span: tracing::Span,
    call: impl Future<Output = napi::Result<T>> + Send + 'static,
) -> napi::Result<PromiseRaw<'env, T>>
where
    T: ToNapiValue + Send + 'static,
{
    env.spawn_future(unless_cancelled(cancel, future(call).instrument(span)))
}
