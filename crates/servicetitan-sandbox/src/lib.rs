//! A local ServiceTitan: the OAuth token endpoint and every operation of the official specs,
//! with the real service's rate limits, error shapes and paging, plus fault injection and a
//! stats endpoint so that tests can assert what reached the server. A core set of resources
//! (customers, locations, jobs, invoices, employees, technicians, business units) and the
//! reporting API have hand-written routes; every other operation answers from the catalogue.
//!
//! ```no_run
//! # async fn demo() -> Result<(), servicetitan_sandbox::SandboxError> {
//! use servicetitan_sandbox::{Fault, Sandbox, SandboxConfig};
//! let sandbox = Sandbox::start(SandboxConfig::default()).await?;
//! let tenant = &sandbox.tenants()[0]; // 1001, cid.sandbox.1001, cs1.sandbox-secret-1001
//! sandbox.add_fault(Fault { route: "crm/*".into(), status: Some(503), count: 2, ..Fault::default() });
//! # let _ = tenant;
//! # Ok(()) }
//! ```

pub mod catalogue;
pub mod cli;
mod config;
mod data;
mod faults;
mod http;
mod limits;
mod report_queries;
mod reports;
mod responder;
mod server;
mod stats;
mod tokens;
mod util;
mod webhooks;

pub use config::{
    JitterConfig, JitterDistribution, LimitConfig, SandboxConfig, TenantConfig, WindowMode, DEMO_APP_KEY,
};
pub use data::implemented_operations;
pub use faults::Fault;
pub use limits::LimitStats;
pub use report_queries::ReportQueryStats;
pub use server::{BackgroundSandbox, Sandbox, SandboxError};
pub use stats::StatsSnapshot;
pub use webhooks::{Delivery, DeliveryAttempt, WebhookSubscription};
