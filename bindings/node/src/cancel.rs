//! `AbortSignal` support: the JS wrapper makes a `Canceller` per call (or per stream) and
//! cancels it on `abort`; the call's future is then dropped, which is how Rust cancels, and the
//! engine releases whatever the call held (a limiter place, a connection) as it unwinds.

use std::future::Future;

use napi_derive::napi;
use tokio_util::sync::CancellationToken;

#[napi]
pub struct Canceller {
    token: CancellationToken,
}

#[napi]
impl Canceller {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)] // a napi constructor, never called from Rust
    pub fn new() -> Self {
        Canceller { token: CancellationToken::new() }
    }

    #[napi]
    pub fn cancel(&self) {
        self.token.cancel();
    }
}

/// A cancellation token to move into a call's future.
pub(crate) fn token(canceller: Option<&Canceller>) -> Option<CancellationToken> {
    canceller.map(|c| c.token.clone())
}

/// Runs `fut` unless `token` is cancelled first.
pub(crate) async fn unless_cancelled<T>(
    token: Option<CancellationToken>,
    fut: impl Future<Output = napi::Result<T>>,
) -> napi::Result<T> {
    match token {
        None => fut.await,
        Some(token) => tokio::select! {
            biased;
            _ = token.cancelled() => Err(crate::error::aborted()),
            out = fut => out,
        },
    }
}
