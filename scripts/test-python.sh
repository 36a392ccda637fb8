#!/usr/bin/env bash
# Builds the Python package in the dev profile and runs its checks: ruff, mypy, pytest (which
# includes the stubtest check of _native.pyi). Run from the repository root; exits non-zero on
# any failure. Needs python3 (>= 3.9) and cargo; everything else comes from PyPI.
#
#   scripts/test-python.sh                 # all checks
#   scripts/test-python.sh -k fork -x      # extra arguments go to pytest
#
# Environment: VENV (default .venv) is created when missing; PYTHON picks the interpreter.
set -euo pipefail

cd "$(dirname "$0")/.."
# The shared target tree and lean debug settings, as the other suites use (when present).
if [ -f scripts/env.sh ]; then
    # shellcheck source=/dev/null
    source scripts/env.sh
fi
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"

step() { printf '\n== %s\n' "$*"; }

source scripts/python-venv.sh
ensure_venv "$VENV" "$PYTHON"
VENV="$(cd "$VENV" && pwd)"  # absolute: maturin is told where the venv is
PY="$VENV/bin/python"

step "installing build and test tools"
"$PY" -m pip install -q --disable-pip-version-check --upgrade pip
"$PY" -m pip install -q --disable-pip-version-check \
    "maturin>=1.16,<2" "pytest>=8" "pytest-asyncio>=1" "hypothesis>=6.100" "mypy>=1.10" "ruff>=0.5" \
    "httpx>=0.27" "requests>=2.31" "types-requests" "orjson>=3.9" \
    "fastapi>=0.110" "uvicorn>=0.29"  # benches/python type checks; the README's FastAPI webhook example

step "building servicetitan (dev profile) into $VENV"
# maturin develop installs the package in editable mode: python/servicetitan plus the freshly
# built _native extension next to it (gitignored). The dev profile shares target/debug with
# `cargo build`/`cargo test`, so CI compiles the engine once.
VIRTUAL_ENV="$VENV" "$VENV/bin/maturin" develop --profile dev --quiet
"$PY" -c "import servicetitan, sys; print('servicetitan', servicetitan.__version__, 'on Python', sys.version.split()[0])"

step "ruff"
"$VENV/bin/ruff" check python benches/python
"$VENV/bin/ruff" format --check python benches/python

step "mypy"
"$VENV/bin/mypy"

step "pytest"
"$PY" -m pytest -q -p no:cacheprovider "$@"
