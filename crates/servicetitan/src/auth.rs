//! OAuth client credentials: the token exchange and the token cache (one fetch shared by all concurrent callers, refreshed ahead of expiry, invalidated only by a 401 on the token that was sent).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use futures::future::{BoxFuture, FutureExt, Shared};
use hmac::{Hmac, Mac};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use sha2::Sha256;
use tracing::Instrument;

use crate::body::{announced_over, read_capped, size_in_words, Capped, MAX_TOKEN_RESPONSE_BYTES};
use crate::classify::{classify, describe_failure, Answer, Cause, Failure, Outcome, Sent};
use crate::clock::Clock;
use crate::config::{Config, Environment, Secret, TenantCredentials, Timeouts};
use crate::error::{Error, ErrorCode, Result};
use crate::request::{redirect_error, server_text, Redirected};
use crate::retry::RetryPolicy;
use crate::Counters;

/// What a token is cached under: the token endpoint (so environments never mix), the client
/// id, and a keyed hash of the secret (so a wrong secret never rides on a token a right one
/// fetched, and the secret itself is never a key).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TokenKey {
    /// The token endpoint URL.
    pub environment: String,
    /// The client id.
    pub client_id: String,
    /// HMAC-SHA256 of the client secret keyed with the app key, hex, 128 bits.
    pub secret_fingerprint: String,
    /// A key derived from the client secret, for stores that encrypt the tokens they keep.
    pub store_key: StoreKey,
}

/// Key material derived from a client secret: HMAC-SHA256(client secret,
/// `"servicetitan token store v1"`). Every process holding the secret derives the same key;
/// whoever can only read a shared store cannot. `Debug` prints `***`.
///
/// ```
/// use servicetitan::auth::StoreKey;
/// let key = StoreKey::derive(&servicetitan::Secret::new("cs1.secret"));
/// assert_eq!(key, StoreKey::derive(&servicetitan::Secret::new("cs1.secret")));
/// assert_ne!(key, StoreKey::derive(&servicetitan::Secret::new("cs1.other")));
/// assert_eq!(format!("{key:?}"), "***");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StoreKey([u8; 32]);

impl StoreKey {
    /// The key of `client_secret`.
    pub fn derive(client_secret: &Secret) -> Self {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(client_secret.expose().as_bytes()).expect("HMAC takes keys of any length");
        mac.update(b"servicetitan token store v1");
        StoreKey(mac.finalize().into_bytes().into())
    }

    /// The key itself: only for encrypting and decrypting what a store keeps.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A cached access token and its schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedToken {
    /// The bearer token.
    pub access_token: Secret,
    /// When the server stops accepting it.
    pub expires_at: SystemTime,
    /// From here on one caller fetches a replacement in the background while others keep
    /// using this token (lifetime-proportional margin, with jitter).
    pub refresh_at: SystemTime,
    /// From here on callers wait for the replacement rather than send a token that may
    /// expire in flight.
    pub stale_at: SystemTime,
}

impl CachedToken {
    /// Schedules a token of `lifetime` obtained at `issued_at` (taken when the request
    /// was sent, so the schedule errs early).
    ///
    /// The refresh margin is `max(10% of lifetime, min(lifetime / 3, 30 s))`: about 90 s for
    /// ServiceTitan's 900 s tokens, 1 s for a 3 s token, so short tokens are renewed before
    /// a call can carry them past expiry. Up to half a margin of jitter spreads the
    /// refreshes of many processes. A lifetime over [`MAX_TOKEN_LIFETIME`] counts as that.
    pub fn schedule(access_token: Secret, issued_at: SystemTime, lifetime: Duration) -> Self {
        let lifetime = lifetime.min(MAX_TOKEN_LIFETIME);
        let margin = (lifetime / 10).max((lifetime / 3).min(Duration::from_secs(30)));
        let jitter = (margin / 2).mul_f64(fastrand::f64());
        // Checked: `issued_at` comes from a clock that may be anything (a test's, a store's).
        let expires_at = issued_at.checked_add(lifetime).unwrap_or(issued_at);
        let before = |d: Duration| expires_at.checked_sub(d).unwrap_or(expires_at);
        CachedToken { access_token, expires_at, refresh_at: before(margin + jitter), stale_at: before(margin / 2) }
    }

    /// Whether it can still be sent at `now`.
    pub fn is_usable(&self, now: SystemTime) -> bool {
        now < self.stale_at
    }
}

/// Where tokens are kept between calls. The default keeps them in memory; a shared store
/// (Redis) lets many processes share one token per credential.
///
/// A store holds access tokens: keep it as private as the client secrets.
///
/// ```
/// use futures::future::BoxFuture;
/// use servicetitan::auth::{CachedToken, MemoryTokenStore, TokenKey, TokenStore};
/// use servicetitan::Secret;
/// use std::sync::Arc;
///
/// /// Counts the tokens stored, keeping them in memory.
/// #[derive(Debug, Default)]
/// struct Counting(MemoryTokenStore, std::sync::atomic::AtomicUsize);
///
/// impl TokenStore for Counting {
///     fn get<'a>(&'a self, key: &'a TokenKey) -> BoxFuture<'a, servicetitan::Result<Option<CachedToken>>> {
///         self.0.get(key)
///     }
///     fn put<'a>(&'a self, key: &'a TokenKey, token: &'a CachedToken) -> BoxFuture<'a, servicetitan::Result<()>> {
///         self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///         self.0.put(key, token)
///     }
///     fn remove_if<'a>(&'a self, key: &'a TokenKey, token: &'a Secret) -> BoxFuture<'a, servicetitan::Result<()>> {
///         self.0.remove_if(key, token)
///     }
/// }
///
/// let client = servicetitan::Client::builder()
///     .app_key("ak1.example")
///     .token_store(Arc::new(Counting::default()))
///     .build();
/// ```
pub trait TokenStore: Send + Sync + fmt::Debug + 'static {
    /// The token cached under `key`, if any.
    fn get<'a>(&'a self, key: &'a TokenKey) -> BoxFuture<'a, Result<Option<CachedToken>>>;
    /// Caches `token` under `key`, replacing any other.
    fn put<'a>(&'a self, key: &'a TokenKey, token: &'a CachedToken) -> BoxFuture<'a, Result<()>>;
    /// Removes the token under `key` only if it is `access_token` (a 401 on an old token must
    /// not throw away the new one another caller just fetched).
    fn remove_if<'a>(&'a self, key: &'a TokenKey, access_token: &'a Secret) -> BoxFuture<'a, Result<()>>;

    /// Tries to become the one fetcher of a token for `key` among every process sharing the
    /// store, for at most `ttl`. `Some` grants it (release it with
    /// [`unlock_fetch`](Self::unlock_fetch)); `None` means another process is fetching, and
    /// the caller waits for the token to appear in the store.
    ///
    /// The default grants a [`FetchLock::local`] at once: within one process the token cache
    /// already makes concurrent callers share one fetch.
    fn try_lock_fetch<'a>(&'a self, key: &'a TokenKey, ttl: Duration) -> BoxFuture<'a, Result<Option<FetchLock>>> {
        let _ = (key, ttl);
        Box::pin(futures::future::ready(Ok(Some(FetchLock::local()))))
    }

    /// Releases a lock from [`try_lock_fetch`](Self::try_lock_fetch), only if it is still
    /// this owner's (it may have expired and been taken by another process).
    fn unlock_fetch<'a>(&'a self, key: &'a TokenKey, lock: &'a FetchLock) -> BoxFuture<'a, Result<()>> {
        let _ = (key, lock);
        Box::pin(futures::future::ready(Ok(())))
    }

    /// A wake-up for a caller about to wait on another process's fetch of `key`: it completes
    /// when that fetch may have finished (the caller then looks in the store). It must be
    /// armed when returned, so that a fetch finishing between this call and the caller's next
    /// look still wakes it. `None` (the default): the store cannot tell, and the caller looks
    /// every 20 ms; with a wake-up it looks only every 200 ms besides, for lost messages.
    fn watch_fetch<'a>(&'a self, key: &'a TokenKey) -> BoxFuture<'a, Option<FetchNotice>> {
        let _ = key;
        Box::pin(futures::future::ready(None))
    }
}

/// From [`TokenStore::watch_fetch`]: completes when another process's fetch may have finished.
pub type FetchNotice = BoxFuture<'static, ()>;

/// Permission to fetch a token for a key, from [`TokenStore::try_lock_fetch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchLock {
    owner: Option<String>,
}

impl FetchLock {
    /// A lock that coordinates nothing beyond this process (stores that are not shared).
    pub fn local() -> Self {
        FetchLock { owner: None }
    }

    /// A lock held in a shared store under a random `owner` token, which releasing it must
    /// present.
    pub fn shared(owner: impl Into<String>) -> Self {
        FetchLock { owner: Some(owner.into()) }
    }

    /// The owner token of a shared lock.
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }
}

/// How long one process may hold the fetch lock: longer than a token request normally takes,
/// short enough that a process that dies while fetching delays the others only briefly.
const FETCH_LOCK_TTL: Duration = Duration::from_secs(10);

/// How often a process waiting for another's fetch looks for the token, when the store cannot
/// wake it ([`TokenStore::watch_fetch`]).
const FETCH_WAIT_POLL: Duration = Duration::from_millis(20);

/// How often it looks when the store wakes it: only for wake-ups that were lost.
const FETCH_WAIT_FALLBACK_POLL: Duration = Duration::from_millis(200);

/// The default [`TokenStore`]: a map in this process.
///
/// Expired tokens are evicted as new ones are stored: each store looks at a few of the
/// earliest expiries (a heap ordered by expiry), so an app that has synced many tenants once
/// does not keep their tokens forever, and no call scans every tenant.
#[derive(Debug)]
pub struct MemoryTokenStore {
    clock: Arc<dyn Clock>,
    tokens: RwLock<MemoryTokens>,
}

#[derive(Debug, Default)]
struct MemoryTokens {
    map: HashMap<TokenKey, CachedToken>,
    // One entry per token stored, earliest expiry first. An entry whose key has since been
    // replaced or removed is dropped when it comes up: at most one per token stored within
    // a lifetime, so the heap stays within a small multiple of the live tokens.
    expiries: BinaryHeap<Reverse<Expiry>>,
}

#[derive(Debug)]
struct Expiry {
    at: SystemTime,
    key: TokenKey,
}

impl PartialEq for Expiry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Expiry {}
impl PartialOrd for Expiry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Expiry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

/// The most expired entries one store evicts: more than the one entry each store adds, so
/// eviction keeps up, and few enough that no store waits on a long sweep.
const EVICTIONS_PER_PUT: usize = 8;

impl Default for MemoryTokenStore {
    fn default() -> Self {
        Self::with_clock(Arc::new(crate::clock::SystemClock))
    }
}

impl MemoryTokenStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that reads the time (to evict expired tokens) from `clock`: the
    /// client's own, so a test clock governs eviction as it governs the token schedule.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        MemoryTokenStore { clock, tokens: RwLock::new(MemoryTokens::default()) }
    }

    /// How many tokens it holds (expired ones not yet evicted included).
    pub fn len(&self) -> usize {
        crate::sync::read(&self.tokens).map.len()
    }

    /// Whether it holds no token.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl MemoryTokens {
    /// Drops up to [`EVICTIONS_PER_PUT`] tokens expired at `now`.
    fn evict_expired(&mut self, now: SystemTime) {
        for _ in 0..EVICTIONS_PER_PUT {
            match self.expiries.peek() {
                Some(Reverse(first)) if first.at <= now => {}
                _ => return,
            }
            let Some(Reverse(expiry)) = self.expiries.pop() else { return };
            // Only if the token under the key is still the one that expired.
            if self.map.get(&expiry.key).is_some_and(|t| t.expires_at <= now) {
                self.map.remove(&expiry.key);
            }
        }
    }
}

impl TokenStore for MemoryTokenStore {
    fn get<'a>(&'a self, key: &'a TokenKey) -> BoxFuture<'a, Result<Option<CachedToken>>> {
        let token = crate::sync::read(&self.tokens).map.get(key).cloned();
        Box::pin(futures::future::ready(Ok(token)))
    }

    fn put<'a>(&'a self, key: &'a TokenKey, token: &'a CachedToken) -> BoxFuture<'a, Result<()>> {
        let now = self.clock.wall();
        let mut tokens = crate::sync::write(&self.tokens);
        tokens.evict_expired(now);
        tokens.map.insert(key.clone(), token.clone());
        tokens.expiries.push(Reverse(Expiry { at: token.expires_at, key: key.clone() }));
        Box::pin(futures::future::ready(Ok(())))
    }

    fn remove_if<'a>(&'a self, key: &'a TokenKey, access_token: &'a Secret) -> BoxFuture<'a, Result<()>> {
        let mut tokens = crate::sync::write(&self.tokens);
        if tokens.map.get(key).is_some_and(|t| &t.access_token == access_token) {
            tokens.map.remove(key);
        }
        Box::pin(futures::future::ready(Ok(())))
    }
}

/// One credential pair, ready to be exchanged for tokens.
pub(crate) struct TokenSource {
    pub(crate) key: TokenKey,
    client_id: String,
    client_secret: Secret,
    token_url: Url,
    environment: Environment,
}

impl TokenSource {
    pub(crate) fn new(config: &Config, creds: &TenantCredentials) -> Self {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(config.app_key.expose().as_bytes()).expect("HMAC takes keys of any length");
        mac.update(creds.client_secret.expose().as_bytes());
        let digest = mac.finalize().into_bytes();
        let secret_fingerprint = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        TokenSource {
            key: TokenKey {
                environment: config.token_url.to_string(),
                client_id: creds.client_id.clone(),
                secret_fingerprint,
                store_key: StoreKey::derive(&creds.client_secret),
            },
            client_id: creds.client_id.clone(),
            client_secret: creds.client_secret.clone(),
            token_url: config.token_url.clone(),
            environment: config.environment.clone(),
        }
    }
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("client_id", &self.client_id)
            .field("environment", &self.environment.name())
            .finish_non_exhaustive()
    }
}

/// Performs the HTTP exchange; shared by every flight.
pub(crate) struct TokenFetcher {
    pub(crate) http: reqwest::Client,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) store: Arc<dyn TokenStore>,
    pub(crate) retry: RetryPolicy,
    pub(crate) timeouts: Timeouts,
    pub(crate) max_retry_after: Duration,
    pub(crate) counters: Arc<Counters>,
}

/// The shortest token lifetime believed: a lifetime of zero, a negative or a fractional one
/// is read as this, so that a token is always usable for a moment and never scheduled in the
/// past.
pub const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(1);

/// The longest token lifetime believed (ServiceTitan's tokens last 900 s): anything longer,
/// up to 1e19 s or a number no integer type holds, is read as this, so that a lying token
/// service cannot make a token outlive its revocation by more than a day.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The lifetime of a token whose answer has no readable `expires_in`: ServiceTitan's.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(900);

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

/// Why a 2xx token answer cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BadTokenAnswer {
    /// Not the JSON object with an `access_token` string that was expected (serde's reason).
    NotJson(String),
    /// An `access_token` that cannot be sent: empty, or with characters a header cannot hold
    /// (a CR or LF would split the request's headers).
    Unusable(&'static str),
}

/// Reads a 2xx token answer: the access token and its lifetime, within
/// [`MIN_TOKEN_LIFETIME`]..=[`MAX_TOKEN_LIFETIME`] ([`DEFAULT_TOKEN_LIFETIME`] when
/// `expires_in` is missing or not a number).
pub(crate) fn parse_token_answer(body: &[u8]) -> std::result::Result<(String, Duration), BadTokenAnswer> {
    let parsed: TokenResponse = serde_json::from_slice(body)
        .map_err(|e| BadTokenAnswer::NotJson(crate::error::excerpt(&e.to_string()).into()))?;
    if parsed.access_token.is_empty() {
        return Err(BadTokenAnswer::Unusable("an empty access token"));
    }
    if reqwest::header::HeaderValue::from_str(&format!("Bearer {}", parsed.access_token)).is_err() {
        return Err(BadTokenAnswer::Unusable(
            "an access token with characters an HTTP header cannot carry (control characters or non-ASCII)",
        ));
    }
    Ok((parsed.access_token, token_lifetime(parsed.expires_in.as_ref())))
}

/// `expires_in` (seconds, a number or a numeric string) as a lifetime within bounds.
pub(crate) fn token_lifetime(expires_in: Option<&serde_json::Value>) -> Duration {
    let secs = match expires_in {
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match secs {
        Some(secs) if secs.is_finite() => {
            let secs = secs.clamp(MIN_TOKEN_LIFETIME.as_secs_f64(), MAX_TOKEN_LIFETIME.as_secs_f64());
            Duration::try_from_secs_f64(secs).unwrap_or(DEFAULT_TOKEN_LIFETIME)
        }
        _ => DEFAULT_TOKEN_LIFETIME,
    }
}

#[derive(Deserialize, Default)]
struct OAuthError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

impl TokenFetcher {
    async fn fetch_and_store(self: Arc<Self>, source: Arc<TokenSource>) -> Result<CachedToken> {
        let span = tracing::info_span!(
            "servicetitan.token",
            client_id = %source.client_id,
            environment = source.environment.name(),
            attempts = tracing::field::Empty,
        );
        async move {
            loop {
                let Some(lock) = self.store.try_lock_fetch(&source.key, FETCH_LOCK_TTL).await? else {
                    // Another process is fetching: wait for its token rather than fetch too.
                    if let Some(token) = self.wait_for_other_fetch(&source.key).await? {
                        return Ok(token);
                    }
                    continue;
                };
                if lock.owner().is_some() {
                    // Another process may have stored a token between our look and the lock.
                    if let Some(token) = self.store.get(&source.key).await? {
                        if self.clock.wall() < token.refresh_at {
                            self.unlock(&source.key, &lock).await;
                            return Ok(token);
                        }
                    }
                }
                let result = self.fetch(&source).await;
                if let Ok(token) = &result {
                    if let Err(e) = self.store.put(&source.key, token).await {
                        // The token is good even if it could not be shared; the next caller fetches again.
                        tracing::warn!(error = %e, "could not store the token");
                    }
                }
                self.unlock(&source.key, &lock).await;
                return result;
            }
        }
        .instrument(span)
        .await
    }

    async fn unlock(&self, key: &TokenKey, lock: &FetchLock) {
        if let Err(e) = self.store.unlock_fetch(key, lock).await {
            // It expires by itself; the others wait at most its TTL.
            tracing::warn!(error = %e, "could not release the token fetch lock");
        }
    }

    /// Waits, at most one lock TTL, for a token fetched by another process. `None`: none came
    /// (the fetcher failed or died), so the caller tries for the lock again.
    async fn wait_for_other_fetch(&self, key: &TokenKey) -> Result<Option<CachedToken>> {
        let until = self.clock.now() + FETCH_LOCK_TTL;
        loop {
            // Armed before looking, so that a fetch finishing in between still wakes us.
            let notice = self.store.watch_fetch(key).await;
            if let Some(token) = self.fresh_in_store(key).await? {
                return Ok(Some(token));
            }
            let left = until.saturating_duration_since(self.clock.now());
            if left.is_zero() {
                return Ok(None);
            }
            match notice {
                None => self.clock.sleep(FETCH_WAIT_POLL.min(left)).await,
                Some(notice) => {
                    let poll = self.clock.sleep(FETCH_WAIT_FALLBACK_POLL.min(left));
                    if let futures::future::Either::Left(_) = futures::future::select(notice, poll).await {
                        // The fetch is over: its token, or, if it failed, our turn at the lock.
                        return self.fresh_in_store(key).await;
                    }
                }
            }
        }
    }

    /// The token in the store, if it need not be refreshed yet.
    async fn fresh_in_store(&self, key: &TokenKey) -> Result<Option<CachedToken>> {
        Ok(self.store.get(key).await?.filter(|token| self.clock.wall() < token.refresh_at))
    }

    async fn fetch(&self, source: &TokenSource) -> Result<CachedToken> {
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            let (error, wait, cause) = match self.exchange(source, attempt).await {
                Ok(token) => break Ok(token),
                Err(TokenFailure { error, resend: Some((wait, cause)) }) if attempt < self.retry.max_attempts => {
                    (error, wait, cause)
                }
                Err(failure) => break Err(failure.error),
            };
            tracing::info!(
                attempt,
                wait_ms = wait.as_millis() as u64,
                reason = cause.describe(),
                error = %error,
                "resending the token request"
            );
            self.clock.sleep(wait).await;
        };
        // Recorded once, when known: a span field recorded on every attempt is repeated in
        // every line logged in the span.
        tracing::Span::current().record("attempts", attempt);
        match &result {
            Ok(_) => tracing::info!("fetched an access token"),
            Err(e) => tracing::debug!(code = e.code().as_str(), error = %e, "token request failed"),
        }
        result
    }

    /// One token request.
    async fn exchange(&self, source: &TokenSource, attempt: u32) -> std::result::Result<CachedToken, TokenFailure> {
        self.counters.token_fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let issued_at = self.clock.wall();
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", source.client_id.as_str()),
            ("client_secret", source.client_secret.expose()),
        ];
        let url = source.token_url.as_str();
        let response = self.http.post(source.token_url.clone()).form(&form).timeout(self.timeouts.attempt).send().await;
        let mut response = match response {
            Ok(r) => r,
            Err(e) => return Err(self.transport_failure(source, e, "could not reach", attempt)),
        };
        let status = response.status();
        let too_large = |detail: String| {
            let error = Error::new(
                ErrorCode::Decode,
                format!(
                    "the token response is larger than the {} a token answer can be ({detail}); \
                     check auth_url (ST_AUTH_URL) and any proxy in between",
                    size_in_words(MAX_TOKEN_RESPONSE_BYTES)
                ),
            )
            .with_request("POST", url)
            .with_status(status.as_u16());
            Err(TokenFailure { error, resend: None })
        };
        if status.is_success() {
            if let Some(announced) = announced_over(&response, MAX_TOKEN_RESPONSE_BYTES) {
                return too_large(format!("it announced {announced} bytes"));
            }
        }
        let headers = std::mem::take(response.headers_mut());
        let body = if status.is_redirection() {
            // Never followed (a 307 or 308 would re-post the form, client secret included),
            // and nothing of it is read.
            bytes::Bytes::new()
        } else {
            match read_capped(response, MAX_TOKEN_RESPONSE_BYTES).await {
                Ok(Capped::Whole(b)) => b,
                // Enough of a refusal to say why; the rest is of no use.
                Ok(Capped::Cut(b)) if !status.is_success() => b,
                Ok(Capped::Cut(_)) => {
                    return too_large(format!("cut off after {}", size_in_words(MAX_TOKEN_RESPONSE_BYTES)))
                }
                Err(e) => return Err(self.transport_failure(source, e, "lost the connection to", attempt)),
            }
        };
        let answer = Answer::Response { status, headers: &headers, body: &body };
        let outcome = classify(Sent::Token, &answer, self.clock.wall(), self.max_retry_after);
        let (code, cause) = match outcome {
            Outcome::Success => return self.token_of(source, &body, status, issued_at),
            Outcome::Fail { cause: Cause::Redirect, .. } => {
                let error = redirect_error(status, &headers, url, Redirected::TokenService).with_request("POST", url);
                return Err(TokenFailure { error, resend: None });
            }
            Outcome::Resend { code, cause, .. }
            | Outcome::NotResent { code, cause }
            | Outcome::Fail { code, cause } => (code, cause),
            // The token service has no token to refuse.
            Outcome::RefetchToken => (ErrorCode::Authentication, Cause::CredentialsRefused),
        };
        let oauth: OAuthError = serde_json::from_slice(&body).unwrap_or_default();
        let oauth = OAuthError {
            error: oauth.error.as_deref().map(server_text),
            error_description: oauth.error_description.as_deref().map(server_text),
        };
        let wait = outcome.wait(&self.retry, attempt.saturating_sub(1));
        let environment = &source.environment;
        let message = match cause {
            Cause::Throttled => "the token service is throttling token requests".to_owned(),
            Cause::WaitTooLong(wait) => format!(
                "the token service answered {status} and asks to wait {:.0} s, longer than max_retry_after ({:.0} s)",
                wait.as_secs_f64(),
                self.max_retry_after.as_secs_f64()
            ),
            Cause::ServerTimedOut => format!("the token service timed out ({status}), also on every retry"),
            Cause::ServerFailed => format!("the token service failed ({status}), also on every retry"),
            Cause::CredentialsRefused => {
                let what = match (&oauth.error, &oauth.error_description) {
                    (Some(e), Some(d)) => format!("{e}: {d}"),
                    (Some(e), None) => e.clone(),
                    (None, Some(d)) => d.clone(),
                    (None, None) => format!("HTTP {status}"),
                };
                format!(
                    "the token service of the {environment} environment refused client id {:?} ({what}). \
                     Client ids and secrets are environment specific: integration credentials do not \
                     work in production and vice versa; check the environment (ST_ENVIRONMENT) and \
                     the tenant's client id and secret",
                    source.client_id
                )
            }
            _ => format!("the token service of the {environment} environment answered {status}"),
        };
        let error = Error::new(code, message)
            .with_request("POST", url)
            .with_status(status.as_u16())
            .with_title(oauth.error_description.or(oauth.error));
        let error = match cause {
            Cause::WaitTooLong(wait) => error.with_retry_after(Some(wait)),
            Cause::Throttled => error.with_retry_after(Some(wait)),
            _ => error,
        };
        let resend = matches!(outcome, Outcome::Resend { .. }).then_some((wait, cause));
        Err(TokenFailure { error, resend })
    }

    /// The token of a 2xx answer, or why it cannot be used.
    fn token_of(
        &self,
        source: &TokenSource,
        body: &[u8],
        status: StatusCode,
        issued_at: SystemTime,
    ) -> std::result::Result<CachedToken, TokenFailure> {
        let url = source.token_url.as_str();
        let error = match parse_token_answer(body) {
            Ok((access_token, lifetime)) => {
                return Ok(CachedToken::schedule(Secret::new(access_token), issued_at, lifetime))
            }
            Err(BadTokenAnswer::NotJson(why)) => {
                Error::new(ErrorCode::Decode, format!("the token response is not the JSON expected ({why})"))
            }
            // Refused here, so it is never cached nor sent.
            Err(BadTokenAnswer::Unusable(what)) => Error::new(
                ErrorCode::Authentication,
                format!(
                    "the token service of the {} environment returned {what}; it was not used. \
                     Check auth_url (ST_AUTH_URL) and any proxy in between",
                    source.environment
                ),
            ),
        };
        Err(TokenFailure { error: error.with_request("POST", url).with_status(status.as_u16()), resend: None })
    }

    /// A token request whose connection failed.
    fn transport_failure(&self, source: &TokenSource, e: reqwest::Error, what: &str, attempt: u32) -> TokenFailure {
        let (failure, detail) = describe_failure(&e);
        let delivered = !e.is_connect();
        let outcome =
            classify(Sent::Token, &Answer::Transport { failure, delivered }, self.clock.wall(), self.max_retry_after);
        let code = match outcome {
            Outcome::Resend { code, .. } | Outcome::NotResent { code, .. } | Outcome::Fail { code, .. } => code,
            Outcome::Success | Outcome::RefetchToken => ErrorCode::Internal,
        };
        let hint = match failure {
            Failure::NameNotResolved => "; check auth_url (ST_AUTH_URL) and the network",
            Failure::Tls => "; check auth_url (ST_AUTH_URL), the trusted certificates (ST_CA_BUNDLE) and any proxy",
            _ => "",
        };
        let error = Error::new(
            code,
            format!("{what} the token service of the {} environment: {detail}{hint}", source.environment),
        )
        .with_request("POST", source.token_url.as_str())
        .with_source(e.without_url());
        let resend = match outcome {
            Outcome::Resend { cause, .. } => Some((outcome.wait(&self.retry, attempt.saturating_sub(1)), cause)),
            _ => None,
        };
        TokenFailure { error, resend }
    }
}

/// Why one token request failed, and whether and when to send it again.
struct TokenFailure {
    error: Error,
    resend: Option<(Duration, Cause)>,
}

type Flight = Shared<BoxFuture<'static, Result<CachedToken>>>;

struct FlightEntry {
    flight: Flight,
    started: SystemTime,
}

/// Tokens per [`TokenKey`]: cached, fetched once for all concurrent callers, refreshed ahead.
pub(crate) struct TokenCache {
    fetcher: Arc<TokenFetcher>,
    // The last fetch per key, running or finished. Keeping a finished one lets a caller that
    // looked at the store just before the fetch landed reuse its result instead of fetching
    // again.
    flights: Mutex<HashMap<TokenKey, FlightEntry>>,
}

impl TokenCache {
    pub(crate) fn new(fetcher: TokenFetcher) -> Self {
        TokenCache { fetcher: Arc::new(fetcher), flights: Mutex::new(HashMap::new()) }
    }

    /// A token that can be sent now.
    pub(crate) async fn get(&self, source: &Arc<TokenSource>) -> Result<CachedToken> {
        let now = self.fetcher.clock.wall();
        if let Some(token) = self.fetcher.store.get(&source.key).await? {
            if now < token.refresh_at {
                return Ok(token);
            }
            if token.is_usable(now) {
                self.refresh_in_background(source, now);
                return Ok(token);
            }
        }
        self.flight(source, now, true).await
    }

    /// Forgets `sent` after the API refused it, unless a newer token already replaced it.
    pub(crate) async fn invalidate(&self, source: &TokenSource, sent: &Secret) -> Result<()> {
        {
            let mut flights = crate::sync::lock(&self.flights);
            let same = flights
                .get(&source.key)
                .is_some_and(|entry| matches!(entry.flight.peek(), Some(Ok(t)) if &t.access_token == sent));
            if same {
                flights.remove(&source.key);
            }
        }
        self.fetcher.store.remove_if(&source.key, sent).await
    }

    fn refresh_in_background(&self, source: &Arc<TokenSource>, now: SystemTime) {
        let flight = self.flight(source, now, false);
        if flight.peek().is_none() {
            // Detached so that the refresh finishes even if the caller that started it is
            // dropped; without a runtime the next caller past `stale_at` fetches in line.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = flight.await;
                });
            }
        }
    }

    /// The fetch to wait for: the one running, a finished one whose token is still fresh,
    /// or a new one. `blocking` callers have no usable token; background refreshes do not
    /// restart a failed fetch more than once a second.
    fn flight(&self, source: &Arc<TokenSource>, now: SystemTime, blocking: bool) -> Flight {
        let mut flights = crate::sync::lock(&self.flights);
        if let Some(entry) = flights.get(&source.key) {
            match entry.flight.peek() {
                None => return entry.flight.clone(),
                Some(Ok(token)) if now < token.refresh_at => return entry.flight.clone(),
                Some(Err(_))
                    if !blocking && now.duration_since(entry.started).unwrap_or_default() < Duration::from_secs(1) =>
                {
                    return entry.flight.clone()
                }
                Some(_) => {}
            }
        }
        // A panic in the fetch (a bug, or a token store that panics) must not reach the
        // `Shared` future: it would re-panic in every waiter, now and later. It becomes an
        // `internal` error for this fetch's waiters, and a failed fetch is not reused by the
        // next caller that needs a token.
        let fetch = std::panic::AssertUnwindSafe(self.fetcher.clone().fetch_and_store(source.clone()))
            .catch_unwind()
            .map(|outcome| outcome.unwrap_or_else(|panic| Err(Error::from_panic(&*panic))));
        let flight = fetch.boxed().shared();
        flights.insert(source.key.clone(), FlightEntry { flight: flight.clone(), started: now });
        flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn refresh_margin_scales_with_the_lifetime() {
        let t0 = SystemTime::UNIX_EPOCH;
        for _ in 0..100 {
            let long = CachedToken::schedule(Secret::new("a"), t0, Duration::from_secs(900));
            let early = long.expires_at.duration_since(long.refresh_at).unwrap();
            assert!(early >= Duration::from_secs(90) && early <= Duration::from_secs(135), "{early:?}");
            assert_eq!(long.expires_at.duration_since(long.stale_at).unwrap(), Duration::from_secs(45));

            let short = CachedToken::schedule(Secret::new("a"), t0, Duration::from_secs(3));
            let early = short.expires_at.duration_since(short.refresh_at).unwrap();
            assert!(early >= Duration::from_secs(1) && early <= Duration::from_millis(1500), "{early:?}");
            assert!(short.is_usable(t0 + Duration::from_millis(2400)));
            assert!(!short.is_usable(t0 + Duration::from_millis(2500)));
        }
    }

    #[test]
    fn lifetimes_from_the_server_are_bounded() {
        use serde_json::json;
        let life = |v: serde_json::Value| token_lifetime(Some(&v));
        assert_eq!(life(json!(900)), Duration::from_secs(900));
        assert_eq!(life(json!("3600")), Duration::from_secs(3600));
        assert_eq!(life(json!(1e19)), MAX_TOKEN_LIFETIME);
        assert_eq!(life(json!(f64::MAX)), MAX_TOKEN_LIFETIME);
        assert_eq!(life(serde_json::from_str("184467440737095516150000").unwrap()), MAX_TOKEN_LIFETIME);
        assert_eq!(life(json!(u64::MAX)), MAX_TOKEN_LIFETIME);
        assert_eq!(life(json!(-5)), MIN_TOKEN_LIFETIME);
        assert_eq!(life(json!(i64::MIN)), MIN_TOKEN_LIFETIME);
        assert_eq!(life(json!(0)), MIN_TOKEN_LIFETIME);
        assert_eq!(life(json!(0.25)), MIN_TOKEN_LIFETIME);
        assert_eq!(life(json!(1.5)), Duration::from_millis(1500));
        for unreadable in [json!("forever"), json!("NaN"), json!("inf"), json!(null), json!([1]), json!({"s": 1})] {
            assert_eq!(life(unreadable.clone()), DEFAULT_TOKEN_LIFETIME, "{unreadable}");
        }
        assert_eq!(token_lifetime(None), DEFAULT_TOKEN_LIFETIME);
    }

    #[test]
    fn token_answers_that_cannot_be_sent_are_refused() {
        assert_eq!(
            parse_token_answer(br#"{"access_token":"abc","expires_in":1e19}"#),
            Ok(("abc".to_owned(), MAX_TOKEN_LIFETIME))
        );
        for bad in
            [r#"{"access_token":"abc\r\nX-Injected: 1"}"#, r#"{"access_token":"a\nb"}"#, r#"{"access_token":""}"#]
        {
            assert!(matches!(parse_token_answer(bad.as_bytes()), Err(BadTokenAnswer::Unusable(_))), "{bad}");
        }
        for bad in [&b"\xff\xfe<html>"[..], b"", b"[]", br#"{"access_token":1}"#, br#"{"expires_in":900}"#] {
            assert!(matches!(parse_token_answer(bad), Err(BadTokenAnswer::NotJson(_))), "{bad:?}");
        }
    }

    #[test]
    fn schedules_never_overflow() {
        let t0 = SystemTime::UNIX_EPOCH;
        let huge = CachedToken::schedule(Secret::new("a"), t0, Duration::MAX);
        assert_eq!(huge.expires_at, t0 + MAX_TOKEN_LIFETIME);
        assert!(huge.refresh_at < huge.stale_at && huge.stale_at < huge.expires_at);
        let zero = CachedToken::schedule(Secret::new("a"), t0, Duration::ZERO);
        assert_eq!((zero.refresh_at, zero.stale_at, zero.expires_at), (t0, t0, t0));
        // A clock at the far end of time: the schedule saturates instead of panicking.
        let far = t0 + Duration::from_secs(i64::MAX as u64 - 10);
        let token = CachedToken::schedule(Secret::new("a"), far, MAX_TOKEN_LIFETIME);
        assert!(token.expires_at >= far);
    }

    #[tokio::test]
    async fn remove_if_keeps_a_newer_token() {
        let store = MemoryTokenStore::new();
        let key = TokenKey {
            environment: "e".into(),
            client_id: "c".into(),
            secret_fingerprint: "f".into(),
            store_key: StoreKey::derive(&Secret::new("s")),
        };
        let t0 = SystemTime::now();
        let new = CachedToken::schedule(Secret::new("new"), t0, Duration::from_secs(900));
        store.put(&key, &new).await.unwrap();
        store.remove_if(&key, &Secret::new("old")).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap(), Some(new));
        store.remove_if(&key, &Secret::new("new")).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap(), None);
    }

    #[tokio::test]
    async fn expired_tokens_are_evicted_a_few_per_store_and_live_ones_kept() {
        let clock = ManualClock::new();
        let store = MemoryTokenStore::with_clock(Arc::new(clock.clone()));
        let key = |i: usize| TokenKey {
            environment: "e".into(),
            client_id: format!("c{i}"),
            secret_fingerprint: "f".into(),
            store_key: StoreKey::derive(&Secret::new("s")),
        };
        let token = |life: u64| CachedToken::schedule(Secret::new("t"), clock.wall(), Duration::from_secs(life));
        // 1,000 tenants synced once with 60 s tokens, and one busy tenant with a 900 s token.
        for i in 0..1000 {
            store.put(&key(i), &token(60)).await.unwrap();
        }
        store.put(&key(5000), &token(900)).await.unwrap();
        assert_eq!(store.len(), 1001);

        clock.advance(Duration::from_secs(61));
        // One store evicts a bounded number of the expired tokens, not all of them.
        store.put(&key(5001), &token(900)).await.unwrap();
        assert_eq!(store.len(), 1002 - EVICTIONS_PER_PUT);
        // As stores go on, every expired token goes, and the live ones stay.
        for i in 0..200 {
            store.put(&key(6000 + i), &token(900)).await.unwrap();
        }
        assert_eq!(store.len(), 202);
        assert!(store.get(&key(5000)).await.unwrap().is_some());
        assert!(store.get(&key(0)).await.unwrap().is_none());
        // A key stored again before its first token expired keeps the new token when the old
        // expiry comes up.
        store.put(&key(7000), &token(60)).await.unwrap();
        clock.advance(Duration::from_secs(30));
        store.put(&key(7000), &token(900)).await.unwrap();
        clock.advance(Duration::from_secs(31));
        for i in 0..10 {
            store.put(&key(8000 + i), &token(900)).await.unwrap();
        }
        assert!(store.get(&key(7000)).await.unwrap().is_some());
        assert!(crate::sync::read(&store.tokens).expiries.len() <= store.len() + EVICTIONS_PER_PUT);
    }

    /// A token endpoint on loopback answering from a script of statuses (200 once the script
    /// is used up): tokens `tok-1`, `tok-2`… of 900 s. Returns its URL and a request counter.
    async fn token_endpoint(script: Vec<u16>) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let counter = count.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else { return };
                let (count, script) = (counter.clone(), script.clone());
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    loop {
                        let mut chunk = [0u8; 4096];
                        let Ok(n) = socket.read(&mut chunk).await else { return };
                        if n == 0 {
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buffer).to_string();
                        let Some(head_end) = text.find("\r\n\r\n") else { continue };
                        let length: usize = text[..head_end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if buffer.len() < head_end + 4 + length {
                            continue;
                        }
                        buffer.drain(..head_end + 4 + length);
                        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                        let status = script.lock().unwrap().pop_front().unwrap_or(200);
                        if status != 200 {
                            // Slow failures, so that every caller of a test joins the fetch
                            // before it fails (a caller arriving after a failure fetches anew).
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        let body = if status == 200 {
                            format!(r#"{{"access_token":"tok-{n}","expires_in":900,"token_type":"Bearer"}}"#)
                        } else {
                            r#"{"error":"invalid_client"}"#.to_string()
                        };
                        let response = format!(
                            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if socket.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (url, count)
    }

    fn cache(url: &str, clock: &ManualClock) -> (TokenCache, Arc<TokenSource>) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = crate::Client::builder()
            .app_key("ak1.test")
            .auth_url(url)
            .api_url(url)
            .env_lookup(|_| None)
            .resolve()
            .unwrap();
        let source = Arc::new(TokenSource::new(&config, &TenantCredentials::new(1, "cid.test", "cs1.test")));
        let cache = TokenCache::new(TokenFetcher {
            http: crate::client::http_client_builder().build().unwrap(),
            clock: Arc::new(clock.clone()),
            store: Arc::new(MemoryTokenStore::new()),
            retry: config.retry,
            timeouts: config.timeouts,
            max_retry_after: config.max_retry_after,
            counters: Arc::new(Counters::default()),
        });
        (cache, source)
    }

    async fn until_count(count: &AtomicUsize, n: usize) {
        for _ in 0..400 {
            if count.load(Ordering::SeqCst) >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the token endpoint saw {} requests, expected {n}", count.load(Ordering::SeqCst));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fifteen_minute_tokens_are_renewed_ahead_in_the_background_over_simulated_time() {
        let (url, count) = token_endpoint(vec![]).await;
        let clock = ManualClock::new();
        let (cache, source) = cache(&url, &clock);
        let token = |t: CachedToken| t.access_token.expose().to_owned();

        assert_eq!(token(cache.get(&source).await.unwrap()), "tok-1");
        clock.advance(Duration::from_secs(700));
        assert_eq!(token(cache.get(&source).await.unwrap()), "tok-1");
        assert_eq!(count.load(Ordering::SeqCst), 1, "no refresh 200 s before expiry");

        // Past the refresh point (90-135 s early) but before the stale point (45 s early): the
        // caller keeps the current token while a replacement is fetched in the background.
        clock.advance(Duration::from_secs(111));
        assert_eq!(token(cache.get(&source).await.unwrap()), "tok-1");
        until_count(&count, 2).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(token(cache.get(&source).await.unwrap()), "tok-2");
        assert_eq!(count.load(Ordering::SeqCst), 2);

        // Past the stale point of tok-2 (issued at 811 s): callers wait for a fresh one.
        clock.advance(Duration::from_secs(860));
        assert_eq!(token(cache.get(&source).await.unwrap()), "tok-3");
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_fetch_is_shared_by_its_waiters_and_not_cached() {
        let (url, count) = token_endpoint(vec![400]).await;
        let clock = ManualClock::new();
        let (cache, source) = cache(&url, &clock);
        let results = futures::future::join_all((0..10).map(|_| cache.get(&source))).await;
        assert!(results.iter().all(|r| r.as_ref().unwrap_err().code() == ErrorCode::Authentication));
        assert_eq!(count.load(Ordering::SeqCst), 1, "one fetch for ten callers");
        assert_eq!(cache.get(&source).await.unwrap().access_token.expose(), "tok-2");
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_the_token_that_was_sent_is_invalidated() {
        let (url, count) = token_endpoint(vec![]).await;
        let clock = ManualClock::new();
        let (cache, source) = cache(&url, &clock);
        let first = cache.get(&source).await.unwrap();
        cache.invalidate(&source, &Secret::new("tok-0")).await.unwrap();
        assert_eq!(cache.get(&source).await.unwrap(), first);
        cache.invalidate(&source, &first.access_token).await.unwrap();
        assert_eq!(cache.get(&source).await.unwrap().access_token.expose(), "tok-2");
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }
}
