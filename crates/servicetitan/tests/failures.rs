//! Failures outside HTTP statuses and their classification: a name that does not resolve fails
//! at once, a refused connection is retried within bounds, a 408 from the token service is a
//! timeout like any other; every message says the cause.

mod common;

use std::time::{Duration, Instant};

use common::*;
use servicetitan::{Client, ErrorCode, TenantCredentials};
use servicetitan_sandbox::Fault;

const LIST: &str = "GET crm/v2/tenant/{tenant}/customers";

/// A loopback address where nothing listens: connections to it are refused.
async fn closed_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_does_not_resolve_fails_at_once_with_the_cause() {
    // RFC 6761: names under .invalid never resolve, with or without a network.
    let client = Client::builder()
        .app_key("ak1.x")
        .auth_url("https://auth.sandbox.invalid")
        .api_url("https://api.sandbox.invalid")
        .env_lookup(|_| None)
        .build()
        .unwrap();
    let tenant = client.tenant(TenantCredentials::new(1, "cid.x", "cs1.x"));
    let started = Instant::now();
    let e = tenant.get("crm/customers").send_json().await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.code(), ErrorCode::Connection, "{e}");
    let text = e.to_string();
    assert!(text.contains("name not resolved") && text.contains("auth.sandbox.invalid"), "{text}");
    assert!(text.contains("ST_AUTH_URL"), "{text}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(client.stats().token_fetches, 1, "not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_host_that_does_not_resolve_is_tried_once() {
    let sandbox = start(unlimited()).await;
    // The token service is the sandbox's.
    let client = builder(&sandbox).api_url("https://api.sandbox.invalid").build().unwrap();
    let tenant = tenant(&client, &sandbox, 0);
    let started = Instant::now();
    let e = tenant.get("crm/customers").send_json().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    assert_eq!(e.code(), ErrorCode::Connection, "{e}");
    assert!(e.to_string().contains("could not connect: name not resolved"), "{e}");
    assert!(e.to_string().contains("ST_API_URL"), "{e}");
    assert_eq!((client.stats().requests, client.stats().retries), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_retried_within_bounds_even_for_a_post() {
    let sandbox = start(unlimited()).await;
    let client = builder(&sandbox).api_url(closed_port().await).max_attempts(3).build().unwrap();
    let tenant = tenant(&client, &sandbox, 0);
    let e = tenant.get("crm/customers").send_json().await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Connection, "{e}");
    assert!(e.to_string().contains("could not connect: connection refused"), "{e}");
    assert_eq!((client.stats().requests, client.stats().retries), (3, 2));
    // A refused connection never reached the server: even a POST goes again.
    let e = tenant.post("crm/customers").json(&serde_json::json!({})).send_json().await.unwrap_err();
    assert!(e.to_string().contains("connection refused"), "{e}");
    assert_eq!((client.stats().requests, client.stats().retries), (6, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_service_is_retried_and_says_so() {
    let client = Client::builder()
        .app_key("ak1.x")
        .auth_url(closed_port().await)
        .api_url(closed_port().await)
        .max_attempts(2)
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .env_lookup(|_| None)
        .build()
        .unwrap();
    let e = client.tenant(TenantCredentials::new(1, "cid.x", "cs1.x")).get("crm/customers").send_json().await;
    let e = e.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Connection, "{e}");
    assert!(e.to_string().contains("could not reach the token service") && e.to_string().contains("refused"), "{e}");
    assert_eq!(client.stats().token_fetches, 2);
}

fn token_fault(status: u16, count: u32) -> Fault {
    Fault {
        route: "connect/token".into(),
        method: Some("POST".into()),
        status: Some(status),
        count,
        ..Fault::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_408_from_the_token_service_is_a_timeout_and_resent() {
    let sandbox = start(unlimited()).await;
    let client = builder(&sandbox).max_attempts(3).build().unwrap();
    sandbox.add_fault(token_fault(408, 1));
    tenant(&client, &sandbox, 0).get("crm/customers").send_json().await.expect("resent after the 408");
    assert_eq!(client.stats().token_fetches, 2);

    // Every token request times out: a timeout after the attempts, not refused credentials.
    sandbox.add_fault(token_fault(408, 0));
    let e = tenant(&client, &sandbox, 1).get("crm/customers").send_json().await.unwrap_err();
    assert_eq!((e.code(), e.status()), (ErrorCode::Timeout, Some(408)), "{e}");
    assert!(e.to_string().contains("timed out") && !e.to_string().contains("refused"), "{e}");
    assert_eq!(client.stats().token_fetches, 5);
    assert_eq!(route_count(&sandbox, LIST), 1);
}
