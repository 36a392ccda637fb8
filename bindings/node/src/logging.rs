//! Debug output: the engine's `tracing` events as lines, to stderr when `SERVICETITAN_LOG` is
//! set (`error`, `warn`, `info`, `debug` or `trace`; anything else means `debug`), and to the
//! `logger` callback of the client whose call produced them.
//!
//! Calls of a client with a logger run inside a `servicetitan.node` span naming the logger;
//! an event goes to the logger of its enclosing span. The engine never puts a secret in an
//! event or span field, so nothing needs redacting here. The callback is a weak threadsafe
//! function: it never keeps the event loop alive.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock};

use napi::bindgen_prelude::Function;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// One line of debug output, as the `logger` callback receives it.
#[napi(object)]
pub struct LogRecord {
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    /// The engine module that logged, e.g. `servicetitan::request`.
    pub target: String,
    /// What happened, then the event's and its spans' fields as `key=value`.
    pub message: String,
}

type LoggerFn = ThreadsafeFunction<LogRecord, (), LogRecord, Status, false, true>;

/// The name of the span that routes a call's events to its client's logger.
pub(crate) const ROUTE_SPAN: &str = "servicetitan.node";

static INSTALL: Once = Once::new();
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static LIVE_LOGGERS: AtomicUsize = AtomicUsize::new(0);
static LOGGERS: OnceLock<Mutex<HashMap<u64, Arc<LoggerFn>>>> = OnceLock::new();

fn loggers() -> &'static Mutex<HashMap<u64, Arc<LoggerFn>>> {
    LOGGERS.get_or_init(Default::default)
}

fn stderr_level() -> Option<Level> {
    static LEVEL: OnceLock<Option<Level>> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let value = std::env::var("SERVICETITAN_LOG").ok()?;
        Some(match value.trim().to_ascii_lowercase().as_str() {
            "" | "0" | "off" | "false" => return None,
            "error" => Level::ERROR,
            "warn" => Level::WARN,
            "info" => Level::INFO,
            "trace" => Level::TRACE,
            _ => Level::DEBUG,
        })
    })
}

/// Installs the bridge as this addon's tracing subscriber (once per process: the addon's
/// `tracing` statics are its own).
pub(crate) fn install() {
    INSTALL.call_once(|| {
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(NodeLogging));
    });
}

/// A client's logger, unregistered when the client is dropped.
pub(crate) struct LoggerRegistration {
    pub(crate) id: u64,
}

impl LoggerRegistration {
    pub(crate) fn new(callback: Function<'_, LogRecord, ()>) -> napi::Result<Self> {
        install();
        let tsfn: LoggerFn = callback.build_threadsafe_function().weak::<true>().callee_handled::<false>().build()?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        loggers().lock().map_err(|_| napi::Error::from_reason("logger registry poisoned"))?.insert(id, Arc::new(tsfn));
        LIVE_LOGGERS.fetch_add(1, Ordering::Relaxed);
        Ok(LoggerRegistration { id })
    }

    /// The span to run a call in so that its events reach this logger.
    pub(crate) fn span(&self) -> tracing::Span {
        tracing::info_span!(target: "servicetitan::node", ROUTE_SPAN, logger = self.id)
    }
}

impl Drop for LoggerRegistration {
    fn drop(&mut self) {
        if let Ok(mut map) = loggers().lock() {
            if map.remove(&self.id).is_some() {
                LIVE_LOGGERS.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

fn is_engine(metadata: &Metadata<'_>) -> bool {
    let target = metadata.target();
    target == "servicetitan" || target.starts_with("servicetitan::")
}

/// A span's fields as `key=value` text, kept in the span's extensions.
struct SpanFields(String);

/// The logger a `servicetitan.node` span routes to.
struct RouteTo(Arc<LoggerFn>);

#[derive(Default)]
struct FieldText {
    message: String,
    fields: String,
    logger: Option<u64>,
}

impl Visit for FieldText {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "logger" {
            self.logger = Some(value);
        } else {
            self.record_debug(field, &value);
        }
    }

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

struct NodeLogging;

impl<S> Layer<S> for NodeLogging
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        // `sometimes`: whether anyone listens changes as loggers come and go, so `enabled`
        // must be asked each time rather than cached per callsite.
        if is_engine(metadata) {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        is_engine(metadata)
            && (LIVE_LOGGERS.load(Ordering::Relaxed) > 0 || stderr_level().is_some_and(|l| *metadata.level() <= l))
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut text = FieldText::default();
        attrs.record(&mut text);
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if attrs.metadata().name() == ROUTE_SPAN {
            let logger = text.logger.and_then(|id| loggers().lock().ok()?.get(&id).cloned());
            if let Some(logger) = logger {
                ext.insert(RouteTo(logger));
            }
        } else {
            ext.insert(SpanFields(text.fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut text = FieldText::default();
        values.record(&mut text);
        let mut ext = span.extensions_mut();
        if let Some(fields) = ext.get_mut::<SpanFields>() {
            if !text.fields.is_empty() {
                let s = sep(&fields.0);
                fields.0.push_str(s);
                fields.0.push_str(&text.fields);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let mut text = FieldText::default();
        event.record(&mut text);
        let mut line = text.message;
        if !text.fields.is_empty() {
            let _ = write!(line, " ({})", text.fields);
        }
        let mut route = None;
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(fields) = ext.get::<SpanFields>() {
                    if !fields.0.is_empty() {
                        let _ = write!(line, " [{}: {}]", span.name(), fields.0);
                    }
                }
                if let Some(RouteTo(logger)) = ext.get::<RouteTo>() {
                    route = Some(logger.clone());
                }
            }
        }
        let level = metadata.level();
        if stderr_level().is_some_and(|l| *level <= l) {
            eprintln!("servicetitan {} {}: {line}", level_name(level), metadata.target());
        }
        if let Some(logger) = route {
            let record = LogRecord {
                level: level_name(level).to_string(),
                target: metadata.target().to_string(),
                message: line,
            };
            logger.call(record, ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}
