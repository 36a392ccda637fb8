"""Webhooks: verification, deduplication, the ASGI and WSGI apps, and the sandbox's deliveries
(retried after failures) reaching an app served for real exactly once per event."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import threading
import time
import wsgiref.simple_server
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
import uvicorn

import servicetitan as st
from servicetitan import webhooks

KEY = "python-webhook-key-0123456789abc"
HEADER = "X-ServiceTitan-Signature"
REDIS_URL = os.environ.get("ST_TEST_REDIS_URL", "")


def event_body(event_id: str = "evt-1", **extra: Any) -> bytes:
    event = {
        "specversion": "1.0",
        "id": event_id,
        "source": "/tenant/1001/crm/customers",
        "type": "tn.crm.customer-created",
        "time": "2026-01-01T00:00:00Z",
        "data": {"id": 42, "name": "Ada"},
        **extra,
    }
    return json.dumps(event).encode()


def signed(body: bytes, key: str = KEY) -> Dict[str, str]:
    return {HEADER: webhooks.sign(body, key)}


# ---------------------------------------------------------------------------------------------
# verify


def test_a_signed_delivery_verifies_whatever_shape_the_headers_come_in() -> None:
    body = event_body(tenantid=1001)
    signature = webhooks.sign(body, KEY)
    for headers in (
        {HEADER: signature},
        {"x-servicetitan-signature": signature},
        [(b"x-servicetitan-signature", signature.encode())],  # ASGI
        [("Content-Type", "application/json"), (HEADER, signature)],
    ):
        event = webhooks.verify(body, headers, KEY)
        assert (event["id"], event["type"], event["data"]) == (
            "evt-1",
            "tn.crm.customer-created",
            {"id": 42, "name": "Ada"},
        )
        assert event["time"] == "2026-01-01T00:00:00Z" and event["specversion"] == "1.0"
        assert event["tenantid"] == 1001
    assert webhooks.verify(bytearray(body), {HEADER: signature}, KEY)["id"] == "evt-1"
    assert webhooks.verify(body.decode(), {HEADER: signature}, KEY)["id"] == "evt-1"
    b64 = webhooks.sign(body, KEY, encoding="base64")
    assert webhooks.verify(body, {HEADER: b64}, KEY)["id"] == "evt-1"
    assert webhooks.verify(body, {"X-Sig": signature}, KEY, signature_header="X-Sig")["id"] == "evt-1"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("tampered", "does not match"),
        ("wrong key", "does not match"),
        ("missing header", "no X-ServiceTitan-Signature header"),
        ("malformed", "not an HMAC-SHA256 signature"),
    ],
)
def test_forged_deliveries_are_refused_without_leaking_the_key(case: str, expected: str) -> None:
    body = event_body()
    other_key = "another-python-key-0123456789abc"
    headers = {
        "tampered": signed(body),
        "wrong key": signed(body, other_key),
        "missing header": {"Content-Type": "application/json"},
        "malformed": {HEADER: "abc"},
    }[case]
    sent = event_body().replace(b"Ada", b"Eve") if case == "tampered" else body
    with pytest.raises(st.WebhookVerificationError) as caught:
        webhooks.verify(sent, headers, KEY)
    error = caught.value
    assert error.code == "webhook" and isinstance(error, st.ServiceTitanError)
    assert expected in str(error)
    text = f"{error} {error!r}"
    for secret in (KEY, other_key, webhooks.sign(sent, KEY)):
        assert secret not in text


def test_bad_keys_and_arguments_are_configuration_errors() -> None:
    with pytest.raises(st.ConfigurationError, match="32 to 64 characters") as caught:
        webhooks.verify(event_body(), {}, "tiny-secret")
    assert "tiny-secret" not in str(caught.value)
    with pytest.raises(st.ConfigurationError, match="body"):
        webhooks.verify(42, {}, KEY)  # type: ignore[arg-type]
    with pytest.raises(st.ConfigurationError, match="headers"):
        webhooks.verify(event_body(), [("only-a-name",)], KEY)  # type: ignore[list-item]
    with pytest.raises(st.ConfigurationError, match="signature_encoding"):
        webhooks.Receiver(KEY, encoding="rot13")


# ---------------------------------------------------------------------------------------------
# Receiver


def test_the_receiver_hands_an_event_over_once_until_released() -> None:
    receiver = webhooks.Receiver(KEY)
    body = event_body("evt-once")
    first = receiver.receive(body, signed(body))
    assert (first.status, first.duplicate) == (200, False) and first.event is not None
    again = receiver.receive(body, signed(body))
    assert (again.status, again.duplicate, again.event) == (200, True, None)
    assert json.loads(again.body) == {"status": "duplicate"}
    receiver.release(first.event)
    assert receiver.receive(body, signed(body)).event is not None
    refused = receiver.receive(body, signed(body, "another-python-key-0123456789abc"))
    assert refused.status == 401 and "does not match" in json.loads(refused.body)["error"]
    assert "key=***" in repr(receiver) and KEY not in repr(receiver)


async def test_the_receiver_awaits_too() -> None:
    receiver = webhooks.Receiver(KEY)
    body = event_body("evt-async")
    first, second = await asyncio.gather(
        receiver.receive_async(body, signed(body)), receiver.receive_async(body, signed(body))
    )
    assert sorted([first.duplicate, second.duplicate]) == [False, True]
    handed = first.event or second.event
    assert handed is not None
    await receiver.release_async(handed)
    assert (await receiver.receive_async(body, signed(body))).event is not None


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The process environment is the documented way to configure a deployment.
    monkeypatch.setenv("ST_WEBHOOK_KEY", KEY)
    monkeypatch.setenv("ST_WEBHOOK_SIGNATURE_HEADER", "X-Hook-Signature")
    receiver = webhooks.Receiver()
    body = event_body("evt-env")
    assert receiver.receive(body, {"X-Hook-Signature": webhooks.sign(body, KEY)}).status == 200
    assert receiver.receive(body, signed(body)).status == 401


# ---------------------------------------------------------------------------------------------
# ASGI and WSGI apps, called directly


class Handled:
    """Events the application was given, and a failure to raise on demand."""

    def __init__(self) -> None:
        self.events: List[Dict[str, Any]] = []
        self.fail_next = False
        self.lock = threading.Lock()

    def __call__(self, event: Dict[str, Any]) -> None:
        with self.lock:
            if self.fail_next:
                self.fail_next = False
                raise RuntimeError("the database is down")
            self.events.append(event)


async def asgi_post(
    app: webhooks.ASGIApp, body: bytes, headers: Dict[str, str], method: str = "POST", chunk: int = 0
) -> Tuple[int, Dict[str, Any]]:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {"type": "http", "method": method, "path": "/", "headers": raw}
    parts = [body[i : i + chunk] for i in range(0, len(body), chunk)] if chunk else [body]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]
    sent: List[Dict[str, Any]] = []

    async def receive() -> Dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = sent[0]["status"]
    return status, json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


async def test_the_asgi_app_acknowledges_dedupes_refuses_and_releases_on_failure() -> None:
    handled = Handled()
    app = webhooks.asgi_app(handled, key=KEY, max_body_bytes=4096)
    body = event_body("evt-asgi")
    assert await asgi_post(app, body, signed(body), chunk=7) == (200, {"status": "accepted"})
    assert await asgi_post(app, body, signed(body)) == (200, {"status": "duplicate"})
    assert [e["id"] for e in handled.events] == ["evt-asgi"]
    assert (await asgi_post(app, body + b" ", signed(body)))[0] == 401
    assert (await asgi_post(app, body, {}))[0] == 401
    assert (await asgi_post(app, b"x" * 5000, signed(b"x" * 5000)))[0] == 413
    assert (await asgi_post(app, body, signed(body), method="GET"))[0] == 405

    other = event_body("evt-asgi-fails")
    handled.fail_next = True
    assert (await asgi_post(app, other, signed(other)))[0] == 200
    assert (await asgi_post(app, other, signed(other)))[0] == 200  # released: handled this time
    assert [e["id"] for e in handled.events] == ["evt-asgi", "evt-asgi-fails"]


async def test_the_asgi_app_awaits_a_coroutine_callback() -> None:
    seen: List[str] = []

    async def on_event(event: Dict[str, Any]) -> None:
        await asyncio.sleep(0)
        seen.append(event["id"])

    app = webhooks.asgi_app(on_event, key=KEY)
    body = event_body("evt-coroutine")
    assert (await asgi_post(app, body, signed(body)))[0] == 200
    assert seen == ["evt-coroutine"]


def test_the_wsgi_app_answers_then_hands_the_event_over_on_close() -> None:
    handled = Handled()
    app = webhooks.wsgi_app(handled, key=KEY)
    body = event_body("evt-wsgi")

    def call(body: bytes, headers: Dict[str, str], method: str = "POST") -> Tuple[str, bytes, Any]:
        environ: Dict[str, Any] = {"REQUEST_METHOD": method, "CONTENT_LENGTH": str(len(body))}
        wsgiref.util.setup_testing_defaults(environ)
        environ["wsgi.input"] = __import__("io").BytesIO(body)
        for name, value in headers.items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        statuses: List[str] = []
        result = app(environ, lambda status, _headers: statuses.append(status))
        return statuses[0], b"".join(result), result

    status, answer, result = call(body, signed(body))
    assert status == "200 OK" and json.loads(answer) == {"status": "accepted"}
    assert handled.events == [], "not before the server is done with the response"
    result.close()
    assert [e["id"] for e in handled.events] == ["evt-wsgi"]
    status, answer, result = call(body, signed(body))
    result.close()
    assert json.loads(answer) == {"status": "duplicate"} and len(handled.events) == 1
    assert call(body, {})[0].startswith("401")
    assert call(body, signed(body), method="PUT")[0].startswith("405")


# ---------------------------------------------------------------------------------------------
# The sandbox delivers to apps served for real, through retries


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Flaky:
    """Fails deliveries on purpose, in front of the app under test: the first arrival of every
    event is answered 503 unread; the app's 200 to the first event that arrives a second time
    becomes a 500, as if the acknowledgement were lost (the event was handled: its retry must not
    be)."""

    def __init__(self) -> None:
        self.arrivals: Dict[str, int] = {}
        self.lost: Optional[str] = None
        self.lock = threading.Lock()

    def arrive(self, body: bytes) -> Tuple[int, bool]:
        event_id = json.loads(body).get("id", "")
        with self.lock:
            self.arrivals[event_id] = self.arrivals.get(event_id, 0) + 1
            lose = self.lost is None and self.arrivals[event_id] == 2
            if lose:
                self.lost = event_id
            return self.arrivals[event_id], lose

    def asgi(self, app: webhooks.ASGIApp) -> webhooks.ASGIApp:
        async def flaky(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            arrival, lose = self.arrive(body)
            if arrival == 1:
                await send({"type": "http.response.start", "status": 503, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
            replay = [{"type": "http.request", "body": body, "more_body": False}]

            async def receive_again() -> Any:
                return replay.pop() if replay else {"type": "http.disconnect"}

            async def send_maybe_lost(message: Any) -> None:
                if lose and message["type"] == "http.response.start" and message["status"] == 200:
                    message = {**message, "status": 500}
                await send(message)

            await app(scope, receive_again, send_maybe_lost)

        return flaky

    def wsgi(self, app: webhooks.WSGIApp) -> webhooks.WSGIApp:
        def flaky(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            arrival, lose = self.arrive(body)
            if arrival == 1:
                start_response("503 Service Unavailable", [("Content-Length", "0")])
                return [b""]
            environ["wsgi.input"] = __import__("io").BytesIO(body)

            def start(status: str, headers: Any) -> Any:
                if lose and status.startswith("200"):
                    status = "500 Internal Server Error"
                return start_response(status, headers)

            return app(environ, start)

        return flaky


@pytest.fixture
def webhook_sandbox() -> Iterator[st.Sandbox]:
    # Retries after 0.1, 0.3, 0.6, 3 s instead of 10, 30, 60, 300 s.
    with st.Sandbox(rate_limit={"enabled": False}, webhook_time_scale=0.01) as sandbox:
        yield sandbox


def new_customer(name: str) -> Dict[str, Any]:
    address = {"street": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701", "country": "USA"}
    return {
        "name": name,
        "type": "Residential",
        "address": address,
        "locations": [{"name": "Home", "address": address}],
    }


def wait_until(what: str, done: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def run_deliveries(sandbox: st.Sandbox, url: str, handled: Handled, flaky: Flaky) -> None:
    sandbox.register_webhook(url, KEY, tenant_id=1001)
    tenant = sandbox.client().tenant(**sandbox.credentials(1001))
    created = [tenant.post("crm/customers", json=new_customer(n))["id"] for n in ("Ada Lovelace", "Grace Hopper")]
    tenant.patch(f"crm/customers/{created[1]}", json={"name": "Grace B. Hopper"})

    def ended() -> bool:
        d = sandbox.webhook_deliveries()
        return len(d) == 3 and all(x["state"] != "pending" for x in d)

    wait_until("every delivery ended", ended)
    wait_until("every event was handled", lambda: len(handled.events) >= 3)
    deliveries = sandbox.webhook_deliveries()
    assert [d["state"] for d in deliveries] == ["delivered"] * 3, deliveries
    # 503 then 200 for each; 503, 500 (the lost acknowledgement) and 200 for one of them.
    assert sorted(len(d["attempts"]) for d in deliveries) == [2, 2, 3]
    assert next(d for d in deliveries if len(d["attempts"]) == 3)["event_id"] == flaky.lost
    # Each event exactly once (in whatever order the retries brought them).
    assert sorted((e["id"], e["type"]) for e in handled.events) == sorted(
        (d["event_id"], d["type"]) for d in deliveries
    )
    update = next(e for e in handled.events if e["type"] == "tn.crm.customer-updated")
    assert update["data"]["name"] == "Grace B. Hopper"

    # A replay from the portal (same id) is acknowledged and not handed over again.
    assert sandbox.replay_webhook(deliveries[2]["event_id"]) == 1
    wait_until("the replay was delivered", lambda: sandbox.webhook_deliveries()[-1]["state"] == "delivered")
    time.sleep(0.1)
    assert len(handled.events) == 3


def test_sandbox_deliveries_with_retries_reach_an_asgi_app_under_uvicorn_once_per_event(
    webhook_sandbox: st.Sandbox,
) -> None:
    handled, flaky = Handled(), Flaky()
    port = free_port()
    config = uvicorn.Config(
        flaky.asgi(webhooks.asgi_app(handled, key=KEY)),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until("uvicorn started", lambda: server.started)
        run_deliveries(webhook_sandbox, f"http://127.0.0.1:{port}/hooks", handled, flaky)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_sandbox_deliveries_with_retries_reach_a_wsgi_app_once_per_event(webhook_sandbox: st.Sandbox) -> None:
    handled, flaky = Handled(), Flaky()

    class Quiet(wsgiref.simple_server.WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = wsgiref.simple_server.make_server(
        "127.0.0.1", 0, flaky.wsgi(webhooks.wsgi_app(handled, key=KEY)), handler_class=Quiet
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        run_deliveries(webhook_sandbox, f"http://127.0.0.1:{server.server_port}/", handled, flaky)
    finally:
        server.shutdown()
        server.server_close()


def test_the_sandbox_control_calls_check_their_arguments(webhook_sandbox: st.Sandbox) -> None:
    with pytest.raises(st.ConfigurationError, match="32 to 64"):
        webhook_sandbox.register_webhook("http://127.0.0.1:9/", "short")
    with pytest.raises(st.ConfigurationError, match="http://"):
        webhook_sandbox.register_webhook("https://example.com/", KEY)
    sub = webhook_sandbox.register_webhook("http://127.0.0.1:9/", KEY, events=["tn.test.ping"])
    assert webhook_sandbox.webhook_subscriptions() == [
        {"id": sub, "tenant": 1001, "url": "http://127.0.0.1:9/", "key": "***", "events": ["tn.test.ping"]}
    ]
    event_id = webhook_sandbox.send_webhook_event("tn.test.ping", {"n": 1})
    assert re.fullmatch(r"[0-9a-f-]{36}", event_id)
    with pytest.raises(st.ConfigurationError, match="no event"):
        webhook_sandbox.replay_webhook("nope")
    webhook_sandbox.clear_webhooks()
    assert webhook_sandbox.webhook_subscriptions() == []


# ---------------------------------------------------------------------------------------------
# Redis: workers dedupe together

needs_redis = pytest.mark.skipif(not REDIS_URL, reason="ST_TEST_REDIS_URL is not set (scripts/test-redis.sh sets it)")


@needs_redis
def test_receivers_sharing_redis_hand_an_event_over_once_between_them() -> None:
    prefix = f"py-webhooks-{time.time_ns()}"
    workers = [webhooks.Receiver(KEY, redis_url=REDIS_URL, redis_key_prefix=prefix) for _ in range(3)]
    body = event_body("evt-redis")
    receipts = [w.receive(body, signed(body)) for w in workers for _ in range(2)]
    assert [r.status for r in receipts] == [200] * 6
    assert sum(r.event is not None for r in receipts) == 1


# ---------------------------------------------------------------------------------------------
# The README's FastAPI example, run as written

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block(marker: str) -> str:
    match = re.search(r"```python[^\n]*\n(" + re.escape(marker) + r".*?)^```", README.read_text(), re.S | re.M)
    assert match, f"no ```python block starting with {marker!r} in the README"
    return match.group(1)


async def test_the_readme_fastapi_example_receives_a_signed_delivery(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ST_WEBHOOK_KEY", KEY)
    namespace: Dict[str, Any] = {"__name__": "readme_fastapi"}
    exec(compile(readme_block("from fastapi import FastAPI"), "README.md (FastAPI)", "exec"), namespace)
    app = namespace["app"]
    body = event_body("evt-readme")
    status, answer = await asgi_post_path(app, "/servicetitan/webhooks", body, signed(body))
    assert (status, answer) == (200, {"status": "accepted"})
    assert [e["id"] for e in namespace["handled"]] == ["evt-readme"]
    status, _ = await asgi_post_path(app, "/servicetitan/webhooks", body, {HEADER: "0" * 64})
    assert status == 401


async def asgi_post_path(app: Any, path: str, body: bytes, headers: Dict[str, str]) -> Tuple[int, Optional[Any]]:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": raw,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: List[Any] = []

    async def receive() -> Any:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    await app(scope, receive, send)
    payload = b"".join(m.get("body", b"") for m in sent[1:])
    return sent[0]["status"], json.loads(payload) if payload else None
