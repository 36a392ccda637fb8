#!/usr/bin/env bash
# Records per second of `servicetitan export crm_customers` to JSONL, CSV and Parquet, next to
# the same export through the Python package into a JSONL file. Release builds; the sandbox runs
# as its own process with its rate limit off and large export pages; the clients' own limiters
# are off too (ST_RATE_LIMIT_PER_SECOND=0, rate_limit_calls=0). From the repository root:
#
#   benches/cli/export.sh                      # 1,000,000 records
#   RECORDS=100000 benches/cli/export.sh
#   BIN=/other/target/release benches/cli/export.sh   # binaries already built there
#
# Wall clock of each whole process (start, token, every page, the file written and fsynced). The
# sandbox generates the records on the same cores, so the numbers are a floor for the client.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -f scripts/env.sh ]; then
    # shellcheck source=/dev/null
    source scripts/env.sh
fi
RECORDS="${RECORDS:-1000000}"
PAGE="${PAGE:-5000}"
VENV="${VENV:-target/cli-bench-venv}"

echo "== building the Python package (release) into $VENV" >&2
source scripts/python-venv.sh
ensure_venv "$VENV" python3
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "maturin>=1.16,<2" "orjson>=3.9"
VIRTUAL_ENV="$(cd "$VENV" && pwd)" "$VENV/bin/maturin" develop --release --quiet >&2

# shellcheck source=benches/cli/sandbox.sh
source benches/cli/sandbox.sh

now() { date +%s.%N; }
row() { # name seconds records bytes
    python3 -c "import sys; n, s, r, b = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]); \
print(f'{n:<36} {r:>10,} {s:>9.2f} {r / s:>12,.0f} {b / 1e6:>9.1f}')" "$@"
}

printf '\nexport of %s crm_customers records (sandbox pages of %s), release builds\n' "$RECORDS" "$PAGE"
printf '%-36s %10s %9s %12s %9s\n' "client" "records" "seconds" "records/s" "MB"
for format in jsonl csv parquet; do
    out="$WORK/$format"
    start=$(now)
    "$BIN/servicetitan" --log-format json export crm_customers --format "$format" --out "$out" 2> "$WORK/$format.log"
    end=$(now)
    records=$(python3 -c "import json, sys; print([json.loads(l) for l in open(sys.argv[1]) if '\"summary\"' in l][-1]['streams']['crm_customers'])" "$WORK/$format.log")
    bytes=$(stat -c %s "$out/crm_customers.1001.$format")
    row "servicetitan export --format $format" "$(echo "$end - $start" | bc)" "$records" "$bytes"
    rm -rf "$out"
done

start=$(now)
records=$("$VENV/bin/python" benches/cli/export_python.py "$BASE" "$ST_APP_KEY" 1001 "$ST_CLIENT_ID" "$ST_CLIENT_SECRET" "$WORK/python.jsonl")
end=$(now)
row "python: tenant.export + orjson" "$(echo "$end - $start" | bc)" "$records" "$(stat -c %s "$WORK/python.jsonl")"
