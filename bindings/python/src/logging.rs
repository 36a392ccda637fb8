//! The engine's log lines as records of the standard `servicetitan` Python logger. The lines
//! themselves (token fetches at INFO, resends and limiter waits at DEBUG, never a secret) are
//! made by the engine's `servicetitan::log` layer; this only hands them to `logging`.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use servicetitan::log::{LogLayer, LogLine};
use tracing::Level;
use tracing_subscriber::layer::SubscriberExt;

static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Installs the bridge as this extension's global tracing subscriber (once per process; the
/// engine linked into other extensions has its own `tracing` statics).
pub(crate) fn install() {
    let subscriber = tracing_subscriber::registry().with(LogLayer::new(emit));
    let _ = tracing::subscriber::set_global_default(subscriber);
}

pub(crate) fn after_fork_in_child() {
    // Nothing is tied to threads or the runtime; the cached logger object is still valid.
}

/// Python's level numbers.
fn python_level(level: &Level) -> i32 {
    match *level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        Level::TRACE => 5,
    }
}

fn emit(line: LogLine<'_>) {
    // Runtime threads must not enter a finalizing interpreter (try_attach alone does not know).
    if !crate::runtime::python_available() {
        return;
    }
    let _ = Python::try_attach(|py| -> PyResult<()> {
        let logger = LOGGER.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
            Ok(py.import("logging")?.call_method1("getLogger", ("servicetitan",))?.unbind())
        })?;
        let logger = logger.bind(py);
        let level = python_level(&line.level);
        if logger.call_method1("isEnabledFor", (level,))?.is_truthy()? {
            let extra = pyo3::types::PyDict::new(py);
            extra.set_item("engine_target", line.target)?;
            let kwargs = pyo3::types::PyDict::new(py);
            kwargs.set_item("extra", extra)?;
            logger.call_method("log", (level, "%s", line.message), Some(&kwargs))?;
        }
        Ok(())
    });
}
