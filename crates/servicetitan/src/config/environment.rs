//! [`Environment`]: the known ServiceTitan environments or a custom pair of URLs, and the checks
//! every base URL passes.

use std::fmt;

use reqwest::Url;

use super::redact_url;
use crate::error::{Error, Result};

/// Where tokens come from and calls go.
///
/// Credentials are environment specific: integration client ids and secrets do not work in
/// production and vice versa. The app key works in both. `Debug` and `Display` show custom
/// URLs redacted ([`redact_url`]).
#[derive(Clone, PartialEq, Eq)]
pub enum Environment {
    /// `https://auth.servicetitan.io`, `https://api.servicetitan.io`.
    Production,
    /// `https://auth-integration.servicetitan.io`, `https://api-integration.servicetitan.io`.
    Integration,
    /// Any other pair of base URLs, e.g. the local sandbox. `http://` only on loopback.
    Custom {
        /// Base URL of the token endpoint (`/connect/token` is appended unless present).
        auth_url: String,
        /// Base URL of the API.
        api_url: String,
    },
}

impl Environment {
    /// Parses `production` or `integration` (case-insensitive).
    ///
    /// ```
    /// use servicetitan::Environment;
    /// assert_eq!(Environment::parse("Integration").unwrap(), Environment::Integration);
    /// assert_eq!(Environment::parse("staging").unwrap_err().code().as_str(), "configuration");
    /// ```
    pub fn parse(name: &str) -> Result<Self> {
        Self::parse_named(name, "environment")
    }

    pub(super) fn parse_named(name: &str, argument: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "production" | "prod" => Ok(Environment::Production),
            "integration" => Ok(Environment::Integration),
            other => Err(Error::configuration(
                argument,
                format!(
                    "unknown environment {other:?}: expected \"production\" or \"integration\", \
                     or give auth_url and api_url for a custom one"
                ),
            )),
        }
    }

    /// `"production"`, `"integration"` or `"custom"`.
    pub fn name(&self) -> &'static str {
        match self {
            Environment::Production => "production",
            Environment::Integration => "integration",
            Environment::Custom { .. } => "custom",
        }
    }

    pub(super) fn urls(&self) -> (&str, &str) {
        match self {
            Environment::Production => ("https://auth.servicetitan.io", "https://api.servicetitan.io"),
            Environment::Integration => {
                ("https://auth-integration.servicetitan.io", "https://api-integration.servicetitan.io")
            }
            Environment::Custom { auth_url, api_url } => (auth_url, api_url),
        }
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Environment::Production => f.write_str("Production"),
            Environment::Integration => f.write_str("Integration"),
            Environment::Custom { auth_url, api_url } => f
                .debug_struct("Custom")
                .field("auth_url", &redact_url(auth_url))
                .field("api_url", &redact_url(api_url))
                .finish(),
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Environment::Custom { auth_url, .. } => write!(f, "custom ({})", redact_url(auth_url)),
            other => f.write_str(other.name()),
        }
    }
}

/// The error for a known environment and custom URLs given together.
pub(super) fn mixed(environment: &str, urls: &str) -> Error {
    Error::configuration(
        environment,
        format!(
            "{environment} was given together with {urls}: name a known environment (production, \
             integration) or give {urls} for a custom one (such as the sandbox), not both"
        ),
    )
}

pub(super) fn parse_base_url(raw: &str, argument: &str) -> Result<Url> {
    // The URL is echoed only redacted: it may carry a password or a token the user put there.
    let shown = redact_url(raw);
    let url =
        Url::parse(raw.trim()).map_err(|e| Error::configuration(argument, format!("{shown:?} is not a URL: {e}")))?;
    if url.cannot_be_a_base() {
        // `user:pw@host` parses with the user as its scheme: never echo that "scheme".
        return Err(Error::configuration(argument, format!("{shown:?} is not a URL like https://host")));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(Error::configuration(
                argument,
                format!("{shown:?}: plain http:// is only allowed on loopback; use https://"),
            ))
        }
        other => return Err(Error::configuration(argument, format!("{shown:?}: unsupported scheme {other:?}"))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::configuration(argument, format!("{shown:?}: credentials do not belong in the URL")));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::configuration(argument, format!("{shown:?}: a base URL has no query or fragment")));
    }
    Ok(url)
}

pub(super) fn token_url(auth_base: &str, argument: &str) -> Result<Url> {
    let mut url = parse_base_url(auth_base, argument)?;
    if !url.path().trim_end_matches('/').ends_with("/connect/token") {
        let path = format!("{}/connect/token", url.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    Ok(url)
}

pub(crate) fn is_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or("");
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
