//! Shared set-up for the sandbox's own tests: a sandbox, a plain reqwest client and a token.
#![allow(dead_code)]

use reqwest::{Client, Method, Response};
use serde_json::Value;
use servicetitan_sandbox::{Sandbox, SandboxConfig, TenantConfig};

pub struct Harness {
    pub sandbox: Sandbox,
    pub http: Client,
}

impl Harness {
    pub async fn start(config: SandboxConfig) -> Harness {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let sandbox = Sandbox::start(config).await.expect("sandbox starts");
        // Redirects are answers to check, not to follow (download operations answer 302).
        let http = Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("a client");
        Harness { sandbox, http }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.sandbox.base_url(), path.trim_start_matches('/'))
    }

    pub fn tenant(&self, id: i64) -> TenantConfig {
        self.sandbox.tenants().iter().find(|t| t.id == id).expect("tenant configured").clone()
    }

    pub async fn token_response(&self, form: &[(&str, &str)]) -> Response {
        self.http.post(self.url("connect/token")).form(form).send().await.expect("token request")
    }

    pub async fn token(&self, tenant: i64) -> String {
        let t = self.tenant(tenant);
        let r = self
            .token_response(&[
                ("grant_type", "client_credentials"),
                ("client_id", &t.client_id),
                ("client_secret", &t.client_secret),
            ])
            .await;
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string()
    }

    /// A call with the app key and the token given.
    pub async fn call(&self, method: Method, path: &str, token: &str, body: Option<&Value>) -> Response {
        let mut req =
            self.http.request(method, self.url(path)).header("ST-App-Key", self.sandbox.app_key()).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(b);
        }
        req.send().await.expect("request reaches the sandbox")
    }

    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        let r = self.call(Method::GET, path, token, None).await;
        let status = r.status();
        let body: Value = r.json().await.expect("JSON body");
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }
}

impl Harness {
    /// A call with raw body bytes sent as JSON, for bodies that are not valid JSON.
    pub async fn call_raw(&self, method: Method, path: &str, token: &str, body: &'static str) -> Response {
        self.http
            .request(method, self.url(path))
            .header("ST-App-Key", self.sandbox.app_key())
            .header("content-type", "application/json")
            .bearer_auth(token)
            .body(body)
            .send()
            .await
            .expect("request reaches the sandbox")
    }
}
