#!/usr/bin/env bash
# test.sh — install dependencies, build with warnings as errors, run the whole test suite (unit, MPI with up to
# 4 ranks, command-line and bad-input tests), then build the SimGrid SMPI variant (build-smpi/) and run its smoke
# tests. Extra arguments go to the first ctest (e.g. -R train).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bash "$MT_ROOT/launch/deps.sh"
mt_build -DMPITRAIN_WERROR=ON -DMPITRAIN_TESTS=ON
(cd "$MT_BUILD" && ctest --output-on-failure "$@")
# The SimGrid SMPI build in its own directory, and its smoke tests (64 simulated ranks, alpha-beta check): ~20 s.
mt_build_smpi -DMPITRAIN_WERROR=ON -DMPITRAIN_TESTS=ON
cd "$MT_BUILD_SMPI"
ctest --output-on-failure
