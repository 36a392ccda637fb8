#!/usr/bin/env bash
# Runs the fuzz targets of fuzz/ for a bounded time each, growing and then minimising the corpus
# kept in fuzz/corpus/. Needs cargo-fuzz (`cargo install cargo-fuzz`). libFuzzer's flags are
# nightly-only; RUSTC_BOOTSTRAP=1 lets the stable toolchain take them.
#
#   scripts/fuzz.sh            # every target, 60 s each
#   scripts/fuzz.sh 300 route  # one target, 300 s
#
# Crashes land in fuzz/artifacts/<target>/; replay one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -s none -a <target> fuzz/artifacts/<target>/<file>
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(retry_after problem token_answer route)
export RUSTC_BOOTSTRAP=1
# Panics are what the targets look for, so no sanitizer is needed; -a keeps overflow checks on.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=()
for target in "${targets[@]}"; do
  echo "== $target ($seconds s)"
  # A dictionary of the input's words (fuzz/dict/) finds the interesting inputs far sooner.
  dict=()
  [ -f "fuzz/dict/$target.dict" ] && dict=(-dict="fuzz/dict/$target.dict")
  if ! cargo fuzz run -s none -a "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 "${dict[@]}" >"$log" 2>&1; then
    failed+=("$target")
  fi
  grep -E '^(stat::number_of_executed_units|stat::new_units_added|Done)|panicked|SUMMARY|Test unit written' "$log" || true
  cargo fuzz cmin -s none -a "$target" "fuzz/corpus/$target" >/dev/null 2>&1
  echo "   corpus: $(find "fuzz/corpus/$target" -type f | wc -l) files"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "crashes in: ${failed[*]} (see fuzz/artifacts/)" >&2
  exit 1
fi
