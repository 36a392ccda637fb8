//! Configuration, exit codes and the commands that need no server work.

mod common;

use common::{run, stderr, stdout, Harness};

#[test]
fn streams_lists_every_export_stream() {
    let h = Harness::new(10);
    let output = run(h.bare_cli().arg("streams"));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert_eq!(text.lines().count(), 54);
    assert!(text.lines().any(|l| l.starts_with("crm_customers ")), "{text}");
}

#[test]
fn missing_configuration_exits_2_with_one_line() {
    let h = Harness::new(10);
    let output = run(h.bare_cli().args(["call", "crm.customers.get_list"]));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no app key"), "{err}");
}

#[test]
fn several_tenants_without_a_choice_is_a_configuration_error() {
    let h = Harness::new(10);
    let profile = h.write_profile("config.toml");
    let output = run(h.bare_cli().arg("--config").arg(&profile).args(["call", "crm.customers.get_list"]));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--tenant ID"), "{}", stderr(&output));
    h.assert_no_secret(&output);
}

#[test]
fn unknown_tenant_names_the_flag() {
    let h = Harness::new(10);
    let profile = h.write_profile("config.toml");
    let output = run(h.bare_cli().arg("--config").arg(&profile).args(["--tenant", "42", "doctor"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--tenant 42"), "{}", stderr(&output));
    h.assert_no_secret(&output);
}

#[test]
fn completions_are_printed_for_each_shell() {
    let h = Harness::new(10);
    for shell in ["bash", "zsh", "fish"] {
        let output = run(h.bare_cli().args(["completions", shell]));
        assert!(output.status.success(), "{shell}: {}", stderr(&output));
        assert!(stdout(&output).contains("servicetitan"), "{shell}");
        assert!(stdout(&output).contains("export"), "{shell}");
    }
}

#[test]
fn every_command_has_help_with_examples() {
    let h = Harness::new(10);
    for command in ["export", "streams", "call", "reports", "report", "tap", "sandbox", "doctor", "completions"] {
        let output = run(h.bare_cli().args([command, "--help"]));
        assert!(output.status.success(), "{command}: {}", stderr(&output));
        assert!(stdout(&output).contains("Examples:"), "{command} --help has no examples:\n{}", stdout(&output));
    }
}
