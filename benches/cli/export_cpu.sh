#!/usr/bin/env bash
# CPU per record of `servicetitan export crm_customers` in each format: the client's user CPU
# (from /usr/bin/time) over a fixed number of records, so the figure does not depend on how busy
# the machine is. With CALLGRIND=1 the client runs under valgrind's callgrind instead and the
# instructions per record are reported (slow: keep RECORDS small). Release build; the sandbox
# runs as its own process with its rate limit off. From the repository root:
#
#   benches/cli/export_cpu.sh                          # 200,000 records
#   RECORDS=20000 CALLGRIND=1 benches/cli/export_cpu.sh
#   BIN=/other/target/release benches/cli/export_cpu.sh   # binaries already built there
#
# The whole process is counted (start, token, every page fetched and split, the file written),
# so the JSONL figure is the floor the other formats add their flattening to.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -f scripts/env.sh ]; then
    # shellcheck source=/dev/null
    source scripts/env.sh
fi
RECORDS="${RECORDS:-200000}"
PAGE="${PAGE:-5000}"
FORMATS="${FORMATS:-jsonl csv parquet}"

# shellcheck source=benches/cli/sandbox.sh
source benches/cli/sandbox.sh

printf '\nexport of %s crm_customers records (sandbox pages of %s), release build\n' "$RECORDS" "$PAGE"
if [ -n "${CALLGRIND:-}" ]; then
    printf '%-8s %16s %14s\n' "format" "instructions" "per record"
else
    printf '%-8s %10s %10s %14s\n' "format" "user s" "system s" "user µs/record"
fi
for format in $FORMATS; do
    out="$WORK/$format"
    command=("$BIN/servicetitan" --log-format json export crm_customers --format "$format" --out "$out")
    if [ -n "${CALLGRIND:-}" ]; then
        valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.$format" "${command[@]}" \
            2> "$WORK/$format.log"
        instructions=$(grep -m1 '^summary:' "$WORK/callgrind.$format" | awk '{print $2}')
        python3 -c "import sys; f, i, r = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]); \
print(f'{f:<8} {i:>16,} {i / r:>14,.0f}')" "$format" "$instructions" "$RECORDS"
    else
        /usr/bin/time -f '%U %S' -o "$WORK/$format.time" "${command[@]}" 2> "$WORK/$format.log"
        read -r user system < "$WORK/$format.time"
        python3 -c "import sys; f, u, s, r = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]); \
print(f'{f:<8} {u:>10.2f} {s:>10.2f} {u / r * 1e6:>14.2f}')" "$format" "$user" "$system" "$RECORDS"
    fi
    records=$(python3 -c "import json, sys; print([json.loads(l) for l in open(sys.argv[1]) if '\"summary\"' in l][-1]['streams']['crm_customers'])" "$WORK/$format.log")
    [ "$records" = "$RECORDS" ] || { echo "the $format export wrote $records records, not $RECORDS" >&2; exit 1; }
    rm -rf "$out"
done
