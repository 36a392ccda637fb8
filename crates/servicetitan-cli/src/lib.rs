//! `servicetitan`: one command line for ServiceTitan syncs, calls, reports and Singer pipelines.
//!
//! The binary, the Python console script and `npx servicetitan` all call [`run`], so they take
//! the same arguments, print the same output and exit with the same codes (see [`exit`]).

#![warn(missing_docs)]

pub mod config;
pub mod exit;
pub mod schema;
pub mod streams;

mod call;
mod doctor;
mod export;
mod json_text;
mod log;
mod output;
mod progress;
mod reports;
mod sandbox;
mod tap;

use std::ffi::OsString;
use std::io::Write;

use clap::{CommandFactory, Parser, Subcommand};

use crate::config::GlobalArgs;
use crate::exit::{CliError, CliResult};

/// The command line.
#[derive(Parser, Debug)]
#[command(
    name = "servicetitan",
    version,
    about = "Copy ServiceTitan data to files and Singer targets, call any API operation by name, run reports",
    long_about = None,
    after_help = "Examples:\n  \
        servicetitan streams\n  \
        servicetitan export crm_customers jpm_jobs --format csv --out data/ --state state.json\n  \
        servicetitan call crm.customers.get_list --page-size 5 --active Any\n  \
        servicetitan report operations 175 --param From=2026-01-01\n  \
        servicetitan tap --config tap.json --discover > catalog.json\n  \
        servicetitan doctor\n\n\
        Configuration: flags, else ST_* environment variables, else the profile of the TOML file\n\
        given by --config (default: $XDG_CONFIG_HOME/servicetitan/config.toml)."
)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Copy export feeds (a full copy, then only what changed) to JSONL, CSV or Parquet.
    Export(export::ExportArgs),
    /// List the export streams `export` and `tap` know.
    Streams(streams::StreamsArgs),
    /// Call one API operation by its name (`crm.customers.get_list`).
    Call(call::CallArgs),
    /// List report categories, the reports of a category, or a report's parameters.
    Reports(reports::ReportsArgs),
    /// Run a report (every page), under the per-report limit.
    Report(reports::ReportArgs),
    /// A Singer tap: SCHEMA, RECORD and STATE messages on standard output.
    Tap(tap::TapArgs),
    /// Serve the local ServiceTitan (the sandbox) until interrupted.
    Sandbox(sandbox::SandboxArgs),
    /// Check the configured app and tenants, and say what is wrong in plain words.
    Doctor(doctor::DoctorArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
}

/// `servicetitan completions SHELL`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  servicetitan completions bash > ~/.local/share/bash-completion/completions/servicetitan\n  \
    servicetitan completions zsh > ~/.zfunc/_servicetitan\n  \
    servicetitan completions fish > ~/.config/fish/completions/servicetitan.fish"
)]
struct CompletionsArgs {
    /// The shell.
    shell: clap_complete::Shell,
}

/// Runs the command line `args` (the program name first) and returns the exit code.
///
/// Never panics to the caller and never prints a backtrace: a failure is one line on stderr.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(tap_alias(args.into_iter().map(Into::into).collect())) {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are "errors" that print to stdout and exit with 0.
            let _ = e.print();
            return e.exit_code();
        }
    };
    // A panic is reported below as one line; the default hook would print its own lines (and a
    // backtrace with RUST_BACKTRACE) first. The hook is the process's, so it is put back after.
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(move || dispatch(cli));
    std::panic::set_hook(previous_hook);
    match outcome {
        Ok(Ok(())) => exit::OK,
        Ok(Err(error)) => {
            let _ = writeln!(std::io::stderr(), "servicetitan: {}", error.message);
            error.code
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let _ = writeln!(std::io::stderr(), "servicetitan: internal error (a bug): {what}");
            exit::FAILURE
        }
    }
}

/// Called by the name `tap-servicetitan` (a link to the binary), the command is the Singer tap:
/// runners such as Meltano start an extractor as `EXECUTABLE --config FILE ...`.
fn tap_alias(mut args: Vec<OsString>) -> Vec<OsString> {
    let called = args.first().and_then(|program| std::path::Path::new(program).file_stem().map(|s| s.to_os_string()));
    if called.is_some_and(|name| name == "tap-servicetitan") {
        args.insert(1.min(args.len()), OsString::from("tap"));
    }
    args
}

fn dispatch(cli: Cli) -> CliResult {
    let Cli { global, command } = cli;
    match command {
        Command::Completions(args) => {
            clap_complete::generate(args.shell, &mut Cli::command(), "servicetitan", &mut std::io::stdout());
            Ok(())
        }
        Command::Streams(args) => streams::run(&global, args),
        command => runtime()?.block_on(async move {
            match command {
                Command::Export(args) => export::run(&global, args).await,
                Command::Call(args) => call::run(&global, args).await,
                Command::Reports(args) => reports::run_reports(&global, args).await,
                Command::Report(args) => reports::run_report(&global, args).await,
                Command::Tap(args) => tap::run(&global, args).await,
                Command::Sandbox(args) => sandbox::run(&global, args).await,
                Command::Doctor(args) => doctor::run(&global, args).await,
                Command::Completions(_) | Command::Streams(_) => unreachable!("handled above"),
            }
        }),
    }
}

fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))
}
