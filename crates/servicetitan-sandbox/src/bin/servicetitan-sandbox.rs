//! `servicetitan-sandbox`: runs the local ServiceTitan until interrupted. The first line of
//! standard output is the base URL (`http://127.0.0.1:PORT`); the credentials follow.

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use servicetitan_sandbox::{JitterConfig, Sandbox, SandboxConfig, WindowMode};

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Sliding,
    Fixed,
}

/// A local ServiceTitan API for offline development and tests.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// JSON file with any SandboxConfig fields (see the README); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long)]
    host: Option<String>,
    /// Port to listen on (0: a free one).
    #[arg(long)]
    port: Option<u16>,
    /// Records generated per resource.
    #[arg(long)]
    records: Option<u64>,
    /// Seed of the generated data.
    #[arg(long)]
    seed: Option<u64>,
    /// Lifetime of access tokens, in seconds.
    #[arg(long)]
    token_lifetime_secs: Option<f64>,
    /// Calls per window per (app key, tenant).
    #[arg(long)]
    rate_limit: Option<u32>,
    /// Length of the rate-limit window, in milliseconds.
    #[arg(long)]
    rate_window_ms: Option<u64>,
    /// How rate-limit windows are counted.
    #[arg(long, value_enum)]
    window_mode: Option<Mode>,
    /// Switch the per-tenant and per-report rate limits off (for benchmarks).
    #[arg(long)]
    no_rate_limit: bool,
    /// Runs of one report per report window per tenant.
    #[arg(long)]
    report_limit: Option<u32>,
    /// Length of the report window, in milliseconds.
    #[arg(long)]
    report_window_ms: Option<u64>,
    /// Latency added to every API call, in milliseconds.
    #[arg(long)]
    latency_ms: Option<u64>,
    /// Records per export page.
    #[arg(long)]
    export_page_size: Option<usize>,
    /// Multiplies the webhook retry delays (10, 30, 60, 300 s); 0.01 for quick tests.
    #[arg(long)]
    webhook_time_scale: Option<f64>,
    /// Longest delay, in milliseconds, drawn per API call before the rate limiter counts it
    /// (changeable at run time with `PUT /__sandbox/jitter`).
    #[arg(long)]
    jitter_ms: Option<u64>,
    /// How that delay is drawn.
    #[arg(long, value_enum, default_value = "uniform")]
    jitter: JitterShape,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum JitterShape {
    Uniform,
    LongTailed,
}

fn config_from(args: Args) -> Result<SandboxConfig, String> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("--config {}: {e}", path.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("--config {}: {e}", path.display()))?
        }
        None => SandboxConfig::default(),
    };
    if let Some(v) = args.host {
        config.host = v;
    }
    if let Some(v) = args.port {
        config.port = v;
    }
    if let Some(v) = args.records {
        config.records = v;
    }
    if let Some(v) = args.seed {
        config.seed = v;
    }
    if let Some(v) = args.token_lifetime_secs {
        config.token_lifetime_secs = v;
    }
    if let Some(v) = args.rate_limit {
        config.rate_limit.calls = v;
    }
    if let Some(v) = args.rate_window_ms {
        config.rate_limit.window_ms = v;
    }
    if let Some(mode) = args.window_mode {
        let mode = match mode {
            Mode::Sliding => WindowMode::Sliding,
            Mode::Fixed => WindowMode::Fixed,
        };
        config.rate_limit.mode = mode;
        config.report_limit.mode = mode;
    }
    if args.no_rate_limit {
        config.rate_limit.enabled = false;
        config.report_limit.enabled = false;
    }
    if let Some(v) = args.report_limit {
        config.report_limit.calls = v;
    }
    if let Some(v) = args.report_window_ms {
        config.report_limit.window_ms = v;
    }
    if let Some(v) = args.latency_ms {
        config.latency_ms = v;
    }
    if let Some(v) = args.export_page_size {
        config.export_page_size = v;
    }
    if let Some(v) = args.webhook_time_scale {
        config.webhook_time_scale = v;
    }
    if let Some(v) = args.jitter_ms {
        config.inbound_jitter = match args.jitter {
            JitterShape::Uniform => JitterConfig::uniform(v),
            JitterShape::LongTailed => JitterConfig::long_tailed(v),
        };
    }
    Ok(config)
}

#[tokio::main]
async fn main() {
    let config = match config_from(Args::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("servicetitan-sandbox: {e}");
            std::process::exit(2);
        }
    };
    let sandbox = match Sandbox::start(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("servicetitan-sandbox: {e}");
            std::process::exit(1);
        }
    };
    let c = sandbox.config();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", sandbox.base_url());
    let _ = writeln!(out, "token endpoint: {}/connect/token   API base: {}", sandbox.base_url(), sandbox.base_url());
    let _ = writeln!(out, "app key (ST-App-Key): {}", c.app_keys.join(", "));
    for t in &c.tenants {
        let _ = writeln!(
            out,
            "tenant {}: client_id={} client_secret={} scopes={}",
            t.id,
            t.client_id,
            t.client_secret,
            t.scopes.join(",")
        );
    }
    let limit = |l: &servicetitan_sandbox::LimitConfig| {
        if l.enabled {
            format!("{} per {} ms ({:?})", l.calls, l.window_ms, l.mode).to_lowercase()
        } else {
            "off".to_string()
        }
    };
    let _ = writeln!(
        out,
        "records per resource: {}, token lifetime: {} s, rate limit: {}, report limit: {}",
        c.records,
        c.token_lifetime_secs,
        limit(&c.rate_limit),
        limit(&c.report_limit)
    );
    let _ = out.flush();
    drop(out);
    wait_for_signal().await;
    sandbox.shutdown().await;
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
