//! The tap's JSON config, as Singer runners write it, and how it becomes a client and tenants.
//!
//! ```json
//! {"app_key": "ak1.…", "environment": "production",
//!  "tenants": [{"id": 1234567, "client_id": "cid.…", "client_secret": "cs1.…"}],
//!  "start_date": "2026-01-01T00:00:00Z"}
//! ```
//!
//! What the file leaves out comes from the `ST_*` environment variables: `ST_APP_KEY`, the
//! endpoint (`ST_ENVIRONMENT`, or `ST_AUTH_URL` and `ST_API_URL`) and one tenant
//! (`ST_TENANT_ID`, `ST_CLIENT_ID`, `ST_CLIENT_SECRET`).

use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::config::{self, GlobalArgs, Lookup, Profile, Resolved, TenantEntry};
use crate::exit::{CliError, CliResult};

/// The keys the config may hold, in the order `--about` lists them.
pub const KEYS: &[&str] = &["app_key", "environment", "auth_url", "api_url", "tenants", "start_date"];
const TENANT_KEYS: &[&str] = &["id", "client_id", "client_secret"];

/// The tap's settings. Secrets are held, never shown (no `Debug`).
#[derive(Default, Clone)]
pub struct TapConfig {
    app_key: Option<String>,
    environment: Option<String>,
    auth_url: Option<String>,
    api_url: Option<String>,
    tenants: Option<Vec<TenantEntry>>,
    /// Where a stream without a bookmark starts (a date or an RFC 3339 date-time).
    pub start_date: Option<String>,
}

impl TapConfig {
    /// Reads and checks the config file; a problem is one `configuration` error naming the key.
    pub fn read(path: &Path) -> CliResult<TapConfig> {
        let shown = path.display();
        let text =
            std::fs::read_to_string(path).map_err(|e| CliError::configuration(format!("--config {shown}: {e}")))?;
        // serde_json's message names a line and column, never the text around it.
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| CliError::configuration(format!("--config {shown}: not a JSON document: {e}")))?;
        TapConfig::from_json(&value).map_err(|message| CliError::configuration(format!("--config {shown}: {message}")))
    }

    /// Checks a parsed config: known keys only, each of the expected type (`null` counts as unset).
    pub fn from_json(value: &Value) -> Result<TapConfig, String> {
        let Some(object) = value.as_object() else {
            return Err("expected a JSON object of settings".into());
        };
        let mut config = TapConfig::default();
        for (key, value) in object {
            if value.is_null() {
                continue;
            }
            match key.as_str() {
                "app_key" => config.app_key = Some(string(key, value)?),
                "environment" => config.environment = Some(string(key, value)?),
                "auth_url" => config.auth_url = Some(string(key, value)?),
                "api_url" => config.api_url = Some(string(key, value)?),
                "start_date" => {
                    let date = string(key, value)?;
                    if !looks_like_date(&date) {
                        return Err(format!(
                            "start_date: expected a date (2026-01-01) or an RFC 3339 date-time, got {date:?}"
                        ));
                    }
                    config.start_date = Some(date);
                }
                "tenants" => config.tenants = Some(tenants(value)?),
                other => return Err(format!("unknown key {other:?} (the tap knows: {})", KEYS.join(", "))),
            }
        }
        Ok(config)
    }

    /// How many tenants a run works on, as far as the config and the environment say (for
    /// discovery, which needs no credentials).
    pub fn tenant_count(&self, global: &GlobalArgs, env: &Lookup) -> usize {
        if !global.tenants.is_empty() {
            return global.tenants.len();
        }
        match &self.tenants {
            Some(list) if !list.is_empty() => list.len(),
            _ => usize::from(env("ST_TENANT_ID").is_some()).max(1),
        }
    }

    /// The client and the tenants: the file first, `ST_*` variables for what it leaves out, flags
    /// (`--tenant`, `--environment`...) above both. Every configured tenant unless `--tenant`.
    pub fn resolve(&self, global: &GlobalArgs, env: Lookup) -> CliResult<Resolved> {
        let file = self.clone();
        let endpoint_in_file = file.environment.is_some() || file.auth_url.is_some() || file.api_url.is_some();
        let tenants_in_file = file.tenants.as_ref().is_some_and(|t| !t.is_empty());
        if file.app_key.is_none() && env("ST_APP_KEY").is_none() {
            return Err(CliError::configuration("no app key: set app_key in the tap's config, or ST_APP_KEY"));
        }
        if !tenants_in_file && env("ST_TENANT_ID").is_none() {
            return Err(CliError::configuration(
                "no tenant: list tenants in the tap's config ([{\"id\", \"client_id\", \"client_secret\"}]), or set ST_TENANT_ID, ST_CLIENT_ID and ST_CLIENT_SECRET",
            ));
        }
        let overlay: Lookup = Arc::new(move |name: &str| match name {
            "ST_APP_KEY" => file.app_key.clone().or_else(|| env(name)),
            "ST_ENVIRONMENT" if endpoint_in_file => file.environment.clone(),
            "ST_AUTH_URL" if endpoint_in_file => file.auth_url.clone(),
            "ST_API_URL" if endpoint_in_file => file.api_url.clone(),
            "ST_TENANT_ID" | "ST_CLIENT_ID" | "ST_CLIENT_SECRET" if tenants_in_file => None,
            _ => env(name),
        });
        let profile = Profile { tenants: self.tenants.clone().unwrap_or_default(), ..Profile::default() };
        let mut flags = global.clone();
        flags.config = None;
        flags.all_tenants = flags.tenants.is_empty();
        config::resolve_profile(&flags, overlay, Some(("tap".to_string(), profile)))
    }
}

fn string(key: &str, value: &Value) -> Result<String, String> {
    match value.as_str() {
        Some(text) if !text.trim().is_empty() => Ok(text.to_string()),
        Some(_) => Err(format!("{key}: expected a non-empty string")),
        None => Err(format!("{key}: expected a string, got {}", kind(value))),
    }
}

fn tenants(value: &Value) -> Result<Vec<TenantEntry>, String> {
    let Some(list) = value.as_array() else {
        return Err(format!(
            "tenants: expected a list of {{\"id\", \"client_id\", \"client_secret\"}} objects, got {}",
            kind(value)
        ));
    };
    let mut entries: Vec<TenantEntry> = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let Some(object) = item.as_object() else {
            return Err(format!(
                "tenants[{i}]: expected an object with id, client_id and client_secret, got {}",
                kind(item)
            ));
        };
        let entry = tenant(i, object)?;
        if entries.iter().any(|e| e.id == entry.id) {
            return Err(format!("tenants[{i}].id: tenant {} is listed twice", entry.id));
        }
        entries.push(entry);
    }
    Ok(entries)
}

fn tenant(i: usize, object: &Map<String, Value>) -> Result<TenantEntry, String> {
    if let Some(unknown) = object.keys().find(|k| !TENANT_KEYS.contains(&k.as_str())) {
        return Err(format!("tenants[{i}]: unknown key {unknown:?} (a tenant has: {})", TENANT_KEYS.join(", ")));
    }
    let field = |name: &str| object.get(name).filter(|v| !v.is_null());
    let id = match field("id") {
        // A runner that keeps every setting as text writes the id as a string of digits.
        Some(Value::String(text)) => text.trim().parse::<i64>().ok(),
        Some(value) => value.as_i64(),
        None => return Err(format!("tenants[{i}].id: missing (the tenant id, a whole number)")),
    };
    let Some(id) = id else {
        return Err(format!("tenants[{i}].id: expected a tenant id (a whole number)"));
    };
    let text = |name: &str| match field(name) {
        Some(value) => string(&format!("tenants[{i}].{name}"), value),
        None => Err(format!("tenants[{i}].{name}: missing")),
    };
    Ok(TenantEntry { id, client_id: text("client_id")?, client_secret: text("client_secret")? })
}

/// `2026-01-01`, or a date-time that starts with one (`2026-01-01T00:00:00Z`).
fn looks_like_date(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 10
        && b[..10].iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() })
        && (b.len() == 10 || matches!(b[10], b'T' | b't' | b' '))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_full_config_is_read() {
        let config = TapConfig::from_json(&json!({
            "app_key": "ak", "environment": "integration", "start_date": "2026-01-01",
            "tenants": [{"id": 1, "client_id": "c", "client_secret": "s"}, {"id": "2", "client_id": "c", "client_secret": "s"}]
        }))
        .unwrap();
        assert_eq!(config.tenants.as_ref().unwrap().iter().map(|t| t.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(config.start_date.as_deref(), Some("2026-01-01"));
    }

    #[test]
    fn mistakes_name_the_key() {
        let error = |value: Value| TapConfig::from_json(&value).err().unwrap();
        assert!(error(json!({"app_keys": "x"})).starts_with("unknown key \"app_keys\""));
        assert!(error(json!({"app_key": 5})).starts_with("app_key: expected a string, got a number"));
        assert!(error(json!({"tenants": {}})).starts_with("tenants: expected a list"));
        assert!(error(json!({"tenants": [{"id": "x", "client_id": "c", "client_secret": "s"}]}))
            .starts_with("tenants[0].id"));
        assert!(
            error(json!({"tenants": [{"id": 1, "client_id": "c"}]})).starts_with("tenants[0].client_secret: missing")
        );
        assert!(error(json!({"tenants": [{"id": 1, "client_id": "c", "client_secret": "s", "x": 1}]}))
            .starts_with("tenants[0]: unknown key \"x\""));
        assert!(error(json!({"start_date": "yesterday"})).starts_with("start_date: expected a date"));
        assert!(error(json!([])).starts_with("expected a JSON object"));
    }
}
