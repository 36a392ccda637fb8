//! Export throughput and memory: records per second and peak RSS while streaming an export feed
//! of N records, for N = 100,000 and 1,000,000. Each size runs in a child process of its own so
//! peaks do not mix; memory must stay flat as N grows (the stream holds about two pages).
//!
//! `cargo bench -p servicetitan-benches --bench export_memory` (env: SIZES=100000,1000000, PAGE=5000)

use std::collections::HashSet;
use std::process::Command;
use std::time::Instant;

use futures::TryStreamExt;
use serde::Deserialize;
use servicetitan::{Client, TenantCredentials};
use servicetitan_sandbox::{BackgroundSandbox, LimitConfig, SandboxConfig};

/// A kibibyte figure from /proc/self/status (`VmHWM`: peak RSS, `VmRSS`: current).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[derive(Deserialize)]
struct Customer {
    id: i64,
    #[allow(dead_code)]
    name: String,
}

/// Streams an export of `records` records and prints one line of results.
fn child(records: u64, page: usize, kind: &str) {
    let config = SandboxConfig {
        rate_limit: LimitConfig::disabled(),
        report_limit: LimitConfig::disabled(),
        records,
        export_page_size: page,
        ..Default::default()
    };
    let sandbox = BackgroundSandbox::start(config).expect("sandbox starts");
    let base = sandbox.base_url().to_string();
    let t = sandbox.config().tenants[0].clone();
    let app_key = sandbox.config().app_keys[0].clone();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async move {
        let client = Client::builder().app_key(app_key).auth_url(base.clone()).api_url(base).disable_rate_limits().build().unwrap();
        let tenant = client.tenant(TenantCredentials::new(t.id, t.client_id, t.client_secret));
        // Warm up (token, connection, allocator) before the baseline is taken.
        tenant.get("crm/customers").send_json().await.unwrap();
        let baseline = status_kib("VmRSS:");
        let started = Instant::now();
        // Exactly-once check with a bitmap-sized set of ids would itself grow with N; a sum and a
        // count of distinct ids in a fixed window keep the check flat.
        let (mut count, mut id_sum, mut first_ids) = (0u64, 0i128, HashSet::new());
        if kind == "raw" {
            // Pages as bytes, no record built: what the sandbox and the transport cost alone.
            let mut pages = tenant.export::<serde_json::Value>("crm/customers").raw_pages();
            while let Some(p) = pages.try_next().await.unwrap() {
                // Count the records without building them.
                let page: servicetitan::ExportPage<serde::de::IgnoredAny> = serde_json::from_slice(&p.body).unwrap();
                let n = page.data.len() as u64;
                first_ids.extend((count..count + n).take(10_000usize.saturating_sub(first_ids.len())).map(|i| i as i64));
                count += n;
                id_sum += i128::from(n);
            }
        } else if kind == "typed" {
            let mut feed = tenant.export::<Customer>("crm/customers").into_stream();
            while let Some(c) = feed.try_next().await.unwrap() {
                count += 1;
                id_sum += i128::from(c.id);
                if first_ids.len() < 10_000 {
                    first_ids.insert(c.id);
                }
            }
        } else {
            let mut feed = tenant.export::<serde_json::Value>("crm/customers").into_stream();
            while let Some(c) = feed.try_next().await.unwrap() {
                count += 1;
                let id = c["id"].as_i64().unwrap();
                id_sum += i128::from(id);
                if first_ids.len() < 10_000 {
                    first_ids.insert(id);
                }
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        assert_eq!(count, records, "every record once");
        assert_eq!(first_ids.len() as u64, records.min(10_000));
        let peak = status_kib("VmHWM:");
        // For scale: the size of one page as sent (taken after the peak was read).
        let one_page = tenant.get("crm/export/customers").send_bytes().await.unwrap().len();
        println!(
            "RESULT records={records} kind={} seconds={elapsed:.2} per_second={:.0} baseline_kib={baseline} peak_kib={peak} delta_kib={} page_kib={} id_sum={id_sum}",
            kind,
            records as f64 / elapsed,
            peak.saturating_sub(baseline),
            one_page / 1024,
        );
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let page: usize = std::env::var("PAGE").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let records = args[i + 1].parse().unwrap();
        child(records, page, &args[i + 2]);
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sizes: Vec<u64> = std::env::var("SIZES")
        .unwrap_or_else(|_| "100000,1000000".into())
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect();
    println!("export of crm/customers, {page} records per page, each run in its own process");
    println!(
        "{:>10} {:>6} {:>9} {:>12} {:>14} {:>14} {:>16} {:>13}",
        "records", "kind", "seconds", "records/s", "peak RSS MiB", "baseline MiB", "peak-baseline MiB", "one page MiB"
    );
    for kind in ["raw", "typed", "value"] {
        for records in &sizes {
            let out = Command::new(std::env::current_exe().unwrap())
                .args(["--child", &records.to_string(), kind])
                .output()
                .expect("child runs");
            let text = String::from_utf8_lossy(&out.stdout);
            let Some(line) = text.lines().find(|l| l.starts_with("RESULT")) else {
                panic!("child failed: {}{}", text, String::from_utf8_lossy(&out.stderr));
            };
            let field = |name: &str| -> f64 {
                line.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0.0)
            };
            println!(
                "{:>10} {:>6} {:>9.2} {:>12.0} {:>14.1} {:>14.1} {:>16.1} {:>13.1}",
                records,
                kind,
                field("seconds"),
                field("per_second"),
                field("peak_kib") / 1024.0,
                field("baseline_kib") / 1024.0,
                field("delta_kib") / 1024.0,
                field("page_kib") / 1024.0
            );
        }
    }
}
