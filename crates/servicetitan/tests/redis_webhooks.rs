//! Webhook deduplication in a real Redis (`ST_TEST_REDIS_URL`, set by scripts/test-redis.sh):
//! receivers in many workers hand each event over once between them.

use std::time::{Duration, SystemTime};

use servicetitan::webhooks::{sign, WebhookReceiver};
use servicetitan::ErrorCode;

const KEY: &str = "redis-dedupe-test-key-0123456789";

fn redis_url() -> Option<String> {
    let url = std::env::var("ST_TEST_REDIS_URL").ok().filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("skipped: ST_TEST_REDIS_URL is not set (scripts/test-redis.sh starts a redis-server and sets it)");
    }
    url
}

fn unique_prefix(test: &str) -> String {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos();
    format!("t-{test}-{nanos:x}-{}", std::process::id())
}

fn receiver(url: &str, prefix: &str, ttl: Duration) -> WebhookReceiver {
    WebhookReceiver::builder()
        .key(KEY)
        .redis_url(url)
        .redis_key_prefix(prefix)
        .dedupe_ttl(ttl)
        .env_lookup(|_| None)
        .build()
        .unwrap()
}

fn delivery(id: &str) -> (Vec<u8>, [(&'static str, String); 1]) {
    let body = serde_json::to_vec(&serde_json::json!({
        "specversion": "1.0", "id": id, "source": "/tenant/1001", "type": "tn.crm.customer-updated", "data": {}
    }))
    .unwrap();
    let signature = sign(&body, KEY);
    (body, [("X-ServiceTitan-Signature", signature)])
}

#[tokio::test]
async fn workers_sharing_redis_hand_each_event_over_once() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix("webhook");
    let workers: Vec<WebhookReceiver> = (0..4).map(|_| receiver(&url, &prefix, Duration::from_secs(60))).collect();
    let (body, headers) = delivery("evt-shared");
    // The same delivery reaches every worker at once, twice over.
    let receipts =
        futures::future::join_all(workers.iter().chain(workers.iter()).map(|w| w.receive(&body, headers.clone())))
            .await;
    assert!(receipts.iter().all(|r| r.status == 200), "{receipts:?}");
    assert_eq!(receipts.iter().filter(|r| r.event.is_some()).count(), 1, "{receipts:?}");
    assert_eq!(receipts.iter().filter(|r| r.duplicate).count(), 7);

    // Released after a failed handling: the next delivery, in any worker, is handed over.
    let event = receipts.into_iter().find_map(|r| r.event).unwrap();
    workers[0].release(&event).await.unwrap();
    assert!(workers[3].receive(&body, headers.clone()).await.event.is_some());
    assert!(workers[1].receive(&body, headers).await.duplicate);

    // Another prefix is another deployment: it shares nothing.
    let other = receiver(&url, &unique_prefix("webhook-other"), Duration::from_secs(60));
    let (body, headers) = delivery("evt-shared");
    assert!(other.receive(&body, headers).await.event.is_some());
}

#[tokio::test]
async fn remembered_events_expire_with_the_ttl() {
    let Some(url) = redis_url() else { return };
    let w = receiver(&url, &unique_prefix("webhook-ttl"), Duration::from_secs(1));
    let (body, headers) = delivery("evt-ttl");
    assert!(w.receive(&body, headers.clone()).await.event.is_some());
    assert!(w.receive(&body, headers.clone()).await.duplicate);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(w.receive(&body, headers).await.event.is_some(), "expired after the TTL");
}

#[tokio::test]
async fn without_redis_a_delivery_is_refused_with_503_so_that_it_is_retried() {
    // Nothing listens on port 1; the receiver gives up within its short Redis wait.
    let w = receiver("redis://:hunter2@127.0.0.1:1/0", "t-down", Duration::from_secs(60));
    let (body, headers) = delivery("evt-down");
    let receipt = tokio::time::timeout(Duration::from_secs(30), w.receive(&body, headers)).await.unwrap();
    assert_eq!(receipt.status, 503);
    let error = receipt.error.unwrap();
    assert_eq!(error.code(), ErrorCode::Connection);
    assert!(error.message().contains("webhook deduplication"), "{error}");
    assert!(!error.to_string().contains("hunter2"));
}
