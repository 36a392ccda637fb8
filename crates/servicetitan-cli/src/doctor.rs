//! `servicetitan doctor`: checks the app and tenants piece by piece.

use clap::Args;

use crate::config::GlobalArgs;
use crate::exit::{CliError, CliResult};

/// `servicetitan doctor`.
#[derive(Args, Debug)]
pub struct DoctorArgs {}

/// Runs the checks.
pub async fn run(global: &GlobalArgs, args: DoctorArgs) -> CliResult {
    let _ = (global, args);
    Err(CliError::failure("doctor: not built yet"))
}
