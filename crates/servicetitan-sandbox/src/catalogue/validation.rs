//! Validation: whether a value has the shape a schema documents (OpenAPI 3.0 semantics).

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::Catalogue;

/// Recursion bound for `validate`. Values are finite, so only reference cycles that do not
/// consume any of the value (e.g. `A = {allOf: [{$ref: A}]}`) can hit it; the real specs
/// nest far less than this.
const MAX_VALIDATE_DEPTH: usize = 128;

impl Catalogue {
    /// Checks `value` against `schema` with OpenAPI 3.0 semantics. On failure, returns every
    /// violation found, each naming the JSON path: `$.data[0].address.city: expected string,
    /// got number`.
    pub fn validate(&self, schema: &Value, value: &Value) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        let mut path = String::from("$");
        self.check(schema, value, &mut path, &mut errors, 0);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Whether `value` matches `schema`, without collecting messages for the caller.
    pub(super) fn matches(&self, schema: &Value, value: &Value, path: &mut String, depth: usize) -> bool {
        let mut scratch = Vec::new();
        self.check(schema, value, path, &mut scratch, depth);
        scratch.is_empty()
    }

    fn check(&self, schema: &Value, value: &Value, path: &mut String, errors: &mut Vec<String>, depth: usize) {
        if depth > MAX_VALIDATE_DEPTH {
            errors.push(format!("{path}: schema nesting exceeds {MAX_VALIDATE_DEPTH} levels"));
            return;
        }
        let schema = match schema {
            Value::Object(schema) => schema,
            Value::Bool(true) => return,
            Value::Bool(false) => {
                errors.push(format!("{path}: no value is allowed here"));
                return;
            }
            other => {
                errors.push(format!("{path}: invalid schema {other}"));
                return;
            }
        };

        // OpenAPI 3.0: siblings of $ref are ignored, the target alone decides.
        if let Some(reference) = schema.get("$ref") {
            match reference.as_str().and_then(|r| self.schemas.get(r)) {
                Some(target) => self.check(target, value, path, errors, depth + 1),
                None => errors.push(format!("{path}: unknown schema reference {reference}")),
            }
            return;
        }

        // `nullable: true` admits null outright, also on a `oneOf: [{$ref}]` wrapper whose
        // target is not itself nullable: that wrapper is how the specs mark nullable refs.
        // Without `nullable`, null is refused by `type`, `enum` or the composed schemas;
        // a schema with none of those (`{}`) accepts anything, null included (3.0.3).
        if value.is_null() && schema.get("nullable") == Some(&Value::Bool(true)) {
            return;
        }

        if let Some(expected) = schema.get("type").and_then(Value::as_str) {
            if !type_matches(expected, value) {
                errors.push(format!("{path}: expected {expected}, got {}", kind(value)));
                // Further keywords would only restate the same mismatch.
                return;
            }
        }

        if let Some(Value::Array(allowed)) = schema.get("enum") {
            if !allowed.contains(value) {
                errors.push(format!("{path}: expected one of {}, got {}", preview_list(allowed), preview(value)));
            }
        }

        match value {
            Value::String(text) => check_string(schema, text, path, errors),
            Value::Number(number) => {
                if let Some(n) = number.as_f64() {
                    check_number(schema, n, path, errors);
                }
            }
            Value::Array(items) => {
                check_count(schema, "minItems", "maxItems", items.len(), "items", path, errors);
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        let len = path.len();
                        let _ = write!(path, "[{i}]");
                        self.check(item_schema, item, path, errors, depth + 1);
                        path.truncate(len);
                    }
                }
            }
            Value::Object(object) => self.check_object(schema, object, path, errors, depth),
            Value::Null | Value::Bool(_) => {}
        }

        if let Some(Value::Array(parts)) = schema.get("allOf") {
            for part in parts {
                self.check(part, value, path, errors, depth + 1);
            }
        }
        for keyword in ["oneOf", "anyOf"] {
            let Some(Value::Array(alternatives)) = schema.get(keyword) else {
                continue;
            };
            if let [only] = alternatives.as_slice() {
                // A one-element oneOf/anyOf is a wrapper; report the inner errors directly,
                // which names the offending field instead of "matches no alternative".
                self.check(only, value, path, errors, depth + 1);
                continue;
            }
            let matched =
                alternatives.iter().filter(|alternative| self.matches(alternative, value, path, depth + 1)).count();
            let n = alternatives.len();
            if matched == 0 {
                errors.push(format!("{path}: matches none of the {n} {keyword} alternatives"));
            } else if keyword == "oneOf" && matched > 1 {
                errors.push(format!("{path}: matches {matched} of the {n} oneOf alternatives, expected exactly one"));
            }
        }
    }

    fn check_object(
        &self,
        schema: &Map<String, Value>,
        object: &Map<String, Value>,
        path: &mut String,
        errors: &mut Vec<String>,
        depth: usize,
    ) {
        let properties = schema.get("properties").and_then(Value::as_object);
        if let Some(Value::Array(required)) = schema.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !object.contains_key(name) {
                    let len = path.len();
                    push_key(path, name);
                    errors.push(format!("{path}: required property is missing"));
                    path.truncate(len);
                }
            }
        }
        let additional = schema.get("additionalProperties");
        for (key, item) in object {
            let len = path.len();
            push_key(path, key);
            match properties.and_then(|p| p.get(key)) {
                Some(property_schema) => self.check(property_schema, item, path, errors, depth + 1),
                None => match additional {
                    Some(Value::Bool(false)) => {
                        errors.push(format!("{path}: unknown property (additionalProperties is false)"))
                    }
                    Some(extra @ Value::Object(_)) => self.check(extra, item, path, errors, depth + 1),
                    // Absent or `true`: OpenAPI allows any extra property.
                    _ => {}
                },
            }
            path.truncate(len);
        }
    }
}

/// Appends `.key`, or `["key"]` when the key is not a plain identifier, to a JSON path.
fn push_key(path: &mut String, key: &str) {
    let plain = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if plain {
        path.push('.');
        path.push_str(key);
    } else {
        path.push('[');
        path.push_str(&Value::from(key).to_string());
        path.push(']');
    }
}

fn type_matches(expected: &str, value: &Value) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        // JSON integers only: 1.0 is a number, not an integer (serde_json keeps the form).
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        // An unknown type name constrains nothing rather than rejecting everything.
        _ => true,
    }
}

/// The JSON kind of a value, for messages: numbers are all "number", as in JSON itself.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A value for an error message, shortened so a large object does not flood the log.
fn preview(value: &Value) -> String {
    const LIMIT: usize = 60;
    let text = value.to_string();
    if text.len() <= LIMIT {
        return text;
    }
    let mut cut = LIMIT;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

fn preview_list(values: &[Value]) -> String {
    const SHOWN: usize = 8;
    let mut out: Vec<String> = values.iter().take(SHOWN).map(|v| v.to_string()).collect();
    if values.len() > SHOWN {
        out.push(format!("… ({} in all)", values.len()));
    }
    format!("[{}]", out.join(", "))
}

pub(super) fn bounds(schema: &Map<String, Value>) -> (Option<f64>, Option<f64>) {
    (schema.get("minimum").and_then(Value::as_f64), schema.get("maximum").and_then(Value::as_f64))
}

fn check_number(schema: &Map<String, Value>, n: f64, path: &str, errors: &mut Vec<String>) {
    let (low, high) = bounds(schema);
    if let Some(low) = low.filter(|&low| n < low) {
        errors.push(format!("{path}: {n} is below the minimum {low}"));
    }
    if let Some(high) = high.filter(|&high| n > high) {
        errors.push(format!("{path}: {n} is above the maximum {high}"));
    }
}

fn check_count(
    schema: &Map<String, Value>,
    min_key: &str,
    max_key: &str,
    count: usize,
    unit: &str,
    path: &str,
    errors: &mut Vec<String>,
) {
    let count = count as u64;
    if let Some(min) = schema.get(min_key).and_then(Value::as_u64).filter(|&m| count < m) {
        errors.push(format!("{path}: {count} {unit}, fewer than {min_key} {min}"));
    }
    if let Some(max) = schema.get(max_key).and_then(Value::as_u64).filter(|&m| count > m) {
        errors.push(format!("{path}: {count} {unit}, more than {max_key} {max}"));
    }
}

fn check_string(schema: &Map<String, Value>, text: &str, path: &str, errors: &mut Vec<String>) {
    // JSON Schema counts length in characters, not bytes.
    check_count(schema, "minLength", "maxLength", text.chars().count(), "characters", path, errors);
    match schema.get("format").and_then(Value::as_str) {
        Some("date-time") if !is_date_time(text) => {
            errors.push(format!("{path}: {} is not an RFC 3339 date-time", preview(&Value::from(text))))
        }
        Some("date") if !is_date(text) => {
            errors.push(format!("{path}: {} is not a YYYY-MM-DD date", preview(&Value::from(text))))
        }
        // int32, int64, decimal, guid, email...: the type check is all we promise.
        _ => {}
    }
}

/// Parses `n` ASCII digits.
fn digits(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(bytes.iter().fold(0, |acc, &b| acc * 10 + u32::from(b - b'0')))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => 29,
        2 => 28,
        _ => 0,
    }
}

/// `YYYY-MM-DD` with a real calendar day (RFC 3339 full-date).
fn is_date(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    match (digits(&b[0..4]), digits(&b[5..7]), digits(&b[8..10])) {
        (Some(year), Some(month), Some(day)) => day >= 1 && day <= days_in_month(year, month),
        _ => false,
    }
}

/// RFC 3339 date-time: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`. `T` and `Z` may be lower
/// case (RFC 3339 §5.6); the offset is mandatory; second 60 is allowed for leap seconds.
fn is_date_time(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() < 20 || !text.is_char_boundary(10) || !is_date(&text[..10]) {
        return false;
    }
    if !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return false;
    }
    let time_ok = matches!(
        (digits(&b[11..13]), digits(&b[14..16]), digits(&b[17..19])),
        (Some(h), Some(m), Some(s)) if h <= 23 && m <= 59 && s <= 60
    );
    if !time_ok {
        return false;
    }
    let mut rest = &b[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let n = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &fraction[n..];
    }
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => matches!(
            (digits(&[*h1, *h2]), digits(&[*m1, *m2])),
            (Some(h), Some(m)) if h <= 23 && m <= 59
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::tests::{cat, customer};
    use serde_json::json;

    #[test]
    fn validate_rejects_missing_required_field() {
        let (schema, mut value) = customer();
        value.as_object_mut().unwrap().remove("name");
        let errors = cat().validate(schema, &value).unwrap_err();
        assert_eq!(errors, vec!["$.name: required property is missing"]);
    }

    #[test]
    fn validate_rejects_wrong_type_with_nested_path() {
        let c = cat();
        let list = c.operation("GET", "crm/v2/tenant/{tenant}/customers").unwrap().responses["200"].clone();
        let mut page = c.example(&list);
        let (_, mut record) = customer();
        record["address"]["city"] = json!(5);
        page["data"] = json!([record]);
        let errors = c.validate(&list, &page).unwrap_err();
        assert_eq!(errors, vec!["$.data[0].address.city: expected string, got number"]);

        let (schema, mut value) = customer();
        value["id"] = json!(1.5);
        value["balance"] = json!(2);
        let errors = c.validate(schema, &value).unwrap_err();
        assert_eq!(errors, vec!["$.id: expected integer, got number"]);
    }

    #[test]
    fn validate_rejects_unknown_field_when_additional_properties_false() {
        let (schema, mut value) = customer();
        value["surprise"] = json!(true);
        value["address"]["weird key"] = json!(1);
        let errors = cat().validate(schema, &value).unwrap_err();
        assert_eq!(
            errors,
            vec![
                "$.address[\"weird key\"]: unknown property (additionalProperties is false)",
                "$.surprise: unknown property (additionalProperties is false)",
            ]
        );
    }

    #[test]
    fn validate_handles_null_and_nullable_wrappers() {
        let c = cat();
        let (schema, mut value) = customer();
        value["name"] = Value::Null;
        assert_eq!(c.validate(schema, &value).unwrap_err(), vec!["$.name: expected string, got null"]);
        // `address` is a bare oneOf wrapper: null is refused by the referenced object schema.
        let (_, mut value) = customer();
        value["address"] = Value::Null;
        assert_eq!(c.validate(schema, &value).unwrap_err(), vec!["$.address: expected object, got null"]);
        // Optional and nullable: null and absence are both fine.
        let (_, mut value) = customer();
        value["mergedToId"] = Value::Null;
        c.validate(schema, &value).unwrap();

        let wrapper = json!({"nullable": true, "oneOf": [{"$ref": "crm:Crm.V2.Customers.CustomerAddress"}]});
        c.validate(&wrapper, &Value::Null).unwrap();
        let bare = json!({"oneOf": [{"$ref": "crm:Crm.V2.Customers.CustomerAddress"}]});
        assert!(c.validate(&bare, &Value::Null).is_err());
        c.validate(&json!({}), &Value::Null).unwrap();
    }

    #[test]
    fn validate_rejects_bad_dates_and_enums() {
        let c = cat();
        let (schema, mut value) = customer();
        value["createdOn"] = json!("yesterday");
        value["modifiedOn"] = json!("2026-02-30T00:00:00Z");
        value["type"] = json!("Industrial");
        let errors = c.validate(schema, &value).unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].starts_with("$.createdOn: \"yesterday\" is not an RFC 3339 date-time"), "{errors:?}");
        assert!(errors[1].starts_with("$.modifiedOn: "), "{errors:?}");
        assert!(errors[2].starts_with("$.type: expected one of [\"Residential\""), "{errors:?}");
    }

    #[test]
    fn composition_keywords() {
        let c = cat();
        let one_of = json!({"oneOf": [{"type": "integer"}, {"type": "number"}]});
        c.validate(&one_of, &json!(1.5)).unwrap();
        assert_eq!(
            c.validate(&one_of, &json!(1)).unwrap_err(),
            vec!["$: matches 2 of the 2 oneOf alternatives, expected exactly one"]
        );
        let any_of = json!({"anyOf": [{"type": "string"}, {"type": "boolean"}]});
        c.validate(&any_of, &json!(true)).unwrap();
        assert!(c.validate(&any_of, &json!(3)).is_err());
        let all_of = json!({"allOf": [
            {"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}},
            {"type": "object", "required": ["b"], "properties": {"b": {"type": "integer", "minimum": 3}}}]});
        let example = c.example(&all_of);
        assert_eq!(example, json!({"a": "", "b": 3}));
        c.validate(&all_of, &example).unwrap();
        assert!(c.validate(&all_of, &json!({"a": ""})).is_err());
        let map = json!({"type": "object", "additionalProperties": {"type": "string"}});
        assert_eq!(c.validate(&map, &json!({"k": 1})).unwrap_err(), vec!["$.k: expected string, got number"]);
    }

    #[test]
    fn bounded_keywords() {
        let c = cat();
        let s = json!({"type": "string", "minLength": 2, "maxLength": 3});
        assert_eq!(c.example(&s), json!("xx"));
        assert!(c.validate(&s, &json!("é")).is_err());
        c.validate(&s, &json!("éé")).unwrap();
        assert!(c.validate(&s, &json!("abcd")).is_err());
        let n = json!({"type": "number", "minimum": 0, "maximum": 100});
        assert!(c.validate(&n, &json!(100.5)).is_err());
        assert!(c.validate(&n, &json!(-1)).is_err());
        let a = json!({"type": "array", "items": {"type": "boolean"}, "minItems": 2});
        assert_eq!(c.example(&a), json!([false, false]));
        assert!(c.validate(&a, &json!([true])).is_err());
    }

    #[test]
    fn date_and_date_time_checks() {
        for good in [
            "2026-01-01T00:00:00Z",
            "2024-02-29T23:59:60.123456789+14:00",
            "2021-05-20T17:14:48.0473833z",
            "2021-05-20t17:14:48-05:30",
        ] {
            assert!(is_date_time(good), "{good}");
        }
        for bad in [
            "2026-01-01",
            "2026-01-01T00:00:00",
            "2026-01-01 00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00+0500",
            "2026-01-01T00:00:00Z ",
            "2026-01-01T00:00:00é",
            "２026-01-01T00:00:00Z",
        ] {
            assert!(!is_date_time(bad), "{bad}");
        }
        assert!(is_date("2000-02-29") && !is_date("1900-02-29") && !is_date("2026-1-01") && !is_date("2026-04-31"));
    }
}
