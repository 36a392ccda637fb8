//! Reports: categories, report metadata, and report data with positional rows mapped through `fields` to named records, validated before sending and run under the per-report limiter.
//!
//! A run first asks the asynchronous endpoint (`POST …/data/query`): a server that answers at
//! once gives the data, one that answers 202 gives a token, polled (`GET data-queries/{token}`)
//! with backoff within the call's deadline, its pages read from the same token, and cancelled
//! (`DELETE`) if the caller gives up first. A server that refuses it (400, 404, 405, 501) gets
//! the synchronous `POST …/data` instead. Either way a run takes one slot of the per-report limiter.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, ErrorCode, Result};
use crate::paging::{Batch, Cursor, FetchPage, Fetched, PageStream, RecordStream};
use crate::request::{decode, execute, Call, Wanted};
use crate::route::{self, encode_segment};
use crate::tenant::Tenant;

/// A named record: column name → value.
pub type Record = Map<String, Value>;

/// A report category (`GET reporting/report-categories`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ReportCategory {
    /// The id used in paths, e.g. `"operations"`.
    pub id: String,
    /// The display name.
    #[serde(default)]
    pub name: String,
}

/// A report in a category (`GET reporting/report-category/{cat}/reports`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ReportSummary {
    /// The report id.
    pub id: i64,
    /// The report's name.
    #[serde(default)]
    pub name: String,
    /// What the report shows.
    #[serde(default)]
    pub description: Option<String>,
}

/// A report's parameter.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ReportParameter {
    /// The name to send.
    pub name: String,
    /// The display label.
    #[serde(default)]
    pub label: Option<String>,
    /// `String`, `Number`, `Boolean`, `Date`, `Time`…
    #[serde(default)]
    pub data_type: Option<String>,
    /// Takes a list of values.
    #[serde(default)]
    pub is_array: bool,
    /// Must be given.
    #[serde(default)]
    pub is_required: bool,
    /// Where allowed values come from (e.g. a dynamic value set), as the server sent it.
    #[serde(default)]
    pub accept_values: Option<Value>,
}

/// A report's output column.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ReportField {
    /// The column's name (the key in named records).
    #[serde(alias = "Name")]
    pub name: String,
    /// The display label.
    #[serde(default, alias = "Label")]
    pub label: Option<String>,
    /// The column's type.
    #[serde(default, alias = "DataType")]
    pub data_type: Option<String>,
}

/// A report's description (`GET reporting/report-category/{cat}/reports/{id}`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ReportMetadata {
    /// The report id.
    #[serde(default)]
    pub id: i64,
    /// The report's name.
    #[serde(default)]
    pub name: String,
    /// What the report shows.
    #[serde(default)]
    pub description: Option<String>,
    /// Its parameters.
    #[serde(default)]
    pub parameters: Vec<ReportParameter>,
    /// Its columns.
    #[serde(default)]
    pub fields: Vec<ReportField>,
}

/// One page of report data, rows still positional.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ReportPage {
    // The asynchronous endpoint is reported to answer in PascalCase: both are read.
    /// The page number.
    #[serde(default, alias = "Page")]
    pub page: u32,
    /// The page size the server used.
    #[serde(default, alias = "PageSize")]
    pub page_size: u32,
    /// Whether another page follows.
    #[serde(default, alias = "HasMore")]
    pub has_more: bool,
    /// The total row count, when given.
    #[serde(default, alias = "TotalCount")]
    pub total_count: Option<u64>,
    /// The columns, in row order.
    #[serde(default, alias = "Fields")]
    pub fields: Vec<ReportField>,
    /// The rows.
    #[serde(default, alias = "Data")]
    pub data: Vec<Vec<Value>>,
}

impl ReportPage {
    /// The rows as named records (column name → value).
    pub fn records(self) -> Vec<Record> {
        let names: Vec<String> = self.fields.into_iter().map(|f| f.name).collect();
        self.data.into_iter().map(|row| named_record(&names, row)).collect()
    }
}

fn named_record(names: &[String], row: Vec<Value>) -> Record {
    let mut record = Map::with_capacity(names.len());
    let mut values = row.into_iter();
    for name in names {
        record.insert(name.clone(), values.next().unwrap_or(Value::Null));
    }
    // Columns the metadata does not name (the report was edited meanwhile) are kept, by position.
    for (i, value) in values.enumerate() {
        record.insert(format!("column_{}", names.len() + i), value);
    }
    record
}

impl Tenant {
    /// Every report category.
    ///
    /// ```no_run
    /// # async fn demo(tenant: servicetitan::Tenant) -> servicetitan::Result<()> {
    /// for category in tenant.report_categories().await? {
    ///     println!("{} ({})", category.name, category.id);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn report_categories(&self) -> Result<Vec<ReportCategory>> {
        self.paginate::<ReportCategory>("reporting/report-categories").into_stream().try_collect().await
    }

    /// Every report of a category.
    pub async fn reports(&self, category: &str) -> Result<Vec<ReportSummary>> {
        let path = format!("reporting/report-category/{}/reports", encode_segment(category));
        self.paginate::<ReportSummary>(path).into_stream().try_collect().await
    }

    /// A report's parameters and fields.
    pub async fn report_metadata(&self, category: &str, report_id: i64) -> Result<ReportMetadata> {
        self.get(format!("reporting/report-category/{}/reports/{report_id}", encode_segment(category))).send().await
    }

    /// A run of a report, with named parameters (see [`ReportQuery`]).
    ///
    /// ```no_run
    /// # async fn demo(tenant: servicetitan::Tenant) -> servicetitan::Result<()> {
    /// let rows = tenant
    ///     .report("operations", 175)
    ///     .parameter("From", "2026-01-01")
    ///     .parameter("To", "2026-01-31")
    ///     .records()
    ///     .await?;
    /// for row in rows {
    ///     println!("{row:?}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn report(&self, category: impl Into<String>, report_id: i64) -> ReportQuery {
        ReportQuery {
            tenant: self.clone(),
            category: category.into(),
            report_id,
            parameters: Vec::new(),
            page_size: 25_000,
            validate: true,
            asynchronous: true,
        }
    }
}

/// A run of one report: parameters are checked against the report's metadata, then every
/// page is fetched, each under the per-report limiter (5 runs per report per tenant per
/// minute by default), so a sixth run waits instead of drawing a 429.
#[must_use = "call records() or into_stream() to run the report"]
#[derive(Clone, Debug)]
pub struct ReportQuery {
    tenant: Tenant,
    category: String,
    report_id: i64,
    parameters: Vec<(String, Value)>,
    page_size: u32,
    validate: bool,
    asynchronous: bool,
}

impl ReportQuery {
    /// Sets a parameter (replacing one of the same name). A parameter whose values come from a
    /// dynamic value set also takes names (`"Plumbing"` for business unit 1), looked up when the
    /// parameters are checked (unless [`skip_validation`](Self::skip_validation)).
    pub fn parameter(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        let name = name.into();
        self.parameters.retain(|(n, _)| n != &name);
        self.parameters.push((name, value.into()));
        self
    }

    /// Sets parameters from pairs (for bindings).
    pub fn parameters<I, K, V>(mut self, pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<Value>,
    {
        for (k, v) in pairs {
            self = self.parameter(k, v);
        }
        self
    }

    /// Rows per page (default 25 000, the API's maximum: every page costs a report slot).
    pub fn page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// Sends the parameters without checking them against the metadata first (saves a call).
    pub fn skip_validation(mut self) -> Self {
        self.validate = false;
        self
    }

    /// Uses only the synchronous endpoint (`POST …/data`), never the asynchronous one.
    pub fn synchronous(mut self) -> Self {
        self.asynchronous = false;
        self
    }

    /// Every row, as named records.
    pub async fn records(self) -> Result<Vec<Record>> {
        self.into_stream().try_collect().await
    }

    /// Every row as a stream of named records.
    pub fn into_stream(self) -> RecordStream<Record> {
        let fetch: FetchPage<Batch<Record>> = self.fetcher(|page| {
            let more = page.has_more && !page.data.is_empty();
            (Batch { records: page.records(), checkpoint: None }, more)
        });
        RecordStream::new(PageStream::new(fetch, Cursor::Page(1)), None)
    }

    /// Every page, rows still positional.
    pub fn pages(self) -> PageStream<ReportPage> {
        let fetch = self.fetcher(|page| {
            let more = page.has_more && !page.data.is_empty();
            (page, more)
        });
        PageStream::new(fetch, Cursor::Page(1))
    }

    fn fetcher<P: Send + 'static>(self, shape: fn(ReportPage) -> (P, bool)) -> FetchPage<P> {
        let query = Arc::new(self);
        // Pages are fetched one after the other: the lock is never contended, it only carries
        // the run (which endpoint answered, the query token) from one page to the next.
        let run = Arc::new(tokio::sync::Mutex::new(Run::default()));
        Arc::new(move |cursor| {
            let (query, run) = (query.clone(), run.clone());
            Box::pin(async move {
                let Cursor::Page(page) = cursor else { unreachable!("reports are paged by number") };
                let mut run = run.lock().await;
                if page == 1 && query.validate {
                    let meta = query.tenant.report_metadata(&query.category, query.report_id).await?;
                    let parameters =
                        crate::dynamic_sets::resolve_names(&query.tenant, &meta, &query.parameters).await?;
                    validate_parameters(&query.category, &meta, &parameters)?;
                    run.query = Some(Arc::new(ReportQuery { parameters, ..(*query).clone() }));
                }
                let effective = run.query.clone().unwrap_or_else(|| query.clone());
                let report_page = effective.fetch_page(page, &mut run).await?;
                let (shaped, more) = shape(report_page);
                if !more {
                    // Read to the end: nothing left to cancel.
                    if let Mode::Query(query) = &mut run.mode {
                        query.armed = false;
                    }
                    run.mode = Mode::Finished;
                }
                Ok(Fetched { page: shaped, next: more.then_some(Cursor::Page(page + 1)) })
            })
        })
    }

    fn body(&self) -> Result<bytes::Bytes> {
        let parameters: Vec<Value> =
            self.parameters.iter().map(|(name, value)| serde_json::json!({"name": name, "value": value})).collect();
        let body = serde_json::to_vec(&serde_json::json!({ "parameters": parameters }))
            .map_err(|e| Error::configuration("parameters", e.to_string()))?;
        Ok(body.into())
    }

    fn page_query(&self, page: u32) -> Vec<(String, String)> {
        vec![("page".into(), page.to_string()), ("pageSize".into(), self.page_size.to_string())]
    }

    /// A POST of the run to `…/data` or `…/data/query`; `slot`: take one of the report's limit.
    async fn post(&self, endpoint: &str, page: u32, slot: bool) -> Result<(Value, Call)> {
        let inner = &self.tenant.inner;
        let path = format!(
            "reporting/report-category/{}/reports/{}/{endpoint}",
            encode_segment(&self.category),
            self.report_id
        );
        let call = Call {
            method: Method::POST,
            route: route::resolve(&inner.client.config.api_url, inner.id, &path, false)?,
            query: self.page_query(page),
            body: Some(self.body()?),
            // Reading a report changes nothing: resend it like a GET.
            retry_any: true,
            report_id: slot.then_some(self.report_id),
            timeout: None,
            wanted: Wanted::Json,
        };
        let bytes = execute(inner, &call).await?;
        let value = decode(&bytes, &call.method, &call.route.url)?;
        Ok((value, call))
    }

    async fn fetch_page(&self, page: u32, run: &mut Run) -> Result<ReportPage> {
        if let Some(e) = &self.tenant.inner.invalid {
            return Err(e.clone());
        }
        let config = &self.tenant.inner.client.config;
        let clock = &self.tenant.inner.client.clock;
        let deadline = *run.deadline.get_or_insert_with(|| clock.now() + config.timeouts.total);
        match &run.mode {
            Mode::Query(query) => {
                let token = query.token.clone();
                return self.poll(&token, page, deadline).await;
            }
            // A synchronous run: every page is a run of its own, as the server counts them.
            Mode::Sync => return page_from(self.post("data", page, true).await?),
            Mode::Unknown | Mode::Immediate | Mode::Finished => {}
        }
        if !self.asynchronous {
            run.mode = Mode::Sync;
            return page_from(self.post("data", page, true).await?);
        }
        // In a task of its own, so that a caller who gives up while the query is being created
        // does not leave it running: the task still gets the token, and its guard cancels it.
        let query = self.clone();
        let started = tokio::spawn(async move {
            let (value, call) = query.post("data/query", page, true).await?;
            let guard = pending_token(&value).map(|token| QueryGuard {
                tenant: query.tenant.clone(),
                token,
                runtime: tokio::runtime::Handle::current(),
                armed: true,
            });
            Ok::<_, Error>((value, call, guard))
        });
        let started = match started.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => {
                Err(Error::new(ErrorCode::Connection, "the report query was interrupted: the runtime is shutting down"))
            }
        };
        match started {
            // The asynchronous endpoint is not offered, or not in the form sent (it is not in the
            // published specs): the synchronous call says whether the run itself is at fault.
            Err(e) if run.mode == Mode::Unknown && matches!(e.status(), Some(400 | 404 | 405 | 501)) => {
                tracing::debug!(error = %e, "the asynchronous report endpoint refused the run; using the synchronous one");
                run.mode = Mode::Sync;
                // The slot of this run was taken by the refused call.
                page_from(self.post("data", page, false).await?)
            }
            Err(e) => Err(e),
            Ok((value, call, None)) => {
                run.mode = Mode::Immediate;
                page_from((value, call))
            }
            Ok((_, _, Some(guard))) => {
                tracing::debug!(report = self.report_id, "the report runs asynchronously; polling");
                let token = guard.token.clone();
                run.mode = Mode::Query(guard);
                self.poll(&token, page, deadline).await
            }
        }
    }

    /// Polls a query until it answers with data, with backoff, within `deadline`.
    async fn poll(&self, token: &str, page: u32, deadline: Instant) -> Result<ReportPage> {
        let inner = &self.tenant.inner;
        let clock = &inner.client.clock;
        let path = format!("reporting/data-queries/{}", encode_segment(token));
        let route = route::resolve(&inner.client.config.api_url, inner.id, &path, false)?;
        let mut wait = Duration::from_millis(100);
        loop {
            let remaining = deadline.saturating_duration_since(clock.now());
            if remaining.is_zero() {
                return Err(Error::new(
                    ErrorCode::Timeout,
                    format!(
                        "report {} ({}) was still running on the server at the call's deadline ({:.0} s);                          its query is cancelled",
                        self.report_id,
                        self.category,
                        inner.client.config.timeouts.total.as_secs_f64()
                    ),
                )
                .with_request("GET", &route.url));
            }
            let call = Call {
                method: Method::GET,
                route: route.clone(),
                query: self.page_query(page),
                body: None,
                retry_any: true,
                report_id: None,
                timeout: Some(remaining),
                wanted: Wanted::Json,
            };
            let bytes = execute(inner, &call).await?;
            let value: Value = decode(&bytes, &call.method, &call.route.url)?;
            if pending_token(&value).is_none() {
                return page_from((value, call));
            }
            clock.sleep(wait.min(remaining)).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }
}

fn page_from((value, call): (Value, Call)) -> Result<ReportPage> {
    serde_json::from_value(value).map_err(|e| {
        Error::new(ErrorCode::Decode, format!("the report data is not the JSON expected ({e})"))
            .with_request(call.method.as_str(), &call.route.url)
    })
}

/// The token of an answer that says "not ready yet" (`{status, token}`, no data).
fn pending_token(value: &Value) -> Option<String> {
    let object = value.as_object()?;
    if object.contains_key("data") || object.contains_key("Data") {
        return None;
    }
    object.get("token").or_else(|| object.get("Token")).and_then(Value::as_str).map(str::to_owned)
}

/// Which endpoint serves a run, carried from page to page.
#[derive(Default)]
struct Run {
    mode: Mode,
    deadline: Option<Instant>,
    /// The query with parameter names resolved to values.
    query: Option<Arc<ReportQuery>>,
}

#[derive(Default)]
enum Mode {
    /// Nothing asked yet.
    #[default]
    Unknown,
    /// `…/data/query` answered with data at once: each page is asked for the same way.
    Immediate,
    /// `…/data` (the asynchronous endpoint is missing, or not wanted).
    Sync,
    /// A query running or finished on the server; pages are read from its token.
    Query(QueryGuard),
    /// Every page was read.
    Finished,
}

impl PartialEq for Mode {
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

/// A query on the server that the caller may still give up on: dropped before its last page
/// was read (a cancelled call, an abort, an error, a deadline), it is cancelled with DELETE, so
/// that the server stops working for nobody.
struct QueryGuard {
    tenant: Tenant,
    token: String,
    runtime: tokio::runtime::Handle,
    armed: bool,
}

impl Drop for QueryGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let tenant = self.tenant.clone();
        let token = std::mem::take(&mut self.token);
        self.runtime.spawn(async move {
            let inner = &tenant.inner;
            let path = format!("reporting/data-queries/{}", encode_segment(&token));
            let Ok(route) = route::resolve(&inner.client.config.api_url, inner.id, &path, false) else { return };
            let call = Call {
                method: Method::DELETE,
                route,
                query: Vec::new(),
                body: None,
                retry_any: true,
                report_id: None,
                timeout: Some(Duration::from_secs(30)),
                wanted: Wanted::Json,
            };
            match execute(inner, &call).await {
                Ok(_) => tracing::debug!("cancelled an unfinished report query"),
                Err(e) => tracing::debug!(error = %e, "could not cancel an unfinished report query"),
            }
        });
    }
}

/// Checks parameters against a report's metadata: names known, required ones present,
/// values of the declared type.
pub(crate) fn validate_parameters(category: &str, meta: &ReportMetadata, parameters: &[(String, Value)]) -> Result<()> {
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let known: Vec<&str> = meta.parameters.iter().map(|p| p.name.as_str()).collect();
    for (name, value) in parameters {
        let Some(spec) = meta.parameters.iter().find(|p| &p.name == name) else {
            let hint = meta
                .parameters
                .iter()
                .find(|p| p.name.eq_ignore_ascii_case(name))
                .map(|p| format!(" (did you mean {:?}?)", p.name))
                .unwrap_or_default();
            errors
                .entry(name.clone())
                .or_default()
                .push(format!("not a parameter of this report{hint}; its parameters are: {}", known.join(", ")));
            continue;
        };
        if let Some(problem) = check_value(spec, value) {
            errors.entry(name.clone()).or_default().push(problem);
        }
    }
    for spec in meta.parameters.iter().filter(|p| p.is_required) {
        if !parameters.iter().any(|(n, v)| n == &spec.name && !v.is_null()) {
            errors
                .entry(spec.name.clone())
                .or_default()
                .push(format!("required{}", spec.data_type.as_deref().map(|t| format!(" ({t})")).unwrap_or_default()));
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    Err(Error::new(
        ErrorCode::BadRequest,
        format!(
            "the parameters of report {} ({category}, {:?}) do not match its metadata; nothing was sent",
            meta.id, meta.name
        ),
    )
    .with_errors(errors))
}

fn check_value(spec: &ReportParameter, value: &Value) -> Option<String> {
    if value.is_null() {
        return None;
    }
    if let Value::Array(items) = value {
        if !spec.is_array {
            return Some("takes a single value, not a list".into());
        }
        return items.iter().find_map(|item| check_scalar(spec, item));
    }
    check_scalar(spec, value)
}

fn check_scalar(spec: &ReportParameter, value: &Value) -> Option<String> {
    let data_type = spec.data_type.as_deref().unwrap_or("").to_ascii_lowercase();
    let ok = match data_type.as_str() {
        "date" | "datetime" => value.as_str().is_some_and(looks_like_date),
        "number" | "int" | "integer" | "long" | "decimal" | "double" | "float" => {
            value.is_number() || value.as_str().is_some_and(|s| s.trim().parse::<f64>().is_ok())
        }
        "boolean" | "bool" => {
            value.is_boolean()
                || value.as_str().is_some_and(|s| s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false"))
        }
        _ => !value.is_object() && !value.is_array(),
    };
    (!ok).then(|| format!("expected a {} value, got {value}", spec.data_type.as_deref().unwrap_or("scalar")))
}

fn looks_like_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
        && (b.len() == 10 || b[10] == b'T' || b[10] == b' ')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta() -> ReportMetadata {
        serde_json::from_value(json!({
            "id": 175, "name": "Jobs",
            "parameters": [
                {"name": "From", "dataType": "Date", "isRequired": true},
                {"name": "To", "dataType": "Date"},
                {"name": "BusinessUnitIds", "dataType": "Number", "isArray": true},
                {"name": "IncludeAdjustments", "dataType": "Boolean"}
            ],
            "fields": [{"name": "JobId", "label": "Job"}, {"name": "Total"}]
        }))
        .unwrap()
    }

    fn check(params: &[(&str, Value)]) -> Result<()> {
        let params: Vec<(String, Value)> = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        validate_parameters("operations", &meta(), &params)
    }

    #[test]
    fn valid_parameters_pass() {
        check(&[("From", json!("2026-01-01")), ("To", json!("2026-01-31T00:00:00"))]).unwrap();
        check(&[("From", json!("2026-01-01")), ("BusinessUnitIds", json!([1, "2"]))]).unwrap();
        check(&[("From", json!("2026-01-01")), ("IncludeAdjustments", json!(true))]).unwrap();
    }

    #[test]
    fn missing_unknown_and_mistyped_parameters_are_named() {
        let e = check(&[("from", json!("2026-01-01")), ("To", json!("yesterday"))]).unwrap_err();
        assert_eq!(e.code(), ErrorCode::BadRequest);
        assert!(e.errors()["From"][0].starts_with("required"));
        assert!(e.errors()["from"][0].contains("did you mean \"From\""));
        assert!(e.errors()["To"][0].contains("Date"));
        let e = check(&[("From", json!(["2026-01-01"]))]).unwrap_err();
        assert!(e.errors()["From"][0].contains("single value"));
    }

    #[test]
    fn pending_answers_and_pascal_case_pages_are_read() {
        assert_eq!(pending_token(&json!({"status": "Running", "token": "q1"})).as_deref(), Some("q1"));
        assert_eq!(pending_token(&json!({"Status": "Pending", "Token": "q2"})).as_deref(), Some("q2"));
        assert_eq!(pending_token(&json!({"token": "q3", "data": []})), None);
        assert_eq!(pending_token(&json!({"page": 1, "data": [[1]]})), None);
        let page: ReportPage = serde_json::from_value(json!({
            "Page": 1, "PageSize": 2, "HasMore": true, "TotalCount": 9,
            "Fields": [{"Name": "JobId", "Label": "Job"}], "Data": [[7]]
        }))
        .unwrap();
        assert_eq!((page.page, page.page_size, page.has_more, page.total_count), (1, 2, true, Some(9)));
        assert_eq!(Value::Object(page.records()[0].clone()), json!({"JobId": 7}));
    }

    #[test]
    fn rows_are_named_by_fields() {
        let page: ReportPage = serde_json::from_value(json!({
            "page": 1, "pageSize": 2, "hasMore": false,
            "fields": [{"name": "JobId"}, {"name": "Total"}],
            "data": [[1, 9.5], [2], [3, 1.0, "extra"]]
        }))
        .unwrap();
        let records = page.records();
        assert_eq!(Value::Object(records[0].clone()), json!({"JobId": 1, "Total": 9.5}));
        assert_eq!(Value::Object(records[1].clone()), json!({"JobId": 2, "Total": null}));
        assert_eq!(records[2]["column_2"], json!("extra"));
    }
}
