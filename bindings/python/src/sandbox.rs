//! `servicetitan.Sandbox`: the local ServiceTitan emulator, started in-process on a free port.
//!
//! Options are the sandbox's own configuration fields (see `SandboxConfig`), passed through JSON
//! so that the sandbox's validation, and its error messages, apply unchanged.

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use servicetitan_sandbox::{BackgroundSandbox, Fault, SandboxConfig, TenantConfig, WebhookSubscription};

use crate::convert::value_to_py;
use crate::errors::configuration_error;
use crate::runtime::ForkLeaked;
use crate::values::kwargs_to_value;

/// A running sandbox: the token endpoint and the API on `base_url`, with demo credentials.
#[pyclass(module = "servicetitan._native", frozen)]
pub(crate) struct Sandbox {
    server: Mutex<ForkLeaked<BackgroundSandbox>>,
    base_url: String,
    app_key: String,
    tenants: Vec<TenantConfig>,
    closed: std::sync::atomic::AtomicBool,
}

impl Sandbox {
    fn with_server<T>(&self, f: impl FnOnce(&mut BackgroundSandbox) -> T) -> PyResult<T> {
        let mut server = self.server.lock().unwrap_or_else(|p| p.into_inner());
        match server.get_mut() {
            Some(server) => Ok(f(server)),
            None => Err(configuration_error(
                "sandbox",
                "this sandbox runs in the parent process (it was started before a fork): control it from there; \
                 its URLs and credentials still work here",
            )),
        }
    }

    fn client_settings<'py>(
        &self,
        py: Python<'py>,
        settings: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let merged = PyDict::new(py);
        merged.set_item("app_key", &self.app_key)?;
        merged.set_item("auth_url", &self.base_url)?;
        merged.set_item("api_url", &self.base_url)?;
        if let Some(settings) = settings {
            merged.update(settings.as_mapping())?;
        }
        Ok(merged)
    }
}

#[pymethods]
impl Sandbox {
    /// Starts a sandbox. Keyword options override the defaults, e.g.
    /// `Sandbox(records=100_000, rate_limit={"enabled": False}, token_lifetime_secs=5)`.
    #[new]
    #[pyo3(signature = (**options))]
    fn new(py: Python<'_>, options: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let value = kwargs_to_value(options)?;
        let config: SandboxConfig = serde_json::from_value(value)
            .map_err(|e| configuration_error("options", format!("invalid sandbox option: {e}")))?;
        config.validate().map_err(|e| configuration_error("options", format!("invalid sandbox option: {e}")))?;
        let app_key = config.app_keys.first().cloned().unwrap_or_default();
        let tenants = config.tenants.clone();
        let server = py
            .detach(move || BackgroundSandbox::start(config))
            .map_err(|e| configuration_error("options", format!("the sandbox did not start: {e}")))?;
        Ok(Sandbox {
            base_url: server.base_url().to_owned(),
            server: Mutex::new(ForkLeaked::new(server)),
            app_key,
            tenants,
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// `http://127.0.0.1:PORT`: the base of both the token endpoint and the API.
    #[getter(base_url)]
    fn get_base_url(&self) -> &str {
        &self.base_url
    }

    /// The base URL to give a client as `auth_url`.
    #[getter]
    fn auth_url(&self) -> &str {
        &self.base_url
    }

    /// The base URL to give a client as `api_url`.
    #[getter]
    fn api_url(&self) -> &str {
        &self.base_url
    }

    /// The first accepted app key.
    #[getter(app_key)]
    fn get_app_key(&self) -> &str {
        &self.app_key
    }

    /// The tenants: dicts of `id`, `client_id`, `client_secret` and `scopes`.
    #[getter]
    fn tenants<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = self
            .tenants
            .iter()
            .map(|t| {
                let d = PyDict::new(py);
                d.set_item("id", t.id)?;
                d.set_item("client_id", &t.client_id)?;
                d.set_item("client_secret", &t.client_secret)?;
                d.set_item("scopes", &t.scopes)?;
                Ok(d)
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// Keyword arguments for `client.tenant(**sandbox.credentials(1001))`: `tenant_id`,
    /// `client_id` and `client_secret` of that tenant (default: the first).
    #[pyo3(signature = (tenant_id=None))]
    fn credentials<'py>(
        &self,
        py: Python<'py>,
        #[pyo3(from_py_with = crate::args::tenant_id)] tenant_id: Option<i64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let tenant = match tenant_id {
            None => self.tenants.first(),
            Some(id) => self.tenants.iter().find(|t| t.id == id),
        }
        .ok_or_else(|| {
            let known: Vec<String> = self.tenants.iter().map(|t| t.id.to_string()).collect();
            configuration_error(
                "tenant_id",
                format!("the sandbox has no tenant {tenant_id:?}; its tenants are {}", known.join(", ")),
            )
        })?;
        let d = PyDict::new(py);
        d.set_item("tenant_id", tenant.id)?;
        d.set_item("client_id", &tenant.client_id)?;
        d.set_item("client_secret", &tenant.client_secret)?;
        Ok(d)
    }

    /// A `Client` for this sandbox: its app key and URLs, plus any `Client` keyword argument.
    #[pyo3(signature = (**settings))]
    fn client<'py>(&self, py: Python<'py>, settings: Option<&Bound<'py, PyDict>>) -> PyResult<Bound<'py, PyAny>> {
        py.get_type::<crate::client::Client>().call((), Some(&self.client_settings(py, settings)?))
    }

    /// An `AsyncClient` for this sandbox (see `client`).
    #[pyo3(signature = (**settings))]
    fn async_client<'py>(&self, py: Python<'py>, settings: Option<&Bound<'py, PyDict>>) -> PyResult<Bound<'py, PyAny>> {
        py.get_type::<crate::client::AsyncClient>().call((), Some(&self.client_settings(py, settings)?))
    }

    /// The sandbox's settings (client secrets masked).
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let config = self.with_server(|s| s.config().clone())?;
        let mut value = serde_json::to_value(&config).map_err(|e| configuration_error("config", e.to_string()))?;
        if let Some(tenants) = value.get_mut("tenants").and_then(serde_json::Value::as_array_mut) {
            for t in tenants {
                t["client_secret"] = serde_json::Value::from("***");
            }
        }
        value_to_py(py, &value)
    }

    /// What reached the server: token requests per client id, admitted and rejected calls per
    /// tenant and report, 401s, injected faults fired, and requests per route.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let stats = self.with_server(|s| s.stats())?;
        value_to_py(py, &stats)
    }

    /// The operations the sandbox serves, as `"METHOD route-template"` (the keys of the stats'
    /// `routes`); other documented operations answer 404.
    #[staticmethod]
    fn implemented_operations() -> Vec<String> {
        servicetitan_sandbox::implemented_operations().into_iter().map(|(m, t)| format!("{m} {t}")).collect()
    }

    /// Sets every counter of `stats()` back to zero.
    fn reset_stats(&self) -> PyResult<()> {
        self.with_server(|s| s.reset_stats())
    }

    /// Arms a fault: the next `count` calls matching `route` (a pattern such as
    /// `"crm/v2/tenant/*/customers*"`) fail with `status`, wait `delay_ms`, or lose their
    /// connection. Options: `route`, `method`, `status`, `count` (0 = until cleared), `delay_ms`,
    /// `drop_connection`, `retry_after`, `title`.
    #[pyo3(signature = (**fault))]
    fn add_fault(&self, fault: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
        let value = kwargs_to_value(fault)?;
        let fault: Fault =
            serde_json::from_value(value).map_err(|e| configuration_error("fault", format!("invalid fault: {e}")))?;
        self.with_server(|s| s.try_add_fault(fault))?
            .map_err(|e| configuration_error("fault", format!("invalid fault: {e}")))
    }

    /// Disarms every fault.
    fn clear_faults(&self) -> PyResult<()> {
        self.with_server(|s| s.clear_faults())
    }

    /// Makes every token issued so far invalid, as a credential rotation would.
    fn revoke_tokens(&self) -> PyResult<()> {
        self.with_server(|s| s.revoke_tokens())
    }

    /// Subscribes `url` (plain `http://`) to the webhook events of a tenant (default: the
    /// first), signed with `key` (32 to 64 characters); `events` limits the types sent.
    /// Creating or updating a customer then delivers a signed CloudEvent; failed deliveries are
    /// retried after 10, 30, 60 and 300 s times the `webhook_time_scale` option. Returns the
    /// subscription's id.
    #[pyo3(signature = (url, key, *, tenant_id=None, events=None))]
    fn register_webhook(
        &self,
        url: String,
        key: String,
        tenant_id: Option<i64>,
        events: Option<Vec<String>>,
    ) -> PyResult<u64> {
        let tenant = tenant_id.or_else(|| self.tenants.first().map(|t| t.id)).unwrap_or_default();
        let subscription = WebhookSubscription { tenant, url, key, events: events.unwrap_or_default() };
        self.with_server(|s| s.register_webhook(subscription))?
            .map_err(|e| configuration_error("subscription", format!("invalid webhook subscription: {e}")))
    }

    /// The webhook subscriptions (keys masked).
    fn webhook_subscriptions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let value = self.with_server(|s| s.webhook_subscriptions())?;
        value_to_py(py, &value)
    }

    /// Removes every webhook subscription; their pending retries end.
    fn clear_webhooks(&self) -> PyResult<()> {
        self.with_server(|s| s.clear_webhooks())
    }

    /// Every webhook delivery so far: `event_id`, `type`, `tenant`, `url`, `state`
    /// (`pending`, `delivered`, `failed`), `replay` and `attempts` (`at_ms`, `status`, `error`).
    fn webhook_deliveries<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let deliveries = self.with_server(|s| s.webhook_deliveries())?;
        let value = serde_json::to_value(deliveries).map_err(|e| configuration_error("deliveries", e.to_string()))?;
        value_to_py(py, &value)
    }

    /// Sends an event again with the same id and body, as a replay from the developer portal
    /// does; returns how many deliveries started.
    fn replay_webhook(&self, event_id: &str) -> PyResult<usize> {
        self.with_server(|s| s.replay_webhook(event_id))?.map_err(|e| configuration_error("event_id", e))
    }

    /// Sends an event of `event_type` with `data` to a tenant's subscribers (default tenant:
    /// the first); returns the event id.
    #[pyo3(signature = (event_type, data=None, *, tenant_id=None))]
    fn send_webhook_event(
        &self,
        event_type: &str,
        data: Option<&Bound<'_, PyAny>>,
        tenant_id: Option<i64>,
    ) -> PyResult<String> {
        let data = match data {
            Some(d) => crate::values::json_argument(d, "data")?,
            None => serde_json::Value::Null,
        };
        let tenant = tenant_id.or_else(|| self.tenants.first().map(|t| t.id)).unwrap_or_default();
        self.with_server(|s| s.send_webhook_event(tenant, event_type, data))?
            .map_err(|e| configuration_error("event", format!("invalid webhook event: {e}")))
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops the server (idempotent). Also done on leaving a `with` block.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let mut server = self.server.lock().unwrap_or_else(|p| p.into_inner());
        self.closed.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(server) = server.get_mut() {
            // The join waits for the server thread: never with the GIL held.
            py.detach(|| server.stop());
        }
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let ids: Vec<String> = self.tenants.iter().map(|t| t.id.to_string()).collect();
        format!("Sandbox(base_url={:?}, tenants=[{}])", self.base_url, ids.join(", "))
    }
}
