//! Every answer of every operation the sandbox implements has the shape of the official spec:
//! each response body is validated against the catalogue's schema for its operation and status.

mod common;

use common::Harness;
use reqwest::Method;
use serde_json::{json, Value};
use servicetitan_sandbox::catalogue::Catalogue;
use servicetitan_sandbox::{implemented_operations, LimitConfig, SandboxConfig};

async fn checked(h: &Harness, token: &str, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
    let catalogue = Catalogue::embedded();
    let response = h.call(method.clone(), path, token, body).await;
    let status = response.status().as_u16();
    let value: Value = response.json().await.expect("a JSON body");
    let op = catalogue.find(method.as_str(), path).unwrap_or_else(|| panic!("{method} {path} is in the catalogue"));
    let schema = op
        .responses
        .get(&status.to_string())
        .unwrap_or_else(|| panic!("{method} {path} answered {status}, which its spec does not document: {value}"));
    if let Err(violations) = catalogue.validate(schema, &value) {
        panic!("{method} {path} ({status}) breaks its schema:\n{}", violations.join("\n"));
    }
    (status, value)
}

#[tokio::test]
async fn every_implemented_operation_answers_in_its_spec_shape() {
    let cfg = SandboxConfig {
        records: 30,
        rate_limit: LimitConfig::disabled(),
        report_limit: LimitConfig::disabled(),
        ..SandboxConfig::default()
    };
    let h = Harness::start(cfg).await;
    let token = h.token(1001).await;
    let concrete = |template: &str| template.replace("{tenant}", "1001");

    let operations = implemented_operations();
    assert!(operations.len() >= 20, "{operations:?}");
    let mut checked_ops = 0;
    for (method, template) in &operations {
        let method: Method = method.parse().unwrap();
        let path = concrete(template);
        match (method.as_str(), template.as_str()) {
            ("GET", t) if t.ends_with("/{id}") => {
                let list = concrete(t.trim_end_matches("/{id}"));
                let (_, page) = checked(&h, &token, Method::GET, &format!("{list}?active=Any&pageSize=30"), None).await;
                for record in page["data"].as_array().unwrap() {
                    checked(&h, &token, Method::GET, &format!("{list}/{}", record["id"]), None).await;
                }
                let (status, _) = checked(&h, &token, Method::GET, &format!("{list}/1"), None).await;
                assert_eq!(status, 404);
            }
            ("GET", t) if t.contains("/export/") => {
                let (status, body) = checked(&h, &token, Method::GET, &path, None).await;
                assert_eq!(status, 200);
                assert_eq!(body["data"].as_array().unwrap().len(), 30);
                let (status, _) = checked(&h, &token, Method::GET, &format!("{path}?from=nonsense"), None).await;
                assert_eq!(status, 400);
            }
            ("GET", t) if t.ends_with("/reports/{reportId}") => {
                let path = path.replace("{report_category}", "operations").replace("{reportId}", "175");
                assert_eq!(checked(&h, &token, Method::GET, &path, None).await.0, 200);
                assert_eq!(checked(&h, &token, Method::GET, &path.replace("175", "999"), None).await.0, 404);
            }
            ("GET", t) if t.ends_with("/reports") => {
                let path = path.replace("{report_category}", "accounting");
                assert_eq!(checked(&h, &token, Method::GET, &format!("{path}?includeTotal=true"), None).await.0, 200);
            }
            ("GET", _) => {
                let (status, body) =
                    checked(&h, &token, Method::GET, &format!("{path}?active=Any&includeTotal=true"), None).await;
                assert_eq!(status, 200);
                assert!(!body["data"].as_array().unwrap().is_empty(), "{path}");
                assert_eq!(checked(&h, &token, Method::GET, &format!("{path}?pageSize=9999"), None).await.0, 400);
            }
            ("POST", t) if t.ends_with("/data") => {
                let path = path.replace("{report_category}", "operations").replace("{reportId}", "175");
                let params = json!({"parameters": [{"name": "From", "value": "2026-01-01"}, {"name": "To", "value": "2026-02-01"}]});
                let (status, body) =
                    checked(&h, &token, Method::POST, &format!("{path}?includeTotal=true"), Some(&params)).await;
                assert_eq!(status, 200);
                assert!(!body["data"].as_array().unwrap().is_empty());
                assert_eq!(checked(&h, &token, Method::POST, &path, Some(&json!({"parameters": []}))).await.0, 400);
            }
            ("POST", _) => {
                let address =
                    json!({"street": "1 Main St", "city": "Austin", "state": "TX", "zip": "78701", "country": "USA"});
                let customer = json!({"name": "Grace Hopper", "address": address, "locations": [{"name": "Home", "address": address}]});
                assert_eq!(checked(&h, &token, Method::POST, &path, Some(&customer)).await.0, 200);
                assert_eq!(checked(&h, &token, Method::POST, &path, Some(&json!({"name": []}))).await.0, 400);
            }
            ("PATCH", t) => {
                let list = concrete(t.trim_end_matches("/{id}"));
                let (_, page) = checked(&h, &token, Method::GET, &format!("{list}?pageSize=1"), None).await;
                let id = &page["data"][0]["id"];
                let (status, body) =
                    checked(&h, &token, Method::PATCH, &format!("{list}/{id}"), Some(&json!({"doNotMail": true})))
                        .await;
                assert_eq!((status, &body["doNotMail"]), (200, &json!(true)));
                assert_eq!(
                    checked(&h, &token, Method::PATCH, &format!("{list}/{id}"), Some(&json!({"nope": 1}))).await.0,
                    400
                );
                assert_eq!(
                    checked(&h, &token, Method::PATCH, &format!("{list}/5"), Some(&json!({"doNotMail": true}))).await.0,
                    404
                );
            }
            other => panic!("no check written for {other:?}"),
        }
        checked_ops += 1;
    }
    assert_eq!(checked_ops, operations.len());
}
