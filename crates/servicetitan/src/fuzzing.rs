//! Entry points for the fuzz targets in `fuzz/` (built with the `fuzzing` feature, never
//! otherwise): each runs one parser of untrusted input on arbitrary bytes and panics when a
//! documented bound does not hold, so that the fuzzer reports it as a crash.

use std::time::{Duration, SystemTime};

use crate::auth::{parse_token_answer, BadTokenAnswer, MAX_TOKEN_LIFETIME, MIN_TOKEN_LIFETIME};
use crate::error::{ErrorCode, MAX_SERVER_TEXT_CHARS};
use crate::request::{Problem, MAX_FIELD_ERRORS, MAX_FIELD_ERRORS_CHARS};
use crate::retry::{parse_retry_after, seconds_in_title, MAX_ANNOUNCED_WAIT};

/// `Retry-After` values and 429 titles: any wait read is at most a day, at any clock.
pub fn retry_after(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (clock, text) = match text.split_once('\n') {
        Some((clock, rest)) => (clock.len() as u64 * 1_234_567_891, rest),
        None => (1_700_000_000, &*text),
    };
    for now in [SystemTime::UNIX_EPOCH + Duration::from_secs(clock), SystemTime::UNIX_EPOCH] {
        if let Some(wait) = parse_retry_after(text, now) {
            assert!(wait <= MAX_ANNOUNCED_WAIT, "{text:?} read as {wait:?}");
        }
    }
    if let Some(wait) = seconds_in_title(text) {
        assert!(wait <= MAX_ANNOUNCED_WAIT, "{text:?} read as {wait:?}");
    }
}

/// Error bodies: every text kept is short and on one line, and the field errors are bounded.
pub fn problem(data: &[u8]) {
    let p = Problem::parse(data);
    for text in p.title.iter().chain(&p.trace_id) {
        assert!(text.chars().count() <= MAX_SERVER_TEXT_CHARS + 1);
        assert!(!text.chars().any(char::is_control), "{text:?}");
    }
    assert!(p.errors.len() <= MAX_FIELD_ERRORS + 1);
    let shown: usize =
        p.errors.iter().map(|(k, v)| k.chars().count() + v.iter().map(|m| m.chars().count()).sum::<usize>()).sum();
    assert!(shown <= MAX_FIELD_ERRORS_CHARS + MAX_SERVER_TEXT_CHARS + 100, "{shown}");
}

/// Token answers: a token is sendable in a header and lives within the bounds.
pub fn token_answer(data: &[u8]) {
    match parse_token_answer(data) {
        Ok((token, lifetime)) => {
            assert!(!token.is_empty());
            assert!(reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).is_ok(), "{token:?}");
            assert!((MIN_TOKEN_LIFETIME..=MAX_TOKEN_LIFETIME).contains(&lifetime), "{lifetime:?}");
        }
        Err(BadTokenAnswer::NotJson(why)) => assert!(why.chars().count() <= MAX_SERVER_TEXT_CHARS + 1),
        Err(BadTokenAnswer::Unusable(_)) => {}
    }
}

/// Paths: either refused as a configuration error about the path, or resolved to a URL that,
/// as the HTTP library parses it, stays under `/{module}/v{n}/tenant/{tenant}/`.
pub fn route(data: &[u8]) {
    let Ok(path) = std::str::from_utf8(data) else { return };
    let api = "https://api.example.com";
    for export in [false, true] {
        match crate::route::resolve(api, 42, path, export) {
            Ok(route) => {
                let url = reqwest::Url::parse(&route.url).unwrap_or_else(|e| panic!("{}: {e}", route.url));
                assert_eq!(url.host_str(), Some("api.example.com"), "{}", route.url);
                assert!(url.query().is_none() && url.fragment().is_none(), "{}", route.url);
                let segments: Vec<&str> = url.path_segments().map(Iterator::collect).unwrap_or_default();
                assert!(segments.len() >= 5, "{}", route.url);
                assert!(
                    segments[1].starts_with('v') && segments[2] == "tenant" && segments[3] == "42",
                    "{}",
                    route.url
                );
                assert!(segments.iter().all(|s| !s.is_empty() && *s != "." && *s != ".."), "{}", route.url);
            }
            Err(e) => assert!(e.code() == ErrorCode::Configuration && e.argument() == Some("path"), "{e:?}"),
        }
    }
}
