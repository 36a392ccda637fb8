//! Records flattened into column positions straight from their JSON text: one pass of the
//! parser, no tree of values and no key strings allocated per record (the dotted name is built
//! in one reused buffer). The result is the same as parsing into a [`Value`] and walking it
//! (see [`super::columns::walk`]): objects are walked into, an object that is itself a column
//! and every array are kept whole as JSON, an empty object is a null leaf.

use std::fmt;
use std::io;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::columns::Columns;

/// One leaf of a record, borrowed from its text where it can be.
#[derive(Debug, Clone, PartialEq)]
pub enum Leaf<'a> {
    /// `null`, or an empty object.
    Null,
    /// `true`/`false`.
    Bool(bool),
    /// A number, as serde_json reads it.
    Number(Number),
    /// A string, unescaped.
    Text(&'a str),
    /// An array, or an object held whole by a column, as serde_json reads it.
    Json(Value),
}

impl Leaf<'_> {
    /// Whether it is null.
    pub fn is_null(&self) -> bool {
        matches!(self, Leaf::Null)
    }
}

/// Calls `leaf` with each dotted name of `record`, the position of its column (if it has one)
/// and its value. `prefix` is scratch space, reused between records.
pub fn walk_text<F>(record: &str, columns: &Columns, prefix: &mut String, leaf: &mut F) -> io::Result<()>
where
    F: FnMut(&str, Option<usize>, Leaf<'_>),
{
    prefix.clear();
    let mut parser = serde_json::Deserializer::from_str(record);
    let position = columns.position("");
    Walk { columns, prefix, leaf, position }.deserialize(&mut parser).and_then(|()| parser.end()).map_err(invalid_data)
}

fn invalid_data(e: serde_json::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// The walk at one place of the record: `prefix` is its dotted name, `position` its column.
struct Walk<'w, F> {
    columns: &'w Columns,
    prefix: &'w mut String,
    leaf: &'w mut F,
    position: Option<usize>,
}

impl<'de, F> DeserializeSeed<'de> for Walk<'_, F>
where
    F: FnMut(&str, Option<usize>, Leaf<'_>),
{
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<F> Walk<'_, F>
where
    F: FnMut(&str, Option<usize>, Leaf<'_>),
{
    fn emit<E>(self, value: Leaf<'_>) -> Result<(), E> {
        (self.leaf)(self.prefix, self.position, value);
        Ok(())
    }
}

impl<'de, F> Visitor<'de> for Walk<'_, F>
where
    F: FnMut(&str, Option<usize>, Leaf<'_>),
{
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.emit(Leaf::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.emit(Leaf::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.emit(Leaf::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        // As serde_json's own `Value`: a number it cannot hold is null.
        self.emit(Number::from_f64(v).map_or(Leaf::Null, Leaf::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.emit(Leaf::Text(v))
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.emit(Leaf::Null)
    }

    fn visit_none<E>(self) -> Result<(), E> {
        self.emit(Leaf::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        self.emit(Leaf::Json(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Walk { columns, prefix, leaf, position } = self;
        let nested = !prefix.is_empty();
        if nested && position.is_some() {
            // A column holds this object whole (the schema gives it no properties).
            let mut object = Map::new();
            while let Some((name, value)) = map.next_entry::<String, Value>()? {
                object.insert(name, value);
            }
            leaf(prefix, position, Leaf::Json(Value::Object(object)));
            return Ok(());
        }
        let before = prefix.len();
        let mut empty = true;
        loop {
            if nested {
                prefix.push('.');
            }
            if map.next_key_seed(AppendKey(prefix))?.is_none() {
                prefix.truncate(before);
                break;
            }
            empty = false;
            let position = columns.position(prefix);
            map.next_value_seed(Walk { columns, prefix: &mut *prefix, leaf: &mut *leaf, position })?;
            prefix.truncate(before);
        }
        if empty && nested {
            leaf(prefix, position, Leaf::Null);
        }
        Ok(())
    }
}

/// Reads an object's key onto the end of the dotted name.
struct AppendKey<'w>(&'w mut String);

impl<'de> DeserializeSeed<'de> for AppendKey<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for AppendKey<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an object key")
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.0.push_str(v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::columns::walk_until;

    /// The leaves of a walk: dotted name, column position, value.
    type Leaves = Vec<(String, Option<usize>, Value)>;

    /// Each (name, position, leaf) of the walk over text, against the walk over a parsed value.
    fn both_walks(record: &str, columns: &Columns) -> (Leaves, Leaves) {
        let as_value = |leaf: Leaf<'_>| match leaf {
            Leaf::Null => Value::Null,
            Leaf::Bool(b) => Value::Bool(b),
            Leaf::Number(n) => Value::Number(n),
            Leaf::Text(s) => Value::String(s.to_string()),
            Leaf::Json(v) => v,
        };
        let mut from_text = Vec::new();
        walk_text(record, columns, &mut String::from("left over"), &mut |name, at, leaf| {
            from_text.push((name.to_string(), at, as_value(leaf)))
        })
        .unwrap();
        let value: Value = serde_json::from_str(record).unwrap();
        let mut from_value = Vec::new();
        let is_column = |name: &str| columns.position(name).is_some();
        walk_until(&value, &mut String::new(), &is_column, &mut |name, leaf| {
            from_value.push((name.to_string(), columns.position(name), leaf.clone()))
        });
        // The parsed value's objects are ordered by key; the text keeps the document's order.
        from_text.sort_by(|a, b| a.0.cmp(&b.0));
        from_value.sort_by(|a, b| a.0.cmp(&b.0));
        (from_text, from_value)
    }

    #[test]
    fn text_walk_matches_the_value_walk() {
        let schema = serde_json::json!({"type": "object", "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "address": {"type": "object", "properties": {"street": {"type": "string"}, "zip": {"type": "string"}}},
            "custom": {"type": "object"},
            "tags": {"type": "array"},
            "total": {"type": "number"}
        }});
        let columns = Columns::from_schema(&schema);
        let records = [
            r#"{"id": 1, "name": "A \"quoted\" \u00e9 name", "address": {"street": "Main", "zip": null},
                "custom": {"b": [1, {"z": 2, "a": 1}], "a": "x"}, "tags": [1, "two", null, {"k": 1.50}],
                "total": 1.0e3, "extra": {"deep": {"er": -7}}, "emptyObject": {}, "big": 18446744073709551615}"#,
            r#"{"id": -3, "address": {}, "custom": {}, "total": 12345678901234567890123, "": {"": true}}"#,
            r#"{}"#,
        ];
        for record in records {
            let (from_text, from_value) = both_walks(record, &columns);
            assert_eq!(from_text, from_value, "{record}");
        }
    }

    #[test]
    fn bad_text_is_invalid_data() {
        let columns = Columns::default();
        let error = walk_text("{\"a\": 1} trailing", &columns, &mut String::new(), &mut |_, _, _| {}).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        let error = walk_text("{\"a\": ", &columns, &mut String::new(), &mut |_, _, _| {}).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }
}
