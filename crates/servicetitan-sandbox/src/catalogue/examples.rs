//! Examples: minimal values that a schema accepts.

use serde_json::{Map, Value};

use super::validation::bounds;
use super::{Catalogue, MAX_EXAMPLE_DEPTH};

impl Catalogue {
    /// A minimal instance of `schema` that `validate` accepts: required properties only,
    /// the first enum value, `""`/`0`/`false`/`[]` by type, fixed dates for date formats.
    pub fn example(&self, schema: &Value) -> Value {
        self.example_at(schema, 0)
    }

    fn example_at(&self, schema: &Value, depth: usize) -> Value {
        let Value::Object(schema) = schema else {
            // `true` accepts anything; `false` accepts nothing, so any answer is as good.
            return Value::Null;
        };
        let nullable = schema.get("nullable") == Some(&Value::Bool(true));
        if depth > MAX_EXAMPLE_DEPTH {
            // Out of depth in a recursive schema: null is valid if allowed, otherwise give
            // the shallowest value of the right type and stop descending.
            return if nullable { Value::Null } else { shallow_example(schema) };
        }
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            return match self.schemas.get(reference) {
                Some(target) => self.example_at(target, depth + 1),
                None => Value::Null,
            };
        }
        if let Some(first) = schema.get("enum").and_then(Value::as_array).and_then(|v| v.first()) {
            return first.clone();
        }
        if let Some(Value::Array(alternatives)) = schema.get("oneOf") {
            // Exactly one alternative must match; pick the first example that does so.
            for alternative in alternatives {
                let candidate = self.example_at(alternative, depth + 1);
                let mut path = String::from("$");
                let matched = alternatives.iter().filter(|other| self.matches(other, &candidate, &mut path, 0)).count();
                if matched == 1 {
                    return candidate;
                }
            }
        }
        if let Some(first) = schema.get("anyOf").and_then(Value::as_array).and_then(|v| v.first()) {
            return self.example_at(first, depth + 1);
        }

        let declared = schema.get("type").and_then(Value::as_str);
        let kind = declared.unwrap_or_else(|| {
            if schema.contains_key("properties") || schema.contains_key("allOf") {
                "object"
            } else if schema.contains_key("items") {
                "array"
            } else {
                // No type and nothing to go on: anything is valid, null included.
                "null"
            }
        });
        match kind {
            "object" => {
                let mut out = Map::new();
                let properties = schema.get("properties").and_then(Value::as_object);
                if let Some(Value::Array(required)) = schema.get("required") {
                    for name in required.iter().filter_map(Value::as_str) {
                        let property = properties
                            .and_then(|p| p.get(name))
                            .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()));
                        let value = property.map_or(Value::Null, |p| self.example_at(p, depth + 1));
                        out.insert(name.to_owned(), value);
                    }
                }
                // allOf: the instance must satisfy every part, so merge their examples.
                if let Some(Value::Array(parts)) = schema.get("allOf") {
                    for part in parts {
                        if let Value::Object(fields) = self.example_at(part, depth + 1) {
                            for (key, value) in fields {
                                out.entry(key).or_insert(value);
                            }
                        }
                    }
                }
                Value::Object(out)
            }
            "array" => {
                let count = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0);
                let item = schema.get("items").map_or(Value::Null, |s| self.example_at(s, depth + 1));
                Value::Array((0..count).map(|_| item.clone()).collect())
            }
            "string" => Value::String(string_example(schema)),
            "integer" => {
                let (low, high) = bounds(schema);
                let mut n = 0.0_f64;
                if let Some(low) = low {
                    n = n.max(low.ceil());
                }
                if let Some(high) = high {
                    n = n.min(high.floor());
                }
                Value::from(n as i64)
            }
            "number" => {
                let (low, high) = bounds(schema);
                let n = low.map_or(0.0, |low| low.max(0.0));
                let n = high.map_or(n, |high| n.min(high));
                if n.fract() == 0.0 {
                    Value::from(n as i64)
                } else {
                    Value::from(n)
                }
            }
            "boolean" => Value::Bool(false),
            _ => Value::Null,
        }
    }
}

fn string_example(schema: &Map<String, Value>) -> String {
    let text = match schema.get("format").and_then(Value::as_str) {
        Some("date-time") => "2026-01-01T00:00:00Z",
        Some("date") => "2026-01-01",
        Some("uuid" | "guid") => "00000000-0000-0000-0000-000000000000",
        _ => "",
    };
    let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
    let mut text = text.to_owned();
    while text.chars().count() < min {
        text.push('x');
    }
    text
}

/// The shallowest value of a schema's declared type (used only past the depth limit).
fn shallow_example(schema: &Map<String, Value>) -> Value {
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => Value::Object(Map::new()),
        Some("array") => Value::Array(Vec::new()),
        Some("string") => Value::String(string_example(schema)),
        Some("integer" | "number") => Value::from(0),
        Some("boolean") => Value::Bool(false),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::tests::{cat, customer};
    use serde_json::json;

    /// The strong self-check: `example` must satisfy `validate` for every schema the specs
    /// document, which exercises both against all the shapes that occur in practice.
    #[test]
    fn examples_of_every_documented_schema_validate() {
        let c = cat();
        let mut with_json_200 = 0;
        let mut checked = 0;
        let mut failures = Vec::new();
        for op in &c.operations {
            if op.responses.get("200").is_some_and(|s| !s.is_null()) {
                with_json_200 += 1;
            }
            let schemas = op
                .responses
                .iter()
                .map(|(code, s)| (format!("response {code}"), s))
                .chain(op.body.iter().map(|s| ("body".to_owned(), s)))
                .chain(op.params.iter().filter_map(|p| Some((format!("param {}", p.name), p.schema.as_ref()?))));
            for (what, schema) in schemas {
                if schema.is_null() {
                    continue;
                }
                checked += 1;
                let example = c.example(schema);
                if let Err(errors) = c.validate(schema, &example) {
                    failures.push(format!("{} {} {what}: {errors:?}", op.method, op.path));
                }
            }
        }
        // Component schemas not directly used by an operation are checked too.
        for (name, schema) in &c.schemas {
            checked += 1;
            if let Err(errors) = c.validate(schema, &c.example(schema)) {
                failures.push(format!("{name}: {errors:?}"));
            }
        }
        assert!(failures.is_empty(), "{} failures, e.g. {:#?}", failures.len(), &failures[..failures.len().min(5)]);
        assert!(with_json_200 > 450, "only {with_json_200} operations document a JSON 200");
        assert!(checked > 2000, "{checked}");
    }

    /// Guards the self-check above against a validator that accepts too much: dropping any
    /// required property, or swapping in a value of another type, must be caught everywhere.
    #[test]
    fn mutated_examples_are_rejected() {
        let c = cat();
        let mut mutations = 0;
        for (name, schema) in &c.schemas {
            let Value::Object(example) = c.example(schema) else {
                continue;
            };
            for key in example.keys() {
                let mut without = example.clone();
                without.remove(key);
                let errors = c.validate(schema, &Value::Object(without)).unwrap_err();
                assert!(
                    errors.iter().any(|e| e.starts_with(&format!("$.{key}: required"))),
                    "{name}.{key}: {errors:?}"
                );
                let mut wrong = example.clone();
                // An array is neither a string, a number, a boolean nor an object.
                let replacement = if example[key].is_array() { json!({"x": 1}) } else { json!([[]]) };
                wrong.insert(key.clone(), replacement);
                assert!(c.validate(schema, &Value::Object(wrong)).is_err(), "{name}.{key} accepts anything");
                mutations += 2;
            }
        }
        assert!(mutations > 5000, "{mutations}");
    }

    #[test]
    fn examples_are_minimal() {
        let (_, example) = customer();
        let object = example.as_object().unwrap();
        // Required properties only: `mergedToId` is optional.
        assert!(object.contains_key("name") && !object.contains_key("mergedToId"));
        assert_eq!(object["createdOn"], json!("2026-01-01T00:00:00Z"));
        assert_eq!(object["active"], json!(false));
        assert_eq!(object["tagTypeIds"], json!([]));
        assert!(object["address"].is_object());
    }

    #[test]
    fn recursive_schemas_terminate() {
        let text = json!({"source": {"repository": "r", "commit": "c"}, "modules": {}, "operations": [],
            "schemas": {
                "m:Node": {"type": "object", "required": ["child"], "properties": {"child": {"$ref": "m:Node"}}},
                "m:Loop": {"allOf": [{"$ref": "m:Loop"}]}}})
        .to_string();
        let c = Catalogue::from_json(&text).unwrap();
        let node = json!({"$ref": "m:Node"});
        let example = c.example(&node);
        assert!(example["child"]["child"].is_object());
        let looped = json!({"$ref": "m:Loop"});
        let _ = c.example(&looped);
        let errors = c.validate(&looped, &json!(1)).unwrap_err();
        assert!(errors[0].contains("nesting exceeds"), "{errors:?}");
    }
}
