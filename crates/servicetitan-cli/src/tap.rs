//! `servicetitan tap`: a Singer tap. SCHEMA, RECORD and STATE messages on standard output, one
//! JSON object per line, for any Singer target and for Meltano.
//!
//! A few streams at a time, each for every tenant concurrently (each tenant at its own rate
//! budget), a page at a time: the page's records are written and flushed, then a STATE message
//! with the feed's checkpoint after them, so a runner that saves the last STATE it read never
//! skips a record it did not receive. Streams interleave; a stream's SCHEMA precedes its records.

mod catalog;
mod settings;
mod state;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use clap::Args;
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};
use servicetitan::{ExportPage, Tenant};

use crate::config::{self, GlobalArgs};
use crate::exit::{CliError, CliResult};
use catalog::{StreamShape, TENANT_FIELD};
use settings::TapConfig;
use state::State;

/// How many streams are synced at once.
const STREAMS_AT_ONCE: usize = 4;

/// `servicetitan tap --config FILE [--discover] [--catalog FILE] [--state FILE] [--about]`.
///
/// Here the global `--config` is the tap's JSON config, as Singer runners pass it: `app_key`,
/// `environment` (or `auth_url` and `api_url`), `tenants` (`[{"id", "client_id",
/// "client_secret"}]`) and an optional `start_date`; `ST_*` variables fill what it leaves out.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    servicetitan tap --about\n  \
    servicetitan tap --config tap.json --discover > catalog.json\n  \
    servicetitan tap --config tap.json --catalog catalog.json --state state.json | target-jsonl\n\n\
    The config (JSON): {\"app_key\": \"…\", \"environment\": \"production\", \"tenants\": [{\"id\": 1234567,\n\
    \"client_id\": \"…\", \"client_secret\": \"…\"}], \"start_date\": \"2026-01-01T00:00:00Z\"}; ST_* variables\n\
    fill what it leaves out. Every record carries _tenant_id when the config has several tenants.")]
pub struct TapArgs {
    /// Print the catalog of every stream and exit.
    #[arg(long)]
    pub discover: bool,
    /// The streams to sync (selected in a Singer catalog).
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
    /// The state of the previous run.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Print what the tap is and supports, and exit.
    #[arg(long)]
    pub about: bool,
}

/// Runs the tap.
pub async fn run(global: &GlobalArgs, args: TapArgs) -> CliResult {
    if args.about {
        return print_json(&about());
    }
    let config = match &global.config {
        Some(path) => TapConfig::read(path)?,
        None => TapConfig::default(),
    };
    let env = config::process_env();
    if args.discover {
        // Discovery needs no credentials: only how many tenants a run has.
        return print_json(&catalog::discover(config.tenant_count(global, &env) > 1));
    }
    let resolved = config.resolve(global, env)?;
    // `--tenant` may narrow the config's tenants: the streams are shaped for those that remain.
    let multi_tenant = resolved.tenants.len() > 1;
    let shapes = match &args.catalog {
        Some(path) => catalog::read_selection(path, multi_tenant)?,
        None => crate::streams::all()
            .into_iter()
            .map(|s| StreamShape::new(s, multi_tenant))
            .filter(StreamShape::documented)
            .collect(),
    };
    let state = match &args.state {
        Some(path) => State::read(path)?,
        None => State::default(),
    };
    let sync = Sync {
        // One `Tenant` per tenant for the whole run: its token serves every stream.
        tenants: resolved.tenants.into_iter().map(|credentials| resolved.client.tenant(credentials)).collect(),
        start_date: config.start_date.clone(),
        quiet: global.quiet,
        out: Arc::new(Mutex::new(Output { writer: std::io::BufWriter::new(std::io::stdout()), state })),
    };
    sync.run(shapes).await
}

/// What `--about` prints.
fn about() -> Value {
    let setting = |name: &str, kind: &str, label: &str, sensitive: bool| json!({"name": name, "kind": kind, "label": label, "sensitive": sensitive});
    json!({
        "name": "tap-servicetitan",
        "description": "ServiceTitan export feeds (customers, jobs, invoices, ...) as Singer streams",
        "version": env!("CARGO_PKG_VERSION"),
        "capabilities": ["catalog", "discover", "state", "about"],
        "settings": [
            setting("app_key", "password", "App key (ST_APP_KEY)", true),
            setting("environment", "options", "Environment: production or integration (ST_ENVIRONMENT)", false),
            setting("auth_url", "string", "Token service URL, for a custom environment (ST_AUTH_URL)", false),
            setting("api_url", "string", "API URL, for a custom environment (ST_API_URL)", false),
            setting("tenants", "array", "Tenants: [{\"id\", \"client_id\", \"client_secret\"}]", true),
            setting("start_date", "date_iso8601", "Where a stream without state starts", false),
        ],
        "settings_from_environment": ["ST_APP_KEY", "ST_ENVIRONMENT", "ST_AUTH_URL", "ST_API_URL", "ST_TENANT_ID", "ST_CLIENT_ID", "ST_CLIENT_SECRET"],
    })
}

fn print_json(value: &Value) -> CliResult {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(|e| CliError::failure(format!("writing stdout: {e}")))?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// Standard output and the state, behind one lock: a STATE message is written after the records
/// it covers, and never between two records of a page.
struct Output {
    writer: std::io::BufWriter<std::io::Stdout>,
    state: State,
}

impl Output {
    fn line(&mut self, message: &Value) -> CliResult {
        serde_json::to_writer(&mut self.writer, message)
            .map_err(|e| CliError::failure(format!("writing stdout: {e}")))?;
        self.writer.write_all(b"\n").map_err(stdout_error)
    }

    fn flush(&mut self) -> CliResult {
        self.writer.flush().map_err(stdout_error)
    }

    fn emit_state(&mut self) -> CliResult {
        let message = json!({"type": "STATE", "value": self.state.to_json()});
        self.line(&message)?;
        self.flush()
    }
}

fn stdout_error(e: std::io::Error) -> CliError {
    CliError::failure(format!("writing stdout: {e}"))
}

struct Sync {
    tenants: Vec<Tenant>,
    start_date: Option<String>,
    quiet: bool,
    out: Arc<Mutex<Output>>,
}

/// How one stream of one tenant ended.
struct Outcome {
    records: u64,
    error: Option<Stop>,
}

/// Why a stream's sync stopped early.
enum Stop {
    /// Standard output failed (the target exited): the whole run stops.
    Output(CliError),
    /// The API or the network failed this stream of this tenant: the others go on.
    Source(CliError),
}

impl From<servicetitan::Error> for Stop {
    fn from(error: servicetitan::Error) -> Self {
        Stop::Source(error.into())
    }
}

impl Sync {
    async fn run(self, shapes: Vec<StreamShape>) -> CliResult {
        let mut failures: Vec<i32> = Vec::new();
        let mut partitions = 0usize;
        // A few streams at once: a page's wait for the network overlaps another's; each tenant's
        // rate budget still holds, as every call goes through its limiter.
        let mut streams =
            futures::stream::iter(shapes.iter().map(|shape| self.sync_stream(shape))).buffer_unordered(STREAMS_AT_ONCE);
        while let Some(synced) = streams.next().await {
            let (shape, outcomes) = synced?;
            for (id, outcome) in outcomes {
                partitions += 1;
                match outcome.error {
                    None => self.log(format!("{}, tenant {id}: {} records", shape.stream.name, outcome.records)),
                    Some(Stop::Output(error)) => return Err(error),
                    Some(Stop::Source(error)) => {
                        let _ = writeln!(
                            std::io::stderr(),
                            "servicetitan: tap: {}, tenant {id}: {} (after {} records)",
                            shape.stream.name,
                            error.message,
                            outcome.records
                        );
                        failures.push(error.code);
                    }
                }
            }
        }
        drop(streams);
        // The final state, also when nothing moved (a runner keeps the bookmarks it was given).
        self.lock().emit_state()?;
        match failures.as_slice() {
            [] => Ok(()),
            [first, ..] if failures.len() == partitions && failures.iter().all(|c| c == first) => {
                Err(CliError { code: *first, message: "tap: every stream failed (see above)".into() })
            }
            _ => Err(CliError::partial(format!(
                "tap: {} of {partitions} stream syncs failed (see above); the others completed",
                failures.len()
            ))),
        }
    }

    /// One stream: its SCHEMA, then every tenant's records concurrently.
    async fn sync_stream<'a>(&self, shape: &'a StreamShape) -> CliResult<(&'a StreamShape, Vec<(i64, Outcome)>)> {
        self.lock().line(&json!({
            "type": "SCHEMA",
            "stream": shape.stream.name,
            "schema": shape.schema,
            "key_properties": shape.key_properties,
            "bookmark_properties": shape.replication_key.iter().collect::<Vec<_>>(),
        }))?;
        let multi_tenant = self.tenants.len() > 1;
        let runs = self.tenants.iter().map(|tenant| self.sync_partition(shape, tenant, multi_tenant));
        let outcomes = futures::future::join_all(runs).await;
        Ok((shape, self.tenants.iter().map(Tenant::id).zip(outcomes).collect()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Output> {
        // A panic while holding the lock ends the run anyway; the output is still usable.
        self.out.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn log(&self, line: String) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr(), "servicetitan tap: {line}");
        }
    }

    /// One stream of one tenant: a partition of the state when the run has several tenants.
    async fn sync_partition(&self, shape: &StreamShape, tenant: &Tenant, multi_tenant: bool) -> Outcome {
        let mut records = 0u64;
        let partition = multi_tenant.then(|| tenant.id());
        let error = self.sync_pages(shape, tenant, partition, &mut records).await.err();
        Outcome { records, error }
    }

    async fn sync_pages(
        &self,
        shape: &StreamShape,
        source: &Tenant,
        tenant: Option<i64>,
        records: &mut u64,
    ) -> Result<(), Stop> {
        let tenant_id = source.id();
        let name = shape.stream.name.as_str();
        let start = self.lock().state.start(name, tenant, self.start_date.as_deref());
        let mut call = source.operation(&shape.stream.operation_name());
        if let Some(start) = start {
            call = call.arg("since", start);
        }
        let mut pages = call.export::<Value>()?.pages();
        let replication_key = shape.replication_key.as_deref();
        // A record keeps the fields its schema lists (a validating target refuses others); the
        // fields the API sends beyond the specs are named once per run.
        let fields = shape.fields();
        let mut undescribed: BTreeSet<String> = BTreeSet::new();
        while let Some(page) = pages.try_next().await? {
            let ExportPage { data, continue_from, .. } = page;
            let extracted = crate::log::now_rfc3339();
            let mut latest: Option<String> = None;
            let mut out = self.lock();
            for mut record in data {
                if let Some(object) = record.as_object_mut() {
                    if let Some(fields) = &fields {
                        object.retain(|name, _| {
                            if fields.contains(name) {
                                return true;
                            }
                            if !shape.dropped.contains(name) && !undescribed.contains(name) {
                                undescribed.insert(name.clone());
                            }
                            false
                        });
                    }
                    if let Some(value) = replication_key.and_then(|k| object.get(k)).and_then(Value::as_str) {
                        if latest.as_deref().is_none_or(|l| value > l) {
                            latest = Some(value.to_string());
                        }
                    }
                    if tenant.is_some() {
                        object.insert(TENANT_FIELD.to_string(), json!(tenant_id));
                    }
                }
                out.line(&json!({"type": "RECORD", "stream": name, "record": record, "time_extracted": extracted}))
                    .map_err(Stop::Output)?;
                *records += 1;
            }
            // The records are on their way before the state that covers them.
            out.flush().map_err(Stop::Output)?;
            out.state.advance(name, tenant, replication_key, latest.as_deref(), continue_from.as_deref());
            out.emit_state().map_err(Stop::Output)?;
        }
        if !undescribed.is_empty() {
            let names: Vec<String> = undescribed.into_iter().collect();
            self.log(format!("{name}: left out fields the API's schema does not describe: {}", names.join(", ")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_extracted_is_rfc3339_utc() {
        let now = crate::log::now_rfc3339();
        assert_eq!(now.len(), 24, "{now}");
        assert!(now.ends_with('Z') && now.as_bytes()[10] == b'T', "{now}");
        assert!(now.as_str() > "2025-01-01", "{now}");
    }

    #[test]
    fn about_lists_the_capabilities_and_settings() {
        let about = about();
        assert_eq!(about["capabilities"], json!(["catalog", "discover", "state", "about"]));
        let names: Vec<&str> =
            about["settings"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(names, settings::KEYS);
    }
}
