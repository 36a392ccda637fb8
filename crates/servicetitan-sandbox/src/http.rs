//! Building answers: JSON bodies, RFC 7807 problems as the API gives them, RFC 6749 errors as the
//! token endpoint gives them.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use serde_json::{json, Value};

pub type Body = Full<Bytes>;

pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response<Body> {
    json_bytes_response(status, serde_json::to_vec(body).expect("JSON values serialise"))
}

/// A response of JSON already rendered.
pub fn json_bytes_response(status: StatusCode, bytes: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    response
}

/// An RFC 7807 problem, shaped as the service's `ApiErrorResponse`:
/// `{type, title, status, traceId, errors, data}`.
pub struct Problem {
    pub status: StatusCode,
    pub title: String,
    pub errors: BTreeMap<String, Vec<String>>,
    pub retry_after: Option<String>,
    pub www_authenticate: Option<&'static str>,
}

impl Problem {
    pub fn new(status: StatusCode, title: impl Into<String>) -> Self {
        Problem { status, title: title.into(), errors: BTreeMap::new(), retry_after: None, www_authenticate: None }
    }

    pub fn field(mut self, field: &str, message: impl Into<String>) -> Self {
        self.errors.entry(field.to_string()).or_default().push(message.into());
        self
    }

    pub fn with_errors(mut self, errors: BTreeMap<String, Vec<String>>) -> Self {
        self.errors = errors;
        self
    }

    pub fn bad_request(field: &str, message: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, "One or more validation errors occurred.").field(field, message)
    }

    pub fn not_found(title: impl Into<String>) -> Self {
        Problem::new(StatusCode::NOT_FOUND, title)
    }

    pub fn unauthorized(title: impl Into<String>) -> Self {
        let mut p = Problem::new(StatusCode::UNAUTHORIZED, title);
        p.www_authenticate = Some("Bearer error=\"invalid_token\"");
        p
    }

    /// A 429 whose title ends "… N seconds." and whose `Retry-After` says the same.
    pub fn too_many_requests(wait: Duration) -> Self {
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut p = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("Rate limit is exceeded. Try again in {seconds} seconds."),
        );
        p.retry_after = Some(seconds.to_string());
        p
    }

    pub fn into_response(self, trace_id: String) -> Response<Body> {
        let body = json!({
            "type": type_uri(self.status),
            "title": self.title,
            "status": self.status.as_u16(),
            "traceId": trace_id,
            "errors": self.errors,
            "data": {},
        });
        let mut response = json_response(self.status, &body);
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json; charset=utf-8"));
        if let Some(ra) = self.retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(header::RETRY_AFTER, ra);
        }
        if let Some(wa) = self.www_authenticate {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(wa));
        }
        response
    }
}

/// The `type` the service's ASP.NET stack gives each status.
fn type_uri(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "https://tools.ietf.org/html/rfc7231#section-6.5.1",
        401 => "https://tools.ietf.org/html/rfc7235#section-3.1",
        403 => "https://tools.ietf.org/html/rfc7231#section-6.5.3",
        404 => "https://tools.ietf.org/html/rfc7231#section-6.5.4",
        405 => "https://tools.ietf.org/html/rfc7231#section-6.5.5",
        409 => "https://tools.ietf.org/html/rfc7231#section-6.5.8",
        413 => "https://tools.ietf.org/html/rfc7231#section-6.5.11",
        429 => "https://tools.ietf.org/html/rfc6585#section-4",
        500 => "https://tools.ietf.org/html/rfc7231#section-6.6.1",
        502 => "https://tools.ietf.org/html/rfc7231#section-6.6.3",
        503 => "https://tools.ietf.org/html/rfc7231#section-6.6.4",
        504 => "https://tools.ietf.org/html/rfc7231#section-6.6.5",
        _ => "about:blank",
    }
}

/// An RFC 6749 §5.2 error of the token endpoint.
pub fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response<Body> {
    let mut response = json_response(status, &json!({"error": error, "error_description": description}));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Parses query pairs; keys compared case-insensitively later, as the service binds them.
pub fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, Problem> {
    match query {
        None | Some("") => Ok(Vec::new()),
        Some(q) => {
            serde_urlencoded::from_str(q).map_err(|_| Problem::bad_request("query", "The query string is not valid."))
        }
    }
}

pub fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().rev().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

pub fn int_param(
    pairs: &[(String, String)],
    name: &str,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, Problem> {
    match param(pairs, name) {
        None | Some("") => Ok(default),
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) if range.contains(&n) => Ok(n),
            Ok(_) => Err(Problem::bad_request(
                name,
                format!("The field {name} must be between {} and {}.", range.start(), range.end()),
            )),
            Err(_) => Err(Problem::bad_request(name, format!("The value '{v}' is not valid for {name}."))),
        },
    }
}

pub fn bool_param(pairs: &[(String, String)], name: &str) -> Result<bool, Problem> {
    match param(pairs, name) {
        None | Some("") => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(Problem::bad_request(name, format!("The value '{v}' is not valid for {name}."))),
    }
}

pub fn page_envelope(page: i64, page_size: i64, has_more: bool, total: Option<u64>, data: Vec<Value>) -> Value {
    json!({"page": page, "pageSize": page_size, "hasMore": has_more, "totalCount": total, "data": data})
}
