//! The behavioural scenarios shared by the Rust, Python and Node suites (`tests/scenarios.json`),
//! run through the Rust engine against an embedded sandbox.
//!
//! One test per scenario (listed in `scenarios!` below; `every_scenario_of_the_file_is_listed`
//! fails when the file gains one the list lacks). Each scenario gets a fresh sandbox and client;
//! the file's `vocabulary` says what every step and expectation means, and where it leaves room
//! this runner does what `python/tests/scenario_runner.py` does. Unknown keys fail the scenario,
//! so a new kind of step or expectation is never silently skipped.
//!
//! Scenarios marked `timing` (and those checking `secrets_absent`, which capture the process's
//! log output) run alone; the others may run side by side.
//!
//! `SCENARIOS_FILE=/path/to/copy.json` runs another copy of the file (to check the runner fails
//! when an expectation is broken); `SHOW_LOGS=1` prints the log captured for `secrets_absent`.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use servicetitan::{Client, Error, Method, Tenant, TenantCredentials};
use servicetitan_sandbox::{Fault, Sandbox, SandboxConfig};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

type Obj = Map<String, Value>;

/// Longest a scenario may take before it counts as hung (the slowest takes about 6 s).
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(180);

macro_rules! scenarios {
    ($($id:ident),* $(,)?) => {
        /// Every scenario id with a test of its own.
        const LISTED: &[&str] = &[$(stringify!($id)),*];
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $id() {
                run_scenario(stringify!($id)).await;
            }
        )*
    };
}

scenarios!(
    token_single_flight,
    zero_429_at_the_limit_fixed_windows,
    zero_429_at_the_limit_sliding_window,
    multi_tenant_each_at_its_own_limit,
    short_lived_tokens_renewed_early,
    revoked_tokens_recover_with_one_fetch,
    get_retried_through_503s,
    post_not_resent_after_503,
    post_marked_safe_is_resent,
    retry_after_header_honoured,
    retry_after_in_title_and_post_resent_after_429,
    paging_exactly_once,
    export_exactly_once_with_resume,
    report_limit_waits_instead_of_429,
    typed_errors_with_server_detail,
    authentication_errors_name_the_environment,
    unknown_app_key_fails_at_once_naming_the_app_key,
    environment_and_urls_together_are_refused,
    unresolvable_host_fails_at_once,
    token_408_is_a_timeout_and_resent,
    bad_input_refused_before_any_request,
    secrets_absent_from_text_and_logs,
);

#[test]
fn every_scenario_of_the_file_is_listed() {
    let suite = suite();
    let in_file: Vec<&str> = suite.scenarios.iter().map(|(id, _)| id.as_str()).collect();
    let missing: Vec<&&str> = in_file.iter().filter(|id| !LISTED.contains(id)).collect();
    let stale: Vec<&&str> = LISTED.iter().filter(|id| !in_file.contains(id)).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "{}: scenarios without a test (add them to scenarios!): {missing:?}; listed but not in the file: {stale:?}",
        suite.path.display()
    );
}

// ---------------------------------------------------------------------------------------------
// The file

struct Suite {
    path: PathBuf,
    default_sandbox: Obj,
    default_client: Obj,
    /// In file order.
    scenarios: Vec<(String, Obj)>,
}

fn suite() -> &'static Suite {
    static SUITE: OnceLock<Result<Suite, String>> = OnceLock::new();
    match SUITE.get_or_init(load) {
        Ok(suite) => suite,
        Err(e) => panic!("{e}"),
    }
}

fn load() -> Result<Suite, String> {
    let path = match std::env::var_os("SCENARIOS_FILE") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/scenarios.json")),
    };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let data: Value = serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    let top = object(&data, "the file")?;
    known_keys(top, &["version", "about", "vocabulary", "defaults", "scenarios"], "the file")?;
    if top.get("version") != Some(&json!(1)) {
        return Err(format!("{}: this runner reads scenarios version 1", path.display()));
    }
    let defaults = object(top.get("defaults").unwrap_or(&Value::Null), "defaults")?;
    known_keys(defaults, &["sandbox", "client"], "defaults")?;
    let default_sandbox = optional_object(defaults.get("sandbox"), "defaults.sandbox")?;
    let default_client = optional_object(defaults.get("client"), "defaults.client")?;
    let list = top.get("scenarios").and_then(Value::as_array).ok_or("scenarios: expected a list")?;
    let mut scenarios = Vec::new();
    let mut seen = HashSet::new();
    for s in list {
        let s = object(s, "a scenario")?;
        let id = s.get("id").and_then(Value::as_str).ok_or("a scenario without an id")?.to_owned();
        known_keys(s, &["id", "about", "timing", "sandbox", "client", "steps", "expect"], &format!("scenario {id}"))?;
        if !seen.insert(id.clone()) {
            return Err(format!("scenario {id} appears twice"));
        }
        scenarios.push((id, s.clone()));
    }
    Ok(Suite { path, default_sandbox, default_client, scenarios })
}

/// `over` over `defaults`, one level deep: an object value is merged, anything else replaced.
fn merged(defaults: &Obj, over: &Obj) -> Obj {
    let mut out = defaults.clone();
    for (key, value) in over {
        match (out.get_mut(key), value) {
            (Some(Value::Object(base)), Value::Object(value)) => {
                for (k, v) in value {
                    base.insert(k.clone(), v.clone());
                }
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Reading values (a wrong type or an unknown key is an error of the scenario, reported as such)

fn object<'a>(value: &'a Value, what: &str) -> Result<&'a Obj, String> {
    value.as_object().ok_or_else(|| format!("{what}: expected an object, got {value}"))
}

fn optional_object(value: Option<&Value>, what: &str) -> Result<Obj, String> {
    match value {
        None => Ok(Obj::new()),
        Some(v) => object(v, what).cloned(),
    }
}

fn known_keys(obj: &Obj, allowed: &[&str], what: &str) -> Result<(), String> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("{what}: unknown key {k:?} (this runner knows {allowed:?})")),
        None => Ok(()),
    }
}

fn required<'a>(obj: &'a Obj, key: &str, what: &str) -> Result<&'a Value, String> {
    obj.get(key).ok_or_else(|| format!("{what}: {key:?} is missing"))
}

fn uint(value: &Value, what: &str) -> Result<u64, String> {
    value.as_u64().ok_or_else(|| format!("{what}: expected a non-negative integer, got {value}"))
}

fn int(value: &Value, what: &str) -> Result<i64, String> {
    value.as_i64().ok_or_else(|| format!("{what}: expected an integer, got {value}"))
}

fn text<'a>(value: &'a Value, what: &str) -> Result<&'a str, String> {
    value.as_str().ok_or_else(|| format!("{what}: expected a string, got {value}"))
}

fn boolean(value: &Value, what: &str) -> Result<bool, String> {
    value.as_bool().ok_or_else(|| format!("{what}: expected true or false, got {value}"))
}

fn uint_key(obj: &Obj, key: &str, what: &str) -> Result<u64, String> {
    uint(required(obj, key, what)?, &format!("{what} {key}"))
}

fn millis(value: &Value, what: &str) -> Result<Duration, String> {
    uint(value, what).map(Duration::from_millis)
}

/// Query parameters as the bindings send them: strings as they are, numbers and booleans as
/// text, lists joined by commas, nulls left out.
fn params(obj: &Obj, what: &str) -> Result<Vec<(String, String)>, String> {
    let Some(params) = obj.get("params") else { return Ok(Vec::new()) };
    let mut pairs = Vec::new();
    for (key, value) in object(params, &format!("{what} params"))? {
        let one = |v: &Value| match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(format!("{what} params {key}: unsupported value {other}")),
        };
        match value {
            Value::Null => {}
            Value::Array(items) => {
                pairs.push((key.clone(), items.iter().map(one).collect::<Result<Vec<_>, _>>()?.join(",")))
            }
            v => pairs.push((key.clone(), one(v)?)),
        }
    }
    Ok(pairs)
}

fn method(value: &Value, what: &str) -> Result<Method, String> {
    match text(value, what)?.to_ascii_uppercase().as_str() {
        "GET" => Ok(Method::GET),
        "POST" => Ok(Method::POST),
        "PUT" => Ok(Method::PUT),
        "PATCH" => Ok(Method::PATCH),
        "DELETE" => Ok(Method::DELETE),
        other => Err(format!("{what}: unsupported method {other:?}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Log capture: one global subscriber for the binary, writing only while a scenario that checks
// secrets runs (alone). A thread-local one would miss the runtime's worker threads.

static CAPTURING: AtomicBool = AtomicBool::new(false);
static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if CAPTURING.load(Ordering::SeqCst) {
            LOG.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures log output while it lives (also when a scenario panics or times out).
struct Capture;

impl Capture {
    fn start() -> Capture {
        LOG.lock().unwrap_or_else(|e| e.into_inner()).clear();
        CAPTURING.store(true, Ordering::SeqCst);
        Capture
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        CAPTURING.store(false, Ordering::SeqCst);
    }
}

fn install_log_capture() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        // Every level and span event of the client side (the engine, and through `log` its HTTP
        // stack), only while capturing; the sandbox is the server and is left out.
        let filter = tracing_subscriber::filter::dynamic_filter_fn(|meta, _| {
            CAPTURING.load(Ordering::SeqCst) && !meta.target().starts_with("servicetitan_sandbox")
        });
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(|| LogWriter)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
            .with_filter(filter);
        tracing_subscriber::registry().with(layer).try_init().expect("the only global subscriber of this binary");
    });
}

// ---------------------------------------------------------------------------------------------
// Running one scenario

/// Timing scenarios (and the log-capturing ones) take it exclusively; the others share it.
static GATE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

async fn run_scenario(id: &str) {
    install_log_capture();
    let suite = suite();
    let Some((_, scenario)) = suite.scenarios.iter().find(|(s, _)| s == id) else {
        panic!("scenario {id} is not in {}", suite.path.display());
    };
    let timing = scenario.get("timing").is_some_and(|t| t == &json!(true));
    let secrets = scenario.get("expect").and_then(|e| e.get("secrets_absent")).is_some();
    let _shared;
    let _exclusive;
    if timing || secrets {
        _exclusive = GATE.write().await;
    } else {
        _shared = GATE.read().await;
    }
    let started = Instant::now();
    let outcome = tokio::time::timeout(SCENARIO_TIMEOUT, run(scenario, suite)).await;
    let failures = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(failures)) => failures,
        Err(_) => vec![format!("timed out after {SCENARIO_TIMEOUT:?}")],
    };
    panic!(
        "scenario {id} failed ({} in {:.1} s, scenarios file {}):\n  - {}",
        if failures.len() == 1 { "1 failure".to_owned() } else { format!("{} failures", failures.len()) },
        started.elapsed().as_secs_f64(),
        suite.path.display(),
        failures.join("\n  - ")
    );
}

async fn run(scenario: &Obj, suite: &Suite) -> Result<(), Vec<String>> {
    let expect = optional_object(scenario.get("expect"), "scenario expect").map_err(|e| vec![e])?;
    known_keys(&expect, &["secrets_absent"], "scenario expect").map_err(|e| vec![e])?;
    let secrets: Vec<String> = match expect.get("secrets_absent") {
        None => Vec::new(),
        Some(v) => v
            .as_array()
            .and_then(|a| a.iter().map(|s| s.as_str().map(str::to_owned)).collect())
            .ok_or_else(|| vec![format!("secrets_absent: expected a list of strings, got {v}")])?,
    };
    if let Some(t) = scenario.get("timing") {
        boolean(t, "timing").map_err(|e| vec![e])?;
    }
    let capture = (!secrets.is_empty()).then(Capture::start);
    let result = Run::start(scenario, suite).await;
    let result = match result {
        Ok(mut run) => {
            let steps = run.steps(scenario).await;
            run.sandbox.shutdown().await;
            steps.map(|()| run.texts)
        }
        Err(e) => Err(vec![e]),
    };
    drop(capture);
    let texts = result?;

    if secrets.is_empty() {
        return Ok(());
    }
    let log = String::from_utf8_lossy(&LOG.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    if std::env::var_os("SHOW_LOGS").is_some() {
        eprintln!("{log}");
    }
    let mut failures = Vec::new();
    if log.trim().is_empty() {
        failures.push("the scenario logged nothing: the secrets check would be void".to_owned());
    }
    for secret in &secrets {
        let texts = texts.iter().map(|t| ("a Debug/Display text", t.as_str()));
        let shown: Vec<_> =
            texts.chain(log.lines().map(|l| ("a log line", l))).filter(|(_, t)| t.contains(secret)).collect();
        for (kind, text) in shown.iter().take(3) {
            failures.push(format!("secrets_absent: {secret:?} shown in {kind}: {text}"));
        }
        if shown.len() > 3 {
            failures.push(format!("secrets_absent: {secret:?} shown in {} more texts and log lines", shown.len() - 3));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}

/// One scenario against one sandbox.
struct Run {
    sandbox: Sandbox,
    /// The scenario's client settings, merged over the defaults.
    settings: Obj,
    client: Client,
    tenants: HashMap<(i64, String, String), Tenant>,
    /// Every Debug and Display shown of clients, tenants and errors, for `secrets_absent`.
    texts: Vec<String>,
}

/// What a step produced, for its `expect` to be checked against.
#[derive(Default)]
struct Outcome {
    /// Steps that may fail by design (`call`, `burst`, `make_client`): their errors.
    errors: Option<Vec<Error>>,
    elapsed_ms: Option<f64>,
    body: Option<Value>,
    rates: Option<Vec<(i64, f64)>>,
    records: Option<Vec<Value>>,
    rows: Option<Vec<usize>>,
    export: Option<ExportOutcome>,
}

struct ExportOutcome {
    total: usize,
    lost: usize,
    doubled: usize,
    moved: bool,
}

impl Run {
    async fn start(scenario: &Obj, suite: &Suite) -> Result<Run, String> {
        let options = merged(&suite.default_sandbox, &optional_object(scenario.get("sandbox"), "sandbox")?);
        let config: SandboxConfig =
            serde_json::from_value(Value::Object(options)).map_err(|e| format!("sandbox options: {e}"))?;
        let sandbox = Sandbox::start(config).await.map_err(|e| format!("the sandbox did not start: {e}"))?;
        let settings = merged(&suite.default_client, &optional_object(scenario.get("client"), "client")?);
        let mut texts = Vec::new();
        let client = match make_client(&sandbox, &settings)? {
            Ok(client) => client,
            Err(e) => return Err(format!("the scenario's client was refused: {e}")),
        };
        texts.push(format!("{client:?}"));
        Ok(Run { sandbox, settings, client, tenants: HashMap::new(), texts })
    }

    async fn steps(&mut self, scenario: &Obj) -> Result<(), Vec<String>> {
        let steps = required(scenario, "steps", "scenario")
            .and_then(|s| s.as_array().ok_or_else(|| "steps: expected a list".to_owned()))
            .map_err(|e| vec![e])?;
        for (i, step) in steps.iter().enumerate() {
            let failures = self.step(step).await;
            if !failures.is_empty() {
                let kind =
                    step.as_object().and_then(|s| s.keys().find(|k| *k != "expect")).cloned().unwrap_or_default();
                return Err(failures.into_iter().map(|f| format!("step {} ({kind}): {f}", i + 1)).collect());
            }
        }
        Ok(())
    }

    /// Runs one step and checks its `expect`; returns what failed.
    async fn step(&mut self, step: &Value) -> Vec<String> {
        let parsed = (|| {
            let step = object(step, "a step")?;
            let actions: Vec<&String> = step.keys().filter(|k| *k != "expect").collect();
            let [kind] = actions[..] else {
                return Err(format!("a step has exactly one action besides expect, got {actions:?}"));
            };
            Ok((kind.clone(), step[kind.as_str()].clone(), optional_object(step.get("expect"), "expect")?))
        })();
        let (kind, args, expect) = match parsed {
            Ok(p) => p,
            Err(e) => return vec![e],
        };
        let outcome = match self.act(&kind, &args).await {
            Ok(outcome) => outcome,
            Err(e) => return vec![e],
        };
        if let Some(errors) = &outcome.errors {
            for e in errors {
                self.texts.push(format!("{e}"));
                self.texts.push(format!("{e:?}"));
            }
        }
        let mut failures = Vec::new();
        self.check(&kind, &expect, &outcome, &mut failures);
        failures
    }

    async fn act(&mut self, kind: &str, args: &Value) -> Result<Outcome, String> {
        match kind {
            "call" => self.call(object(args, "call")?).await,
            "burst" => self.burst(object(args, "burst")?).await,
            "saturate" => self.saturate(object(args, "saturate")?).await,
            "paced" => self.paced(object(args, "paced")?).await,
            "paginate" => self.paginate(object(args, "paginate")?).await,
            "export_resume" => self.export_resume(object(args, "export_resume")?).await,
            "report" => self.report(object(args, "report")?).await,
            "make_client" => self.make_client_step(object(args, "make_client")?),
            "sandbox" => {
                let args = object(args, "sandbox")?;
                known_keys(args, &["op"], "sandbox")?;
                match text(required(args, "op", "sandbox")?, "sandbox op")? {
                    "revoke_tokens" => self.sandbox.revoke_tokens(),
                    "clear_faults" => self.sandbox.clear_faults(),
                    "reset_stats" => self.sandbox.reset_stats(),
                    other => return Err(format!("unknown sandbox op {other:?}")),
                }
                Ok(Outcome::default())
            }
            "fault" => {
                let fault: Fault = serde_json::from_value(args.clone()).map_err(|e| format!("fault: {e}"))?;
                self.sandbox.try_add_fault(fault).map_err(|e| format!("fault refused by the sandbox: {e}"))?;
                Ok(Outcome::default())
            }
            "sleep_ms" => {
                tokio::time::sleep(millis(args, "sleep_ms")?).await;
                Ok(Outcome::default())
            }
            other => Err(format!("unknown step {other:?}")),
        }
    }

    /// The tenant of a step: the sandbox's credentials unless the step gives its own.
    fn tenant(&mut self, id: i64, client_id: Option<&str>, client_secret: Option<&str>) -> Result<Tenant, String> {
        let known = self.sandbox.tenants().iter().find(|t| t.id == id);
        let client_id = client_id.or(known.map(|t| t.client_id.as_str()));
        let client_secret = client_secret.or(known.map(|t| t.client_secret.as_str()));
        let (Some(client_id), Some(client_secret)) = (client_id, client_secret) else {
            return Err(format!("tenant {id} is not a tenant of the sandbox and the step gives no credentials"));
        };
        let key = (id, client_id.to_owned(), client_secret.to_owned());
        if let Some(t) = self.tenants.get(&key) {
            return Ok(t.clone());
        }
        let credentials = TenantCredentials::new(id, client_id, client_secret);
        self.texts.push(format!("{credentials:?}"));
        let tenant = self.client.tenant(credentials);
        self.texts.push(format!("{tenant:?}"));
        self.tenants.insert(key, tenant.clone());
        Ok(tenant)
    }

    fn step_tenant(&mut self, args: &Obj, what: &str) -> Result<Tenant, String> {
        let id = int(required(args, "tenant", what)?, &format!("{what} tenant"))?;
        let client_id = args.get("client_id").map(|v| text(v, "client_id")).transpose()?;
        let client_secret = args.get("client_secret").map(|v| text(v, "client_secret")).transpose()?;
        self.tenant(id, client_id, client_secret)
    }

    async fn call(&mut self, args: &Obj) -> Result<Outcome, String> {
        known_keys(
            args,
            &["tenant", "method", "path", "params", "json", "safe_to_retry", "client_id", "client_secret"],
            "call",
        )?;
        let tenant = self.step_tenant(args, "call")?;
        let request = CallSpec::read(args, "call")?;
        let started = Instant::now();
        let result = request.send(&tenant).await;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let (body, errors) = match result {
            Ok(body) => (Some(body), vec![]),
            Err(e) => (None, vec![e]),
        };
        Ok(Outcome { errors: Some(errors), elapsed_ms: Some(elapsed_ms), body, ..Outcome::default() })
    }

    async fn burst(&mut self, args: &Obj) -> Result<Outcome, String> {
        known_keys(args, &["tenant", "method", "path", "params", "count"], "burst")?;
        let tenant = self.step_tenant(args, "burst")?;
        let request = CallSpec::read(args, "burst")?;
        let count = uint_key(args, "count", "burst")?;
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..count {
            let (tenant, request) = (tenant.clone(), request.clone());
            tasks.spawn(async move { request.send(&tenant).await });
        }
        let mut errors = Vec::new();
        for result in tasks.join_all().await {
            if let Err(e) = result {
                errors.push(e);
            }
        }
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(Outcome { errors: Some(errors), elapsed_ms: Some(elapsed_ms), ..Outcome::default() })
    }

    async fn saturate(&mut self, args: &Obj) -> Result<Outcome, String> {
        known_keys(args, &["tenants", "workers_per_tenant", "duration_ms", "path", "params"], "saturate")?;
        let ids = required(args, "tenants", "saturate")?
            .as_array()
            .ok_or("saturate tenants: expected a list")?
            .iter()
            .map(|v| int(v, "saturate tenants"))
            .collect::<Result<Vec<_>, _>>()?;
        if ids.is_empty() {
            return Err("saturate tenants: expected at least one".into());
        }
        let tenants = ids.iter().map(|id| self.tenant(*id, None, None)).collect::<Result<Vec<_>, _>>()?;
        let workers = uint_key(args, "workers_per_tenant", "saturate")? as usize;
        let duration = millis(required(args, "duration_ms", "saturate")?, "saturate duration_ms")?;
        let request = CallSpec::get(args, "saturate")?;
        // Warm the token and a connection, then let the warm-up calls' window pass.
        for tenant in &tenants {
            request.send(tenant).await.map_err(|e| self.failed_call("the warm-up call", e))?;
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let deadline = Instant::now() + duration;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..tenants.len() * workers {
            let which = i % tenants.len();
            let (tenant, request) = (tenants[which].clone(), request.clone());
            tasks.spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    request.send(&tenant).await?;
                    if Instant::now() <= deadline {
                        done += 1;
                    }
                }
                Ok::<_, Error>((which, done))
            });
        }
        let mut counts = vec![0u64; tenants.len()];
        for result in tasks.join_all().await {
            let (which, done) = result.map_err(|e| self.failed_call("a call", e))?;
            counts[which] += done;
        }
        let rates = ids.iter().zip(counts).map(|(id, n)| (*id, n as f64 / duration.as_secs_f64())).collect();
        Ok(Outcome { rates: Some(rates), ..Outcome::default() })
    }

    async fn paced(&mut self, args: &Obj) -> Result<Outcome, String> {
        known_keys(args, &["tenant", "workers", "duration_ms", "pause_ms", "path", "params"], "paced")?;
        let tenant = self.step_tenant(args, "paced")?;
        let workers = uint_key(args, "workers", "paced")?;
        let duration = millis(required(args, "duration_ms", "paced")?, "paced duration_ms")?;
        let pause = millis(required(args, "pause_ms", "paced")?, "paced pause_ms")?;
        let request = CallSpec::get(args, "paced")?;
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers {
            let (tenant, request) = (tenant.clone(), request.clone());
            tasks.spawn(async move {
                let mut calls = 0u64;
                while started.elapsed() < duration {
                    request.send(&tenant).await?;
                    calls += 1;
                    tokio::time::sleep(pause).await;
                }
                Ok::<_, Error>(calls)
            });
        }
        let mut calls = 0;
        for result in tasks.join_all().await {
            calls += result.map_err(|e| self.failed_call("a call", e))?;
        }
        // As the Python runner: a paced run that hardly called proves nothing.
        if calls <= 50 {
            return Err(format!("only {calls} calls in {duration:?}"));
        }
        Ok(Outcome::default())
    }

    async fn paginate(&mut self, args: &Obj) -> Result<Outcome, String> {
        known_keys(args, &["tenant", "path", "params", "page_size"], "paginate")?;
        let tenant = self.step_tenant(args, "paginate")?;
        let path = text(required(args, "path", "paginate")?, "paginate path")?;
        let page_size =
            u32::try_from(uint_key(args, "page_size", "paginate")?).map_err(|e| format!("page_size: {e}"))?;
        let stream =
            tenant.paginate::<Value>(path).param_pairs(params(args, "paginate")?).page_size(page_size).into_stream();
        let mut records = Vec::new();
        while let Some(record) = stream.next().await {
            records.push(record.map_err(|e| self.failed_call("paging", e))?);
        }
        Ok(Outcome { records: Some(records), ..Outcome::default() })
    }

    async fn export_resume(&mut self, args: &Obj) -> Result<Outcome, String> {
        known_keys(args, &["tenant", "path", "read", "checkpoint_after"], "export_resume")?;
        let tenant = self.step_tenant(args, "export_resume")?;
        let path = text(required(args, "path", "export_resume")?, "export_resume path")?;
        let read = uint_key(args, "read", "export_resume")? as usize;
        let checkpoint_after = uint_key(args, "checkpoint_after", "export_resume")? as usize;
        let id_of = |r: &Value| r.get("id").map(Value::to_string).ok_or_else(|| format!("a record without an id: {r}"));

        let mut everything = HashSet::new();
        let full = tenant.export::<Value>(path).into_stream();
        while let Some(record) = full.next().await {
            everything.insert(id_of(&record.map_err(|e| self.failed_call("the full export", e))?)?);
        }

        let feed = tenant.export::<Value>(path).into_stream();
        if let Some(c) = feed.continue_from() {
            return Err(format!("a new feed already has a checkpoint: {c:?}"));
        }
        let mut before = Vec::new();
        let mut checkpoint = None;
        // One record at a time, to look at the checkpoint between records.
        for n in 1..=read {
            match feed.next().await {
                Some(record) => before.push(id_of(&record.map_err(|e| self.failed_call("the feed", e))?)?),
                None => break,
            }
            if n == checkpoint_after {
                checkpoint = feed.continue_from();
            }
        }
        let Some(checkpoint) = checkpoint else {
            return Err(format!("no checkpoint after record {checkpoint_after} (read {})", before.len()));
        };
        let moved = feed.continue_from().as_deref() != Some(checkpoint.as_str());
        drop(feed);

        let mut combined: Vec<String> = before.into_iter().take(checkpoint_after).collect();
        let resumed = tenant.export::<Value>(path).since(checkpoint).into_stream();
        while let Some(record) = resumed.next().await {
            combined.push(id_of(&record.map_err(|e| self.failed_call("the resumed feed", e))?)?);
        }
        let unique: HashSet<&String> = combined.iter().collect();
        let export = ExportOutcome {
            total: everything.len(),
            lost: everything.iter().filter(|id| !unique.contains(id)).count(),
            doubled: combined.len() - unique.len(),
            moved,
        };
        Ok(Outcome { export: Some(export), ..Outcome::default() })
    }

    async fn report(&mut self, args: &Obj) -> Result<Outcome, String> {
        known_keys(args, &["tenant", "category", "report_id", "parameters", "count"], "report")?;
        let tenant = self.step_tenant(args, "report")?;
        let category = text(required(args, "category", "report")?, "report category")?.to_owned();
        let report_id = int(required(args, "report_id", "report")?, "report report_id")?;
        let parameters = optional_object(args.get("parameters"), "report parameters")?;
        let count = uint_key(args, "count", "report")?;
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..count {
            let query = tenant.report(category.clone(), report_id).parameters(parameters.clone());
            tasks.spawn(async move { query.records().await.map(|rows| rows.len()) });
        }
        let mut rows = Vec::new();
        for result in tasks.join_all().await {
            rows.push(result.map_err(|e| self.failed_call("a report run", e))?);
        }
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(Outcome { rows: Some(rows), elapsed_ms: Some(elapsed_ms), ..Outcome::default() })
    }

    fn make_client_step(&mut self, args: &Obj) -> Result<Outcome, String> {
        known_keys(args, &["client", "tenant_id", "client_id", "client_secret"], "make_client")?;
        let settings = merged(&self.settings, &optional_object(args.get("client"), "make_client client")?);
        let client = match make_client(&self.sandbox, &settings)? {
            Ok(client) => client,
            Err(e) => return Ok(Outcome { errors: Some(vec![e]), ..Outcome::default() }),
        };
        self.texts.push(format!("{client:?}"));
        if ["tenant_id", "client_id", "client_secret"].iter().any(|k| args.contains_key(*k)) {
            let base = self.sandbox.tenants().iter().find(|t| t.id == 1001).ok_or("the sandbox has no tenant 1001")?;
            let id = args.get("tenant_id").map(|v| int(v, "tenant_id")).transpose()?.unwrap_or(base.id);
            let client_id = args.get("client_id").map(|v| text(v, "client_id")).transpose()?.unwrap_or(&base.client_id);
            let secret =
                args.get("client_secret").map(|v| text(v, "client_secret")).transpose()?.unwrap_or(&base.client_secret);
            match client.try_tenant(TenantCredentials::new(id, client_id, secret)) {
                Ok(tenant) => self.texts.push(format!("{tenant:?}")),
                Err(e) => return Ok(Outcome { errors: Some(vec![e]), ..Outcome::default() }),
            }
        }
        Ok(Outcome { errors: Some(vec![]), ..Outcome::default() })
    }

    /// The message of a step that cannot go on, the error shown for `secrets_absent` too.
    fn failed_call(&mut self, what: &str, e: Error) -> String {
        self.texts.push(format!("{e}"));
        self.texts.push(format!("{e:?}"));
        format!("{what} failed: {} error: {e}", e.code())
    }

    // -- checks -------------------------------------------------------------------------------

    fn check(&self, kind: &str, expect: &Obj, outcome: &Outcome, failures: &mut Vec<String>) {
        let invalid = |key: &str| format!("expect.{key} does not apply to a {kind} step");
        // ok / error first: a step that may fail by design.
        match &outcome.errors {
            Some(errors) => {
                let want_ok = match expect.get("ok") {
                    None => None,
                    Some(v) => match boolean(v, "expect.ok") {
                        Ok(b) => Some(b),
                        Err(e) => {
                            failures.push(e);
                            return;
                        }
                    },
                };
                match (expect.get("error"), want_ok) {
                    (Some(_), Some(true)) => failures.push("expect.ok is true and expect.error is given".into()),
                    (Some(spec), _) => match object(spec, "expect.error") {
                        Err(e) => failures.push(e),
                        Ok(_) if errors.is_empty() => {
                            failures.push(format!("expected a {} error, the step succeeded", spec["code"]))
                        }
                        Ok(spec) => {
                            for e in errors {
                                check_error(e, spec, failures);
                            }
                        }
                    },
                    (None, Some(false)) if errors.is_empty() => {
                        failures.push("expected the step to fail (ok: false), it succeeded".into())
                    }
                    (None, Some(false)) => {}
                    (None, _) => {
                        if let Some(e) = errors.first() {
                            let more =
                                if errors.len() > 1 { format!(" (and {} more)", errors.len() - 1) } else { "".into() };
                            failures.push(format!("unexpected {} error{more}: {e}", e.code()));
                        }
                    }
                }
            }
            None => {
                for key in ["ok", "error"] {
                    if expect.contains_key(key) {
                        failures.push(invalid(key));
                    }
                }
            }
        }
        for (key, condition) in expect {
            let what = format!("expect.{key}");
            match key.as_str() {
                "ok" | "error" => {}
                "stats" => self.check_stats(condition, failures),
                "client_stats" => self.check_client_stats(condition, failures),
                "elapsed_ms" => match outcome.elapsed_ms {
                    Some(ms) => compare(&what, &json!(ms), condition, failures),
                    None => failures.push(invalid(key)),
                },
                "body" => match object(condition, &what) {
                    Err(e) => failures.push(e),
                    Ok(pointers) => {
                        for (pointer, c) in pointers {
                            let body = outcome.body.as_ref();
                            let value = body.and_then(|b| b.pointer(pointer)).cloned().unwrap_or(Value::Null);
                            compare(&format!("body {pointer}"), &value, c, failures);
                        }
                    }
                },
                "rate_per_tenant" => match &outcome.rates {
                    Some(rates) => {
                        for (id, rate) in rates {
                            compare(&format!("calls per second of tenant {id}"), &json!(rate), condition, failures);
                        }
                    }
                    None => failures.push(invalid(key)),
                },
                "count" => match &outcome.records {
                    Some(records) => compare("records", &json!(records.len()), condition, failures),
                    None => failures.push(invalid(key)),
                },
                "unique" => match (&outcome.records, condition.as_str()) {
                    (Some(records), Some(field)) => {
                        let mut seen = HashSet::new();
                        for r in records {
                            match r.get(field) {
                                None => {
                                    failures.push(format!("unique: a record without {field:?}: {r}"));
                                    break;
                                }
                                Some(v) if !seen.insert(v.to_string()) => {
                                    failures.push(format!("unique: {field} {v} arrived twice"));
                                    break;
                                }
                                Some(_) => {}
                            }
                        }
                    }
                    (Some(_), None) => failures.push(format!("{what}: expected a field name, got {condition}")),
                    (None, _) => failures.push(invalid(key)),
                },
                "rows_each" => match &outcome.rows {
                    Some(rows) => {
                        for (i, n) in rows.iter().enumerate() {
                            compare(&format!("rows of report run {}", i + 1), &json!(n), condition, failures);
                        }
                    }
                    None => failures.push(invalid(key)),
                },
                "total" | "lost" | "doubled" => match &outcome.export {
                    Some(x) => {
                        let n = match key.as_str() {
                            "total" => x.total,
                            "lost" => x.lost,
                            _ => x.doubled,
                        };
                        compare(key, &json!(n), condition, failures);
                    }
                    None => failures.push(invalid(key)),
                },
                "checkpoint_moved_mid_page" => match (&outcome.export, condition.as_bool()) {
                    (Some(x), Some(want)) if x.moved != want => {
                        failures.push(format!("checkpoint_moved_mid_page: {} != {want}", x.moved))
                    }
                    (Some(_), Some(_)) => {}
                    (Some(_), None) => failures.push(format!("{what}: expected true or false, got {condition}")),
                    (None, _) => failures.push(invalid(key)),
                },
                other => failures.push(format!("unknown expectation {other:?}")),
            }
        }
    }

    fn check_stats(&self, condition: &Value, failures: &mut Vec<String>) {
        let Some(items) = condition.as_array() else {
            return failures.push(format!("expect.stats: expected a list, got {condition}"));
        };
        let stats = self.sandbox.stats();
        for item in items {
            let Some(item) = item.as_object() else {
                failures.push(format!("expect.stats: expected objects, got {item}"));
                continue;
            };
            let mut comparators = item.clone();
            let (where_, value) = match (comparators.remove("pointer"), comparators.remove("route")) {
                (Some(Value::String(p)), None) => {
                    let v = stats.pointer(&p).cloned();
                    (p, v)
                }
                (None, Some(Value::String(r))) => {
                    let v = stats["routes"].get(&r).cloned();
                    (r, v)
                }
                _ => {
                    failures.push(format!("expect.stats: each item needs one pointer or route string: {item:?}"));
                    continue;
                }
            };
            // A missing value counts as 0.
            let value = value.filter(|v| !v.is_null()).unwrap_or(json!(0));
            compare(&format!("sandbox stats {where_}"), &value, &Value::Object(comparators), failures);
        }
    }

    fn check_client_stats(&self, condition: &Value, failures: &mut Vec<String>) {
        let Some(condition) = condition.as_object() else {
            return failures.push(format!("expect.client_stats: expected an object, got {condition}"));
        };
        let stats = self.client.stats();
        for (name, c) in condition {
            let value = match name.as_str() {
                "requests" => json!(stats.requests),
                "retries" => json!(stats.retries),
                "token_fetches" => json!(stats.token_fetches),
                "rate_limited" => json!(stats.rate_limited),
                "throttle_wait_ms" => json!(stats.throttle_wait.as_secs_f64() * 1000.0),
                other => {
                    failures.push(format!("expect.client_stats: unknown counter {other:?}"));
                    continue;
                }
            };
            compare(&format!("client stats {name}"), &value, c, failures);
        }
    }
}

/// `{eq|gte|lte: expected}`, every comparator given.
fn compare(what: &str, actual: &Value, condition: &Value, failures: &mut Vec<String>) {
    let Some(condition) = condition.as_object().filter(|c| !c.is_empty()) else {
        return failures.push(format!("{what}: expected a comparator such as {{\"eq\": 1}}, got {condition}"));
    };
    for (op, expected) in condition {
        let order = ordering(actual, expected);
        let holds = match op.as_str() {
            "eq" => order.map_or(actual == expected, |o| o.is_eq()),
            "gte" => order.is_some_and(|o| o.is_ge()),
            "lte" => order.is_some_and(|o| o.is_le()),
            other => {
                failures.push(format!("{what}: unknown comparator {other:?}"));
                continue;
            }
        };
        if !holds {
            let sign = match op.as_str() {
                "eq" => "==",
                "gte" => ">=",
                _ => "<=",
            };
            failures.push(format!("{what}: {actual} is not {sign} {expected}"));
        }
    }
}

/// Numbers by value (1 == 1.0), strings in order; anything else is not ordered.
fn ordering(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
            (Some(x), Some(y), _, _) => Some(x.cmp(&y)),
            (_, _, Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
        },
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn check_error(e: &Error, spec: &Obj, failures: &mut Vec<String>) {
    let message = e.to_string();
    let shown = format!("{e:?}");
    let mut fail = |what: String| failures.push(format!("{what} — the error: {message}"));
    for (key, value) in spec {
        let outcome: Result<(), String> = (|| {
            match key.as_str() {
                "code" => {
                    let code = text(value, "error.code")?;
                    if e.code().as_str() != code {
                        return Err(format!("error code {} != {code}", e.code()));
                    }
                }
                "status" => {
                    let status = uint(value, "error.status")?;
                    if e.status().map(u64::from) != Some(status) {
                        return Err(format!("error status {:?} != {status}", e.status()));
                    }
                }
                "title_contains" => {
                    let part = text(value, "error.title_contains")?;
                    if !e.title().unwrap_or("").contains(part) {
                        return Err(format!("error title {:?} lacks {part:?}", e.title()));
                    }
                }
                "message_contains" => {
                    let part = text(value, "error.message_contains")?;
                    if !message.contains(part) {
                        return Err(format!("error message lacks {part:?}"));
                    }
                }
                "message_lacks" => {
                    let part = text(value, "error.message_lacks")?;
                    if message.contains(part) || shown.contains(part) {
                        return Err(format!("error message (or Debug: {shown}) shows {part:?}"));
                    }
                }
                "has_trace_id" => {
                    let want = boolean(value, "error.has_trace_id")?;
                    if e.trace_id().is_some_and(|t| !t.is_empty()) != want {
                        return Err(format!("error trace id {:?}, expected one: {want}", e.trace_id()));
                    }
                }
                "errors_has" => {
                    let field = text(value, "error.errors_has")?;
                    if !e.errors().contains_key(field) {
                        return Err(format!("error field errors {:?} lack {field:?}", e.errors()));
                    }
                }
                "errors_nonempty" => {
                    let want = boolean(value, "error.errors_nonempty")?;
                    if e.errors().is_empty() == want {
                        return Err(format!("error field errors {:?}, expected some: {want}", e.errors()));
                    }
                }
                "method" => {
                    let method = text(value, "error.method")?;
                    if e.method() != Some(method) {
                        return Err(format!("error method {:?} != {method:?}", e.method()));
                    }
                }
                "url_ends_with" => {
                    let end = text(value, "error.url_ends_with")?;
                    if !e.url().unwrap_or("").ends_with(end) {
                        return Err(format!("error url {:?} does not end with {end:?}", e.url()));
                    }
                }
                other => return Err(format!("unknown error expectation {other:?}")),
            }
            Ok(())
        })();
        if let Err(what) = outcome {
            fail(what);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Client and calls

/// A client for the sandbox from the vocabulary's language-neutral settings; `Err` for a
/// setting this runner does not know, `Ok(Err)` when the engine refuses the settings.
fn make_client(sandbox: &Sandbox, settings: &Obj) -> Result<Result<Client, Error>, String> {
    known_keys(
        settings,
        &[
            "app_key",
            "auth_url",
            "api_url",
            "environment",
            "limits_off",
            "rate_limit_calls",
            "rate_limit_period_ms",
            "report_rate_limit_calls",
            "report_rate_limit_period_ms",
            "max_attempts",
            "backoff_base_ms",
            "backoff_max_ms",
            "attempt_timeout_ms",
            "timeout_ms",
        ],
        "client settings",
    )?;
    let get = |key: &str| settings.get(key);
    let ms = |key: &str| get(key).map(|v| millis(v, key)).transpose();
    let calls = |key: &str| {
        get(key).map(|v| uint(v, key).and_then(|n| u32::try_from(n).map_err(|e| format!("{key}: {e}")))).transpose()
    };
    let app_key = match get("app_key") {
        Some(v) => text(v, "app_key")?.to_owned(),
        None => sandbox.app_key().to_owned(),
    };
    let mut b = Client::builder()
        .app_key(app_key)
        // Nothing from the machine's environment leaks into the scenarios.
        .env_lookup(|_| None);
    // The sandbox's URLs unless others are given; null gives none.
    match get("auth_url") {
        None => b = b.auth_url(sandbox.base_url()),
        Some(Value::Null) => {}
        Some(v) => b = b.auth_url(text(v, "auth_url")?),
    }
    match get("api_url") {
        None => b = b.api_url(sandbox.base_url()),
        Some(Value::Null) => {}
        Some(v) => b = b.api_url(text(v, "api_url")?),
    }
    if let Some(v) = get("environment") {
        b = b.environment_name(text(v, "environment")?);
    }
    if let Some(v) = get("limits_off") {
        if boolean(v, "limits_off")? {
            b = b.disable_rate_limits();
        }
    }
    // Each half of a pair on its own, as in every language.
    if let Some(n) = calls("rate_limit_calls")? {
        b = b.rate_limit_calls(n);
    }
    if let Some(d) = ms("rate_limit_period_ms")? {
        b = b.rate_limit_period(d);
    }
    if let Some(n) = calls("report_rate_limit_calls")? {
        b = b.report_rate_limit_calls(n);
    }
    if let Some(d) = ms("report_rate_limit_period_ms")? {
        b = b.report_rate_limit_period(d);
    }
    if let Some(n) = calls("max_attempts")? {
        b = b.max_attempts(n);
    }
    if let Some(d) = ms("backoff_base_ms")? {
        b = b.backoff_base(d);
    }
    if let Some(d) = ms("backoff_max_ms")? {
        b = b.backoff_max(d);
    }
    if let Some(d) = ms("attempt_timeout_ms")? {
        b = b.attempt_timeout(d);
    }
    if let Some(d) = ms("timeout_ms")? {
        b = b.timeout(d);
    }
    Ok(b.build())
}

/// One call of a step, ready to be sent any number of times.
#[derive(Clone)]
struct CallSpec {
    method: Method,
    path: String,
    params: Vec<(String, String)>,
    json: Option<Value>,
    safe_to_retry: bool,
}

impl CallSpec {
    fn read(args: &Obj, what: &str) -> Result<CallSpec, String> {
        Ok(CallSpec {
            method: method(required(args, "method", what)?, &format!("{what} method"))?,
            path: text(required(args, "path", what)?, &format!("{what} path"))?.to_owned(),
            params: params(args, what)?,
            json: args.get("json").cloned(),
            safe_to_retry: args.get("safe_to_retry").map(|v| boolean(v, "safe_to_retry")).transpose()?.unwrap_or(false),
        })
    }

    /// The GET of a `saturate` or `paced` step.
    fn get(args: &Obj, what: &str) -> Result<CallSpec, String> {
        Ok(CallSpec {
            method: Method::GET,
            path: text(required(args, "path", what)?, &format!("{what} path"))?.to_owned(),
            params: params(args, what)?,
            json: None,
            safe_to_retry: false,
        })
    }

    async fn send(&self, tenant: &Tenant) -> Result<Value, Error> {
        let mut request =
            tenant.request(self.method.clone(), self.path.clone()).query_pairs(self.params.iter().cloned());
        if let Some(json) = &self.json {
            request = request.json_value(Some(json.clone()));
        }
        if self.safe_to_retry {
            request = request.safe_to_retry();
        }
        request.send_json().await
    }
}
