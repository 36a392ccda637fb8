//! Redis-backed limiting: the cost of one admission (in-process vs Redis on loopback); how soon a
//! process waiting on another's token fetch gets the token, woken by pub/sub or polling every
//! 20 ms; and the aggregate throughput of 1, 2, 4 and 8 OS processes sharing one tenant through
//! Redis against the sandbox's strict limiter (60 per second), as a fraction of the limit.
//!
//! `cargo bench -p servicetitan-benches --bench redis_admission` (env: ST_TEST_REDIS_URL, else a
//! redis-server of its own if one is installed; RUN_SECONDS=6.6 per run (not SECONDS, which bash keeps for itself); PROCESSES=1,2,4,8;
//! WAKE_ROUNDS=30).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::future::BoxFuture;
use servicetitan::auth::{CachedToken, FetchLock, TokenKey, TokenStore};
use servicetitan::clock::SystemClock;
use servicetitan::limit::{InProcessLimiter, Quota, RateLimiter};
use servicetitan::redis::{RedisBackend, RedisLimiter, RedisSettings, RedisTokenStore};
use servicetitan::{Client, Secret, TenantCredentials};
use servicetitan_sandbox::{BackgroundSandbox, Fault, LimitConfig, SandboxConfig};

fn main() {
    if std::env::var("REDIS_BENCH_WORKER").is_ok() {
        return worker();
    }
    let (url, _server) = match std::env::var("ST_TEST_REDIS_URL").ok().filter(|u| !u.is_empty()) {
        Some(url) => (url, None),
        None => match own_server() {
            Some((url, child)) => (url, Some(KillOnDrop(child))),
            None => {
                println!("skipped: set ST_TEST_REDIS_URL or install redis-server (apt-get install redis-server)");
                return;
            }
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(admission_cost(&url));
    runtime.block_on(token_wake(&url));
    throughput(&url);
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn own_server() -> Option<(String, Child)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .ok()?;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((format!("redis://127.0.0.1:{port}"), child));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn prefix(what: &str) -> String {
    format!("bench-{what}-{}", SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos())
}

async fn admission_cost(url: &str) {
    // A quota that never makes anyone wait: what is measured is the admission itself.
    let quota = Some(Quota { calls: u32::MAX / 2, period: Duration::from_secs(1), margin: Duration::ZERO });
    let settings = RedisSettings::new(url).unwrap().key_prefix(prefix("cost")).unwrap();
    let redis = Arc::new(RedisLimiter::new(Arc::new(RedisBackend::new(settings, Arc::new(SystemClock)).unwrap())));
    let local = Arc::new(InProcessLimiter::new());
    println!("admission cost, one caller after another (µs per call, median of 5 runs):");
    for (name, limiter, calls) in [
        ("in-process", local.clone() as Arc<dyn RateLimiter>, 200_000),
        ("redis", redis.clone() as Arc<dyn RateLimiter>, 5_000),
    ] {
        // Fresh keys per run: the log of a key grows with every admission in its window.
        let mut runs = Vec::new();
        for run in 0..5 {
            let key = format!("k{run}");
            let started = Instant::now();
            for _ in 0..calls {
                limiter.acquire(&key, quota).await.unwrap();
            }
            runs.push(started.elapsed().as_secs_f64() * 1e6 / calls as f64);
        }
        runs.sort_by(f64::total_cmp);
        println!("  {name:>10}: {:8.2} µs/call", runs[2]);
    }
    // Many callers of one key in one process queue behind one Redis round trip each.
    let started = Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let redis = redis.clone();
            tokio::spawn(async move {
                for _ in 0..1000 {
                    redis.acquire("concurrent", quota).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    println!("  redis, 8 concurrent callers of one key: {:.0} admissions/s", 8000.0 / started.elapsed().as_secs_f64());
}

/// The Redis token store without its wake-ups: [`TokenStore::watch_fetch`] left at its default,
/// so a waiter looks for the token every 20 ms, as every waiter did before pub/sub.
#[derive(Debug)]
struct Polling(RedisTokenStore);

impl TokenStore for Polling {
    fn get<'a>(&'a self, key: &'a TokenKey) -> BoxFuture<'a, servicetitan::Result<Option<CachedToken>>> {
        self.0.get(key)
    }
    fn put<'a>(&'a self, key: &'a TokenKey, token: &'a CachedToken) -> BoxFuture<'a, servicetitan::Result<()>> {
        self.0.put(key, token)
    }
    fn remove_if<'a>(&'a self, key: &'a TokenKey, token: &'a Secret) -> BoxFuture<'a, servicetitan::Result<()>> {
        self.0.remove_if(key, token)
    }
    fn try_lock_fetch<'a>(
        &'a self,
        key: &'a TokenKey,
        ttl: Duration,
    ) -> BoxFuture<'a, servicetitan::Result<Option<FetchLock>>> {
        self.0.try_lock_fetch(key, ttl)
    }
    fn unlock_fetch<'a>(&'a self, key: &'a TokenKey, lock: &'a FetchLock) -> BoxFuture<'a, servicetitan::Result<()>> {
        self.0.unlock_fetch(key, lock)
    }
}

/// Two clients (two processes, as far as Redis can tell: a connection each) on one tenant:
/// the first fetches a token that takes 200 ms, the second asks 50 ms later and waits for it.
/// The wake latency is how long after the first client's call the second one's ends (both then
/// make one API call).
async fn token_wake(url: &str) {
    let rounds: usize = std::env::var("WAKE_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let config = SandboxConfig {
        rate_limit: LimitConfig::disabled(),
        report_limit: LimitConfig::disabled(),
        ..SandboxConfig::default()
    };
    let sandbox = BackgroundSandbox::start(config).expect("sandbox starts");
    let t = sandbox.config().tenants[0].clone();
    let creds = TenantCredentials::new(t.id, t.client_id.clone(), t.client_secret.clone());
    println!("\nwaiting on another process's token fetch: the waiter ends after the fetcher by ({rounds} rounds)");
    println!("{:>28} {:>9} {:>9} {:>9}", "waiter woken by", "median", "p90", "max");
    for polling in [true, false] {
        let mut behind = Vec::new();
        for _ in 0..rounds {
            let prefix = prefix("wake");
            let builder = || {
                Client::builder()
                    .app_key(sandbox.config().app_keys[0].as_str())
                    .auth_url(sandbox.base_url())
                    .api_url(sandbox.base_url())
                    .redis_url(url)
                    .redis_key_prefix(prefix.clone())
            };
            let fetcher = builder().build().unwrap();
            let waiter = if polling {
                let settings = RedisSettings::new(url).unwrap().key_prefix(prefix.clone()).unwrap();
                let backend = Arc::new(RedisBackend::new(settings, Arc::new(SystemClock)).unwrap());
                builder().token_store(Arc::new(Polling(RedisTokenStore::new(backend)))).build().unwrap()
            } else {
                builder().build().unwrap()
            };
            sandbox
                .try_add_fault(Fault { route: "connect/token".into(), delay_ms: 200, count: 1, ..Default::default() })
                .unwrap();
            let call = |client: &Client| {
                let tenant = client.tenant(creds.clone());
                async move {
                    tenant.get("crm/customers").query(&[("pageSize", 1)]).send::<serde_json::Value>().await.unwrap();
                    Instant::now()
                }
            };
            let fetching = tokio::spawn(call(&fetcher));
            tokio::time::sleep(Duration::from_millis(50)).await;
            let waiting = tokio::spawn(call(&waiter));
            let (fetched, waited) = (fetching.await.unwrap(), waiting.await.unwrap());
            assert_eq!(waiter.stats().token_fetches, 0, "the waiter used the fetcher's token");
            behind.push(waited.saturating_duration_since(fetched).as_secs_f64() * 1e3);
        }
        behind.sort_by(f64::total_cmp);
        let at = |q: f64| behind[((behind.len() - 1) as f64 * q).round() as usize];
        let name = if polling { "polling every 20 ms" } else { "pub/sub (polls at 200 ms)" };
        println!("{name:>28} {:>6.2} ms {:>6.2} ms {:>6.2} ms", at(0.5), at(0.9), at(1.0));
    }
}

fn throughput(url: &str) {
    let seconds: f64 = std::env::var("RUN_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(6.6);
    let counts: Vec<usize> = std::env::var("PROCESSES")
        .unwrap_or_else(|_| "1,2,4,8".into())
        .split(',')
        .map(|n| n.trim().parse().unwrap())
        .collect();
    println!(
        "\nN processes (8 callers each) sharing one tenant through Redis, {seconds} s, server limit 60/s sliding:"
    );
    println!(
        "{:>10} {:>8} {:>10} {:>9} {:>12} {:>8} {:>14}",
        "processes", "calls", "calls/s", "of 60", "of 60/1.1s", "429s", "token fetches"
    );
    let exe = std::env::current_exe().unwrap();
    for n in counts {
        let sandbox = BackgroundSandbox::start(SandboxConfig::default()).expect("sandbox starts");
        let t = sandbox.config().tenants[0].clone();
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64;
        // One prefix for the run: the processes share it, and no earlier run's keys.
        let shared = prefix("procs");
        let children: Vec<_> = (0..n)
            .map(|_| {
                Command::new(&exe)
                    .env("REDIS_BENCH_WORKER", "1")
                    .env("ST_APP_KEY", &sandbox.config().app_keys[0])
                    .env("ST_AUTH_URL", sandbox.base_url())
                    .env("ST_API_URL", sandbox.base_url())
                    .env("ST_TENANT_ID", t.id.to_string())
                    .env("ST_CLIENT_ID", &t.client_id)
                    .env("ST_CLIENT_SECRET", &t.client_secret)
                    .env("ST_REDIS_URL", url)
                    .env("ST_REDIS_KEY_PREFIX", &shared)
                    .env("START_AT_MS", (now + 1000 + 100 * n as u64).to_string())
                    .env("RUN_MS", ((seconds * 1000.0) as u64).to_string())
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut calls = 0u64;
        for child in children {
            let out = child.wait_with_output().unwrap();
            calls += String::from_utf8_lossy(&out.stdout).trim().parse::<u64>().unwrap_or(0);
        }
        let stats = sandbox.stats();
        let tenant = &stats["tenants"][t.id.to_string()];
        let rate = calls as f64 / seconds;
        println!(
            "{n:>10} {calls:>8} {rate:>10.1} {:>8.1}% {:>11.1}% {:>8} {:>14}",
            100.0 * rate / 60.0,
            100.0 * rate / (60.0 / 1.1),
            tenant["rejected"].as_u64().unwrap_or(0),
            stats["token_requests_total"].as_u64().unwrap_or(0)
        );
    }
}

/// One process of the throughput run: 8 callers until the end, then the count of calls done.
fn worker() {
    let start: u64 = std::env::var("START_AT_MS").unwrap().parse().unwrap();
    let run_ms: u64 = std::env::var("RUN_MS").unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let done = runtime.block_on(async move {
        let client = Client::from_env().unwrap();
        let tenant = client.tenant(TenantCredentials::from_env().unwrap());
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64;
        tokio::time::sleep(Duration::from_millis(start.saturating_sub(now))).await;
        let end = Instant::now() + Duration::from_millis(run_ms);
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let tenant = tenant.clone();
                tokio::spawn(async move {
                    let mut done = 0u64;
                    while let Some(left) = end.checked_duration_since(Instant::now()) {
                        let call = tenant.get("crm/customers").query(&[("pageSize", 1)]).timeout(left);
                        if call.send::<serde_json::Value>().await.is_ok() && Instant::now() <= end {
                            done += 1;
                        }
                    }
                    done
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total
    });
    println!("{done}");
}
