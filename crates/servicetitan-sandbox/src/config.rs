//! Everything a sandbox can be told at start-up: credentials, limits, data sizes, latency.

use serde::{Deserialize, Serialize};

/// How a rate limit counts its window. The real service does not say which it uses, so the
/// sandbox offers both and clients are tested against each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowMode {
    /// At most `calls` in any interval of `window_ms`, wherever it starts.
    #[default]
    Sliding,
    /// At most `calls` in each of the consecutive windows `[k·window + phase, (k+1)·window + phase)`.
    Fixed,
}

/// One rate limit: at most `calls` per `window_ms`, counted as `mode` says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitConfig {
    /// `false` switches the limit off (for benchmarks).
    pub enabled: bool,
    pub calls: u32,
    pub window_ms: u64,
    pub mode: WindowMode,
    /// Where fixed windows start, relative to the sandbox's start (fixed mode only).
    pub phase_ms: u64,
}

impl LimitConfig {
    /// The real service's limit for ordinary calls: 60 per second per app per tenant.
    pub fn per_tenant() -> Self {
        LimitConfig { enabled: true, calls: 60, window_ms: 1000, mode: WindowMode::Sliding, phase_ms: 0 }
    }

    /// The real service's limit for report data: 5 runs of the same report per minute per tenant.
    pub fn per_report() -> Self {
        LimitConfig { enabled: true, calls: 5, window_ms: 60_000, mode: WindowMode::Sliding, phase_ms: 0 }
    }

    /// The same limit, switched off.
    pub fn disabled() -> Self {
        LimitConfig { enabled: false, ..Self::per_tenant() }
    }
}

impl Default for LimitConfig {
    fn default() -> Self {
        Self::per_tenant()
    }
}

/// How the delay before a call is counted is drawn (see [`JitterConfig`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JitterDistribution {
    /// No delay.
    #[default]
    None,
    /// Evenly between 0 and `max_ms`.
    Uniform,
    /// Mostly near 0 with a long tail up to `max_ms`: a Pareto distribution (shape 1.16, the
    /// "80/20" shape) whose median is about `max_ms / 50`, with about 1.3% of calls at `max_ms`.
    LongTailed,
}

/// A delay, drawn per call, between a call's arrival and the moment the sandbox counts it
/// toward its rate-limit window: the variation in network delay that a client's limiter has
/// to absorb. Changeable while the sandbox runs (`PUT /__sandbox/jitter`,
/// `Sandbox::set_jitter`), so that a benchmark can make the network worse mid-run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JitterConfig {
    pub distribution: JitterDistribution,
    /// The longest delay, in milliseconds.
    pub max_ms: u64,
}

impl JitterConfig {
    /// Uniform jitter of 0 to `max_ms` milliseconds.
    pub fn uniform(max_ms: u64) -> Self {
        JitterConfig { distribution: JitterDistribution::Uniform, max_ms }
    }

    /// Long-tailed jitter up to `max_ms` milliseconds.
    pub fn long_tailed(max_ms: u64) -> Self {
        JitterConfig { distribution: JitterDistribution::LongTailed, max_ms }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.max_ms > 60_000 {
            return Err("inbound_jitter.max_ms: at most 60000 (one minute)".into());
        }
        Ok(())
    }
}

/// A tenant and the credentials (one pair per tenant and environment) that may act for it.
/// Several tenants may share one pair, as an Enterprise Hub network does.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub id: i64,
    pub client_id: String,
    pub client_secret: String,
    /// Module path segments the tenant granted the app (`"crm"`, `"jpm"`, …); `"*"` grants all.
    #[serde(default = "all_scopes")]
    pub scopes: Vec<String>,
}

fn all_scopes() -> Vec<String> {
    vec!["*".to_string()]
}

impl TenantConfig {
    pub fn new(id: i64, client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        TenantConfig { id, client_id: client_id.into(), client_secret: client_secret.into(), scopes: all_scopes() }
    }

    /// The demo tenant `id` with the sandbox's documented demo credentials.
    pub fn demo(id: i64) -> Self {
        Self::new(id, format!("cid.sandbox.{id}"), format!("cs1.sandbox-secret-{id}"))
    }

    pub fn grants(&self, module: &str) -> bool {
        self.scopes.iter().any(|s| s == "*" || s == module)
    }
}

// The secret is a sandbox credential, but the habit of never printing one is kept everywhere.
impl std::fmt::Debug for TenantConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantConfig")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// The whole configuration of a sandbox. Every field has a default; a JSON or TOML-like config
/// file, the command line or a binding may override any of them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// Address to listen on; loopback by default.
    pub host: String,
    /// Port to listen on; 0 picks a free one.
    pub port: u16,
    /// App keys accepted in `ST-App-Key`.
    pub app_keys: Vec<String>,
    pub tenants: Vec<TenantConfig>,
    /// Lifetime of issued access tokens, in seconds (the real service: 900).
    pub token_lifetime_secs: f64,
    /// Calls per (app key, tenant), for every module except reporting.
    pub rate_limit: LimitConfig,
    /// Report data runs per (tenant, report).
    pub report_limit: LimitConfig,
    /// Records generated per resource (customers, locations, jobs, …). Generated on demand, so
    /// millions cost no memory.
    pub records: u64,
    /// Rows of each report's data.
    pub report_rows: u64,
    /// Seed of the generated data: the same seed gives the same records.
    pub seed: u64,
    /// Records per page of an export feed.
    pub export_page_size: usize,
    /// Latency added to every API call, in milliseconds.
    pub latency_ms: u64,
    /// Multiplies the webhook retry delays: 1.0 is the real schedule, 0.01 makes the 300 s
    /// wait 3 s (for tests).
    pub webhook_time_scale: f64,
    /// Seconds between a failed webhook delivery and its retries (the real service: 10, 30,
    /// 60 and 300).
    pub webhook_retry_delays_secs: Vec<f64>,
    /// How long one delivery attempt may take before it counts as failed, in milliseconds.
    pub webhook_timeout_ms: u64,
    /// The header that carries a delivery's HMAC-SHA256 signature (not published by
    /// ServiceTitan; provisional).
    pub webhook_signature_header: String,
    /// `hex` or `base64`.
    pub webhook_signature_encoding: String,
    /// How long an asynchronous report query (`POST …/data/query`) takes, in milliseconds: 0
    /// answers with the data at once (200), more answers 202 with a token to poll.
    pub report_query_ms: u64,
    /// A delay drawn per API call before the rate limiter counts it (none by default).
    pub inbound_jitter: JitterConfig,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        let mut limited = TenantConfig::demo(1004);
        limited.scopes = vec!["crm".to_string()];
        SandboxConfig {
            host: "127.0.0.1".to_string(),
            port: 0,
            app_keys: vec![DEMO_APP_KEY.to_string()],
            tenants: vec![TenantConfig::demo(1001), TenantConfig::demo(1002), TenantConfig::demo(1003), limited],
            token_lifetime_secs: 900.0,
            rate_limit: LimitConfig::per_tenant(),
            report_limit: LimitConfig::per_report(),
            records: 1000,
            report_rows: 2500,
            seed: 42,
            export_page_size: 5000,
            latency_ms: 0,
            webhook_time_scale: 1.0,
            webhook_retry_delays_secs: vec![10.0, 30.0, 60.0, 300.0],
            webhook_timeout_ms: 10_000,
            webhook_signature_header: "X-ServiceTitan-Signature".to_string(),
            webhook_signature_encoding: "hex".to_string(),
            report_query_ms: 0,
            inbound_jitter: JitterConfig::default(),
        }
    }
}

/// The app key every default sandbox accepts.
pub const DEMO_APP_KEY: &str = "ak1.sandbox-app-key";

impl SandboxConfig {
    /// Checks the settings that would make the sandbox misbehave rather than fail clearly.
    pub fn validate(&self) -> Result<(), String> {
        if self.app_keys.is_empty() || self.app_keys.iter().any(|k| k.is_empty()) {
            return Err("app_keys: expected at least one non-empty app key".into());
        }
        if self.tenants.is_empty() {
            return Err("tenants: expected at least one tenant".into());
        }
        for t in &self.tenants {
            if t.id <= 0 {
                return Err(format!("tenants: tenant id {} must be a positive integer", t.id));
            }
            if t.client_id.is_empty() || t.client_secret.is_empty() {
                return Err(format!("tenants: tenant {} needs a client_id and a client_secret", t.id));
            }
        }
        for (i, a) in self.tenants.iter().enumerate() {
            for b in &self.tenants[i + 1..] {
                if a.id == b.id {
                    return Err(format!("tenants: tenant id {} appears twice", a.id));
                }
                if a.client_id == b.client_id && a.client_secret != b.client_secret {
                    return Err(format!("tenants: client_id {} is given two different secrets", a.client_id));
                }
            }
        }
        if !(self.token_lifetime_secs > 0.0 && self.token_lifetime_secs.is_finite()) {
            return Err("token_lifetime_secs: expected a positive number of seconds".into());
        }
        for (name, l) in [("rate_limit", &self.rate_limit), ("report_limit", &self.report_limit)] {
            if l.enabled && (l.calls == 0 || l.window_ms == 0) {
                return Err(format!("{name}: calls and window_ms must be positive when enabled"));
            }
        }
        if self.export_page_size == 0 {
            return Err("export_page_size: expected a positive number".into());
        }
        if !(self.webhook_time_scale.is_finite() && self.webhook_time_scale >= 0.0) {
            return Err("webhook_time_scale: expected a non-negative number".into());
        }
        if self.webhook_retry_delays_secs.iter().any(|s| !(s.is_finite() && *s >= 0.0)) {
            return Err("webhook_retry_delays_secs: expected non-negative numbers of seconds".into());
        }
        if self.webhook_timeout_ms == 0 {
            return Err("webhook_timeout_ms: expected a positive number".into());
        }
        if http::HeaderName::from_bytes(self.webhook_signature_header.as_bytes()).is_err() {
            return Err("webhook_signature_header: expected an HTTP header name".into());
        }
        if !["hex", "base64"].contains(&self.webhook_signature_encoding.to_ascii_lowercase().as_str()) {
            return Err("webhook_signature_encoding: expected \"hex\" or \"base64\"".into());
        }
        self.inbound_jitter.validate()?;
        if self.records > 1_000_000_000 {
            return Err("records: at most 1,000,000,000 per resource".into());
        }
        Ok(())
    }
}
