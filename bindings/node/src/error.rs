//! Errors cross into JavaScript as one `napi::Error` whose message is a JSON object with the
//! taxonomy code and the structured fields; `node/errors.js` turns it into the matching
//! `ServiceTitanError` subclass. JSON, because a rejected promise carries only a code and a
//! message, and the fields (`errors` especially) do not fit in a message otherwise.

use napi::Status;
use serde::Serialize;

/// Prefix that tells `node/errors.js` the message is ours to decode.
const MARKER: &str = "servicetitan:";

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorFields<'a> {
    pub code: &'a str,
    pub message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<&'a std::collections::BTreeMap<String, Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argument: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

pub(crate) fn to_napi(fields: &ErrorFields<'_>) -> napi::Error {
    match serde_json::to_string(fields) {
        Ok(json) => napi::Error::new(Status::GenericFailure, format!("{MARKER}{json}")),
        Err(_) => napi::Error::new(Status::GenericFailure, fields.message.to_string()),
    }
}

/// A `configuration` error: bad input from the caller.
pub(crate) fn configuration(message: impl AsRef<str>) -> napi::Error {
    to_napi(&ErrorFields { code: "configuration", message: message.as_ref(), ..ErrorFields::default() })
}

/// A `configuration` error about the named argument.
pub(crate) fn configuration_for(argument: &str, message: impl AsRef<str>) -> napi::Error {
    to_napi(&ErrorFields {
        code: "configuration",
        message: message.as_ref(),
        argument: Some(argument),
        ..ErrorFields::default()
    })
}

/// An `internal` error: something this binding never expects (a bug), reported as one.
pub(crate) fn internal(what: impl std::fmt::Display) -> napi::Error {
    let message = format!("internal error in servicetitan (a bug; the client stays usable): {what}");
    to_napi(&ErrorFields { code: "internal", message: &message, ..ErrorFields::default() })
}

/// An engine error, every field kept. The message is the engine's `Display`, which names the
/// request and says what to do next.
pub(crate) fn engine(e: &servicetitan::Error) -> napi::Error {
    let message = e.to_string();
    to_napi(&ErrorFields {
        code: e.code().as_str(),
        message: &message,
        status: e.status(),
        title: e.title(),
        trace_id: e.trace_id(),
        errors: Some(e.errors()).filter(|m| !m.is_empty()),
        method: e.method(),
        url: e.url(),
        argument: e.argument(),
        retry_after_ms: e.retry_after().map(|d| d.as_millis() as u64),
    })
}

/// The call was aborted through its `AbortSignal`; the JS wrapper has already rejected with
/// `signal.reason`, so this only ends the native promise.
pub(crate) fn aborted() -> napi::Error {
    to_napi(&ErrorFields { code: "aborted", message: "the call was aborted", ..ErrorFields::default() })
}
