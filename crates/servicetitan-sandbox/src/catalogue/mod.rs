//! The operation catalogue: every documented ServiceTitan operation and the schemas of its
//! requests and responses, derived from the official OpenAPI specs by
//! `tools/gen_catalogue.py` and embedded in the binary (`catalogue.json`).
//!
//! The sandbox uses it to route requests (`find`, in `routing`), to check what it receives
//! and what it answers against the documented shapes (`validate`, in `validation`), and to
//! fabricate minimal but valid records (`example`, in `examples`). The schemas are OpenAPI
//! 3.0 schema objects stripped to their validation keywords; a `$ref` is written
//! `"{module}:{Name}"` and resolved through [`Catalogue::schemas`], because component names
//! repeat across modules (every module has its own `ApiErrorResponse`).

mod examples;
mod generate;
mod routing;
mod validation;

pub use generate::{FieldKind, Shape};

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use routing::{is_param_segment, Node};

/// The generated catalogue, compiled in so that the sandbox needs no files at run time.
const EMBEDDED_JSON: &str = include_str!("../../catalogue.json");

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
    /// The media type of a success answer that is not JSON, where the spec names one
    /// (`application/octet-stream` for recordings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub produces: Option<String>,
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

    /// The index in [`operations`](Self::operations) of the operation with exactly this method
    /// and path template.
    pub fn operation_index(&self, method: &str, template: &str) -> Option<usize> {
        let template = template.strip_prefix('/').unwrap_or(template);
        self.by_template
            .get(template)?
            .iter()
            .copied()
            .find(|&index| self.operations[index].method.eq_ignore_ascii_case(method))
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(super) fn cat() -> &'static Catalogue {
        Catalogue::embedded()
    }

    /// A tiny catalogue for routing cases the real specs do not happen to contain.
    pub(super) fn tiny(paths: &[(&str, &str)]) -> Catalogue {
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

    pub(super) fn customer() -> (&'static Value, Value) {
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

    /// The committed catalogue.json must record the specs hashed in tools/openapi.sha256 and,
    /// when the specs are at hand (`ST_OPENAPI_DIR`), be what the generator makes of them. What
    /// could not be re-checked is said on stderr, past the test harness's capture.
    #[test]
    fn committed_catalogue_is_up_to_date() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut stderr = std::io::stderr();
        let out = match std::process::Command::new("python3")
            .arg("tools/gen_catalogue.py")
            .arg("--check")
            .current_dir(&root)
            .output()
        {
            Ok(out) => out,
            Err(e) => {
                let line =
                    format!("not re-checked: tools/gen_catalogue.py --check, because python3 could not be run: {e}\n");
                std::io::Write::write_all(&mut stderr, line.as_bytes()).unwrap();
                return;
            }
        };
        assert!(
            out.status.success(),
            "catalogue.json is stale: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::io::Write::write_all(&mut stderr, &out.stderr).unwrap();
    }
}
