#!/usr/bin/env bash
# The Node package's checks: installs its npm dev dependencies (npm ci, from the committed
# lockfile), builds the addon (debug: the tests do not need an optimised build), type-checks
# the TypeScript example and runs `node --test`. Works from a fresh clone; run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cd node

# `npm ci` wipes node_modules; skip it when the installed tree came from this very lockfile.
stamp=node_modules/.installed-from-lockfile
if ! cmp -s package-lock.json "$stamp" 2>/dev/null; then
  # --ignore-scripts: `prepare` would build the addon in release; the tests build it in debug below.
  npm ci --no-audit --no-fund --loglevel=error --ignore-scripts
  cp package-lock.json "$stamp"
fi

npx napi build --platform --manifest-path ../bindings/node/Cargo.toml --output-dir . \
  --js native.js --dts native.d.ts
npx tsc --noEmit -p tsconfig.json
node --test test/*.test.js
