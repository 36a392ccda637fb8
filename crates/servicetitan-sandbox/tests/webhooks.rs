//! The sandbox as a webhook sender: subscriptions through the control API, signed CloudEvents,
//! the retry schedule (time-scaled), and the settings for the header and its encoding.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use common::Harness;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use servicetitan_sandbox::SandboxConfig;
use sha2::Sha256;

const KEY: &str = "0123456789abcdef0123456789abcdef";

#[derive(Clone, Debug)]
struct Received {
    headers: http::HeaderMap,
    body: Bytes,
}

/// A receiver on loopback that answers every delivery with `status` and records it.
async fn receiver(status: u16) -> (SocketAddr, Arc<Mutex<Vec<Received>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let log = log.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let log = log.clone();
                    async move {
                        let headers = req.headers().clone();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        log.lock().unwrap().push(Received { headers, body });
                        let mut response = Response::new(Full::new(Bytes::new()));
                        *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    (addr, received)
}

fn hmac(body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn control(h: &Harness, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = h.http.request(method, h.url(&format!("__sandbox/{path}")));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_customer_change_is_delivered_signed_as_a_cloudevent() {
    let h = Harness::start(SandboxConfig::default()).await;
    let (addr, received) = receiver(200).await;
    let (status, answer) = control(
        &h,
        reqwest::Method::POST,
        "webhooks",
        Some(json!({"tenant": 1001, "url": format!("http://{addr}/hooks?x=1"), "key": KEY})),
    )
    .await;
    assert_eq!((status, answer["id"].as_u64()), (201, Some(1)));
    let (_, listed) = control(&h, reqwest::Method::GET, "webhooks", None).await;
    assert_eq!(listed[0]["key"], "***");
    assert!(!listed.to_string().contains(KEY));

    let token = h.token(1001).await;
    let address =
        json!({"street": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701", "country": "USA"});
    let customer = json!({"name": "Ada", "type": "Residential", "address": address, "locations": [{"name": "Home", "address": address}]});
    let r = h.call(reqwest::Method::POST, "crm/v2/tenant/1001/customers", &token, Some(&customer)).await;
    assert_eq!(r.status(), 200);
    let created: Value = r.json().await.unwrap();

    wait_until("the event arrived", || !received.lock().unwrap().is_empty()).await;
    let delivery = received.lock().unwrap()[0].clone();
    let signature = delivery.headers["x-servicetitan-signature"].to_str().unwrap().to_owned();
    let expected: String = hmac(&delivery.body).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(signature, expected, "HMAC-SHA256 of the raw body, hex");
    assert!(delivery.headers["content-type"].to_str().unwrap().starts_with("application/cloudevents+json"));
    let event: Value = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["type"], "tn.crm.customer-created");
    assert_eq!(event["source"], "/tenant/1001/crm/customers");
    assert_eq!(event["data"]["id"], created["id"]);
    assert_eq!(event["id"].as_str().unwrap().len(), 36);
    wait_until("the delivery is recorded", || h.sandbox.webhook_deliveries()[0].state == "delivered").await;
    let (_, deliveries) = control(&h, reqwest::Method::GET, "webhooks/deliveries", None).await;
    assert_eq!(deliveries[0]["event_id"], event["id"]);
    assert_eq!(deliveries[0]["attempts"][0]["status"], 200);
}

#[tokio::test]
async fn a_failing_receiver_gets_the_retries_of_the_schedule_then_the_delivery_fails() {
    let config = SandboxConfig { webhook_time_scale: 0.01, ..SandboxConfig::default() };
    let h = Harness::start(config).await;
    let (addr, received) = receiver(500).await;
    h.sandbox
        .register_webhook(servicetitan_sandbox::WebhookSubscription {
            tenant: 1002,
            url: format!("http://{addr}/"),
            key: KEY.into(),
            events: vec!["tn.test.ping".into()],
        })
        .unwrap();
    // An event type the subscription did not ask for is not sent.
    h.sandbox.send_webhook_event(1002, "tn.test.other", json!({})).unwrap();
    let id = h.sandbox.send_webhook_event(1002, "tn.test.ping", json!({"n": 1})).unwrap();
    wait_until("the delivery failed", || h.sandbox.webhook_deliveries().iter().any(|d| d.state == "failed")).await;
    let deliveries = h.sandbox.webhook_deliveries();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].event_id, id);
    let at: Vec<i64> = deliveries[0].attempts.iter().map(|a| a.at_ms).collect();
    assert_eq!(at.len(), 5, "the first attempt and four retries");
    // 10, 30, 60 and 300 s scaled by 0.01 (lower bounds only: the machine may be slow).
    for (gap, min) in at.windows(2).map(|w| w[1] - w[0]).zip([100, 300, 600, 3000]) {
        assert!(gap >= min - 10, "gaps {:?}", at.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>());
    }
    assert!(deliveries[0].attempts.iter().all(|a| a.status == Some(500)));
    let bodies: Vec<Bytes> = received.lock().unwrap().iter().map(|r| r.body.clone()).collect();
    assert_eq!(bodies.len(), 5);
    assert!(bodies.iter().all(|b| b == &bodies[0]), "every retry sends the same event");
}

#[tokio::test]
async fn unreachable_receivers_are_retried_and_removing_the_subscription_ends_the_retries() {
    let config = SandboxConfig {
        webhook_time_scale: 1.0,
        webhook_retry_delays_secs: vec![0.05, 600.0],
        ..SandboxConfig::default()
    };
    let h = Harness::start(config).await;
    // A port nobody listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    h.sandbox
        .register_webhook(servicetitan_sandbox::WebhookSubscription {
            tenant: 1001,
            url: format!("http://127.0.0.1:{port}/"),
            key: KEY.into(),
            events: vec![],
        })
        .unwrap();
    h.sandbox.send_webhook_event(1001, "tn.test.ping", Value::Null).unwrap();
    wait_until("two attempts failed", || h.sandbox.webhook_deliveries()[0].attempts.len() == 2).await;
    let attempt = &h.sandbox.webhook_deliveries()[0].attempts[0];
    assert!(attempt.status.is_none() && attempt.error.as_deref().unwrap().contains("connect"), "{attempt:?}");
    assert_eq!(h.sandbox.webhook_deliveries()[0].state, "pending", "the next retry is 600 s away");
    let (status, _) = control(&h, reqwest::Method::DELETE, "webhooks", None).await;
    assert_eq!(status, 200);
    assert_eq!(h.sandbox.webhook_subscriptions(), json!([]));
    wait_until("the pending retry ended", || h.sandbox.webhook_deliveries()[0].state == "failed").await;
    assert_eq!(h.sandbox.webhook_deliveries()[0].attempts.len(), 2);
}

#[tokio::test]
async fn the_header_and_encoding_are_settings_and_replays_keep_the_event_id() {
    let config = SandboxConfig {
        webhook_signature_header: "X-Signature".into(),
        webhook_signature_encoding: "base64".into(),
        ..SandboxConfig::default()
    };
    let h = Harness::start(config).await;
    let (addr, received) = receiver(204).await;
    let (status, _) = control(
        &h,
        reqwest::Method::POST,
        "webhooks",
        Some(json!({"tenant": 1003, "url": format!("http://{addr}/"), "key": KEY})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, sent) =
        control(&h, reqwest::Method::POST, "webhooks/events", Some(json!({"tenant": 1003, "type": "tn.test.ping"})))
            .await;
    assert_eq!(status, 201);
    let (status, replayed) =
        control(&h, reqwest::Method::POST, "webhooks/replay", Some(json!({"event_id": sent["id"]}))).await;
    assert_eq!((status, replayed["deliveries"].as_u64()), (200, Some(1)));
    wait_until("both arrived", || received.lock().unwrap().len() == 2).await;
    let received = received.lock().unwrap().clone();
    for r in &received {
        let signature = r.headers["x-signature"].to_str().unwrap();
        assert_eq!(signature, base64::engine::general_purpose::STANDARD.encode(hmac(&r.body)));
        assert!(r.headers.get("x-servicetitan-signature").is_none());
    }
    assert_eq!(received[0].body, received[1].body, "a replay is the same event");
    wait_until("both recorded", || h.sandbox.webhook_deliveries().iter().all(|d| d.state == "delivered")).await;
    assert_eq!(h.sandbox.webhook_deliveries().iter().map(|d| d.replay).collect::<Vec<_>>(), [false, true]);
}

#[tokio::test]
async fn bad_subscriptions_are_refused_with_the_field_at_fault() {
    let h = Harness::start(SandboxConfig::default()).await;
    for (body, field) in [
        (json!({"tenant": 1001, "url": "http://127.0.0.1:9/", "key": "short"}), "key"),
        (json!({"tenant": 1001, "url": "https://example.com/", "key": KEY}), "url"),
        (json!({"tenant": 9, "url": "http://127.0.0.1:9/", "key": KEY}), "tenant"),
        (json!({"tenant": 1001, "key": KEY}), "url"),
    ] {
        let (status, problem) = control(&h, reqwest::Method::POST, "webhooks", Some(body)).await;
        assert_eq!(status, 400);
        assert!(problem["errors"]["subscription"][0].as_str().unwrap().contains(field), "{problem}");
        assert!(!problem.to_string().contains(KEY));
    }
    let (status, _) = control(&h, reqwest::Method::POST, "webhooks/replay", Some(json!({"event_id": "nope"}))).await;
    assert_eq!(status, 404);
}

async fn start_query(h: &Harness, token: &str, path: &str, params: &Value) -> String {
    let r = h.call(reqwest::Method::POST, path, token, Some(params)).await;
    assert_eq!(r.status(), 202);
    r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_asynchronous_report_is_polled_cancelled_and_announced_when_ready() {
    let h = Harness::start(SandboxConfig { report_query_ms: 300, ..SandboxConfig::default() }).await;
    let (addr, received) = receiver(200).await;
    h.sandbox
        .register_webhook(servicetitan_sandbox::WebhookSubscription {
            tenant: 1001,
            url: format!("http://{addr}/"),
            key: KEY.into(),
            events: vec!["tn.rpr.report-data-ready".into()],
        })
        .unwrap();
    let token = h.token(1001).await;
    let query = "reporting/v2/tenant/1001/report-category/operations/reports/175/data/query?pageSize=1000";
    let params = json!({"parameters": [{"name": "From", "value": "2026-01-01"}], "notifyWhenReady": true});
    let kept = start_query(&h, &token, query, &params).await;
    let cancelled = start_query(&h, &token, query, &params).await;
    let poll = |q: &str| format!("reporting/v2/tenant/1001/data-queries/{q}");
    let r = h.call(reqwest::Method::GET, &poll(&kept), &token, None).await;
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>().await.unwrap()["token"], kept.as_str());
    assert_eq!(h.call(reqwest::Method::DELETE, &poll(&cancelled), &token, None).await.status(), 204);
    assert_eq!(h.call(reqwest::Method::GET, &poll(&cancelled), &token, None).await.status(), 404);
    // Another tenant cannot see the query.
    let other = h.token(1002).await;
    let elsewhere = poll(&kept).replace("/1001/", "/1002/");
    assert_eq!(h.call(reqwest::Method::GET, &elsewhere, &other, None).await.status(), 404);

    wait_until("the ready event arrived", || !received.lock().unwrap().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let events: Vec<Value> =
        received.lock().unwrap().iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect();
    assert_eq!(events.len(), 1, "only the query that was not cancelled: {events:?}");
    assert_eq!(events[0]["type"], "tn.rpr.report-data-ready");
    assert_eq!(events[0]["data"]["token"], kept.as_str());
    assert_eq!(events[0]["data"]["reportId"], 175);

    let r = h.call(reqwest::Method::GET, &poll(&kept), &token, None).await;
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.unwrap();
    assert_eq!((page["data"].as_array().unwrap().len(), page["hasMore"].as_bool()), (1000, Some(true)));
    let r = h.call(reqwest::Method::GET, &format!("{}?page=3", poll(&kept)), &token, None).await;
    let last: Value = r.json().await.unwrap();
    assert_eq!((last["data"].as_array().unwrap().len(), last["hasMore"].as_bool()), (500, Some(false)));
    let stats = h.sandbox.stats();
    assert_eq!(stats["report_queries"]["started"], 2);
    assert_eq!(stats["report_queries"]["deleted"], 1);
    assert_eq!(stats["reports"]["1001/175"]["admitted"], 2, "one report slot per query, none per poll");
}
