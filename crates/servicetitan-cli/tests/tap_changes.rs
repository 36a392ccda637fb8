//! `servicetitan tap` when the data moves: a change made through the API comes back alone in the
//! next incremental run, and fields the API sends beyond its schema stay out of the records.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;

use serde_json::{json, Value};
use servicetitan::{Client, Secret, TenantCredentials};

use common::{jsonl, run, stderr, stdout, Harness};

fn write_json(h: &Harness, name: &str, value: &Value) -> PathBuf {
    let path = h.dir.join(name);
    std::fs::write(&path, serde_json::to_vec(value).unwrap()).unwrap();
    path
}

fn customers_catalog(h: &Harness) -> PathBuf {
    write_json(
        h,
        "catalog.json",
        &json!({"streams": [{"tap_stream_id": "crm_customers", "schema": {}, "metadata": [{"breadcrumb": [], "metadata": {"selected": true}}]}]}),
    )
}

fn config_for(h: &Harness, base_url: &str) -> PathBuf {
    let tenant = &h.sandbox.config().tenants[0];
    write_json(
        h,
        "tap.json",
        &json!({"app_key": h.sandbox.config().app_keys[0], "auth_url": base_url, "api_url": base_url,
                "tenants": [{"id": tenant.id, "client_id": tenant.client_id, "client_secret": tenant.client_secret}]}),
    )
}

fn customer_records(output: &std::process::Output) -> Vec<Value> {
    jsonl(&stdout(output))
        .into_iter()
        .filter(|m| m["type"] == "RECORD" && m["stream"] == "crm_customers")
        .map(|m| m["record"].clone())
        .collect()
}

/// Renames a customer through the API, as a user of ServiceTitan would.
fn rename_customer(h: &Harness, id: i64, name: &str) {
    let config = h.sandbox.config();
    let tenant = &config.tenants[0];
    let client = Client::builder()
        .app_key(Secret::new(config.app_keys[0].clone()))
        .auth_url(h.sandbox.base_url())
        .api_url(h.sandbox.base_url())
        .build()
        .unwrap();
    let tenant =
        client.tenant(TenantCredentials::new(tenant.id, tenant.client_id.clone(), tenant.client_secret.clone()));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime
        .block_on(tenant.operation("crm.customers.update").arg("id", id).body(&json!({"name": name})).send_json())
        .unwrap();
}

#[test]
fn an_incremental_run_brings_back_what_changed_and_nothing_else() {
    let h = Harness::new(40);
    let config = config_for(&h, h.sandbox.base_url());
    let catalog = customers_catalog(&h);
    let tap = |state: Option<&PathBuf>| {
        let mut command = h.bare_cli();
        command.arg("tap").arg("--config").arg(&config).arg("--catalog").arg(&catalog);
        if let Some(state) = state {
            command.arg("--state").arg(state);
        }
        let output = run(&mut command);
        h.assert_no_secret(&output);
        assert!(output.status.success(), "{}", stderr(&output));
        output
    };
    let full = tap(None);
    assert_eq!(customer_records(&full).len(), 40);
    let state = jsonl(&stdout(&full)).into_iter().rev().find(|m| m["type"] == "STATE").unwrap()["value"].clone();
    let state = write_json(&h, "state.json", &state);

    rename_customer(&h, 100000007, "Renamed Customer");
    let incremental = tap(Some(&state));
    let changed = customer_records(&incremental);
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!((changed[0]["id"].as_i64(), changed[0]["name"].as_str()), (Some(100000007), Some("Renamed Customer")));
    let modified = changed[0]["modifiedOn"].as_str().unwrap();
    let last = jsonl(&stdout(&incremental)).into_iter().rev().find(|m| m["type"] == "STATE").unwrap();
    assert_eq!(last["value"]["bookmarks"]["crm_customers"]["replication_key_value"], modified);
}

/// A server that answers the token call, then one export page whose records carry a field the
/// official schema does not have (as the real API does when it grows).
fn growing_api() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut length = 0usize;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
                if let Some(value) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let answer = if request_line.contains("/connect/token") {
                json!({"access_token": "token", "token_type": "Bearer", "expires_in": 900})
            } else {
                json!({"hasMore": false, "continueFrom": "next", "data": [
                    {"id": 1, "name": "A", "modifiedOn": "2026-01-01T00:00:00Z", "addedLater": {"x": 1}},
                    {"id": 2, "name": "B", "modifiedOn": "2026-01-02T00:00:00Z", "addedLater": null}]})
            };
            let body = answer.to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn fields_beyond_the_schema_stay_out_of_records_and_are_named_once() {
    let h = Harness::new(1);
    let config = config_for(&h, &growing_api());
    let catalog = customers_catalog(&h);
    let output = run(h.bare_cli().arg("tap").arg("--config").arg(&config).arg("--catalog").arg(&catalog));
    h.assert_no_secret(&output);
    assert!(output.status.success(), "{}", stderr(&output));
    let records = customer_records(&output);
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r.get("addedLater").is_none() && r.get("name").is_some()), "{records:?}");
    let err = stderr(&output);
    assert_eq!(err.matches("addedLater").count(), 1, "{err}");
}
