#!/usr/bin/env bash
# lock.sh — one run per checkpoint directory, for CTest: lock.sh SCENARIO MPITRAIN [NOLOCK_LIBRARY]
#   concurrent  run A (2 ranks) checkpoints every step into D; run B on D meanwhile is refused within 10 s naming
#               A's pid and leaves A's files alone; A finishes normally, its checkpoints whole; then run C takes D
#   stale       a run SIGKILLed while holding the lock: the next run takes the lock over and removes the leftover
#               temporary with the usual message
#   nolock      a file system without locks (NOLOCK_LIBRARY, preloaded, fails the lock with ENOLCK): the run goes
#               on with a warning and removes only temporaries it can prove are dead (this host, pid gone)
# Each scenario works in a fresh directory of its own and exits non-zero (saying why) when an expectation fails.
set -u
scenario=$1 bin=$2 nolock=${3:-}
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/procs.sh" # own_pids
work=lock-$scenario
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fail() { echo "FAIL: $*"; exit 1; }
host=$(hostname)
"$bin" synth --samples 4000 --test-samples 500 --features 256 --classes 4 --noise 3 --out big.h5 >/dev/null || fail synth
train() { local np=$1; shift; mpirun -np "$np" "$bin" train --data big.h5 --hidden 256,256 --batch 64 --progress off \
            --threads 1 "$@"; }
# waits until $1 holds a checkpoint while the run $2 (a pid) still runs
wait_checkpoint() {
  for _ in $(seq 600); do
    ls "$1"/ckpt-*.h5 >/dev/null 2>&1 && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
# every checkpoint in $1 passes `mpitrain info`'s CRC check
all_whole() {
  local n=0
  for f in "$1"/ckpt-*.h5; do
    "$bin" info "$f" >info.log 2>&1 && grep -q "crc32: .*matches the arrays" info.log || { cat info.log; fail "$f is damaged"; }
    n=$((n + 1))
  done
  [ "$n" -gt 0 ] || fail "no checkpoint in $1"
  echo "$n checkpoint(s) in $1 pass the CRC check"
}

case "$scenario" in
concurrent)
  train 2 --epochs 10 --checkpoint-every 1 --checkpoint-dir D >a.log 2>&1 &
  a=$!
  wait_checkpoint D "$a" || { cat a.log; fail "run A wrote no checkpoint"; }
  mapfile -t apids < <(own_pids "^$bin train .*--checkpoint-dir D( |$)")
  [ "${#apids[@]}" -eq 2 ] || fail "expected A's 2 rank processes, found ${#apids[@]}"
  # What B must not delete: a temporary of A's, as A names them (A is alive, so it is in flight).
  inflight="D/.ckpt-000000999999.h5.tmp.$host.${apids[0]}"
  : > "$inflight"
  t0=$(date +%s%N)
  train 2 --epochs 1 --checkpoint-dir D >b.log 2>&1
  status=$? ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  cat b.log
  echo "B ended after $ms ms with status $status"
  [ "$status" -eq 1 ] || fail "B: expected exit status 1, got $status"
  [ "$ms" -le 10000 ] || fail "B took more than 10 s to refuse"
  [ "$(grep -c '^mpitrain: error:' b.log)" -eq 1 ] || fail "B: expected one error line"
  line=$(grep '^mpitrain: error:' b.log)
  [[ "$line" =~ ^"mpitrain: error: --checkpoint-dir D: in use by another run (pid "([0-9]+)" on $host, started "[0-9-]+" "[0-9:]+" UTC: mpitrain train ".*"); wait for it to end or use another --checkpoint-dir"$ ]] ||
    fail "B: unexpected refusal: $line"
  holder=${BASH_REMATCH[1]}
  [[ " ${apids[*]} " == *" $holder "* ]] || fail "B names pid $holder; A's ranks are ${apids[*]}"
  grep -q "removed .* unfinished checkpoint" b.log && fail "B removed files in A's directory"
  [ -e "$inflight" ] || fail "B deleted A's temporary"
  kill -0 "$a" 2>/dev/null || { cat a.log; fail "A ended before B was refused (make A longer)"; }
  wait "$a" || { cat a.log; fail "A failed"; }
  grep -q "final test accuracy" a.log || { cat a.log; fail "A did not finish"; }
  grep -E "error|warning" a.log && fail "A reported a problem"
  [ -f D/ckpt-000000000630.h5 ] || { ls -a D; fail "A's final checkpoint (step 630) is missing"; }
  all_whole D
  # A has ended: its lock is released, and what was in flight under it is now a leftover.
  train 2 --epochs 11 --checkpoint-dir D --resume auto >c.log 2>&1 || { cat c.log; fail "C on D after A ended"; }
  grep -q "resumed from D/ckpt-000000000630.h5" c.log || { cat c.log; fail "C did not resume A's last checkpoint"; }
  grep -q "removed 1 unfinished checkpoint file left in D by an interrupted run" c.log || { cat c.log; fail "C did not remove the leftover"; }
  [ -e "$inflight" ] && fail "the leftover temporary is still there"
  grep -q "taking over" c.log && fail "A released its lock, yet C took it over as a dead run's"
  echo "B refused in $ms ms naming A (pid $holder); A finished whole; C took D over"
  ;;
stale)
  train 2 --epochs 10 --checkpoint-every 1 --checkpoint-dir S >k.log 2>&1 &
  k=$!
  wait_checkpoint S "$k" || { cat k.log; fail "the run wrote no checkpoint"; }
  cat S/.mpitrain.lock || fail "no lock file"
  holder=$(sed -n 's/^pid \([0-9]*\) on .*/\1/p' S/.mpitrain.lock)
  [ -n "$holder" ] && kill -0 "$holder" 2>/dev/null || fail "the lock file does not name a live process"
  : > "S/.ckpt-000000999999.h5.tmp.$host.$holder" # as if it died writing a checkpoint
  kill -KILL "$holder"
  for _ in $(seq 300); do kill -0 "$k" 2>/dev/null || break; sleep 0.05; done
  kill -0 "$k" 2>/dev/null && { kill -KILL "$k"; fail "the job still runs 15 s after its rank 0 was killed"; }
  wait "$k" && fail "a killed run must fail"
  [ -s S/.mpitrain.lock ] || fail "the killed run's lock file is gone or empty"
  train 2 --epochs 10 --checkpoint-dir S --resume auto >n.log 2>&1 || { cat n.log; fail "the next run on S"; }
  grep -E "taking over|removed|resumed" n.log
  grep -Eq "removed [12] unfinished checkpoint files? left in S by an interrupted run" n.log || fail "the leftover was not removed"
  grep -q "resumed from S/ckpt-" n.log || fail "the next run did not resume"
  grep -q "^mpitrain: taking over --checkpoint-dir S from a run that ended without releasing it (pid $holder on $host, " n.log ||
    fail "the next run did not say whose lock it took over"
  ls -a S | grep -q '\.tmp' && { ls -a S; fail "a temporary is left"; }
  all_whole S
  ;;
nolock)
  [ -n "$nolock" ] || fail "usage: lock.sh nolock MPITRAIN NOLOCK_LIBRARY"
  mkdir -p L
  sleep 30 &
  alive=$!
  : > "L/.ckpt-000000000001.h5.tmp.$host.$alive"        # a live writer on this host: kept
  : > "L/.ckpt-000000000002.h5.tmp.$host.999999999"     # a dead one (no such pid): removed
  : > "L/.ckpt-000000000003.h5.tmp.elsewhere-node.1"    # another host: cannot tell, kept
  LD_PRELOAD=$nolock train 2 --epochs 1 --checkpoint-dir L >l.log 2>&1
  status=$?
  kill "$alive"
  cat l.log
  [ "$status" -eq 0 ] || fail "a file system without locks must not stop the run"
  grep -q "^mpitrain: warning: --checkpoint-dir L: cannot lock L/.mpitrain.lock (No locks available); " l.log ||
    fail "no warning about the missing lock"
  grep -q "removed 1 unfinished checkpoint file left in L by an interrupted run" l.log || fail "the dead writer's file was not removed"
  [ -e "L/.ckpt-000000000001.h5.tmp.$host.$alive" ] || fail "a live writer's temporary was removed"
  [ -e "L/.ckpt-000000000003.h5.tmp.elsewhere-node.1" ] || fail "another host's temporary was removed"
  all_whole L
  ;;
*) fail "unknown scenario $scenario" ;;
esac
echo PASS
