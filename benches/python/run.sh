#!/usr/bin/env bash
# The Python benchmarks: installs a release build of the package and the alternatives (httpx,
# requests, orjson) into target/python-bench-venv, builds the sandbox binary in release (the
# export benchmark runs it in a process of its own), then runs both benchmarks. From the
# repository root:
#
#   benches/python/run.sh                   # 10,000 GETs and a 1,000,000-record export
#   CALLS=2000 RECORDS=100000 benches/python/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -f scripts/env.sh ]; then
    # shellcheck source=/dev/null
    source scripts/env.sh
fi
VENV="${VENV:-target/python-bench-venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "httpx>=0.27" "requests>=2.31" "orjson>=3.9"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps .
cargo build --release --quiet -p servicetitan-sandbox --bin servicetitan-sandbox
cd benches/python
"../../$VENV/bin/python" bench_gets.py --calls "${CALLS:-10000}"
"../../$VENV/bin/python" bench_export.py --records "${RECORDS:-1000000}"
