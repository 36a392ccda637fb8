//! What the export tests share: reading the files a run wrote, and changing records in the
//! sandbox through the API (as another program would) so that the feed has something new.
#![allow(dead_code)] // each test file uses a part

use std::collections::BTreeMap;
use std::path::Path;

use servicetitan::{Client, Secret, TenantCredentials};
use servicetitan_sandbox::BackgroundSandbox;

/// The output files of a directory (a file being written is hidden and left out), sorted.
pub fn output_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

/// The records of the JSONL output files of `dir` whose name starts with `stream.`, keyed by
/// id, each with the number of times it was seen and its last value.
pub fn records_by_id(dir: &Path, stream: &str) -> BTreeMap<i64, (usize, serde_json::Value)> {
    let mut seen: BTreeMap<i64, (usize, serde_json::Value)> = BTreeMap::new();
    for file in output_files(dir) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with(&format!("{stream}.")) || !name.ends_with(".jsonl") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines() {
            let record: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: a line that is not JSON ({e}): {line}"));
            let id = record["id"].as_i64().expect("records have an id");
            let entry = seen.entry(id).or_insert((0, serde_json::Value::Null));
            entry.0 += 1;
            entry.1 = record;
        }
    }
    seen
}

/// Renames customers `ids` of the sandbox's first tenant through the API; returns the new names.
pub fn rename_customers(sandbox: &BackgroundSandbox, ids: &[i64], tag: &str) -> BTreeMap<i64, String> {
    let config = sandbox.config();
    let tenant = &config.tenants[0];
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = Client::builder()
            .app_key(Secret::new(config.app_keys[0].clone()))
            .auth_url(sandbox.base_url())
            .api_url(sandbox.base_url())
            .build()
            .unwrap();
        let tenant =
            client.tenant(TenantCredentials::new(tenant.id, tenant.client_id.clone(), tenant.client_secret.clone()));
        let mut names = BTreeMap::new();
        for id in ids {
            let name = format!("{tag} \"{id}\", renamed");
            tenant
                .operation("Customers_Update")
                .arg("id", *id)
                .body(&serde_json::json!({ "name": name }))
                .send_json()
                .await
                .unwrap_or_else(|e| panic!("PATCH customer {id}: {e}"));
            names.insert(*id, name);
        }
        names
    })
}
