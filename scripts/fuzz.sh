#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/, one after the other, on one core each.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Default: 60 s for every target (`cargo fuzz list`). Installs cargo-fuzz if it
# is missing. Works on a stable toolchain: cargo-fuzz passes nightly-only -Z
# flags, which RUSTC_BOOTSTRAP=1 lets stable rustc accept. AddressSanitizer is
# used when it builds, else no sanitizer (libFuzzer itself comes from the
# libfuzzer-sys crate, so no sanitizer is needed to fuzz).
#
# Environment:
#   FUZZ_SANITIZER=address|none   skip the detection
#   FUZZ_ARGS="..."               extra libFuzzer flags (e.g. -max_len=65536)
#
# Builds go to fuzz/target (never the shared target dir). The corpus grows in
# fuzz/corpus/<target>/, seeded from fuzz/seeds/<target>/; crashes land in
# fuzz/artifacts/<target>/; the full libFuzzer output of the last run of each
# target is kept in fuzz/logs/<target>.log. Exits non-zero if any target crashed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"

secs=60
if [ $# -gt 0 ]; then
  secs=$1
  shift
fi
case $secs in '' | *[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2 ;; esac

if ! command -v cargo-fuzz >/dev/null; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$root/fuzz/target"

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

sanitizer=${FUZZ_SANITIZER:-}
if [ -z "$sanitizer" ]; then
  echo "==> probing AddressSanitizer (building ${targets[0]})"
  if cargo fuzz build --sanitizer address "${targets[0]}"; then
    sanitizer=address
  else
    echo "    AddressSanitizer does not build here; using --sanitizer none"
    sanitizer=none
  fi
fi

summary=()
crashed=0
for target in "${targets[@]}"; do
  echo "==> $target: building (sanitizer $sanitizer)"
  cargo fuzz build --sanitizer "$sanitizer" "$target"
  corpus="corpus/$target"
  artifacts="artifacts/$target"
  mkdir -p "$corpus" "$artifacts" logs
  if [ -d "seeds/$target" ]; then
    cp -n "seeds/$target"/* "$corpus"/ 2>/dev/null || true
  fi
  log="logs/$target.log"
  echo "==> $target: fuzzing for $secs s (log: fuzz/$log)"
  status=0
  # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
  cargo fuzz run --sanitizer "$sanitizer" "$target" "$corpus" -- \
    -max_total_time="$secs" -timeout=10 -print_final_stats=1 ${FUZZ_ARGS:-} \
    >"$log" 2>&1 || status=$?
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE|NEW|REDUCE|pulse)' "$log" | tail -n 3 || true

  runs=$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  rate=$(grep -oE '^stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  last=$(grep -E '^#[0-9]+[[:space:]]' "$log" | grep -E 'cov: ' | tail -n 1 || true)
  cov=$(grep -oE 'cov: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo "?")
  ft=$(grep -oE 'ft: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo "?")
  corp=$(grep -oE 'corp: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo "?")
  artifact=$(grep -oE 'Test unit written to [^ ]+' "$log" | sed 's/Test unit written to //' | tail -n 1 || true)
  result="ok"
  if [ "$status" -ne 0 ] || [ -n "$artifact" ]; then
    crashed=1
    result="CRASH ${artifact:-(exit $status, see fuzz/$log)}"
    grep -E -m 5 "panicked at|ERROR: AddressSanitizer|ERROR: libFuzzer|SUMMARY" "$log" || true
    [ -n "$artifact" ] && echo "    reproduce: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer $sanitizer $target $artifact)"
  fi
  summary+=("$(printf '%-20s %12s runs %8s exec/s  cov %6s  ft %6s  corpus %6s  %s' \
    "$target" "$runs" "$rate" "$cov" "$ft" "$corp" "$result")")
done

echo "==> summary ($secs s per target, sanitizer $sanitizer)"
printf '%s\n' "${summary[@]}"
exit "$crashed"
