"""10,000 small GETs against the sandbox (limits off): calls per second, side by side.

    python benches/python/bench_gets.py [--calls 10000]

Each line parses the JSON answer into Python objects, as a user's code would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Callable, List, Tuple

import httpx

import servicetitan as st
from alternatives import HttpxAsyncTenant, HttpxTenant, RequestsTenant, TokenCache

PATH, PARAMS = "crm/customers", {"pageSize": 1}


def parsed(tenant: Any) -> Any:
    """A call as a user writes it: the answer parsed into Python objects."""
    return tenant.get(PATH, PARAMS).json()


def timed_threads(call: Callable[[], Any], calls: int, threads: int) -> float:
    call()  # warm: token and connection
    started = time.perf_counter()
    if threads == 1:
        for _ in range(calls):
            call()
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(lambda _: call(), range(calls)))
    return calls / (time.perf_counter() - started)


async def timed_async(call: Callable[[], Any], calls: int, in_flight: int) -> float:
    await call()
    started = time.perf_counter()
    queue = iter(range(calls))

    async def worker() -> None:
        for _ in queue:
            await call()

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return calls / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=10_000)
    args = parser.parse_args()
    n = args.calls
    results: List[Tuple[str, str, float]] = []

    with st.Sandbox(rate_limit={"enabled": False}, report_limit={"enabled": False}) as sb:
        creds = sb.credentials(1001)
        base, key = sb.base_url, sb.app_key
        token_url = base + "/connect/token"

        def tokens() -> TokenCache:
            return TokenCache(token_url, creds["client_id"], creds["client_secret"])

        # servicetitan, blocking
        for threads in (1, 8):
            tenant = sb.client(rate_limit_calls=0).tenant(**creds)
            rate = timed_threads(partial(tenant.get, PATH, params=PARAMS), n, threads)
            results.append((f"sync, {threads} thread{'s' * (threads > 1)}", "servicetitan", rate))

            with httpx.Client(
                limits=httpx.Limits(max_connections=threads * 2, max_keepalive_connections=threads * 2)
            ) as hc:
                ht = HttpxTenant(hc, base, key, 1001, tokens())
                rate = timed_threads(partial(parsed, ht), n, threads)
            results.append((f"sync, {threads} thread{'s' * (threads > 1)}", "httpx", rate))

            rt = RequestsTenant(base, key, 1001, tokens())
            rate = timed_threads(partial(parsed, rt), n, threads)
            results.append((f"sync, {threads} thread{'s' * (threads > 1)}", "requests", rate))

        # asyncio, 100 in flight
        async def run_async() -> None:
            at = sb.async_client(rate_limit_calls=0).tenant(**creds)
            rate = await timed_async(lambda: at.get(PATH, params=PARAMS), n, 100)
            results.append(("async, 100 in flight", "servicetitan", rate))
            async with httpx.AsyncClient(limits=httpx.Limits(max_connections=100, max_keepalive_connections=100)) as hc:
                ht = HttpxAsyncTenant(hc, base, key, 1001, tokens())

                async def call() -> Any:
                    return (await ht.get(PATH, PARAMS)).json()

                rate = await timed_async(call, n, 100)
            results.append(("async, 100 in flight", "httpx.AsyncClient", rate))

        asyncio.run(run_async())

    print(f"\n{n:,} small GETs (crm/customers?pageSize=1), sandbox limits off; calls per second")
    print(f"{'mode':<24}{'client':<20}{'calls/s':>10}")
    for mode, client, rate in results:
        print(f"{mode:<24}{client:<20}{rate:>10,.0f}")
    print(json.dumps([{"mode": m, "client": c, "calls_per_s": round(r)} for m, c, r in results]))


if __name__ == "__main__":
    main()
