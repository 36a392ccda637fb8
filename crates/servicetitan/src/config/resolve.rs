//! Resolution: every setting of a [`ClientBuilder`] from its method, else its environment
//! variable, else its default, checked, into a [`Config`].

use std::sync::Arc;
use std::time::Duration;

use super::environment::{mixed, parse_base_url, token_url};
use super::{ClientBuilder, Config, EnvLookup, Environment, Secret, Timeouts};
use crate::error::{Error, Result};
use crate::limit::Quota;
use crate::redis::RedisSettings;
use crate::retry::RetryPolicy;
use crate::settings::{
    DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_MAX, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_RETRY_AFTER, DEFAULT_RATE_LIMIT_CALLS, DEFAULT_RATE_LIMIT_MARGIN, DEFAULT_RATE_LIMIT_MARGIN_ADAPTIVE,
    DEFAULT_RATE_LIMIT_PERIOD, DEFAULT_REPORT_RATE_LIMIT_CALLS, DEFAULT_REPORT_RATE_LIMIT_PERIOD, DEFAULT_TIMEOUT,
    MAX_DURATION,
};

impl ClientBuilder {
    pub(crate) fn lookup(&self) -> EnvLookup {
        self.env.clone().unwrap_or_else(|| Arc::new(|name: &str| std::env::var(name).ok()))
    }

    pub(crate) fn root_certificates(&self, env: &EnvLookup) -> Result<Vec<reqwest::Certificate>> {
        let mut pems = self.root_certificates.clone();
        if let Some(path) = env("ST_CA_BUNDLE").filter(|p| !p.trim().is_empty()) {
            let pem = std::fs::read(&path)
                .map_err(|e| Error::configuration("ST_CA_BUNDLE", format!("cannot read {path:?}: {e}")))?;
            pems.push(pem);
        }
        let mut certs = Vec::new();
        for pem in pems {
            let bundle = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| Error::configuration("root_certificate", format!("not a PEM certificate: {e}")))?;
            if bundle.is_empty() {
                return Err(Error::configuration("root_certificate", "no certificate found in the PEM data"));
            }
            certs.extend(bundle);
        }
        Ok(certs)
    }

    pub(crate) fn resolve(&self) -> Result<Config> {
        let env = self.lookup();

        let app_key = match &self.app_key {
            Some(k) => k.clone(),
            None => env("ST_APP_KEY")
                .map(Secret::new)
                .ok_or_else(|| Error::configuration("app_key", "no app key given and ST_APP_KEY is not set"))?,
        };
        if app_key.is_blank() {
            return Err(Error::configuration("app_key", "the app key is empty"));
        }

        let environment = self.resolve_environment(&env)?;
        let (auth_base, api_base) = environment.urls();
        let (auth_arg, api_arg) = match &environment {
            Environment::Custom { .. } => ("auth_url", "api_url"),
            _ => ("environment", "environment"),
        };
        let token_url = token_url(auth_base, auth_arg)?;
        let api_url = parse_base_url(api_base, api_arg)?.as_str().trim_end_matches('/').to_owned();

        // Every setting on its own: its argument, else its variable, else its default (see
        // `crate::settings`). A problem is reported under the name the value came by.
        let count = |arg: Option<u32>, var: &str, default: u32| -> Result<(u32, String)> {
            match arg {
                Some(n) => Ok((n, String::new())),
                None => Ok((env_parse::<u32>(&env, var)?.unwrap_or(default), var.to_owned())),
            }
        };
        type FromEnv = fn(&EnvLookup, &str) -> Result<Option<Duration>>;
        let duration =
            |arg: Option<Duration>, argument: &str, var: &str, from_env: FromEnv, default: Duration| match arg {
                Some(d) => at_most(argument, d).map(|d| (d, argument.to_owned())),
                None => from_env(&env, var).map(|d| (d.unwrap_or(default), var.to_owned())),
            };
        let (margin, _) = duration(
            self.rate_limit_margin,
            "rate_limit_margin",
            "ST_RATE_LIMIT_MARGIN_MS",
            env_millis,
            DEFAULT_RATE_LIMIT_MARGIN,
        )?;
        let quota = |(calls, _): (u32, String), (period, name): (Duration, String)| -> Result<Option<Quota>> {
            if calls == 0 || self.limits_off {
                return Ok(None);
            }
            if period.is_zero() {
                return Err(Error::configuration(name, "the period must be positive"));
            }
            Ok(Some(Quota { calls, period, margin }))
        };
        let rate_limit = quota(
            count(self.rate_limit_calls, "ST_RATE_LIMIT_PER_SECOND", DEFAULT_RATE_LIMIT_CALLS)?,
            duration(
                self.rate_limit_period,
                "rate_limit_period",
                "ST_RATE_LIMIT_PERIOD_MS",
                env_millis,
                DEFAULT_RATE_LIMIT_PERIOD,
            )?,
        )?;
        let report_rate_limit = quota(
            count(self.report_rate_limit_calls, "ST_REPORT_RATE_LIMIT_PER_MINUTE", DEFAULT_REPORT_RATE_LIMIT_CALLS)?,
            duration(
                self.report_rate_limit_period,
                "report_rate_limit_period",
                "ST_REPORT_RATE_LIMIT_PERIOD_SECS",
                env_secs,
                DEFAULT_REPORT_RATE_LIMIT_PERIOD,
            )?,
        )?;
        let adaptive_margin = match self.rate_limit_margin_adaptive {
            Some(on) => on,
            None => env_bool(&env, "ST_RATE_LIMIT_MARGIN_ADAPTIVE")?.unwrap_or(DEFAULT_RATE_LIMIT_MARGIN_ADAPTIVE),
        };

        let (max_attempts, _) = count(self.max_attempts, "ST_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS)?;
        if max_attempts == 0 {
            return Err(Error::configuration("max_attempts", "at least one attempt is needed"));
        }
        let (base_delay, _) =
            duration(self.backoff_base, "backoff_base", "ST_BACKOFF_BASE_MS", env_millis, DEFAULT_BACKOFF_BASE)?;
        let (max_delay, _) =
            duration(self.backoff_max, "backoff_max", "ST_BACKOFF_MAX_MS", env_millis, DEFAULT_BACKOFF_MAX)?;
        let retry = RetryPolicy { max_attempts, base_delay, max_delay };

        let timeout = |arg: Option<Duration>, argument: &str, var: &str, default: Duration| -> Result<Duration> {
            let (d, name) = duration(arg, argument, var, env_secs, default)?;
            if d.is_zero() {
                return Err(Error::configuration(name, "a timeout must be positive"));
            }
            Ok(d)
        };
        let timeouts = Timeouts {
            connect: timeout(
                self.connect_timeout,
                "connect_timeout",
                "ST_CONNECT_TIMEOUT_SECS",
                DEFAULT_CONNECT_TIMEOUT,
            )?,
            attempt: timeout(
                self.attempt_timeout,
                "attempt_timeout",
                "ST_ATTEMPT_TIMEOUT_SECS",
                DEFAULT_ATTEMPT_TIMEOUT,
            )?,
            total: timeout(self.timeout, "timeout", "ST_TIMEOUT_SECS", DEFAULT_TIMEOUT)?,
        };
        let (max_retry_after, _) = duration(
            self.max_retry_after,
            "max_retry_after",
            "ST_MAX_RETRY_AFTER_SECS",
            env_secs,
            DEFAULT_MAX_RETRY_AFTER,
        )?;

        let language = self.language.as_deref().unwrap_or("rust");
        if language.is_empty() || !language.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(Error::configuration("language", "letters, digits, '-', '_' and '.' only"));
        }
        let user_agent = format!("servicetitan-{language}/{}", env!("CARGO_PKG_VERSION"));

        let redis = self.resolve_redis(&env, max_retry_after)?;

        Ok(Config {
            app_key,
            environment,
            token_url,
            api_url,
            rate_limit,
            adaptive_margin,
            report_rate_limit,
            retry,
            timeouts,
            max_retry_after,
            user_agent,
            redis,
        })
    }

    fn resolve_redis(&self, env: &EnvLookup, max_retry_after: Duration) -> Result<Option<RedisSettings>> {
        let set = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
        let url = match &self.redis_url {
            Some(url) => Some(url.expose().to_owned()),
            None => set(env("ST_REDIS_URL")),
        };
        let Some(url) = url.filter(|u| !u.trim().is_empty()) else { return Ok(None) };
        // A cooldown in Redis is honoured as long as a 429's Retry-After would be, no longer.
        let mut settings = RedisSettings::new(&url)?.max_cooldown(max_retry_after);
        let tls_ca =
            match (&self.redis_tls_ca, set(env("ST_REDIS_TLS_CA"))) {
                (Some(pem), _) => Some(pem.clone()),
                (None, Some(path)) => Some(std::fs::read(path.trim()).map_err(|e| {
                    Error::configuration("ST_REDIS_TLS_CA", format!("cannot read {:?}: {e}", path.trim()))
                })?),
                (None, None) => None,
            };
        if let Some(pem) = tls_ca {
            settings = settings.tls_ca_pem(&pem)?;
        }
        if let Some(prefix) = self.redis_key_prefix.clone().or_else(|| set(env("ST_REDIS_KEY_PREFIX"))) {
            settings = settings.key_prefix(prefix)?;
        }
        let token_key = match &self.redis_token_key {
            Some(k) => Some(k.expose().to_owned()),
            None => set(env("ST_REDIS_TOKEN_KEY")),
        };
        if let Some(key) = token_key {
            settings = settings.token_key(&key)?;
        }
        let share = match self.redis_fallback_share {
            Some(s) => Some(s),
            None => env_parse::<f64>(env, "ST_REDIS_FALLBACK_SHARE")?,
        };
        if let Some(share) = share {
            settings = settings.fallback_share(share)?;
        }
        let wait = match self.redis_wait {
            Some(w) => Some(w),
            None => env_secs(env, "ST_REDIS_WAIT_SECS")?,
        };
        if let Some(wait) = wait {
            settings = settings.wait(wait);
        }
        let client_time = match self.redis_client_time {
            Some(on) => on,
            None => set(env("ST_REDIS_CLIENT_TIME")).is_some_and(|v| matches!(v.trim(), "1" | "true" | "yes" | "on")),
        };
        Ok(Some(settings.client_time(client_time)))
    }

    /// The environment: a known one by name, or a custom one from both URLs, never both.
    ///
    /// Arguments win over environment variables: an `environment` argument ignores
    /// `ST_AUTH_URL`/`ST_API_URL`, URL arguments ignore `ST_ENVIRONMENT`. Given together at
    /// the same level (both as arguments, or both as variables), a name and URLs are refused:
    /// one would silently override the other.
    fn resolve_environment(&self, env: &EnvLookup) -> Result<Environment> {
        let named = match (&self.environment, &self.environment_name) {
            (Some(e), _) => Some(e.clone()),
            (None, Some(name)) => Some(Environment::parse_named(name, "environment")?),
            (None, None) => None,
        };
        let given = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
        if named.is_some() || self.auth_url.is_some() || self.api_url.is_some() {
            return match (named, self.auth_url.clone(), self.api_url.clone()) {
                (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(mixed("environment", "auth_url and api_url")),
                (Some(e), None, None) => Ok(e),
                (None, Some(auth_url), Some(api_url)) => Ok(Environment::Custom { auth_url, api_url }),
                (None, Some(_), None) => Err(Error::configuration(
                    "api_url",
                    "auth_url was given without api_url: a custom environment needs both",
                )),
                (None, None, _) => Err(Error::configuration(
                    "auth_url",
                    "api_url was given without auth_url: a custom environment needs both",
                )),
            };
        }
        let name = given(env("ST_ENVIRONMENT"));
        match (name, given(env("ST_AUTH_URL")), given(env("ST_API_URL"))) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(mixed("ST_ENVIRONMENT", "ST_AUTH_URL and ST_API_URL")),
            (Some(name), None, None) => Environment::parse_named(&name, "ST_ENVIRONMENT"),
            (None, Some(auth_url), Some(api_url)) => Ok(Environment::Custom { auth_url, api_url }),
            (None, Some(_), None) => Err(Error::configuration(
                "ST_API_URL",
                "ST_AUTH_URL is set but ST_API_URL is not: a custom environment needs both",
            )),
            (None, None, Some(_)) => Err(Error::configuration(
                "ST_AUTH_URL",
                "ST_API_URL is set but ST_AUTH_URL is not: a custom environment needs both",
            )),
            (None, None, None) => Ok(Environment::Production),
        }
    }
}

fn env_parse<T: std::str::FromStr>(env: &EnvLookup, name: &str) -> Result<Option<T>> {
    match env(name) {
        Some(v) if !v.trim().is_empty() => {
            v.trim().parse().map(Some).map_err(|_| Error::configuration(name, format!("{v:?} is not a valid number")))
        }
        _ => Ok(None),
    }
}

fn env_bool(env: &EnvLookup, name: &str) -> Result<Option<bool>> {
    match env(name) {
        Some(v) if !v.trim().is_empty() => match v.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(Some(true)),
            "0" | "false" | "no" | "off" => Ok(Some(false)),
            _ => Err(Error::configuration(name, format!("{v:?} is not one of 1, 0, true, false, yes, no, on, off"))),
        },
        _ => Ok(None),
    }
}

/// `d`, or a `configuration` error naming `argument` if it is longer than [`MAX_DURATION`].
pub(crate) fn at_most(argument: &str, d: Duration) -> Result<Duration> {
    if d > MAX_DURATION {
        return Err(Error::configuration(argument, "durations are limited to 30 days"));
    }
    Ok(d)
}

fn env_secs(env: &EnvLookup, name: &str) -> Result<Option<Duration>> {
    let secs = env_parse::<f64>(env, name)?;
    match secs {
        Some(s) if s.is_finite() && s >= 0.0 => match Duration::try_from_secs_f64(s) {
            Ok(d) => at_most(name, d).map(Some),
            Err(_) => Err(Error::configuration(name, "durations are limited to 30 days")),
        },
        Some(_) => Err(Error::configuration(name, "must be a non-negative number of seconds")),
        None => Ok(None),
    }
}

fn env_millis(env: &EnvLookup, name: &str) -> Result<Option<Duration>> {
    env_parse::<u64>(env, name)?.map(|ms| at_most(name, Duration::from_millis(ms))).transpose()
}
