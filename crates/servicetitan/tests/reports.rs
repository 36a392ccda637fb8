//! Reports against the sandbox: categories, metadata, named records over several pages, and
//! parameters checked before anything is sent.

mod common;

use common::*;
use futures::TryStreamExt;
use serde_json::json;
use servicetitan::ErrorCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn categories_reports_and_metadata_are_listed() {
    let sandbox = start(unlimited()).await;
    let client = builder(&sandbox).build().unwrap();
    let t = tenant(&client, &sandbox, 0);
    let categories = t.report_categories().await.unwrap();
    assert!(categories.iter().any(|c| c.id == "operations"));
    let reports = t.reports("operations").await.unwrap();
    assert!(reports.iter().any(|r| r.id == 175));
    let meta = t.report_metadata("operations", 175).await.unwrap();
    let from = meta.parameters.iter().find(|p| p.name == "From").unwrap();
    assert!(from.is_required);
    assert_eq!(from.data_type.as_deref(), Some("Date"));
    assert!(meta.fields.iter().any(|f| f.name == "JobId"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_returns_named_records_from_every_page() {
    let sandbox = start(unlimited()).await;
    let client = builder(&sandbox).build().unwrap();
    let t = tenant(&client, &sandbox, 0);
    let meta = t.report_metadata("operations", 175).await.unwrap();
    let records = t
        .report("operations", 175)
        .parameter("From", "2026-01-01")
        .parameter("BusinessUnitIds", json!([1, 2]))
        .page_size(1000)
        .records()
        .await
        .unwrap();
    assert_eq!(records.len(), 2500);
    let names: Vec<&str> = meta.fields.iter().map(|f| f.name.as_str()).collect();
    for record in &records {
        assert_eq!(record.keys().map(String::as_str).collect::<Vec<_>>().len(), names.len());
        assert!(names.iter().all(|n| record.contains_key(*n)));
    }
    let stats = sandbox.stats();
    let data_calls: u64 = stats["routes"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.ends_with("/data") || k.ends_with("/data/query"))
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    assert_eq!(data_calls, 3, "three pages of 1000");

    let streamed: Vec<_> =
        t.report("operations", 175).parameter("From", "2026-01-01").into_stream().try_collect().await.unwrap();
    assert_eq!(streamed, t.report("operations", 175).parameter("From", "2026-01-01").records().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_report_parameters_are_refused_before_the_report_runs() {
    let sandbox = start(unlimited()).await;
    let client = builder(&sandbox).build().unwrap();
    let t = tenant(&client, &sandbox, 0);
    let missing = t.report("operations", 175).parameter("To", "2026-01-31").records().await.unwrap_err();
    assert_eq!(missing.code(), ErrorCode::BadRequest);
    assert!(missing.errors().contains_key("From"), "{missing:?}");
    let unknown =
        t.report("operations", 175).parameter("From", "2026-01-01").parameter("Form", 1).records().await.unwrap_err();
    assert!(unknown.errors().contains_key("Form"), "{unknown:?}");
    let mistyped = t.report("operations", 175).parameter("From", "last tuesday").records().await.unwrap_err();
    assert!(mistyped.errors()["From"][0].contains("Date"), "{mistyped:?}");
    let stats = sandbox.stats();
    let ran = |k: &String| k.ends_with("/data") || k.ends_with("/data/query");
    assert!(!stats["routes"].as_object().unwrap().keys().any(ran), "a report ran: {stats}");
    assert!(stats["reports"].as_object().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_from_a_dynamic_value_set_take_names_looked_up_once() {
    let sandbox = start(unlimited()).await;
    let client = builder(&sandbox).build().unwrap();
    let t = tenant(&client, &sandbox, 0);
    for _ in 0..2 {
        let records = t
            .report("operations", 175)
            .parameter("From", "2026-01-01")
            .parameter("BusinessUnitIds", json!(["plumbing", "HVAC", 3]))
            .records()
            .await
            .unwrap();
        assert_eq!(records.len(), 2500);
    }
    let set = "GET reporting/v2/tenant/{tenant}/dynamic-value-sets/{dynamicSetId}";
    assert_eq!(route_count(&sandbox, set), 1, "fetched once, then cached: {}", sandbox.stats());

    let e = t
        .report("operations", 175)
        .parameter("From", "2026-01-01")
        .parameter("BusinessUnitIds", json!(["Roofing"]))
        .records()
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadRequest);
    assert!(e.message().contains("\"Roofing\" is neither a value nor a name"), "{e}");
    assert!(e.message().contains("Plumbing, HVAC"), "{e}");
    // Without validation, names are sent as given, and the server refuses them.
    let raw = t
        .report("operations", 175)
        .parameter("From", "2026-01-01")
        .parameter("BusinessUnitIds", json!(["Plumbing"]))
        .skip_validation()
        .records()
        .await
        .unwrap_err();
    assert_eq!(raw.status(), Some(400));
}
