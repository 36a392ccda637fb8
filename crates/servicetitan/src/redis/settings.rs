//! The settings of the Redis backend: URL, key prefix, token key, fallback and waits.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;

use crate::config::{redact_in, redact_url, Secret};
use crate::error::{Error, Result};

/// The Redis settings of a client (see the [module docs](crate::redis)). `Debug` hides the URL's
/// password and the token key.
///
/// ```
/// use servicetitan::redis::RedisSettings;
/// let settings = RedisSettings::new("redis://:hunter2@cache.internal:6379/0").unwrap();
/// assert!(!format!("{settings:?}").contains("hunter2"));
/// assert_eq!(settings.redacted_url(), "redis://:***@cache.internal:6379/0");
/// ```
#[derive(Clone)]
pub struct RedisSettings {
    pub(super) url: Secret,
    pub(super) redacted_url: String,
    pub(super) key_prefix: String,
    pub(super) token_key: Option<TokenKeyBytes>,
    pub(super) fallback_share: Option<f64>,
    pub(super) wait: Duration,
    pub(super) client_time: bool,
    pub(super) max_cooldown: Duration,
    pub(super) tls_ca: Option<Vec<u8>>,
}

#[derive(Clone)]
pub(super) struct TokenKeyBytes(pub(super) [u8; 32]);

impl fmt::Debug for TokenKeyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl RedisSettings {
    /// Settings for `url` (`redis://[[user]:password@]host[:port][/db]`, or `rediss://` for
    /// TLS, the server's certificate checked against the system's roots or
    /// [`tls_ca_pem`](Self::tls_ca_pem)), with the defaults: prefix `servicetitan`, tokens
    /// encrypted under a key derived from each client secret alone, no fallback, 30 s of
    /// waiting for Redis, Redis's clock, cooldowns honoured for up to 120 s.
    ///
    /// Certificate checks cannot be turned off: `rediss://…#insecure` is refused.
    pub fn new(url: &str) -> Result<Self> {
        let url = url.trim();
        let redacted_url = redact_url(url);
        if url.ends_with("#insecure") {
            return Err(Error::configuration(
                "redis_url",
                format!(
                    "{redacted_url:?} turns off the check of the server's certificate, which this client never \
                     does; give the CA that signed it with redis_tls_ca (ST_REDIS_TLS_CA) instead"
                ),
            ));
        }
        let parsed = redis::Client::open(url);
        if let Err(e) = parsed {
            return Err(Error::configuration(
                "redis_url",
                format!("{redacted_url:?} is not a Redis URL ({})", redact_in(&e.to_string(), url)),
            ));
        }
        Ok(RedisSettings {
            url: Secret::new(url),
            redacted_url,
            key_prefix: crate::settings::DEFAULT_REDIS_KEY_PREFIX.into(),
            token_key: None,
            fallback_share: None,
            wait: crate::settings::DEFAULT_REDIS_WAIT,
            client_time: false,
            max_cooldown: crate::settings::DEFAULT_MAX_RETRY_AFTER,
            tls_ca: None,
        })
    }

    /// The certificates (PEM) that the server's certificate of a `rediss://` URL must chain
    /// to, instead of the system's roots: for a Redis whose certificate a private CA signed.
    /// Refused for a URL without TLS, where it would protect nothing. Env: `ST_REDIS_TLS_CA`
    /// (the path of a PEM file).
    pub fn tls_ca_pem(mut self, pem: &[u8]) -> Result<Self> {
        if !self.is_tls() {
            return Err(Error::configuration(
                "redis_tls_ca",
                format!("a CA for Redis over TLS, but {:?} is not a rediss:// URL", self.redacted_url),
            ));
        }
        let text = std::str::from_utf8(pem).unwrap_or("");
        if !text.contains("-----BEGIN CERTIFICATE-----") {
            return Err(Error::configuration(
                "redis_tls_ca",
                "expected PEM certificates (-----BEGIN CERTIFICATE-----)",
            ));
        }
        let certificates = redis::TlsCertificates { client_tls: None, root_cert: Some(pem.to_vec()) };
        if let Err(e) = redis::Client::build_with_tls(self.url.expose(), certificates) {
            return Err(Error::configuration(
                "redis_tls_ca",
                format!("not usable as PEM certificates ({})", redact_in(&e.to_string(), self.url.expose())),
            ));
        }
        self.tls_ca = Some(pem.to_vec());
        Ok(self)
    }

    /// Whether the URL asks for TLS (`rediss://`).
    pub fn is_tls(&self) -> bool {
        self.url.expose().starts_with("rediss://") || self.url.expose().starts_with("valkeys://")
    }

    /// The driver's client for these settings: TLS roots from [`tls_ca_pem`](Self::tls_ca_pem)
    /// when given, else the system's.
    pub(super) fn client(&self) -> redis::RedisResult<redis::Client> {
        match &self.tls_ca {
            Some(pem) => redis::Client::build_with_tls(
                self.url.expose(),
                redis::TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) },
            ),
            None => redis::Client::open(self.url.expose()),
        }
    }

    /// Prefixes every key (default `servicetitan`): clients with different prefixes share
    /// nothing. Env: `ST_REDIS_KEY_PREFIX`.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Result<Self> {
        let prefix = prefix.into();
        if prefix.is_empty() || prefix.contains(['{', '}']) || prefix.chars().any(char::is_whitespace) {
            return Err(Error::configuration("redis_key_prefix", "non-empty, without spaces, '{' or '}'"));
        }
        self.key_prefix = prefix;
        Ok(self)
    }

    /// A second key for the tokens cached in Redis: 32 bytes as 64 hex digits or base64.
    /// Tokens are always encrypted (AES-256-GCM) under a key derived from their client secret;
    /// with this key set, under a key derived from both, so that reading them takes the
    /// secret *and* this key. Every process sharing the tokens needs the same key; an entry
    /// that does not decrypt is a miss (logged), never a crash. Env: `ST_REDIS_TOKEN_KEY`.
    pub fn token_key(mut self, key: &str) -> Result<Self> {
        self.token_key = Some(parse_token_key(key)?);
        Ok(self)
    }

    /// When Redis cannot be reached, fall back at once to an in-process limiter allowing this
    /// share of the budget (0 < share ≤ 1, e.g. 0.25 for four processes), instead of waiting
    /// for Redis. Env: `ST_REDIS_FALLBACK_SHARE`.
    pub fn fallback_share(mut self, share: f64) -> Result<Self> {
        if !(share.is_finite() && share > 0.0 && share <= 1.0) {
            return Err(Error::configuration("redis_fallback_share", "a share of the budget in (0, 1]"));
        }
        self.fallback_share = Some(share);
        Ok(self)
    }

    /// How long a call waits for Redis to answer again before failing with a `connection`
    /// error (never past the call's own deadline). Default 30 s. Env: `ST_REDIS_WAIT_SECS`.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Sends this host's wall-clock time to the admission script instead of using Redis's
    /// `TIME` (for servers that forbid `TIME` in scripts). Hosts must then keep their clocks
    /// in sync. Env: `ST_REDIS_CLIENT_TIME=1`.
    pub fn client_time(mut self, on: bool) -> Self {
        self.client_time = on;
        self
    }

    /// The longest cooldown read from Redis that a caller sits out (per key and attempt; at
    /// least one limiter window): a 429 announcing a longer wait fails the call instead of
    /// pausing anyone, so a longer cooldown in Redis is another deployment's or was planted.
    /// The client sets it to its `max_retry_after`; default 120 s, the default of that.
    pub fn max_cooldown(mut self, longest: Duration) -> Self {
        self.max_cooldown = longest;
        self
    }

    /// The URL as errors and logs show it: user, password and secret-looking query values
    /// replaced by `***` (see [`redact_url`](crate::config::redact_url)).
    pub fn redacted_url(&self) -> &str {
        &self.redacted_url
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.key_prefix
    }

    /// The fallback share, if any.
    pub fn fallback(&self) -> Option<f64> {
        self.fallback_share
    }
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &self.redacted_url)
            .field("key_prefix", &self.key_prefix)
            .field("token_key", &self.token_key.as_ref().map(|_| "***"))
            .field("fallback_share", &self.fallback_share)
            .field("wait", &self.wait)
            .field("client_time", &self.client_time)
            .field("max_cooldown", &self.max_cooldown)
            .field("tls_ca", &self.tls_ca.as_ref().map(|_| "PEM"))
            .finish()
    }
}

fn parse_token_key(raw: &str) -> Result<TokenKeyBytes> {
    let raw = raw.trim();
    let bytes = if raw.len() == 64 && raw.chars().all(|c| c.is_ascii_hexdigit()) {
        (0..32).map(|i| u8::from_str_radix(&raw[2 * i..2 * i + 2], 16).expect("hex checked")).collect()
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(raw))
            .unwrap_or_default()
    };
    let key: [u8; 32] = bytes.try_into().map_err(|_| {
        Error::configuration(
            "redis_token_key",
            "expected 32 bytes, as 64 hex digits or base64 (e.g. `openssl rand -hex 32`)",
        )
    })?;
    Ok(TokenKeyBytes(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn redis_urls_are_redacted_in_every_form() {
        for (url, shown) in [
            ("redis://:pw-secret@h:1/0", "redis://:***@h:1/0"),
            ("redis://user:pw-secret@h:1", "redis://***:***@h:1"),
            ("rediss://user:pw-secret@h:1", "rediss://***:***@h:1"),
            ("redis+unix:///run/redis.sock?pass=pw-secret", "redis+unix:///run/redis.sock?pass=***"),
            ("unix:///run/redis.sock?db=2&user=bob&pass=pw-secret", "unix:///run/redis.sock?db=2&user=***&pass=***"),
            ("redis://h:1", "redis://h:1"),
        ] {
            let settings = RedisSettings::new(url);
            match settings {
                Ok(settings) => {
                    assert_eq!(settings.redacted_url(), shown);
                    assert!(!format!("{settings:?}").contains("pw-secret"));
                }
                Err(e) => {
                    assert!(e.to_string().contains(shown), "{e}");
                    assert!(!e.to_string().contains("pw-secret") && !format!("{e:?}").contains("pw-secret"), "{e}");
                }
            }
        }
        for bad in ["nope://:pw-secret@h", "redis://:pw-secret@h:99999", "redis:pw-secret@h", "redis://:pw/secret@h:x"]
        {
            let e = RedisSettings::new(bad).unwrap_err();
            assert_eq!(e.argument(), Some("redis_url"));
            assert!(!e.to_string().contains("secret") && !format!("{e:?}").contains("secret"), "{bad}: {e}");
        }
    }

    #[test]
    fn token_keys_parse_as_hex_or_base64_and_nothing_else() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_token_key(&hex).unwrap().0, [0xab; 32]);
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(parse_token_key(&b64).unwrap().0, [7; 32]);
        for bad in ["", "abcd", &"ab".repeat(31)] {
            assert_eq!(parse_token_key(bad).unwrap_err().code(), ErrorCode::Configuration);
        }
    }
}
