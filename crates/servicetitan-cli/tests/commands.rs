//! `call`, `reports`, `report`, `sandbox` and `doctor`, run as a user runs them: the binary
//! against a sandbox on loopback.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use common::{jsonl, run, stderr, stdout, Harness};
use servicetitan_sandbox::{Fault, SandboxConfig};

const CUSTOMER: &str = r#"{"name": "Ada Lovelace", "type": "Residential", "locations": [],
  "address": {"street": "1 Main St", "city": "Austin", "zip": "78701", "country": "USA", "state": "TX"}}"#;

fn route_count(h: &Harness, route: &str) -> u64 {
    h.sandbox.stats()["routes"][route].as_u64().unwrap_or(0)
}

#[test]
fn call_prints_the_answer_with_flags_in_kebab_case() {
    let h = Harness::new(40);
    let output = run(h.cli().args(["call", "crm.customers.get_list", "--page-size", "5", "--active", "Any"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.starts_with("{\n  \""), "pretty-printed: {text}");
    let page: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 5);
    assert_eq!(page["pageSize"], 5);
    assert_eq!(page["hasMore"], true);
    h.assert_no_secret(&output);

    // A path parameter, and the value typed by the table (an integer).
    let id = page["data"][0]["id"].as_i64().unwrap();
    let output = run(h.cli().args(["call", "crm.customers.get", "--id", &id.to_string()]));
    assert!(output.status.success(), "{}", stderr(&output));
    let customer: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(customer["id"], id);
}

#[test]
fn call_all_follows_every_page_as_jsonl() {
    let h = Harness::new(23);
    let output = run(h.cli().args(["call", "crm.customers.get_list", "--page-size", "5", "--active", "Any", "--all"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let records = jsonl(&stdout(&output));
    assert_eq!(records.len(), 23);
    let mut ids: Vec<i64> = records.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 23, "each record once");
    assert_eq!(route_count(&h, "GET crm/v2/tenant/{tenant}/customers"), 5, "five pages of five");

    // An export feed too.
    let output = run(h.cli().args(["call", "crm.export_customers.get_customers", "--all"]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(jsonl(&stdout(&output)).len(), 23);

    // --all on an operation without pages is a usage error.
    let output = run(h.cli().args(["call", "crm.customers.get", "--id", "1", "--all"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--all"), "{}", stderr(&output));
}

#[test]
fn call_with_several_tenants_tags_each_record() {
    let h = Harness::new(4);
    let profile = h.write_profile("config.toml");
    let output = run(h.bare_cli().arg("--config").arg(&profile).args([
        "call",
        "crm.customers.get_list",
        "--active",
        "Any",
        "--all",
        "--tenant",
        "1001",
        "--tenant",
        "1002",
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    let records = jsonl(&stdout(&output));
    assert_eq!(records.len(), 8);
    assert_eq!(records.iter().filter(|r| r["_tenant_id"] == 1001).count(), 4);
    assert_eq!(records.iter().filter(|r| r["_tenant_id"] == 1002).count(), 4);
    h.assert_no_secret(&output);
}

#[test]
fn bad_call_arguments_exit_2_naming_the_flag() {
    let h = Harness::new(5);
    let cases: &[(&[&str], &str)] = &[
        (&["call", "crm.customers.get_list", "--page-sise", "5"], "did you mean --page-size?"),
        (&["call", "crm.customers.get_list", "--page-size", "five"], "--page-size: "),
        (&["call", "crm.customers.get_list", "--active", "Sometimes"], "--active: "),
        (&["call", "crm.customer.get_list"], "did you mean crm.customers.get_list?"),
        (&["call", "crm.customers.get"], "id"),
        (&["call", "crm.customers.create", "--body", "{not json"], "--body"),
        (&["call", "crm.customers.create", "--body", "@missing.json"], "--body @missing.json"),
        (&["call", "crm.customers.get_list", "--body", "{}"], "body"),
        (&["call", "--list", "crn"], "did you mean crm?"),
    ];
    for (args, expected) in cases {
        let output = run(h.cli().args(*args));
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
        let err = stderr(&output);
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        assert!(err.starts_with("servicetitan: "), "{err}");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(stdout(&output).is_empty());
    }
    let stats = h.sandbox.stats();
    let api_calls: u64 = stats["routes"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !k.contains("connect/token"))
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    assert_eq!(api_calls, 0, "nothing was sent: {stats}");
}

#[test]
fn call_sends_a_body_from_a_file_or_stdin() {
    let h = Harness::new(5);
    let file = h.dir.join("customer.json");
    std::fs::write(&file, CUSTOMER).unwrap();
    let output = run(h.cli().args(["call", "crm.customers.create", "--body"]).arg(format!("@{}", file.display())));
    assert!(output.status.success(), "{}", stderr(&output));
    let created: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(created["name"], "Ada Lovelace");

    let mut child = h
        .cli()
        .args(["call", "crm.customers.create", "--body", "@-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(CUSTOMER.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(route_count(&h, "POST crm/v2/tenant/{tenant}/customers"), 2);
}

#[test]
fn a_failed_create_is_not_sent_twice() {
    let h = Harness::new(5);
    h.sandbox
        .try_add_fault(Fault {
            route: "crm/v2/tenant/*/customers".into(),
            method: Some("POST".into()),
            status: Some(503),
            count: 3,
            ..Fault::default()
        })
        .unwrap();
    let output = run(h.cli().args(["call", "crm.customers.create", "--body", CUSTOMER]));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("not resent"), "{}", stderr(&output));
    assert_eq!(route_count(&h, "POST crm/v2/tenant/{tenant}/customers"), 1);
}

#[test]
fn call_writes_a_file_operation_as_bytes() {
    let h = Harness::new(5);
    let target = h.dir.join("call.wav");
    let output = run(h.cli().args(["call", "telecom.calls.get_recording", "--id", "1", "--output"]).arg(&target));
    assert!(output.status.success(), "{}", stderr(&output));
    let bytes = std::fs::read(&target).unwrap();
    assert!(bytes.starts_with(b"RIFF"), "a WAV file");
    let output = run(h.cli().args(["call", "telecom.calls.get_recording", "--id", "1"]));
    assert_eq!(output.stdout, bytes, "to stdout without --output");
}

#[test]
fn call_list_names_the_operations() {
    let h = Harness::new(5);
    let output = run(h.bare_cli().args(["call", "--list", "crm"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.lines().any(|l| l.starts_with("crm.customers.get_list ")), "{text}");
    assert!(text.lines().all(|l| l.starts_with("crm.")), "{text}");
    let output = run(h.bare_cli().args(["call", "--list"]));
    assert_eq!(stdout(&output).lines().count(), servicetitan::operations::operations().len());
}

#[test]
fn global_flags_may_follow_the_operation() {
    let h = Harness::new(3);
    let profile = h.write_profile("config.toml");
    let output = run(h
        .bare_cli()
        .args(["call", "crm.customers.get_list", "--page-size", "1", "--config"])
        .arg(&profile)
        .args(["--tenant", "1002"]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(h.sandbox.stats()["tenants"]["1002"]["admitted"], 1, "{}", h.sandbox.stats());
}

#[test]
fn reports_lists_categories_reports_and_parameters() {
    let h = Harness::new(5);
    let output = run(h.cli().arg("reports"));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).lines().any(|l| l.starts_with("operations ")), "{}", stdout(&output));

    let output = run(h.cli().args(["reports", "operations"]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).lines().any(|l| l.starts_with("175 ")), "{}", stdout(&output));

    let output = run(h.cli().args(["reports", "operations", "175"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("From") && text.contains("required"), "{text}");
    assert!(text.contains("Fields:") && text.contains("JobId"), "{text}");

    let output = run(h.cli().args(["reports", "operations", "175", "--json"]));
    let meta: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(meta["id"], 175);
}

#[test]
fn report_prints_every_row_as_named_records() {
    let h = Harness::with_config(SandboxConfig { records: 5, report_rows: 60, ..SandboxConfig::default() });
    let output = run(h.cli().args(["report", "operations", "175", "--param", "From=2026-01-01"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let rows = jsonl(&stdout(&output));
    assert_eq!(rows.len(), 60);
    assert!(rows[0]["JobId"].is_number() && rows[0]["BusinessUnit"].is_string(), "{}", rows[0]);
    // Columns in the report's order.
    assert!(stdout(&output).starts_with("{\"JobId\":"), "{}", stdout(&output));

    let output = run(h.cli().args([
        "report",
        "operations",
        "175",
        "--param",
        "From=2026-01-01",
        "--param",
        "IncludeAdjustmentInvoices=true",
        "--format",
        "csv",
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.starts_with("JobId,JobNumber,BusinessUnit,"), "{text}");
    assert_eq!(text.lines().count(), 61);
}

#[test]
fn report_parameters_are_checked_before_anything_is_sent() {
    let h = Harness::new(5);
    for (param, expected) in [("Frm=2026-01-01", "Frm"), ("From", "NAME=VALUE")] {
        let output = run(h.cli().args(["report", "operations", "175", "--param", param]));
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert!(stderr(&output).contains(expected), "{}", stderr(&output));
    }
    let routes = h.sandbox.stats()["routes"].clone();
    assert!(routes.as_object().unwrap().keys().all(|k| !k.contains("/data")), "no report data call: {routes}");
}

#[test]
fn sandbox_serves_until_terminated() {
    let h = Harness::new(5);
    let mut child = std::process::Command::new(common::binary())
        .args(["sandbox", "--port", "0", "--records", "7"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines.next().unwrap().unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let banner: Vec<String> = lines.by_ref().take(3).map(Result::unwrap).collect();
    assert!(banner.iter().any(|l| l.contains("ak1.sandbox-app-key")), "{banner:?}");

    let output = run(h
        .bare_cli()
        .env("ST_APP_KEY", "ak1.sandbox-app-key")
        .env("ST_AUTH_URL", &url)
        .env("ST_API_URL", &url)
        .env("ST_TENANT_ID", "1001")
        .env("ST_CLIENT_ID", "cid.sandbox.1001")
        .env("ST_CLIENT_SECRET", "cs1.sandbox-secret-1001")
        .args(["call", "crm.customers.get_list", "--active", "Any", "--all"]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(jsonl(&stdout(&output)).len(), 7, "the options reached the sandbox");

    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert!(status.success(), "a clean stop on SIGTERM: {status:?}");

    let output = run(h.bare_cli().args(["sandbox", "--config", "missing.json"]));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("missing.json"), "{}", stderr(&output));
}

#[test]
fn doctor_passes_a_healthy_setup() {
    let h = Harness::new(5);
    let output = run(h.cli().arg("doctor"));
    assert_eq!(output.status.code(), Some(0), "{}\n{}", stdout(&output), stderr(&output));
    let text = stdout(&output);
    for expected in ["clock", "accepted client id", "accepted the app key", "all 24 APIs", "none answered 429"] {
        assert!(text.contains(expected), "{expected}: {text}");
    }
    assert!(!text.contains("FAIL"), "{text}");
    h.assert_no_secret(&output);
}

#[test]
fn doctor_names_the_apis_a_tenant_refuses() {
    // The default sandbox's tenant 1004 granted the app the CRM API only.
    let h = Harness::new(5);
    let profile = h.write_profile("config.toml");
    let output = run(h.bare_cli().arg("--config").arg(&profile).args(["doctor", "--tenant", "1004", "--json"]));
    assert_eq!(output.status.code(), Some(3), "{}\n{}", stdout(&output), stderr(&output));
    let checks = jsonl(&stdout(&output));
    let permissions = checks.iter().find(|c| c["check"] == "permissions" && c["status"] == "fail").unwrap();
    let message = permissions["message"].as_str().unwrap();
    assert!(message.contains("23 of 24 APIs refused"), "{message}");
    assert!(message.contains("jpm") && message.contains("accept"), "{message}");
    assert!(message.ends_with("The app may use: crm"), "{message}");
    h.assert_no_secret(&output);
}

#[test]
fn doctor_tells_credentials_from_the_app_key() {
    let h = Harness::new(5);
    let output = run(h.cli().env("ST_CLIENT_SECRET", "cs1.not-the-secret").arg("doctor"));
    assert_eq!(output.status.code(), Some(3), "{}", stdout(&output));
    let text = stdout(&output);
    let failure = text.lines().find(|l| l.starts_with("FAIL")).unwrap();
    assert!(failure.contains("token service") && failure.contains("per environment"), "{failure}");
    assert!(!text.contains("cs1.not-the-secret"));

    let output = run(h.cli().env("ST_APP_KEY", "ak1.another-app").arg("doctor"));
    assert_eq!(output.status.code(), Some(3), "{}", stdout(&output));
    let text = stdout(&output);
    assert!(text.lines().any(|l| l.starts_with("ok") && l.contains("accepted client id")), "{text}");
    let failure = text.lines().find(|l| l.starts_with("FAIL")).unwrap();
    assert!(failure.contains("app key"), "{failure}");
    assert!(!text.contains("ak1.another-app"));
    h.assert_no_secret(&output);
}

#[test]
fn doctor_reports_a_wrong_clock_and_429s() {
    // A server whose clock is three hours ahead, answering everything with 404 (not two: the
    // `Date` header has whole seconds, so two hours can read as 7,199 s, shown as 120 min).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3 * 3600));
            let _ = write!(
                stream,
                "HTTP/1.1 404 Not Found\r\nDate: {date}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    let h = Harness::new(5);
    let output = run(h.cli().env("ST_AUTH_URL", &url).env("ST_API_URL", &url).arg("doctor"));
    let text = stdout(&output);
    let clock = text.lines().find(|l| l.contains("clock")).unwrap();
    assert!(clock.starts_with("FAIL") && clock.contains("3.0 h behind"), "{clock}");
    assert_ne!(output.status.code(), Some(0));

    // The sandbox's 429s show in the budget check.
    let h = Harness::new(5);
    h.sandbox
        .try_add_fault(Fault {
            route: "crm/*".into(),
            status: Some(429),
            retry_after: Some("0".into()),
            count: 1,
            ..Fault::default()
        })
        .unwrap();
    let output = run(h.cli().arg("doctor"));
    let text = stdout(&output);
    let budget = text.lines().find(|l| l.contains("429")).unwrap();
    assert!(budget.starts_with("warning") && budget.contains("1 of 25 calls"), "{budget}\n{text}");
    assert_eq!(output.status.code(), Some(0), "a warning only: {text}");
}

#[test]
fn help_shows_no_secret() {
    let h = Harness::new(5);
    for command in ["call", "reports", "report", "sandbox", "doctor"] {
        let output = run(h.bare_cli().args([command, "--help"]));
        assert!(output.status.success(), "{command}");
        assert!(stdout(&output).contains("Examples:"), "{command}");
        h.assert_no_secret(&output);
    }
}

#[test]
fn call_help_after_an_operation_describes_it() {
    let h = Harness::new(5);
    let output = run(h.bare_cli().args(["call", "crm.customers.get_list", "--help"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.starts_with("crm.customers.get_list (Customers_GetList): GET crm/v2/tenant/{tenant}/customers"),
        "{text}"
    );
    assert!(text.contains("--page-size <integer>"), "{text}");
    assert!(text.contains("--active <True|Any|False>"), "{text}");
    let output = run(h.bare_cli().args(["call", "crm.customers.get", "--id", "1", "-h"]));
    assert!(stdout(&output).contains("--id <integer>  required, in the path"), "{}", stdout(&output));
    let output = run(h.bare_cli().args(["call", "--help"]));
    assert!(stdout(&output).contains("Examples:"), "{}", stdout(&output));
}
