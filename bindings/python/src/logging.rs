//! The engine's `tracing` events as records of the standard `servicetitan` Python logger.
//!
//! The engine logs retries, waits and token fetches as tracing events and spans; this layer
//! forwards the engine's own (target `servicetitan::…`) to `logging.getLogger("servicetitan")`,
//! with the fields of the enclosing spans (method, route, tenant) as context. The engine never
//! puts a secret in a field, so nothing needs redacting here.

use std::fmt::Write as _;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Installs the bridge as this extension's global tracing subscriber (once per process; the
/// engine linked into other extensions has its own `tracing` statics).
pub(crate) fn install() {
    let subscriber = tracing_subscriber::registry().with(PythonLogging);
    let _ = tracing::subscriber::set_global_default(subscriber);
}

pub(crate) fn after_fork_in_child() {
    // Nothing is tied to threads or the runtime; the cached logger object is still valid.
}

fn is_engine(metadata: &Metadata<'_>) -> bool {
    let target = metadata.target();
    target == "servicetitan" || target.starts_with("servicetitan::")
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

/// A span's fields as `key=value` text, kept in the span's extensions.
struct SpanFields(String);

/// The limiter wait a request span recorded, logged when the span closes.
struct ThrottleWait(u64);

#[derive(Default)]
struct WaitField(Option<u64>);

impl Visit for WaitField {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "throttle_wait_ms" {
            self.0 = Some(value);
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
}

#[derive(Default)]
struct FieldText {
    message: String,
    fields: String,
}

impl Visit for FieldText {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, "{}{}={value:?}", sep(&self.fields), field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, "{}{}={value:?}", sep(&self.fields), field.name());
        }
    }
}

fn sep(s: &str) -> &'static str {
    if s.is_empty() {
        ""
    } else {
        " "
    }
}

struct PythonLogging;

impl<S> Layer<S> for PythonLogging
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        is_engine(metadata)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut text = FieldText::default();
        attrs.record(&mut text);
        if let Some(span) = ctx.span(id) {
            if attrs.metadata().name() == "servicetitan.token" {
                // The engine marks a token fetch with this span; it is the "token refresh" users
                // want to see at INFO.
                emit(Level::INFO, "servicetitan.token", &format!("fetching an access token ({})", text.fields));
            }
            span.extensions_mut().insert(SpanFields(text.fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut text = FieldText::default();
            values.record(&mut text);
            let mut wait = WaitField::default();
            values.record(&mut wait);
            let mut ext = span.extensions_mut();
            if let (Some(ms), "servicetitan.request") = (wait.0, span.name()) {
                ext.replace(ThrottleWait(ms));
            }
            if let Some(fields) = ext.get_mut::<SpanFields>() {
                if !text.fields.is_empty() {
                    let s = sep(&fields.0);
                    fields.0.push_str(s);
                    fields.0.push_str(&text.fields);
                }
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        // The engine records the limiter wait on the request span rather than as an event.
        if let Some(span) = ctx.span(&id) {
            let ext = span.extensions();
            if let (Some(ThrottleWait(ms)), Some(fields)) = (ext.get::<ThrottleWait>(), ext.get::<SpanFields>()) {
                if *ms > 0 {
                    let line = format!("waited {ms} ms for the rate limiter [{}: {}]", span.name(), fields.0);
                    emit(Level::DEBUG, "servicetitan.request", &line);
                }
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut text = FieldText::default();
        event.record(&mut text);
        let mut line = text.message;
        if !text.fields.is_empty() {
            let _ = write!(line, " ({})", text.fields);
        }
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(fields) = ext.get::<SpanFields>() {
                    let _ = write!(line, " [{}: {}]", span.name(), fields.0);
                }
            }
        }
        emit(*event.metadata().level(), event.metadata().target(), &line);
    }
}

fn emit(level: Level, origin: &str, message: &str) {
    // try_attach: events can come from runtime threads while the interpreter shuts down.
    let _ = Python::try_attach(|py| -> PyResult<()> {
        let logger = LOGGER.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
            Ok(py.import("logging")?.call_method1("getLogger", ("servicetitan",))?.unbind())
        })?;
        let logger = logger.bind(py);
        let level = python_level(&level);
        if logger.call_method1("isEnabledFor", (level,))?.is_truthy()? {
            let extra = pyo3::types::PyDict::new(py);
            extra.set_item("engine_target", origin)?;
            let kwargs = pyo3::types::PyDict::new(py);
            kwargs.set_item("extra", extra)?;
            logger.call_method("log", (level, "%s", message), Some(&kwargs))?;
        }
        Ok(())
    });
}
