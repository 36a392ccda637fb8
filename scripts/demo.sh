#!/usr/bin/env bash
# The demo job: the same real sync against the bundled sandbox, from Rust, Python and Node, at the
# real service's limits. Sets up what it needs on a fresh machine (a virtualenv with the Python
# package, the Node addon). Run from anywhere; RECORDS=N changes the records per resource.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
records="${RECORDS:-20000}"

step() { printf '\n==> %s\n' "$*"; }

step "Rust: building the engine and the demo (release)"
cargo build --release -q -p servicetitan --example sync
step "Rust: sync"
"target/$CARGO_BUILD_TARGET/release/examples/sync" "$records"

step "CLI: building servicetitan and the sandbox (release)"
cargo build --release -q -p servicetitan-cli -p servicetitan-sandbox
bin="target/$CARGO_BUILD_TARGET/release"
cli_dir="$(mktemp -d)"
"$bin/servicetitan-sandbox" --port 0 --records "$records" --export-page-size 1000 > "$cli_dir/sandbox.out" 2>&1 &
sandbox_pid=$!
trap 'kill "$sandbox_pid" 2>/dev/null || true; rm -rf "$cli_dir"' EXIT
for _ in $(seq 100); do [ -s "$cli_dir/sandbox.out" ] && break; sleep 0.1; done
base="$(head -1 "$cli_dir/sandbox.out")"
cli() {
    ST_APP_KEY=ak1.sandbox-app-key ST_AUTH_URL="$base" ST_API_URL="$base" ST_TENANT_ID=1001 \
        ST_CLIENT_ID=cid.sandbox.1001 ST_CLIENT_SECRET=cs1.sandbox-secret-1001 ST_PROGRESS_INTERVAL_MS=500 \
        "$bin/servicetitan" "$@"
}
step "CLI: servicetitan export crm_customers jpm_jobs --out DIR --state FILE (a full copy, at the real limits)"
cli export crm_customers jpm_jobs --out "$cli_dir/data" --state "$cli_dir/state.json"
ls -l "$cli_dir/data"
step "CLI: the same again: only what changed since the state's checkpoint (nothing, so no new file)"
cli export crm_customers jpm_jobs --out "$cli_dir/data" --state "$cli_dir/state.json"
kill "$sandbox_pid" 2>/dev/null || true

step "Python: installing the package into .venv (release)"
source scripts/python-venv.sh
ensure_venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check .
step "Python: sync"
.venv/bin/python python/examples/sync.py "$records"

step "Node: building the addon (release)"
(cd node && npm ci --no-audit --no-fund --loglevel=error --ignore-scripts && npm run -s build >/dev/null)
step "Node: sync"
node node/examples/sync.js "$records"
