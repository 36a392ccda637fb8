#!/usr/bin/env bash
# The Singer tap with real Singer tools installed from PyPI, against the sandbox:
#   1. `servicetitan tap` piped into target-jsonl, then into meltanolabs-target-csv: a full run of
#      every stream for two tenants, a change through the API, then an incremental run from the
#      state the target emitted, which must bring back the changed record and nothing else;
#   2. the same under meltano, with the tap as a custom extractor (no pip_url: the executable is
#      a link named tap-servicetitan to the binary), the state kept in meltano's system database.
# Sets up everything on a fresh machine (Python virtualenvs under .venv-singer/, the binaries) and
# stops what it started. Run from anywhere; extra environment: PYTHON (default python3.11 when
# installed, else python3), SINGER_VENVS (default .venv-singer).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
source scripts/python-venv.sh

# Versions checked to work together here with Python 3.11 and 3.12.
TARGET_JSONL="target-jsonl==0.1.4"
TARGET_CSV="meltanolabs-target-csv==0.5.0"
MELTANO="meltano==4.4.1"

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
VENVS="${SINGER_VENVS:-.venv-singer}"
STARTED=$(date +%s)

step() { printf '\n== [%ss] %s\n' "$(($(date +%s) - STARTED))" "$*"; }
fail() { printf 'test-singer: FAILED: %s\n' "$*" >&2; exit 1; }

step "building servicetitan and servicetitan-sandbox"
cargo build -q -p servicetitan-cli -p servicetitan-sandbox --bins
BIN_DIR="$(pwd)/${CARGO_TARGET_DIR:-target}/$CARGO_BUILD_TARGET/debug"
SERVICETITAN="$BIN_DIR/servicetitan"
SANDBOX="$BIN_DIR/servicetitan-sandbox"

step "installing $TARGET_JSONL, $TARGET_CSV and $MELTANO with $("$PYTHON" --version)"
# One virtualenv each: target-jsonl pins an old jsonschema that meltano's and singer-sdk's do not accept.
install() {
    local venv="$VENVS/$1" requirement="$2"
    ensure_venv "$venv" "$PYTHON"
    # A marker per pinned version spares pip's slow start on later runs.
    [ -f "$venv/.installed-$requirement" ] && return 0
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "$requirement"
    touch "$venv/.installed-$requirement"
}
install target-jsonl "$TARGET_JSONL"
install target-csv "$TARGET_CSV"
install meltano "$MELTANO"
VENVS="$(cd "$VENVS" && pwd)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/servicetitan-singer.XXXXXX")"
SANDBOX_PID=""
cleanup() {
    if [ -n "$SANDBOX_PID" ]; then kill "$SANDBOX_PID" 2>/dev/null || true; wait "$SANDBOX_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

step "starting the sandbox"
# Pages of 25 records: a run writes several STATE messages per stream.
RECORDS=60
"$SANDBOX" --port 0 --records "$RECORDS" --export-page-size 25 > "$WORK/sandbox.out" 2> "$WORK/sandbox.err" &
SANDBOX_PID=$!
for _ in $(seq 100); do
    grep -q '^tenant 1002' "$WORK/sandbox.out" 2>/dev/null && break
    kill -0 "$SANDBOX_PID" 2>/dev/null || { cat "$WORK/sandbox.err" >&2; fail "the sandbox did not start"; }
    sleep 0.1
done
grep -q '^tenant 1002' "$WORK/sandbox.out" || fail "the sandbox did not print its tenants"
BASE_URL="$(head -n 1 "$WORK/sandbox.out")"
echo "sandbox at $BASE_URL (pid $SANDBOX_PID)"

# The tap's config (app key, URLs, tenants 1001 and 1002) from what the sandbox printed.
python3 - "$WORK/sandbox.out" "$WORK/tap.json" <<'EOF'
import json, re, sys
text = open(sys.argv[1]).read()
tenants = [{"id": int(i), "client_id": c, "client_secret": s}
           for i, c, s in re.findall(r"^tenant (\d+): client_id=(\S+) client_secret=(\S+)", text, re.M)]
config = {"app_key": re.search(r"^app key \(ST-App-Key\): (\S+)", text, re.M).group(1),
          "auth_url": text.splitlines()[0], "api_url": text.splitlines()[0],
          "tenants": [t for t in tenants if t["id"] in (1001, 1002)]}
json.dump(config, open(sys.argv[2], "w"))
EOF

# Renames customer 100000007 of tenant 1001 through the API: the next incremental run must bring it.
CHANGED_ID=100000007
change_a_customer() {
    python3 - "$WORK/tap.json" "$CHANGED_ID" "$1" <<'EOF'
import json, sys, urllib.parse, urllib.request
config, customer, name = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
tenant = config["tenants"][0]
form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": tenant["client_id"],
                               "client_secret": tenant["client_secret"]}).encode()
token = json.load(urllib.request.urlopen(config["auth_url"] + "/connect/token", form))["access_token"]
request = urllib.request.Request(
    "%s/crm/v2/tenant/%d/customers/%s" % (config["api_url"], tenant["id"], customer),
    data=json.dumps({"name": name}).encode(), method="PATCH",
    headers={"Authorization": "Bearer " + token, "ST-App-Key": config["app_key"], "Content-Type": "application/json"})
urllib.request.urlopen(request).read()
EOF
}

# check_records DIR EXT MODE: the records the target wrote. MODE full: every documented stream,
# RECORDS records per tenant, each tagged with its tenant. MODE incremental: only the changed customer.
check_records() {
    python3 - "$@" "$CHANGED_ID" "$RECORDS" <<'EOF'
import csv, json, os, sys
out, ext, mode, changed, per_tenant = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
def rows(path):
    with open(path, newline="") as f:
        return [json.loads(l) for l in f if l.strip()] if ext == "jsonl" else list(csv.DictReader(f))
files = {name[: -len(ext) - 1]: rows(os.path.join(out, name)) for name in os.listdir(out) if name.endswith("." + ext)}
total = sum(len(r) for r in files.values())
if mode == "full":
    # The two feeds whose records the specs do not describe are synced only when selected.
    assert len(files) == 52 and not [n for n in files if "opportunities" in n], sorted(files)
    for stream in ("crm_customers", "jpm_jobs", "accounting_invoices", "settings_technicians"):
        records = files[stream]
        assert len(records) == 2 * per_tenant, "%s: %d records, not %d" % (stream, len(records), 2 * per_tenant)
        assert sorted({int(r["_tenant_id"]) for r in records}) == [1001, 1002], stream
else:
    records = [r for r in files.get("crm_customers", []) if int(r["_tenant_id"]) == 1001]
    assert [int(r["id"]) for r in records] == [changed], "tenant 1001: %s" % [r["id"] for r in records]
    others = {name: len(r) for name, r in files.items() if name != "crm_customers" and r}
    assert not others, "records of unchanged streams: %s" % others
    assert all(int(r["id"]) == changed for r in files["crm_customers"]), "unchanged customers came back"
print("  %s: %d records in %d files" % (mode, total, len(files)))
EOF
}

# run_target NAME COMMAND...: a full run piped into the target, a change, an incremental run from
# the state the target printed last.
run_target() {
    local name="$1"; shift
    local dir="$WORK/$name"
    mkdir -p "$dir/full" "$dir/incremental"
    step "$name: full run"
    (cd "$dir/full" && "$SERVICETITAN" tap --config "$WORK/tap.json" 2> tap.err | "$@" > state.out 2> target.err) \
        || { tail -n 20 "$dir/full/tap.err" "$dir/full/target.err" >&2; fail "$name: full run"; }
    [ "$(ls "$dir/full")" ] || fail "$name: nothing written"
    tail -n 1 "$dir/full/state.out" > "$dir/state.json"
    grep -q '"partitions"' "$dir/state.json" || fail "$name: the state has no partitions: $(head -c 300 "$dir/state.json")"
    check_records "$dir/full" "$EXT" full
    change_a_customer "Changed for $name"
    step "$name: incremental run from the target's state"
    (cd "$dir/incremental" && "$SERVICETITAN" tap --config "$WORK/tap.json" --state "$dir/state.json" 2> tap.err \
        | "$@" > state.out 2> target.err) \
        || { tail -n 20 "$dir/incremental/tap.err" "$dir/incremental/target.err" >&2; fail "$name: incremental run"; }
    check_records "$dir/incremental" "$EXT" incremental
}

echo '{"destination_path": ".", "do_timestamp_file": false}' > "$WORK/target-jsonl.json"
EXT=jsonl run_target target-jsonl "$VENVS/target-jsonl/bin/target-jsonl" --config "$WORK/target-jsonl.json"

echo '{"output_path": ".", "file_naming_scheme": "{stream_name}.csv", "validate_records": true}' > "$WORK/target-csv.json"
EXT=csv run_target target-csv "$VENVS/target-csv/bin/target-csv" --config "$WORK/target-csv.json"

step "meltano: a project with the tap as a custom extractor"
PROJECT="$WORK/meltano"
mkdir -p "$PROJECT/out"
# Meltano starts an extractor as `EXECUTABLE --config ... --catalog ... --state ...`; called by
# this name, the binary is the tap.
ln -s "$SERVICETITAN" "$PROJECT/tap-servicetitan"
cat > "$PROJECT/meltano.yml" <<EOF
default_environment: test
project_id: servicetitan-singer-test
send_anonymous_usage_stats: false
environments:
- name: test
plugins:
  extractors:
  - name: tap-servicetitan
    namespace: tap_servicetitan
    executable: ./tap-servicetitan
    capabilities: [catalog, discover, state, about]
    settings:
    - {name: app_key, kind: password, sensitive: true}
    - {name: auth_url}
    - {name: api_url}
    - {name: tenants, kind: array, sensitive: true}
    - {name: start_date, kind: date_iso8601}
    select:
    - crm_customers.*
    - jpm_jobs.*
  loaders:
  - name: target-jsonl
    namespace: target_jsonl
    executable: $VENVS/target-jsonl/bin/target-jsonl
    settings:
    - {name: destination_path}
    - {name: do_timestamp_file, kind: boolean}
    config:
      destination_path: out
      do_timestamp_file: false
EOF
# The settings from the environment, as a deployment would set them (the secrets never in meltano.yml).
eval "$(python3 - "$WORK/tap.json" <<'EOF'
import json, shlex, sys
config = json.load(open(sys.argv[1]))
for key in ("app_key", "auth_url", "api_url", "tenants"):
    value = config[key] if isinstance(config[key], str) else json.dumps(config[key])
    print("export TAP_SERVICETITAN_%s=%s" % (key.upper(), shlex.quote(value)))
EOF
)"
export MELTANO_SEND_ANONYMOUS_USAGE_STATS=false MELTANO_DISABLE_TRACKING=true
meltano_run() {
    (cd "$PROJECT" && "$VENVS/meltano/bin/meltano" run tap-servicetitan target-jsonl > "$1.log" 2>&1) \
        || { tail -n 30 "$PROJECT/$1.log" >&2; fail "meltano: $1 run"; }
}
meltano_lines() { cat "$PROJECT"/out/*.jsonl | wc -l; }

step "meltano run tap-servicetitan target-jsonl (full)"
meltano_run full
FULL=$((2 * 2 * RECORDS))  # 2 streams, 2 tenants
[ "$(meltano_lines)" -eq "$FULL" ] || fail "meltano full run: $(meltano_lines) records, not $FULL"
(cd "$PROJECT" && "$VENVS/meltano/bin/meltano" state get test:tap-servicetitan-to-target-jsonl 2>/dev/null) | grep -q '"partitions"' \
    || fail "meltano kept no state with partitions"
change_a_customer "Changed for meltano"
step "meltano run tap-servicetitan target-jsonl (incremental, from meltano's state)"
meltano_run incremental
NEW=$(($(meltano_lines) - FULL))
# target-jsonl appends: the incremental run added the changed customer (for tenant 1001, and for
# 1002 too when the sandbox's tenants share their customers), nothing else.
[ "$NEW" -ge 1 ] && [ "$NEW" -le 2 ] || fail "meltano incremental run added $NEW records, not the changed customer alone"
tail -n "$NEW" "$PROJECT/out/crm_customers.jsonl" | grep -q "\"id\": $CHANGED_ID" || fail "meltano: the changed customer is not in the incremental run"
echo "  incremental: $NEW records"
for secret in $(python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print(c["app_key"], *[t["client_secret"] for t in c["tenants"]])' "$WORK/tap.json"); do
    ! grep -rqF -- "$secret" "$PROJECT"/*.log "$WORK"/target-*/*/tap.err || fail "a secret is in a log"
done

printf '\nthe Singer tap works with target-jsonl, target-csv and meltano (%ss)\n' "$(($(date +%s) - STARTED))"
