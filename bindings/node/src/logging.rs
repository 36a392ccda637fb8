//! Debug output: the engine's `tracing` events as lines, to stderr when `SERVICETITAN_LOG` is
//! set (`error`, `warn`, `info`, `debug` or `trace`; anything else means `debug`), and to the
//! `logger` callback of the client whose call produced them.
//!
//! Calls of a client with a logger run inside the engine's route span (`servicetitan.route`) naming the logger;
//! an event goes to the logger of its enclosing span. The engine never puts a secret in an
//! event or span field, so nothing needs redacting here. The callback is a weak threadsafe
//! function: it never keeps the event loop alive.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock};

use napi::bindgen_prelude::Function;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;
use servicetitan::log::{is_engine, LogLayer, LogLine, ROUTE_SPAN};
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
        let layer = NodeLogging(LogLayer::new(emit));
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer));
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
        tracing::info_span!(target: "servicetitan::node", ROUTE_SPAN, route = self.id)
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

/// The engine's lines (made by its `servicetitan::log` layer) to stderr and to the logger of
/// the client whose call produced them. Callsites are asked each time (`sometimes`): whether
/// anyone listens changes as loggers come and go.
struct NodeLogging<L>(L);

impl<S, L> Layer<S> for NodeLogging<L>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
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
        self.0.on_new_span(attrs, id, ctx)
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        self.0.on_record(id, values, ctx)
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        self.0.on_event(event, ctx)
    }
}

fn emit(line: LogLine<'_>) {
    if stderr_level().is_some_and(|l| line.level <= l) {
        eprintln!("servicetitan {} {}: {}", level_name(&line.level), line.target, line.message);
    }
    let logger = line.route.and_then(|id| loggers().lock().ok()?.get(&id).cloned());
    if let Some(logger) = logger {
        let record = LogRecord {
            level: level_name(&line.level).to_string(),
            target: line.target.to_string(),
            message: line.message,
        };
        logger.call(record, ThreadsafeFunctionCallMode::NonBlocking);
    }
}
