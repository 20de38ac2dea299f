#!/usr/bin/env bash
# valgrind.sh — memcheck on a short real run: 2 ranks train a few steps on generated data writing checkpoints,
# 2 ranks resume from the newest one, then `eval` and `info` read it back; every process runs under valgrind.
# Fails (exit 1, printing the offending valgrind log) on any memcheck error or definite leak outside the libraries
# named in tests/sanitize/valgrind.supp. Takes about 30 s on 2 cores.
#
# usage: bash launch/valgrind.sh [WORKDIR]    (default: a temporary directory, removed afterwards)
# MT_BUILD selects the build to check (default build/; built if missing). It must not be a sanitizer build.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind not found. HINT: apt-get install valgrind" >&2; exit 1; }
bin=$MT_BUILD/mpitrain
[ -x "$bin" ] || mt_build
if nm -D "$bin" 2>/dev/null | grep -q __asan_init; then
  echo "valgrind.sh: $bin is built with AddressSanitizer, which valgrind cannot run; use a normal build" >&2
  exit 1
fi
if [ $# -gt 0 ]; then
  work=$1
  rm -rf "$work" && mkdir -p "$work"
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
cd "$work"

# Open MPI's components stay loaded until exit so that their frames, and the suppressions, have names.
export OMPI_MCA_mca_base_component_disable_dlclose=1
supp=(--suppressions="$MT_ROOT/tests/sanitize/valgrind.supp")
[ -f /usr/share/openmpi/openmpi-valgrind.supp ] && supp+=(--suppressions=/usr/share/openmpi/openmpi-valgrind.supp)
vg=(valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=97 --num-callers=30
    "${supp[@]}" --log-file="$work/vg.%q{MT_STEP}.%p.log")
# One BLAS thread: OpenBLAS's thread pool only slows valgrind down and checks nothing of ours.
train=("$bin" train --data v.h5 --hidden 16,8 --batch 32 --checkpoint-dir ck --checkpoint-every 3 --progress off
       --threads 1)

step() { # step NAME command...: run under valgrind (the command includes it), stop on failure
  local name=$1; shift
  echo "valgrind.sh: $name"
  if ! MT_STEP=$name "$@" > "$name.out" 2>&1; then
    cat "$name.out"
    for log in vg."$name".*.log; do grep -q "ERROR SUMMARY: 0 errors" "$log" || cat "$log"; done
    echo "valgrind.sh: FAIL: $name (exit status above; 97 = valgrind found errors)"
    exit 1
  fi
}

"$bin" synth --samples 400 --test-samples 100 --features 16 --classes 3 --seed 3 --out v.h5 > synth.out
step train mt_mpirun -np 2 "${vg[@]}" "${train[@]}" --max-steps 6
step resume mt_mpirun -np 2 "${vg[@]}" "${train[@]}" --max-steps 9 --resume auto
grep -q "resumed from ck/ckpt-000000000006.h5" resume.out || { cat resume.out; echo "valgrind.sh: FAIL: no resume"; exit 1; }
step eval "${vg[@]}" "$bin" eval --checkpoint ck/ckpt-000000000009.h5 --data v.h5
step info "${vg[@]}" "$bin" info ck/ckpt-000000000009.h5

# One log per process. A singleton (eval, info) forks Open MPI's orted, whose log ends at the exec without a
# summary: only processes that ran to their end are counted, and all six must have.
errors=0 lost=0 logs=0
for log in vg.*.log; do
  grep -q "ERROR SUMMARY" "$log" || continue
  logs=$((logs + 1))
  e=$(sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$log" | tr -d ,)
  l=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$log" | tr -d ,)
  errors=$((errors + e)); lost=$((lost + ${l:-0}))
  if [ "$e" != 0 ]; then cat "$log"; fi
done
echo "valgrind: $logs processes (train and resume at 2 ranks, eval, info): $errors errors, $lost bytes definitely lost"
[ "$errors" -eq 0 ] && [ "$lost" -eq 0 ] && [ "$logs" -eq 6 ]
