#!/usr/bin/env bash
# Packs the npm packages of one platform as they are published: the main package (JavaScript
# only) and the platform package that carries the prebuilt addon.
#
#   scripts/pack-npm.sh OUT_DIR PLATFORM ADDON      e.g. out linux-x64-gnu servicetitan.node
#
# writes OUT_DIR/servicetitan-<version>.tgz and OUT_DIR/servicetitan-<platform>-<version>.tgz.
# The main package gets the optionalDependencies on every platform package that
# `napi pre-publish` writes into node/package.json when the release is published (the release
# workflow runs that); they stay out of the committed package.json so that `npm ci` keeps
# working for contributors while no platform package of the version exists on the registry.
# Nothing in the checkout is changed; no build runs (the packages' `prepare` script is skipped).
set -euo pipefail
[ $# -eq 3 ] || { sed -n '2,8p' "$0" >&2; exit 2; }
out=$1 platform=$2 addon=$3
root=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$root/node/npm/$platform/package.json" ] || { echo "no node/npm/$platform: not a napi target" >&2; exit 2; }
[ -f "$addon" ] || { echo "$addon: no such addon" >&2; exit 2; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# The main package: what `npm pack` takes from node/ (its `files`), plus the optionalDependencies.
(cd "$root/node" && npm pack --ignore-scripts --silent --pack-destination "$stage" >/dev/null)
tar xzf "$stage"/servicetitan-*.tgz -C "$stage"
node -e '
  const fs = require("fs")
  const [manifest, platformJs] = process.argv.slice(1)
  const pkg = JSON.parse(fs.readFileSync(manifest, "utf8"))
  const { platformOfTriple } = require(platformJs)
  pkg.optionalDependencies = Object.fromEntries(
    pkg.napi.targets.map((t) => [`${pkg.name}-${platformOfTriple(t)}`, pkg.version]))
  fs.writeFileSync(manifest, JSON.stringify(pkg, null, 2) + "\n")
' "$stage/package/package.json" "$root/node/platform.js"
cp "$root/LICENSE-MIT" "$root/LICENSE-APACHE" "$stage/package/"  # npm packs no symlinks, so no copy lives in node/
(cd "$stage/package" && npm pack --ignore-scripts --silent --pack-destination "$out" >/dev/null)

# The platform package: its package.json and README, the licences, and the addon under the name
# it declares (what `napi artifacts` puts in node/npm/<platform>/ at release).
cp -r "$root/node/npm/$platform" "$stage/$platform"
cp "$addon" "$stage/$platform/servicetitan.$platform.node"
cp "$root/LICENSE-MIT" "$root/LICENSE-APACHE" "$stage/$platform/"
(cd "$stage/$platform" && npm pack --ignore-scripts --silent --pack-destination "$out" >/dev/null)
ls -l "$out"
