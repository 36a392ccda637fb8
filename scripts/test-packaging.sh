#!/usr/bin/env bash
# The release artifacts, built and installed as a user would get them: one version everywhere,
# the Python wheel and sdist, the npm packages, the crates. Run from anywhere; needs what
# scripts/test.sh needs (cargo, python3, node); the rest comes from PyPI and npm.
#
#   scripts/test-packaging.sh            # everything
#   scripts/test-packaging.sh versions   # only the named parts: versions python node rust
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ROOT=$PWD
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
parts=("${@:-versions python node rust}")
parts=" ${parts[*]} "
want() { [[ "$parts" == *" $1 "* ]]; }

step() { printf '\n== %s\n' "$*"; }
timed() { local start=$SECONDS; "$@"; printf '   (%ss)\n' $((SECONDS - start)); }

source scripts/python-venv.sh
ensure_venv "$VENV" "$PYTHON"
PY="$(cd "$VENV" && pwd)/bin/python"
"$PY" -m pip install -q --disable-pip-version-check "pytest>=8" "ruff>=0.5" "mypy>=1.10" pyelftools  # pyelftools: the dist tests read ELF headers (and mypy checks them)
pytest_packaging() { "$PY" -m pytest -q -c tests/packaging/pytest.ini "$@"; }

if want versions; then
  step "one version: Cargo.toml, pyproject, npm packages, CHANGELOG"
  "$PY" tools/version.py
  pytest_packaging tests/packaging/test_version.py
  "$VENV/bin/ruff" check tests/packaging tools/version.py
  "$VENV/bin/ruff" format --check tests/packaging tools/version.py
  "$VENV/bin/mypy" --strict tests/packaging tools/version.py
fi

# Each artifact is built once, into target/packaging, and every check reuses it. The release
# builds get their own target trees: zig (for an old glibc) changes the environment of every
# compile, so sharing one tree with another build would rebuild both each time.
DIST="$ROOT/target/packaging"
export PATH="$(dirname "$PY"):$PATH"  # maturin, zig (ziglang), cargo-zigbuild, auditwheel

if want python; then
  step "Python: the release wheel (abi3, manylinux_2_17 through zig, stripped), the sdist, a wheel of the sdist"
  "$PY" -m pip install -q --disable-pip-version-check "maturin>=1.16,<2" ziglang auditwheel
  rm -rf "$DIST/python" && mkdir -p "$DIST/python"
  timed env CARGO_TARGET_DIR="$ROOT/target/release-python" VIRTUAL_ENV="$(dirname "$(dirname "$PY")")" \
    maturin build --release --strip --zig --compatibility manylinux2014 --out "$DIST/python/wheel" --quiet
  maturin sdist --out "$DIST/python/sdist" 2>&1 | grep -v '^warning\|^ *|\|^ *= note' || true
  # As pip builds it for a user on a platform with no wheel, in a temporary copy of the sdist.
  # The dev profile and the shared tree (that scripts/test-python.sh builds) keep this short: it
  # proves that the sdist holds everything a build needs; the release wheel above proves the rest.
  timed env CARGO_TARGET_DIR="$ROOT/target" "$PY" -m pip wheel -q --disable-pip-version-check --no-deps \
    --config-settings=build-args='--profile dev' -w "$DIST/python/sdist-wheel" "$DIST"/python/sdist/*.tar.gz
  ls -l "$DIST"/python/*/
  PACKAGING_DIST="$DIST/python" pytest_packaging tests/packaging/test_python_dist.py
fi

if want node; then
  step "Node: the release addon (glibc 2.17 through zig), the npm packages, installed offline"
  "$PY" -m pip install -q --disable-pip-version-check ziglang cargo-zigbuild pyelftools
  stamp=node/node_modules/.installed-from-lockfile
  if ! cmp -s node/package-lock.json "$stamp" 2>/dev/null; then
    (cd node && npm ci --no-audit --no-fund --loglevel=error --ignore-scripts)
    cp node/package-lock.json "$stamp"
  fi
  platform=$(node -p "require('./node/platform.js').currentPlatform()")
  triple=$(node -p "require('./node/package.json').napi.targets.find((t) => require('./node/platform.js').platformOfTriple(t) === '$platform') || ''")
  [ -n "$triple" ] || { echo "no prebuilt addon is built for $platform" >&2; exit 1; }
  # glibc targets name the oldest glibc they run on; cargo-zigbuild links against it.
  [[ "$triple" == *-linux-gnu ]] && triple="$triple.2.17"
  rm -rf "$DIST/napi" "$DIST/npm"
  # The loader and types are written beside the addon, not over the committed ones, which are
  # what ships: they must be what this build generates, or the package would miss exports.
  (cd node && timed env CARGO_TARGET_DIR="$ROOT/target/release-node" npx napi build --platform --release --strip \
    -x --target "$triple" --manifest-path ../bindings/node/Cargo.toml --output-dir "$DIST/napi" \
    --js native.js --dts native.d.ts)
  for generated in native.js native.d.ts; do
    diff -u "node/$generated" "$DIST/napi/$generated" \
      || { echo "node/$generated is stale: rebuild (scripts/test-node.sh) and commit it" >&2; exit 1; }
  done
  scripts/pack-npm.sh "$DIST/npm" "$platform" "$DIST/napi/servicetitan.$platform.node"
  PACKAGING_DIST="$DIST/npm" PACKAGING_PLATFORM="$platform" pytest_packaging tests/packaging/test_npm_dist.py
fi

if want rust; then
  step "Rust: cargo package of the published crates (each built from its packaged sources), cargo doc"
  # --allow-dirty: the check is of the sources as they are, committed or not.
  timed cargo package --quiet --allow-dirty -p servicetitan-sandbox -p servicetitan -p servicetitan-cli
  ls -l target/package/*.crate
  PACKAGING_DIST="$ROOT/target/package" pytest_packaging tests/packaging/test_crates.py
  RUSTDOCFLAGS="-D warnings" timed cargo doc --quiet --no-deps -p servicetitan -p servicetitan-sandbox -p servicetitan-cli
fi

printf '\npackaging checks passed\n'
