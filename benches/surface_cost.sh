#!/usr/bin/env bash
# What the typed surface of the 563 operations costs: the engine crate's clean build with default
# features and with every module (`--features all-modules`), and the time and memory of
# `import servicetitan` / `require('servicetitan')`, before and after a first module is touched.
#
# Usage: benches/surface_cost.sh [build|import]...   (both by default)
# The build part rebuilds only the engine crate (its dependencies stay built), `runs` times each.
# The import part needs the Python package installed in .venv (scripts/test-python.sh) and the
# Node addon built (scripts/test-node.sh). Timings depend on the machine's load: run it when
# nothing else builds, and read the spread of the runs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

runs="${RUNS:-3}"
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(build import)

seconds() { python3 -c 'import sys, time; print(f"{time.time() - float(sys.argv[1]):.1f}")' "$1"; }

build() {
  local label="$1"; shift
  cargo build --quiet -p servicetitan "$@"  # dependencies built, outside the timing
  for run in $(seq "$runs"); do
    # The target triple too: without it, cargo clean -p finds nothing under target/<triple>/.
    cargo clean --quiet -p servicetitan --target "$CARGO_BUILD_TARGET"
    local start
    start=$(python3 -c 'import time; print(time.time())')
    cargo build --quiet -p servicetitan "$@"
    echo "clean build of the engine crate, $label, run $run: $(seconds "$start") s"
  done
}

import_python() {
  local python=.venv/bin/python
  [ -x "$python" ] || python=python3
  for run in $(seq "$runs"); do
    "$python" - <<'EOF'
import resource, subprocess, sys

def measure(code):
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return out.strip()

base = "import resource, time; t = time.perf_counter(); import servicetitan as st; d = time.perf_counter() - t; "
touch = ("c = st.Client(app_key='ak1.x', api_url='http://127.0.0.1:9', auth_url='http://127.0.0.1:9'); "
         "tenant = c.tenant(1, client_id='cid.x', client_secret='cs1.x'); t2 = time.perf_counter(); "
         "tenant.crm.customers.get_list; d2 = time.perf_counter() - t2; ")
report = "print(f'{d * 1000:.0f} ms, {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB peak RSS')"
bare = "import resource; print(f'{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB peak RSS')"
print("python (bare interpreter):", measure(bare))
print("python import servicetitan:", measure(base + report))
print("python import + tenant.crm.customers:", measure(base + touch +
      "print(f'{d * 1000:.0f} ms import, {d2 * 1000:.1f} ms for the crm module, "
      "{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB peak RSS')"))
EOF
  done
}

import_node() {
  for run in $(seq "$runs"); do
    (cd node && node -e "
      const rss = () => (process.memoryUsage().rss / 1048576).toFixed(1)
      const base = rss()
      const t = process.hrtime.bigint()
      const st = require('servicetitan')
      const d = Number(process.hrtime.bigint() - t) / 1e6
      const after = rss()
      const tenant = new st.Client({ appKey: 'ak1.x', apiUrl: 'http://127.0.0.1:9', authUrl: 'http://127.0.0.1:9' })
        .tenant(1, { clientId: 'cid.x', clientSecret: 'cs1.x' })
      const t2 = process.hrtime.bigint()
      void tenant.crm.customers.getList
      const d2 = Number(process.hrtime.bigint() - t2) / 1e6
      console.log('node require(servicetitan): ' + d.toFixed(0) + ' ms, RSS ' + base + ' -> ' + after +
        ' MiB; tenant.crm: ' + d2.toFixed(1) + ' ms, RSS ' + rss() + ' MiB')
    ")
  done
}

for part in "${parts[@]}"; do
  case "$part" in
    build)
      build "default features"
      build "all modules" --features all-modules
      ;;
    import)
      import_python
      import_node
      ;;
    *) echo "unknown part: $part (build or import)" >&2; exit 2 ;;
  esac
done
