//! One record stream read by several tasks at once: every record goes to exactly one reader,
//! the checkpoint never passes a record not handed out, a reader dropped mid-wait loses
//! nothing, and an error or a close reaches every reader.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::TryStreamExt;
use serde_json::Value;
use servicetitan::{ErrorCode, RecordStream};
use servicetitan_sandbox::SandboxConfig;

const RECORDS: u64 = 20_000;
const PAGE: usize = 500;
const EXPORT_ROUTE: &str = "GET crm/v2/tenant/{tenant}/export/customers";

fn id(record: &Value) -> i64 {
    record["id"].as_i64().expect("a record with an id")
}

/// A pause between records, so that readers interleave: mostly a yield, now and then a sleep.
async fn pause(n: usize) {
    if n.is_multiple_of(97) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    } else {
        tokio::task::yield_now().await;
    }
}

/// Reads `feed` with `readers` tasks, each on its own handle (a clone); the ids each received.
async fn read_with(feed: &RecordStream<Value>, readers: usize) -> Vec<Vec<i64>> {
    let tasks: Vec<_> = (0..readers)
        .map(|_| {
            let feed = feed.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                while let Some(record) = feed.next().await {
                    ids.push(id(&record.expect("no error")));
                    pause(ids.len()).await;
                }
                ids
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("reader finished"));
    }
    out
}

/// Asserts every id of `all` arrived exactly once over the readers, each reader taking part.
fn assert_exactly_once(per_reader: &[Vec<i64>], all: &HashSet<i64>) {
    let received: usize = per_reader.iter().map(Vec::len).sum();
    let distinct: HashSet<i64> = per_reader.iter().flatten().copied().collect();
    let counts: Vec<usize> = per_reader.iter().map(Vec::len).collect();
    assert_eq!(received, all.len(), "records received by {} readers: {counts:?}", per_reader.len());
    assert_eq!(distinct.len(), received, "a record arrived twice ({counts:?})");
    assert_eq!(&distinct, all, "not the records of the feed");
    assert!(counts.iter().all(|&n| n > 0), "a reader got nothing: {counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_shared_by_2_and_8_readers_hands_out_every_record_once() {
    let sandbox = start(SandboxConfig { records: RECORDS, export_page_size: PAGE, ..unlimited() }).await;
    let client = builder(&sandbox).disable_rate_limits().build().unwrap();
    let t = tenant(&client, &sandbox, 0);
    let all: HashSet<i64> = t
        .export::<Value>("crm/customers")
        .into_stream()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .iter()
        .map(id)
        .collect();
    assert_eq!(all.len() as u64, RECORDS);

    for readers in [2, 8] {
        let feed = t.export::<Value>("crm/customers").into_stream();
        let per_reader = read_with(&feed, readers).await;
        assert_exactly_once(&per_reader, &all);
        // Every page was handed out whole: the checkpoint is the end of the feed.
        let checkpoint = feed.continue_from().expect("a checkpoint");
        let after: Vec<Value> = t.export("crm/customers").since(checkpoint).into_stream().try_collect().await.unwrap();
        assert!(after.is_empty(), "{readers} readers: {} records after the final checkpoint", after.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_shared_by_2_and_8_readers_hands_out_every_record_once() {
    let sandbox = start(SandboxConfig { records: 5000, ..unlimited() }).await;
    let client = builder(&sandbox).disable_rate_limits().build().unwrap();
    let t = tenant(&client, &sandbox, 0);
    let list = || t.paginate::<Value>("crm/customers").page_size(100).active_any().into_stream();
    let all: HashSet<i64> = list().try_collect::<Vec<_>>().await.unwrap().iter().map(id).collect();
    assert_eq!(all.len(), 5000);
    for readers in [2, 8] {
        let feed = list();
        assert_exactly_once(&read_with(&feed, readers).await, &all);
        assert_eq!(feed.continue_from(), None, "lists have no checkpoint");
    }
}

/// Reads through `next(&self)` on a borrowed stream.
async fn borrow(feed: &RecordStream<Value>) -> Vec<i64> {
    let mut ids = Vec::new();
    while let Some(record) = feed.next().await {
        ids.push(id(&record.unwrap()));
        pause(ids.len()).await;
    }
    ids
}

/// Reads a handle of its own as a `Stream`.
async fn poll_own(feed: &mut RecordStream<Value>) -> Vec<i64> {
    let mut ids = Vec::new();
    while let Some(record) = feed.try_next().await.unwrap() {
        ids.push(id(&record));
        tokio::task::yield_now().await;
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_may_borrow_the_stream_or_poll_their_own_handles() {
    let sandbox = start(SandboxConfig { records: 3000, export_page_size: 250, ..unlimited() }).await;
    let client = builder(&sandbox).disable_rate_limits().build().unwrap();
    let t = tenant(&client, &sandbox, 0);

    // Borrowed: futures on one task, each awaiting `next(&self)`.
    let feed = t.export::<Value>("crm/customers").into_stream();
    let (a, b, c) = tokio::join!(borrow(&feed), borrow(&feed), borrow(&feed));
    let mut ids: Vec<i64> = a.iter().chain(&b).chain(&c).copied().collect();
    assert!(!a.is_empty() && !b.is_empty() && !c.is_empty());
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3000, "{} + {} + {} records", a.len(), b.len(), c.len());

    // As `Stream`s: each reader polls its own clone with the stream combinators.
    let feed = t.export::<Value>("crm/customers").into_stream();
    let (mut x, mut y) = (feed.clone(), feed.clone());
    drop(feed);
    let (p, q) = tokio::join!(poll_own(&mut x), poll_own(&mut y));
    assert!(!p.is_empty() && !q.is_empty());
    let distinct: HashSet<i64> = p.iter().chain(&q).copied().collect();
    assert_eq!((p.len() + q.len(), distinct.len()), (3000, 3000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpoint_never_passes_a_record_not_handed_out() {
    let sandbox = start(SandboxConfig { records: RECORDS, export_page_size: PAGE, ..unlimited() }).await;
    let client = builder(&sandbox).disable_rate_limits().build().unwrap();
    let t = tenant(&client, &sandbox, 0);
    let all: HashSet<i64> = t
        .export::<Value>("crm/customers")
        .into_stream()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .iter()
        .map(id)
        .collect();

    // Eight readers stop together after `stop` records, as a crashed sync would: mid-page, on a
    // page boundary, just after one.
    for stop in [7_777usize, 8_000, 8_001] {
        let feed = t.export::<Value>("crm/customers").into_stream();
        let taken = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (feed, taken) = (feed.clone(), taken.clone());
                tokio::spawn(async move {
                    let mut ids = Vec::new();
                    // A reader claims a place before taking, so exactly `stop` records go out.
                    while taken.fetch_add(1, Ordering::SeqCst) < stop {
                        let record = feed.next().await.expect("a record").unwrap();
                        ids.push(id(&record));
                        pause(ids.len()).await;
                    }
                    ids
                })
            })
            .collect();
        let mut handed = Vec::new();
        for task in tasks {
            handed.extend(task.await.unwrap());
        }
        assert_eq!(handed.len(), stop);
        let checkpoint = feed.continue_from().expect("pages were handed out whole");
        drop(feed);

        let resumed: Vec<i64> = t
            .export::<Value>("crm/customers")
            .since(checkpoint)
            .into_stream()
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .iter()
            .map(id)
            .collect();
        let handed_set: HashSet<i64> = handed.iter().copied().collect();
        let resumed_set: HashSet<i64> = resumed.iter().copied().collect();
        let lost = all.iter().filter(|i| !handed_set.contains(i) && !resumed_set.contains(i)).count();
        let doubled = handed_set.intersection(&resumed_set).count();
        assert_eq!(lost, 0, "stopped after {stop}: records neither handed out nor after the checkpoint");
        // Repeated on resume: only the part of the page being handed out when the readers stopped.
        assert_eq!(doubled, stop % PAGE, "stopped after {stop}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_dropped_while_waiting_for_a_page_lose_nothing() {
    // Every page takes 40 ms; readers give up after 5 ms and ask again, so most waits are
    // dropped while a page is on its way.
    let sandbox = start(SandboxConfig { records: 4000, export_page_size: 200, latency_ms: 40, ..unlimited() }).await;
    let client = builder(&sandbox).disable_rate_limits().build().unwrap();
    let t = tenant(&client, &sandbox, 0);
    let feed = t.export::<Value>("crm/customers").into_stream();
    let dropped = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (feed, dropped) = (feed.clone(), dropped.clone());
            tokio::spawn(async move {
                let mut ids = Vec::new();
                loop {
                    match tokio::time::timeout(Duration::from_millis(5), feed.next()).await {
                        Err(_) => {
                            dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(None) => return ids,
                        Ok(Some(record)) => ids.push(id(&record.unwrap())),
                    }
                }
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await.unwrap());
    }
    let distinct: HashSet<i64> = ids.iter().copied().collect();
    assert!(dropped.load(Ordering::Relaxed) > 20, "too few waits were dropped to test anything");
    assert_eq!((ids.len(), distinct.len()), (4000, 4000));
    let after: Vec<Value> =
        t.export("crm/customers").since(feed.continue_from()).into_stream().try_collect().await.unwrap();
    assert!(after.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_page_goes_to_one_reader_and_ends_the_stream_for_all() {
    let sandbox = start(unlimited()).await;
    let client = builder(&sandbox).build().unwrap();
    let t = tenant(&client, &sandbox, 3); // crm scope only
    let jobs = t.paginate::<Value>("jpm/jobs").into_stream();
    let results = futures::future::join_all((0..4).map(|_| {
        let jobs = jobs.clone();
        async move {
            let mut items = Vec::new();
            while let Some(item) = jobs.next().await {
                items.push(item);
            }
            items
        }
    }))
    .await;
    let errors: Vec<_> = results.iter().flatten().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(errors.len(), 1, "the error goes to one reader: {results:?}");
    assert_eq!(errors[0].code(), ErrorCode::PermissionDenied);
    assert_eq!(results.iter().flatten().count(), 1, "and nothing else comes");
    assert!(jobs.next().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_the_stream_for_every_reader_and_stops_fetching() {
    // A page takes 400 ms: readers are waiting for the second when the stream is closed.
    let sandbox = start(SandboxConfig { records: 5000, export_page_size: 500, latency_ms: 400, ..unlimited() }).await;
    let client = builder(&sandbox).disable_rate_limits().build().unwrap();
    let t = tenant(&client, &sandbox, 0);
    let feed = t.export::<Value>("crm/customers").into_stream();
    let mut first_page = Vec::new();
    for _ in 0..PAGE {
        first_page.push(id(&feed.next().await.unwrap().unwrap()));
    }
    let checkpoint = feed.continue_from();
    assert!(checkpoint.is_some());
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let feed = feed.clone();
            tokio::spawn(async move { feed.next().await.map(|r| r.map(|v| id(&v))) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let fetched = route_count(&sandbox, EXPORT_ROUTE);
    feed.close();
    for reader in readers {
        let got = tokio::time::timeout(Duration::from_secs(5), reader).await.expect("woken by close").unwrap();
        assert!(got.is_none(), "a closed stream hands out nothing: {got:?}");
    }
    assert!(feed.next().await.is_none());
    assert_eq!(feed.continue_from(), checkpoint, "closing does not move the checkpoint");
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(route_count(&sandbox, EXPORT_ROUTE), fetched, "a closed stream fetches nothing more");
}
