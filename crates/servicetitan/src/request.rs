//! The request path every call takes: route → token → admit → send → classify → typed error, with retries.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tracing::Instrument;

use crate::auth::CachedToken;
use crate::body::{announced_over, read_capped, size_in_words, Capped, MAX_ERROR_BODY_BYTES, MAX_RESPONSE_BYTES};
use crate::classify::{classify, describe_failure, Answer, Cause, Failure, Outcome, Sent};
use crate::clock::Clock;
use crate::error::{excerpt, Error, ErrorCode, Result};
use crate::retry::is_idempotent;
use crate::route::{self, Route, KNOWN_MODULES};
use crate::tenant::{Tenant, TenantInner};

/// One call, built up before it is sent.
///
/// ```no_run
/// # async fn demo(tenant: servicetitan::Tenant) -> servicetitan::Result<()> {
/// #[derive(serde::Deserialize)]
/// struct Page { data: Vec<serde_json::Value>, #[serde(rename = "hasMore")] has_more: bool }
///
/// let page: Page = tenant
///     .get("crm/customers")
///     .query(&[("page", 1), ("pageSize", 50)])
///     .send()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "a request does nothing until it is sent"]
pub struct RequestBuilder {
    tenant: Tenant,
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    body: Option<std::result::Result<Bytes, String>>,
    safe_to_retry: bool,
    timeout: Option<Duration>,
    wanted: Wanted,
}

impl RequestBuilder {
    pub(crate) fn new(tenant: Tenant, method: Method, path: String) -> Self {
        RequestBuilder {
            tenant,
            method,
            path,
            query: Vec::new(),
            body: None,
            safe_to_retry: false,
            timeout: None,
            wanted: Wanted::Json,
        }
    }

    /// What the call takes as its answer (a file, a redirect's target), instead of JSON.
    pub(crate) fn wanted(mut self, wanted: Wanted) -> Self {
        self.wanted = wanted;
        self
    }

    /// Adds query parameters; values are formatted with `Display`.
    pub fn query<K: AsRef<str>, V: ToString>(mut self, pairs: &[(K, V)]) -> Self {
        self.query.extend(pairs.iter().map(|(k, v)| (k.as_ref().to_owned(), v.to_string())));
        self
    }

    /// Adds query parameters given as string pairs (for bindings).
    pub fn query_pairs<I, K, V>(mut self, pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.query.extend(pairs.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Sends `body` as JSON.
    pub fn json<B: Serialize + ?Sized>(mut self, body: &B) -> Self {
        self.body = Some(serde_json::to_vec(body).map(Bytes::from).map_err(|e| e.to_string()));
        self
    }

    /// Sends an optional JSON value as the body (for bindings); `None` sends no body.
    pub fn json_value(mut self, body: Option<Value>) -> Self {
        self.body = body.map(|v| serde_json::to_vec(&v).map(Bytes::from).map_err(|e| e.to_string()));
        self
    }

    /// Marks a non-idempotent call (POST, PATCH) as safe to resend after a 5xx, a timeout or
    /// a lost connection, e.g. because it carries its own idempotency key or only reads.
    pub fn safe_to_retry(mut self) -> Self {
        self.safe_to_retry = true;
        self
    }

    /// The total deadline of this call, instead of the client's.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends and decodes the JSON answer into `T` (an empty body decodes as `null`, so
    /// `()` and `Option<_>` work for 204s).
    pub async fn send<T: DeserializeOwned>(self) -> Result<T> {
        // The call is prepared before the first await, so the future keeps one copy of it.
        let (tenant, call) = self.prepare()?;
        let bytes = execute(&tenant.inner, &call).await?;
        decode(&bytes, &call.method, &call.route.url)
    }

    /// Sends and returns the answer as a JSON value.
    pub async fn send_json(self) -> Result<Value> {
        let (tenant, call) = self.prepare()?;
        let bytes = execute(&tenant.inner, &call).await?;
        decode(&bytes, &call.method, &call.route.url)
    }

    /// Sends and returns the raw body.
    pub async fn send_bytes(self) -> Result<Bytes> {
        let (tenant, call) = self.prepare()?;
        execute(&tenant.inner, &call).await
    }

    /// Sends and returns the raw body with the request it answers, for callers that decode
    /// it themselves (the bindings, straight into their own objects) and need to say which
    /// request's body was not JSON: see [`ResponseBody::decode_error`].
    pub async fn send_body(self) -> Result<ResponseBody> {
        let (tenant, call) = self.prepare()?;
        let bytes = execute(&tenant.inner, &call).await?;
        Ok(ResponseBody { bytes, method: call.method, url: call.route.url })
    }

    /// Checks the input and routes the call: bad input is refused here, before any request.
    fn prepare(self) -> Result<(Tenant, Call)> {
        let inner = &self.tenant.inner;
        if let Some(e) = &inner.invalid {
            return Err(e.clone());
        }
        let route = route::resolve(&inner.client.config.api_url, inner.id, &self.path, false)?;
        let body = match self.body {
            Some(Ok(b)) => Some(b),
            Some(Err(e)) => {
                return Err(Error::configuration("body", format!("the body cannot be serialized as JSON: {e}")))
            }
            None => None,
        };
        let call = Call {
            retry_any: self.safe_to_retry,
            method: self.method,
            route,
            query: self.query,
            body,
            report_id: None,
            wanted: self.wanted,
            timeout: match self.timeout {
                Some(t) if t.is_zero() => return Err(Error::configuration("timeout", "a timeout must be positive")),
                Some(t) => Some(crate::config::at_most("timeout", t)?),
                None => None,
            },
        };
        Ok((self.tenant, call))
    }
}

/// A 2xx body as the API sent it, and the request it answers (from
/// [`RequestBuilder::send_body`]). Derefs to the bytes.
#[derive(Clone, Debug)]
pub struct ResponseBody {
    bytes: Bytes,
    method: Method,
    url: String,
}

impl ResponseBody {
    /// The body.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The body, without the request.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// The method of the request.
    pub fn method(&self) -> &str {
        self.method.as_str()
    }

    /// The URL of the request (the API's, without the query string).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `decode` error for a body that is not the JSON expected, `detail` saying why (a
    /// decoder's message, cut to what an error message carries): it names the request, as
    /// every error of a call does.
    ///
    /// ```no_run
    /// # async fn demo(tenant: servicetitan::Tenant) -> servicetitan::Result<()> {
    /// let body = tenant.get("crm/customers").send_body().await?;
    /// let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| body.decode_error(e))?;
    /// # Ok(()) }
    /// ```
    pub fn decode_error(&self, detail: impl std::fmt::Display) -> Error {
        let detail = excerpt(&detail.to_string()).into_owned();
        Error::new(ErrorCode::Decode, format!("the response is not valid JSON ({detail})"))
            .with_request(self.method.as_str(), &self.url)
    }
}

impl std::ops::Deref for ResponseBody {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Decodes a 2xx body, or says which request's body was not the JSON promised.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], method: &Method, url: &str) -> Result<T> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"null" } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| {
        // serde quotes what it met, which may be a server's megabyte-long string.
        let what = excerpt(&e.to_string()).into_owned();
        Error::new(
            ErrorCode::Decode,
            format!("the response is not the JSON expected ({what}); expected {}", std::any::type_name::<T>()),
        )
        .with_request(method.as_str(), url)
        .with_source(e)
    })
}

/// A call ready for the request path.
pub(crate) struct Call {
    pub(crate) method: Method,
    pub(crate) route: Route,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) body: Option<Bytes>,
    /// Resend after a 5xx, timeout or connection loss whatever the method.
    pub(crate) retry_any: bool,
    /// Report data calls also take a slot from the per-report limiter.
    pub(crate) report_id: Option<i64>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) wanted: Wanted,
}

/// What a call takes as its answer; it decides the Accept header, and whether a redirect is
/// the answer rather than an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// A JSON document.
    Json,
    /// A file of the given media type (`*/*` where the API names none).
    File(&'static str),
    /// The target of a redirect, as an absolute URL in place of the body: the operations
    /// whose documented answer is a redirect to a file. The redirect is still not followed.
    Location(&'static str),
}

impl Wanted {
    fn accept(self) -> HeaderValue {
        match self {
            Wanted::Json => HeaderValue::from_static("application/json"),
            // The table's media types are plain ASCII tokens; anything else asks for anything.
            Wanted::File(media) | Wanted::Location(media) => {
                HeaderValue::from_str(media).unwrap_or(HeaderValue::from_static("*/*"))
            }
        }
    }
}

impl Call {
    /// What the classifier needs to know of the call.
    fn sent(&self) -> Sent {
        Sent::Api { resendable: self.retry_any || is_idempotent(&self.method) }
    }
}

/// What one attempt came to.
enum Attempt {
    Done(Bytes, u16),
    Fail(Error),
    /// 401: the token sent was refused.
    Unauthorized(Error, CachedToken),
    /// Worth resending after `wait`; with `cool_down`, the wait is a 429's and every caller of
    /// the limiter key sits it out.
    Retry {
        error: Error,
        wait: Duration,
        cool_down: Option<String>,
        cause: Cause,
    },
}

/// The request path. Every call of the crate goes through here.
pub(crate) async fn execute(tenant: &TenantInner, call: &Call) -> Result<Bytes> {
    if let Some(e) = &tenant.invalid {
        return Err(e.clone());
    }
    let span = tracing::info_span!(
        "servicetitan.request",
        method = %call.method,
        route = %call.route.template,
        tenant = tenant.id,
        status = tracing::field::Empty,
        attempts = tracing::field::Empty,
        throttle_wait_ms = tracing::field::Empty,
    );
    // A panic (a bug, or a token store, limiter or clock given by the caller that panics) fails
    // this call with an `internal` error and nothing else: no lock stays poisoned, no shared
    // future holds it.
    let call_path = std::panic::AssertUnwindSafe(execute_in_span(tenant, call).instrument(span.clone()));
    match call_path.catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let error = Error::from_panic(&*panic).with_request(call.method.as_str(), &call.route.url);
            span.in_scope(|| tracing::error!(error = %error, "a call panicked"));
            Err(error)
        }
    }
}

async fn execute_in_span(tenant: &TenantInner, call: &Call) -> Result<Bytes> {
    let client = &tenant.client;
    let config = &client.config;
    let clock = &*client.clock;
    let total = call.timeout.unwrap_or(config.timeouts.total);
    let deadline = clock.now() + total;
    let mut throttled = Duration::ZERO;
    let mut reauthorized = false;
    let mut attempt: u32 = 0;
    let result = loop {
        attempt += 1;
        let span = tracing::debug_span!(
            "servicetitan.attempt",
            attempt,
            status = tracing::field::Empty,
            throttle_wait_ms = tracing::field::Empty,
        );
        // Boxed: an attempt is most of a call's state, and one large future per call would mean a
        // large allocation per call.
        let outcome = Box::pin(attempt_once(tenant, call, deadline, &mut throttled, attempt).instrument(span)).await;
        // (error, wait before resending, sleep here rather than in the limiter, counts as an attempt)
        let (error, wait, sleep, counted, cause) = match outcome {
            Attempt::Done(bytes, status) => {
                tracing::Span::current().record("status", status);
                break Ok(bytes);
            }
            Attempt::Fail(error) => break Err(error),
            Attempt::Unauthorized(error, sent) => {
                if reauthorized {
                    break Err(error);
                }
                // Resent once with a new token: the old one may have been revoked or expired
                // in flight. Only the token that was sent is dropped, never a newer one.
                reauthorized = true;
                if let Err(e) = client.tokens.invalidate(&tenant.token, &sent.access_token).await {
                    break Err(e);
                }
                // Renewing the token is not a failure of the call: it does not use up an attempt.
                (error, Duration::ZERO, false, false, Cause::TokenRefused)
            }
            Attempt::Retry { error, wait, cool_down, cause } => {
                if let Some(key) = &cool_down {
                    // A wait longer than the caller allows fails this call at once, and is not
                    // imposed on the others either: they would only sit out their deadlines.
                    if wait > config.max_retry_after {
                        break Err(error);
                    }
                    // Tell the limiter first, so every caller of this key pauses, this one too.
                    if let Err(e) = client.limiter.cool_down(key, wait).await {
                        break Err(e);
                    }
                }
                (error, wait, cool_down.is_none(), true, cause)
            }
        };
        if counted && attempt >= config.retry.max_attempts + u32::from(reauthorized) {
            break Err(error);
        }
        // No point waiting for a resend that cannot finish in time: the last failure says more
        // than a timeout would.
        if clock.now() + wait >= deadline {
            break Err(error);
        }
        client.counters.retries.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            attempt,
            wait_ms = wait.as_millis() as u64,
            reason = cause.describe(),
            error = %error,
            "resending"
        );
        // A 429's wait is served by the limiter's cooldown, shared with every other caller.
        if sleep && !wait.is_zero() {
            clock.sleep(wait).await;
        }
    };
    let span = tracing::Span::current();
    span.record("attempts", attempt);
    span.record("throttle_wait_ms", throttled.as_millis() as u64);
    match &result {
        Ok(_) => {}
        Err(e) => {
            if let Some(status) = e.status() {
                span.record("status", status);
            }
            tracing::debug!(code = e.code().as_str(), error = %e, "call failed");
        }
    }
    result
}

/// Runs `fut` unless `deadline` comes first.
///
/// The deadline timer is made only if `fut` has to wait: dropping a tokio timer takes the
/// runtime's timer lock, which every call would otherwise contend for twice even though the
/// token and the limiter slot are almost always ready at once.
async fn until<F: Future>(clock: &dyn Clock, deadline: Instant, fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    if let std::task::Poll::Ready(out) = futures::poll!(fut.as_mut()) {
        return Some(out);
    }
    match futures::future::select(fut, clock.sleep_until(deadline)).await {
        futures::future::Either::Left((out, _)) => Some(out),
        futures::future::Either::Right(_) => None,
    }
}

fn deadline_error(call: &Call, waiting_for: &str, total: Option<Duration>) -> Error {
    let total = total.map(|t| format!(" ({:.1} s)", t.as_secs_f64())).unwrap_or_default();
    Error::new(ErrorCode::Timeout, format!("the call's deadline{total} passed while waiting for {waiting_for}"))
        .with_request(call.method.as_str(), &call.route.url)
}

async fn attempt_once(
    tenant: &TenantInner,
    call: &Call,
    deadline: Instant,
    throttled: &mut Duration,
    attempt: u32,
) -> Attempt {
    let total = Some(call.timeout.unwrap_or(tenant.client.config.timeouts.total));
    let client = &tenant.client;
    let config = &client.config;
    let clock = &*client.clock;

    // 1. The token first: a fetch between taking a limiter slot and sending would eat the
    //    limiter's jitter margin.
    let token = match until(clock, deadline, client.tokens.get(&tenant.token)).await {
        Some(Ok(t)) => t,
        Some(Err(e)) => return Attempt::Fail(e),
        None => return Attempt::Fail(deadline_error(call, "an access token", total)),
    };

    // 2. Admit, as late as possible: the report slot (which may wait a minute) before the
    //    tenant slot (which the request then uses at once).
    let started = clock.now();
    if let Some(report_id) = call.report_id {
        let key = tenant.report_limit_key(report_id);
        let admitted = until(clock, deadline, client.limiter.acquire(&key, config.report_rate_limit)).await;
        match admitted {
            Some(Ok(())) => {}
            Some(Err(e)) => return Attempt::Fail(e),
            None => return Attempt::Fail(deadline_error(call, "the report rate limiter", total)),
        }
    }
    let admitted = until(clock, deadline, client.admit_tenant_call(&tenant.limit_key)).await;
    let admitted_at = clock.now();
    let waited = admitted_at.saturating_duration_since(started);
    *throttled += waited;
    client.counters.throttle_wait_nanos.fetch_add(waited.as_nanos() as u64, Ordering::Relaxed);
    if waited >= Duration::from_millis(1) {
        tracing::Span::current().record("throttle_wait_ms", waited.as_millis() as u64);
        tracing::debug!(wait_ms = waited.as_millis() as u64, "waited for the rate limiter");
    }
    let slot = match admitted {
        Some(Ok(slot)) => slot,
        Some(Err(e)) => return Attempt::Fail(e),
        None => return Attempt::Fail(deadline_error(call, "the rate limiter", total)),
    };

    // A long wait for a slot can outlast the token; never send one that may expire in flight.
    let token = if token.is_usable(clock.wall()) {
        token
    } else {
        match until(clock, deadline, client.tokens.get(&tenant.token)).await {
            Some(Ok(t)) => t,
            Some(Err(e)) => {
                client.unanswered(&tenant.limit_key, slot).await;
                return Attempt::Fail(e);
            }
            None => {
                client.unanswered(&tenant.limit_key, slot).await;
                return Attempt::Fail(deadline_error(call, "an access token", total));
            }
        }
    };

    // 3. Send.
    let remaining = deadline.saturating_duration_since(clock.now());
    if remaining.is_zero() {
        client.unanswered(&tenant.limit_key, slot).await;
        return Attempt::Fail(deadline_error(call, "the request to go out", total));
    }
    let mut headers = HeaderMap::with_capacity(5);
    let Ok(mut bearer) = HeaderValue::from_str(&format!("Bearer {}", token.access_token.expose())) else {
        client.unanswered(&tenant.limit_key, slot).await;
        return Attempt::Fail(
            Error::new(ErrorCode::Authentication, "the token service returned a token that cannot be sent in a header")
                .with_request(call.method.as_str(), &call.route.url),
        );
    };
    bearer.set_sensitive(true);
    headers.insert(AUTHORIZATION, bearer);
    headers.insert("ST-App-Key", client.app_key_header.clone());
    headers.insert(ACCEPT, call.wanted.accept());
    let mut request = client
        .http
        .request(call.method.clone(), &call.route.url)
        .headers(headers)
        .timeout(config.timeouts.attempt.min(remaining));
    if !call.query.is_empty() {
        request = request.query(&call.query);
    }
    if let Some(body) = &call.body {
        request = request.header(CONTENT_TYPE, HeaderValue::from_static("application/json")).body(body.clone());
    }
    client.counters.requests.fetch_add(1, Ordering::Relaxed);
    let mut response = match request.send().await {
        Ok(r) => r,
        // A failed connect never reached the server.
        Err(e) => {
            client.unanswered(&tenant.limit_key, slot).await;
            let delivered = !e.is_connect();
            return transport_failure(tenant, call, e, delivered, false, attempt);
        }
    };
    let status = response.status();
    tracing::Span::current().record("status", status.as_u16());
    // Report runs have a limit of their own; only the per-tenant limit's 429s say the margin is short.
    let tenant_limited = status == StatusCode::TOO_MANY_REQUESTS && call.report_id.is_none();
    let round_trip = clock.now().saturating_duration_since(slot.map_or(admitted_at, |s| s.asked));
    client.measured(&tenant.limit_key, slot, round_trip, tenant_limited).await;
    let too_large = |detail: String| {
        Attempt::Fail(
            Error::new(
                ErrorCode::Decode,
                format!(
                    "the response is larger than the {} the client reads ({detail}); if the answer is \
                     real, ask for less at a time (a smaller pageSize)",
                    size_in_words(MAX_RESPONSE_BYTES)
                ),
            )
            .with_status(status.as_u16())
            .with_request(call.method.as_str(), &call.route.url),
        )
    };
    // An error's title and field errors fit in far less than a page.
    let cap = if status.is_success() { MAX_RESPONSE_BYTES } else { MAX_ERROR_BODY_BYTES };
    if status.is_success() {
        if let Some(announced) = announced_over(&response, cap) {
            return too_large(format!("it announced {announced} bytes"));
        }
    }
    // Taken, not copied: reading the body needs no headers.
    let headers = std::mem::take(response.headers_mut());
    let body = if status.is_redirection() {
        // Never followed, never resent: the body is not even read.
        Bytes::new()
    } else {
        // Boxed: reading the body is the largest state of a call, and keeping it out of line
        // keeps every call's future small (large futures cost a large allocation per call).
        match Box::pin(read_capped(response, cap)).await {
            Ok(Capped::Whole(b)) => b,
            // Enough of an error body to classify it; the rest is of no use.
            Ok(Capped::Cut(b)) if !status.is_success() => b,
            Ok(Capped::Cut(_)) => return too_large(format!("cut off after {}", size_in_words(cap))),
            Err(e) => return transport_failure(tenant, call, e, true, true, attempt),
        }
    };

    // 4. Classify.
    if status == StatusCode::TOO_MANY_REQUESTS {
        client.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
    }
    if let Wanted::Location(_) = call.wanted {
        if let Some(outcome) = location_answer(call, status, &headers) {
            return outcome;
        }
    }
    let answer = Answer::Response { status, headers: &headers, body: &body };
    let outcome = classify(call.sent(), &answer, clock.wall(), config.max_retry_after);
    let (code, cause) = match outcome {
        Outcome::Success => return Attempt::Done(body, status.as_u16()),
        Outcome::Fail { cause: Cause::Redirect, .. } => {
            return Attempt::Fail(
                redirect_error(status, &headers, &call.route.url, Redirected::Api)
                    .with_request(call.method.as_str(), &call.route.url),
            )
        }
        Outcome::RefetchToken => (ErrorCode::Authentication, Cause::TokenRefused),
        Outcome::Resend { code, cause, .. } | Outcome::NotResent { code, cause } | Outcome::Fail { code, cause } => {
            (code, cause)
        }
    };
    let problem = Problem::parse(&body);
    let title = problem.title.as_deref().unwrap_or("");
    let what = match cause {
        Cause::ServerTimedOut => "timed out on the server",
        _ => "failed on the server",
    };
    let message = match cause {
        Cause::TokenRefused => format!(
            "the API refused the access token even after a fresh one ({title}). Check the \
             app key (ST-App-Key) and that client id {:?} belongs to tenant {} in the {} \
             environment: credentials are environment specific",
            tenant.token.key.client_id, tenant.id, config.environment
        ),
        Cause::AppKeyRefused => format!(
            "the API refused the app key ({title}): check the app key (app_key, ST_APP_KEY). The \
             client id and secret were accepted; a new token would not help, so none was fetched"
        ),
        Cause::Throttled => format!("still rate limited by the server after the retries: {title}"),
        Cause::WaitTooLong(wait) => format!(
            "{}, which asks to wait {:.0} s, longer than max_retry_after ({:.0} s): {title}",
            if code == ErrorCode::RateLimited {
                "rate limited by the server".to_owned()
            } else {
                format!("the call {what} ({status})")
            },
            wait.as_secs_f64(),
            config.max_retry_after.as_secs_f64()
        ),
        Cause::ServerFailed | Cause::ServerTimedOut if matches!(outcome, Outcome::NotResent { .. }) => format!(
            "the call {what} ({status}) and was not resent: the method is not idempotent (mark the \
             call safe_to_retry if resending is harmless): {title}"
        ),
        Cause::ServerFailed | Cause::ServerTimedOut => {
            format!("the call {what} ({status}), also on every retry: {title}")
        }
        Cause::NotSupported | Cause::UnexpectedStatus => format!("the call {what} ({status}): {title}"),
        Cause::PermissionDenied => format!(
            "permission denied ({title}): the app may lack the scope for this API or not be \
             connected to tenant {}. New scopes take effect only after the tenant admin \
             accepts the new app version",
            tenant.id
        ),
        Cause::NotFound => {
            let hint = if call.route.is_known_module() {
                String::new()
            } else {
                format!(" ({:?} is not a known module; known modules: {})", call.route.module, KNOWN_MODULES.join(", "))
            };
            format!("not found: {title}{hint}")
        }
        Cause::Conflict => format!("conflict: {title}"),
        _ => format!("the server refused the request ({status}): {title}"),
    };
    let error = Error::new(code, message)
        .with_status(status.as_u16())
        .with_title(problem.title)
        .with_trace_id(problem.trace_id)
        .with_errors(problem.errors)
        .with_request(call.method.as_str(), &call.route.url);
    match outcome {
        Outcome::RefetchToken => Attempt::Unauthorized(error, token),
        Outcome::Resend { .. } => {
            let wait = outcome.wait(&config.retry, attempt.saturating_sub(1));
            if cause == Cause::Throttled {
                let key = match call.report_id {
                    // A report's limit is its own: pausing the whole tenant for a minute would
                    // stall every other call.
                    Some(id) => tenant.report_limit_key(id),
                    None => tenant.limit_key.clone(),
                };
                Attempt::Retry { error: error.with_retry_after(Some(wait)), wait, cool_down: Some(key), cause }
            } else {
                Attempt::Retry { error, wait, cool_down: None, cause }
            }
        }
        Outcome::Fail { cause: Cause::WaitTooLong(wait), code: ErrorCode::RateLimited } => {
            Attempt::Fail(error.with_retry_after(Some(wait)))
        }
        _ => Attempt::Fail(error),
    }
}

/// The answer of a call that wants a redirect's target: the absolute URL of a 3xx's
/// `Location` (relative ones are resolved against the request's URL), or an error for a 2xx,
/// which carries no location. `None` leaves every other answer to the classifier, a 3xx
/// without a usable `Location` too (it is a `redirect` error as usual).
fn location_answer(call: &Call, status: StatusCode, headers: &HeaderMap) -> Option<Attempt> {
    if status.is_success() {
        return Some(Attempt::Fail(
            Error::new(
                ErrorCode::Decode,
                format!(
                    "the API answered {status} where it documents a redirect to the file; the \
                     answer has no location to give"
                ),
            )
            .with_status(status.as_u16())
            .with_request(call.method.as_str(), &call.route.url),
        ));
    }
    if !status.is_redirection() {
        return None;
    }
    let location = headers.get(reqwest::header::LOCATION)?.to_str().ok()?;
    let target = reqwest::Url::parse(&call.route.url).ok()?.join(location).ok()?;
    if !matches!(target.scheme(), "http" | "https") {
        return None;
    }
    Some(Attempt::Done(Bytes::from(String::from(target)), status.as_u16()))
}

/// Which endpoint answered with a redirect, for the advice of [`redirect_error`].
#[derive(Clone, Copy)]
pub(crate) enum Redirected {
    Api,
    TokenService,
}

/// The error for a 3xx: its status and where it pointed (scheme, host and port only: a
/// `Location`'s path, query or userinfo may carry anything), and what to check.
pub(crate) fn redirect_error(status: StatusCode, headers: &HeaderMap, request_url: &str, who: Redirected) -> Error {
    let target = match headers.get(reqwest::header::LOCATION) {
        None => "nowhere (no Location header)".to_owned(),
        Some(location) => location
            .to_str()
            .ok()
            .and_then(|l| reqwest::Url::parse(request_url).ok()?.join(l.trim()).ok())
            .and_then(|u| {
                let host = u.host_str().filter(|h| !h.is_empty())?;
                let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
                Some(server_text(&format!("{}://{host}{port}", u.scheme())))
            })
            .unwrap_or_else(|| "an unreadable Location".to_owned()),
    };
    let (what, sent, setting) = match who {
        Redirected::Api => (
            "the API",
            "nothing (no app key, no token, no body)",
            "api_url (ST_API_URL): it must be the API's own https address",
        ),
        Redirected::TokenService => (
            "the token service",
            "nothing (no client id, no client secret)",
            "auth_url (ST_AUTH_URL): it must be the token service's own https address",
        ),
    };
    Error::new(
        ErrorCode::Redirect,
        format!(
            "{what} answered {status} with a redirect to {target}; redirects are never followed, so \
             {sent} was sent there. Check {setting}, and any proxy or gateway in between"
        ),
    )
    .with_status(status.as_u16())
}

fn transport_failure(
    tenant: &TenantInner,
    call: &Call,
    e: reqwest::Error,
    delivered: bool,
    reading_body: bool,
    attempt: u32,
) -> Attempt {
    let config = &tenant.client.config;
    let (failure, detail) = describe_failure(&e);
    let answer = Answer::Transport { failure, delivered };
    let outcome = classify(call.sent(), &answer, tenant.client.clock.wall(), config.max_retry_after);
    let what = if reading_body {
        "lost the connection while reading the response"
    } else if !delivered {
        "could not connect"
    } else {
        "lost the connection"
    };
    let hint = match failure {
        Failure::NameNotResolved => "; check api_url (ST_API_URL) and the network",
        Failure::Tls => "; check api_url (ST_API_URL), the trusted certificates (ST_CA_BUNDLE) and any proxy",
        _ => "",
    };
    let error = |code: ErrorCode, tail: &str| {
        Error::new(code, format!("the call {what}: {detail}{hint}{tail}"))
            .with_request(call.method.as_str(), &call.route.url)
            .with_source(e.without_url())
    };
    match outcome {
        Outcome::Resend { code, cause, .. } => Attempt::Retry {
            error: error(code, ""),
            wait: outcome.wait(&config.retry, attempt.saturating_sub(1)),
            cool_down: None,
            cause,
        },
        Outcome::NotResent { code, .. } => Attempt::Fail(error(
            code,
            ", and was not resent: the method is not idempotent and the server may have processed \
             it (mark the call safe_to_retry if resending is harmless)",
        )),
        Outcome::Fail { code, .. } => Attempt::Fail(error(code, "")),
        Outcome::Success | Outcome::RefetchToken => {
            Attempt::Fail(error(ErrorCode::Internal, " (a connection failure classified as an answer)"))
        }
    }
}

/// The RFC 7807 parts of an error body, each cut to what an error message may carry.
#[derive(Default)]
pub(crate) struct Problem {
    pub(crate) title: Option<String>,
    pub(crate) trace_id: Option<String>,
    pub(crate) errors: BTreeMap<String, Vec<String>>,
}

/// Field errors kept from one error body: a server can list thousands, and all of them end up
/// in the message.
pub(crate) const MAX_FIELD_ERRORS: usize = 50;

/// Characters of field error text kept from one error body, field names included.
pub(crate) const MAX_FIELD_ERRORS_CHARS: usize = 2 * crate::error::MAX_SERVER_TEXT_CHARS;

/// The key under which a cut list of field errors says how many fields were left out.
pub(crate) const MORE_FIELDS_KEY: &str = "…";

impl Problem {
    pub(crate) fn parse(body: &[u8]) -> Problem {
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
            // Not JSON (an HTML page from a proxy, say): its start, as one line.
            let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            let text = text.chars().take(200).collect::<String>();
            return Problem { title: (!text.is_empty()).then(|| server_text(&text)), ..Problem::default() };
        };
        let text = |k: &str| map.get(k).and_then(Value::as_str).map(server_text);
        let mut errors = BTreeMap::new();
        if let Some(Value::Object(fields)) = map.get("errors") {
            let mut budget = MAX_FIELD_ERRORS_CHARS;
            let mut shown = 0;
            for (field, messages) in fields {
                if shown == MAX_FIELD_ERRORS || budget == 0 {
                    break;
                }
                let field = server_text(field);
                budget = budget.saturating_sub(field.chars().count());
                let items: Vec<&Value> = match messages {
                    Value::Array(items) => items.iter().collect(),
                    other => vec![other],
                };
                let mut list = Vec::new();
                for message in items {
                    if budget == 0 {
                        break;
                    }
                    let text = message.as_str().map(server_text).unwrap_or_else(|| server_text(&message.to_string()));
                    let text: String = text.chars().take(budget).collect();
                    budget -= text.chars().count();
                    list.push(text);
                }
                errors.insert(field, list);
                shown += 1;
            }
            if shown < fields.len() {
                errors.insert(
                    MORE_FIELDS_KEY.to_owned(),
                    vec![format!("{} more fields not shown", fields.len() - shown)],
                );
            }
        }
        Problem {
            title: text("title").or_else(|| text("error_description")).or_else(|| text("message")),
            trace_id: text("traceId").or_else(|| text("trace_id")),
            errors,
        }
    }
}

/// Text from a server as an error may carry it: at most
/// [`MAX_SERVER_TEXT_CHARS`](crate::error::MAX_SERVER_TEXT_CHARS) characters, control
/// characters (line breaks, terminal escapes) shown as spaces so that it cannot forge log lines.
pub(crate) fn server_text(text: &str) -> String {
    excerpt(text).chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_read_from_rfc7807_bodies() {
        let p = Problem::parse(
            br#"{"type":"x","title":"One or more validation errors occurred.","status":400,
                "traceId":"00-abc","errors":{"name":["The Name field is required."],"x":"y"}}"#,
        );
        assert_eq!(p.title.as_deref(), Some("One or more validation errors occurred."));
        assert_eq!(p.trace_id.as_deref(), Some("00-abc"));
        assert_eq!(p.errors["name"], vec!["The Name field is required."]);
        assert_eq!(p.errors["x"], vec!["y"]);
        assert_eq!(Problem::parse(b"Bad Gateway").title.as_deref(), Some("Bad Gateway"));
    }

    #[test]
    fn huge_error_bodies_are_cut_to_what_a_message_carries() {
        let title = "x".repeat(5 << 20);
        let p =
            Problem::parse(serde_json::json!({"title": title, "traceId": "t".repeat(1 << 20)}).to_string().as_bytes());
        assert_eq!(p.title.as_ref().unwrap().chars().count(), crate::error::MAX_SERVER_TEXT_CHARS + 1);
        assert!(p.trace_id.unwrap().chars().count() <= crate::error::MAX_SERVER_TEXT_CHARS + 1);

        // Thousands of field errors: a bounded selection, and a word on the rest.
        let fields: serde_json::Map<String, Value> =
            (0..10_000).map(|i| (format!("field{i}"), serde_json::json!(["m".repeat(300), "n"]))).collect();
        let p = Problem::parse(serde_json::json!({"title": "bad", "errors": fields}).to_string().as_bytes());
        let shown: usize = p.errors.iter().map(|(k, v)| k.len() + v.iter().map(String::len).sum::<usize>()).sum();
        assert!(shown < 2 * MAX_FIELD_ERRORS_CHARS, "{shown}");
        assert!(p.errors[MORE_FIELDS_KEY][0].ends_with("more fields not shown"));

        // Control characters cannot forge log lines; bodies that are not JSON give their start.
        let p = Problem::parse(br#"{"title":"ok\r\n2026-01-01 INFO forged\u001b[31m"}"#);
        assert!(!p.title.unwrap().chars().any(char::is_control));
        let p = Problem::parse(&[b'<'; 10 << 20]);
        assert_eq!(p.title.unwrap().len(), 200);
        let p = Problem::parse(b"\xc3\x28\xa0\xa1\xff\xfe");
        assert!(p.title.is_some());
        let nested = "[".repeat(100_000);
        assert!(Problem::parse(nested.as_bytes()).errors.is_empty());
    }

    #[test]
    fn decode_errors_quote_little_of_the_body() {
        let body = format!("\"{}\"", "s".repeat(1 << 20));
        let e = decode::<u32>(body.as_bytes(), &Method::GET, "https://api/crm/v2/tenant/1/customers").unwrap_err();
        assert_eq!(e.code(), ErrorCode::Decode);
        assert!(e.to_string().len() < 1500 && e.to_string().contains("crm"), "{}", e.to_string().len());
        let e = decode::<Value>(&[b'['; 100_000], &Method::GET, "u").unwrap_err();
        assert_eq!(e.code(), ErrorCode::Decode);
        let e = decode::<Value>(b"\xff\xfe{}", &Method::GET, "u").unwrap_err();
        assert_eq!(e.code(), ErrorCode::Decode);
    }

    #[test]
    fn a_redirect_operation_answers_with_its_absolute_target() {
        let route = route::resolve("http://api.test", 7, "pricebook/images", false).unwrap();
        let call = Call {
            method: Method::GET,
            route,
            query: Vec::new(),
            body: None,
            retry_any: false,
            report_id: None,
            timeout: None,
            wanted: Wanted::Location("*/*"),
        };
        let target = |status: StatusCode, location: Option<&'static str>| {
            let mut headers = HeaderMap::new();
            if let Some(location) = location {
                headers.insert(reqwest::header::LOCATION, HeaderValue::from_static(location));
            }
            match location_answer(&call, status, &headers) {
                Some(Attempt::Done(bytes, code)) => Some(Ok((String::from_utf8(bytes.to_vec()).unwrap(), code))),
                Some(Attempt::Fail(e)) => Some(Err(e.code())),
                Some(_) => panic!("neither an answer nor a failure"),
                None => None,
            }
        };
        // Relative targets are the API's own host; absolute ones are kept as they are.
        assert_eq!(
            target(StatusCode::FOUND, Some("/files/a.png?sig=x")),
            Some(Ok(("http://api.test/files/a.png?sig=x".into(), 302)))
        );
        assert_eq!(
            target(StatusCode::TEMPORARY_REDIRECT, Some("https://blob.example/i/a.png")),
            Some(Ok(("https://blob.example/i/a.png".into(), 307)))
        );
        // No usable target: the classifier's `redirect` error, as for any other call.
        assert_eq!(target(StatusCode::FOUND, None), None);
        assert_eq!(target(StatusCode::FOUND, Some("javascript:alert(1)")), None);
        // The file itself instead of a redirect: nothing to give.
        assert_eq!(target(StatusCode::OK, None), Some(Err(ErrorCode::Decode)));
        assert_eq!(target(StatusCode::NOT_FOUND, None), None);
        assert_eq!(Wanted::File("application/octet-stream").accept(), "application/octet-stream");
        assert_eq!(Wanted::Json.accept(), "application/json");
    }

    #[test]
    fn a_redirect_names_only_the_scheme_and_host_of_its_target() {
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::LOCATION,
            HeaderValue::from_static("https://user:hunter2@evil.example:8443/steal/ak1.KEY?token=SECRET#frag"),
        );
        let e = redirect_error(StatusCode::PERMANENT_REDIRECT, &headers, "https://api/crm/v2", Redirected::Api);
        let text = e.to_string();
        assert_eq!((e.code(), e.status()), (ErrorCode::Redirect, Some(308)));
        assert!(text.contains("308") && text.contains("https://evil.example:8443"), "{text}");
        for secret in ["hunter2", "user", "steal", "KEY", "SECRET", "frag"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("api_url") && text.contains("nothing"), "{text}");

        // A relative Location is the API's own host; a missing or unreadable one is said so.
        headers.insert(reqwest::header::LOCATION, HeaderValue::from_static("/elsewhere?x=1"));
        let text =
            redirect_error(StatusCode::FOUND, &headers, "http://127.0.0.1:9/a", Redirected::TokenService).to_string();
        assert!(text.contains("http://127.0.0.1:9;") && text.contains("auth_url") && !text.contains("elsewhere"));
        headers.insert(reqwest::header::LOCATION, HeaderValue::from_bytes(b"\xff\xfe").unwrap());
        let text = redirect_error(StatusCode::FOUND, &headers, "http://h/", Redirected::Api).to_string();
        assert!(text.contains("an unreadable Location"), "{text}");
        let text = redirect_error(StatusCode::FOUND, &HeaderMap::new(), "http://h/", Redirected::Api).to_string();
        assert!(text.contains("no Location"), "{text}");
    }

    #[test]
    fn a_body_decoded_elsewhere_names_its_request_when_it_is_not_json() {
        let body = ResponseBody {
            bytes: Bytes::from_static(b"<html>"),
            method: Method::POST,
            url: "https://api/crm/v2/tenant/1/customers".into(),
        };
        assert_eq!(&*body, b"<html>");
        let e = body.decode_error(format!("expected value at line 1 column 1{}", "x".repeat(5000)));
        assert_eq!((e.code(), e.method(), e.url()), (ErrorCode::Decode, Some("POST"), Some(body.url())));
        let text = e.to_string();
        assert!(text.contains("not valid JSON (expected value") && text.contains("[POST https://api/crm"), "{text}");
        assert!(text.len() < 1200, "{}", text.len());
    }

    #[test]
    fn empty_bodies_decode_as_null() {
        let v: Option<u32> = decode(b"", &Method::DELETE, "u").unwrap();
        assert_eq!(v, None);
        let e = decode::<u32>(b"{", &Method::GET, "u").unwrap_err();
        assert_eq!(e.code(), ErrorCode::Decode);
        assert_eq!(e.method(), Some("GET"));
    }
}
