//! Asynchronous reports against the sandbox: a query answered 202 is polled to its end, its
//! pages read from one token under one report-limit slot; a caller that gives up (a dropped
//! call, a deadline) leaves no query running; a server without the endpoint gets the
//! synchronous call.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use servicetitan::ErrorCode;
use servicetitan_sandbox::{Fault, LimitConfig, SandboxConfig};

fn queries(sandbox: &servicetitan_sandbox::Sandbox) -> Value {
    sandbox.stats()["report_queries"].clone()
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_report_is_polled_to_its_end_under_one_report_slot() {
    let config = SandboxConfig { report_query_ms: 400, report_limit: LimitConfig::per_report(), ..unlimited() };
    let sandbox = start(config).await;
    let client = builder(&sandbox).build().unwrap();
    let t = tenant(&client, &sandbox, 0);
    let records = t.report("operations", 175).parameter("From", "2026-01-01").page_size(1000).records().await.unwrap();
    assert_eq!(records.len(), 2500);
    assert!(records[0].contains_key("JobId"));
    let q = queries(&sandbox);
    assert_eq!(q["started"], 1);
    assert!(q["pending_polls"].as_u64().unwrap() >= 1, "{q}");
    assert_eq!(q["completed_polls"], 3, "three pages from one token: {q}");
    assert_eq!(q["deleted"], 0, "a query read to its end is not cancelled: {q}");
    assert_eq!(stat(&sandbox, "/reports/1001~1175/admitted"), 1, "one slot for the run");
    assert_eq!(
        route_count(&sandbox, "POST reporting/v2/tenant/{tenant}/report-category/operations/reports/175/data/query"),
        1
    );
    // Polling backs off: a 400 ms query is not asked about dozens of times.
    assert!(q["pending_polls"].as_u64().unwrap() <= 6, "{q}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_dropped_while_running_is_cancelled_on_the_server() {
    let sandbox = start(SandboxConfig { report_query_ms: 60_000, ..unlimited() }).await;
    let client = builder(&sandbox).build().unwrap();
    let t = tenant(&client, &sandbox, 0);
    let run = tokio::spawn(async move { t.report("operations", 175).parameter("From", "2026-01-01").records().await });
    wait_until("the query started", || queries(&sandbox)["started"] == 1).await;
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
    wait_until("the query was deleted", || queries(&sandbox)["deleted"] == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_still_running_at_the_deadline_times_out_and_is_cancelled() {
    let sandbox = start(SandboxConfig { report_query_ms: 60_000, ..unlimited() }).await;
    let client = builder(&sandbox).timeout(Duration::from_millis(1500)).build().unwrap();
    let t = tenant(&client, &sandbox, 0);
    let e = t.report("operations", 175).parameter("From", "2026-01-01").records().await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Timeout, "{e}");
    assert!(e.message().contains("still running"), "{e}");
    wait_until("the query was deleted", || queries(&sandbox)["deleted"] == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_asynchronous_endpoint_the_synchronous_one_serves_the_run() {
    let sandbox = start(SandboxConfig { report_limit: LimitConfig::per_report(), ..unlimited() }).await;
    sandbox.add_fault(Fault {
        route: "reporting/v2/tenant/*/report-category/*/reports/*/data/query".into(),
        status: Some(404),
        count: 0,
        ..Fault::default()
    });
    let client = builder(&sandbox).build().unwrap();
    let t = tenant(&client, &sandbox, 0);
    let records = t.report("operations", 175).parameter("From", "2026-01-01").records().await.unwrap();
    assert_eq!(records.len(), 2500);
    assert_eq!(
        route_count(
            &sandbox,
            "POST reporting/v2/tenant/{tenant}/report-category/{report_category}/reports/{reportId}/data"
        ),
        1
    );
    assert_eq!(client.stats().requests, 3, "the metadata, the refused query, the synchronous run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronous_runs_skip_the_asynchronous_endpoint() {
    let sandbox = start(SandboxConfig { report_query_ms: 60_000, ..unlimited() }).await;
    let client = builder(&sandbox).build().unwrap();
    let t = tenant(&client, &sandbox, 0);
    let records = t.report("operations", 175).parameter("From", "2026-01-01").synchronous().records().await.unwrap();
    assert_eq!(records.len(), 2500);
    assert_eq!(queries(&sandbox)["started"], 0);
}
