//! Every operation of the catalogue, called by name through the engine against the sandbox: each
//! request leaves with the operation's method and path (the sandbox counts requests per route
//! template), answers that are 2xx match the operation's response schema, and lists and exports
//! stream through the paginator and the export feed.

mod common;

use std::collections::BTreeMap;

use futures::TryStreamExt;
use serde_json::Value;
use servicetitan::operations;
use servicetitan::ErrorCode;
use servicetitan_sandbox::catalogue::Catalogue;
use servicetitan_sandbox::SandboxConfig;

#[tokio::test]
async fn every_operation_is_called_by_name_with_its_method_and_path() {
    let config = SandboxConfig { records: 25, ..common::unlimited() };
    let sandbox = common::start(config).await;
    let client = common::builder(&sandbox).max_attempts(1).build().unwrap();
    let tenant = common::tenant(&client, &sandbox, 0);
    let catalogue = Catalogue::embedded();

    let ops = operations::operations();
    assert_eq!(ops.len(), 563);
    let (mut reached, mut ok, mut valid) = (0, 0, 0);
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut failed = Vec::new();
    for op in ops {
        let route = format!("{} {}", op.method, op.path);
        let spec = catalogue.operation(&op.method, &op.path).unwrap_or_else(|| panic!("{route} is in the catalogue"));
        let (args, body) = common::examples::arguments(&tenant, op).await;
        let call = tenant.operation(&op.name()).args(args).json_value(body);
        let before = common::route_count(&sandbox, &route);
        let result = call.send_bytes().await;
        let after = common::route_count(&sandbox, &route);
        assert_eq!(after, before + 1, "{} did not reach {route} exactly once: {result:?}", op.name());
        reached += 1;
        match result {
            Ok(bytes) => {
                ok += 1;
                *outcomes.entry("2xx".into()).or_default() += 1;
                if let Some((_, schema)) = spec.success().filter(|(_, s)| !s.is_null()) {
                    let value: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{route}: {e}"));
                    if let Err(violations) = catalogue.validate(schema, &value) {
                        failed.push(format!("{route} breaks its schema: {}", violations.join("; ")));
                        continue;
                    }
                }
                valid += 1;
            }
            Err(e) => {
                assert_ne!(e.code(), ErrorCode::Configuration, "{}: {e}", op.name());
                *outcomes.entry(format!("{:?}", e.status())).or_default() += 1;
                failed.push(format!("{route}: {e}"));
            }
        }
    }
    println!(
        "{reached} of {} operations reached by name, {ok} answered 2xx, {valid} schema-valid: {outcomes:?}",
        ops.len()
    );
    assert_eq!(reached, 563);
    assert!(failed.is_empty(), "{} operations failed: {failed:#?}", failed.len());
    assert_eq!((ok, valid), (563, 563));
}

#[tokio::test]
async fn lists_and_exports_stream_every_record() {
    let config = SandboxConfig { records: 120, ..common::unlimited() };
    let sandbox = common::start(config).await;
    let client = common::builder(&sandbox).build().unwrap();
    let tenant = common::tenant(&client, &sandbox, 0);

    // A page, then every record from page 1 in pages of 50, fetched one ahead.
    let page: Value =
        tenant.operation("crm.customers.get_list").arg("pageSize", 7).arg("active", "Any").send().await.unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 7);
    assert_eq!(page["hasMore"], true);
    let all: Vec<Value> = tenant
        .operation("crm.customers.getList")
        .arg("pageSize", 50)
        .arg("active", "Any")
        .into_stream()
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 120);
    assert_eq!(common::route_count(&sandbox, "GET crm/v2/tenant/{tenant}/customers"), 1 + 3);
    // From page 2 on.
    let rest: Vec<Value> = tenant
        .operation("Customers_GetList")
        .arg("pageSize", 50)
        .arg("page", 2)
        .arg("active", "Any")
        .into_stream()
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rest.len(), 70);
    assert_eq!(rest[0]["id"], all[50]["id"]);

    // An export feed with its checkpoint.
    let feed = tenant.operation("crm.export_customers.get_customers").into_stream::<Value>().unwrap();
    let exported: Vec<Value> = feed.clone().try_collect().await.unwrap();
    assert_eq!(exported.len(), 120);
    let checkpoint = feed.continue_from().expect("a checkpoint");
    let again: Vec<Value> = tenant
        .operation("crm.export_customers.get_customers")
        .arg("since", checkpoint)
        .into_stream()
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(again.is_empty());

    // A lookup consistent with the list.
    let id = all[3]["id"].clone();
    let customer: Value = tenant.operation("crm.customers.get").arg("id", id.clone()).send().await.unwrap();
    assert_eq!(customer, all[3]);

    // Bad input never reaches the server.
    let before = common::total_requests(&sandbox);
    let e = tenant.operation("crm.customers.get_list").arg("pageSzie", 5).send_json().await.unwrap_err();
    assert_eq!((e.code(), e.argument()), (ErrorCode::Configuration, Some("pageSzie")));
    assert!(e.to_string().contains("did you mean pageSize?"), "{e}");
    let e = tenant.operation("crm.customers.get").send_json().await.unwrap_err();
    assert_eq!(e.argument(), Some("id"));
    let e = tenant.operation("crm.customers.get_list").arg("active", "Maybe").send_json().await.unwrap_err();
    assert_eq!(e.argument(), Some("active"));
    let e = tenant.operation("crm.customers.get").arg("id", "1").send_json().await.unwrap_err();
    assert!(e.to_string().contains("takes an integer as id, not a string"), "{e}");
    assert_eq!(common::total_requests(&sandbox), before);
}
