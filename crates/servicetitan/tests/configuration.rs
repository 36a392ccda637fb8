//! Configuration: every setting from an argument, else an environment variable, else a default;
//! bad input refused with a `configuration` error naming it, before any request.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use servicetitan::{Client, Environment, ErrorCode, TenantCredentials};

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Send + Sync + 'static {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |name| map.get(name).cloned()
}

fn refused(result: servicetitan::Result<Client>, argument: &str) {
    let e = result.expect_err("refused");
    assert_eq!(e.code(), ErrorCode::Configuration, "{e}");
    assert_eq!(e.argument(), Some(argument), "{e}");
    assert!(e.to_string().contains(argument), "{e}");
}

#[test]
fn bad_client_settings_are_refused_naming_the_argument() {
    let none = || Client::builder().env_lookup(|_| None);
    refused(none().build(), "app_key");
    refused(none().app_key("  ").build(), "app_key");
    refused(none().app_key("ak1.x").environment_name("staging").build(), "environment");
    refused(
        Client::builder().env_lookup(env(&[("ST_APP_KEY", "ak1.x"), ("ST_ENVIRONMENT", "staging")])).build(),
        "ST_ENVIRONMENT",
    );
    refused(
        none().app_key("ak1.x").auth_url("http://auth.example.com").api_url("https://api.example.com").build(),
        "auth_url",
    );
    refused(none().app_key("ak1.x").auth_url("https://auth.example.com").build(), "api_url");
    refused(none().app_key("ak1.x").auth_url("ftp://x").api_url("https://api.example.com").build(), "auth_url");
    refused(none().app_key("ak1.x").max_attempts(0).build(), "max_attempts");
    refused(
        Client::builder().env_lookup(env(&[("ST_APP_KEY", "ak1.x"), ("ST_MAX_ATTEMPTS", "many")])).build(),
        "ST_MAX_ATTEMPTS",
    );
    refused(none().app_key("ak1.x").add_root_certificate_pem("not a certificate").build(), "root_certificate");
    // Durations that would overflow deadline arithmetic are refused, not a panic later.
    refused(none().app_key("ak1.x").timeout(Duration::from_secs(u64::MAX / 2)).build(), "timeout");
    refused(none().app_key("ak1.x").timeout(Duration::ZERO).build(), "timeout");
    refused(none().app_key("ak1.x").rate_limit(60, Duration::from_secs(u64::MAX)).build(), "rate_limit");
    refused(none().app_key("ak1.x").max_retry_after(Duration::MAX).build(), "max_retry_after");
    refused(
        Client::builder().env_lookup(env(&[("ST_APP_KEY", "ak1.x"), ("ST_TIMEOUT_SECS", "1e30")])).build(),
        "ST_TIMEOUT_SECS",
    );
    refused(
        Client::builder()
            .env_lookup(env(&[("ST_APP_KEY", "ak1.x"), ("ST_RATE_LIMIT_MARGIN_MS", "18446744073709551615")]))
            .build(),
        "ST_RATE_LIMIT_MARGIN_MS",
    );
}

#[test]
fn settings_come_from_arguments_then_environment_variables_then_defaults() {
    let client = Client::builder().app_key("ak1.x").env_lookup(|_| None).build().unwrap();
    let c = client.config();
    assert_eq!(c.environment(), &Environment::Production);
    assert_eq!(c.token_url(), "https://auth.servicetitan.io/connect/token");
    assert_eq!(c.api_url(), "https://api.servicetitan.io");
    let limit = c.rate_limit().unwrap();
    assert_eq!((limit.calls, limit.period, limit.margin), (60, Duration::from_secs(1), Duration::from_millis(100)));
    let report = c.report_rate_limit().unwrap();
    assert_eq!((report.calls, report.period), (5, Duration::from_secs(60)));
    assert_eq!(c.retry().max_attempts, 10);
    assert_eq!(c.timeouts().total, Duration::from_secs(300));
    assert!(c.user_agent().starts_with("servicetitan-rust/"));

    let vars = env(&[
        ("ST_APP_KEY", "ak1.from-env"),
        ("ST_ENVIRONMENT", "integration"),
        ("ST_RATE_LIMIT_PER_SECOND", "30"),
        ("ST_RATE_LIMIT_MARGIN_MS", "50"),
        ("ST_REPORT_RATE_LIMIT_PER_MINUTE", "1"),
        ("ST_MAX_ATTEMPTS", "3"),
        ("ST_TIMEOUT_SECS", "12.5"),
        ("ST_CONNECT_TIMEOUT_SECS", "2"),
        ("ST_ATTEMPT_TIMEOUT_SECS", "4"),
    ]);
    let client = Client::builder().env_lookup(vars).rate_limit(20, Duration::from_secs(1)).build().unwrap();
    let c = client.config();
    assert_eq!(c.environment(), &Environment::Integration);
    assert_eq!(c.token_url(), "https://auth-integration.servicetitan.io/connect/token");
    assert_eq!(c.rate_limit().unwrap().calls, 20, "the argument wins");
    assert_eq!(c.rate_limit().unwrap().margin, Duration::from_millis(50));
    assert_eq!(c.report_rate_limit().unwrap().calls, 1);
    assert_eq!(c.retry().max_attempts, 3);
    assert_eq!(c.timeouts().total, Duration::from_millis(12_500));
    assert_eq!(c.timeouts().connect, Duration::from_secs(2));
    assert_eq!(c.timeouts().attempt, Duration::from_secs(4));

    let off = Client::builder()
        .env_lookup(env(&[("ST_APP_KEY", "ak1.x"), ("ST_RATE_LIMIT_PER_SECOND", "0")]))
        .build()
        .unwrap();
    assert!(off.config().rate_limit().is_none());
    assert!(!format!("{off:?}").contains("ak1.x"), "the app key is redacted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_and_tenant_from_environment_variables_reach_the_sandbox() {
    let sandbox = start(unlimited()).await;
    let vars = env(&[
        ("ST_APP_KEY", sandbox.app_key()),
        ("ST_AUTH_URL", sandbox.base_url()),
        ("ST_API_URL", sandbox.base_url()),
        ("ST_TENANT_ID", "1002"),
        ("ST_CLIENT_ID", "cid.sandbox.1002"),
        ("ST_CLIENT_SECRET", "cs1.sandbox-secret-1002"),
    ]);
    let client = Client::builder().env_lookup(vars).build().unwrap();
    assert_eq!(client.config().environment().name(), "custom");
    let tenant = client.tenant_from_env().unwrap();
    assert_eq!(tenant.id(), 1002);
    tenant.get("crm/customers").send_json().await.unwrap();

    let e =
        Client::builder().env_lookup(env(&[("ST_APP_KEY", "ak1.x")])).build().unwrap().tenant_from_env().unwrap_err();
    assert_eq!(e.argument(), Some("tenant_id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_before_any_request() {
    let sandbox = start(unlimited()).await;
    let client = builder(&sandbox).build().unwrap();
    for (creds, argument) in [
        (TenantCredentials::new(0, "cid.sandbox.1001", "cs1.sandbox-secret-1001"), "tenant_id"),
        (TenantCredentials::new(-5, "cid.sandbox.1001", "cs1.sandbox-secret-1001"), "tenant_id"),
        (TenantCredentials::new(1001, "", "cs1.sandbox-secret-1001"), "client_id"),
        (TenantCredentials::new(1001, "cid.sandbox.1001", ""), "client_secret"),
    ] {
        assert_eq!(client.try_tenant(creds.clone()).unwrap_err().argument(), Some(argument));
        let tenant = client.tenant(creds);
        let e = tenant.get("crm/customers").send_json().await.unwrap_err();
        assert_eq!((e.code(), e.argument()), (ErrorCode::Configuration, Some(argument)));
        let e = tenant.report("operations", 175).parameter("From", "2026-01-01").records().await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::Configuration);
    }
    let tenant = tenant(&client, &sandbox, 0);
    for path in [
        "crm/../settings/employees",
        "/crm/v2/tenant/1002/customers",
        "crm/v2/tenant/1002/customers",
        "https://evil.example/crm/v2/tenant/1001/customers",
        "//evil.example/crm/customers",
        "crm//customers",
        "crm/customers?active=Any",
        "",
    ] {
        let e = tenant.get(path).send_json().await.unwrap_err();
        assert_eq!((e.code(), e.argument()), (ErrorCode::Configuration, Some("path")), "{path:?}: {e}");
        let e = tenant.export::<serde_json::Value>(path).into_stream().try_next_err().await;
        assert_eq!(e.code(), ErrorCode::Configuration, "{path:?}");
    }
    assert_eq!(total_requests(&sandbox), 0, "a request went out: {}", sandbox.stats());
    assert_eq!(client.stats().requests + client.stats().token_fetches, 0);
}

trait FirstError {
    async fn try_next_err(self) -> servicetitan::Error;
}

impl<S: futures::Stream<Item = servicetitan::Result<serde_json::Value>> + Unpin> FirstError for S {
    async fn try_next_err(mut self) -> servicetitan::Error {
        use futures::StreamExt;
        self.next().await.expect("an item").expect_err("an error")
    }
}
