//! Log lines on stderr: readable text or one JSON object per line (`--log-format json`),
//! quieted by `--quiet` (errors only), more detail with `--verbose`. stdout carries data only.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::config::{GlobalArgs, LogFormat};

/// How much goes to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Failures.
    Error,
    /// Something the user should know about, the work going on.
    Warn,
    /// Progress and the summary.
    Info,
    /// Per-page detail (`--verbose`).
    Debug,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

/// Writes log lines to stderr. Cheap to clone; each line is written whole in one call, so lines
/// from concurrent tasks never interleave.
#[derive(Debug, Clone, Copy)]
pub struct Logger {
    format: LogFormat,
    level: Level,
}

impl Logger {
    /// The logger the global flags ask for.
    pub fn new(global: &GlobalArgs) -> Logger {
        let level = if global.quiet {
            Level::Error
        } else if global.verbose {
            Level::Debug
        } else {
            Level::Info
        };
        Logger { format: global.log_format, level }
    }

    /// Whether lines of this level are written.
    pub fn enabled(&self, level: Level) -> bool {
        level <= self.level
    }

    /// Writes one line: `message` for people, `event` and `fields` for machines (the JSON form
    /// carries `time`, `level`, `event`, `message` and the fields).
    pub fn log(&self, level: Level, event: &str, message: &str, fields: &[(&str, Value)]) {
        if !self.enabled(level) {
            return;
        }
        let line = match self.format {
            LogFormat::Text => match level {
                Level::Error => format!("servicetitan: error: {message}\n"),
                Level::Warn => format!("servicetitan: warning: {message}\n"),
                Level::Info | Level::Debug => format!("servicetitan: {message}\n"),
            },
            LogFormat::Json => {
                let mut object = Map::new();
                object.insert("time".into(), Value::String(now_rfc3339()));
                object.insert("level".into(), Value::String(level.name().into()));
                object.insert("event".into(), Value::String(event.into()));
                object.insert("message".into(), Value::String(message.into()));
                for (key, value) in fields {
                    object.insert((*key).into(), value.clone());
                }
                let mut text = Value::Object(object).to_string();
                text.push('\n');
                text
            }
        };
        // A closed stderr is no reason to fail the work.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    /// An info line.
    pub fn info(&self, event: &str, message: &str, fields: &[(&str, Value)]) {
        self.log(Level::Info, event, message, fields)
    }
}

/// The current UTC time as `2026-01-02T03:04:05.678Z`.
pub fn now_rfc3339() -> String {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's method).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_become_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }
}
