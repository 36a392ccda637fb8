"""One record stream read by several coroutines or threads at once: every record goes to exactly
one reader, and ``continue_from`` never passes a record not handed out."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator, List, Set, Union

import pytest

import servicetitan as st

RECORDS = 20_000
PAGE = 500


@pytest.fixture(scope="module")
def big() -> Iterator[st.Sandbox]:
    with st.Sandbox(records=RECORDS, export_page_size=PAGE, rate_limit={"enabled": False}) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def all_ids(big: st.Sandbox) -> Set[int]:
    tenant = big.client().tenant(**big.credentials())
    ids = {r["id"] for r in tenant.export("crm/customers")}
    assert len(ids) == RECORDS
    return ids


def assert_exactly_once(per_reader: List[List[int]], expected: Set[int]) -> None:
    counts = [len(ids) for ids in per_reader]
    received = [i for ids in per_reader for i in ids]
    assert len(received) == len(expected), f"{len(per_reader)} readers received {counts}"
    assert len(set(received)) == len(received), f"a record arrived twice: {counts}"
    assert set(received) == expected
    assert all(counts), f"a reader got nothing: {counts}"


async def read_async(records: st.AsyncRecords) -> List[int]:
    ids: List[int] = []
    async for record in records:
        ids.append(record["id"])
        # Let the other readers run between records.
        await asyncio.sleep(0.001 if len(ids) % 97 == 0 else 0)
    return ids


@pytest.mark.parametrize("readers", [2, 8])
async def test_an_async_export_shared_by_coroutines_hands_out_every_record_once(
    big: st.Sandbox, all_ids: Set[int], readers: int
) -> None:
    tenant = big.async_client(rate_limit_calls=0).tenant(**big.credentials())
    feed = tenant.export("crm/customers")
    per_reader = await asyncio.gather(*(read_async(feed) for _ in range(readers)))
    assert_exactly_once(per_reader, all_ids)
    assert feed.continue_from is not None
    resumed = [r async for r in tenant.export("crm/customers", since=feed.continue_from)]
    assert resumed == [], f"{len(resumed)} records after the final checkpoint"


@pytest.mark.parametrize("readers", [2, 8])
async def test_an_async_list_shared_by_coroutines_hands_out_every_record_once(
    big: st.Sandbox, all_ids: Set[int], readers: int
) -> None:
    tenant = big.async_client(rate_limit_calls=0).tenant(**big.credentials())
    records = tenant.paginate("crm/customers", params={"active": "Any"}, page_size=250)
    per_reader = await asyncio.gather(*(read_async(records) for _ in range(readers)))
    assert_exactly_once(per_reader, all_ids)
    assert records.continue_from is None


@pytest.mark.parametrize("readers", [2, 8])
def test_a_stream_shared_by_threads_hands_out_every_record_once(
    big: st.Sandbox, all_ids: Set[int], readers: int
) -> None:
    tenant = big.client(rate_limit_calls=0).tenant(**big.credentials())
    feed = tenant.export("crm/customers")
    start = threading.Barrier(readers)

    def read(_: int) -> List[int]:
        start.wait()
        ids: List[int] = []
        for record in feed:
            ids.append(record["id"])
            if len(ids) % 50 == 0:
                time.sleep(0.0005)  # let the other threads take the GIL
        return ids

    with ThreadPoolExecutor(max_workers=readers) as pool:
        per_reader = list(pool.map(read, range(readers)))
    assert_exactly_once(per_reader, all_ids)
    assert list(feed) == []
    resumed = list(tenant.export("crm/customers", since=feed.continue_from))
    assert resumed == [], f"{len(resumed)} records after the final checkpoint"


@pytest.mark.parametrize("stop", [7_777, 8_000, 8_001])
async def test_the_checkpoint_never_passes_a_record_not_handed_out(
    big: st.Sandbox, all_ids: Set[int], stop: int
) -> None:
    # Eight coroutines stop together after `stop` records, as a crashed sync would.
    tenant = big.async_client(rate_limit_calls=0).tenant(**big.credentials())
    feed = tenant.export("crm/customers")
    handed: List[int] = []

    async def read() -> None:
        while len(handed) < stop:
            handed.append((await feed.__anext__())["id"])
            await asyncio.sleep(0)

    await asyncio.gather(*(read() for _ in range(8)))
    # A coroutine that was waiting for a page when the count was reached took one more.
    assert stop <= len(handed) < stop + 8
    checkpoint = feed.continue_from
    assert checkpoint is not None
    resumed = {r["id"] async for r in tenant.export("crm/customers", since=checkpoint)}
    lost = all_ids - set(handed) - resumed
    assert not lost, f"{len(lost)} records neither handed out nor after the checkpoint"
    assert len(set(handed) & resumed) == len(handed) % PAGE, "only the page being handed out repeats"


async def test_a_failed_page_goes_to_one_coroutine_and_ends_the_stream_for_all(sandbox: st.Sandbox) -> None:
    tenant = sandbox.async_client().tenant(**sandbox.credentials(1004))  # crm scope only
    jobs = tenant.paginate("jpm/jobs")

    async def read() -> Union[List[Any], BaseException]:
        try:
            return [r async for r in jobs]
        except st.ServiceTitanError as e:
            return e

    outcomes = await asyncio.gather(*(read() for _ in range(4)))
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], st.PermissionDeniedError), outcomes
    assert [o for o in outcomes if not isinstance(o, BaseException)] == [[], [], []]
