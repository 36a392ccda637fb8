//! Every answer of every operation the sandbox serves has the shape of the official spec:
//! each response body is validated against the catalogue's schema for its operation and status.
//! The hand-written routes are checked in detail first, then every operation of the catalogue.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use common::Harness;
use reqwest::Method;
use serde_json::{json, Value};
use servicetitan_sandbox::catalogue::{Catalogue, Operation};
use servicetitan_sandbox::{implemented_operations, LimitConfig, SandboxConfig};

async fn checked(h: &Harness, token: &str, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
    let catalogue = Catalogue::embedded();
    let response = h.call(method.clone(), path, token, body).await;
    let status = response.status().as_u16();
    let value: Value = response.json().await.expect("a JSON body");
    let op = catalogue.find(method.as_str(), path).unwrap_or_else(|| panic!("{method} {path} is in the catalogue"));
    let schema = op
        .responses
        .get(&status.to_string())
        .unwrap_or_else(|| panic!("{method} {path} answered {status}, which its spec does not document: {value}"));
    if let Err(violations) = catalogue.validate(schema, &value) {
        panic!("{method} {path} ({status}) breaks its schema:\n{}", violations.join("\n"));
    }
    (status, value)
}

#[tokio::test]
async fn every_implemented_operation_answers_in_its_spec_shape() {
    let cfg = SandboxConfig {
        records: 30,
        rate_limit: LimitConfig::disabled(),
        report_limit: LimitConfig::disabled(),
        ..SandboxConfig::default()
    };
    let h = Harness::start(cfg).await;
    let token = h.token(1001).await;
    let concrete = |template: &str| template.replace("{tenant}", "1001");

    let operations = implemented_operations();
    assert!(operations.len() >= 20, "{operations:?}");
    let mut checked_ops = 0;
    for (method, template) in &operations {
        let method: Method = method.parse().unwrap();
        let path = concrete(template);
        match (method.as_str(), template.as_str()) {
            ("GET", t) if t.ends_with("/{id}") => {
                let list = concrete(t.trim_end_matches("/{id}"));
                let (_, page) = checked(&h, &token, Method::GET, &format!("{list}?active=Any&pageSize=30"), None).await;
                for record in page["data"].as_array().unwrap() {
                    checked(&h, &token, Method::GET, &format!("{list}/{}", record["id"]), None).await;
                }
                let (status, _) = checked(&h, &token, Method::GET, &format!("{list}/1"), None).await;
                assert_eq!(status, 404);
            }
            ("GET", t) if t.contains("/export/") => {
                let (status, body) = checked(&h, &token, Method::GET, &path, None).await;
                assert_eq!(status, 200);
                assert_eq!(body["data"].as_array().unwrap().len(), 30);
                let (status, _) = checked(&h, &token, Method::GET, &format!("{path}?from=nonsense"), None).await;
                assert_eq!(status, 400);
            }
            ("GET", t) if t.ends_with("/reports/{reportId}") => {
                let path = path.replace("{report_category}", "operations").replace("{reportId}", "175");
                assert_eq!(checked(&h, &token, Method::GET, &path, None).await.0, 200);
                assert_eq!(checked(&h, &token, Method::GET, &path.replace("175", "999"), None).await.0, 404);
            }
            ("GET", t) if t.ends_with("/reports") => {
                let path = path.replace("{report_category}", "accounting");
                assert_eq!(checked(&h, &token, Method::GET, &format!("{path}?includeTotal=true"), None).await.0, 200);
            }
            ("GET", _) => {
                let (status, body) =
                    checked(&h, &token, Method::GET, &format!("{path}?active=Any&includeTotal=true"), None).await;
                assert_eq!(status, 200);
                assert!(!body["data"].as_array().unwrap().is_empty(), "{path}");
                assert_eq!(checked(&h, &token, Method::GET, &format!("{path}?pageSize=9999"), None).await.0, 400);
            }
            ("POST", t) if t.ends_with("/data") => {
                let path = path.replace("{report_category}", "operations").replace("{reportId}", "175");
                let params = json!({"parameters": [{"name": "From", "value": "2026-01-01"}, {"name": "To", "value": "2026-02-01"}]});
                let (status, body) =
                    checked(&h, &token, Method::POST, &format!("{path}?includeTotal=true"), Some(&params)).await;
                assert_eq!(status, 200);
                assert!(!body["data"].as_array().unwrap().is_empty());
                assert_eq!(checked(&h, &token, Method::POST, &path, Some(&json!({"parameters": []}))).await.0, 400);
            }
            ("POST", _) => {
                let address =
                    json!({"street": "1 Main St", "city": "Austin", "state": "TX", "zip": "78701", "country": "USA"});
                let customer = json!({"name": "Grace Hopper", "address": address, "locations": [{"name": "Home", "address": address}]});
                assert_eq!(checked(&h, &token, Method::POST, &path, Some(&customer)).await.0, 200);
                assert_eq!(checked(&h, &token, Method::POST, &path, Some(&json!({"name": []}))).await.0, 400);
            }
            ("PATCH", t) => {
                let list = concrete(t.trim_end_matches("/{id}"));
                let (_, page) = checked(&h, &token, Method::GET, &format!("{list}?pageSize=1"), None).await;
                let id = &page["data"][0]["id"];
                let (status, body) =
                    checked(&h, &token, Method::PATCH, &format!("{list}/{id}"), Some(&json!({"doNotMail": true})))
                        .await;
                assert_eq!((status, &body["doNotMail"]), (200, &json!(true)));
                assert_eq!(
                    checked(&h, &token, Method::PATCH, &format!("{list}/{id}"), Some(&json!({"nope": 1}))).await.0,
                    400
                );
                assert_eq!(
                    checked(&h, &token, Method::PATCH, &format!("{list}/5"), Some(&json!({"doNotMail": true}))).await.0,
                    404
                );
            }
            other => panic!("no check written for {other:?}"),
        }
        checked_ops += 1;
    }
    assert_eq!(checked_ops, operations.len());
}

/// What the walk below saw, for its summary line.
#[derive(Default)]
struct Tally {
    reachable: usize,
    /// JSON answers checked against the documented schema of their status.
    valid: usize,
    /// Documented without a body (204, or 200 with no content): checked to be empty.
    empty: usize,
    binary: usize,
    redirects: usize,
    /// The spec documents no success answer at all; the sandbox answers a minimal document.
    undocumented: usize,
    refused_bodies: usize,
    refused_paths: usize,
    missing_ids: usize,
    by_method: BTreeMap<String, (usize, usize)>,
}

/// A value of a parameter's documented type, for filling required parameters.
fn sample(catalogue: &Catalogue, schema: Option<&Value>, name: &str) -> String {
    let Some(schema) = schema.map(|s| catalogue.resolve(s)) else {
        return "1".into();
    };
    if let Some(first) = schema.get("enum").and_then(|e| e.get(0)) {
        return first.as_str().map_or_else(|| first.to_string(), str::to_owned);
    }
    match (schema.get("type").and_then(Value::as_str), schema.get("format").and_then(Value::as_str)) {
        (Some("integer"), _) if name == "pageSize" => "3".into(),
        (Some("integer" | "number"), _) => "1".into(),
        (Some("boolean"), _) => "true".into(),
        (Some("string"), Some("date-time" | "date")) => "2024-01-01".into(),
        (Some("string"), Some("guid" | "uuid")) => GUID_1.into(),
        (Some("array"), _) => sample(catalogue, schema.get("items"), ""),
        // Numeric text: one spec types a parameter as a string that its siblings type as an integer.
        _ => "1".into(),
    }
}

const GUID_1: &str = "00000000-0000-4000-8000-000000000001";

fn is_list(op: &Operation) -> bool {
    op.method == "GET" && op.param("page").is_some() && op.param("pageSize").is_some()
}

/// The records of a list answer (an envelope's `data`, or a bare array).
fn records(answer: &Value) -> &[Value] {
    answer.get("data").unwrap_or(answer).as_array().map_or(&[], Vec::as_slice)
}

fn id_text(id: &Value) -> Option<String> {
    match id {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

struct Walk<'a> {
    h: &'a Harness,
    token: String,
    catalogue: &'static Catalogue,
    /// Concrete list path → its first record (the record whose id fills `{id}` below it).
    first: HashMap<String, Option<Value>>,
}

impl Walk<'_> {
    async fn send(&self, method: &Method, path: &str, body: Option<&Value>) -> (u16, reqwest::Response) {
        let response = self.h.call(method.clone(), path, &self.token, body).await;
        (response.status().as_u16(), response)
    }

    /// Required query parameters of `op`, filled with values of their types.
    fn query(&self, op: &Operation) -> String {
        let mut pairs: Vec<String> = op
            .params
            .iter()
            .filter(|p| p.location == "query" && p.required)
            .map(|p| format!("{}={}", p.name, sample(self.catalogue, p.schema.as_ref(), &p.name)))
            .collect();
        if is_list(op) && op.param("pageSize").is_some_and(|p| !p.required) {
            pairs.push("pageSize=3".into());
        }
        if op.param("includeTotal").is_some() {
            pairs.push("includeTotal=true".into());
        }
        if pairs.is_empty() {
            String::new()
        } else {
            format!("?{}", pairs.join("&"))
        }
    }

    /// The concrete path of `op`: `{tenant}` is 1001; a parameter right after a list's path
    /// takes the id of that list's first record; other parameters take a value of their type.
    async fn path(&mut self, op: &Operation) -> String {
        let mut concrete: Vec<String> = Vec::new();
        let segments: Vec<&str> = op.path.split('/').collect();
        for (i, segment) in segments.iter().enumerate() {
            let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
                concrete.push((*segment).to_owned());
                continue;
            };
            let value = match name {
                "tenant" => "1001".to_owned(),
                "report_category" => "operations".to_owned(),
                "reportId" => "175".to_owned(),
                "dynamicSetId" => "business-units".to_owned(),
                _ => match self.catalogue.operation("GET", &segments[..i].join("/")).filter(|l| is_list(l)) {
                    Some(list) => {
                        let list_path = concrete.join("/");
                        let first = self.first_record(list, &list_path).await;
                        // The id sits in the field named like the parameter, or in `id`.
                        let id = first.as_ref().and_then(|r| r.get(name).or_else(|| r.get("id")));
                        id.and_then(id_text).unwrap_or_else(|| "1".into())
                    }
                    None => match op.param(name).and_then(|p| p.schema.as_ref()) {
                        Some(schema) => sample(self.catalogue, Some(schema), name),
                        None => "1".into(),
                    },
                },
            };
            concrete.push(value);
        }
        concrete.join("/")
    }

    async fn first_record(&mut self, list: &Operation, path: &str) -> Option<Value> {
        if let Some(known) = self.first.get(path) {
            return known.clone();
        }
        let query = self.query(list);
        let (status, response) = self.send(&Method::GET, &format!("{path}{query}"), None).await;
        assert_eq!(status, 200, "GET {path}{query}");
        let answer: Value = response.json().await.unwrap();
        let first = records(&answer).first().cloned();
        self.first.insert(path.to_owned(), first.clone());
        first
    }
}

/// Checks an answer against the documented schema of its status; returns the JSON value.
fn check_json(catalogue: &Catalogue, op: &Operation, status: u16, bytes: &[u8]) -> Value {
    let value: Value =
        serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{} {} ({status}): not JSON: {e}", op.method, op.path));
    let schema = op.responses.get(&status.to_string()).unwrap_or_else(|| {
        panic!("{} {} answered {status}, which its spec does not document: {value}", op.method, op.path)
    });
    if let Err(violations) = catalogue.validate(schema, &value) {
        panic!("{} {} ({status}) breaks its schema:\n{}", op.method, op.path, violations.join("\n"));
    }
    value
}

/// Calls every operation of the catalogue once with valid input, checks the answer against the
/// operation's documented response, and, where the operation takes input, that invalid input
/// gets the documented 400: a body of the wrong type, malformed JSON, a path value that is not
/// of the parameter's type, an id the list does not have.
#[tokio::test]
async fn every_operation_of_the_catalogue_answers_in_its_spec_shape() {
    let started = Instant::now();
    let cfg = SandboxConfig {
        records: 30,
        export_page_size: 12,
        rate_limit: LimitConfig::disabled(),
        report_limit: LimitConfig::disabled(),
        ..SandboxConfig::default()
    };
    let h = Harness::start(cfg).await;
    let catalogue = Catalogue::embedded();
    let mut walk = Walk { h: &h, token: h.token(1001).await, catalogue, first: HashMap::new() };
    let mut tally = Tally::default();

    for op in &catalogue.operations {
        let method: Method = op.method.parse().unwrap();
        let path = walk.path(op).await;
        let url = format!("{path}{}", walk.query(op));
        let reporting_data = op.path.ends_with("/data");
        let body = match &op.body {
            _ if reporting_data => Some(json!({"parameters": [
                {"name": "From", "value": "2026-01-01"}, {"name": "To", "value": "2026-02-01"}]})),
            Some(schema) => Some(catalogue.shape(schema).render(url.len() as u64)),
            None => None,
        };
        let (status, response) = walk.send(&method, &url, body.as_ref()).await;
        let content_type =
            response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let location = response.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
        let bytes = response.bytes().await.unwrap();
        let what = format!("{} {url}", op.method);
        let success = op.success();
        match success {
            _ if op.method == "GET" && op.responses.contains_key("302") => {
                assert_eq!(status, 302, "{what}");
                let file = h.http.get(h.url(&location.unwrap())).send().await.unwrap();
                assert_eq!(file.status(), 200, "{what}");
                assert!(!file.bytes().await.unwrap().is_empty(), "{what}");
                tally.redirects += 1;
            }
            Some((code, schema)) => {
                let text = String::from_utf8_lossy(&bytes[..bytes.len().min(400)]).into_owned();
                assert_eq!(status.to_string(), code, "{what}: {text}");
                if !schema.is_null() {
                    let value = check_json(catalogue, op, status, &bytes);
                    tally.valid += 1;
                    if is_list(op) {
                        let n = records(&value).len();
                        assert!(n <= 3, "{what}: {n} records on a page of 3");
                        if let Some(total) = value.get("totalCount").and_then(Value::as_u64) {
                            assert_eq!(value["hasMore"], json!(total > 3), "{what}");
                            assert_eq!(n as u64, total.min(3), "{what}");
                        }
                    }
                } else if op.method == "GET" {
                    assert_eq!(content_type, "application/octet-stream", "{what}");
                    assert!(bytes.len() > 100, "{what}");
                    tally.binary += 1;
                } else {
                    assert!(bytes.is_empty(), "{what}: {bytes:?}");
                    tally.empty += 1;
                }
            }
            None => {
                assert_eq!(status, 200, "{what}");
                let value: Value = serde_json::from_slice(&bytes).unwrap();
                let record = if op.is_export() || is_list(op) { records(&value).first().unwrap() } else { &value };
                assert!(record["id"].is_i64(), "{what}: {value}");
                tally.undocumented += 1;
            }
        }
        tally.reachable += 1;
        let counts = tally.by_method.entry(op.method.clone()).or_default();
        counts.0 += 1;
        counts.1 += usize::from(success.is_some_and(|(_, s)| !s.is_null()));

        // Exports: the continuation tokens lead through every record exactly once.
        if op.is_export() && success.is_some() && !reporting_data {
            let mut from = String::new();
            let (mut pages, mut seen) = (0, HashSet::new());
            loop {
                let (status, response) = walk.send(&Method::GET, &format!("{path}{from}"), None).await;
                assert_eq!(status, 200, "{what} {from}");
                let page = check_json(catalogue, op, status, &response.bytes().await.unwrap());
                for record in records(&page) {
                    seen.insert(record.get("id").map(Value::to_string).unwrap_or_else(|| record.to_string()));
                }
                pages += 1;
                if page["hasMore"] != json!(true) {
                    break;
                }
                from = format!("?from={}", page["continueFrom"].as_str().unwrap());
            }
            assert!(pages >= 3 && seen.len() >= 30, "{what}: {pages} pages, {} records", seen.len());
            let (status, _) = walk.send(&Method::GET, &format!("{path}?from=not-a-token"), None).await;
            assert_eq!(status, 400, "{what}");
        }

        // By id: the record the list shows under an id, and 404 for an id the list lacks.
        let segments: Vec<&str> = op.path.split('/').collect();
        let (last, parent) = (segments[segments.len() - 1], segments[..segments.len() - 1].join("/"));
        let owning_list = catalogue.operation("GET", &parent).filter(|l| is_list(l));
        let by_id = op.method == "GET" && last.starts_with('{') && owning_list.is_some() && success.is_some();
        // Reports are named by category and id, tested on their own above.
        if by_id && op.module != "reporting" {
            let list_path = path.rsplit_once('/').unwrap().0;
            let listed = walk
                .first
                .get(list_path)
                .cloned()
                .flatten()
                .unwrap_or_else(|| panic!("{what}: the list has no records"));
            let answer: Value = serde_json::from_slice(&bytes).unwrap();
            for (key, value) in listed.as_object().unwrap() {
                if !value.is_object() && !value.is_array() && answer.get(key).is_some_and(|a| !a.is_object()) {
                    assert_eq!(&answer[key], value, "{what}: {key} differs from the list's record");
                }
            }
            let unknown = if listed["id"].is_string() && listed["id"].as_str().unwrap().contains('-') {
                "00000000-0000-4000-8000-0000000f423f"
            } else {
                "999999"
            };
            let (status, response) = walk.send(&Method::GET, &format!("{list_path}/{unknown}"), None).await;
            assert_eq!(status, 404, "{what} with id {unknown}");
            assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/problem+json"));
            tally.missing_ids += 1;
        }

        // Bodies: the wrong JSON type and malformed JSON are 400 problems with field errors.
        if let Some(schema) = op.body.as_ref().filter(|_| op.method != "GET") {
            let wrong = if catalogue.resolve(schema)["type"] == "array" { json!({"x": 1}) } else { json!([[]]) };
            let (status, response) = walk.send(&method, &url, Some(&wrong)).await;
            assert_eq!(status, 400, "{what} with body {wrong}");
            let problem = if op.responses.contains_key("400") {
                check_json(catalogue, op, 400, &response.bytes().await.unwrap())
            } else {
                response.json().await.unwrap()
            };
            // Three operations document their 400 as a string (checked above), the rest as problems.
            if !problem.is_string() {
                assert!(problem["errors"].as_object().is_some_and(|e| !e.is_empty()), "{what}: {problem}");
            }
            let malformed = h.call_raw(method.clone(), &url, &walk.token, "{\"name\": ").await;
            assert_eq!(malformed.status(), 400, "{what} with malformed JSON");
            tally.refused_bodies += 1;
        }

        // Path values that cannot be bound to the parameter's type are 400s naming it.
        let integer = op.params.iter().find(|p| {
            p.location == "path"
                && p.name != "tenant"
                && p.r#type.as_deref() == Some("integer")
                && op.module != "reporting"
        });
        if let Some(param) = integer {
            let position = segments.iter().position(|s| *s == format!("{{{}}}", param.name)).unwrap();
            let mut bad: Vec<&str> = path.split('/').collect();
            bad[position] = "abc";
            let bad = format!("{}{}", bad.join("/"), walk.query(op));
            let (status, response) = walk.send(&method, &bad, body.as_ref()).await;
            assert_eq!(status, 400, "{} {bad}", op.method);
            let problem: Value = response.json().await.unwrap();
            let named = match problem.as_str() {
                Some(text) => text.contains(&format!("{}: ", param.name)),
                None => problem["errors"][&param.name].is_array(),
            };
            assert!(named, "{} {bad}: {problem}", op.method);
            tally.refused_paths += 1;
        }
    }

    let elapsed = started.elapsed();
    let by_method: Vec<String> =
        tally.by_method.iter().map(|(m, (n, valid))| format!("{m} {n} ({valid} with a JSON schema)")).collect();
    println!(
        "{}/{} operations reachable, {} answers valid against their JSON schema, {} empty as documented, \
         {} binary, {} redirects, {} with no documented success answer; {} bodies, {} path values and {} \
         unknown ids refused; by method: {}; {:.1} s",
        tally.reachable,
        catalogue.operations.len(),
        tally.valid,
        tally.empty,
        tally.binary,
        tally.redirects,
        tally.undocumented,
        tally.refused_bodies,
        tally.refused_paths,
        tally.missing_ids,
        by_method.join(", "),
        elapsed.as_secs_f64()
    );
    assert_eq!(tally.reachable, catalogue.operations.len());
    assert_eq!(tally.reachable, tally.valid + tally.empty + tally.binary + tally.redirects + tally.undocumented);
    assert!(tally.valid > 470, "{}", tally.valid);
}
