//! Paging and export feeds against the sandbox: every record exactly once, resumable exports,
//! at most one page fetched ahead, and the value-level page streams.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use futures::TryStreamExt;
use serde::Deserialize;
use serde_json::Value;
use servicetitan::{ErrorCode, ExportPage, Page};
use servicetitan_sandbox::SandboxConfig;

#[derive(Debug, Deserialize)]
struct Customer {
    id: i64,
    active: bool,
}

fn ids(records: &[Value]) -> Vec<i64> {
    records.iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

fn assert_unique(ids: &[i64]) {
    let set: HashSet<_> = ids.iter().collect();
    assert_eq!(set.len(), ids.len(), "a record arrived twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_delivers_every_record_exactly_once() {
    let sandbox = start(SandboxConfig { records: 1234, ..unlimited() }).await;
    let client = builder(&sandbox).build().unwrap();
    let t = tenant(&client, &sandbox, 0);
    let first: Page<Value> =
        t.get("crm/customers").query(&[("active", "Any"), ("includeTotal", "true")]).send().await.unwrap();
    let total = first.total_count.unwrap();
    assert_eq!(total, 1234);

    let all: Vec<Customer> =
        t.paginate("crm/customers").page_size(97).active_any().into_stream().try_collect().await.unwrap();
    let all_ids: Vec<i64> = all.iter().map(|c| c.id).collect();
    assert_eq!(all.len() as u64, total);
    assert_unique(&all_ids);

    // Without active=Any only active rows come back.
    let active: Vec<Customer> = t.paginate("crm/customers").page_size(500).into_stream().try_collect().await.unwrap();
    assert!(active.iter().all(|c| c.active));
    assert_eq!(active.len(), all.iter().filter(|c| c.active).count());

    let pages: Vec<Page<Value>> =
        t.paginate("crm/customers").page_size(500).active_any().pages().try_collect().await.unwrap();
    assert_eq!(pages.iter().map(|p| p.page).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(pages.iter().map(|p| p.data.len()).sum::<usize>(), 1234);

    let raw = t.paginate::<Value>("crm/customers").page_size(500).active_any().raw_pages();
    let raw: Vec<_> = raw.try_collect().await.unwrap();
    assert_eq!(raw.len(), 3);
    assert!(raw[0].has_more && !raw[2].has_more);
    let decoded: Page<Value> = serde_json::from_slice(&raw[1].body).unwrap();
    assert_eq!(decoded.data.len(), 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_delivers_every_record_once_and_resumes_from_its_checkpoint() {
    let sandbox = start(SandboxConfig { records: 5000, export_page_size: 1000, ..unlimited() }).await;
    let client = builder(&sandbox).build().unwrap();
    let t = tenant(&client, &sandbox, 0);

    let everything: Vec<Value> = t.export("crm/customers").into_stream().try_collect().await.unwrap();
    let all_ids = ids(&everything);
    assert_eq!(all_ids.len(), 5000);
    assert_unique(&all_ids);

    // Stop half way through the third page, as a crashed sync would.
    let feed = t.export::<Value>("crm/customers").into_stream();
    assert_eq!(feed.continue_from(), None);
    let mut before = Vec::new();
    let mut checkpoint = None;
    for i in 0..2500 {
        before.push(feed.next().await.unwrap().unwrap());
        if i == 1999 {
            // The second page has been handed out whole.
            checkpoint = feed.continue_from();
        }
    }
    assert!(checkpoint.is_some());
    assert_eq!(feed.continue_from(), checkpoint, "a half-read page is not checkpointed");
    drop(feed);

    let resumed: Vec<Value> =
        t.export("crm/customers").since(checkpoint.clone()).into_stream().try_collect().await.unwrap();
    // The records of the pages fully handed out, plus everything from the checkpoint on, are
    // every record exactly once: nothing lost, nothing doubled.
    let mut combined = ids(&before[..2000]);
    combined.extend(ids(&resumed));
    assert_unique(&combined);
    assert_eq!(combined.iter().collect::<HashSet<_>>(), all_ids.iter().collect::<HashSet<_>>());

    // Caught up: the final checkpoint yields nothing new.
    let mut feed = t.export::<Value>("crm/customers").since(checkpoint).into_stream();
    while feed.try_next().await.unwrap().is_some() {}
    let end = feed.continue_from().unwrap();
    let after: Vec<Value> = t.export("crm/customers").since(end).into_stream().try_collect().await.unwrap();
    assert!(after.is_empty());

    // Pages and raw pages carry their own checkpoints.
    let pages: Vec<ExportPage<Value>> = t.export("crm/customers").pages().try_collect().await.unwrap();
    assert_eq!(pages.len(), 5);
    assert!(pages.iter().all(|p| p.continue_from.is_some()));
    let raw: Vec<_> = t.export::<Value>("crm/customers").raw_pages().try_collect().await.unwrap();
    assert_eq!(raw.len(), 5);
    assert_eq!(raw[4].continue_from, pages[4].continue_from);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_can_start_from_a_date() {
    let sandbox = start(SandboxConfig { records: 3000, export_page_size: 1000, ..unlimited() }).await;
    let client = builder(&sandbox).build().unwrap();
    let t = tenant(&client, &sandbox, 0);
    let all: Vec<Value> = t.export("crm/customers").into_stream().try_collect().await.unwrap();
    let since_2000: Vec<Value> =
        t.export("crm/customers").since("2000-01-01".to_string()).into_stream().try_collect().await.unwrap();
    assert_eq!(since_2000.len(), all.len());
    let future: Vec<Value> =
        t.export("crm/customers").since("2999-01-01".to_string()).into_stream().try_collect().await.unwrap();
    assert!(future.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_page_is_fetched_while_this_one_is_consumed_and_no_further() {
    let sandbox = start(SandboxConfig { records: 5000, export_page_size: 500, ..unlimited() }).await;
    let client = builder(&sandbox).build().unwrap();
    let t = tenant(&client, &sandbox, 0);
    let route = "GET crm/v2/tenant/{tenant}/export/customers";
    let feed = t.export::<Value>("crm/customers").into_stream();
    feed.next().await.unwrap().unwrap();
    // The caller sits on the first record: the second page arrives meanwhile, the third is
    // not asked for.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(route_count(&sandbox, route), 2);
    // Into the second page: now the third is on its way.
    for _ in 0..500 {
        feed.next().await.unwrap().unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(route_count(&sandbox, route), 3);
    drop(feed);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(route_count(&sandbox, route), 3, "a dropped stream fetches nothing more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_page_ends_the_stream_with_the_error() {
    let sandbox = start(unlimited()).await;
    let client = builder(&sandbox).build().unwrap();
    let t = tenant(&client, &sandbox, 3); // crm scope only
    let jobs = t.paginate::<Value>("jpm/jobs").into_stream();
    let e = jobs.next().await.unwrap().unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    assert!(jobs.next().await.is_none());
    let e = t.paginate::<Value>("jpm/../crm/customers").into_stream().next().await.unwrap().unwrap_err();
    assert_eq!(e.code(), ErrorCode::Configuration);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_size_of_zero_is_refused_before_any_request() {
    let sandbox = start(unlimited()).await;
    let client = builder(&sandbox).build().unwrap();
    let tenant = tenant(&client, &sandbox, 0);
    let stream = tenant.paginate::<Value>("crm/customers").page_size(0).into_stream();
    let e = stream.next().await.expect("an item").expect_err("refused");
    assert_eq!(e.code(), ErrorCode::Configuration, "{e}");
    assert_eq!(e.argument(), Some("page_size"), "{e}");
    assert_eq!(route_count(&sandbox, "GET crm/v2/tenant/{tenant}/customers"), 0);
}
