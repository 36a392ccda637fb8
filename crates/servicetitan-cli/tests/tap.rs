//! `servicetitan tap` against the sandbox: about, discovery, catalog selection, state and resume,
//! several tenants, and configuration mistakes.

mod common;

use std::path::PathBuf;
use std::process::Output;

use serde_json::{json, Value};
use servicetitan_sandbox::SandboxConfig;

use common::{jsonl, run, stderr, stdout, Harness};

/// The tap's JSON config for these sandbox tenants (all of them when `tenants` is empty).
fn write_config(h: &Harness, name: &str, tenants: &[i64], extra: Value) -> PathBuf {
    let config = h.sandbox.config();
    let listed: Vec<Value> = config
        .tenants
        .iter()
        .filter(|t| tenants.is_empty() || tenants.contains(&t.id))
        .map(|t| json!({"id": t.id, "client_id": t.client_id, "client_secret": t.client_secret}))
        .collect();
    let mut value = json!({
        "app_key": config.app_keys[0],
        "auth_url": h.sandbox.base_url(),
        "api_url": h.sandbox.base_url(),
        "tenants": listed,
    });
    if let (Some(object), Some(more)) = (value.as_object_mut(), extra.as_object()) {
        object.extend(more.clone());
    }
    write_json(h, name, &value)
}

fn write_json(h: &Harness, name: &str, value: &Value) -> PathBuf {
    let path = h.dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
    path
}

/// A catalog selecting `streams` in its metadata.
fn catalog(h: &Harness, streams: &[&str]) -> PathBuf {
    let entries: Vec<Value> = streams
        .iter()
        .map(|s| json!({"tap_stream_id": s, "stream": s, "schema": {}, "metadata": [{"breadcrumb": [], "metadata": {"selected": true}}]}))
        .collect();
    write_json(h, "catalog.json", &json!({"streams": entries}))
}

fn tap(h: &Harness, config: &PathBuf, args: &[&str]) -> Output {
    let output = run(h.bare_cli().arg("tap").arg("--config").arg(config).args(args));
    h.assert_no_secret(&output);
    output
}

fn messages(output: &Output) -> Vec<Value> {
    jsonl(&stdout(output))
}

fn of_type<'a>(messages: &'a [Value], kind: &str) -> Vec<&'a Value> {
    messages.iter().filter(|m| m["type"] == kind).collect()
}

fn records<'a>(messages: &'a [Value], stream: &str) -> Vec<&'a Value> {
    messages.iter().filter(|m| m["type"] == "RECORD" && m["stream"] == stream).map(|m| &m["record"]).collect()
}

/// The value of the last STATE message, written to a file for `--state`.
fn last_state(h: &Harness, messages: &[Value], name: &str) -> (PathBuf, Value) {
    let state = of_type(messages, "STATE").last().expect("a STATE message")["value"].clone();
    (write_json(h, name, &state), state)
}

#[test]
fn about_says_what_the_tap_supports() {
    let h = Harness::new(5);
    let output = run(h.bare_cli().args(["tap", "--about"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let about: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(about["name"], "tap-servicetitan");
    assert_eq!(about["capabilities"], json!(["catalog", "discover", "state", "about"]));
    let settings: Vec<&str> =
        about["settings"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(settings, ["app_key", "environment", "auth_url", "api_url", "tenants", "start_date"]);
}

#[test]
fn discover_prints_every_stream_with_schema_keys_and_metadata() {
    let h = Harness::new(5);
    let config = write_config(&h, "tap.json", &[1001], json!({}));
    let output = tap(&h, &config, &["--discover"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let catalog: Value = serde_json::from_slice(&output.stdout).unwrap();
    let streams = catalog["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 54);
    let customers = streams.iter().find(|s| s["tap_stream_id"] == "crm_customers").unwrap();
    assert_eq!(customers["stream"], "crm_customers");
    assert_eq!(customers["key_properties"], json!(["id"]));
    assert_eq!(customers["replication_key"], "modifiedOn");
    assert_eq!(customers["replication_method"], "INCREMENTAL");
    assert_eq!(customers["schema"]["properties"]["modifiedOn"], json!({"type": "string", "format": "date-time"}));
    assert!(customers["schema"]["properties"].get("_tenant_id").is_none(), "one tenant: no _tenant_id");
    let metadata = customers["metadata"].as_array().unwrap();
    let top = metadata.iter().find(|m| m["breadcrumb"] == json!([])).unwrap();
    assert_eq!(top["metadata"]["selected-by-default"], true);
    assert_eq!(top["metadata"]["table-key-properties"], json!(["id"]));
    assert_eq!(top["metadata"]["valid-replication-keys"], json!(["modifiedOn"]));
    let id = metadata.iter().find(|m| m["breadcrumb"] == json!(["properties", "id"])).unwrap();
    assert_eq!(id["metadata"]["inclusion"], "automatic");
    let name = metadata.iter().find(|m| m["breadcrumb"] == json!(["properties", "name"])).unwrap();
    assert_eq!(name["metadata"]["inclusion"], "available");

    // Several tenants: every stream is keyed by tenant too.
    let config = write_config(&h, "tap-all.json", &[1001, 1002], json!({}));
    let catalog: Value = serde_json::from_slice(&tap(&h, &config, &["--discover"]).stdout).unwrap();
    let customers =
        catalog["streams"].as_array().unwrap().iter().find(|s| s["tap_stream_id"] == "crm_customers").unwrap();
    assert_eq!(customers["key_properties"], json!(["_tenant_id", "id"]));
    assert_eq!(customers["schema"]["properties"]["_tenant_id"]["type"], "integer");
}

#[test]
fn a_catalog_selects_streams_and_properties() {
    let h = Harness::new(7);
    let config = write_config(&h, "tap.json", &[1001], json!({}));
    let catalog = write_json(
        &h,
        "catalog.json",
        &json!({"streams": [
            {"tap_stream_id": "crm_customers", "schema": {}, "metadata": [
                {"breadcrumb": [], "metadata": {"selected": true}},
                {"breadcrumb": ["properties", "balance"], "metadata": {"selected": false}}]},
            // The older way: `selected` in the schema.
            {"tap_stream_id": "jpm_jobs", "schema": {"selected": true}},
            {"tap_stream_id": "crm_leads", "schema": {}, "metadata": [{"breadcrumb": [], "metadata": {"selected": false}}]},
        ]}),
    );
    let output = tap(&h, &config, &["--catalog", catalog.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let messages = messages(&output);
    let mut schemas: Vec<&str> = of_type(&messages, "SCHEMA").iter().map(|m| m["stream"].as_str().unwrap()).collect();
    schemas.sort();
    assert_eq!(schemas, ["crm_customers", "jpm_jobs"]);
    // Streams may interleave, but a stream's SCHEMA comes before its records.
    for stream in schemas {
        let schema_at = messages.iter().position(|m| m["type"] == "SCHEMA" && m["stream"] == stream).unwrap();
        let first_record = messages.iter().position(|m| m["type"] == "RECORD" && m["stream"] == stream).unwrap();
        assert!(schema_at < first_record, "{stream}");
    }
    let customers = records(&messages, "crm_customers");
    assert_eq!(customers.len(), 7);
    assert_eq!(records(&messages, "jpm_jobs").len(), 7);
    assert!(records(&messages, "crm_leads").is_empty());
    for record in &customers {
        assert!(record.get("balance").is_none() && record.get("name").is_some(), "{record}");
        assert!(record.get("_tenant_id").is_none(), "one tenant: no _tenant_id");
    }
    let schema = of_type(&messages, "SCHEMA").into_iter().find(|m| m["stream"] == "crm_customers").unwrap();
    assert_eq!(schema["key_properties"], json!(["id"]));
    assert_eq!(schema["bookmark_properties"], json!(["modifiedOn"]));
    assert!(schema["schema"]["properties"].get("balance").is_none());
    let record = of_type(&messages, "RECORD")[0];
    let extracted = record["time_extracted"].as_str().unwrap();
    assert!(extracted.len() == 24 && extracted.ends_with('Z'), "{extracted}");
}

#[test]
fn state_comes_after_its_records_and_a_rerun_resumes_from_it() {
    let h = Harness::with_config(SandboxConfig { records: 25, export_page_size: 10, ..SandboxConfig::default() });
    let config = write_config(&h, "tap.json", &[1001], json!({}));
    let catalog = catalog(&h, &["crm_customers"]);
    let catalog = catalog.to_str().unwrap();
    let output = tap(&h, &config, &["--catalog", catalog]);
    assert!(output.status.success(), "{}", stderr(&output));
    let all = messages(&output);
    let ids: Vec<&Value> = records(&all, "crm_customers").iter().map(|r| &r["id"]).collect();
    assert_eq!(ids.len(), 25);

    // A STATE after each page: the first covers the first page exactly.
    let first_state = all.iter().position(|m| m["type"] == "STATE").unwrap();
    assert_eq!(all[..first_state].iter().filter(|m| m["type"] == "RECORD").count(), 10);
    let bookmark = &all[first_state]["value"]["bookmarks"]["crm_customers"];
    assert_eq!(bookmark["replication_key"], "modifiedOn");
    assert!(bookmark["continue_from"].is_string() && bookmark["replication_key_value"].is_string(), "{bookmark}");
    assert_eq!(all.last().unwrap()["type"], "STATE", "the run ends with its state");

    // Resuming from the first page's state gives every other record, once.
    let partial = write_json(&h, "partial-state.json", &all[first_state]["value"]);
    let resumed = tap(&h, &config, &["--catalog", catalog, "--state", partial.to_str().unwrap()]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let resumed = messages(&resumed);
    let rest: Vec<&Value> = records(&resumed, "crm_customers").iter().map(|r| &r["id"]).collect();
    assert_eq!(rest, ids[10..].to_vec());

    // Resuming from the final state gives nothing new, and keeps the bookmark.
    let (state_file, state) = last_state(&h, &all, "state.json");
    let again = tap(&h, &config, &["--catalog", catalog, "--state", state_file.to_str().unwrap()]);
    assert!(again.status.success(), "{}", stderr(&again));
    let again = messages(&again);
    assert!(records(&again, "crm_customers").is_empty());
    assert_eq!(of_type(&again, "STATE").last().unwrap()["value"], state);
}

#[test]
fn bookmarks_of_streams_not_synced_are_kept() {
    let h = Harness::new(3);
    let config = write_config(&h, "tap.json", &[1001], json!({}));
    let given = json!({"bookmarks": {"jpm_jobs": {"replication_key": "modifiedOn", "continue_from": "kept"}}});
    let state = write_json(&h, "state.json", &given);
    let catalog = catalog(&h, &["crm_customers"]);
    let output = tap(&h, &config, &["--catalog", catalog.to_str().unwrap(), "--state", state.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let last = of_type(&messages(&output), "STATE").last().unwrap()["value"].clone();
    assert_eq!(last["bookmarks"]["jpm_jobs"], given["bookmarks"]["jpm_jobs"]);
    assert!(last["bookmarks"]["crm_customers"]["continue_from"].is_string());
}

#[test]
fn start_date_starts_a_stream_without_state_later() {
    let h = Harness::new(30);
    let catalog = catalog(&h, &["crm_customers"]);
    let catalog = catalog.to_str().unwrap();
    let everything = write_config(&h, "all.json", &[1001], json!({}));
    let all = records(&messages(&tap(&h, &everything, &["--catalog", catalog])), "crm_customers").len();
    // The sandbox's records were changed a minute apart from 2024-01-01T00:01:00Z.
    let later = write_config(&h, "later.json", &[1001], json!({"start_date": "2024-01-01T00:20:00Z"}));
    let output = tap(&h, &later, &["--catalog", catalog]);
    assert!(output.status.success(), "{}", stderr(&output));
    let later_messages = messages(&output);
    let some = records(&later_messages, "crm_customers");
    assert!(!some.is_empty() && some.len() < all, "{} of {all}", some.len());
    assert!(some.iter().all(|r| r["modifiedOn"].as_str().unwrap() >= "2024-01-01T00:20:00"), "{some:?}");
}

#[test]
fn several_tenants_tag_records_and_keep_a_partition_each() {
    let h = Harness::new(6);
    let config = write_config(&h, "tap.json", &[1001, 1002, 1003], json!({}));
    let catalog = catalog(&h, &["crm_customers"]);
    let catalog = catalog.to_str().unwrap();
    let output = tap(&h, &config, &["--catalog", catalog]);
    assert!(output.status.success(), "{}", stderr(&output));
    let all = messages(&output);
    let schema = of_type(&all, "SCHEMA")[0];
    assert_eq!(schema["key_properties"], json!(["_tenant_id", "id"]));
    let customers = records(&all, "crm_customers");
    assert_eq!(customers.len(), 18);
    for tenant in [1001, 1002, 1003] {
        assert_eq!(customers.iter().filter(|r| r["_tenant_id"] == tenant).count(), 6, "tenant {tenant}");
    }
    let (state_file, state) = last_state(&h, &all, "state.json");
    let partitions = state["bookmarks"]["crm_customers"]["partitions"].as_array().unwrap();
    let mut contexts: Vec<i64> = partitions.iter().map(|p| p["context"]["tenant_id"].as_i64().unwrap()).collect();
    contexts.sort();
    assert_eq!(contexts, [1001, 1002, 1003]);
    assert!(partitions.iter().all(|p| p["continue_from"].is_string() && p["replication_key"] == "modifiedOn"));

    let again = tap(&h, &config, &["--catalog", catalog, "--state", state_file.to_str().unwrap()]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(records(&messages(&again), "crm_customers").is_empty());

    // `--tenant` narrows the config to one tenant: a one-tenant run, without `_tenant_id`.
    let one = tap(&h, &config, &["--tenant", "1002", "--catalog", catalog]);
    assert!(one.status.success(), "{}", stderr(&one));
    let one = messages(&one);
    assert_eq!(of_type(&one, "SCHEMA")[0]["key_properties"], json!(["id"]));
    let customers = records(&one, "crm_customers");
    assert_eq!(customers.len(), 6);
    assert!(customers.iter().all(|r| r.get("_tenant_id").is_none()));
}

#[test]
fn a_tenant_refused_a_module_fails_its_part_only() {
    // The sandbox's tenant 1004 may call the CRM only.
    let h = Harness::new(4);
    let config = write_config(&h, "tap.json", &[1001, 1004], json!({}));
    let catalog = catalog(&h, &["jpm_jobs", "crm_customers"]);
    let output = tap(&h, &config, &["--catalog", catalog.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.lines().any(|l| l.contains("jpm_jobs, tenant 1004")), "{err}");
    let all = messages(&output);
    assert_eq!(records(&all, "jpm_jobs").len(), 4);
    assert_eq!(records(&all, "crm_customers").len(), 8);
}

#[test]
fn st_variables_fill_what_the_config_leaves_out() {
    let h = Harness::new(3);
    let config = write_json(&h, "tap.json", &json!({"start_date": "2020-01-01"}));
    let catalog = catalog(&h, &["crm_customers"]);
    // `h.cli()` sets the app key, the URLs and the first tenant in ST_* variables.
    let output = run(h.cli().arg("tap").arg("--config").arg(&config).arg("--catalog").arg(&catalog));
    h.assert_no_secret(&output);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(records(&messages(&output), "crm_customers").len(), 3);
}

#[test]
fn config_mistakes_exit_2_with_one_line_naming_the_key() {
    let h = Harness::new(3);
    let cases = [
        (json!({"app_key": "x", "tenant": []}), "unknown key \"tenant\""),
        (json!({"app_key": 42}), "app_key: expected a string"),
        (json!({"tenants": [{"id": 1001, "client_id": "c"}]}), "tenants[0].client_secret: missing"),
        (json!({"tenants": [{"id": "one", "client_id": "c", "client_secret": "s"}]}), "tenants[0].id"),
        (json!({"start_date": 2026}), "start_date: expected a string"),
    ];
    for (i, (config, expected)) in cases.into_iter().enumerate() {
        let path = write_json(&h, &format!("bad{i}.json"), &config);
        let output = tap(&h, &path, &[]);
        assert_eq!(output.status.code(), Some(2), "{config}: {}", stderr(&output));
        let err = stderr(&output);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(expected) && err.contains("--config"), "{config}: {err}");
        assert!(output.stdout.is_empty());
    }
    // A wrong secret: the credentials are refused (exit 3), and not printed.
    let config = h.sandbox.config();
    let wrong = write_json(
        &h,
        "wrong.json",
        &json!({"app_key": config.app_keys[0], "auth_url": h.sandbox.base_url(), "api_url": h.sandbox.base_url(),
                "tenants": [{"id": 1001, "client_id": config.tenants[0].client_id, "client_secret": "cs1.not-the-secret"}]}),
    );
    let catalog = catalog(&h, &["crm_customers"]);
    let output = tap(&h, &wrong, &["--catalog", catalog.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(!stderr(&output).contains("cs1.not-the-secret"));
    // Not JSON at all, and a missing file.
    let path = h.dir.join("toml.json");
    std::fs::write(&path, "app_key = \"x\"\n").unwrap();
    let output = tap(&h, &path, &["--discover"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("not a JSON document"), "{}", stderr(&output));
    let output = tap(&h, &h.dir.join("missing.json"), &["--discover"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn streams_the_specs_do_not_describe_are_synced_only_when_selected() {
    let h = Harness::new(2);
    let config = write_config(&h, "tap.json", &[1001, 1002], json!({}));
    let discovered: Value = serde_json::from_slice(&tap(&h, &config, &["--discover"]).stdout).unwrap();
    for entry in discovered["streams"].as_array().unwrap() {
        let by_default = &entry["metadata"][0]["metadata"]["selected-by-default"];
        let undescribed = entry["tap_stream_id"].as_str().unwrap().starts_with("salestech_opportunities");
        assert_eq!(by_default, &json!(!undescribed), "{}", entry["tap_stream_id"]);
    }

    // Without a catalog: every described stream, for both tenants.
    let output = tap(&h, &config, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let all = messages(&output);
    let schemas = of_type(&all, "SCHEMA");
    assert_eq!(schemas.len(), 52);
    assert!(schemas.iter().all(|s| !s["stream"].as_str().unwrap().starts_with("salestech_opportunities")));
    assert_eq!(records(&all, "jpm_jobs").len(), 4);

    // Selected, such a stream's records go as the API sends them.
    let catalog = catalog(&h, &["salestech_opportunities"]);
    let output = tap(&h, &config, &["--catalog", catalog.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let all = messages(&output);
    let opportunities = records(&all, "salestech_opportunities");
    assert_eq!(opportunities.len(), 4);
    assert!(opportunities.iter().all(|r| r.get("id").is_some() && r.get("_tenant_id").is_some()), "{opportunities:?}");
}

/// Runners start an extractor as `EXECUTABLE --config FILE ...`: by the name `tap-servicetitan`,
/// the binary is the tap.
#[cfg(unix)]
#[test]
fn called_tap_servicetitan_the_binary_is_the_tap() {
    let h = Harness::new(2);
    let link = h.dir.join("tap-servicetitan");
    std::os::unix::fs::symlink(common::binary(), &link).unwrap();
    let config = write_config(&h, "tap.json", &[1001], json!({}));
    let catalog = catalog(&h, &["crm_customers"]);
    let output = run(std::process::Command::new(&link).arg("--config").arg(&config).arg("--catalog").arg(&catalog));
    h.assert_no_secret(&output);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(records(&messages(&output), "crm_customers").len(), 2);
}
