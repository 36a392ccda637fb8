//! The Python face of the engine (`servicetitan._native`): converts arguments and results,
//! nothing else. Behaviour lives in the `servicetitan` crate; this crate only adds what is
//! specific to CPython: releasing the GIL, Ctrl-C, asyncio, fork, and the `logging` bridge.

use pyo3::prelude::*;

mod args;
mod cli;
mod client;
mod client_settings;
mod convert;
mod errors;
mod logging;
mod operations;
mod panics;
mod runtime;
mod sandbox;
mod stream;
mod values;
mod webhooks;

/// Every error code of the engine, in the order of the README's table: the test suite checks
/// that `servicetitan.errors` has a class for each one.
#[pyfunction]
fn error_codes() -> Vec<&'static str> {
    servicetitan::ErrorCode::ALL.iter().map(|code| code.as_str()).collect()
}

/// The engine's settings schema as Python names them: `(keyword, environment variable)` for
/// every setting `Client` takes. The test suite checks each keyword against `Client`.
#[pyfunction]
fn settings() -> Vec<(&'static str, &'static str)> {
    servicetitan::settings::SETTINGS.iter().filter_map(|s| Some((s.python?, s.env))).collect()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    runtime::set_main_thread(py)?;
    logging::install();
    m.add_class::<client::Client>()?;
    m.add_class::<client::Tenant>()?;
    m.add_class::<stream::Records>()?;
    m.add_class::<client::AsyncClient>()?;
    m.add_class::<client::AsyncTenant>()?;
    m.add_class::<stream::AsyncRecords>()?;
    m.add_class::<stream::Ready>()?;
    m.add_class::<sandbox::Sandbox>()?;
    webhooks::register(m)?;
    m.add_function(wrap_pyfunction!(runtime::_after_fork_in_child, m)?)?;
    m.add_function(wrap_pyfunction!(panics::_panic_for_test, m)?)?;
    m.add_function(wrap_pyfunction!(error_codes, m)?)?;
    m.add_function(wrap_pyfunction!(settings, m)?)?;
    m.add_function(wrap_pyfunction!(operations::_operations, m)?)?;
    m.add_function(wrap_pyfunction!(cli::run_cli, m)?)?;
    // A fresh runtime in the child of every os.fork() (multiprocessing's fork start method too).
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("after_in_child", m.getattr("_after_fork_in_child")?)?;
    py.import("os")?.call_method("register_at_fork", (), Some(&kwargs))?;
    // Runtime threads must be out of Python before the interpreter finalizes.
    m.add_function(wrap_pyfunction!(runtime::_at_exit, m)?)?;
    py.import("atexit")?.call_method1("register", (m.getattr("_at_exit")?,))?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
