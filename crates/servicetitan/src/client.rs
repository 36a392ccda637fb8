//! The client: one connection pool, token cache, limiter and set of counters, shared by every tenant made from it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderValue;
use sha2::{Digest, Sha256};

use crate::auth::{MemoryTokenStore, TokenCache, TokenFetcher, TokenSource, TokenStore};
use crate::clock::{Clock, SystemClock};
use crate::config::{ClientBuilder, Config, TenantCredentials};
use crate::error::{Error, Result};
use crate::limit::{InProcessLimiter, Quota, RateLimiter, Slot};
use crate::margin::AdaptiveMargin;
use crate::redis::{RedisBackend, RedisLimiter, RedisTokenStore};
use crate::tenant::{Tenant, TenantInner};

/// A ServiceTitan API client for one app key, serving any number of tenants.
///
/// Cheap to clone (clones share everything). Make one per app and keep it: it holds the
/// connection pool, the token cache and the rate limiter.
///
/// ```no_run
/// # async fn demo() -> servicetitan::Result<()> {
/// use servicetitan::{Client, Environment, TenantCredentials};
///
/// let client = Client::builder()
///     .app_key("ak1.example")
///     .environment(Environment::Integration)
///     .build()?;
/// let tenant = client.tenant(TenantCredentials::new(1234567, "cid.example", "cs1.example"));
/// let page: serde_json::Value = tenant.get("crm/customers").query(&[("page", 1)]).send().await?;
/// println!("{page}");
/// println!("{:?}", client.stats());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<ClientInner>,
}

pub(crate) struct ClientInner {
    pub(crate) config: Config,
    pub(crate) http: reqwest::Client,
    pub(crate) tokens: TokenCache,
    pub(crate) limiter: Arc<dyn RateLimiter>,
    /// The per-tenant limit's margin, sized from measured round trips; `None` when fixed.
    /// One per client: a client talks to one API host.
    pub(crate) margin: Option<AdaptiveMargin>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) app_key_header: HeaderValue,
    /// A hash of the app key, so limiter keys (which a shared limiter may store) never hold it.
    pub(crate) app_tag: String,
    /// Where "environment variables" are read (the process environment unless replaced).
    pub(crate) env: crate::config::EnvLookup,
}

/// Counters behind [`Client::stats`].
#[derive(Default, Debug)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) token_fetches: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) throttle_wait_nanos: AtomicU64,
}

/// What a client has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// API requests sent (every attempt, resends included; token requests excluded).
    pub requests: u64,
    /// Resends: after a 429, a 5xx, a timeout, a connection failure or a 401.
    pub retries: u64,
    /// Token requests sent to the token service.
    pub token_fetches: u64,
    /// 429 responses received.
    pub rate_limited: u64,
    /// Time calls spent waiting for the rate limiters (summed over calls).
    pub throttle_wait: Duration,
}

/// The settings every HTTP client of the engine starts from (the token fetches share the API's).
///
/// - No redirect is followed: the API documents none, and following one would carry the app
///   key, a token, a POST body or (from the token service) the client secret to wherever the
///   `Location` points. A 3xx becomes a `redirect` error instead.
/// - No compression is negotiated: a compressed answer could inflate far beyond the response
///   cap before the cap saw a byte (a "gzip bomb"), so answers arrive as sent and are read
///   within the cap.
/// - Names are resolved by [`Resolver`](crate::classify::Resolver), whose failures the
///   classifier recognises: a name that does not resolve fails the call at once.
pub(crate) fn http_client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_gzip()
        .no_brotli()
        .no_zstd()
        .no_deflate()
        .dns_resolver(std::sync::Arc::new(crate::classify::Resolver))
}

impl Client {
    /// A builder; see [`ClientBuilder`] for every setting, its environment variable and default.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client configured entirely from environment variables (`ST_APP_KEY`,
    /// `ST_ENVIRONMENT` or `ST_AUTH_URL` + `ST_API_URL`, …).
    ///
    /// ```no_run
    /// let client = servicetitan::Client::from_env()?;
    /// let tenant = client.tenant(servicetitan::TenantCredentials::from_env()?);
    /// # Ok::<(), servicetitan::Error>(())
    /// ```
    pub fn from_env() -> Result<Client> {
        Client::builder().build()
    }

    pub(crate) fn from_parts(config: Config, builder: ClientBuilder) -> Result<Client> {
        // reqwest is built without a default crypto provider; install ring once, before the
        // first client. A second install fails harmlessly.
        let _ = rustls::crypto::ring::default_provider().install_default();

        let env = builder.lookup();
        let certs = builder.root_certificates(&env)?;
        let http = http_client_builder()
            .user_agent(config.user_agent.clone())
            .connect_timeout(config.timeouts.connect)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .tls_certs_merge(certs);
        // Proxies come from the environment (HTTPS_PROXY, NO_PROXY…), except for the sandbox on
        // loopback, which a proxy could not reach.
        let http = if config.is_local() { http.no_proxy() } else { http };
        let http = http.build().map_err(|e| {
            Error::configuration("http_client", format!("cannot build the HTTP client: {e}")).with_source(e)
        })?;

        let clock = builder.clock.clone().unwrap_or_else(|| Arc::new(SystemClock));
        // Redis, when configured, provides whichever of the two the caller did not give.
        let redis = match &config.redis {
            Some(settings) => Some(Arc::new(RedisBackend::new(settings.clone(), clock.clone())?)),
            None => None,
        };
        let store: Arc<dyn TokenStore> = match (builder.token_store.clone(), &redis) {
            (Some(store), _) => store,
            (None, Some(backend)) => Arc::new(RedisTokenStore::new(backend.clone())),
            (None, None) => Arc::new(MemoryTokenStore::with_clock(clock.clone())),
        };
        let limiter: Arc<dyn RateLimiter> = match (builder.rate_limiter.clone(), &redis) {
            (Some(limiter), _) => limiter,
            (None, Some(backend)) => Arc::new(RedisLimiter::new(backend.clone())),
            (None, None) => Arc::new(InProcessLimiter::with_clock(clock.clone())),
        };
        let counters = Arc::new(Counters::default());
        let tokens = TokenCache::new(TokenFetcher {
            http: http.clone(),
            clock: clock.clone(),
            store,
            retry: config.retry,
            timeouts: config.timeouts,
            max_retry_after: config.max_retry_after,
            counters: counters.clone(),
        });
        let mut app_key_header = HeaderValue::from_str(config.app_key.expose())
            .map_err(|_| Error::configuration("app_key", "the app key contains characters not allowed in a header"))?;
        app_key_header.set_sensitive(true);
        let digest = Sha256::digest(config.app_key.expose().as_bytes());
        let app_tag = digest[..6].iter().map(|b| format!("{b:02x}")).collect();

        let margin = match config.rate_limit {
            Some(quota) if config.adaptive_margin => Some(AdaptiveMargin::new(quota.margin, clock.clone())),
            _ => None,
        };

        Ok(Client {
            inner: Arc::new(ClientInner {
                config,
                http,
                tokens,
                limiter,
                margin,
                clock,
                counters,
                app_key_header,
                app_tag,
                env,
            }),
        })
    }

    /// A handle on one tenant. Cheap; make as many as needed.
    ///
    /// Invalid credentials (tenant id ≤ 0, empty client id or secret) do not panic: every
    /// call on the returned tenant fails with a `configuration` error before any request.
    /// Use [`Client::try_tenant`] to find out at once.
    pub fn tenant(&self, credentials: TenantCredentials) -> Tenant {
        let invalid = credentials.validate().err();
        let token = Arc::new(TokenSource::new(&self.inner.config, &credentials));
        Tenant {
            inner: Arc::new(TenantInner {
                limit_key: format!("api:{}:{}", self.inner.app_tag, credentials.tenant_id),
                client: self.inner.clone(),
                id: credentials.tenant_id,
                invalid,
                token,
            }),
        }
    }

    /// The tenant named by `ST_TENANT_ID`, `ST_CLIENT_ID` and `ST_CLIENT_SECRET` (read where
    /// the client reads its settings, see [`ClientBuilder::env_lookup`]).
    ///
    /// ```no_run
    /// let tenant = servicetitan::Client::from_env()?.tenant_from_env()?;
    /// # Ok::<(), servicetitan::Error>(())
    /// ```
    pub fn tenant_from_env(&self) -> Result<Tenant> {
        let env = &*self.inner.env;
        let credentials = TenantCredentials::resolve_with(None, None, None, env)?;
        Ok(self.tenant(credentials))
    }

    /// Like [`Client::tenant`], but refuses invalid credentials at once.
    pub fn try_tenant(&self, credentials: TenantCredentials) -> Result<Tenant> {
        credentials.validate()?;
        Ok(self.tenant(credentials))
    }

    /// Counters since the client was made.
    ///
    /// ```no_run
    /// # fn demo(client: servicetitan::Client) {
    /// let stats = client.stats();
    /// println!(
    ///     "{} requests, {} retries, {} token fetches, {} 429s, {:?} waiting for the limiter",
    ///     stats.requests, stats.retries, stats.token_fetches, stats.rate_limited, stats.throttle_wait
    /// );
    /// # }
    /// ```
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        Stats {
            requests: c.requests.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            token_fetches: c.token_fetches.load(Ordering::Relaxed),
            rate_limited: c.rate_limited.load(Ordering::Relaxed),
            throttle_wait: Duration::from_nanos(c.throttle_wait_nanos.load(Ordering::Relaxed)),
        }
    }

    /// The resolved settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The per-tenant limit's margin in force: the configured one when fixed, else what the
    /// round trips measured so far call for (each measured call's slot is then held for its
    /// own need, usually less; see [`crate::margin`]). `None` when the limit is off.
    pub fn rate_limit_margin(&self) -> Option<Duration> {
        self.inner.tenant_quota().map(|q| q.margin)
    }
}

impl ClientInner {
    /// The per-tenant quota, with the margin in force.
    pub(crate) fn tenant_quota(&self) -> Option<Quota> {
        let quota = self.config.rate_limit?;
        Some(match &self.margin {
            Some(margin) => Quota { margin: margin.margin(), ..quota },
            None => quota,
        })
    }

    /// Admits a call of a tenant. With the adaptive margin, the slot is named, held until its
    /// call is answered, and then settled by [`measured`](Self::measured) or
    /// [`unanswered`](Self::unanswered); with a fixed margin it is held for the margin.
    pub(crate) async fn admit_tenant_call(&self, key: &str) -> crate::Result<Option<Slot>> {
        let quota = self.tenant_quota();
        match self.margin {
            Some(_) => self.limiter.acquire_slot(key, quota).await,
            None => self.limiter.acquire(key, quota).await.map(|()| None),
        }
    }

    /// What one answer says about the link: its round trip (from admission to the answer's
    /// headers) sizes the margin and its slot's hold; a 429 from the per-tenant limit widens
    /// both.
    pub(crate) async fn measured(&self, key: &str, slot: Option<Slot>, round_trip: Duration, rate_limited: bool) {
        let Some(margin) = &self.margin else { return };
        if rate_limited {
            margin.rate_limited();
        }
        let hold = margin.observe(round_trip);
        if let Some(slot) = slot {
            self.settle(key, slot, hold).await;
        }
    }

    /// A call admitted under `slot` failed without an answer: it may have reached the server
    /// at any moment until now.
    pub(crate) async fn unanswered(&self, key: &str, slot: Option<Slot>) {
        if let Some(slot) = slot {
            let elapsed = self.clock.now().saturating_duration_since(slot.asked);
            self.settle(key, slot, elapsed.min(crate::margin::MAX_HOLD)).await;
        }
    }

    async fn settle(&self, key: &str, slot: Slot, hold: Duration) {
        // If this fails, the slot stays held for the longest hold, which is safe.
        if let Err(e) = self.limiter.settle(key, slot, hold).await {
            tracing::debug!(error = %e, "could not settle a rate-limit slot");
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("config", &self.inner.config).finish_non_exhaustive()
    }
}
