//! Paged reads (lists and export feeds) as a native object the wrapper's async iterator pulls
//! from, one page per `next()`: a page crossing is one promise, so crossings stay rare.

use std::sync::Arc;

use napi::bindgen_prelude::{Buffer, PromiseRaw};
use napi::Env;
use napi_derive::napi;
use servicetitan::{PageStream, RawPage};

use futures::StreamExt;
use tracing::Instrument;

use crate::cancel::{token, unless_cancelled, Canceller};
use crate::error::engine;

/// One page: the JSON body and, for exports, the token that resumes after it.
#[napi(object)]
pub struct NativePage {
    pub body: Buffer,
    pub continue_from: Option<String>,
}

type Slot = Arc<tokio::sync::Mutex<Option<PageStream<RawPage>>>>;

#[napi]
pub struct NativePageStream {
    // `None` once closed. Behind an async lock because a page is awaited while it is held.
    pages: Slot,
    /// Every page fetch runs in it (routes debug output to the client's logger).
    span: tracing::Span,
}

impl NativePageStream {
    pub(crate) fn new(pages: PageStream<RawPage>, span: tracing::Span) -> Self {
        NativePageStream { pages: Arc::new(tokio::sync::Mutex::new(Some(pages))), span }
    }
}

#[napi]
impl NativePageStream {
    /// The next page, or `null` after the last one.
    #[napi(ts_return_type = "Promise<NativePage | null>")]
    pub fn next<'env>(
        &self,
        env: &'env Env,
        canceller: Option<&Canceller>,
    ) -> napi::Result<PromiseRaw<'env, Option<NativePage>>> {
        let pages = self.pages.clone();
        let span = self.span.clone();
        let page = async move {
            let mut slot = pages.lock().await;
            let Some(stream) = slot.as_mut() else { return Ok(None) };
            match stream.next().await {
                None => {
                    *slot = None;
                    Ok(None)
                }
                Some(Err(e)) => {
                    *slot = None;
                    Err(engine(&e))
                }
                Some(Ok(page)) => {
                    Ok(Some(NativePage { body: Buffer::from(Vec::from(page.body)), continue_from: page.continue_from }))
                }
            }
        };
        env.spawn_future(unless_cancelled(token(canceller), page.instrument(span)))
    }

    /// Drops the stream now (a `break` out of `for await`, an abort) rather than at garbage
    /// collection: that cancels the page being fetched ahead.
    #[napi]
    pub fn close(&self) {
        match self.pages.try_lock() {
            Ok(mut slot) => *slot = None,
            Err(_) => {
                // A `next()` holds the lock; its canceller has been cancelled or it is about
                // to finish, so the lock frees shortly.
                let pages = self.pages.clone();
                napi::bindgen_prelude::spawn(async move {
                    *pages.lock().await = None;
                });
            }
        }
    }
}
