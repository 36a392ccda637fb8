//! The JSON Schema of one record of each export stream, with its key properties and replication
//! key, generated from the official specs (`tools/gen_streams.py` writes `schema.json`).
//!
//! A schema is self-contained (no `$ref`), says `["string", "null"]` where the API may send
//! `null`, and keeps the specs' formats (`date-time`, `int64`, `decimal`...). The Singer tap sends
//! it in its SCHEMA messages; the export takes column types and column order from it.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

/// The generated table (see `tools/gen_streams.py`), parsed on first use.
const SCHEMA_JSON: &str = include_str!("schema.json");

#[derive(Deserialize)]
struct Table {
    streams: HashMap<String, StreamSchema>,
}

#[derive(Deserialize)]
struct StreamSchema {
    key_properties: Vec<String>,
    replication_key: Option<String>,
    schema: Value,
}

fn table() -> &'static HashMap<String, StreamSchema> {
    static TABLE: OnceLock<HashMap<String, StreamSchema>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let table: Table = serde_json::from_str(SCHEMA_JSON).expect("the generated schema.json is valid");
        table.streams
    })
}

/// The JSON Schema of one record of `stream` (`crm_customers`), or `None` for an unknown stream.
pub fn record_schema(stream: &str) -> Option<&'static Value> {
    table().get(stream).map(|s| &s.schema)
}

/// The properties that identify a record of `stream`: `["id"]` for most streams, empty for an
/// unknown stream or one whose records the specs do not describe.
pub fn key_properties(stream: &str) -> Vec<&'static str> {
    table().get(stream).map(|s| s.key_properties.iter().map(String::as_str).collect()).unwrap_or_default()
}

/// The property that orders changes of `stream` (`modifiedOn` for most streams), if it has one.
pub fn replication_key(stream: &str) -> Option<&'static str> {
    table().get(stream).and_then(|s| s.replication_key.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stream_has_a_schema_and_every_schema_a_stream() {
        let streams: Vec<String> = crate::streams::all().into_iter().map(|s| s.name).collect();
        for name in &streams {
            assert!(record_schema(name).is_some(), "{name} has no schema");
        }
        let mut described: Vec<&String> = table().keys().collect();
        described.sort();
        assert_eq!(described, streams.iter().collect::<Vec<_>>());
        assert!(record_schema("crm_customer").is_none());
        assert!(key_properties("crm_customer").is_empty());
    }

    #[test]
    fn customers_are_keyed_by_id_and_replicated_by_modified_on() {
        let schema = record_schema("crm_customers").unwrap();
        assert_eq!(key_properties("crm_customers"), ["id"]);
        assert_eq!(replication_key("crm_customers"), Some("modifiedOn"));
        let properties = &schema["properties"];
        assert_eq!(properties["id"], serde_json::json!({"type": "integer", "format": "int64"}));
        assert_eq!(properties["modifiedOn"], serde_json::json!({"type": "string", "format": "date-time"}));
        assert_eq!(properties["mergedToId"]["type"], serde_json::json!(["integer", "null"]));
        // A nested object is inlined, not referenced.
        assert_eq!(properties["address"]["properties"]["city"]["type"], "string");
        assert_eq!(properties["type"]["enum"], serde_json::json!(["Residential", "Commercial"]));
    }

    #[test]
    fn streams_without_id_or_modified_on_have_chosen_keys() {
        assert_eq!(key_properties("customer_interactions_technician_ratings"), ["jobId", "technicianId"]);
        assert_eq!(key_properties("jpm_job_history"), ["jobId"]);
        assert_eq!(replication_key("jpm_job_history"), None);
        assert_eq!(key_properties("payroll_payroll_settings"), ["employeeId"]);
        assert_eq!(replication_key("jpm_job_canceled_logs"), Some("createdOn"));
    }

    /// No `$ref`, no OpenAPI `nullable`, no prose keyword anywhere; a nullable enum accepts null;
    /// every key and replication key is a property of the record.
    #[test]
    fn schemas_are_self_contained_json_schema() {
        fn walk(stream: &str, path: &str, schema: &Value) {
            let Some(object) = schema.as_object() else { return };
            for keyword in ["$ref", "nullable", "description", "title", "example", "examples"] {
                assert!(!object.contains_key(keyword), "{stream}{path} has {keyword}");
            }
            if let (Some(kinds), Some(values)) = (object.get("type").and_then(Value::as_array), object.get("enum")) {
                if kinds.iter().any(|k| k == "null") {
                    assert!(values.as_array().unwrap().contains(&Value::Null), "{stream}{path}: enum without null");
                }
            }
            if let Some(properties) = object.get("properties").and_then(Value::as_object) {
                for (name, sub) in properties {
                    walk(stream, &format!("{path}.{name}"), sub);
                }
            }
            for key in ["items", "additionalProperties"] {
                if let Some(sub) = object.get(key) {
                    walk(stream, &format!("{path}[]"), sub);
                }
            }
            for key in ["anyOf", "oneOf", "allOf"] {
                for sub in object.get(key).and_then(Value::as_array).into_iter().flatten() {
                    walk(stream, path, sub);
                }
            }
        }
        for (name, stream) in table() {
            assert_eq!(stream.schema["type"], "object", "{name}");
            // Singer targets refuse a stream schema without `properties`.
            assert!(stream.schema["properties"].is_object(), "{name} has no properties");
            walk(name, "", &stream.schema);
            for key in stream.key_properties.iter().chain(&stream.replication_key) {
                assert!(stream.schema["properties"].get(key).is_some(), "{name}: {key} is not a property");
            }
        }
    }

    fn check(args: &[&str]) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let output = std::process::Command::new("python3")
            .arg("tools/gen_streams.py")
            .args(args)
            .arg("--check")
            .current_dir(&root)
            .output();
        match output {
            Err(e) => println!("skipped: python3 could not be run: {e}"),
            Ok(out) => assert!(
                out.status.success(),
                "schema.json is stale: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }

    /// The committed schema.json must be what the generator makes of the official specs. They are
    /// not part of the repository: `ST_OPENAPI_DIR` names their directory.
    #[test]
    fn generated_file_is_up_to_date_with_the_specs() {
        match std::env::var_os("ST_OPENAPI_DIR") {
            Some(dir) if std::path::Path::new(&dir).is_dir() => check(&["--specs", &dir.to_string_lossy()]),
            _ => println!(
                "skipped: set ST_OPENAPI_DIR to the directory of the official OpenAPI specs to regenerate \
                 schema.json from them (the check against the sandbox catalogue still runs)"
            ),
        }
    }

    /// The same check from the committed catalogue, which is the specs' loader output: runs
    /// everywhere, so that a hand edit of schema.json or the generator is caught without the specs.
    #[test]
    fn generated_file_is_up_to_date_with_the_catalogue() {
        check(&["--catalogue"]);
    }
}
