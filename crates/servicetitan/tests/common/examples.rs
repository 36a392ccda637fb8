//! Arguments for calling any operation against the sandbox: values of each parameter's type,
//! ids the sandbox knows for lookups, and bodies its request schemas accept.

use serde_json::{json, Value};
use servicetitan::operations::{self, Kind, Location, Operation, ParamType};
use servicetitan::Tenant;
use servicetitan_sandbox::catalogue::Catalogue;

/// A value of the parameter's type that the API accepts.
pub fn example_arg(p: &operations::Param) -> Value {
    let first = p.values.as_ref().and_then(|v| v.first()).cloned();
    let scalar = |t: ParamType| match t {
        ParamType::Integer | ParamType::Number => json!(1),
        ParamType::Boolean => json!(true),
        _ => match p.format.as_deref() {
            Some("date-time") => json!("2026-01-01T00:00:00Z"),
            Some("date") => json!("2026-01-01"),
            _ => json!("1"),
        },
    };
    match p.param_type {
        ParamType::Array => json!([first.unwrap_or_else(|| scalar(p.items.unwrap_or(ParamType::String)))]),
        ParamType::Object => json!({}),
        t => first.unwrap_or_else(|| scalar(t)),
    }
}

/// An id the sandbox knows for a lookup by id: the first record of the list one level up.
pub async fn known_id(tenant: &Tenant, op: &Operation) -> Option<Value> {
    let (parent, last) = op.path.rsplit_once('/')?;
    if !last.starts_with('{') {
        return None;
    }
    let list = operations::operations().iter().find(|o| o.path == parent && o.kind == Kind::List)?;
    let mut call = tenant.operation(&list.name()).arg("pageSize", 1);
    if list.params.iter().any(|p| p.name == "active") {
        call = call.arg("active", "Any");
    }
    let page: Value = call.send().await.ok()?;
    page["data"][0].get("id").cloned()
}

/// The arguments (API names) and body to call `op` with: every path and required parameter.
pub async fn arguments(tenant: &Tenant, op: &Operation) -> (Vec<(String, Value)>, Option<Value>) {
    let catalogue = Catalogue::embedded();
    let spec = catalogue.operation(&op.method, &op.path).expect("every operation is in the catalogue");
    let id = known_id(tenant, op).await;
    let mut args = Vec::new();
    for p in op.params.iter().filter(|p| p.required || p.location == Location::Path) {
        let value = match (&id, p.location, p.name.as_str()) {
            (Some(id), Location::Path, _) if op.path.ends_with(&format!("{{{}}}", p.name)) => id.clone(),
            // The sandbox's reports.
            (_, Location::Path, "report_category") => json!("operations"),
            (_, Location::Path, "reportId") => json!(175),
            _ => example_arg(p),
        };
        args.push((p.name.clone(), value));
    }
    let body = spec.body.as_ref().map(|schema| match op.id.as_str() {
        // Report 175 needs its date range.
        "ReportCategoryReports_GetData" => json!({"parameters": [
            {"name": "From", "value": "2026-01-01"}, {"name": "To", "value": "2026-01-31"}]}),
        _ => catalogue.example(schema),
    });
    (args, body)
}
