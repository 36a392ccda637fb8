//! Every client setting once: its name in Rust, Python and Node, its environment variable, its default, its unit and its bounds.
//!
//! [`SETTINGS`] is the one list; the defaults are the named constants below, which
//! [`ClientBuilder`](crate::ClientBuilder)'s resolution and [`RetryPolicy::default`](crate::retry::RetryPolicy)
//! read. Each setting is resolved on its own: its argument, else its environment variable,
//! else its default; so half of a pair (calls without a period, a backoff base without a cap)
//! takes the other half from that half's own variable, then its default, in every language.
//! The bindings only convert units (Python takes seconds, Node milliseconds). The README's
//! settings table is [`markdown_table`], checked by a test.
//!
//! To add a setting: a constant for its default here, a row in [`SETTINGS`], a builder
//! method and its resolution in `config/resolve.rs`, the keyword or option in each binding, then
//! paste the table the failing README test prints.

use std::time::Duration;

/// Calls per tenant per period (`60` per second, ServiceTitan's published limit).
pub const DEFAULT_RATE_LIMIT_CALLS: u32 = 60;
/// The per-tenant limit's period.
pub const DEFAULT_RATE_LIMIT_PERIOD: Duration = Duration::from_secs(1);
/// Added to every limiter window to absorb network jitter (with the adaptive margin, where it starts).
pub const DEFAULT_RATE_LIMIT_MARGIN: Duration = Duration::from_millis(100);
/// Whether the margin is sized from measured round trips.
pub const DEFAULT_RATE_LIMIT_MARGIN_ADAPTIVE: bool = true;
/// Runs of one report per tenant per period.
pub const DEFAULT_REPORT_RATE_LIMIT_CALLS: u32 = 5;
/// The per-report limit's period.
pub const DEFAULT_REPORT_RATE_LIMIT_PERIOD: Duration = Duration::from_secs(60);
/// Attempts per call, the first included.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;
/// The first backoff's upper bound.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(250);
/// No backoff is longer.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(20);
/// A whole call: token, limiter waits, attempts and backoff.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Establishing a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// One attempt, from sending to the end of the body (the server gives up at about 100 s).
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(110);
/// The longest `Retry-After` waited for.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(120);
/// The prefix of every Redis key.
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "servicetitan";
/// How long a call waits for Redis to answer again.
pub const DEFAULT_REDIS_WAIT: Duration = Duration::from_secs(30);
/// The longest duration any setting takes: longer ones are surely mistakes, and would
/// overflow the clock arithmetic of deadlines.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// What a setting holds, and so how each language spells a value of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A string (a key, a name, a URL, a prefix).
    Text,
    /// A whole number.
    Count,
    /// A duration: a `Duration` in Rust, seconds in Python, milliseconds in Node.
    Duration,
    /// A number between 0 and 1.
    Share,
    /// On or off.
    Flag,
    /// PEM certificates (in arguments), a file of them (in the environment variable).
    Certificates,
}

/// How the environment variable spells the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvUnit {
    /// As it is.
    Text,
    /// A whole number.
    Count,
    /// Whole milliseconds.
    Millis,
    /// Seconds, decimals allowed.
    Seconds,
    /// A decimal number.
    Number,
    /// `1`, `true`, `yes` or `on` for on.
    Flag,
    /// A file path.
    Path,
}

/// A setting's default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultValue {
    /// None: the setting must be given.
    Required,
    /// A number.
    Count(u32),
    /// A duration.
    Duration(Duration),
    /// A text.
    Text(&'static str),
    /// Left out, with what that means.
    Absent(&'static str),
}

/// One setting of the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    /// What it is, in a few words.
    pub about: &'static str,
    /// The [`ClientBuilder`](crate::ClientBuilder) method that sets it.
    pub rust: &'static str,
    /// The keyword argument of Python's `Client`, if it has one (durations in seconds).
    pub python: Option<&'static str>,
    /// The option of Node's `Client`, if it has one (durations in milliseconds).
    pub node: Option<&'static str>,
    /// The environment variable read when no argument gives it.
    pub env: &'static str,
    /// How the environment variable spells it.
    pub env_unit: EnvUnit,
    /// What it holds.
    pub kind: Kind,
    /// Its default.
    pub default: DefaultValue,
    /// The values it takes.
    pub bounds: &'static str,
}

// One argument per field, so that the table below reads as a table.
#[allow(clippy::too_many_arguments)]
const fn setting(
    about: &'static str,
    rust: &'static str,
    python: Option<&'static str>,
    node: Option<&'static str>,
    env: &'static str,
    env_unit: EnvUnit,
    kind: Kind,
    default: DefaultValue,
    bounds: &'static str,
) -> Setting {
    Setting { about, rust, python, node, env, env_unit, kind, default, bounds }
}

const DURATION_BOUNDS: &str = "0 to 30 days";
const POSITIVE_DURATION: &str = "more than 0, at most 30 days";

/// Every setting of the client, in the order of the README's table.
#[rustfmt::skip]
pub const SETTINGS: &[Setting] = &[
    setting("app key", "app_key", Some("app_key"), Some("appKey"), "ST_APP_KEY",
        EnvUnit::Text, Kind::Text, DefaultValue::Required, "not empty"),
    setting("environment", "environment", Some("environment"), Some("environment"), "ST_ENVIRONMENT",
        EnvUnit::Text, Kind::Text, DefaultValue::Text("production"),
        "`production` or `integration`; not together with the URLs"),
    setting("token service base URL (custom environment)", "auth_url", Some("auth_url"), Some("authUrl"), "ST_AUTH_URL",
        EnvUnit::Text, Kind::Text, DefaultValue::Absent("the environment's"),
        "https (http on loopback), with `api_url`"),
    setting("API base URL (custom environment)", "api_url", Some("api_url"), Some("apiUrl"), "ST_API_URL",
        EnvUnit::Text, Kind::Text, DefaultValue::Absent("the environment's"),
        "https (http on loopback), with `auth_url`"),
    setting("calls per tenant per period", "rate_limit_calls", Some("rate_limit_calls"), Some("rateLimit.calls"),
        "ST_RATE_LIMIT_PER_SECOND", EnvUnit::Count, Kind::Count, DefaultValue::Count(DEFAULT_RATE_LIMIT_CALLS),
        "0 (off) or more"),
    setting("period of the per-tenant limit", "rate_limit_period", Some("rate_limit_period"), Some("rateLimit.periodMs"),
        "ST_RATE_LIMIT_PERIOD_MS", EnvUnit::Millis, Kind::Duration, DefaultValue::Duration(DEFAULT_RATE_LIMIT_PERIOD),
        POSITIVE_DURATION),
    setting("margin added to each limiter window", "rate_limit_margin", Some("rate_limit_margin"),
        Some("rateLimit.marginMs"), "ST_RATE_LIMIT_MARGIN_MS", EnvUnit::Millis, Kind::Duration,
        DefaultValue::Duration(DEFAULT_RATE_LIMIT_MARGIN), DURATION_BOUNDS),
    setting("size the margin from measured round trips (the margin above is where it starts)",
        "rate_limit_margin_adaptive", Some("rate_limit_margin_adaptive"), Some("rateLimit.marginAdaptive"),
        "ST_RATE_LIMIT_MARGIN_ADAPTIVE", EnvUnit::Flag, Kind::Flag, DefaultValue::Absent("on"),
        "on or off (`0` for off)"),
    setting("runs of one report per tenant per period", "report_rate_limit_calls", Some("report_rate_limit_calls"),
        Some("reportRateLimit.calls"), "ST_REPORT_RATE_LIMIT_PER_MINUTE", EnvUnit::Count, Kind::Count,
        DefaultValue::Count(DEFAULT_REPORT_RATE_LIMIT_CALLS), "0 (off) or more"),
    setting("period of the per-report limit", "report_rate_limit_period", Some("report_rate_limit_period"),
        Some("reportRateLimit.periodMs"), "ST_REPORT_RATE_LIMIT_PERIOD_SECS", EnvUnit::Seconds, Kind::Duration,
        DefaultValue::Duration(DEFAULT_REPORT_RATE_LIMIT_PERIOD), POSITIVE_DURATION),
    setting("attempts per call", "max_attempts", Some("max_attempts"), Some("maxAttempts"), "ST_MAX_ATTEMPTS",
        EnvUnit::Count, Kind::Count, DefaultValue::Count(DEFAULT_MAX_ATTEMPTS), "1 or more"),
    setting("backoff base (first resend waits up to it)", "backoff_base", Some("backoff_base"), Some("backoff.baseMs"),
        "ST_BACKOFF_BASE_MS", EnvUnit::Millis, Kind::Duration, DefaultValue::Duration(DEFAULT_BACKOFF_BASE),
        DURATION_BOUNDS),
    setting("backoff cap", "backoff_max", Some("backoff_max"), Some("backoff.maxMs"), "ST_BACKOFF_MAX_MS",
        EnvUnit::Millis, Kind::Duration, DefaultValue::Duration(DEFAULT_BACKOFF_MAX), DURATION_BOUNDS),
    setting("total deadline of a call", "timeout", Some("timeout"), Some("timeoutMs"), "ST_TIMEOUT_SECS",
        EnvUnit::Seconds, Kind::Duration, DefaultValue::Duration(DEFAULT_TIMEOUT), POSITIVE_DURATION),
    setting("connect timeout", "connect_timeout", Some("connect_timeout"), Some("connectTimeoutMs"),
        "ST_CONNECT_TIMEOUT_SECS", EnvUnit::Seconds, Kind::Duration, DefaultValue::Duration(DEFAULT_CONNECT_TIMEOUT),
        POSITIVE_DURATION),
    setting("timeout of one attempt", "attempt_timeout", Some("attempt_timeout"), Some("attemptTimeoutMs"),
        "ST_ATTEMPT_TIMEOUT_SECS", EnvUnit::Seconds, Kind::Duration, DefaultValue::Duration(DEFAULT_ATTEMPT_TIMEOUT),
        POSITIVE_DURATION),
    setting("longest `Retry-After` waited for", "max_retry_after", Some("max_retry_after"), Some("maxRetryAfterMs"),
        "ST_MAX_RETRY_AFTER_SECS", EnvUnit::Seconds, Kind::Duration, DefaultValue::Duration(DEFAULT_MAX_RETRY_AFTER),
        DURATION_BOUNDS),
    setting("extra root certificates (PEM)", "add_root_certificate_pem", Some("ca_certificates"),
        Some("caCertificates"), "ST_CA_BUNDLE", EnvUnit::Path, Kind::Certificates,
        DefaultValue::Absent("the system's only"), "PEM certificates"),
    setting("share tokens and limits through Redis", "redis_url", Some("redis_url"), Some("redisUrl"), "ST_REDIS_URL",
        EnvUnit::Text, Kind::Text, DefaultValue::Absent("off: in process"), "`redis://[[user]:password@]host[:port][/db]`"),
    setting("CA certificates for `rediss://` (PEM)", "redis_tls_ca_pem", None, None, "ST_REDIS_TLS_CA",
        EnvUnit::Path, Kind::Certificates, DefaultValue::Absent("the system's roots"), "PEM certificates"),
    setting("Redis key prefix", "redis_key_prefix", Some("redis_key_prefix"), Some("redisKeyPrefix"),
        "ST_REDIS_KEY_PREFIX", EnvUnit::Text, Kind::Text, DefaultValue::Text(DEFAULT_REDIS_KEY_PREFIX),
        "not empty, no spaces, `{` or `}`"),
    setting("second key for the tokens cached in Redis", "redis_token_key", Some("redis_token_key"),
        Some("redisTokenKey"), "ST_REDIS_TOKEN_KEY", EnvUnit::Text, Kind::Text,
        DefaultValue::Absent("none: tokens encrypted under a key derived from the client secret"),
        "32 bytes, as 64 hex digits or base64"),
    setting("on Redis failure, an in-process limit at this share", "redis_fallback_share",
        Some("redis_fallback_share"), Some("redisFallbackShare"), "ST_REDIS_FALLBACK_SHARE", EnvUnit::Number,
        Kind::Share, DefaultValue::Absent("off: wait for Redis, then fail"), "more than 0, at most 1"),
    setting("how long calls wait for Redis", "redis_wait", None, None, "ST_REDIS_WAIT_SECS", EnvUnit::Seconds,
        Kind::Duration, DefaultValue::Duration(DEFAULT_REDIS_WAIT), DURATION_BOUNDS),
    setting("this host's time in the Redis limiter, not Redis `TIME`", "redis_client_time", None, None,
        "ST_REDIS_CLIENT_TIME", EnvUnit::Flag, Kind::Flag, DefaultValue::Absent("off"), "on or off"),
];

/// The setting whose environment variable is `env`.
pub fn by_env(env: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.env == env)
}

fn duration_text(d: Duration) -> String {
    if d.subsec_millis() == 0 && d >= Duration::from_secs(1) {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

impl DefaultValue {
    /// The default as the README says it.
    pub fn describe(&self) -> String {
        match *self {
            DefaultValue::Required => "required".to_owned(),
            DefaultValue::Count(n) => n.to_string(),
            DefaultValue::Duration(d) => duration_text(d),
            DefaultValue::Text(t) => format!("`{t}`"),
            DefaultValue::Absent(what) => what.to_owned(),
        }
    }
}

impl EnvUnit {
    fn describe(self) -> &'static str {
        match self {
            EnvUnit::Text | EnvUnit::Count | EnvUnit::Number => "",
            EnvUnit::Millis => " (ms)",
            EnvUnit::Seconds => " (s)",
            EnvUnit::Flag => " (`1` for on)",
            EnvUnit::Path => " (a file)",
        }
    }
}

/// The README's settings table, from [`SETTINGS`].
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| setting | Rust builder | Python (seconds) | Node (milliseconds) | environment variable | default | values |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let code = |name: Option<&str>| name.map_or_else(|| "—".to_owned(), |n| format!("`{n}`"));
    for s in SETTINGS {
        out.push_str(&format!(
            "| {} | `{}` | {} | {} | `{}`{} | {} | {} |\n",
            s.about,
            s.rust,
            code(s.python),
            code(s.node),
            s.env,
            s.env_unit.describe(),
            s.default.describe(),
            s.bounds
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    const START: &str =
        "<!-- settings table: generated from crates/servicetitan/src/settings.rs, checked by its tests -->\n";
    const END: &str = "<!-- end of settings table -->";

    #[test]
    fn the_readme_table_is_the_schema() {
        let readme = std::fs::read_to_string(README).unwrap();
        let start = readme.find(START).expect("the README marks its settings table") + START.len();
        let end = start + readme[start..].find(END).expect("the README ends its settings table");
        let expected = markdown_table();
        assert!(
            readme[start..end] == expected,
            "the README's settings table differs from the schema; replace it with:\n\n{expected}"
        );
    }

    #[test]
    fn every_variable_the_configuration_reads_is_in_the_schema_once() {
        // Every `ST_…` name in the modules that read settings, tenant credentials aside.
        let sources = [
            include_str!("config/mod.rs"),
            include_str!("config/builder.rs"),
            include_str!("config/credentials.rs"),
            include_str!("config/environment.rs"),
            include_str!("config/resolve.rs"),
            include_str!("config/secret.rs"),
            include_str!("redis/settings.rs"),
        ]
        .concat();
        let mut read: Vec<&str> = sources
            .match_indices("ST_")
            .filter(|(i, _)| !sources[..*i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
            .map(|(i, _)| {
                let rest = &sources[i..];
                &rest[..rest.find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')).unwrap()]
            })
            .filter(|name| name.len() > 3)
            .filter(|name| !matches!(*name, "ST_TENANT_ID" | "ST_CLIENT_ID" | "ST_CLIENT_SECRET"))
            .collect();
        read.sort_unstable();
        read.dedup();
        let mut listed: Vec<&str> = SETTINGS.iter().map(|s| s.env).collect();
        listed.sort_unstable();
        let count = listed.len();
        listed.dedup();
        assert_eq!(listed.len(), count, "an environment variable is listed twice");
        assert_eq!(read, listed);
    }

    #[test]
    fn names_follow_each_languages_habits() {
        for s in SETTINGS {
            if let Some(py) = s.python {
                assert!(py.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{py}");
            }
            if let Some(node) = s.node {
                assert!(node.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'), "{node}");
                assert!(node.chars().next().unwrap().is_ascii_lowercase(), "{node}");
                if s.kind == Kind::Duration {
                    assert!(node.ends_with("Ms"), "{node}: Node durations are milliseconds");
                }
            }
            assert!(s.env.starts_with("ST_"), "{}", s.env);
            if let DefaultValue::Duration(d) = s.default {
                assert!(d <= MAX_DURATION && !d.is_zero(), "{}", s.env);
            }
            assert_eq!(by_env(s.env), Some(s));
        }
    }
}
