//! `Client` and `Tenant`: options in, engine calls out, JSON bytes back.
//!
//! Results cross as the response's JSON bytes and are parsed by `JSON.parse` in the wrapper:
//! V8 builds objects from JSON text much faster than Node-API can property by property.

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::{Buffer, Function, PromiseRaw};
use napi::Env;
use napi_derive::napi;
use serde_json::Value;
use servicetitan::{Client, Method, TenantCredentials};

use crate::cancel::{token, Canceller};
use crate::error::{configuration, configuration_for, engine, internal};
use crate::guard;
use crate::json;
use crate::logging::{self, LogRecord, LoggerRegistration};
use crate::stream::NativeRecordStream;

/// `new Client(options)` after the wrapper flattened it; every field falls back to its
/// environment variable, then to the engine's default. Durations in milliseconds.
#[napi(object)]
#[derive(Default)]
pub struct NativeClientOptions {
    pub app_key: Option<String>,
    pub environment: Option<String>,
    pub auth_url: Option<String>,
    pub api_url: Option<String>,
    /// 0 turns the per-tenant limiter off.
    pub rate_limit_calls: Option<u32>,
    pub rate_limit_period_ms: Option<f64>,
    pub rate_limit_margin_ms: Option<f64>,
    /// `false` keeps the margin fixed.
    pub rate_limit_margin_adaptive: Option<bool>,
    /// 0 turns the per-report limiter off.
    pub report_rate_limit_calls: Option<u32>,
    pub report_rate_limit_period_ms: Option<f64>,
    pub max_attempts: Option<u32>,
    pub backoff_base_ms: Option<f64>,
    pub backoff_max_ms: Option<f64>,
    pub timeout_ms: Option<f64>,
    pub connect_timeout_ms: Option<f64>,
    pub attempt_timeout_ms: Option<f64>,
    pub max_retry_after_ms: Option<f64>,
    /// PEM texts of extra root certificates.
    pub ca_certificates: Option<Vec<String>>,
    /// Share tokens and rate limits with every process on this Redis (`ST_REDIS_URL`).
    pub redis_url: Option<String>,
    /// Prefix of the Redis keys (`ST_REDIS_KEY_PREFIX`, default `servicetitan`).
    pub redis_key_prefix: Option<String>,
    /// A 32-byte key (hex or base64) combined with the key derived from each client secret to seal
    /// the tokens cached in Redis, which are encrypted either way (`ST_REDIS_TOKEN_KEY`).
    pub redis_token_key: Option<String>,
    /// On Redis failure, an in-process limit at this share of the budget (`ST_REDIS_FALLBACK_SHARE`).
    pub redis_fallback_share: Option<f64>,
}

/// `client.stats()`.
#[napi(object)]
pub struct ClientStats {
    /// API requests sent (every attempt, resends included; token requests excluded).
    pub requests: i64,
    /// Resends: after a 429, a 5xx, a timeout, a connection failure or a 401.
    pub retries: i64,
    /// Token requests sent to the token service.
    pub token_fetches: i64,
    /// 429 responses received.
    pub rate_limited: i64,
    /// Time calls spent waiting for the rate limiters, summed over calls, in milliseconds.
    pub throttle_wait_ms: f64,
}

fn millis(name: &str, ms: f64) -> napi::Result<Duration> {
    Duration::try_from_secs_f64(ms / 1000.0)
        .map_err(|_| configuration(format!("invalid {name}: expected a non-negative number of milliseconds, got {ms}")))
}

#[napi]
pub struct NativeClient {
    inner: Client,
    logger: Option<Arc<LoggerRegistration>>,
}

/// The span a call runs in: routes its debug output to the client's logger, if it has one.
pub(crate) fn call_span(logger: &Option<Arc<LoggerRegistration>>) -> tracing::Span {
    logger.as_ref().map_or_else(tracing::Span::none, |l| l.span())
}

#[napi]
impl NativeClient {
    #[napi(constructor)]
    pub fn new(options: Option<NativeClientOptions>, logger: Option<Function<LogRecord, ()>>) -> napi::Result<Self> {
        guard::sync(|| Self::build(options.unwrap_or_default(), logger))
    }

    /// A tenant; credentials fall back to `ST_CLIENT_ID` / `ST_CLIENT_SECRET` and are checked now.
    #[napi]
    pub fn tenant(
        &self,
        id: i64,
        client_id: Option<String>,
        client_secret: Option<String>,
    ) -> napi::Result<NativeTenant> {
        guard::sync(|| {
            let credentials = TenantCredentials::resolve(Some(id), client_id, client_secret).map_err(|e| engine(&e))?;
            let inner = self.inner.try_tenant(credentials).map_err(|e| engine(&e))?;
            Ok(NativeTenant { inner, logger: self.logger.clone() })
        })
    }

    #[napi]
    pub fn stats(&self) -> napi::Result<ClientStats> {
        guard::sync(|| {
            let s = self.inner.stats();
            Ok(ClientStats {
                requests: s.requests as i64,
                retries: s.retries as i64,
                token_fetches: s.token_fetches as i64,
                rate_limited: s.rate_limited as i64,
                throttle_wait_ms: s.throttle_wait.as_secs_f64() * 1000.0,
            })
        })
    }
}

impl NativeClient {
    fn build(o: NativeClientOptions, logger: Option<Function<LogRecord, ()>>) -> napi::Result<Self> {
        logging::install();
        let logger = logger.map(LoggerRegistration::new).transpose()?.map(Arc::new);
        let mut b = Client::builder().language("node");
        if let Some(v) = o.app_key {
            b = b.app_key(v);
        }
        if let Some(v) = o.environment {
            b = b.environment_name(v);
        }
        if let Some(v) = o.auth_url {
            b = b.auth_url(v);
        }
        if let Some(v) = o.api_url {
            b = b.api_url(v);
        }
        // Each half of a pair on its own: the engine takes a missing one from its environment
        // variable, then its default.
        if let Some(v) = o.rate_limit_calls {
            b = b.rate_limit_calls(v);
        }
        if let Some(v) = o.rate_limit_period_ms {
            b = b.rate_limit_period(millis("rateLimit.periodMs", v)?);
        }
        if let Some(v) = o.rate_limit_margin_ms {
            b = b.rate_limit_margin(millis("rateLimit.marginMs", v)?);
        }
        if let Some(on) = o.rate_limit_margin_adaptive {
            b = b.rate_limit_margin_adaptive(on);
        }
        if let Some(v) = o.report_rate_limit_calls {
            b = b.report_rate_limit_calls(v);
        }
        if let Some(v) = o.report_rate_limit_period_ms {
            b = b.report_rate_limit_period(millis("reportRateLimit.periodMs", v)?);
        }
        if let Some(v) = o.max_attempts {
            b = b.max_attempts(v);
        }
        if let Some(v) = o.backoff_base_ms {
            b = b.backoff_base(millis("backoff.baseMs", v)?);
        }
        if let Some(v) = o.backoff_max_ms {
            b = b.backoff_max(millis("backoff.maxMs", v)?);
        }
        if let Some(v) = o.timeout_ms {
            b = b.timeout(millis("timeoutMs", v)?);
        }
        if let Some(v) = o.connect_timeout_ms {
            b = b.connect_timeout(millis("connectTimeoutMs", v)?);
        }
        if let Some(v) = o.attempt_timeout_ms {
            b = b.attempt_timeout(millis("attemptTimeoutMs", v)?);
        }
        if let Some(v) = o.max_retry_after_ms {
            b = b.max_retry_after(millis("maxRetryAfterMs", v)?);
        }
        for pem in o.ca_certificates.unwrap_or_default() {
            b = b.add_root_certificate_pem(pem.into_bytes());
        }
        if let Some(v) = o.redis_url {
            b = b.redis_url(v);
        }
        if let Some(v) = o.redis_key_prefix {
            b = b.redis_key_prefix(v);
        }
        if let Some(v) = o.redis_token_key {
            b = b.redis_token_key(v);
        }
        if let Some(v) = o.redis_fallback_share {
            b = b.redis_fallback_share(v);
        }
        let inner = b.build().map_err(|e| engine(&e))?;
        Ok(NativeClient { inner, logger })
    }
}

/// One call's options after the wrapper flattened them.
#[napi(object)]
#[derive(Default)]
pub struct NativeRequestOptions {
    /// Query parameters as `[name, value, name, value, …]`: flat, so that crossing into Rust
    /// is one array of strings.
    pub query: Option<Vec<String>>,
    /// The JSON body as text, made by the wrapper's converter (`node/convert.js`).
    pub json: Option<String>,
    pub safe_to_retry: Option<bool>,
    pub timeout_ms: Option<f64>,
}

fn pairs(flat: Option<Vec<String>>) -> Vec<(String, String)> {
    let mut flat = flat.unwrap_or_default().into_iter();
    let mut out = Vec::with_capacity(flat.len() / 2);
    while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
        out.push((k, v));
    }
    out
}

#[napi]
pub struct NativeTenant {
    pub(crate) inner: servicetitan::Tenant,
    pub(crate) logger: Option<Arc<LoggerRegistration>>,
}

/// A response body and the URL of the call it answers (the engine's, for decode errors).
#[napi(object)]
pub struct NativeResponse {
    pub body: Buffer,
    pub url: String,
}

#[napi]
impl NativeTenant {
    #[napi(getter)]
    pub fn id(&self) -> i64 {
        self.inner.id()
    }

    /// One call; resolves with the response body's bytes (empty for a 204) and the call's URL.
    #[napi(ts_return_type = "Promise<NativeResponse>")]
    pub fn request<'env>(
        &self,
        env: &'env Env,
        method: String,
        path: String,
        options: Option<NativeRequestOptions>,
        canceller: Option<&Canceller>,
    ) -> napi::Result<PromiseRaw<'env, NativeResponse>> {
        guard::sync(|| {
            let o = options.unwrap_or_default();
            let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                .map_err(|_| configuration(format!("invalid method {method:?}")))?;
            let body = o.json.map(|text| json::parse(&text, "json")).transpose()?;
            let mut request = self.inner.request(method, path).query_pairs(pairs(o.query)).json_value(body);
            if o.safe_to_retry == Some(true) {
                request = request.safe_to_retry();
            }
            if let Some(ms) = o.timeout_ms {
                request = request.timeout(millis("timeoutMs", ms)?);
            }
            let call = async move {
                let body = request.send_body().await.map_err(|e| engine(&e))?;
                let url = body.url().to_owned();
                Ok(NativeResponse { body: Buffer::from(Vec::from(body.into_bytes())), url })
            };
            guard::spawn(env, token(canceller), call_span(&self.logger), call)
        })
    }

    /// The records of a page-based list.
    #[napi]
    pub fn paginate(
        &self,
        path: String,
        query: Option<Vec<String>>,
        page_size: Option<u32>,
    ) -> napi::Result<NativeRecordStream> {
        guard::sync(|| {
            let mut list = self.inner.paginate::<Value>(path).param_pairs(pairs(query));
            if let Some(size) = page_size {
                list = list.page_size(size);
            }
            Ok(NativeRecordStream::new(list.raw_records(), call_span(&self.logger)))
        })
    }

    /// The records of an export feed, with its checkpoint.
    #[napi]
    pub fn export(
        &self,
        path: String,
        since: Option<String>,
        query: Option<Vec<String>>,
    ) -> napi::Result<NativeRecordStream> {
        guard::sync(|| {
            let mut feed = self.inner.export::<Value>(path).since(since);
            for (k, v) in pairs(query) {
                feed = feed.param(k, v);
            }
            Ok(NativeRecordStream::new(feed.raw_records(), call_span(&self.logger)))
        })
    }

    /// A report's data as named records; resolves with a JSON array's bytes.
    /// `parameters` is a JSON object as text (name → value).
    #[napi(ts_return_type = "Promise<Buffer>")]
    pub fn report<'env>(
        &self,
        env: &'env Env,
        category: String,
        report_id: i64,
        parameters: Option<String>,
        canceller: Option<&Canceller>,
    ) -> napi::Result<PromiseRaw<'env, Buffer>> {
        guard::sync(|| {
            let parameters = match parameters.map(|text| json::parse(&text, "parameters")).transpose()? {
                Some(Value::Object(map)) => map,
                None | Some(Value::Null) => Default::default(),
                Some(_) => {
                    return Err(configuration_for(
                        "parameters",
                        "invalid parameters: expected an object of name → value",
                    ))
                }
            };
            let query = self.inner.report(category, report_id).parameters(parameters);
            let call = async move {
                let records = query.records().await.map_err(|e| engine(&e))?;
                json_bytes(&records)
            };
            guard::spawn(env, token(canceller), call_span(&self.logger), call)
        })
    }

    /// The report categories; resolves with a JSON array's bytes (`{ id, name }` each).
    #[napi(ts_return_type = "Promise<Buffer>")]
    pub fn report_categories<'env>(
        &self,
        env: &'env Env,
        canceller: Option<&Canceller>,
    ) -> napi::Result<PromiseRaw<'env, Buffer>> {
        let tenant = self.inner.clone();
        let call = async move { json_bytes(&tenant.report_categories().await.map_err(|e| engine(&e))?) };
        guard::spawn(env, token(canceller), call_span(&self.logger), call)
    }

    /// The reports of a category; resolves with a JSON array's bytes (`{ id, name, description }` each).
    #[napi(ts_return_type = "Promise<Buffer>")]
    pub fn reports<'env>(
        &self,
        env: &'env Env,
        category: String,
        canceller: Option<&Canceller>,
    ) -> napi::Result<PromiseRaw<'env, Buffer>> {
        let tenant = self.inner.clone();
        let call = async move { json_bytes(&tenant.reports(&category).await.map_err(|e| engine(&e))?) };
        guard::spawn(env, token(canceller), call_span(&self.logger), call)
    }

    /// A report's description; resolves with a JSON object's bytes
    /// (`{ id, name, description, parameters, fields }`).
    #[napi(ts_return_type = "Promise<Buffer>")]
    pub fn report_metadata<'env>(
        &self,
        env: &'env Env,
        category: String,
        report_id: i64,
        canceller: Option<&Canceller>,
    ) -> napi::Result<PromiseRaw<'env, Buffer>> {
        let tenant = self.inner.clone();
        let call =
            async move { json_bytes(&tenant.report_metadata(&category, report_id).await.map_err(|e| engine(&e))?) };
        guard::spawn(env, token(canceller), call_span(&self.logger), call)
    }
}

/// An engine value as JSON bytes (its camelCase serde names), for `JSON.parse` in the wrapper.
fn json_bytes<T: serde::Serialize>(value: &T) -> napi::Result<Buffer> {
    let bytes = serde_json::to_vec(value).map_err(|e| internal(format_args!("a result does not serialize: {e}")))?;
    Ok(Buffer::from(bytes))
}
