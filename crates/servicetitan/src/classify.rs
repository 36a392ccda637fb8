//! One rule for every answer: what a response, a failed connection or a Redis error means, and what to do next, whoever sent the request (an API call, a token request, a Redis command).
//!
//! [`classify`] is pure: it reads what was sent and what came back and returns an [`Outcome`].
//! The request path, the token fetch and the Redis backend act on that outcome (and word
//! their errors for their own reader); none of them decides for itself what is transient.

use std::error::Error as StdError;
use std::fmt;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

use crate::error::ErrorCode;
use crate::request::Problem;
use crate::retry::{parse_retry_after, seconds_in_title, RetryPolicy};

/// What was sent, as far as deciding what to do next needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sent {
    /// An API call. `resendable`: sending it twice does no harm (an idempotent method, or a
    /// call marked `safe_to_retry`).
    Api { resendable: bool },
    /// A token request: repeating one only yields another token.
    Token,
    /// A command to Redis (the shared limiter and token store).
    Redis,
}

/// What came back.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Answer<'a> {
    /// A response. The body of a 3xx is not read, and is not needed.
    Response { status: StatusCode, headers: &'a HeaderMap, body: &'a [u8] },
    /// No whole response. `delivered`: the request may have reached the server (the
    /// connection was up); a failed connect never did, so even a POST may go again.
    Transport { failure: Failure, delivered: bool },
    /// Redis answered with an error. `transient`: it says to try again (loading, failing
    /// over, busy); otherwise it refuses (wrong password, a command not allowed…).
    RedisError { transient: bool },
}

/// Why a connection failed, as the error message says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The host name did not resolve (the name is wrong, or there is no network): asking
    /// again does not change the answer soon enough to be worth the wait.
    NameNotResolved,
    /// Nothing listens at the address (yet): worth a few more tries.
    Refused,
    /// The connection was reset or closed before the answer was complete.
    Reset,
    /// The TLS handshake failed (an untrusted or wrong certificate, a proxy in the way): the
    /// same certificate is presented again on every try.
    Tls,
    /// No answer within the timeout.
    Timeout,
    /// Any other failure of the connection.
    Other,
}

impl Failure {
    /// The cause, as an error message or a log line says it.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Failure::NameNotResolved => "name not resolved",
            Failure::Refused => "connection refused",
            Failure::Reset => "connection reset or closed early",
            Failure::Tls => "TLS handshake failed",
            Failure::Timeout => "timed out",
            Failure::Other => "connection failed",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// Why an answer is not a success: the wording of errors and log lines hangs on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cause {
    /// A 3xx: never followed.
    Redirect,
    /// A 429.
    Throttled,
    /// A 429 or 5xx announcing a wait longer than `max_retry_after`.
    WaitTooLong(Duration),
    /// A 5xx.
    ServerFailed,
    /// A 408: the server gave up waiting for the request.
    ServerTimedOut,
    /// 501 or 505: the server will not do this, however often asked.
    NotSupported,
    /// A 401 from the API about the access token.
    TokenRefused,
    /// A 401 from the API about the app key: a new token would not help.
    AppKeyRefused,
    /// The token service refused the client id and secret (or answered some other 4xx).
    CredentialsRefused,
    /// A 403.
    PermissionDenied,
    /// A 404 or 410.
    NotFound,
    /// A 409.
    Conflict,
    /// Any other 4xx.
    BadRequest,
    /// A status outside 2xx–5xx.
    UnexpectedStatus,
    /// The connection failed.
    Transport(Failure),
    /// Redis answered with an error.
    RedisError,
}

impl Cause {
    /// A few words for log lines ("resending: …").
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Cause::Redirect => "redirect",
            Cause::Throttled => "rate limited (429)",
            Cause::WaitTooLong(_) => "the server asks to wait longer than max_retry_after",
            Cause::ServerFailed => "server error (5xx)",
            Cause::ServerTimedOut => "the server timed out (408)",
            Cause::NotSupported => "not supported by the server",
            Cause::TokenRefused => "access token refused (401)",
            Cause::AppKeyRefused => "app key refused (401)",
            Cause::CredentialsRefused => "client credentials refused",
            Cause::PermissionDenied => "permission denied (403)",
            Cause::NotFound => "not found",
            Cause::Conflict => "conflict (409)",
            Cause::BadRequest => "request refused (4xx)",
            Cause::UnexpectedStatus => "unexpected status",
            Cause::Transport(failure) => failure.describe(),
            Cause::RedisError => "Redis answered with an error",
        }
    }
}

/// What to do with an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Use it.
    Success,
    /// The access token was refused: drop it, fetch another, send again (once).
    RefetchToken,
    /// Send again after a wait: the one announced by the server, else the backoff. A
    /// [`Cause::Throttled`] API call also pauses every other caller of its limiter key.
    Resend { code: ErrorCode, cause: Cause, announced: Option<Duration> },
    /// It would be sent again, but it may have been processed and is not safe to repeat.
    NotResent { code: ErrorCode, cause: Cause },
    /// Give up with this error.
    Fail { code: ErrorCode, cause: Cause },
}

impl Outcome {
    /// The wait before resend number `retry` (0 for the first): the server's announced wait,
    /// else [`RetryPolicy::backoff`] (at least 100 ms after a 429, so that a burst of callers
    /// does not hammer a server that just said "too many").
    pub(crate) fn wait(&self, policy: &RetryPolicy, retry: u32) -> Duration {
        match *self {
            Outcome::Resend { announced: Some(wait), .. } => wait,
            Outcome::Resend { cause: Cause::Throttled, .. } => policy.backoff(retry).max(Duration::from_millis(100)),
            Outcome::Resend { .. } => policy.backoff(retry),
            _ => Duration::ZERO,
        }
    }
}

/// What to do with `answer` to a request `sent`. `now` reads `Retry-After` dates; a server
/// asking to wait longer than `max_retry_after` fails the request at once.
pub(crate) fn classify(sent: Sent, answer: &Answer<'_>, now: SystemTime, max_retry_after: Duration) -> Outcome {
    let resendable = match sent {
        Sent::Api { resendable } => resendable,
        Sent::Token | Sent::Redis => true,
    };
    let (status, headers, body) = match *answer {
        Answer::Response { status, headers, body } => (status, headers, body),
        Answer::Transport { failure, delivered } => {
            let code = if failure == Failure::Timeout { ErrorCode::Timeout } else { ErrorCode::Connection };
            let cause = Cause::Transport(failure);
            return match failure {
                Failure::NameNotResolved | Failure::Tls => Outcome::Fail { code, cause },
                _ if resendable || !delivered => Outcome::Resend { code, cause, announced: None },
                _ => Outcome::NotResent { code, cause },
            };
        }
        Answer::RedisError { transient } => {
            let (code, cause) = (ErrorCode::Connection, Cause::RedisError);
            return if transient {
                Outcome::Resend { code, cause, announced: None }
            } else {
                Outcome::Fail { code, cause }
            };
        }
    };
    if status.is_success() {
        return Outcome::Success;
    }
    if status.is_redirection() {
        return Outcome::Fail { code: ErrorCode::Redirect, cause: Cause::Redirect };
    }
    let announced = || headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| parse_retry_after(v, now));
    let title = || Problem::parse(body).title;
    // A resend after a wait the caller does not accept is no resend at all.
    let resend = |code: ErrorCode, cause: Cause, announced: Option<Duration>| match announced {
        Some(wait) if wait > max_retry_after => Outcome::Fail { code, cause: Cause::WaitTooLong(wait) },
        _ => Outcome::Resend { code, cause, announced },
    };
    match status {
        // Refused before it was processed: even a POST may go again.
        StatusCode::TOO_MANY_REQUESTS => {
            let announced = announced().or_else(|| title().as_deref().and_then(seconds_in_title));
            resend(ErrorCode::RateLimited, Cause::Throttled, announced)
        }
        StatusCode::NOT_IMPLEMENTED | StatusCode::HTTP_VERSION_NOT_SUPPORTED => {
            Outcome::Fail { code: ErrorCode::Server, cause: Cause::NotSupported }
        }
        s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => {
            let (code, cause) = if s == StatusCode::REQUEST_TIMEOUT {
                (ErrorCode::Timeout, Cause::ServerTimedOut)
            } else {
                (ErrorCode::Server, Cause::ServerFailed)
            };
            if resendable {
                resend(code, cause, announced())
            } else {
                Outcome::NotResent { code, cause }
            }
        }
        // Whatever else the token service refuses, it refuses these credentials.
        s if s.is_client_error() && sent == Sent::Token => {
            Outcome::Fail { code: ErrorCode::Authentication, cause: Cause::CredentialsRefused }
        }
        StatusCode::UNAUTHORIZED if title().as_deref().is_some_and(names_app_key) => {
            Outcome::Fail { code: ErrorCode::Authentication, cause: Cause::AppKeyRefused }
        }
        StatusCode::UNAUTHORIZED => Outcome::RefetchToken,
        StatusCode::FORBIDDEN => Outcome::Fail { code: ErrorCode::PermissionDenied, cause: Cause::PermissionDenied },
        StatusCode::NOT_FOUND | StatusCode::GONE => Outcome::Fail { code: ErrorCode::NotFound, cause: Cause::NotFound },
        StatusCode::CONFLICT => Outcome::Fail { code: ErrorCode::Conflict, cause: Cause::Conflict },
        s if s.is_client_error() => Outcome::Fail { code: ErrorCode::BadRequest, cause: Cause::BadRequest },
        _ => Outcome::Fail { code: ErrorCode::Server, cause: Cause::UnexpectedStatus },
    }
}

/// Whether a 401's explanation is about the app key (`ST-App-Key`) rather than the token:
/// "The ST-App-Key header does not name a known application.", "Application key not present"…
pub(crate) fn names_app_key(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    ["app key", "app-key", "appkey", "app_key", "application key", "application-key"]
        .iter()
        .any(|words| text.contains(words))
}

/// Why `error` (from sending a request or reading its answer) happened, from its chain of
/// sources: the resolver's own error, a TLS error, or the I/O error underneath.
pub(crate) fn failure_of(error: &reqwest::Error) -> Failure {
    if error.is_timeout() {
        return Failure::Timeout;
    }
    failure_in(error)
}

/// [`failure_of`], and the cause in words for an error message: the resolver's or the TLS
/// library's own explanation when there is one (`name not resolved: "api.example.invalid"
/// (…)`, `TLS handshake failed: invalid peer certificate: UnknownIssuer`), else the failure's
/// name and the innermost error.
pub(crate) fn describe_failure(error: &reqwest::Error) -> (Failure, String) {
    let failure = failure_of(error);
    let mut innermost: &(dyn StdError + 'static) = error;
    let mut next: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = next {
        let inner =
            e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).map(|i| i as &(dyn StdError + 'static));
        for candidate in std::iter::once(e).chain(inner) {
            if candidate.is::<NameNotResolved>() {
                return (failure, candidate.to_string());
            }
            if candidate.is::<rustls::Error>() {
                return (failure, format!("{}: {candidate}", Failure::Tls));
            }
        }
        innermost = e;
        next = e.source();
    }
    let detail = crate::request::server_text(&innermost.to_string());
    if std::ptr::addr_eq(innermost, error as &(dyn StdError + 'static)) || failure == Failure::Timeout {
        return (failure, failure.describe().to_owned());
    }
    (failure, format!("{failure} ({detail})"))
}

/// [`failure_of`] for any error: the first cause recognised in its chain of sources.
pub(crate) fn failure_in(error: &(dyn StdError + 'static)) -> Failure {
    let mut next: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = next {
        if let Some(failure) = recognise(e) {
            return failure;
        }
        // An `io::Error` made from another error hides that error from `source()`.
        if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            if let Some(failure) = recognise(inner) {
                return failure;
            }
        }
        next = e.source();
    }
    Failure::Other
}

fn recognise(e: &(dyn StdError + 'static)) -> Option<Failure> {
    if e.is::<NameNotResolved>() {
        return Some(Failure::NameNotResolved);
    }
    if e.is::<rustls::Error>() {
        return Some(Failure::Tls);
    }
    if let Some(hyper) = e.downcast_ref::<hyper::Error>() {
        if hyper.is_incomplete_message() || hyper.is_closed() || hyper.is_canceled() {
            return Some(Failure::Reset);
        }
    }
    let io = e.downcast_ref::<std::io::Error>()?;
    use std::io::ErrorKind::*;
    match io.kind() {
        ConnectionRefused => Some(Failure::Refused),
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | NotConnected => Some(Failure::Reset),
        TimedOut => Some(Failure::Timeout),
        // The standard library's resolver (used by the Redis driver) says so in words only.
        _ if io.to_string().starts_with("failed to lookup address information") => Some(Failure::NameNotResolved),
        _ => None,
    }
}

/// A host name that did not resolve: the error of [`Resolver`], recognised by [`failure_of`].
#[derive(Debug)]
pub(crate) struct NameNotResolved {
    host: String,
    detail: String,
}

impl fmt::Display for NameNotResolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "name not resolved: {:?} ({})", self.host, self.detail)
    }
}

impl StdError for NameNotResolved {}

/// The system resolver (`getaddrinfo`, as reqwest's default), except that names under
/// `.invalid` fail at once, as RFC 6761 asks of resolvers, and that a failure is a
/// [`NameNotResolved`] the classifier can tell from other connection failures.
#[derive(Debug, Default)]
pub(crate) struct Resolver;

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let unresolved = |detail: String| -> Box<dyn StdError + Send + Sync> {
                Box::new(NameNotResolved { host: host.clone(), detail })
            };
            let bare = host.trim_end_matches('.').to_ascii_lowercase();
            if bare == "invalid" || bare.ends_with(".invalid") {
                return Err(unresolved("names under .invalid never resolve".into()));
            }
            match tokio::net::lookup_host((host.as_str(), 0)).await {
                Ok(addresses) => {
                    let addresses: Vec<std::net::SocketAddr> = addresses.collect();
                    if addresses.is_empty() {
                        return Err(unresolved("no address".into()));
                    }
                    Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
                }
                Err(e) => Err(unresolved(e.to_string())),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    const API: Sent = Sent::Api { resendable: true };
    const POST: Sent = Sent::Api { resendable: false };
    const TOKEN: Sent = Sent::Token;
    const REDIS: Sent = Sent::Redis;

    /// An outcome in a few words, so that a table of cases reads as one.
    fn short(outcome: Outcome) -> String {
        let wait = |w: Option<Duration>| w.map(|w| format!(" {}ms", w.as_millis())).unwrap_or_default();
        match outcome {
            Outcome::Success => "success".into(),
            Outcome::RefetchToken => "refetch token".into(),
            Outcome::Resend { code, cause, announced } => format!("resend {code} {cause:?}{}", wait(announced)),
            Outcome::NotResent { code, cause } => format!("not resent {code} {cause:?}"),
            Outcome::Fail { code, cause: Cause::WaitTooLong(_) } => format!("fail {code} WaitTooLong"),
            Outcome::Fail { code, cause } => format!("fail {code} {cause:?}"),
        }
    }

    /// What was sent, status, headers, body → the outcome in [`short`]'s words.
    type Case = (Sent, u16, &'static [(&'static str, &'static str)], &'static str, &'static str);

    fn response(sent: Sent, status: u16, headers: &[(&str, &str)], body: &str) -> String {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let status = StatusCode::from_u16(status).unwrap();
        let answer = Answer::Response { status, headers: &map, body: body.as_bytes() };
        short(classify(sent, &answer, SystemTime::UNIX_EPOCH, Duration::from_secs(120)))
    }

    #[test]
    fn responses() {
        let app_key_missing = r#"{"title":"The ST-App-Key header does not name a known application.","status":401}"#;
        let app_key_live = r#"{"title":"Application key not present or invalid"}"#;
        let token_expired = r#"{"title":"The access token has expired.","status":401}"#;
        let throttled = r#"{"title":"Rate limit is exceeded. Try again in 12 seconds."}"#;
        let oauth = r#"{"error":"invalid_client"}"#;
        #[rustfmt::skip]
        let table: &[Case] = &[
            // what was sent, status, headers, body → outcome
            (API,   200, &[], "{}", "success"),
            (API,   204, &[], "", "success"),
            (TOKEN, 200, &[], "{}", "success"),
            (API,   301, &[("location", "https://elsewhere/")], "", "fail redirect Redirect"),
            (POST,  308, &[], "", "fail redirect Redirect"),
            (TOKEN, 307, &[], "", "fail redirect Redirect"),
            // 401: a token problem is cured by a new token, an app key problem is not.
            (API,   401, &[], token_expired, "refetch token"),
            (API,   401, &[], "", "refetch token"),
            (POST,  401, &[], token_expired, "refetch token"),
            (API,   401, &[], app_key_missing, "fail authentication AppKeyRefused"),
            (API,   401, &[], app_key_live, "fail authentication AppKeyRefused"),
            (TOKEN, 401, &[], oauth, "fail authentication CredentialsRefused"),
            (TOKEN, 400, &[], oauth, "fail authentication CredentialsRefused"),
            (TOKEN, 404, &[], "", "fail authentication CredentialsRefused"),
            // 408 is a timeout wherever it comes from, and resent like one.
            (API,   408, &[], "", "resend timeout ServerTimedOut"),
            (TOKEN, 408, &[], "", "resend timeout ServerTimedOut"),
            (POST,  408, &[], "", "not resent timeout ServerTimedOut"),
            // 429: never processed, so resent whatever the method, after the announced wait.
            (API,   429, &[("retry-after", "7")], "", "resend rate_limited Throttled 7000ms"),
            (POST,  429, &[], throttled, "resend rate_limited Throttled 12000ms"),
            (API,   429, &[], "", "resend rate_limited Throttled"),
            (API,   429, &[("retry-after", "soon")], "", "resend rate_limited Throttled"),
            (TOKEN, 429, &[("retry-after", "3")], oauth, "resend rate_limited Throttled 3000ms"),
            (API,   429, &[("retry-after", "3600")], "", "fail rate_limited WaitTooLong"),
            (TOKEN, 429, &[], r#"{"title":"Try again in 1e9 seconds"}"#, "fail rate_limited WaitTooLong"),
            // 5xx: resent when safe, with the server's wait if it gives one.
            (API,   500, &[], "", "resend server ServerFailed"),
            (API,   503, &[("retry-after", "2")], "", "resend server ServerFailed 2000ms"),
            (API,   503, &[("retry-after", "86400")], "", "fail server WaitTooLong"),
            (POST,  503, &[], "", "not resent server ServerFailed"),
            (TOKEN, 502, &[], "", "resend server ServerFailed"),
            (API,   501, &[], "", "fail server NotSupported"),
            (TOKEN, 505, &[], "", "fail server NotSupported"),
            // The rest of 4xx fail at once.
            (API,   400, &[], r#"{"errors":{"name":["required"]}}"#, "fail bad_request BadRequest"),
            (API,   403, &[], app_key_missing, "fail permission_denied PermissionDenied"),
            (API,   404, &[], "", "fail not_found NotFound"),
            (API,   410, &[], "", "fail not_found NotFound"),
            (POST,  409, &[], "", "fail conflict Conflict"),
            (API,   422, &[], "", "fail bad_request BadRequest"),
            (API,   600, &[], "", "fail server UnexpectedStatus"),
            (TOKEN, 600, &[], "", "fail server UnexpectedStatus"),
        ];
        for (sent, status, headers, body, expected) in table {
            assert_eq!(response(*sent, *status, headers, body), *expected, "{sent:?} {status} {headers:?} {body}");
        }
    }

    #[test]
    fn transport_failures_and_redis_errors() {
        use Failure::*;
        #[rustfmt::skip]
        let table: &[(Sent, Failure, bool, &str)] = &[
            // what was sent, failure, delivered → outcome
            (API,   NameNotResolved, false, "fail connection Transport(NameNotResolved)"),
            (TOKEN, NameNotResolved, false, "fail connection Transport(NameNotResolved)"),
            (REDIS, NameNotResolved, false, "fail connection Transport(NameNotResolved)"),
            (API,   Tls, false, "fail connection Transport(Tls)"),
            (TOKEN, Tls, false, "fail connection Transport(Tls)"),
            (API,   Refused, false, "resend connection Transport(Refused)"),
            (POST,  Refused, false, "resend connection Transport(Refused)"),
            (REDIS, Refused, false, "resend connection Transport(Refused)"),
            (API,   Reset, true, "resend connection Transport(Reset)"),
            (POST,  Reset, true, "not resent connection Transport(Reset)"),
            (POST,  Reset, false, "resend connection Transport(Reset)"),
            (TOKEN, Reset, true, "resend connection Transport(Reset)"),
            (API,   Timeout, true, "resend timeout Transport(Timeout)"),
            (POST,  Timeout, true, "not resent timeout Transport(Timeout)"),
            (POST,  Timeout, false, "resend timeout Transport(Timeout)"),
            (TOKEN, Timeout, true, "resend timeout Transport(Timeout)"),
            (POST,  Other, true, "not resent connection Transport(Other)"),
            (REDIS, Other, true, "resend connection Transport(Other)"),
        ];
        for (sent, failure, delivered, expected) in table {
            let answer = Answer::Transport { failure: *failure, delivered: *delivered };
            let outcome = classify(*sent, &answer, SystemTime::UNIX_EPOCH, Duration::from_secs(120));
            assert_eq!(short(outcome), *expected, "{sent:?} {failure:?} delivered={delivered}");
        }
        let redis = |transient| {
            short(classify(REDIS, &Answer::RedisError { transient }, SystemTime::UNIX_EPOCH, Duration::ZERO))
        };
        assert_eq!(redis(true), "resend connection RedisError");
        assert_eq!(redis(false), "fail connection RedisError");
    }

    #[test]
    fn waits_come_from_the_server_else_the_backoff() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
        };
        let announced = Outcome::Resend {
            code: ErrorCode::Server,
            cause: Cause::ServerFailed,
            announced: Some(Duration::from_secs(3)),
        };
        assert_eq!(announced.wait(&policy, 5), Duration::from_secs(3));
        let backoff = Outcome::Resend { code: ErrorCode::Server, cause: Cause::ServerFailed, announced: None };
        let throttled = Outcome::Resend { code: ErrorCode::RateLimited, cause: Cause::Throttled, announced: None };
        for retry in 0..20 {
            assert!(backoff.wait(&policy, retry) <= Duration::from_millis(40));
            assert!(throttled.wait(&policy, retry) >= Duration::from_millis(100));
        }
        assert_eq!(Outcome::Success.wait(&policy, 0), Duration::ZERO);
    }

    #[test]
    fn app_keys_are_recognised_in_401_explanations() {
        for text in [
            "The ST-App-Key header is required.",
            "The ST-App-Key header does not name a known application.",
            "Application key not present",
            "Invalid AppKey",
            "app_key invalid",
        ] {
            assert!(names_app_key(text), "{text}");
        }
        for text in ["The access token has expired.", "Unauthorized", "The access token was not issued for tenant 1."] {
            assert!(!names_app_key(text), "{text}");
        }
    }

    #[test]
    fn failures_are_found_in_the_chain_of_sources() {
        let io = |kind| std::io::Error::new(kind, "x");
        assert_eq!(failure_in(&io(std::io::ErrorKind::ConnectionRefused)), Failure::Refused);
        assert_eq!(failure_in(&io(std::io::ErrorKind::ConnectionReset)), Failure::Reset);
        assert_eq!(failure_in(&io(std::io::ErrorKind::UnexpectedEof)), Failure::Reset);
        assert_eq!(failure_in(&io(std::io::ErrorKind::Other)), Failure::Other);
        let tls = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::DecryptError);
        assert_eq!(failure_in(&tls), Failure::Tls);
        let dns = std::io::Error::other(NameNotResolved { host: "a.invalid".into(), detail: "never".into() });
        assert_eq!(failure_in(&dns), Failure::NameNotResolved);
        let std_dns = std::io::Error::other("failed to lookup address information: Name or service not known");
        assert_eq!(failure_in(&std_dns), Failure::NameNotResolved);
    }

    #[tokio::test]
    async fn names_under_invalid_fail_at_once() {
        use reqwest::dns::Resolve;
        for host in ["api.nothing.invalid", "INVALID", "x.Invalid."] {
            let started = std::time::Instant::now();
            let error = match Resolver.resolve(host.parse().unwrap()).await {
                Ok(_) => panic!("{host} resolved"),
                Err(e) => e,
            };
            assert_eq!(failure_in(&*error), Failure::NameNotResolved, "{host}");
            assert!(error.to_string().contains(host), "{error}");
            assert!(started.elapsed() < Duration::from_secs(1));
        }
        let localhost = Resolver.resolve("localhost".parse().unwrap()).await.expect("localhost resolves");
        assert!(localhost.into_iter().any(|a| a.ip().is_loopback()));
    }
}
