"""The demo job in Python: the same sync as the Rust demo, against the bundled sandbox.

A full export of customers and invoices, a paged list of jobs, an incremental export that picks up
a change from a saved checkpoint, and a report, at the real service's limits; then what it cost.

    python python/examples/sync.py [RECORDS]
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor

import servicetitan as st


def main() -> None:
    records = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with st.Sandbox(records=records) as sandbox:
        print(f"sandbox at {sandbox.base_url} ({records} records per resource, 60 calls/s per tenant)")
        client = st.Client(app_key=sandbox.app_key, auth_url=sandbox.auth_url, api_url=sandbox.api_url)
        tenant = client.tenant(1001, client_id="cid.sandbox.1001", client_secret="cs1.sandbox-secret-1001")
        started = time.monotonic()

        step = time.monotonic()
        feed = tenant.export("crm/customers")
        count = sum(1 for _ in feed)
        checkpoint = feed.continue_from
        print(f"customers  full export     {count:>7} records  {time.monotonic() - step:>6.2f} s")

        step = time.monotonic()
        invoices = list(tenant.export("accounting/invoices"))
        print(f"invoices   full export     {len(invoices):>7} records  {time.monotonic() - step:>6.2f} s")

        step = time.monotonic()
        jobs = list(tenant.paginate("jpm/jobs", params={"active": "Any"}, page_size=500))
        print(f"jobs       paged list      {len(jobs):>7} records  {time.monotonic() - step:>6.2f} s")

        # 300 single-record calls at once: five seconds' worth of the tenant's budget. The limiter
        # spreads them out so that the server never has to answer 429.
        step = time.monotonic()
        with ThreadPoolExecutor(max_workers=50) as pool:
            details = list(pool.map(lambda job: tenant.get(f"jpm/jobs/{job['id']}"), jobs[:300]))
        print(f"jobs       300 GETs by id  {len(details):>7} records  {time.monotonic() - step:>6.2f} s")

        # Something changes at the tenant; the next incremental sync picks up just that.
        address = {"street": "1 Demo Way", "city": "Austin", "state": "TX", "zip": "78701", "country": "USA"}
        created = tenant.post(
            "crm/customers",
            json={"name": "New Customer", "address": address, "locations": [{"name": "Home", "address": address}]},
        )
        step = time.monotonic()
        changes = list(tenant.export("crm/customers", since=checkpoint))
        print(
            f"customers  incremental     {len(changes):>7} records  {time.monotonic() - step:>6.2f} s"
            f"  (created id {created['id']})"
        )

        step = time.monotonic()
        rows = tenant.report("operations", 175, parameters={"From": "2026-01-01"})
        print(f"report 175 all pages       {len(rows):>7} rows     {time.monotonic() - step:>6.2f} s")

        stats = client.stats()
        server = sandbox.stats()["tenants"]["1001"]
        print(
            f"\ntotal {time.monotonic() - started:.2f} s: {stats['requests']} API calls, {stats['retries']} retries, "
            f"{stats['rate_limited']} answered 429 (server rejected {server['rejected']}), "
            f"{stats['token_fetches']} token request(s), "
            f"{stats['throttle_wait_s']:.2f} s in all (summed over calls) waiting for the rate limiter; "
            f"the server saw at most {server['max_in_window']} calls in one second"
        )


if __name__ == "__main__":
    main()
