"""One worker process of the multi-process Redis test (crates/servicetitan/tests/redis_processes.rs).

Reads its settings from ST_* variables (the client reads ST_REDIS_URL itself too), waits for the
shared start time, calls the API from WORKER_CONCURRENCY threads until WORKER_DURATION_MS have
passed, and prints one JSON line: calls done, errors by code, and the client's stats.
"""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict

import servicetitan as st


def main() -> None:
    start = int(os.environ["WORKER_START_AT_MS"]) / 1000
    end = start + int(os.environ["WORKER_DURATION_MS"]) / 1000
    concurrency = int(os.environ.get("WORKER_CONCURRENCY", "8"))
    client = st.Client(redis_url=os.environ["ST_REDIS_URL"])
    tenant = client.tenant()
    time.sleep(max(0.0, start - time.time()))
    lock = threading.Lock()
    counts: Dict[str, int] = {"ok": 0}
    errors: Dict[str, int] = {}

    def run() -> None:
        while (left := end - time.time()) > 0:
            try:
                # The deadline ends calls still waiting for a slot when the run is over.
                tenant.get("crm/customers", params={"pageSize": 1}, timeout=left)
                if time.time() <= end:
                    with lock:
                        counts["ok"] += 1
            except st.APITimeoutError:
                pass
            except st.ServiceTitanError as e:
                with lock:
                    errors[e.code] = errors.get(e.code, 0) + 1

    with ThreadPoolExecutor(concurrency) as pool:
        for _ in range(concurrency):
            pool.submit(run)
    report = {"language": "python", "ok": counts["ok"], "errors": errors, "stats": client.stats()}
    print(json.dumps(report), flush=True)


main()
