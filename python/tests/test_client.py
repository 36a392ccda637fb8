"""The Python surface: argument conversion, results as Python objects, typed errors, settings,
repr and logging without secrets."""

from __future__ import annotations

import datetime as dt
import logging
import pickle
from typing import Any, Dict

import pytest

import servicetitan as st

SECRETS = ("ak1.sandbox-app-key", "cs1.sandbox-secret-1001", "Bearer ")


def test_bodies_arrive_as_plain_python_objects(tenant: st.Tenant) -> None:
    page = tenant.get("crm/customers", params={"pageSize": 3, "includeTotal": True})
    assert type(page) is dict and type(page["data"]) is list and len(page["data"]) == 3
    customer = page["data"][0]
    assert type(customer["id"]) is int and type(customer["active"]) is bool
    assert type(customer["balance"]) is float and type(customer["address"]) is dict
    assert page["totalCount"] > 0
    assert tenant.get(f"crm/customers/{customer['id']}") == customer


def test_params_accept_bools_lists_dates_and_none(sandbox: st.Sandbox, tenant: st.Tenant) -> None:
    ids = [c["id"] for c in tenant.get("crm/customers", params={"pageSize": 3})["data"]]
    page = tenant.get(
        "crm/customers",
        params={
            "ids": ids,
            "active": "Any",
            "includeTotal": False,
            "page": None,
            "modifiedOnOrAfter": dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc),
        },
    )
    assert sorted(c["id"] for c in page["data"]) == sorted(ids)
    with pytest.raises(st.ConfigurationError, match=r"params\.ids: a set cannot be sent") as info:
        tenant.get("crm/customers", params={"ids": {1, 2}})  # type: ignore[dict-item]
    assert info.value.argument == "params"


def test_json_bodies_are_converted_and_refused_when_not_json(tenant: st.Tenant) -> None:
    address = {"street": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701", "country": "USA"}
    created = tenant.post(
        "crm/customers",
        json={
            "name": "Ada Lovelace",
            "type": "Residential",
            "address": address,
            "locations": ({"name": "Home", "address": address},),
        },
    )
    assert created["name"] == "Ada Lovelace" and isinstance(created["id"], int)
    patched = tenant.patch(f"crm/customers/{created['id']}", json={"name": "Ada King"})
    assert patched["name"] == "Ada King"
    with pytest.raises(st.ConfigurationError, match=r"json\.name: an object cannot be sent as JSON"):
        tenant.post("crm/customers", json={"name": object()})
    with pytest.raises(st.ConfigurationError, match=r"json\.balance: NaN cannot be sent as JSON"):
        tenant.post("crm/customers", json={"balance": float("nan")})


def test_typed_errors_carry_the_servers_details_and_pickle(tenant: st.Tenant) -> None:
    with pytest.raises(st.BadRequestError) as info:
        tenant.get("crm/customers", params={"pageSize": 0})
    e = info.value
    assert (e.code, e.status, e.method) == ("bad_request", 400, "GET")
    assert "pageSize" in e.errors and e.trace_id and e.title
    assert e.url is not None and e.url.endswith("/crm/v2/tenant/1001/customers")
    back = pickle.loads(pickle.dumps(e))
    assert (type(back), str(back), back.errors, back.trace_id) == (type(e), str(e), e.errors, e.trace_id)


def test_the_error_classes_are_the_engines_codes() -> None:
    from servicetitan import _native, errors

    assert list(errors.CLASSES_BY_CODE) == _native.error_codes()
    for code, cls in errors.CLASSES_BY_CODE.items():
        assert issubclass(cls, st.ServiceTitanError) and cls.code == code


def test_every_setting_of_the_engines_schema_is_a_keyword_of_client(sandbox: st.Sandbox) -> None:
    from servicetitan import _native

    names = [keyword for keyword, _ in _native.settings()]
    assert "rate_limit_period" in names and "backoff_max" in names
    for keyword in names:
        # A value of the wrong type is refused naming the keyword (a keyword Client lacks would be
        # "an unexpected keyword argument").
        settings: Dict[str, Any] = {"app_key": "ak1.x", "auth_url": sandbox.auth_url, "api_url": sandbox.api_url}
        settings[keyword] = object()
        with pytest.raises((st.ConfigurationError, TypeError)) as info:
            st.Client(**settings)
        text = " ".join([str(info.value), *getattr(info.value, "__notes__", [])])
        assert keyword in text and "unexpected keyword" not in text, (keyword, text)


def test_half_of_a_pair_takes_the_other_half_from_its_variable(
    sandbox: st.Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    base: Dict[str, Any] = {"app_key": "ak1.x", "auth_url": sandbox.auth_url, "api_url": sandbox.api_url}
    st.Client(**base, rate_limit_calls=5)
    st.Client(**base, backoff_base=0.01)
    monkeypatch.setenv("ST_RATE_LIMIT_PERIOD_MS", "0")
    with pytest.raises(st.ConfigurationError) as info:
        st.Client(**base, rate_limit_calls=5)
    assert info.value.argument == "ST_RATE_LIMIT_PERIOD_MS"
    monkeypatch.setenv("ST_BACKOFF_MAX_MS", "soon")
    with pytest.raises(st.ConfigurationError) as info:
        st.Client(**base, rate_limit_calls=0, backoff_base=0.01)
    assert info.value.argument == "ST_BACKOFF_MAX_MS"


def test_bad_settings_are_configuration_errors_naming_the_argument(sandbox: st.Sandbox) -> None:
    with pytest.raises(st.ConfigurationError) as info:
        sandbox.client(timeout=-1)
    assert info.value.argument == "timeout"
    with pytest.raises(st.ConfigurationError, match="staging"):
        st.Client(app_key="ak1.x", environment="staging")
    with pytest.raises(st.ConfigurationError, match="ST_APP_KEY"):
        st.Client()
    with pytest.raises(st.ConfigurationError, match="tenant"):
        sandbox.client().tenant(-5, client_id="cid.x", client_secret="cs1.x")
    with pytest.raises(TypeError, match="rate_limit_margin_adaptive"):
        sandbox.client(rate_limit_margin_adaptive="no")
    # The margin adapts unless fixed; either way calls go through.
    fixed = sandbox.client(rate_limit_margin=0.05, rate_limit_margin_adaptive=False)
    assert fixed.tenant(**sandbox.credentials(1002)).get("crm/customers", params={"pageSize": 1})["data"]


def test_from_env_reads_the_st_variables(sandbox: st.Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ST_APP_KEY", sandbox.app_key)
    monkeypatch.setenv("ST_AUTH_URL", sandbox.auth_url)
    monkeypatch.setenv("ST_API_URL", sandbox.api_url)
    monkeypatch.setenv("ST_TENANT_ID", "1002")
    monkeypatch.setenv("ST_CLIENT_ID", "cid.sandbox.1002")
    monkeypatch.setenv("ST_CLIENT_SECRET", "cs1.sandbox-secret-1002")
    tenant = st.Client.from_env().tenant()
    assert tenant.id == 1002
    assert tenant.get("crm/customers", params={"pageSize": 1})["data"]
    assert st.AsyncClient.from_env().tenant().id == 1002


def test_paging_export_and_reports(sandbox: st.Sandbox, tenant: st.Tenant) -> None:
    total = tenant.get("crm/customers", params={"active": "Any", "includeTotal": True})["totalCount"]
    customers = list(tenant.paginate("crm/customers", params={"active": "Any"}, page_size=333))
    assert len(customers) == len({c["id"] for c in customers}) == total >= 1000
    feed = tenant.export("crm/customers")
    assert feed.continue_from is None
    exported = list(feed)
    assert len(exported) == total and feed.continue_from
    assert list(tenant.export("crm/customers", since=feed.continue_from)) == []
    assert len(list(tenant.export("crm/customers", since="2000-01-01"))) == total
    rows = tenant.report("operations", 175, parameters={"From": "2026-01-01"})
    assert len(rows) == 2500 and isinstance(rows[0], dict)
    with pytest.raises(st.BadRequestError):
        tenant.report("operations", 175, parameters={})


def _check_report_catalog(categories: object, reports: object, metadata: object) -> None:
    assert isinstance(categories, list) and all(type(c) is dict for c in categories)
    assert "operations" in [c["id"] for c in categories]
    assert isinstance(reports, list) and 175 in [r["id"] for r in reports]
    assert type(metadata) is dict and metadata["id"] == 175 and metadata["fields"]
    start = next(p for p in metadata["parameters"] if p["name"] == "From")
    assert start["isRequired"] is True and start["dataType"] == "Date" and type(start["isArray"]) is bool
    assert {"name", "label", "dataType"} <= set(metadata["fields"][0])


def test_report_catalog_arrives_as_dicts_with_the_apis_names(tenant: st.Tenant) -> None:
    _check_report_catalog(
        tenant.report_categories(), tenant.reports("operations"), tenant.report_metadata("operations", 175)
    )
    with pytest.raises(st.NotFoundError):
        tenant.reports("no-such-category")


async def test_async_report_catalog_is_the_same(sandbox: st.Sandbox, tenant: st.Tenant) -> None:
    async_tenant = sandbox.async_client().tenant(**sandbox.credentials(1001))
    categories = await async_tenant.report_categories()
    reports = await async_tenant.reports("operations")
    metadata = await async_tenant.report_metadata("operations", 175)
    _check_report_catalog(categories, reports, metadata)
    assert (categories, reports, metadata) == (
        tenant.report_categories(),
        tenant.reports("operations"),
        tenant.report_metadata("operations", 175),
    )
    with pytest.raises(st.NotFoundError):
        await async_tenant.reports("no-such-category")


def test_a_failed_page_ends_iteration_with_the_error(sandbox: st.Sandbox, tenant: st.Tenant) -> None:
    records = tenant.paginate("crm/customers", page_size=100)
    next(records)
    sandbox.add_fault(route="crm/*", method="GET", status=404, count=0)
    with pytest.raises(st.NotFoundError):
        for _ in records:
            pass
    assert list(records) == []


def test_repr_shows_no_secret(sandbox: st.Sandbox, client: st.Client, tenant: st.Tenant) -> None:
    texts = [repr(client), repr(tenant), repr(sandbox), repr(sandbox.async_client())]
    assert "Client(" in texts[0] and "1001" in texts[1]
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def test_retries_waits_and_token_fetches_are_logged_without_secrets(
    sandbox: st.Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="servicetitan")
    client = sandbox.client(backoff_base=0.01, backoff_max=0.05)
    tenant = client.tenant(**sandbox.credentials(1001))
    sandbox.add_fault(route="crm/*", method="GET", status=503, count=2)
    tenant.get("crm/customers")
    records = [r for r in caplog.records if r.name == "servicetitan"]
    messages = [r.getMessage() for r in records]
    assert any(r.levelno == logging.INFO and "access token" in r.getMessage() for r in records), messages
    resends = [m for m in messages if "resending" in m]
    assert len(resends) == 2 and "503" in resends[0] and "tenant=1001" in resends[0], messages
    # A wait for the client-side limiter is logged too.
    slow = sandbox.client(rate_limit_calls=1, rate_limit_period=0.3, rate_limit_margin=0.0)
    slow_tenant = slow.tenant(**sandbox.credentials(1002))
    slow_tenant.get("crm/customers")
    slow_tenant.get("crm/customers")
    messages = [r.getMessage() for r in caplog.records if r.name == "servicetitan"]
    assert any(m.startswith("waited ") and "rate limiter" in m and "tenant=1002" in m for m in messages), messages
    for message in messages:
        for secret in SECRETS:
            assert secret not in message


def test_logging_off_costs_nothing_visible(sandbox: st.Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="servicetitan")
    tenant = sandbox.client().tenant(**sandbox.credentials(1001))
    tenant.get("crm/customers")
    assert not [r for r in caplog.records if r.name == "servicetitan"]


async def test_an_async_export_cancelled_mid_fetch_loses_no_page() -> None:
    # A page that arrives just as its __anext__ is cancelled must be handed out by the next
    # __anext__, or its records are lost and the checkpoint skips them. To hit that moment every
    # time, the test holds the GIL (a long switch interval and a busy wait) while the page
    # arrives, then cancels: the bridge then finds the task cancelled when it gets the GIL.
    import asyncio
    import sys
    import time

    route = "GET crm/v2/tenant/{tenant}/export/customers"
    with st.Sandbox(records=1000, export_page_size=100) as sandbox:
        tenant = sandbox.async_client().tenant(**sandbox.credentials(1001))
        feed = tenant.export("crm/customers")
        iterator = feed.__aiter__()
        seen: list[int] = []
        interval = sys.getswitchinterval()
        sys.setswitchinterval(5.0)
        try:
            for page in range(10):
                # The buffer is empty: this __anext__ fetches the next page.
                task = asyncio.ensure_future(iterator.__anext__())
                await asyncio.sleep(0)
                deadline = time.monotonic() + 5
                while sandbox.stats()["routes"].get(route, 0) <= page and time.monotonic() < deadline:
                    pass  # busy: keeps the GIL
                busy_until = time.monotonic() + 0.05
                while time.monotonic() < busy_until:
                    pass  # the page reaches the client meanwhile, but cannot enter Python
                task.cancel()
                try:
                    seen.append((await task)["id"])
                except asyncio.CancelledError:
                    pass
                for _ in range(99 if len(seen) % 100 else 100):
                    seen.append((await iterator.__anext__())["id"])
        finally:
            sys.setswitchinterval(interval)
        rest = [r["id"] async for r in iterator]
        assert rest == []
        assert len(seen) == len(set(seen)) == 1000, f"{len(seen)} records, {len(set(seen))} distinct"
        resumed = [r["id"] async for r in tenant.export("crm/customers", since=feed.continue_from)]
        assert resumed == [], f"{len(resumed)} records after the checkpoint {feed.continue_from!r}"


def test_export_since_takes_a_date_and_page_size_zero_is_refused(sandbox: st.Sandbox, tenant: st.Tenant) -> None:
    import datetime

    # The sandbox's records were modified one a minute from 2024-01-01T00:01; from 10:00 on there
    # are all but the first 599 (as the sandbox's own tests count).
    by_text = [r["id"] for r in tenant.export("crm/customers", since="2024-01-01T10:00:00Z")]
    by_datetime = [
        r["id"]
        for r in tenant.export("crm/customers", since=datetime.datetime(2024, 1, 1, 10, tzinfo=datetime.timezone.utc))
    ]
    assert by_datetime == by_text and len(by_text) > 0
    first_of_the_day = next(iter(tenant.export("crm/customers", since=datetime.date(2024, 1, 1))))
    assert first_of_the_day["id"] == by_text[0] - 599
    with pytest.raises(TypeError, match="since"):
        tenant.export("crm/customers", since=42)  # type: ignore[arg-type]
    with pytest.raises(st.ConfigurationError, match="page_size"):
        list(tenant.paginate("crm/customers", page_size=0))
