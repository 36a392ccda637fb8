"""Shared fixtures: one sandbox per test module (cheap: a thread and a port), a clean slate per test."""

from __future__ import annotations

import os
from typing import Iterator

import pytest

import servicetitan as st


@pytest.fixture(autouse=True, scope="session")
def _no_settings_from_the_machine() -> Iterator[None]:
    # Every setting falls back to an ST_* environment variable: none may leak into the tests.
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("ST_")}
    yield
    os.environ.update(saved)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[st.Sandbox]:
    with st.Sandbox(rate_limit={"enabled": False}, report_limit={"enabled": False}) as sb:
        yield sb


@pytest.fixture(autouse=True)
def _fresh_sandbox(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "sandbox" in request.fixturenames:
        sb = request.getfixturevalue("sandbox")
        sb.clear_faults()
        sb.reset_stats()


@pytest.fixture
def client(sandbox: st.Sandbox) -> st.Client:
    # Fast backoff: retry tests stay quick. The client-side limiter stays on, as users have it.
    return sandbox.client(backoff_base=0.02, backoff_max=0.2)


@pytest.fixture
def tenant(sandbox: st.Sandbox, client: st.Client) -> st.Tenant:
    return client.tenant(**sandbox.credentials(1001))
