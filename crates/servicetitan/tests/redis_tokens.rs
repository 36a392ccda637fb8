//! The Redis token store against a real redis-server (`ST_TEST_REDIS_URL`, set by
//! scripts/test-redis.sh): lock ownership, one fetch for many clients, encryption.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use servicetitan::auth::{CachedToken, FetchLock, TokenKey, TokenStore};
use servicetitan::clock::SystemClock;
use servicetitan::redis::{RedisBackend, RedisSettings, RedisTokenStore};
use servicetitan::Secret;

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

fn store(url: &str, prefix: &str, token_key: Option<&str>) -> RedisTokenStore {
    let mut settings = RedisSettings::new(url).unwrap().key_prefix(prefix).unwrap();
    if let Some(key) = token_key {
        settings = settings.token_key(key).unwrap();
    }
    RedisTokenStore::new(Arc::new(RedisBackend::new(settings, Arc::new(SystemClock)).unwrap()))
}

fn key() -> TokenKey {
    TokenKey {
        environment: "http://127.0.0.1/connect/token".into(),
        client_id: "cid".into(),
        secret_fingerprint: "f".into(),
    }
}

async fn raw_values(url: &str, prefix: &str) -> Vec<String> {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:token:*")).query_async(&mut c).await.unwrap();
    let mut values = Vec::new();
    for k in keys.iter().filter(|k| !k.ends_with(":lock")) {
        values.push(redis::cmd("GET").arg(k).query_async::<String>(&mut c).await.unwrap());
    }
    values
}

#[tokio::test]
async fn the_fetch_lock_is_released_only_by_its_owner_and_expires() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix("lock");
    let (a, b) = (store(&url, &prefix, None), store(&url, &prefix, None));
    let ttl = Duration::from_millis(300);
    let lock = a.try_lock_fetch(&key(), ttl).await.unwrap().expect("the first caller gets the lock");
    assert!(lock.owner().is_some());
    assert_eq!(b.try_lock_fetch(&key(), ttl).await.unwrap(), None, "held by a");
    // Someone else's token does not release it.
    b.unlock_fetch(&key(), &FetchLock::shared("not-the-owner")).await.unwrap();
    assert_eq!(b.try_lock_fetch(&key(), ttl).await.unwrap(), None, "still held by a");
    a.unlock_fetch(&key(), &lock).await.unwrap();
    let lock_b = b.try_lock_fetch(&key(), ttl).await.unwrap().expect("released by its owner");
    // A holder that dies holds others back at most the TTL.
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    let lock_a = a.try_lock_fetch(&key(), ttl).await.unwrap().expect("expired");
    // b's late release must not free a's lock.
    b.unlock_fetch(&key(), &lock_b).await.unwrap();
    assert_eq!(b.try_lock_fetch(&key(), ttl).await.unwrap(), None);
    a.unlock_fetch(&key(), &lock_a).await.unwrap();
}

#[tokio::test]
async fn tokens_expire_with_the_token_and_remove_if_keeps_a_newer_one() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix("expiry");
    let s = store(&url, &prefix, None);
    let old = CachedToken::schedule(Secret::new("old"), SystemTime::now(), Duration::from_millis(400));
    s.put(&key(), &old).await.unwrap();
    assert_eq!(s.get(&key()).await.unwrap().unwrap().access_token, old.access_token);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.get(&key()).await.unwrap(), None, "gone with the token");

    let new = CachedToken::schedule(Secret::new("new"), SystemTime::now(), Duration::from_secs(900));
    s.put(&key(), &new).await.unwrap();
    s.remove_if(&key(), &Secret::new("old")).await.unwrap();
    assert!(s.get(&key()).await.unwrap().is_some());
    s.remove_if(&key(), &Secret::new("new")).await.unwrap();
    assert_eq!(s.get(&key()).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_clients_sharing_redis_fetch_one_token_between_them() {
    let Some(url) = redis_url() else { return };
    let sandbox = common::start(common::unlimited()).await;
    let prefix = unique_prefix("single-flight");
    let clients: Vec<_> = (0..8)
        .map(|_| common::builder(&sandbox).redis_url(url.clone()).redis_key_prefix(prefix.clone()).build().unwrap())
        .collect();
    let tenants: Vec<_> = clients.iter().map(|c| common::tenant(c, &sandbox, 0)).collect();
    let calls = tenants.iter().flat_map(|t| {
        (0..5).map(move |_| t.get("crm/customers").query(&[("pageSize", 1)]).send::<serde_json::Value>())
    });
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(Result::is_ok), "{:?}", results.iter().find(|r| r.is_err()));
    assert_eq!(common::stat(&sandbox, "/token_requests_total"), 1);
    let fetches: u64 = clients.iter().map(|c| c.stats().token_fetches).sum();
    assert_eq!(fetches, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_tokens_are_unreadable_in_redis_and_a_wrong_key_is_a_miss() {
    let Some(url) = redis_url() else { return };
    let sandbox = common::start(common::unlimited()).await;
    let prefix = unique_prefix("sealed");
    let client = |key: &str| {
        common::builder(&sandbox)
            .redis_url(url.clone())
            .redis_key_prefix(prefix.clone())
            .redis_token_key(key.to_owned())
            .build()
            .unwrap()
    };
    let (right, other_right, wrong) = (client(&"11".repeat(32)), client(&"11".repeat(32)), client(&"22".repeat(32)));
    let get = |c: &servicetitan::Client| {
        let tenant = common::tenant(c, &sandbox, 0);
        async move { tenant.get("crm/customers").query(&[("pageSize", 1)]).send::<serde_json::Value>().await }
    };
    get(&right).await.unwrap();
    let values = raw_values(&url, &prefix).await;
    assert_eq!(values.len(), 1);
    assert!(values[0].starts_with("e1:") && !values[0].contains("access_token"), "{}", values[0]);
    // The same key reads it: still one token request.
    get(&other_right).await.unwrap();
    assert_eq!(common::stat(&sandbox, "/token_requests_total"), 1);
    // Another key cannot: a miss (logged), a new token, no failure.
    get(&wrong).await.unwrap();
    assert_eq!(common::stat(&sandbox, "/token_requests_total"), 2);
}
