//! Operations by name: `tenant.call("crm.customers.get_list", {"page_size": 5})`, and what
//! `tenant.crm.customers.get_list(page_size=5)` (python/servicetitan/_operations.py) stands on.
//! Arguments are converted and handed to the engine, which checks them against the operation
//! (Python spellings: `page_size`, `from_`) before anything is sent.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use servicetitan::operations::{self, Kind, Naming, OperationCall};

use crate::client::{Flavor, TenantCore};
use crate::convert::Body;
use crate::errors::{configuration_error, to_py};
use crate::values::{json_argument, kwargs_to_value};

/// The engine's call for `operation` with `params` (a dict keyed by the Python names) and `body`.
fn prepare(
    core: &TenantCore,
    operation: &str,
    params: Option<&Bound<'_, PyAny>>,
    body: Option<&Bound<'_, PyAny>>,
) -> PyResult<(OperationCall, Kind)> {
    let op = operations::find(operation).map_err(to_py)?;
    let params = match params.filter(|p| !p.is_none()) {
        None => None,
        Some(p) => Some(
            p.cast::<PyDict>()
                .map_err(|_| configuration_error("params", "params: expected a dict of the operation's parameters"))?,
        ),
    };
    let serde_json::Value::Object(args) = kwargs_to_value(params)? else {
        unreachable!("keyword arguments convert to an object")
    };
    let body = match body.filter(|b| !b.is_none()) {
        Some(b) => Some(json_argument(b, "body")?),
        None => None,
    };
    let call = core.engine()?.operation(&op.name()).naming(Naming::Python).args(args).json_value(body);
    Ok((call, op.kind))
}

/// `Tenant.call` and `AsyncTenant.call`: the decoded answer (one page for a list), bytes for a
/// file, the URL a redirect points to (not followed), the feed (`Records`) for an export; an
/// awaitable of it for `AsyncTenant`.
pub(crate) fn call<'py, F: Flavor>(
    py: Python<'py>,
    core: &TenantCore,
    operation: &str,
    params: Option<&Bound<'py, PyAny>>,
    body: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let (call, kind) = prepare(core, operation, params, body)?;
    match kind {
        Kind::Export => F::feed(py, call.raw_records().map_err(to_py)?),
        Kind::Binary => F::run(py, async move { call.send_bytes().await.map(FileBytes) }),
        Kind::Redirect => F::run(py, async move { call.send_location().await }),
        _ => F::run(py, async move { call.send_body().await.map(Body) }),
    }
}

/// `Tenant.records` / `AsyncTenant.records`: every record of a list (from its `page`) or an
/// export (from its `since`), through the engine's paginator.
pub(crate) fn records(
    core: &TenantCore,
    operation: &str,
    params: Option<&Bound<'_, PyAny>>,
) -> PyResult<servicetitan::RecordStream<servicetitan::RawRecord>> {
    let (call, _) = prepare(core, operation, params, None)?;
    call.raw_records().map_err(to_py)
}

/// A file's bytes, converted with the GIL held.
struct FileBytes(servicetitan::Bytes);

impl<'py> IntoPyObject<'py> for FileBytes {
    type Target = PyBytes;
    type Output = Bound<'py, PyBytes>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.0))
    }
}

/// `_native._operations()`: every operation as (its name's parts, its kind, the Python names of
/// its path parameters in path order), for the attribute surface.
#[pyfunction]
pub(crate) fn _operations(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let list = PyList::empty(py);
    for op in operations::operations() {
        let kind = match op.kind {
            Kind::List => "list",
            Kind::Export => "export",
            Kind::Binary => "binary",
            Kind::Redirect => "redirect",
            _ => "plain",
        };
        let path: Vec<&str> = op.path_params().map(|p| p.python_name()).collect();
        list.append(PyTuple::new(
            py,
            [
                PyTuple::new(py, &op.python)?.into_any(),
                kind.into_pyobject(py)?.into_any(),
                PyTuple::new(py, path)?.into_any(),
            ],
        )?)?;
    }
    Ok(list)
}

/// `tenant.crm`: the module's operations (python/servicetitan/_operations.py builds it).
pub(crate) fn module<'py>(tenant: &Bound<'py, PyAny>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    let py = tenant.py();
    py.import("servicetitan._operations")?.getattr("module")?.call1((tenant, name))
}
