"""Asynchronous reports: a query that takes time is polled to its end; a cancelled call leaves
no query running on the sandbox. And parameters given by the names of a dynamic value set."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Dict

import pytest

import servicetitan as st

PARAMS = {"From": "2026-01-01"}


def queries(sandbox: st.Sandbox) -> Dict[str, Any]:
    result: Dict[str, Any] = sandbox.stats()["report_queries"]
    return result


def test_a_slow_report_is_polled_to_its_end() -> None:
    with st.Sandbox(rate_limit={"enabled": False}, report_query_ms=300) as sandbox:
        tenant = sandbox.client().tenant(**sandbox.credentials(1001))
        rows = tenant.report("operations", 175, parameters=PARAMS)
        assert len(rows) == 2500 and "JobId" in rows[0]
        q = queries(sandbox)
        assert q["started"] == 1 and q["pending_polls"] >= 1 and q["deleted"] == 0, q
        assert sandbox.stats()["reports"]["1001/175"]["admitted"] == 1


async def test_a_cancelled_report_is_deleted_on_the_sandbox() -> None:
    with st.Sandbox(rate_limit={"enabled": False}, report_query_ms=60_000) as sandbox:
        tenant = sandbox.async_client().tenant(**sandbox.credentials(1001))
        task = asyncio.ensure_future(tenant.report("operations", 175, parameters=PARAMS))
        deadline = time.monotonic() + 30
        while queries(sandbox)["pending_polls"] < 1:
            assert time.monotonic() < deadline, "the query was never polled"
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        while queries(sandbox)["deleted"] < 1:
            assert time.monotonic() < deadline, f"the query was not deleted: {queries(sandbox)}"
            await asyncio.sleep(0.02)
        assert queries(sandbox)["started"] == 1


def test_report_parameters_take_names_from_a_dynamic_value_set() -> None:
    with st.Sandbox(rate_limit={"enabled": False}, report_limit={"enabled": False}) as sandbox:
        tenant = sandbox.client().tenant(**sandbox.credentials(1001))
        params = {"From": "2026-01-01", "BusinessUnitIds": ["Plumbing", "hvac"]}
        assert len(tenant.report("operations", 175, parameters=params)) == 2500
        assert len(tenant.report("operations", 175, parameters=params)) == 2500
        routes = sandbox.stats()["routes"]
        assert routes["GET reporting/v2/tenant/{tenant}/dynamic-value-sets/{dynamicSetId}"] == 1
        with pytest.raises(st.BadRequestError, match="neither a value nor a name"):
            tenant.report("operations", 175, parameters={"From": "2026-01-01", "BusinessUnitIds": ["Roofing"]})
