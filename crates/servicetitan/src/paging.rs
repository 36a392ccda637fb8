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

use crate::error::{Error, ErrorCode, Result};
use crate::request::{decode, execute, Call};
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

/// A stream of records, page after page (the next page is fetched while these are consumed).
///
/// For exports, [`RecordStream::continue_from`] is the checkpoint of the last page whose
/// records have all been handed out: save it after processing, and a resumed sync neither
/// loses nor needs to repeat a page.
#[must_use = "streams do nothing unless polled"]
pub struct RecordStream<T> {
    pages: PageStream<Batch<T>>,
    current: VecDeque<T>,
    current_checkpoint: Option<String>,
    checkpoint: Option<String>,
}

// Nothing in the streams is pinned in place: records and pages move freely.
impl<T> Unpin for RecordStream<T> {}
impl<P> Unpin for PageStream<P> {}

/// An export feed's record stream; see [`RecordStream::continue_from`].
pub type ExportStream<T> = RecordStream<T>;

impl<T: Send + 'static> RecordStream<T> {
    pub(crate) fn new(pages: PageStream<Batch<T>>, checkpoint: Option<String>) -> Self {
        RecordStream { pages, current: VecDeque::new(), current_checkpoint: None, checkpoint }
    }

    /// The export checkpoint: the `continueFrom` of the last page fully handed out, or the
    /// `since` the feed started from. `None` for page-based lists.
    ///
    /// A page counts once its last record has been returned, so after a crash a sync that
    /// resumes from here repeats at most part of one page and loses nothing.
    ///
    /// ```no_run
    /// # async fn demo(tenant: servicetitan::Tenant) -> servicetitan::Result<()> {
    /// use futures::StreamExt;
    /// let mut feed = tenant.export::<serde_json::Value>("jpm/jobs").into_stream();
    /// while let Some(job) = feed.next().await {
    ///     let job = job?;
    ///     // …store it, then persist the checkpoint from time to time:
    ///     let checkpoint: Option<&str> = feed.continue_from();
    /// }
    /// # Ok(()) }
    /// ```
    pub fn continue_from(&self) -> Option<&str> {
        self.checkpoint.as_deref()
    }
}

impl<T: Send + 'static> Stream for RecordStream<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(record) = this.current.pop_front() {
                if this.current.is_empty() {
                    if let Some(c) = this.current_checkpoint.take() {
                        this.checkpoint = Some(c);
                    }
                }
                return Poll::Ready(Some(Ok(record)));
            }
            match Pin::new(&mut this.pages).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(batch))) => {
                    if batch.records.is_empty() {
                        if batch.checkpoint.is_some() {
                            this.checkpoint = batch.checkpoint;
                        }
                        continue;
                    }
                    this.current = VecDeque::from(batch.records);
                    this.current_checkpoint = batch.checkpoint;
                }
            }
        }
    }
}

impl<T> fmt::Debug for RecordStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordStream")
            .field("buffered", &self.current.len())
            .field("continue_from", &self.checkpoint)
            .finish()
    }
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
/// let next_checkpoint = feed.continue_from().map(str::to_owned);
/// # Ok(()) }
/// ```
#[must_use = "call into_stream() or pages() to read the feed"]
pub struct Export<T> {
    tenant: Tenant,
    path: String,
    since: Option<String>,
    params: Vec<(String, String)>,
    _record: PhantomData<fn() -> T>,
}

impl<T> Export<T> {
    pub(crate) fn new(tenant: Tenant, path: String) -> Self {
        let _record = tenant.typed();
        Export { tenant, path, since: None, params: Vec::new(), _record }
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
                let (bytes, url) = get_page(&tenant.inner, &path, true, query).await?;
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
    let call = Call { method: Method::GET, route, query, body: None, retry_any: false, report_id: None, timeout: None };
    let bytes = execute(inner, &call).await?;
    Ok((bytes, call.route.url))
}
