//! Where the command's settings come from: flags, else `ST_*` environment variables (as
//! `Client::from_env()` reads them), else a profile of the TOML configuration file.
//!
//! ```toml
//! profile = "production"          # the profile used without --profile / ST_PROFILE
//!
//! [profiles.production]
//! app_key = "ak1.…"
//! environment = "production"      # or auth_url + api_url
//! # redis_url = "redis://…"       # share tokens and the rate budget between hosts
//!
//! [[profiles.production.tenants]]
//! id = 1234567
//! client_id = "cid.…"
//! client_secret = "cs1.…"
//! ```
//!
//! Secrets (the app key, client secrets) are read from the environment or the file only, never
//! from flags (which other users of the machine can see), and are never printed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, ValueEnum};
use serde::Deserialize;
use servicetitan::{Client, Secret, TenantCredentials};

use crate::exit::{CliError, CliResult};

/// Options every command takes.
#[derive(Args, Debug, Clone, Default)]
pub struct GlobalArgs {
    /// The TOML configuration file [default: $XDG_CONFIG_HOME/servicetitan/config.toml, if it exists].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The profile of the configuration file [env: ST_PROFILE].
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// `production` or `integration` [env: ST_ENVIRONMENT].
    #[arg(long, global = true, value_name = "NAME")]
    pub environment: Option<String>,
    /// The token service's base URL, for a custom environment (with --api-url) [env: ST_AUTH_URL].
    #[arg(long, global = true, value_name = "URL")]
    pub auth_url: Option<String>,
    /// The API's base URL, for a custom environment (with --auth-url) [env: ST_API_URL].
    #[arg(long, global = true, value_name = "URL")]
    pub api_url: Option<String>,
    /// A tenant to work on (repeatable); its credentials come from the environment or the file.
    #[arg(long = "tenant", global = true, value_name = "ID")]
    pub tenants: Vec<i64>,
    /// Work on every tenant of the profile, concurrently (each at its own rate budget).
    #[arg(long, global = true, conflicts_with = "tenants")]
    pub all_tenants: bool,
    /// More detail on stderr (retries, waits, token fetches); never a secret.
    #[arg(long, short, global = true, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Only errors on stderr.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// No progress bars, even on a terminal (plain log lines instead).
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// How log lines on stderr are written.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// One profile of the configuration file.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The app key.
    pub app_key: Option<String>,
    /// `production` or `integration`.
    pub environment: Option<String>,
    /// Custom environment: the token service's base URL.
    pub auth_url: Option<String>,
    /// Custom environment: the API's base URL.
    pub api_url: Option<String>,
    /// Share tokens and rate budgets through Redis.
    pub redis_url: Option<String>,
    /// The tenants and their credentials.
    #[serde(default)]
    pub tenants: Vec<TenantEntry>,
}

/// One tenant of a profile.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct TenantEntry {
    /// The tenant id.
    pub id: i64,
    /// The client id of the app's credentials for this tenant.
    pub client_id: String,
    /// The client secret (never printed).
    pub client_secret: String,
}

impl std::fmt::Debug for TenantEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantEntry")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    profile: Option<String>,
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

/// Where settings are looked up after the flags: the environment (by default the process's).
pub type Lookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The process's environment (empty values count as unset).
pub fn process_env() -> Lookup {
    Arc::new(|name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
}

/// Settings the command resolves itself (flags, then environment, then file); the engine must
/// not read them from the environment again behind its back.
const RESOLVED_HERE: &[&str] = &["ST_ENVIRONMENT", "ST_AUTH_URL", "ST_API_URL", "ST_APP_KEY", "ST_REDIS_URL"];

/// What the command works with: a client and the chosen tenants.
pub struct Resolved {
    /// The client (token cache, rate limiter, retries).
    pub client: Client,
    /// The tenants to work on, in the order given.
    pub tenants: Vec<TenantCredentials>,
    /// The profile's name, when a file gave one.
    pub profile: Option<String>,
}

/// The profile selected by `--profile`, `ST_PROFILE` or the file's `profile`, if there is a file.
pub fn load_profile(global: &GlobalArgs, env: &Lookup) -> CliResult<Option<(String, Profile)>> {
    let (path, explicit) = match &global.config {
        Some(path) => (path.clone(), true),
        None => match default_config_path(env) {
            Some(path) => (path, false),
            None => return Ok(None),
        },
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CliError::configuration(format!("--config {}: {e}", path.display()))),
    };
    let file: ConfigFile = toml::from_str(&text)
        .map_err(|e| CliError::configuration(format!("--config {}: {}", path.display(), one_line(&e.to_string()))))?;
    let wanted = global.profile.clone().or_else(|| env("ST_PROFILE")).or(file.profile.clone());
    let name = match wanted {
        Some(name) => name,
        None if file.profiles.len() == 1 => file.profiles.keys().next().cloned().unwrap_or_default(),
        None if file.profiles.contains_key("default") => "default".to_string(),
        None if file.profiles.is_empty() => return Ok(None),
        None => {
            return Err(CliError::configuration(format!(
                "{} has several profiles ({}): choose one with --profile NAME or ST_PROFILE, or set `profile = \"NAME\"` in the file",
                path.display(),
                file.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
            )))
        }
    };
    match file.profiles.get(&name) {
        Some(profile) => Ok(Some((name, profile.clone()))),
        None => Err(CliError::configuration(format!(
            "--profile {name}: {} has no such profile (it has: {})",
            path.display(),
            file.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
        ))),
    }
}

fn default_config_path(env: &Lookup) -> Option<PathBuf> {
    let base = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|home| Path::new(&home).join(".config")))?;
    Some(base.join("servicetitan").join("config.toml"))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Builds the client and picks the tenants, from the process's environment.
pub fn resolve(global: &GlobalArgs) -> CliResult<Resolved> {
    resolve_with(global, process_env())
}

/// Builds the client and picks the tenants, looking settings up in `env`.
pub fn resolve_with(global: &GlobalArgs, env: Lookup) -> CliResult<Resolved> {
    let loaded = load_profile(global, &env)?;
    resolve_profile(global, env, loaded)
}

/// Builds the client and picks the tenants from a profile the caller read itself (the Singer
/// tap's JSON config), the flags and `env`; the TOML file is not read.
pub fn resolve_profile(global: &GlobalArgs, env: Lookup, loaded: Option<(String, Profile)>) -> CliResult<Resolved> {
    let (profile_name, profile) = match loaded {
        Some((name, profile)) => (Some(name), profile),
        None => (None, Profile::default()),
    };

    let engine_env = env.clone();
    let mut builder = Client::builder().language("cli").env_lookup(move |name| {
        if RESOLVED_HERE.contains(&name) {
            None
        } else {
            engine_env(name)
        }
    });
    // The endpoint is one choice, made whole by the first source that makes it: the flags, the
    // environment, the file. Mixing an environment from one with URLs from another would
    // silently talk to the wrong place.
    let flag_endpoint = (global.environment.clone(), global.auth_url.clone(), global.api_url.clone());
    let env_endpoint = (env("ST_ENVIRONMENT"), env("ST_AUTH_URL"), env("ST_API_URL"));
    let file_endpoint = (profile.environment.clone(), profile.auth_url.clone(), profile.api_url.clone());
    let given = |e: &(Option<String>, Option<String>, Option<String>)| e.0.is_some() || e.1.is_some() || e.2.is_some();
    let endpoint = [flag_endpoint, env_endpoint, file_endpoint].into_iter().find(given);
    if let Some((environment, auth_url, api_url)) = endpoint {
        if let Some(name) = environment {
            builder = builder.environment_name(name);
        }
        if let Some(url) = auth_url {
            builder = builder.auth_url(url);
        }
        if let Some(url) = api_url {
            builder = builder.api_url(url);
        }
    }
    match env("ST_APP_KEY").or_else(|| profile.app_key.clone()) {
        Some(key) => builder = builder.app_key(Secret::new(key)),
        None => {
            return Err(CliError::configuration(
                "no app key: set ST_APP_KEY, or app_key in the profile of the configuration file (--config)",
            ))
        }
    }
    if let Some(url) = env("ST_REDIS_URL").or_else(|| profile.redis_url.clone()) {
        builder = builder.redis_url(url);
    }
    let client = builder.build()?;
    let tenants = choose_tenants(global, &env, &profile)?;
    Ok(Resolved { client, tenants, profile: profile_name })
}

/// The tenants known (the environment's `ST_TENANT_ID` + `ST_CLIENT_ID` + `ST_CLIENT_SECRET`,
/// then the profile's), narrowed by `--tenant` / `--all-tenants`.
fn choose_tenants(global: &GlobalArgs, env: &Lookup, profile: &Profile) -> CliResult<Vec<TenantCredentials>> {
    let mut known: Vec<TenantCredentials> = Vec::new();
    if env("ST_TENANT_ID").is_some() || env("ST_CLIENT_ID").is_some() || env("ST_CLIENT_SECRET").is_some() {
        let tenant_id = match env("ST_TENANT_ID") {
            Some(text) => Some(text.trim().parse::<i64>().map_err(|_| {
                CliError::configuration(format!("ST_TENANT_ID: expected a tenant id (a whole number), got {text:?}"))
            })?),
            None => None,
        };
        known.push(TenantCredentials::resolve(tenant_id, env("ST_CLIENT_ID"), env("ST_CLIENT_SECRET"))?);
    }
    for entry in &profile.tenants {
        if known.iter().all(|t| t.tenant_id() != entry.id) {
            known.push(TenantCredentials::new(entry.id, entry.client_id.clone(), entry.client_secret.clone()));
        }
    }
    let ids =
        |list: &[TenantCredentials]| list.iter().map(|t| t.tenant_id().to_string()).collect::<Vec<_>>().join(", ");
    if global.all_tenants {
        if known.is_empty() {
            return Err(CliError::configuration(
                "--all-tenants: no tenants configured (set ST_TENANT_ID, ST_CLIENT_ID and ST_CLIENT_SECRET, or list tenants in the profile)",
            ));
        }
        return Ok(known);
    }
    if !global.tenants.is_empty() {
        let mut chosen = Vec::new();
        for id in &global.tenants {
            match known.iter().find(|t| t.tenant_id() == *id) {
                Some(t) if !chosen.iter().any(|c: &TenantCredentials| c.tenant_id() == *id) => chosen.push(t.clone()),
                Some(_) => {}
                None => {
                    return Err(CliError::configuration(format!(
                        "--tenant {id}: no credentials for this tenant (known: {}); add it to the profile or set ST_TENANT_ID, ST_CLIENT_ID and ST_CLIENT_SECRET",
                        if known.is_empty() { "none".to_string() } else { ids(&known) }
                    )))
                }
            }
        }
        return Ok(chosen);
    }
    match known.len() {
        0 => Err(CliError::configuration(
            "no tenant: set ST_TENANT_ID, ST_CLIENT_ID and ST_CLIENT_SECRET, or list tenants in the profile of the configuration file",
        )),
        1 => Ok(known),
        _ => Err(CliError::configuration(format!(
            "several tenants are configured ({}): choose with --tenant ID (repeatable) or --all-tenants",
            ids(&known)
        ))),
    }
}
