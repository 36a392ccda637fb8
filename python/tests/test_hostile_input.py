"""Hostile input from the caller: values that contain themselves or nest thousands deep, numbers
out of range, panics at the boundary. None may crash the interpreter or escape as anything but a
ServiceTitanError, and every refusal comes before any request."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

import servicetitan as st
from servicetitan import _native

MAX_DEPTH = 128


def nested(depth: int, leaf: Any = 1) -> Any:
    """A value `depth` containers deep: dicts and lists in turn, the innermost holding `leaf`."""
    value = leaf
    for i in range(depth):
        value = {"a": value} if i % 2 else [value]
    return value


def requests_seen(sandbox: st.Sandbox) -> int:
    routes: Dict[str, int] = sandbox.stats()["routes"]
    return sum(n for route, n in routes.items() if not route.endswith("connect/token"))


def cycle_in_dict() -> Dict[str, Any]:
    d: Dict[str, Any] = {"name": "x"}
    d["self"] = d
    return d


def cycle_three_deep() -> Dict[str, Any]:
    inner: Dict[str, Any] = {}
    middle = {"b": [1, 2, inner]}
    outer = {"a": middle}
    inner["back"] = outer
    return outer


def cycle_in_list() -> List[Any]:
    items: List[Any] = [1, 2]
    items.append(items)
    return items


# (value, the path and the words of the refusal)
BAD_BODIES: List[Tuple[Callable[[], Any], str]] = [
    (cycle_in_dict, r"^json\.self: a value that contains itself cannot be sent as JSON \(it is json again\)$"),
    (cycle_three_deep, r"^json\.a\.b\[2\]\.back: a value that contains itself .*\(it is json again\)"),
    (cycle_in_list, r"^json\[2\]: a value that contains itself"),
    # The 129th container is the one refused; the middle of the long path is left out.
    (lambda: nested(MAX_DEPTH + 1), r"^json(\[0\]\.a)+…(\[0\]\.a)+: nested deeper than 128 levels$"),
    (lambda: nested(100_000), r"nested deeper than 128 levels"),
    (lambda: {"a": [0, 1, 2, {"b": nested(MAX_DEPTH)}]}, r"^json\.a\[3\]\.b(\[0\]|\.a)*…(\[0\]|\.a)+: nested deeper"),
    (
        lambda: {"odd key": {"x": cycle_in_list()}},
        r'^json\["odd key"\]\.x\[2\]: a value that contains itself .*\(it is json\["odd key"\]\.x again\)',
    ),
    (lambda: {"n": 2**64}, r"json\.n: the integer does not fit in 64 bits"),
    (lambda: {"n": -(2**63) - 1}, r"json\.n: the integer does not fit in 64 bits"),
    (lambda: {"x": [float("inf")]}, r"json\.x\[0\]: inf cannot be sent as JSON"),
    (lambda: {1: "one"}, r"json: keys must be str, got an int key"),
    (lambda: {"s": "\ud800"}, r"json\.s: the string is not valid Unicode"),
    (lambda: {"\udc80": 1}, r"json: a key is not valid Unicode"),
    (lambda: {"b": b"bytes"}, r"json\.b: a bytes cannot be sent as JSON"),
    (lambda: {"set": {1}}, r"json\.set: a set cannot be sent as JSON"),
]


@pytest.mark.parametrize(("make", "refusal"), BAD_BODIES)
def test_bad_bodies_are_refused_with_their_path_before_any_request(
    sandbox: st.Sandbox, tenant: st.Tenant, make: Callable[[], Any], refusal: str
) -> None:
    tenant.get("crm/customers")  # the token, fetched first, is not what is counted
    before = requests_seen(sandbox)
    with pytest.raises(st.ConfigurationError, match=refusal) as info:
        tenant.post("crm/customers", json=make())
    assert info.value.argument == "json"
    assert len(str(info.value)) < 400
    assert requests_seen(sandbox) == before


def test_the_limit_is_128_levels_and_shared_values_are_not_cycles(sandbox: st.Sandbox, tenant: st.Tenant) -> None:
    tenant.get("crm/customers")
    before = requests_seen(sandbox)
    # 128 levels are converted and sent (the sandbox refuses the shape: it was sent).
    with pytest.raises(st.BadRequestError):
        tenant.post("crm/customers", json=nested(MAX_DEPTH))
    shared = {"street": "1 Main St"}
    with pytest.raises(st.BadRequestError):
        tenant.post("crm/customers", json={"a": shared, "b": [shared, shared], "c": (shared,)})
    assert requests_seen(sandbox) == before + 2


def test_params_parameters_and_sandbox_options_name_their_argument(sandbox: st.Sandbox, tenant: st.Tenant) -> None:
    looped: List[Any] = []
    looped.append(looped)
    with pytest.raises(st.ConfigurationError, match=r"^params\.ids\[0\]: a list cannot be sent as a query") as info:
        tenant.get("crm/customers", params={"ids": looped})
    assert info.value.argument == "params"
    with pytest.raises(st.ConfigurationError, match=r"^params: keys must be str, got an int key"):
        tenant.get("crm/customers", params={5: "x"})  # type: ignore[dict-item]
    with pytest.raises(st.ConfigurationError, match=r"^params: expected a dict, got a list"):
        tenant.get("crm/customers", params=[("a", 1)])  # type: ignore[arg-type]

    with pytest.raises(st.ConfigurationError, match=r"^parameters\.From\.self: a value that contains itself") as info:
        tenant.report("operations", 175, parameters={"From": cycle_in_dict()})
    assert info.value.argument == "parameters"
    with pytest.raises(
        st.ConfigurationError, match=r"^parameters\.Deep(\[0\]|\.a)*…(\[0\]|\.a)+: nested deeper than 128"
    ):
        tenant.report("operations", 175, parameters={"Deep": nested(5000)})
    with pytest.raises(st.ConfigurationError, match=r"^parameters: expected a dict of report parameters, got a str"):
        tenant.report("operations", 175, parameters="From=2024-01-01")  # type: ignore[arg-type]

    with pytest.raises(st.ConfigurationError, match=r"^tenants\[0\]\.self: a value that contains itself") as info:
        st.Sandbox(tenants=[cycle_in_dict()])
    assert info.value.argument == "tenants"
    with pytest.raises(st.ConfigurationError, match=r"^rate_limit(\[0\]|\.a)*…(\[0\]|\.a)+: nested deeper than 128"):
        st.Sandbox(rate_limit=nested(10_000))
    with pytest.raises(st.ConfigurationError, match=r"^route\.self: a value that contains itself"):
        sandbox.add_fault(route=cycle_in_dict())


class RaisingZone(dt.tzinfo):
    """A time zone whose offset cannot be read."""

    def utcoffset(self, _dt: Optional[dt.datetime]) -> dt.timedelta:
        raise RuntimeError("no offset today")

    def dst(self, _dt: Optional[dt.datetime]) -> Optional[dt.timedelta]:
        return None

    def tzname(self, _dt: Optional[dt.datetime]) -> Optional[str]:
        return None


class ResizingZone(dt.tzinfo):
    """A time zone that adds keys to the dict being converted while it is read."""

    def __init__(self, victim: Dict[str, Any]) -> None:
        self.victim = victim

    def utcoffset(self, _dt: Optional[dt.datetime]) -> dt.timedelta:
        for i in range(100):
            self.victim[f"added{i}"] = i
        return dt.timedelta(0)

    def dst(self, _dt: Optional[dt.datetime]) -> Optional[dt.timedelta]:
        return None

    def tzname(self, _dt: Optional[dt.datetime]) -> Optional[str]:
        return None


class LoudDate(dt.date):
    def isoformat(self) -> str:
        raise AssertionError("the binding must use date's own isoformat")


def test_user_code_met_on_the_way_cannot_break_the_conversion(tenant: st.Tenant) -> None:
    with pytest.raises(st.ConfigurationError, match=r"^json\.when: the value could not be read: RuntimeError") as info:
        tenant.post("crm/customers", json={"when": dt.datetime(2024, 1, 1, tzinfo=RaisingZone())})
    assert isinstance(info.value.__cause__, RuntimeError)
    # A dict resized mid-conversion by user code: converted from a snapshot, no panic.
    victim: Dict[str, Any] = {"name": "x"}
    victim["when"] = dt.datetime(2024, 1, 1, tzinfo=ResizingZone(victim))
    with pytest.raises(st.BadRequestError):
        tenant.post("crm/customers", json=victim)
    # Subclasses' overrides are not called: the base class formats.
    with pytest.raises(st.BadRequestError):
        tenant.post("crm/customers", json={"name": "x", "on": LoudDate(2024, 1, 2)})
    assert tenant.get("crm/customers", params={"modifiedOnOrAfter": LoudDate(2024, 1, 2)})["data"] is not None


async def test_the_asyncio_client_refuses_the_same_values(sandbox: st.Sandbox) -> None:
    tenant = sandbox.async_client().tenant(**sandbox.credentials(1001))
    await tenant.get("crm/customers")
    before = requests_seen(sandbox)
    with pytest.raises(st.ConfigurationError, match=r"^json\.self: a value that contains itself"):
        await tenant.post("crm/customers", json=cycle_in_dict())
    with pytest.raises(st.ConfigurationError, match=r"nested deeper than 128 levels"):
        await tenant.put("crm/customers/1", json=nested(50_000))
    with pytest.raises(st.ConfigurationError, match=r"^parameters\.From\.self"):
        await tenant.report("operations", 175, parameters={"From": cycle_in_dict()})
    assert requests_seen(sandbox) == before


# -------------------------------------------------------------------------------------------------
# Numeric arguments

U32 = "from 0 to 4294967295"
CLIENT_NUMBERS: List[Tuple[str, Any, str]] = [
    ("max_attempts", -1, U32),
    ("max_attempts", 2**32, U32),
    ("max_attempts", 2**200, U32),
    ("max_attempts", 1.5, U32),
    ("max_attempts", "3", U32),
    ("max_attempts", True, U32),
    ("rate_limit_calls", -1, U32),
    ("rate_limit_calls", 2**70, U32),
    ("report_rate_limit_calls", -(2**70), U32),
    ("report_rate_limit_calls", 10**5000, U32),
    ("timeout", 2**2000, "a number of seconds"),
    ("timeout", "10", "a number of seconds"),
    ("connect_timeout", 2**1100, "a number of seconds"),
    ("attempt_timeout", -(2**1100), "a number of seconds"),
    ("rate_limit_period", 2**1100, "a number of seconds"),
    ("rate_limit_margin", 2**1100, "a number of seconds"),
    ("report_rate_limit_period", 2**1100, "a number of seconds"),
    ("backoff_base", 2**1100, "a number of seconds"),
    ("backoff_max", 2**1100, "a number of seconds"),
    ("max_retry_after", 2**1100, "a number of seconds"),
    ("redis_fallback_share", 2**1100, "a number from 0 to 1"),
    # In range for the conversion, out of range for the engine: its own refusal, same class.
    ("timeout", -1, "non-negative"),
    ("max_attempts", 0, "at least one attempt"),
]


@pytest.mark.parametrize(
    ("name", "value", "expected"), CLIENT_NUMBERS, ids=[f"{name}-{i}" for i, (name, _, _) in enumerate(CLIENT_NUMBERS)]
)
@pytest.mark.parametrize("client_class", [st.Client, st.AsyncClient])
def test_numeric_settings_out_of_range_name_the_setting_and_the_range(
    client_class: Any, name: str, value: Any, expected: str
) -> None:
    with pytest.raises(st.ConfigurationError) as info:
        client_class(app_key="ak1.x", environment="integration", **{name: value})
    message = str(info.value)
    assert name in message and expected in message, message
    assert info.value.argument == name


def test_numeric_call_arguments_name_the_argument_and_the_range(sandbox: st.Sandbox, tenant: st.Tenant) -> None:
    client = sandbox.client()
    cases: List[Tuple[str, Callable[[], Any], str]] = [
        ("tenant_id", lambda: client.tenant(2**70, client_id="c", client_secret="s"), "from 1 to 9223372036854775807"),
        ("tenant_id", lambda: client.tenant(-5, client_id="c", client_secret="s"), "from 1 to 9223372036854775807"),
        ("tenant_id", lambda: sandbox.credentials(2**64), "from 1 to 9223372036854775807"),
        ("page_size", lambda: tenant.paginate("crm/customers", page_size=-5), "from 1 to 4294967295"),
        ("page_size", lambda: tenant.paginate("crm/customers", page_size=2**40), "from 1 to 4294967295"),
        ("report_id", lambda: tenant.report("operations", 2**64), "from 1 to 9223372036854775807"),
        ("report_id", lambda: tenant.report_metadata("operations", -(2**64)), "from 1 to 9223372036854775807"),
        ("timeout", lambda: tenant.get("crm/customers", timeout=2**2000), "a number of seconds"),
        ("timeout", lambda: tenant.post("crm/customers", json={}, timeout=-(2**2000)), "a number of seconds"),
    ]
    for name, call, expected in cases:
        with pytest.raises(st.ConfigurationError) as info:
            call()
        message = str(info.value)
        assert name in message and expected in message, message
        assert info.value.argument == name


async def test_async_call_arguments_are_checked_too(sandbox: st.Sandbox) -> None:
    tenant = sandbox.async_client().tenant(**sandbox.credentials(1001))
    with pytest.raises(st.ConfigurationError, match="page_size"):
        tenant.paginate("crm/customers", page_size=-1)
    with pytest.raises(st.ConfigurationError, match="report_id"):
        tenant.report("operations", 2**63)
    with pytest.raises(st.ConfigurationError, match="timeout"):
        tenant.get("crm/customers", timeout=2**1100)


# -------------------------------------------------------------------------------------------------
# Panics


def test_a_panic_at_each_boundary_is_an_internal_error_and_the_client_goes_on(tenant: st.Tenant) -> None:
    for _ in range(3):
        for boundary in ("wait", "convert"):
            with pytest.raises(st.InternalError, match=r"internal error in servicetitan .*a test panic") as info:
                _native._panic_for_test(boundary)
            assert info.value.code == "internal"
            assert isinstance(info.value, st.ServiceTitanError) and isinstance(info.value, Exception)

        async def awaited() -> None:
            for boundary in ("asyncio", "into_python"):
                with pytest.raises(st.InternalError, match="a test panic"):
                    await _native._panic_for_test(boundary)

        asyncio.run(awaited())
        # The runtime and every lock still work.
        assert tenant.get("crm/customers", params={"pageSize": 1})["data"]


async def test_an_awaited_panic_leaves_the_async_client_usable(sandbox: st.Sandbox) -> None:
    tenant = sandbox.async_client().tenant(**sandbox.credentials(1001))
    for boundary in ("asyncio", "into_python"):
        with pytest.raises(st.InternalError):
            await _native._panic_for_test(boundary)
    assert (await tenant.get("crm/customers", params={"pageSize": 1}))["data"]
    assert [r async for r in tenant.paginate("crm/customers", params={"pageSize": 2})][:1]


def test_a_blocking_call_from_a_log_handler_is_refused_and_the_logged_call_goes_on(sandbox: st.Sandbox) -> None:
    # Log lines are emitted on the client's runtime threads, where blocking on the runtime
    # would panic (tokio refuses to start a runtime from within one).
    tenant = sandbox.client().tenant(**sandbox.credentials(1001))
    outcomes: List[BaseException] = []

    class Calling(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if not outcomes:
                try:
                    tenant.get("crm/customers")
                except BaseException as e:
                    outcomes.append(e)

    logger = logging.getLogger("servicetitan")
    handler, level = Calling(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        page = tenant.get("crm/customers", params={"pageSize": 1})  # fetches a token: logged
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert page["data"]
    assert len(outcomes) == 1
    assert isinstance(outcomes[0], st.ConfigurationError), repr(outcomes[0])
    assert "runtime threads" in str(outcomes[0])
