//! `servicetitan doctor`: checks the app and each tenant piece by piece (the clocks, the
//! credentials in the environment used, the app key, each API's permission, the rate-limit
//! budget) and says what is wrong in the words a ServiceTitan admin uses.

use std::time::{Duration, Instant, SystemTime};

use clap::Args;
use futures::StreamExt;
use servicetitan::config::redact_url;
use servicetitan::operations::{self, Kind, Location, Operation};
use servicetitan::{Client, ErrorCode, Tenant};

use crate::config::{self, GlobalArgs};
use crate::exit::{self, CliResult};
use crate::output::{self, Flow};

/// `servicetitan doctor`.
#[derive(Args, Debug)]
#[command(after_help = "Checks, for the configured app and each tenant: that both servers' clocks agree with this \
computer's; that the token service of the environment accepts the tenant's client id and secret; that the API \
accepts the app key; which APIs the tenant lets the app use (one small read per API); and how much of the \
tenant's rate limit is left. Exits with 0 when all is well, 3 when credentials, the app key or permissions \
fail, 1 for anything else.\n\n\
Examples:\n  \
    servicetitan doctor\n  \
    servicetitan doctor --all-tenants\n  \
    servicetitan --profile production doctor --tenant 1234567\n  \
    servicetitan doctor --json")]
pub struct DoctorArgs {
    /// One JSON object per check (check, tenant, status, message) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Warning,
    /// Credentials, the app key or a permission: exit code 3.
    Refused,
    /// Anything else that failed: exit code 1.
    Failed,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Refused | Status::Failed => "FAIL",
        }
    }
}

struct Report {
    json: bool,
    worst: i32,
    out: std::io::StdoutLock<'static>,
    closed: bool,
}

impl Report {
    fn check(&mut self, check: &str, tenant: Option<i64>, status: Status, message: String) -> CliResult {
        let code = match status {
            Status::Ok | Status::Warning => exit::OK,
            Status::Failed => exit::FAILURE,
            Status::Refused => exit::AUTHENTICATION,
        };
        // An authentication failure outranks the others: it is what the admin must fix first.
        if code == exit::AUTHENTICATION || (code == exit::FAILURE && self.worst == exit::OK) {
            self.worst = code;
        }
        if self.closed {
            return Ok(());
        }
        let line = if self.json {
            serde_json::json!({
                "check": check,
                "tenant": tenant,
                "status": match status { Status::Ok => "ok", Status::Warning => "warning", _ => "fail" },
                "message": message,
            })
            .to_string()
        } else {
            let who = tenant.map(|t| format!("tenant {t}: ")).unwrap_or_default();
            format!("{:<8} {who}{message}", status.label())
        };
        if output::line(&mut self.out, line.as_bytes())? == Flow::Closed {
            self.closed = true;
        }
        Ok(())
    }
}

/// Runs the checks.
pub async fn run(global: &GlobalArgs, args: DoctorArgs) -> CliResult {
    let resolved = config::resolve(global)?;
    let mut report = Report { json: args.json, worst: exit::OK, out: std::io::stdout().lock(), closed: false };
    let client = &resolved.client;
    let settings = client.config();
    report.check(
        "environment",
        None,
        Status::Ok,
        format!(
            "environment {} (token service {}, API {}){}",
            settings.environment().name(),
            redact_url(settings.token_url()),
            redact_url(settings.api_url()),
            resolved.profile.as_deref().map(|p| format!(", profile {p}")).unwrap_or_default()
        ),
    )?;
    check_clock(&mut report, "the token service", settings.token_url()).await?;
    check_clock(&mut report, "the API", settings.api_url()).await?;
    for credentials in &resolved.tenants {
        let tenant = client.tenant(credentials.clone());
        check_tenant(&mut report, client, &tenant, credentials.client_id()).await?;
    }
    output::flush(&mut report.out)?;
    match report.worst {
        exit::OK => Ok(()),
        code => Err(crate::exit::CliError {
            code,
            message: if code == exit::AUTHENTICATION {
                "the credentials, the app key or a permission were refused (see above)".to_string()
            } else {
                "some checks failed (see above)".to_string()
            },
        }),
    }
}

/// Longest difference between a server's clock and this computer's before it matters: token
/// lifetimes, export start dates and report dates are read against the server's clock.
const CLOCK_TOLERANCE: Duration = Duration::from_secs(30);

/// Compares the `Date` of an unauthenticated answer of `url`'s server (nothing secret is
/// sent) with this computer's clock.
async fn check_clock(report: &mut Report, who: &str, url: &str) -> CliResult {
    let http = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build()
    {
        Ok(http) => http,
        Err(e) => return report.check("clock", None, Status::Failed, format!("cannot check {who}'s clock: {e}")),
    };
    let sent = SystemTime::now();
    let started = Instant::now();
    let answer = match http.get(url).send().await {
        Ok(answer) => answer,
        Err(e) => {
            let why = if e.is_timeout() { "no answer within 15 s".to_string() } else { connection_cause(&e) };
            return report.check(
                "clock",
                None,
                Status::Failed,
                format!("cannot reach {who} at {} ({why})", redact_url(url)),
            );
        }
    };
    let local = sent + started.elapsed() / 2;
    let server = answer.headers().get(reqwest::header::DATE).and_then(|d| d.to_str().ok()).map(str::to_owned);
    let Some(server) = server.as_deref().and_then(|d| httpdate::parse_http_date(d).ok()) else {
        return report.check(
            "clock",
            None,
            Status::Warning,
            format!("{who} sent no Date header: its clock cannot be compared with this computer's"),
        );
    };
    let (skew, ahead) = match server.duration_since(local) {
        Ok(d) => (d, true),
        Err(e) => (e.duration(), false),
    };
    if skew <= CLOCK_TOLERANCE {
        return report.check(
            "clock",
            None,
            Status::Ok,
            format!("{who}'s clock and this computer's agree (within {} s)", skew.as_secs().max(1)),
        );
    }
    report.check(
        "clock",
        None,
        Status::Failed,
        format!(
            "this computer's clock is {} {} {who}'s: set the clock right (turn on network time, NTP); dates in \
             exports and reports and token lifetimes are read against the server's clock",
            human(skew),
            if ahead { "behind" } else { "ahead of" }
        ),
    )
}

fn human(d: Duration) -> String {
    let s = d.as_secs_f64().round();
    if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

fn connection_cause(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    let mut last = e.to_string();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}

/// The cheapest read of each API (module): a list with no required parameter, one record.
fn probes() -> Vec<(&'static str, &'static Operation)> {
    let mut chosen: Vec<(&'static str, &'static Operation)> = Vec::new();
    for module in operations::modules() {
        let mut candidates: Vec<&'static Operation> = operations::operations()
            .iter()
            .filter(|op| op.python.first() == Some(&module.python) && op.method == "GET")
            .filter(|op| matches!(op.kind, Kind::List | Kind::Plain | Kind::Export))
            .filter(|op| !op.params.iter().any(|p| p.required || p.location == Location::Path))
            .collect();
        candidates.sort_by_key(|op| (op.kind != Kind::List, op.kind != Kind::Export, op.name()));
        if let Some(op) = candidates.first() {
            chosen.push((module.python.as_str(), op));
        }
    }
    chosen
}

async fn probe(tenant: &Tenant, op: &Operation) -> servicetitan::Result<()> {
    let mut call = tenant.operation(&op.name());
    if op.param("pageSize", operations::Naming::Api).is_some() {
        call = call.arg("pageSize", 1);
    }
    call.send_bytes().await.map(|_| ())
}

/// The token service gave the tenant's credentials a token.
fn credentials_accepted(report: &mut Report, id: Option<i64>, environment: &str, client_id: &str) -> CliResult {
    report.check(
        "credentials",
        id,
        Status::Ok,
        format!("the token service of the {environment} environment accepted client id {client_id:?}"),
    )
}

async fn check_tenant(report: &mut Report, client: &Client, tenant: &Tenant, client_id: &str) -> CliResult {
    let id = Some(tenant.id());
    let environment = client.config().environment().name();
    let before = client.stats();
    let probes = probes();
    // The first read fetches the token, so it checks the credentials and the app key too.
    let Some(((first_module, first_op), rest)) = probes.split_first() else { return Ok(()) };
    let first = probe(tenant, first_op).await;
    if let Err(e) = &first {
        if e.code() == ErrorCode::Authentication {
            let from_token_service = e.url().is_some_and(|u| u.starts_with(client.config().token_url()));
            if from_token_service {
                report.check(
                    "credentials",
                    id,
                    Status::Refused,
                    format!(
                        "the token service of the {environment} environment refused client id {client_id:?}. \
                         Client ids and secrets are issued per environment: integration credentials do not work \
                         in production, nor production ones in integration. Check that the environment is the \
                         one the credentials were issued for, that the secret was copied whole, and that the \
                         tenant has not disconnected the app. ({})",
                        one_line(e)
                    ),
                )?;
                report.check("app key", id, Status::Warning, "not checked: no token to call the API with".into())?;
            } else {
                credentials_accepted(report, id, environment, client_id)?;
                if e.message().contains("refused the app key") {
                    report.check("app key", id, Status::Refused, app_key_advice(e))?;
                } else {
                    // A fresh token refused too: the credentials are another tenant's.
                    report.check(
                        "credentials",
                        id,
                        Status::Refused,
                        format!(
                            "the API refused the token the credentials got, also a fresh one: client id \
                             {client_id:?} may belong to another tenant than {}. ({})",
                            tenant.id(),
                            detail(e)
                        ),
                    )?;
                }
            }
            return Ok(());
        }
        if !matches!(e.code(), ErrorCode::PermissionDenied | ErrorCode::NotFound | ErrorCode::BadRequest) {
            return report.check(
                "credentials",
                id,
                Status::Failed,
                format!("could not check the credentials: {}", one_line(e)),
            );
        }
    }
    credentials_accepted(report, id, environment, client_id)?;
    report.check("app key", id, Status::Ok, "the API accepted the app key".into())?;

    let mut results: Vec<(&str, servicetitan::Result<()>)> = vec![(first_module, first)];
    let others: Vec<(&str, servicetitan::Result<()>)> = futures::stream::iter(rest.iter())
        .map(|(module, op)| async move { (*module, probe(tenant, op).await) })
        .buffer_unordered(6)
        .collect()
        .await;
    results.extend(others);
    results.sort_by_key(|(module, _)| *module);
    let refused: Vec<&str> = results
        .iter()
        .filter(|(_, r)| matches!(r, Err(e) if e.code() == ErrorCode::PermissionDenied))
        .map(|(m, _)| *m)
        .collect();
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(m, r)| match r {
            Err(e)
                if !matches!(e.code(), ErrorCode::PermissionDenied | ErrorCode::NotFound | ErrorCode::BadRequest) =>
            {
                Some(format!("{m} ({})", e.code()))
            }
            _ => None,
        })
        .collect();
    let allowed = results.len() - refused.len() - failed.len();
    if refused.is_empty() {
        report.check("permissions", id, Status::Ok, format!("the app may use all {} APIs checked", results.len()))?;
    } else {
        report.check(
            "permissions",
            id,
            Status::Refused,
            format!(
                "{} of {} APIs refused the app (403): {}. The tenant has not granted the app these scopes. In the \
                 developer portal, add the scopes to the app; then the tenant's admin must accept the new app \
                 version (Settings > Integrations > API Application Access): scopes change only after the tenant \
                 accepts it. The app may use: {}",
                refused.len(),
                results.len(),
                refused.join(", "),
                if allowed == 0 {
                    "none".to_string()
                } else {
                    results
                        .iter()
                        .filter(|(m, r)| {
                            r.is_ok() || (!refused.contains(m) && !failed.iter().any(|f| f.starts_with(*m)))
                        })
                        .map(|(m, _)| *m)
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        )?;
    }
    if !failed.is_empty() {
        report.check(
            "permissions",
            id,
            Status::Failed,
            format!("could not check {}: the API failed to answer", failed.join(", ")),
        )?;
    }
    check_budget(report, client, tenant, before)
}

fn app_key_advice(e: &servicetitan::Error) -> String {
    format!(
        "the API refused the request although the token service accepted the credentials: the app key \
         (ST_APP_KEY, app_key) is wrong, or belongs to another app than these credentials. The app key is the \
         same in both environments; find it in the developer portal under the app's details. ({})",
        detail(e)
    )
}

/// What is known of the tenant's rate-limit budget: the limit this client keeps to, and
/// whether the server answered 429 during the checks (another program using the same app and
/// tenant, or a lower limit than configured).
fn check_budget(report: &mut Report, client: &Client, tenant: &Tenant, before: servicetitan::Stats) -> CliResult {
    let id = Some(tenant.id());
    let after = client.stats();
    let calls = after.requests.saturating_sub(before.requests);
    let throttled = after.rate_limited.saturating_sub(before.rate_limited);
    let Some(quota) = client.config().rate_limit() else {
        return report.check(
            "rate limit",
            id,
            Status::Warning,
            format!("this client's rate limit is off; {calls} calls during the checks, {throttled} answered 429"),
        );
    };
    let limit = format!("{} calls per {} ms per app and tenant", quota.calls, quota.period.as_millis());
    if throttled == 0 {
        report.check(
            "rate limit",
            id,
            Status::Ok,
            format!(
                "{calls} calls during the checks, none answered 429 (too many requests): the budget of {limit} \
                 has room. ServiceTitan sends no remaining-calls count; a 429 is the only sign of an exhausted budget"
            ),
        )
    } else {
        report.check(
            "rate limit",
            id,
            Status::Warning,
            format!(
                "{throttled} of {calls} calls during the checks answered 429 (too many requests) although this \
                 client keeps to {limit}: another program is using this app's budget for the tenant, or the \
                 tenant's limit is lower. Run syncs through one client, or share the budget with ST_REDIS_URL"
            ),
        )
    }
}

/// What the server said, short: its title (or status) and the trace id support asks for.
fn detail(e: &servicetitan::Error) -> String {
    let said = match (e.title(), e.status()) {
        (Some(title), Some(status)) => format!("HTTP {status}: {title}"),
        (None, Some(status)) => format!("HTTP {status}"),
        _ => one_line(e),
    };
    match e.trace_id() {
        Some(trace) => format!("{said}; traceId {trace}"),
        None => said,
    }
}

fn one_line(e: &servicetitan::Error) -> String {
    e.to_string().replace(['\n', '\r'], " ")
}
