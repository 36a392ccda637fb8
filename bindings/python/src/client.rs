//! `Client`/`Tenant` (blocking, GIL released) and `AsyncClient`/`AsyncTenant` (asyncio): each
//! method converts its arguments, calls the engine, and converts the result or the error.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyType};
use servicetitan::{ClientBuilder, Method, RawRecord, RecordStream, RequestBuilder, TenantCredentials};

use crate::args;
use crate::convert::{json_to_py, AsJson, Body, Outcome, Rows};
use crate::errors::{configuration_error, to_py};
use crate::runtime::{to_asyncio, wait, PerProcess};
use crate::stream::{AsyncRecords, Records};
use crate::values::{json_body, params_to_pairs};

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
        // Each half of a pair on its own: the engine takes a missing one from its environment
        // variable, then its default.
        if let Some(v) = self.rate_limit_calls {
            b = b.rate_limit_calls(v);
        }
        if let Some(v) = self.rate_limit_period {
            b = b.rate_limit_period(seconds("rate_limit_period", v)?);
        }
        if let Some(v) = self.rate_limit_margin {
            b = b.rate_limit_margin(seconds("rate_limit_margin", v)?);
        }
        if let Some(on) = self.rate_limit_margin_adaptive {
            b = b.rate_limit_margin_adaptive(on);
        }
        if let Some(v) = self.report_rate_limit_calls {
            b = b.report_rate_limit_calls(v);
        }
        if let Some(v) = self.report_rate_limit_period {
            b = b.report_rate_limit_period(seconds("report_rate_limit_period", v)?);
        }
        if let Some(v) = self.max_attempts {
            b = b.max_attempts(v);
        }
        if let Some(v) = self.backoff_base {
            b = b.backoff_base(seconds("backoff_base", v)?);
        }
        if let Some(v) = self.backoff_max {
            b = b.backoff_max(seconds("backoff_max", v)?);
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
        let engine = crate::panics::catch(|| py.detach(|| builder.clone().build()).map_err(to_py))?;
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
        crate::panics::catch(|| {
            let credentials = TenantCredentials::resolve(tenant_id, client_id, client_secret).map_err(to_py)?;
            let engine = self.engine()?.tenant(credentials.clone());
            Ok(Arc::new(TenantCore { client: self.clone(), credentials, engine: PerProcess::new(engine) }))
        })
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
    pub(crate) fn engine(&self) -> PyResult<servicetitan::Tenant> {
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
            request = request.json_value(Some(json_body(json)?));
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
    ) -> PyResult<RecordStream<RawRecord>> {
        let mut list = self.engine()?.paginate::<serde::de::IgnoredAny>(path).param_pairs(params_to_pairs(params)?);
        if let Some(size) = page_size {
            list = list.page_size(size);
        }
        Ok(list.raw_records())
    }

    fn export(
        &self,
        path: String,
        since: Option<String>,
        params: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<RecordStream<RawRecord>> {
        let mut feed = self.engine()?.export::<serde::de::IgnoredAny>(path).since(since);
        for (k, v) in params_to_pairs(params)? {
            feed = feed.param(k, v);
        }
        Ok(feed.raw_records())
    }

    fn report(
        &self,
        category: String,
        report_id: i64,
        parameters: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<servicetitan::ReportQuery> {
        let mut query = self.engine()?.report(category, report_id);
        for (name, value) in crate::values::report_parameters(parameters)? {
            query = query.parameter(name, value);
        }
        Ok(query)
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
        #[pyo3(from_py_with = args::rate_limit_calls)] rate_limit_calls: Option<u32>,
        #[pyo3(from_py_with = args::rate_limit_period)] rate_limit_period: Option<f64>,
        #[pyo3(from_py_with = args::rate_limit_margin)] rate_limit_margin: Option<f64>,
        rate_limit_margin_adaptive: Option<bool>,
        #[pyo3(from_py_with = args::report_rate_limit_calls)] report_rate_limit_calls: Option<u32>,
        #[pyo3(from_py_with = args::report_rate_limit_period)] report_rate_limit_period: Option<f64>,
        #[pyo3(from_py_with = args::max_attempts)] max_attempts: Option<u32>,
        #[pyo3(from_py_with = args::backoff_base)] backoff_base: Option<f64>,
        #[pyo3(from_py_with = args::backoff_max)] backoff_max: Option<f64>,
        #[pyo3(from_py_with = args::timeout)] timeout: Option<f64>,
        #[pyo3(from_py_with = args::connect_timeout)] connect_timeout: Option<f64>,
        #[pyo3(from_py_with = args::attempt_timeout)] attempt_timeout: Option<f64>,
        #[pyo3(from_py_with = args::max_retry_after)] max_retry_after: Option<f64>,
        ca_certificates: Option<Vec<String>>,
        redis_url: Option<String>,
        redis_key_prefix: Option<String>,
        redis_token_key: Option<String>,
        #[pyo3(from_py_with = args::redis_fallback_share)] redis_fallback_share: Option<f64>,
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
        #[pyo3(from_py_with = args::tenant_id)] tenant_id: Option<i64>,
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
    let body = wait(py, request?.send_body())?.map_err(to_py)?;
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
        #[pyo3(from_py_with = args::timeout)] timeout: Option<f64>,
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
        #[pyo3(from_py_with = args::timeout)] timeout: Option<f64>,
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
        #[pyo3(from_py_with = args::timeout)] timeout: Option<f64>,
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
        #[pyo3(from_py_with = args::timeout)] timeout: Option<f64>,
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
        #[pyo3(from_py_with = args::timeout)] timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        send(py, self.core.request(Method::DELETE, path, params, None, false, timeout))
    }

    /// Every record of a page-based list, page after page (the next page is fetched while this
    /// one is consumed).
    #[pyo3(signature = (path, *, params=None, page_size=None))]
    fn paginate(
        &self,
        path: String,
        params: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = args::page_size)] page_size: Option<u32>,
    ) -> PyResult<Records> {
        Ok(Records::new(self.core.paginate(path, params, page_size)?))
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
        Ok(Records::new(self.core.export(path, crate::convert::since_text(since)?, params)?))
    }

    /// Every row of a report as a dict keyed by the report's field names, run under the
    /// per-report rate limit.
    #[pyo3(signature = (category, report_id, *, parameters=None))]
    fn report<'py>(
        &self,
        py: Python<'py>,
        category: String,
        #[pyo3(from_py_with = args::report_id)] report_id: i64,
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
    fn report_metadata<'py>(
        &self,
        py: Python<'py>,
        category: String,
        #[pyo3(from_py_with = args::report_id)] report_id: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let tenant = self.core.engine()?;
        let metadata = wait(py, tenant.report_metadata(&category, report_id))?.map_err(to_py)?;
        AsJson(metadata).into_pyobject(py)
    }

    /// Calls the operation named `operation` (`crm.customers.get_list`) with `params` (its
    /// parameters by their Python names) and `body`: the answer (one page for a list), bytes
    /// for a file, the feed for an export. `tenant.crm.customers.get_list(...)` is the same call.
    #[pyo3(signature = (operation, params=None, body=None))]
    fn call<'py>(
        &self,
        py: Python<'py>,
        operation: &str,
        params: Option<&Bound<'py, PyAny>>,
        body: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::panics::catch(|| crate::operations::call(py, &self.core, operation, params, body))
    }

    /// Every record of a list operation (from its `page`) or an export (from its `since`).
    #[pyo3(signature = (operation, params=None))]
    fn records(&self, operation: &str, params: Option<&Bound<'_, PyAny>>) -> PyResult<Records> {
        crate::panics::catch(|| Ok(Records::new(crate::operations::records(&self.core, operation, params)?)))
    }

    /// `tenant.crm` and the other modules' operations.
    fn __getattr__<'py>(slf: &Bound<'py, Self>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        crate::operations::module(slf.as_any(), name)
    }

    fn __repr__(&self) -> String {
        self.core.repr("Tenant")
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
        #[pyo3(from_py_with = args::rate_limit_calls)] rate_limit_calls: Option<u32>,
        #[pyo3(from_py_with = args::rate_limit_period)] rate_limit_period: Option<f64>,
        #[pyo3(from_py_with = args::rate_limit_margin)] rate_limit_margin: Option<f64>,
        rate_limit_margin_adaptive: Option<bool>,
        #[pyo3(from_py_with = args::report_rate_limit_calls)] report_rate_limit_calls: Option<u32>,
        #[pyo3(from_py_with = args::report_rate_limit_period)] report_rate_limit_period: Option<f64>,
        #[pyo3(from_py_with = args::max_attempts)] max_attempts: Option<u32>,
        #[pyo3(from_py_with = args::backoff_base)] backoff_base: Option<f64>,
        #[pyo3(from_py_with = args::backoff_max)] backoff_max: Option<f64>,
        #[pyo3(from_py_with = args::timeout)] timeout: Option<f64>,
        #[pyo3(from_py_with = args::connect_timeout)] connect_timeout: Option<f64>,
        #[pyo3(from_py_with = args::attempt_timeout)] attempt_timeout: Option<f64>,
        #[pyo3(from_py_with = args::max_retry_after)] max_retry_after: Option<f64>,
        ca_certificates: Option<Vec<String>>,
        redis_url: Option<String>,
        redis_key_prefix: Option<String>,
        redis_token_key: Option<String>,
        #[pyo3(from_py_with = args::redis_fallback_share)] redis_fallback_share: Option<f64>,
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
        #[pyo3(from_py_with = args::tenant_id)] tenant_id: Option<i64>,
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
    to_asyncio(py, async move { Ok(Outcome(request.send_body().await.map(Body))) })
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
        #[pyo3(from_py_with = args::timeout)] timeout: Option<f64>,
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
        #[pyo3(from_py_with = args::timeout)] timeout: Option<f64>,
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
        #[pyo3(from_py_with = args::timeout)] timeout: Option<f64>,
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
        #[pyo3(from_py_with = args::timeout)] timeout: Option<f64>,
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
        #[pyo3(from_py_with = args::timeout)] timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        send_async(py, self.core.request(Method::DELETE, path, params, None, false, timeout))
    }

    /// Every record of a page-based list, as an async iterator.
    #[pyo3(signature = (path, *, params=None, page_size=None))]
    fn paginate(
        &self,
        path: String,
        params: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = args::page_size)] page_size: Option<u32>,
    ) -> PyResult<AsyncRecords> {
        Ok(AsyncRecords::new(self.core.paginate(path, params, page_size)?))
    }

    /// An export feed as an async iterator, with `continue_from` (see `Tenant.export`).
    #[pyo3(signature = (path, *, since=None, params=None))]
    fn export(
        &self,
        path: String,
        since: Option<&Bound<'_, PyAny>>,
        params: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<AsyncRecords> {
        Ok(AsyncRecords::new(self.core.export(path, crate::convert::since_text(since)?, params)?))
    }

    /// Every row of a report as a dict (see `Tenant.report`).
    #[pyo3(signature = (category, report_id, *, parameters=None))]
    fn report<'py>(
        &self,
        py: Python<'py>,
        category: String,
        #[pyo3(from_py_with = args::report_id)] report_id: i64,
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
    fn report_metadata<'py>(
        &self,
        py: Python<'py>,
        category: String,
        #[pyo3(from_py_with = args::report_id)] report_id: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let tenant = self.core.engine()?;
        to_asyncio(py, async move { Ok(Outcome(tenant.report_metadata(&category, report_id).await.map(AsJson))) })
    }

    /// Calls an operation by name (see `Tenant.call`), awaited.
    #[pyo3(signature = (operation, params=None, body=None))]
    fn call<'py>(
        &self,
        py: Python<'py>,
        operation: &str,
        params: Option<&Bound<'py, PyAny>>,
        body: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::panics::catch(|| crate::operations::call_async(py, &self.core, operation, params, body))
    }

    /// Every record of a list or export operation, as an async iterator (see `Tenant.records`).
    #[pyo3(signature = (operation, params=None))]
    fn records(&self, operation: &str, params: Option<&Bound<'_, PyAny>>) -> PyResult<AsyncRecords> {
        crate::panics::catch(|| Ok(AsyncRecords::new(crate::operations::records(&self.core, operation, params)?)))
    }

    /// `tenant.crm` and the other modules' operations.
    fn __getattr__<'py>(slf: &Bound<'py, Self>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        crate::operations::module(slf.as_any(), name)
    }

    fn __repr__(&self) -> String {
        self.core.repr("AsyncTenant")
    }
}
