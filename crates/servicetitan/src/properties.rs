//! Property tests of every parser that reads bytes from a server or a path from a caller: on any
//! input they return a value within their documented bounds or a clean error, and never panic.
//!
//! Case counts are bounded so the whole module runs in a few seconds; `PROPTEST_CASES=100000`
//! runs longer. Failures found are kept in `proptest-regressions/` and replayed first.

use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use reqwest::header::{HeaderMap, HeaderValue, LOCATION};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::auth::{
    parse_token_answer, token_lifetime, BadTokenAnswer, CachedToken, MAX_TOKEN_LIFETIME, MIN_TOKEN_LIFETIME,
};
use crate::config::Secret;
use crate::error::{excerpt, ErrorCode, MAX_SERVER_TEXT_CHARS};
use crate::request::{redirect_error, server_text, Problem, Redirected, MAX_FIELD_ERRORS, MAX_FIELD_ERRORS_CHARS};
use crate::retry::{parse_retry_after, seconds_in_title, MAX_ANNOUNCED_WAIT};
use crate::route;

fn config(cases: u32) -> ProptestConfig {
    // PROPTEST_CASES, when set, overrides the bounded default.
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

/// Any JSON value, nested a few levels, with strings that may be long or odd.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::String),
        (0usize..600).prop_map(|n| Value::String("x\r\n\u{1b}".repeat(n))),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Text a server might put where a number of seconds goes.
fn seconds_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        any::<f64>().prop_map(|f| format!("{f:e}")),
        "[0-9]{1,40}(\\.[0-9]{0,30})?([eE][+-]?[0-9]{1,5})?",
        "[-+]?(inf|infinity|nan|NaN|Infinity)",
        ".{0,30}",
    ]
}

/// An HTTP date, well formed or nearly so.
fn http_date() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..253_402_300_799).prop_map(|s| httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(s))),
        "(Mon|Tue|Wed|Thu|Fri|Sat|Sun|Xyz), [0-9]{1,3} (Jan|Feb|Dec|Foo) [0-9]{1,6} [0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2} (GMT|UTC)",
        "(Monday|Sunday), [0-9]{2}-(Jan|Dec)-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT",
        "(Mon|Sun) (Jan|Dec) [ 0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]{4}",
    ]
}

fn any_time() -> impl Strategy<Value = SystemTime> {
    prop_oneof![
        (0u64..=u32::MAX as u64 * 8).prop_map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s)),
        (0u64..=i64::MAX as u64 / 2).prop_map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s)),
        (0u64..=u32::MAX as u64).prop_map(|s| SystemTime::UNIX_EPOCH - Duration::from_secs(s)),
    ]
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn retry_after_is_within_bounds(value in prop_oneof![seconds_text(), http_date(), any::<String>()], now in any_time()) {
        if let Some(wait) = parse_retry_after(&value, now) {
            prop_assert!(wait <= MAX_ANNOUNCED_WAIT);
        }
    }

    #[test]
    fn retry_after_reads_whole_seconds(secs in 0u64..=86_400, pad in " {0,3}", now in any_time()) {
        let value = format!("{pad}{secs}{pad}");
        prop_assert_eq!(parse_retry_after(&value, now), Some(Duration::from_secs(secs)));
    }

    #[test]
    fn retry_after_dates_are_relative_to_now(ahead in 0u64..=86_400, base in 0u64..=200_000_000_000) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(base);
        let value = httpdate::fmt_http_date(now + Duration::from_secs(ahead));
        prop_assert_eq!(parse_retry_after(&value, now), Some(Duration::from_secs(ahead)));
    }

    #[test]
    fn title_seconds_are_within_bounds(
        title in prop_oneof![
            any::<String>(),
            (".{0,20}", seconds_text(), "(seconds?|sec\\.|s|s\\.|SECONDS|Second)", ".{0,20}")
                .prop_map(|(a, n, unit, b)| format!("{a} {n} {unit} {b}")),
        ]
    ) {
        if let Some(wait) = seconds_in_title(&title) {
            prop_assert!(wait <= MAX_ANNOUNCED_WAIT);
        }
    }

    #[test]
    fn title_seconds_are_found_in_the_usual_sentence(secs in 0u32..=86_400) {
        let title = format!("Rate limit is exceeded. Try again in {secs} seconds.");
        prop_assert_eq!(seconds_in_title(&title), Some(Duration::from_secs(secs.into())));
    }
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn problems_are_bounded_whatever_the_bytes(body in prop::collection::vec(any::<u8>(), 0..4096)) {
        check_problem(&Problem::parse(&body))?;
    }

    #[test]
    fn token_answers_give_a_sendable_token_within_bounds(body in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        (any::<String>(), prop::option::of(json_value()), prop::option::of(seconds_text()))
            .prop_map(|(token, expires, text)| {
                let mut answer = json!({"access_token": token, "token_type": "Bearer"});
                if let Some(e) = expires { answer["expires_in"] = e; }
                if let Some(t) = text { answer["expires_in"] = Value::String(t); }
                answer.to_string().into_bytes()
            }),
        (any::<String>(), seconds_text()).prop_map(|(token, n)| {
            format!(r#"{{"access_token":{},"expires_in":{n}}}"#, Value::String(token)).into_bytes()
        }),
    ]) {
        match parse_token_answer(&body) {
            Ok((token, lifetime)) => {
                prop_assert!(!token.is_empty());
                let sendable = HeaderValue::from_str(&format!("Bearer {token}")).is_ok();
                prop_assert!(sendable);
                prop_assert!((MIN_TOKEN_LIFETIME..=MAX_TOKEN_LIFETIME).contains(&lifetime));
            }
            Err(BadTokenAnswer::NotJson(why)) => prop_assert!(why.chars().count() <= MAX_SERVER_TEXT_CHARS + 1),
            Err(BadTokenAnswer::Unusable(_)) => {}
        }
    }

    #[test]
    fn token_lifetimes_and_schedules_are_within_bounds(
        expires in prop::option::of(json_value()),
        secs in any::<f64>(),
        issued_at in any_time(),
        lifetime_nanos in any::<u64>(),
        lifetime_secs in any::<u64>(),
    ) {
        for value in [expires, serde_json::Number::from_f64(secs).map(Value::Number)].into_iter().flatten() {
            let lifetime = token_lifetime(Some(&value));
            prop_assert!((MIN_TOKEN_LIFETIME..=MAX_TOKEN_LIFETIME).contains(&lifetime));
        }
        for lifetime in [Duration::from_nanos(lifetime_nanos), Duration::from_secs(lifetime_secs), Duration::MAX] {
            let token = CachedToken::schedule(Secret::new("t"), issued_at, lifetime);
            prop_assert!(token.refresh_at <= token.stale_at && token.stale_at <= token.expires_at);
            prop_assert!(token.expires_at <= issued_at + MAX_TOKEN_LIFETIME);
        }
    }

    #[test]
    fn redirects_never_name_more_than_scheme_and_host(
        location in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            ("(https?|ftp|javascript|[a-z]{1,8})", "[a-zA-Z0-9._-]{0,20}", prop::option::of(0u16..), "[^#?]{0,30}")
                .prop_map(|(scheme, host, port, path)| {
                    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                    format!("{scheme}://user:PW-MARK@{host}{port}/PATH-MARK{path}?q=QUERY-MARK#FRAG-MARK").into_bytes()
                }),
            "(/|//|\\\\|\\.\\./|)[^ ]{0,40}PATH-MARK".prop_map(String::into_bytes),
        ],
        status in 300u16..400,
    ) {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_bytes(&location) {
            headers.insert(LOCATION, value);
        }
        let status = StatusCode::from_u16(status).unwrap();
        for who in [Redirected::Api, Redirected::TokenService] {
            let e = redirect_error(status, &headers, "https://api.example.com/crm/v2/tenant/1/x", who);
            prop_assert_eq!(e.code(), ErrorCode::Redirect);
            let text = e.to_string();
            prop_assert!(!text.contains("redirect to null"), "{}", text);
            for mark in ["PW-MARK", "PATH-MARK", "QUERY-MARK", "FRAG-MARK"] {
                prop_assert!(!text.contains(mark), "{} in {}", mark, text);
            }
        }
    }

}

proptest! {
    // Fewer cases: each is a large value.
    #![proptest_config(config(150))]

    #[test]
    fn server_text_is_short_and_on_one_line(text in prop_oneof![
        any::<String>(),
        prop::collection::vec(prop_oneof![any::<char>(), Just('\r'), Just('\n'), Just('\u{1b}')], 0..1500)
            .prop_map(String::from_iter),
    ]) {
        let shown = server_text(&text);
        prop_assert!(shown.chars().count() <= MAX_SERVER_TEXT_CHARS + 1);
        prop_assert!(!shown.chars().any(char::is_control));
        prop_assert!(excerpt(&text).chars().count() <= MAX_SERVER_TEXT_CHARS + 1);
    }

    #[test]
    fn problems_are_bounded_whatever_the_json(
        value in json_value(),
        title in prop::option::of(json_value()),
        errors in prop::option::of(json_value()),
        trace in prop::option::of(json_value()),
    ) {
        let mut body = match value { Value::Object(map) => map, other => [("x".to_owned(), other)].into_iter().collect() };
        for (key, v) in [("title", title), ("errors", errors), ("traceId", trace)] {
            if let Some(v) = v {
                body.insert(key.to_owned(), v);
            }
        }
        check_problem(&Problem::parse(Value::Object(body).to_string().as_bytes()))?;
    }
}

fn check_problem(p: &Problem) -> Result<(), TestCaseError> {
    for text in p.title.iter().chain(&p.trace_id) {
        prop_assert!(text.chars().count() <= MAX_SERVER_TEXT_CHARS + 1);
        prop_assert!(!text.chars().any(char::is_control));
    }
    prop_assert!(p.errors.len() <= MAX_FIELD_ERRORS + 1);
    let shown: usize =
        p.errors.iter().map(|(k, v)| k.chars().count() + v.iter().map(|m| m.chars().count()).sum::<usize>()).sum();
    // The budget, plus the one field that may straddle it, plus the "… more fields" note.
    prop_assert!(shown <= MAX_FIELD_ERRORS_CHARS + MAX_SERVER_TEXT_CHARS + 100, "{}", shown);
    for (field, messages) in &p.errors {
        prop_assert!(!field.chars().any(char::is_control));
        prop_assert!(messages.iter().all(|m| !m.chars().any(char::is_control)));
    }
    Ok(())
}

/// A path segment a caller (or an attacker choosing a path) might write.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "crm", "v2", "v10", "v", "vx", "tenant", "{tenant}", "42", "43", "-1", "export", "customers", "..", ".",
            "...", "%2e", "%2E%2e", "%2f", "%5C", "%", "%00", "%zz", "", "a?b", "#x", "\\", "http:", "https:", "@",
            ":", ";", "ｃｒｍ", "\u{2215}", "\u{ff0e}\u{ff0e}", "%c0%ae", "~", "{", "}", "{{tenant}}", "tenant{tenant}",
        ])
        .prop_map(str::to_owned),
        1 => ".{0,12}",
        1 => "[a-z0-9.%-]{0,8}",
    ]
}

/// The path of a resolved URL, as reqwest will send it, must stay under the tenant.
fn stays_in_the_tenant(url: &str, api: &str, tenant: i64) -> Result<(), TestCaseError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| TestCaseError::fail(format!("{url}: {e}")))?;
    prop_assert_eq!(parsed.origin(), reqwest::Url::parse(api).unwrap().origin(), "{}", url);
    prop_assert!(parsed.query().is_none() && parsed.fragment().is_none(), "{}", url);
    let segments: Vec<&str> = parsed.path_segments().map(Iterator::collect).unwrap_or_default();
    prop_assert!(segments.len() >= 5, "{}", url);
    prop_assert!(
        segments[1].starts_with('v') && segments[2] == "tenant" && segments[3] == tenant.to_string(),
        "{}",
        url
    );
    prop_assert!(segments.iter().all(|s| !s.is_empty() && *s != "." && *s != ".."), "{}", url);
    Ok(())
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn routes_stay_in_the_tenant_or_are_refused(
        path in prop_oneof![
            any::<String>(),
            (any::<bool>(), prop::collection::vec(segment(), 1..8), any::<bool>()).prop_map(|(lead, parts, trail)| {
                format!("{}{}{}", if lead { "/" } else { "" }, parts.join("/"), if trail { "/" } else { "" })
            }),
        ],
        tenant in prop_oneof![Just(42i64), 1i64..=i64::MAX],
        export in any::<bool>(),
    ) {
        let api = "https://api.example.com";
        match route::resolve(api, tenant, &path, export) {
            Ok(route) => {
                stays_in_the_tenant(&route.url, api, tenant)?;
                let templated = route.template.contains("/tenant/{tenant}/");
                prop_assert!(templated, "{}", route.template);
            }
            Err(e) => {
                prop_assert_eq!(e.code(), ErrorCode::Configuration);
                prop_assert_eq!(e.argument(), Some("path"));
            }
        }
    }
}
