#!/usr/bin/env bash
# The Redis-backed token cache and rate limiter, against a real redis-server on loopback:
# installs redis-server if missing (Debian, as root), starts a throwaway one on a free port
# (no persistence), runs the Rust Redis suites (lock ownership, encryption, the Lua limiter
# under a property test, a Redis restart mid-run, four Python and Node processes sharing one
# tenant, TLS with a throwaway CA made by openssl) and the Redis tests of the Python and Node
# packages, then always stops the server.
#
# Runs after scripts/test-python.sh and scripts/test-node.sh (scripts/test.sh does): it uses
# the package they installed in .venv and the addon they built in node/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

if ! command -v redis-server >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    # The Debian package installs the server without starting it.
    apt-get install -y -qq redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
  else
    echo "test-redis.sh: redis-server is not installed (apt-get install redis-server)" >&2
    exit 1
  fi
fi

# The TLS suite makes its throwaway CA and certificates with the openssl command.
if ! command -v openssl >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get install -y -qq openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }
  else
    echo "test-redis.sh: the openssl command is not installed (apt-get install openssl)" >&2
    exit 1
  fi
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
workdir=$(mktemp -d)
pidfile="$workdir/redis.pid"
stop() {
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    # redis-server logs its shutdown into $workdir: removing the directory before it has exited
    # races with that last write.
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  rm -rf "$workdir"
}
trap stop EXIT

redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --pidfile "$pidfile" --dir "$workdir" --logfile "$workdir/redis.log"
for _ in $(seq 50); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
redis-cli -p "$port" ping >/dev/null

export ST_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
export ST_TEST_REDIS_REQUIRED=1
export ST_TEST_PYTHON="${ST_TEST_PYTHON:-$PWD/.venv/bin/python}"
echo "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on $ST_TEST_REDIS_URL"

# --nocapture: a suite that skipped prints why, and the grep below turns a skip into a failure.
out="$workdir/rust.log"
cargo test -p servicetitan --test redis_limiter --test redis_tokens --test redis_restart --test redis_processes \
  --test redis_webhooks --test redis_tls \
  -- --nocapture 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
[ "$status" = 0 ] || exit "$status"
if grep -q '^skipped: ST_TEST_REDIS_URL' "$out"; then
  echo "test-redis.sh: a Redis test skipped although ST_TEST_REDIS_URL is set" >&2
  exit 1
fi

# The packages' own Redis tests (each skips without ST_TEST_REDIS_URL; here it is set).
"$ST_TEST_PYTHON" -m pytest -q -p no:cacheprovider python/tests/test_redis.py python/tests/test_webhooks.py::test_receivers_sharing_redis_hand_an_event_over_once_between_them -rs 2>&1 | tee "$workdir/py.log"
if grep -qi 'skipped' "$workdir/py.log"; then
  echo "test-redis.sh: the Python Redis test skipped" >&2
  exit 1
fi
(cd node && node --test test/redis.test.js test/webhooks.test.js)

echo "redis suites passed"
