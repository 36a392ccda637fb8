//! Every documented operation by name: `crm.customers.get_list` (`Customers_GetList`) with its
//! method, path template, parameters and result kind, from a table generated from the official
//! specs (`tools/gen_operations.py`).
//!
//! A call by name is checked against the table before anything is sent: an unknown parameter
//! (with a did-you-mean), a missing required one, a value of the wrong type or outside the
//! parameter's accepted values is a `configuration` error naming it. It then takes the request
//! path every other call takes (token, rate limit, retries), as a plain call, a page-based list
//! or an export feed.
//!
//! ```no_run
//! # async fn demo(tenant: servicetitan::Tenant) -> servicetitan::Result<()> {
//! use futures::TryStreamExt;
//! let page: serde_json::Value =
//!     tenant.operation("crm.customers.get_list").arg("pageSize", 5).arg("active", "Any").send().await?;
//! let customer: serde_json::Value = tenant.operation("crm.customers.get").arg("id", 42).send().await?;
//! let jobs: Vec<serde_json::Value> = tenant.operation("jpm.jobs.get_list").into_stream()?.try_collect().await?;
//! # Ok(()) }
//! ```

mod call;

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

use crate::error::{Error, Result};

pub use call::{Naming, OperationCall};

/// The generated table (see `tools/gen_operations.py`), parsed on first use.
const TABLE_JSON: &str = include_str!("table.json");

/// What a call of an operation gives back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// The decoded JSON answer.
    Plain,
    /// A page-based list (`page`, `pageSize`): one page, or every record through the paginator.
    List,
    /// An export feed (`from`, `continueFrom`): every record until caught up, with a checkpoint.
    Export,
    /// A file (a recording, an attachment): the answer's bytes.
    Binary,
    /// A file the API redirects to (an image, an asset): the URL of the redirect, which is
    /// not followed.
    Redirect,
}

/// Where a parameter goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// A `{name}` segment of the path.
    Path,
    /// The query string.
    Query,
}

/// The JSON type a parameter takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamType {
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// Text (dates and date-times too, in ISO 8601).
    String,
    /// `true` or `false`.
    Boolean,
    /// A list, sent as the parameter repeated.
    Array,
    /// A map, sent as `name[key]=value`.
    Object,
}

impl ParamType {
    fn as_str(self) -> &'static str {
        match self {
            ParamType::Integer => "an integer",
            ParamType::Number => "a number",
            ParamType::String => "a string",
            ParamType::Boolean => "a boolean",
            ParamType::Array => "a list",
            ParamType::Object => "an object",
        }
    }
}

/// One parameter of an operation (the `{tenant}` of every path is not one: the tenant fills it).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Param {
    /// The API's own name (`pageSize`), as Node and the Rust builders spell it.
    pub name: String,
    /// Path or query.
    pub location: Location,
    /// The JSON type.
    pub param_type: ParamType,
    /// Must be given.
    pub required: bool,
    /// The accepted values, if the API lists them (of each item, for lists).
    pub values: Option<Vec<Value>>,
    /// The type of a list's items.
    pub items: Option<ParamType>,
    /// `int64`, `date-time`, ... when the spec gives one.
    pub format: Option<String>,
    python: Option<String>,
    /// A path parameter whose value the query repeats under the same name.
    pub(crate) also_query: bool,
}

impl Param {
    /// The Python spelling: snake_case, a keyword with a trailing underscore (`from_`).
    pub fn python_name(&self) -> &str {
        self.python.as_deref().unwrap_or(&self.name)
    }

    /// The spelling of `naming`.
    pub fn name_in(&self, naming: Naming) -> &str {
        match naming {
            Naming::Api => &self.name,
            Naming::Python => self.python_name(),
        }
    }
}

/// One documented operation.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Operation {
    /// The spec's operationId (`Customers_GetList`; not unique: `Jobs_Get` is in jpm and forms).
    pub id: String,
    /// `["crm", "customers", "get_list"]`: module, resource and action as Python and Rust spell
    /// them (module and action only for the one operation without a resource).
    pub python: Vec<String>,
    /// `["crm", "customers", "getList"]`, as Node spells them.
    pub node: Vec<String>,
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: String,
    /// `crm/v2/tenant/{tenant}/customers/{id}`.
    pub path: String,
    /// What a call returns.
    pub kind: Kind,
    /// Takes a JSON body.
    pub body: bool,
    /// Its parameters, path ones in path order first as the spec lists them.
    pub params: Vec<Param>,
    /// The media type a file or redirect operation asks for (`application/octet-stream`, or
    /// `*/*` where the spec names none); JSON operations ask for `application/json`.
    pub accept: Option<String>,
}

impl Operation {
    /// `crm.customers.get_list`: the name Python and Rust use, unique.
    pub fn name(&self) -> String {
        self.python.join(".")
    }

    /// `crm.customers.getList`: the name Node uses.
    pub fn node_name(&self) -> String {
        self.node.join(".")
    }

    /// The parameter called `name` in `naming`'s spelling.
    pub fn param(&self, name: &str, naming: Naming) -> Option<&Param> {
        self.params.iter().find(|p| p.name_in(naming) == name)
    }

    /// The path parameters, in the order the path has them.
    pub fn path_params(&self) -> impl Iterator<Item = &Param> {
        let mut path: Vec<&Param> = self.params.iter().filter(|p| p.location == Location::Path).collect();
        path.sort_by_key(|p| self.path.find(&format!("{{{}}}", p.name)).unwrap_or(usize::MAX));
        path.into_iter()
    }
}

/// A module's names: its path segment (`equipmentsystems`), Python (`equipment_systems`) and
/// Node (`equipmentSystems`) spellings.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ModuleNames {
    /// The API's path segment.
    pub segment: String,
    /// The Python and Rust name (from the spec file's name).
    pub python: String,
    /// The Node name.
    pub node: String,
}

// Parsed by hand from a `serde_json::Value`: derived deserializers for these types would add more
// to the crate's build time than the rest of the module.
fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

fn texts(v: Option<&Value>) -> Option<Vec<String>> {
    v?.as_array()?.iter().map(text).collect()
}

fn param_type(v: Option<&Value>) -> Option<ParamType> {
    Some(match v?.as_str()? {
        "integer" => ParamType::Integer,
        "number" => ParamType::Number,
        "string" => ParamType::String,
        "boolean" => ParamType::Boolean,
        "array" => ParamType::Array,
        "object" => ParamType::Object,
        _ => return None,
    })
}

fn parse_param(v: &Value) -> Option<Param> {
    let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    Some(Param {
        name: text(v.get("name")?)?,
        location: match v.get("in")?.as_str()? {
            "path" => Location::Path,
            "query" => Location::Query,
            _ => return None,
        },
        param_type: param_type(v.get("type"))?,
        required: flag("required"),
        values: v.get("enum").and_then(Value::as_array).cloned(),
        items: param_type(v.get("items")),
        format: v.get("format").and_then(text),
        python: v.get("python").and_then(text),
        also_query: flag("also_query"),
    })
}

fn parse_operation(v: &Value) -> Option<Operation> {
    Some(Operation {
        id: text(v.get("id")?)?,
        python: texts(v.get("python"))?,
        node: texts(v.get("node"))?,
        method: text(v.get("method")?)?,
        path: text(v.get("path")?)?,
        kind: match v.get("kind")?.as_str()? {
            "plain" => Kind::Plain,
            "list" => Kind::List,
            "export" => Kind::Export,
            "binary" => Kind::Binary,
            "redirect" => Kind::Redirect,
            _ => return None,
        },
        body: v.get("body")?.as_bool()?,
        params: v.get("params")?.as_array()?.iter().map(parse_param).collect::<Option<_>>()?,
        accept: v.get("accept").and_then(text),
    })
}

fn parse_table(json: &str) -> Option<(Vec<ModuleNames>, Vec<Operation>)> {
    let v: Value = serde_json::from_str(json).ok()?;
    let modules = v
        .get("modules")?
        .as_array()?
        .iter()
        .map(|m| {
            let m = texts(Some(m))?;
            let [segment, python, node] = <[String; 3]>::try_from(m).ok()?;
            Some(ModuleNames { segment, python, node })
        })
        .collect::<Option<_>>()?;
    let operations = v.get("operations")?.as_array()?.iter().map(parse_operation).collect::<Option<_>>()?;
    Some((modules, operations))
}

struct Table {
    modules: Vec<ModuleNames>,
    operations: Vec<Operation>,
    /// Python name, Node name and unique operationId → index.
    by_name: HashMap<String, usize>,
    /// operationIds that several operations share → their indexes.
    ambiguous: HashMap<String, Vec<usize>>,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        // The table is generated and checked by the crate's tests: it always parses.
        let (modules, operations) = parse_table(TABLE_JSON).expect("the generated operations table parses");
        let mut by_name = HashMap::new();
        let mut ids: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, op) in operations.iter().enumerate() {
            by_name.insert(op.name(), i);
            by_name.insert(op.node_name(), i);
            ids.entry(op.id.clone()).or_default().push(i);
        }
        let mut ambiguous = HashMap::new();
        for (id, at) in ids {
            if at.len() == 1 {
                by_name.entry(id).or_insert(at[0]);
            } else {
                ambiguous.insert(id, at);
            }
        }
        Table { modules, operations, by_name, ambiguous }
    })
}

/// Every operation, sorted by Python name.
pub fn operations() -> &'static [Operation] {
    &table().operations
}

/// The modules, sorted by Python name.
pub fn modules() -> &'static [ModuleNames] {
    &table().modules
}

/// The operation called `name`: its Python name (`crm.customers.get_list`), its Node name
/// (`crm.customers.getList`) or its operationId where that is unique (`Customers_GetList`).
///
/// An unknown name is a `configuration` error with the closest names.
pub fn find(name: &str) -> Result<&'static Operation> {
    let t = table();
    if let Some(&i) = t.by_name.get(name) {
        return Ok(&t.operations[i]);
    }
    if let Some(at) = t.ambiguous.get(name) {
        let names: Vec<String> = at.iter().map(|&i| t.operations[i].name()).collect();
        return Err(Error::configuration(
            "operation",
            format!("{name:?} is the operationId of several operations; name one: {}", names.join(", ")),
        ));
    }
    let candidates = t.by_name.keys().map(String::as_str);
    let hint = match did_you_mean(name, candidates) {
        Some(best) => format!("; did you mean {best}?"),
        None => String::new(),
    };
    Err(Error::configuration(
        "operation",
        format!("no operation is called {name:?}{hint} (names look like crm.customers.get_list)"),
    ))
}

/// The candidate closest to `wanted`, if one is close enough to be a likely typo. Case, `_`,
/// `-` and `.` count for nothing, so `pageSize` finds `page_size`. Every did-you-mean hint of
/// the client and the command comes from here.
pub fn did_you_mean<'a>(wanted: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let fold = |s: &str| -> Vec<char> {
        s.chars().filter(|c| !matches!(c, '_' | '-')).flat_map(char::to_lowercase).collect::<Vec<_>>()
    };
    let wanted_folded = fold(wanted);
    let wanted_chars: Vec<char> = wanted.chars().collect();
    let limit = (wanted_folded.len() / 3).max(2);
    // Closest once folded; among equals, the one spelled most like the input (so a snake_case
    // input gets a snake_case name), then the first in order.
    let mut best: Option<((usize, usize, &str), &str)> = None;
    for candidate in candidates {
        let d = distance(&wanted_folded, &fold(candidate));
        if d > limit {
            continue;
        }
        let key = (d, distance(&wanted_chars, &candidate.chars().collect::<Vec<_>>()), candidate);
        if best.is_none_or(|(b, _)| key < b) {
            best = Some((key, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// Levenshtein distance.
fn distance(a: &[char], b: &[char]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_every_operation_once() {
        let ops = operations();
        assert_eq!(ops.len(), 563);
        let mut names: Vec<String> = ops.iter().map(Operation::name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 563);
        assert_eq!(modules().len(), 24);
        assert_eq!(find("Customers_GetList").unwrap().name(), "crm.customers.get_list");
        assert_eq!(find("crm.customers.getList").unwrap().id, "Customers_GetList");
        assert_eq!(find("marketing_reputation.reviews").unwrap().id, "reviews");
        assert_eq!(find("marketingReputation.reviews").unwrap().node, ["marketingReputation", "reviews"]);
        assert_eq!(find("crm.export_customers.get_customers").unwrap().kind, Kind::Export);
        let recording = find("telecom.calls.get_recording").unwrap();
        assert_eq!((recording.kind, recording.accept.as_deref()), (Kind::Binary, Some("application/octet-stream")));
        let attachment = find("forms.jobs.get").unwrap();
        assert_eq!((attachment.kind, attachment.accept.as_deref()), (Kind::Binary, Some("*/*")));
        for name in
            ["pricebook.images.get", "findings.finding_assets.get", "equipment_systems.installed_equipment.get2"]
        {
            assert_eq!(find(name).unwrap().kind, Kind::Redirect, "{name}");
        }
        assert_eq!(find("crm.customers.get").unwrap().accept, None);
        assert_eq!(find("crm.customers.get_list").unwrap().kind, Kind::List);
    }

    #[test]
    fn unknown_and_ambiguous_names_are_configuration_errors() {
        let e = find("crm.customer.get_list").unwrap_err();
        assert_eq!(e.argument(), Some("operation"));
        assert!(e.to_string().contains("did you mean crm.customers.get_list?"), "{e}");
        let e = find("Jobs_Get").unwrap_err();
        assert!(e.to_string().contains("jpm.jobs.get") && e.to_string().contains("forms.jobs.get"), "{e}");
        assert!(!find("nothing.like.this.at_all").unwrap_err().to_string().contains("did you mean"));
    }

    #[test]
    fn did_you_mean_ignores_case_and_separators() {
        let names = ["page_size", "page", "include_total", "active"];
        assert_eq!(did_you_mean("pageSize", names.iter().copied()), Some("page_size"));
        assert_eq!(did_you_mean("activ", names.iter().copied()), Some("active"));
        assert_eq!(did_you_mean("zzzzzz", names.iter().copied()), None);
    }

    #[test]
    fn path_params_come_in_path_order() {
        let op = find("crm.contacts.create_contact_relationship").unwrap();
        let order: Vec<&str> = op.path_params().map(|p| p.name.as_str()).collect();
        assert_eq!(order, ["contactId", "relatedEntityId", "typeSlug"]);
    }

    /// The committed generated files must be what the generator makes of the catalogue, and the
    /// catalogue must come from the specs hashed in tools/openapi.sha256 (checked against the
    /// specs themselves when `ST_OPENAPI_DIR` gives them). What could not be re-checked is said
    /// on stderr, past the test harness's capture.
    #[test]
    fn generated_files_are_up_to_date() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut stderr = std::io::stderr();
        let out = match std::process::Command::new("python3")
            .arg("tools/gen_operations.py")
            .arg("--check")
            .current_dir(&root)
            .output()
        {
            Ok(out) => out,
            Err(e) => {
                let line =
                    format!("not re-checked: tools/gen_operations.py --check, because python3 could not be run: {e}\n");
                std::io::Write::write_all(&mut stderr, line.as_bytes()).unwrap();
                return;
            }
        };
        assert!(
            out.status.success(),
            "the generated operation files are stale: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::io::Write::write_all(&mut stderr, &out.stderr).unwrap();
    }
}
