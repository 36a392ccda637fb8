//! `Client`/`Tenant` (blocking, GIL released) and `AsyncClient`/`AsyncTenant` (asyncio): each
//! method converts its arguments, calls the engine, and converts the result or the error.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::{PyStopAsyncIteration, PyStopIteration};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyType};
use pyo3::BoundObject;
use servicetitan::{Bytes, ClientBuilder, Method, PageStream, RawPage, RequestBuilder, TenantCredentials};

use crate::convert::{json_to_py, page_data_to_py, params_to_pairs, py_to_value, value_to_py};
use crate::errors::{configuration_error, to_py};
use crate::runtime::{to_asyncio, wait, ForkLeaked, PerProcess};

// ---------------------------------------------------------------------------------------------
// Settings

/// The keyword arguments of `Client(...)` and `AsyncClient(...)`. Durations are in seconds, as
/// everywhere in Python; anything left out falls back to its environment variable, then to the
/// engine's default.
#[derive(Default)]
pub(crate) struct Settings {
    pub(crate) app_key: Option<String>,
    pub(crate) environment: Option<String>,
    pub(crate) auth_url: Option<String>,
    pub(crate) api_url: Option<String>,
    pub(crate) rate_limit_calls: Option<u32>,
    pub(crate) rate_limit_period: Option<f64>,
    pub(crate) rate_limit_margin: Option<f64>,
    pub(crate) rate_limit_margin_adaptive: Option<bool>,
    pub(crate) report_rate_limit_calls: Option<u32>,
    pub(crate) report_rate_limit_period: Option<f64>,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) backoff_base: Option<f64>,
    pub(crate) backoff_max: Option<f64>,
    pub(crate) timeout: Option<f64>,
    pub(crate) connect_timeout: Option<f64>,
    pub(crate) attempt_timeout: Option<f64>,
    pub(crate) max_retry_after: Option<f64>,
    pub(crate) ca_certificates: Option<Vec<String>>,
    pub(crate) redis_url: Option<String>,
    pub(crate) redis_key_prefix: Option<String>,
    pub(crate) redis_token_key: Option<String>,
    pub(crate) redis_fallback_share: Option<f64>,
}

fn seconds(name: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        configuration_error(name, format!("invalid {name}: expected a non-negative number of seconds, got {value}"))
    })
}

impl Settings {
    fn builder(self) -> PyResult<ClientBuilder> {
        let mut b = servicetitan::Client::builder().language("python");
        if let Some(v) = self.app_key {
            b = b.app_key(v);
        }
        if let Some(v) = self.environment {
            b = b.environment_name(v);
        }
        if let Some(v) = self.auth_url {
            b = b.auth_url(v);
        }
        if let Some(v) = self.api_url {
            b = b.api_url(v);
        }
        // The builder takes calls and period together; a missing half is the engine's default
        // (60 per 1 s, 5 reports per 60 s). See the report: the engine could take them apart.
        if self.rate_limit_calls.is_some() || self.rate_limit_period.is_some() {
            let period = seconds("rate_limit_period", self.rate_limit_period.unwrap_or(1.0))?;
            b = b.rate_limit(self.rate_limit_calls.unwrap_or(60), period);
        }
        if let Some(v) = self.rate_limit_margin {
            b = b.rate_limit_margin(seconds("rate_limit_margin", v)?);
        }
        if let Some(on) = self.rate_limit_margin_adaptive {
            b = b.rate_limit_margin_adaptive(on);
        }
        if self.report_rate_limit_calls.is_some() || self.report_rate_limit_period.is_some() {
            let period = seconds("report_rate_limit_period", self.report_rate_limit_period.unwrap_or(60.0))?;
            b = b.report_rate_limit(self.report_rate_limit_calls.unwrap_or(5), period);
        }
        if let Some(v) = self.max_attempts {
            b = b.max_attempts(v);
        }
        if self.backoff_base.is_some() || self.backoff_max.is_some() {
            let base = seconds("backoff_base", self.backoff_base.unwrap_or(0.25))?;
            let cap = seconds("backoff_max", self.backoff_max.unwrap_or(20.0))?;
            b = b.backoff(base, cap);
        }
        if let Some(v) = self.timeout {
            b = b.timeout(seconds("timeout", v)?);
        }
        if let Some(v) = self.connect_timeout {
            b = b.connect_timeout(seconds("connect_timeout", v)?);
        }
        if let Some(v) = self.attempt_timeout {
            b = b.attempt_timeout(seconds("attempt_timeout", v)?);
        }
        if let Some(v) = self.max_retry_after {
            b = b.max_retry_after(seconds("max_retry_after", v)?);
        }
        for pem in self.ca_certificates.unwrap_or_default() {
            b = b.add_root_certificate_pem(pem.into_bytes());
        }
        if let Some(v) = self.redis_url {
            b = b.redis_url(v);
        }
        if let Some(v) = self.redis_key_prefix {
            b = b.redis_key_prefix(v);
        }
        if let Some(v) = self.redis_token_key {
            b = b.redis_token_key(v);
        }
        if let Some(v) = self.redis_fallback_share {
            b = b.redis_fallback_share(v);
        }
        Ok(b)
    }
}

// ---------------------------------------------------------------------------------------------
// Shared cores

/// One engine client per process (rebuilt from the same settings in a forked child).
pub(crate) struct ClientCore {
    builder: ClientBuilder,
    engine: PerProcess<servicetitan::Client>,
}

impl ClientCore {
    fn new(py: Python<'_>, settings: Settings) -> PyResult<Arc<Self>> {
        let builder = settings.builder()?;
        // Building reads environment variables and certificate files: no GIL needed.
        let engine = py.detach(|| builder.clone().build()).map_err(to_py)?;
        Ok(Arc::new(ClientCore { builder, engine: PerProcess::new(engine) }))
    }

    fn engine(&self) -> PyResult<servicetitan::Client> {
        self.engine.get(|| self.builder.clone().build().map_err(to_py))
    }

    fn tenant(
        self: &Arc<Self>,
        tenant_id: Option<i64>,
        client_id: Option<String>,
        client_secret: Option<String>,
    ) -> PyResult<Arc<TenantCore>> {
        let credentials = TenantCredentials::resolve(tenant_id, client_id, client_secret).map_err(to_py)?;
        let engine = self.engine()?.tenant(credentials.clone());
        Ok(Arc::new(TenantCore { client: self.clone(), credentials, engine: PerProcess::new(engine) }))
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.engine()?.stats();
        let d = PyDict::new(py);
        d.set_item("requests", s.requests)?;
        d.set_item("retries", s.retries)?;
        d.set_item("token_fetches", s.token_fetches)?;
        d.set_item("rate_limited", s.rate_limited)?;
        d.set_item("throttle_wait_s", s.throttle_wait.as_secs_f64())?;
        Ok(d)
    }

    fn repr(&self, class: &str) -> PyResult<String> {
        let engine = self.engine()?;
        let config = engine.config();
        Ok(format!(
            "{class}(environment={:?}, auth_url={:?}, api_url={:?})",
            config.environment().name(),
            config.token_url(),
            config.api_url()
        ))
    }
}

pub(crate) struct TenantCore {
    client: Arc<ClientCore>,
    credentials: TenantCredentials,
    engine: PerProcess<servicetitan::Tenant>,
}

impl TenantCore {
    fn engine(&self) -> PyResult<servicetitan::Tenant> {
        self.engine.get(|| Ok(self.client.engine()?.tenant(self.credentials.clone())))
    }

    fn repr(&self, class: &str) -> String {
        format!("{class}(id={}, client_id={:?})", self.credentials.tenant_id(), self.credentials.client_id())
    }

    /// The engine request for one call (arguments converted, nothing sent yet).
    fn request(
        &self,
        method: Method,
        path: String,
        params: Option<&Bound<'_, PyAny>>,
        json: Option<&Bound<'_, PyAny>>,
        safe_to_retry: bool,
        timeout: Option<f64>,
    ) -> PyResult<RequestBuilder> {
        let mut request = self.engine()?.request(method, path).query_pairs(params_to_pairs(params)?);
        if let Some(json) = json {
            request = request.json_value(Some(py_to_value(json)?));
        }
        if safe_to_retry {
            request = request.safe_to_retry();
        }
        if let Some(t) = timeout {
            request = request.timeout(seconds("timeout", t)?);
        }
        Ok(request)
    }

    fn paginate(
        &self,
        path: String,
        params: Option<&Bound<'_, PyAny>>,
        page_size: Option<u32>,
    ) -> PyResult<PageStream<RawPage>> {
        let mut list = self.engine()?.paginate::<serde::de::IgnoredAny>(path).param_pairs(params_to_pairs(params)?);
        if let Some(size) = page_size {
            list = list.page_size(size);
        }
        Ok(list.raw_pages())
    }

    fn export(
        &self,
        path: String,
        since: Option<String>,
        params: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(PageStream<RawPage>, Option<String>)> {
        let mut feed = self.engine()?.export::<serde::de::IgnoredAny>(path).since(since.clone());
        for (k, v) in params_to_pairs(params)? {
            feed = feed.param(k, v);
        }
        Ok((feed.raw_pages(), since.filter(|s| !s.is_empty())))
    }

    fn report(
        &self,
        category: String,
        report_id: i64,
        parameters: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<servicetitan::ReportQuery> {
        let mut query = self.engine()?.report(category, report_id);
        if let Some(parameters) = parameters.filter(|p| !p.is_none()) {
            let dict = parameters.cast::<PyDict>().map_err(|_| {
                pyo3::exceptions::PyTypeError::new_err("parameters: expected a dict of report parameters")
            })?;
            for (k, v) in dict.iter() {
                query = query.parameter(k.extract::<String>()?, py_to_value(&v)?);
            }
        }
        Ok(query)
    }
}

/// A response body, decoded into Python objects once the GIL is held.
struct Body(Bytes);

impl<'py> IntoPyObject<'py> for Body {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.0)
    }
}

/// An engine result crossing back into Python: the error, too, is converted only with the GIL
/// held (on pyo3-async-runtimes' blocking thread), never on a runtime worker.
struct Outcome<T>(servicetitan::Result<T>);

impl<'py, T: IntoPyObject<'py>> IntoPyObject<'py> for Outcome<T>
where
    PyErr: From<T::Error>,
{
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self.0 {
            Ok(v) => Ok(v.into_pyobject(py)?.into_any().into_bound()),
            Err(e) => Err(to_py(e)),
        }
    }
}

/// Report rows (named records) as a list of dicts.
struct Rows(Vec<servicetitan::Record>);

impl<'py> IntoPyObject<'py> for Rows {
    type Target = PyList;
    type Output = Bound<'py, PyList>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let rows = self
            .0
            .into_iter()
            .map(|record| value_to_py(py, &serde_json::Value::Object(record)))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, rows)
    }
}

/// An engine value crossing as plain Python objects (dicts keyed by its camelCase serde names),
/// converted once the GIL is held.
struct AsJson<T>(T);

impl<'py, T: serde::Serialize> IntoPyObject<'py> for AsJson<T> {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let value = serde_json::to_value(&self.0)
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("result does not serialize: {e}")))?;
        value_to_py(py, &value)
    }
}

// ---------------------------------------------------------------------------------------------
// Blocking API

/// A ServiceTitan API client for one app key, serving any number of tenants. Thread-safe: share
/// one per app. Calls block with the GIL released; Ctrl-C interrupts them.
#[pyclass(module = "servicetitan._native", frozen)]
pub(crate) struct Client {
    core: Arc<ClientCore>,
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (app_key=None, *, environment=None, auth_url=None, api_url=None, rate_limit_calls=None,
        rate_limit_period=None, rate_limit_margin=None, rate_limit_margin_adaptive=None, report_rate_limit_calls=None, report_rate_limit_period=None,
        max_attempts=None, backoff_base=None, backoff_max=None, timeout=None, connect_timeout=None,
        attempt_timeout=None, max_retry_after=None, ca_certificates=None, redis_url=None, redis_key_prefix=None,
        redis_token_key=None, redis_fallback_share=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        app_key: Option<String>,
        environment: Option<String>,
        auth_url: Option<String>,
        api_url: Option<String>,
        rate_limit_calls: Option<u32>,
        rate_limit_period: Option<f64>,
        rate_limit_margin: Option<f64>,
        rate_limit_margin_adaptive: Option<bool>,
        report_rate_limit_calls: Option<u32>,
        report_rate_limit_period: Option<f64>,
        max_attempts: Option<u32>,
        backoff_base: Option<f64>,
        backoff_max: Option<f64>,
        timeout: Option<f64>,
        connect_timeout: Option<f64>,
        attempt_timeout: Option<f64>,
        max_retry_after: Option<f64>,
        ca_certificates: Option<Vec<String>>,
        redis_url: Option<String>,
        redis_key_prefix: Option<String>,
        redis_token_key: Option<String>,
        redis_fallback_share: Option<f64>,
    ) -> PyResult<Self> {
        let settings = Settings {
            app_key,
            environment,
            auth_url,
            api_url,
            rate_limit_calls,
            rate_limit_period,
            rate_limit_margin,
            rate_limit_margin_adaptive,
            report_rate_limit_calls,
            report_rate_limit_period,
            max_attempts,
            backoff_base,
            backoff_max,
            timeout,
            connect_timeout,
            attempt_timeout,
            max_retry_after,
            ca_certificates,
            redis_url,
            redis_key_prefix,
            redis_token_key,
            redis_fallback_share,
        };
        Ok(Client { core: ClientCore::new(py, settings)? })
    }

    /// A client configured from environment variables only (`ST_APP_KEY`, `ST_ENVIRONMENT` or
    /// `ST_AUTH_URL` + `ST_API_URL`, ...).
    #[classmethod]
    fn from_env(_cls: &Bound<'_, PyType>, py: Python<'_>) -> PyResult<Self> {
        Ok(Client { core: ClientCore::new(py, Settings::default())? })
    }

    /// A handle on one tenant; credentials left out come from `ST_TENANT_ID`, `ST_CLIENT_ID`,
    /// `ST_CLIENT_SECRET`. Invalid ones raise `ConfigurationError` at once.
    #[pyo3(signature = (tenant_id=None, *, client_id=None, client_secret=None))]
    fn tenant(
        &self,
        tenant_id: Option<i64>,
        client_id: Option<String>,
        client_secret: Option<String>,
    ) -> PyResult<Tenant> {
        Ok(Tenant { core: self.core.tenant(tenant_id, client_id, client_secret)? })
    }

    /// Counters since the client was made: `requests`, `retries`, `token_fetches`,
    /// `rate_limited` (429s seen) and `throttle_wait_s`.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.core.stats(py)
    }

    fn __repr__(&self) -> PyResult<String> {
        self.core.repr("Client")
    }
}

/// One tenant of a `Client`. Paths are relative to the tenant: `"crm/customers"` is
/// `{api}/crm/v2/tenant/{tenant}/customers`.
#[pyclass(module = "servicetitan._native", frozen)]
pub(crate) struct Tenant {
    core: Arc<TenantCore>,
}

/// Sends a call, blocking with the GIL released, and decodes the answer.
fn send(py: Python<'_>, request: PyResult<RequestBuilder>) -> PyResult<Bound<'_, PyAny>> {
    let body = wait(py, request?.send_bytes())?.map_err(to_py)?;
    json_to_py(py, &body)
}

#[pymethods]
impl Tenant {
    /// The tenant id.
    #[getter]
    fn id(&self) -> i64 {
        self.core.credentials.tenant_id()
    }

    /// GET `path`; returns the parsed JSON.
    #[pyo3(signature = (path, *, params=None, timeout=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        path: String,
        params: Option<&Bound<'py, PyAny>>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        send(py, self.core.request(Method::GET, path, params, None, false, timeout))
    }

    /// POST `json` to `path`. Not resent after a 5xx, timeout or lost connection unless
    /// `safe_to_retry=True` (a 429 is always resent: it was not processed).
    #[pyo3(signature = (path, *, params=None, json=None, safe_to_retry=false, timeout=None))]
    fn post<'py>(
        &self,
        py: Python<'py>,
        path: String,
        params: Option<&Bound<'py, PyAny>>,
        json: Option<&Bound<'py, PyAny>>,
        safe_to_retry: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        send(py, self.core.request(Method::POST, path, params, json, safe_to_retry, timeout))
    }

    /// PUT `json` to `path`.
    #[pyo3(signature = (path, *, params=None, json=None, timeout=None))]
    fn put<'py>(
        &self,
        py: Python<'py>,
        path: String,
        params: Option<&Bound<'py, PyAny>>,
        json: Option<&Bound<'py, PyAny>>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        send(py, self.core.request(Method::PUT, path, params, json, false, timeout))
    }

    /// PATCH `path` with `json` (not resent after a 5xx unless `safe_to_retry=True`).
    #[pyo3(signature = (path, *, params=None, json=None, safe_to_retry=false, timeout=None))]
    fn patch<'py>(
        &self,
        py: Python<'py>,
        path: String,
        params: Option<&Bound<'py, PyAny>>,
        json: Option<&Bound<'py, PyAny>>,
        safe_to_retry: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        send(py, self.core.request(Method::PATCH, path, params, json, safe_to_retry, timeout))
    }

    /// DELETE `path`.
    #[pyo3(signature = (path, *, params=None, timeout=None))]
    fn delete<'py>(
        &self,
        py: Python<'py>,
        path: String,
        params: Option<&Bound<'py, PyAny>>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        send(py, self.core.request(Method::DELETE, path, params, None, false, timeout))
    }

    /// Every record of a page-based list, page after page (the next page is fetched while this
    /// one is consumed).
    #[pyo3(signature = (path, *, params=None, page_size=None))]
    fn paginate(&self, path: String, params: Option<&Bound<'_, PyAny>>, page_size: Option<u32>) -> PyResult<Records> {
        Ok(Records::new(self.core.paginate(path, params, page_size)?, None))
    }

    /// An export feed: every record until the feed has caught up. `since` is a saved
    /// `continue_from` or a date; `feed.continue_from` is the checkpoint to save afterwards.
    #[pyo3(signature = (path, *, since=None, params=None))]
    fn export(
        &self,
        path: String,
        since: Option<&Bound<'_, PyAny>>,
        params: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Records> {
        let (pages, since) = self.core.export(path, crate::convert::since_text(since)?, params)?;
        Ok(Records::new(pages, since))
    }

    /// Every row of a report as a dict keyed by the report's field names, run under the
    /// per-report rate limit.
    #[pyo3(signature = (category, report_id, *, parameters=None))]
    fn report<'py>(
        &self,
        py: Python<'py>,
        category: String,
        report_id: i64,
        parameters: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let query = self.core.report(category, report_id, parameters)?;
        let rows = wait(py, query.records())?.map_err(to_py)?;
        Rows(rows).into_pyobject(py)
    }

    /// The report categories, as dicts (``id``, ``name``).
    fn report_categories<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let tenant = self.core.engine()?;
        let categories = wait(py, tenant.report_categories())?.map_err(to_py)?;
        AsJson(categories).into_pyobject(py)
    }

    /// The reports of a category, as dicts (``id``, ``name``, ``description``).
    fn reports<'py>(&self, py: Python<'py>, category: String) -> PyResult<Bound<'py, PyAny>> {
        let tenant = self.core.engine()?;
        let reports = wait(py, tenant.reports(&category))?.map_err(to_py)?;
        AsJson(reports).into_pyobject(py)
    }

    /// A report's description as a dict: ``id``, ``name``, ``description``, ``parameters`` and
    /// ``fields``.
    fn report_metadata<'py>(&self, py: Python<'py>, category: String, report_id: i64) -> PyResult<Bound<'py, PyAny>> {
        let tenant = self.core.engine()?;
        let metadata = wait(py, tenant.report_metadata(&category, report_id))?.map_err(to_py)?;
        AsJson(metadata).into_pyobject(py)
    }

    fn __repr__(&self) -> String {
        self.core.repr("Tenant")
    }
}

// ---------------------------------------------------------------------------------------------
// Record iteration (shared by the blocking and asyncio streams)

/// The page being handed out, and the export checkpoint: the `continueFrom` of the last page
/// whose records have all been handed out (the engine's `RecordStream` rule).
#[derive(Default)]
struct Buffer {
    page: Option<Py<PyList>>,
    next: usize,
    page_checkpoint: Option<String>,
    checkpoint: Option<String>,
    done: bool,
    /// A fetched page whose `__anext__` was cancelled before it reached Python: handed out by the
    /// next `__anext__`, so no page is lost and the checkpoint never skips one.
    stashed: Option<Option<servicetitan::Result<RawPage>>>,
}

impl Buffer {
    fn pop<'py>(&mut self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        let page = self.page.as_ref()?.bind(py);
        let record = page.get_item(self.next).ok()?;
        self.next += 1;
        if self.next >= page.len() {
            // Handed out whole: drop our reference so consumed records can be freed.
            self.page = None;
            if let Some(c) = self.page_checkpoint.take() {
                self.checkpoint = Some(c);
            }
        }
        Some(record)
    }

    fn load(&mut self, py: Python<'_>, page: RawPage) -> PyResult<()> {
        let records = page_data_to_py(py, &page.body)?;
        if records.is_empty() {
            if page.continue_from.is_some() {
                self.checkpoint = page.continue_from;
            }
        } else {
            self.page = Some(records.unbind());
            self.next = 0;
            self.page_checkpoint = page.continue_from;
        }
        Ok(())
    }
}

/// What a page stream made before a fork cannot be used after it.
fn forked_stream_error() -> PyErr {
    configuration_error("stream", "this stream was started before the process forked; start a new one in this process")
}

/// The records of `tenant.paginate(...)` or `tenant.export(...)`: iterate it; for exports,
/// `continue_from` is the checkpoint to save.
#[pyclass(module = "servicetitan._native")]
pub(crate) struct Records {
    pages: ForkLeaked<PageStream<RawPage>>,
    buffer: Buffer,
}

impl Records {
    fn new(pages: PageStream<RawPage>, since: Option<String>) -> Self {
        Records { pages: ForkLeaked::new(pages), buffer: Buffer { checkpoint: since, ..Buffer::default() } }
    }
}

#[pymethods]
impl Records {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        loop {
            if let Some(record) = self.buffer.pop(py) {
                return Ok(Some(record));
            }
            if self.buffer.done {
                return Ok(None);
            }
            let pages = self.pages.get_mut().ok_or_else(forked_stream_error)?;
            let next = wait(py, futures::StreamExt::next(pages))?;
            match next {
                None => self.buffer.done = true,
                Some(Err(e)) => {
                    self.buffer.done = true;
                    return Err(to_py(e));
                }
                Some(Ok(page)) => self.buffer.load(py, page)?,
            }
        }
    }

    /// For exports: the `continueFrom` of the last page fully handed out (or the `since` the
    /// feed started from). `None` for lists.
    #[getter]
    fn continue_from(&self) -> Option<String> {
        self.buffer.checkpoint.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// asyncio API

/// The asyncio client: the same methods as `Client`, awaited; `paginate` and `export` are async
/// iterators. Cancelling the awaiting task cancels the call.
#[pyclass(module = "servicetitan._native", frozen)]
pub(crate) struct AsyncClient {
    core: Arc<ClientCore>,
}

#[pymethods]
impl AsyncClient {
    #[new]
    #[pyo3(signature = (app_key=None, *, environment=None, auth_url=None, api_url=None, rate_limit_calls=None,
        rate_limit_period=None, rate_limit_margin=None, rate_limit_margin_adaptive=None, report_rate_limit_calls=None, report_rate_limit_period=None,
        max_attempts=None, backoff_base=None, backoff_max=None, timeout=None, connect_timeout=None,
        attempt_timeout=None, max_retry_after=None, ca_certificates=None, redis_url=None, redis_key_prefix=None,
        redis_token_key=None, redis_fallback_share=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        app_key: Option<String>,
        environment: Option<String>,
        auth_url: Option<String>,
        api_url: Option<String>,
        rate_limit_calls: Option<u32>,
        rate_limit_period: Option<f64>,
        rate_limit_margin: Option<f64>,
        rate_limit_margin_adaptive: Option<bool>,
        report_rate_limit_calls: Option<u32>,
        report_rate_limit_period: Option<f64>,
        max_attempts: Option<u32>,
        backoff_base: Option<f64>,
        backoff_max: Option<f64>,
        timeout: Option<f64>,
        connect_timeout: Option<f64>,
        attempt_timeout: Option<f64>,
        max_retry_after: Option<f64>,
        ca_certificates: Option<Vec<String>>,
        redis_url: Option<String>,
        redis_key_prefix: Option<String>,
        redis_token_key: Option<String>,
        redis_fallback_share: Option<f64>,
    ) -> PyResult<Self> {
        let settings = Settings {
            app_key,
            environment,
            auth_url,
            api_url,
            rate_limit_calls,
            rate_limit_period,
            rate_limit_margin,
            rate_limit_margin_adaptive,
            report_rate_limit_calls,
            report_rate_limit_period,
            max_attempts,
            backoff_base,
            backoff_max,
            timeout,
            connect_timeout,
            attempt_timeout,
            max_retry_after,
            ca_certificates,
            redis_url,
            redis_key_prefix,
            redis_token_key,
            redis_fallback_share,
        };
        Ok(AsyncClient { core: ClientCore::new(py, settings)? })
    }

    /// An asyncio client configured from environment variables only.
    #[classmethod]
    fn from_env(_cls: &Bound<'_, PyType>, py: Python<'_>) -> PyResult<Self> {
        Ok(AsyncClient { core: ClientCore::new(py, Settings::default())? })
    }

    /// A handle on one tenant (see `Client.tenant`).
    #[pyo3(signature = (tenant_id=None, *, client_id=None, client_secret=None))]
    fn tenant(
        &self,
        tenant_id: Option<i64>,
        client_id: Option<String>,
        client_secret: Option<String>,
    ) -> PyResult<AsyncTenant> {
        Ok(AsyncTenant { core: self.core.tenant(tenant_id, client_id, client_secret)? })
    }

    /// Counters since the client was made (see `Client.stats`).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.core.stats(py)
    }

    fn __repr__(&self) -> PyResult<String> {
        self.core.repr("AsyncClient")
    }
}

/// One tenant of an `AsyncClient`.
#[pyclass(module = "servicetitan._native", frozen)]
pub(crate) struct AsyncTenant {
    core: Arc<TenantCore>,
}

/// Starts a call as an asyncio future resolving to the decoded answer.
fn send_async(py: Python<'_>, request: PyResult<RequestBuilder>) -> PyResult<Bound<'_, PyAny>> {
    let request = request?;
    to_asyncio(py, async move { Ok(Outcome(request.send_bytes().await.map(Body))) })
}

#[pymethods]
impl AsyncTenant {
    /// The tenant id.
    #[getter]
    fn id(&self) -> i64 {
        self.core.credentials.tenant_id()
    }

    /// GET `path`; resolves to the parsed JSON.
    #[pyo3(signature = (path, *, params=None, timeout=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        path: String,
        params: Option<&Bound<'py, PyAny>>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        send_async(py, self.core.request(Method::GET, path, params, None, false, timeout))
    }

    /// POST `json` to `path` (see `Tenant.post`).
    #[pyo3(signature = (path, *, params=None, json=None, safe_to_retry=false, timeout=None))]
    fn post<'py>(
        &self,
        py: Python<'py>,
        path: String,
        params: Option<&Bound<'py, PyAny>>,
        json: Option<&Bound<'py, PyAny>>,
        safe_to_retry: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        send_async(py, self.core.request(Method::POST, path, params, json, safe_to_retry, timeout))
    }

    /// PUT `json` to `path`.
    #[pyo3(signature = (path, *, params=None, json=None, timeout=None))]
    fn put<'py>(
        &self,
        py: Python<'py>,
        path: String,
        params: Option<&Bound<'py, PyAny>>,
        json: Option<&Bound<'py, PyAny>>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        send_async(py, self.core.request(Method::PUT, path, params, json, false, timeout))
    }

    /// PATCH `path` with `json`.
    #[pyo3(signature = (path, *, params=None, json=None, safe_to_retry=false, timeout=None))]
    fn patch<'py>(
        &self,
        py: Python<'py>,
        path: String,
        params: Option<&Bound<'py, PyAny>>,
        json: Option<&Bound<'py, PyAny>>,
        safe_to_retry: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        send_async(py, self.core.request(Method::PATCH, path, params, json, safe_to_retry, timeout))
    }

    /// DELETE `path`.
    #[pyo3(signature = (path, *, params=None, timeout=None))]
    fn delete<'py>(
        &self,
        py: Python<'py>,
        path: String,
        params: Option<&Bound<'py, PyAny>>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        send_async(py, self.core.request(Method::DELETE, path, params, None, false, timeout))
    }

    /// Every record of a page-based list, as an async iterator.
    #[pyo3(signature = (path, *, params=None, page_size=None))]
    fn paginate(
        &self,
        path: String,
        params: Option<&Bound<'_, PyAny>>,
        page_size: Option<u32>,
    ) -> PyResult<AsyncRecords> {
        Ok(AsyncRecords::new(self.core.paginate(path, params, page_size)?, None))
    }

    /// An export feed as an async iterator, with `continue_from` (see `Tenant.export`).
    #[pyo3(signature = (path, *, since=None, params=None))]
    fn export(
        &self,
        path: String,
        since: Option<&Bound<'_, PyAny>>,
        params: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<AsyncRecords> {
        let (pages, since) = self.core.export(path, crate::convert::since_text(since)?, params)?;
        Ok(AsyncRecords::new(pages, since))
    }

    /// Every row of a report as a dict (see `Tenant.report`).
    #[pyo3(signature = (category, report_id, *, parameters=None))]
    fn report<'py>(
        &self,
        py: Python<'py>,
        category: String,
        report_id: i64,
        parameters: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let query = self.core.report(category, report_id, parameters)?;
        to_asyncio(py, async move { Ok(Outcome(query.records().await.map(Rows))) })
    }

    /// The report categories (see `Tenant.report_categories`).
    fn report_categories<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let tenant = self.core.engine()?;
        to_asyncio(py, async move { Ok(Outcome(tenant.report_categories().await.map(AsJson))) })
    }

    /// The reports of a category (see `Tenant.reports`).
    fn reports<'py>(&self, py: Python<'py>, category: String) -> PyResult<Bound<'py, PyAny>> {
        let tenant = self.core.engine()?;
        to_asyncio(py, async move { Ok(Outcome(tenant.reports(&category).await.map(AsJson))) })
    }

    /// A report's description (see `Tenant.report_metadata`).
    fn report_metadata<'py>(&self, py: Python<'py>, category: String, report_id: i64) -> PyResult<Bound<'py, PyAny>> {
        let tenant = self.core.engine()?;
        to_asyncio(py, async move { Ok(Outcome(tenant.report_metadata(&category, report_id).await.map(AsJson))) })
    }

    fn __repr__(&self) -> String {
        self.core.repr("AsyncTenant")
    }
}

/// An awaitable that is already complete: `__anext__` returns one while records are buffered,
/// so iterating a page costs no trip through the event loop.
#[pyclass(module = "servicetitan._native")]
pub(crate) struct Ready {
    value: Option<Py<PyAny>>,
}

#[pymethods]
impl Ready {
    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self) -> PyResult<()> {
        Err(PyStopIteration::new_err((self.value.take(),)))
    }
}

type SharedPages = Arc<tokio::sync::Mutex<ForkLeaked<PageStream<RawPage>>>>;

/// The records of `tenant.paginate(...)` or `tenant.export(...)` on an `AsyncTenant`: use
/// `async for`; for exports, `continue_from` is the checkpoint to save.
#[pyclass(module = "servicetitan._native", frozen)]
pub(crate) struct AsyncRecords {
    pages: SharedPages,
    buffer: Arc<Mutex<Buffer>>,
}

impl AsyncRecords {
    fn new(pages: PageStream<RawPage>, since: Option<String>) -> Self {
        AsyncRecords {
            pages: Arc::new(tokio::sync::Mutex::new(ForkLeaked::new(pages))),
            buffer: Arc::new(Mutex::new(Buffer { checkpoint: since, ..Buffer::default() })),
        }
    }
}

/// The next page, arriving in Python: loaded into the buffer with the GIL held, nothing handed
/// out. A record is popped only by the coroutine that awaited this (see [`NEXT_AFTER_FILL`]), so
/// asyncio cancelling at any moment loses nothing: a page not yet converted is stashed, one
/// converted stays in the buffer.
struct Arrival {
    /// The stream's next item (`None`: the end); taken when it reaches Python.
    page: Option<Option<servicetitan::Result<RawPage>>>,
    buffer: Arc<Mutex<Buffer>>,
    /// The stream, held until the page is in the buffer or stashed, so that the next fill cannot
    /// overtake it and pages always reach the caller in order.
    _stream: tokio::sync::OwnedMutexGuard<ForkLeaked<PageStream<RawPage>>>,
}

impl Drop for Arrival {
    fn drop(&mut self) {
        // Never converted: the asyncio task was cancelled after the page was fetched. The next
        // fill (which waits for the stream) loads it first.
        if let Some(page) = self.page.take() {
            self.buffer.lock().unwrap_or_else(|p| p.into_inner()).stashed = Some(page);
        }
    }
}

impl<'py> IntoPyObject<'py> for Arrival {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let page = self.page.take();
        let mut buffer = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        match page.flatten() {
            None => buffer.done = true,
            Some(Err(e)) => {
                buffer.done = true;
                return Err(to_py(e));
            }
            Some(Ok(raw)) => buffer.load(py, raw)?,
        }
        Ok(py.None().into_bound(py))
    }
}

/// Loads the next page into the buffer, unless records (or the end) are already there.
fn fill<'py>(py: Python<'py>, pages: SharedPages, buffer: Arc<Mutex<Buffer>>) -> PyResult<Bound<'py, PyAny>> {
    to_asyncio(py, async move {
        let mut guard = pages.lock_owned().await;
        // An earlier fill, cancelled after its page arrived, may have loaded or stashed one.
        let (loaded, stashed) = {
            let mut b = buffer.lock().unwrap_or_else(|p| p.into_inner());
            let loaded = b.page.is_some() || b.done;
            (loaded, if loaded { None } else { b.stashed.take() })
        };
        let page = match (loaded, stashed) {
            (true, _) => None,
            (false, Some(page)) => Some(page),
            (false, None) => {
                let Some(stream) = guard.get_mut() else {
                    return Err(forked_stream_error());
                };
                Some(futures::StreamExt::next(stream).await)
            }
        };
        Ok(Arrival { page, buffer, _stream: guard })
    })
}

/// `__anext__` when the buffer is empty: fill, then pop, in a coroutine of the caller's task,
/// so that a record is only ever taken by the code that returns it.
const NEXT_AFTER_FILL: &std::ffi::CStr = c"
async def next_after_fill(records):
    while True:
        await records._fill()
        record = records._pop()
        if record is not None:
            return record
";

static NEXT_AFTER_FILL_FN: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();

#[pymethods]
impl AsyncRecords {
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        if let Some(record) = slf.get()._pop(py)? {
            return Ok(Bound::new(py, Ready { value: Some(record.unbind()) })?.into_any());
        }
        let next = NEXT_AFTER_FILL_FN.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
            let globals = pyo3::types::PyDict::new(py);
            py.run(NEXT_AFTER_FILL, Some(&globals), None)?;
            Ok(globals.get_item("next_after_fill")?.expect("defined above").unbind())
        })?;
        next.bind(py).call1((slf,))
    }

    /// The next buffered record; `None` if a page must be loaded first (`_fill`); the end of
    /// iteration raised once the stream is done.
    fn _pop<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let mut buffer = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(record) = buffer.pop(py) {
            return Ok(Some(record));
        }
        if buffer.done {
            return Err(PyStopAsyncIteration::new_err(()));
        }
        Ok(None)
    }

    /// Loads the next page into the buffer (an awaitable of `None`).
    fn _fill<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        fill(py, self.pages.clone(), self.buffer.clone())
    }

    /// For exports: the `continueFrom` of the last page fully handed out (or the `since` the
    /// feed started from). `None` for lists.
    #[getter]
    fn continue_from(&self) -> Option<String> {
        self.buffer.lock().unwrap_or_else(|p| p.into_inner()).checkpoint.clone()
    }
}
