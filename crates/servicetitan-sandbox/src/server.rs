//! The HTTP server: the token endpoint, the API routes behind app-key, token, tenant, rate-limit
//! and scope checks, and the `/__sandbox/` control API for faults, revocation and stats.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::catalogue::Catalogue;
use crate::config::{JitterConfig, SandboxConfig, TenantConfig};
use crate::data::{ListFilter, Store};
use crate::faults::{Fault, Faults};
use crate::http::{
    bool_param, int_param, json_bytes_response, json_response, oauth_error, page_envelope, param, query_pairs, Body,
    Problem,
};
use crate::limits::{Jitter, LimitStats, WindowLimiter};
use crate::report_queries::{Poll, ReportQueries};
use crate::responder::{violations_problem, Call, Responder};
use crate::stats::{Stats, StatsSnapshot};
use crate::tokens::{TokenIssuer, TokenProblem};
use crate::util::{mix, mix_all, now_unix_ms, parse_date_ms};
use crate::webhooks::{Delivery, WebhookSubscription, Webhooks};
use crate::{data, reports};

/// Largest request body accepted (the service's own limit is not published).
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("invalid sandbox configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("the sandbox thread failed to start: {0}")]
    Thread(String),
}

/// Returned by the service function to make hyper close the connection without an answer.
#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for DropConnection {}

pub(crate) struct State {
    config: SandboxConfig,
    catalogue: &'static Catalogue,
    store: Store,
    tokens: TokenIssuer,
    faults: Faults,
    stats: Stats,
    origin: Instant,
    tenant_limits: Mutex<HashMap<(String, i64), WindowLimiter>>,
    report_limits: Mutex<HashMap<(i64, i64), WindowLimiter>>,
    requests: AtomicU64,
    webhooks: Arc<Webhooks>,
    report_queries: Arc<ReportQueries>,
    responder: Responder,
    jitter: Jitter,
}

impl State {
    fn trace_id(&self) -> String {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let a = mix_all(&[self.config.seed, n, 1]);
        let b = mix_all(&[self.config.seed, n, 2]);
        format!("00-{a:016x}{b:016x}-{:016x}-00", mix(a ^ b))
    }

    fn problem(&self, p: Problem) -> Response<Body> {
        p.into_response(self.trace_id())
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        let mut tenants: BTreeMap<String, LimitStats> = BTreeMap::new();
        for ((_, tenant), limiter) in self.tenant_limits.lock().unwrap().iter() {
            tenants.entry(tenant.to_string()).or_default().merge(&limiter.stats);
        }
        let mut reports: BTreeMap<String, LimitStats> = BTreeMap::new();
        for ((tenant, report), limiter) in self.report_limits.lock().unwrap().iter() {
            reports.entry(format!("{tenant}/{report}")).or_default().merge(&limiter.stats);
        }
        self.stats.snapshot(tenants, reports, self.report_queries.stats())
    }

    fn reset_stats(&self) {
        self.stats.reset();
        self.report_queries.reset_stats();
        for limiter in self.tenant_limits.lock().unwrap().values_mut() {
            limiter.stats = LimitStats::default();
        }
        for limiter in self.report_limits.lock().unwrap().values_mut() {
            limiter.stats = LimitStats::default();
        }
    }
}

/// A running sandbox on the current tokio runtime. Dropping it stops the server.
pub struct Sandbox {
    state: Arc<State>,
    base_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Starts a sandbox listening on `config.host:config.port` (port 0: a free one).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), servicetitan_sandbox::SandboxError> {
    /// use servicetitan_sandbox::{Sandbox, SandboxConfig};
    /// let sandbox = Sandbox::start(SandboxConfig::default()).await?;
    /// println!("{}", sandbox.base_url()); // http://127.0.0.1:PORT
    /// sandbox.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn start(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        config.validate().map_err(SandboxError::Config)?;
        let addr = format!("{}:{}", config.host, config.port);
        let listener =
            TcpListener::bind(&addr).await.map_err(|source| SandboxError::Bind { addr: addr.clone(), source })?;
        let local: SocketAddr = listener.local_addr().map_err(|source| SandboxError::Bind { addr, source })?;
        let catalogue = Catalogue::embedded();
        let nonce = mix_all(&[now_unix_ms() as u64, std::process::id() as u64, local.port() as u64]);
        let webhooks = Webhooks::new(config.clone(), nonce);
        let state = Arc::new(State {
            store: Store::new(catalogue, config.seed, config.records),
            responder: Responder::new(catalogue, &config),
            tokens: TokenIssuer::new(config.seed, nonce),
            jitter: Jitter::new(config.seed, config.inbound_jitter),
            catalogue,
            config,
            faults: Faults::default(),
            stats: Stats::default(),
            origin: Instant::now(),
            tenant_limits: Mutex::new(HashMap::new()),
            report_limits: Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
            webhooks,
            report_queries: Arc::new(ReportQueries::new(nonce)),
        });
        let (tx, rx) = oneshot::channel();
        let server = tokio::spawn(serve(listener, state.clone(), rx));
        Ok(Sandbox { state, base_url: format!("http://{local}"), shutdown: Some(tx), server: Some(server) })
    }

    /// `http://127.0.0.1:PORT`: the base of both the token endpoint and the API.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The first accepted app key.
    pub fn app_key(&self) -> &str {
        &self.state.config.app_keys[0]
    }

    pub fn tenants(&self) -> &[TenantConfig] {
        &self.state.config.tenants
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.state.config
    }

    /// What reached the server so far, as `GET /__sandbox/stats` answers.
    pub fn stats(&self) -> Value {
        serde_json::to_value(self.state.snapshot()).expect("stats serialise")
    }

    pub fn reset_stats(&self) {
        self.state.reset_stats();
    }

    /// Arms a fault.
    ///
    /// # Panics
    /// If the fault is invalid (see [`Sandbox::try_add_fault`]): a mistake in the calling test.
    pub fn add_fault(&self, fault: Fault) {
        if let Err(e) = self.try_add_fault(fault) {
            panic!("invalid fault: {e}");
        }
    }

    pub fn try_add_fault(&self, fault: Fault) -> Result<(), String> {
        fault.validate()?;
        self.state.faults.add(fault);
        Ok(())
    }

    pub fn clear_faults(&self) {
        self.state.faults.clear();
    }

    /// Makes every token issued so far invalid, as a credential rotation would.
    pub fn revoke_tokens(&self) {
        self.state.tokens.revoke_all();
    }

    /// Registers a webhook subscription, as `POST /__sandbox/webhooks` does; returns its id.
    /// From then on the tenant's events (customers created or updated, events sent with
    /// [`send_webhook_event`](Self::send_webhook_event)) are delivered to it, signed.
    pub fn register_webhook(&self, subscription: WebhookSubscription) -> Result<u64, String> {
        self.state.webhooks.register(subscription)
    }

    /// The subscriptions (keys masked).
    pub fn webhook_subscriptions(&self) -> Value {
        self.state.webhooks.subscriptions()
    }

    /// Removes every subscription; pending retries to them end.
    pub fn clear_webhooks(&self) {
        self.state.webhooks.clear()
    }

    /// Every delivery so far, with its attempts.
    pub fn webhook_deliveries(&self) -> Vec<Delivery> {
        self.state.webhooks.deliveries()
    }

    /// Sends an event again with the same id and body, as a replay from the developer portal
    /// does; returns how many deliveries started.
    pub fn replay_webhook(&self, event_id: &str) -> Result<usize, String> {
        self.state.webhooks.replay(event_id)
    }

    /// Sends an event of `tenant` to its subscribers; returns the event id.
    pub fn send_webhook_event(&self, tenant: i64, event_type: &str, data: Value) -> Result<String, String> {
        send_event(&self.state, SendEvent { tenant, event_type: event_type.to_owned(), source: None, data })
    }

    /// The inbound jitter in force.
    pub fn jitter(&self) -> JitterConfig {
        self.state.jitter.get()
    }

    /// Changes the inbound jitter from the next call on (as `PUT /__sandbox/jitter` does).
    pub fn set_jitter(&self, jitter: JitterConfig) -> Result<(), String> {
        self.state.jitter.set(jitter)
    }

    /// Stops accepting connections, ends open ones and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn serve(listener: TcpListener, state: Arc<State>, mut shutdown: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| handle(state.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        }
    }
    state.webhooks.stop();
    connections.shutdown().await;
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, DropConnection> {
    let method = req.method().clone();
    let path = req.uri().path().trim_start_matches('/').trim_end_matches('/').to_string();
    if let Some(control) = path.strip_prefix("__sandbox/") {
        let body = read_body(req).await;
        return Ok(match body {
            Ok(body) => control_api(&state, &method, control, &body),
            Err(p) => state.problem(p),
        });
    }

    let route = route_template(&state, &method, &path);
    state.stats.route(method.as_str(), &route);
    if let Some(fault) = state.faults.take(method.as_str(), &path) {
        state.stats.fault_fired();
        if fault.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
        }
        if fault.drop_connection {
            return Err(DropConnection);
        }
        if let Some(status) = fault.status {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let title = fault.title.unwrap_or_else(|| {
                format!("{} (injected by the sandbox)", status.canonical_reason().unwrap_or("Error"))
            });
            let mut problem = Problem::new(status, title);
            problem.retry_after = fault.retry_after;
            return Ok(state.problem(problem));
        }
    }

    if path.eq_ignore_ascii_case("connect/token") {
        if method != Method::POST {
            return Ok(state.problem(Problem::new(StatusCode::METHOD_NOT_ALLOWED, "The token endpoint takes POST.")));
        }
        let content_type =
            req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let body = read_body(req).await;
        return Ok(match body {
            Ok(body) => token_endpoint(&state, &content_type, &body),
            Err(p) => state.problem(p),
        });
    }

    if state.config.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(state.config.latency_ms)).await;
    }
    // The call reaches the rate limiter late by a varying delay, as over a jittery network.
    let jitter = state.jitter.next_delay();
    if !jitter.is_zero() {
        tokio::time::sleep(jitter).await;
    }
    Ok(match api(&state, req, &method, &path, &route).await {
        Ok(response) => response,
        Err(problem) => {
            if problem.status == StatusCode::UNAUTHORIZED {
                state.stats.unauthorized();
            }
            state.problem(problem)
        }
    })
}

/// The spec's template of a path (`crm/v2/tenant/{tenant}/customers/{id}`), for the stats.
fn route_template(state: &State, method: &Method, path: &str) -> String {
    if path.eq_ignore_ascii_case("connect/token") {
        return "connect/token".to_string();
    }
    match state.catalogue.find(method.as_str(), path) {
        Some(op) => op.path.clone(),
        None => {
            let mut segments: Vec<&str> = path.split('/').collect();
            if segments.len() > 3 && segments[2].eq_ignore_ascii_case("tenant") {
                segments[3] = "{tenant}";
            }
            segments.join("/")
        }
    }
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, Problem> {
    match Limited::new(req.into_body(), MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "The request body is too large or was cut short.")),
    }
}

fn token_endpoint(state: &State, content_type: &str, body: &[u8]) -> Response<Body> {
    let bad = |error: &str, description: &str| oauth_error(StatusCode::BAD_REQUEST, error, description);
    if !content_type.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded") {
        return bad("invalid_request", "The request must be application/x-www-form-urlencoded.");
    }
    let Ok(form) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) else {
        return bad("invalid_request", "The request body is not a valid form.");
    };
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let client_id = field("client_id").unwrap_or("");
    state.stats.token_request(if client_id.is_empty() { "(none)" } else { client_id });
    match field("grant_type") {
        None | Some("") => return bad("invalid_request", "The grant_type parameter is missing."),
        Some("client_credentials") => {}
        Some(_) => return bad("unsupported_grant_type", "Only the client_credentials grant is supported."),
    }
    let (Some(id), Some(secret)) = (field("client_id"), field("client_secret")) else {
        return bad("invalid_request", "client_id and client_secret are required.");
    };
    let Some(tenant) = state.config.tenants.iter().find(|t| t.client_id == id) else {
        return bad("invalid_client", "The client credentials are not valid.");
    };
    if !constant_time_eq(tenant.client_secret.as_bytes(), secret.as_bytes()) {
        return bad("invalid_client", "The client credentials are not valid.");
    }
    let lifetime_ms = (state.config.token_lifetime_secs * 1000.0) as i64;
    let token = state.tokens.issue(id, now_unix_ms(), lifetime_ms);
    let scopes: Vec<String> = state
        .config
        .tenants
        .iter()
        .filter(|t| t.client_id == id)
        .flat_map(|t| t.scopes.iter().map(|s| if s == "*" { "tn.*".to_string() } else { format!("tn.{s}") }))
        .collect();
    let mut response = json_response(
        StatusCode::OK,
        &json!({
            "access_token": token,
            "expires_in": state.config.token_lifetime_secs.ceil() as u64,
            "token_type": "Bearer",
            "scope": scopes.join(" "),
        }),
    );
    response.headers_mut().insert(header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    response
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One API call: `{module}/v{n}/tenant/{tenant}/{rest}`.
async fn api(
    state: &State,
    req: Request<Incoming>,
    method: &Method,
    path: &str,
    route: &str,
) -> Result<Response<Body>, Problem> {
    let segments: Vec<&str> = path.split('/').collect();
    let versioned = segments
        .get(1)
        .is_some_and(|v| v.len() > 1 && v.starts_with('v') && v[1..].bytes().all(|c| c.is_ascii_digit()));
    if segments.len() < 5 || !versioned || !segments[2].eq_ignore_ascii_case("tenant") {
        return Err(Problem::not_found(format!("No API route matches '/{path}'.")));
    }
    let module = segments[0].to_ascii_lowercase();
    let tenant_id: i64 = match segments[3].parse() {
        Ok(id) if id > 0 => id,
        _ => {
            return Err(Problem::bad_request("tenant", format!("The value '{}' is not valid for tenant.", segments[3])))
        }
    };

    let headers = req.headers();
    let app_key = match headers.get("st-app-key").and_then(|v| v.to_str().ok()) {
        None | Some("") => return Err(Problem::unauthorized("The ST-App-Key header is required.")),
        Some(key) if !state.config.app_keys.iter().any(|k| k == key) => {
            return Err(Problem::unauthorized("The ST-App-Key header does not name a known application."))
        }
        Some(key) => key.to_string(),
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .ok_or_else(|| Problem::unauthorized("The Authorization header with a Bearer token is required."))?;
    let client_id = state.tokens.verify(token.trim(), now_unix_ms()).map_err(|p| match p {
        TokenProblem::Expired => Problem::unauthorized("The access token has expired."),
        TokenProblem::Revoked => Problem::unauthorized("The access token has been revoked."),
        TokenProblem::Malformed => Problem::unauthorized("The access token is not valid."),
    })?;
    let tenant = state
        .config
        .tenants
        .iter()
        .find(|t| t.id == tenant_id && t.client_id == client_id)
        .ok_or_else(|| Problem::unauthorized(format!("The access token was not issued for tenant {tenant_id}.")))?;

    // The per-tenant limit covers every API but reporting, which has its own per-report limit.
    if module != "reporting" {
        let mut limits = state.tenant_limits.lock().unwrap();
        let limiter = limits
            .entry((app_key, tenant_id))
            .or_insert_with(|| WindowLimiter::new(state.config.rate_limit.clone(), state.origin));
        limiter.try_admit(Instant::now()).map_err(Problem::too_many_requests)?;
    }
    if !tenant.grants(&module) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            format!(
                "The application has no access to the '{module}' API of tenant {tenant_id}: the scope was not granted."
            ),
        ));
    }

    let pairs = query_pairs(req.uri().query())?;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("*/*").to_owned();
    let rest = &segments[4..];
    // One DELETE documents a body too.
    let needs_body = !matches!(*method, Method::GET | Method::HEAD);
    let body = if needs_body { read_body(req).await? } else { Bytes::new() };
    if module == "reporting" {
        return reporting(state, method, tenant_id, rest, &pairs, &body);
    }
    match state.catalogue.find_index(method.as_str(), path) {
        Some(index) if state.responder.serves(index) => {
            let call = Call { method, path, pairs: &pairs, body: &body, accept: &accept };
            state.responder.answer(&state.store, index, &call)
        }
        Some(_) => resources(state, method, tenant_id, &module, rest, &pairs, &body, route),
        None => {
            let allowed: Vec<&str> = ["GET", "POST", "PUT", "PATCH", "DELETE"]
                .into_iter()
                .filter(|other| state.catalogue.find_index(other, path).is_some())
                .collect();
            if allowed.is_empty() {
                return resources(state, method, tenant_id, &module, rest, &pairs, &body, route);
            }
            Err(Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not allowed on /{route}: it takes {}.", allowed.join(", ")),
            ))
        }
    }
}

fn not_implemented(method: &Method, route: &str) -> Problem {
    Problem::not_found(format!("The sandbox does not implement {method} /{route}."))
}

#[allow(clippy::too_many_arguments)]
fn resources(
    state: &State,
    method: &Method,
    tenant_id: i64,
    module: &str,
    rest: &[&str],
    pairs: &[(String, String)],
    body: &[u8],
    route: &str,
) -> Result<Response<Body>, Problem> {
    let store = &state.store;
    let (resource, tail, export) = match rest {
        ["export", name] => (store.find(module, name), None, true),
        [name] => (store.find(module, name), None, false),
        [name, id] => (store.find(module, name), Some(*id), false),
        _ => (None, None, false),
    };
    let Some(resource) = resource else {
        return Err(not_implemented(method, route));
    };
    let spec = store.resources[resource].spec;
    let customers = spec.kind == data::Kind::Customers;
    match (method, tail, export) {
        (&Method::GET, None, true) if store.resources[resource].export_route.is_some() => {
            export_feed(state, resource, pairs)
        }
        (&Method::GET, None, false) => list(state, resource, pairs),
        (&Method::GET, Some(id), false) if store.resources[resource].get_route.is_some() => {
            let id = parse_id(id)?;
            store
                .get(resource, id)
                .map(|record| json_response(StatusCode::OK, &record))
                .ok_or_else(|| Problem::not_found(format!("{} with id {id} was not found.", singular(spec.path))))
        }
        (&Method::POST, None, false) if customers => {
            let fields = validated_body(state, "POST", route, body)?;
            let mut record = store.create(resource, fitting_fields(state, resource, fields, false));
            if let Value::Object(m) = &mut record {
                m.insert("locations".into(), json!([]));
                m.insert("contacts".into(), json!([]));
            }
            customer_event(state, tenant_id, "tn.crm.customer-created", &record);
            Ok(json_response(StatusCode::OK, &record))
        }
        (&Method::PATCH, Some(id), false) if customers => {
            let id = parse_id(id)?;
            let fields = validated_body(state, "PATCH", route, body)?;
            store
                .update(resource, id, fitting_fields(state, resource, fields, true))
                .map(|record| {
                    customer_event(state, tenant_id, "tn.crm.customer-updated", &record);
                    json_response(StatusCode::OK, &record)
                })
                .ok_or_else(|| Problem::not_found(format!("{} with id {id} was not found.", singular(spec.path))))
        }
        _ => Err(not_implemented(method, route)),
    }
}

/// Tells the tenant's webhook subscribers about a created or updated customer.
fn customer_event(state: &State, tenant_id: i64, event_type: &str, record: &Value) {
    state.webhooks.emit(tenant_id, event_type, &format!("/tenant/{tenant_id}/crm/customers"), record.clone());
}

fn singular(path: &str) -> String {
    let name = path.trim_end_matches('s').replace('-', " ");
    let mut chars = name.chars();
    chars.next().map(|c| c.to_uppercase().collect::<String>() + chars.as_str()).unwrap_or_default()
}

fn parse_id(text: &str) -> Result<i64, Problem> {
    text.parse::<i64>().map_err(|_| Problem::bad_request("id", format!("The value '{text}' is not valid for id.")))
}

/// The request body, checked against the operation's request schema from the specs.
fn validated_body(state: &State, method: &str, route: &str, body: &[u8]) -> Result<Map<String, Value>, Problem> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Problem::bad_request("body", format!("The request body is not valid JSON: {e}.")))?;
    if let Some(schema) = state.catalogue.operation(method, route).and_then(|op| op.body.as_ref()) {
        state.catalogue.validate(schema, &value).map_err(violations_problem)?;
    }
    match value {
        Value::Object(m) => Ok(m),
        _ => Err(Problem::bad_request("body", "The request body must be a JSON object.")),
    }
}

/// The fields of a write that fit the record the store shows: the store lays them over its
/// records as they are, so a value that the request schema allows but the record schema does
/// not (a null, a request-only shape) is left out. With `merge` (PATCH), a nested object may
/// name only some of its fields, and keeps those that fit.
fn fitting_fields(state: &State, resource: usize, fields: Map<String, Value>, merge: bool) -> Map<String, Value> {
    let catalogue = state.catalogue;
    let route = &state.store.resources[resource].list_route;
    let Some(schema) = catalogue.operation("GET", route).and_then(|op| op.responses.get("200")) else {
        return fields;
    };
    let page = catalogue.resolve(schema);
    let record = page.pointer("/properties/data/items").map_or(page, |s| catalogue.resolve(s));
    let Some(properties) = record.get("properties").and_then(Value::as_object) else {
        return fields;
    };
    let fits = |schema: &Value, value: &Value| catalogue.validate(schema, value).is_ok();
    fields
        .into_iter()
        .filter_map(|(key, value)| {
            let property = properties.get(&key)?;
            if fits(property, &value) {
                return Some((key, value));
            }
            let nested = catalogue.resolve(property).get("properties").and_then(Value::as_object)?;
            match value {
                Value::Object(inner) if merge => {
                    let kept = inner.into_iter().filter(|(k, v)| nested.get(k).is_some_and(|p| fits(p, v))).collect();
                    Some((key, Value::Object(kept)))
                }
                _ => None,
            }
        })
        .collect()
}

fn list(state: &State, resource: usize, pairs: &[(String, String)]) -> Result<Response<Body>, Problem> {
    let page = int_param(pairs, "page", 1, 1..=i64::from(i32::MAX))?;
    let page_size = int_param(pairs, "pageSize", 50, 1..=5000)?;
    let include_total = bool_param(pairs, "includeTotal")?;
    let active = match param(pairs, "active") {
        None | Some("") => Some(true),
        Some(v) if v.eq_ignore_ascii_case("true") => Some(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Some(false),
        Some(v) if v.eq_ignore_ascii_case("any") => None,
        Some(v) => {
            return Err(Problem::bad_request(
                "active",
                format!("The value '{v}' is not valid for active: use True, False or Any."),
            ))
        }
    };
    let modified_on_or_after_ms = match param(pairs, "modifiedOnOrAfter") {
        None | Some("") => None,
        Some(v) => Some(parse_date_ms(v).ok_or_else(|| {
            Problem::bad_request("modifiedOnOrAfter", format!("The value '{v}' is not a valid date."))
        })?),
    };
    let ids = match param(pairs, "ids") {
        None | Some("") => None,
        Some(v) => {
            Some(v.split(',').map(|s| s.trim().parse::<i64>()).collect::<Result<Vec<_>, _>>().map_err(|_| {
                Problem::bad_request("ids", format!("The value '{v}' is not a comma-separated list of ids."))
            })?)
        }
    };
    let filter = ListFilter { active, modified_on_or_after_ms, ids };
    let result = state.store.list(resource, &filter, page as u64, page_size as u64, include_total);
    Ok(json_response(StatusCode::OK, &page_envelope(page, page_size, result.has_more, result.total, result.records)))
}

fn continuation_token(state: &State, resource: usize, position: u64) -> String {
    let check = mix_all(&[state.config.seed, resource as u64, position]) & 0xFFFF_FFFF;
    URL_SAFE_NO_PAD.encode(format!("{resource}:{position}:{check:08x}"))
}

fn parse_continuation_token(state: &State, resource: usize, token: &str) -> Option<u64> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(token.trim()).ok()?).ok()?;
    let mut parts = text.split(':');
    let (r, p, c) = (parts.next()?, parts.next()?, parts.next()?);
    let position: u64 = p.parse().ok()?;
    (r == resource.to_string()
        && parts.next().is_none()
        && continuation_token(state, resource, position) == token.trim()
        && c.len() == 8)
        .then_some(position)
}

fn export_feed(state: &State, resource: usize, pairs: &[(String, String)]) -> Result<Response<Body>, Problem> {
    let _include_recent_changes = bool_param(pairs, "includeRecentChanges")?;
    let position = match param(pairs, "from") {
        None | Some("") => 0,
        Some(from) => match parse_continuation_token(state, resource, from) {
            Some(position) => position.min(state.store.export_len(resource)),
            None => match parse_date_ms(from) {
                Some(ms) => state.store.export_position_for_date(resource, ms),
                None => {
                    return Err(Problem::bad_request(
                        "from",
                        format!("The value '{from}' is neither a continuation token of this export nor a date."),
                    ))
                }
            },
        },
    };
    let slice = state.store.export(resource, position, state.config.export_page_size);
    // The records come rendered: only the envelope is written here.
    let token = continuation_token(state, resource, slice.next_position);
    let mut body = Vec::with_capacity(slice.data.len() + token.len() + 48);
    body.extend_from_slice(format!("{{\"hasMore\":{},\"continueFrom\":", slice.has_more).as_bytes());
    serde_json::to_writer(&mut body, &token).expect("JSON serialises");
    body.extend_from_slice(b",\"data\":");
    body.extend_from_slice(&slice.data);
    body.push(b'}');
    Ok(json_bytes_response(StatusCode::OK, body))
}

fn reporting(
    state: &State,
    method: &Method,
    tenant_id: i64,
    rest: &[&str],
    pairs: &[(String, String)],
    body: &[u8],
) -> Result<Response<Body>, Problem> {
    let paged = |items: Vec<Value>| -> Result<Response<Body>, Problem> {
        let page = int_param(pairs, "page", 1, 1..=i64::from(i32::MAX))?;
        let page_size = int_param(pairs, "pageSize", 50, 1..=5000)?;
        let include_total = bool_param(pairs, "includeTotal")?;
        let total = items.len() as u64;
        let start = ((page - 1) * page_size) as usize;
        let data: Vec<Value> = items.into_iter().skip(start).take(page_size as usize).collect();
        let has_more = (start + data.len()) < total as usize;
        Ok(json_response(
            StatusCode::OK,
            &page_envelope(page, page_size, has_more, include_total.then_some(total), data),
        ))
    };
    let report_of = |category: &str, id: &str| -> Result<&'static reports::Report, Problem> {
        if !reports::category_exists(category) {
            return Err(Problem::not_found(format!("Report category '{category}' was not found.")));
        }
        let id = parse_id(id)?;
        reports::find(category, id)
            .ok_or_else(|| Problem::not_found(format!("Report {id} was not found in category '{category}'.")))
    };
    match (method, rest) {
        (&Method::GET, ["report-categories"]) => {
            paged(reports::CATEGORIES.iter().map(|(id, name)| json!({"id": id, "name": name})).collect())
        }
        (&Method::GET, ["report-category", category, "reports"]) => {
            if !reports::category_exists(category) {
                return Err(Problem::not_found(format!("Report category '{category}' was not found.")));
            }
            paged(
                reports::REPORTS
                    .iter()
                    .filter(|r| r.category.eq_ignore_ascii_case(category))
                    .map(|r| json!({"id": r.id, "name": r.name}))
                    .collect(),
            )
        }
        (&Method::GET, ["report-category", category, "reports", id]) => {
            Ok(json_response(StatusCode::OK, &reports::metadata(report_of(category, id)?)))
        }
        (&Method::POST, ["report-category", category, "reports", id, "data"]) => {
            let report = report_of(category, id)?;
            let shape = page_shape(pairs, None)?;
            admit_report_run(state, tenant_id, report, body)?;
            Ok(json_response(StatusCode::OK, &report_page(state, report, shape)))
        }
        (&Method::POST, ["report-category", category, "reports", id, "data", "query"]) => {
            let report = report_of(category, id)?;
            let shape = page_shape(pairs, None)?;
            let request = admit_report_run(state, tenant_id, report, body)?;
            if state.config.report_query_ms == 0 {
                return Ok(json_response(StatusCode::OK, &report_page(state, report, shape)));
            }
            let takes = Duration::from_millis(state.config.report_query_ms);
            let token = state.report_queries.start(tenant_id, report, shape, takes);
            if request.get("notifyWhenReady") == Some(&Value::Bool(true)) {
                notify_when_ready(state, tenant_id, report, &token, takes);
            }
            Ok(json_response(StatusCode::ACCEPTED, &json!({"status": "Pending", "token": token})))
        }
        (&Method::GET, ["dynamic-value-sets", id]) => {
            let rows = reports::dynamic_set(id)
                .ok_or_else(|| Problem::not_found(format!("Dynamic value set '{id}' was not found.")))?;
            let page = int_param(pairs, "page", 1, 1..=i64::from(i32::MAX))?;
            let page_size = int_param(pairs, "pageSize", 50, 1..=5000)?;
            let include_total = bool_param(pairs, "includeTotal")?;
            let total = rows.len();
            let start = ((page - 1) * page_size) as usize;
            let data: Vec<Value> = rows.into_iter().skip(start).take(page_size as usize).collect();
            let has_more = start + data.len() < total;
            let mut body = page_envelope(page, page_size, has_more, include_total.then_some(total as u64), data);
            body["fields"] = reports::dynamic_set_fields();
            Ok(json_response(StatusCode::OK, &body))
        }
        (&Method::GET, ["data-queries", token]) => state.report_queries.poll(tenant_id, token, |poll| match poll {
            Poll::Missing => Err(Problem::not_found(format!("Data query '{token}' was not found."))),
            Poll::Deleted => Err(Problem::not_found(format!("Data query '{token}' was cancelled."))),
            Poll::Pending => Ok(json_response(StatusCode::ACCEPTED, &json!({"status": "Running", "token": token}))),
            Poll::Ready(query) => {
                let shape = page_shape(pairs, Some((query.page, query.page_size, query.include_total)))?;
                Ok(json_response(StatusCode::OK, &report_page(state, query.report, shape)))
            }
        }),
        (&Method::DELETE, ["data-queries", token]) => {
            if state.report_queries.delete(tenant_id, token) {
                let mut response = Response::new(Body::new(Bytes::new()));
                *response.status_mut() = StatusCode::NO_CONTENT;
                Ok(response)
            } else {
                Err(Problem::not_found(format!("Data query '{token}' was not found.")))
            }
        }
        _ => Err(Problem::not_found(format!(
            "The sandbox does not implement {method} /reporting/v2/tenant/{tenant_id}/{}.",
            rest.join("/")
        ))),
    }
}

/// `page`, `pageSize` (default 1000, at most 25 000) and `includeTotal` of a report data call;
/// `defaults` are a query's own, for polls that name none.
fn page_shape(pairs: &[(String, String)], defaults: Option<(i64, i64, bool)>) -> Result<(i64, i64, bool), Problem> {
    let (page, size, total) = defaults.unwrap_or((1, 1000, false));
    let page = int_param(pairs, "page", page, 1..=i64::from(i32::MAX))?;
    let page_size = int_param(pairs, "pageSize", size, 1..=25_000)?;
    let include_total = if param(pairs, "includeTotal").is_some() { bool_param(pairs, "includeTotal")? } else { total };
    Ok((page, page_size, include_total))
}

/// Checks a run's parameters and takes a slot of the report's limit; returns the request body.
fn admit_report_run(
    state: &State,
    tenant_id: i64,
    report: &'static reports::Report,
    body: &[u8],
) -> Result<Value, Problem> {
    let request: Value = serde_json::from_slice(body)
        .map_err(|e| Problem::bad_request("body", format!("The request body is not valid JSON: {e}.")))?;
    reports::validate_parameters(report, &request).map_err(|errors| {
        Problem::new(StatusCode::BAD_REQUEST, "One or more validation errors occurred.").with_errors(errors)
    })?;
    let mut limits = state.report_limits.lock().unwrap();
    let limiter = limits
        .entry((tenant_id, report.id))
        .or_insert_with(|| WindowLimiter::new(state.config.report_limit.clone(), state.origin));
    limiter.try_admit(Instant::now()).map_err(Problem::too_many_requests)?;
    Ok(request)
}

/// One page of a report's data: positional rows and their fields.
fn report_page(state: &State, report: &reports::Report, (page, page_size, include_total): (i64, i64, bool)) -> Value {
    let total = state.config.report_rows;
    let start = (page as u64 - 1).saturating_mul(page_size as u64);
    let end = (start + page_size as u64).min(total);
    let rows: Vec<Value> = (start..end.max(start)).map(|i| reports::row(report, state.config.seed, i)).collect();
    json!({
        "page": page,
        "pageSize": page_size,
        "hasMore": end < total,
        "totalCount": include_total.then_some(total),
        "fields": report.fields.iter().map(|f| json!({"name": f.name, "label": f.label})).collect::<Vec<_>>(),
        "data": rows,
    })
}

/// Sends `tn.rpr.report-data-ready` to the tenant's subscribers when the query is ready, unless
/// it was cancelled first.
fn notify_when_ready(state: &State, tenant_id: i64, report: &reports::Report, token: &str, takes: Duration) {
    let webhooks = state.webhooks.clone();
    let token = token.to_owned();
    let data = json!({"token": token, "reportId": report.id, "reportCategory": report.category});
    let queries = state.report_queries.clone();
    tokio::spawn(async move {
        tokio::time::sleep(takes).await;
        if queries.live(&token) {
            webhooks.emit(tenant_id, "tn.rpr.report-data-ready", &format!("/tenant/{tenant_id}/reporting"), data);
        }
    });
}

fn control_api(state: &State, method: &Method, path: &str, body: &[u8]) -> Response<Body> {
    let ok = |v: Value| json_response(StatusCode::OK, &v);
    match (method, path.trim_end_matches('/')) {
        (&Method::GET, "stats") => json_response(StatusCode::OK, &state.snapshot()),
        (&Method::POST, "stats/reset") => {
            state.reset_stats();
            ok(json!({"reset": true}))
        }
        (&Method::GET, file) if file.starts_with("files/") => state
            .responder
            .file(&file["files/".len()..])
            .unwrap_or_else(|| state.problem(Problem::not_found(format!("No file /__sandbox/{file}.")))),
        (&Method::GET, "faults") => json_response(StatusCode::OK, &state.faults.list()),
        (&Method::POST, "faults") => {
            match serde_json::from_slice::<Fault>(body).map_err(|e| e.to_string()).and_then(|f| {
                f.validate()?;
                Ok(f)
            }) {
                Ok(fault) => {
                    state.faults.add(fault);
                    json_response(StatusCode::CREATED, &json!({"armed": true}))
                }
                Err(e) => state.problem(Problem::bad_request("fault", e)),
            }
        }
        (&Method::DELETE, "faults") => {
            state.faults.clear();
            ok(json!({"cleared": true}))
        }
        (_, webhooks) if webhooks == "webhooks" || webhooks.starts_with("webhooks/") => {
            webhook_control(state, method, webhooks, body)
        }
        (&Method::GET, "jitter") => ok(json!(state.jitter.get())),
        (&Method::PUT, "jitter") => {
            match serde_json::from_slice::<JitterConfig>(body)
                .map_err(|e| e.to_string())
                .and_then(|j| state.jitter.set(j).map(|()| j))
            {
                Ok(jitter) => ok(json!(jitter)),
                Err(e) => state.problem(Problem::bad_request("jitter", e)),
            }
        }
        (&Method::POST, "revoke-tokens") => {
            state.tokens.revoke_all();
            ok(json!({"revoked": true}))
        }
        (&Method::GET, "config") => {
            // Everything but the secrets.
            let mut config = serde_json::to_value(&state.config).expect("config serialises");
            if let Some(tenants) = config.get_mut("tenants").and_then(Value::as_array_mut) {
                for t in tenants {
                    t["client_secret"] = json!("***");
                }
            }
            ok(config)
        }
        _ => state.problem(Problem::not_found(format!("No control route {method} /__sandbox/{path}."))),
    }
}

/// `/__sandbox/webhooks…`: subscriptions, deliveries, replays and events sent on demand.
fn webhook_control(state: &State, method: &Method, path: &str, body: &[u8]) -> Response<Body> {
    let bad = |field: &str, e: String| state.problem(Problem::bad_request(field, e));
    match (method, path) {
        (&Method::GET, "webhooks") => json_response(StatusCode::OK, &state.webhooks.subscriptions()),
        (&Method::POST, "webhooks") => {
            match serde_json::from_slice::<WebhookSubscription>(body).map_err(|e| e.to_string()) {
                Ok(subscription) => match state.webhooks.register(subscription) {
                    Ok(id) => json_response(StatusCode::CREATED, &json!({"id": id})),
                    Err(e) => bad("subscription", e),
                },
                Err(e) => bad("subscription", e),
            }
        }
        (&Method::DELETE, "webhooks") => {
            state.webhooks.clear();
            json_response(StatusCode::OK, &json!({"cleared": true}))
        }
        (&Method::GET, "webhooks/deliveries") => json_response(StatusCode::OK, &state.webhooks.deliveries()),
        (&Method::POST, "webhooks/replay") => {
            let event_id = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("event_id").and_then(Value::as_str).map(str::to_owned));
            let Some(event_id) = event_id else {
                return bad("event_id", "expected {\"event_id\": \"…\"}".into());
            };
            match state.webhooks.replay(&event_id) {
                Ok(deliveries) => json_response(StatusCode::OK, &json!({"deliveries": deliveries})),
                Err(e) => state.problem(Problem::not_found(e)),
            }
        }
        (&Method::POST, "webhooks/events") => match serde_json::from_slice::<SendEvent>(body) {
            Ok(event) => match send_event(state, event) {
                Ok(id) => json_response(StatusCode::CREATED, &json!({"id": id})),
                Err(e) => bad("event", e),
            },
            Err(e) => bad("event", e.to_string()),
        },
        _ => state.problem(Problem::not_found(format!("No control route {method} /__sandbox/{path}."))),
    }
}

/// An event sent on demand (`POST /__sandbox/webhooks/events`), e.g. to test a receiver.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SendEvent {
    tenant: i64,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    data: Value,
}

fn send_event(state: &State, event: SendEvent) -> Result<String, String> {
    if !state.config.tenants.iter().any(|t| t.id == event.tenant) {
        return Err(format!("tenant: the sandbox has no tenant {}", event.tenant));
    }
    if event.event_type.trim().is_empty() {
        return Err("type: expected an event type".into());
    }
    let source = event.source.unwrap_or_else(|| format!("/tenant/{}", event.tenant));
    Ok(state.webhooks.emit(event.tenant, &event.event_type, &source, event.data))
}

/// Runs a sandbox on a thread of its own with its own runtime, for callers that have no tokio
/// runtime (the Python and Node bindings, blocking tests).
pub struct BackgroundSandbox {
    state: Arc<State>,
    base_url: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BackgroundSandbox {
    pub fn start(config: SandboxConfig) -> Result<BackgroundSandbox, SandboxError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("servicetitan-sandbox".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(SandboxError::Thread(e.to_string())));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match Sandbox::start(config).await {
                        Ok(sandbox) => {
                            let _ = ready_tx.send(Ok((sandbox.state.clone(), sandbox.base_url.clone())));
                            let _ = stop_rx.await;
                            sandbox.shutdown().await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
            })
            .map_err(|e| SandboxError::Thread(e.to_string()))?;
        let (state, base_url) = ready_rx.recv().map_err(|e| SandboxError::Thread(e.to_string()))??;
        Ok(BackgroundSandbox { state, base_url, stop: Some(stop_tx), thread: Some(thread) })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.state.config
    }

    pub fn stats(&self) -> Value {
        serde_json::to_value(self.state.snapshot()).expect("stats serialise")
    }

    pub fn reset_stats(&self) {
        self.state.reset_stats();
    }

    pub fn try_add_fault(&self, fault: Fault) -> Result<(), String> {
        fault.validate()?;
        self.state.faults.add(fault);
        Ok(())
    }

    pub fn clear_faults(&self) {
        self.state.faults.clear();
    }

    pub fn revoke_tokens(&self) {
        self.state.tokens.revoke_all();
    }

    /// Registers a webhook subscription, as `POST /__sandbox/webhooks` does; returns its id.
    /// From then on the tenant's events (customers created or updated, events sent with
    /// [`send_webhook_event`](Self::send_webhook_event)) are delivered to it, signed.
    pub fn register_webhook(&self, subscription: WebhookSubscription) -> Result<u64, String> {
        self.state.webhooks.register(subscription)
    }

    /// The subscriptions (keys masked).
    pub fn webhook_subscriptions(&self) -> Value {
        self.state.webhooks.subscriptions()
    }

    /// Removes every subscription; pending retries to them end.
    pub fn clear_webhooks(&self) {
        self.state.webhooks.clear()
    }

    /// Every delivery so far, with its attempts.
    pub fn webhook_deliveries(&self) -> Vec<Delivery> {
        self.state.webhooks.deliveries()
    }

    /// Sends an event again with the same id and body, as a replay from the developer portal
    /// does; returns how many deliveries started.
    pub fn replay_webhook(&self, event_id: &str) -> Result<usize, String> {
        self.state.webhooks.replay(event_id)
    }

    /// Sends an event of `tenant` to its subscribers; returns the event id.
    pub fn send_webhook_event(&self, tenant: i64, event_type: &str, data: Value) -> Result<String, String> {
        send_event(&self.state, SendEvent { tenant, event_type: event_type.to_owned(), source: None, data })
    }

    /// The inbound jitter in force.
    pub fn jitter(&self) -> JitterConfig {
        self.state.jitter.get()
    }

    /// Changes the inbound jitter from the next call on.
    pub fn set_jitter(&self, jitter: JitterConfig) -> Result<(), String> {
        self.state.jitter.set(jitter)
    }

    /// Stops the server and joins its thread.
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for BackgroundSandbox {
    fn drop(&mut self) {
        self.stop();
    }
}
