//! The one error type of the crate: a stable `code` plus what the server said and which request it was.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is. [`ErrorCode::as_str`] is the same string in Rust,
/// Python and Node, so code written against one language's errors reads the same in the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The token was refused (`invalid_client`…), or a 401 came back even with a fresh token.
    Authentication,
    /// 403: a scope is not granted or the app is not connected to the tenant.
    PermissionDenied,
    /// 404 (and 410).
    NotFound,
    /// 400 and other 4xx not listed here, with the server's field `errors`; also report
    /// parameters refused by local validation.
    BadRequest,
    /// 409.
    Conflict,
    /// 429 still after the retries, or a `Retry-After` longer than allowed.
    RateLimited,
    /// 5xx after the retries.
    Server,
    /// A deadline passed (per attempt, or the total one).
    Timeout,
    /// DNS, connect, TLS or a reset connection.
    Connection,
    /// Bad input from the caller, refused before any request.
    Configuration,
    /// A 2xx whose body is not the JSON promised, or a response larger than the client reads
    /// (`MAX_RESPONSE_BYTES`).
    Decode,
    /// A 3xx from the API or the token service. Redirects are never followed, not even to the
    /// same host: the API documents none, and following one would send the app key, the token,
    /// the client secret or a body to wherever the `Location` points. Usually a wrong `api_url`
    /// or `auth_url` (http instead of https, a missing path) or a proxy in the way.
    Redirect,
    /// A bug in this client, caught (a panic): the call fails, the client stays usable.
    Internal,
    /// A webhook delivery that fails verification: no signature, a wrong one, or a signed body
    /// that is not an event.
    Webhook,
}

impl ErrorCode {
    /// Every code, in the order of the README's error table.
    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::Authentication,
        ErrorCode::PermissionDenied,
        ErrorCode::NotFound,
        ErrorCode::BadRequest,
        ErrorCode::Conflict,
        ErrorCode::RateLimited,
        ErrorCode::Server,
        ErrorCode::Timeout,
        ErrorCode::Connection,
        ErrorCode::Configuration,
        ErrorCode::Decode,
        ErrorCode::Redirect,
        ErrorCode::Internal,
        ErrorCode::Webhook,
    ];

    /// The code's stable name, e.g. `"rate_limited"`.
    ///
    /// ```
    /// assert_eq!(servicetitan::ErrorCode::PermissionDenied.as_str(), "permission_denied");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Authentication => "authentication",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::NotFound => "not_found",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Conflict => "conflict",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Server => "server",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Connection => "connection",
            ErrorCode::Configuration => "configuration",
            ErrorCode::Decode => "decode",
            ErrorCode::Redirect => "redirect",
            ErrorCode::Internal => "internal",
            ErrorCode::Webhook => "webhook",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every failure of the client: a [`code`](Error::code), a message that says what happened
/// and what to do, and, when a response was involved, its status, RFC 7807 `title`,
/// `traceId` and field `errors`, plus the request's method and URL.
///
/// Never contains a client secret, an app key or an access token.
///
/// ```
/// # async fn demo(tenant: servicetitan::Tenant) {
/// use servicetitan::ErrorCode;
/// match tenant.get("crm/customers/42").send_json().await {
///     Ok(customer) => println!("{customer}"),
///     Err(e) if e.code() == ErrorCode::NotFound => println!("no such customer"),
///     Err(e) => eprintln!("{} failed: {e} (trace {:?})", e.method().unwrap_or("?"), e.trace_id()),
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct Error {
    // Boxed so that `Result<T, Error>` stays one pointer wide on the happy path.
    inner: Box<Inner>,
}

#[derive(Clone)]
struct Inner {
    code: ErrorCode,
    message: String,
    status: Option<u16>,
    title: Option<String>,
    trace_id: Option<String>,
    errors: BTreeMap<String, Vec<String>>,
    method: Option<String>,
    url: Option<String>,
    argument: Option<String>,
    retry_after: Option<Duration>,
    // Arc, not Box: errors are cloned to every caller that shared one token fetch.
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// An error with a code and a message; the other fields are empty.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            inner: Box::new(Inner {
                code,
                message: message.into(),
                status: None,
                title: None,
                trace_id: None,
                errors: BTreeMap::new(),
                method: None,
                url: None,
                argument: None,
                retry_after: None,
                source: None,
            }),
        }
    }

    /// An `internal` error for a panic caught inside the client, from the panic's payload (what
    /// `std::panic::catch_unwind` returns). The call that panicked fails with it; nothing else
    /// is affected. Bindings use it for panics they catch at their boundary.
    ///
    /// ```
    /// let payload = std::panic::catch_unwind(|| panic!("boom")).unwrap_err();
    /// let e = servicetitan::Error::from_panic(&*payload);
    /// assert_eq!(e.code(), servicetitan::ErrorCode::Internal);
    /// assert!(e.to_string().ends_with(": boom"));
    /// ```
    pub fn from_panic(payload: &(dyn std::any::Any + Send)) -> Self {
        let what = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("a panic without a message");
        Error::new(
            ErrorCode::Internal,
            format!("internal error in servicetitan (a bug; the client stays usable): {}", excerpt(what)),
        )
    }

    /// A `configuration` error about the named argument (or environment variable).
    pub fn configuration(argument: impl Into<String>, message: impl Into<String>) -> Self {
        let argument = argument.into();
        let mut e = Error::new(ErrorCode::Configuration, format!("invalid {argument}: {}", message.into()));
        e.inner.argument = Some(argument);
        e
    }

    /// The kind of failure.
    pub fn code(&self) -> ErrorCode {
        self.inner.code
    }

    /// The human-readable explanation, without the request details that `Display` adds.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The HTTP status of the response, if there was one.
    pub fn status(&self) -> Option<u16> {
        self.inner.status
    }

    /// The RFC 7807 `title` of the response body (or the OAuth `error_description`).
    pub fn title(&self) -> Option<&str> {
        self.inner.title.as_deref()
    }

    /// The server's `traceId`, to quote to ServiceTitan support.
    pub fn trace_id(&self) -> Option<&str> {
        self.inner.trace_id.as_deref()
    }

    /// Field errors: field name → messages (RFC 7807 `errors`).
    pub fn errors(&self) -> &BTreeMap<String, Vec<String>> {
        &self.inner.errors
    }

    /// The HTTP method of the failed request.
    pub fn method(&self) -> Option<&str> {
        self.inner.method.as_deref()
    }

    /// The URL of the failed request (never carries a secret: those travel in headers and bodies).
    pub fn url(&self) -> Option<&str> {
        self.inner.url.as_deref()
    }

    /// For `configuration` errors: the argument or environment variable at fault.
    pub fn argument(&self) -> Option<&str> {
        self.inner.argument.as_deref()
    }

    /// For `rate_limited` errors: how long the server asked to wait.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// Whether sending the same request again later could succeed (rate limits, server
    /// errors, timeouts and connection failures).
    pub fn is_transient(&self) -> bool {
        matches!(
            self.inner.code,
            ErrorCode::RateLimited | ErrorCode::Server | ErrorCode::Timeout | ErrorCode::Connection
        )
    }

    pub(crate) fn with_status(mut self, status: u16) -> Self {
        self.inner.status = Some(status);
        self
    }

    pub(crate) fn with_title(mut self, title: Option<String>) -> Self {
        self.inner.title = title;
        self
    }

    pub(crate) fn with_trace_id(mut self, trace_id: Option<String>) -> Self {
        self.inner.trace_id = trace_id;
        self
    }

    pub(crate) fn with_errors(mut self, errors: BTreeMap<String, Vec<String>>) -> Self {
        self.inner.errors = errors;
        self
    }

    pub(crate) fn with_request(mut self, method: &str, url: &str) -> Self {
        self.inner.method = Some(method.to_owned());
        self.inner.url = Some(url.to_owned());
        self
    }

    pub(crate) fn with_retry_after(mut self, wait: Option<Duration>) -> Self {
        self.inner.retry_after = wait;
        self
    }

    pub(crate) fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.inner.source = Some(Arc::new(source));
        self
    }
}

/// The most characters of text from a server (a title, a description, a body) an error message
/// carries: enough for any real explanation, and a server answering megabytes cannot make
/// every log line that large.
pub(crate) const MAX_SERVER_TEXT_CHARS: usize = 1000;

/// `text` cut to [`MAX_SERVER_TEXT_CHARS`] characters, with "…" when cut.
pub(crate) fn excerpt(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(MAX_SERVER_TEXT_CHARS) {
        None => std::borrow::Cow::Borrowed(text),
        Some((end, _)) => std::borrow::Cow::Owned(format!("{}…", &text[..end])),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        write!(f, "{}", i.message)?;
        if let (Some(method), Some(url)) = (&i.method, &i.url) {
            write!(f, " [{method} {url}")?;
            if let Some(status) = i.status {
                write!(f, " -> {status}")?;
            }
            if let Some(trace) = &i.trace_id {
                write!(f, ", traceId {trace}")?;
            }
            write!(f, "]")?;
        }
        for (field, messages) in &i.errors {
            write!(f, "; {field}: {}", messages.join(" "))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        let mut d = f.debug_struct("Error");
        d.field("code", &i.code.as_str()).field("message", &i.message);
        if let Some(s) = i.status {
            d.field("status", &s);
        }
        if let Some(t) = &i.title {
            d.field("title", t);
        }
        if let Some(t) = &i.trace_id {
            d.field("trace_id", t);
        }
        if !i.errors.is_empty() {
            d.field("errors", &i.errors);
        }
        if let Some(m) = &i.method {
            d.field("method", m);
        }
        if let Some(u) = &i.url {
            d.field("url", u);
        }
        if let Some(a) = &i.argument {
            d.field("argument", a);
        }
        if let Some(s) = &i.source {
            d.field("source", &s.to_string());
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner.source.as_deref().map(|s| s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_the_documented_names() {
        let names: Vec<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "authentication",
                "permission_denied",
                "not_found",
                "bad_request",
                "conflict",
                "rate_limited",
                "server",
                "timeout",
                "connection",
                "configuration",
                "decode",
                "redirect",
                "internal",
                "webhook"
            ]
        );
    }

    #[test]
    fn server_text_is_cut_to_an_excerpt() {
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(5000);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), MAX_SERVER_TEXT_CHARS + 1);
        assert!(cut.ends_with('…'));
        let exact = "x".repeat(MAX_SERVER_TEXT_CHARS);
        assert_eq!(excerpt(&exact), exact);
    }

    #[test]
    fn panics_become_internal_errors() {
        let payload = std::panic::catch_unwind(|| panic!("{}", "y".repeat(10_000))).unwrap_err();
        let e = Error::from_panic(&*payload);
        assert_eq!(e.code(), ErrorCode::Internal);
        assert!(e.message().starts_with("internal error in servicetitan (a bug; the client stays usable): yyy"));
        assert!(e.message().len() < 1200);
        let payload: Box<dyn std::any::Any + Send> = Box::new(42);
        assert!(Error::from_panic(&*payload).message().ends_with("a panic without a message"));
    }

    #[test]
    fn display_names_the_request_and_the_field_errors() {
        let mut errors = BTreeMap::new();
        errors.insert("name".to_owned(), vec!["The Name field is required.".to_owned()]);
        let e = Error::new(ErrorCode::BadRequest, "the server refused the request")
            .with_status(400)
            .with_trace_id(Some("abc".into()))
            .with_errors(errors)
            .with_request("POST", "https://api/crm/v2/tenant/1/customers");
        let text = e.to_string();
        assert!(text.contains("POST https://api/crm/v2/tenant/1/customers -> 400, traceId abc"));
        assert!(text.contains("name: The Name field is required."));
        assert_eq!(std::mem::size_of::<Result<()>>(), std::mem::size_of::<usize>());
    }
}
