"""A client with ``redis_url`` against a real Redis (ST_TEST_REDIS_URL, set by scripts/test-redis.sh):
two clients, one token fetch, one budget. Skipped without Redis."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

import servicetitan as st

# Read at import: the conftest removes every ST_* variable before the tests run.
REDIS_URL = os.environ.get("ST_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="ST_TEST_REDIS_URL is not set (scripts/test-redis.sh sets it)")


@needs_redis
def test_clients_with_redis_url_share_one_token_and_one_budget() -> None:
    prefix = f"py-test-{os.getpid()}-{time.time_ns()}"
    with st.Sandbox() as sandbox:
        creds = sandbox.credentials()
        clients = [sandbox.client(redis_url=REDIS_URL, redis_key_prefix=prefix) for _ in range(2)]
        tenants = [c.tenant(**creds) for c in clients]
        started = time.monotonic()
        for i in range(70):
            tenants[i % 2].get("crm/customers", params={"pageSize": 1})
        # 70 calls against 60 per second (plus margin): the last ten waited for the next window.
        assert time.monotonic() - started >= 1.0
        assert sandbox.stats()["token_requests_total"] == 1
        assert sum(c.stats()["rate_limited"] for c in clients) == 0


@needs_redis
def test_async_client_takes_redis_url() -> None:
    async def run() -> None:
        with st.Sandbox() as sandbox:
            client = sandbox.async_client(redis_url=REDIS_URL, redis_key_prefix=f"py-async-{time.time_ns()}")
            tenant = client.tenant(**sandbox.credentials())
            await asyncio.gather(*(tenant.get("crm/customers", params={"pageSize": 1}) for _ in range(10)))
            assert client.stats()["token_fetches"] == 1

    asyncio.run(run())


def test_a_bad_redis_url_is_a_configuration_error_without_the_password() -> None:
    with pytest.raises(st.ConfigurationError) as info:
        st.Client(app_key="ak1.x", redis_url="nope://:pw-secret@host")
    assert "pw-secret" not in str(info.value)
