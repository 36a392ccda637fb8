"""An export of 1,000,000 records into Python dicts: records per second and peak memory.

    python benches/python/bench_export.py [--records 1000000]

The sandbox runs in this process; each client runs in a child process of its own, so that its
peak RSS (ru_maxrss) is its own. Every client streams: it keeps no record after looking at it.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List

import servicetitan as st

VARIANTS = ["servicetitan", "httpx+json", "httpx+orjson"]


def child(variant: str, base: str, app_key: str, creds: Dict[str, Any]) -> None:
    started, cpu_started = time.perf_counter(), time.process_time()
    count, checksum = 0, 0
    if variant == "servicetitan":
        tenant = st.Client(app_key=app_key, auth_url=base, api_url=base, rate_limit_calls=0).tenant(**creds)
        for record in tenant.export("crm/customers"):
            count += 1
            checksum += record["id"]
    else:
        import httpx

        loads: Callable[[bytes], Any] = json.loads
        if variant == "httpx+orjson":
            import orjson

            loads = orjson.loads
        with httpx.Client(timeout=120) as client:
            form = {"grant_type": "client_credentials", **{k: creds[k] for k in ("client_id", "client_secret")}}
            token = client.post(base + "/connect/token", data=form).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}", "ST-App-Key": app_key}
            url = f"{base}/crm/v2/tenant/{creds['tenant_id']}/export/customers"
            params: Dict[str, str] = {}
            while True:
                page = loads(client.get(url, params=params, headers=headers).content)
                for record in page["data"]:
                    count += 1
                    checksum += record["id"]
                if not page["hasMore"]:
                    break
                params = {"from": page["continueFrom"]}
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "variant": variant,
                "records": count,
                "checksum": checksum,
                "seconds": elapsed,
                "cpu_seconds": cpu,
                "peak_mb": peak_mb,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--child", nargs=4, metavar=("VARIANT", "BASE", "APP_KEY", "CREDS"))
    args = parser.parse_args()
    if args.child:
        variant, base, app_key, creds = args.child
        child(variant, base, app_key, json.loads(creds))
        return

    rows: List[Dict[str, Any]] = []
    with st.Sandbox(records=args.records, rate_limit={"enabled": False}) as sb:
        creds = json.dumps(sb.credentials(1001))
        baseline = subprocess.run(
            [
                sys.executable,
                "-c",
                "import resource, servicetitan, httpx, orjson, json; "
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        idle_mb = float(baseline.stdout)
        for variant in VARIANTS:
            out = subprocess.run(
                [sys.executable, __file__, "--child", variant, sb.base_url, sb.app_key, creds],
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    assert len({(r["records"], r["checksum"]) for r in rows}) == 1, rows
    print(f"\nexport of {rows[0]['records']:,} records into dicts (sandbox export pages of 5,000)")
    print(f"(an interpreter with servicetitan, httpx and orjson imported peaks at {idle_mb:.0f} MB)")
    print("records/s is wall clock, bounded by the sandbox generating the records on the same 2 cores;")
    print("client CPU is the client process's own CPU time per record (receive, decode, iterate).")
    print(f"{'client':<16}{'records/s':>12}{'seconds':>10}{'client CPU':>14}{'peak MB':>10}")
    for r in rows:
        cpu_us = r["cpu_seconds"] / r["records"] * 1e6
        print(
            f"{r['variant']:<16}{r['records'] / r['seconds']:>12,.0f}{r['seconds']:>10.2f}"
            f"{cpu_us:>10.2f} µs/r{r['peak_mb']:>10.0f}"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
