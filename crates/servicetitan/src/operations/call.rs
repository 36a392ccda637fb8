//! A call of an operation by name: arguments checked against the table, then sent through the
//! request path as a plain call, a list or an export feed.

use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::{did_you_mean, find, Kind, Location, Operation, Param, ParamType};
use crate::error::{Error, Result};
use crate::paging::{Export, Paginate, RawRecord, RecordStream};
use crate::request::{RequestBuilder, Wanted};
use crate::route::encode_segment;
use crate::tenant::Tenant;

/// How argument names are spelled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Naming {
    /// The API's own names (`pageSize`): Rust and Node.
    #[default]
    Api,
    /// snake_case, keywords with a trailing underscore (`page_size`, `from_`): Python.
    Python,
}

/// The argument of an export that says where to start: a saved `continueFrom` or a date.
const SINCE: &str = "since";

/// A call of one operation, built up before it is sent; made by [`Tenant::operation`].
///
/// Nothing is checked until it is sent (or streamed): then an unknown operation or parameter,
/// a missing required parameter, a value of the wrong type or not among the accepted ones is a
/// `configuration` error naming it, and no request goes out.
#[must_use = "a call does nothing until it is sent"]
pub struct OperationCall {
    tenant: Tenant,
    operation: Result<&'static Operation>,
    /// The name it was called by, which messages use (each language its own spelling).
    called: String,
    naming: Naming,
    args: Vec<(String, Value)>,
    body: Option<Value>,
    body_error: Option<String>,
    timeout: Option<Duration>,
}

/// A checked call: where it goes and what it carries.
struct Checked {
    op: &'static Operation,
    path: String,
    query: Vec<(String, String)>,
    /// The list's first page and page size, the export's start.
    page: Option<u32>,
    page_size: Option<u32>,
    since: Option<String>,
}

impl Tenant {
    /// A call of the operation called `name` (`crm.customers.get_list`, `crm.customers.getList`
    /// or a unique operationId): see [`crate::operations`].
    pub fn operation(&self, name: &str) -> OperationCall {
        OperationCall {
            tenant: self.clone(),
            operation: find(name),
            called: name.to_owned(),
            naming: Naming::Api,
            args: Vec::new(),
            body: None,
            body_error: None,
            timeout: None,
        }
    }
}

impl OperationCall {
    /// The operation, or why the name is unknown.
    pub fn operation(&self) -> Result<&'static Operation> {
        self.operation.clone()
    }

    /// How the argument names are spelled (default: the API's own).
    pub fn naming(mut self, naming: Naming) -> Self {
        self.naming = naming;
        self
    }

    /// Sets a parameter (a path or a query one). `null` leaves it out. For an export, `since`
    /// is the start (a saved `continueFrom` or a date), as `from` is.
    pub fn arg(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        let name = name.into();
        self.args.retain(|(k, _)| *k != name);
        self.args.push((name, value.into()));
        self
    }

    /// Sets several parameters.
    pub fn args<I, K, V>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<Value>,
    {
        for (k, v) in args {
            self = self.arg(k, v);
        }
        self
    }

    /// The JSON body.
    pub fn body<B: Serialize + ?Sized>(mut self, body: &B) -> Self {
        match serde_json::to_value(body) {
            Ok(v) => self.body = Some(v),
            Err(e) => self.body_error = Some(e.to_string()),
        }
        self
    }

    /// The JSON body as a value (for bindings); `None` sends none.
    pub fn json_value(mut self, body: Option<Value>) -> Self {
        self.body = body;
        self
    }

    /// The total deadline of the call (of each page, for lists and exports), instead of the client's.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Checks the call and makes the request for it (one page, for lists and exports).
    pub fn request(self) -> Result<RequestBuilder> {
        let checked = self.check()?;
        let accept = checked.op.accept.as_deref().unwrap_or("*/*");
        let wanted = match checked.op.kind {
            Kind::Binary => Wanted::File(accept),
            Kind::Redirect => Wanted::Location(accept),
            _ => Wanted::Json,
        };
        let mut request = self
            .tenant
            .request(checked.op.method.parse().unwrap_or(reqwest::Method::GET), checked.path)
            .query_pairs(checked.query)
            .wanted(wanted);
        if let Some(body) = self.body {
            request = request.json_value(Some(body));
        }
        if let Some(t) = self.timeout {
            request = request.timeout(t);
        }
        Ok(request)
    }

    /// Sends the call and decodes the answer (one page, for lists and exports).
    pub async fn send<T: DeserializeOwned>(self) -> Result<T> {
        self.request()?.send().await
    }

    /// Sends the call and returns the answer as JSON.
    #[inline]
    pub async fn send_json(self) -> Result<Value> {
        self.request()?.send_json().await
    }

    /// Sends the call and returns the answer's bytes (a file, or JSON for a binding to decode;
    /// for an operation whose answer is a redirect, the target URL's bytes).
    #[inline]
    pub async fn send_bytes(self) -> Result<Bytes> {
        self.request()?.send_bytes().await
    }

    /// Sends a call of an operation whose documented answer is a redirect to a file (a
    /// pricebook image, a finding's asset) and returns the absolute URL it points to. The
    /// redirect is not followed: fetch the URL with the HTTP client of your choice (it
    /// usually needs no ServiceTitan credentials, and may carry a signature in its query, so
    /// treat it as you would a secret). A 2xx answer instead of the redirect is a `decode`
    /// error; other operations are a `configuration` error.
    pub async fn send_location(self) -> Result<String> {
        if self.operation.as_ref().is_ok_and(|op| op.kind != Kind::Redirect) {
            return Err(not_a(&self.called, "redirect to a file"));
        }
        let bytes = self.request()?.send_bytes().await?;
        // The engine writes the location as a URL: ASCII.
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Sends the call and returns the answer's bytes with the request they answer, so that a
    /// binding decoding them can name the call in a decode error.
    #[inline]
    pub async fn send_body(self) -> Result<crate::ResponseBody> {
        self.request()?.send_body().await
    }

    /// A list's paginator, from the `page` argument (default 1) in pages of `pageSize` (default
    /// the paginator's).
    pub fn paginate<T>(self) -> Result<Paginate<T>> {
        let checked = self.check()?;
        if checked.op.kind != Kind::List {
            return Err(not_a(&self.called, "list (with page and pageSize)"));
        }
        let mut list = self.tenant.paginate::<T>(checked.path).param_pairs(checked.query);
        if let Some(page) = checked.page {
            list = list.start_page(page);
        }
        if let Some(size) = checked.page_size {
            list = list.page_size(size);
        }
        Ok(list)
    }

    /// An export's feed, from the `from` (or `since`) argument.
    pub fn export<T>(self) -> Result<Export<T>> {
        let checked = self.check()?;
        if checked.op.kind != Kind::Export {
            return Err(not_a(&self.called, "export feed (with from and continueFrom)"));
        }
        let mut feed = self.tenant.export::<T>(checked.path).exact_path().since(checked.since);
        for (k, v) in checked.query {
            feed = feed.param(k, v);
        }
        Ok(feed)
    }

    /// Every record of a list (from its `page` argument) or of an export feed (from its
    /// `since`), decoded.
    pub fn into_stream<T: DeserializeOwned + Send + 'static>(self) -> Result<RecordStream<T>> {
        match self.operation.as_ref().map(|op| op.kind) {
            Ok(Kind::Export) => Ok(self.export::<T>()?.into_stream()),
            _ => Ok(self.paginate::<T>()?.into_stream()),
        }
    }

    /// Every record of a list or an export feed, undecoded (for bindings).
    #[inline]
    pub fn raw_records(self) -> Result<RecordStream<RawRecord>> {
        match self.operation.as_ref().map(|op| op.kind) {
            Ok(Kind::Export) => Ok(self.export::<serde::de::IgnoredAny>()?.raw_records()),
            _ => Ok(self.paginate::<serde::de::IgnoredAny>()?.raw_records()),
        }
    }

    /// Checks every argument against the operation and builds the path and query.
    fn check(&self) -> Result<Checked> {
        let op = self.operation.clone()?;
        let name = self.called.as_str();
        if let Some(e) = &self.body_error {
            return Err(Error::configuration("body", format!("the body cannot be serialized as JSON: {e}")));
        }
        if self.body.as_ref().is_some_and(|b| !b.is_null()) && !op.body {
            return Err(Error::configuration("body", format!("{name} takes no body")));
        }
        let mut given: Vec<(&Param, &str, &Value)> = Vec::with_capacity(self.args.len());
        let mut since = None;
        for (arg, value) in &self.args {
            let param = match op.param(arg, self.naming) {
                Some(p) => p,
                None if arg == SINCE && op.kind == Kind::Export => {
                    since = Some((arg.as_str(), value));
                    continue;
                }
                None => return Err(unknown_param(op, name, arg, self.naming)),
            };
            if !value.is_null() {
                given.push((param, arg, value));
            }
        }
        if let Some((arg, value)) = since {
            if given.iter().any(|(p, ..)| p.name == "from") {
                return Err(Error::configuration(arg, "give the export's start as since or as from, not both"));
            }
            if !value.is_null() {
                let from = op.param("from", Naming::Api).expect("exports have a from parameter");
                given.push((from, arg, value));
            }
        }
        for p in &op.params {
            if p.required && !given.iter().any(|(g, ..)| g.name == p.name) {
                let spelled = p.name_in(self.naming);
                return Err(Error::configuration(
                    spelled,
                    format!("{name} needs {spelled} ({}), which is missing", p.param_type.as_str()),
                ));
            }
        }

        let mut path = op.path.clone();
        let mut query = Vec::new();
        let (mut page, mut page_size, mut from) = (None, None, None);
        for (param, arg, value) in given {
            let texts = texts(name, param, arg, value)?;
            match param.location {
                Location::Path => {
                    let text = texts.into_iter().next().map(|(_, t)| t).unwrap_or_default();
                    if text.trim().is_empty() {
                        return Err(Error::configuration(arg, "a path parameter cannot be empty"));
                    }
                    path = path.replace(&format!("{{{}}}", param.name), &encode_segment(&text));
                    if param.also_query {
                        query.push((param.name.clone(), text));
                    }
                }
                Location::Query => {
                    let single = || texts.first().map(|(_, t)| t.clone());
                    match (op.kind, param.name.as_str()) {
                        (Kind::List, "page") => page = single().and_then(|t| t.parse().ok()),
                        (Kind::List, "pageSize") => page_size = single().and_then(|t| t.parse().ok()),
                        (Kind::Export, "from") => from = single(),
                        _ => {}
                    }
                    query.extend(texts);
                }
            }
        }
        Ok(Checked { op, path, query, page, page_size, since: from })
    }
}

fn not_a(name: &str, what: &str) -> Error {
    Error::configuration("operation", format!("{name} is not a {what}"))
}

fn unknown_param(op: &Operation, name: &str, arg: &str, naming: Naming) -> Error {
    let names: Vec<&str> = op.params.iter().map(|p| p.name_in(naming)).collect();
    let hint = match did_you_mean(arg, names.iter().copied()) {
        Some(best) => format!("; did you mean {best}?"),
        None => String::new(),
    };
    let known = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
    Error::configuration(arg, format!("{name} has no parameter {arg:?}{hint} (its parameters: {known})"))
}

/// The query pairs (or the one path text) of a parameter's value, after checking its type and
/// accepted values.
fn texts(name: &str, param: &Param, arg: &str, value: &Value) -> Result<Vec<(String, String)>> {
    let wrong = |expected: &str, got: &Value| {
        Error::configuration(arg, format!("{name} takes {expected} as {arg}, not {}", describe(got)))
    };
    let one = |t: ParamType, v: &Value| -> Result<String> {
        let text = scalar(t, v).ok_or_else(|| wrong(t.as_str(), v))?;
        checked_value(name, param, arg, text)
    };
    match param.param_type {
        ParamType::Array => {
            let items = param.items.unwrap_or(ParamType::String);
            let list: Vec<&Value> = match value {
                Value::Array(list) => list.iter().collect(),
                other => vec![other],
            };
            let mut out = Vec::with_capacity(list.len());
            for (i, item) in list.into_iter().enumerate() {
                if items == ParamType::Object {
                    let Value::Object(map) = item else {
                        return Err(wrong("a list of objects", value));
                    };
                    for (k, v) in map {
                        let text =
                            scalar(ParamType::String, v).ok_or_else(|| wrong("a list of flat objects", value))?;
                        out.push((format!("{}[{i}].{k}", param.name), text));
                    }
                } else {
                    let text =
                        scalar(items, item).ok_or_else(|| wrong(&format!("a list of {}", plural(items)), value))?;
                    out.push((param.name.clone(), checked_value(name, param, arg, text)?));
                }
            }
            Ok(out)
        }
        ParamType::Object => {
            let Value::Object(map) = value else {
                return Err(wrong("an object", value));
            };
            map.iter()
                .map(|(k, v)| {
                    let text = scalar(ParamType::String, v).ok_or_else(|| wrong("an object of strings", value))?;
                    Ok((format!("{}[{k}]", param.name), text))
                })
                .collect()
        }
        t => Ok(vec![(param.name.clone(), one(t, value)?)]),
    }
}

/// A scalar as the query carries it, if it is of type `t`.
fn scalar(t: ParamType, v: &Value) -> Option<String> {
    match (t, v) {
        (ParamType::String, Value::String(s)) => Some(s.clone()),
        // Text parameters take numbers and booleans too: ids lists and dates are text in the specs.
        (ParamType::String, Value::Number(n)) => Some(n.to_string()),
        (ParamType::String, Value::Bool(b)) => Some(b.to_string()),
        (ParamType::Boolean, Value::Bool(b)) => Some(b.to_string()),
        (ParamType::Number, Value::Number(n)) => Some(n.to_string()),
        (ParamType::Integer, Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Some(i.to_string())
            } else if let Some(u) = n.as_u64() {
                Some(u.to_string())
            } else {
                // JavaScript numbers arrive as floats: a whole one is an integer.
                let f = n.as_f64()?;
                (f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15).then(|| (f as i64).to_string())
            }
        }
        _ => None,
    }
}

/// `text` if the parameter accepts it; values the API lists are matched without regard to case
/// and sent as the API spells them.
fn checked_value(name: &str, param: &Param, arg: &str, text: String) -> Result<String> {
    let Some(values) = &param.values else { return Ok(text) };
    let spelled: Vec<String> = values.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect();
    if let Some(exact) = spelled.iter().find(|v| v.eq_ignore_ascii_case(&text)) {
        return Ok(exact.clone());
    }
    let hint = match did_you_mean(&text, spelled.iter().map(String::as_str)) {
        Some(best) => format!(" (did you mean {best:?}?)"),
        None => String::new(),
    };
    Err(Error::configuration(arg, format!("{name} takes one of {} as {arg}, not {text:?}{hint}", spelled.join(", "))))
}

fn plural(t: ParamType) -> &'static str {
    match t {
        ParamType::Integer => "integers",
        ParamType::Number => "numbers",
        ParamType::String => "strings",
        ParamType::Boolean => "booleans",
        ParamType::Array => "lists",
        ParamType::Object => "objects",
    }
}

/// What a value is, for an error message (never the value itself: it may be long or private).
fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a fractional number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Client, ErrorCode, TenantCredentials};
    use serde_json::json;

    fn tenant() -> Tenant {
        let client = Client::builder().app_key("ak1.test").api_url("http://127.0.0.1:9").auth_url("http://127.0.0.1:9");
        client.build().unwrap().tenant(TenantCredentials::new(7, "cid.x", "cs1.x"))
    }

    fn refused(call: OperationCall) -> Error {
        let e = call.check().err().expect("refused");
        assert_eq!(e.code(), ErrorCode::Configuration, "{e}");
        e
    }

    #[test]
    fn arguments_fill_the_path_and_query() {
        let t = tenant();
        let c = t.operation("crm.customers.get_list").arg("pageSize", 5).arg("active", "any").check().unwrap();
        assert_eq!(c.path, "crm/v2/tenant/{tenant}/customers");
        assert_eq!(c.query, [("pageSize".to_owned(), "5".to_owned()), ("active".to_owned(), "Any".to_owned())]);
        assert_eq!((c.page, c.page_size), (None, Some(5)));

        let c = t.operation("crm.customers.get").arg("id", 42.0).check().unwrap();
        assert_eq!(c.path, "crm/v2/tenant/{tenant}/customers/42");
        let c = t
            .operation("crm.contacts.create_contact_relationship")
            .naming(Naming::Python)
            .args([("contact_id", json!("a b")), ("related_entity_id", json!(3)), ("type_slug", json!("x"))])
            .check()
            .unwrap();
        assert_eq!(c.path, "crm/v2/tenant/{tenant}/contacts/a%20b/relationships/3/x");

        // The receipt's id goes in the path and the query.
        let c = t.operation("inventory.receipts.cancel_receipts").arg("id", 9).check().unwrap();
        assert_eq!(c.path, "inventory/v2/tenant/{tenant}/receipts/9/cancellation");
        assert_eq!(c.query, [("id".to_owned(), "9".to_owned())]);

        // Lists repeat the parameter, maps go as name[key].
        let c = t
            .operation("accounting.invoices.get_list")
            .arg("statuses", json!(["pending", "Posted"]))
            .arg("customField.Fields", json!({"Color": "red"}))
            .check()
            .unwrap();
        assert!(c.query.contains(&("statuses".into(), "Pending".into())), "{:?}", c.query);
        assert!(c.query.contains(&("statuses".into(), "Posted".into())));
        assert!(c.query.contains(&("customField.Fields[Color]".into(), "red".into())));

        // Exports start from `since` or `from`.
        let c = t.operation("crm.export_customers.get_customers").arg("since", "2026-01-01").check().unwrap();
        assert_eq!(c.since.as_deref(), Some("2026-01-01"));
        let c = t.operation("crm.export_customers.get_customers").naming(Naming::Python).arg("from_", "tok").check();
        assert_eq!(c.unwrap().since.as_deref(), Some("tok"));
    }

    #[test]
    fn bad_arguments_are_named_before_anything_is_sent() {
        let t = tenant();
        let e = refused(t.operation("crm.customers.get_list").arg("pageSise", 5));
        assert_eq!(e.argument(), Some("pageSise"));
        assert!(e.to_string().contains("did you mean pageSize?"), "{e}");

        let e = refused(t.operation("crm.customers.get_list").naming(Naming::Python).arg("pageSize", 5));
        assert!(e.to_string().contains("did you mean page_size?"), "{e}");

        let e = refused(t.operation("crm.customers.get"));
        assert_eq!(e.argument(), Some("id"));
        assert!(e.to_string().contains("missing"), "{e}");
        refused(t.operation("crm.customers.get").arg("id", Value::Null));

        let e = refused(t.operation("crm.customers.get_list").arg("pageSize", "five"));
        assert!(e.to_string().contains("takes an integer as pageSize, not a string"), "{e}");
        refused(t.operation("crm.customers.get_list").arg("pageSize", 2.5));
        refused(t.operation("crm.customers.get_list").arg("includeTotal", 1));

        let e = refused(t.operation("crm.customers.get_list").arg("active", "Sometimes"));
        assert!(e.to_string().contains("one of True, Any, False as active"), "{e}");

        let e = refused(t.operation("crm.customers.get_list").json_value(Some(json!({}))));
        assert_eq!(e.argument(), Some("body"));
        let e = refused(t.operation("crm.customers.get").arg("id", " "));
        assert_eq!(e.argument(), Some("id"));
        let e = refused(t.operation("crm.export_customers.get_customers").arg("since", "a").arg("from", "b"));
        assert_eq!(e.argument(), Some("since"));
        refused(t.operation("crm.customers.get_list").arg("since", "a"));
        let e = refused(t.operation("no.such.thing"));
        assert_eq!(e.argument(), Some("operation"));
        assert!(t.operation("crm.customers.get").paginate::<Value>().is_err());
        assert!(t.operation("crm.customers.get_list").export::<Value>().is_err());
    }
}
