//! Paging: page-based lists and export feeds as async streams of records or pages, fetching the next page while the caller consumes this one, so memory stays at about two pages whatever the total.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::Stream;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::error::{excerpt, Error, ErrorCode, Result};
use crate::request::{decode, execute, Call, Wanted};
use crate::route;
use crate::tenant::{Tenant, TenantInner};

/// One page of a page-based list: `{page, pageSize, hasMore, totalCount, data}`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Page<T> {
    /// The page number, from 1.
    #[serde(default)]
    pub page: u32,
    /// The page size the server used.
    #[serde(default)]
    pub page_size: u32,
    /// Whether another page follows.
    #[serde(default)]
    pub has_more: bool,
    /// The total, when `includeTotal` was asked for.
    #[serde(default)]
    pub total_count: Option<u64>,
    /// The records.
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
}

/// One page of an export feed: `{hasMore, continueFrom, data}`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ExportPage<T> {
    /// `false` once the feed has caught up (poll again in a few minutes).
    #[serde(default)]
    pub has_more: bool,
    /// The token to resume after this page.
    #[serde(default)]
    pub continue_from: Option<String>,
    /// The records (inactive and deleted ones included).
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
}

/// A page as the server sent it, for bindings that decode straight into their own objects.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RawPage {
    /// The JSON body, untouched.
    pub body: Bytes,
    /// The page number (lists).
    pub page: Option<u32>,
    /// Whether another page follows.
    pub has_more: bool,
    /// The resume token after this page (exports).
    pub continue_from: Option<String>,
}

/// Where the next page starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Cursor {
    Page(u32),
    From(Option<String>),
}

/// A fetched page and the cursor of the one after it (`None`: this was the last).
pub(crate) struct Fetched<P> {
    pub(crate) page: P,
    pub(crate) next: Option<Cursor>,
}

pub(crate) type FetchPage<P> = Arc<dyn Fn(Cursor) -> BoxFuture<'static, Result<Fetched<P>>> + Send + Sync>;

/// A running page fetch, cancelled when dropped (a dropped stream leaves nothing behind).
struct Prefetch<P>(tokio::task::JoinHandle<Result<Fetched<P>>>);

impl<P> Drop for Prefetch<P> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A stream of pages. The next page is fetched as soon as one is handed out, so the network
/// works while the caller does; at most one page is fetched ahead.
///
/// Needs a tokio runtime (the prefetch runs as a task). Dropping the stream cancels it.
#[must_use = "streams do nothing unless polled"]
pub struct PageStream<P> {
    fetch: FetchPage<P>,
    next: Option<Cursor>,
    pending: Option<Prefetch<P>>,
    done: bool,
}

impl<P: Send + 'static> PageStream<P> {
    pub(crate) fn new(fetch: FetchPage<P>, first: Cursor) -> Self {
        PageStream { fetch, next: Some(first), pending: None, done: false }
    }

    fn start(&mut self) {
        if self.pending.is_none() {
            if let Some(cursor) = self.next.take() {
                let fut = (self.fetch)(cursor).instrument(tracing::Span::current());
                self.pending = Some(Prefetch(tokio::spawn(fut)));
            }
        }
    }
}

impl<P: Send + 'static> Stream for PageStream<P> {
    type Item = Result<P>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        self.start();
        let Some(pending) = self.pending.as_mut() else {
            self.done = true;
            return Poll::Ready(None);
        };
        let joined = match Pin::new(&mut pending.0).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(j) => j,
        };
        self.pending = None;
        match joined {
            Ok(Ok(fetched)) => {
                self.next = fetched.next;
                // Start the next page now, before the caller has even looked at this one.
                self.start();
                Poll::Ready(Some(Ok(fetched.page)))
            }
            Ok(Err(e)) => {
                self.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(_) => {
                self.done = true;
                Poll::Ready(Some(Err(Error::new(
                    ErrorCode::Connection,
                    "the page fetch was cancelled (the runtime is shutting down)",
                ))))
            }
        }
    }
}

impl<P> fmt::Debug for PageStream<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageStream")
            .field("next", &self.next)
            .field("fetching", &self.pending.is_some())
            .field("done", &self.done)
            .finish()
    }
}

/// Records of one page and the checkpoint reached once they are all handed out.
pub(crate) struct Batch<T> {
    pub(crate) records: Vec<T>,
    pub(crate) checkpoint: Option<String>,
}

/// A stream of records, page after page (the next page is fetched while these are consumed),
/// that any number of tasks or threads may read at once: every record goes to exactly one of
/// them.
///
/// Read it as a [`Stream`] (one reader, `&mut`), or share it: [`RecordStream::next`] takes
/// `&self`, and clones are handles on the same stream (a clone does not start over). Memory
/// stays at about two pages (the one being handed out and the one fetched ahead) whatever the
/// number of readers.
///
/// For exports, [`RecordStream::continue_from`] is the checkpoint of the last page whose
/// records have all been handed out: save it after processing, and a resumed sync neither
/// loses nor needs to repeat a page. With several readers, save it once every reader has
/// processed what it took (a record handed out is not yet a record processed).
///
/// A failed page ends the stream: the error goes to one reader, the others then see the end.
///
/// ```no_run
/// # async fn demo(tenant: servicetitan::Tenant) -> servicetitan::Result<()> {
/// // Eight workers share one feed; each record is upserted by exactly one of them.
/// let feed = tenant.export::<serde_json::Value>("crm/customers").into_stream();
/// let workers = (0..8).map(|_| {
///     let feed = feed.clone();
///     tokio::spawn(async move {
///         while let Some(record) = feed.next().await {
///             let _record = record?; // upsert it…
///         }
///         servicetitan::Result::Ok(())
///     })
/// });
/// for worker in futures::future::join_all(workers).await {
///     worker.expect("worker panicked")?;
/// }
/// let checkpoint = feed.continue_from(); // every record before it was processed
/// # Ok(()) }
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct RecordStream<T> {
    shared: Arc<Shared<T>>,
    /// This handle's wait for a page when read as a `Stream` (only touched through `&mut self`,
    /// the lock is there to keep the handle `Sync`).
    polling: std::sync::Mutex<Option<BoxFuture<'static, ()>>>,
}

/// What every handle of one record stream shares.
struct Shared<T> {
    /// The pages. Whoever holds the lock waits for the next page for everyone; the others wait
    /// for the lock and then find records buffered. `None` once closed.
    pages: tokio::sync::Mutex<Option<PageStream<Batch<T>>>>,
    /// What has arrived and what has been handed out. Never held across an await.
    state: std::sync::Mutex<State<T>>,
    /// Wakes the reader waiting for a page when the stream is closed.
    closing: tokio::sync::Notify,
}

struct State<T> {
    /// The records of the page being handed out, in order.
    records: VecDeque<T>,
    /// The checkpoint reached once `records` are all handed out.
    page_checkpoint: Option<String>,
    /// The checkpoint of the last page handed out whole (or the start).
    checkpoint: Option<String>,
    /// The error that ended the stream, until one reader takes it.
    error: Option<Error>,
    /// No page follows: the last one came, one failed, or the stream was closed.
    done: bool,
    closed: bool,
}

impl<T> State<T> {
    fn wants_page(&self) -> bool {
        self.records.is_empty() && self.error.is_none() && !self.done
    }
}

/// What [`RecordStream::try_take`] found.
#[derive(Debug)]
pub enum Taken<T> {
    /// The next record, now handed out.
    Record(T),
    /// The error that ended the stream (handed to one reader only; the stream is over).
    Error(Error),
    /// The stream is over.
    End,
    /// Nothing is buffered: await [`RecordStream::fill`], then take again.
    Empty,
}

// Nothing in the streams is pinned in place: records and pages move freely.
impl<T> Unpin for RecordStream<T> {}
impl<P> Unpin for PageStream<P> {}

/// An export feed's record stream; see [`RecordStream::continue_from`].
pub type ExportStream<T> = RecordStream<T>;

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // State is only ever left consistent: a panic elsewhere does not make it unusable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<T: Send + 'static> RecordStream<T> {
    pub(crate) fn new(pages: PageStream<Batch<T>>, checkpoint: Option<String>) -> Self {
        let state = State {
            records: VecDeque::new(),
            page_checkpoint: None,
            checkpoint,
            error: None,
            done: false,
            closed: false,
        };
        let shared = Shared {
            pages: tokio::sync::Mutex::new(Some(pages)),
            state: std::sync::Mutex::new(state),
            closing: tokio::sync::Notify::new(),
        };
        RecordStream { shared: Arc::new(shared), polling: std::sync::Mutex::new(None) }
    }

    /// The next record, `None` at the end; for any number of concurrent readers, each record
    /// going to exactly one of them.
    ///
    /// Cancel-safe: a record is taken from the stream only when this returns it, so a dropped
    /// call (a timeout, a `select!`) loses nothing, and a page that arrives meanwhile stays
    /// buffered for the next call.
    pub async fn next(&self) -> Option<Result<T>> {
        loop {
            match self.try_take() {
                Taken::Record(record) => return Some(Ok(record)),
                Taken::Error(e) => return Some(Err(e)),
                Taken::End => return None,
                Taken::Empty => self.shared.fill().await,
            }
        }
    }

    /// The next record if one is buffered, without waiting. For code that must take a record
    /// and hand it on in one step (a binding's iterator), with [`RecordStream::fill`] to wait.
    pub fn try_take(&self) -> Taken<T> {
        self.shared.try_take()
    }

    /// Waits until [`RecordStream::try_take`] has something to return: a record, the error or
    /// the end. Cancel-safe: a page that arrives as the call is dropped stays buffered.
    pub async fn fill(&self) {
        self.shared.fill().await
    }

    /// The export checkpoint: the `continueFrom` of the last page fully handed out, or the
    /// `since` the feed started from. `None` for page-based lists.
    ///
    /// A page counts once its last record has been handed out, so after a crash a sync that
    /// resumes from here repeats at most part of one page per reader and loses nothing.
    ///
    /// ```no_run
    /// # async fn demo(tenant: servicetitan::Tenant) -> servicetitan::Result<()> {
    /// let feed = tenant.export::<serde_json::Value>("jpm/jobs").into_stream();
    /// while let Some(job) = feed.next().await {
    ///     let job = job?;
    ///     // …store it, then persist the checkpoint from time to time:
    ///     let checkpoint: Option<String> = feed.continue_from();
    /// }
    /// # Ok(()) }
    /// ```
    pub fn continue_from(&self) -> Option<String> {
        lock(&self.shared.state).checkpoint.clone()
    }

    /// Ends the stream for every handle now: buffered records are dropped (the checkpoint does
    /// not pass them), the page fetched ahead is cancelled and readers see the end.
    pub fn close(&self) {
        self.shared.close()
    }
}

impl<T: Send + 'static> Shared<T> {
    fn try_take(&self) -> Taken<T> {
        let mut state = lock(&self.state);
        if let Some(record) = state.records.pop_front() {
            if state.records.is_empty() {
                // The page's last record: the page is handed out whole.
                if let Some(c) = state.page_checkpoint.take() {
                    state.checkpoint = Some(c);
                }
            }
            return Taken::Record(record);
        }
        if let Some(e) = state.error.take() {
            return Taken::Error(e);
        }
        if state.done {
            Taken::End
        } else {
            Taken::Empty
        }
    }

    async fn fill(&self) {
        let closing = self.closing.notified();
        let mut closing = std::pin::pin!(closing);
        // Registered before the state is read, so a close between the two still wakes us.
        closing.as_mut().enable();
        if !lock(&self.state).wants_page() {
            return;
        }
        let mut pages = tokio::select! {
            biased;
            () = closing.as_mut() => return,
            pages = self.pages.lock() => pages,
        };
        loop {
            // Another reader may have loaded a page (or met the end) while we waited.
            if !lock(&self.state).wants_page() {
                return;
            }
            let Some(stream) = pages.as_mut() else {
                lock(&self.state).done = true;
                return;
            };
            let next = tokio::select! {
                biased;
                () = closing.as_mut() => {
                    // Closed while the page was on its way: stop fetching now.
                    *pages = None;
                    return;
                }
                next = futures::StreamExt::next(stream) => next,
            };
            // The page goes into the shared state in the same poll that took it from the
            // stream: a reader dropped after this point leaves it buffered, not lost.
            let mut state = lock(&self.state);
            if state.closed {
                *pages = None;
                return;
            }
            match next {
                None => state.done = true,
                Some(Err(e)) => {
                    state.error = Some(e);
                    state.done = true;
                }
                Some(Ok(batch)) => {
                    if batch.records.is_empty() {
                        // Nothing to hand out: the page is done as soon as it arrives.
                        if batch.checkpoint.is_some() {
                            state.checkpoint = batch.checkpoint;
                        }
                        continue;
                    }
                    state.records = VecDeque::from(batch.records);
                    state.page_checkpoint = batch.checkpoint;
                }
            }
            if state.done {
                // Nothing more to fetch: let the page stream go now.
                drop(state);
                *pages = None;
            }
            return;
        }
    }

    fn close(&self) {
        {
            let mut state = lock(&self.state);
            state.closed = true;
            state.done = true;
            state.error = None;
            state.records.clear();
            state.page_checkpoint = None;
        }
        self.closing.notify_waiters();
        if let Ok(mut pages) = self.pages.try_lock() {
            *pages = None;
        }
    }
}

impl<T> Clone for RecordStream<T> {
    /// Another handle on the same stream: each record goes to one handle only.
    fn clone(&self) -> Self {
        RecordStream { shared: self.shared.clone(), polling: std::sync::Mutex::new(None) }
    }
}

impl<T: Send + 'static> Stream for RecordStream<T> {
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let polling = this.polling.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            let item = match this.shared.try_take() {
                Taken::Record(record) => Some(Ok(record)),
                Taken::Error(e) => Some(Err(e)),
                Taken::End => None,
                Taken::Empty => {
                    let fill = polling.get_or_insert_with(|| {
                        let shared = this.shared.clone();
                        Box::pin(async move { shared.fill().await })
                    });
                    match fill.as_mut().poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(()) => {
                            *polling = None;
                            continue;
                        }
                    }
                }
            };
            *polling = None;
            return Poll::Ready(item);
        }
    }
}

impl<T> fmt::Debug for RecordStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.shared.state);
        f.debug_struct("RecordStream")
            .field("buffered", &state.records.len())
            .field("continue_from", &state.checkpoint)
            .field("done", &state.done)
            .finish()
    }
}

/// A record of a list or export page, not decoded: for bindings that decode a page at a time
/// into their own objects, yet hand records out one by one through a [`RecordStream`] (so the
/// stream keeps the checkpoint). The records of one page share its body.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RawRecord {
    /// The JSON body of the record's page, untouched; the same `Bytes` (same `as_ptr`) for
    /// every record of the page.
    pub page: Bytes,
    /// The record's place in the page's `data`.
    pub index: usize,
    /// How many records the page holds.
    pub page_len: usize,
    /// The URL the page was fetched from, shared by the records of the page.
    url: Arc<str>,
}

impl RawRecord {
    /// The URL the record's page was fetched from (the API's, without the query string).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `decode` error for a page a binding could not decode, `detail` saying why: it names
    /// the page's request, as the engine's own decode errors do.
    pub fn decode_error(&self, detail: impl fmt::Display) -> Error {
        let detail = excerpt(&detail.to_string()).into_owned();
        Error::new(ErrorCode::Decode, format!("the response is not valid JSON ({detail})"))
            .with_request(Method::GET.as_str(), &self.url)
    }
}

/// The records of a page as [`RawRecord`]s.
fn raw_records(body: &Bytes, len: usize, url: &str) -> Vec<RawRecord> {
    let url: Arc<str> = url.into();
    (0..len).map(|index| RawRecord { page: body.clone(), index, page_len: len, url: url.clone() }).collect()
}

fn push_param(params: &mut Vec<(String, String)>, key: String, value: String) {
    params.retain(|(k, _)| k != &key);
    params.push((key, value));
}

/// A page-based list (`page`/`pageSize`/`hasMore`), made by [`Tenant::paginate`].
///
/// ```no_run
/// # async fn demo(tenant: servicetitan::Tenant) -> servicetitan::Result<()> {
/// use futures::TryStreamExt;
///
/// #[derive(serde::Deserialize)]
/// struct Customer { id: i64, name: String }
///
/// // Records, typed:
/// let customers: Vec<Customer> = tenant
///     .paginate("crm/customers")
///     .page_size(1000)
///     .param("modifiedOnOrAfter", "2026-01-01")
///     .active_any()
///     .into_stream()
///     .try_collect()
///     .await?;
///
/// // Or whole pages, as JSON bytes for a binding to decode itself:
/// let mut pages = tenant.paginate::<serde_json::Value>("crm/customers").raw_pages();
/// while let Some(page) = pages.try_next().await? {
///     println!("page {:?}: {} bytes, more: {}", page.page, page.body.len(), page.has_more);
/// }
/// # Ok(()) }
/// ```
#[must_use = "call into_stream() or pages() to read the list"]
pub struct Paginate<T> {
    tenant: Tenant,
    path: String,
    page_size: u32,
    start_page: u32,
    params: Vec<(String, String)>,
    _record: PhantomData<fn() -> T>,
}

impl<T> Paginate<T> {
    pub(crate) fn new(tenant: Tenant, path: String) -> Self {
        let _record = tenant.typed();
        Paginate { tenant, path, page_size: 500, start_page: 1, params: Vec::new(), _record }
    }

    /// Records per page (default 500; ServiceTitan accepts up to 5000 on most lists). 0 is refused:
    /// the stream's first item is a `configuration` error naming `page_size`.
    pub fn page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size;
        self
    }

    /// The first page to read (default 1).
    pub fn start_page(mut self, page: u32) -> Self {
        self.start_page = page;
        self
    }

    /// Adds a query parameter (`page` and `pageSize` are set by the stream).
    pub fn param(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        push_param(&mut self.params, key.into(), value.to_string());
        self
    }

    /// Adds query parameters.
    pub fn params<K: AsRef<str>, V: ToString>(mut self, pairs: &[(K, V)]) -> Self {
        for (k, v) in pairs {
            push_param(&mut self.params, k.as_ref().to_owned(), v.to_string());
        }
        self
    }

    /// Adds query parameters given as string pairs (for bindings).
    pub fn param_pairs<I, K, V>(mut self, pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        for (k, v) in pairs {
            push_param(&mut self.params, k.into(), v.into());
        }
        self
    }

    /// Inactive rows too (`active=Any`): most lists return only active ones by default.
    pub fn active_any(self) -> Self {
        self.param("active", "Any")
    }

    /// Asks for `totalCount` on each page.
    pub fn include_total(self) -> Self {
        self.param("includeTotal", "true")
    }

    fn fetcher<P: Send + 'static>(self, decode_page: fn(&Bytes, &str) -> Result<(P, bool)>) -> (FetchPage<P>, Cursor) {
        let tenant = self.tenant;
        let page_size = self.page_size;
        let mut params = self.params;
        params.retain(|(k, _)| k != "page" && k != "pageSize");
        let path = self.path;
        let first = Cursor::Page(self.start_page.max(1));
        let fetch: FetchPage<P> = Arc::new(move |cursor| {
            let tenant = tenant.clone();
            let path = path.clone();
            let mut query = params.clone();
            Box::pin(async move {
                let Cursor::Page(page) = cursor else { unreachable!("lists are paged by number") };
                if page_size == 0 {
                    return Err(Error::configuration("page_size", "a page holds at least one record"));
                }
                query.push(("page".into(), page.to_string()));
                query.push(("pageSize".into(), page_size.to_string()));
                let (bytes, url) = get_page(&tenant.inner, &path, false, query).await?;
                let (page_out, has_more) = decode_page(&bytes, &url)?;
                Ok(Fetched { page: page_out, next: has_more.then_some(Cursor::Page(page + 1)) })
            })
        });
        (fetch, first)
    }
}

impl<T: DeserializeOwned + Send + 'static> Paginate<T> {
    /// Every record, page after page.
    pub fn into_stream(self) -> RecordStream<T> {
        let (fetch, first) = self.fetcher(|bytes, url| {
            let page: Page<T> = decode(bytes, &Method::GET, url)?;
            // An empty page that claims more would page forever.
            let more = page.has_more && !page.data.is_empty();
            Ok((Batch { records: page.data, checkpoint: None }, more))
        });
        RecordStream::new(PageStream::new(fetch, first), None)
    }

    /// Every page, decoded.
    pub fn pages(self) -> PageStream<Page<T>> {
        let (fetch, first) = self.fetcher(|bytes, url| {
            let page: Page<T> = decode(bytes, &Method::GET, url)?;
            let more = page.has_more && !page.data.is_empty();
            Ok((page, more))
        });
        PageStream::new(fetch, first)
    }

    /// Every record, undecoded (see [`RawRecord`]): the records are counted, not built.
    pub fn raw_records(self) -> RecordStream<RawRecord> {
        let (fetch, first) = self.fetcher(|bytes, url| {
            let meta: Page<serde::de::IgnoredAny> = decode(bytes, &Method::GET, url)?;
            let more = meta.has_more && !meta.data.is_empty();
            Ok((Batch { records: raw_records(bytes, meta.data.len(), url), checkpoint: None }, more))
        });
        RecordStream::new(PageStream::new(fetch, first), None)
    }

    /// Every page, as raw JSON bytes.
    pub fn raw_pages(self) -> PageStream<RawPage> {
        let (fetch, first) = self.fetcher(|bytes, url| {
            // Reads only what paging needs; the records are skipped, not built.
            let meta: Page<serde::de::IgnoredAny> = decode(bytes, &Method::GET, url)?;
            let more = meta.has_more && !meta.data.is_empty();
            let raw =
                RawPage { body: bytes.clone(), page: Some(meta.page), has_more: meta.has_more, continue_from: None };
            Ok((raw, more))
        });
        PageStream::new(fetch, first)
    }
}

/// An export page decoded as a stream wants it, and what paging needs to know about it.
struct ExportDecoded<P> {
    page: P,
    has_more: bool,
    continue_from: Option<String>,
    empty: bool,
}

/// An export feed (`from`/`continueFrom`/`hasMore`), made by [`Tenant::export`].
///
/// Exports include inactive and deleted rows. The feed ends when the server says it has
/// caught up (`hasMore: false`); poll again from [`RecordStream::continue_from`] later.
///
/// ```no_run
/// # async fn demo(tenant: servicetitan::Tenant, saved: Option<String>) -> servicetitan::Result<()> {
/// use futures::TryStreamExt;
///
/// // An incremental sync: resume from the saved checkpoint, save the new one at the end.
/// let mut feed = tenant
///     .export::<serde_json::Value>("crm/customers")
///     .since(saved)
///     .include_recent_changes(false)
///     .into_stream();
/// while let Some(customer) = feed.try_next().await? {
///     // upsert `customer`…
/// }
/// let next_checkpoint = feed.continue_from();
/// # Ok(()) }
/// ```
#[must_use = "call into_stream() or pages() to read the feed"]
pub struct Export<T> {
    tenant: Tenant,
    path: String,
    since: Option<String>,
    params: Vec<(String, String)>,
    /// The path already names the feed (`sales/estimates/export`): no `export/` is put in front.
    exact_path: bool,
    _record: PhantomData<fn() -> T>,
}

impl<T> Export<T> {
    pub(crate) fn new(tenant: Tenant, path: String) -> Self {
        let _record = tenant.typed();
        Export { tenant, path, since: None, params: Vec::new(), exact_path: false, _record }
    }

    /// Uses the path as given (an operation's own path), without putting `export/` in front.
    pub(crate) fn exact_path(mut self) -> Self {
        self.exact_path = true;
        self
    }

    /// Where to start: a saved `continueFrom` token, or a date (`2026-01-01`). `None` (the
    /// default) starts from the beginning.
    pub fn since(mut self, token_or_date: impl Into<Option<String>>) -> Self {
        self.since = token_or_date.into().filter(|s| !s.is_empty());
        self
    }

    /// Includes changes from the last 15 minutes (which may repeat rows on the next sync).
    pub fn include_recent_changes(self, include: bool) -> Self {
        self.param("includeRecentChanges", include)
    }

    /// Adds a query parameter (`from` is set by the stream).
    pub fn param(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        push_param(&mut self.params, key.into(), value.to_string());
        self
    }

    fn fetcher<P: Send + 'static>(
        self,
        decode_page: fn(&Bytes, &str) -> Result<ExportDecoded<P>>,
    ) -> (FetchPage<P>, Cursor) {
        let tenant = self.tenant;
        let mut params = self.params;
        params.retain(|(k, _)| k != "from");
        let path = self.path;
        let export = !self.exact_path;
        let first = Cursor::From(self.since);
        let fetch: FetchPage<P> = Arc::new(move |cursor| {
            let tenant = tenant.clone();
            let path = path.clone();
            let mut query = params.clone();
            Box::pin(async move {
                let Cursor::From(from) = cursor else { unreachable!("exports are paged by token") };
                if let Some(from) = &from {
                    query.push(("from".into(), from.clone()));
                }
                let (bytes, url) = get_page(&tenant.inner, &path, export, query).await?;
                let ExportDecoded { page, has_more, continue_from, empty } = decode_page(&bytes, &url)?;
                // A page that moves neither the data nor the token would loop forever.
                let progressed = !empty || (continue_from.is_some() && continue_from != from);
                let next = (has_more && progressed && continue_from.is_some()).then_some(Cursor::From(continue_from));
                Ok(Fetched { page, next })
            })
        });
        (fetch, first)
    }
}

impl<T: DeserializeOwned + Send + 'static> Export<T> {
    /// Every record until the feed has caught up; the stream's
    /// [`continue_from`](RecordStream::continue_from) is the checkpoint to save.
    pub fn into_stream(self) -> ExportStream<T> {
        let since = self.since.clone();
        let (fetch, first) = self.fetcher(|bytes, url| {
            let page: ExportPage<T> = decode(bytes, &Method::GET, url)?;
            Ok(ExportDecoded {
                has_more: page.has_more,
                continue_from: page.continue_from.clone(),
                empty: page.data.is_empty(),
                page: Batch { records: page.data, checkpoint: page.continue_from },
            })
        });
        RecordStream::new(PageStream::new(fetch, first), since)
    }

    /// Every page, decoded (each carries its `continue_from`).
    pub fn pages(self) -> PageStream<ExportPage<T>> {
        let (fetch, first) = self.fetcher(|bytes, url| {
            let page: ExportPage<T> = decode(bytes, &Method::GET, url)?;
            Ok(ExportDecoded {
                has_more: page.has_more,
                continue_from: page.continue_from.clone(),
                empty: page.data.is_empty(),
                page,
            })
        });
        PageStream::new(fetch, first)
    }

    /// Every record until the feed has caught up, undecoded (see [`RawRecord`]), with the
    /// checkpoint rule of [`Export::into_stream`]: the records are counted, not built.
    pub fn raw_records(self) -> ExportStream<RawRecord> {
        let since = self.since.clone();
        let (fetch, first) = self.fetcher(|bytes, url| {
            let meta: ExportPage<serde::de::IgnoredAny> = decode(bytes, &Method::GET, url)?;
            let len = meta.data.len();
            Ok(ExportDecoded {
                has_more: meta.has_more,
                continue_from: meta.continue_from.clone(),
                empty: len == 0,
                page: Batch { records: raw_records(bytes, len, url), checkpoint: meta.continue_from },
            })
        });
        RecordStream::new(PageStream::new(fetch, first), since)
    }

    /// Every page as raw JSON bytes, with its `continue_from`.
    pub fn raw_pages(self) -> PageStream<RawPage> {
        let (fetch, first) = self.fetcher(|bytes, url| {
            // Reads only what paging needs; the records are skipped, not built.
            let meta: ExportPage<serde::de::IgnoredAny> = decode(bytes, &Method::GET, url)?;
            Ok(ExportDecoded {
                page: RawPage {
                    body: bytes.clone(),
                    page: None,
                    has_more: meta.has_more,
                    continue_from: meta.continue_from.clone(),
                },
                has_more: meta.has_more,
                continue_from: meta.continue_from,
                empty: meta.data.is_empty(),
            })
        });
        PageStream::new(fetch, first)
    }
}

/// One GET of a list or export page through the request path: its body, and its URL for the
/// errors of decoding it.
async fn get_page(
    inner: &TenantInner,
    path: &str,
    export: bool,
    query: Vec<(String, String)>,
) -> Result<(Bytes, String)> {
    if let Some(e) = &inner.invalid {
        return Err(e.clone());
    }
    let route = route::resolve(&inner.client.config.api_url, inner.id, path, export)?;
    let call = Call {
        method: Method::GET,
        route,
        query,
        body: None,
        retry_any: false,
        report_id: None,
        timeout: None,
        wanted: Wanted::Json,
    };
    let bytes = execute(inner, &call).await?;
    Ok((bytes, call.route.url))
}
