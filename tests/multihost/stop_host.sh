#!/usr/bin/env bash
# stop_host.sh — SIGSTOP every rank of host 1: the stall inspectors on host 0 name the ranks that do not answer and
# their host, and end the job; SIGCONT afterwards, and nothing is left behind.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" stop_host "$@"
"${hosts2x2[@]}" -- "$bin" train "${small[@]}" --epochs 500 --stall-timeout 2 >run.log 2>&1 &
pid=$!
for _ in $(seq 300); do grep -q "^epoch 1/" run.log && break; kill -0 $pid || break; sleep 0.1; done
grep -q "^epoch 1/" run.log || { cat run.log; fail "training did not start"; }
victims=$(ranks_of h1)
[ "$(echo $victims | wc -w)" = 2 ] || fail "expected 2 ranks on h1: '$victims'"
kill -STOP $victims
t0=$(date +%s%N)
for _ in $(seq 300); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
still=0
kill -0 $pid 2>/dev/null && still=1
kill -CONT $victims 2>/dev/null
[ "$still" = 1 ] && { kill -TERM $pid; wait $pid; cat run.log; fail "the job still runs 30 s after host 1 was stopped"; }
wait $pid
status=$?
line=$(grep "^mpitrain: stall:" run.log)
echo "host 1 stopped: the job ended after $(( ($(date +%s%N) - t0) / 1000000 )) ms, status $status: $line"
[ "$status" != 0 ] || fail "a stalled job exited 0"
echo "$line" | grep -Eq "; ranks 2-3 did not answer \(stopped, or hung in the kernel\?\), on host $MT_MULTIHOST_PREFIX-h1\. Aborting" ||
  { cat run.log; fail "no stall report naming ranks 2-3 and host $MT_MULTIHOST_PREFIX-h1"; }
no_leftovers
echo PASS
