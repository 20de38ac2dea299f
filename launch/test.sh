#!/usr/bin/env bash
# test.sh — what CI runs: install dependencies, build with warnings as errors and run the whole test suite (unit,
# MPI with up to 4 ranks, command-line and bad-input tests, the fuzz corpora, valgrind on a short run); then
#   1. the SimGrid SMPI build (build-smpi/) and its smoke tests (64 simulated ranks, alpha-beta check);
#   2. the sanitizer build (build-sanitize/: ASan + UBSan) and its test subset, CTest label `sanitize`;
#   3. each libFuzzer target for MT_FUZZ_SECONDS (default 30) seconds (launch/fuzz.sh, build-fuzz/);
#   4. the CTest label `multihost`: 2 hosts x 2 ranks as network namespaces (launch/multihost.sh, about 80 s; its
#      tests are reported skipped where namespaces cannot be made).
# Arguments go to ctest of the normal build and skip the later stages (e.g. `bash launch/test.sh -R train`);
# MT_SMPI=0, MT_SANITIZE=0, MT_FUZZ_SECONDS=0 or MT_MULTIHOST=0 skips a stage. Prints how long each stage took.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
t0=$(date +%s)
stage_times=()
stage_done() { local now; now=$(date +%s); stage_times+=("$(printf '%-34s %4d s' "$1" $((now - t0)))"); t0=$now; }

bash "$MT_ROOT/launch/deps.sh"
mt_build -DMPITRAIN_WERROR=ON -DMPITRAIN_TESTS=ON
stage_done "build"
if [ $# -gt 0 ]; then
  (cd "$MT_BUILD" && ctest --output-on-failure "$@")
  exit 0
fi
(cd "$MT_BUILD" && ctest --output-on-failure -LE multihost) # the multihost label is a stage of its own (below)
stage_done "test suite"

if [ "${MT_SMPI:-1}" != 0 ]; then
  echo "== SimGrid SMPI build and its smoke tests"
  mt_build_smpi -DMPITRAIN_WERROR=ON -DMPITRAIN_TESTS=ON
  (cd "$MT_BUILD_SMPI" && ctest --output-on-failure)
  stage_done "SMPI build and smoke tests"
fi

if [ "${MT_SANITIZE:-1}" != 0 ]; then
  echo "== sanitizers: ASan + UBSan build, tests labelled 'sanitize'"
  MT_BUILD=$MT_ROOT/build-sanitize CMAKE_BUILD_TYPE=RelWithDebInfo \
    mt_build -DMPITRAIN_WERROR=ON -DMPITRAIN_TESTS=ON -DMPITRAIN_SANITIZE=ON
  stage_done "sanitizer build"
  (cd "$MT_ROOT/build-sanitize" && ctest --output-on-failure -L sanitize)
  stage_done "sanitizer tests"
fi
if [ "${MT_FUZZ_SECONDS:-30}" != 0 ]; then
  echo "== fuzzing: each target ${MT_FUZZ_SECONDS:-30} s"
  bash "$MT_ROOT/launch/fuzz.sh" "${MT_FUZZ_SECONDS:-30}"
  stage_done "fuzzing (build and run)"
fi
if [ "${MT_MULTIHOST:-1}" != 0 ]; then
  echo "== multihost: 2 hosts x 2 ranks in network namespaces, CTest label 'multihost'"
  (cd "$MT_BUILD" && ctest --output-on-failure -L multihost)
  stage_done "multihost (namespaces)"
fi
echo "== time per stage"
printf '%s\n' "${stage_times[@]}"
