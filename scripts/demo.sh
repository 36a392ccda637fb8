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
