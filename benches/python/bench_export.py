"""An export of 1,000,000 records into Python dicts: wall records/s, the client's own CPU time per
record, and peak memory, for servicetitan against httpx + json and httpx + orjson.

    python benches/python/bench_export.py [--records 1000000] [--rounds 3] [--sandbox PATH]

The sandbox is the `servicetitan-sandbox` binary in a process of its own (a release build:
benches/python/run.sh builds it), so that the CPU a client spends is its own. Each client runs
in a fresh child process; its CPU time is the process's (every thread: the engine's runtime
threads included), from just before the export starts to its last record. Every client streams:
it keeps no record after looking at it. Each side runs `--rounds` times; the round with the
least CPU is shown, with its wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

VARIANTS = ["servicetitan", "httpx+json", "httpx+orjson"]
ROOT = Path(__file__).resolve().parents[2]


def child(variant: str, base: str, app_key: str, creds: Dict[str, Any]) -> None:
    # Imports first, so that the CPU measured is the export's, not the interpreter's start.
    import httpx
    import orjson

    import servicetitan as st

    count, checksum = 0, 0
    started, cpu_started = time.perf_counter(), time.process_time()
    if variant == "servicetitan":
        tenant = st.Client(app_key=app_key, auth_url=base, api_url=base, rate_limit_calls=0).tenant(**creds)
        for record in tenant.export("crm/customers"):
            count += 1
            checksum += record["id"]
    else:
        loads: Callable[[bytes], Any] = orjson.loads if variant == "httpx+orjson" else json.loads
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


def sandbox_binary(given: str | None) -> Path:
    if given:
        return Path(given)
    triple = os.environ.get("CARGO_BUILD_TARGET", "")
    for candidate in [
        ROOT / "target" / triple / "release" / "servicetitan-sandbox",
        ROOT / "target" / "release" / "servicetitan-sandbox",
    ]:
        if candidate.is_file():
            return candidate
    sys.exit("no release build of servicetitan-sandbox: cargo build --release -p servicetitan-sandbox (or --sandbox)")


class SandboxProcess:
    """`servicetitan-sandbox` with limits off: its base URL, app key and tenant 1001's credentials."""

    def __init__(self, binary: Path, records: int) -> None:
        self.process = subprocess.Popen(
            [str(binary), "--port", "0", "--records", str(records), "--no-rate-limit"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        lines = [self.process.stdout.readline().strip() for _ in range(4)]
        self.base_url = lines[0]
        self.app_key = lines[2].split(": ", 1)[1].split(",")[0]
        fields = dict(part.split("=", 1) for part in lines[3].split(": ", 1)[1].split())
        tenant = int(lines[3].split()[1].rstrip(":"))
        self.creds = {"tenant_id": tenant, "client_id": fields["client_id"], "client_secret": fields["client_secret"]}

    def cpu_seconds(self) -> float:
        """The sandbox's CPU time so far (user + system), from /proc."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sandbox", help="path of the servicetitan-sandbox binary (default: the release build)")
    parser.add_argument("--child", nargs=4, metavar=("VARIANT", "BASE", "APP_KEY", "CREDS"))
    args = parser.parse_args()
    if args.child:
        variant, base, app_key, creds = args.child
        child(variant, base, app_key, json.loads(creds))
        return

    rows: List[Dict[str, Any]] = []
    sandbox = SandboxProcess(sandbox_binary(args.sandbox), args.records)
    try:
        for variant in VARIANTS:
            best = None
            for _ in range(args.rounds):
                sandbox_cpu = sandbox.cpu_seconds()
                command = [sys.executable, __file__, "--child", variant, sandbox.base_url, sandbox.app_key]
                out = subprocess.run(
                    [*command, json.dumps(sandbox.creds)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                row = json.loads(out.stdout.strip().splitlines()[-1])
                row["sandbox_cpu_seconds"] = sandbox.cpu_seconds() - sandbox_cpu
                if best is None or row["cpu_seconds"] < best["cpu_seconds"]:
                    best = row
            assert best is not None
            rows.append(best)
    finally:
        sandbox.close()
    assert len({(r["records"], r["checksum"]) for r in rows}) == 1, rows
    per_record = {r["variant"]: r["cpu_seconds"] / r["records"] * 1e6 for r in rows}
    best_alternative = min(v for k, v in per_record.items() if k != "servicetitan")
    print(f"\nPython {sys.version.split()[0]}: export of {rows[0]['records']:,} records into dicts")
    print(f"(sandbox: the servicetitan-sandbox binary in its own process; best of {args.rounds} rounds by CPU)")
    print("client CPU: the client process's own CPU time (all threads) per record: receive, decode, iterate.")
    header = f"{'client':<16}{'records/s':>12}{'seconds':>9}{'client CPU':>14}{'vs best alt.':>14}"
    print(header + f"{'sandbox CPU':>15}{'peak MB':>9}")
    for r in rows:
        us = per_record[r["variant"]]
        sandbox_us = r["sandbox_cpu_seconds"] / r["records"] * 1e6
        print(
            f"{r['variant']:<16}{r['records'] / r['seconds']:>12,.0f}{r['seconds']:>9.2f}"
            f"{us:>9.3f} µs/r{best_alternative / us:>13.2f}x{sandbox_us:>10.3f} µs/r{r['peak_mb']:>9.0f}"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
