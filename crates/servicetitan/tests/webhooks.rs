//! Webhooks end to end: the sandbox delivers signed CloudEvents for customers created and
//! updated, retries failed deliveries on its (time-scaled) schedule, and a receiver built on
//! `WebhookReceiver` hands each event to the application exactly once.

mod common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use servicetitan::webhooks::{sign, WebhookEvent, WebhookReceiver};
use servicetitan_sandbox::{SandboxConfig, WebhookSubscription};

const KEY: &str = "sandbox-webhook-key-0123456789ab";

/// What the receiving application saw.
#[derive(Default)]
struct Seen {
    arrivals: HashMap<String, u32>,
    handled: Vec<WebhookEvent>,
    statuses: Vec<u16>,
    /// The event whose acknowledgement was "lost".
    lost: Option<String>,
}

/// A webhook endpoint on loopback built on `WebhookReceiver`, failing on purpose: the first
/// arrival of every event is answered 503 before it is looked at, and the first event to arrive a
/// second time is handled but answered 500, as if the acknowledgement were lost.
async fn serve(receiver: Arc<WebhookReceiver>, seen: Arc<Mutex<Seen>>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (receiver, seen) = (receiver.clone(), seen.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (receiver, seen) = (receiver.clone(), seen.clone());
                    async move {
                        let headers: Vec<(String, Vec<u8>)> =
                            req.headers().iter().map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec())).collect();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let id = serde_json::from_slice::<Value>(&body)
                            .ok()
                            .and_then(|v| v["id"].as_str().map(str::to_owned))
                            .unwrap_or_default();
                        let arrival = {
                            let mut s = seen.lock().unwrap();
                            let n = s.arrivals.entry(id.clone()).or_default();
                            *n += 1;
                            *n
                        };
                        let status = if arrival == 1 {
                            503
                        } else {
                            let receipt = receiver.receive(&body, headers).await;
                            let mut s = seen.lock().unwrap();
                            s.statuses.push(receipt.status);
                            let accepted = receipt.event.is_some();
                            if let Some(event) = receipt.event {
                                s.handled.push(event);
                            }
                            if accepted && arrival == 2 && s.lost.is_none() {
                                s.lost = Some(id);
                                500
                            } else {
                                receipt.status
                            }
                        };
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
    addr
}

fn new_customer(name: &str) -> Value {
    let address =
        json!({"street": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701", "country": "USA"});
    json!({"name": name, "type": "Residential", "address": address, "locations": [{"name": "Home", "address": address}]})
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn deliveries_retried_after_failures_reach_the_application_exactly_once() {
    let sandbox = common::start(SandboxConfig { webhook_time_scale: 0.01, ..common::unlimited() }).await;
    let receiver = Arc::new(WebhookReceiver::builder().key(KEY).env_lookup(|_| None).build().unwrap());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let addr = serve(receiver, seen.clone()).await;
    sandbox
        .register_webhook(WebhookSubscription {
            tenant: 1001,
            url: format!("http://{addr}/servicetitan/webhooks"),
            key: KEY.into(),
            events: vec![],
        })
        .unwrap();

    let client = common::builder(&sandbox).build().unwrap();
    let tenant = common::tenant(&client, &sandbox, 0);
    let mut created = Vec::new();
    for name in ["Ada Lovelace", "Grace Hopper"] {
        let c: Value = tenant.post("crm/customers").json(&new_customer(name)).send().await.unwrap();
        created.push(c["id"].as_i64().unwrap());
    }
    let _: Value = tenant
        .patch(format!("crm/customers/{}", created[1]))
        .json(&json!({"name": "Grace B. Hopper"}))
        .send()
        .await
        .unwrap();
    // Another tenant's customers go to its own subscribers (none here).
    let other = common::tenant(&client, &sandbox, 1);
    let _: Value = other.post("crm/customers").json(&new_customer("Nobody")).send().await.unwrap();

    wait_until("every delivery ended", || {
        let d = sandbox.webhook_deliveries();
        d.len() == 3 && d.iter().all(|d| d.state != "pending")
    })
    .await;
    let deliveries = sandbox.webhook_deliveries();
    assert!(deliveries.iter().all(|d| d.state == "delivered" && d.tenant == 1001), "{deliveries:#?}");
    // 503 then 200 for each; 503, 500 (the lost acknowledgement) then 200 for one of them.
    let mut attempts: Vec<usize> = deliveries.iter().map(|d| d.attempts.len()).collect();
    attempts.sort_unstable();
    assert_eq!(attempts, [2, 2, 3]);
    let lost = deliveries.iter().find(|d| d.attempts.len() == 3).unwrap();
    assert_eq!(Some(&lost.event_id), seen.lock().unwrap().lost.as_ref());
    // Retries wait the scaled schedule: 10 s × 0.01, then 30 s × 0.01.
    let first = &lost.attempts;
    assert!(first[1].at_ms - first[0].at_ms >= 90, "{first:?}");
    assert!(first[2].at_ms - first[1].at_ms >= 290, "{first:?}");

    {
        let seen = seen.lock().unwrap();
        // Each event exactly once, in whatever order the retries brought them.
        let mut handled: Vec<(&str, &str)> =
            seen.handled.iter().map(|e| (e.id.as_str(), e.event_type.as_str())).collect();
        let mut expected: Vec<(&str, &str)> =
            deliveries.iter().map(|d| (d.event_id.as_str(), d.event_type.as_str())).collect();
        handled.sort_unstable();
        expected.sort_unstable();
        assert_eq!(handled, expected);
        let mut types: Vec<&str> = seen.handled.iter().map(|e| e.event_type.as_str()).collect();
        types.sort_unstable();
        assert_eq!(types, ["tn.crm.customer-created", "tn.crm.customer-created", "tn.crm.customer-updated"]);
        let update = seen.handled.iter().find(|e| e.event_type == "tn.crm.customer-updated").unwrap();
        assert_eq!(update.data["id"].as_i64(), Some(created[1]));
        assert_eq!(update.data["name"], "Grace B. Hopper");
        assert_eq!(update.source, "/tenant/1001/crm/customers");
        assert!(update.time.as_deref().is_some_and(|t| t.ends_with('Z')));
        assert_eq!(update.extensions["tenantid"], 1001);
    }

    // A replay from the portal arrives with the same id: acknowledged, not handed over again.
    let replayed = deliveries.iter().find(|d| d.attempts.len() == 2).unwrap().event_id.clone();
    assert_eq!(sandbox.replay_webhook(&replayed).unwrap(), 1);
    wait_until("the replay was delivered", || {
        let d = sandbox.webhook_deliveries();
        d.len() == 4 && d[3].state == "delivered"
    })
    .await;
    let seen = seen.lock().unwrap();
    assert_eq!(seen.handled.len(), 3);
    assert_eq!(seen.arrivals[&replayed], 3, "two attempts, then the replay");
}

#[tokio::test]
async fn a_forged_delivery_is_refused_with_401_and_a_wrong_key_never_verifies() {
    let receiver = Arc::new(WebhookReceiver::builder().key(KEY).env_lookup(|_| None).build().unwrap());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let addr = serve(receiver, seen.clone()).await;
    let body =
        serde_json::to_vec(&json!({"specversion": "1.0", "id": "x", "source": "s", "type": "t", "data": {}})).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/");
    let post = |signature: Option<String>, body: Vec<u8>| {
        let mut request = http.post(&url).body(body);
        if let Some(signature) = signature {
            request = request.header("X-ServiceTitan-Signature", signature);
        }
        request.send()
    };
    // The first arrival of an id is always answered 503 by this test server: send each twice.
    let mut statuses = Vec::new();
    for (signature, body) in
        [(Some(sign(&body, "another-key-0123456789abcdefghijk")), body.clone()), (None, body.clone())]
    {
        for _ in 0..2 {
            statuses.push(post(signature.clone(), body.clone()).await.unwrap().status().as_u16());
        }
    }
    assert_eq!(statuses, [503, 401, 401, 401]);
    assert!(seen.lock().unwrap().handled.is_empty());
}
