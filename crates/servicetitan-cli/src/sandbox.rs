//! `servicetitan sandbox`: the local ServiceTitan.

use clap::Args;

use crate::config::GlobalArgs;
use crate::exit::{CliError, CliResult};

/// `servicetitan sandbox [--port N]`.
#[derive(Args, Debug)]
pub struct SandboxArgs {
    /// Port to listen on (0: a free one).
    #[arg(long)]
    pub port: Option<u16>,
}

/// Serves the sandbox until interrupted.
pub async fn run(global: &GlobalArgs, args: SandboxArgs) -> CliResult {
    let _ = (global, args);
    Err(CliError::failure("sandbox: not built yet"))
}
