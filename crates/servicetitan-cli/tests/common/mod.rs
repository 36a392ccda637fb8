//! What every CLI test needs: a sandbox on loopback, and the `servicetitan` binary run against
//! it as a user runs it (a child process, with `ST_*` variables and its own config directory).
#![allow(dead_code)] // each test file uses a part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use servicetitan_sandbox::{BackgroundSandbox, SandboxConfig};

/// A sandbox and a scratch directory that die with the test.
pub struct Harness {
    pub sandbox: BackgroundSandbox,
    pub dir: PathBuf,
}

impl Harness {
    /// A sandbox with `records` records per resource.
    pub fn new(records: u64) -> Harness {
        Harness::with_config(SandboxConfig { records, ..SandboxConfig::default() })
    }

    /// A sandbox with this configuration.
    pub fn with_config(config: SandboxConfig) -> Harness {
        let sandbox = BackgroundSandbox::start(config).expect("sandbox starts");
        let dir = scratch_dir();
        Harness { sandbox, dir }
    }

    /// The tenants the sandbox knows.
    pub fn tenant_ids(&self) -> Vec<i64> {
        self.sandbox.config().tenants.iter().map(|t| t.id).collect()
    }

    /// `servicetitan ARGS` configured by environment for the sandbox's first tenant. The
    /// process's own `ST_*` variables and config directory are not inherited.
    pub fn cli(&self) -> Command {
        let config = self.sandbox.config();
        let tenant = &config.tenants[0];
        let mut command = self.bare_cli();
        command
            .env("ST_APP_KEY", &config.app_keys[0])
            .env("ST_AUTH_URL", self.sandbox.base_url())
            .env("ST_API_URL", self.sandbox.base_url())
            .env("ST_TENANT_ID", tenant.id.to_string())
            .env("ST_CLIENT_ID", &tenant.client_id)
            .env("ST_CLIENT_SECRET", &tenant.client_secret);
        command
    }

    /// `servicetitan` with no configuration at all (an empty config directory).
    pub fn bare_cli(&self) -> Command {
        let mut command = Command::new(binary());
        for (name, _) in std::env::vars() {
            if name.starts_with("ST_") {
                command.env_remove(name);
            }
        }
        command.env("XDG_CONFIG_HOME", self.dir.join("config-home")).env("HOME", &self.dir).current_dir(&self.dir);
        command
    }

    /// A TOML profile with every tenant of the sandbox, written to `name` in the scratch directory.
    pub fn write_profile(&self, name: &str) -> PathBuf {
        let config = self.sandbox.config();
        let mut text = format!(
            "profile = \"sandbox\"\n\n[profiles.sandbox]\napp_key = \"{}\"\nauth_url = \"{}\"\napi_url = \"{}\"\n",
            config.app_keys[0],
            self.sandbox.base_url(),
            self.sandbox.base_url()
        );
        for t in &config.tenants {
            text.push_str(&format!(
                "\n[[profiles.sandbox.tenants]]\nid = {}\nclient_id = \"{}\"\nclient_secret = \"{}\"\n",
                t.id, t.client_id, t.client_secret
            ));
        }
        let path = self.dir.join(name);
        std::fs::write(&path, text).expect("write profile");
        path
    }

    /// Every secret a test must never see in output.
    pub fn secrets(&self) -> Vec<String> {
        let config = self.sandbox.config();
        let mut secrets: Vec<String> = config.tenants.iter().map(|t| t.client_secret.clone()).collect();
        secrets.extend(config.app_keys.iter().cloned());
        secrets
    }

    /// Asserts that no secret appears in the output of a run.
    pub fn assert_no_secret(&self, output: &Output) {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        for secret in self.secrets() {
            assert!(!stdout.contains(&secret), "a secret is on stdout");
            assert!(!stderr.contains(&secret), "a secret is on stderr");
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_servicetitan"))
}

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("servicetitan-cli-test-{}-{}", std::process::id(), fastrand_suffix()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn fastrand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    (u64::from(nanos) << 16) | NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Runs a command to its end and gives its output, panicking with stderr if it could not start.
pub fn run(command: &mut Command) -> Output {
    command.output().expect("the servicetitan binary runs")
}

/// stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The lines of a JSONL file or output, parsed.
pub fn jsonl(text: &str) -> Vec<serde_json::Value> {
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

/// Reads a file as text.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
