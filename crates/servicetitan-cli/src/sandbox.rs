//! `servicetitan sandbox`: the local ServiceTitan, with the options of the
//! `servicetitan-sandbox` binary (one definition, in the sandbox crate).

use clap::Args;
use servicetitan_sandbox::cli::{serve, ServeError};

use crate::config::GlobalArgs;
use crate::exit::{CliError, CliResult};

/// `servicetitan sandbox [--port N] ...`.
#[derive(Args, Debug)]
#[command(after_help = "The first line printed is the sandbox's URL; the demo app key and each tenant's demo \
credentials follow. --config FILE here names a JSON file with any sandbox setting (flags override it).\n\n\
Examples:\n  \
    servicetitan sandbox --port 8080\n  \
    servicetitan sandbox --records 100000 --no-rate-limit\n  \
    servicetitan sandbox --config sandbox.json --latency-ms 50\n  \
    servicetitan sandbox --port 8080 &   # then, with the ST_* credentials it printed:\n  \
    servicetitan --auth-url http://127.0.0.1:8080 --api-url http://127.0.0.1:8080 call crm.customers.get_list")]
#[group(skip)]
pub struct SandboxArgs {
    #[command(flatten)]
    pub options: servicetitan_sandbox::cli::SandboxArgs,
}

/// Serves the sandbox until interrupted.
pub async fn run(global: &GlobalArgs, args: SandboxArgs) -> CliResult {
    let mut out = std::io::stdout();
    serve(global.config.as_deref(), &args.options, &mut out).await.map_err(|e| match e {
        ServeError::Configuration(m) => CliError::configuration(m),
        ServeError::Start(m) => CliError::failure(format!("the sandbox cannot start: {m}")),
    })
}
