//! Webhooks V2 as the sandbox sends them: subscriptions registered through the control API, signed CloudEvents delivered over HTTP, failed deliveries retried on the real schedule (time-scaled for tests).
//!
//! ServiceTitan publishes neither the signature header nor its encoding, nor a list of event
//! types: the sandbox signs with HMAC-SHA256 over the raw body under
//! `webhook_signature_header` (default `X-ServiceTitan-Signature`) in `webhook_signature_encoding`
//! (default hex), and names its customer events `tn.crm.customer-created` and
//! `tn.crm.customer-updated` (provisional). `tn.rpr.report-data-ready` is ServiceTitan's own.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{header, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::watch;

use crate::config::SandboxConfig;
use crate::util::{format_rfc3339_ms, mix_all, now_unix_ms};

/// A tenant's webhook subscription: where to deliver, the app's HMAC key, and which event
/// types (all when empty).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSubscription {
    /// The tenant whose events are sent.
    pub tenant: i64,
    /// `http://host:port/path` (the sandbox speaks plain HTTP only).
    pub url: String,
    /// The HMAC key, 32 to 64 characters.
    pub key: String,
    /// Event types to send; empty or absent: every type.
    #[serde(default)]
    pub events: Vec<String>,
}

impl std::fmt::Debug for WebhookSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSubscription")
            .field("tenant", &self.tenant)
            .field("url", &self.url)
            .field("key", &"***")
            .field("events", &self.events)
            .finish()
    }
}

impl WebhookSubscription {
    fn validate(&self, config: &SandboxConfig) -> Result<Uri, String> {
        if !config.tenants.iter().any(|t| t.id == self.tenant) {
            let known: Vec<String> = config.tenants.iter().map(|t| t.id.to_string()).collect();
            return Err(format!(
                "tenant: the sandbox has no tenant {}; its tenants are {}",
                self.tenant,
                known.join(", ")
            ));
        }
        let chars = self.key.chars().count();
        if !(32..=64).contains(&chars) {
            return Err("key: the HMAC key must be 32 to 64 characters".into());
        }
        let uri: Uri = self.url.parse().map_err(|_| format!("url: {:?} is not a URL", self.url))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(format!(
                "url: expected http://host[:port]/path (the sandbox sends over plain HTTP), got {:?}",
                self.url
            ));
        }
        Ok(uri)
    }

    fn wants(&self, event_type: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == event_type)
    }
}

/// One attempt at delivering an event.
#[derive(Clone, Debug, Serialize)]
pub struct DeliveryAttempt {
    /// When it started, Unix ms.
    pub at_ms: i64,
    /// The receiver's status, if it answered.
    pub status: Option<u16>,
    /// What went wrong, if it did not answer with a 2xx.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An event sent (or being sent) to one subscription.
#[derive(Clone, Debug, Serialize)]
pub struct Delivery {
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub tenant: i64,
    pub subscription: u64,
    pub url: String,
    /// `pending` (an attempt or a retry is to come), `delivered` or `failed` (every retry spent,
    /// or the subscription was removed).
    pub state: &'static str,
    /// A replay from the control API, as from the developer portal.
    pub replay: bool,
    pub attempts: Vec<DeliveryAttempt>,
}

struct Registered {
    id: u64,
    subscription: WebhookSubscription,
    uri: Uri,
}

struct Sent {
    event: Value,
    body: Bytes,
    tenant: i64,
    event_type: String,
}

/// The webhook state of one sandbox.
pub(crate) struct Webhooks {
    config: SandboxConfig,
    nonce: u64,
    runtime: tokio::runtime::Handle,
    stop: watch::Sender<bool>,
    // Bumped when subscriptions are removed, so that deliveries waiting for a retry notice.
    removed: watch::Sender<u64>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next_subscription: u64,
    next_event: u64,
    subscriptions: Vec<Registered>,
    deliveries: Vec<Delivery>,
    // Events kept for replays (bodies are small; a sandbox lives for a test run).
    sent: Vec<Sent>,
}

impl Webhooks {
    pub(crate) fn new(config: SandboxConfig, nonce: u64) -> Arc<Self> {
        Arc::new(Webhooks {
            config,
            nonce,
            runtime: tokio::runtime::Handle::current(),
            stop: watch::channel(false).0,
            removed: watch::channel(0).0,
            inner: Mutex::new(Inner::default()),
        })
    }

    /// Ends every pending delivery (the sandbox is shutting down).
    pub(crate) fn stop(&self) {
        self.stop.send_replace(true);
    }

    pub(crate) fn register(&self, subscription: WebhookSubscription) -> Result<u64, String> {
        let uri = subscription.validate(&self.config)?;
        let mut inner = self.inner.lock().unwrap();
        inner.next_subscription += 1;
        let id = inner.next_subscription;
        inner.subscriptions.push(Registered { id, subscription, uri });
        Ok(id)
    }

    /// The subscriptions, keys masked.
    pub(crate) fn subscriptions(&self) -> Value {
        let inner = self.inner.lock().unwrap();
        Value::Array(
            inner
                .subscriptions
                .iter()
                .map(|r| {
                    json!({"id": r.id, "tenant": r.subscription.tenant, "url": r.subscription.url,
                           "key": "***", "events": r.subscription.events})
                })
                .collect(),
        )
    }

    /// Removes every subscription; their pending deliveries end as `failed`.
    pub(crate) fn clear(&self) {
        self.inner.lock().unwrap().subscriptions.clear();
        self.removed.send_modify(|n| *n += 1);
    }

    pub(crate) fn deliveries(&self) -> Vec<Delivery> {
        self.inner.lock().unwrap().deliveries.clone()
    }

    /// Sends a new event of `tenant` to every subscription that wants it; returns its id.
    pub(crate) fn emit(self: &Arc<Self>, tenant: i64, event_type: &str, source: &str, data: Value) -> String {
        let mut inner = self.inner.lock().unwrap();
        inner.next_event += 1;
        let n = inner.next_event;
        let (a, b) = (mix_all(&[self.nonce, n, 1]), mix_all(&[self.nonce, n, 2]));
        // Shaped as a UUID v4, as event ids usually are.
        let id = format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            (b >> 48) & 0xfff,
            b & 0xffff_ffff_ffff
        );
        let event = json!({
            "specversion": "1.0",
            "id": id,
            "source": source,
            "type": event_type,
            "time": format_rfc3339_ms(now_unix_ms()),
            "datacontenttype": "application/json",
            "tenantid": tenant,
            "data": data,
        });
        let body = Bytes::from(serde_json::to_vec(&event).expect("an event serializes"));
        inner.sent.push(Sent { event, body: body.clone(), tenant, event_type: event_type.to_owned() });
        self.dispatch(&mut inner, &id, tenant, event_type, body, false);
        id
    }

    /// Sends an event again, same id and body, as a replay from the developer portal does;
    /// returns how many deliveries started.
    pub(crate) fn replay(self: &Arc<Self>, event_id: &str) -> Result<usize, String> {
        let mut inner = self.inner.lock().unwrap();
        let Some(sent) = inner.sent.iter().find(|s| s.event["id"] == event_id) else {
            return Err(format!("event_id: no event {event_id:?} was sent by this sandbox"));
        };
        let (tenant, event_type, body) = (sent.tenant, sent.event_type.clone(), sent.body.clone());
        Ok(self.dispatch(&mut inner, event_id, tenant, &event_type, body, true))
    }

    fn dispatch(
        self: &Arc<Self>,
        inner: &mut Inner,
        event_id: &str,
        tenant: i64,
        event_type: &str,
        body: Bytes,
        replay: bool,
    ) -> usize {
        let targets: Vec<(u64, Uri, String, String)> = inner
            .subscriptions
            .iter()
            .filter(|r| r.subscription.tenant == tenant && r.subscription.wants(event_type))
            .map(|r| (r.id, r.uri.clone(), r.subscription.url.clone(), r.subscription.key.clone()))
            .collect();
        for (subscription, uri, url, key) in &targets {
            let index = inner.deliveries.len();
            inner.deliveries.push(Delivery {
                event_id: event_id.to_owned(),
                event_type: event_type.to_owned(),
                tenant,
                subscription: *subscription,
                url: url.clone(),
                state: "pending",
                replay,
                attempts: Vec::new(),
            });
            let signature = self.sign(key, &body);
            let this = self.clone();
            let (uri, body, subscription) = (uri.clone(), body.clone(), *subscription);
            self.runtime.spawn(async move { this.deliver(index, subscription, uri, body, signature).await });
        }
        targets.len()
    }

    fn sign(&self, key: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes keys of any length");
        mac.update(body);
        let tag = mac.finalize().into_bytes();
        if self.config.webhook_signature_encoding.eq_ignore_ascii_case("base64") {
            base64::engine::general_purpose::STANDARD.encode(tag)
        } else {
            tag.iter().map(|b| format!("{b:02x}")).collect()
        }
    }

    /// The first attempt at once, then one after each delay of the schedule (scaled), until a
    /// 2xx, the end of the schedule, the subscription's removal or the sandbox's shutdown.
    async fn deliver(self: Arc<Self>, index: usize, subscription: u64, uri: Uri, body: Bytes, signature: String) {
        let mut stop = self.stop.subscribe();
        let mut removed = self.removed.subscribe();
        let registered = |this: &Self| this.inner.lock().unwrap().subscriptions.iter().any(|r| r.id == subscription);
        let delays: Vec<Duration> = self
            .config
            .webhook_retry_delays_secs
            .iter()
            .map(|s| Duration::from_secs_f64((s * self.config.webhook_time_scale).max(0.0)))
            .collect();
        for attempt in 0..=delays.len() {
            if attempt > 0 {
                let retry_at = tokio::time::Instant::now() + delays[attempt - 1];
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep_until(retry_at) => break,
                        _ = stop.wait_for(|stopped| *stopped) => return,
                        _ = removed.changed() => {
                            if !registered(&self) {
                                break;
                            }
                        }
                    }
                }
            }
            if !registered(&self) {
                self.inner.lock().unwrap().deliveries[index].state = "failed";
                return;
            }
            let at_ms = now_unix_ms();
            let timeout = Duration::from_millis(self.config.webhook_timeout_ms);
            let outcome = tokio::select! {
                outcome = tokio::time::timeout(timeout, self.post(&uri, body.clone(), &signature)) => {
                    outcome.unwrap_or_else(|_| Err(format!("no answer within {} ms", timeout.as_millis())))
                }
                _ = stop.wait_for(|stopped| *stopped) => return,
            };
            let mut inner = self.inner.lock().unwrap();
            let delivery = &mut inner.deliveries[index];
            match outcome {
                Ok(status) if (200..300).contains(&status) => {
                    delivery.attempts.push(DeliveryAttempt { at_ms, status: Some(status), error: None });
                    delivery.state = "delivered";
                    return;
                }
                Ok(status) => delivery.attempts.push(DeliveryAttempt {
                    at_ms,
                    status: Some(status),
                    error: Some(format!("answered {status}")),
                }),
                Err(error) => delivery.attempts.push(DeliveryAttempt { at_ms, status: None, error: Some(error) }),
            }
            if attempt == delays.len() {
                delivery.state = "failed";
            }
        }
    }

    async fn post(&self, uri: &Uri, body: Bytes, signature: &str) -> Result<u16, String> {
        let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(80);
        let stream = tokio::net::TcpStream::connect((host, port)).await.map_err(|e| format!("cannot connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake failed: {e}"))?;
        let connection = tokio::spawn(connection);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let authority = uri.authority().map_or(host, |a| a.as_str());
        let request = Request::post(path)
            .header(header::HOST, authority)
            .header(header::CONTENT_TYPE, "application/cloudevents+json; charset=utf-8")
            .header(header::USER_AGENT, "servicetitan-sandbox-webhooks")
            .header(self.config.webhook_signature_header.as_str(), signature)
            .body(Full::new(body))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let response = sender.send_request(request).await.map_err(|e| format!("the request failed: {e}"))?;
        let status = response.status().as_u16();
        // The answer's body means nothing; read a little of it so the connection ends cleanly.
        let _ = Limited::new(response.into_body(), 64 * 1024).collect().await;
        connection.abort();
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_are_checked_and_never_print_their_key() {
        let config = SandboxConfig::default();
        let ok = WebhookSubscription {
            tenant: 1001,
            url: "http://127.0.0.1:9/hook".into(),
            key: "k".repeat(32),
            events: vec![],
        };
        assert!(ok.validate(&config).is_ok());
        assert!(!format!("{ok:?}").contains(&"k".repeat(32)));
        let bad = |f: &dyn Fn(&mut WebhookSubscription)| {
            let mut s = ok.clone();
            f(&mut s);
            s.validate(&config).unwrap_err()
        };
        assert!(bad(&|s| s.tenant = 7).starts_with("tenant:"));
        assert!(bad(&|s| s.key = "short".into()).starts_with("key:"));
        assert!(bad(&|s| s.url = "https://example.com/hook".into()).starts_with("url:"));
        assert!(bad(&|s| s.url = "not a url".into()).starts_with("url:"));
    }
}
