"""The shared hostile-server cases (tests/hostile.json), with the blocking client for every case
and the asyncio one for a representative subset.

Each case runs against a fresh hostile server and capture server (see hostile_server.py). Every
case also checks: the capture server saw no connection, no same-origin redirect was followed
and no compressed answer asked for; neither the error's str/repr/title nor any `servicetitan`
log line (at DEBUG, none over 16 KiB) holds the app key or the client secret; afterwards, with
the server well-behaved again, a normal call on the same client succeeds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

import servicetitan as st

from .hostile_server import CaptureServer, HostileServer
from .scenario_runner import client_kwargs, merged

HOSTILE_FILE = Path(__file__).resolve().parents[2] / "tests" / "hostile.json"
DATA: Dict[str, Any] = json.loads(HOSTILE_FILE.read_text())
assert DATA["version"] == 1, "a runner for hostile cases version 1"
CREDENTIALS: Dict[str, Any] = DATA["credentials"]
CASES: Dict[str, Dict[str, Any]] = {c["id"]: c for c in DATA["cases"]}
CASE_KEYS = {"id", "about", "client", "token", "api", "call", "expect"}
EXPECT_KEYS = {"ok", "error", "api_requests", "token_requests", "elapsed_ms"}
SECRETS = (CREDENTIALS["app_key"], CREDENTIALS["client_secret"])
MAX_LOG_LINE = 16 * 1024

# The asyncio client shares the engine with the blocking one: a subset covering each kind of
# hostility (redirects, lying tokens, bounds, protocol errors, stalls, resets) is enough.
ASYNC_CASES = [
    "token_redirect_307",
    "token_expires_in_huge",
    "token_access_token_crlf",
    "token_body_huge",
    "api_redirect_308_post",
    "api_redirect_same_origin",
    "api_retry_after_huge",
    "api_content_length_huge",
    "api_gzip_bomb",
    "api_nested_deep",
    "api_error_body_huge",
    "api_header_bare_cr",
    "api_stall",
    "api_reset_post",
]


class LogLines(logging.Handler):
    """Collects every line of the `servicetitan` logger, whatever thread logs it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def servers() -> Iterator[Tuple[HostileServer, CaptureServer]]:
    capture = CaptureServer()
    hostile = HostileServer(capture.port)
    yield hostile, capture
    hostile.close()
    capture.close()


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    logger = logging.getLogger("servicetitan")
    handler = LogLines()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def client_settings(case: Dict[str, Any], hostile: HostileServer) -> Dict[str, Any]:
    settings = client_kwargs(merged(DATA["defaults"]["client"], case.get("client", {})))
    return {
        "app_key": CREDENTIALS["app_key"],
        "auth_url": hostile.base_url,
        "api_url": hostile.base_url,
        **settings,
    }


def tenant_kwargs() -> Dict[str, Any]:
    return {"client_id": CREDENTIALS["client_id"], "client_secret": CREDENTIALS["client_secret"]}


def call_args(case: Dict[str, Any]) -> Tuple[str, str, Optional[Any]]:
    call = case.get("call", {})
    assert set(call) <= {"method", "path", "json"}, f"call keys this runner does not know: {call}"
    return call.get("method", "GET"), call.get("path", "crm/customers"), call.get("json")


def check(
    case: Dict[str, Any],
    error: Optional[BaseException],
    elapsed_ms: float,
    hostile: HostileServer,
    capture: CaptureServer,
    log_lines: LogLines,
) -> None:
    expect = case["expect"]
    unknown = set(expect) - EXPECT_KEYS
    assert not unknown, f"expectations this runner does not know: {unknown}"
    assert not set(case) - CASE_KEYS, f"case keys this runner does not know: {set(case) - CASE_KEYS}"
    # Never anything but a ServiceTitanError (no PanicException, no bare OverflowError).
    assert error is None or isinstance(error, st.ServiceTitanError), repr(error)[:500]
    if expect["ok"]:
        assert error is None, f"expected success, got {str(error)[:500]!r}"
    else:
        assert isinstance(error, st.ServiceTitanError), "expected an error, the call succeeded"
        wanted = expect["error"]
        assert set(wanted) <= {"code", "message_contains", "max_message_chars"}, wanted
        # Messages are shown cut short: a failing case may have one of megabytes.
        message = str(error)
        shown = message[:500]
        code = error.code
        assert code == wanted["code"], f"expected {wanted['code']}, got {type(error).__name__}: {shown}"
        for part in wanted.get("message_contains", []):
            found = part in message
            assert found, f"{part!r} not in {shown!r}"
        if "max_message_chars" in wanted:
            chars = len(message)
            assert chars <= wanted["max_message_chars"], f"a message of {chars} chars: {shown!r}"
        for secret in SECRETS:
            leaked = any(secret in text for text in (message, repr(error), error.title or ""))
            assert not leaked, f"a secret in the error: {shown!r}"
    for counter in ("api_requests", "token_requests"):
        if counter in expect:
            seen = getattr(hostile, counter)
            bound = expect[counter]
            if "eq" in bound:
                assert seen == bound["eq"], f"{counter}: {seen}, expected {bound['eq']}"
            if "lte" in bound:
                assert seen <= bound["lte"], f"{counter}: {seen}, expected at most {bound['lte']}"
    if "elapsed_ms" in expect:
        assert elapsed_ms <= expect["elapsed_ms"]["lte"], f"took {elapsed_ms:.0f} ms"
    assert capture.connections == 0, f"the capture server saw {capture.connections}: {capture.received[:500]!r}"
    assert hostile.elsewhere_requests == 0, "a same-origin redirect was followed"
    assert hostile.encodings == [], f"the client asked for compressed answers: {hostile.encodings}"
    assert not hostile.errors, hostile.errors
    for line in log_lines.lines:
        for secret in SECRETS:
            leaked = secret in line
            assert not leaked, f"a secret in the log line {line[:500]!r}"
        size = len(line)
        assert size <= MAX_LOG_LINE, f"a log line of {size} chars: {line[:500]!r}"


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_hostile_case_blocking(case_id: str, servers: Tuple[HostileServer, CaptureServer], log_lines: LogLines) -> None:
    case = CASES[case_id]
    hostile, capture = servers
    hostile.play(case.get("token"), case.get("api"))
    client = st.Client(**client_settings(case, hostile))
    tenant = client.tenant(CREDENTIALS["tenant"], **tenant_kwargs())
    method, path, body = call_args(case)
    error: Optional[BaseException] = None
    started = time.monotonic()
    try:
        if method == "GET":
            tenant.get(path)
        else:
            tenant.post(path, json=body)
    except BaseException as e:  # PanicException derives from BaseException: caught to be reported
        error = e
    elapsed_ms = (time.monotonic() - started) * 1000
    check(case, error, elapsed_ms, hostile, capture, log_lines)

    # The client is still usable once the server behaves.
    hostile.normal()
    assert tenant.get("crm/customers")["data"] == [{"id": 1}]
    assert capture.connections == 0


@pytest.mark.parametrize("case_id", ASYNC_CASES)
def test_hostile_case_asyncio(case_id: str, servers: Tuple[HostileServer, CaptureServer], log_lines: LogLines) -> None:
    case = CASES[case_id]
    hostile, capture = servers
    hostile.play(case.get("token"), case.get("api"))
    method, path, body = call_args(case)

    async def scenario() -> Tuple[Optional[BaseException], float]:
        client = st.AsyncClient(**client_settings(case, hostile))
        tenant = client.tenant(CREDENTIALS["tenant"], **tenant_kwargs())
        error: Optional[BaseException] = None
        started = time.monotonic()
        try:
            if method == "GET":
                await tenant.get(path)
            else:
                await tenant.post(path, json=body)
        except BaseException as e:
            error = e
        elapsed_ms = (time.monotonic() - started) * 1000
        check(case, error, elapsed_ms, hostile, capture, log_lines)
        hostile.normal()
        assert (await tenant.get("crm/customers"))["data"] == [{"id": 1}]
        return error, elapsed_ms

    asyncio.run(scenario())
    assert capture.connections == 0


def test_every_async_case_exists() -> None:
    assert set(ASYNC_CASES) <= set(CASES)


def test_a_page_nested_100000_deep_is_a_decode_error_for_iterators_too(
    servers: Tuple[HostileServer, CaptureServer],
) -> None:
    # Pages reach Python through another decoder than get()'s: it must be bounded as well.
    hostile, capture = servers
    hostile.play(None, [{"status": 200, "nested": 100_000}])
    settings = client_settings({}, hostile)
    tenant = st.Client(**settings).tenant(CREDENTIALS["tenant"], **tenant_kwargs())
    with pytest.raises(st.DecodeError):
        list(tenant.paginate("crm/customers"))

    async def iterate() -> None:
        atenant = st.AsyncClient(**settings).tenant(CREDENTIALS["tenant"], **tenant_kwargs())
        with pytest.raises(st.DecodeError):
            [r async for r in atenant.paginate("crm/customers")]
        hostile.normal()
        assert [r async for r in atenant.paginate("crm/customers")] == [{"id": 1}]

    asyncio.run(iterate())
    assert list(tenant.paginate("crm/customers")) == [{"id": 1}]
    assert capture.connections == 0


# Pages the engine accepts (it reads their shape, not their strings) but Python cannot make
# objects of: a lone surrogate, and bytes that are not UTF-8, inside a record's string.
UNDECODABLE_PAGES = {
    "lone_surrogate": b'{"page":1,"pageSize":1,"hasMore":false,"data":[{"name":"\\ud800"}]}',
    "invalid_utf8": b'{"page":1,"pageSize":1,"hasMore":false,"data":[{"name":"\xff\xfe"}]}',
}


@pytest.mark.parametrize("body", list(UNDECODABLE_PAGES.values()), ids=list(UNDECODABLE_PAGES))
def test_a_page_python_cannot_decode_is_a_decode_error_naming_its_request(
    servers: Tuple[HostileServer, CaptureServer], body: bytes
) -> None:
    hostile, capture = servers
    hostile.play(None, [{"status": 200, "body_hex": body.hex()}])
    settings = client_settings({}, hostile)

    def check(error: st.DecodeError) -> None:
        # Raised by Python's decoding of the page (the engine's own check words it otherwise).
        assert str(error).startswith("the response is not valid JSON (")
        assert error.method == "GET"
        assert error.url is not None and error.url.endswith(f"/crm/v2/tenant/{CREDENTIALS['tenant']}/customers")
        assert f"[GET {error.url}]" in str(error)

    tenant = st.Client(**settings).tenant(CREDENTIALS["tenant"], **tenant_kwargs())
    with pytest.raises(st.DecodeError) as caught:
        list(tenant.paginate("crm/customers"))
    check(caught.value)

    async def iterate() -> None:
        atenant = st.AsyncClient(**settings).tenant(CREDENTIALS["tenant"], **tenant_kwargs())
        with pytest.raises(st.DecodeError) as caught:
            [r async for r in atenant.paginate("crm/customers")]
        check(caught.value)

    asyncio.run(iterate())
    assert capture.connections == 0
