"""The embedded sandbox: start, options, faults, stats, and its refusals."""

from __future__ import annotations

import pickle
import urllib.request

import pytest

import servicetitan as st


def test_sandbox_serves_tokens_on_a_free_port(sandbox: st.Sandbox) -> None:
    assert sandbox.base_url.startswith("http://127.0.0.1:")
    assert sandbox.auth_url == sandbox.api_url == sandbox.base_url
    assert sandbox.app_key == "ak1.sandbox-app-key"
    creds = sandbox.credentials(1002)
    assert creds == {"tenant_id": 1002, "client_id": "cid.sandbox.1002", "client_secret": "cs1.sandbox-secret-1002"}
    body = f"grant_type=client_credentials&client_id={creds['client_id']}&client_secret={creds['client_secret']}"
    req = urllib.request.Request(
        sandbox.base_url + "/connect/token",
        data=body.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
    assert sandbox.stats()["token_requests"] == {"cid.sandbox.1002": 1}


def test_options_override_defaults_and_secrets_are_masked_in_config() -> None:
    with st.Sandbox(records=7, rate_limit={"enabled": False}, token_lifetime_secs=5) as sb:
        config = sb.config
        assert config["records"] == 7
        assert config["rate_limit"]["enabled"] is False
        assert all(t["client_secret"] == "***" for t in config["tenants"])
        assert [t["id"] for t in sb.tenants] == [1001, 1002, 1003, 1004]
        assert "secret" not in repr(sb)


def test_unknown_or_invalid_options_are_configuration_errors() -> None:
    with pytest.raises(st.ConfigurationError, match="unknown field `recrods`"):
        st.Sandbox(recrods=5)
    with pytest.raises(st.ConfigurationError, match="token_lifetime_secs"):
        st.Sandbox(token_lifetime_secs=-1)


def test_faults_validate_and_fire(sandbox: st.Sandbox) -> None:
    with pytest.raises(st.ConfigurationError, match="status"):
        sandbox.add_fault(route="connect/token", status=200)
    sandbox.add_fault(route="connect/token", status=503, count=1)
    req = urllib.request.Request(sandbox.base_url + "/connect/token", data=b"", method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert info.value.code == 503
    assert sandbox.stats()["faults_fired"] == 1


def test_credentials_of_an_unknown_tenant_are_refused(sandbox: st.Sandbox) -> None:
    with pytest.raises(st.ConfigurationError, match="1001, 1002, 1003, 1004"):
        sandbox.credentials(999)


def test_close_is_idempotent() -> None:
    sb = st.Sandbox()
    assert not sb.closed
    sb.close()
    sb.close()
    assert sb.closed


def test_errors_pickle_with_their_fields() -> None:
    e = st.BadRequestError(
        "refused",
        status=400,
        title="One or more validation errors occurred.",
        trace_id="00-abc",
        errors={"name": ["required"]},
        method="POST",
        url="http://x/crm/v2/tenant/1/customers",
    )
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is st.BadRequestError
    assert (back.code, back.status, back.trace_id, back.errors, back.method, str(back)) == (
        "bad_request",
        400,
        "00-abc",
        {"name": ["required"]},
        "POST",
        "refused",
    )
    assert isinstance(back, st.ServiceTitanError)
    assert set(st.errors.CLASSES_BY_CODE) == {
        "authentication",
        "permission_denied",
        "not_found",
        "bad_request",
        "conflict",
        "rate_limited",
        "server",
        "timeout",
        "connection",
        "configuration",
        "decode",
        "redirect",
        "internal",
        "webhook",
    }
