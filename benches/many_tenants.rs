//! Many tenants on one client: 1, 10, 100 and 1,000 tenants, each with unlimited demand and its
//! own 60/s budget on the sandbox, through one client. Reports aggregate calls per second
//! against the ideal (60 per tenant), the client's own CPU time per call, and the client's
//! memory per tenant (resident memory with every tenant warm, over the client alone).
//!
//! `cargo bench -p servicetitan-benches --bench many_tenants`
//!
//! Environment: `TENANTS` (`1,10,100,1000`), `RUN_SECONDS` (per run, default 12: 4 of warm-up, then
//! measured).
//!
//! The sandbox runs in a child process, so the CPU time and memory measured are the client's.
//! Each tenant's rate is taken between completions a whole number of windows (60 calls) apart:
//! unlimited demand admits in bursts, and counts between two arbitrary instants are off by up
//! to a burst.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use servicetitan::{Client, TenantCredentials};
use servicetitan_sandbox::{BackgroundSandbox, LimitConfig, SandboxConfig, TenantConfig, DEMO_APP_KEY};

const WARM_UP: f64 = 4.0;
const FIRST_TENANT: i64 = 10_001;

fn main() {
    match std::env::var("BENCH_ROLE").as_deref() {
        Ok("sandbox") => return sandbox_process(),
        Ok("run") => return run_process(),
        _ => {}
    }
    let seconds: f64 = std::env::var("RUN_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(12.0);
    let counts: Vec<usize> = std::env::var("TENANTS")
        .unwrap_or_else(|_| "1,10,100,1000".into())
        .split(',')
        .map(|n| n.trim().parse().expect("TENANTS"))
        .collect();
    println!(
        "unlimited demand on every tenant, one client, {seconds} s per run ({WARM_UP} s warm-up); \
         the sandbox in its own process; load average at start: {}",
        load_average()
    );
    println!(
        "{:>8} {:>8} {:>12} {:>10} {:>8} {:>6} {:>14} {:>14} {:>12}",
        "tenants", "callers", "calls/s", "ideal/s", "of ideal", "429s", "client CPU/call", "RSS/tenant", "errors"
    );
    let exe = std::env::current_exe().expect("the bench's own path");
    for n in counts {
        // Each size in a fresh process, so that memory is measured from the same start.
        let out = Command::new(&exe)
            .env("BENCH_ROLE", "run")
            .env("BENCH_TENANTS", n.to_string())
            .env("BENCH_SECONDS", seconds.to_string())
            .stderr(Stdio::inherit())
            .output()
            .expect("a run starts");
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
    println!("load average at end: {}", load_average());
}

/// One size: a sandbox child, a client, `n` tenants; prints one row.
fn run_process() {
    let n: usize = std::env::var("BENCH_TENANTS").unwrap().parse().unwrap();
    let seconds: f64 = std::env::var("BENCH_SECONDS").unwrap().parse().unwrap();
    let callers_per_tenant = (80 / n).max(2);
    let exe = std::env::current_exe().unwrap();
    let mut sandbox = Command::new(&exe)
        .env("BENCH_ROLE", "sandbox")
        .env("BENCH_TENANTS", n.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the sandbox process starts");
    let mut line = String::new();
    BufReader::new(sandbox.stdout.as_mut().unwrap()).read_line(&mut line).expect("the sandbox's address");
    let base = line.trim().to_string();

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let client = runtime.block_on(async {
        Client::builder().app_key(DEMO_APP_KEY).auth_url(&base).api_url(&base).build().expect("client")
    });
    // Room for every completion time, written once so that it is resident before the
    // baseline: the memory measured is then the client's.
    let room = (70.0 * seconds) as usize + 200;
    let done: Vec<Arc<Mutex<Vec<f64>>>> = (0..n)
        .map(|_| {
            let mut v = vec![0.0; room];
            v.clear();
            Arc::new(Mutex::new(v))
        })
        .collect();
    let rss_before = rss_kib();
    let tenants: Vec<_> = (0..n)
        .map(|i| {
            let id = FIRST_TENANT + i as i64;
            client.tenant(TenantCredentials::new(id, format!("cid.sandbox.{id}"), format!("cs1.sandbox-secret-{id}")))
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut handles = Vec::new();
    for (tenant, done) in tenants.iter().zip(&done) {
        for _ in 0..callers_per_tenant {
            let (tenant, done, stop, errors) = (tenant.clone(), done.clone(), stop.clone(), errors.clone());
            handles.push(runtime.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match tenant.get("crm/customers").query(&[("pageSize", 1)]).send_json().await {
                        Ok(_) => done.lock().unwrap().push(started.elapsed().as_secs_f64()),
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
    }
    std::thread::sleep(Duration::from_secs_f64(WARM_UP));
    let (cpu0, rss_warm) = (cpu_seconds(), rss_kib());
    let calls0: usize = done.iter().map(|d| d.lock().unwrap().len()).sum();
    std::thread::sleep(Duration::from_secs_f64(seconds - WARM_UP));
    let cpu1 = cpu_seconds();
    let calls1: usize = done.iter().map(|d| d.lock().unwrap().len()).sum();
    stop.store(true, Ordering::Relaxed);
    runtime.block_on(async {
        for h in handles {
            let _ = h.await;
        }
    });

    let rate: f64 = done.iter().map(|d| whole_window_rate(&d.lock().unwrap(), WARM_UP, seconds)).sum();
    let rejected = rejected(&base);
    let cpu_per_call = (cpu1 - cpu0) / (calls1 - calls0).max(1) as f64;
    let per_tenant = (rss_warm.saturating_sub(rss_before)) as f64 * 1024.0 / n as f64;
    println!(
        "{:>8} {:>8} {:>12.1} {:>10} {:>7.1}% {:>6} {:>12.1} µs {:>11.1} KiB {:>12}",
        n,
        n * callers_per_tenant,
        rate,
        n * 60,
        rate / (n as f64 * 60.0) * 100.0,
        rejected,
        cpu_per_call * 1e6,
        per_tenant / 1024.0,
        errors.load(Ordering::Relaxed)
    );
    drop(sandbox.stdin.take());
    let _ = sandbox.wait();
}

/// Calls per second between `from` and `to` from sorted completion times, over whole windows.
fn whole_window_rate(times: &[f64], from: f64, to: f64) -> f64 {
    let mut times = times.to_vec();
    times.sort_by(f64::total_cmp);
    let first = times.partition_point(|t| *t < from);
    let last = times.partition_point(|t| *t < to);
    if last <= first + 60 {
        return 0.0;
    }
    let last = first + (last - 1 - first) / 60 * 60;
    (last - first) as f64 / (times[last] - times[first])
}

/// The sandbox's 429s over every tenant, through its control API.
fn rejected(base: &str) -> u64 {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let stats: serde_json::Value =
            reqwest::get(format!("{base}/__sandbox/stats")).await.unwrap().json().await.unwrap();
        stats["tenants"].as_object().map_or(0, |t| t.values().filter_map(|v| v["rejected"].as_u64()).sum())
    })
}

/// The sandbox process: `BENCH_TENANTS` tenants at 60/s each; prints its address, runs until
/// its stdin closes.
fn sandbox_process() {
    let n: i64 = std::env::var("BENCH_TENANTS").unwrap().parse().unwrap();
    let config = SandboxConfig {
        tenants: (0..n).map(|i| TenantConfig::demo(FIRST_TENANT + i)).collect(),
        rate_limit: LimitConfig::per_tenant(),
        ..Default::default()
    };
    let sandbox = BackgroundSandbox::start(config).expect("sandbox starts");
    println!("{}", sandbox.base_url());
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

/// This process's user and system CPU time, in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name, in
    // clock ticks of 1/100 s on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
