//! Rate-limit utilisation: sustained calls per second at unlimited demand on one tenant, as a
//! fraction of the sandbox's strict 60 per second, and the 429s drawn, for inbound jitter of
//! 0, 0–30 ms, 0–80 ms, long-tailed up to 100 ms and a sudden change from 0–5 ms to 0–80 ms,
//! in both window modes, with the adaptive margin and the old fixed 100 ms, in one process and
//! in four processes sharing the budget through Redis.
//!
//! `cargo bench -p servicetitan-benches --bench rate_limit_utilisation`
//!
//! Environment: `RUN_SECONDS` (per run, default 16: 4 of warm-up, then measured), `WORKERS` (80),
//! `MODES` (`sliding,fixed`), `JITTERS` (`0,30,80,lt100,5-80`), `MARGINS` (`adaptive,100`),
//! `PROCESSES` (`1,4`; 4 needs Redis: `REDIS_URL`, else a `redis-server` on PATH is started on a
//! free port and stopped at the end).
//!
//! Everything counted is counted by the sandbox: calls admitted by its limiter in the measured
//! part of the run (between two reads of its stats), and its 429s. For the sudden change, the
//! 429s are split into the two seconds after the change and the rest, and the rate is measured
//! from two seconds after the change.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use servicetitan::{Client, TenantCredentials};
use servicetitan_sandbox::{BackgroundSandbox, JitterConfig, LimitConfig, SandboxConfig, WindowMode, DEMO_APP_KEY};

const TENANT: i64 = 1001;
const WARM_UP: f64 = 4.0;

#[derive(Clone, Copy, Debug)]
enum Jitter {
    Steady(JitterConfig),
    /// From the first to the second at the middle of the measured part.
    Change(JitterConfig, JitterConfig),
}

impl Jitter {
    fn parse(text: &str) -> Jitter {
        let one = |t: &str| -> JitterConfig {
            match t.strip_prefix("lt") {
                Some(ms) => JitterConfig::long_tailed(ms.parse().expect("JITTERS: ltN")),
                None => JitterConfig::uniform(t.parse().expect("JITTERS: N, ltN or N-M")),
            }
        };
        match text.split_once('-') {
            Some((a, b)) => Jitter::Change(one(a), one(b)),
            None => Jitter::Steady(one(text)),
        }
    }

    fn label(&self) -> String {
        let one = |j: &JitterConfig| match (j.max_ms, j.distribution) {
            (0, _) => "0".to_string(),
            (ms, servicetitan_sandbox::JitterDistribution::LongTailed) => format!("long-tail ≤{ms}"),
            (ms, _) => format!("0–{ms}"),
        };
        match self {
            Jitter::Steady(j) => one(j),
            Jitter::Change(a, b) => format!("{} → {}", one(a), one(b)),
        }
    }

    fn start(&self) -> JitterConfig {
        match self {
            Jitter::Steady(j) | Jitter::Change(j, _) => *j,
        }
    }
}

/// `None`: adaptive; `Some(ms)`: fixed.
type Margin = Option<u64>;

struct Outcome {
    rate: f64,
    rejected_total: u64,
    rejected_steady: u64,
    rejected_transition: Option<u64>,
    errors: u64,
    margin_end: Option<Duration>,
}

fn main() {
    if std::env::var("BENCH_ROLE").as_deref() == Ok("worker") {
        return worker();
    }
    let seconds: f64 = env("RUN_SECONDS", "16").parse().expect("RUN_SECONDS");
    let workers: usize = env("WORKERS", "80").parse().expect("WORKERS");
    let modes: Vec<WindowMode> = list("MODES", "sliding,fixed")
        .iter()
        .map(|m| match m.as_str() {
            "sliding" => WindowMode::Sliding,
            "fixed" => WindowMode::Fixed,
            other => panic!("MODES: {other}"),
        })
        .collect();
    let jitters: Vec<Jitter> = list("JITTERS", "0,30,80,lt100,5-80").iter().map(|j| Jitter::parse(j)).collect();
    let margins: Vec<Margin> = list("MARGINS", "adaptive,100")
        .iter()
        .map(|m| if m == "adaptive" { None } else { Some(m.parse().expect("MARGINS")) })
        .collect();
    let processes: Vec<usize> = list("PROCESSES", "1,4").iter().map(|p| p.parse().expect("PROCESSES")).collect();
    let mut redis = None;
    if processes.iter().any(|p| *p > 1) {
        redis = Redis::find_or_start();
        if redis.is_none() {
            println!("(no REDIS_URL and no redis-server on PATH: the multi-process rows are skipped)");
        }
    }

    println!(
        "unlimited demand ({workers} callers in all) on one tenant, {seconds} s per run ({WARM_UP} s warm-up), \
         against a strict 60/s server limit; load average at start: {}",
        load_average()
    );
    println!(
        "{:>8} {:>16} {:>10} {:>14} {:>8} {:>8} {:>9} {:>11} {:>10} {:>8} {:>10}",
        "window",
        "jitter ms",
        "margin",
        "limiter",
        "calls/s",
        "of 60",
        "429s",
        "429s@steady",
        "429s@chg",
        "errors",
        "margin@end"
    );
    for &mode in &modes {
        for &jitter in &jitters {
            for &margin in &margins {
                for &procs in &processes {
                    let limiter = if procs == 1 { "in-process".to_string() } else { format!("Redis ×{procs}") };
                    let outcome = if procs == 1 {
                        run_in_process(mode, jitter, margin, seconds, workers)
                    } else if let Some(redis) = &redis {
                        run_processes(mode, jitter, margin, seconds, workers, procs, &redis.url)
                    } else {
                        continue;
                    };
                    println!(
                        "{:>8} {:>16} {:>10} {:>14} {:>8.1} {:>7.1}% {:>9} {:>11} {:>10} {:>8} {:>10}",
                        format!("{mode:?}").to_lowercase(),
                        jitter.label(),
                        margin.map_or("adaptive".to_string(), |m| format!("fixed {m}")),
                        limiter,
                        outcome.rate,
                        outcome.rate / 60.0 * 100.0,
                        outcome.rejected_total,
                        outcome.rejected_steady,
                        outcome.rejected_transition.map_or("-".to_string(), |n| n.to_string()),
                        outcome.errors,
                        outcome.margin_end.map_or("-".to_string(), |m| format!("{} ms", m.as_millis())),
                    );
                }
            }
        }
    }
    println!("load average at end: {}", load_average());
}

fn sandbox(mode: WindowMode, jitter: JitterConfig) -> BackgroundSandbox {
    let config = SandboxConfig {
        rate_limit: LimitConfig { enabled: true, calls: 60, window_ms: 1000, mode, phase_ms: 370 },
        inbound_jitter: jitter,
        ..Default::default()
    };
    BackgroundSandbox::start(config).expect("sandbox starts")
}

fn client(base: &str, margin: Margin, redis: Option<(&str, &str)>) -> Client {
    let mut builder = Client::builder().app_key(DEMO_APP_KEY).auth_url(base).api_url(base);
    if let Some(ms) = margin {
        builder = builder.rate_limit_margin(Duration::from_millis(ms)).rate_limit_margin_adaptive(false);
    }
    if let Some((url, prefix)) = redis {
        builder = builder.redis_url(url).redis_key_prefix(prefix);
    }
    builder.build().expect("client")
}

fn credentials() -> TenantCredentials {
    TenantCredentials::new(TENANT, format!("cid.sandbox.{TENANT}"), format!("cs1.sandbox-secret-{TENANT}"))
}

/// Reads the sandbox's counts for the tenant: (admitted, rejected).
fn counts(sandbox: &BackgroundSandbox) -> (u64, u64) {
    let stats = sandbox.stats();
    let t = &stats["tenants"][TENANT.to_string()];
    (t["admitted"].as_u64().unwrap_or(0), t["rejected"].as_u64().unwrap_or(0))
}

/// The sandbox's counts, read every 5 ms through a run: (seconds since the start, admitted,
/// rejected).
///
/// Unlimited demand admits in bursts (an empty window takes 60 at once, and each slot comes
/// back one period and one hold later), so admissions counted between two arbitrary instants
/// are off by up to a burst. Rates are measured between the moments the count reached two
/// values a whole number of windows (60 calls) apart instead.
struct Samples(Vec<(f64, u64, u64)>);

impl Samples {
    /// (admitted, rejected) as last read at or before `t`.
    fn at(&self, t: f64) -> (u64, u64) {
        self.0.iter().take_while(|s| s.0 <= t).last().map_or((0, 0), |s| (s.1, s.2))
    }

    /// When the admitted count first reached `k`.
    fn reached(&self, k: u64) -> f64 {
        self.0.iter().find(|s| s.1 >= k).map_or(f64::NAN, |s| s.0)
    }

    /// Calls admitted per second between `from` and `to`, over whole windows.
    fn rate(&self, from: f64, to: f64) -> f64 {
        // The count read at `from` was reached earlier; the next one is seen arriving.
        let (k0, k1) = (self.at(from).0 + 1, self.at(to).0);
        let k1 = k0 + k1.saturating_sub(k0) / 60 * 60;
        if k1 == k0 {
            return 0.0;
        }
        (k1 - k0) as f64 / (self.reached(k1) - self.reached(k0))
    }

    fn rejected(&self, from: f64, to: f64) -> u64 {
        self.at(to).1 - self.at(from).1
    }
}

/// Reads the sandbox's counts until `seconds` have passed since `started`, changing the jitter
/// at `change` if asked, and measures the run from them.
fn measure(sandbox: &BackgroundSandbox, started: Instant, jitter: Jitter, seconds: f64) -> (f64, u64, Option<u64>) {
    let change = WARM_UP + (seconds - WARM_UP) / 3.0;
    let mut samples = Vec::new();
    let mut changed = false;
    loop {
        let t = started.elapsed().as_secs_f64();
        let (admitted, rejected) = counts(sandbox);
        samples.push((t, admitted, rejected));
        if t >= seconds {
            break;
        }
        if let (Jitter::Change(_, after), false) = (jitter, changed) {
            if t >= change {
                sandbox.set_jitter(after).expect("jitter");
                changed = true;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let samples = Samples(samples);
    match jitter {
        Jitter::Steady(_) => (samples.rate(WARM_UP, seconds), samples.rejected(WARM_UP, seconds), None),
        Jitter::Change(..) => (
            samples.rate(change + 2.0, seconds),
            samples.rejected(WARM_UP, change) + samples.rejected(change + 2.0, seconds),
            Some(samples.rejected(change, change + 2.0)),
        ),
    }
}

fn run_in_process(mode: WindowMode, jitter: Jitter, margin: Margin, seconds: f64, workers: usize) -> Outcome {
    let sandbox = sandbox(mode, jitter.start());
    let base = sandbox.base_url().to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let client = runtime.block_on(async { client(&base, margin, None) });
    let tenant = client.tenant(credentials());
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handles: Vec<_> =
        (0..workers).map(|_| runtime.spawn(demand(tenant.clone(), stop.clone(), errors.clone()))).collect();
    let (rate, rejected_steady, rejected_transition) = measure(&sandbox, started, jitter, seconds);
    stop.store(true, Ordering::Relaxed);
    runtime.block_on(async {
        for h in handles {
            h.await.unwrap();
        }
    });
    let (_, rejected_total) = counts(&sandbox);
    Outcome {
        rate,
        rejected_total,
        rejected_steady,
        rejected_transition,
        errors: errors.load(Ordering::Relaxed),
        margin_end: client.rate_limit_margin(),
    }
}

/// One caller with unlimited demand: the next call as soon as the last answered.
async fn demand(tenant: servicetitan::Tenant, stop: Arc<AtomicBool>, errors: Arc<AtomicU64>) {
    while !stop.load(Ordering::Relaxed) {
        if tenant.get("crm/customers").query(&[("pageSize", 1)]).send_json().await.is_err() {
            errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn run_processes(
    mode: WindowMode,
    jitter: Jitter,
    margin: Margin,
    seconds: f64,
    workers: usize,
    processes: usize,
    redis_url: &str,
) -> Outcome {
    let sandbox = sandbox(mode, jitter.start());
    let prefix = format!("bench-rl-{:x}", fastrand_seed());
    let exe = std::env::current_exe().expect("the bench's own path");
    let started = Instant::now();
    let children: Vec<Child> = (0..processes)
        .map(|_| {
            Command::new(&exe)
                .env("BENCH_ROLE", "worker")
                .env("BENCH_SANDBOX", sandbox.base_url())
                .env("BENCH_REDIS", redis_url)
                .env("BENCH_PREFIX", &prefix)
                .env("BENCH_SECONDS", seconds.to_string())
                .env("BENCH_WORKERS", (workers / processes).max(1).to_string())
                .env("BENCH_MARGIN", margin.map_or("adaptive".to_string(), |m| m.to_string()))
                .stdout(Stdio::piped())
                .spawn()
                .expect("a worker process starts")
        })
        .collect();
    let (rate, rejected_steady, rejected_transition) = measure(&sandbox, started, jitter, seconds);
    let mut errors = 0;
    let mut margin_end = None;
    for child in children {
        let out = child.wait_with_output().expect("a worker ends");
        let text = String::from_utf8_lossy(&out.stdout);
        for line in text.lines() {
            if let Some(n) = line.strip_prefix("errors ") {
                errors += n.trim().parse::<u64>().unwrap_or(0);
            }
            if let Some(ms) = line.strip_prefix("margin_ms ") {
                let m = Duration::from_millis(ms.trim().parse().unwrap_or(0));
                margin_end = Some(margin_end.map_or(m, |x: Duration| x.max(m)));
            }
        }
        if !out.status.success() {
            errors += 1_000_000;
        }
    }
    let (_, rejected_total) = counts(&sandbox);
    Outcome { rate, rejected_total, rejected_steady, rejected_transition, errors, margin_end }
}

/// A worker process: unlimited demand on the tenant for the run, through Redis.
fn worker() {
    let base = std::env::var("BENCH_SANDBOX").unwrap();
    let redis = std::env::var("BENCH_REDIS").unwrap();
    let prefix = std::env::var("BENCH_PREFIX").unwrap();
    let seconds: f64 = std::env::var("BENCH_SECONDS").unwrap().parse().unwrap();
    let workers: usize = std::env::var("BENCH_WORKERS").unwrap().parse().unwrap();
    let margin: Margin = std::env::var("BENCH_MARGIN").unwrap().parse().ok();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = runtime.block_on(async { client(&base, margin, Some((&redis, &prefix))) });
    let tenant = client.tenant(credentials());
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    runtime.block_on(async {
        let handles: Vec<_> =
            (0..workers).map(|_| tokio::spawn(demand(tenant.clone(), stop.clone(), errors.clone()))).collect();
        tokio::time::sleep(Duration::from_secs_f64(seconds + 0.3)).await;
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.await.unwrap();
        }
    });
    println!("errors {}", errors.load(Ordering::Relaxed));
    println!("margin_ms {}", client.rate_limit_margin().unwrap_or_default().as_millis());
}

struct Redis {
    url: String,
    server: Option<Child>,
}

impl Redis {
    fn find_or_start() -> Option<Redis> {
        if let Ok(url) = std::env::var("REDIS_URL") {
            return Some(Redis { url, server: None });
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let server = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .ok()?;
        let url = format!("redis://127.0.0.1:{port}/0");
        for _ in 0..50 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Redis { url, server: Some(server) });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(server) = &mut self.server {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn list(name: &str, default: &str) -> Vec<String> {
    env(name, default).split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn fastrand_seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    nanos ^ u64::from(std::process::id()).rotate_left(32)
}
