//! Progress on stderr: a bar per stream and tenant when stderr is a terminal (records, pages,
//! rate, ETA when the total is known, retries and 429s so far), plain log lines otherwise (or
//! with `--no-progress`, or `--log-format json`), nothing but errors with `--quiet`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use servicetitan::Client;

use crate::config::{GlobalArgs, LogFormat};
use crate::log::{Level, Logger};

/// How often a bar is redrawn.
const BAR_TICK: Duration = Duration::from_millis(150);
/// How often a plain progress line is written per running task (`ST_PROGRESS_INTERVAL_MS`
/// changes it, for demos and tests).
const LINE_INTERVAL: Duration = Duration::from_secs(5);

/// What one task (a stream of one tenant) has done so far; updated by the task, read by the
/// progress display.
#[derive(Debug, Default)]
pub struct Counters {
    /// Records written.
    pub records: AtomicU64,
    /// Pages received.
    pub pages: AtomicU64,
    /// The number of records to expect, when the API says (0: unknown).
    pub total: AtomicU64,
    begun: AtomicBool,
    done: AtomicBool,
}

/// One task shown by the display.
#[derive(Debug)]
pub struct Task {
    /// `crm_customers` or `crm_customers tenant 1001`.
    pub label: String,
    /// The stream's name.
    pub stream: String,
    /// The tenant.
    pub tenant: i64,
    /// Its counters.
    pub counters: Arc<Counters>,
    started: Mutex<Instant>,
    finished: Mutex<Option<Duration>>,
    bar: Option<ProgressBar>,
}

impl Task {
    /// How long the task ran (so far, if it still runs).
    pub fn elapsed(&self) -> Duration {
        self.finished.lock().ok().and_then(|f| *f).unwrap_or_else(|| self.started().elapsed())
    }

    fn started(&self) -> Instant {
        *self.started.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn rate(&self) -> f64 {
        let secs = self.elapsed().as_secs_f64();
        if secs > 0.0 {
            self.counters.records.load(Ordering::Relaxed) as f64 / secs
        } else {
            0.0
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bars,
    Lines,
    Off,
}

/// The progress display of one run.
pub struct Progress {
    mode: Mode,
    logger: Logger,
    client: Client,
    multi: Option<MultiProgress>,
    tasks: Mutex<Vec<Arc<Task>>>,
    stop: Arc<tokio::sync::Notify>,
    ticker: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Progress {
    /// The display the flags and stderr call for; `client` gives the retry and 429 counters.
    pub fn new(global: &GlobalArgs, logger: Logger, client: Client) -> Arc<Progress> {
        let terminal = std::io::stderr().is_terminal();
        let mode = if global.quiet {
            Mode::Off
        } else if terminal && !global.no_progress && global.log_format == LogFormat::Text {
            Mode::Bars
        } else {
            Mode::Lines
        };
        let multi = (mode == Mode::Bars).then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        let progress = Arc::new(Progress {
            mode,
            logger,
            client,
            multi,
            tasks: Mutex::new(Vec::new()),
            stop: Arc::new(tokio::sync::Notify::new()),
            ticker: Mutex::new(None),
        });
        if mode != Mode::Off {
            let ticking = progress.clone();
            let handle = tokio::spawn(async move { ticking.tick_until_stopped().await });
            *progress.ticker.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        }
        progress
    }

    /// Shows a task, waiting for its turn.
    pub fn add(&self, stream: &str, tenant: i64, several_tenants: bool) -> Arc<Task> {
        let label = if several_tenants { format!("{stream} tenant {tenant}") } else { stream.to_string() };
        let bar = self.multi.as_ref().map(|multi| {
            let bar = multi.add(ProgressBar::no_length());
            bar.set_style(spinner_style());
            bar.set_prefix(label.clone());
            bar.set_message("waiting for its turn");
            bar
        });
        let task = Arc::new(Task {
            label,
            stream: stream.to_string(),
            tenant,
            counters: Arc::new(Counters::default()),
            started: Mutex::new(Instant::now()),
            finished: Mutex::new(None),
            bar,
        });
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).push(task.clone());
        task
    }

    /// The task starts its work now.
    pub fn begin(&self, task: &Task) {
        *task.started.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        task.counters.begun.store(true, Ordering::Relaxed);
        if let Some(bar) = &task.bar {
            bar.reset_elapsed();
            bar.set_message("");
        }
        if self.mode == Mode::Lines {
            self.logger.info(
                "export_started",
                &format!("{}: started", task.label),
                &[("stream", json!(task.stream)), ("tenant", json!(task.tenant))],
            );
        }
    }

    /// Marks a task finished, with what it wrote (`None`: it failed, and said so itself).
    pub fn finish(&self, task: &Task, written: Option<&str>) {
        *task.finished.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.started().elapsed());
        task.counters.done.store(true, Ordering::Relaxed);
        let records = task.counters.records.load(Ordering::Relaxed);
        let pages = task.counters.pages.load(Ordering::Relaxed);
        if let Some(bar) = &task.bar {
            self.draw(task, bar);
            match written {
                Some(_) => bar.finish(),
                None => bar.abandon_with_message("failed"),
            }
        }
        if let (Mode::Lines, Some(written)) = (self.mode, written) {
            self.logger.info(
                "export_finished",
                &format!(
                    "{}: done, {} in {}, {:.1} s{written}",
                    task.label,
                    counted(records, "record"),
                    counted(pages, "page"),
                    task.elapsed().as_secs_f64()
                ),
                &[
                    ("stream", json!(task.stream)),
                    ("tenant", json!(task.tenant)),
                    ("records", json!(records)),
                    ("pages", json!(pages)),
                    ("seconds", json!(round3(task.elapsed().as_secs_f64()))),
                ],
            );
        }
    }

    /// Writes a line above the bars (or as a plain line).
    pub fn log(&self, level: Level, event: &str, message: &str, fields: &[(&str, serde_json::Value)]) {
        match &self.multi {
            Some(multi) if self.logger.enabled(level) => {
                multi.suspend(|| self.logger.log(level, event, message, fields));
            }
            _ => self.logger.log(level, event, message, fields),
        }
    }

    /// Stops the display (the bars stay on screen as last drawn).
    pub async fn stop(&self) {
        self.stop.notify_one();
        let handle = self.ticker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = handle {
            let _ = handle.await;
        }
        if self.multi.is_some() {
            // The finished bars stay on screen; what follows starts on a line of its own.
            let _ = std::io::Write::write_all(&mut std::io::stderr(), b"\n");
        }
    }

    /// Every task shown, in the order started.
    pub fn tasks(&self) -> Vec<Arc<Task>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn tick_until_stopped(&self) {
        let interval = match self.mode {
            Mode::Bars => BAR_TICK,
            _ => std::env::var("ST_PROGRESS_INTERVAL_MS")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis)
                .unwrap_or(LINE_INTERVAL),
        };
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            tokio::select! {
                () = self.stop.notified() => return,
                _ = ticks.tick() => self.tick(),
            }
        }
    }

    fn tick(&self) {
        for task in self.tasks() {
            if task.counters.done.load(Ordering::Relaxed) || !task.counters.begun.load(Ordering::Relaxed) {
                continue;
            }
            match (&task.bar, self.mode) {
                (Some(bar), _) => self.draw(&task, bar),
                (None, Mode::Lines) => self.line(&task),
                _ => {}
            }
        }
    }

    fn draw(&self, task: &Task, bar: &ProgressBar) {
        let counters = &task.counters;
        let total = counters.total.load(Ordering::Relaxed);
        if total > 0 && bar.length().is_none() {
            bar.set_length(total);
            bar.set_style(bar_style());
        }
        let stats = self.client.stats();
        bar.set_position(counters.records.load(Ordering::Relaxed));
        bar.set_message(format!(
            "{} pages, {:.0}/s, {} retries, {} 429s",
            counters.pages.load(Ordering::Relaxed),
            task.rate(),
            stats.retries,
            stats.rate_limited
        ));
    }

    fn line(&self, task: &Task) {
        let counters = &task.counters;
        let records = counters.records.load(Ordering::Relaxed);
        let pages = counters.pages.load(Ordering::Relaxed);
        let total = counters.total.load(Ordering::Relaxed);
        let stats = self.client.stats();
        let rate = task.rate();
        let eta = if total > records && rate > 0.0 {
            format!(", ETA {:.0} s", (total - records) as f64 / rate)
        } else {
            String::new()
        };
        self.logger.info(
            "export_progress",
            &format!(
                "{}: {}, {}, {rate:.0}/s{eta}, {} retries, {} 429s",
                task.label,
                counted(records, "record"),
                counted(pages, "page"),
                stats.retries,
                stats.rate_limited
            ),
            &[
                ("stream", json!(task.stream)),
                ("tenant", json!(task.tenant)),
                ("records", json!(records)),
                ("pages", json!(pages)),
                ("records_per_second", json!(rate.round())),
                ("retries", json!(stats.retries)),
                ("rate_limited", json!(stats.rate_limited)),
            ],
        );
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix:.bold} {pos} records, {msg} [{elapsed}]")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:.bold} [{bar:30}] {pos}/{len} records, {msg}, ETA {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// `1 record`, `2 records`.
pub fn counted(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Rounds seconds to milliseconds, for JSON.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
