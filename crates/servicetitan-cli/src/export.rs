//! `servicetitan export`: export feeds to JSONL, CSV or Parquet, with a state file.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::config::GlobalArgs;
use crate::exit::{CliError, CliResult};

/// `servicetitan export STREAM...`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The streams to copy (`servicetitan streams` lists them).
    #[arg(required = true, value_name = "STREAM")]
    pub streams: Vec<String>,
    /// The output format.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
    /// A directory for one file per stream and tenant, or `-` for standard output (the default).
    #[arg(long, value_name = "DIR|-")]
    pub out: Option<PathBuf>,
    /// Keep the checkpoint per tenant and stream here: the next run fetches only what changed.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Start from this date (ISO 8601) where the state has no checkpoint.
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
}

/// Output formats.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated, nested objects flattened to dotted columns.
    Csv,
    /// Apache Parquet, column types from the official schema.
    Parquet,
}

/// Runs the export.
pub async fn run(global: &GlobalArgs, args: ExportArgs) -> CliResult {
    let _ = (global, args);
    Err(CliError::failure("export: not built yet"))
}
