//! Log lines for the bindings: the engine's `tracing` events as one-line records, so that
//! Python's `logging` and Node's logger callback receive the same text.
//!
//! Rust users keep their own subscriber; this layer is for a binding that installs one of its
//! own. A line is the event's message, its fields as `key=value`, then the fields of each
//! enclosing span, outermost first: `resending (attempt=2 wait_ms=180) [servicetitan.request:
//! method=GET route="crm/v2/tenant/{tenant}/customers" tenant=1001]`. The engine never puts a
//! secret in an event or span field, so nothing needs redacting.
//!
//! ```
//! use servicetitan::log::{LogLayer, LogLine};
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let subscriber = tracing_subscriber::registry().with(LogLayer::new(|line: LogLine<'_>| {
//!     eprintln!("{} {}: {}", line.level, line.target, line.message);
//! }));
//! tracing::subscriber::with_default(subscriber, || { /* calls made here are logged */ });
//! ```

use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The name of a span a binding may wrap a call in, with a `u64` field `route`, to learn which
/// of its sinks (e.g. which client's logger) the call's lines belong to: [`LogLine::route`].
pub const ROUTE_SPAN: &str = "servicetitan.route";

/// One log line of the engine.
#[derive(Debug)]
pub struct LogLine<'a> {
    /// The event's level.
    pub level: Level,
    /// The engine module that logged, e.g. `servicetitan::request`.
    pub target: &'a str,
    /// The message, the event's fields, then its spans' fields.
    pub message: String,
    /// The `route` of the innermost enclosing [`ROUTE_SPAN`], if any.
    pub route: Option<u64>,
}

/// Whether a callsite is the engine's (the only events this layer formats).
pub fn is_engine(metadata: &Metadata<'_>) -> bool {
    let target = metadata.target();
    target == "servicetitan" || target.starts_with("servicetitan::")
}

/// A `tracing_subscriber` layer that turns the engine's events into [`LogLine`]s for `sink`.
/// Events of other crates are ignored; filter by level in the sink or with a filter layer.
pub struct LogLayer<F> {
    sink: F,
    /// Set once the sink has panicked (reported once, on stderr).
    sink_panicked: std::sync::atomic::AtomicBool,
}

impl<F> LogLayer<F>
where
    F: Fn(LogLine<'_>) + Send + Sync + 'static,
{
    /// A layer calling `sink` for every engine event.
    ///
    /// A sink that panics loses that line and nothing else: the call that logged goes on (it
    /// would otherwise fail for a logging bug), and the first such panic is reported on stderr,
    /// once.
    pub fn new(sink: F) -> Self {
        LogLayer { sink, sink_panicked: std::sync::atomic::AtomicBool::new(false) }
    }
}

/// A span's fields as `key=value` text, kept in the span's extensions.
struct SpanFields(String);

/// The route a [`ROUTE_SPAN`] names.
struct Route(u64);

#[derive(Default)]
struct FieldText {
    message: String,
    fields: String,
    route: Option<u64>,
}

impl FieldText {
    fn push_field(&mut self, name: &str, value: &dyn std::fmt::Debug) {
        let separator = if self.fields.is_empty() { "" } else { " " };
        let _ = write!(self.fields, "{separator}{name}={value:?}");
    }
}

impl Visit for FieldText {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "route" {
            self.route = Some(value);
        }
        self.push_field(field.name(), &value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.push_field(field.name(), &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.push_field(field.name(), value);
        }
    }
}

impl<S, F> Layer<S> for LogLayer<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    F: Fn(LogLine<'_>) + Send + Sync + 'static,
{
    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        is_engine(metadata)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut text = FieldText::default();
        attrs.record(&mut text);
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        match (attrs.metadata().name(), text.route) {
            (ROUTE_SPAN, Some(route)) => extensions.insert(Route(route)),
            _ => extensions.insert(SpanFields(text.fields)),
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut text = FieldText::default();
        values.record(&mut text);
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            if !text.fields.is_empty() {
                if !fields.0.is_empty() {
                    fields.0.push(' ');
                }
                fields.0.push_str(&text.fields);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut text = FieldText::default();
        event.record(&mut text);
        let mut message = text.message;
        if !text.fields.is_empty() {
            let _ = write!(message, " ({})", text.fields);
        }
        let mut route = None;
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<SpanFields>().filter(|f| !f.0.is_empty()) {
                    let _ = write!(message, " [{}: {}]", span.name(), fields.0);
                }
                if let Some(Route(r)) = extensions.get::<Route>() {
                    route = Some(*r);
                }
            }
        }
        let metadata = event.metadata();
        let line = LogLine { level: *metadata.level(), target: metadata.target(), message, route };
        let delivered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.sink)(line)));
        if let Err(panic) = delivered {
            if !self.sink_panicked.swap(true, std::sync::atomic::Ordering::Relaxed) {
                let what = crate::Error::from_panic(&*panic);
                eprintln!("servicetitan: the log sink panicked, its lines are lost ({})", what.message());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn a_sink_that_panics_loses_its_line_and_nothing_else() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = lines.clone();
        let subscriber = tracing_subscriber::registry().with(LogLayer::new(move |line: LogLine<'_>| {
            if line.message.starts_with("boom") {
                panic!("the sink broke");
            }
            seen.lock().unwrap().push(line.message);
        }));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("boom");
            tracing::info!("after");
            tracing::info!("boom again");
            tracing::info!("still here");
        });
        assert_eq!(*lines.lock().unwrap(), ["after", "still here"]);
    }
}
