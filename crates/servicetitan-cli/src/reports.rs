//! `servicetitan reports` and `servicetitan report CATEGORY ID`: the reporting API's
//! categories, reports and parameters, and every row of a report as named records, each run
//! under the per-report limit (the engine's).

use clap::{Args, ValueEnum};
use serde_json::{Map, Value};
use servicetitan::{ErrorCode, ReportMetadata};

use crate::config::{self, GlobalArgs};
use crate::exit::{CliError, CliResult};
use crate::output::{self, Flow};

/// `servicetitan reports [CATEGORY [ID]]`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    servicetitan reports\n  \
    servicetitan reports operations\n  \
    servicetitan reports operations 175\n  \
    servicetitan reports operations 175 --json")]
pub struct ReportsArgs {
    /// A category: list its reports.
    pub category: Option<String>,
    /// A report of the category: list its parameters and fields.
    pub report: Option<i64>,
    /// JSON (one object per line; the report's metadata as one object) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The formats of `report`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReportFormat {
    /// One JSON object per row.
    #[default]
    Jsonl,
    /// A header of the report's fields, then one line per row.
    Csv,
}

/// `servicetitan report CATEGORY ID --param NAME=VALUE ...`.
#[derive(Args, Debug)]
#[command(after_help = "A parameter's value is typed by the report's metadata: numbers and booleans as such, a list \
parameter's values separated by commas (--param BusinessUnitIds=1,2). A parameter whose values come from a \
dynamic value set also takes their names.\n\n\
Examples:\n  \
    servicetitan report operations 175 --param From=2026-01-01 --param To=2026-01-31\n  \
    servicetitan report operations 175 --param From=2026-01-01 --format csv > jobs.csv\n  \
    servicetitan report accounting 42 --param From=2026-01-01 --param BusinessUnitIds=Plumbing,HVAC")]
pub struct ReportArgs {
    /// The report's category (`operations`).
    pub category: String,
    /// The report's id.
    pub report: i64,
    /// A parameter, as NAME=VALUE (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// How rows are written to standard output.
    #[arg(long, value_enum, default_value_t = ReportFormat::Jsonl)]
    pub format: ReportFormat,
}

/// Lists categories, reports or a report's parameters.
pub async fn run_reports(global: &GlobalArgs, args: ReportsArgs) -> CliResult {
    let resolved = config::resolve(global)?;
    let tenant = resolved.client.tenant(one_tenant(&resolved, "reports")?);
    let mut out = std::io::stdout().lock();
    let lines: Vec<String> = match (&args.category, args.report) {
        (None, _) => {
            let categories = tenant.report_categories().await?;
            categories
                .iter()
                .map(|c| {
                    if args.json {
                        serde_json::json!({"id": c.id, "name": c.name}).to_string()
                    } else {
                        format!("{:<32} {}", c.id, c.name)
                    }
                })
                .collect()
        }
        (Some(category), None) => {
            let reports = tenant.reports(category).await?;
            reports
                .iter()
                .map(|r| {
                    if args.json {
                        serde_json::json!({"id": r.id, "name": r.name, "description": r.description}).to_string()
                    } else {
                        format!("{:<10} {}", r.id, r.name)
                    }
                })
                .collect()
        }
        (Some(category), Some(id)) => {
            let meta = tenant.report_metadata(category, id).await?;
            if args.json {
                vec![serde_json::to_string_pretty(&meta).map_err(|e| CliError::failure(e.to_string()))?]
            } else {
                describe_report(category, &meta)
            }
        }
    };
    for line in lines {
        if output::line(&mut out, line.as_bytes())? == Flow::Closed {
            return Ok(());
        }
    }
    output::flush(&mut out)
}

/// A report's description, parameters and fields, as a reader wants them.
fn describe_report(category: &str, meta: &ReportMetadata) -> Vec<String> {
    let mut lines = vec![format!("{} (report {} of {category})", meta.name, meta.id)];
    if let Some(description) = meta.description.as_deref().filter(|d| !d.trim().is_empty()) {
        lines.push(description.trim().to_string());
    }
    lines.push(String::new());
    lines.push("Parameters (--param NAME=VALUE):".to_string());
    for p in &meta.parameters {
        let mut kind = p.data_type.clone().unwrap_or_else(|| "value".to_string());
        if p.is_array {
            kind.push_str(" list");
        }
        let required = if p.is_required { "required" } else { "optional" };
        let label = p.label.as_deref().filter(|l| *l != p.name).map(|l| format!("  ({l})")).unwrap_or_default();
        let values = match &p.accept_values {
            Some(Value::Object(set)) if set.contains_key("dynamicSetId") => {
                format!("  values: dynamic set {}", set["dynamicSetId"])
            }
            _ => String::new(),
        };
        lines.push(format!("  {:<28} {:<16} {required}{label}{values}", p.name, kind));
    }
    if meta.parameters.is_empty() {
        lines.push("  (none)".to_string());
    }
    lines.push(String::new());
    lines.push("Fields:".to_string());
    for f in &meta.fields {
        let label = f.label.as_deref().filter(|l| *l != f.name).map(|l| format!("  ({l})")).unwrap_or_default();
        lines.push(format!("  {:<28} {}{label}", f.name, f.data_type.as_deref().unwrap_or("")));
    }
    lines
}

fn one_tenant(resolved: &config::Resolved, command: &str) -> CliResult<servicetitan::TenantCredentials> {
    match resolved.tenants.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(CliError::configuration(format!(
            "{command}: lists what one tenant has; choose the tenant with --tenant ID"
        ))),
    }
}

/// Runs one report: every row of every tenant chosen, to standard output.
pub async fn run_report(global: &GlobalArgs, args: ReportArgs) -> CliResult {
    let given = parse_params(&args.params)?;
    let resolved = config::resolve(global)?;
    let several = resolved.tenants.len() > 1;
    let mut out = std::io::stdout().lock();
    let mut header_written = false;
    for credentials in &resolved.tenants {
        let tenant = resolved.client.tenant(credentials.clone());
        let meta = tenant.report_metadata(&args.category, args.report).await?;
        let parameters: Vec<(String, Value)> =
            given.iter().map(|(name, text)| (name.clone(), typed(&meta, name, text))).collect();
        let rows = tenant.report(args.category.clone(), args.report).parameters(parameters).into_stream();
        let mut columns: Vec<String> = meta.fields.iter().map(|f| f.name.clone()).collect();
        if several {
            columns.insert(0, "_tenant_id".to_string());
        }
        if args.format == ReportFormat::Csv && !header_written {
            let header: Vec<String> = columns.iter().map(|c| csv_field(c)).collect();
            if output::line(&mut out, header.join(",").as_bytes())? == Flow::Closed {
                return Ok(());
            }
            header_written = true;
        }
        while let Some(row) = rows.next().await {
            let mut row = row.map_err(report_error)?;
            if several {
                row.insert("_tenant_id".to_string(), Value::from(tenant.id()));
            }
            let line = match args.format {
                ReportFormat::Jsonl => json_line(&columns, &row),
                ReportFormat::Csv => csv_line(&columns, &row),
            };
            if output::line(&mut out, line.as_bytes())? == Flow::Closed {
                return Ok(());
            }
        }
    }
    output::flush(&mut out)
}

/// A report error; parameters refused before anything was sent are a usage error.
fn report_error(error: servicetitan::Error) -> CliError {
    let local = error.code() == ErrorCode::BadRequest && error.status().is_none();
    let mut cli = CliError::from(error);
    if local {
        cli.code = crate::exit::CONFIGURATION;
        cli.message = format!("--param: {}", cli.message);
    }
    cli
}

/// `NAME=VALUE` pairs, in order.
fn parse_params(params: &[String]) -> CliResult<Vec<(String, String)>> {
    params
        .iter()
        .map(|p| match p.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_string(), value.to_string())),
            _ => Err(CliError::configuration(format!("--param {p:?}: expected NAME=VALUE (From=2026-01-01)"))),
        })
        .collect()
}

/// A parameter's value typed by the report's metadata: a list split at commas, numbers and
/// booleans as such. Anything else stays text, which the engine checks against the metadata.
fn typed(meta: &ReportMetadata, name: &str, text: &str) -> Value {
    let Some(spec) = meta.parameters.iter().find(|p| p.name == name) else {
        return Value::String(text.to_string());
    };
    let data_type = spec.data_type.as_deref().unwrap_or("").to_ascii_lowercase();
    let scalar = |text: &str| -> Value {
        let t = text.trim();
        match data_type.as_str() {
            "number" | "int" | "integer" | "long" | "decimal" | "double" | "float" => t
                .parse::<i64>()
                .map(Value::from)
                .ok()
                .or_else(|| t.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number))
                .unwrap_or_else(|| Value::String(text.to_string())),
            "boolean" | "bool" if t.eq_ignore_ascii_case("true") => Value::Bool(true),
            "boolean" | "bool" if t.eq_ignore_ascii_case("false") => Value::Bool(false),
            _ => Value::String(text.to_string()),
        }
    };
    if spec.is_array {
        Value::Array(text.split(',').filter(|s| !s.trim().is_empty()).map(|s| scalar(s.trim())).collect())
    } else {
        scalar(text)
    }
}

/// The columns of `row` in the report's order (then any the metadata did not name).
fn ordered<'a>(columns: &'a [String], row: &'a Map<String, Value>) -> Vec<(&'a str, &'a Value)> {
    let mut out: Vec<(&str, &Value)> = columns.iter().filter_map(|c| row.get(c).map(|v| (c.as_str(), v))).collect();
    out.extend(row.iter().filter(|(k, _)| !columns.contains(k)).map(|(k, v)| (k.as_str(), v)));
    out
}

fn json_line(columns: &[String], row: &Map<String, Value>) -> String {
    let mut line = String::from("{");
    for (i, (key, value)) in ordered(columns, row).into_iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        line.push_str(&Value::String(key.to_string()).to_string());
        line.push(':');
        line.push_str(&value.to_string());
    }
    line.push('}');
    line
}

fn csv_line(columns: &[String], row: &Map<String, Value>) -> String {
    columns
        .iter()
        .map(|c| match row.get(c) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => csv_field(s),
            Some(other) => csv_field(&other.to_string()),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_follow_the_metadata() {
        let meta: ReportMetadata = serde_json::from_value(serde_json::json!({
            "id": 1, "name": "r",
            "parameters": [
                {"name": "From", "dataType": "Date", "isRequired": true},
                {"name": "Ids", "dataType": "Number", "isArray": true},
                {"name": "Flag", "dataType": "Boolean"},
                {"name": "Units", "dataType": "Number", "isArray": true}
            ],
            "fields": []
        }))
        .unwrap();
        assert_eq!(typed(&meta, "From", "2026-01-01"), Value::from("2026-01-01"));
        assert_eq!(typed(&meta, "Ids", "1, 2"), serde_json::json!([1, 2]));
        assert_eq!(typed(&meta, "Flag", "TRUE"), Value::Bool(true));
        assert_eq!(typed(&meta, "Units", "Plumbing,3"), serde_json::json!(["Plumbing", 3]));
        assert_eq!(typed(&meta, "Other", "x"), Value::from("x"));
    }

    #[test]
    fn rows_keep_the_report_order() {
        let columns = vec!["b".to_string(), "a".to_string()];
        let row: Map<String, Value> = serde_json::from_str(r#"{"a": "x,y", "b": 1, "c": null}"#).unwrap();
        assert_eq!(json_line(&columns, &row), r#"{"b":1,"a":"x,y","c":null}"#);
        assert_eq!(csv_line(&columns, &row), "1,\"x,y\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
