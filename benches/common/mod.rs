//! What the benchmarks that drive the sandbox with plain reqwest share: a sandbox with its limits
//! off, settings from the environment, and the token a hand-written client fetches once.

use servicetitan_sandbox::{BackgroundSandbox, LimitConfig, SandboxConfig, TenantConfig};

/// A whole-number setting from the environment, else `default`.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A sandbox on its own thread with both rate limits off, so that it never holds a client back.
pub fn unlimited_sandbox() -> BackgroundSandbox {
    let config = SandboxConfig {
        rate_limit: LimitConfig::disabled(),
        report_limit: LimitConfig::disabled(),
        ..Default::default()
    };
    BackgroundSandbox::start(config).expect("sandbox starts")
}

/// The access token of `tenant`, fetched as a hand-written client would: once, by form POST.
pub async fn fetch_token(http: &reqwest::Client, base: &str, tenant: &TenantConfig) -> String {
    let token: serde_json::Value = http
        .post(format!("{base}/connect/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", tenant.client_id.as_str()),
            ("client_secret", tenant.client_secret.as_str()),
        ])
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("token answer");
    token["access_token"].as_str().expect("an access token").to_string()
}
