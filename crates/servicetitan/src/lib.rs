//! A ServiceTitan API client: tokens, rate limits, retries, paging, exports and reports done right.
//!
//! One engine behind the Rust, Python and Node clients. Every call takes the same path:
//! **route** (`"crm/customers"` → `{api}/crm/v2/tenant/{tenant}/customers`) → **token**
//! (cached per environment, client id and secret fingerprint; one fetch for all concurrent
//! callers; refreshed ahead of expiry) → **admit** (at most N calls per tenant in any window of
//! one period plus a jitter margin, taken right before sending; a 429 pauses every caller of
//! the tenant) → **send** → **classify** (one rule for API calls, token requests and Redis:
//! 401: new token, resend once, unless it names the app key; 429: wait, resend; 5xx, 408,
//! timeouts, refused or reset connections: resend idempotent calls with backoff; a name that
//! does not resolve or a TLS failure: fail at once) → one typed [`Error`].
//!
//! ```no_run
//! use futures::TryStreamExt;
//! use servicetitan::{Client, Environment, TenantCredentials};
//!
//! # async fn demo() -> servicetitan::Result<()> {
//! let client = Client::builder()
//!     .app_key("ak1.example")
//!     .environment(Environment::Integration)
//!     .build()?;
//! let tenant = client.tenant(TenantCredentials::new(1234567, "cid.example", "cs1.example"));
//!
//! // One call, decoded into any `DeserializeOwned` type.
//! let page: serde_json::Value = tenant.get("crm/customers").query(&[("page", 1)]).send().await?;
//!
//! // Every record of a list, the next page fetched while this one is consumed.
//! let mut customers = tenant
//!     .paginate::<serde_json::Value>("crm/customers")
//!     .page_size(500)
//!     .active_any()
//!     .into_stream();
//! while let Some(customer) = customers.try_next().await? { /* … */ }
//!
//! // An export feed with a checkpoint to resume from.
//! let mut feed = tenant.export::<serde_json::Value>("crm/customers").into_stream();
//! while let Some(record) = feed.try_next().await? { /* … */ }
//! let checkpoint = feed.continue_from();
//!
//! // A report, rows named by its fields, under the per-report limiter.
//! let rows = tenant.report("operations", 175).parameter("From", "2026-01-01").records().await?;
//!
//! println!("{:?}", client.stats());
//! # Ok(()) }
//! ```
//!
//! Settings come from builder arguments, else environment variables, else defaults: see
//! [`config`]. Secrets never appear in `Debug`, `Display`, logs or errors.
//!
//! Observability: each call runs in a `servicetitan.request` span (method, route template,
//! tenant, status, attempts, limiter wait), each attempt in a `servicetitan.attempt` span,
//! each token fetch in `servicetitan.token`; counters are in [`Client::stats`].

#![warn(missing_docs)]

#[rustfmt::skip]
pub mod api;
pub mod auth;
mod body;
mod classify;
mod client;
pub mod clock;
pub mod config;
mod dynamic_sets;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod limit;
pub mod log;
pub mod margin;
pub mod operations;
mod paging;
#[cfg(test)]
mod properties;
pub mod redis;
mod reports;
mod request;
pub mod retry;
mod route;
pub mod settings;
mod sync;
mod tenant;
pub mod webhooks;

pub(crate) use client::Counters;

pub use body::{MAX_RESPONSE_BYTES, MAX_TOKEN_RESPONSE_BYTES};
pub use bytes::Bytes;
pub use client::{Client, Stats};
pub use config::{ClientBuilder, Config, Environment, Secret, TenantCredentials, Timeouts};
pub use error::{Error, ErrorCode, Result};
pub use paging::{
    Export, ExportPage, ExportStream, Page, PageStream, Paginate, RawPage, RawRecord, RecordStream, Taken,
};
pub use reports::{
    Record, ReportCategory, ReportField, ReportMetadata, ReportPage, ReportParameter, ReportQuery, ReportSummary,
};
pub use request::{RequestBuilder, ResponseBody};
pub use reqwest::Method;
pub use route::KNOWN_MODULES;
pub use tenant::Tenant;

// The README's Rust examples run as doctests, so the README cannot drift from the API. Its quick
// start calls the crm and jpm modules by name, as its Cargo.toml snippet enables them:
// `cargo test -p servicetitan --features crm,jpm --doc` (scripts/test.sh) runs them.
#[doc = include_str!("../../../README.md")]
#[cfg(all(doctest, feature = "crm", feature = "jpm"))]
pub struct ReadmeDoctests;
