//! Configuration: every setting from an argument, else an environment variable, else a default;
//! bad input refused with a `configuration` error naming it, before any request.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use servicetitan::{Client, Environment, ErrorCode, TenantCredentials};

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Send + Sync + 'static {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |name| map.get(name).cloned()
}

fn refused(result: servicetitan::Result<Client>, argument: &str) {
    let e = result.expect_err("refused");
    assert_eq!(e.code(), ErrorCode::Configuration, "{e}");
    assert_eq!(e.argument(), Some(argument), "{e}");
    assert!(e.to_string().contains(argument), "{e}");
}

#[test]
fn bad_client_settings_are_refused_naming_the_argument() {
    let none = || Client::builder().env_lookup(|_| None);
    refused(none().build(), "app_key");
    refused(none().app_key("  ").build(), "app_key");
    refused(none().app_key("ak1.x").environment_name("staging").build(), "environment");
    refused(
        Client::builder().env_lookup(env(&[("ST_APP_KEY", "ak1.x"), ("ST_ENVIRONMENT", "staging")])).build(),
        "ST_ENVIRONMENT",
    );
    refused(
        none().app_key("ak1.x").auth_url("http://auth.example.com").api_url("https://api.example.com").build(),
        "auth_url",
    );
    refused(none().app_key("ak1.x").auth_url("https://auth.example.com").build(), "api_url");
    refused(none().app_key("ak1.x").auth_url("ftp://x").api_url("https://api.example.com").build(), "auth_url");
    refused(none().app_key("ak1.x").max_attempts(0).build(), "max_attempts");
    refused(
        Client::builder().env_lookup(env(&[("ST_APP_KEY", "ak1.x"), ("ST_MAX_ATTEMPTS", "many")])).build(),
        "ST_MAX_ATTEMPTS",
    );
    refused(none().app_key("ak1.x").add_root_certificate_pem("not a certificate").build(), "root_certificate");
    // Durations that would overflow deadline arithmetic are refused, not a panic later.
    refused(none().app_key("ak1.x").timeout(Duration::from_secs(u64::MAX / 2)).build(), "timeout");
    refused(none().app_key("ak1.x").timeout(Duration::ZERO).build(), "timeout");
    refused(none().app_key("ak1.x").rate_limit(60, Duration::from_secs(u64::MAX)).build(), "rate_limit_period");
    refused(none().app_key("ak1.x").max_retry_after(Duration::MAX).build(), "max_retry_after");
    refused(
        Client::builder().env_lookup(env(&[("ST_APP_KEY", "ak1.x"), ("ST_TIMEOUT_SECS", "1e30")])).build(),
        "ST_TIMEOUT_SECS",
    );
    refused(
        Client::builder()
            .env_lookup(env(&[("ST_APP_KEY", "ak1.x"), ("ST_RATE_LIMIT_MARGIN_MS", "18446744073709551615")]))
            .build(),
        "ST_RATE_LIMIT_MARGIN_MS",
    );
}

#[test]
fn settings_come_from_arguments_then_environment_variables_then_defaults() {
    let client = Client::builder().app_key("ak1.x").env_lookup(|_| None).build().unwrap();
    let c = client.config();
    assert_eq!(c.environment(), &Environment::Production);
    assert_eq!(c.token_url(), "https://auth.servicetitan.io/connect/token");
    assert_eq!(c.api_url(), "https://api.servicetitan.io");
    let limit = c.rate_limit().unwrap();
    assert_eq!((limit.calls, limit.period, limit.margin), (60, Duration::from_secs(1), Duration::from_millis(100)));
    let report = c.report_rate_limit().unwrap();
    assert_eq!((report.calls, report.period), (5, Duration::from_secs(60)));
    assert_eq!(c.retry().max_attempts, 10);
    assert_eq!(c.timeouts().total, Duration::from_secs(300));
    assert!(c.user_agent().starts_with("servicetitan-rust/"));

    let vars = env(&[
        ("ST_APP_KEY", "ak1.from-env"),
        ("ST_ENVIRONMENT", "integration"),
        ("ST_RATE_LIMIT_PER_SECOND", "30"),
        ("ST_RATE_LIMIT_MARGIN_MS", "50"),
        ("ST_REPORT_RATE_LIMIT_PER_MINUTE", "1"),
        ("ST_MAX_ATTEMPTS", "3"),
        ("ST_TIMEOUT_SECS", "12.5"),
        ("ST_CONNECT_TIMEOUT_SECS", "2"),
        ("ST_ATTEMPT_TIMEOUT_SECS", "4"),
    ]);
    let client = Client::builder().env_lookup(vars).rate_limit(20, Duration::from_secs(1)).build().unwrap();
    let c = client.config();
    assert_eq!(c.environment(), &Environment::Integration);
    assert_eq!(c.token_url(), "https://auth-integration.servicetitan.io/connect/token");
    assert_eq!(c.rate_limit().unwrap().calls, 20, "the argument wins");
    assert_eq!(c.rate_limit().unwrap().margin, Duration::from_millis(50));
    assert_eq!(c.report_rate_limit().unwrap().calls, 1);
    assert_eq!(c.retry().max_attempts, 3);
    assert_eq!(c.timeouts().total, Duration::from_millis(12_500));
    assert_eq!(c.timeouts().connect, Duration::from_secs(2));
    assert_eq!(c.timeouts().attempt, Duration::from_secs(4));

    let off = Client::builder()
        .env_lookup(env(&[("ST_APP_KEY", "ak1.x"), ("ST_RATE_LIMIT_PER_SECOND", "0")]))
        .build()
        .unwrap();
    assert!(off.config().rate_limit().is_none());
    assert!(!format!("{off:?}").contains("ak1.x"), "the app key is redacted");
    assert_eq!(off.rate_limit_margin(), None);

    // The margin adapts unless fixed, by argument or variable; it starts at the configured one.
    let adaptive = Client::builder().env_lookup(env(&[("ST_APP_KEY", "ak1.x")])).build().unwrap();
    assert!(adaptive.config().rate_limit_margin_adaptive());
    assert_eq!(adaptive.rate_limit_margin(), Some(Duration::from_millis(100)));
    let fixed = |vars: &[(&str, &str)], arg: Option<bool>| {
        let mut b = Client::builder().env_lookup(env(vars));
        if let Some(on) = arg {
            b = b.rate_limit_margin_adaptive(on);
        }
        b.build().map(|c| c.config().rate_limit_margin_adaptive())
    };
    assert!(!fixed(&[("ST_APP_KEY", "ak1.x"), ("ST_RATE_LIMIT_MARGIN_ADAPTIVE", "0")], None).unwrap());
    assert!(fixed(&[("ST_APP_KEY", "ak1.x"), ("ST_RATE_LIMIT_MARGIN_ADAPTIVE", "off")], Some(true)).unwrap());
    assert!(!fixed(&[("ST_APP_KEY", "ak1.x")], Some(false)).unwrap());
    let e = fixed(&[("ST_APP_KEY", "ak1.x"), ("ST_RATE_LIMIT_MARGIN_ADAPTIVE", "sometimes")], None).unwrap_err();
    assert_eq!(e.argument(), Some("ST_RATE_LIMIT_MARGIN_ADAPTIVE"));
    assert!(e.to_string().contains("\"sometimes\" is not one of"), "{e}");
}

#[test]
fn half_of_a_pair_takes_the_other_half_from_its_variable_then_its_default() {
    let with = |pairs: &[(&str, &str)]| {
        let mut all = vec![("ST_APP_KEY", "ak1.x")];
        all.extend_from_slice(pairs);
        Client::builder().env_lookup(env(&all))
    };
    let c = with(&[("ST_RATE_LIMIT_PERIOD_MS", "2000")]).rate_limit_calls(30).build().unwrap();
    let limit = c.config().rate_limit().unwrap();
    assert_eq!((limit.calls, limit.period), (30, Duration::from_secs(2)));
    let c = with(&[("ST_RATE_LIMIT_PER_SECOND", "7")]).rate_limit_period(Duration::from_secs(3)).build().unwrap();
    let limit = c.config().rate_limit().unwrap();
    assert_eq!((limit.calls, limit.period), (7, Duration::from_secs(3)));
    let c = with(&[]).rate_limit_calls(30).report_rate_limit_calls(2).build().unwrap();
    assert_eq!(c.config().rate_limit().unwrap().period, servicetitan::settings::DEFAULT_RATE_LIMIT_PERIOD);
    assert_eq!(
        c.config().report_rate_limit().unwrap().period,
        servicetitan::settings::DEFAULT_REPORT_RATE_LIMIT_PERIOD
    );

    let c = with(&[("ST_BACKOFF_MAX_MS", "900")]).backoff_base(Duration::from_millis(5)).build().unwrap();
    assert_eq!(
        (c.config().retry().base_delay, c.config().retry().max_delay),
        (Duration::from_millis(5), Duration::from_millis(900))
    );
    let c = with(&[]).backoff_max(Duration::from_secs(1)).build().unwrap();
    assert_eq!(c.config().retry().base_delay, servicetitan::settings::DEFAULT_BACKOFF_BASE);
    // The half from the environment is checked under its variable's name.
    refused(with(&[("ST_RATE_LIMIT_PERIOD_MS", "0")]).rate_limit_calls(5).build(), "ST_RATE_LIMIT_PERIOD_MS");
    refused(with(&[("ST_BACKOFF_MAX_MS", "soon")]).backoff_base(Duration::from_millis(5)).build(), "ST_BACKOFF_MAX_MS");
    // The defaults are the schema's.
    let c = with(&[]).build().unwrap();
    assert_eq!(*c.config().retry(), servicetitan::retry::RetryPolicy::default());
    assert_eq!(c.config().timeouts().total, servicetitan::settings::DEFAULT_TIMEOUT);
}

#[test]
fn a_known_environment_and_custom_urls_are_never_mixed() {
    let none = || Client::builder().app_key("ak1.x").env_lookup(|_| None);
    let (auth, api) = ("https://auth.example.com", "https://api.example.com");
    // Both as arguments: refused, whichever way the environment is named.
    for e in [
        none().environment(Environment::Integration).auth_url(auth).api_url(api).build(),
        none().environment_name("production").auth_url(auth).api_url(api).build(),
        none().environment_name("integration").api_url(api).build(),
    ] {
        let e = e.expect_err("a name and URLs together");
        assert_eq!((e.code(), e.argument()), (ErrorCode::Configuration, Some("environment")), "{e}");
        assert!(e.to_string().contains("not both") && e.to_string().contains("auth_url"), "{e}");
    }
    // An unknown name is reported as such first.
    refused(none().environment_name("staging").auth_url(auth).api_url(api).build(), "environment");
    // Both as environment variables: refused too.
    let vars =
        env(&[("ST_APP_KEY", "ak1.x"), ("ST_ENVIRONMENT", "integration"), ("ST_AUTH_URL", auth), ("ST_API_URL", api)]);
    refused(Client::builder().env_lookup(vars).build(), "ST_ENVIRONMENT");
    // An argument beats an environment variable, whichever kind each is.
    let vars = env(&[("ST_AUTH_URL", auth), ("ST_API_URL", api)]);
    let client = none().env_lookup(vars).environment(Environment::Integration).build().unwrap();
    assert_eq!(client.config().environment(), &Environment::Integration);
    let client = none().env_lookup(env(&[("ST_ENVIRONMENT", "integration")])).auth_url(auth).api_url(api).build();
    assert_eq!(client.unwrap().config().api_url(), api);
    // A custom environment given whole is not a mix.
    let custom = Environment::Custom { auth_url: auth.into(), api_url: api.into() };
    assert_eq!(none().environment(custom.clone()).build().unwrap().config().environment(), &custom);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_and_tenant_from_environment_variables_reach_the_sandbox() {
    let sandbox = start(unlimited()).await;
    let vars = env(&[
        ("ST_APP_KEY", sandbox.app_key()),
        ("ST_AUTH_URL", sandbox.base_url()),
        ("ST_API_URL", sandbox.base_url()),
        ("ST_TENANT_ID", "1002"),
        ("ST_CLIENT_ID", "cid.sandbox.1002"),
        ("ST_CLIENT_SECRET", "cs1.sandbox-secret-1002"),
    ]);
    let client = Client::builder().env_lookup(vars).build().unwrap();
    assert_eq!(client.config().environment().name(), "custom");
    let tenant = client.tenant_from_env().unwrap();
    assert_eq!(tenant.id(), 1002);
    tenant.get("crm/customers").send_json().await.unwrap();

    let e =
        Client::builder().env_lookup(env(&[("ST_APP_KEY", "ak1.x")])).build().unwrap().tenant_from_env().unwrap_err();
    assert_eq!(e.argument(), Some("tenant_id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_before_any_request() {
    let sandbox = start(unlimited()).await;
    let client = builder(&sandbox).build().unwrap();
    for (creds, argument) in [
        (TenantCredentials::new(0, "cid.sandbox.1001", "cs1.sandbox-secret-1001"), "tenant_id"),
        (TenantCredentials::new(-5, "cid.sandbox.1001", "cs1.sandbox-secret-1001"), "tenant_id"),
        (TenantCredentials::new(1001, "", "cs1.sandbox-secret-1001"), "client_id"),
        (TenantCredentials::new(1001, "cid.sandbox.1001", ""), "client_secret"),
    ] {
        assert_eq!(client.try_tenant(creds.clone()).unwrap_err().argument(), Some(argument));
        let tenant = client.tenant(creds);
        let e = tenant.get("crm/customers").send_json().await.unwrap_err();
        assert_eq!((e.code(), e.argument()), (ErrorCode::Configuration, Some(argument)));
        let e = tenant.report("operations", 175).parameter("From", "2026-01-01").records().await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::Configuration);
    }
    let tenant = tenant(&client, &sandbox, 0);
    for path in [
        "crm/../settings/employees",
        "/crm/v2/tenant/1002/customers",
        "crm/v2/tenant/1002/customers",
        "https://evil.example/crm/v2/tenant/1001/customers",
        "//evil.example/crm/customers",
        "crm//customers",
        "crm/customers?active=Any",
        "",
    ] {
        let e = tenant.get(path).send_json().await.unwrap_err();
        assert_eq!((e.code(), e.argument()), (ErrorCode::Configuration, Some("path")), "{path:?}: {e}");
        let e = tenant.export::<serde_json::Value>(path).into_stream().try_next_err().await;
        assert_eq!(e.code(), ErrorCode::Configuration, "{path:?}");
    }
    assert_eq!(total_requests(&sandbox), 0, "a request went out: {}", sandbox.stats());
    assert_eq!(client.stats().requests + client.stats().token_fetches, 0);
}

trait FirstError {
    async fn try_next_err(self) -> servicetitan::Error;
}

impl<S: futures::Stream<Item = servicetitan::Result<serde_json::Value>> + Unpin> FirstError for S {
    async fn try_next_err(mut self) -> servicetitan::Error {
        use futures::StreamExt;
        self.next().await.expect("an item").expect_err("an error")
    }
}

/// A secret planted in URLs: no error, `Debug` output or log line may contain it.
const SECRET: &str = "S3cr3tPw";

fn hides_secret(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} shows the secret: {text}");
}

fn refused_hiding_secret(result: servicetitan::Result<Client>, argument: &str, url: &str) {
    let e = result.expect_err(url);
    assert_eq!(e.code(), ErrorCode::Configuration, "{url}: {e}");
    assert_eq!(e.argument(), Some(argument), "{url}: {e}");
    hides_secret(url, &format!("{e} {e:?}"));
}

/// URLs the client refuses as `auth_url`/`api_url`, each with the secret somewhere.
const BAD_BASE_URLS: [&str; 13] = [
    "http://user:S3cr3tPw@auth.example.com",
    "ftp://user:S3cr3tPw@auth.example.com",
    "https://user:S3cr3tPw@auth.example.com",
    "https://S3cr3tPw@auth.example.com",
    "http://user:S3cr3tPw@127.0.0.1:9",
    "https://auth.example.com/?token=S3cr3tPw",
    "https://auth.example.com/?Client_Secret=S3cr3tPw&x=1",
    "https://auth.example.com/#access_token=S3cr3tPw",
    "https://user:S3cr3tPw@auth.example.com:99999",
    "https://user:S3cr3tPw@bad host.example.com",
    "https://user:S3cr3tPw/x@auth.example.com",
    "user:S3cr3tPw@auth.example.com",
    "S3cr3tPw",
];

#[test]
fn secrets_in_auth_and_api_urls_are_never_echoed() {
    let none = || Client::builder().env_lookup(|_| None).app_key("ak1.x");
    for url in BAD_BASE_URLS {
        refused_hiding_secret(none().auth_url(url).api_url("https://api.example.com").build(), "auth_url", url);
        refused_hiding_secret(none().auth_url("https://auth.example.com").api_url(url).build(), "api_url", url);
        let vars = env(&[("ST_APP_KEY", "ak1.x"), ("ST_AUTH_URL", url), ("ST_API_URL", "https://api.example.com")]);
        let e = Client::builder().env_lookup(vars).build().expect_err(url);
        assert_eq!(e.code(), ErrorCode::Configuration);
        hides_secret(url, &format!("{e} {e:?}"));

        let builder = none().auth_url(url).api_url(url);
        hides_secret("the builder's Debug", &format!("{builder:?}"));
        let environment = Environment::Custom { auth_url: url.into(), api_url: url.into() };
        hides_secret("Environment", &format!("{environment} {environment:?}"));
    }
    // Still useful: the host and the problem are named.
    let e = none().auth_url("http://user:S3cr3tPw@auth.example.com").api_url("https://a.example").build().unwrap_err();
    assert!(e.to_string().contains("http://***:***@auth.example.com") && e.to_string().contains("loopback"), "{e}");
    let e = none().auth_url("ftp://user:S3cr3tPw@auth.example.com").api_url("https://a.example").build().unwrap_err();
    assert!(e.to_string().contains("ftp://***:***@auth.example.com") && e.to_string().contains("\"ftp\""), "{e}");
}

#[test]
fn secrets_in_redis_urls_are_never_echoed() {
    let none = || Client::builder().env_lookup(|_| None).app_key("ak1.x");
    for url in [
        "nope://:S3cr3tPw@cache.example.com",
        "redis://:S3cr3tPw@cache.example.com:99999",
        "rediss://user:S3cr3tPw@cache.example.com#insecure",
        "redis://:S3cr3tPw@0.0.0.0",
        "redis://:S3cr3tPw@cache.example.com/not-a-db",
        "redis+unix:///run/redis.sock?pass=S3cr3tPw&db=x",
        "unix:///run/redis.sock?PASS=S3cr3tPw&db=x",
        "redis:S3cr3tPw@cache.example.com",
        "redis://u:S3cr3tPw/x@cache.example.com",
        "S3cr3tPw",
    ] {
        refused_hiding_secret(none().redis_url(url).build(), "redis_url", url);
        let e = Client::builder().env_lookup(env(&[("ST_APP_KEY", "ak1.x"), ("ST_REDIS_URL", url)])).build();
        refused_hiding_secret(e, "redis_url", url);
    }
    for (url, shown) in [
        ("redis://:S3cr3tPw@cache.example.com/0", "redis://:***@cache.example.com/0"),
        ("redis://user:S3cr3tPw@cache.example.com", "redis://***:***@cache.example.com"),
        ("redis+unix:///run/redis.sock?pass=S3cr3tPw", "redis+unix:///run/redis.sock?pass=***"),
    ] {
        let client = none().redis_url(url).build().unwrap();
        assert_eq!(client.config().redis().unwrap().redacted_url(), shown);
        hides_secret(url, &format!("{client:?} {:?}", client.config()));
    }
}

/// Log lines, captured from the engine's `tracing` events while a test runs on this thread.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn an_unreachable_redis_is_named_without_its_secrets_in_errors_and_logs() {
    use tracing_subscriber::util::SubscriberInitExt;
    let sandbox = start(unlimited()).await;
    let logs = Captured::default();
    let writer = logs.clone();
    let _guard = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish()
        .set_default();
    for (url, shown) in [
        ("redis://user:S3cr3tPw@127.0.0.1:1/0", "redis://***:***@127.0.0.1:1/0"),
        ("redis+unix:///nonexistent/redis.sock?pass=S3cr3tPw", "redis+unix:///nonexistent/redis.sock?pass=***"),
    ] {
        let client = builder(&sandbox).redis_url(url).redis_wait(Duration::from_millis(300)).build().unwrap();
        let e = tenant(&client, &sandbox, 0).get("crm/customers").send_json().await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::Connection, "{e}");
        assert!(e.to_string().contains(&format!("Redis at {shown}")), "{e}");
        hides_secret(url, &format!("{e} {e:?}"));
    }
    let logs = logs.text();
    assert!(logs.contains("Redis failed; retrying"), "the retries are logged: {logs}");
    hides_secret("the logs", &logs);
    assert_eq!(total_requests(&sandbox), 0);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, failure_persistence: None, ..Default::default() })]

    /// Whatever the form, the two halves of a secret never both survive `redact_url`, and
    /// neither does either half when it is a password, a user or a secret parameter's value.
    #[test]
    fn redact_url_never_shows_a_secret(
        a in "Q[a-z0-9]{5,9}",
        b in "W[a-z0-9]{5,9}",
        glue in proptest::sample::select(vec!["", "-", ".", "@", "/", ":", "?", "#", "%", "%2F", "+"]),
        scheme in proptest::sample::select(vec!["https", "http", "redis", "rediss", "redis+unix", "unix", "ftp"]),
        name in proptest::sample::select(vec!["pass", "Password", "client_secret", "access_token", "apiKey", "AUTH", "x-Auth-Token", "user"]),
        form in 0usize..9,
    ) {
        let secret = format!("{a}{glue}{b}");
        let plain = format!("{a}-{b}");
        let url = match form {
            0 => format!("{scheme}://bob:{secret}@cache.example.com:6379/0"),
            1 => format!("{scheme}://:{secret}@cache.example.com"),
            2 => format!("{scheme}://{secret}@cache.example.com"),
            3 => format!("{scheme}:///run/redis.sock?db=1&{name}={plain}"),
            4 => format!("{scheme}://cache.example.com/?a=1&{name}={plain}#x"),
            5 => format!("{scheme}://cache.example.com/#{name}={plain}"),
            6 => format!("{scheme}://bob:{secret}@cache.example.com:99999"),
            7 => format!("{scheme}://bob:{secret}@bad host"),
            _ => format!("bob:{secret}@cache.example.com"),
        };
        let shown = servicetitan::config::redact_url(&url);
        proptest::prop_assert!(!shown.contains(&a) && !shown.contains(&b), "{} -> {}", url, shown);
    }
}
