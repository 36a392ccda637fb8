//! Retries and errors against the sandbox: what is resent, what is not, and the typed errors.

mod common;

use std::time::{Duration, Instant};

use common::*;
use servicetitan::{ErrorCode, Method};
use servicetitan_sandbox::{Fault, SandboxConfig};

const LIST: &str = "GET crm/v2/tenant/{tenant}/customers";
const CREATE: &str = "POST crm/v2/tenant/{tenant}/customers";

fn new_customer() -> serde_json::Value {
    let address = serde_json::json!({"street": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701", "country": "USA"});
    serde_json::json!({"name": "Ada Lovelace", "type": "Residential", "address": address,
                       "locations": [{"name": "Home", "address": address}]})
}

fn fault(method: &str, status: u16, count: u32) -> Fault {
    Fault {
        route: "crm/v2/tenant/*/customers*".into(),
        method: Some(method.into()),
        status: Some(status),
        count,
        ..Fault::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_goes_through_two_503s() {
    let sandbox = start(unlimited()).await;
    let client = builder(&sandbox).build().unwrap();
    let tenant = tenant(&client, &sandbox, 0);
    sandbox.add_fault(fault("GET", 503, 2));
    let page = tenant.get("crm/customers").send_json().await.expect("third attempt succeeds");
    assert!(page["data"].is_array());
    assert_eq!(route_count(&sandbox, LIST), 3);
    assert_eq!(client.stats().retries, 2);
    assert_eq!(client.stats().requests, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_after_a_503_fails_and_the_server_saw_one_post() {
    let sandbox = start(unlimited()).await;
    let client = builder(&sandbox).build().unwrap();
    let tenant = tenant(&client, &sandbox, 0);
    sandbox.add_fault(fault("POST", 503, 1));
    let e = tenant.post("crm/customers").json(&new_customer()).send_json().await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Server);
    assert_eq!(e.status(), Some(503));
    assert_eq!(e.method(), Some("POST"));
    assert!(e.url().unwrap().ends_with("/crm/v2/tenant/1001/customers"));
    assert!(e.trace_id().is_some());
    assert!(e.to_string().contains("safe_to_retry"), "{e}");
    assert_eq!(route_count(&sandbox, CREATE), 1);
    assert_eq!(client.stats().retries, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_marked_safe_to_retry_is_resent_after_a_503() {
    let sandbox = start(unlimited()).await;
    let client = builder(&sandbox).build().unwrap();
    let tenant = tenant(&client, &sandbox, 0);
    sandbox.add_fault(fault("POST", 503, 1));
    let created = tenant.post("crm/customers").json(&new_customer()).safe_to_retry().send_json().await.unwrap();
    assert_eq!(created["name"], "Ada Lovelace");
    assert_eq!(route_count(&sandbox, CREATE), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_dropped_connections_are_resent_for_gets_only() {
    let sandbox = start(unlimited()).await;
    let client = builder(&sandbox).attempt_timeout(Duration::from_millis(400)).build().unwrap();
    let tenant = tenant(&client, &sandbox, 0);
    tenant.get("crm/customers").send_json().await.unwrap();

    sandbox.add_fault(Fault { delay_ms: 2000, ..fault("GET", 500, 1) });
    tenant.get("crm/customers").send_json().await.expect("resent after the attempt timed out");
    sandbox.add_fault(Fault { drop_connection: true, status: None, ..fault("GET", 500, 1) });
    tenant.get("crm/customers").send_json().await.expect("resent after the connection dropped");

    sandbox.add_fault(Fault { delay_ms: 2000, status: None, ..fault("POST", 500, 1) });
    let e = tenant.post("crm/customers").json(&new_customer()).send_json().await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Timeout, "{e}");
    sandbox.add_fault(Fault { drop_connection: true, status: None, ..fault("POST", 500, 1) });
    let e = tenant.post("crm/customers").json(&new_customer()).send_json().await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Connection, "{e}");
    assert_eq!(route_count(&sandbox, CREATE), 2, "each POST was sent once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_and_the_total_deadline_are_bounded() {
    let sandbox = start(unlimited()).await;
    let client = builder(&sandbox).max_attempts(4).build().unwrap();
    let tenant = tenant(&client, &sandbox, 0);
    sandbox.add_fault(fault("GET", 500, 0));
    let e = tenant.get("crm/customers").send_json().await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Server);
    assert_eq!(route_count(&sandbox, LIST), 4);

    let client = builder(&sandbox)
        .max_attempts(1000)
        .backoff(Duration::from_millis(100), Duration::from_millis(100))
        .build()
        .unwrap();
    let started = Instant::now();
    let e = tenant_of(&client, &sandbox)
        .get("crm/customers")
        .timeout(Duration::from_secs(1))
        .send_json()
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "the deadline held: {:?}", started.elapsed());
    assert!(matches!(e.code(), ErrorCode::Server | ErrorCode::Timeout), "{e}");
}

fn tenant_of(client: &servicetitan::Client, sandbox: &servicetitan_sandbox::Sandbox) -> servicetitan::Tenant {
    tenant(client, sandbox, 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_become_typed_errors_with_the_servers_details() {
    let sandbox = start(unlimited()).await;
    let client = builder(&sandbox).build().unwrap();
    let t = tenant(&client, &sandbox, 0);

    let e = t.get("crm/customers/999999999").send_json().await.unwrap_err();
    assert_eq!((e.code(), e.status()), (ErrorCode::NotFound, Some(404)));
    assert!(e.title().unwrap().contains("999999999"), "{e:?}");
    assert!(e.trace_id().is_some());

    let e = t.get("crm/customers").query(&[("pageSize", 0)]).send_json().await.unwrap_err();
    assert_eq!((e.code(), e.status()), (ErrorCode::BadRequest, Some(400)));
    assert!(e.errors().contains_key("pageSize"), "{e:?}");

    let e = t.post("crm/customers").json(&serde_json::json!({"name": 5})).send_json().await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadRequest);
    assert!(!e.errors().is_empty(), "{e:?}");

    let e = t.get("crmx/customers").send_json().await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound);
    assert!(e.to_string().contains("not a known module"), "{e}");

    sandbox.add_fault(fault("GET", 409, 1));
    assert_eq!(t.get("crm/customers").send_json().await.unwrap_err().code(), ErrorCode::Conflict);

    // Tenant 1004 granted only the crm scope.
    let limited = tenant(&client, &sandbox, 3);
    let e = limited.get("jpm/jobs").send_json().await.unwrap_err();
    assert_eq!((e.code(), e.status()), (ErrorCode::PermissionDenied, Some(403)));
    assert!(e.to_string().contains("tenant admin accepts the new app version"), "{e}");

    // A 2xx that is not the JSON promised.
    let e = t.get("crm/customers").send::<Vec<u32>>().await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Decode);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_with_a_fresh_token_is_an_authentication_error_after_one_resend() {
    let sandbox = start(unlimited()).await;
    let client = builder(&sandbox).build().unwrap();
    let t = tenant(&client, &sandbox, 0);
    sandbox.add_fault(fault("GET", 401, 2));
    let e = t.get("crm/customers").send_json().await.unwrap_err();
    assert_eq!((e.code(), e.status()), (ErrorCode::Authentication, Some(401)));
    assert!(e.to_string().contains("environment specific"), "{e}");
    assert_eq!(route_count(&sandbox, LIST), 2, "resent once with a new token");
    assert_eq!(stat(&sandbox, "/token_requests_total"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_app_key_fails_at_once_naming_the_app_key_without_a_new_token() {
    let sandbox = start(unlimited()).await;
    let client = builder(&sandbox).app_key("ak1.not-a-known-app").build().unwrap();
    let t = tenant(&client, &sandbox, 0);
    for call in 1..=3 {
        let e = t.get("crm/customers").send_json().await.unwrap_err();
        assert_eq!((e.code(), e.status()), (ErrorCode::Authentication, Some(401)));
        let text = e.to_string();
        assert!(text.contains("refused the app key") && text.contains("ST_APP_KEY"), "{text}");
        assert!(!text.contains("environment specific") && !text.contains("not-a-known-app"), "{text}");
        assert_eq!(route_count(&sandbox, LIST), call, "one attempt per call");
    }
    // The token was good: fetched once, kept, never refetched because of the app key.
    assert_eq!(stat(&sandbox, "/token_requests_total"), 1);
    assert_eq!(client.stats().retries, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_value_level_api_sends_any_method_and_returns_bytes() {
    let sandbox = start(SandboxConfig::default()).await;
    let client = builder(&sandbox).language("python").build().unwrap();
    let t = tenant(&client, &sandbox, 0);
    let raw = t
        .request(Method::GET, "crm/customers")
        .query_pairs(vec![("page".to_string(), "2".to_string()), ("pageSize".to_string(), "3".to_string())])
        .send_bytes()
        .await
        .unwrap();
    let page: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(page["page"], 2);
    assert_eq!(page["data"].as_array().unwrap().len(), 3);
    let id = page["data"][0]["id"].as_i64().unwrap();
    let patched = t
        .request(Method::PATCH, format!("crm/customers/{id}"))
        .json_value(Some(serde_json::json!({"name": "Renamed"})))
        .send_json()
        .await
        .unwrap();
    assert_eq!(patched["name"], "Renamed");
    assert_eq!(client.config().user_agent(), concat!("servicetitan-python/", env!("CARGO_PKG_VERSION")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_call_is_cancelled() {
    let sandbox = start(unlimited()).await;
    let client = builder(&sandbox).build().unwrap();
    let t = tenant(&client, &sandbox, 0);
    t.get("crm/customers").send_json().await.unwrap();
    sandbox.add_fault(Fault { delay_ms: 5000, status: None, ..fault("GET", 500, 1) });
    let call = t.get("crm/customers").send_json();
    assert!(tokio::time::timeout(Duration::from_millis(200), call).await.is_err());
    // Nothing of the dropped call goes on: no resend reaches the server.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(route_count(&sandbox, LIST), 2);
    assert_eq!(client.stats().retries, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_retry_after_fails_that_call_fast_and_stalls_no_other() {
    let sandbox = start(unlimited()).await;
    let client = builder(&sandbox).build().unwrap();
    let tenant = tenant(&client, &sandbox, 0);
    tenant.get("crm/customers").send_json().await.expect("warm-up");
    for retry_after in ["1e20", "10000000000000000000", "3600"] {
        sandbox.add_fault(Fault { retry_after: Some(retry_after.into()), ..fault("GET", 429, 1) });
        let started = Instant::now();
        let e = tenant.get("crm/customers").send_json().await.expect_err("longer than max_retry_after");
        assert_eq!(e.code(), ErrorCode::RateLimited, "{retry_after}: {e}");
        // The next call is not held back by a pause the caller would never wait for.
        tenant.get("crm/customers").send_json().await.expect("not stalled");
        assert!(started.elapsed() < Duration::from_secs(10), "{retry_after}: {:?}", started.elapsed());
    }
}
