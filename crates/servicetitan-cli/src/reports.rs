//! `servicetitan reports` and `servicetitan report CATEGORY ID`.

use clap::Args;

use crate::config::GlobalArgs;
use crate::exit::{CliError, CliResult};

/// `servicetitan reports [CATEGORY [ID]]`.
#[derive(Args, Debug)]
pub struct ReportsArgs {
    /// A category: list its reports.
    pub category: Option<String>,
    /// A report of the category: list its parameters and fields.
    pub report: Option<i64>,
}

/// `servicetitan report CATEGORY ID --param NAME=VALUE ...`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The report's category (`operations`).
    pub category: String,
    /// The report's id.
    pub report: i64,
    /// A parameter, as NAME=VALUE (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
}

/// Lists categories, reports or a report's parameters.
pub async fn run_reports(global: &GlobalArgs, args: ReportsArgs) -> CliResult {
    let _ = (global, args);
    Err(CliError::failure("reports: not built yet"))
}

/// Runs one report.
pub async fn run_report(global: &GlobalArgs, args: ReportArgs) -> CliResult {
    let _ = (global, args);
    Err(CliError::failure("report: not built yet"))
}
