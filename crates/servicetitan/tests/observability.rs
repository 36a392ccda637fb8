//! What the client shows of itself: tracing spans per call and per attempt, and never a secret
//! in `Debug`, `Display`, errors or logs.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use servicetitan::TenantCredentials;
use servicetitan_sandbox::Fault;

/// Collects everything the tracing subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_show_in_debug_errors_or_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .finish();
    // Global, and alone in its binary: a thread-local subscriber races with the callsite
    // interest cache when other tests run beside it.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let sandbox = start(unlimited()).await;
    let client = builder(&sandbox).build().unwrap();
    let good = tenant(&client, &sandbox, 0);
    let bad = client.tenant(TenantCredentials::new(1002, "cid.sandbox.1002", "cs1.not-the-secret"));
    // Two failed token requests and one failed call first, for the retry lines.
    let fault = |route: &str, method: &str, count| Fault {
        route: route.into(),
        method: Some(method.into()),
        status: Some(503),
        count,
        ..Fault::default()
    };
    sandbox.add_fault(fault("connect/token", "POST", 2));
    sandbox.add_fault(fault("crm/v2/tenant/*/customers*", "GET", 1));
    good.get("crm/customers").send_json().await.unwrap();
    sandbox.revoke_tokens();
    good.get("crm/customers").send_json().await.unwrap();
    let e1 = bad.get("crm/customers").send_json().await.unwrap_err();
    let e2 = good.get("crm/nothing-here").send_json().await.unwrap_err();

    let secrets = [sandbox.app_key(), "cs1.sandbox-secret-1001", "cs1.not-the-secret", "Bearer "];
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    if std::env::var_os("SHOW_LOGS").is_some() {
        eprintln!("{logs}");
    }
    // Spans per call and per attempt, with the route template, status and attempt.
    assert!(logs.contains("servicetitan.request"), "call spans were logged");
    assert!(logs.contains("servicetitan.attempt"), "attempt spans were logged");
    assert!(logs.contains("servicetitan.token"), "token spans were logged");
    assert!(logs.contains("route=crm/v2/tenant/{tenant}/customers"), "{logs}");
    assert!(logs.contains("status=200") && logs.contains("status=401") && logs.contains("attempt=2"), "{logs}");
    // Every resend is logged at INFO with its reason.
    let lines = |what: &str| logs.lines().filter(|l| l.contains(what)).map(str::to_owned).collect::<Vec<_>>();
    let token_resends = lines("resending the token request");
    assert_eq!(token_resends.len(), 2, "{logs}");
    assert!(
        token_resends.iter().all(|l| l.contains(" INFO ") && l.contains("reason=\"server error (5xx)\"")),
        "{logs}"
    );
    let resends = lines("resending");
    assert!(resends.iter().any(|l| l.contains("servicetitan.request") && l.contains(" INFO ")), "{logs}");
    // The token span's attempts appear once, with the final count, not once per attempt.
    for line in lines("servicetitan.token") {
        assert!(line.matches("attempts=").count() <= 1, "{line}");
    }
    assert!(logs.contains("attempts=3"), "{logs}");
    for shown in [
        format!("{client:?}"),
        format!("{good:?}"),
        format!("{:?}", credentials(&sandbox, 0)),
        format!("{e1} {e1:?}"),
        format!("{e2} {e2:?}"),
        logs,
    ] {
        for secret in secrets {
            assert!(!shown.contains(secret), "{secret:?} shown in {shown}");
        }
    }
}
