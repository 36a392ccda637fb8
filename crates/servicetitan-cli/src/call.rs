//! `servicetitan call OPERATION [--NAME VALUE ...]`: any operation of the API by its name, its
//! parameters as kebab-case flags (`--page-size 5`), checked by the engine before anything is sent.

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::{ArgMatches, Args, FromArgMatches};
use serde::Deserialize;
use serde_json::Value;
use servicetitan::operations::{self, Kind, Location, Naming, Operation, Param, ParamType};
use servicetitan::Tenant;

use crate::config::{self, GlobalArgs};
use crate::exit::{CliError, CliResult};
use crate::json_text;
use crate::output::{self, Flow};

/// `servicetitan call`.
#[derive(Args, Debug)]
#[command(
    after_help = "Parameters are the operation's, in kebab-case: --page-size 5, --modified-on-or-after 2026-01-01. \
A list takes its values repeated (--ids 1 --ids 2) or comma-separated (--ids 1,2); a map takes KEY=VALUE \
(repeatable) or a JSON object.\n\n\
Examples:\n  \
    servicetitan call --list crm\n  \
    servicetitan call crm.customers.get_list --page-size 5 --active Any\n  \
    servicetitan call crm.customers.get --id 42\n  \
    servicetitan call crm.customers.get_list --active Any --all > customers.jsonl\n  \
    servicetitan call crm.customers.create --body @customer.json\n  \
    echo '{\"name\": \"Ada\"}' | servicetitan call crm.customers.update --id 42 --body @-\n  \
    servicetitan call telecom.calls.get_recording --id 7 --output call.mp3"
)]
#[command(disable_help_flag = true)]
pub struct CallArgs {
    /// The operation's name (`crm.customers.get_list`; `servicetitan call --list` lists them).
    #[arg(required_unless_present_any = ["list", "help"])]
    pub operation: Option<String>,
    /// Print help; after an operation's name, the operation's parameters.
    #[arg(short, long)]
    pub help: bool,
    /// List the operations (of one module, `crm`, or whose name starts with the text given) instead.
    #[arg(long, value_name = "MODULE", num_args = 0..=1, default_missing_value = "", conflicts_with = "operation")]
    pub list: Option<String>,
    /// The JSON body: the text itself, @FILE, or @- for standard input.
    #[arg(long, value_name = "JSON|@FILE")]
    pub body: Option<String>,
    /// Follow every page of a list (or an export feed) and print one record per line (JSONL).
    #[arg(long)]
    pub all: bool,
    /// Write a file's bytes (a recording, an attachment) here instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The operation's parameters: `--name value` (`--page-size 5`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "--NAME VALUE")]
    pub rest: Vec<String>,
}

/// A parameter flag as given: its name without `--`, and its value (none for a bare boolean).
type Given = (String, Option<String>);

/// The flags of `call` itself and the global ones, when they come after the operation's
/// parameters started (clap hands everything from there on to `rest`).
struct Extras {
    body: Option<String>,
    all: bool,
    output: Option<PathBuf>,
    global: GlobalArgs,
}

/// Runs the call.
pub async fn run(global: &GlobalArgs, args: CallArgs) -> CliResult {
    if let Some(prefix) = &args.list {
        return list_operations(prefix);
    }
    let Some(name) = args.operation.clone() else {
        return print_command_help();
    };
    let op = operations::find(&name).map_err(CliError::from)?;
    if args.help || args.rest.iter().any(|a| a == "--help" || a == "-h") {
        let mut out = std::io::stdout().lock();
        output::write_all(&mut out, operation_help(op).as_bytes())?;
        return output::flush(&mut out);
    }
    let (params, extras) = split(op, global, &args)?;
    let arguments = arguments(op, &params)?;
    let body = match &extras.body {
        Some(text) => Some(read_body(text)?),
        None => None,
    };
    if extras.all && !matches!(op.kind, Kind::List | Kind::Export) {
        return Err(CliError::configuration(format!(
            "--all: {} is not a list or an export feed, it has no pages to follow",
            op.name()
        )));
    }
    if extras.output.is_some() && op.kind != Kind::Binary {
        return Err(CliError::configuration(format!(
            "--output: {} answers JSON, which goes to standard output (redirect it with > FILE)",
            op.name()
        )));
    }
    let resolved = config::resolve(&extras.global)?;
    let several = resolved.tenants.len() > 1;
    if several && op.kind == Kind::Binary {
        return Err(CliError::configuration(format!(
            "{} answers a file: choose one tenant with --tenant ID",
            op.name()
        )));
    }
    let mut stdout = std::io::stdout().lock();
    for credentials in &resolved.tenants {
        let tenant = resolved.client.tenant(credentials.clone());
        let call = || tenant.operation(&op.name()).naming(Naming::Api).args(arguments.clone()).json_value(body.clone());
        let flow = if extras.all {
            print_records(&tenant, call(), several, &mut stdout).await?
        } else if op.kind == Kind::Binary {
            let bytes = call().send_bytes().await.map_err(|e| engine_error(op, e))?;
            match &extras.output {
                Some(path) => {
                    std::fs::write(path, &bytes)
                        .map_err(|e| CliError::failure(format!("--output {}: {e}", path.display())))?;
                    Flow::More
                }
                None => output::write_all(&mut stdout, &bytes)?,
            }
        } else {
            let answer = call().send_body().await.map_err(|e| engine_error(op, e))?;
            print_answer(&answer, several.then_some(tenant.id()), &mut stdout)?
        };
        if flow == Flow::Closed {
            break;
        }
    }
    output::flush(&mut stdout)
}

/// One answer: pretty JSON as the API sent it (keys in its order), or compact and tagged with
/// the tenant when several tenants answer.
fn print_answer(answer: &servicetitan::ResponseBody, tenant_id: Option<i64>, out: &mut impl Write) -> CliResult<Flow> {
    if answer.iter().all(u8::is_ascii_whitespace) {
        return Ok(Flow::More);
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(answer).map_err(|e| CliError::from(answer.decode_error(e)))?;
    match tenant_id {
        Some(id) => output::line(out, &output::with_tenant_id(&json_text::compact(answer), id)),
        None => output::line(out, json_text::pretty(answer).as_bytes()),
    }
}

/// Every record of a list or an export feed, one JSON object per line.
async fn print_records(
    tenant: &Tenant,
    call: servicetitan::operations::OperationCall,
    several: bool,
    out: &mut impl Write,
) -> CliResult<Flow> {
    #[derive(Deserialize)]
    struct Page {
        #[serde(default)]
        data: Vec<Box<serde_json::value::RawValue>>,
    }
    let op = call.operation().map_err(CliError::from)?;
    let records = call.raw_records().map_err(CliError::from)?;
    let mut page: Vec<Box<serde_json::value::RawValue>> = Vec::new();
    while let Some(record) = records.next().await {
        let record = record.map_err(|e| engine_error(op, e))?;
        if record.index == 0 {
            page = serde_json::from_slice::<Page>(&record.page)
                .map_err(|e| CliError::failure(format!("a page of {} is not the JSON expected: {e}", op.name())))?
                .data;
        }
        let Some(raw) = page.get(record.index) else { continue };
        let mut line = json_text::compact(raw.get().as_bytes());
        if several {
            line = output::with_tenant_id(&line, tenant.id());
        }
        if output::line(out, &line)? == Flow::Closed {
            return Ok(Flow::Closed);
        }
    }
    Ok(Flow::More)
}

/// The flag of a parameter: its Python name in kebab-case, without the keyword's underscore
/// (`page_size` → `page-size`, `from_` → `from`).
pub fn flag_name(param: &Param) -> String {
    param.python_name().trim_end_matches('_').replace('_', "-")
}

/// Separates the operation's parameters from the flags of `call` and the global ones that
/// followed them.
fn split(op: &Operation, global: &GlobalArgs, args: &CallArgs) -> CliResult<(Vec<Given>, Extras)> {
    let mut extras =
        Extras { body: args.body.clone(), all: args.all, output: args.output.clone(), global: global.clone() };
    let global_command = GlobalArgs::augment_args(clap::Command::new("servicetitan").no_binary_name(true));
    let mut global_tokens: Vec<String> = Vec::new();
    let mut params: Vec<Given> = Vec::new();
    let mut tokens = args.rest.iter().peekable();
    while let Some(token) = tokens.next() {
        let Some(flag) = token.strip_prefix("--").filter(|f| !f.is_empty()) else {
            if let Some(short) = token.strip_prefix('-').filter(|s| matches!(*s, "v" | "q")) {
                global_tokens.push(format!("-{short}"));
                continue;
            }
            return Err(CliError::configuration(format!(
                "unexpected {token:?}: parameters of {} are given as --name value",
                op.name()
            )));
        };
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (flag.to_string(), None),
        };
        let is_param = op.params.iter().any(|p| flag_name(p) == flag || p.name == flag)
            || (flag == "since" && op.kind == Kind::Export);
        // The value is the next token unless that is a flag (a boolean given as `--include-total`).
        let mut value = |takes_value: bool| -> Option<String> {
            inline.clone().or_else(|| {
                let next = tokens.peek()?;
                (takes_value && !next.starts_with("--")).then(|| tokens.next().cloned()).flatten()
            })
        };
        match flag.as_str() {
            _ if is_param => {
                let v = value(true);
                params.push((flag, v));
            }
            "all" => extras.all = true,
            "body" => {
                extras.body =
                    Some(value(true).ok_or_else(|| CliError::configuration("--body: expected JSON, @FILE or @-"))?)
            }
            "output" => {
                extras.output =
                    Some(value(true).ok_or_else(|| CliError::configuration("--output: expected a file name"))?.into())
            }
            _ => match global_command.get_arguments().find(|a| a.get_long() == Some(flag.as_str())) {
                Some(arg) => {
                    global_tokens.push(format!("--{flag}"));
                    if arg.get_action().takes_values() {
                        let v = value(true)
                            .ok_or_else(|| CliError::configuration(format!("--{flag}: expected a value")))?;
                        global_tokens.push(v);
                    }
                }
                None => return Err(unknown_flag(op, &flag)),
            },
        }
    }
    if !global_tokens.is_empty() {
        let matches = global_command
            .try_get_matches_from(&global_tokens)
            .map_err(|e| CliError::configuration(one_line(&e.to_string())))?;
        extras.global = merge_global(extras.global, &matches)?;
    }
    Ok((params, extras))
}

/// The global flags given after the operation, over those given before it.
fn merge_global(mut global: GlobalArgs, matches: &ArgMatches) -> CliResult<GlobalArgs> {
    let later = GlobalArgs::from_arg_matches(matches).map_err(|e| CliError::configuration(one_line(&e.to_string())))?;
    let given = |id: &str| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
    global.config = later.config.or(global.config);
    global.profile = later.profile.or(global.profile);
    global.environment = later.environment.or(global.environment);
    global.auth_url = later.auth_url.or(global.auth_url);
    global.api_url = later.api_url.or(global.api_url);
    global.tenants.extend(later.tenants);
    global.all_tenants |= later.all_tenants;
    global.verbose |= later.verbose;
    global.quiet |= later.quiet;
    global.no_progress |= later.no_progress;
    if given("log_format") {
        global.log_format = later.log_format;
    }
    if global.all_tenants && !global.tenants.is_empty() {
        return Err(CliError::configuration("--all-tenants: cannot be used with --tenant"));
    }
    if global.verbose && global.quiet {
        return Err(CliError::configuration("--verbose: cannot be used with --quiet"));
    }
    Ok(global)
}

fn one_line(text: &str) -> String {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or(text);
    first.trim_start_matches("error: ").trim().to_string()
}

fn unknown_flag(op: &Operation, flag: &str) -> CliError {
    let flags: Vec<String> = op.params.iter().map(flag_name).collect();
    let mut candidates: Vec<&str> = flags.iter().map(String::as_str).collect();
    candidates.extend(["body", "all", "output"]);
    let hint = servicetitan::operations::did_you_mean(flag, candidates.iter().copied())
        .map(|best| format!(" (did you mean --{best}?)"))
        .unwrap_or_default();
    let known = if flags.is_empty() {
        "none".to_string()
    } else {
        flags.iter().map(|f| format!("--{f}")).collect::<Vec<_>>().join(", ")
    };
    CliError::configuration(format!("--{flag}: {} has no such parameter{hint}; its parameters: {known}", op.name()))
}

/// The arguments as the engine takes them (API names, JSON values typed by the parameter).
/// Values the text cannot be read as go to the engine as text, which names the flag and the
/// type it expected.
fn arguments(op: &Operation, given: &[Given]) -> CliResult<Vec<(String, Value)>> {
    let mut out: Vec<(String, Value)> = Vec::new();
    for (flag, value) in given {
        let Some(param) = op.params.iter().find(|p| flag_name(p) == *flag || p.name == *flag) else {
            // `--since`, an export's start.
            let v = value.clone().ok_or_else(|| CliError::configuration(format!("--{flag}: expected a value")))?;
            out.push(("since".to_string(), Value::String(v)));
            continue;
        };
        let text = match value {
            Some(text) => text.clone(),
            None if param.param_type == ParamType::Boolean => "true".to_string(),
            None => {
                return Err(CliError::configuration(format!(
                    "--{}: expected {}",
                    flag_name(param),
                    describe_type(param)
                )))
            }
        };
        let converted =
            convert(param, &text).map_err(|why| CliError::configuration(format!("--{}: {why}", flag_name(param))))?;
        match (out.iter_mut().find(|(name, _)| *name == param.name), param.param_type) {
            // Repeated lists and maps add up.
            (Some((_, Value::Array(items))), ParamType::Array) => {
                if let Value::Array(more) = converted {
                    items.extend(more)
                }
            }
            (Some((_, Value::Object(map))), ParamType::Object) => {
                if let Value::Object(more) = converted {
                    map.extend(more)
                }
            }
            (Some(_), _) => {
                return Err(CliError::configuration(format!("--{}: given twice", flag_name(param))));
            }
            (None, _) => out.push((param.name.clone(), converted)),
        }
    }
    Ok(out)
}

fn describe_type(param: &Param) -> &'static str {
    match param.param_type {
        ParamType::Integer => "a whole number",
        ParamType::Number => "a number",
        ParamType::Boolean => "true or false",
        ParamType::String => "a value",
        ParamType::Array => "one or more values (repeated, or separated by commas)",
        _ => "KEY=VALUE or a JSON object",
    }
}

fn scalar(t: ParamType, text: &str) -> Value {
    let trimmed = text.trim();
    match t {
        ParamType::Integer => trimmed.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::String(text.into())),
        ParamType::Number => match trimmed.parse::<i64>() {
            Ok(i) => Value::from(i),
            Err(_) => trimmed
                .parse::<f64>()
                .ok()
                .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
                .unwrap_or_else(|| Value::String(text.into())),
        },
        ParamType::Boolean => match trimmed.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Value::Bool(true),
            "false" | "no" | "0" => Value::Bool(false),
            _ => Value::String(text.into()),
        },
        _ => Value::String(text.into()),
    }
}

/// One flag value as the parameter's JSON type.
fn convert(param: &Param, text: &str) -> Result<Value, String> {
    match param.param_type {
        ParamType::Array => match param.items {
            Some(ParamType::Object) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Array(items)) => Ok(Value::Array(items)),
                Ok(object @ Value::Object(_)) => Ok(Value::Array(vec![object])),
                _ => Err(format!("expected a JSON object or a JSON list of objects, got {text:?}")),
            },
            items => {
                let t = items.unwrap_or(ParamType::String);
                Ok(Value::Array(
                    text.split(',').filter(|s| !s.trim().is_empty()).map(|s| scalar(t, s.trim())).collect(),
                ))
            }
        },
        ParamType::Object => {
            if text.trim_start().starts_with('{') {
                return serde_json::from_str::<Value>(text).map_err(|e| format!("not a JSON object ({e})"));
            }
            match text.split_once('=') {
                Some((key, value)) if !key.trim().is_empty() => Ok(Value::Object(
                    [(key.trim().to_string(), Value::String(value.to_string()))].into_iter().collect(),
                )),
                _ => Err(format!("expected KEY=VALUE or a JSON object, got {text:?}")),
            }
        }
        t => Ok(scalar(t, text)),
    }
}

/// `--body`: JSON text, `@FILE`, or `@-` for standard input.
fn read_body(text: &str) -> CliResult<Value> {
    let (source, content) = match text.strip_prefix('@') {
        Some("-") => {
            let mut content = String::new();
            std::io::stdin()
                .read_to_string(&mut content)
                .map_err(|e| CliError::configuration(format!("--body @-: cannot read standard input: {e}")))?;
            ("standard input".to_string(), content)
        }
        Some(path) => {
            let content =
                std::fs::read_to_string(path).map_err(|e| CliError::configuration(format!("--body @{path}: {e}")))?;
            (path.to_string(), content)
        }
        None => ("the text given".to_string(), text.to_string()),
    };
    serde_json::from_str(&content)
        .map_err(|e| CliError::configuration(format!("--body: {source} is not valid JSON ({e})")))
}

/// An engine error, naming the flag where the engine named a parameter (`pageSize` → `--page-size`).
fn engine_error(op: &Operation, error: servicetitan::Error) -> CliError {
    let mut cli = CliError::from(error.clone());
    if let Some(param) = error.argument().and_then(|a| op.param(a, Naming::Api)) {
        let prefix = format!("invalid {}: ", param.name);
        let rest = cli.message.strip_prefix(&prefix).unwrap_or(&cli.message).to_string();
        cli.message = format!("--{}: {rest}", flag_name(param));
    }
    cli
}

/// `servicetitan call --help`.
fn print_command_help() -> CliResult {
    let mut command = <crate::Cli as clap::CommandFactory>::command();
    command.build();
    let text = match command.find_subcommand_mut("call") {
        Some(call) => call.render_long_help().to_string(),
        None => String::new(),
    };
    let mut out = std::io::stdout().lock();
    output::write_all(&mut out, text.as_bytes())?;
    output::flush(&mut out)
}

/// `servicetitan call OPERATION --help`: what the operation takes, as flags.
fn operation_help(op: &Operation) -> String {
    let mut text = format!("{} ({}): {} {}\n", op.name(), op.id, op.method, op.path);
    text.push_str(match op.kind {
        Kind::List => "A list: one page as the API answers it, or every record with --all (JSONL).\n",
        Kind::Export => "An export feed: one page, or every record with --all (JSONL); start with --from or --since.\n",
        Kind::Binary => "A file: its bytes to standard output, or to --output FILE.\n",
        _ => "",
    });
    text.push_str("\nParameters:\n");
    let mut rows: Vec<(String, String)> = Vec::new();
    for p in &op.params {
        let value = match (&p.values, p.param_type, p.items) {
            (Some(values), _, _) => values
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join("|"),
            (None, ParamType::Array, items) => format!("{}...", type_word(items.unwrap_or(ParamType::String))),
            (None, t, _) => type_word(t).to_string(),
        };
        let mut notes = Vec::new();
        if p.required {
            notes.push("required");
        }
        if p.location == Location::Path {
            notes.push("in the path");
        }
        rows.push((format!("--{} <{value}>", flag_name(p)), notes.join(", ")));
    }
    if op.kind == Kind::Export {
        rows.push(("--since <continueFrom|date>".to_string(), "the start, as --from".to_string()));
    }
    if op.body {
        rows.push(("--body <JSON|@FILE|@->".to_string(), "the request's JSON body".to_string()));
    }
    if rows.is_empty() {
        text.push_str("  (none)\n");
    }
    let width = rows.iter().map(|(flag, _)| flag.len()).max().unwrap_or(0).min(48);
    for (flag, notes) in rows {
        text.push_str(format!("  {flag:<width$}  {notes}").trim_end());
        text.push('\n');
    }
    text
}

fn type_word(t: ParamType) -> &'static str {
    match t {
        ParamType::Integer => "integer",
        ParamType::Number => "number",
        ParamType::Boolean => "true|false",
        ParamType::Object => "KEY=VALUE",
        _ => "text",
    }
}

/// `--list [PREFIX]`: the operations' names, methods and paths.
fn list_operations(prefix: &str) -> CliResult {
    let all = operations::operations();
    let prefix = prefix.trim();
    let chosen: Vec<&Operation> = all
        .iter()
        .filter(|op| {
            prefix.is_empty()
                || op.python.first().is_some_and(|m| m == prefix)
                || op.name().starts_with(prefix)
                || op.node_name().starts_with(prefix)
        })
        .collect();
    if chosen.is_empty() {
        let modules = operations::modules().iter().map(|m| m.python.as_str());
        let hint = servicetitan::operations::did_you_mean(prefix, modules)
            .map(|best| format!(" (did you mean {best}?)"))
            .unwrap_or_default();
        return Err(CliError::configuration(format!(
            "--list {prefix}: no module or operation name starts so{hint}; modules: {}",
            operations::modules().iter().map(|m| m.python.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    let mut out = std::io::stdout().lock();
    for op in chosen {
        let line = format!("{:<64} {:<6} {}", op.name(), op.method, op.path);
        if output::line(&mut out, line.trim_end().as_bytes())? == Flow::Closed {
            return Ok(());
        }
    }
    output::flush(&mut out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_kebab_case_and_unique_per_operation() {
        for op in operations::operations() {
            let mut flags: Vec<String> = op.params.iter().map(flag_name).collect();
            let n = flags.len();
            flags.sort();
            flags.dedup();
            assert_eq!(flags.len(), n, "{}", op.name());
            for flag in flags {
                assert!(!["body", "all", "output", "since"].contains(&flag.as_str()), "{}: --{flag}", op.name());
            }
        }
        let op = operations::find("crm.export_customers.get_customers").unwrap();
        assert!(op.params.iter().any(|p| flag_name(p) == "from"));
    }

    #[test]
    fn values_take_the_parameter_type() {
        let op = operations::find("accounting.invoices.get_list").unwrap();
        let given = |pairs: &[(&str, Option<&str>)]| -> Vec<Given> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.map(str::to_string))).collect()
        };
        let args = arguments(
            op,
            &given(&[
                ("page-size", Some("5")),
                ("include-total", None),
                ("assigned-to-ids", Some("1,2")),
                ("assigned-to-ids", Some("3")),
                ("total-greater", Some("2.5")),
                ("custom-field-fields", Some("Color=red")),
                ("custom-field-fields", Some("Size=L")),
                ("ids", Some("7,8")),
            ]),
        )
        .unwrap();
        assert_eq!(args[0], ("pageSize".to_string(), Value::from(5)));
        assert_eq!(args[1], ("includeTotal".to_string(), Value::Bool(true)));
        assert_eq!(args[2], ("assignedToIds".to_string(), serde_json::json!([1, 2, 3])));
        assert_eq!(args[3], ("totalGreater".to_string(), serde_json::json!(2.5)));
        assert_eq!(args[4], ("customField.Fields".to_string(), serde_json::json!({"Color": "red", "Size": "L"})));
        // `ids` is text in the spec: the engine sends it as given.
        assert_eq!(args[5], ("ids".to_string(), Value::from("7,8")));
        // A value that is not a number goes to the engine as text, which refuses it by name.
        assert_eq!(arguments(op, &given(&[("page-size", Some("five"))])).unwrap()[0].1, Value::from("five"));
        assert!(arguments(op, &given(&[("page-size", Some("1")), ("page-size", Some("2"))])).is_err());
    }
}
