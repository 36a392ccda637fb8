//! The tap's state, in singer-sdk's shape: one bookmark per stream, or, when a run has several
//! tenants, one per tenant under the stream's `partitions` with its `context`.
//!
//! ```json
//! {"bookmarks": {
//!   "crm_customers": {"replication_key": "modifiedOn", "replication_key_value": "2026-01-02T03:04:05Z",
//!                     "continue_from": "MDozMDph…"},
//!   "jpm_jobs": {"partitions": [
//!     {"context": {"tenant_id": 1001}, "replication_key": "modifiedOn", "replication_key_value": "…",
//!      "continue_from": "…"}]}}}
//! ```
//!
//! `continue_from` is the export feed's checkpoint: a run resumes from it. A bookmark without
//! one (written by another tool) resumes from its `replication_key_value`.

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::exit::{CliError, CliResult};

/// The key of a partition's context.
pub const CONTEXT_KEY: &str = "tenant_id";

/// The whole state: bookmarks of the streams this run syncs, and those of the others unchanged.
#[derive(Debug, Default)]
pub struct State {
    bookmarks: Map<String, Value>,
}

impl State {
    /// Reads `--state FILE`; an empty file or `{}` is no state. A runner's `{"value": {...}}`
    /// wrapper is looked through.
    pub fn read(path: &Path) -> CliResult<State> {
        let shown = path.display();
        let text =
            std::fs::read_to_string(path).map_err(|e| CliError::configuration(format!("--state {shown}: {e}")))?;
        if text.trim().is_empty() {
            return Ok(State::default());
        }
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| CliError::configuration(format!("--state {shown}: not a JSON document: {e}")))?;
        State::from_json(value).map_err(|message| CliError::configuration(format!("--state {shown}: {message}")))
    }

    /// The state of a parsed document.
    pub fn from_json(mut value: Value) -> Result<State, String> {
        if value.get("bookmarks").is_none() {
            if let Some(inner) = value.get_mut("value") {
                value = inner.take();
            }
        }
        let Some(object) = value.as_object() else {
            return Err("expected a JSON object with `bookmarks`".into());
        };
        match object.get("bookmarks") {
            None | Some(Value::Null) => Ok(State::default()),
            Some(Value::Object(bookmarks)) => Ok(State { bookmarks: bookmarks.clone() }),
            Some(_) => Err("bookmarks: expected an object of stream bookmarks".into()),
        }
    }

    /// The bookmark of `stream` for `tenant` (`None` for a one-tenant run's plain bookmark).
    pub fn bookmark(&self, stream: &str, tenant: Option<i64>) -> Option<&Map<String, Value>> {
        let entry = self.bookmarks.get(stream)?.as_object()?;
        match tenant {
            None => Some(entry),
            Some(id) => entry
                .get("partitions")?
                .as_array()?
                .iter()
                .filter_map(Value::as_object)
                .find(|p| p.get("context").and_then(|c| c.get(CONTEXT_KEY)).and_then(Value::as_i64) == Some(id)),
        }
    }

    /// Where a stream's export starts: the saved checkpoint, else the saved replication key
    /// value, else `start_date`.
    pub fn start(&self, stream: &str, tenant: Option<i64>, start_date: Option<&str>) -> Option<String> {
        let bookmark = self.bookmark(stream, tenant);
        let saved = |key: &str| bookmark.and_then(|b| b.get(key)).and_then(Value::as_str).filter(|s| !s.is_empty());
        saved("continue_from").or_else(|| saved("replication_key_value")).or(start_date).map(String::from)
    }

    /// Records progress: the feed's checkpoint, and the greatest replication key value seen.
    pub fn advance(
        &mut self,
        stream: &str,
        tenant: Option<i64>,
        replication_key: Option<&str>,
        latest: Option<&str>,
        continue_from: Option<&str>,
    ) {
        let entry = self.bookmarks.entry(stream.to_string()).or_insert_with(|| json!({}));
        if !entry.is_object() {
            *entry = json!({});
        }
        let bookmark = match tenant {
            None => entry.as_object_mut().expect("an object"),
            Some(id) => {
                let object = entry.as_object_mut().expect("an object");
                let partitions = object.entry("partitions").or_insert_with(|| json!([]));
                if !partitions.is_array() {
                    *partitions = json!([]);
                }
                let list = partitions.as_array_mut().expect("a list");
                let at = list.iter().position(|p| {
                    p.get("context").and_then(|c| c.get(CONTEXT_KEY)).and_then(Value::as_i64) == Some(id)
                });
                let at = at.unwrap_or_else(|| {
                    list.push(json!({"context": {CONTEXT_KEY: id}}));
                    list.len() - 1
                });
                list[at].as_object_mut().expect("an object")
            }
        };
        if let Some(key) = replication_key {
            bookmark.insert("replication_key".into(), json!(key));
            let previous = bookmark.get("replication_key_value").and_then(Value::as_str);
            if let Some(latest) = latest {
                // ServiceTitan writes every date-time in one format (UTC, `Z`), so text order is time order.
                if previous.is_none_or(|p| latest > p) {
                    bookmark.insert("replication_key_value".into(), json!(latest));
                }
            }
        }
        if let Some(token) = continue_from {
            bookmark.insert("continue_from".into(), json!(token));
        }
    }

    /// The `value` of a STATE message.
    pub fn to_json(&self) -> Value {
        json!({ "bookmarks": self.bookmarks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_tenant_bookmarks_sit_on_the_stream() {
        let mut state = State::default();
        state.advance("crm_customers", None, Some("modifiedOn"), Some("2026-01-02T00:00:00Z"), Some("t1"));
        state.advance("crm_customers", None, Some("modifiedOn"), Some("2026-01-01T00:00:00Z"), Some("t2"));
        assert_eq!(
            state.to_json(),
            json!({"bookmarks": {"crm_customers": {
                "replication_key": "modifiedOn", "replication_key_value": "2026-01-02T00:00:00Z", "continue_from": "t2"}}})
        );
        assert_eq!(state.start("crm_customers", None, Some("2020-01-01")).as_deref(), Some("t2"));
        assert_eq!(state.start("jpm_jobs", None, Some("2020-01-01")).as_deref(), Some("2020-01-01"));
    }

    #[test]
    fn several_tenants_get_partitions_with_context() {
        let mut state = State::default();
        state.advance("jpm_jobs", Some(1001), Some("modifiedOn"), Some("a"), Some("t1"));
        state.advance("jpm_jobs", Some(1002), Some("modifiedOn"), None, Some("t2"));
        let value = state.to_json();
        let partitions = value["bookmarks"]["jpm_jobs"]["partitions"].as_array().unwrap();
        assert_eq!(partitions.len(), 2);
        assert_eq!(partitions[1]["context"], json!({"tenant_id": 1002}));
        let reread = State::from_json(value).unwrap();
        assert_eq!(reread.start("jpm_jobs", Some(1001), None).as_deref(), Some("t1"));
        assert_eq!(reread.start("jpm_jobs", Some(1003), None), None);
    }

    #[test]
    fn a_bookmark_without_checkpoint_resumes_from_its_replication_value() {
        let state = State::from_json(json!({"value": {"bookmarks": {"crm_customers": {
            "replication_key": "modifiedOn", "replication_key_value": "2026-03-01T00:00:00Z"}}}}))
        .unwrap();
        assert_eq!(state.start("crm_customers", None, Some("2020-01-01")).as_deref(), Some("2026-03-01T00:00:00Z"));
        assert!(State::from_json(json!({"bookmarks": []})).is_err());
    }
}
