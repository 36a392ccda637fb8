//! Records as rows: nested objects flattened to dotted columns (`address.street`), arrays kept
//! as JSON text. The columns come from the stream's schema when there is one (so the header is
//! the same on every run), else from the records of the first page.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde_json::Value;

use super::rows::Leaf;

/// The type of a column, for Parquet (CSV writes text whatever the type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Text (and anything that is not one of the others: arrays, mixed values).
    String,
    /// Whole numbers.
    Integer,
    /// Numbers.
    Number,
    /// true/false.
    Boolean,
    /// A point in time (text of format `date-time` in the schema), to milliseconds, UTC.
    Timestamp,
}

/// One column: its dotted name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// `address.street`.
    pub name: String,
    /// Its type.
    pub column_type: ColumnType,
}

/// FNV-1a, for the dotted names looked up once per field of every record: they are short, and
/// the table is fixed before any row, so a fast hash matters more than resistance to floods.
#[derive(Debug, Clone, Copy)]
pub struct NameHasher(u64);

impl Default for NameHasher {
    fn default() -> NameHasher {
        NameHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for NameHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The columns of a stream and where each dotted name sits.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    columns: Vec<Column>,
    index: HashMap<String, usize, BuildHasherDefault<NameHasher>>,
}

impl Columns {
    /// The columns, in order.
    pub fn list(&self) -> &[Column] {
        &self.columns
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Where a dotted name sits.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    fn push(&mut self, name: String, column_type: ColumnType) {
        if let Some(&at) = self.index.get(&name) {
            // Seen again with another type: a number column that met a fraction holds
            // numbers; anything else that disagrees is text.
            let old = self.columns[at].column_type;
            self.columns[at].column_type = match (old, column_type) {
                (a, b) if a == b => a,
                (ColumnType::Integer, ColumnType::Number) | (ColumnType::Number, ColumnType::Integer) => {
                    ColumnType::Number
                }
                _ => ColumnType::String,
            };
            return;
        }
        self.index.insert(name.clone(), self.columns.len());
        self.columns.push(Column { name, column_type });
    }

    /// Puts `_tenant_id` first (runs of several tenants).
    pub fn with_tenant_column(mut self) -> Columns {
        let mut columns = vec![Column { name: TENANT_COLUMN.to_string(), column_type: ColumnType::Integer }];
        columns.extend(self.columns.drain(..).filter(|c| c.name != TENANT_COLUMN));
        let index = columns.iter().enumerate().map(|(i, c)| (c.name.clone(), i)).collect();
        Columns { columns, index }
    }

    /// The columns of a record schema (JSON Schema: `properties`, `type` as a name or a list
    /// with `null`, `anyOf`/`oneOf`); objects with properties become dotted columns.
    pub fn from_schema(schema: &Value) -> Columns {
        let mut columns = Columns::default();
        let mut prefix = String::new();
        schema_columns(schema, &mut prefix, &mut columns);
        columns
    }

    /// The columns of some records, sorted by name (so the header does not depend on which
    /// fields the first records happen to have), with types from their values (fields that are
    /// always null are text).
    pub fn from_records<'a>(records: impl IntoIterator<Item = &'a Value>) -> Columns {
        let mut columns = Columns::default();
        let mut nulls: Vec<String> = Vec::new();
        for record in records {
            walk(record, &mut String::new(), &mut |name, value| match value {
                Value::Null => {
                    if columns.position(name).is_none() && !nulls.iter().any(|n| n == name) {
                        nulls.push(name.to_string());
                    }
                }
                _ => columns.push(name.to_string(), value_type(value)),
            });
        }
        for name in nulls {
            if columns.position(&name).is_none() {
                columns.push(name, ColumnType::String);
            }
        }
        columns.columns.sort_by(|a, b| a.name.cmp(&b.name));
        columns.index = columns.columns.iter().enumerate().map(|(i, c)| (c.name.clone(), i)).collect();
        columns
    }
}

/// The column that says whose record a row is, in runs of several tenants.
pub const TENANT_COLUMN: &str = "_tenant_id";

fn value_type(value: &Value) -> ColumnType {
    match value {
        Value::Bool(_) => ColumnType::Boolean,
        Value::Number(n) if n.is_i64() || n.is_u64() => ColumnType::Integer,
        Value::Number(_) => ColumnType::Number,
        _ => ColumnType::String,
    }
}

/// The non-null type names of a schema (`"integer"`, `["integer", "null"]`, `anyOf: [...]`).
fn schema_types(schema: &Value) -> Vec<&str> {
    let mut types = Vec::new();
    match schema.get("type") {
        Some(Value::String(t)) => types.push(t.as_str()),
        Some(Value::Array(list)) => types.extend(list.iter().filter_map(Value::as_str)),
        _ => {}
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(options)) = schema.get(key) {
            for option in options {
                types.extend(schema_types(option));
            }
        }
    }
    if types.is_empty() && schema.get("properties").is_some() {
        types.push("object");
    }
    types.retain(|t| *t != "null");
    types.dedup();
    types
}

/// The properties of an object schema, `allOf`/`anyOf`/`oneOf` parts included, in order.
fn schema_properties(schema: &Value) -> Vec<(&String, &Value)> {
    let mut properties: Vec<(&String, &Value)> = Vec::new();
    if let Some(Value::Object(map)) = schema.get("properties") {
        properties.extend(map.iter());
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(options)) = schema.get(key) {
            for option in options {
                for (name, property) in schema_properties(option) {
                    if !properties.iter().any(|(n, _)| *n == name) {
                        properties.push((name, property));
                    }
                }
            }
        }
    }
    properties
}

fn schema_columns(schema: &Value, prefix: &mut String, columns: &mut Columns) {
    let types = schema_types(schema);
    let properties = schema_properties(schema);
    if types == ["object"] && !properties.is_empty() {
        for (name, property) in properties {
            let before = prefix.len();
            if !prefix.is_empty() {
                prefix.push('.');
            }
            prefix.push_str(name);
            schema_columns(property, prefix, columns);
            prefix.truncate(before);
        }
        return;
    }
    if prefix.is_empty() {
        return;
    }
    let date_time = schema.get("format").and_then(Value::as_str) == Some("date-time");
    let column_type = match types.as_slice() {
        ["string"] if date_time => ColumnType::Timestamp,
        ["integer"] => ColumnType::Integer,
        ["number"] | ["integer", "number"] | ["number", "integer"] => ColumnType::Number,
        ["boolean"] => ColumnType::Boolean,
        _ => ColumnType::String,
    };
    columns.push(prefix.clone(), column_type);
}

/// Calls `leaf` with each dotted name and value of a record: objects are walked into, anything
/// else (arrays included) is a leaf. An empty object is a null leaf.
pub fn walk(value: &Value, prefix: &mut String, leaf: &mut impl FnMut(&str, &Value)) {
    walk_until(value, prefix, &|_| false, leaf)
}

/// [`walk`], but an object whose dotted name `stop` accepts is a leaf (a column the schema
/// types as an object without properties holds the object as JSON text).
pub fn walk_until(
    value: &Value,
    prefix: &mut String,
    stop: &impl Fn(&str) -> bool,
    leaf: &mut impl FnMut(&str, &Value),
) {
    match value {
        Value::Object(_) if !prefix.is_empty() && stop(prefix) => leaf(prefix, value),
        Value::Object(map) if !map.is_empty() => {
            for (name, inner) in map {
                let before = prefix.len();
                if !prefix.is_empty() {
                    prefix.push('.');
                }
                prefix.push_str(name);
                walk_until(inner, prefix, stop, leaf);
                prefix.truncate(before);
            }
        }
        Value::Object(_) if !prefix.is_empty() => leaf(prefix, &Value::Null),
        Value::Object(_) => {}
        other => leaf(prefix, other),
    }
}

/// A leaf as CSV text: strings as they are, arrays (and objects held whole) as JSON text,
/// null as empty.
pub fn cell_text(value: &Leaf<'_>, out: &mut String) {
    use std::fmt::Write;
    match value {
        Leaf::Null => {}
        Leaf::Text(s) => out.push_str(s),
        Leaf::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Leaf::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Leaf::Json(other) => {
            let _ = write!(out, "{other}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_flatten_to_dotted_columns() {
        let records = [
            json!({"id": 1, "address": {"street": "Main", "zip": null}, "tags": [1, 2], "active": true}),
            json!({"id": 2, "balance": 1.5, "address": {"street": "Elm", "zip": "9"}}),
        ];
        let columns = Columns::from_records(records.iter());
        let names: Vec<&str> = columns.list().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["active", "address.street", "address.zip", "balance", "id", "tags"]);
        let types: Vec<ColumnType> = columns.list().iter().map(|c| c.column_type).collect();
        use ColumnType::*;
        assert_eq!(types, [Boolean, String, String, Number, Integer, String]);
    }

    #[test]
    fn schema_gives_columns_and_types() {
        let schema = json!({"type": "object", "properties": {
            "id": {"type": "integer"},
            "name": {"type": ["string", "null"]},
            "address": {"type": ["object", "null"], "properties": {"street": {"type": "string"}}},
            "total": {"anyOf": [{"type": "number"}, {"type": "null"}]},
            "tagTypeIds": {"type": "array", "items": {"type": "integer"}},
            "active": {"type": "boolean"},
            "modifiedOn": {"type": "string", "format": "date-time"}
        }});
        let columns = Columns::from_schema(&schema);
        let got: Vec<(&str, ColumnType)> = columns.list().iter().map(|c| (c.name.as_str(), c.column_type)).collect();
        use ColumnType::*;
        assert_eq!(
            got,
            [
                ("active", Boolean),
                ("address.street", String),
                ("id", Integer),
                ("modifiedOn", Timestamp),
                ("name", String),
                ("tagTypeIds", String),
                ("total", Number),
            ]
        );
    }
}
