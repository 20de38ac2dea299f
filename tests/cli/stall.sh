#!/usr/bin/env bash
# stall.sh — one rank of a running job is frozen with SIGSTOP (its inspector thread too): the other ranks' stall
# inspectors must notice, say which rank did not answer, and end the job within seconds.   stall.sh MPITRAIN
set -u
bin=$1
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/procs.sh" # own_pids
rm -rf stall-test && mkdir -p stall-test && cd stall-test || exit 1
fail() { echo "FAIL: $*"; exit 1; }
"$bin" synth --samples 20000 --features 256 --classes 4 --out big.h5 >/dev/null || fail synth
mpirun -np 3 "$bin" train --data big.h5 --hidden 256,256 --epochs 100 --batch 64 --stall-timeout 2 --progress off \
  --checkpoint-dir stall-ck >run.log 2>&1 &
pid=$!
for _ in $(seq 200); do grep -q "gradients:" run.log 2>/dev/null && break; sleep 0.05; done
sleep 1
victim=$(own_pids "^$bin train --data big.h5 .*--checkpoint-dir stall-ck" | tail -n 1)
[ -n "$victim" ] || fail "no rank to stop"
kill -STOP "$victim"
t0=$(date +%s)
for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
still=0
kill -0 "$pid" 2>/dev/null && still=1
kill -CONT "$victim" 2>/dev/null
kill -KILL "$victim" 2>/dev/null
[ "$still" = 1 ] && { kill -KILL "$pid"; cat run.log; fail "the job still runs 30 s after a rank was stopped"; }
wait "$pid"
status=$?
grep "stall" run.log
echo "job ended $(( $(date +%s) - t0 )) s after SIGSTOP, exit status $status"
[ "$status" -ne 0 ] || fail "a stalled job must not exit 0"
grep -Eq "^mpitrain: stall: no progress for [0-9]+ s in the [a-z -]+ of step [0-9]+; waiting there: ranks? [0-9,-]+; rank [0-9] did not answer" run.log ||
  fail "no one-line stall report naming the silent rank"
echo PASS
