# Sourced by the CLI benchmarks: release binaries (built unless BIN names a directory that has
# them), a scratch directory WORK removed on exit, and the sandbox binary in its own process
# with its rate limit off, RECORDS records and PAGE-record export pages. Exports ST_* for its
# first tenant, with the client's own limiter off too.

if [ -z "${BIN:-}" ]; then
    echo "== building release binaries (servicetitan, servicetitan-sandbox)" >&2
    cargo build --release -q -p servicetitan-cli -p servicetitan-sandbox
    BIN="${CARGO_TARGET_DIR:-target}/${CARGO_BUILD_TARGET:+$CARGO_BUILD_TARGET/}release"
fi

WORK="$(mktemp -d)"
SANDBOX_PID=""
cleanup() {
    [ -n "$SANDBOX_PID" ] && kill "$SANDBOX_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN/servicetitan-sandbox" --port 0 --records "$RECORDS" --export-page-size "$PAGE" --no-rate-limit \
    > "$WORK/sandbox.out" 2>&1 &
SANDBOX_PID=$!
for _ in $(seq 100); do
    [ -s "$WORK/sandbox.out" ] && break
    sleep 0.1
done
BASE="$(head -1 "$WORK/sandbox.out")"
export ST_APP_KEY="ak1.sandbox-app-key" ST_AUTH_URL="$BASE" ST_API_URL="$BASE" ST_TENANT_ID=1001 \
    ST_CLIENT_ID="cid.sandbox.1001" ST_CLIENT_SECRET="cs1.sandbox-secret-1001" ST_RATE_LIMIT_PER_SECOND=0
