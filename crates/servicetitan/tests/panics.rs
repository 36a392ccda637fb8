//! A panic inside a call (here: from a token store or a rate limiter that panics, the parts a
//! caller plugs in) fails that call with an `internal` error and leaves the client usable.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::future::BoxFuture;
use servicetitan::auth::{CachedToken, MemoryTokenStore, TokenKey, TokenStore};
use servicetitan::limit::{InProcessLimiter, Quota, RateLimiter};
use servicetitan::{ErrorCode, Secret};

/// A token store that panics in its first `panics` calls of `put` (or of `get`), then keeps
/// tokens in memory.
#[derive(Debug, Default)]
struct PanickyStore {
    tokens: MemoryTokenStore,
    put_panics: AtomicUsize,
    get_panics: AtomicUsize,
}

fn take_one(budget: &AtomicUsize) -> bool {
    budget.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
}

impl TokenStore for PanickyStore {
    fn get<'a>(&'a self, key: &'a TokenKey) -> BoxFuture<'a, servicetitan::Result<Option<CachedToken>>> {
        if take_one(&self.get_panics) {
            panic!("the token store broke while reading");
        }
        self.tokens.get(key)
    }

    fn put<'a>(&'a self, key: &'a TokenKey, token: &'a CachedToken) -> BoxFuture<'a, servicetitan::Result<()>> {
        Box::pin(async move {
            if take_one(&self.put_panics) {
                // Slowly, as a store across the network would: every caller of the test has
                // joined the fetch by then (one arriving after a failed fetch starts another).
                tokio::time::sleep(Duration::from_millis(200)).await;
                panic!("the token store broke while writing");
            }
            self.tokens.put(key, token).await
        })
    }

    fn remove_if<'a>(&'a self, key: &'a TokenKey, token: &'a Secret) -> BoxFuture<'a, servicetitan::Result<()>> {
        self.tokens.remove_if(key, token)
    }
}

/// A limiter that panics in its first `panics` admissions, then limits in this process.
#[derive(Debug, Default)]
struct PanickyLimiter {
    inner: InProcessLimiter,
    panics: AtomicUsize,
}

impl RateLimiter for PanickyLimiter {
    fn acquire<'a>(&'a self, key: &'a str, quota: Option<Quota>) -> BoxFuture<'a, servicetitan::Result<()>> {
        Box::pin(async move {
            // Panics in the middle of an await, as a broken async store would.
            tokio::task::yield_now().await;
            if take_one(&self.panics) {
                panic!("the limiter broke");
            }
            self.inner.acquire(key, quota).await
        })
    }

    fn cool_down<'a>(&'a self, key: &'a str, pause: Duration) -> BoxFuture<'a, servicetitan::Result<()>> {
        self.inner.cool_down(key, pause)
    }
}

fn assert_internal(result: servicetitan::Result<serde_json::Value>, what: &str) {
    let e = result.expect_err("the call fails");
    assert_eq!(e.code(), ErrorCode::Internal, "{e:?}");
    let text = e.to_string();
    assert!(text.starts_with("internal error in servicetitan (a bug; the client stays usable): "), "{text}");
    assert!(text.contains(what), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_fetch_that_panics_fails_its_waiters_and_the_next_call_fetches_again() {
    let sandbox = start(unlimited()).await;
    let store = Arc::new(PanickyStore { put_panics: AtomicUsize::new(1), ..PanickyStore::default() });
    let client = builder(&sandbox).token_store(store.clone()).build().unwrap();
    let tenant = tenant(&client, &sandbox, 0);

    // Ten callers share the one fetch that panics: every one of them gets the error.
    let calls = (0..10).map(|_| tenant.get("crm/customers").query(&[("pageSize", 1)]).send_json());
    for result in futures::future::join_all(calls).await {
        assert_internal(result, "the token store broke while writing");
    }
    assert_eq!(stat(&sandbox, "/token_requests_total"), 1, "one shared fetch");

    // The panic was not cached: the next call fetches a token and succeeds, and so do the rest.
    for _ in 0..3 {
        tenant.get("crm/customers").query(&[("pageSize", 1)]).send_json().await.expect("the client is usable");
    }
    assert_eq!(stat(&sandbox, "/token_requests_total"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_on_the_request_path_fails_that_call_only() {
    let sandbox = start(unlimited()).await;
    let store = Arc::new(PanickyStore { get_panics: AtomicUsize::new(1), ..PanickyStore::default() });
    let limiter = Arc::new(PanickyLimiter { panics: AtomicUsize::new(2), ..PanickyLimiter::default() });
    let client = builder(&sandbox).token_store(store).rate_limiter(limiter).build().unwrap();
    let tenant = tenant(&client, &sandbox, 0);

    let call = || tenant.get("crm/customers").query(&[("pageSize", 1)]).send_json();
    assert_internal(call().await, "the token store broke while reading");
    assert_internal(call().await, "the limiter broke");
    // In a task of its own, as an application would run it: the panic stays inside the call.
    let other = tenant.clone();
    let spawned = tokio::spawn(async move { other.get("crm/customers").send_json().await }).await;
    assert_internal(spawned.expect("the task did not panic"), "the limiter broke");
    assert_eq!(client.stats().requests, 0, "nothing was sent");

    let page = call().await.expect("the client is usable");
    assert!(page["data"].is_array());
    assert_eq!(client.stats().requests, 1);
    assert_eq!(route_count(&sandbox, "GET crm/v2/tenant/{tenant}/customers"), 1);
}
