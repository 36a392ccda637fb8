//! The typed surface: every operation through its generated builder (`tenant.crm().customers()
//! .get_list()`) against the sandbox, each answering 2xx and decoding into the operation's model
//! (tests/operations.rs checks the same answers against their JSON schemas); and the builders'
//! results are the engine's pages, streams, feeds and redirect targets.
#![cfg(feature = "all-modules")]

mod common;
#[path = "typed_api/calls.rs"]
#[rustfmt::skip]
mod calls;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::TryStreamExt;
use serde_json::Value;
use servicetitan::operations;
use servicetitan::ErrorCode;
use servicetitan_sandbox::SandboxConfig;

/// One operation's arguments, as the generated calls ask for them (by API name).
#[derive(Clone)]
pub struct Args(Arc<(BTreeMap<String, Value>, Value)>);

impl Args {
    fn get(&self, name: &str) -> &Value {
        self.0 .0.get(name).unwrap_or(&Value::Null)
    }
    pub fn int(&self, name: &str) -> i64 {
        self.get(name).as_i64().unwrap_or(1)
    }
    pub fn number(&self, name: &str) -> f64 {
        self.get(name).as_f64().unwrap_or(1.0)
    }
    pub fn boolean(&self, name: &str) -> bool {
        self.get(name).as_bool().unwrap_or(true)
    }
    pub fn string(&self, name: &str) -> String {
        match self.get(name) {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
    pub fn map(&self, _name: &str) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
    fn list(&self, name: &str) -> Vec<Value> {
        self.get(name).as_array().cloned().unwrap_or_default()
    }
    pub fn ints(&self, name: &str) -> Vec<i64> {
        self.list(name).iter().filter_map(Value::as_i64).collect()
    }
    pub fn numbers(&self, name: &str) -> Vec<f64> {
        self.list(name).iter().filter_map(Value::as_f64).collect()
    }
    pub fn booleans(&self, name: &str) -> Vec<bool> {
        self.list(name).iter().filter_map(Value::as_bool).collect()
    }
    pub fn strings(&self, name: &str) -> Vec<String> {
        self.list(name).iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect()
    }
    pub fn values(&self, name: &str) -> Vec<Value> {
        self.list(name)
    }
    pub fn body(&self) -> Value {
        self.0 .1.clone()
    }
}

#[tokio::test]
async fn every_operation_through_its_builder() {
    let sandbox = common::start(SandboxConfig { records: 25, ..common::unlimited() }).await;
    let client = common::builder(&sandbox).max_attempts(1).build().unwrap();
    let tenant = common::tenant(&client, &sandbox, 0);

    let calls = calls::calls();
    assert_eq!(calls.len(), 563);
    let (mut ok, mut failed) = (0, Vec::new());
    for (name, call) in calls {
        let op = operations::find(name).unwrap();
        let route = format!("{} {}", op.method, op.path);
        let (args, body) = common::examples::arguments(&tenant, op).await;
        let args = Args(Arc::new((args.into_iter().collect(), body.unwrap_or(Value::Null))));
        let before = common::route_count(&sandbox, &route);
        let result = call(tenant.clone(), args).await;
        assert_eq!(common::route_count(&sandbox, &route), before + 1, "{name} did not reach {route}: {result:?}");
        match result {
            Ok(()) => ok += 1,
            Err(e) => {
                assert_ne!(e.code(), ErrorCode::Configuration, "{name}: {e}");
                failed.push(format!("{name}: {e}"));
            }
        }
    }
    println!("563 of 563 operations called through their builders, {ok} answered 2xx and decoded into their models");
    assert!(failed.is_empty(), "{} operations failed: {failed:#?}", failed.len());
    assert_eq!(ok, 563);
}

#[tokio::test]
async fn builders_give_typed_pages_streams_and_feeds() {
    let sandbox = common::start(SandboxConfig { records: 60, ..common::unlimited() }).await;
    let client = common::builder(&sandbox).build().unwrap();
    let tenant = common::tenant(&client, &sandbox, 0);

    let page = tenant.crm().customers().get_list().page_size(5).active("Any").send().await.unwrap();
    assert_eq!(page.data.len(), 5);
    assert!(page.has_more);
    let first: &servicetitan::api::crm::models::CustomerResponse = &page.data[0];
    assert!(!first.name.is_empty());

    let all: Vec<_> = tenant
        .crm()
        .customers()
        .get_list()
        .page_size(25)
        .active("any")
        .into_stream()
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 60);
    let one = tenant.crm().customers().get(all[7].id).send().await.unwrap();
    assert_eq!(one.id, all[7].id);
    assert_eq!(one.name, all[7].name);

    let feed = tenant.crm().export_customers().get_customers().into_stream().unwrap();
    let exported: Vec<_> = feed.clone().try_collect().await.unwrap();
    assert_eq!(exported.len(), 60);
    let again: Vec<_> = tenant
        .crm()
        .export_customers()
        .get_customers()
        .since(feed.continue_from().unwrap())
        .into_stream()
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(again.is_empty());

    let jobs = tenant.jpm().jobs().get_list().page_size(3).send().await.unwrap();
    assert!(jobs.data.iter().all(|j| j.id > 0));

    let e = tenant.crm().customers().get_list().active("Sometimes").send().await.unwrap_err();
    assert_eq!((e.code(), e.argument()), (ErrorCode::Configuration, Some("active")));
}

#[tokio::test]
async fn files_are_bytes_and_redirects_give_their_target() {
    let sandbox = common::start(common::unlimited()).await;
    let client = common::builder(&sandbox).build().unwrap();
    let tenant = common::tenant(&client, &sandbox, 0);

    // The sandbox answers 406 to an Accept header that does not take a file: asked as JSON, a
    // recording would fail.
    let recording = tenant.telecom().calls().get_recording(5).send().await.unwrap();
    assert!(recording.starts_with(b"RIFF"));

    // The redirect is not followed: its absolute target is the answer, and the file is there.
    let before = common::route_count(&sandbox, "GET pricebook/v2/tenant/{tenant}/images");
    let url = tenant.pricebook().images().get().path("a/b.png").send().await.unwrap();
    assert_eq!(common::route_count(&sandbox, "GET pricebook/v2/tenant/{tenant}/images"), before + 1);
    assert!(url.starts_with(&format!("{}/__sandbox/files/", sandbox.base_url())), "{url}");
    let file = reqwest::get(&url).await.unwrap();
    assert_eq!(file.status(), 200);
    assert!(!file.bytes().await.unwrap().is_empty());
    for url in [
        tenant.findings().finding_assets().get().path("a").send().await.unwrap(),
        tenant.equipment_systems().installed_equipment().get2().path("a").send().await.unwrap(),
    ] {
        assert!(url.starts_with(&format!("{}/__sandbox/files/", sandbox.base_url())), "{url}");
    }

    // Only a redirect operation has a target to give.
    let e = tenant.operation("crm.customers.get").arg("id", 1).send_location().await.unwrap_err();
    assert_eq!((e.code(), e.argument()), (ErrorCode::Configuration, Some("operation")));
}
