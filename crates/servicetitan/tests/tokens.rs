//! Tokens against the sandbox: single flight, refresh ahead of expiry, recovery from revocation,
//! refused credentials and shared credentials.

mod common;

use std::time::{Duration, Instant};

use common::*;
use servicetitan::{ErrorCode, TenantCredentials};
use servicetitan_sandbox::{SandboxConfig, TenantConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_on_a_cold_cache_make_exactly_one_token_request() {
    let sandbox = start(unlimited()).await;
    let client = builder(&sandbox).disable_rate_limits().build().unwrap();
    let tenant = tenant(&client, &sandbox, 0);
    let calls: Vec<_> = (0..1000)
        .map(|_| {
            let tenant = tenant.clone();
            tokio::spawn(async move { tenant.get("crm/customers").query(&[("pageSize", 1)]).send_json().await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().expect("call succeeds");
    }
    assert_eq!(stat(&sandbox, "/token_requests_total"), 1);
    assert_eq!(client.stats().token_fetches, 1);
    assert_eq!(client.stats().requests, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_second_tokens_are_renewed_before_they_expire() {
    // The latency comes before the server checks the token, as a slow network would: a token
    // sent just before it expires arrives expired unless it was renewed ahead of time.
    let sandbox = start(SandboxConfig { token_lifetime_secs: 3.0, latency_ms: 150, ..unlimited() }).await;
    let client = builder(&sandbox).build().unwrap();
    let tenant = tenant(&client, &sandbox, 0);
    let started = Instant::now();
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let tenant = tenant.clone();
            tokio::spawn(async move {
                let mut calls = 0;
                while started.elapsed() < Duration::from_secs(8) {
                    tenant.get("crm/customers").query(&[("pageSize", 1)]).send_json().await.expect("call succeeds");
                    calls += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                calls
            })
        })
        .collect();
    let mut calls = 0;
    for w in workers {
        calls += w.await.unwrap();
    }
    assert!(calls > 100, "{calls} calls");
    // Several lifetimes passed: tokens were renewed, and never once did the server see a dead one.
    assert_eq!(stat(&sandbox, "/unauthorized"), 0);
    let fetches = stat(&sandbox, "/token_requests_total");
    assert!(fetches >= 3, "{fetches} token requests in 8 s of 3 s tokens");
    assert_eq!(client.stats().retries, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_tokens_recover_with_one_fetch() {
    let sandbox = start(unlimited()).await;
    let client = builder(&sandbox).build().unwrap();
    let tenant = tenant(&client, &sandbox, 0);
    tenant.get("crm/customers").send_json().await.unwrap();
    sandbox.revoke_tokens();
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let tenant = tenant.clone();
            tokio::spawn(async move { tenant.get("crm/customers").query(&[("pageSize", 1)]).send_json().await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().expect("call recovers");
    }
    assert_eq!(stat(&sandbox, "/token_requests_total"), 2, "one fetch before, one after the revocation");
    assert!(stat(&sandbox, "/unauthorized") >= 1);
    // Later calls use the new token directly.
    let before = stat(&sandbox, "/unauthorized");
    tenant.get("crm/customers").send_json().await.unwrap();
    assert_eq!(stat(&sandbox, "/unauthorized"), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_name_the_environment_and_are_not_cached() {
    let sandbox = start(unlimited()).await;
    let client = builder(&sandbox).build().unwrap();
    let tenant = client.tenant(TenantCredentials::new(1001, "cid.sandbox.1001", "cs1.wrong-secret"));
    for attempt in 1..=2 {
        let e = tenant.get("crm/customers").send_json().await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::Authentication);
        let text = e.to_string();
        assert!(text.contains("custom"), "{text}");
        assert!(text.contains("environment specific"), "{text}");
        assert!(text.contains("invalid_client"), "{text}");
        assert!(!text.contains("wrong-secret") && !format!("{e:?}").contains("wrong-secret"));
        // A failed fetch is not cached: each call asks again.
        assert_eq!(stat(&sandbox, "/token_requests_total"), attempt);
    }
    assert_eq!(stat(&sandbox, "/tenants/1001/admitted"), 0, "no API call without a token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_sharing_one_credential_pair_share_one_token() {
    let shared = |id| TenantConfig::new(id, "cid.hub", "cs1.hub-secret");
    let sandbox = start(SandboxConfig { tenants: vec![shared(2001), shared(2002), shared(2003)], ..unlimited() }).await;
    let client = builder(&sandbox).build().unwrap();
    for id in [2001, 2002, 2003] {
        let tenant = client.tenant(TenantCredentials::new(id, "cid.hub", "cs1.hub-secret"));
        tenant.get("crm/customers").send_json().await.unwrap();
    }
    assert_eq!(stat(&sandbox, "/token_requests_total"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_never_rides_on_a_token_a_right_one_fetched() {
    let sandbox = start(unlimited()).await;
    let client = builder(&sandbox).build().unwrap();
    tenant(&client, &sandbox, 0).get("crm/customers").send_json().await.unwrap();
    let impostor = client.tenant(TenantCredentials::new(1001, "cid.sandbox.1001", "cs1.guessed"));
    let e = impostor.get("crm/customers").send_json().await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Authentication);
}
