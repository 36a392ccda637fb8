//! `servicetitan tap`: a Singer tap.

use std::path::PathBuf;

use clap::Args;

use crate::config::GlobalArgs;
use crate::exit::{CliError, CliResult};

/// `servicetitan tap --config FILE [--discover] [--catalog FILE] [--state FILE] [--about]`.
///
/// Here the global `--config` is the tap's JSON config, as Singer runners pass it: `app_key`,
/// `environment` (or `auth_url` and `api_url`), `tenants` (`[{"id", "client_id",
/// "client_secret"}]`) and an optional `start_date`; `ST_*` variables fill what it leaves out.
#[derive(Args, Debug)]
pub struct TapArgs {
    /// Print the catalog of every stream and exit.
    #[arg(long)]
    pub discover: bool,
    /// The streams to sync (selected in a Singer catalog).
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
    /// The state of the previous run.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Print what the tap is and supports, and exit.
    #[arg(long)]
    pub about: bool,
}

/// Runs the tap.
pub async fn run(global: &GlobalArgs, args: TapArgs) -> CliResult {
    let _ = (global, args);
    Err(CliError::failure("tap: not built yet"))
}
