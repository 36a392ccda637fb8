//! `servicetitan call OPERATION [--NAME VALUE ...]`.

use clap::Args;

use crate::config::GlobalArgs;
use crate::exit::{CliError, CliResult};

/// `servicetitan call`.
#[derive(Args, Debug)]
pub struct CallArgs {
    /// The operation's name (`crm.customers.get_list`).
    pub operation: String,
    /// Parameters as `--name value` (`--page-size 5`), a JSON body as `--body JSON` or `--body @FILE`,
    /// `--all` to follow every page of a list.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
    pub rest: Vec<String>,
}

/// Runs the call.
pub async fn run(global: &GlobalArgs, args: CallArgs) -> CliResult {
    let _ = (global, args);
    Err(CliError::failure("call: not built yet"))
}
