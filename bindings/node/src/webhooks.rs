//! Webhooks: the engine's verifier and receiver for `node/webhooks.js`. Bodies cross as
//! Buffers, headers as a flat `[name, value, …]` list, events as JSON text (parsed by the
//! wrapper with `JSON.parse`).
// napi registers the free functions only outside test builds.
#![cfg_attr(test, allow(dead_code))]

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::{Buffer, PromiseRaw};
use napi::Env;
use napi_derive::napi;
use servicetitan::webhooks::{
    Envelope, Receipt, SignatureEncoding, WebhookEvent, WebhookReceiver, WebhookSettings, WebhookVerifier,
};

use crate::error::{configuration, engine};

/// `[name, value, name, value, …]` as pairs; an odd last name is dropped.
fn header_pairs(flat: Vec<String>) -> Vec<(String, String)> {
    let mut pairs = Vec::with_capacity(flat.len() / 2);
    let mut items = flat.into_iter();
    while let (Some(name), Some(value)) = (items.next(), items.next()) {
        pairs.push((name, value));
    }
    pairs
}

/// How the signature and the envelope are read (each optional: the engine's defaults).
#[napi(object)]
#[derive(Default)]
pub struct NativeVerifyOptions {
    pub signature_header: Option<String>,
    /// `any`, `hex` or `base64`.
    pub encoding: Option<String>,
    /// `cloudevents` or `any`.
    pub envelope: Option<String>,
}

fn settings(o: NativeVerifyOptions) -> servicetitan::Result<WebhookSettings> {
    let mut settings = WebhookSettings::default();
    if let Some(name) = o.signature_header {
        settings = settings.signature_header(name)?;
    }
    if let Some(encoding) = o.encoding {
        settings = settings.encoding(SignatureEncoding::parse(&encoding)?);
    }
    if let Some(envelope) = o.envelope {
        settings = settings.envelope(Envelope::parse(&envelope)?);
    }
    Ok(settings)
}

fn event_json(event: &WebhookEvent) -> String {
    event.to_json().to_string()
}

/// Checks a delivery's signature; returns its event as JSON text, or throws a `webhook` error.
#[napi]
pub fn verify_webhook(
    body: Buffer,
    headers: Vec<String>,
    key: String,
    options: Option<NativeVerifyOptions>,
) -> napi::Result<String> {
    let verifier =
        settings(options.unwrap_or_default()).and_then(|s| WebhookVerifier::new(key, s)).map_err(|e| engine(&e))?;
    let event = verifier.verify(&body, header_pairs(headers)).map_err(|e| engine(&e))?;
    Ok(event_json(&event))
}

/// The signature of `body` under `key` (hex, or base64 with `encoding: 'base64'`).
#[napi]
pub fn sign_webhook(body: Buffer, key: String, encoding: Option<String>) -> napi::Result<String> {
    let options = NativeVerifyOptions { encoding, ..NativeVerifyOptions::default() };
    let verifier = settings(options).and_then(|s| WebhookVerifier::new(key, s)).map_err(|e| engine(&e))?;
    Ok(verifier.sign(&body))
}

/// `new WebhookReceiver(options)` after the wrapper flattened it; every field falls back to
/// its environment variable (`ST_WEBHOOK_KEY`, …, `ST_REDIS_URL`), then to the default.
#[napi(object)]
#[derive(Default)]
pub struct NativeWebhookReceiverOptions {
    pub key: Option<String>,
    pub signature_header: Option<String>,
    pub encoding: Option<String>,
    pub envelope: Option<String>,
    pub dedupe_ttl_ms: Option<f64>,
    pub max_body_bytes: Option<f64>,
    pub redis_url: Option<String>,
    pub redis_key_prefix: Option<String>,
}

/// What to answer a delivery, and the event to hand over (JSON text) the first time.
#[napi(object)]
pub struct NativeReceipt {
    pub status: u32,
    /// The JSON body to answer with.
    pub body: String,
    pub event: Option<String>,
    pub duplicate: bool,
}

impl From<Receipt> for NativeReceipt {
    fn from(r: Receipt) -> Self {
        NativeReceipt {
            status: u32::from(r.status),
            body: r.response_body(),
            event: r.event.as_ref().map(event_json),
            duplicate: r.duplicate,
        }
    }
}

#[napi]
pub struct NativeWebhookReceiver {
    inner: Arc<WebhookReceiver>,
}

#[napi]
impl NativeWebhookReceiver {
    #[napi(constructor)]
    pub fn new(options: Option<NativeWebhookReceiverOptions>) -> napi::Result<Self> {
        let o = options.unwrap_or_default();
        let mut b = WebhookReceiver::builder();
        if let Some(key) = o.key {
            b = b.key(key);
        }
        if let Some(name) = o.signature_header {
            b = b.signature_header(name);
        }
        if let Some(encoding) = o.encoding {
            b = b.encoding(SignatureEncoding::parse(&encoding).map_err(|e| engine(&e))?);
        }
        if let Some(envelope) = o.envelope {
            b = b.envelope(Envelope::parse(&envelope).map_err(|e| engine(&e))?);
        }
        if let Some(ms) = o.dedupe_ttl_ms {
            let ttl = Duration::try_from_secs_f64(ms / 1000.0).map_err(|_| {
                configuration(format!("invalid dedupeTtlMs: expected a number of milliseconds, got {ms}"))
            })?;
            b = b.dedupe_ttl(ttl);
        }
        if let Some(n) = o.max_body_bytes {
            if !(n.is_finite() && n >= 1.0 && n.fract() == 0.0) {
                return Err(configuration(format!("invalid maxBodyBytes: expected a whole number of bytes, got {n}")));
            }
            b = b.max_body_bytes(n as usize);
        }
        if let Some(url) = o.redis_url {
            b = b.redis_url(url);
        }
        if let Some(prefix) = o.redis_key_prefix {
            b = b.redis_key_prefix(prefix);
        }
        let inner = b.build().map_err(|e| engine(&e))?;
        Ok(NativeWebhookReceiver { inner: Arc::new(inner) })
    }

    /// The largest body accepted, in bytes.
    #[napi(getter)]
    pub fn max_body_bytes(&self) -> f64 {
        self.inner.max_body_bytes() as f64
    }

    /// The answer to a body found too large before it was all read (status 413).
    #[napi]
    pub fn too_large(&self) -> String {
        serde_json::json!({ "error": self.inner.too_large().message() }).to_string()
    }

    /// Verifies and deduplicates one delivery; never rejects for a bad delivery.
    #[napi(ts_return_type = "Promise<NativeReceipt>")]
    pub fn receive<'env>(
        &self,
        env: &'env Env,
        body: Buffer,
        headers: Vec<String>,
    ) -> napi::Result<PromiseRaw<'env, NativeReceipt>> {
        let inner = self.inner.clone();
        let body: Vec<u8> = body.to_vec();
        let headers = header_pairs(headers);
        env.spawn_future(async move { Ok(NativeReceipt::from(inner.receive(&body, headers).await)) })
    }

    /// Forgets that the event (JSON text, as `receive` gave it) was handled.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn release<'env>(&self, env: &'env Env, event: String) -> napi::Result<PromiseRaw<'env, ()>> {
        let event: WebhookEvent = serde_json::from_str(&event)
            .map_err(|e| configuration(format!("invalid event: expected an event as receive() gave it ({e})")))?;
        let inner = self.inner.clone();
        env.spawn_future(async move { inner.release(&event).await.map_err(|e| engine(&e)) })
    }
}
