"""The ``servicetitan`` console script that ``pip install`` puts on the PATH, run as a user runs
it (a child process) against the sandbox: the same command line as the Rust binary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

import servicetitan as st

SCRIPT = Path(sys.executable).parent / ("servicetitan.exe" if os.name == "nt" else "servicetitan")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[st.Sandbox]:
    with st.Sandbox(records=30, report_rows=40) as sb:
        yield sb


def environment(sandbox: st.Sandbox, tenant_id: int = 1001, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ST_")}
    creds = sandbox.credentials(tenant_id)
    env.update(
        ST_APP_KEY=sandbox.app_key,
        ST_AUTH_URL=sandbox.auth_url,
        ST_API_URL=sandbox.api_url,
        ST_TENANT_ID=str(creds["tenant_id"]),
        ST_CLIENT_ID=creds["client_id"],
        ST_CLIENT_SECRET=creds["client_secret"],
        XDG_CONFIG_HOME=str(Path(__file__).parent / "no-such-config-dir"),
    )
    env.update(extra or {})
    return env


def servicetitan(
    sandbox: st.Sandbox, *args: str, tenant_id: int = 1001, env: Optional[Dict[str, str]] = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(SCRIPT), *args], env=environment(sandbox, tenant_id, env), capture_output=True, text=True, timeout=120
    )
    for tenant in sandbox.tenants:
        assert tenant["client_secret"] not in result.stdout + result.stderr
    assert sandbox.app_key not in result.stdout + result.stderr
    return result


def jsonl(text: str) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_the_console_script_is_installed_with_help_and_examples(sandbox: st.Sandbox) -> None:
    assert SCRIPT.exists(), f"pip installs the console script next to the interpreter: {SCRIPT}"
    result = servicetitan(sandbox, "--help")
    assert result.returncode == 0, result.stderr
    assert "Examples:" in result.stdout and "servicetitan export" in result.stdout
    for command in ["export", "call", "reports", "report", "tap", "sandbox", "doctor", "streams", "completions"]:
        result = servicetitan(sandbox, command, "--help")
        assert result.returncode == 0, result.stderr
        assert "Examples:" in result.stdout, command


def test_completions_for_each_shell(sandbox: st.Sandbox) -> None:
    for shell in ["bash", "zsh", "fish"]:
        result = servicetitan(sandbox, "completions", shell)
        assert result.returncode == 0, result.stderr
        assert "servicetitan" in result.stdout and "export" in result.stdout, shell


def test_streams_lists_the_export_streams(sandbox: st.Sandbox) -> None:
    result = servicetitan(sandbox, "streams")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 54
    assert any(line.startswith("crm_customers ") for line in result.stdout.splitlines())


def test_call_by_name_with_kebab_case_flags(sandbox: st.Sandbox) -> None:
    result = servicetitan(sandbox, "call", "crm.customers.get_list", "--page-size", "5", "--active", "Any")
    assert result.returncode == 0, result.stderr
    page = json.loads(result.stdout)
    assert len(page["data"]) == 5 and page["hasMore"] is True

    result = servicetitan(sandbox, "call", "crm.customers.get_list", "--active", "Any", "--page-size", "7", "--all")
    assert result.returncode == 0, result.stderr
    records = jsonl(result.stdout)
    assert len(records) == 30
    assert len({r["id"] for r in records}) == 30


def test_call_mistakes_exit_2_with_one_line(sandbox: st.Sandbox) -> None:
    result = servicetitan(sandbox, "call", "crm.customers.get_list", "--page-sise", "5")
    assert result.returncode == 2
    assert result.stderr.startswith("servicetitan: ") and len(result.stderr.splitlines()) == 1
    assert "did you mean --page-size?" in result.stderr
    result = servicetitan(sandbox, "call", "crm.customer.get_list")
    assert result.returncode == 2 and "did you mean crm.customers.get_list?" in result.stderr


def test_reports_and_report(sandbox: st.Sandbox) -> None:
    result = servicetitan(sandbox, "reports", "operations")
    assert result.returncode == 0, result.stderr
    assert any(line.startswith("175 ") for line in result.stdout.splitlines())
    result = servicetitan(sandbox, "report", "operations", "175", "--param", "From=2026-01-01", "--format", "csv")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("JobId,") and len(lines) == 41


def test_doctor(sandbox: st.Sandbox) -> None:
    result = servicetitan(sandbox, "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "accepted the app key" in result.stdout
    # Tenant 1004 granted the app the CRM API only.
    result = servicetitan(sandbox, "doctor", "--json", tenant_id=1004)
    assert result.returncode == 3
    refused = [c for c in jsonl(result.stdout) if c["check"] == "permissions" and c["status"] == "fail"]
    assert "23 of 24 APIs refused" in refused[0]["message"]


def test_sandbox_serves_until_interrupted(sandbox: st.Sandbox) -> None:
    child = subprocess.Popen(
        [str(SCRIPT), "sandbox", "--port", "0", "--records", "3"],
        env=environment(sandbox),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        url = child.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        result = servicetitan(
            sandbox,
            "call",
            "crm.customers.get_list",
            "--active",
            "Any",
            "--all",
            env={"ST_AUTH_URL": url, "ST_API_URL": url},
        )
        assert result.returncode == 0, result.stderr
        assert len(jsonl(result.stdout)) == 3
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=20) == 0, "Ctrl-C stops the sandbox cleanly"
    finally:
        child.kill()
        child.wait()


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
def test_ctrl_c_stops_a_call_in_progress(sandbox: st.Sandbox) -> None:
    # The API takes 60 s to answer; Ctrl-C must not wait for it.
    sandbox.add_fault(route="crm/*", delay_ms=60_000, count=1, status=503)
    child = subprocess.Popen(
        [str(SCRIPT), "call", "crm.customers.get_list"],
        env=environment(sandbox),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # As a command typed at a terminal: a test run started in the background (CI, `&`)
        # hands its children SIGINT ignored, and an ignored Ctrl-C is the shell's choice to keep.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 20
        while sandbox.stats()["faults_fired"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sandbox.stats()["faults_fired"] == 1, "the call reached the server"
        started = time.monotonic()
        child.send_signal(signal.SIGINT)
        code = child.wait(timeout=10)
        assert code == -signal.SIGINT, "killed by SIGINT, as the Rust binary would be"
        assert time.monotonic() - started < 5
    finally:
        child.kill()
        child.wait()
        sandbox.clear_faults()


def test_export_jsonl_to_stdout_and_csv_files(sandbox: st.Sandbox, tmp_path: Path) -> None:
    result = servicetitan(sandbox, "export", "crm_customers", "--no-progress")
    assert result.returncode == 0, result.stderr
    records = jsonl(result.stdout)
    assert len(records) == 30
    assert len({r["id"] for r in records}) == 30

    state = tmp_path / "state.json"
    first = servicetitan(
        sandbox, "export", "crm_customers", "--format", "csv", "--out", str(tmp_path), "--state", str(state)
    )
    assert first.returncode == 0, first.stderr
    files = sorted(p.name for p in tmp_path.glob("crm_customers.*.csv"))
    assert files == ["crm_customers.1001.000001.csv"], files
    lines = (tmp_path / files[0]).read_text().splitlines()
    assert lines[0].split(",")[0] and len(lines) == 31  # a header and one line per customer
    again = servicetitan(
        sandbox, "export", "crm_customers", "--format", "csv", "--out", str(tmp_path), "--state", str(state)
    )
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in tmp_path.glob("crm_customers.*.csv")) == files  # nothing changed: no new file


def test_tap_and_its_singer_name(sandbox: st.Sandbox, tmp_path: Path) -> None:
    creds = sandbox.credentials(1001)
    config = tmp_path / "tap.json"
    config.write_text(
        json.dumps(
            {
                "app_key": sandbox.app_key,
                "auth_url": sandbox.auth_url,
                "api_url": sandbox.api_url,
                "tenants": [{"id": 1001, "client_id": creds["client_id"], "client_secret": creds["client_secret"]}],
            }
        )
    )
    catalog = servicetitan(sandbox, "tap", "--config", str(config), "--discover")
    assert catalog.returncode == 0, catalog.stderr
    streams = json.loads(catalog.stdout)["streams"]
    assert len(streams) == 54
    for stream in streams:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = stream["tap_stream_id"] == "crm_customers"
    selected = tmp_path / "catalog.json"
    selected.write_text(json.dumps({"streams": streams}))

    tap = Path(sys.executable).parent / ("tap-servicetitan.exe" if os.name == "nt" else "tap-servicetitan")
    result = subprocess.run(
        [str(tap), "--config", str(config), "--catalog", str(selected)],
        env=environment(sandbox),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert creds["client_secret"] not in result.stdout + result.stderr
    messages = jsonl(result.stdout)
    kinds = {m["type"] for m in messages}
    assert kinds == {"SCHEMA", "RECORD", "STATE"}, kinds
    assert sum(1 for m in messages if m["type"] == "RECORD" and m["stream"] == "crm_customers") == 30
    assert messages[-1]["type"] == "STATE"
