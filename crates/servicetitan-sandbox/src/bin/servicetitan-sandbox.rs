//! `servicetitan-sandbox`: runs the local ServiceTitan until interrupted. The first line of
//! standard output is the base URL (`http://127.0.0.1:PORT`); the credentials follow.
//! `servicetitan sandbox` takes the same options (`servicetitan_sandbox::cli`).

use std::path::PathBuf;

use clap::Parser;
use servicetitan_sandbox::cli::{serve, SandboxArgs, ServeError};

/// A local ServiceTitan API for offline development and tests.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// JSON file with any SandboxConfig fields (see the README); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut out = std::io::stdout();
    match serve(args.config.as_deref(), &args.sandbox, &mut out).await {
        Ok(()) => {}
        Err(e @ ServeError::Configuration(_)) => {
            eprintln!("servicetitan-sandbox: {e}");
            std::process::exit(2);
        }
        Err(e @ ServeError::Start(_)) => {
            eprintln!("servicetitan-sandbox: {e}");
            std::process::exit(1);
        }
    }
}
