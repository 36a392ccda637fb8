#!/usr/bin/env bash
# Node benchmarks: builds the addon and the sandbox binary in release, then runs bench.js (see
# its header). Run from anywhere; BENCH_ROUNDS, BENCH_CALLS, BENCH_IN_FLIGHT and BENCH_RECORDS
# override the sizes.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
cargo build --release --quiet -p servicetitan-sandbox --bin servicetitan-sandbox
cd node
stamp=node_modules/.installed-from-lockfile
if ! cmp -s package-lock.json "$stamp" 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi
npx napi build --platform --release --manifest-path ../bindings/node/Cargo.toml --output-dir . \
  --js native.js --dts native.d.ts
cd ..
node benches/node/bench.js
