//! Redis restarted in the middle of a run (a redis-server this test starts and kills; needs
//! `ST_TEST_REDIS_URL` set, as scripts/test-redis.sh does, to run): no call lost or
//! duplicated, no 429, and the documented failure behaviour when Redis stays away; and a
//! waiter for another process's token whose pub/sub connection is cut.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use servicetitan::ErrorCode;
use servicetitan_sandbox::SandboxConfig;

fn enabled() -> bool {
    let on = std::env::var("ST_TEST_REDIS_URL").is_ok_and(|u| !u.is_empty());
    if !on {
        eprintln!("skipped: ST_TEST_REDIS_URL is not set (scripts/test-redis.sh starts a redis-server and sets it)");
    }
    on
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A redis-server in the foreground, without persistence: a restart loses every key.
struct Server(Child);

impl Server {
    fn start(port: u16) -> Server {
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test-redis.sh installs it)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Server(child);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("redis-server did not start on port {port}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_mid_run_loses_and_duplicates_no_call() {
    if !enabled() {
        return;
    }
    let port = free_port();
    let server = Arc::new(Mutex::new(Some(Server::start(port))));
    let url = format!("redis://127.0.0.1:{port}");
    // The server's strict limiter: 60 per second, sliding.
    let sandbox = common::start(SandboxConfig::default()).await;
    let clients: Vec<_> = (0..4)
        .map(|_| common::builder(&sandbox).redis_url(url.clone()).redis_wait(Duration::from_secs(20)).build().unwrap())
        .collect();
    let planned = 240;
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(Mutex::new(vec![0u32; planned]));
    let mut tasks = Vec::new();
    for client in &clients {
        for _ in 0..4 {
            let tenant = common::tenant(client, &sandbox, 0);
            let (next, done) = (next.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let id = next.fetch_add(1, Ordering::SeqCst);
                    if id >= planned {
                        return Ok::<(), servicetitan::Error>(());
                    }
                    tenant.get("crm/customers").query(&[("pageSize", 1)]).send::<serde_json::Value>().await?;
                    done.lock().unwrap()[id] += 1;
                }
            }));
        }
    }
    // Kill Redis a second in (about 60 calls done), keep it away for a second, start it anew.
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let before = next.load(Ordering::SeqCst);
    server.lock().unwrap().take();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    *server.lock().unwrap() = Some(Server::start(port));
    for task in tasks {
        task.await.unwrap().expect("every call succeeds");
    }
    let elapsed = started.elapsed();
    assert!(before > 0 && before < planned, "the restart happened mid-run ({before} calls started)");
    let done = done.lock().unwrap().clone();
    assert!(done.iter().all(|n| *n == 1), "every call done exactly once");
    let stats = sandbox.stats();
    let tenant_id = sandbox.tenants()[0].id.to_string();
    assert_eq!(stats["tenants"][&tenant_id]["admitted"], planned as u64, "the server processed each call once");
    assert_eq!(stats["tenants"][&tenant_id]["rejected"], 0, "no 429: {stats}");
    eprintln!(
        "{planned} calls in {elapsed:?} across a Redis restart; token requests: {}",
        stats["token_requests_total"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_away_calls_fail_with_a_connection_error_and_never_reach_the_api() {
    let sandbox = common::start(SandboxConfig::default()).await;
    let port = free_port(); // nothing listens there
    let client = common::builder(&sandbox)
        .redis_url(format!("redis://:pw-secret@127.0.0.1:{port}"))
        .redis_wait(Duration::from_millis(500))
        .build()
        .unwrap();
    let error =
        common::tenant(&client, &sandbox, 0).get("crm/customers").send::<serde_json::Value>().await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::Connection);
    assert!(error.to_string().contains("Redis at redis://:***@127.0.0.1"), "{error}");
    assert!(!format!("{error} {error:?} {client:?}").contains("pw-secret"));
    assert_eq!(common::total_requests(&sandbox), 0, "neither the token service nor the API was called");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_fallback_share_calls_go_on_without_redis_and_without_429s() {
    let sandbox = common::start(SandboxConfig::default()).await;
    let port = free_port();
    let client = common::builder(&sandbox)
        .redis_url(format!("redis://127.0.0.1:{port}"))
        .redis_fallback_share(0.5)
        .build()
        .unwrap();
    let tenant = common::tenant(&client, &sandbox, 0);
    let started = Instant::now();
    let calls = (0..45).map(|_| tenant.get("crm/customers").query(&[("pageSize", 1)]).send::<serde_json::Value>());
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    // 30 per window at half the budget: the last 15 wait for the second window.
    assert!(started.elapsed() >= Duration::from_millis(1100), "{:?}", started.elapsed());
    assert_eq!(client.stats().rate_limited, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_whose_pub_sub_connection_is_cut_still_gets_the_shared_token() {
    if !enabled() {
        return;
    }
    let port = free_port();
    let _server = Server::start(port);
    let url = format!("redis://127.0.0.1:{port}");
    let sandbox = common::start(common::unlimited()).await;
    // The token request is slow, so that the second client waits on the first one's fetch.
    sandbox.add_fault(servicetitan_sandbox::Fault {
        route: "connect/token".into(),
        delay_ms: 400,
        count: 1,
        ..Default::default()
    });
    let client = || common::builder(&sandbox).redis_url(url.clone()).build().unwrap();
    let (first, second) = (client(), client());
    let call = |c: &servicetitan::Client| {
        let tenant = common::tenant(c, &sandbox, 0);
        async move { tenant.get("crm/customers").query(&[("pageSize", 1)]).send::<serde_json::Value>().await }
    };
    let fetching = tokio::spawn(call(&first));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waiting = tokio::spawn(call(&second));
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The waiter's subscription is cut while the fetch goes on: the fetcher's announcement
    // can be lost.
    let mut admin = redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let killed: i64 = redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub").query_async(&mut admin).await.unwrap();
    assert_eq!(killed, 1, "the waiting process was subscribed");
    let started = Instant::now();
    fetching.await.unwrap().unwrap();
    waiting.await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    assert_eq!(common::stat(&sandbox, "/token_requests_total"), 1, "the waiter used the shared token");
    assert_eq!(second.stats().token_fetches, 0);
}
