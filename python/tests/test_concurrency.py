"""What CPython adds: the GIL is released during calls, threads share a client, asyncio
cancellation cancels the call, and the loop keeps running while a call is in flight."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Iterator

import pytest

import servicetitan as st

LIST = "GET crm/v2/tenant/{tenant}/customers"


class FakeServiceTitan(BaseHTTPRequestHandler):
    """A pure-Python token endpoint and one API route: serving them needs the GIL."""

    user_agents: ClassVar[list[str]] = []

    def do_POST(self) -> None:  # the token endpoint
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.reply({"access_token": "python-token", "expires_in": 900, "token_type": "Bearer"})

    def do_GET(self) -> None:
        self.user_agents.append(self.headers.get("User-Agent", ""))
        self.reply({"data": [{"id": 1, "served_by": "python"}], "hasMore": False, "page": 1, "pageSize": 50})

    def reply(self, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def python_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeServiceTitan)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_call_to_a_python_server_in_this_process_completes(python_server: str) -> None:
    # Deadlocks if the call held the GIL: the server's thread could never answer.
    client = st.Client(app_key="ak1.test", auth_url=python_server, api_url=python_server, timeout=20)
    tenant = client.tenant(1, client_id="cid", client_secret="cs1.s")
    assert tenant.get("crm/customers")["data"][0]["served_by"] == "python"
    assert FakeServiceTitan.user_agents[-1].startswith("servicetitan-python/"), FakeServiceTitan.user_agents


async def test_an_asyncio_call_to_a_python_server_in_this_process_completes(python_server: str) -> None:
    client = st.AsyncClient(app_key="ak1.test", auth_url=python_server, api_url=python_server, timeout=20)
    tenant = client.tenant(1, client_id="cid", client_secret="cs1.s")
    page = await tenant.get("crm/customers")
    assert page["data"][0]["served_by"] == "python"


def test_other_threads_run_while_a_call_waits(sandbox: st.Sandbox, tenant: st.Tenant) -> None:
    tenant.get("crm/customers")
    sandbox.add_fault(route="crm/*", method="GET", delay_ms=1000, status=None)
    ticks = 0
    stop = threading.Event()

    def spin() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1  # pure Python: needs the GIL
            time.sleep(0.001)

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        tenant.get("crm/customers")
    finally:
        stop.set()
        spinner.join()
    assert ticks > 200, f"the spinning thread ran {ticks} times in 1 s"


def test_threads_share_one_client(sandbox: st.Sandbox) -> None:
    client = sandbox.client(rate_limit_calls=0)
    tenant = client.tenant(**sandbox.credentials(1001))
    with ThreadPoolExecutor(max_workers=8) as pool:
        pages = list(pool.map(lambda _: tenant.get("crm/customers", params={"pageSize": 1}), range(400)))
    assert all(len(p["data"]) == 1 for p in pages)
    stats = client.stats()
    assert (stats["requests"], stats["token_fetches"]) == (400, 1)
    assert sandbox.stats()["token_requests_total"] == 1


def test_threads_iterate_their_own_streams(sandbox: st.Sandbox, tenant: st.Tenant) -> None:
    def count(_: int) -> int:
        return sum(1 for _ in tenant.paginate("crm/customers", params={"active": "Any"}, page_size=100))

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(count, range(4))) == [1000] * 4


async def test_the_loop_runs_while_a_call_is_in_flight(sandbox: st.Sandbox) -> None:
    tenant = sandbox.async_client().tenant(**sandbox.credentials(1001))
    await tenant.get("crm/customers")
    sandbox.add_fault(route="crm/*", method="GET", delay_ms=500, status=None)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    await tenant.get("crm/customers")
    ticker.cancel()
    assert ticks >= 20


async def test_cancelling_the_task_cancels_the_call(sandbox: st.Sandbox) -> None:
    # One call per 2 s: the second call waits in the limiter. If cancelling the task did not
    # drop the engine's future, that call would still reach the server once its slot came.
    client = sandbox.async_client(rate_limit_calls=1, rate_limit_period=2.0, rate_limit_margin=0.0)
    tenant = client.tenant(**sandbox.credentials(1001))
    await tenant.get("crm/customers")
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(tenant.get("crm/customers"), timeout=0.2)
    assert time.monotonic() - started < 1.0
    await asyncio.sleep(2.5)
    assert sandbox.stats()["routes"][LIST] == 1, "the cancelled call reached the server"


async def test_cancelling_a_call_in_flight_abandons_it(sandbox: st.Sandbox) -> None:
    tenant = sandbox.async_client().tenant(**sandbox.credentials(1001))
    await tenant.get("crm/customers")
    sandbox.add_fault(route="crm/*", method="GET", delay_ms=5000, status=None)
    task = asyncio.ensure_future(tenant.get("crm/customers"))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 0.5
    # The client is still usable.
    sandbox.clear_faults()
    assert (await tenant.get("crm/customers", params={"pageSize": 1}))["data"]


async def test_async_iteration_with_breaks_and_concurrent_streams(sandbox: st.Sandbox) -> None:
    tenant = sandbox.async_client(rate_limit_calls=0).tenant(**sandbox.credentials(1001))

    async def count(path: str) -> int:
        return len([r async for r in tenant.paginate(path, params={"active": "Any"}, page_size=150)])

    assert list(await asyncio.gather(count("crm/customers"), count("crm/locations"))) == [1000, 1000]
    feed = tenant.export("crm/customers")
    async for record in feed:
        assert "id" in record
        break
    assert feed.continue_from is None, "no page was handed out whole"
