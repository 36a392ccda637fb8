//! `new Sandbox(options)`: the engine's test double, `servicetitan_sandbox::BackgroundSandbox`,
//! started in-process.
//!
//! The sandbox runs on a thread and runtime of its own, never on a libuv handle, so a sandbox
//! that is still open cannot keep Node's event loop alive; `close()` stops that thread off the
//! JavaScript thread (the join can take a few milliseconds while connections end).

use std::sync::{Arc, Mutex};

use napi::{Env, Task};
use napi_derive::napi;
use serde_json::Value;
use servicetitan_sandbox::{BackgroundSandbox, Fault, SandboxConfig, WebhookSubscription};

use crate::error::configuration;
use crate::{guard, json};

/// A running sandbox. Options and answers use the sandbox's own snake_case keys: the JS
/// wrapper converts key case.
#[napi]
pub struct NativeSandbox {
    // Shared with the close task, which takes the sandbox out to stop it.
    running: Arc<Mutex<Option<BackgroundSandbox>>>,
    base_url: String,
    config: Value,
}

#[napi]
impl NativeSandbox {
    /// Starts a sandbox; `config` is a `SandboxConfig` as JSON text (snake_case, every key
    /// optional).
    #[napi(constructor)]
    pub fn new(config: Option<String>) -> napi::Result<Self> {
        guard::sync(|| {
            let config: SandboxConfig = match config.map(|text| json::parse(&text, "options")).transpose()? {
                None | Some(Value::Null) => SandboxConfig::default(),
                Some(value) => {
                    serde_json::from_value(value).map_err(|e| configuration(format!("invalid sandbox options: {e}")))?
                }
            };
            let sandbox = BackgroundSandbox::start(config)
                .map_err(|e| configuration(format!("the sandbox did not start: {e}")))?;
            let config = serde_json::to_value(sandbox.config())
                .map_err(|e| configuration(format!("the sandbox configuration does not serialize: {e}")))?;
            Ok(NativeSandbox {
                base_url: sandbox.base_url().to_string(),
                running: Arc::new(Mutex::new(Some(sandbox))),
                config,
            })
        })
    }

    /// `http://127.0.0.1:PORT`: the base of both the token endpoint and the API.
    #[napi(getter)]
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The configuration in force, defaults filled in (sandbox credentials included: they are
    /// the documented demo ones or the caller's own).
    #[napi]
    pub fn config(&self) -> Value {
        self.config.clone()
    }

    /// What reached the server so far, as `GET /__sandbox/stats` answers.
    #[napi]
    pub fn stats(&self) -> napi::Result<Value> {
        self.with(|s| s.stats())
    }

    /// The operations the sandbox serves, as `"METHOD route-template"` (the keys of the stats'
    /// `routes`); other documented operations answer 404.
    #[napi]
    pub fn implemented_operations() -> Vec<String> {
        servicetitan_sandbox::implemented_operations().into_iter().map(|(m, t)| format!("{m} {t}")).collect()
    }

    #[napi]
    pub fn reset_stats(&self) -> napi::Result<()> {
        self.with(|s| s.reset_stats())
    }

    /// Arms a fault; `fault` is a sandbox `Fault` as JSON text (snake_case).
    #[napi]
    pub fn add_fault(&self, fault: String) -> napi::Result<()> {
        guard::sync(|| {
            let fault: Fault = serde_json::from_value(json::parse(&fault, "fault")?)
                .map_err(|e| configuration(format!("invalid fault: {e}")))?;
            self.with(|s| s.try_add_fault(fault))?.map_err(|e| configuration(format!("invalid fault: {e}")))
        })
    }

    #[napi]
    pub fn clear_faults(&self) -> napi::Result<()> {
        self.with(|s| s.clear_faults())
    }

    /// Makes every token issued so far invalid, as a credential rotation would.
    #[napi]
    pub fn revoke_tokens(&self) -> napi::Result<()> {
        self.with(|s| s.revoke_tokens())
    }

    /// Registers a webhook subscription (JSON text of `{ tenant, url, key, events? }`, snake_case); returns
    /// its id.
    #[napi]
    pub fn register_webhook(&self, subscription: String) -> napi::Result<i64> {
        let subscription: WebhookSubscription = serde_json::from_str(&subscription)
            .map_err(|e| configuration(format!("invalid webhook subscription: {e}")))?;
        let id = self
            .with(|s| s.register_webhook(subscription))?
            .map_err(|e| configuration(format!("invalid webhook subscription: {e}")))?;
        Ok(id as i64)
    }

    /// The webhook subscriptions (keys masked).
    #[napi]
    pub fn webhook_subscriptions(&self) -> napi::Result<Value> {
        self.with(|s| s.webhook_subscriptions())
    }

    /// Removes every webhook subscription; their pending retries end.
    #[napi]
    pub fn clear_webhooks(&self) -> napi::Result<()> {
        self.with(|s| s.clear_webhooks())
    }

    /// Every webhook delivery so far, with its attempts (snake_case).
    #[napi]
    pub fn webhook_deliveries(&self) -> napi::Result<Value> {
        let deliveries = self.with(|s| s.webhook_deliveries())?;
        serde_json::to_value(deliveries).map_err(|e| configuration(format!("deliveries do not serialize: {e}")))
    }

    /// Sends an event again, same id and body; returns how many deliveries started.
    #[napi]
    pub fn replay_webhook(&self, event_id: String) -> napi::Result<u32> {
        let started = self.with(|s| s.replay_webhook(&event_id))?.map_err(|e| configuration(format!("invalid {e}")))?;
        Ok(started as u32)
    }

    /// Sends an event to a tenant's subscribers; returns the event id.
    #[napi]
    pub fn send_webhook_event(&self, tenant: i64, event_type: String, data: Option<String>) -> napi::Result<String> {
        let data = match data {
            Some(text) => serde_json::from_str(&text).map_err(|e| configuration(format!("invalid event data: {e}")))?,
            None => Value::Null,
        };
        self.with(|s| s.send_webhook_event(tenant, &event_type, data))?
            .map_err(|e| configuration(format!("invalid webhook event: {e}")))
    }

    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.running.lock().map(|s| s.is_none()).unwrap_or(true)
    }

    /// Stops the server and waits for its thread, on libuv's pool. Closing twice is harmless.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close(&self) -> napi::bindgen_prelude::AsyncTask<CloseSandbox> {
        let sandbox = self.running.lock().ok().and_then(|mut s| s.take());
        napi::bindgen_prelude::AsyncTask::new(CloseSandbox { sandbox })
    }
}

impl NativeSandbox {
    fn with<T>(&self, f: impl FnOnce(&BackgroundSandbox) -> T) -> napi::Result<T> {
        guard::sync(|| {
            let running = self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            match running.as_ref() {
                Some(sandbox) => Ok(f(sandbox)),
                None => Err(configuration("the sandbox is closed")),
            }
        })
    }
}

pub struct CloseSandbox {
    sandbox: Option<BackgroundSandbox>,
}

impl Task for CloseSandbox {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> napi::Result<()> {
        guard::sync(|| {
            if let Some(mut sandbox) = self.sandbox.take() {
                sandbox.stop();
            }
            Ok(())
        })
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> napi::Result<()> {
        Ok(())
    }
}
