//! The export streams: every export operation of the API, named `<module>_<path after export/>`
//! with `-` and `/` as `_` (`crm_customers`, `crm_customers_contacts`, `jpm_jobs`).

use clap::Args;
use servicetitan::operations::{self, Kind, Operation};

use crate::config::GlobalArgs;
use crate::exit::{CliError, CliResult};

/// One export stream.
#[derive(Debug, Clone)]
pub struct Stream {
    /// `crm_customers`.
    pub name: String,
    /// The operation behind it (`crm.export_customers.get_customers`).
    pub operation: &'static Operation,
}

impl Stream {
    /// The API path under the tenant's part of it (`crm/customers` style paths are not used
    /// here: the operation's own template is).
    pub fn operation_name(&self) -> String {
        self.operation.name()
    }
}

/// Every export stream, sorted by name.
pub fn all() -> Vec<Stream> {
    let mut streams: Vec<Stream> = operations::operations()
        .iter()
        .filter(|op| op.kind == Kind::Export && op.method == "GET")
        .filter_map(|op| stream_name(op).map(|name| Stream { name, operation: op }))
        .collect();
    streams.sort_by(|a, b| a.name.cmp(&b.name));
    streams
}

/// `crm/v2/tenant/{tenant}/export/customers/contacts` of module `crm` → `crm_customers_contacts`.
/// Operations whose path has no `export/` segment (a legacy asynchronous export) are not streams.
fn stream_name(op: &Operation) -> Option<String> {
    let (_, rest) = op.path.split_once("/export/")?;
    let module = op.python.first()?;
    Some(format!("{module}_{}", rest.replace(['-', '/'], "_")))
}

/// The streams named, in the order given; an unknown name is an error with a suggestion.
pub fn select(names: &[String]) -> CliResult<Vec<Stream>> {
    let all = all();
    let mut chosen: Vec<Stream> = Vec::new();
    for name in names {
        match all.iter().find(|s| &s.name == name) {
            Some(stream) => {
                if !chosen.iter().any(|c| c.name == stream.name) {
                    chosen.push(stream.clone())
                }
            }
            None => {
                let hint = operations::did_you_mean(name, all.iter().map(|s| s.name.as_str()))
                    .map(|s| format!(" (did you mean {s}?)"))
                    .unwrap_or_default();
                return Err(CliError::configuration(format!(
                    "unknown stream {name:?}{hint}; `servicetitan streams` lists all {}",
                    all.len()
                )));
            }
        }
    }
    Ok(chosen)
}

/// `servicetitan streams`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  servicetitan streams\n  servicetitan streams --json")]
pub struct StreamsArgs {
    /// One JSON object per line (name, operation, method, path) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Lists the streams on stdout.
pub fn run(_global: &GlobalArgs, args: StreamsArgs) -> CliResult {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for stream in all() {
        let line = if args.json {
            serde_json::json!({
                "name": stream.name,
                "operation": stream.operation_name(),
                "method": stream.operation.method,
                "path": stream.operation.path,
            })
            .to_string()
        } else {
            format!("{:<48} {}", stream.name, stream.operation_name())
        };
        if let Err(e) = writeln!(out, "{line}") {
            // A closed pipe (`| head`) ends the listing quietly.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(e.into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule_and_are_unique() {
        let streams = all();
        assert_eq!(streams.len(), 54, "{:?}", streams.iter().map(|s| &s.name).collect::<Vec<_>>());
        for name in ["crm_customers", "crm_customers_contacts", "jpm_jobs", "settings_technicians", "telecom_calls"] {
            assert!(streams.iter().any(|s| s.name == name), "{name} missing");
        }
        let mut names: Vec<&str> = streams.iter().map(|s| s.name.as_str()).collect();
        names.dedup();
        assert_eq!(names.len(), streams.len());
    }

    #[test]
    fn unknown_stream_suggests_the_closest() {
        let error = select(&["crm_customer".to_string()]).unwrap_err();
        assert_eq!(error.code, crate::exit::CONFIGURATION);
        assert!(error.message.contains("did you mean crm_customers?"), "{}", error.message);
    }
}
