#!/usr/bin/env bash
# cleanup.sh — launch/multihost.sh leaves nothing behind (no namespace, no link) after a normal run, after a failing
# program, and after SIGINT (Ctrl-C) in the middle of a run, which must end the job within seconds.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" cleanup "$@"
"${hosts2x2[@]}" -- "$bin" train "${small[@]}" --epochs 1 >ok.log 2>&1 || { cat ok.log; fail "normal run"; }
no_leftovers
"${hosts2x2[@]}" -- "$bin" train "${small[@]}" --no-such-option >bad.log 2>&1 && { cat bad.log; fail "a failing program exited 0"; }
grep -q "unknown option" bad.log || { cat bad.log; fail "no error from the failing program"; }
no_leftovers
# A script's background job starts with SIGINT ignored; env --default-signal gives it back, as a terminal would.
env --default-signal=INT bash "$mh" --hosts 2 --ranks-per-host 2 -- "$bin" train "${small[@]}" --epochs 500 \
  >int.log 2>&1 &
pid=$!
for _ in $(seq 300); do grep -q "^epoch 1/" int.log && break; sleep 0.1; done
grep -q "^epoch 1/" int.log || { cat int.log; fail "training did not start"; }
ranks=$(ranks_of h0; ranks_of h1)
kill -INT $pid
t0=$(date +%s%N)
for _ in $(seq 150); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
kill -0 $pid 2>/dev/null && { kill -KILL $pid; cat int.log; fail "still running 15 s after SIGINT"; }
wait $pid
status=$?
echo "SIGINT: exit status $status after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
[ "$status" = 130 ] || { cat int.log; fail "exit status $status after SIGINT, expected 130"; }
# (a killed rank may linger a moment as a zombie until it is reaped: dead all the same)
for p in $ranks; do
  [ "$(cat /proc/$p/comm 2>/dev/null)" = mpitrain ] && [ "$(awk '{ print $3 }' /proc/$p/stat 2>/dev/null)" != Z ] &&
    fail "rank pid $p survived"
done
no_leftovers
echo PASS
