//! `servicetitan export`: export feeds to JSONL, CSV or Parquet, with a state file.
//!
//! Each stream of each tenant is one task; they all run at once, each tenant at its own rate
//! budget (the engine's limiter). Records are read through the engine's export feed, whose
//! checkpoint (`continue_from`) is the one saved.
//!
//! Nothing lost, nothing doubled: a task writes its file under a temporary name, fsyncs it and
//! renames it, and only then saves its checkpoint in the state file (itself replaced
//! atomically). With `--state` a task's file is `STREAM.TENANT.NNNNNN.EXT`, numbered from the
//! state: a run killed after the rename but before the state save leaves the same number in the
//! state, so the rerun (from the same checkpoint, so with the same records and any changed
//! since) writes the same name again instead of a second copy. A run with no new record writes
//! no file.

mod columns;
mod formats;
mod output;
#[cfg(feature = "parquet")]
mod parquet_sink;
mod rows;
mod state;

use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use clap::{Args, ValueEnum};
use serde_json::{json, Value};
use servicetitan::Tenant;

use crate::config::GlobalArgs;
use crate::exit::{self, CliError, CliResult};
use crate::log::{Level, Logger};
use crate::progress::{round3, Progress, Task};
use crate::streams::{self, Stream};

use self::columns::Columns;
use self::formats::{CsvSink, JsonlSink, Sink};
use self::output::{AtomicFile, Destination, SharedStdout};
use self::state::{StateFile, StreamState};

/// `servicetitan export STREAM...`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    servicetitan export crm_customers > customers.jsonl\n  \
    servicetitan export crm_customers jpm_jobs --out data/ --state state.json\n  \
    servicetitan export crm_customers --format csv --out data/ --since 2026-01-01\n  \
    servicetitan export jpm_jobs --format parquet --out data/ --all-tenants --state state.json\n\n\
    With --out DIR each stream and tenant gets its own file; with --state the files are numbered\n\
    (crm_customers.1001.000001.jsonl, then …000002…) and each run writes only what changed.\n\
    Progress goes to stderr: bars on a terminal, else a line per stream every 5 s\n\
    (ST_PROGRESS_INTERVAL_MS changes that).")]
pub struct ExportArgs {
    /// The streams to copy (`servicetitan streams` lists them).
    #[arg(required = true, value_name = "STREAM")]
    pub streams: Vec<String>,
    /// The output format.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
    /// A directory for one file per stream and tenant, or `-` for standard output (the default).
    #[arg(long, value_name = "DIR|-")]
    pub out: Option<PathBuf>,
    /// Keep the checkpoint per tenant and stream here: the next run fetches only what changed.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Start from this date (ISO 8601) where the state has no checkpoint.
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
}

/// Output formats.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated, nested objects flattened to dotted columns.
    Csv,
    /// Apache Parquet, column types from the official schema.
    Parquet,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }
}

/// Streams of one tenant copied at once. The tenant's rate budget bounds the calls whatever the
/// number; a few streams at once keep it busy through each call's latency, while each stream
/// holds about two pages in memory (the one being written and the one fetched ahead).
const STREAMS_AT_ONCE_PER_TENANT: usize = 4;

/// Everything the tasks of one run share.
struct Run {
    format: Format,
    dir: Option<PathBuf>,
    since: Option<String>,
    several_tenants: bool,
    state: Option<tokio::sync::Mutex<StateFile>>,
    stdout: SharedStdout,
    progress: Arc<Progress>,
}

/// What one finished task did.
struct Done {
    records: u64,
}

/// Runs the export.
pub async fn run(global: &GlobalArgs, args: ExportArgs) -> CliResult {
    let logger = Logger::new(global);
    let since = args.since.as_deref().map(check_date).transpose()?;
    #[cfg(not(feature = "parquet"))]
    if args.format == Format::Parquet {
        return Err(CliError::configuration(
            "--format parquet: this build of servicetitan has no Parquet writer (the `parquet` cargo feature)",
        ));
    }
    let chosen = streams::select(&args.streams)?;
    let dir = match &args.out {
        Some(path) if path.as_os_str() != "-" => Some(path.clone()),
        _ => None,
    };
    let resolved = crate::config::resolve(global)?;
    let tasks = chosen.len() * resolved.tenants.len();
    if dir.is_none() && args.format != Format::Jsonl && tasks > 1 {
        return Err(CliError::configuration(format!(
            "--format {}: standard output takes one stream of one tenant in this format; give --out DIR for {tasks}",
            args.format.extension()
        )));
    }
    if let Some(dir) = &dir {
        std::fs::create_dir_all(dir).map_err(|e| {
            CliError::configuration(format!("--out {}: cannot create the directory: {e}", dir.display()))
        })?;
    }
    let state = args.state.as_deref().map(StateFile::load).transpose()?;

    let started = Instant::now();
    let progress = Progress::new(global, logger, resolved.client.clone());
    let run = Arc::new(Run {
        format: args.format,
        dir,
        since,
        several_tenants: resolved.tenants.len() > 1,
        state: state.map(tokio::sync::Mutex::new),
        stdout: SharedStdout::new(),
        progress: progress.clone(),
    });
    let mut handles = Vec::with_capacity(tasks);
    for credentials in &resolved.tenants {
        let tenant = resolved.client.tenant(credentials.clone());
        let turns = Arc::new(tokio::sync::Semaphore::new(STREAMS_AT_ONCE_PER_TENANT));
        for stream in &chosen {
            let task = progress.add(&stream.name, credentials.tenant_id(), run.several_tenants);
            let job = export_one(run.clone(), tenant.clone(), stream.clone(), task.clone(), turns.clone());
            handles.push((task, tokio::spawn(job)));
        }
    }
    let mut failures: Vec<(Arc<Task>, CliError)> = Vec::new();
    let mut done = Vec::new();
    for (task, handle) in handles {
        let result = match handle.await {
            Ok(result) => result,
            Err(e) => Err(CliError::failure(format!("the task stopped unexpectedly: {e}"))),
        };
        match result {
            Ok(d) => done.push((task, d)),
            Err(e) => failures.push((task, e)),
        }
    }
    progress.stop().await;
    summary(&logger, &resolved.client, &progress, &done, &failures, started);
    verdict(&progress, failures, tasks)
}

/// The exit: 0 if every task succeeded; the failure itself if the only task failed; 4 if some
/// failed and some succeeded (one line per failure has been written).
fn verdict(progress: &Progress, mut failures: Vec<(Arc<Task>, CliError)>, tasks: usize) -> CliResult {
    if failures.is_empty() {
        return Ok(());
    }
    if tasks == 1 {
        let (_, error) = failures.remove(0);
        return Err(error);
    }
    for (task, error) in &failures {
        progress.log(
            Level::Error,
            "export_failed",
            &format!("{}: {}", task.label, error.message),
            &[("stream", json!(task.stream)), ("tenant", json!(task.tenant)), ("exit_code", json!(error.code))],
        );
    }
    let failed = failures.len();
    if failed < tasks {
        return Err(CliError::partial(format!("{failed} of {tasks} exports failed; the others were written")));
    }
    let code = failures[0].1.code;
    let same = failures.iter().all(|(_, e)| e.code == code);
    Err(CliError { code: if same { code } else { exit::FAILURE }, message: format!("all {tasks} exports failed") })
}

fn summary(
    logger: &Logger,
    client: &servicetitan::Client,
    progress: &Progress,
    done: &[(Arc<Task>, Done)],
    failures: &[(Arc<Task>, CliError)],
    started: Instant,
) {
    let mut per_stream: Vec<(String, u64)> = Vec::new();
    for task in progress.tasks() {
        let records = done
            .iter()
            .find(|(t, _)| Arc::ptr_eq(t, &task))
            .map(|(_, d)| d.records)
            .unwrap_or_else(|| task.counters.records.load(Ordering::Relaxed));
        match per_stream.iter_mut().find(|(s, _)| *s == task.stream) {
            Some((_, n)) => *n += records,
            None => per_stream.push((task.stream.clone(), records)),
        }
    }
    let stats = client.stats();
    let seconds = started.elapsed().as_secs_f64();
    let streams_text = per_stream.iter().map(|(s, n)| format!("{s} {n} records")).collect::<Vec<_>>().join(", ");
    let failed = if failures.is_empty() { String::new() } else { format!(", {} failed", failures.len()) };
    logger.info(
        "summary",
        &format!(
            "summary: {streams_text}; {} calls, {} retries, {} 429s{failed}, {seconds:.1} s",
            stats.requests, stats.retries, stats.rate_limited
        ),
        &[
            ("streams", Value::Object(per_stream.iter().map(|(s, n)| (s.clone(), json!(n))).collect())),
            ("calls", json!(stats.requests)),
            ("retries", json!(stats.retries)),
            ("rate_limited", json!(stats.rate_limited)),
            ("failed", json!(failures.len())),
            ("seconds", json!(round3(seconds))),
        ],
    );
}

/// `--since`: a date (`2026-01-01`) or a date and time (`2026-01-01T08:00:00Z`).
fn check_date(text: &str) -> CliResult<String> {
    let text = text.trim();
    let bytes = text.as_bytes();
    let date_ok = bytes.len() >= 10
        && bytes[..10].iter().enumerate().all(|(i, b)| if i == 4 || i == 7 { *b == b'-' } else { b.is_ascii_digit() })
        && (bytes.len() == 10 || bytes[10] == b'T' || bytes[10] == b' ');
    let month: u32 = text.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(0);
    let day: u32 = text.get(8..10).and_then(|d| d.parse().ok()).unwrap_or(0);
    if !date_ok || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(CliError::configuration(format!(
            "--since: expected a date such as 2026-01-01 or 2026-01-01T08:00:00Z, got {text:?}"
        )));
    }
    Ok(text.to_string())
}

/// The records of one page: its text and where each record of `data` sits in it.
struct PageRecords {
    body: Bytes,
    ranges: Vec<Range<usize>>,
}

impl PageRecords {
    fn parse(body: &Bytes) -> std::io::Result<PageRecords> {
        #[derive(serde::Deserialize)]
        struct DataOnly<'a> {
            #[serde(borrow)]
            data: Vec<&'a serde_json::value::RawValue>,
        }
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let text = std::str::from_utf8(body).map_err(|e| invalid(e.to_string()))?;
        let page: DataOnly<'_> = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let base = text.as_ptr() as usize;
        let ranges = page
            .data
            .iter()
            .map(|raw| {
                let start = raw.get().as_ptr() as usize - base;
                start..start + raw.get().len()
            })
            .collect();
        Ok(PageRecords { body: body.clone(), ranges })
    }

    fn texts(&self) -> Vec<&str> {
        // The body was checked as UTF-8 and each range is a whole JSON value of it.
        let text = std::str::from_utf8(&self.body).unwrap_or_default();
        self.ranges.iter().map(|r| &text[r.clone()]).collect()
    }
}

/// The columns of a stream for CSV and Parquet, from its record schema when the specs describe
/// its records (else the first page gives them).
fn schema_columns(stream: &Stream) -> Option<Columns> {
    crate::schema::record_schema(&stream.name).map(Columns::from_schema).filter(|c| !c.is_empty())
}

fn make_sink(run: &Run, stream: &Stream, tenant: i64, out: Destination) -> Box<dyn Sink> {
    let tag = run.several_tenants.then_some(tenant);
    match run.format {
        Format::Jsonl => Box::new(JsonlSink::new(out, tag)),
        Format::Csv => Box::new(CsvSink::new(out, schema_columns(stream), tag)),
        #[cfg(feature = "parquet")]
        Format::Parquet => Box::new(parquet_sink::ParquetSink::new(out, schema_columns(stream), tag)),
        #[cfg(not(feature = "parquet"))]
        Format::Parquet => unreachable!("refused before the run"),
    }
}

/// Copies one stream of one tenant, then saves its checkpoint.
async fn export_one(
    run: Arc<Run>,
    tenant: Tenant,
    stream: Stream,
    task: Arc<Task>,
    turns: Arc<tokio::sync::Semaphore>,
) -> CliResult<Done> {
    let _turn = turns.acquire_owned().await.map_err(|_| CliError::failure("the run was stopped"))?;
    run.progress.begin(&task);
    let result = copy_stream(&run, &tenant, &stream, &task).await;
    let written = match &result {
        Ok((_, Some(path))) => Some(format!(" → {}", path.display())),
        Ok((_, None)) if run.dir.is_some() => Some(" (nothing new, no file)".to_string()),
        Ok((_, None)) => Some(String::new()),
        Err(_) => None,
    };
    run.progress.finish(&task, written.as_deref());
    result
        .map(|(done, _)| done)
        .map_err(|e| CliError { code: e.code, message: format!("{}: {}", task.label, e.message) })
}

async fn copy_stream(run: &Run, tenant: &Tenant, stream: &Stream, task: &Task) -> CliResult<(Done, Option<PathBuf>)> {
    let tenant_id = tenant.id();
    let prior = match &run.state {
        Some(state) => state.lock().await.get(tenant_id, &stream.name),
        None => StreamState::default(),
    };
    let start = prior.continue_from.clone().or_else(|| run.since.clone());
    let path = run.dir.as_ref().map(|dir| {
        let ext = run.format.extension();
        match &run.state {
            Some(_) => dir.join(format!("{}.{tenant_id}.{:06}.{ext}", stream.name, prior.files + 1)),
            None => dir.join(format!("{}.{tenant_id}.{ext}", stream.name)),
        }
    });
    let open = |path: &Option<PathBuf>| -> CliResult<Destination> {
        match path {
            Some(path) => AtomicFile::create(path)
                .map(Destination::File)
                .map_err(|e| CliError::failure(format!("{}: {e}", path.display()))),
            None => Ok(Destination::Stdout(run.stdout.clone())),
        }
    };
    let output_error = |e: std::io::Error| -> CliError {
        match &path {
            Some(path) => CliError::failure(format!("{}: {e}", path.display())),
            None if e.kind() == std::io::ErrorKind::BrokenPipe => CliError::failure("standard output was closed"),
            None => CliError::failure(format!("standard output: {e}")),
        }
    };

    let mut call = tenant.operation(&stream.operation_name());
    if let Some(start) = &start {
        call = call.arg("since", start.as_str());
    }
    let feed = call.raw_records()?;
    let mut sink: Option<Box<dyn Sink>> = None;
    let mut page: Option<PageRecords> = None;
    let mut records = 0u64;
    while let Some(item) = feed.next().await {
        let record = item?;
        let same_page = page.as_ref().is_some_and(|p| p.body.as_ptr() == record.page.as_ptr());
        if !same_page {
            page = Some(PageRecords::parse(&record.page).map_err(|e| CliError::failure(format!("a page: {e}")))?);
            task.counters.pages.fetch_add(1, Ordering::Relaxed);
        }
        if record.index + 1 < record.page_len {
            continue;
        }
        // The page's last record: write the page whole.
        let texts = page.as_ref().map(PageRecords::texts).unwrap_or_default();
        if sink.is_none() {
            sink = Some(make_sink(run, stream, tenant_id, open(&path)?));
        }
        let writer = sink.as_mut().expect("made above");
        tokio::task::block_in_place(|| writer.write_page(&texts)).map_err(output_error)?;
        records += texts.len() as u64;
        task.counters.records.fetch_add(texts.len() as u64, Ordering::Relaxed);
        run.progress.log(
            Level::Debug,
            "page",
            &format!("{}: page of {} records", task.label, texts.len()),
            &[("stream", json!(stream.name)), ("tenant", json!(tenant_id)), ("records", json!(texts.len()))],
        );
    }
    // A run without new records writes no file when a state keeps the count (the next run
    // would only find it empty); without a state the file is the whole export, so it is made.
    if sink.is_none() && path.is_some() && run.state.is_none() {
        sink = Some(make_sink(run, stream, tenant_id, open(&path)?));
    }
    let written = match sink {
        Some(sink) => {
            let left_out = sink.left_out();
            tokio::task::block_in_place(|| sink.finish().and_then(Destination::commit)).map_err(output_error)?;
            if !left_out.is_empty() {
                run.progress.log(
                    Level::Warn,
                    "fields_left_out",
                    &format!(
                        "{}: fields without a column were left out of the {} file: {} (JSONL keeps every field)",
                        task.label,
                        run.format.extension(),
                        left_out.join(", ")
                    ),
                    &[("stream", json!(stream.name)), ("tenant", json!(tenant_id)), ("fields", json!(left_out))],
                );
            }
            path.clone()
        }
        None => None,
    };
    // The records are durable: now the checkpoint may move past them.
    if let Some(state) = &run.state {
        let files = prior.files + u64::from(written.is_some());
        let next = StreamState { continue_from: feed.continue_from().or(prior.continue_from), files, saved_at: None };
        let mut state = state.lock().await;
        tokio::task::block_in_place(|| state.save(tenant_id, &stream.name, next))?;
    }
    Ok((Done { records }, written))
}
