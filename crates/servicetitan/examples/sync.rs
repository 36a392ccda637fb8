//! The demo job: a real sync against the bundled sandbox, through the engine, at the real
//! service's limits (60 calls per second per tenant, 5 runs of a report per minute).
//!
//! A full export of customers and invoices, a paged list of jobs, an incremental export that
//! picks up a change from a saved checkpoint, and a report; then what it cost: calls, 429s,
//! token requests, time spent waiting for the rate limiter.
//!
//! `cargo run --release -p servicetitan --example sync [-- RECORDS]`

use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};
use servicetitan::{Client, TenantCredentials};
use servicetitan_sandbox::{Sandbox, SandboxConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let records: u64 = match std::env::args().nth(1) {
        Some(n) => n.parse().map_err(|_| format!("RECORDS must be a whole number, got {n:?}"))?,
        None => 20_000,
    };
    let sandbox = Sandbox::start(SandboxConfig { records, ..SandboxConfig::default() }).await?;
    let demo = &sandbox.tenants()[0];
    println!("sandbox at {} ({records} records per resource, 60 calls/s per tenant)", sandbox.base_url());

    let client = Client::builder()
        .app_key(sandbox.app_key())
        .auth_url(sandbox.base_url())
        .api_url(sandbox.base_url())
        .build()?;
    let tenant = client.tenant(TenantCredentials::new(demo.id, demo.client_id.clone(), demo.client_secret.clone()));
    let started = Instant::now();

    let step = Instant::now();
    let mut customers = tenant.export::<Value>("crm/customers").into_stream();
    let mut count = 0u64;
    while customers.try_next().await?.is_some() {
        count += 1;
    }
    let checkpoint = customers.continue_from();
    println!("customers  full export     {count:>7} records  {:>6.2} s", step.elapsed().as_secs_f64());

    let step = Instant::now();
    let invoices: Vec<Value> = tenant.export::<Value>("accounting/invoices").into_stream().try_collect().await?;
    println!("invoices   full export     {:>7} records  {:>6.2} s", invoices.len(), step.elapsed().as_secs_f64());

    let step = Instant::now();
    let jobs: Vec<Value> =
        tenant.paginate::<Value>("jpm/jobs").page_size(500).active_any().into_stream().try_collect().await?;
    println!("jobs       paged list      {:>7} records  {:>6.2} s", jobs.len(), step.elapsed().as_secs_f64());

    // 300 single-record calls at once: five seconds' worth of the tenant's budget. The limiter
    // spreads them out so that the server never has to answer 429.
    let step = Instant::now();
    let details: Vec<Value> = futures::stream::iter(jobs.iter().take(300))
        .map(|job| tenant.get(format!("jpm/jobs/{}", job["id"])).send::<Value>())
        .buffer_unordered(50)
        .try_collect()
        .await?;
    println!("jobs       300 GETs by id  {:>7} records  {:>6.2} s", details.len(), step.elapsed().as_secs_f64());

    // Something changes at the tenant; the next incremental sync picks up just that.
    let address = json!({"street": "1 Demo Way", "city": "Austin", "state": "TX", "zip": "78701", "country": "USA"});
    let created: Value = tenant
        .post("crm/customers")
        .json(&json!({"name": "New Customer", "address": address, "locations": [{"name": "Home", "address": address}]}))
        .send()
        .await?;
    let step = Instant::now();
    let changes: Vec<Value> =
        tenant.export::<Value>("crm/customers").since(checkpoint).into_stream().try_collect().await?;
    println!(
        "customers  incremental     {:>7} records  {:>6.2} s  (created id {})",
        changes.len(),
        step.elapsed().as_secs_f64(),
        created["id"]
    );

    let step = Instant::now();
    let rows = tenant.report("operations", 175).parameter("From", "2026-01-01").records().await?;
    println!("report 175 all pages       {:>7} rows     {:>6.2} s", rows.len(), step.elapsed().as_secs_f64());

    let stats = client.stats();
    let server = sandbox.stats();
    println!(
        "\ntotal {:.2} s: {} API calls, {} retries, {} answered 429 (server rejected {}), {} token request(s), {:.2} s in all (summed over calls) waiting for the rate limiter; the server saw at most {} calls in one second",
        started.elapsed().as_secs_f64(),
        stats.requests,
        stats.retries,
        stats.rate_limited,
        server["tenants"][demo.id.to_string()]["rejected"],
        stats.token_fetches,
        stats.throttle_wait.as_secs_f64(),
        server["tenants"][demo.id.to_string()]["max_in_window"],
    );
    sandbox.shutdown().await;
    Ok(())
}
