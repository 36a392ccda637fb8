//! The Redis limiter against a real redis-server (`ST_TEST_REDIS_URL`, set by scripts/test-redis.sh):
//! the Lua admission rule under injected time (property-based), the shared cooldown,
//! cancellation, what happens when Redis cannot be reached, and what whoever can write to
//! Redis can plant (a cooldown of a year, admissions from the future, garbage): none of it
//! stalls a caller beyond the bounds a client would accept from the server.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use proptest::prelude::*;
use servicetitan::clock::SystemClock;
use servicetitan::limit::{Quota, RateLimiter};
use servicetitan::margin::MAX_HOLD;
use servicetitan::redis::{RedisBackend, RedisLimiter, RedisSettings};
use servicetitan::ErrorCode;

/// The test Redis, or `None` (with the reason printed) so that plain `cargo test` passes.
fn redis_url() -> Option<String> {
    let url = std::env::var("ST_TEST_REDIS_URL").ok().filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("skipped: ST_TEST_REDIS_URL is not set (scripts/test-redis.sh starts a redis-server and sets it)");
    }
    url
}

fn unique_prefix(test: &str) -> String {
    format!("t-{test}-{:016x}", fastrand_u64())
}

fn fastrand_u64() -> u64 {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos() as u64;
    nanos ^ (std::process::id() as u64).rotate_left(32)
}

fn backend(url: &str, prefix: &str) -> Arc<RedisBackend> {
    let settings = RedisSettings::new(url).unwrap().key_prefix(prefix).unwrap();
    Arc::new(RedisBackend::new(settings, Arc::new(SystemClock)).unwrap())
}

fn quota(calls: u32, window_ms: u64) -> Quota {
    Quota { calls, period: Duration::from_millis(window_ms), margin: Duration::ZERO }
}

fn max_in_any_window(times: &[u64], window: u64) -> usize {
    (0..times.len()).map(|i| times[i..].iter().take_while(|t| **t < times[i] + window).count()).max().unwrap_or(0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    /// Two "processes" (two backends, two connections) admitting under injected time: the
    /// script admits exactly when the reference sliding log does, so never more than N in
    /// any window, and a refused call is told the exact wait until a slot frees.
    #[test]
    fn the_lua_limiter_never_admits_more_than_n_in_any_window(
        calls in 1u32..8,
        window_ms in 10u64..400,
        arrivals in proptest::collection::vec((0u64..120, any::<bool>()), 1..120),
    ) {
        let Some(url) = redis_url() else { return Ok(()) };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let prefix = unique_prefix("prop");
            let (a, b) = (backend(&url, &prefix), backend(&url, &prefix));
            let q = quota(calls, window_ms);
            let window_us = window_ms * 1000;
            let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
            let (mut now_us, mut admitted) = (0u64, Vec::<u64>::new());
            for (gap_ms, second) in arrivals {
                now_us += gap_ms * 1000;
                let at = start + Duration::from_micros(now_us);
                let backend = if second { &b } else { &a };
                let answer = backend.try_admit("tenant", Some(q), Some(at)).await.unwrap();
                let recent: Vec<u64> = admitted.iter().copied().filter(|t| t + window_us > now_us).collect();
                if recent.len() < calls as usize {
                    prop_assert_eq!(answer, None, "refused at {} with {} in the window", now_us, recent.len());
                    admitted.push(now_us);
                } else {
                    let frees_at = recent[recent.len() - calls as usize] + window_us;
                    prop_assert_eq!(answer, Some(Duration::from_micros(frees_at - now_us)));
                }
            }
            prop_assert!(max_in_any_window(&admitted, window_us) <= calls as usize);
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn a_cooldown_set_by_one_process_holds_every_other() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix("cool");
    let (a, b) = (backend(&url, &prefix), backend(&url, &prefix));
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    a.set_cooldown("tenant", Duration::from_secs(5), Some(t0)).await.unwrap();
    // A shorter pause does not shorten it.
    b.set_cooldown("tenant", Duration::from_secs(1), Some(t0)).await.unwrap();
    let at = t0 + Duration::from_secs(2);
    assert_eq!(b.try_admit("tenant", Some(quota(60, 1000)), Some(at)).await.unwrap(), Some(Duration::from_secs(3)));
    assert_eq!(b.try_admit("tenant", None, Some(at)).await.unwrap(), Some(Duration::from_secs(3)));
    assert_eq!(b.try_admit("other", Some(quota(60, 1000)), Some(at)).await.unwrap(), None);
    assert_eq!(b.try_admit("tenant", Some(quota(60, 1000)), Some(t0 + Duration::from_secs(5))).await.unwrap(), None);
}

#[tokio::test]
async fn limiters_in_two_processes_share_one_budget_in_real_time() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix("share");
    let limiters = [RedisLimiter::new(backend(&url, &prefix)), RedisLimiter::new(backend(&url, &prefix))];
    let q = quota(5, 300);
    let start = Instant::now();
    let mut admitted = Vec::new();
    let mut tasks = Vec::new();
    for limiter in limiters.map(Arc::new) {
        for _ in 0..6 {
            let limiter = limiter.clone();
            tasks.push(tokio::spawn(async move {
                limiter.acquire("tenant", Some(q)).await.unwrap();
                start.elapsed()
            }));
        }
    }
    for task in tasks {
        admitted.push(task.await.unwrap());
    }
    admitted.sort();
    // 12 calls, 5 per 300 ms: two full windows of waiting for the last two.
    assert!(admitted[4] < Duration::from_millis(150), "{admitted:?}");
    assert!(admitted[5] >= Duration::from_millis(290), "{admitted:?}");
    assert!(admitted[10] >= Duration::from_millis(590), "{admitted:?}");
}

#[tokio::test]
async fn a_waiter_dropped_while_sleeping_takes_no_slot() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix("cancel");
    let limiter = Arc::new(RedisLimiter::new(backend(&url, &prefix)));
    let q = quota(1, 300);
    limiter.acquire("tenant", Some(q)).await.unwrap();
    let started = Instant::now();
    // Refused, then dropped while sleeping to its retry.
    assert!(tokio::time::timeout(Duration::from_millis(50), limiter.acquire("tenant", Some(q))).await.is_err());
    tokio::time::sleep(Duration::from_millis(300).saturating_sub(started.elapsed())).await;
    let waited = Instant::now();
    limiter.acquire("tenant", Some(q)).await.unwrap();
    assert!(waited.elapsed() < Duration::from_millis(100), "{:?}", waited.elapsed());
}

#[tokio::test]
async fn without_redis_calls_wait_then_fail_with_a_connection_error_naming_redis() {
    // Needs no server: nothing listens on port 1.
    let settings = RedisSettings::new("redis://:hunter2@127.0.0.1:1/0").unwrap().wait(Duration::from_millis(400));
    let limiter = RedisLimiter::new(Arc::new(RedisBackend::new(settings, Arc::new(SystemClock)).unwrap()));
    let started = Instant::now();
    let error = limiter.acquire("tenant", Some(quota(5, 1000))).await.unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(error.code(), ErrorCode::Connection);
    let message = error.to_string();
    assert!(message.contains("Redis at redis://:***@127.0.0.1:1/0"), "{message}");
    assert!(message.contains("API was not called"), "{message}");
    assert!(!message.contains("hunter2") && !format!("{error:?}").contains("hunter2"), "{message}");
}

#[tokio::test]
async fn with_a_fallback_share_calls_go_on_at_that_share_of_the_budget() {
    let settings = RedisSettings::new("redis://127.0.0.1:1").unwrap().fallback_share(0.5).unwrap();
    let limiter = RedisLimiter::new(Arc::new(RedisBackend::new(settings, Arc::new(SystemClock)).unwrap()));
    let q = quota(4, 400);
    let started = Instant::now();
    for _ in 0..2 {
        limiter.acquire("tenant", Some(q)).await.unwrap();
    }
    assert!(started.elapsed() < Duration::from_millis(200), "{:?}", started.elapsed());
    // The third waits for the fallback window: 2 of 4, never a burst.
    limiter.acquire("tenant", Some(q)).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(390), "{:?}", started.elapsed());
}

/// A plain connection, as whoever can write to Redis has one.
async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap()
}

fn micros(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_micros() as u64
}

const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

#[tokio::test]
async fn a_cooldown_beyond_the_bound_is_cut_to_it_and_garbage_is_no_cooldown() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix("cool-bound");
    let settings = RedisSettings::new(&url).unwrap().key_prefix(&prefix).unwrap().max_cooldown(Duration::from_secs(2));
    let backend = RedisBackend::new(settings, Arc::new(SystemClock)).unwrap();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let q = quota(60, 1000);
    // Set through the client's own script, a year is not cut in Redis (another deployment
    // may honour more), only in what this one waits.
    backend.set_cooldown("tenant", YEAR, Some(t0)).await.unwrap();
    assert_eq!(backend.cooldown_bound(Some(q)), Duration::from_secs(2));
    assert_eq!(backend.try_admit("tenant", Some(q), Some(t0)).await.unwrap(), Some(Duration::from_secs(2)));
    assert_eq!(backend.try_admit("tenant", None, Some(t0)).await.unwrap(), Some(Duration::from_secs(2)));
    // A legitimate cooldown within the bound is waited in full.
    backend.set_cooldown("short", Duration::from_millis(1500), Some(t0)).await.unwrap();
    assert_eq!(backend.try_admit("short", Some(q), Some(t0)).await.unwrap(), Some(Duration::from_millis(1500)));

    let mut c = raw(&url).await;
    let cool = format!("{prefix}:rl:{{garbage}}:cool");
    for planted in ["soon", "nan", "", "-inf"] {
        let _: () = redis::cmd("SET").arg(&cool).arg(planted).query_async(&mut c).await.unwrap();
        assert_eq!(backend.try_admit("garbage", Some(q), Some(t0)).await.unwrap(), None, "{planted:?}");
    }
    let _: () = redis::cmd("DEL").arg(&cool).query_async(&mut c).await.unwrap();
    let _: () = redis::cmd("RPUSH").arg(&cool).arg("x").query_async(&mut c).await.unwrap();
    assert_eq!(backend.try_admit("garbage", Some(q), Some(t0)).await.unwrap(), None, "a list");
    backend.set_cooldown("garbage", Duration::from_millis(500), Some(t0)).await.unwrap();
    assert_eq!(backend.try_admit("garbage", None, Some(t0)).await.unwrap(), Some(Duration::from_millis(500)));
}

#[tokio::test]
async fn admissions_planted_in_the_future_or_of_the_wrong_type_hold_no_slot() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix("future-log");
    let backend = backend(&url, &prefix);
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let q = quota(2, 1000);
    let log = format!("{prefix}:rl:{{tenant}}:log");
    let mut c = raw(&url).await;
    for n in 0..50 {
        let _: () = redis::cmd("ZADD")
            .arg(&log)
            .arg(micros(t0 + YEAR) + n)
            .arg(format!("p{n}"))
            .query_async(&mut c)
            .await
            .unwrap();
    }
    assert_eq!(backend.try_admit("tenant", Some(q), Some(t0)).await.unwrap(), None);
    assert_eq!(backend.try_admit("tenant", Some(q), Some(t0)).await.unwrap(), None);
    // The rule still holds: the third waits for the first to leave the window, no longer.
    assert_eq!(backend.try_admit("tenant", Some(q), Some(t0)).await.unwrap(), Some(Duration::from_secs(1)));
    let _: () = redis::cmd("DEL").arg(&log).query_async(&mut c).await.unwrap();
    let _: () = redis::cmd("SET").arg(&log).arg("x").query_async(&mut c).await.unwrap();
    assert_eq!(backend.try_admit("tenant", Some(q), Some(t0)).await.unwrap(), None, "a string");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_cooldown_of_a_year_delays_a_call_no_longer_than_max_retry_after() {
    let Some(url) = redis_url() else { return };
    let sandbox = common::start(common::unlimited()).await;
    let prefix = unique_prefix("planted-cool");
    let client = common::builder(&sandbox)
        .redis_url(url.clone())
        .redis_key_prefix(prefix.clone())
        .max_retry_after(Duration::from_secs(1))
        .rate_limit(60, Duration::from_millis(500))
        .rate_limit_margin(Duration::from_millis(100))
        .build()
        .unwrap();
    let tenant = common::tenant(&client, &sandbox, 0);
    let call = || tenant.get("crm/customers").query(&[("pageSize", 1)]).send::<serde_json::Value>();
    call().await.unwrap();
    // Whoever can write to Redis sets the tenant's cooldown a year ahead, with no expiry, the
    // way `redis-cli SET <key> <µs>` would.
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{prefix}:rl:*:log")).query_async(&mut raw(&url).await).await.unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let cool = keys[0].replace(":log", ":cool");
    let until = micros(SystemTime::now() + YEAR);
    let _: () = redis::cmd("SET").arg(&cool).arg(until.to_string()).query_async(&mut raw(&url).await).await.unwrap();

    for _ in 0..2 {
        let started = Instant::now();
        call().await.unwrap();
        let took = started.elapsed();
        // Sat out up to the bound (max_retry_after, 1 s), then went ahead.
        assert!(took >= Duration::from_millis(900), "the cooldown was not honoured at all: {took:?}");
        assert!(took < Duration::from_secs(6), "stalled by a planted cooldown: {took:?}");
    }
    assert_eq!(common::route_count(&sandbox, "GET crm/v2/tenant/{tenant}/customers"), 3);
}

#[tokio::test]
async fn each_admission_is_held_for_its_own_margin_until_settled_with_what_it_measured() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix("settle");
    let limiter = RedisLimiter::new(backend(&url, &prefix));
    let other = backend(&url, &prefix);
    let q = |margin_ms| Quota { calls: 2, period: Duration::from_secs(1), margin: Duration::from_millis(margin_ms) };
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    // Admitted now (on Redis's clock) by one process with a 100 ms margin…
    let first = limiter.acquire_slot("tenant", Some(q(100))).await.unwrap().unwrap();
    let second = limiter.acquire_slot("tenant", Some(q(100))).await.unwrap().unwrap();
    assert_eq!(first.hold, MAX_HOLD, "held until answered");
    // …another process with a 10 ms margin sees them held until they are answered.
    let log = format!("{prefix}:rl:{{tenant}}:log");
    let mut c = raw(&url).await;
    let scores: Vec<(String, f64)> =
        redis::cmd("ZRANGE").arg(&log).arg(0).arg(-1).arg("WITHSCORES").query_async(&mut c).await.unwrap();
    let admitted_at = |i: usize| SystemTime::UNIX_EPOCH + Duration::from_micros(scores[i].1 as u64);
    let late = admitted_at(1).max(admitted_at(0));
    let wait = other.try_admit("tenant", Some(q(10)), Some(late)).await.unwrap().unwrap();
    assert!(wait > Duration::from_millis(3900) && wait <= MAX_HOLD + Duration::from_secs(1), "{wait:?}");
    // Answered: the first needed only 20 ms, the second 300 ms (longer than its margin).
    limiter.backend().settle("tenant", first, Duration::from_millis(20)).await.unwrap();
    limiter.backend().settle("tenant", second, Duration::from_millis(300)).await.unwrap();
    let first_frees = admitted_at(0) + Duration::from_millis(1020);
    let wait = other.try_admit("tenant", Some(q(10)), Some(admitted_at(0) + Duration::from_millis(1019))).await;
    assert_eq!(wait.unwrap(), Some(Duration::from_millis(1)));
    assert_eq!(other.try_admit("tenant", Some(q(10)), Some(first_frees)).await.unwrap(), None);
    // Now full again (the second until 1300 ms, the new one); the second frees 300 ms past its period.
    let wait = other.try_admit("tenant", Some(q(10)), Some(first_frees)).await.unwrap().unwrap();
    assert_eq!(first_frees + wait, admitted_at(1) + Duration::from_millis(1300));
    // Settling a slot no longer in the log changes nothing.
    let _: () = redis::cmd("DEL").arg(&log).query_async(&mut c).await.unwrap();
    limiter.backend().settle("tenant", first, Duration::from_millis(20)).await.unwrap();
    let n: u64 = redis::cmd("ZCARD").arg(&log).query_async(&mut c).await.unwrap();
    assert_eq!(n, 0);

    // A member planted with an absurd hold is held no longer than the longest hold (3 s);
    // one without a readable hold (an older version's) for the caller's margin.
    for (n, member) in ["x/99999999999999", "y/-5", "z/abc"].iter().enumerate() {
        let _: () =
            redis::cmd("ZADD").arg(&log).arg(micros(t0) + n as u64).arg(*member).query_async(&mut c).await.unwrap();
    }
    let q3 = Quota { calls: 3, ..q(10) };
    let wait = other.try_admit("tenant", Some(q3), Some(t0 + Duration::from_millis(5))).await.unwrap();
    assert_eq!(wait, Some(Duration::from_micros(1_005_001)), "y frees first, at 1010 ms");
    // Past y and z, x alone holds a window of one until 1000 + 3000 ms.
    let q1 = Quota { calls: 1, ..q(10) };
    let at = t0 + Duration::from_millis(1011);
    assert_eq!(other.try_admit("tenant", Some(q1), Some(at)).await.unwrap(), Some(Duration::from_millis(2989)));
}
