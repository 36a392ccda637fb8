//! The Redis token store against a real redis-server (`ST_TEST_REDIS_URL`, set by
//! scripts/test-redis.sh): lock ownership, one fetch for many clients, encryption at rest, and
//! what whoever can write to Redis can plant (tokens, locks, values of the wrong type or size).

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use servicetitan::auth::{CachedToken, FetchLock, StoreKey, TokenKey, TokenStore};
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
    key_with_secret("cs1.secret")
}

fn key_with_secret(secret: &str) -> TokenKey {
    TokenKey {
        environment: "http://127.0.0.1/connect/token".into(),
        client_id: "cid".into(),
        secret_fingerprint: "f".into(),
        store_key: StoreKey::derive(&Secret::new(secret)),
    }
}

/// A plain connection, as whoever can read or write Redis has one.
async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap()
}

/// The token entries under `prefix` (locks left out).
async fn token_keys(url: &str, prefix: &str) -> Vec<String> {
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{prefix}:token:*")).query_async(&mut raw(url).await).await.unwrap();
    keys.into_iter().filter(|k| !k.ends_with(":lock")).collect()
}

async fn raw_values(url: &str, prefix: &str) -> Vec<String> {
    let mut c = raw(url).await;
    let mut values = Vec::new();
    for k in token_keys(url, prefix).await {
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
    assert!(values[0].starts_with("e2:") && !values[0].contains("access_token"), "{}", values[0]);
    // The same key reads it: still one token request.
    get(&other_right).await.unwrap();
    assert_eq!(common::stat(&sandbox, "/token_requests_total"), 1);
    // Another key cannot: a miss (logged), a new token, no failure.
    get(&wrong).await.unwrap();
    assert_eq!(common::stat(&sandbox, "/token_requests_total"), 2);
}

#[tokio::test]
async fn tokens_are_encrypted_by_default_and_open_only_with_the_client_secret() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix("default-sealed");
    let (writer, reader) = (store(&url, &prefix, None), store(&url, &prefix, None));
    let token = CachedToken::schedule(Secret::new("tok-readable-123"), SystemTime::now(), Duration::from_secs(900));
    writer.put(&key(), &token).await.unwrap();
    let values = raw_values(&url, &prefix).await;
    assert_eq!(values.len(), 1);
    assert!(values[0].starts_with("e2:"), "{}", values[0]);
    assert!(!values[0].contains("tok-readable-123") && !values[0].contains("access_token"), "{}", values[0]);
    // Another process with the same credential reads it; the same entry under another secret
    // (same Redis key: a store that knew only the key name) does not open.
    assert_eq!(reader.get(&key()).await.unwrap().unwrap().access_token, token.access_token);
    assert_eq!(reader.get(&key_with_secret("cs1.guess")).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_and_old_plaintext_tokens_are_misses_never_sent_and_get_replaced() {
    let Some(url) = redis_url() else { return };
    let sandbox = common::start(common::unlimited()).await;
    let prefix = unique_prefix("planted");
    let client = || common::builder(&sandbox).redis_url(url.clone()).redis_key_prefix(prefix.clone()).build().unwrap();
    let get = |c: servicetitan::Client| {
        let tenant = common::tenant(&c, &sandbox, 0);
        async move { tenant.get("crm/customers").query(&[("pageSize", 1)]).send::<serde_json::Value>().await }
    };
    get(client()).await.unwrap();
    let [entry] = token_keys(&url, &prefix).await.try_into().unwrap();
    let far = 4_000_000_000_000u64;
    let planted = [
        // What an older version wrote: plaintext JSON.
        format!(
            r#"p1:{{"access_token":"planted-token","expires_at_ms":{far},"refresh_at_ms":{far},"stale_at_ms":{far}}}"#
        ),
        // Sealed under a configured key alone, as an older version did: not openable now.
        "e1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        // Forged in this version's format by someone without the client secret.
        format!("e2:{}", "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"),
        "not a token at all".to_owned(),
    ];
    let mut mine = raw(&url).await;
    for (n, value) in planted.iter().enumerate() {
        let _: () =
            redis::cmd("SET").arg(&entry).arg(value).arg("PX").arg(600_000).query_async(&mut mine).await.unwrap();
        // A new process: nothing cached in memory.
        get(client()).await.unwrap();
        assert_eq!(common::stat(&sandbox, "/token_requests_total"), 2 + n as u64, "{value}: a miss, fetched anew");
        assert_eq!(common::stat(&sandbox, "/unauthorized"), 0, "{value}: the planted token was sent");
        let now: String = redis::cmd("GET").arg(&entry).query_async(&mut mine).await.unwrap();
        assert!(now.starts_with("e2:") && &now != value, "{value}: not replaced: {now}");
    }
}

#[tokio::test]
async fn values_of_the_wrong_type_size_or_encoding_are_misses_not_errors() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix("wrong-type");
    let s = store(&url, &prefix, None);
    let token = CachedToken::schedule(Secret::new("tok"), SystemTime::now(), Duration::from_secs(900));
    s.put(&key(), &token).await.unwrap();
    let [entry] = token_keys(&url, &prefix).await.try_into().unwrap();
    let mut c = raw(&url).await;
    let _: () = redis::cmd("DEL").arg(&entry).query_async(&mut c).await.unwrap();
    let _: () = redis::cmd("RPUSH").arg(&entry).arg("a").query_async(&mut c).await.unwrap();
    assert_eq!(s.get(&key()).await.unwrap(), None, "a list");
    s.remove_if(&key(), &Secret::new("tok")).await.unwrap();
    s.put(&key(), &token).await.unwrap();
    assert!(s.get(&key()).await.unwrap().is_some(), "replaced by the next put");
    let _: () = redis::cmd("SET").arg(&entry).arg(vec![b'e'; 300_000]).query_async(&mut c).await.unwrap();
    assert_eq!(s.get(&key()).await.unwrap(), None, "300 kB");
    let _: () = redis::cmd("SET").arg(&entry).arg(&b"e2:\xff\xfe"[..]).query_async(&mut c).await.unwrap();
    assert_eq!(s.get(&key()).await.unwrap(), None, "not UTF-8");
}

#[tokio::test]
async fn a_lock_planted_without_expiry_holds_fetchers_back_at_most_one_ttl() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix("planted-lock");
    let s = store(&url, &prefix, None);
    let ttl = Duration::from_millis(300);
    let lock = s.try_lock_fetch(&key(), ttl).await.unwrap().expect("free");
    s.unlock_fetch(&key(), &lock).await.unwrap();
    let lock_key = format!("{}:lock", token_entry(&url, &prefix).await);
    let mut c = raw(&url).await;
    let _: () = redis::cmd("SET").arg(&lock_key).arg("planted").query_async(&mut c).await.unwrap();
    assert_eq!(s.try_lock_fetch(&key(), ttl).await.unwrap(), None, "held");
    let left: i64 = redis::cmd("PTTL").arg(&lock_key).query_async(&mut c).await.unwrap();
    assert!(left > 0 && left <= 300, "the planted lock now expires within one ttl: {left} ms");
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert!(s.try_lock_fetch(&key(), ttl).await.unwrap().is_some(), "free again after one ttl");
}

/// The Redis key of `key()`'s token under `prefix`, found through a token stored there.
async fn token_entry(url: &str, prefix: &str) -> String {
    let s = store(url, prefix, None);
    let token = CachedToken::schedule(Secret::new("tok"), SystemTime::now(), Duration::from_secs(900));
    s.put(&key(), &token).await.unwrap();
    let [entry] = token_keys(url, prefix).await.try_into().unwrap();
    entry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_is_woken_by_the_fetcher_releasing_its_lock_not_by_a_poll() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix("wake");
    let (fetcher, waiter) = (store(&url, &prefix, None), store(&url, &prefix, None));
    let lock = fetcher.try_lock_fetch(&key(), Duration::from_secs(10)).await.unwrap().expect("free");
    let notice = waiter.watch_fetch(&key()).await.expect("a Redis store wakes its waiters");
    let mut notice = std::pin::pin!(notice);
    // Nothing wakes it while the fetch goes on.
    assert!(tokio::time::timeout(Duration::from_millis(150), notice.as_mut()).await.is_err(), "woken early");
    let token = CachedToken::schedule(Secret::new("tok-shared"), SystemTime::now(), Duration::from_secs(900));
    fetcher.put(&key(), &token).await.unwrap();
    let released = std::time::Instant::now();
    fetcher.unlock_fetch(&key(), &lock).await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), notice).await.expect("woken once the lock is released");
    let woken = released.elapsed();
    assert!(woken < Duration::from_millis(100), "woken {woken:?} after the release");
    assert_eq!(waiter.get(&key()).await.unwrap().unwrap().access_token, token.access_token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_waiting_on_another_process_fetch_gets_the_token_as_it_lands() {
    let Some(url) = redis_url() else { return };
    let sandbox = common::start(common::unlimited()).await;
    // The token request is slow, so that the second client finds the first one fetching.
    sandbox.add_fault(servicetitan_sandbox::Fault {
        route: "connect/token".into(),
        delay_ms: 400,
        count: 1,
        ..Default::default()
    });
    let prefix = unique_prefix("wake-e2e");
    let client = || common::builder(&sandbox).redis_url(url.clone()).redis_key_prefix(prefix.clone()).build().unwrap();
    let (first, second) = (client(), client());
    let call = |c: &servicetitan::Client| {
        let tenant = common::tenant(c, &sandbox, 0);
        async move {
            tenant.get("crm/customers").query(&[("pageSize", 1)]).send::<serde_json::Value>().await.unwrap();
            std::time::Instant::now()
        }
    };
    let fetching = tokio::spawn(call(&first));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waiting = tokio::spawn(call(&second));
    let (first_done, second_done) = (fetching.await.unwrap(), waiting.await.unwrap());
    assert_eq!(common::stat(&sandbox, "/token_requests_total"), 1, "one fetch for both");
    assert_eq!(second.stats().token_fetches, 0);
    // Well inside the waiters' fallback poll (200 ms): the release woke it.
    let behind = second_done.saturating_duration_since(first_done);
    assert!(behind < Duration::from_millis(100), "the waiter finished {behind:?} after the fetcher");
}
