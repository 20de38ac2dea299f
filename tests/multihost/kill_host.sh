#!/usr/bin/env bash
# kill_host.sh — SIGKILL every rank of host 1 in the middle of a deterministic run: the job ends within 10 s on host
# 0 with a line naming the lost host and a rank of it; --resume auto then completes and ends with the same bits as the
# uninterrupted run.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" kill_host "$@"
run=(train "${small[@]}" --epochs 3 --deterministic --det-group 8 --checkpoint-every 20)
"${hosts2x2[@]}" -- "$bin" "${run[@]}" --checkpoint-dir U >u.log 2>&1 || { cat u.log; fail "uninterrupted run"; }
"${hosts2x2[@]}" -- "$bin" "${run[@]}" --checkpoint-dir R >run.log 2>&1 &
pid=$!
wait_checkpoint R $pid
victims=$(ranks_of h1)
[ "$(echo $victims | wc -w)" = 2 ] || fail "expected 2 ranks on h1: '$victims'"
kill -KILL $victims
t0=$(date +%s%N)
for _ in $(seq 200); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
kill -0 $pid 2>/dev/null && { kill -TERM $pid; wait $pid; cat run.log; fail "still running 10 s after host 1's ranks died"; }
wait $pid
status=$?
line=$(grep -E "process rank [23] .* on node $MT_MULTIHOST_PREFIX-h1 " run.log)
echo "host 1 killed: the job ended after $ms ms, status $status: $line"
[ "$status" != 0 ] || fail "a job that lost a host exited 0"
[ -n "$line" ] || { cat run.log; fail "no line naming the lost host and rank"; }
last=$(basename "$(newest R)")
"${hosts2x2[@]}" -- "$bin" "${run[@]}" --checkpoint-dir R --resume auto >r.log 2>&1 || { cat r.log; fail "resume"; }
grep -q "resumed from R/$last" r.log || { cat r.log; fail "did not resume from $last"; }
[ "$(basename "$(newest U)")" = "$(basename "$(newest R)")" ] || fail "final steps differ: $(newest U) $(newest R)"
same_state "$(newest U)" "$(newest R)"
no_leftovers
echo "PASS: resumed from $last, bit-identical to the uninterrupted run at $(basename "$(newest U)")"
