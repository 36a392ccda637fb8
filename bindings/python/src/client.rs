//! `Client`/`Tenant` (blocking, GIL released) and `AsyncClient`/`AsyncTenant` (asyncio). Both
//! pairs are one definition (`client_classes!`) over a [`Flavor`], the only thing that differs:
//! how a call's result reaches Python. Each method converts its arguments, calls the engine, and
//! converts the result or the error.

use std::future::Future;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyType};
use servicetitan::{ClientBuilder, Method, RawRecord, RecordStream, RequestBuilder, TenantCredentials};

use crate::args;
use crate::client_settings::{seconds, Settings};
use crate::convert::{AsJson, Body, Outcome, Rows};
use crate::errors::to_py;
use crate::runtime::{to_asyncio, wait, PerProcess};
use crate::stream::{AsyncRecords, Records};
use crate::values::{json_body, params_to_pairs};

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
// Blocking or asyncio

/// How a call's result reaches Python: the one difference between `Client` and `AsyncClient`.
pub(crate) trait Flavor {
    /// Runs `call`. Blocking: its result, the GIL released meanwhile and Ctrl-C honoured.
    /// Asyncio: an awaitable of it; cancelling the awaiting task drops `call`.
    fn run<'py, T>(
        py: Python<'py>,
        call: impl Future<Output = servicetitan::Result<T>> + Send + 'static,
    ) -> PyResult<Bound<'py, PyAny>>
    where
        T: Send + 'static,
        Outcome<T>: for<'a> IntoPyObject<'a, Output = Bound<'a, PyAny>, Error = PyErr>;

    /// An export feed as `tenant.call` returns it: the record stream, or an awaitable of it.
    fn feed(py: Python<'_>, stream: RecordStream<RawRecord>) -> PyResult<Bound<'_, PyAny>>;
}

/// `Client` and `Tenant`.
pub(crate) struct Blocking;

impl Flavor for Blocking {
    fn run<'py, T>(
        py: Python<'py>,
        call: impl Future<Output = servicetitan::Result<T>> + Send + 'static,
    ) -> PyResult<Bound<'py, PyAny>>
    where
        T: Send + 'static,
        Outcome<T>: for<'a> IntoPyObject<'a, Output = Bound<'a, PyAny>, Error = PyErr>,
    {
        Outcome(wait(py, call)?).into_pyobject(py)
    }

    fn feed(py: Python<'_>, stream: RecordStream<RawRecord>) -> PyResult<Bound<'_, PyAny>> {
        Ok(Bound::new(py, Records::new(stream))?.into_any())
    }
}

/// `AsyncClient` and `AsyncTenant`.
pub(crate) struct Asyncio;

impl Flavor for Asyncio {
    fn run<'py, T>(
        py: Python<'py>,
        call: impl Future<Output = servicetitan::Result<T>> + Send + 'static,
    ) -> PyResult<Bound<'py, PyAny>>
    where
        T: Send + 'static,
        Outcome<T>: for<'a> IntoPyObject<'a, Output = Bound<'a, PyAny>, Error = PyErr>,
    {
        to_asyncio(py, async move { Ok(Outcome(call.await)) })
    }

    fn feed(py: Python<'_>, stream: RecordStream<RawRecord>) -> PyResult<Bound<'_, PyAny>> {
        let records = AsyncRecords::new(stream);
        to_asyncio(py, async move { Ok(records) })
    }
}

// ---------------------------------------------------------------------------------------------
// The classes

/// A client class and its tenant class over a [`Flavor`]; `$records` is the class of their
/// record streams. Docstrings say what a blocking call returns; the asyncio class returns an
/// awaitable of the same (and async iterators for streams).
macro_rules! client_classes {
    (
        $(#[$client_doc:meta])* client $client:ident,
        $(#[$tenant_doc:meta])* tenant $tenant:ident,
        flavor $flavor:ty, records $records:ident
    ) => {
        $(#[$client_doc])*
        #[pyclass(module = "servicetitan._native", frozen)]
        pub(crate) struct $client {
            core: Arc<ClientCore>,
        }

        #[pymethods]
        impl $client {
            #[new]
            #[pyo3(signature = (app_key=None, *, environment=None, auth_url=None, api_url=None, rate_limit_calls=None,
                rate_limit_period=None, rate_limit_margin=None, rate_limit_margin_adaptive=None,
                report_rate_limit_calls=None, report_rate_limit_period=None, max_attempts=None, backoff_base=None,
                backoff_max=None, timeout=None, connect_timeout=None, attempt_timeout=None, max_retry_after=None,
                ca_certificates=None, redis_url=None, redis_key_prefix=None, redis_token_key=None,
                redis_fallback_share=None))]
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
                Ok($client { core: ClientCore::new(py, settings)? })
            }

            /// A client configured from environment variables only (`ST_APP_KEY`, `ST_ENVIRONMENT`
            /// or `ST_AUTH_URL` + `ST_API_URL`, ...).
            #[classmethod]
            fn from_env(_cls: &Bound<'_, PyType>, py: Python<'_>) -> PyResult<Self> {
                Ok($client { core: ClientCore::new(py, Settings::default())? })
            }

            /// A handle on one tenant; credentials left out come from `ST_TENANT_ID`,
            /// `ST_CLIENT_ID`, `ST_CLIENT_SECRET`. Invalid ones raise `ConfigurationError` at once.
            #[pyo3(signature = (tenant_id=None, *, client_id=None, client_secret=None))]
            fn tenant(
                &self,
                #[pyo3(from_py_with = args::tenant_id)] tenant_id: Option<i64>,
                client_id: Option<String>,
                client_secret: Option<String>,
            ) -> PyResult<$tenant> {
                Ok($tenant { core: self.core.tenant(tenant_id, client_id, client_secret)? })
            }

            /// Counters since the client was made: `requests`, `retries`, `token_fetches`,
            /// `rate_limited` (429s seen) and `throttle_wait_s`.
            fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
                self.core.stats(py)
            }

            fn __repr__(&self) -> PyResult<String> {
                self.core.repr(stringify!($client))
            }
        }

        $(#[$tenant_doc])*
        #[pyclass(module = "servicetitan._native", frozen)]
        pub(crate) struct $tenant {
            core: Arc<TenantCore>,
        }

        #[pymethods]
        impl $tenant {
            /// The tenant id.
            #[getter]
            fn id(&self) -> i64 {
                self.core.credentials.tenant_id()
            }

            /// GET `path`: the parsed JSON.
            #[pyo3(signature = (path, *, params=None, timeout=None))]
            fn get<'py>(
                &self,
                py: Python<'py>,
                path: String,
                params: Option<&Bound<'py, PyAny>>,
                #[pyo3(from_py_with = args::timeout)] timeout: Option<f64>,
            ) -> PyResult<Bound<'py, PyAny>> {
                send::<$flavor>(py, self.core.request(Method::GET, path, params, None, false, timeout))
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
                send::<$flavor>(py, self.core.request(Method::POST, path, params, json, safe_to_retry, timeout))
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
                send::<$flavor>(py, self.core.request(Method::PUT, path, params, json, false, timeout))
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
                send::<$flavor>(py, self.core.request(Method::PATCH, path, params, json, safe_to_retry, timeout))
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
                send::<$flavor>(py, self.core.request(Method::DELETE, path, params, None, false, timeout))
            }

            /// Every record of a page-based list, page after page (the next page is fetched while
            /// this one is consumed).
            #[pyo3(signature = (path, *, params=None, page_size=None))]
            fn paginate(
                &self,
                path: String,
                params: Option<&Bound<'_, PyAny>>,
                #[pyo3(from_py_with = args::page_size)] page_size: Option<u32>,
            ) -> PyResult<$records> {
                Ok($records::new(self.core.paginate(path, params, page_size)?))
            }

            /// An export feed: every record until the feed has caught up. `since` is a saved
            /// `continue_from` or a date; `feed.continue_from` is the checkpoint to save afterwards.
            #[pyo3(signature = (path, *, since=None, params=None))]
            fn export(
                &self,
                path: String,
                since: Option<&Bound<'_, PyAny>>,
                params: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<$records> {
                Ok($records::new(self.core.export(path, crate::convert::since_text(since)?, params)?))
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
            ) -> PyResult<Bound<'py, PyAny>> {
                let query = self.core.report(category, report_id, parameters)?;
                <$flavor>::run(py, async move { query.records().await.map(Rows) })
            }

            /// The report categories, as dicts (``id``, ``name``).
            fn report_categories<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                let tenant = self.core.engine()?;
                <$flavor>::run(py, async move { tenant.report_categories().await.map(AsJson) })
            }

            /// The reports of a category, as dicts (``id``, ``name``, ``description``).
            fn reports<'py>(&self, py: Python<'py>, category: String) -> PyResult<Bound<'py, PyAny>> {
                let tenant = self.core.engine()?;
                <$flavor>::run(py, async move { tenant.reports(&category).await.map(AsJson) })
            }

            /// A report's description as a dict: ``id``, ``name``, ``description``,
            /// ``parameters`` and ``fields``.
            fn report_metadata<'py>(
                &self,
                py: Python<'py>,
                category: String,
                #[pyo3(from_py_with = args::report_id)] report_id: i64,
            ) -> PyResult<Bound<'py, PyAny>> {
                let tenant = self.core.engine()?;
                <$flavor>::run(py, async move { tenant.report_metadata(&category, report_id).await.map(AsJson) })
            }

            /// Calls the operation named `operation` (`crm.customers.get_list`) with `params` (its
            /// parameters by their Python names) and `body`: the answer (one page for a list),
            /// bytes for a file, the feed for an export. `tenant.crm.customers.get_list(...)` is
            /// the same call.
            #[pyo3(signature = (operation, params=None, body=None))]
            fn call<'py>(
                &self,
                py: Python<'py>,
                operation: &str,
                params: Option<&Bound<'py, PyAny>>,
                body: Option<&Bound<'py, PyAny>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                crate::panics::catch(|| crate::operations::call::<$flavor>(py, &self.core, operation, params, body))
            }

            /// Every record of a list operation (from its `page`) or an export (from its `since`).
            #[pyo3(signature = (operation, params=None))]
            fn records(&self, operation: &str, params: Option<&Bound<'_, PyAny>>) -> PyResult<$records> {
                crate::panics::catch(|| Ok($records::new(crate::operations::records(&self.core, operation, params)?)))
            }

            /// `tenant.crm` and the other modules' operations.
            fn __getattr__<'py>(slf: &Bound<'py, Self>, name: &str) -> PyResult<Bound<'py, PyAny>> {
                crate::operations::module(slf.as_any(), name)
            }

            fn __repr__(&self) -> String {
                self.core.repr(stringify!($tenant))
            }
        }
    };
}

/// Sends a call and decodes the answer (see [`Flavor::run`]).
fn send<F: Flavor>(py: Python<'_>, request: PyResult<RequestBuilder>) -> PyResult<Bound<'_, PyAny>> {
    let request = request?;
    F::run(py, async move { request.send_body().await.map(Body) })
}

client_classes! {
    /// A ServiceTitan API client for one app key, serving any number of tenants. Thread-safe:
    /// share one per app. Calls block with the GIL released; Ctrl-C interrupts them.
    client Client,
    /// One tenant of a `Client`. Paths are relative to the tenant: `"crm/customers"` is
    /// `{api}/crm/v2/tenant/{tenant}/customers`.
    tenant Tenant,
    flavor Blocking, records Records
}

client_classes! {
    /// The asyncio client: the same methods as `Client`, awaited; `paginate` and `export` are
    /// async iterators. Cancelling the awaiting task cancels the call.
    client AsyncClient,
    /// One tenant of an `AsyncClient`.
    tenant AsyncTenant,
    flavor Asyncio, records AsyncRecords
}
