//! Secrets and how URLs the user gave are shown: [`Secret`] prints `***`, [`redact_url`] hides
//! passwords and secret-looking parameters.

use std::fmt;
use std::sync::Arc;

use reqwest::Url;

/// A secret string (client secret, app key, access token): `Debug` and `Display` print `***`.
///
/// ```
/// let secret = servicetitan::Secret::new("cs1.very-secret");
/// assert_eq!(format!("{secret} {secret:?}"), "*** ***");
/// assert_eq!(secret.expose(), "cs1.very-secret");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Arc::from(value.into()))
    }

    /// The secret itself: only for sending it where it belongs (or storing it in a token store).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty (or only whitespace).
    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value)
    }
}

/// Query-string (and fragment) parameters whose names contain one of these words, in any
/// case, have their values shown as `***` by [`redact_url`].
const SECRET_PARAMETER_WORDS: [&str; 7] = ["pass", "password", "secret", "token", "key", "auth", "user"];

/// What [`redact_url`] shows for a URL it cannot take apart.
const UNPARSEABLE_URL: &str = "<unparseable URL>";

/// The longest redacted URL shown: a setting holding megabytes must not fill an error with them.
const MAX_SHOWN_URL: usize = 300;

/// A URL the user gave, made fit for an error message or a log line: the user and password
/// of its userinfo, and the values of query-string or fragment parameters whose names look
/// secret (`pass`, `password`, `secret`, `token`, `key`, `auth`, `user`, in any case and
/// anywhere in the name) become `***`. A URL that does not parse shows only its scheme and
/// host, or `<unparseable URL>` when even those are in doubt. Every message that quotes a URL
/// the user gave goes through here.
///
/// ```
/// use servicetitan::config::redact_url;
/// assert_eq!(redact_url("redis://:hunter2@cache:6379/0"), "redis://:***@cache:6379/0");
/// assert_eq!(redact_url("https://bob:hunter2@example.com/"), "https://***:***@example.com/");
/// assert_eq!(redact_url("redis+unix:///run/redis.sock?db=1&pass=hunter2"), "redis+unix:///run/redis.sock?db=1&pass=***");
/// assert_eq!(redact_url("https://example.com/?api_KEY=hunter2&page=2"), "https://example.com/?api_KEY=***&page=2");
/// assert_eq!(redact_url("redis://:hunter2@cache:99999"), "redis://cache");
/// assert_eq!(redact_url("bob:hunter2@cache"), "<unparseable URL>");
/// ```
pub fn redact_url(url: &str) -> String {
    let text = url.trim();
    let shown = match Url::parse(text) {
        // A URL without `//` (`user:pw@host`, `host:6379`) parses as a scheme and an opaque
        // path, which may be anything: only URLs with an authority are shown.
        Ok(parsed) if !parsed.cannot_be_a_base() && !at_sign_after_authority(text) => redact_parsed(parsed),
        _ => None,
    };
    let shown = shown.or_else(|| scheme_and_host(text)).unwrap_or_else(|| UNPARSEABLE_URL.to_owned());
    if shown.chars().count() > MAX_SHOWN_URL {
        let cut: String = shown.chars().take(MAX_SHOWN_URL).collect();
        return format!("{cut}…");
    }
    shown
}

/// `message` with every secret of `url` (as [`redact_url`] sees them, raw and percent-decoded)
/// and `url` itself replaced: for messages of other libraries that may quote either.
pub(crate) fn redact_in(message: &str, url: &str) -> String {
    let mut secrets: Vec<String> = vec![url.trim().to_owned()];
    if let Ok(parsed) = Url::parse(url.trim()) {
        secrets.push(parsed.username().to_owned());
        secrets.extend(parsed.password().map(str::to_owned));
        for part in [parsed.query(), parsed.fragment()].into_iter().flatten() {
            for (name, value) in part.split('&').filter_map(|pair| pair.split_once('=')) {
                if looks_secret(name) {
                    secrets.push(value.to_owned());
                }
            }
        }
    }
    let decoded: Vec<String> = secrets.iter().map(|s| decode_component(s)).collect();
    secrets.extend(decoded);
    // Longest first, so that no part of a longer secret survives the replacement of a shorter one.
    secrets.retain(|s| !s.is_empty());
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut message = message.to_owned();
    for secret in &secrets {
        if message.contains(secret.as_str()) {
            let replacement = if secret == url.trim() { redact_url(url) } else { "***".to_owned() };
            message = message.replace(secret.as_str(), &replacement);
        }
    }
    message
}

fn redact_parsed(mut url: Url) -> Option<String> {
    if !url.username().is_empty() {
        url.set_username("***").ok()?;
    }
    if url.password().is_some() {
        url.set_password(Some("***")).ok()?;
    }
    if let Some(query) = url.query().map(redact_parameters) {
        url.set_query(Some(&query));
    }
    if let Some(fragment) = url.fragment().map(redact_parameters) {
        url.set_fragment(Some(&fragment));
    }
    // Every setter above can refuse on some URL; then nothing of it is shown.
    let clean = matches!(url.username(), "" | "***") && matches!(url.password(), None | Some("***"));
    clean.then(|| url.to_string())
}

/// Whether an `@` follows the authority of `scheme://authority…`, outside the value of a
/// secret-looking parameter: a password with a `/`, `?` or `#` moves its tail (and the host)
/// into the path, query or fragment, where nothing would redact it. Such a URL is shown by
/// [`scheme_and_host`], which refuses the ambiguity.
fn at_sign_after_authority(text: &str) -> bool {
    let rest = text.split_once("://").map_or(text, |(_, rest)| rest);
    let tail = &rest[rest.find(['/', '?', '#']).unwrap_or(rest.len())..];
    let (path, parameters) = tail.split_at(tail.find(['?', '#']).unwrap_or(tail.len()));
    path.contains('@')
        || parameters.split(['?', '#', '&']).any(|pair| match pair.split_once('=') {
            Some((name, _)) if looks_secret(name) => false,
            _ => pair.contains('@'),
        })
}

/// `a=1&token=x` → `a=1&token=***`, keeping every other byte as it was.
fn redact_parameters(parameters: &str) -> String {
    parameters
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if looks_secret(name) => format!("{name}=***"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn looks_secret(name: &str) -> bool {
    let name = decode_component(name).to_lowercase();
    SECRET_PARAMETER_WORDS.iter().any(|word| name.contains(word))
}

fn decode_component(text: &str) -> String {
    percent_encoding::percent_decode_str(&text.replace('+', " ")).decode_utf8_lossy().into_owned()
}

/// `scheme://host` of something that does not parse as a URL, when both are unambiguous.
fn scheme_and_host(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    let mut chars = scheme.chars();
    let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return None;
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    // An `@` after the authority means the userinfo itself may hold a `/`, `?` or `#`: the
    // host cannot be told from the password.
    if !authority.contains('@') && rest.contains('@') {
        return None;
    }
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = if host_port.starts_with('[') {
        &host_port[..host_port.find(']').map_or(0, |end| end + 1)]
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    let host_ok = !host.is_empty()
        && host.chars().all(|c| c.is_ascii_alphanumeric() || "-._[]:".contains(c))
        && (host.starts_with('[') || !host.contains(':'));
    host_ok.then(|| format!("{scheme}://{host}"))
}
