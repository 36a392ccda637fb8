//! Engine overhead per call: the engine (token cache, limiter bookkeeping, routing, retries,
//! typed errors, spans) against plain reqwest doing the same GETs with a fixed token, both
//! against the sandbox with its limits off and the engine's limiters off. Target: within 10%.
//!
//! `cargo bench -p servicetitan-benches --bench engine_overhead` (env: CALLS, CONCURRENCY, ROUNDS, PAGE_SIZE,
//! PLAIN_TIMEOUT=1 to give plain reqwest a per-request timeout like the engine's; ONLY=plain|engine to run
//! one side alone, e.g. under `perf stat`)

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use servicetitan::{Client, TenantCredentials};
mod common;

use common::{env_or, fetch_token, unlimited_sandbox};

/// CPU time of the whole process (client and sandbox), from /proc/self/stat, in seconds.
/// Steadier than wall time on a shared machine: other processes do not add to it.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the file, 12 and 13 after the name.
    let ticks: f64 = fields.get(11..13).map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum()).unwrap_or(0.0);
    ticks / 100.0
}

/// Runs `calls` calls of `one`, `concurrency` at a time; returns the wall and CPU time.
async fn timed<F, Fut>(calls: usize, concurrency: usize, one: F) -> (Duration, f64)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (started, cpu) = (Instant::now(), cpu_seconds());
    futures::stream::iter(0..calls).map(|_| one()).buffer_unordered(concurrency).for_each(|_| async {}).await;
    (started.elapsed(), cpu_seconds() - cpu)
}

fn median<T: PartialOrd + Copy>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let calls = env_or("CALLS", 5000);
    let rounds = env_or("ROUNDS", 5);
    let page_size = env_or("PAGE_SIZE", 10);
    let sandbox = unlimited_sandbox();
    let base = sandbox.base_url().to_string();
    let tenant_config = sandbox.config().tenants[0].clone();
    let app_key = sandbox.config().app_keys[0].clone();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    runtime.block_on(async move {
        // Plain reqwest: what a user would write by hand, with a token fetched once.
        let http = reqwest::Client::builder().build().unwrap();
        let token = fetch_token(&http, &base, &tenant_config).await;
        let bearer = Arc::new(format!("Bearer {token}"));
        let url = Arc::new(format!("{base}/crm/v2/tenant/{}/customers", tenant_config.id));
        let page_size_text = page_size.to_string();
        // PLAIN_TIMEOUT=1 gives the hand-written client the per-request timeout every
        // production client sets (the engine always has one: the attempt timeout).
        let plain_timeout = std::env::var_os("PLAIN_TIMEOUT").is_some();
        let plain = || {
            let (http, url, bearer, app_key, ps) = (&http, url.clone(), bearer.clone(), &app_key, &page_size_text);
            async move {
                let mut request = http
                    .get(url.as_str())
                    .query(&[("pageSize", ps.as_str())])
                    .header("Authorization", bearer.as_str())
                    .header("ST-App-Key", app_key.as_str());
                if plain_timeout {
                    request = request.timeout(Duration::from_secs(110));
                }
                let response = request.send().await.unwrap();
                assert!(response.status().is_success());
                let body: serde_json::Value = response.json().await.unwrap();
                assert!(body["data"].is_array());
            }
        };

        let client = Client::builder()
            .app_key(app_key.clone())
            .auth_url(base.clone())
            .api_url(base.clone())
            .disable_rate_limits()
            .build()
            .unwrap();
        let tenant = client.tenant(TenantCredentials::new(
            tenant_config.id,
            tenant_config.client_id.clone(),
            tenant_config.client_secret.clone(),
        ));
        let engine = || {
            let tenant = &tenant;
            async move {
                let body = tenant.get("crm/customers").query(&[("pageSize", page_size)]).send_json().await.unwrap();
                assert!(body["data"].is_array());
            }
        };

        // Warm both pools and the token cache.
        timed(200, 16, plain).await;
        timed(200, 16, engine).await;

        println!(
            "engine overhead: {calls} GET crm/customers?pageSize={page_size} per run, median of {rounds} interleaved runs{}",
            if plain_timeout { ", reqwest with a per-request timeout" } else { "" }
        );
        println!("(wall: µs per call; cpu: µs of process CPU per call, client and sandbox together)");
        println!(
            "{:>9} {:>13} {:>13} {:>8} {:>13} {:>13} {:>8}",
            "in flight", "reqwest wall", "engine wall", "ratio", "reqwest cpu", "engine cpu", "ratio"
        );
        // ONLY=plain or ONLY=engine runs one side alone (for `perf stat`).
        let only = std::env::var("ONLY").unwrap_or_default();
        if !only.is_empty() {
            let concurrency = env_or("CONCURRENCY", 16);
            for _ in 0..rounds {
                if only == "plain" {
                    timed(calls, concurrency, plain).await;
                } else {
                    timed(calls, concurrency, engine).await;
                }
            }
            return;
        }
        for concurrency in [1usize, env_or("CONCURRENCY", 16)] {
            let (mut pw, mut ew, mut pc, mut ec) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for round in 0..rounds {
                // Alternate which goes first, so that neither always runs on a warmer machine.
                if round % 2 == 1 {
                    let (w, c) = timed(calls, concurrency, engine).await;
                    ew.push(w.as_secs_f64());
                    ec.push(c);
                }
                let (w, c) = timed(calls, concurrency, plain).await;
                pw.push(w.as_secs_f64());
                pc.push(c);
                if round % 2 == 0 {
                    let (w, c) = timed(calls, concurrency, engine).await;
                    ew.push(w.as_secs_f64());
                    ec.push(c);
                }
            }
            let per = |s: f64| s * 1e6 / calls as f64;
            let (pw, ew, pc, ec) = (median(pw), median(ew), median(pc), median(ec));
            println!(
                "{:>9} {:>13.1} {:>13.1} {:>8.3} {:>13.1} {:>13.1} {:>8.3}",
                concurrency,
                per(pw),
                per(ew),
                ew / pw,
                per(pc),
                per(ec),
                ec / pc
            );
        }
        let stats = client.stats();
        println!("engine stats: {stats:?}");
        assert_eq!(stats.token_fetches, 1);
        assert_eq!(stats.retries, 0);
    });
}
