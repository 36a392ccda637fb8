//! Parameter checks for the catalogue-driven answers: path and query values of the documented
//! types, required ones present, `page`/`pageSize` in range, and request bodies against their
//! schema, refused with the service's 400 problems.

use std::collections::BTreeMap;

use http::StatusCode;
use serde_json::Value;

use crate::catalogue::{Catalogue, Operation};
use crate::http::Problem;
use crate::util::parse_date_ms;

/// What a parameter's text must be.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind {
    Integer {
        low: i64,
        high: i64,
    },
    Number,
    Boolean,
    /// A date or a date-time: the service binds both to `DateTime`.
    Date,
    Guid,
    /// Case-insensitive names (the service binds enums that way).
    OneOf(Vec<String>),
    List(Box<Kind>),
    Text,
}

#[derive(Debug)]
pub(super) struct PathParam {
    /// Index of the path segment that carries it.
    pub segment: usize,
    pub name: String,
    pub kind: Kind,
}

#[derive(Debug)]
pub(super) struct QueryParam {
    pub name: String,
    pub kind: Kind,
    pub required: bool,
}

/// The path parameters of `op` other than `{tenant}` (checked before any operation runs).
pub(super) fn path_params(catalogue: &Catalogue, op: &Operation) -> Vec<PathParam> {
    op.path
        .split('/')
        .enumerate()
        .filter_map(|(segment, text)| {
            let name = text.strip_prefix('{')?.strip_suffix('}')?;
            if name == "tenant" {
                return None;
            }
            let kind = op.param(name).map_or(Kind::Text, |p| kind_of(catalogue, p.schema.as_ref(), name));
            Some(PathParam { segment, name: name.to_owned(), kind })
        })
        .collect()
}

pub(super) fn query_params(catalogue: &Catalogue, op: &Operation) -> Vec<QueryParam> {
    op.params
        .iter()
        .filter(|p| p.location == "query")
        .map(|p| QueryParam {
            name: p.name.clone(),
            kind: kind_of(catalogue, p.schema.as_ref(), &p.name),
            required: p.required,
        })
        .collect()
}

fn kind_of(catalogue: &Catalogue, schema: Option<&Value>, name: &str) -> Kind {
    let Some(schema) = schema.map(|s| catalogue.resolve(s)) else {
        return Kind::Text;
    };
    if let Some(Value::Array(values)) = schema.get("enum") {
        return Kind::OneOf(values.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect());
    }
    let format = schema.get("format").and_then(Value::as_str).unwrap_or("");
    match schema.get("type").and_then(Value::as_str).unwrap_or("") {
        "integer" => {
            let (low, high) = match (name, format) {
                ("page", _) => (1, i64::from(i32::MAX)),
                // The service's page size limit, which its specs do not state.
                ("pageSize", _) => (1, 5000),
                (_, "int32") => (i64::from(i32::MIN), i64::from(i32::MAX)),
                _ => (i64::MIN, i64::MAX),
            };
            let low = schema.get("minimum").and_then(Value::as_f64).map_or(low, |m| low.max(m.ceil() as i64));
            let high = schema.get("maximum").and_then(Value::as_f64).map_or(high, |m| high.min(m.floor() as i64));
            Kind::Integer { low, high }
        }
        "number" => Kind::Number,
        "boolean" => Kind::Boolean,
        "string" => match format {
            "date-time" | "date" => Kind::Date,
            "guid" | "uuid" => Kind::Guid,
            _ => Kind::Text,
        },
        "array" => Kind::List(Box::new(kind_of(catalogue, schema.get("items"), ""))),
        _ => Kind::Text,
    }
}

/// Why `text` is not a value of `kind`, if it is not.
fn check(kind: &Kind, name: &str, text: &str) -> Result<(), String> {
    let invalid = || Err(format!("The value '{text}' is not valid for {name}."));
    let trimmed = text.trim();
    match kind {
        Kind::Integer { low, high } => match trimmed.parse::<i64>() {
            Ok(n) if (*low..=*high).contains(&n) => Ok(()),
            Ok(_) => Err(format!("The field {name} must be between {low} and {high}.")),
            Err(_) => invalid(),
        },
        Kind::Number => trimmed.parse::<f64>().ok().filter(|n| n.is_finite()).map_or_else(invalid, |_| Ok(())),
        Kind::Boolean if trimmed.eq_ignore_ascii_case("true") || trimmed.eq_ignore_ascii_case("false") => Ok(()),
        Kind::Date if parse_date_ms(trimmed).is_some() => Ok(()),
        Kind::Guid if is_guid(trimmed) => Ok(()),
        Kind::OneOf(names) if names.iter().any(|n| n.eq_ignore_ascii_case(trimmed)) => Ok(()),
        // Lists arrive as repeated keys or comma-separated (the service accepts both).
        Kind::List(item) => {
            trimmed.split(',').filter(|part| !part.trim().is_empty()).try_for_each(|part| check(item, name, part))
        }
        Kind::Text => Ok(()),
        _ => invalid(),
    }
}

/// `8-4-4-4-12` hexadecimal digits, as .NET binds a `Guid` (braces and other forms aside).
pub(super) fn is_guid(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.len() == 5
        && parts.iter().zip([8, 4, 4, 4, 12]).all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Checks the path values (`segments` is the concrete path split at `/`): a value that cannot
/// be bound to the parameter's type is a 400 naming it, as model binding answers.
pub(super) fn check_path(params: &[PathParam], segments: &[&str]) -> Result<(), Problem> {
    for param in params {
        let text = segments.get(param.segment).copied().unwrap_or("");
        let decoded = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
        check(&param.kind, &param.name, &decoded).map_err(|message| Problem::bad_request(&param.name, message))?;
    }
    Ok(())
}

/// Checks the query: every documented parameter given has a value of its type, every required
/// one is there. Undocumented keys are ignored, as the service ignores them.
pub(super) fn check_query(params: &[QueryParam], pairs: &[(String, String)]) -> Result<(), Problem> {
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for param in params {
        let mut values = pairs.iter().filter(|(k, _)| k.eq_ignore_ascii_case(&param.name)).map(|(_, v)| v).peekable();
        if param.required && values.peek().is_none_or(|v| v.is_empty()) {
            errors.entry(param.name.clone()).or_default().push(format!("The {} field is required.", param.name));
            continue;
        }
        for value in values.filter(|v| !v.is_empty()) {
            if let Err(message) = check(&param.kind, &param.name, value) {
                errors.entry(param.name.clone()).or_default().push(message);
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Problem::new(StatusCode::BAD_REQUEST, "One or more validation errors occurred.").with_errors(errors))
    }
}

/// The request body of an operation that documents one: present, JSON, and valid against its
/// schema; every violation becomes a field error (`address.city: expected string, got number`).
pub(super) fn check_body(catalogue: &Catalogue, schema: &Value, body: &[u8]) -> Result<Value, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::bad_request("body", "A non-empty request body is required."));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Problem::bad_request("body", format!("The request body is not valid JSON: {e}.")))?;
    catalogue.validate(schema, &value).map_err(violations_problem)?;
    Ok(value)
}

/// A 400 with one field error per schema violation, keyed by the JSON path without `$.`.
pub(crate) fn violations_problem(violations: Vec<String>) -> Problem {
    let mut problem = Problem::new(StatusCode::BAD_REQUEST, "One or more validation errors occurred.");
    for v in violations {
        let (field, message) = v.split_once(": ").unwrap_or(("body", v.as_str()));
        let field = field.trim_start_matches("$.").trim_start_matches('$');
        problem = problem.field(if field.is_empty() { "body" } else { field }, message.to_string());
    }
    problem
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int() -> Kind {
        Kind::Integer { low: i64::MIN, high: i64::MAX }
    }

    #[test]
    fn values_are_checked_by_kind() {
        assert!(check(&int(), "id", "42").is_ok());
        assert_eq!(check(&int(), "id", "4x").unwrap_err(), "The value '4x' is not valid for id.");
        let size = Kind::Integer { low: 1, high: 5000 };
        assert_eq!(check(&size, "pageSize", "5001").unwrap_err(), "The field pageSize must be between 1 and 5000.");
        assert!(check(&Kind::Boolean, "active", "TRUE").is_ok() && check(&Kind::Boolean, "active", "yes").is_err());
        assert!(check(&Kind::Date, "from", "2024-02-29").is_ok() && check(&Kind::Date, "from", "soon").is_err());
        assert!(check(&Kind::Guid, "g", "0A1B2C3D-0000-4000-8000-00000000002a").is_ok());
        assert!(check(&Kind::Guid, "g", "0A1B2C3D00004000800000000000002a").is_err());
        let kinds = Kind::OneOf(vec!["Residential".into(), "Commercial".into()]);
        assert!(check(&kinds, "type", "commercial").is_ok() && check(&kinds, "type", "Industrial").is_err());
        let ids = Kind::List(Box::new(int()));
        assert!(check(&ids, "ids", "1,2, 3").is_ok() && check(&ids, "ids", "1,b").is_err());
        assert!(check(&Kind::Number, "n", "1.5").is_ok() && check(&Kind::Number, "n", "NaN").is_err());
    }

    #[test]
    fn required_query_parameters_are_named_when_missing() {
        let params = vec![
            QueryParam { name: "from".into(), kind: Kind::Date, required: true },
            QueryParam { name: "page".into(), kind: int(), required: false },
        ];
        let problem = check_query(&params, &[("PAGE".into(), "x".into())]).unwrap_err();
        assert_eq!(problem.errors["from"], vec!["The from field is required."]);
        assert_eq!(problem.errors["page"], vec!["The value 'x' is not valid for page."]);
        assert!(check_query(&params, &[("from".into(), "2024-01-01".into())]).is_ok());
    }
}
