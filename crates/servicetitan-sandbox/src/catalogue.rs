//! The operation catalogue: every documented ServiceTitan operation and the schemas of its
//! requests and responses, derived from the official OpenAPI specs by
//! `tools/gen_catalogue.py` and embedded in the binary (`catalogue.json`).
//!
//! The sandbox uses it to route requests (`find`), to check what it receives and what it
//! answers against the documented shapes (`validate`), and to fabricate minimal but valid
//! records (`example`). The schemas are OpenAPI 3.0 schema objects stripped to their
//! validation keywords; a `$ref` is written `"{module}:{Name}"` and resolved through
//! [`Catalogue::schemas`], because component names repeat across modules
//! (every module has its own `ApiErrorResponse`).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The generated catalogue, compiled in so that the sandbox needs no files at run time.
const EMBEDDED_JSON: &str = include_str!("../catalogue.json");

/// Recursion bound for `validate`. Values are finite, so only reference cycles that do not
/// consume any of the value (e.g. `A = {allOf: [{$ref: A}]}`) can hit it; the real specs
/// nest far less than this.
const MAX_VALIDATE_DEPTH: usize = 128;

/// Recursion bound for `example`: recursive schemas (a tree node whose children are nodes)
/// would otherwise never end if a required property closed the cycle.
const MAX_EXAMPLE_DEPTH: usize = 32;

/// Upstream revision the specs were taken from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub repository: String,
    pub commit: String,
}

/// One API module (a path segment such as `crm` or `equipmentsystems`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Module {
    /// File name of the spec the module came from.
    pub spec: String,
}

/// One parameter of an operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Param {
    pub name: String,
    /// `path` or `query` (the specs use no header or cookie parameters).
    #[serde(rename = "in")]
    pub location: String,
    /// JSON type (`integer`, `string`, `boolean`, `number`, `array`, `object`), looked up
    /// through `$ref` / one-element `oneOf` wrappers; `None` if the spec gives none.
    pub r#type: Option<String>,
    pub required: bool,
    /// The stripped parameter schema (format, enum, nullable...), for finer checks.
    #[serde(default)]
    pub schema: Option<Value>,
}

/// One documented operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// The spec's `operationId`. Not globally unique: `Jobs_Get` exists in two modules.
    pub id: String,
    pub module: String,
    /// Upper case (`GET`, `POST`, ...).
    pub method: String,
    /// Full path template after the host, without a leading slash:
    /// `crm/v2/tenant/{tenant}/customers/{id}`.
    pub path: String,
    pub params: Vec<Param>,
    /// The `application/json` request body schema, if the operation takes one.
    pub body: Option<Value>,
    /// Status code → `application/json` response schema; `Value::Null` when the response
    /// has no JSON body (204, 302, file downloads).
    pub responses: BTreeMap<String, Value>,
}

impl Operation {
    /// The lowest documented 2xx status and its schema (`Value::Null` if it has no JSON body).
    pub fn success(&self) -> Option<(&str, &Value)> {
        // BTreeMap iterates codes in order, so "200" comes before "201" and "204".
        self.responses.iter().find(|(code, _)| code.starts_with('2')).map(|(code, schema)| (code.as_str(), schema))
    }

    /// The parameter called `name`, if the operation documents one.
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Export feeds (`.../export/...`) page with `from`/`continueFrom` instead of `page`.
    pub fn is_export(&self) -> bool {
        self.path.split('/').any(|segment| segment == "export")
    }
}

/// Why a catalogue could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("catalogue is not valid JSON of the expected shape: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("two operations share the route {method} {path}")]
    DuplicateRoute { method: String, path: String },
}

/// The serialized form, exactly as `tools/gen_catalogue.py` writes it.
#[derive(Deserialize)]
struct RawCatalogue {
    source: Source,
    modules: BTreeMap<String, Module>,
    operations: Vec<Operation>,
    schemas: HashMap<String, Value>,
}

/// A routing trie over path segments: literal children first, then one parameter child.
/// Lookup costs one hash probe per segment (plus backtracking in the rare case where a
/// literal branch dead-ends), independent of the number of operations.
#[derive(Debug, Default)]
struct Node {
    literal: HashMap<String, Node>,
    param: Option<Box<Node>>,
    /// Index into `Catalogue::operations` of the operation ending here.
    op: Option<usize>,
}

impl Node {
    fn lookup<'p>(&self, mut segments: std::str::Split<'p, char>) -> Option<usize> {
        let Some(segment) = segments.next() else {
            return self.op;
        };
        // Literal first: `customers/custom-fields` must win over `customers/{id}`. Trying
        // the literal branch before the parameter one, segment by segment, makes the
        // leftmost literal decide, which is how ASP.NET-style routers rank templates.
        if let Some(child) = self.literal.get(segment) {
            if let Some(found) = child.lookup(segments.clone()) {
                return Some(found);
            }
        }
        match &self.param {
            // A parameter stands for a non-empty segment (`customers//notes` is not a route).
            Some(child) if !segment.is_empty() => child.lookup(segments),
            _ => None,
        }
    }
}

/// The operation catalogue. See the module documentation.
#[derive(Debug)]
pub struct Catalogue {
    pub source: Source,
    pub modules: BTreeMap<String, Module>,
    /// Sorted by path, then method.
    pub operations: Vec<Operation>,
    /// `"{module}:{Name}"` → stripped component schema.
    pub schemas: HashMap<String, Value>,
    /// One routing trie per HTTP method (there are only five, so a Vec beats a map).
    routes: Vec<(String, Node)>,
    /// Path template → indices of the operations on it (one per method).
    by_template: HashMap<String, Vec<usize>>,
}

impl Catalogue {
    /// The catalogue compiled into the crate, parsed on first use.
    pub fn embedded() -> &'static Catalogue {
        static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
        CATALOGUE.get_or_init(|| {
            // The unit tests load this exact text, so a failure here is a build defect.
            Catalogue::from_json(EMBEDDED_JSON).expect("the embedded catalogue.json is valid")
        })
    }

    /// Parses a catalogue in the generator's format and builds the route index.
    pub fn from_json(text: &str) -> Result<Catalogue, CatalogueError> {
        let raw: RawCatalogue = serde_json::from_str(text)?;
        let mut routes: Vec<(String, Node)> = Vec::new();
        let mut by_template: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, op) in raw.operations.iter().enumerate() {
            let method = op.method.to_ascii_uppercase();
            let position = match routes.iter().position(|(m, _)| *m == method) {
                Some(position) => position,
                None => {
                    routes.push((method, Node::default()));
                    routes.len() - 1
                }
            };
            let mut node = &mut routes[position].1;
            for segment in op.path.split('/') {
                node = if is_param_segment(segment) {
                    node.param.get_or_insert_with(Box::default)
                } else {
                    node.literal.entry(segment.to_owned()).or_default()
                };
            }
            // Two templates differing only in parameter names (`{id}` vs `{customerId}`)
            // land on the same node; they would be ambiguous, so refuse them.
            if node.op.replace(index).is_some() {
                return Err(CatalogueError::DuplicateRoute { method: op.method.clone(), path: op.path.clone() });
            }
            by_template.entry(op.path.clone()).or_default().push(index);
        }
        Ok(Catalogue {
            source: raw.source,
            modules: raw.modules,
            operations: raw.operations,
            schemas: raw.schemas,
            routes,
            by_template,
        })
    }

    /// The operation with exactly this method and path template
    /// (`"GET"`, `"crm/v2/tenant/{tenant}/customers/{id}"`). The method is case-insensitive.
    pub fn operation(&self, method: &str, template: &str) -> Option<&Operation> {
        let template = template.strip_prefix('/').unwrap_or(template);
        self.by_template
            .get(template)?
            .iter()
            .map(|&index| &self.operations[index])
            .find(|op| op.method.eq_ignore_ascii_case(method))
    }

    /// The operation a concrete request path routes to, e.g. `GET crm/v2/tenant/5/customers/7`
    /// → `crm/v2/tenant/{tenant}/customers/{id}`. A leading `/`, the query string and a
    /// trailing `/` are ignored. Where a literal segment and a `{param}` segment both match,
    /// the literal wins (`customers/custom-fields` is not customer "custom-fields").
    pub fn find(&self, method: &str, concrete_path: &str) -> Option<&Operation> {
        let end = concrete_path.find(['?', '#']).unwrap_or(concrete_path.len());
        let path = &concrete_path[..end];
        let path = path.strip_prefix('/').unwrap_or(path);
        // Servers commonly treat `customers/` like `customers`; follow suit.
        let path = path.strip_suffix('/').unwrap_or(path);
        if path.is_empty() {
            return None;
        }
        let (_, root) = self.routes.iter().find(|(m, _)| m.eq_ignore_ascii_case(method))?;
        root.lookup(path.split('/')).map(|index| &self.operations[index])
    }

    /// Module names (`accounting`, `crm`, ... `timesheets`), sorted.
    pub fn modules(&self) -> impl Iterator<Item = &str> {
        self.modules.keys().map(String::as_str)
    }

    /// The schema a `$ref` (`"crm:Crm.V2.Customers.CustomerResponse"`) points to.
    pub fn schema(&self, reference: &str) -> Option<&Value> {
        self.schemas.get(reference)
    }

    /// Follows `$ref`s (and one-element `oneOf` wrappers, the specs' way of attaching
    /// `nullable` to a reference) down to the schema that says what the value is.
    pub fn resolve<'a>(&'a self, mut schema: &'a Value) -> &'a Value {
        for _ in 0..MAX_EXAMPLE_DEPTH {
            if let Some(target) = schema.get("$ref").and_then(Value::as_str).and_then(|r| self.schemas.get(r)) {
                schema = target;
            } else if let Some([only]) = schema.get("oneOf").and_then(Value::as_array).map(Vec::as_slice) {
                schema = only;
            } else {
                break;
            }
        }
        schema
    }

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
    fn matches(&self, schema: &Value, value: &Value, path: &mut String, depth: usize) -> bool {
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

/// A template segment such as `{tenant}` stands for one concrete segment.
fn is_param_segment(segment: &str) -> bool {
    segment.len() > 2 && segment.starts_with('{') && segment.ends_with('}')
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

fn bounds(schema: &Map<String, Value>) -> (Option<f64>, Option<f64>) {
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
    use serde_json::json;

    fn cat() -> &'static Catalogue {
        Catalogue::embedded()
    }

    /// A tiny catalogue for routing cases the real specs do not happen to contain.
    fn tiny(paths: &[(&str, &str)]) -> Catalogue {
        let operations: Vec<Value> = paths
            .iter()
            .map(|(method, path)| {
                json!({"id": format!("{method} {path}"), "module": "m", "method": method,
                       "path": path, "params": [], "body": null, "responses": {}})
            })
            .collect();
        let text = json!({"source": {"repository": "r", "commit": "c"}, "modules": {"m": {"spec": "m.json"}},
                          "operations": operations, "schemas": {}})
        .to_string();
        Catalogue::from_json(&text).unwrap()
    }

    fn customer() -> (&'static Value, Value) {
        let schema = cat().schema("crm:Crm.V2.Customers.CustomerResponse").unwrap();
        (schema, cat().example(schema))
    }

    #[test]
    fn embedded_catalogue_has_every_module_and_operation() {
        let c = cat();
        assert_eq!(c.operations.len(), 563);
        assert_eq!(c.modules().count(), 24);
        for module in ["crm", "jpm", "equipmentsystems", "marketingads", "sales", "telecom"] {
            assert!(c.modules().any(|m| m == module), "{module} missing");
        }
        assert_eq!(c.source.commit, "0001e257eb9257866a0f845a82299edf8faa1eec");
        for op in &c.operations {
            assert!(c.modules.contains_key(&op.module), "{} has unknown module", op.id);
            assert!(op.path.starts_with(&format!("{}/", op.module)), "{}", op.path);
            assert!(c.operation(&op.method, &op.path).is_some_and(|o| o.id == op.id));
        }
    }

    #[test]
    fn every_reference_resolves() {
        fn walk(c: &Catalogue, value: &Value, missing: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(r)) = map.get("$ref") {
                        if !c.schemas.contains_key(r) {
                            missing.push(r.clone());
                        }
                    }
                    map.values().for_each(|v| walk(c, v, missing));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(c, v, missing)),
                _ => {}
            }
        }
        let c = cat();
        let mut missing = Vec::new();
        for op in &c.operations {
            op.body.iter().chain(op.responses.values()).for_each(|s| walk(c, s, &mut missing));
            op.params.iter().filter_map(|p| p.schema.as_ref()).for_each(|s| walk(c, s, &mut missing));
        }
        c.schemas.values().for_each(|s| walk(c, s, &mut missing));
        assert!(missing.is_empty(), "dangling refs: {missing:?}");
    }

    #[test]
    fn find_prefers_literal_segments_and_ignores_query() {
        let c = cat();
        let find = |m: &str, p: &str| c.find(m, p).map(|o| o.path.as_str());
        assert_eq!(
            find("GET", "crm/v2/tenant/5/customers/7?page=2&pageSize=50"),
            Some("crm/v2/tenant/{tenant}/customers/{id}")
        );
        assert_eq!(
            find("get", "/crm/v2/tenant/5/customers/custom-fields"),
            Some("crm/v2/tenant/{tenant}/customers/custom-fields")
        );
        assert_eq!(
            find("GET", "crm/v2/tenant/5/customers/contacts?modifiedOnOrAfter=2026-01-01"),
            Some("crm/v2/tenant/{tenant}/customers/contacts")
        );
        // A POST to the same literal path is not the GET.
        assert_eq!(find("POST", "crm/v2/tenant/5/customers/custom-fields"), None);
        assert_eq!(find("GET", "crm/v2/tenant/5/customers"), Some("crm/v2/tenant/{tenant}/customers"));
        assert_eq!(find("GET", "crm/v2/tenant/5/customers/"), Some("crm/v2/tenant/{tenant}/customers"));
        assert_eq!(find("GET", "crm/v2/tenant/5/export/customers"), Some("crm/v2/tenant/{tenant}/export/customers"));
        assert_eq!(find("GET", "telecom/v3/tenant/5/calls"), Some("telecom/v3/tenant/{tenant}/calls"));
        assert_eq!(find("GET", "crm/v2/tenant/5/nothing-here"), None);
        assert_eq!(find("GET", "crm/v2/tenant//customers"), None);
        assert_eq!(find("GET", ""), None);
        assert_eq!(find("BREW", "crm/v2/tenant/5/customers"), None);
    }

    #[test]
    fn find_ranks_by_leftmost_literal_and_backtracks() {
        let c = tiny(&[("GET", "a/{x}/c"), ("GET", "a/b/{y}"), ("GET", "p/q/r"), ("GET", "p/{x}/s")]);
        let find = |p: &str| c.find("GET", p).map(|o| o.path.as_str());
        assert_eq!(find("a/b/c"), Some("a/b/{y}"));
        assert_eq!(find("a/z/c"), Some("a/{x}/c"));
        // The literal `q` branch dead-ends at `s`; the parameter branch must still be tried.
        assert_eq!(find("p/q/s"), Some("p/{x}/s"));
        assert_eq!(find("p/q/r"), Some("p/q/r"));
        assert!(Catalogue::from_json(
            &json!({"source": {"repository": "r", "commit": "c"}, "modules": {}, "schemas": {},
                    "operations": [
                        {"id": "1", "module": "m", "method": "GET", "path": "a/{x}", "params": [], "body": null, "responses": {}},
                        {"id": "2", "module": "m", "method": "GET", "path": "a/{y}", "params": [], "body": null, "responses": {}}]})
            .to_string()
        )
        .is_err());
    }

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

    #[test]
    fn operation_helpers() {
        let c = cat();
        let export = c.operation("GET", "/crm/v2/tenant/{tenant}/export/customers").unwrap();
        assert!(export.is_export());
        assert!(export.param("from").is_some());
        let (code, schema) = export.success().unwrap();
        assert_eq!(code, "200");
        assert!(c.resolve(schema).get("properties").is_some_and(|p| p.get("continueFrom").is_some()));
        let tenant = export.param("tenant").unwrap();
        assert_eq!(
            (tenant.location.as_str(), tenant.r#type.as_deref(), tenant.required),
            ("path", Some("integer"), true)
        );
    }

    /// The committed catalogue.json must be what the generator makes of the pinned specs.
    #[test]
    fn committed_catalogue_is_up_to_date() {
        let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = manifest.join("../..");
        let specs = manifest.join("../../../shared/openapi");
        if !specs.is_dir() {
            println!("skipped: no specs at {} to regenerate from", specs.display());
            return;
        }
        let output = std::process::Command::new("python3")
            .arg("tools/gen_catalogue.py")
            .arg("--check")
            .current_dir(&root)
            .output();
        match output {
            Err(e) => println!("skipped: python3 could not be run: {e}"),
            Ok(out) => assert!(
                out.status.success(),
                "catalogue.json is stale: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
}
