//! How many small GETs per second the sandbox serves on loopback with its limits off, and how
//! many export records per second, so that it is never the bottleneck of a client benchmark. The
//! load comes from reqwest in this process (on its own runtime), reading bodies without parsing
//! them, so the figures are lower bounds: client and server share the cores.
//!
//! `cargo bench -p servicetitan-benches --bench sandbox_throughput` (env: CALLS, CONCURRENCY,
//! EXPORT_RECORDS: records per export feed, default 1,000,000)

use std::sync::Arc;
use std::time::Instant;

mod common;

use common::{env_or, fetch_token, unlimited_sandbox};
use servicetitan_sandbox::{BackgroundSandbox, LimitConfig, SandboxConfig};

fn main() {
    gets();
    exports();
}

/// Export feeds read to the end as a plain client would: one page at a time, the next
/// `continueFrom` taken from the start of the body, the records not parsed.
fn exports() {
    let records = env_or("EXPORT_RECORDS", 1_000_000);
    let config = SandboxConfig {
        rate_limit: LimitConfig::disabled(),
        report_limit: LimitConfig::disabled(),
        records: records as u64,
        ..Default::default()
    };
    let sandbox = BackgroundSandbox::start(config).expect("sandbox starts");
    let base = sandbox.base_url().to_string();
    let tenant = sandbox.config().tenants[0].clone();
    let app_key = sandbox.config().app_keys[0].clone();
    let page_size = sandbox.config().export_page_size;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async move {
        let http = reqwest::Client::new();
        let token = fetch_token(&http, &base, &tenant).await;
        let feed = |path: &'static str| {
            let (http, token, app_key) = (http.clone(), token.clone(), app_key.clone());
            let url = format!("{base}/{}", path.replace("{tenant}", &tenant.id.to_string()));
            async move {
                let (mut from, mut bytes, mut pages) = (String::new(), 0usize, 0usize);
                loop {
                    let mut request = http.get(&url).header("ST-App-Key", app_key.as_str()).bearer_auth(&token);
                    if !from.is_empty() {
                        request = request.query(&[("from", from.as_str())]);
                    }
                    let body = request.send().await.unwrap().bytes().await.unwrap();
                    bytes += body.len();
                    pages += 1;
                    let head = std::str::from_utf8(&body[..body.len().min(200)]).unwrap_or("");
                    from =
                        head.split("\"continueFrom\":\"").nth(1).and_then(|t| t.split('"').next()).unwrap().to_string();
                    if head.starts_with("{\"hasMore\":false") {
                        return (bytes, pages);
                    }
                }
            }
        };
        feed("crm/v2/tenant/{tenant}/export/customers").await; // warm-up: caches, connection
        for (label, paths) in [
            ("1 feed", vec!["crm/v2/tenant/{tenant}/export/customers"]),
            ("2 feeds at once", vec!["crm/v2/tenant/{tenant}/export/customers", "jpm/v2/tenant/{tenant}/export/jobs"]),
        ] {
            let started = Instant::now();
            let done = futures::future::join_all(paths.iter().copied().map(&feed)).await;
            let secs = started.elapsed().as_secs_f64();
            let (bytes, pages) = done.iter().fold((0, 0), |(b, p), (b2, p2)| (b + b2, p + p2));
            let total = records * paths.len();
            println!(
                "sandbox_throughput: export, {label}: {total} records in {pages} pages of {page_size}, {secs:.2} s: \
                 {:.0} records/s, {:.0} MB/s, {:.1} ms per page",
                total as f64 / secs,
                bytes as f64 / secs / 1e6,
                secs * 1000.0 / pages as f64 * paths.len() as f64
            );
        }
    });
}

fn gets() {
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
