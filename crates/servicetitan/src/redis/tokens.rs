//! The token store in Redis, encrypted at rest.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Nonce};
use base64::Engine as _;
use futures::future::BoxFuture;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::backend::RedisBackend;
use super::notices;
use crate::auth::{CachedToken, FetchLock, FetchNotice, TokenKey, TokenStore};
use crate::config::Secret;
use crate::error::Result;

/// A [`TokenStore`] in Redis: one token per credential for every process, fetched by one of
/// them under a short lock, always encrypted (AES-256-GCM) under a key derived from the
/// credential's client secret ([`StoreKey`](crate::auth::StoreKey)), combined with
/// [`RedisSettings::token_key`](super::RedisSettings::token_key) when one is set.
///
/// Whoever can read Redis sees only ciphertext under hashed keys. A value that does not
/// decrypt and authenticate (planted by whoever can write to Redis, written with another
/// `token_key`, or in the plaintext of older versions) is a miss, logged, and is replaced by
/// the next token fetched.
///
/// ```no_run
/// use servicetitan::redis::{RedisBackend, RedisSettings, RedisTokenStore};
/// use std::sync::Arc;
///
/// let settings = RedisSettings::new("redis://127.0.0.1:6379")?;
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

/// The prefix of a value sealed under the credential's key (and the configured one, if any).
/// Earlier versions wrote `p1:` (plaintext) and `e1:` (sealed under the configured key alone):
/// both are misses now, replaced by the next fetch.
const SEALED: &str = "e2:";

/// The longest stored value read. A token response is at most 64 KiB; sealed and in base64,
/// well under this. A longer value was not written by a client: it is a miss, never read
/// into memory.
const MAX_STORED: usize = 128 * 1024;

const NONCE_LEN: usize = 12;

impl RedisTokenStore {
    /// A store on `backend`.
    pub fn new(backend: Arc<RedisBackend>) -> Self {
        RedisTokenStore { backend }
    }

    fn fallback(&self) -> bool {
        self.backend.settings.fallback_share.is_some()
    }

    /// The AES-256 key of `key`'s tokens. A configured token key is combined with the
    /// credential's derived key rather than replacing it: reading a token then takes both the
    /// client secret and the configured key, so the configured key alone (kept in a
    /// deployment's settings, perhaps more widely than the secrets) opens nothing, and
    /// rotating either one retires every token sealed before.
    fn cipher(&self, key: &TokenKey) -> Aes256Gcm {
        let derived = key.store_key.expose();
        let bytes: [u8; 32] = match &self.backend.settings.token_key {
            None => *derived,
            Some(configured) => {
                let mut mac =
                    <Hmac<Sha256> as Mac>::new_from_slice(&configured.0).expect("HMAC takes keys of any length");
                mac.update(derived);
                mac.finalize().into_bytes().into()
            }
        };
        Aes256Gcm::new(&bytes.into())
    }

    /// Serializes and seals a token; the Redis key is the associated data, so a sealed value
    /// copied under another key does not open.
    fn encode(&self, redis_key: &str, key: &TokenKey, token: &CachedToken) -> String {
        let millis = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
        let json = serde_json::to_vec(&StoredToken {
            access_token: token.access_token.expose().to_owned(),
            expires_at_ms: millis(token.expires_at),
            refresh_at_ms: millis(token.refresh_at),
            stale_at_ms: millis(token.stale_at),
        })
        .expect("a token serializes");
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher(key)
            .encrypt(&nonce, Payload { msg: &json, aad: redis_key.as_bytes() })
            .expect("AES-GCM encrypts any length we store");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{SEALED}{}", base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    /// The token in a stored value, or `None` (logged) when it does not open with our key.
    fn decode(&self, redis_key: &str, key: &TokenKey, value: &str) -> Option<CachedToken> {
        let Some(sealed) = value.strip_prefix(SEALED) else {
            tracing::warn!(
                "a cached token in Redis is not sealed the way this version seals tokens (written by an older \
                 version, or not by this client); ignoring it and fetching a new token"
            );
            return None;
        };
        let opened = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .ok()
            .filter(|bytes| bytes.len() > NONCE_LEN)
            .and_then(|bytes| {
                let (nonce, sealed) = bytes.split_at(NONCE_LEN);
                self.cipher(key)
                    .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: redis_key.as_bytes() })
                    .ok()
            });
        let Some(json) = opened else {
            tracing::warn!(
                "a cached token in Redis does not open with this credential's key: another process uses a \
                 different redis_token_key (all processes sharing tokens need the same one), or the value was \
                 not written by a holder of the client secret; fetching a new token"
            );
            return None;
        };
        let stored: StoredToken = serde_json::from_slice(&json).ok()?;
        let at = |ms: u64| UNIX_EPOCH.checked_add(Duration::from_millis(ms));
        Some(CachedToken {
            access_token: Secret::new(stored.access_token),
            expires_at: at(stored.expires_at_ms)?,
            refresh_at: at(stored.refresh_at_ms)?,
            stale_at: at(stored.stale_at_ms)?,
        })
    }

    async fn get_raw(&self, redis_key: &str) -> Result<Option<String>> {
        let raw = self
            .backend
            .run("a token lookup", |mut c| async move {
                self.backend.get_token.key(redis_key).arg(MAX_STORED).invoke_async::<Option<Vec<u8>>>(&mut c).await
            })
            .await?;
        // Not UTF-8: not ours, and no string to compare or decode. A miss.
        Ok(raw.and_then(|bytes| String::from_utf8(bytes).ok()))
    }
}

impl TokenStore for RedisTokenStore {
    fn get<'a>(&'a self, key: &'a TokenKey) -> BoxFuture<'a, Result<Option<CachedToken>>> {
        Box::pin(async move {
            let redis_key = self.backend.token_key(key);
            match self.get_raw(&redis_key).await {
                Ok(value) => Ok(value.and_then(|v| self.decode(&redis_key, key, &v))),
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
            let value = self.encode(&redis_key, key, token);
            if value.len() > MAX_STORED {
                // Could not be read back; the token is still good for this process.
                tracing::warn!(bytes = value.len(), "the token is too long to share through Redis; not storing it");
                return Ok(());
            }
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
            let same = self.decode(&redis_key, key, &raw).is_none_or(|t| &t.access_token == access_token);
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
                    let ttl_ms = ttl.as_millis().max(1) as u64;
                    async move {
                        self.backend.lock_fetch.key(lock_key).arg(owner).arg(ttl_ms).invoke_async::<i64>(&mut c).await
                    }
                })
                .await;
            match result {
                Ok(1) => Ok(Some(FetchLock::shared(owner))),
                Ok(_) => Ok(None),
                // Redis is gone: this process fetches for itself (its own single flight holds).
                Err(_) if self.fallback() => Ok(Some(FetchLock::local())),
                Err(e) => Err(e),
            }
        })
    }

    fn unlock_fetch<'a>(&'a self, key: &'a TokenKey, lock: &'a FetchLock) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let Some(owner) = lock.owner() else { return Ok(()) };
            let token_key = self.backend.token_key(key);
            let lock_key = format!("{token_key}:lock");
            let channel = notices::channel(&token_key);
            // Released, then announced: the waiters wake to find the token (stored before
            // this) or, if the fetch failed, a free lock.
            let result = self
                .backend
                .run("releasing the token lock", |mut c| {
                    let (lock_key, channel) = (&lock_key, &channel);
                    async move {
                        self.backend.compare_and_delete.key(lock_key).arg(owner).invoke_async::<i64>(&mut c).await?;
                        redis::cmd("PUBLISH").arg(channel).arg(1).query_async::<i64>(&mut c).await
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

    fn watch_fetch<'a>(&'a self, key: &'a TokenKey) -> BoxFuture<'a, Option<FetchNotice>> {
        Box::pin(async move { self.backend.notices.watch(notices::channel(&self.backend.token_key(key))).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::StoreKey;
    use crate::redis::backend::micros;
    use crate::redis::RedisSettings;

    fn store(key: Option<&str>) -> RedisTokenStore {
        let mut settings = RedisSettings::new("redis://127.0.0.1:1").unwrap();
        if let Some(key) = key {
            settings = settings.token_key(key).unwrap();
        }
        RedisTokenStore::new(Arc::new(RedisBackend::connect_lazily(settings).unwrap()))
    }

    fn credential(secret: &str) -> TokenKey {
        TokenKey {
            environment: "https://auth.example/connect/token".into(),
            client_id: "cid".into(),
            secret_fingerprint: "f".into(),
            store_key: StoreKey::derive(&Secret::new(secret)),
        }
    }

    fn token(value: &str) -> CachedToken {
        CachedToken::schedule(Secret::new(value), SystemTime::now(), Duration::from_secs(900))
    }

    #[test]
    fn tokens_are_sealed_by_default_and_open_only_with_the_same_secret() {
        let (store, key) = (store(None), credential("cs1.secret"));
        let token = token("tok-secret");
        let sealed = store.encode("k", &key, &token);
        assert!(sealed.starts_with(SEALED) && !sealed.contains("tok-secret"), "{sealed}");
        let opened = store.decode("k", &key, &sealed).unwrap();
        assert_eq!(opened.access_token, token.access_token);
        assert_eq!(micros(opened.expires_at) / 1000, micros(token.expires_at) / 1000);
        // Bound to its Redis key and to the secret: neither another key nor another secret opens it.
        assert!(store.decode("other", &key, &sealed).is_none());
        assert!(store.decode("k", &credential("cs1.other"), &sealed).is_none());
    }

    #[test]
    fn a_configured_key_is_combined_with_the_secret_and_a_mismatch_is_a_miss() {
        let key = credential("cs1.secret");
        let sealed = store(Some(&"11".repeat(32))).encode("k", &key, &token("tok"));
        assert!(store(Some(&"11".repeat(32))).decode("k", &key, &sealed).is_some());
        assert!(store(Some(&"22".repeat(32))).decode("k", &key, &sealed).is_none());
        assert!(store(None).decode("k", &key, &sealed).is_none(), "the configured key is needed");
        assert!(store(Some(&"11".repeat(32))).decode("k", &credential("cs1.other"), &sealed).is_none());
        assert!(store(None).decode("k", &key, &store(None).encode("k", &key, &token("t"))).is_some());
    }

    #[test]
    fn plaintext_old_and_forged_values_are_misses_not_crashes() {
        let (store, key) = (store(None), credential("cs1.secret"));
        let plain = r#"p1:{"access_token":"planted","expires_at_ms":99999999999999,"refresh_at_ms":0,"stale_at_ms":0}"#;
        for value in [plain, "e1:AAAA", "e2:", "e2:!!!", "e2:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "", "garbage"] {
            assert!(store.decode("k", &key, value).is_none(), "{value}");
        }
    }
}
