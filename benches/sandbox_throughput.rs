//! How many small GETs per second the sandbox serves on loopback with its limits off, so that it
//! is never the bottleneck of a client benchmark. The load comes from reqwest in this process
//! (on its own runtime), so the figure is a lower bound: client and server share the cores.
//!
//! `cargo bench -p servicetitan-benches --bench sandbox_throughput` (env: CALLS, CONCURRENCY)

use std::sync::Arc;
use std::time::Instant;

mod common;

use common::{env_or, fetch_token, unlimited_sandbox};

fn main() {
    let calls = env_or("CALLS", 200_000);
    let concurrency = env_or("CONCURRENCY", 64);
    let sandbox = unlimited_sandbox();
    let base = sandbox.base_url().to_string();
    let tenant = sandbox.config().tenants[0].clone();
    let app_key = sandbox.config().app_keys[0].clone();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async move {
        let http = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap();
        let token = Arc::new(fetch_token(&http, &base, &tenant).await);
        let url = Arc::new(format!("{base}/settings/v2/tenant/{}/business-units/700000001", tenant.id));
        let run = |n: usize| {
            let (http, url, token, app_key) = (http.clone(), url.clone(), token.clone(), app_key.clone());
            async move {
                let per_task = n / concurrency;
                let tasks: Vec<_> = (0..concurrency)
                    .map(|_| {
                        let (http, url, token, app_key) = (http.clone(), url.clone(), token.clone(), app_key.clone());
                        tokio::spawn(async move {
                            for _ in 0..per_task {
                                let r = http
                                    .get(url.as_str())
                                    .header("ST-App-Key", app_key.as_str())
                                    .bearer_auth(token.as_str())
                                    .send()
                                    .await
                                    .unwrap();
                                assert_eq!(r.status(), 200);
                                r.bytes().await.unwrap();
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
                per_task * concurrency
            }
        };
        run(concurrency * 50).await; // warm-up: connections, caches
        let started = Instant::now();
        let done = run(calls).await;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "sandbox_throughput: {done} GETs, {concurrency} in flight, {secs:.2} s: {:.0} GETs/s (client and server on the same {} cores)",
            done as f64 / secs,
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
        );
    });
}
