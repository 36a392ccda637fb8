//! Helpers shared by the integration tests: a sandbox per test and a client pointed at it.
#![allow(dead_code)]

pub mod examples;

use std::time::Duration;

use serde_json::Value;
use servicetitan::{Client, ClientBuilder, Tenant, TenantCredentials};
use servicetitan_sandbox::{LimitConfig, Sandbox, SandboxConfig};

pub async fn start(config: SandboxConfig) -> Sandbox {
    Sandbox::start(config).await.expect("sandbox starts")
}

/// A sandbox without rate limits, for tests about something else.
pub fn unlimited() -> SandboxConfig {
    SandboxConfig {
        rate_limit: LimitConfig::disabled(),
        report_limit: LimitConfig::disabled(),
        ..SandboxConfig::default()
    }
}

/// A client builder for the sandbox, with fast backoff so retry tests stay quick.
pub fn builder(sandbox: &Sandbox) -> ClientBuilder {
    Client::builder()
        .app_key(sandbox.app_key())
        .auth_url(sandbox.base_url())
        .api_url(sandbox.base_url())
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        // Nothing from the machine's environment leaks into the tests.
        .env_lookup(|_| None)
}

pub fn credentials(sandbox: &Sandbox, index: usize) -> TenantCredentials {
    let t = &sandbox.tenants()[index];
    TenantCredentials::new(t.id, t.client_id.clone(), t.client_secret.clone())
}

pub fn tenant(client: &Client, sandbox: &Sandbox, index: usize) -> Tenant {
    client.tenant(credentials(sandbox, index))
}

/// A number from the sandbox's stats, by JSON pointer (`/token_requests_total`); 0 if absent.
pub fn stat(sandbox: &Sandbox, pointer: &str) -> u64 {
    sandbox.stats().pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

/// How many requests the sandbox saw on a route (`"GET crm/v2/tenant/{tenant}/customers"`).
pub fn route_count(sandbox: &Sandbox, route: &str) -> u64 {
    sandbox.stats()["routes"].get(route).and_then(Value::as_u64).unwrap_or(0)
}

/// Every request the sandbox saw, token requests included.
pub fn total_requests(sandbox: &Sandbox) -> u64 {
    let stats = sandbox.stats();
    let routes: u64 = stats["routes"].as_object().map(|m| m.values().filter_map(Value::as_u64).sum()).unwrap_or(0);
    routes.max(stats["token_requests_total"].as_u64().unwrap_or(0))
}

/// Serialises the tests of one binary that measure rates, so they never share the CPU.
pub static TIMING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
