//! Webhooks V2: checking that a delivery was signed with the app's HMAC key, reading its CloudEvents envelope, and handing each event to the application once.
//!
//! ServiceTitan signs a delivery with HMAC-SHA256 over the raw body, keyed with the app's HMAC
//! key (32 to 64 characters), and retries a delivery that was not acknowledged with a 2xx
//! after 10, 30, 60 and 300 s; failed events can also be replayed from the developer portal,
//! with the same id. So a receiver must verify the raw bytes it received (before any JSON
//! parsing), answer quickly, and handle the same `source` + `id` once.
//!
//! **Provisional**: ServiceTitan does not publish the signature header's name or encoding. The
//! defaults (`X-ServiceTitan-Signature`, hex or base64 accepted) are what public integrations
//! use; both are settings ([`WebhookSettings`]), as is how strictly the envelope is read.
//!
//! ```
//! use servicetitan::webhooks;
//!
//! let key = "0123456789abcdef0123456789abcdef"; // the app's HMAC key
//! let body = br#"{"specversion":"1.0","id":"e-1","source":"/tenant/1001","type":"tn.crm.customer-created","time":"2026-01-01T00:00:00Z","data":{"id":42}}"#;
//! let signature = webhooks::sign(body, key);
//!
//! let event = webhooks::verify(body, [("X-ServiceTitan-Signature", signature.as_str())], key)?;
//! assert_eq!((event.id.as_str(), event.data["id"].as_i64()), ("e-1", Some(42)));
//!
//! let tampered = br#"{"specversion":"1.0","id":"e-1","source":"/tenant/1001","type":"tn.crm.customer-created","data":{"id":43}}"#;
//! let refused = webhooks::verify(tampered, [("X-ServiceTitan-Signature", signature.as_str())], key).unwrap_err();
//! assert_eq!(refused.code(), servicetitan::ErrorCode::Webhook);
//! # Ok::<(), servicetitan::Error>(())
//! ```
//!
//! A [`WebhookReceiver`] adds deduplication (in memory, or in Redis so that every web worker
//! shares it) and says what to answer; the Python and Node packages build their ASGI/WSGI apps
//! and `(req, res)` handler on it.

mod dedupe;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub use dedupe::{MemoryDedupe, RedisDedupe, WebhookDedupe};

use crate::clock::{Clock, SystemClock};
use crate::config::Secret;
use crate::error::{Error, ErrorCode, Result};
use crate::redis::{RedisBackend, RedisSettings};

/// The signature header used unless another is configured (provisional: see the module docs).
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-ServiceTitan-Signature";

/// How long a handled event is remembered by default: well past the last retry (about 400 s
/// after the first attempt) and a day of portal replays.
pub const DEFAULT_DEDUPE_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Largest delivery body a [`WebhookReceiver`] reads by default.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

const MIN_KEY_CHARS: usize = 32;
const MAX_KEY_CHARS: usize = 64;

/// How the signature header encodes the 32-byte HMAC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignatureEncoding {
    /// Hex (64 digits) or base64 (standard or URL-safe, padded or not): the two cannot be
    /// confused, since they differ in length. The default.
    #[default]
    Any,
    /// Hex only.
    Hex,
    /// Base64 only.
    Base64,
}

impl SignatureEncoding {
    /// `"any"`, `"hex"` or `"base64"` (case-insensitive).
    pub fn parse(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "any" | "" => Ok(SignatureEncoding::Any),
            "hex" => Ok(SignatureEncoding::Hex),
            "base64" => Ok(SignatureEncoding::Base64),
            other => Err(Error::configuration(
                "signature_encoding",
                format!("expected \"hex\", \"base64\" or \"any\", got {other:?}"),
            )),
        }
    }

    /// The setting's name.
    pub fn name(self) -> &'static str {
        match self {
            SignatureEncoding::Any => "any",
            SignatureEncoding::Hex => "hex",
            SignatureEncoding::Base64 => "base64",
        }
    }
}

/// How strictly a verified body is read as an event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Envelope {
    /// A CloudEvents 1.0 envelope: a JSON object with string `specversion` (1.x), `id`,
    /// `source` and `type`. The default.
    #[default]
    CloudEvents,
    /// Any JSON object: missing attributes are empty, and a missing `id` is the body's
    /// SHA-256 (so that deduplication still works).
    Any,
}

impl Envelope {
    /// `"cloudevents"` or `"any"` (case-insensitive).
    pub fn parse(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "cloudevents" | "" => Ok(Envelope::CloudEvents),
            "any" => Ok(Envelope::Any),
            other => {
                Err(Error::configuration("envelope", format!("expected \"cloudevents\" or \"any\", got {other:?}")))
            }
        }
    }

    /// The setting's name.
    pub fn name(self) -> &'static str {
        match self {
            Envelope::CloudEvents => "cloudevents",
            Envelope::Any => "any",
        }
    }
}

/// Where the signature is and how it and the envelope are read.
///
/// ```
/// use servicetitan::webhooks::{SignatureEncoding, WebhookSettings};
/// let settings = WebhookSettings::default().signature_header("X-Signature")?.encoding(SignatureEncoding::Base64);
/// assert_eq!(settings.header(), "X-Signature");
/// # Ok::<(), servicetitan::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookSettings {
    signature_header: String,
    encoding: SignatureEncoding,
    envelope: Envelope,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            signature_header: DEFAULT_SIGNATURE_HEADER.to_owned(),
            encoding: SignatureEncoding::Any,
            envelope: Envelope::CloudEvents,
        }
    }
}

impl WebhookSettings {
    /// The header that carries the signature (matched case-insensitively). Env (for a
    /// [`WebhookReceiver`]): `ST_WEBHOOK_SIGNATURE_HEADER`.
    pub fn signature_header(mut self, name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let name = name.trim();
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if name.is_empty() || !name.chars().all(token) {
            return Err(Error::configuration(
                "signature_header",
                format!("{name:?} is not an HTTP header name (letters, digits and - _ . ! # $ % & ' * + ^ ` | ~)"),
            ));
        }
        self.signature_header = name.to_owned();
        Ok(self)
    }

    /// How the signature is encoded. Env: `ST_WEBHOOK_SIGNATURE_ENCODING`.
    pub fn encoding(mut self, encoding: SignatureEncoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// How strictly the body is read. Env: `ST_WEBHOOK_ENVELOPE`.
    pub fn envelope(mut self, envelope: Envelope) -> Self {
        self.envelope = envelope;
        self
    }

    /// The signature header's name.
    pub fn header(&self) -> &str {
        &self.signature_header
    }

    /// The signature encoding accepted.
    pub fn signature_encoding(&self) -> SignatureEncoding {
        self.encoding
    }

    /// The envelope expected.
    pub fn envelope_kind(&self) -> Envelope {
        self.envelope
    }
}

/// One event of a delivery: the CloudEvents 1.0 attributes, `data`, and any other attribute
/// (extensions, `data_base64`…) kept in [`WebhookEvent::extensions`]. Serializes back to the
/// envelope it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WebhookEvent {
    /// The CloudEvents version (`"1.0"`).
    pub specversion: String,
    /// The event id: with `source`, what identifies a retried or replayed delivery.
    pub id: String,
    /// Where the event happened.
    pub source: String,
    /// What happened, e.g. `"tn.rpr.report-data-ready"`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it happened (RFC 3339), if the sender said.
    pub time: Option<String>,
    /// The media type of `data`, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacontenttype: Option<String>,
    /// The subject, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The payload (`null` when absent).
    #[serde(default)]
    pub data: Value,
    /// Every other attribute of the envelope.
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
}

impl WebhookEvent {
    /// The deduplication key: a hash of `source` and `id` (fixed length, whatever they hold).
    pub fn dedupe_key(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(self.source.as_bytes());
        hash.update([0]);
        hash.update(self.id.as_bytes());
        hex(&hash.finalize()[..16])
    }

    /// The envelope as JSON.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("an event serializes")
    }

    fn parse(body: &[u8], envelope: Envelope) -> Result<WebhookEvent> {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            webhook_error(format!("the signature is valid but the body is not JSON ({e}); the event was not handled"))
        })?;
        let Value::Object(mut object) = value else {
            return Err(webhook_error("the signature is valid but the body is not a JSON object (an event envelope)"));
        };
        let strict = envelope == Envelope::CloudEvents;
        let mut take = |name: &str, required: bool| -> Result<Option<String>> {
            match object.remove(name) {
                Some(Value::String(s)) if !(required && strict && s.is_empty()) => Ok(Some(s)),
                None | Some(Value::Null) if !(required && strict) => Ok(None),
                Some(other) if !strict => Ok(Some(other.to_string())),
                _ if required => Err(webhook_error(format!(
                    "the signature is valid but the event has no {name:?} string: a CloudEvents 1.0 envelope \
                     needs specversion, id, source and type (set envelope to \"any\" to accept other JSON)"
                ))),
                _ => Err(webhook_error(format!(
                    "the signature is valid but the event's {name:?} attribute is not a string"
                ))),
            }
        };
        let specversion = take("specversion", true)?.unwrap_or_default();
        let id = take("id", true)?;
        let source = take("source", true)?.unwrap_or_default();
        let event_type = take("type", true)?.unwrap_or_default();
        let time = take("time", false)?;
        let datacontenttype = take("datacontenttype", false)?;
        let subject = take("subject", false)?;
        if strict && !specversion.starts_with("1.") {
            return Err(webhook_error(format!(
                "the signature is valid but the event's specversion is {specversion:?}, not CloudEvents 1.x"
            )));
        }
        let id = id.unwrap_or_else(|| hex(&Sha256::digest(body)));
        let data = object.remove("data").unwrap_or(Value::Null);
        Ok(WebhookEvent {
            specversion,
            id,
            source,
            event_type,
            time,
            datacontenttype,
            subject,
            data,
            extensions: object,
        })
    }
}

/// Checks signatures with one key and one set of [`WebhookSettings`]. `Debug` hides the key.
#[derive(Clone)]
pub struct WebhookVerifier {
    key: Secret,
    settings: WebhookSettings,
}

impl fmt::Debug for WebhookVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookVerifier").field("key", &"***").field("settings", &self.settings).finish()
    }
}

impl WebhookVerifier {
    /// A verifier for the app's HMAC key (32 to 64 characters).
    pub fn new(key: impl Into<Secret>, settings: WebhookSettings) -> Result<Self> {
        let key = key.into();
        check_key(&key)?;
        Ok(WebhookVerifier { key, settings })
    }

    /// The settings in use.
    pub fn settings(&self) -> &WebhookSettings {
        &self.settings
    }

    /// Checks the signature of `body` (the raw bytes, before any parsing) found in `headers`,
    /// then reads the event. Any failure is a `webhook` error saying what failed; it never
    /// contains the key or the expected signature.
    pub fn verify<I, K, V>(&self, body: &[u8], headers: I) -> Result<WebhookEvent>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        let name = &self.settings.signature_header;
        let mut found: Vec<Vec<u8>> = Vec::new();
        for (k, v) in headers {
            if k.as_ref().trim().eq_ignore_ascii_case(name) {
                found.push(v.as_ref().to_vec());
            }
        }
        let raw = match found.len() {
            0 => {
                return Err(webhook_error(format!(
                    "the delivery has no {name} header: it is not signed, or the signature comes under another \
                     header name (set signature_header)"
                )))
            }
            1 => found.pop().expect("one header"),
            n => return Err(webhook_error(format!("the delivery has {n} {name} headers; expected exactly one"))),
        };
        let signature = decode_signature(&raw, self.settings.encoding).map_err(|what| {
            webhook_error(format!(
                "the {name} header is not an HMAC-SHA256 signature in {what} ({} characters)",
                raw.len()
            ))
        })?;
        let mut mac = self.mac();
        mac.update(body);
        // Constant time: how much of a forged signature matched must not show in the timing.
        mac.verify_slice(&signature).map_err(|_| {
            webhook_error(format!(
                "the {name} signature does not match the body ({} bytes): the body was changed on the way, or it \
                 was signed with another key than the one configured",
                body.len()
            ))
        })?;
        WebhookEvent::parse(body, self.settings.envelope)
    }

    /// The signature of `body` as the configured encoding writes it (hex for `Any`), e.g. to
    /// sign test deliveries.
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(body);
        let tag = mac.finalize().into_bytes();
        match self.settings.encoding {
            SignatureEncoding::Base64 => base64::engine::general_purpose::STANDARD.encode(tag),
            SignatureEncoding::Any | SignatureEncoding::Hex => hex(&tag),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(self.key.expose().as_bytes()).expect("HMAC takes keys of any length")
    }
}

/// Verifies one delivery with the default settings (see [`WebhookVerifier::verify`]).
///
/// `headers` is anything that iterates `(name, value)` pairs: `&http::HeaderMap`,
/// `[("X-ServiceTitan-Signature", sig)]`, a `HashMap<String, String>` by reference…
pub fn verify<I, K, V>(body: &[u8], headers: I, key: &str) -> Result<WebhookEvent>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<[u8]>,
{
    WebhookVerifier::new(key, WebhookSettings::default())?.verify(body, headers)
}

/// The hex HMAC-SHA256 signature of `body` under `key`, as a sender puts it in the signature
/// header. For tests; panics on a key of the wrong length (use [`WebhookVerifier::sign`] to
/// get an error instead).
pub fn sign(body: &[u8], key: &str) -> String {
    WebhookVerifier::new(key, WebhookSettings::default()).expect("a webhook key of 32 to 64 characters").sign(body)
}

fn check_key(key: &Secret) -> Result<()> {
    let chars = key.expose().chars().count();
    if !(MIN_KEY_CHARS..=MAX_KEY_CHARS).contains(&chars) {
        let side = if chars < MIN_KEY_CHARS { "shorter" } else { "longer" };
        return Err(Error::configuration(
            "key",
            format!(
                "the webhook HMAC key must be {MIN_KEY_CHARS} to {MAX_KEY_CHARS} characters (the key of the app's \
                 webhook settings); this one is {side}"
            ),
        ));
    }
    Ok(())
}

/// The 32 bytes of a signature, or the encodings that were tried.
fn decode_signature(raw: &[u8], encoding: SignatureEncoding) -> std::result::Result<Vec<u8>, &'static str> {
    let text = std::str::from_utf8(raw).map_err(|_| "text")?.trim();
    // Some senders prefix the algorithm, as GitHub does ("sha256=…").
    let text = match text.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("sha256=") => &text[7..],
        _ => text,
    };
    let try_hex = || -> Option<Vec<u8>> {
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        (0..32).map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()).collect()
    };
    let try_base64 = || -> Option<Vec<u8>> {
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
        [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .filter(|bytes| bytes.len() == 32)
    };
    match encoding {
        SignatureEncoding::Hex => try_hex().ok_or("hex (64 digits)"),
        SignatureEncoding::Base64 => try_base64().ok_or("base64 (43 or 44 characters)"),
        SignatureEncoding::Any => try_hex().or_else(try_base64).ok_or("hex or base64"),
    }
}

fn webhook_error(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::Webhook, message)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a [`WebhookReceiver`] made of a delivery, and what to answer.
#[derive(Debug)]
#[non_exhaustive]
pub struct Receipt {
    /// The HTTP status to answer with: 200 for a verified event (new or duplicate), 401 for a
    /// missing or wrong signature, 400 for a signed body that is not an event, 413 for a body
    /// over the limit, 503 when the deduplication store failed (so the sender retries).
    pub status: u16,
    /// The event to hand to the application: set only the first time it arrives.
    pub event: Option<WebhookEvent>,
    /// The event was handled before (a retry or a replay): acknowledge it, do nothing else.
    pub duplicate: bool,
    /// Why the delivery was refused.
    pub error: Option<Error>,
}

impl Receipt {
    /// The JSON body to answer with: `{"status": "accepted" | "duplicate"}` or
    /// `{"error": message}`.
    pub fn response_body(&self) -> String {
        let body = match (&self.error, self.duplicate) {
            (Some(e), _) => serde_json::json!({ "error": e.message() }),
            (None, true) => serde_json::json!({ "status": "duplicate" }),
            (None, false) => serde_json::json!({ "status": "accepted" }),
        };
        body.to_string()
    }

    fn refused(status: u16, error: Error) -> Receipt {
        Receipt { status, event: None, duplicate: false, error: Some(error) }
    }
}

/// Verifies deliveries and lets each event (`source` + `id`) through once: the part of a
/// webhook endpoint that is the same in every framework.
///
/// Events are remembered for [`DEFAULT_DEDUPE_TTL`] in this process, or in Redis when a Redis
/// URL is set, so that every worker behind a load balancer dedupes together.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> servicetitan::Result<()> {
/// use servicetitan::webhooks::{sign, WebhookReceiver};
/// let key = "0123456789abcdef0123456789abcdef";
/// let receiver = WebhookReceiver::builder().key(key).build()?;
/// let body = br#"{"specversion":"1.0","id":"1","source":"s","type":"t","data":null}"#;
/// let headers = [("x-servicetitan-signature", sign(body, key))];
///
/// let first = receiver.receive(body, headers.clone()).await;
/// assert_eq!((first.status, first.event.is_some()), (200, true)); // answer 200, then handle it
/// let again = receiver.receive(body, headers).await;
/// assert_eq!((again.status, again.duplicate, again.event.is_none()), (200, true, true));
/// # Ok(()) }
/// ```
pub struct WebhookReceiver {
    verifier: WebhookVerifier,
    dedupe: Arc<dyn WebhookDedupe>,
    ttl: Duration,
    max_body_bytes: usize,
}

impl fmt::Debug for WebhookReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookReceiver")
            .field("verifier", &self.verifier)
            .field("dedupe", &self.dedupe)
            .field("ttl", &self.ttl)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

impl WebhookReceiver {
    /// A builder: every setting is an argument, else an environment variable, else a default.
    pub fn builder() -> WebhookReceiverBuilder {
        WebhookReceiverBuilder::default()
    }

    /// Verifies and deduplicates one delivery. Never fails: a refusal is a [`Receipt`] with
    /// the status to answer and the error.
    pub async fn receive<I, K, V>(&self, body: &[u8], headers: I) -> Receipt
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        if body.len() > self.max_body_bytes {
            return Receipt::refused(413, self.too_large());
        }
        let event = match self.verifier.verify(body, headers) {
            Ok(event) => event,
            Err(e) => {
                let signed = e.message().starts_with("the signature is valid");
                tracing::warn!(error = %e, "webhook delivery refused");
                return Receipt::refused(if signed { 400 } else { 401 }, e);
            }
        };
        match self.dedupe.claim(&event.dedupe_key(), self.ttl).await {
            Ok(true) => Receipt { status: 200, event: Some(event), duplicate: false, error: None },
            Ok(false) => {
                tracing::debug!(id = %event.id, source = %event.source, "duplicate webhook event acknowledged");
                Receipt { status: 200, event: None, duplicate: true, error: None }
            }
            Err(e) => {
                tracing::warn!(error = %e, "webhook deduplication failed; asking the sender to retry");
                Receipt::refused(503, e)
            }
        }
    }

    /// Forgets that `event` was handled, so that a retry or replay of it is handed over again:
    /// for when the application failed to process it.
    pub async fn release(&self, event: &WebhookEvent) -> Result<()> {
        self.dedupe.release(&event.dedupe_key()).await
    }

    /// The verifier (for [`WebhookVerifier::verify`] without deduplication).
    pub fn verifier(&self) -> &WebhookVerifier {
        &self.verifier
    }

    /// The largest body accepted: read at most this many bytes (plus one, to tell).
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// How long handled events are remembered.
    pub fn dedupe_ttl(&self) -> Duration {
        self.ttl
    }

    /// The error for a body over [`WebhookReceiver::max_body_bytes`].
    pub fn too_large(&self) -> Error {
        webhook_error(format!(
            "the delivery's body is larger than {} bytes (max_body_bytes); it was not read",
            self.max_body_bytes
        ))
    }
}

type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Settings of a [`WebhookReceiver`].
///
/// | setting | method | environment variable | default |
/// |---|---|---|---|
/// | the app's HMAC key (32–64 characters) | [`key`](Self::key) | `ST_WEBHOOK_KEY` | required |
/// | signature header | [`signature_header`](Self::signature_header) | `ST_WEBHOOK_SIGNATURE_HEADER` | `X-ServiceTitan-Signature` |
/// | signature encoding | [`encoding`](Self::encoding) | `ST_WEBHOOK_SIGNATURE_ENCODING` | `any` (hex or base64) |
/// | envelope | [`envelope`](Self::envelope) | `ST_WEBHOOK_ENVELOPE` | `cloudevents` |
/// | how long events are remembered | [`dedupe_ttl`](Self::dedupe_ttl) | `ST_WEBHOOK_DEDUPE_TTL_SECS` | 24 h |
/// | largest body | [`max_body_bytes`](Self::max_body_bytes) | `ST_WEBHOOK_MAX_BODY_BYTES` | 1 MiB |
/// | shared deduplication | [`redis_url`](Self::redis_url), [`redis_key_prefix`](Self::redis_key_prefix) | `ST_REDIS_URL`, `ST_REDIS_KEY_PREFIX` | in process |
#[derive(Clone, Default)]
pub struct WebhookReceiverBuilder {
    key: Option<Secret>,
    signature_header: Option<String>,
    encoding: Option<SignatureEncoding>,
    envelope: Option<Envelope>,
    dedupe_ttl: Option<Duration>,
    max_body_bytes: Option<usize>,
    redis_url: Option<Secret>,
    redis_key_prefix: Option<String>,
    dedupe: Option<Arc<dyn WebhookDedupe>>,
    clock: Option<Arc<dyn Clock>>,
    env: Option<EnvLookup>,
}

impl fmt::Debug for WebhookReceiverBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookReceiverBuilder")
            .field("key", &self.key.as_ref().map(|_| "***"))
            .field("signature_header", &self.signature_header)
            .field("encoding", &self.encoding)
            .field("envelope", &self.envelope)
            .field("dedupe_ttl", &self.dedupe_ttl)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("redis", &self.redis_url.is_some())
            .finish_non_exhaustive()
    }
}

impl WebhookReceiverBuilder {
    /// The app's HMAC key.
    pub fn key(mut self, key: impl Into<Secret>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// The signature header's name.
    pub fn signature_header(mut self, name: impl Into<String>) -> Self {
        self.signature_header = Some(name.into());
        self
    }

    /// The signature's encoding.
    pub fn encoding(mut self, encoding: SignatureEncoding) -> Self {
        self.encoding = Some(encoding);
        self
    }

    /// How strictly the body is read.
    pub fn envelope(mut self, envelope: Envelope) -> Self {
        self.envelope = Some(envelope);
        self
    }

    /// How long a handled event is remembered (at least a second).
    pub fn dedupe_ttl(mut self, ttl: Duration) -> Self {
        self.dedupe_ttl = Some(ttl);
        self
    }

    /// The largest body accepted.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = Some(bytes);
        self
    }

    /// Remember handled events in this Redis (`SET NX` with an expiry), shared by every
    /// process using it with the same key prefix.
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.redis_url = Some(Secret::new(url.into()));
        self
    }

    /// The Redis key prefix (default `servicetitan`).
    pub fn redis_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.redis_key_prefix = Some(prefix.into());
        self
    }

    /// A deduplication store of your own (wins over Redis).
    pub fn dedupe(mut self, store: Arc<dyn WebhookDedupe>) -> Self {
        self.dedupe = Some(store);
        self
    }

    /// The clock of the in-memory store (tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Where "environment variables" are read (the process environment unless replaced).
    pub fn env_lookup(mut self, lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        self.env = Some(Arc::new(lookup));
        self
    }

    /// Checks every setting and makes the receiver. Redis, if set, is connected on first use.
    pub fn build(self) -> Result<WebhookReceiver> {
        let env: EnvLookup = self.env.clone().unwrap_or_else(|| Arc::new(|name: &str| std::env::var(name).ok()));
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let key = match self.key {
            Some(key) => key,
            None => var("ST_WEBHOOK_KEY").map(Secret::new).ok_or_else(|| {
                Error::configuration("key", "no webhook HMAC key given and ST_WEBHOOK_KEY is not set")
            })?,
        };
        let mut settings = WebhookSettings::default();
        if let Some(name) = self.signature_header.or_else(|| var("ST_WEBHOOK_SIGNATURE_HEADER")) {
            settings = settings.signature_header(name)?;
        }
        let encoding = match (self.encoding, var("ST_WEBHOOK_SIGNATURE_ENCODING")) {
            (Some(e), _) => e,
            (None, Some(name)) => SignatureEncoding::parse(&name)?,
            (None, None) => SignatureEncoding::Any,
        };
        let envelope = match (self.envelope, var("ST_WEBHOOK_ENVELOPE")) {
            (Some(e), _) => e,
            (None, Some(name)) => Envelope::parse(&name)?,
            (None, None) => Envelope::CloudEvents,
        };
        let settings = settings.encoding(encoding).envelope(envelope);
        let ttl = match self.dedupe_ttl {
            Some(ttl) => ttl,
            None => match var("ST_WEBHOOK_DEDUPE_TTL_SECS") {
                Some(text) => text.trim().parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0).map_or_else(
                    || Err(Error::configuration("ST_WEBHOOK_DEDUPE_TTL_SECS", "expected a number of seconds")),
                    |s| Ok(Duration::from_secs_f64(s.min(1e9))),
                )?,
                None => DEFAULT_DEDUPE_TTL,
            },
        };
        if ttl < Duration::from_secs(1) {
            return Err(Error::configuration("dedupe_ttl", "at least one second"));
        }
        let max_body_bytes = match self.max_body_bytes {
            Some(n) => n,
            None => match var("ST_WEBHOOK_MAX_BODY_BYTES") {
                Some(text) => text.trim().parse::<usize>().map_err(|_| {
                    Error::configuration("ST_WEBHOOK_MAX_BODY_BYTES", "expected a whole number of bytes")
                })?,
                None => DEFAULT_MAX_BODY_BYTES,
            },
        };
        if max_body_bytes == 0 {
            return Err(Error::configuration("max_body_bytes", "must be positive"));
        }
        let verifier = WebhookVerifier::new(key, settings)?;
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let dedupe: Arc<dyn WebhookDedupe> = match self.dedupe {
            Some(store) => store,
            None => match self.redis_url.map(|u| u.expose().to_owned()).or_else(|| var("ST_REDIS_URL")) {
                Some(url) => {
                    let mut redis = RedisSettings::new(&url)?.wait(Duration::from_secs(5));
                    if let Some(prefix) = self.redis_key_prefix.or_else(|| var("ST_REDIS_KEY_PREFIX")) {
                        redis = redis.key_prefix(prefix)?;
                    }
                    Arc::new(RedisDedupe::new(Arc::new(RedisBackend::new(redis, clock)?)))
                }
                None => Arc::new(MemoryDedupe::with_clock(clock)),
            },
        };
        Ok(WebhookReceiver { verifier, dedupe, ttl, max_body_bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &str = "k3y-of-thirty-two-characters-ok!";

    fn body() -> Vec<u8> {
        serde_json::to_vec(&json!({
            "specversion": "1.0", "id": "evt-1", "source": "/tenant/1001", "type": "tn.crm.customer-created",
            "time": "2026-01-01T00:00:00Z", "datacontenttype": "application/json",
            "data": {"id": 7}, "tenantid": 1001
        }))
        .unwrap()
    }

    fn header(value: &str) -> [(&'static str, String); 1] {
        [(DEFAULT_SIGNATURE_HEADER, value.to_owned())]
    }

    #[test]
    fn a_signed_body_verifies_in_hex_and_base64_and_keeps_every_attribute() {
        let body = body();
        let hex_sig = sign(&body, KEY);
        let event = verify(&body, header(&hex_sig), KEY).unwrap();
        assert_eq!(event.id, "evt-1");
        assert_eq!(event.event_type, "tn.crm.customer-created");
        assert_eq!(event.time.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(event.data, json!({"id": 7}));
        assert_eq!(event.extensions["tenantid"], json!(1001));
        assert_eq!(event.to_json(), serde_json::from_slice::<Value>(&body).unwrap());

        let tag = {
            let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
            mac.update(&body);
            mac.finalize().into_bytes()
        };
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        for value in [
            STANDARD.encode(tag),
            URL_SAFE_NO_PAD.encode(tag),
            hex_sig.to_uppercase(),
            format!("sha256={hex_sig}"),
            format!("  {hex_sig} "),
        ] {
            verify(&body, header(&value), KEY).unwrap_or_else(|e| panic!("{value}: {e}"));
        }
        // Header names match case-insensitively.
        verify(&body, [("x-servicetitan-signature", hex_sig.as_str())], KEY).unwrap();
    }

    #[test]
    fn tampering_a_wrong_key_and_a_missing_header_are_refused_without_leaking() {
        let body = body();
        let signature = sign(&body, KEY);
        let mut tampered = body.clone();
        let at = tampered.iter().position(|b| *b == b'7').unwrap();
        tampered[at] = b'8';
        let other_key = "another-key-of-32-characters-abc";
        let expected_with_other = sign(&tampered, KEY);
        for (what, result) in [
            ("tampered", verify(&tampered, header(&signature), KEY)),
            ("wrong key", verify(&body, header(&signature), other_key)),
            ("missing", verify(&body, [("Content-Type", "application/json")], KEY)),
            ("malformed", verify(&body, header("not-a-signature"), KEY)),
            (
                "duplicate",
                verify(&body, [(DEFAULT_SIGNATURE_HEADER, &signature), ("x-servicetitan-signature", &signature)], KEY),
            ),
        ] {
            let e = result.expect_err(what);
            assert_eq!(e.code(), ErrorCode::Webhook, "{what}");
            let text = format!("{e} {e:?}");
            for secret in [KEY, other_key, expected_with_other.as_str(), sign(&body, other_key).as_str()] {
                assert!(!text.contains(secret), "{what}: {text}");
            }
        }
        assert!(verify(&body, [("a", "b")], KEY).unwrap_err().message().contains("no X-ServiceTitan-Signature header"));
        assert!(verify(&tampered, header(&signature), KEY).unwrap_err().message().contains("does not match"));
    }

    #[test]
    fn settings_choose_the_header_the_encoding_and_the_envelope() {
        let body = body();
        let b64 = WebhookVerifier::new(KEY, WebhookSettings::default().encoding(SignatureEncoding::Base64)).unwrap();
        let signature = b64.sign(&body);
        assert_eq!(signature.len(), 44);
        b64.verify(&body, header(&signature)).unwrap();
        let hex_only = WebhookVerifier::new(KEY, WebhookSettings::default().encoding(SignatureEncoding::Hex)).unwrap();
        assert!(hex_only.verify(&body, header(&signature)).unwrap_err().message().contains("hex (64 digits)"));

        let custom = WebhookSettings::default().signature_header("X-Sig").unwrap();
        let v = WebhookVerifier::new(KEY, custom).unwrap();
        v.verify(&body, [("x-sig", sign(&body, KEY))]).unwrap();
        assert!(v.verify(&body, header(&sign(&body, KEY))).is_err());
        assert_eq!(
            WebhookSettings::default().signature_header("bad header").unwrap_err().code(),
            ErrorCode::Configuration
        );

        let plain = br#"{"hello": "world"}"#;
        let e = verify(plain, header(&sign(plain, KEY)), KEY).unwrap_err();
        assert!(e.message().contains("signature is valid") && e.message().contains("\"specversion\""), "{e}");
        let any = WebhookVerifier::new(KEY, WebhookSettings::default().envelope(Envelope::Any)).unwrap();
        let event = any.verify(plain, header(&sign(plain, KEY))).unwrap();
        assert_eq!(event.id.len(), 64);
        assert_eq!(event.extensions["hello"], json!("world"));
        let not_json = b"nope";
        assert!(verify(not_json, header(&sign(not_json, KEY)), KEY).unwrap_err().message().contains("not JSON"));
    }

    #[test]
    fn keys_must_have_32_to_64_characters() {
        for bad in ["sekrit", &"x".repeat(31), &"x".repeat(65)] {
            let e = WebhookVerifier::new(bad, WebhookSettings::default()).unwrap_err();
            assert_eq!((e.code(), e.argument()), (ErrorCode::Configuration, Some("key")));
            assert!(!e.to_string().contains(bad));
        }
        WebhookVerifier::new("x".repeat(32), WebhookSettings::default()).unwrap();
        WebhookVerifier::new("x".repeat(64), WebhookSettings::default()).unwrap();
        let v = WebhookVerifier::new(KEY, WebhookSettings::default()).unwrap();
        assert!(!format!("{v:?}").contains(KEY));
    }

    #[tokio::test]
    async fn a_receiver_hands_over_each_event_once_and_says_what_to_answer() {
        let receiver = WebhookReceiver::builder().key(KEY).env_lookup(|_| None).build().unwrap();
        let body = body();
        let signed = header(&sign(&body, KEY));
        let first = receiver.receive(&body, signed.clone()).await;
        assert_eq!((first.status, first.duplicate), (200, false));
        let event = first.event.unwrap();
        assert!(first.error.is_none());
        let again = receiver.receive(&body, signed.clone()).await;
        assert_eq!((again.status, again.duplicate, again.event.is_none()), (200, true, true));
        assert_eq!(again.response_body(), r#"{"status":"duplicate"}"#);
        // After a failed handling, a retry is handed over again.
        receiver.release(&event).await.unwrap();
        assert!(receiver.receive(&body, signed.clone()).await.event.is_some());

        let refused = receiver.receive(b"{}", signed).await;
        assert_eq!(refused.status, 401);
        assert!(refused.response_body().contains("does not match"));
        let unsigned = br#"[1]"#;
        assert_eq!(receiver.receive(unsigned, header(&sign(unsigned, KEY))).await.status, 400);

        let small = WebhookReceiver::builder().key(KEY).max_body_bytes(10).env_lookup(|_| None).build().unwrap();
        assert_eq!(small.receive(&body, header("x")).await.status, 413);
    }

    #[test]
    fn the_builder_reads_the_environment() {
        let env = |name: &str| match name {
            "ST_WEBHOOK_KEY" => Some(KEY.to_owned()),
            "ST_WEBHOOK_SIGNATURE_HEADER" => Some("X-Sig".to_owned()),
            "ST_WEBHOOK_SIGNATURE_ENCODING" => Some("base64".to_owned()),
            "ST_WEBHOOK_DEDUPE_TTL_SECS" => Some("60".to_owned()),
            _ => None,
        };
        let r = WebhookReceiver::builder().env_lookup(env).build().unwrap();
        assert_eq!(r.verifier().settings().header(), "X-Sig");
        assert_eq!(r.verifier().settings().signature_encoding(), SignatureEncoding::Base64);
        assert_eq!(r.dedupe_ttl(), Duration::from_secs(60));
        let e = WebhookReceiver::builder().env_lookup(|_| None).build().unwrap_err();
        assert!(e.to_string().contains("ST_WEBHOOK_KEY"));
        let e = WebhookReceiver::builder()
            .env_lookup(|n| (n == "ST_WEBHOOK_SIGNATURE_ENCODING").then(|| "hexx".to_owned()))
            .key(KEY)
            .build()
            .unwrap_err();
        assert_eq!(e.argument(), Some("signature_encoding"));
    }
}
