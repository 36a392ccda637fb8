//! Redis over TLS (`rediss://`) against a redis-server with TLS on loopback, started by this
//! test with a throwaway CA and server certificate made by the openssl command (needs
//! `ST_TEST_REDIS_URL` set, as scripts/test-redis.sh does, to run): the server's certificate
//! is checked against the CA given, or the system's roots, and never not checked.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use servicetitan::ErrorCode;

fn enabled() -> bool {
    let on = std::env::var("ST_TEST_REDIS_URL").is_ok_and(|u| !u.is_empty());
    if !on {
        eprintln!("skipped: ST_TEST_REDIS_URL is not set (scripts/test-redis.sh starts a redis-server and sets it)");
    }
    on
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("the openssl command is installed");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA (`{name}.crt`, `{name}.key`) in `dir`.
fn make_ca(dir: &Path, name: &str) {
    let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
    let subject = format!("/CN=servicetitan test {name}");
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", &subject, "-keyout", &key, "-out",
            &crt,
        ],
    );
}

/// A TLS redis-server on loopback, its certificate (for 127.0.0.1 and localhost) signed by the
/// CA `ca.crt`; a second CA, `other.crt`, signed nothing of it.
struct TlsRedis {
    dir: PathBuf,
    port: u16,
    child: Child,
}

impl TlsRedis {
    fn start() -> TlsRedis {
        let dir = std::env::temp_dir().join(format!("st-redis-tls-{}-{}", std::process::id(), fastrand_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        make_ca(&dir, "ca");
        make_ca(&dir, "other");
        openssl(
            &dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        );
        std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                "server.ext",
                "-out",
                "server.crt",
            ],
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--tls-cert-file", "server.crt", "--tls-key-file", "server.key", "--tls-ca-cert-file", "ca.crt"])
            .args(["--tls-auth-clients", "no"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test-redis.sh installs it)");
        let server = TlsRedis { dir, port, child };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start with TLS on port {port} (built without TLS?)");
    }

    fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}/0", self.port)
    }

    fn pem(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(format!("{name}.crt"))).unwrap()
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fastrand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_share_tokens_and_limits_over_tls_when_the_certificate_chains_to_the_given_ca() {
    if !enabled() {
        return;
    }
    let redis = TlsRedis::start();
    let sandbox = common::start(common::unlimited()).await;
    let client = |ca: Vec<u8>| {
        common::builder(&sandbox).redis_url(redis.url()).redis_key_prefix("tls").redis_tls_ca_pem(ca).build().unwrap()
    };
    let (first, second) = (client(redis.pem("ca")), client(redis.pem("ca")));
    for c in [&first, &second] {
        common::tenant(c, &sandbox, 0)
            .get("crm/customers")
            .query(&[("pageSize", 1)])
            .send::<serde_json::Value>()
            .await
            .unwrap();
    }
    assert_eq!(common::stat(&sandbox, "/token_requests_total"), 1, "the token was shared through Redis over TLS");
    // What is in Redis, read over TLS with the same CA.
    let certificates = redis::TlsCertificates { client_tls: None, root_cert: Some(redis.pem("ca")) };
    let mut raw = redis::Client::build_with_tls(redis.url(), certificates)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("tls:*").query_async(&mut raw).await.unwrap();
    assert!(
        keys.iter().any(|k| k.starts_with("tls:token:")) && keys.iter().any(|k| k.starts_with("tls:rl:")),
        "{keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_can_come_from_st_redis_tls_ca() {
    if !enabled() {
        return;
    }
    let redis = TlsRedis::start();
    let sandbox = common::start(common::unlimited()).await;
    let (url, ca) = (redis.url(), redis.dir.join("ca.crt").to_string_lossy().into_owned());
    let client = common::builder(&sandbox)
        .env_lookup(move |name| match name {
            "ST_REDIS_URL" => Some(url.clone()),
            "ST_REDIS_TLS_CA" => Some(ca.clone()),
            _ => None,
        })
        .build()
        .unwrap();
    common::tenant(&client, &sandbox, 0).get("crm/customers").send::<serde_json::Value>().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_that_does_not_chain_to_the_ca_or_the_system_roots_is_refused() {
    if !enabled() {
        return;
    }
    let redis = TlsRedis::start();
    let sandbox = common::start(common::unlimited()).await;
    for ca in [Some(redis.pem("other")), None] {
        let mut builder = common::builder(&sandbox).redis_url(redis.url()).redis_wait(Duration::from_secs(5));
        if let Some(ca) = ca.clone() {
            builder = builder.redis_tls_ca_pem(ca);
        }
        let client = builder.build().unwrap();
        let started = std::time::Instant::now();
        let e =
            common::tenant(&client, &sandbox, 0).get("crm/customers").send::<serde_json::Value>().await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::Connection, "{e}");
        assert!(e.to_string().contains("TLS handshake") && e.to_string().contains("ST_REDIS_TLS_CA"), "{e}");
        // Not retried for the whole wait: the same certificate comes back on every try.
        assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
        assert_eq!(common::total_requests(&sandbox), 0, "nothing reached the API (given CA: {})", ca.is_some());
    }
}

#[test]
fn turning_the_check_off_or_a_ca_without_tls_is_a_configuration_error() {
    let refused = servicetitan::Client::builder()
        .app_key("ak1.test")
        .env_lookup(|_| None)
        .redis_url("rediss://:pw-secret@127.0.0.1:6380/0#insecure")
        .build()
        .unwrap_err();
    assert_eq!((refused.code(), refused.argument()), (ErrorCode::Configuration, Some("redis_url")), "{refused}");
    assert!(refused.to_string().contains("redis_tls_ca") && !refused.to_string().contains("pw-secret"), "{refused}");

    let pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_vec();
    let plain = servicetitan::Client::builder()
        .app_key("ak1.test")
        .env_lookup(|_| None)
        .redis_url("redis://127.0.0.1:6379/0")
        .redis_tls_ca_pem(pem)
        .build()
        .unwrap_err();
    assert_eq!(plain.argument(), Some("redis_tls_ca"), "{plain}");
    let not_pem = servicetitan::Client::builder()
        .app_key("ak1.test")
        .env_lookup(|_| None)
        .redis_url("rediss://127.0.0.1:6379/0")
        .redis_tls_ca_pem(b"not a certificate".to_vec())
        .build()
        .unwrap_err();
    assert_eq!(not_pem.argument(), Some("redis_tls_ca"), "{not_pem}");
}
