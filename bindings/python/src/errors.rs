//! Engine errors as the exception classes of `servicetitan.errors` (one per error code).

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

/// `servicetitan.errors.CLASSES_BY_CODE`, looked up once.
static CLASSES: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

fn class_for<'py>(py: Python<'py>, code: &str) -> PyResult<Bound<'py, PyType>> {
    let classes = CLASSES.get_or_try_init(py, || -> PyResult<Py<PyDict>> {
        Ok(py.import("servicetitan.errors")?.getattr("CLASSES_BY_CODE")?.cast_into::<PyDict>()?.unbind())
    })?;
    let classes = classes.bind(py);
    let class = match classes.get_item(code)? {
        Some(class) => class,
        // A code added to the engine before the Python table: still a ServiceTitanError.
        None => py.import("servicetitan.errors")?.getattr("ServiceTitanError")?,
    };
    Ok(class.cast_into::<PyType>()?)
}

/// Builds the exception for `code` with its structured fields.
fn build(
    py: Python<'_>,
    code: &str,
    message: String,
    fields: impl FnOnce(&Bound<'_, PyDict>) -> PyResult<()>,
) -> PyErr {
    let made = (|| -> PyResult<PyErr> {
        let class = class_for(py, code)?;
        let kwargs = PyDict::new(py);
        fields(&kwargs)?;
        let exc = class.call((message.clone(),), Some(&kwargs))?;
        Ok(PyErr::from_value(exc))
    })();
    // Failing to build the exception must not hide the original failure.
    made.unwrap_or_else(|e| {
        pyo3::exceptions::PyRuntimeError::new_err(format!("{message} (and the error class failed: {e})"))
    })
}

/// The Python exception for an engine error: its class by code, with `status`, `title`,
/// `trace_id`, `errors`, `method`, `url` (and `argument`, `retry_after` when known).
pub(crate) fn to_py(error: servicetitan::Error) -> PyErr {
    Python::attach(|py| {
        build(py, error.code().as_str(), error.to_string(), |kw| {
            kw.set_item("status", error.status())?;
            kw.set_item("title", error.title())?;
            kw.set_item("trace_id", error.trace_id())?;
            let errors = PyDict::new(py);
            for (field, messages) in error.errors() {
                errors.set_item(field, messages)?;
            }
            kw.set_item("errors", errors)?;
            kw.set_item("method", error.method())?;
            kw.set_item("url", error.url())?;
            kw.set_item("argument", error.argument())?;
            kw.set_item("retry_after", error.retry_after().map(|d| d.as_secs_f64()))?;
            Ok(())
        })
    })
}

/// A `configuration` error raised by the binding itself (bad sandbox options and the like).
pub(crate) fn configuration_error(argument: &str, message: impl Into<String>) -> PyErr {
    Python::attach(|py| {
        build(py, "configuration", message.into(), |kw| {
            kw.set_item("argument", argument)?;
            Ok(())
        })
    })
}

/// An `internal` error: a panic caught at the boundary with Python (its message, as a payload).
pub(crate) fn internal_error(panic_message: &str) -> PyErr {
    to_py(servicetitan::Error::from_panic(&panic_message.to_owned()))
}
