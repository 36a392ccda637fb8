//! The native half of `servicetitan.webhooks`: the engine's verifier and receiver, with bodies,
//! headers and events converted. The ASGI/WSGI apps around them are Python (webhooks.py).

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView, PyString, PyTuple};
use servicetitan::webhooks::{
    Envelope, Receipt, SignatureEncoding, WebhookEvent, WebhookReceiver as EngineReceiver, WebhookReceiverBuilder,
    WebhookSettings, WebhookVerifier,
};

use crate::convert::value_to_py;
use crate::errors::{configuration_error, to_py};
use crate::runtime::{to_asyncio, wait, PerProcess};
use crate::values::json_argument;

type Headers = Vec<(String, Vec<u8>)>;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<WebhookReceiver>()?;
    m.add_function(wrap_pyfunction!(verify_webhook, m)?)?;
    m.add_function(wrap_pyfunction!(sign_webhook, m)?)?;
    Ok(())
}

/// The raw bytes of a request body: `bytes`, `bytearray`, `memoryview`, or a `str` (as UTF-8).
fn body_bytes(body: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = body.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(b) = body.cast::<PyByteArray>() {
        return Ok(b.to_vec());
    }
    if body.cast::<PyMemoryView>().is_ok() {
        return Ok(body.call_method0("tobytes")?.cast::<PyBytes>()?.as_bytes().to_vec());
    }
    if let Ok(s) = body.cast::<PyString>() {
        return Ok(s.to_cow()?.as_bytes().to_vec());
    }
    Err(configuration_error(
        "body",
        format!(
            "invalid body: expected the raw request body as bytes (the signature covers the exact bytes), got {}",
            body.get_type().name()?
        ),
    ))
}

/// A header name or value: `str` (names as they are, values as Latin-1, HTTP's own encoding) or
/// `bytes`.
fn header_part(part: &Bound<'_, PyAny>, value: bool) -> Option<Vec<u8>> {
    if let Ok(b) = part.cast::<PyBytes>() {
        return Some(b.as_bytes().to_vec());
    }
    let text = part.cast::<PyString>().ok()?.to_cow().ok()?.into_owned();
    if value && text.chars().all(|c| (c as u32) < 256) {
        return Some(text.chars().map(|c| c as u8).collect());
    }
    Some(text.into_bytes())
}

/// Headers as a mapping (`dict`, Starlette/Flask/Django headers: anything with `items()`) or an
/// iterable of `(name, value)` pairs (ASGI's list of byte pairs), names and values `str` or
/// `bytes`.
fn headers(headers: &Bound<'_, PyAny>) -> PyResult<Headers> {
    let bad = |what: String| configuration_error("headers", format!("invalid headers: {what}"));
    let pairs = if headers.hasattr("items")? { headers.call_method0("items")? } else { headers.clone() };
    let mut out = Vec::new();
    for (i, item) in pairs.try_iter().map_err(|_| bad("expected a mapping or (name, value) pairs".into()))?.enumerate()
    {
        let item = item?;
        let pair =
            item.cast::<PyTuple>().ok().filter(|t| t.len() == 2).map(|t| (t.get_item(0), t.get_item(1))).or_else(
                || {
                    let seq: Vec<Bound<'_, PyAny>> = item.try_iter().ok()?.collect::<PyResult<_>>().ok()?;
                    (seq.len() == 2).then(|| (Ok(seq[0].clone()), Ok(seq[1].clone())))
                },
            );
        let Some((name, value)) = pair else {
            return Err(bad(format!("headers[{i}]: expected a (name, value) pair")));
        };
        let (name, value) = (name?, value?);
        let name = header_part(&name, false)
            .and_then(|n| String::from_utf8(n).ok())
            .ok_or_else(|| bad(format!("headers[{i}]: a header name is str or bytes")))?;
        let value =
            header_part(&value, true).ok_or_else(|| bad(format!("headers[{i}]: a header value is str or bytes")))?;
        out.push((name, value));
    }
    Ok(out)
}

fn event_to_py<'py>(py: Python<'py>, event: &WebhookEvent) -> PyResult<Bound<'py, PyAny>> {
    value_to_py(py, &event.to_json())
}

fn event_from_py(event: &Bound<'_, PyAny>) -> PyResult<WebhookEvent> {
    let value = json_argument(event, "event")?;
    serde_json::from_value(value).map_err(|e| {
        configuration_error("event", format!("invalid event: expected an event as verify() returns it ({e})"))
    })
}

fn settings(
    signature_header: Option<String>,
    encoding: Option<&str>,
    envelope: Option<&str>,
) -> servicetitan::Result<WebhookSettings> {
    let mut settings = WebhookSettings::default();
    if let Some(name) = signature_header {
        settings = settings.signature_header(name)?;
    }
    if let Some(encoding) = encoding {
        settings = settings.encoding(SignatureEncoding::parse(encoding)?);
    }
    if let Some(envelope) = envelope {
        settings = settings.envelope(Envelope::parse(envelope)?);
    }
    Ok(settings)
}

/// Checks a delivery's signature and returns its event (a dict: `specversion`, `id`, `source`,
/// `type`, `time`, `data` and any other attribute); raises `WebhookVerificationError`.
#[pyfunction]
#[pyo3(signature = (body, headers, key, *, signature_header=None, encoding=None, envelope=None))]
pub(crate) fn verify_webhook<'py>(
    py: Python<'py>,
    body: &Bound<'py, PyAny>,
    headers: &Bound<'py, PyAny>,
    key: &str,
    signature_header: Option<String>,
    encoding: Option<&str>,
    envelope: Option<&str>,
) -> PyResult<Bound<'py, PyAny>> {
    let (body, headers) = (body_bytes(body)?, self::headers(headers)?);
    let verifier =
        settings(signature_header, encoding, envelope).and_then(|s| WebhookVerifier::new(key, s)).map_err(to_py)?;
    let event = verifier.verify(&body, headers).map_err(to_py)?;
    event_to_py(py, &event)
}

/// The HMAC-SHA256 signature of `body` under `key`, hex (or base64), as a sender puts it in the
/// signature header: for tests of your own endpoint.
#[pyfunction]
#[pyo3(signature = (body, key, *, encoding=None))]
pub(crate) fn sign_webhook(body: &Bound<'_, PyAny>, key: &str, encoding: Option<&str>) -> PyResult<String> {
    let body = body_bytes(body)?;
    let verifier = settings(None, encoding, None).and_then(|s| WebhookVerifier::new(key, s)).map_err(to_py)?;
    Ok(verifier.sign(&body))
}

/// Verifies and deduplicates deliveries (see `servicetitan.webhooks.Receiver`).
#[pyclass(module = "servicetitan._native", frozen)]
pub(crate) struct WebhookReceiver {
    builder: WebhookReceiverBuilder,
    engine: PerProcess<Arc<EngineReceiver>>,
    max_body_bytes: usize,
}

/// `(status, response body, event or None, duplicate)`.
type PyReceipt<'py> = (u16, Bound<'py, PyBytes>, Bound<'py, PyAny>, bool);

fn receipt_to_py<'py>(py: Python<'py>, receipt: &Receipt) -> PyResult<PyReceipt<'py>> {
    let event = match &receipt.event {
        Some(event) => event_to_py(py, event)?,
        None => py.None().into_bound(py),
    };
    Ok((receipt.status, PyBytes::new(py, receipt.response_body().as_bytes()), event, receipt.duplicate))
}

impl WebhookReceiver {
    fn engine(&self) -> PyResult<Arc<EngineReceiver>> {
        // A forked child gets its own (its Redis connection must not be the parent's).
        self.engine.get(|| self.builder.clone().build().map(Arc::new).map_err(to_py))
    }
}

#[pymethods]
impl WebhookReceiver {
    #[new]
    #[pyo3(signature = (key=None, *, signature_header=None, encoding=None, envelope=None, dedupe_ttl=None,
                        max_body_bytes=None, redis_url=None, redis_key_prefix=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        key: Option<String>,
        signature_header: Option<String>,
        encoding: Option<&str>,
        envelope: Option<&str>,
        dedupe_ttl: Option<f64>,
        max_body_bytes: Option<usize>,
        redis_url: Option<String>,
        redis_key_prefix: Option<String>,
    ) -> PyResult<Self> {
        let mut b = EngineReceiver::builder();
        if let Some(key) = key {
            b = b.key(key);
        }
        if let Some(name) = signature_header {
            b = b.signature_header(name);
        }
        if let Some(encoding) = encoding {
            b = b.encoding(SignatureEncoding::parse(encoding).map_err(to_py)?);
        }
        if let Some(envelope) = envelope {
            b = b.envelope(Envelope::parse(envelope).map_err(to_py)?);
        }
        if let Some(ttl) = dedupe_ttl {
            let ttl = Duration::try_from_secs_f64(ttl).map_err(|_| {
                configuration_error("dedupe_ttl", format!("invalid dedupe_ttl: expected seconds, got {ttl}"))
            })?;
            b = b.dedupe_ttl(ttl);
        }
        if let Some(n) = max_body_bytes {
            b = b.max_body_bytes(n);
        }
        if let Some(url) = redis_url {
            b = b.redis_url(url);
        }
        if let Some(prefix) = redis_key_prefix {
            b = b.redis_key_prefix(prefix);
        }
        let builder = b.clone();
        let engine = py.detach(move || b.build()).map_err(to_py)?;
        let max_body_bytes = engine.max_body_bytes();
        Ok(WebhookReceiver { builder, engine: PerProcess::new(Arc::new(engine)), max_body_bytes })
    }

    /// The largest body accepted, in bytes: read at most this many plus one.
    #[getter]
    fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// `(413, response body)` for a body found too large before it was all read.
    fn too_large<'py>(&self, py: Python<'py>) -> PyResult<(u16, Bound<'py, PyBytes>)> {
        let message = self.engine()?.too_large().message().to_owned();
        let body = serde_json::json!({ "error": message }).to_string();
        Ok((413, PyBytes::new(py, body.as_bytes())))
    }

    /// Verifies and deduplicates one delivery (blocking; the GIL is released).
    fn receive<'py>(
        &self,
        py: Python<'py>,
        body: &Bound<'py, PyAny>,
        headers: &Bound<'py, PyAny>,
    ) -> PyResult<PyReceipt<'py>> {
        let (body, headers) = (body_bytes(body)?, self::headers(headers)?);
        let engine = self.engine()?;
        let receipt = wait(py, async move { engine.receive(&body, headers).await })?;
        receipt_to_py(py, &receipt)
    }

    /// `receive`, awaitable.
    fn receive_async<'py>(
        &self,
        py: Python<'py>,
        body: &Bound<'py, PyAny>,
        headers: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (body, headers) = (body_bytes(body)?, self::headers(headers)?);
        let engine = self.engine()?;
        to_asyncio(py, async move {
            let receipt = engine.receive(&body, headers).await;
            Python::attach(|py| receipt_to_py(py, &receipt).map(|r| r.into_pyobject(py).map(|t| t.unbind())))?
        })
    }

    /// Forgets that `event` was handled, so that its next delivery is handed over again.
    fn release(&self, py: Python<'_>, event: &Bound<'_, PyAny>) -> PyResult<()> {
        let event = event_from_py(event)?;
        let engine = self.engine()?;
        wait(py, async move { engine.release(&event).await })?.map_err(to_py)
    }

    /// `release`, awaitable.
    fn release_async<'py>(&self, py: Python<'py>, event: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let event = event_from_py(event)?;
        let engine = self.engine()?;
        to_asyncio(py, async move { engine.release(&event).await.map_err(to_py) })
    }

    fn __repr__(&self) -> PyResult<String> {
        let engine = self.engine()?;
        let settings = engine.verifier().settings();
        Ok(format!(
            "WebhookReceiver(signature_header={:?}, encoding={:?}, dedupe_ttl={}, key=***)",
            settings.header(),
            settings.signature_encoding().name(),
            engine.dedupe_ttl().as_secs_f64()
        ))
    }
}
