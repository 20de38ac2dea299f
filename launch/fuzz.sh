#!/usr/bin/env bash
# fuzz.sh — build the libFuzzer targets (clang, ASan + UBSan; tests/fuzz) and fuzz each for a bounded time:
# fuzz_opts (the option and INI parser), fuzz_data (the dataset reader), fuzz_checkpoint (the checkpoint reader),
# fuzz_torchfile (the PyTorch state-dict reader), fuzz_csv (convert's CSV reader).
# Each starts from its seed corpus tests/fuzz/corpus/<target> (replayed first: an input that once found a bug must
# still pass) plus what earlier runs found (BUILD/corpus/<target>, kept between runs), and prints libFuzzer's
# coverage (cov: edges, ft: features), executions and exec/s. A crash, sanitizer report or broken invariant fails
# the script and leaves the input in BUILD/artifacts/ (replay it: BUILD/tests/fuzz/fuzz_<target> FILE).
#
# usage: bash launch/fuzz.sh [SECONDS per target, default 60] [TARGET ...]
#        MT_FUZZ_BUILD (default build-fuzz/) is the build directory; MT_FUZZ_CORRUPT=1 also flips bytes of the
#        files the data and checkpoint targets write, which fuzzes HDF5's own parser (its crashes are HDF5's).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(opts data checkpoint torchfile csv)
build=${MT_FUZZ_BUILD:-$MT_ROOT/build-fuzz}

command -v clang >/dev/null || { echo "fuzz.sh: clang not found. HINT: apt-get install clang libclang-rt-14-dev" >&2; exit 1; }
CC=clang cmake -S "$MT_ROOT" -B "$build" -DMPITRAIN_FUZZ=ON -DMPITRAIN_TESTS=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null
# The sanitizer settings the tests use (tests/sanitize/sanitize.cmake), with the fast unwinder for malloc stacks:
# the slow one, which the MPI tests need for their suppressions, would cost most of the fuzzing speed here.
source "$build/sanitize.env"
export ASAN_OPTIONS="$ASAN_OPTIONS:fast_unwind_on_malloc=1:detect_stack_use_after_return=0"
mkdir -p "$build/artifacts"

failed=()
summary=()
for t in "${targets[@]}"; do
  exe=$build/tests/fuzz/fuzz_$t
  [ -x "$exe" ] || { echo "fuzz.sh: no target '$t' (have: opts data checkpoint torchfile csv)" >&2; exit 2; }
  work=$build/corpus/$t
  mkdir -p "$work"
  log=$build/fuzz-$t.log
  echo "== fuzz_$t: ${secs}s from $(ls "$MT_ROOT/tests/fuzz/corpus/$t" | wc -l) seeds + $(ls "$work" | wc -l) found before"
  # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: 2 GB is far above what a sane input needs.
  rc=0
  "$exe" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$t-" "$work" "$MT_ROOT/tests/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  # libFuzzer's progress lines: INITED (after the seeds), pulses, and DONE with the final coverage.
  grep -a -E '^#[0-9]+[[:space:]]+(INITED|DONE)' "$log" || true
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  final=$(grep -a -E '^#[0-9]+[[:space:]]+(DONE|NEW|REDUCE|pulse|INITED)' "$log" | tail -n 1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\) .*/\1/p' <<<"$final")
  ft=$(sed -n 's/.* ft: \([0-9]*\) .*/\1/p' <<<"$final")
  if [ "$rc" -ne 0 ]; then
    grep -a -E 'ERROR:|SUMMARY:|runtime error|fuzz invariant|fuzz harness|Test unit written' "$log" | head -n 20
    failed+=("$t")
    summary+=("$(printf '%-11s %10s %8s %6s %7s  FAILED (log %s)' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$log")")
  else
    summary+=("$(printf '%-11s %10s %8s %6s %7s  ok' "$t" "$execs" "$rate" "$cov" "$ft")")
  fi
done
echo
printf '%-11s %10s %8s %6s %7s\n' target executions exec/s cov ft
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: FAILED: ${failed[*]} (inputs in $build/artifacts/)"
  exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets, ${secs}s each: no crash, sanitizer report or broken invariant"
