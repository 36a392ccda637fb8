//! The sandbox over loopback, as clients see it: tokens, checks, limits, paging, exports,
//! writes, reports and faults.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::Harness;
use reqwest::Method;
use serde_json::{json, Value};
use servicetitan_sandbox::{Fault, JitterConfig, LimitConfig, SandboxConfig, WindowMode};

fn config() -> SandboxConfig {
    SandboxConfig::default()
}

#[tokio::test]
async fn token_endpoint_issues_tokens_and_speaks_rfc6749() {
    let h = Harness::start(config()).await;
    let t = h.tenant(1001);
    let ok = h
        .token_response(&[
            ("grant_type", "client_credentials"),
            ("client_id", &t.client_id),
            ("client_secret", &t.client_secret),
        ])
        .await;
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["access_token"].as_str().unwrap().split('.').count(), 3, "a JWT");

    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("grant_type", "client_credentials"), ("client_id", &t.client_id), ("client_secret", "wrong")],
            "invalid_client",
        ),
        (
            &[("grant_type", "client_credentials"), ("client_id", "cid.unknown"), ("client_secret", "x")],
            "invalid_client",
        ),
        (
            &[("grant_type", "password"), ("client_id", &t.client_id), ("client_secret", &t.client_secret)],
            "unsupported_grant_type",
        ),
        (&[("client_id", &t.client_id), ("client_secret", &t.client_secret)], "invalid_request"),
        (&[("grant_type", "client_credentials"), ("client_id", &t.client_id)], "invalid_request"),
    ];
    for (form, error) in cases {
        let r = h.token_response(form).await;
        assert_eq!(r.status(), 400, "{form:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], *error, "{form:?}");
    }
    // A JSON body is not a form: the endpoint says so instead of failing oddly.
    let r =
        h.http.post(h.url("connect/token")).json(&json!({"grant_type": "client_credentials"})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    let malformed = h
        .http
        .post(h.url("connect/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=%zz&&=")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);

    let stats = h.sandbox.stats();
    assert_eq!(stats["token_requests"][&t.client_id], 5);
    assert_eq!(stats["token_requests"]["cid.unknown"], 1);
}

#[tokio::test]
async fn calls_need_the_app_key_a_live_token_for_that_tenant_and_the_scope() {
    let mut cfg = config();
    cfg.token_lifetime_secs = 1.0;
    let h = Harness::start(cfg).await;
    let token = h.token(1001).await;
    let path = "crm/v2/tenant/1001/customers";
    assert_eq!(h.call(Method::GET, path, &token, None).await.status(), 200);

    let no_key = h.http.get(h.url(path)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(no_key.status(), 401);
    assert!(no_key.json::<Value>().await.unwrap()["title"].as_str().unwrap().contains("ST-App-Key"));
    let bad_key = h.http.get(h.url(path)).header("ST-App-Key", "ak1.other").bearer_auth(&token).send().await.unwrap();
    assert_eq!(bad_key.status(), 401);
    let no_token = h.http.get(h.url(path)).header("ST-App-Key", h.sandbox.app_key()).send().await.unwrap();
    assert_eq!(no_token.status(), 401);
    assert_eq!(h.call(Method::GET, path, "forged.token.value", None).await.status(), 401);

    let other_tenant = h.call(Method::GET, "crm/v2/tenant/1002/customers", &token, None).await;
    assert_eq!(other_tenant.status(), 401);
    assert!(other_tenant.json::<Value>().await.unwrap()["title"].as_str().unwrap().contains("1002"));

    let limited = h.token(1004).await;
    assert_eq!(h.call(Method::GET, "crm/v2/tenant/1004/customers", &limited, None).await.status(), 200);
    let denied = h.call(Method::GET, "jpm/v2/tenant/1004/jobs", &limited, None).await;
    assert_eq!(denied.status(), 403);
    let body: Value = denied.json().await.unwrap();
    assert_eq!(body["status"], 403);
    assert!(body["title"].as_str().unwrap().contains("scope"));

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let expired = h.call(Method::GET, path, &token, None).await;
    assert_eq!(expired.status(), 401);
    assert!(expired.json::<Value>().await.unwrap()["title"].as_str().unwrap().contains("expired"));
    assert_eq!(h.sandbox.stats()["unauthorized"], 6);
}

#[tokio::test]
async fn revoked_tokens_are_refused_and_new_ones_work() {
    let h = Harness::start(config()).await;
    let token = h.token(1001).await;
    let path = "settings/v2/tenant/1001/technicians";
    assert_eq!(h.call(Method::GET, path, &token, None).await.status(), 200);
    h.sandbox.revoke_tokens();
    let revoked = h.call(Method::GET, path, &token, None).await;
    assert_eq!(revoked.status(), 401);
    assert!(revoked.json::<Value>().await.unwrap()["title"].as_str().unwrap().contains("revoked"));
    let fresh = h.token(1001).await;
    assert_eq!(h.call(Method::GET, path, &fresh, None).await.status(), 200);
}

#[tokio::test]
async fn enterprise_hub_credentials_act_for_every_tenant_that_shares_them() {
    let mut cfg = config();
    cfg.tenants[1].client_id = cfg.tenants[0].client_id.clone();
    cfg.tenants[1].client_secret = cfg.tenants[0].client_secret.clone();
    let h = Harness::start(cfg).await;
    let token = h.token(1001).await;
    assert_eq!(h.call(Method::GET, "crm/v2/tenant/1001/customers", &token, None).await.status(), 200);
    assert_eq!(h.call(Method::GET, "crm/v2/tenant/1002/customers", &token, None).await.status(), 200);
    assert_eq!(h.call(Method::GET, "crm/v2/tenant/1003/customers", &token, None).await.status(), 401);
}

/// Sends `n` calls at once; returns (statuses, the 429 answers' Retry-After and titles).
async fn burst(h: &Harness, token: &str, n: usize) -> (Vec<u16>, Vec<(String, String)>) {
    let calls = (0..n).map(|_| h.call(Method::GET, "crm/v2/tenant/1001/customers?pageSize=1", token, None));
    let mut statuses = Vec::new();
    let mut rejections = Vec::new();
    for r in futures::future::join_all(calls).await {
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            let retry_after = r.headers()["retry-after"].to_str().unwrap().to_string();
            let body: Value = r.json().await.unwrap();
            rejections.push((retry_after, body["title"].as_str().unwrap().to_string()));
        }
    }
    (statuses, rejections)
}

#[tokio::test]
async fn the_rate_limit_rejects_the_excess_with_retry_after_in_both_window_modes() {
    for mode in [WindowMode::Sliding, WindowMode::Fixed] {
        let mut cfg = config();
        cfg.rate_limit = LimitConfig { enabled: true, calls: 10, window_ms: 2000, mode, phase_ms: 0 };
        let h = Harness::start(cfg).await;
        let token = h.token(1001).await;
        let (statuses, rejections) = burst(&h, &token, 25).await;
        let admitted = statuses.iter().filter(|s| **s == 200).count();
        assert!((1..=10).contains(&admitted), "{mode:?}: {statuses:?}");
        assert_eq!(admitted + rejections.len(), 25, "{mode:?}: only 200s and 429s");
        for (retry_after, title) in &rejections {
            let seconds: u64 = retry_after.parse().expect("Retry-After in seconds");
            assert!((1..=2).contains(&seconds), "{retry_after}");
            assert!(title.ends_with(&format!("Try again in {seconds} seconds.")), "{title}");
        }
        let stats = h.sandbox.stats();
        let tenant = &stats["tenants"]["1001"];
        assert_eq!(tenant["admitted"], admitted as u64);
        assert_eq!(tenant["rejected"], rejections.len() as u64);
        assert!(tenant["max_in_window"].as_u64().unwrap() <= 10);
        // Another tenant has a budget of its own.
        let other = h.token(1002).await;
        assert_eq!(h.call(Method::GET, "crm/v2/tenant/1002/customers", &other, None).await.status(), 200);
    }
}

#[tokio::test]
async fn lists_filter_by_active_and_page_through_every_record_once() {
    let mut cfg = config();
    cfg.records = 1234;
    cfg.rate_limit = LimitConfig::disabled();
    let h = Harness::start(cfg).await;
    let token = h.token(1001).await;
    let total = |q: &'static str| {
        let h = &h;
        let token = &token;
        async move {
            h.get_json(&format!("crm/v2/tenant/1001/customers?pageSize=1&includeTotal=true{q}"), token).await
                ["totalCount"]
                .as_u64()
                .unwrap()
        }
    };
    let (default, active, inactive, any) =
        (total("").await, total("&active=True").await, total("&active=false").await, total("&active=Any").await);
    assert_eq!(any, 1234);
    assert_eq!(default, active, "active only by default");
    assert_eq!(active + inactive, any);
    assert!(inactive > 0 && active > inactive);
    let without_total = h.get_json("crm/v2/tenant/1001/customers?pageSize=1", &token).await;
    assert!(without_total["totalCount"].is_null());

    let mut seen = HashSet::new();
    let mut page = 1;
    loop {
        let body = h.get_json(&format!("jpm/v2/tenant/1001/jobs?page={page}&pageSize=100&active=Any"), &token).await;
        assert_eq!(body["page"], page);
        assert_eq!(body["pageSize"], 100);
        for job in body["data"].as_array().unwrap() {
            assert!(seen.insert(job["id"].as_i64().unwrap()), "job {} twice", job["id"]);
        }
        if !body["hasMore"].as_bool().unwrap() {
            break;
        }
        page += 1;
    }
    assert_eq!(seen.len(), 1234);
    assert_eq!(page, 13);

    let some: Vec<i64> = seen.iter().copied().take(3).collect();
    let ids = some.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let by_ids = h.get_json(&format!("jpm/v2/tenant/1001/jobs?ids={ids}&active=Any"), &token).await;
    let mut got: Vec<i64> = by_ids["data"].as_array().unwrap().iter().map(|j| j["id"].as_i64().unwrap()).collect();
    got.sort();
    let mut want = some.clone();
    want.sort();
    assert_eq!(got, want);

    let recent = h
        .get_json(
            "crm/v2/tenant/1001/customers?modifiedOnOrAfter=2024-01-01T10:00:00Z&active=Any&pageSize=5000",
            &token,
        )
        .await;
    let records = recent["data"].as_array().unwrap();
    assert_eq!(records.len(), 1234 - 599);
    assert!(records.iter().all(|c| c["modifiedOn"].as_str().unwrap() >= "2024-01-01T10:00:00"));

    let one = &records[0];
    let by_id = h.get_json(&format!("crm/v2/tenant/1001/customers/{}", one["id"]), &token).await;
    assert_eq!(&by_id, one);
    let missing = h.call(Method::GET, "crm/v2/tenant/1001/customers/42", &token, None).await;
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await.unwrap()["status"], 404);
}

async fn drain_export(h: &Harness, token: &str, path: &str, from: Option<String>) -> (Vec<Value>, String, usize) {
    let mut records = Vec::new();
    let mut from = from;
    let mut pages = 0;
    loop {
        let url = match &from {
            Some(f) => format!("{path}?from={f}"),
            None => path.to_string(),
        };
        let body = h.get_json(&url, token).await;
        pages += 1;
        records.extend(body["data"].as_array().unwrap().iter().cloned());
        from = Some(body["continueFrom"].as_str().unwrap().to_string());
        if !body["hasMore"].as_bool().unwrap() {
            return (records, from.unwrap(), pages);
        }
    }
}

#[tokio::test]
async fn exports_deliver_every_record_once_and_resume_from_tokens_and_dates() {
    let mut cfg = config();
    cfg.records = 2500;
    cfg.export_page_size = 400;
    cfg.rate_limit = LimitConfig::disabled();
    let h = Harness::start(cfg).await;
    let token = h.token(1001).await;
    let path = "crm/v2/tenant/1001/export/customers";
    let (all, end, pages) = drain_export(&h, &token, path, None).await;
    assert_eq!(pages, 7);
    let ids: HashSet<i64> = all.iter().map(|c| c["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 2500, "every record once, inactive ones included");
    assert!(all.iter().any(|c| c["active"] == false));

    // Resuming from the third page's token gives exactly the rest.
    let first = h.get_json(path, &token).await;
    let second = h.get_json(&format!("{path}?from={}", first["continueFrom"].as_str().unwrap()), &token).await;
    let (rest, _, _) = drain_export(&h, &token, path, Some(second["continueFrom"].as_str().unwrap().to_string())).await;
    assert_eq!(rest.len(), 2500 - 800);
    assert_eq!(rest[0], all[800]);

    // Caught up: the final token gives nothing new until something changes.
    let caught_up = h.get_json(&format!("{path}?from={end}"), &token).await;
    assert_eq!(caught_up["data"].as_array().unwrap().len(), 0);
    assert_eq!(caught_up["hasMore"], false);

    // A date starts the feed at the first record modified on or after it.
    let (since, _, _) = drain_export(&h, &token, path, Some("2024-01-01T10:00:00Z".into())).await;
    assert_eq!(since.len(), 2500 - 599);
    assert_eq!(since[0]["modifiedOn"], "2024-01-01T10:00:00.000Z");

    let bad = h.call(Method::GET, &format!("{path}?from=garbage"), &token, None).await;
    assert_eq!(bad.status(), 400);
    assert!(bad.json::<Value>().await.unwrap()["errors"]["from"].is_array());
    // A token of another export is not accepted here.
    let jobs = h.get_json("jpm/v2/tenant/1001/export/jobs", &token).await;
    let foreign =
        h.call(Method::GET, &format!("{path}?from={}", jobs["continueFrom"].as_str().unwrap()), &token, None).await;
    assert_eq!(foreign.status(), 400);
}

#[tokio::test]
async fn customers_can_be_created_and_patched_and_changes_reach_the_export_tail() {
    let mut cfg = config();
    cfg.records = 50;
    let h = Harness::start(cfg).await;
    let token = h.token(1001).await;
    let path = "crm/v2/tenant/1001/export/customers";
    let (_, checkpoint, _) = drain_export(&h, &token, path, None).await;

    let new_customer = json!({
        "name": "Ada Lovelace",
        "type": "Residential",
        "address": {"street": "1 Analytical Way", "city": "Austin", "state": "TX", "zip": "78701", "country": "USA"},
        "locations": [{"name": "Home", "address": {"street": "1 Analytical Way", "city": "Austin", "state": "TX", "zip": "78701", "country": "USA"}}],
    });
    let created = h.call(Method::POST, "crm/v2/tenant/1001/customers", &token, Some(&new_customer)).await;
    assert_eq!(created.status(), 200);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["name"], "Ada Lovelace");
    let id = created["id"].as_i64().unwrap();
    let fetched = h.get_json(&format!("crm/v2/tenant/1001/customers/{id}"), &token).await;
    assert_eq!(fetched["address"]["street"], "1 Analytical Way");

    let first = h.get_json("crm/v2/tenant/1001/customers?pageSize=1", &token).await["data"][0].clone();
    let patched = h
        .call(
            Method::PATCH,
            &format!("crm/v2/tenant/1001/customers/{}", first["id"]),
            &token,
            Some(&json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!(patched.status(), 200);
    assert_eq!(patched.json::<Value>().await.unwrap()["name"], "Renamed");

    let (changes, _, _) = drain_export(&h, &token, path, Some(checkpoint)).await;
    let names: Vec<&str> = changes.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Ada Lovelace", "Renamed"]);
    let (all, _, _) = drain_export(&h, &token, path, None).await;
    assert_eq!(all.len(), 51, "the patched record appears once, at its new place");
    assert_eq!(all.iter().filter(|c| c["id"] == first["id"]).count(), 1);

    let invalid = h.call(Method::POST, "crm/v2/tenant/1001/customers", &token, Some(&json!({"name": 5}))).await;
    assert_eq!(invalid.status(), 400);
    let errors = invalid.json::<Value>().await.unwrap()["errors"].clone();
    assert!(errors.get("name").is_some(), "{errors}");
    assert!(
        errors
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.contains("address") || k.contains("locations") || k.is_empty() || k == "body"),
        "{errors}"
    );
    let not_json = h
        .http
        .post(h.url("crm/v2/tenant/1001/customers"))
        .header("ST-App-Key", h.sandbox.app_key())
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let missing = h.call(Method::PATCH, "crm/v2/tenant/1001/customers/7", &token, Some(&json!({"name": "x"}))).await;
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn reports_validate_parameters_page_rows_and_limit_runs_per_report() {
    let mut cfg = config();
    cfg.report_rows = 2500;
    cfg.report_limit =
        LimitConfig { enabled: true, calls: 5, window_ms: 60_000, mode: WindowMode::Sliding, phase_ms: 0 };
    let h = Harness::start(cfg).await;
    let token = h.token(1001).await;
    let categories = h.get_json("reporting/v2/tenant/1001/report-categories", &token).await;
    assert!(categories["data"].as_array().unwrap().iter().any(|c| c["id"] == "operations"));
    let reports = h.get_json("reporting/v2/tenant/1001/report-category/operations/reports", &token).await;
    assert!(reports["data"].as_array().unwrap().iter().any(|r| r["id"] == 175));
    let meta = h.get_json("reporting/v2/tenant/1001/report-category/operations/reports/175", &token).await;
    let from = meta["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "From").unwrap();
    assert_eq!(from["isRequired"], true);
    assert_eq!(from["dataType"], "Date");

    let data_path = "reporting/v2/tenant/1001/report-category/operations/reports/175/data";
    let missing = h.call(Method::POST, data_path, &token, Some(&json!({"parameters": []}))).await;
    assert_eq!(missing.status(), 400);
    assert!(missing.json::<Value>().await.unwrap()["errors"]["From"].is_array());

    let params = json!({"parameters": [{"name": "From", "value": "2026-01-01"}]});
    let mut rows = 0;
    for page in 1..=3 {
        let r = h.call(Method::POST, &format!("{data_path}?page={page}&pageSize=1000"), &token, Some(&params)).await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        let fields = body["fields"].as_array().unwrap();
        let data = body["data"].as_array().unwrap();
        assert!(data.iter().all(|row| row.as_array().unwrap().len() == fields.len()));
        rows += data.len();
        assert_eq!(body["hasMore"], page < 3);
    }
    assert_eq!(rows, 2500);
    // Three runs used; two more pass; the sixth within the minute is refused.
    for _ in 0..2 {
        assert_eq!(h.call(Method::POST, data_path, &token, Some(&params)).await.status(), 200);
    }
    let sixth = h.call(Method::POST, data_path, &token, Some(&params)).await;
    assert_eq!(sixth.status(), 429);
    let wait: u64 = sixth.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((50..=60).contains(&wait), "{wait}");
    // Another report has its own budget.
    let other = "reporting/v2/tenant/1001/report-category/operations/reports/176/data";
    assert_eq!(h.call(Method::POST, other, &token, Some(&params)).await.status(), 200);
    let stats = h.sandbox.stats();
    assert_eq!(stats["reports"]["1001/175"]["admitted"], 5);
    assert_eq!(stats["reports"]["1001/175"]["rejected"], 1);
    // Reporting is outside the per-tenant limit of other APIs.
    assert!(stats["tenants"].get("1001").is_none());
}

#[tokio::test]
async fn faults_fire_as_armed_then_stop() {
    let h = Harness::start(config()).await;
    let token = h.token(1001).await;
    let path = "crm/v2/tenant/1001/customers";
    h.sandbox.add_fault(Fault {
        route: "crm/v2/tenant/*/customers*".into(),
        method: Some("GET".into()),
        status: Some(503),
        count: 2,
        ..Fault::default()
    });
    assert_eq!(h.call(Method::POST, path, &token, Some(&json!({}))).await.status(), 400, "POST is not matched");
    assert_eq!(h.call(Method::GET, path, &token, None).await.status(), 503);
    assert_eq!(h.call(Method::GET, path, &token, None).await.status(), 503);
    assert_eq!(h.call(Method::GET, path, &token, None).await.status(), 200);

    h.sandbox.add_fault(Fault {
        route: path.into(),
        status: Some(429),
        retry_after: Some("3".into()),
        ..Fault::default()
    });
    let limited = h.call(Method::GET, path, &token, None).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "3");

    h.sandbox.add_fault(Fault { route: path.into(), drop_connection: true, ..Fault::default() });
    let dropped = h.http.get(h.url(path)).header("ST-App-Key", h.sandbox.app_key()).bearer_auth(&token).send().await;
    assert!(dropped.is_err(), "the connection was closed without an answer");

    h.sandbox.add_fault(Fault { route: path.into(), delay_ms: 300, ..Fault::default() });
    let started = std::time::Instant::now();
    assert_eq!(h.call(Method::GET, path, &token, None).await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    // The control API arms faults too, and the token route can fail.
    let armed = h
        .http
        .post(h.url("__sandbox/faults"))
        .json(&json!({"route": "connect/token", "status": 500, "count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(armed.status(), 201);
    let t = h.tenant(1001);
    let failed = h
        .token_response(&[
            ("grant_type", "client_credentials"),
            ("client_id", &t.client_id),
            ("client_secret", &t.client_secret),
        ])
        .await;
    assert_eq!(failed.status(), 500);
    assert_eq!(h.token(1001).await.split('.').count(), 3);
    let rejected =
        h.http.post(h.url("__sandbox/faults")).json(&json!({"route": "x", "status": 200})).send().await.unwrap();
    assert_eq!(rejected.status(), 400);

    let stats = h.sandbox.stats();
    assert_eq!(stats["faults_fired"], 6);
    assert_eq!(stats["routes"]["GET crm/v2/tenant/{tenant}/customers"], 6);
    assert_eq!(stats["routes"]["POST crm/v2/tenant/{tenant}/customers"], 1);
}

#[tokio::test]
async fn bad_input_gets_the_services_error_shapes() {
    let h = Harness::start(config()).await;
    let token = h.token(1001).await;
    for (path, status, field) in [
        ("crm/v2/tenant/abc/customers", 400, Some("tenant")),
        ("crm/v2/tenant/1001/customers?pageSize=5001", 400, Some("pageSize")),
        ("crm/v2/tenant/1001/customers?pageSize=0", 400, Some("pageSize")),
        ("crm/v2/tenant/1001/customers?page=x", 400, Some("page")),
        ("crm/v2/tenant/1001/customers?active=maybe", 400, Some("active")),
        ("crm/v2/tenant/1001/customers?modifiedOnOrAfter=yesterday", 400, Some("modifiedOnOrAfter")),
        ("crm/v2/tenant/1001/customers?ids=1,x", 400, Some("ids")),
        ("crm/v2/tenant/1001/customers/abc", 400, Some("id")),
        ("crm/v2/tenant/1001/no-such-thing", 404, None),
        ("nothing/here", 404, None),
        ("crm/v2/tenant/1001/export/customers?includeRecentChanges=perhaps", 400, Some("includeRecentChanges")),
    ] {
        let r = h.call(Method::GET, path, &token, None).await;
        assert_eq!(r.status(), status, "{path}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/problem+json"), "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], status, "{path}");
        assert!(body["traceId"].as_str().is_some_and(|t| !t.is_empty()), "{path}");
        if let Some(field) = field {
            assert!(body["errors"][field].is_array(), "{path}: {body}");
        }
    }
    let huge = "x".repeat(5 * 1024 * 1024);
    let r = h
        .http
        .post(h.url("crm/v2/tenant/1001/customers"))
        .header("ST-App-Key", h.sandbox.app_key())
        .bearer_auth(&token)
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // The server is still answering after all of that.
    assert_eq!(h.call(Method::GET, "crm/v2/tenant/1001/customers", &token, None).await.status(), 200);
}

#[test]
fn background_sandbox_runs_without_a_runtime() {
    let mut sandbox = servicetitan_sandbox::BackgroundSandbox::start(config()).expect("starts");
    let url = format!("{}/__sandbox/stats", sandbox.base_url());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let status = runtime.block_on(async { reqwest::get(&url).await.unwrap().status() });
    assert_eq!(status, 200);
    sandbox.stop();
    assert!(runtime.block_on(async { reqwest::get(&url).await }).is_err(), "stopped");
}

#[tokio::test]
async fn inbound_jitter_delays_calls_and_changes_at_run_time() {
    let mut cfg = config();
    cfg.inbound_jitter = JitterConfig::uniform(5);
    let h = Harness::start(cfg).await;
    let token = h.token(1001).await;
    let current: Value = h.http.get(h.url("__sandbox/jitter")).send().await.unwrap().json().await.unwrap();
    assert_eq!(current, json!({"distribution": "uniform", "max_ms": 5}));

    // Made worse mid-run through the control API: every call now waits 0–100 ms, 50 ms on
    // average, before it is counted, so 20 calls in a row take about a second.
    let set = h
        .http
        .put(h.url("__sandbox/jitter"))
        .json(&json!({"distribution": "uniform", "max_ms": 100}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    assert_eq!(h.sandbox.jitter(), JitterConfig::uniform(100));
    let started = std::time::Instant::now();
    for _ in 0..20 {
        assert_eq!(h.call(Method::GET, "crm/v2/tenant/1001/customers?pageSize=1", &token, None).await.status(), 200);
    }
    assert!(started.elapsed() >= Duration::from_millis(400), "{:?}", started.elapsed());
    assert_eq!(h.sandbox.stats()["tenants"]["1001"]["admitted"], 20);

    for bad in [json!({"distribution": "uniform", "max_ms": 3_600_000}), json!({"distribution": "gaussian"})] {
        let r = h.http.put(h.url("__sandbox/jitter")).json(&bad).send().await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    h.sandbox.set_jitter(JitterConfig::long_tailed(50)).unwrap();
    assert_eq!(h.sandbox.jitter(), JitterConfig::long_tailed(50));
}
