//! Arguments for calling any operation against the sandbox: values of each parameter's type,
//! ids of records the sandbox has for the path parameters that name one, and bodies its
//! request schemas accept.

use serde_json::{json, Value};
use servicetitan::operations::{self, Location, Operation, ParamType};
use servicetitan::Tenant;
use servicetitan_sandbox::catalogue::Catalogue;

/// The sandbox's GUID ids carry the record's position in their last group: this is record 1.
const GUID_1: &str = "00000000-0000-4000-8000-000000000001";

/// A value of the parameter's type that the API accepts.
pub fn example_arg(p: &operations::Param) -> Value {
    let first = p.values.as_ref().and_then(|v| v.first()).cloned();
    let scalar = |t: ParamType| match t {
        ParamType::Integer | ParamType::Number => json!(1),
        ParamType::Boolean => json!(true),
        _ => match p.format.as_deref() {
            Some("date-time") => json!("2026-01-01T00:00:00Z"),
            Some("date") => json!("2026-01-01"),
            Some("uuid" | "guid") => json!(GUID_1),
            _ => json!("1"),
        },
    };
    match p.param_type {
        ParamType::Array => json!([first.unwrap_or_else(|| scalar(p.items.unwrap_or(ParamType::String)))]),
        ParamType::Object => json!({}),
        t => first.unwrap_or_else(|| scalar(t)),
    }
}

/// The first record of the list at `list_path` (a path template), called with the path values
/// chosen so far: the record whose id fills the parameter after the list's path.
async fn first_record(tenant: &Tenant, list_path: &str, chosen: &[(String, Value)]) -> Option<Value> {
    let list = operations::operations().iter().find(|o| o.path == list_path && o.method == "GET")?;
    let mut call = tenant.operation(&list.name());
    for p in &list.params {
        match (p.location, p.name.as_str()) {
            (Location::Path, name) => {
                call = call.arg(name, chosen.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())?)
            }
            (Location::Query, "pageSize") => call = call.arg("pageSize", 1),
            // Inactive records count too: the first record of the list whatever its state.
            (Location::Query, "active") => call = call.arg("active", "Any"),
            (Location::Query, name) if p.required => call = call.arg(name, example_arg(p)),
            _ => {}
        }
    }
    let answer: Value = call.send().await.ok()?;
    answer.get("data").unwrap_or(&answer).get(0).cloned()
}

/// The arguments (API names) and body to call `op` with: every path and required parameter. A
/// path parameter right after a list's path takes the id of that list's first record (from its
/// field named like the parameter, or its `id`), as a caller would.
pub async fn arguments(tenant: &Tenant, op: &Operation) -> (Vec<(String, Value)>, Option<Value>) {
    let catalogue = Catalogue::embedded();
    let spec = catalogue.operation(&op.method, &op.path).expect("every operation is in the catalogue");
    let segments: Vec<&str> = op.path.split('/').collect();
    let mut args: Vec<(String, Value)> = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else { continue };
        let Some(p) = op.params.iter().find(|p| p.name == name && p.location == Location::Path) else { continue };
        let value = match name {
            // The sandbox's reports and dynamic value sets.
            "report_category" => json!("operations"),
            "reportId" => json!(175),
            "dynamicSetId" => json!("business-units"),
            _ => match first_record(tenant, &segments[..i].join("/"), &args).await {
                Some(record) => {
                    record.get(name).or_else(|| record.get("id")).cloned().unwrap_or_else(|| example_arg(p))
                }
                None => example_arg(p),
            },
        };
        args.push((p.name.clone(), value));
    }
    for p in op.params.iter().filter(|p| p.required && p.location == Location::Query) {
        args.push((p.name.clone(), example_arg(p)));
    }
    let body = spec.body.as_ref().map(|schema| match op.id.as_str() {
        // Report 175 needs its date range.
        "ReportCategoryReports_GetData" => json!({"parameters": [
            {"name": "From", "value": "2026-01-01"}, {"name": "To", "value": "2026-01-31"}]}),
        _ => catalogue.example(schema),
    });
    (args, body)
}
