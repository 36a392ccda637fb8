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
"$PY" -m pip install -q --disable-pip-version-check "pytest>=8" "ruff>=0.5"
pytest_packaging() { "$PY" -m pytest -q -c tests/packaging/pytest.ini "$@"; }

if want versions; then
  step "one version: Cargo.toml, pyproject, npm packages, CHANGELOG"
  "$PY" tools/version.py
  pytest_packaging tests/packaging/test_version.py
  "$VENV/bin/ruff" check tests/packaging tools/version.py
  "$VENV/bin/ruff" format --check tests/packaging tools/version.py
fi

printf '\npackaging checks passed\n'
