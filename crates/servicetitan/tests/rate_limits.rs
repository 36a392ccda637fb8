//! Rate limits against the sandbox's strict limiter: full use of the budget with zero 429s in
//! both window modes, tenants at their own limits, `Retry-After` honoured by every caller of a
//! tenant, and the per-report limit.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use servicetitan::Tenant;
use servicetitan_sandbox::{Fault, LimitConfig, SandboxConfig, WindowMode};

/// Unlimited demand on each tenant for `run`: `workers` callers per tenant, each calling again
/// as soon as its call returns. Returns the calls completed per tenant.
async fn saturate(tenants: &[Tenant], workers: usize, run: Duration) -> Vec<u64> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    let counts: Vec<Arc<AtomicU64>> = tenants.iter().map(|_| Arc::new(AtomicU64::new(0))).collect();
    for (tenant, count) in tenants.iter().zip(&counts) {
        for _ in 0..workers {
            let (tenant, count, stop) = (tenant.clone(), count.clone(), stop.clone());
            handles.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    tenant.get("crm/customers").query(&[("pageSize", 1)]).send_json().await.expect("call succeeds");
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    tokio::time::sleep(run).await;
    stop.store(true, Ordering::Relaxed);
    // Calls already waiting for a slot finish; they are not counted as within the run.
    let counted: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    for h in handles {
        h.await.unwrap();
    }
    counted
}

async fn sustained_run(mode: WindowMode) {
    let limit = LimitConfig { enabled: true, calls: 60, window_ms: 1000, mode, phase_ms: 370 };
    let sandbox = start(SandboxConfig { rate_limit: limit, ..SandboxConfig::default() }).await;
    let client = builder(&sandbox).build().unwrap();
    let tenant = tenant(&client, &sandbox, 0);
    // Warm the token and a connection so the run measures the limiter alone.
    tenant.get("crm/customers").send_json().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let run = Duration::from_millis(3500);
    let started = Instant::now();
    let done = saturate(std::slice::from_ref(&tenant), 80, run).await[0];
    let elapsed = started.elapsed().min(run);

    assert_eq!(stat(&sandbox, "/tenants/1001/rejected"), 0, "{mode:?}: the server drew a 429");
    assert_eq!(client.stats().rate_limited, 0);
    assert!(stat(&sandbox, "/tenants/1001/max_in_window") <= 60);
    // The steady state is 60 per 1.1 s = 54.5/s, 91% of the budget; the first window's burst
    // only adds to it.
    let rate = done as f64 / elapsed.as_secs_f64();
    assert!(rate >= 0.9 * 60.0, "{mode:?}: {done} calls in {elapsed:?} = {rate:.1}/s");
    println!("{mode:?}: {done} calls in {elapsed:?} = {rate:.1}/s, 0 rejected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_unlimited_demand_draws_no_429_and_uses_the_budget_in_both_window_modes() {
    let _serial = TIMING.lock().await;
    sustained_run(WindowMode::Sliding).await;
    sustained_run(WindowMode::Fixed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tenants_run_side_by_side_each_at_its_own_limit() {
    let _serial = TIMING.lock().await;
    let sandbox = start(SandboxConfig::default()).await;
    let client = builder(&sandbox).build().unwrap();
    let tenants: Vec<Tenant> = (0..3).map(|i| tenant(&client, &sandbox, i)).collect();
    for t in &tenants {
        t.get("crm/customers").send_json().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let run = Duration::from_millis(3000);
    let done = saturate(&tenants, 40, run).await;
    for (i, id) in [1001, 1002, 1003].iter().enumerate() {
        assert_eq!(stat(&sandbox, &format!("/tenants/{id}/rejected")), 0, "tenant {id} drew a 429");
        // Each tenant gets its own 60/s: a shared limiter would give each a third.
        let rate = done[i] as f64 / run.as_secs_f64();
        assert!(rate >= 0.9 * 60.0, "tenant {id}: {rate:.1}/s");
    }
    assert_eq!(client.stats().rate_limited, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_pauses_every_caller_of_the_tenant_and_no_other() {
    let sandbox = start(SandboxConfig::default()).await;
    let client = builder(&sandbox).build().unwrap();
    let (t1, t2) = (tenant(&client, &sandbox, 0), tenant(&client, &sandbox, 1));
    // Tokens first, so that only the API calls below are timed.
    t1.get("settings/business-units").send_json().await.unwrap();
    t2.get("settings/business-units").send_json().await.unwrap();
    let admitted_before = stat(&sandbox, "/tenants/1001/admitted");
    sandbox.add_fault(Fault {
        route: "crm/v2/tenant/1001/customers*".into(),
        status: Some(429),
        retry_after: Some("3".into()),
        count: 1,
        ..Fault::default()
    });
    let first = tokio::spawn({
        let t1 = t1.clone();
        async move { t1.get("crm/customers").send_json().await }
    });
    // Wait until the client has read the 429 (it sets the pause in the same step).
    while client.stats().rate_limited == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let paused = Instant::now();
    let others: Vec<_> = (0..10)
        .map(|_| {
            let t1 = t1.clone();
            tokio::spawn(async move { t1.get("crm/customers").send_json().await })
        })
        .collect();
    // Another tenant is not held up.
    for _ in 0..5 {
        t2.get("crm/customers").send_json().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(paused.elapsed() < Duration::from_millis(2500), "the machine stalled; the check below would be void");
    assert_eq!(
        stat(&sandbox, "/tenants/1001/admitted"),
        admitted_before,
        "a caller of tenant 1001 ignored Retry-After"
    );

    first.await.unwrap().expect("the 429'd call is resent");
    for o in others {
        o.await.unwrap().expect("paused calls go through afterwards");
    }
    assert_eq!(stat(&sandbox, "/tenants/1001/admitted"), admitted_before + 11);
    assert_eq!(client.stats().rate_limited, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_without_retry_after_is_timed_by_its_title() {
    let sandbox = start(unlimited()).await;
    let client = builder(&sandbox).build().unwrap();
    let tenant = tenant(&client, &sandbox, 0);
    tenant.get("crm/customers").send_json().await.unwrap();
    sandbox.add_fault(Fault {
        route: "crm/*".into(),
        method: Some("POST".into()),
        status: Some(429),
        title: Some("Rate limit is exceeded. Try again in 2 seconds.".into()),
        count: 1,
        ..Fault::default()
    });
    let started = Instant::now();
    // A 429 was not processed, so even a POST is resent.
    let created: serde_json::Value = tenant.post("crm/customers").json(&new_customer()).send().await.unwrap();
    assert!(created["id"].as_i64().is_some());
    assert!(started.elapsed() >= Duration::from_millis(1900), "waited {:?}", started.elapsed());
    assert_eq!(route_count(&sandbox, "POST crm/v2/tenant/{tenant}/customers"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sixth_run_of_a_report_within_the_window_waits_instead_of_drawing_a_429() {
    let report_limit = LimitConfig { enabled: true, calls: 5, window_ms: 2000, mode: WindowMode::Sliding, phase_ms: 0 };
    let sandbox = start(SandboxConfig { report_limit, ..SandboxConfig::default() }).await;
    let client = builder(&sandbox).report_rate_limit(5, Duration::from_secs(2)).build().unwrap();
    let tenant = tenant(&client, &sandbox, 0);
    let started = Instant::now();
    let runs: Vec<_> = (0..6)
        .map(|_| {
            let tenant = tenant.clone();
            tokio::spawn(
                async move { tenant.report("operations", 175).parameter("From", "2026-01-01").records().await },
            )
        })
        .collect();
    for run in runs {
        assert_eq!(run.await.unwrap().expect("report runs").len(), 2500);
    }
    // (JSON pointer: "~1" stands for the "/" in the key "1001/175".)
    assert_eq!(stat(&sandbox, "/reports/1001~1175/rejected"), 0, "the sixth run drew a 429");
    assert_eq!(stat(&sandbox, "/reports/1001~1175/admitted"), 6);
    assert_eq!(client.stats().rate_limited, 0);
    assert!(started.elapsed() >= Duration::from_secs(2), "the sixth run waited for the window");
    assert!(client.stats().throttle_wait >= Duration::from_millis(1500));
}

fn new_customer() -> serde_json::Value {
    let address = serde_json::json!({"street": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701", "country": "USA"});
    serde_json::json!({
        "name": "Ada Lovelace",
        "type": "Residential",
        "address": address,
        "locations": [{"name": "Home", "address": address}],
    })
}
