//! `servicetitan export` against the sandbox: formats, files, the state file, several tenants,
//! exit codes and what goes to stderr.

mod common;
mod export_support;

use std::collections::BTreeSet;

use common::{jsonl, read, run, stderr, stdout, Harness};
use export_support::{output_files, records_by_id, rename_customers};
use servicetitan_sandbox::SandboxConfig;

fn small_pages(records: u64) -> Harness {
    Harness::with_config(SandboxConfig { records, export_page_size: 100, ..SandboxConfig::default() })
}

#[test]
fn jsonl_to_stdout_is_every_record_as_sent_once() {
    let h = small_pages(450);
    let output = run(h.cli().args(["export", "crm_customers"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let records = jsonl(&stdout(&output));
    assert_eq!(records.len(), 450);
    let ids: BTreeSet<i64> = records.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 450, "every record once");
    // As the API sends them: nested objects stay nested, one tenant adds no tenant field.
    assert!(records[0]["address"].is_object(), "{}", records[0]);
    assert!(records.iter().all(|r| r.get("_tenant_id").is_none()));
    let err = stderr(&output);
    assert!(err.contains("summary: crm_customers 450 records"), "{err}");
    assert!(err.contains("5 calls"), "{err}");
    h.assert_no_secret(&output);
}

#[test]
fn several_tenants_run_together_and_tag_their_records() {
    let h = small_pages(300);
    let profile = h.write_profile("config.toml");
    let output = run(h.bare_cli().arg("--config").arg(&profile).args(["--all-tenants", "export", "crm_customers"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let records = jsonl(&stdout(&output));
    let tenants = h.tenant_ids();
    assert_eq!(records.len(), 300 * tenants.len());
    for tenant in &tenants {
        let mine: BTreeSet<i64> = records
            .iter()
            .filter(|r| r["_tenant_id"].as_i64() == Some(*tenant))
            .map(|r| r["id"].as_i64().unwrap())
            .collect();
        assert_eq!(mine.len(), 300, "tenant {tenant}");
    }
    h.assert_no_secret(&output);
}

#[test]
fn out_dir_gets_one_file_per_stream_and_tenant() {
    let h = small_pages(250);
    let profile = h.write_profile("config.toml");
    let out = h.dir.join("out");
    let output = run(h
        .bare_cli()
        .arg("--config")
        .arg(&profile)
        .args(["--tenant", "1001", "--tenant", "1002", "export", "crm_customers", "jpm_jobs", "--out"])
        .arg(&out));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).is_empty(), "data goes to the files only");
    let names: Vec<String> =
        output_files(&out).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(
        names,
        ["crm_customers.1001.jsonl", "crm_customers.1002.jsonl", "jpm_jobs.1001.jsonl", "jpm_jobs.1002.jsonl"]
    );
    for file in output_files(&out) {
        let records = jsonl(&read(&file));
        assert_eq!(records.len(), 250, "{}", file.display());
        let tenant: i64 = file.file_name().unwrap().to_string_lossy().split('.').nth(1).unwrap().parse().unwrap();
        assert!(records.iter().all(|r| r["_tenant_id"].as_i64() == Some(tenant)), "{}", file.display());
    }
}

#[test]
fn state_makes_the_next_run_fetch_only_what_changed() {
    let h = small_pages(400);
    let out = h.dir.join("out");
    let state = h.dir.join("state.json");
    let export = || {
        let mut command = h.cli();
        command.args(["export", "crm_customers", "--out"]).arg(&out).arg("--state").arg(&state);
        run(&mut command)
    };
    let first = export();
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(records_by_id(&out, "crm_customers").len(), 400);
    let saved: serde_json::Value = serde_json::from_str(&read(&state)).unwrap();
    let entry = &saved["tenants"]["1001"]["crm_customers"];
    assert_eq!(entry["files"], 1, "{saved}");
    assert!(entry["continue_from"].is_string(), "{saved}");

    // Nothing changed: no new file.
    let second = export();
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(output_files(&out).len(), 1);

    let names = rename_customers(&h.sandbox, &[100000007, 100000123, 100000399], "Changed");
    let third = export();
    assert!(third.status.success(), "{}", stderr(&third));
    let files = output_files(&out);
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files[1].ends_with("crm_customers.1001.000002.jsonl"), "{files:?}");
    let changed = jsonl(&read(&files[1]));
    let got: Vec<(i64, String)> =
        changed.iter().map(|r| (r["id"].as_i64().unwrap(), r["name"].as_str().unwrap().to_string())).collect();
    assert_eq!(got, names.into_iter().collect::<Vec<_>>());
}

#[test]
fn since_starts_at_the_date_where_the_state_has_no_checkpoint() {
    // Generated record i was modified i minutes after 2024-01-01T00:00Z.
    let h = small_pages(300);
    let output = run(h.cli().args(["export", "crm_customers", "--since", "2024-01-01T04:00:00Z"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let records = jsonl(&stdout(&output));
    assert_eq!(records.len(), 300 - 239, "records modified at or after 04:00");
    assert!(records.iter().all(|r| r["modifiedOn"].as_str().unwrap() >= "2024-01-01T04:00"));

    let bad = run(h.cli().args(["export", "crm_customers", "--since", "yesterday"]));
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("--since"), "{}", stderr(&bad));
}

#[test]
fn csv_flattens_objects_to_dotted_columns_with_rfc4180_quoting() {
    let h = small_pages(120);
    rename_customers(&h.sandbox, &[100000005], "Quote, comma and");
    let out = h.dir.join("out");
    let output = run(h.cli().args(["export", "crm_customers", "--format", "csv", "--out"]).arg(&out));
    assert!(output.status.success(), "{}", stderr(&output));
    let file = out.join("crm_customers.1001.csv");
    let mut reader = csv::Reader::from_path(&file).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    for column in ["id", "name", "address.street", "address.zip", "tagTypeIds"] {
        assert!(header.contains(&column.to_string()), "{column} missing from {header:?}");
    }
    assert!(!header.contains(&"address".to_string()), "{header:?}");
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 120);
    let at = |name: &str| header.iter().position(|h| h == name).unwrap();
    let renamed = rows.iter().find(|r| &r[at("id")] == "100000005").unwrap();
    assert_eq!(&renamed[at("name")], "Quote, comma and \"100000005\", renamed");
    assert_eq!(&renamed[at("tagTypeIds")], "[]", "arrays are JSON text");
    // The quoting itself: the field is quoted and its quotes doubled.
    assert!(read(&file).contains("\"Quote, comma and \"\"100000005\"\", renamed\""));
}

#[test]
fn csv_to_stdout_takes_one_stream() {
    let h = small_pages(10);
    let output = run(h.cli().args(["export", "crm_customers", "jpm_jobs", "--format", "csv"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--out DIR"), "{}", stderr(&output));
}

#[test]
fn a_tenant_without_the_module_exits_3_and_with_others_exits_4() {
    let h = small_pages(50);
    let profile = h.write_profile("config.toml");
    // Tenant 1004 granted only crm.
    let alone = run(h.bare_cli().arg("--config").arg(&profile).args(["--tenant", "1004", "export", "jpm_jobs"]));
    assert_eq!(alone.status.code(), Some(3), "{}", stderr(&alone));
    let err = stderr(&alone);
    // Progress lines aside, the failure is one line, the last.
    let other: Vec<&str> = err.lines().filter(|l| !l.contains("summary") && !l.contains("started")).collect();
    assert_eq!(other.len(), 1, "{err}");
    assert!(other[0].contains("jpm_jobs") && other[0].contains("403") || other[0].contains("permission"), "{err}");

    let out = h.dir.join("out");
    let mixed = run(h
        .bare_cli()
        .arg("--config")
        .arg(&profile)
        .args(["--tenant", "1001", "--tenant", "1004", "export", "jpm_jobs", "crm_customers", "--out"])
        .arg(&out));
    assert_eq!(mixed.status.code(), Some(4), "{}", stderr(&mixed));
    let err = stderr(&mixed);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("servicetitan: error:")).collect();
    assert_eq!(errors.len(), 1, "one line per failure: {err}");
    assert!(errors[0].contains("jpm_jobs tenant 1004"), "{err}");
    let names: Vec<String> =
        output_files(&out).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["crm_customers.1001.jsonl", "crm_customers.1004.jsonl", "jpm_jobs.1001.jsonl"]);
    h.assert_no_secret(&mixed);
}

#[test]
fn plain_progress_lines_when_stderr_is_not_a_terminal() {
    let h = Harness::with_config(SandboxConfig {
        records: 600,
        export_page_size: 50,
        latency_ms: 20,
        ..SandboxConfig::default()
    });
    let output = run(h.cli().env("ST_PROGRESS_INTERVAL_MS", "40").args(["export", "crm_customers"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.lines().next().unwrap().contains("crm_customers: started"), "{err}");
    let progress: Vec<&str> = err.lines().filter(|l| l.contains(" records, ") && l.contains("/s")).collect();
    assert!(!progress.is_empty(), "progress lines: {err}");
    assert!(progress[0].contains(" page") && progress[0].contains("retries") && progress[0].contains("429s"), "{err}");
    assert!(err.contains("crm_customers: done, 600 records in 12 pages"), "{err}");
    assert!(!err.contains('\u{1b}'), "no terminal escapes when stderr is a file: {err:?}");

    let quiet = run(h.cli().args(["--quiet", "export", "crm_customers"]));
    assert!(quiet.status.success());
    assert!(stderr(&quiet).is_empty(), "{}", stderr(&quiet));
    assert_eq!(jsonl(&stdout(&quiet)).len(), 600);
}

#[test]
fn json_log_format_writes_one_object_per_line() {
    let h = small_pages(200);
    let output = run(h.cli().args(["--log-format", "json", "export", "crm_customers", "jpm_jobs"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let events = jsonl(&stderr(&output));
    assert!(events.iter().all(|e| e["time"].is_string() && e["level"].is_string() && e["message"].is_string()));
    let finished: Vec<_> = events.iter().filter(|e| e["event"] == "export_finished").collect();
    assert_eq!(finished.len(), 2, "{events:?}");
    assert!(finished.iter().all(|e| e["records"] == 200 && e["pages"] == 2));
    let summary = events.iter().find(|e| e["event"] == "summary").expect("a summary");
    assert_eq!(summary["streams"]["crm_customers"], 200);
    assert_eq!(summary["streams"]["jpm_jobs"], 200);
    assert_eq!(summary["calls"], 4);
    assert_eq!(summary["rate_limited"], 0);
}

#[test]
fn progress_bars_on_a_terminal() {
    // `script` (util-linux) gives the command a pseudo-terminal for stderr.
    if std::process::Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: util-linux `script` is not installed, so no pseudo-terminal can be made");
        return;
    }
    let h = Harness::with_config(SandboxConfig {
        records: 400,
        export_page_size: 50,
        latency_ms: 40,
        ..SandboxConfig::default()
    });
    let log = h.dir.join("typescript");
    let inner = format!("{} export crm_customers > {}", common::binary().display(), h.dir.join("out.jsonl").display());
    let command = h.cli(); // for the environment it sets up
    let mut script = std::process::Command::new("script");
    script.args(["-qefc", &inner]).arg(&log);
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => script.env(key, value),
            None => script.env_remove(key),
        };
    }
    let output = script.output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let screen = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
    assert!(screen.contains("crm_customers"), "{screen:?}");
    assert!(screen.contains("records") && screen.contains("429s"), "{screen:?}");
    assert!(screen.contains('\u{1b}') || screen.contains('\r'), "the bar redraws in place: {screen:?}");
    assert!(!screen.contains("crm_customers: started"), "bars replace the plain lines: {screen:?}");
    assert!(screen.contains("\nservicetitan: summary: crm_customers 400 records"), "{screen:?}");
    assert_eq!(jsonl(&read(&h.dir.join("out.jsonl"))).len(), 400);
}

#[test]
fn verbose_shows_pages_and_no_secret() {
    let h = small_pages(250);
    let output = run(h.cli().args(["--verbose", "export", "crm_customers"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let err = stderr(&output);
    assert_eq!(err.lines().filter(|l| l.contains("page of")).count(), 3, "{err}");
    h.assert_no_secret(&output);
}

#[test]
fn a_state_file_that_is_not_one_is_a_configuration_error() {
    let h = small_pages(10);
    let state = h.dir.join("state.json");
    std::fs::write(&state, "{\"not\": \"a state\"}").unwrap();
    let output = run(h.cli().args(["export", "crm_customers", "--state"]).arg(&state));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--state"), "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(&state).unwrap(), "{\"not\": \"a state\"}", "left as it was");
}

#[test]
fn more_streams_than_run_at_once_all_finish_with_every_record() {
    let h = small_pages(150);
    let streams =
        ["crm_customers", "crm_locations", "jpm_jobs", "jpm_appointments", "telecom_calls", "settings_technicians"];
    let out = h.dir.join("out");
    let output = run(h.cli().arg("export").args(streams).args(["--format", "csv", "--out"]).arg(&out));
    assert!(output.status.success(), "{}", stderr(&output));
    for stream in streams {
        let mut reader = csv::Reader::from_path(out.join(format!("{stream}.1001.csv"))).unwrap();
        assert_eq!(reader.records().count(), 150, "{stream}");
    }
    let err = stderr(&output);
    assert_eq!(err.matches(": started").count(), 6, "{err}");
    assert!(!err.contains("warning"), "every field has its column: {err}");
}
