//! Rate-limit utilisation: calls per second achieved at unlimited demand against the sandbox's
//! strict limiter (60 per second per tenant), as a fraction of 60, with the 429s drawn, in both
//! window modes and for a few jitter margins.
//!
//! `cargo bench -p servicetitan-benches --bench rate_limit_utilisation` (env: SECONDS=12, WORKERS=80, MARGINS=100,50,0)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use servicetitan::{Client, TenantCredentials};
use servicetitan_sandbox::{BackgroundSandbox, LimitConfig, SandboxConfig, WindowMode};

fn main() {
    let seconds: f64 = std::env::var("SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(12.0);
    let workers: usize = std::env::var("WORKERS").ok().and_then(|v| v.parse().ok()).unwrap_or(80);
    let margins: Vec<u64> = std::env::var("MARGINS")
        .unwrap_or_else(|_| "100,50,0".into())
        .split(',')
        .map(|m| m.trim().parse().unwrap())
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    println!("unlimited demand ({workers} callers) on one tenant for {seconds} s against a 60/s server limit");
    println!(
        "{:>8} {:>10} {:>12} {:>14} {:>10} {:>14} {:>9}",
        "mode", "margin ms", "overall/s", "steady-state/s", "of 60", "server 429s", "max/win"
    );
    for mode in [WindowMode::Sliding, WindowMode::Fixed] {
        for &margin in &margins {
            let limit = LimitConfig { enabled: true, calls: 60, window_ms: 1000, mode, phase_ms: 370 };
            let config = SandboxConfig { rate_limit: limit, ..Default::default() };
            let sandbox = BackgroundSandbox::start(config).expect("sandbox starts");
            let base = sandbox.base_url().to_string();
            let t = sandbox.config().tenants[0].clone();
            let app_key = sandbox.config().app_keys[0].clone();
            let completions = Arc::new(Mutex::new(Vec::<Duration>::new()));
            let (overall, steady) = runtime.block_on({
                let completions = completions.clone();
                async move {
                    let client = Client::builder()
                        .app_key(app_key)
                        .auth_url(base.clone())
                        .api_url(base)
                        .rate_limit_margin(Duration::from_millis(margin))
                        .build()
                        .unwrap();
                    let tenant = client.tenant(TenantCredentials::new(t.id, t.client_id, t.client_secret));
                    tenant.get("crm/customers").send_json().await.unwrap();
                    tokio::time::sleep(Duration::from_millis(1200)).await;
                    let stop = Arc::new(AtomicBool::new(false));
                    let started = Instant::now();
                    let handles: Vec<_> = (0..workers)
                        .map(|_| {
                            let (tenant, stop, completions) = (tenant.clone(), stop.clone(), completions.clone());
                            tokio::spawn(async move {
                                while !stop.load(Ordering::Relaxed) {
                                    tenant.get("crm/customers").query(&[("pageSize", 1)]).send_json().await.unwrap();
                                    completions.lock().unwrap().push(started.elapsed());
                                }
                            })
                        })
                        .collect();
                    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
                    stop.store(true, Ordering::Relaxed);
                    for h in handles {
                        h.await.unwrap();
                    }
                    let mut done = completions.lock().unwrap().clone();
                    done.sort();
                    let run = Duration::from_secs_f64(seconds);
                    let done: Vec<Duration> = done.into_iter().filter(|d| *d < run).collect();
                    let overall = done.len() as f64 / seconds;
                    // Steady state: calls per second between the 60th completion and the last
                    // multiple of 60 after it, which leaves out the burst an empty window
                    // admits at the start and counts whole windows only.
                    let (i0, i1) = (60, 60 + (done.len().saturating_sub(61) / 60) * 60);
                    let steady = if i1 > i0 { (i1 - i0) as f64 / (done[i1] - done[i0]).as_secs_f64() } else { overall };
                    (overall, steady)
                }
            });
            let stats = sandbox.stats();
            let rejected = stats["tenants"]["1001"]["rejected"].as_u64().unwrap_or(0);
            let max_in_window = stats["tenants"]["1001"]["max_in_window"].as_u64().unwrap_or(0);
            println!(
                "{:>8} {:>10} {:>12.1} {:>14.1} {:>9.1}% {:>14} {:>9}",
                format!("{mode:?}"),
                margin,
                overall,
                steady,
                steady / 60.0 * 100.0,
                rejected,
                max_in_window
            );
        }
    }
}
