//! The adaptive margin on a jittery link: against the sandbox's strict sliding window, with every
//! call reaching its limiter 0–80 ms late, unlimited demand on one tenant draws no 429 once the
//! margin has measured the link, and uses most of the budget (a fixed 100 ms margin uses 91%).
//! The benchmark (`benches/rate_limit_utilisation.rs`) carries the full figures.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use servicetitan_sandbox::{JitterConfig, LimitConfig, Sandbox, SandboxConfig, WindowMode};

/// The sandbox's (admitted, rejected) for tenant 1001.
fn counts(sandbox: &Sandbox) -> (u64, u64) {
    (stat(sandbox, "/tenants/1001/admitted"), stat(sandbox, "/tenants/1001/rejected"))
}

/// When the sandbox's admitted count first reached each value, read every 5 ms.
///
/// Unlimited demand admits in bursts (an empty window takes all 60 slots at once, and each
/// comes back a period and a hold later): counts between two arbitrary instants are off by up
/// to a burst, so rates are taken between the moments the count reached values a whole
/// number of windows (60 calls) apart.
fn rate_over_whole_windows(samples: &[(Instant, u64)]) -> f64 {
    // The first count seen was reached before sampling began; the next one is seen arriving.
    let (k0, k1) = (samples[0].1 + 1, samples[samples.len() - 1].1);
    let k1 = k0 + (k1 - k0) / 60 * 60;
    let reached = |k: u64| samples.iter().find(|s| s.1 >= k).map(|s| s.0).unwrap();
    (k1 - k0) as f64 / (reached(k1) - reached(k0)).as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_0_to_80_ms_of_jitter_the_adaptive_margin_draws_no_429_and_uses_the_budget() {
    let _timing = TIMING.lock().await;
    let limit = LimitConfig { enabled: true, calls: 60, window_ms: 1000, mode: WindowMode::Sliding, phase_ms: 0 };
    let config = SandboxConfig { rate_limit: limit, inbound_jitter: JitterConfig::uniform(80), ..Default::default() };
    let sandbox = start(config).await;
    let client = builder(&sandbox).build().unwrap();
    let tenant = tenant(&client, &sandbox, 0);

    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..40)
        .map(|_| {
            let (tenant, stop, errors) = (tenant.clone(), stop.clone(), errors.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if tenant.get("crm/customers").query(&[("pageSize", 1)]).send_json().await.is_err() {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // Warm-up: the first window's burst, and the round trips the margin needs.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, rejected_before) = counts(&sandbox);
    let mut samples = Vec::new();
    let until = Instant::now() + Duration::from_secs(7);
    while Instant::now() < until {
        samples.push((Instant::now(), counts(&sandbox).0));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (_, rejected_after) = counts(&sandbox);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let rate = rate_over_whole_windows(&samples);
    let stats = client.stats();
    eprintln!(
        "steady state: {rate:.1} calls/s ({:.1}% of 60), 429s {rejected_after} ({} at steady state), margin {:?}, {stats:?}",
        rate / 60.0 * 100.0,
        rejected_after - rejected_before,
        client.rate_limit_margin()
    );
    assert_eq!(errors.load(Ordering::Relaxed), 0, "every call succeeded");
    assert_eq!(rejected_after - rejected_before, 0, "no 429 once the margin has measured the link");
    assert!(stat(&sandbox, "/tenants/1001/max_in_window") <= 60);
    assert!(rate >= 0.93 * 60.0, "{rate:.1} calls/s");
}
