//! Report parameters given by name: a parameter whose accepted values come from a dynamic value set (or a list in its metadata) takes the display name too, looked up once and cached.
//!
//! `BusinessUnitIds: ["Plumbing"]` becomes `[1]` when the parameter's `acceptValues` names a
//! dynamic value set whose rows are `[1, "Plumbing"]`. The value column is the field named
//! `Value` or `Id` (else the first); every other text column is a name, matched without regard
//! to case. A set is fetched once per API, tenant and set for ten minutes, shared by every
//! client of the process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::{Error, ErrorCode, Result};
use crate::reports::{ReportField, ReportMetadata, ReportPage, ReportParameter};
use crate::route::encode_segment;
use crate::tenant::Tenant;

const TTL: Duration = Duration::from_secs(600);
const MAX_PAGES: u32 = 100;

/// The rows of a set, and which column holds the value to send.
struct Choices {
    value_column: usize,
    rows: Vec<Vec<Value>>,
}

/// (API base URL, tenant, set id) → when fetched, the choices.
type Cache = Mutex<HashMap<(String, i64, String), (Instant, Arc<Choices>)>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

impl Choices {
    fn new(fields: &[ReportField], rows: Vec<Vec<Value>>) -> Self {
        let value_column = fields
            .iter()
            .position(|f| f.name.eq_ignore_ascii_case("value") || f.name.eq_ignore_ascii_case("id"))
            .unwrap_or(0);
        Choices { value_column, rows }
    }

    /// `Ok(None)`: `item` is one of the values already; `Ok(Some(value))`: the value named `item`.
    fn resolve(&self, item: &str) -> std::result::Result<Option<Value>, ()> {
        let as_text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if self.rows.iter().any(|r| r.get(self.value_column).is_some_and(|v| as_text(v) == item)) {
            return Ok(None);
        }
        let named = self.rows.iter().find(|r| {
            r.iter().enumerate().any(|(i, v)| {
                i != self.value_column && v.as_str().is_some_and(|n| n.trim().eq_ignore_ascii_case(item.trim()))
            })
        });
        match named {
            Some(row) => Ok(Some(row.get(self.value_column).cloned().unwrap_or(Value::Null))),
            None => Err(()),
        }
    }

    fn some_names(&self) -> String {
        let names: Vec<&str> = self
            .rows
            .iter()
            .filter_map(|r| r.iter().enumerate().find(|(i, v)| *i != self.value_column && v.is_string()))
            .filter_map(|(_, v)| v.as_str())
            .take(20)
            .collect();
        let more = if self.rows.len() > names.len() { ", …" } else { "" };
        format!("{}{more}", names.join(", "))
    }
}

/// Whether `item` needs looking up: text that is not already a value of the parameter's type.
fn needs_lookup(spec: &ReportParameter, item: &Value) -> bool {
    let Some(text) = item.as_str() else { return false };
    let numeric = matches!(
        spec.data_type.as_deref().map(str::to_ascii_lowercase).as_deref(),
        Some("number" | "int" | "integer" | "long" | "decimal" | "double" | "float")
    );
    !(numeric && text.trim().parse::<f64>().is_ok())
}

/// The parameters with every name replaced by its value (unchanged when none needs it).
pub(crate) async fn resolve_names(
    tenant: &Tenant,
    meta: &ReportMetadata,
    parameters: &[(String, Value)],
) -> Result<Vec<(String, Value)>> {
    let mut resolved = Vec::with_capacity(parameters.len());
    for (name, value) in parameters {
        let spec = meta.parameters.iter().find(|p| &p.name == name);
        let accept = spec.and_then(|s| s.accept_values.as_ref()).filter(|a| a.is_object());
        let (Some(spec), Some(accept)) = (spec, accept) else {
            resolved.push((name.clone(), value.clone()));
            continue;
        };
        let items: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            v => vec![v],
        };
        if !items.iter().any(|item| needs_lookup(spec, item)) {
            resolved.push((name.clone(), value.clone()));
            continue;
        }
        let (choices, source) = choices(tenant, accept).await?;
        let mut lookup = |item: &Value| -> Result<Value> {
            let Some(text) = item.as_str().filter(|_| needs_lookup(spec, item)) else { return Ok(item.clone()) };
            match choices.resolve(text) {
                Ok(None) => Ok(item.clone()),
                Ok(Some(value)) => Ok(value),
                Err(()) => Err(Error::new(
                    ErrorCode::BadRequest,
                    format!(
                        "report parameter {name}: {text:?} is neither a value nor a name in {source} (names: {}); \
                         nothing was sent",
                        choices.some_names()
                    ),
                )),
            }
        };
        let value = match value {
            Value::Array(items) => Value::Array(items.iter().map(&mut lookup).collect::<Result<_>>()?),
            v => lookup(v)?,
        };
        resolved.push((name.clone(), value));
    }
    Ok(resolved)
}

/// The choices of an `acceptValues` (its own `values`, or its dynamic value set) and what to
/// call them in messages.
async fn choices(tenant: &Tenant, accept: &Value) -> Result<(Arc<Choices>, String)> {
    let fields: Vec<ReportField> =
        accept.get("fields").cloned().and_then(|f| serde_json::from_value(f).ok()).unwrap_or_default();
    if let Some(Value::Array(rows)) = accept.get("values") {
        let rows = rows.iter().map(|r| r.as_array().cloned().unwrap_or_else(|| vec![r.clone()])).collect();
        return Ok((Arc::new(Choices::new(&fields, rows)), "the parameter's accepted values".into()));
    }
    let Some(id) = accept.get("dynamicSetId").and_then(Value::as_str).filter(|id| !id.is_empty()) else {
        return Ok((Arc::new(Choices::new(&fields, Vec::new())), "the parameter's accepted values".into()));
    };
    let source = format!("dynamic value set {id:?}");
    let key = (tenant.inner.client.config.api_url.clone(), tenant.id(), id.to_owned());
    let now = tenant.inner.client.clock.now();
    if let Some((at, choices)) = cache().lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        if now.saturating_duration_since(*at) < TTL {
            return Ok((choices.clone(), source));
        }
    }
    let path = format!("reporting/dynamic-value-sets/{}", encode_segment(id));
    let mut rows = Vec::new();
    let mut fields = fields;
    for page in 1..=MAX_PAGES {
        let answer: ReportPage = tenant.get(path.clone()).query(&[("page", page), ("pageSize", 5000)]).send().await?;
        if !answer.fields.is_empty() {
            fields = answer.fields;
        }
        let more = answer.has_more && !answer.data.is_empty();
        rows.extend(answer.data);
        if !more {
            break;
        }
    }
    let choices = Arc::new(Choices::new(&fields, rows));
    cache().lock().unwrap_or_else(|p| p.into_inner()).insert(key, (now, choices.clone()));
    Ok((choices, source))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn choices() -> Choices {
        let fields: Vec<ReportField> = serde_json::from_value(json!([{"name": "Name"}, {"name": "Value"}])).unwrap();
        Choices::new(&fields, vec![vec![json!("Plumbing"), json!(1)], vec![json!("HVAC"), json!(2)]])
    }

    #[test]
    fn names_become_values_and_values_stay() {
        let c = choices();
        assert_eq!(c.value_column, 1);
        assert_eq!(c.resolve("plumbing"), Ok(Some(json!(1))));
        assert_eq!(c.resolve("2"), Ok(None));
        assert_eq!(c.resolve("Roofing"), Err(()));
        assert_eq!(c.some_names(), "Plumbing, HVAC");
    }
}
