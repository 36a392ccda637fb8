//! Four OS processes, two Python and two Node, sharing one tenant through Redis against the
//! sandbox's strict limiter (60 per second, sliding): zero 429s, exactly one token fetch in
//! total, and at least 90% of the limit in aggregate.
//!
//! Runs when `ST_TEST_REDIS_URL` is set (scripts/test-redis.sh), with the Python package
//! installed in `ST_TEST_PYTHON` (default `.venv/bin/python`) and the Node addon built in
//! `node/` (scripts/test-python.sh and scripts/test-node.sh do both).

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use servicetitan_sandbox::SandboxConfig;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_python_and_node_processes_share_one_budget_and_one_token() {
    let Some(redis_url) = std::env::var("ST_TEST_REDIS_URL").ok().filter(|u| !u.is_empty()) else {
        eprintln!("skipped: ST_TEST_REDIS_URL is not set (scripts/test-redis.sh starts a redis-server and sets it)");
        return;
    };
    let root = root();
    let python = std::env::var("ST_TEST_PYTHON").map(PathBuf::from).unwrap_or_else(|_| root.join(".venv/bin/python"));
    assert!(python.exists(), "{} is missing: run scripts/test-python.sh first", python.display());
    assert!(root.join("node/native.js").exists(), "the Node addon is not built: run scripts/test-node.sh first");

    let sandbox = common::start(SandboxConfig::default()).await;
    let limit = sandbox.config().rate_limit.calls as f64 * 1000.0 / sandbox.config().rate_limit.window_ms as f64;
    let t = &sandbox.tenants()[0];
    let now_ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64;
    let duration_ms = 5000u64;
    let prefix = format!("t-processes-{now_ms}");
    let workers = [
        (python.clone(), root.join("tests/redis/worker.py")),
        (PathBuf::from("node"), root.join("tests/redis/worker.js")),
        (python.clone(), root.join("tests/redis/worker.py")),
        (PathBuf::from("node"), root.join("tests/redis/worker.js")),
    ];
    let children: Vec<_> = workers
        .iter()
        .map(|(program, script)| {
            let mut command = Command::new(program);
            command
                .arg(script)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("ST_APP_KEY", sandbox.app_key())
                .env("ST_AUTH_URL", sandbox.base_url())
                .env("ST_API_URL", sandbox.base_url())
                .env("ST_TENANT_ID", t.id.to_string())
                .env("ST_CLIENT_ID", &t.client_id)
                .env("ST_CLIENT_SECRET", &t.client_secret)
                .env("ST_REDIS_URL", &redis_url)
                .env("ST_REDIS_KEY_PREFIX", &prefix)
                // Starting Python and Node takes a moment: all begin together, 3 s from now.
                .env("WORKER_START_AT_MS", (now_ms + 3000).to_string())
                .env("WORKER_DURATION_MS", duration_ms.to_string())
                .env("WORKER_CONCURRENCY", "8")
                .stdout(Stdio::piped());
            command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()))
        })
        .collect();
    let outputs = tokio::task::spawn_blocking(move || {
        children.into_iter().map(|c| c.wait_with_output().unwrap()).collect::<Vec<_>>()
    })
    .await
    .unwrap();

    let mut ok = 0.0;
    let mut fetches = 0;
    for output in &outputs {
        assert!(output.status.success(), "a worker failed: {output:?}");
        let report: Value = serde_json::from_slice(output.stdout.trim_ascii()).expect("one JSON line");
        eprintln!("{report}");
        assert_eq!(report["errors"], serde_json::json!({}), "{report}");
        assert_eq!(report["stats"]["rate_limited"].as_u64().or(report["stats"]["rateLimited"].as_u64()), Some(0));
        ok += report["ok"].as_f64().unwrap();
        fetches += report["stats"]["token_fetches"].as_u64().or(report["stats"]["tokenFetches"].as_u64()).unwrap();
    }
    let stats = sandbox.stats();
    let tenant = &stats["tenants"][t.id.to_string()];
    let rate = ok / (duration_ms as f64 / 1000.0);
    eprintln!(
        "4 processes: {ok} calls in {duration_ms} ms = {rate:.1}/s, {:.0}% of {limit}/s; server: {tenant}",
        100.0 * rate / limit
    );
    assert_eq!(tenant["rejected"], 0, "no 429s: {stats}");
    assert!(tenant["max_in_sliding_window"].as_u64().unwrap() <= 60);
    assert_eq!(stats["token_requests_total"], 1, "one token fetch in total: {stats}");
    assert_eq!(fetches, 1);
    assert!(rate >= 0.9 * limit, "aggregate {rate:.1}/s is under 90% of {limit}/s");
    let _ = Duration::ZERO;
}
