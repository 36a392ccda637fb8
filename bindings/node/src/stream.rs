//! Record streams (lists and export feeds) as a native object the wrapper's async iterator takes
//! records from. The engine's stream hands each record out once, however many consumers share
//! the iterator, and keeps the export checkpoint; the wrapper only parses a page's body (one
//! `JSON.parse` when its first record is taken) and picks records out of it.

use napi::bindgen_prelude::{Either, PromiseRaw};
use napi::{Env, JsString};
use napi_derive::napi;
use servicetitan::{RawRecord, RecordStream, Taken};

use crate::cancel::{token, Canceller};
use crate::error::engine;
use crate::guard;

/// What `take()` returns when nothing is buffered: await `fill()`, then take again.
#[napi]
pub const TAKE_EMPTY: i32 = -1;
/// What `take()` returns once the stream is over.
#[napi]
pub const TAKE_END: i32 = -2;

#[napi]
pub struct NativeRecordStream {
    stream: RecordStream<RawRecord>,
    /// Every page fetch runs in it (routes debug output to the client's logger).
    span: tracing::Span,
}

impl NativeRecordStream {
    pub(crate) fn new(stream: RecordStream<RawRecord>, span: tracing::Span) -> Self {
        NativeRecordStream { stream, span }
    }
}

#[napi]
impl NativeRecordStream {
    /// Takes the next record if one is buffered: the body of its page as text (a JSON object
    /// whose `data` holds the records) when it is the first record of a page, else its index in
    /// that page's `data`; `TAKE_EMPTY` or `TAKE_END` otherwise. Throws the error that ended the
    /// stream (to one caller; then `TAKE_END`).
    #[napi(ts_return_type = "number | string")]
    pub fn take<'env>(&self, env: &'env Env) -> napi::Result<Either<i64, JsString<'env>>> {
        guard::sync(|| match self.stream.try_take() {
            Taken::Record(RawRecord { page, index: 0, .. }) => page_text(env, &page).map(Either::B),
            Taken::Record(record) => Ok(Either::A(record.index as i64)),
            Taken::Error(e) => Err(engine(&e)),
            Taken::End => Ok(Either::A(TAKE_END.into())),
            Taken::Empty => Ok(Either::A(TAKE_EMPTY.into())),
        })
    }

    /// Resolves once `take()` has something to return (a record, the error or the end). A fill
    /// cancelled while a page is on its way leaves the page buffered.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn fill<'env>(&self, env: &'env Env, canceller: Option<&Canceller>) -> napi::Result<PromiseRaw<'env, ()>> {
        let stream = self.stream.clone();
        let fill = async move {
            stream.fill().await;
            Ok(())
        };
        guard::spawn(env, token(canceller), self.span.clone(), fill)
    }

    /// The export checkpoint: the `continueFrom` of the last page whose records have all been
    /// taken, or the `since` the feed started from; `null` for lists.
    #[napi(getter)]
    pub fn continue_from(&self) -> Option<String> {
        self.stream.continue_from()
    }

    /// Ends the stream now for every consumer (a `break` out of `for await`, an abort) rather
    /// than at garbage collection: that cancels the page being fetched ahead.
    #[napi]
    pub fn close(&self) {
        self.stream.close();
    }
}

/// A page's body as a string for `JSON.parse` (as text: V8 parses a string it owns with less
/// memory churn than a Buffer's `toString()`). A body of ASCII only, which JSON almost always
/// is, is copied byte for byte as Latin-1, sparing V8 the UTF-8 decoding of every page and us
/// a copy; any other is decoded as UTF-8, invalid bytes becoming U+FFFD as `toString` would
/// make them.
fn page_text<'env>(env: &'env Env, page: &[u8]) -> napi::Result<JsString<'env>> {
    if page.is_ascii() {
        env.create_string_latin1(page)
    } else {
        env.create_string(String::from_utf8_lossy(page))
    }
}
