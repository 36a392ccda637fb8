//! The operations without hand-written routes, answered from the catalogue: paging, records by
//! id, exports, parameter checks, writes, downloads, determinism.

mod common;

use common::Harness;
use reqwest::Method;
use serde_json::{json, Value};
use servicetitan_sandbox::{LimitConfig, SandboxConfig};

fn config(seed: u64) -> SandboxConfig {
    SandboxConfig { records: 20, export_page_size: 8, seed, rate_limit: LimitConfig::disabled(), ..Default::default() }
}

async fn call(h: &Harness, token: &str, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
    let response = h.call(method, path, token, body).await;
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (status, if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() })
}

const APPOINTMENTS: &str = "jpm/v2/tenant/1001/appointments";

#[tokio::test]
async fn lists_page_and_records_by_id_match_the_list() {
    let h = Harness::start(config(42)).await;
    let token = h.token(1001).await;
    let (status, page) =
        call(&h, &token, Method::GET, &format!("{APPOINTMENTS}?page=2&pageSize=6&includeTotal=true"), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (page["page"].clone(), page["pageSize"].clone(), page["totalCount"].clone()),
        (json!(2), json!(6), json!(20))
    );
    assert_eq!(page["hasMore"], true);
    let ids: Vec<i64> = page["data"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, (7..=12).collect::<Vec<_>>());
    // Without includeTotal the count is null, as the service answers.
    let (_, last) = call(&h, &token, Method::GET, &format!("{APPOINTMENTS}?page=4&pageSize=6"), None).await;
    assert_eq!((last["hasMore"].clone(), last["totalCount"].clone()), (json!(false), Value::Null));
    assert_eq!(last["data"].as_array().unwrap().len(), 2);

    for record in page["data"].as_array().unwrap() {
        let (status, one) = call(&h, &token, Method::GET, &format!("{APPOINTMENTS}/{}", record["id"]), None).await;
        assert_eq!((status, &one), (200, record), "the list and the get-by-id answer differ");
    }
    let (status, problem) = call(&h, &token, Method::GET, &format!("{APPOINTMENTS}/21"), None).await;
    assert_eq!(status, 404);
    assert_eq!(problem["title"], "Appointment with id 21 was not found.");
    // Writes to a record and paths below it need the record too.
    let (status, _) = call(&h, &token, Method::DELETE, &format!("{APPOINTMENTS}/21"), None).await;
    assert_eq!(status, 404);
    let (status, _) = call(&h, &token, Method::DELETE, &format!("{APPOINTMENTS}/20"), None).await;
    assert_eq!(status, 200);
    // Under a hand-written list, the ids are that list's.
    let (_, jobs) = call(&h, &token, Method::GET, "jpm/v2/tenant/1001/jobs?pageSize=1", None).await;
    let job = &jobs["data"][0]["id"];
    assert_eq!(call(&h, &token, Method::GET, &format!("jpm/v2/tenant/1001/jobs/{job}/notes"), None).await.0, 200);
    assert_eq!(call(&h, &token, Method::GET, "jpm/v2/tenant/1001/jobs/1/notes", None).await.0, 404);
}

#[tokio::test]
async fn export_feeds_continue_to_the_end_and_start_from_a_date() {
    let h = Harness::start(config(42)).await;
    let token = h.token(1001).await;
    let feed = "jpm/v2/tenant/1001/export/appointments";
    let (mut from, mut ids) = (String::new(), Vec::new());
    loop {
        let (status, page) = call(&h, &token, Method::GET, &format!("{feed}{from}"), None).await;
        assert_eq!(status, 200, "{page}");
        ids.extend(page["data"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()));
        if page["hasMore"] == false {
            break;
        }
        from = format!("?from={}", page["continueFrom"].as_str().unwrap());
    }
    assert_eq!(ids, (1..=20).collect::<Vec<_>>());
    // Record i was modified i minutes after 2024-01-01.
    let (_, page) = call(&h, &token, Method::GET, &format!("{feed}?from=2024-01-01T00:15:00Z"), None).await;
    assert_eq!(page["data"][0]["id"], 15);
    assert_eq!(page["data"][0]["modifiedOn"], "2024-01-01T00:15:00.000Z");
    // A token of another feed is not a token of this one.
    let (_, other) = call(&h, &token, Method::GET, "pricebook/v2/tenant/1001/export/services", None).await;
    let foreign = other["continueFrom"].as_str().unwrap();
    let (status, problem) = call(&h, &token, Method::GET, &format!("{feed}?from={foreign}"), None).await;
    assert_eq!(status, 400);
    assert!(problem["errors"]["from"].is_array(), "{problem}");
}

#[tokio::test]
async fn parameters_are_checked_like_the_service_binds_them() {
    let h = Harness::start(config(42)).await;
    let token = h.token(1001).await;
    for (method, path, field) in [
        (Method::GET, "jpm/v2/tenant/1001/appointments/abc", "id"),
        (Method::GET, "jpm/v2/tenant/1001/appointments?pageSize=5001", "pageSize"),
        (Method::GET, "jpm/v2/tenant/1001/appointments?page=0", "page"),
        (Method::GET, "jpm/v2/tenant/1001/appointments?startsOnOrAfter=yesterday", "startsOnOrAfter"),
        (Method::GET, "jpm/v2/tenant/1001/appointments?technicianId=x", "technicianId"),
        (Method::GET, "marketing/v2/tenant/1001/campaign-cost-summary?to=2024-02-01", "from"),
        (Method::GET, "telecom/v2/tenant/1001/calls?ids=1&ids=two", "ids"),
    ] {
        let (status, problem) = call(&h, &token, method.clone(), path, None).await;
        assert_eq!(status, 400, "{method} {path}: {problem}");
        assert!(problem["errors"][field].is_array(), "{method} {path}: {problem}");
    }
    // Undocumented keys are ignored; a method the path does not take is 405.
    assert_eq!(call(&h, &token, Method::GET, "jpm/v2/tenant/1001/appointments?colour=blue", None).await.0, 200);
    let (status, problem) = call(&h, &token, Method::GET, "crm/v2/tenant/1001/tags", None).await;
    assert_eq!(status, 405, "{problem}");
    assert!(problem["title"].as_str().unwrap().contains("PUT, DELETE"), "{problem}");
}

#[tokio::test]
async fn writes_check_their_body_and_answer_with_what_was_sent() {
    let h = Harness::start(config(42)).await;
    let token = h.token(1001).await;
    let types = "jpm/v2/tenant/1001/job-types";
    let (status, created) =
        call(&h, &token, Method::POST, types, Some(&json!({"name": "Boiler service", "duration": 90}))).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!((created["name"].clone(), created["duration"].clone()), (json!("Boiler service"), json!(90)));

    let (status, problem) = call(&h, &token, Method::POST, types, Some(&json!({"duration": "long"}))).await;
    assert_eq!(status, 400);
    assert_eq!(problem["errors"]["name"], json!(["required property is missing"]));
    assert_eq!(problem["errors"]["duration"], json!(["expected integer, got string"]));
    let (status, problem) = call(&h, &token, Method::POST, types, None).await;
    assert_eq!(status, 400);
    assert!(problem["errors"]["body"].is_array(), "{problem}");

    // The record's id comes from the path.
    let (status, patched) = call(&h, &token, Method::PATCH, &format!("{types}/3"), Some(&json!({"name": "X"}))).await;
    assert_eq!((status, patched["id"].clone(), patched["name"].clone()), (200, json!(3), json!("X")));
    // Nothing is kept: the sandbox's generated records stay as they were.
    let (_, again) = call(&h, &token, Method::GET, &format!("{types}/3"), None).await;
    assert_ne!(again["name"], "X");
    // 204 answers have no body.
    let (status, body) = call(&h, &token, Method::DELETE, "pricebook/v2/tenant/1001/services/2", None).await;
    assert_eq!((status, body), (204, Value::Null));
}

#[tokio::test]
async fn downloads_answer_bytes_and_redirects_point_at_them() {
    let h = Harness::start(config(42)).await;
    let token = h.token(1001).await;
    let recording = h.call(Method::GET, "telecom/v2/tenant/1001/calls/5/recording", &token, None).await;
    assert_eq!(recording.status(), 200);
    assert_eq!(recording.headers()["content-type"], "application/octet-stream");
    assert!(recording.bytes().await.unwrap().starts_with(b"RIFF"));
    // A file is not JSON: asked for as JSON only, it is 406, as content negotiation has it.
    let as_json = h
        .http
        .get(h.url("telecom/v2/tenant/1001/calls/5/recording"))
        .header("ST-App-Key", h.sandbox.app_key())
        .header("accept", "application/json")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(as_json.status(), 406);

    // The three downloads documented as a redirect, installed equipment's too (its spec lists a
    // bodiless 200 beside the 302).
    for path in [
        "pricebook/v2/tenant/1001/images?path=a/b.png",
        "findings/v2/tenant/1001/assets?path=a/b.png",
        "equipmentsystems/v2/tenant/1001/installed-equipment/attachments?path=a/b.pdf",
    ] {
        let answer = h.call(Method::GET, path, &token, None).await;
        assert_eq!(answer.status(), 302, "{path}");
        let location = answer.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.starts_with("/__sandbox/files/"), "{location}");
        let file = h.http.get(h.url(&location)).send().await.unwrap();
        assert_eq!(file.status(), 200);
        assert!(!file.bytes().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn literal_segments_win_over_ids_under_hand_written_lists() {
    let h = Harness::start(config(42)).await;
    let token = h.token(1001).await;
    for path in [
        "crm/v2/tenant/1001/customers/custom-fields",
        "crm/v2/tenant/1001/locations/custom-fields",
        "jpm/v2/tenant/1001/jobs/custom-fields",
        "accounting/v2/tenant/1001/invoices/custom-fields",
    ] {
        let (status, answer) = call(&h, &token, Method::GET, path, None).await;
        assert_eq!(status, 200, "{path}: {answer}");
        assert!(answer["data"].is_array(), "{path}: {answer}");
        // The stats count it under its own route, not as a record lookup.
        let template = path.replace("/1001/", "/{tenant}/");
        assert_eq!(h.sandbox.stats()["routes"][format!("GET {template}")], 1, "{path}");
    }
    // The record itself is still a lookup by id.
    let (status, _) = call(&h, &token, Method::GET, "crm/v2/tenant/1001/customers/custom-fieldz", None).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn the_same_seed_gives_the_same_answers() {
    let paths = [
        "pricebook/v2/tenant/1001/services?pageSize=3",
        "dispatch/v2/tenant/1001/zones/2",
        "jpm/v2/tenant/1001/job-types/4",
    ];
    let mut answers = Vec::new();
    for seed in [7, 7, 8] {
        let h = Harness::start(config(seed)).await;
        let token = h.token(1001).await;
        let mut these = Vec::new();
        for path in paths {
            these.push(call(&h, &token, Method::GET, path, None).await.1);
        }
        answers.push(these);
    }
    assert_eq!(answers[0], answers[1]);
    assert_ne!(answers[0], answers[2]);
}
