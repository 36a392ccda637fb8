//! The sandbox's command-line options, shared by the `servicetitan-sandbox` binary and
//! `servicetitan sandbox`, and the loop that serves until interrupted.

use std::io::Write;
use std::path::Path;

use clap::{Args, ValueEnum};

use crate::{JitterConfig, LimitConfig, Sandbox, SandboxConfig, WindowMode};

/// How rate-limit windows are counted.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Mode {
    /// Any window of the length counts.
    Sliding,
    /// Windows start at fixed times.
    Fixed,
}

/// How the inbound delay is drawn.
#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum JitterShape {
    /// Evenly between 0 and the longest delay.
    #[default]
    Uniform,
    /// Mostly short, now and then long.
    LongTailed,
}

/// The sandbox's options (a configuration file, given as `--config FILE`, is read by the
/// caller: the two commands spell that flag in their own contexts).
#[derive(Args, Debug, Clone, Default)]
pub struct SandboxArgs {
    /// Address to listen on.
    #[arg(long)]
    pub host: Option<String>,
    /// Port to listen on (0: a free one).
    #[arg(long)]
    pub port: Option<u16>,
    /// Records generated per resource.
    #[arg(long)]
    pub records: Option<u64>,
    /// Seed of the generated data.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Lifetime of access tokens, in seconds.
    #[arg(long)]
    pub token_lifetime_secs: Option<f64>,
    /// Calls per window per (app key, tenant).
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// Length of the rate-limit window, in milliseconds.
    #[arg(long)]
    pub rate_window_ms: Option<u64>,
    /// How rate-limit windows are counted.
    #[arg(long, value_enum)]
    pub window_mode: Option<Mode>,
    /// Switch the per-tenant and per-report rate limits off (for benchmarks).
    #[arg(long)]
    pub no_rate_limit: bool,
    /// Runs of one report per report window per tenant.
    #[arg(long)]
    pub report_limit: Option<u32>,
    /// Length of the report window, in milliseconds.
    #[arg(long)]
    pub report_window_ms: Option<u64>,
    /// Latency added to every API call, in milliseconds.
    #[arg(long)]
    pub latency_ms: Option<u64>,
    /// Records per export page.
    #[arg(long)]
    pub export_page_size: Option<usize>,
    /// Multiplies the webhook retry delays (10, 30, 60, 300 s); 0.01 for quick tests.
    #[arg(long)]
    pub webhook_time_scale: Option<f64>,
    /// Longest delay, in milliseconds, drawn per API call before the rate limiter counts it
    /// (changeable at run time with `PUT /__sandbox/jitter`).
    #[arg(long)]
    pub jitter_ms: Option<u64>,
    /// How that delay is drawn.
    #[arg(long, value_enum, default_value = "uniform")]
    pub jitter: JitterShape,
}

/// The configuration: the JSON file `file` (any `SandboxConfig` fields) if given, then the flags.
pub fn config_from(file: Option<&Path>, args: &SandboxArgs) -> Result<SandboxConfig, String> {
    let mut config = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("--config {}: {e}", path.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("--config {}: {e}", path.display()))?
        }
        None => SandboxConfig::default(),
    };
    let args = args.clone();
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

/// Why serving stopped early.
#[derive(Debug)]
pub enum ServeError {
    /// The options or the configuration file are wrong.
    Configuration(String),
    /// The sandbox could not start (the port is taken, ...).
    Start(String),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::Configuration(m) | ServeError::Start(m) => f.write_str(m),
        }
    }
}

/// Starts the sandbox, writes what a developer needs to `out` (first line: the base URL; then
/// the endpoints, the app key and each tenant's demo credentials), and serves until SIGINT or
/// SIGTERM.
pub async fn serve(file: Option<&Path>, args: &SandboxArgs, out: &mut (dyn Write + Send)) -> Result<(), ServeError> {
    let config = config_from(file, args).map_err(ServeError::Configuration)?;
    let sandbox = Sandbox::start(config).await.map_err(|e| ServeError::Start(e.to_string()))?;
    let _ = out.write_all(banner(&sandbox).as_bytes());
    let _ = out.flush();
    wait_for_signal().await;
    sandbox.shutdown().await;
    Ok(())
}

/// The lines `serve` prints. The credentials are the sandbox's own demo credentials, printed
/// so that a developer can paste them into a client.
pub fn banner(sandbox: &Sandbox) -> String {
    let c = sandbox.config();
    let mut text = String::new();
    text.push_str(&format!("{}\n", sandbox.base_url()));
    text.push_str(&format!(
        "token endpoint: {}/connect/token   API base: {}\n",
        sandbox.base_url(),
        sandbox.base_url()
    ));
    text.push_str(&format!("app key (ST-App-Key): {}\n", c.app_keys.join(", ")));
    for t in &c.tenants {
        text.push_str(&format!(
            "tenant {}: client_id={} client_secret={} scopes={}\n",
            t.id,
            t.client_id,
            t.client_secret,
            t.scopes.join(",")
        ));
    }
    let limit = |l: &LimitConfig| {
        if l.enabled {
            format!("{} per {} ms ({:?})", l.calls, l.window_ms, l.mode).to_lowercase()
        } else {
            "off".to_string()
        }
    };
    text.push_str(&format!(
        "records per resource: {}, token lifetime: {} s, rate limit: {}, report limit: {}\n",
        c.records,
        c.token_lifetime_secs,
        limit(&c.rate_limit),
        limit(&c.report_limit)
    ));
    text
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
