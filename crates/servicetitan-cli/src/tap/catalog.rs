//! The Singer catalog: what `--discover` prints, and which streams and properties a `--catalog`
//! selects.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::exit::{CliError, CliResult};
use crate::schema;
use crate::streams::{self, Stream};

/// The field every record carries when a run has more than one tenant.
pub const TENANT_FIELD: &str = "_tenant_id";

/// A stream as the tap sends it: its schema and keys, for a run on one or several tenants.
pub struct StreamShape {
    /// The export stream.
    pub stream: Stream,
    /// The record schema (with `_tenant_id` when several tenants), deselected properties removed.
    pub schema: Value,
    /// The key properties (`_tenant_id` first when several tenants).
    pub key_properties: Vec<String>,
    /// The replication key, if the records have one.
    pub replication_key: Option<String>,
    /// Top-level properties deselected in the catalog (already left out of `schema`).
    pub dropped: BTreeSet<String>,
}

impl StreamShape {
    /// The shape of `stream` for a run on one tenant (`multi_tenant: false`) or several.
    pub fn new(stream: Stream, multi_tenant: bool) -> StreamShape {
        let mut schema = schema::record_schema(&stream.name).cloned().unwrap_or_else(|| json!({"type": "object"}));
        let mut key_properties: Vec<String> =
            schema::key_properties(&stream.name).into_iter().map(String::from).collect();
        if multi_tenant {
            if let Some(object) = schema.as_object_mut() {
                let properties = object.entry("properties").or_insert_with(|| Value::Object(Map::new()));
                if let Some(properties) = properties.as_object_mut() {
                    properties.insert(TENANT_FIELD.to_string(), json!({"type": "integer", "format": "int64"}));
                }
            }
            key_properties.insert(0, TENANT_FIELD.to_string());
        }
        let replication_key = schema::replication_key(&stream.name).map(String::from);
        StreamShape { stream, schema, key_properties, replication_key, dropped: BTreeSet::new() }
    }

    /// Whether the specs describe the records (two feeds document no answer at all): an
    /// undescribed stream is synced only when a catalog selects it, and its records go as they come.
    pub fn documented(&self) -> bool {
        schema::record_schema(&self.stream.name)
            .and_then(|s| s["properties"].as_object())
            .is_some_and(|p| !p.is_empty())
    }

    /// The top-level fields a record may carry, when the schema lists them.
    pub fn fields(&self) -> Option<BTreeSet<String>> {
        self.documented().then(|| self.property_names().into_iter().collect())
    }

    /// Properties that are always sent (keys and the replication key).
    fn automatic(&self, property: &str) -> bool {
        self.key_properties.iter().any(|k| k == property) || self.replication_key.as_deref() == Some(property)
    }

    fn property_names(&self) -> Vec<String> {
        self.schema["properties"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default()
    }

    /// The catalog entry of `--discover`.
    pub fn catalog_entry(&self) -> Value {
        let mut metadata = vec![json!({
            "breadcrumb": [],
            "metadata": {
                "inclusion": "available",
                "selected-by-default": self.documented(),
                "table-key-properties": self.key_properties,
                "valid-replication-keys": self.replication_key.iter().collect::<Vec<_>>(),
                "forced-replication-method": "INCREMENTAL",
            }
        })];
        for name in self.property_names() {
            let inclusion = if self.automatic(&name) { "automatic" } else { "available" };
            metadata.push(json!({
                "breadcrumb": ["properties", name],
                "metadata": {"inclusion": inclusion, "selected-by-default": true}
            }));
        }
        json!({
            "tap_stream_id": self.stream.name,
            "stream": self.stream.name,
            "schema": self.schema,
            "key_properties": self.key_properties,
            "replication_key": self.replication_key,
            "replication_method": "INCREMENTAL",
            "metadata": metadata,
        })
    }

    /// Leaves out the properties a catalog entry deselects (never a key or the replication key).
    fn apply_property_selection(&mut self, entry: &Value) {
        let names = self.property_names();
        for name in names {
            if self.automatic(&name) {
                continue;
            }
            let breadcrumb = json!(["properties", name]);
            if let Some(md) = metadata_at(entry, &breadcrumb) {
                if !is_selected(md, None) {
                    self.dropped.insert(name);
                }
            }
        }
        if let Some(properties) = self.schema.get_mut("properties").and_then(Value::as_object_mut) {
            for name in &self.dropped {
                properties.remove(name);
            }
        }
        if let Some(required) = self.schema.get_mut("required").and_then(Value::as_array_mut) {
            required.retain(|name| !name.as_str().is_some_and(|n| self.dropped.contains(n)));
        }
    }
}

/// The catalog `--discover` prints: every stream, those the specs describe selected by default.
pub fn discover(multi_tenant: bool) -> Value {
    let streams: Vec<Value> =
        streams::all().into_iter().map(|s| StreamShape::new(s, multi_tenant).catalog_entry()).collect();
    json!({ "streams": streams })
}

/// The streams a catalog file selects, in the catalog's order.
pub fn read_selection(path: &Path, multi_tenant: bool) -> CliResult<Vec<StreamShape>> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| CliError::configuration(format!("--catalog {shown}: {e}")))?;
    let catalog: Value = serde_json::from_str(&text)
        .map_err(|e| CliError::configuration(format!("--catalog {shown}: not a JSON document: {e}")))?;
    select(&catalog, multi_tenant).map_err(|e| CliError::configuration(format!("--catalog {shown}: {}", e.message)))
}

/// The streams `catalog` selects: `selected: true` in a stream's metadata (breadcrumb `[]`), else
/// the older `selected: true` in its schema, else its `selected-by-default`.
pub fn select(catalog: &Value, multi_tenant: bool) -> CliResult<Vec<StreamShape>> {
    let Some(entries) = catalog.get("streams").and_then(Value::as_array) else {
        return Err(CliError::configuration("expected an object with a `streams` list"));
    };
    let mut chosen = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let id = entry
            .get("tap_stream_id")
            .or_else(|| entry.get("stream"))
            .and_then(Value::as_str)
            .ok_or_else(|| CliError::configuration(format!("streams[{i}]: no tap_stream_id")))?;
        let stream_md = metadata_at(entry, &json!([]));
        let legacy = entry.get("schema").and_then(|s| s.get("selected")).and_then(Value::as_bool);
        let selected = match stream_md {
            Some(md) => is_selected(md, legacy),
            None => legacy.unwrap_or(false),
        };
        if !selected {
            continue;
        }
        let stream = streams::select(&[id.to_string()])?.remove(0);
        let mut shape = StreamShape::new(stream, multi_tenant);
        shape.apply_property_selection(entry);
        chosen.push(shape);
    }
    Ok(chosen)
}

/// The metadata object at `breadcrumb` of a catalog entry.
fn metadata_at<'a>(entry: &'a Value, breadcrumb: &Value) -> Option<&'a Value> {
    entry
        .get("metadata")?
        .as_array()?
        .iter()
        .find(|m| m.get("breadcrumb") == Some(breadcrumb))
        .and_then(|m| m.get("metadata"))
}

/// Singer's rule: an explicit `selected`, else (for a stream) the schema's legacy `selected`,
/// else `inclusion: automatic`, else `selected-by-default`.
fn is_selected(md: &Value, legacy: Option<bool>) -> bool {
    if let Some(selected) = md.get("selected").and_then(Value::as_bool) {
        return selected;
    }
    if let Some(selected) = legacy {
        return selected;
    }
    if md.get("inclusion").and_then(Value::as_str) == Some("automatic") {
        return true;
    }
    md.get("selected-by-default").and_then(Value::as_bool).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(shapes: &[StreamShape]) -> Vec<&str> {
        shapes.iter().map(|s| s.stream.name.as_str()).collect()
    }

    #[test]
    fn selection_follows_metadata_then_the_legacy_schema_flag() {
        let catalog = json!({"streams": [
            {"tap_stream_id": "crm_customers", "schema": {}, "metadata": [{"breadcrumb": [], "metadata": {"selected": true}}]},
            {"tap_stream_id": "jpm_jobs", "schema": {}, "metadata": [{"breadcrumb": [], "metadata": {"selected": false, "selected-by-default": true}}]},
            {"tap_stream_id": "crm_leads", "schema": {"selected": true}, "metadata": []},
            {"tap_stream_id": "crm_bookings", "schema": {"selected": true}, "metadata": [{"breadcrumb": [], "metadata": {"inclusion": "available"}}]},
            {"tap_stream_id": "crm_locations", "schema": {}},
        ]});
        assert_eq!(names(&select(&catalog, false).unwrap()), ["crm_customers", "crm_leads", "crm_bookings"]);
    }

    #[test]
    fn deselected_properties_leave_the_schema_but_keys_stay() {
        let catalog = json!({"streams": [{"tap_stream_id": "crm_customers", "schema": {}, "metadata": [
            {"breadcrumb": [], "metadata": {"selected": true}},
            {"breadcrumb": ["properties", "balance"], "metadata": {"selected": false}},
            {"breadcrumb": ["properties", "id"], "metadata": {"selected": false, "inclusion": "automatic"}},
        ]}]});
        let shapes = select(&catalog, true).unwrap();
        let properties = shapes[0].schema["properties"].as_object().unwrap();
        assert!(!properties.contains_key("balance"));
        assert!(properties.contains_key("id") && properties.contains_key(TENANT_FIELD));
        assert_eq!(shapes[0].key_properties, [TENANT_FIELD, "id"]);
    }

    #[test]
    fn an_unknown_stream_is_a_configuration_error() {
        let catalog = json!({"streams": [{"tap_stream_id": "crm_customer", "metadata": [{"breadcrumb": [], "metadata": {"selected": true}}]}]});
        let error = select(&catalog, false).err().unwrap();
        assert_eq!(error.code, crate::exit::CONFIGURATION);
        assert!(error.message.contains("crm_customers"), "{}", error.message);
    }
}
