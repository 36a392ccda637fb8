//! The token store in Redis.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Nonce};
use base64::Engine as _;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::backend::{from_millis, RedisBackend};
use crate::auth::{CachedToken, FetchLock, TokenKey, TokenStore};
use crate::config::Secret;
use crate::error::Result;

/// A [`TokenStore`] in Redis: one token per credential for every process, fetched by one of
/// them under a short lock, optionally encrypted.
///
/// ```no_run
/// use servicetitan::redis::{RedisBackend, RedisSettings, RedisTokenStore};
/// use std::sync::Arc;
///
/// let settings = RedisSettings::new("redis://127.0.0.1:6379")?.token_key(&"00".repeat(32))?;
/// let backend = Arc::new(RedisBackend::new(settings, Arc::new(servicetitan::clock::SystemClock))?);
/// let client = servicetitan::Client::builder()
///     .app_key("ak1.example")
///     .token_store(Arc::new(RedisTokenStore::new(backend)))
///     .build()?;
/// # Ok::<(), servicetitan::Error>(())
/// ```
pub struct RedisTokenStore {
    backend: Arc<RedisBackend>,
}

impl fmt::Debug for RedisTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTokenStore").field("backend", &self.backend).finish()
    }
}

#[derive(Serialize, Deserialize)]
struct StoredToken {
    access_token: String,
    expires_at_ms: u64,
    refresh_at_ms: u64,
    stale_at_ms: u64,
}

const PLAIN: &str = "p1:";
const SEALED: &str = "e1:";

impl RedisTokenStore {
    /// A store on `backend`.
    pub fn new(backend: Arc<RedisBackend>) -> Self {
        RedisTokenStore { backend }
    }

    fn fallback(&self) -> bool {
        self.backend.settings.fallback_share.is_some()
    }

    /// Serializes (and encrypts, with a key) a token; the Redis key is the associated data,
    /// so a sealed value copied under another key does not open.
    fn encode(&self, redis_key: &str, token: &CachedToken) -> String {
        let millis = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
        let json = serde_json::to_vec(&StoredToken {
            access_token: token.access_token.expose().to_owned(),
            expires_at_ms: millis(token.expires_at),
            refresh_at_ms: millis(token.refresh_at),
            stale_at_ms: millis(token.stale_at),
        })
        .expect("a token serializes");
        match &self.backend.settings.token_key {
            None => format!("{PLAIN}{}", String::from_utf8(json).expect("JSON is UTF-8")),
            Some(key) => {
                let cipher = Aes256Gcm::new((&key.0).into());
                let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
                let sealed = cipher
                    .encrypt(&nonce, Payload { msg: &json, aad: redis_key.as_bytes() })
                    .expect("AES-GCM encrypts any length we store");
                let mut bytes = nonce.to_vec();
                bytes.extend_from_slice(&sealed);
                format!("{SEALED}{}", base64::engine::general_purpose::STANDARD.encode(bytes))
            }
        }
    }

    /// The token in a stored value, or `None` (logged) when it cannot be read with our key.
    fn decode(&self, redis_key: &str, value: &str) -> Option<CachedToken> {
        let json = if let Some(plain) = value.strip_prefix(PLAIN) {
            if self.backend.settings.token_key.is_some() {
                // A plaintext entry in an encrypted deployment: someone is writing without the
                // key. Do not trust it.
                tracing::error!("a cached token in Redis is not encrypted but redis_token_key is set; ignoring it");
                return None;
            }
            plain.as_bytes().to_vec()
        } else if let Some(sealed) = value.strip_prefix(SEALED) {
            let Some(key) = &self.backend.settings.token_key else {
                tracing::error!(
                    "a cached token in Redis is encrypted but no redis_token_key (ST_REDIS_TOKEN_KEY) is set; \
                     fetching a new token"
                );
                return None;
            };
            let bytes = base64::engine::general_purpose::STANDARD.decode(sealed).ok()?;
            if bytes.len() < 12 {
                return None;
            }
            let cipher = Aes256Gcm::new((&key.0).into());
            match cipher
                .decrypt(Nonce::from_slice(&bytes[..12]), Payload { msg: &bytes[12..], aad: redis_key.as_bytes() })
            {
                Ok(json) => json,
                Err(_) => {
                    tracing::error!(
                        "a cached token in Redis does not decrypt with redis_token_key: another process uses a \
                         different key (all processes sharing tokens need the same one); fetching a new token"
                    );
                    return None;
                }
            }
        } else {
            tracing::error!("a cached token in Redis has an unknown format; ignoring it");
            return None;
        };
        let stored: StoredToken = serde_json::from_slice(&json).ok()?;
        Some(CachedToken {
            access_token: Secret::new(stored.access_token),
            expires_at: from_millis(stored.expires_at_ms),
            refresh_at: from_millis(stored.refresh_at_ms),
            stale_at: from_millis(stored.stale_at_ms),
        })
    }

    async fn get_raw(&self, redis_key: &str) -> Result<Option<String>> {
        self.backend
            .run("a token lookup", |mut c| async move {
                redis::cmd("GET").arg(redis_key).query_async::<Option<String>>(&mut c).await
            })
            .await
    }
}

impl TokenStore for RedisTokenStore {
    fn get<'a>(&'a self, key: &'a TokenKey) -> BoxFuture<'a, Result<Option<CachedToken>>> {
        Box::pin(async move {
            let redis_key = self.backend.token_key(key);
            match self.get_raw(&redis_key).await {
                Ok(value) => Ok(value.and_then(|v| self.decode(&redis_key, &v))),
                // In fallback mode a Redis failure is a miss: the process's own cache takes over.
                Err(_) if self.fallback() => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn put<'a>(&'a self, key: &'a TokenKey, token: &'a CachedToken) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let redis_key = self.backend.token_key(key);
            let ttl = token.expires_at.duration_since(self.backend.clock.wall()).unwrap_or_default();
            if ttl < Duration::from_millis(1) {
                return Ok(());
            }
            let value = self.encode(&redis_key, token);
            let result = self
                .backend
                .run("storing a token", |mut c| {
                    let (redis_key, value) = (&redis_key, &value);
                    async move {
                        redis::cmd("SET")
                            .arg(redis_key)
                            .arg(value)
                            .arg("PX")
                            .arg(ttl.as_millis() as u64)
                            .query_async::<()>(&mut c)
                            .await
                    }
                })
                .await;
            match result {
                Err(_) if self.fallback() => Ok(()),
                other => other,
            }
        })
    }

    fn remove_if<'a>(&'a self, key: &'a TokenKey, access_token: &'a Secret) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let redis_key = self.backend.token_key(key);
            let raw = match self.get_raw(&redis_key).await {
                Ok(raw) => raw,
                Err(_) if self.fallback() => return Ok(()),
                Err(e) => return Err(e),
            };
            let Some(raw) = raw else { return Ok(()) };
            // An entry we cannot read is removed too: it is of no use to anyone with our key.
            let same = self.decode(&redis_key, &raw).is_none_or(|t| &t.access_token == access_token);
            if !same {
                return Ok(());
            }
            // Compared on the stored bytes, so a token another process stored meanwhile stays.
            let result =
                self.backend
                    .run("removing a token", |mut c| {
                        let (redis_key, raw) = (&redis_key, &raw);
                        async move {
                            self.backend.compare_and_delete.key(redis_key).arg(raw).invoke_async::<i64>(&mut c).await
                        }
                    })
                    .await;
            match result {
                Err(_) if self.fallback() => Ok(()),
                Err(e) => Err(e),
                Ok(_) => Ok(()),
            }
        })
    }

    fn try_lock_fetch<'a>(&'a self, key: &'a TokenKey, ttl: Duration) -> BoxFuture<'a, Result<Option<FetchLock>>> {
        Box::pin(async move {
            let lock_key = format!("{}:lock", self.backend.token_key(key));
            let owner = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
            let result = self
                .backend
                .run("the token lock", |mut c| {
                    let (lock_key, owner) = (&lock_key, &owner);
                    async move {
                        redis::cmd("SET")
                            .arg(lock_key)
                            .arg(owner)
                            .arg("NX")
                            .arg("PX")
                            .arg(ttl.as_millis().max(1) as u64)
                            .query_async::<Option<String>>(&mut c)
                            .await
                    }
                })
                .await;
            match result {
                Ok(Some(_)) => Ok(Some(FetchLock::shared(owner))),
                Ok(None) => Ok(None),
                // Redis is gone: this process fetches for itself (its own single flight holds).
                Err(_) if self.fallback() => Ok(Some(FetchLock::local())),
                Err(e) => Err(e),
            }
        })
    }

    fn unlock_fetch<'a>(&'a self, key: &'a TokenKey, lock: &'a FetchLock) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let Some(owner) = lock.owner() else { return Ok(()) };
            let lock_key = format!("{}:lock", self.backend.token_key(key));
            let result =
                self.backend
                    .run("releasing the token lock", |mut c| {
                        let lock_key = &lock_key;
                        async move {
                            self.backend.compare_and_delete.key(lock_key).arg(owner).invoke_async::<i64>(&mut c).await
                        }
                    })
                    .await;
            match result {
                // An unreleased lock expires by itself within its TTL.
                Err(_) if self.fallback() => Ok(()),
                Err(e) => Err(e),
                Ok(_) => Ok(()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::backend::micros;
    use crate::redis::RedisSettings;

    fn store(key: Option<&str>) -> RedisTokenStore {
        let mut settings = RedisSettings::new("redis://127.0.0.1:1").unwrap();
        if let Some(key) = key {
            settings = settings.token_key(key).unwrap();
        }
        RedisTokenStore::new(Arc::new(RedisBackend::connect_lazily(settings).unwrap()))
    }

    #[test]
    fn encrypted_tokens_round_trip_and_hide_the_token() {
        let store = store(Some(&"11".repeat(32)));
        let token = CachedToken::schedule(Secret::new("tok-secret"), SystemTime::now(), Duration::from_secs(900));
        let sealed = store.encode("k", &token);
        assert!(sealed.starts_with(SEALED) && !sealed.contains("tok-secret"));
        let opened = store.decode("k", &sealed).unwrap();
        assert_eq!(opened.access_token, token.access_token);
        assert_eq!(micros(opened.expires_at) / 1000, micros(token.expires_at) / 1000);
        // Bound to its key: the same bytes under another key do not open.
        assert!(store.decode("other", &sealed).is_none());
    }

    #[test]
    fn a_wrong_key_or_a_missing_key_is_a_miss_not_a_crash() {
        let token = CachedToken::schedule(Secret::new("tok"), SystemTime::now(), Duration::from_secs(900));
        let sealed = store(Some(&"11".repeat(32))).encode("k", &token);
        assert!(store(Some(&"22".repeat(32))).decode("k", &sealed).is_none());
        assert!(store(None).decode("k", &sealed).is_none());
        assert!(store(None).decode("k", "e1:!!!").is_none());
        let plain = store(None).encode("k", &token);
        assert!(store(None).decode("k", &plain).is_some());
        assert!(store(Some(&"11".repeat(32))).decode("k", &plain).is_none());
    }
}
