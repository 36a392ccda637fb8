//! Panics stop at the boundary with Python. One in the engine or in a conversion becomes an
//! `InternalError` (a `ServiceTitanError`), never pyo3's `PanicException`, which derives from
//! `BaseException` and so escapes `except Exception`. Nothing shared is left locked: the binding's
//! own locks tolerate poisoning, and the runtime survives a panicking task.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use pyo3::prelude::*;
use pyo3::BoundObject;

use crate::errors::internal_error;

/// The message of a panic payload (`panic!` makes a `&str` or a `String`); the engine's
/// `Error::from_panic` cuts it short.
pub(crate) fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Runs `f`, turning a panic into an `InternalError`.
pub(crate) fn catch<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| Err(internal_error(&message(&*payload))))
}

/// Runs `fut`, turning a panic while it is polled into its message.
pub(crate) async fn catch_async<F: Future>(fut: F) -> Result<F::Output, String> {
    AssertUnwindSafe(fut).catch_unwind().await.map_err(|payload| message(&*payload))
}

/// What an asyncio bridge task hands to Python: its value, converted with panics caught, or the
/// message of the panic that ended it.
pub(crate) enum Guarded<T> {
    Done(T),
    Panicked(String),
}

impl<'py, T: IntoPyObject<'py>> IntoPyObject<'py> for Guarded<T> {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Guarded::Done(value) => catch(|| Ok(value.into_pyobject(py).map_err(Into::into)?.into_any().into_bound())),
            Guarded::Panicked(message) => Err(internal_error(&message)),
        }
    }
}

/// Panics on purpose at one of the boundaries, so the test suite can check that each turns it
/// into an `InternalError` and that the client goes on working: `"wait"` (a blocking call),
/// `"asyncio"` (an awaited call; returns the awaitable), `"into_python"` (a result converted for
/// asyncio) or `"convert"` (a conversion).
#[pyfunction]
pub(crate) fn _panic_for_test<'py>(py: Python<'py>, boundary: &str) -> PyResult<Bound<'py, PyAny>> {
    match boundary {
        "wait" => {
            crate::runtime::wait(py, async { test_panic("in a blocking call") }).map(|()| py.None().into_bound(py))
        }
        "asyncio" => crate::runtime::to_asyncio(py, async {
            test_panic("in an awaited call");
            Ok(())
        }),
        "into_python" => crate::runtime::to_asyncio(py, async { Ok(PanicsInPython) }),
        "convert" => catch(|| {
            test_panic("in a conversion");
            Ok(py.None().into_bound(py))
        }),
        other => Err(pyo3::exceptions::PyValueError::new_err(format!("unknown boundary {other:?}"))),
    }
}

fn test_panic(place: &str) {
    panic!("a test panic {place}")
}

struct PanicsInPython;

impl<'py> IntoPyObject<'py> for PanicsInPython {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, _py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        test_panic("while converting a result");
        unreachable!("test_panic returned")
    }
}
