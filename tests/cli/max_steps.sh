#!/usr/bin/env bash
# max_steps.sh — a run stopped by --max-steps in its second epoch: max_steps.sh MPITRAIN DATA
# It must print the final test accuracy of the model it ends with (step 70), not the one measured after epoch 1,
# and its metrics log must end with an "end" record (the partial epoch) of step 70 holding that accuracy, after
# the one whole epoch's "epoch" record.
set -u
bin=$1 data=$2
work=max-steps
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fail() { echo "FAIL: $*"; exit 1; }
mpirun -np 2 "$bin" train --data "$data" --hidden 16 --batch 48 --epochs 3 --progress off --threads 1 --max-steps 70 \
  --log m.csv >run.log 2>&1 || { cat run.log; fail "training"; }
cat run.log
acc=$(sed -n 's/^final test accuracy: \([0-9.]*\)% (test loss [0-9.]*) after 70 steps in .*/\1/p' run.log)
[ -n "$acc" ] || fail "no 'final test accuracy: ... after 70 steps'"
grep -q "last test accuracy" run.log && fail "still reports the accuracy of an earlier epoch"
[ "$(grep -c '^"*epoch,' m.csv)" = 1 ] || fail "expected exactly one epoch record (epoch 1 is the only whole one)"
last=$(tail -n 1 m.csv)
echo "last record: $last"
case $last in end,2,70,* | '"end"',2,70,*) ;; *) fail "the log does not end with an end record of epoch 2, step 70" ;; esac
# columns: kind,epoch,step,samples,loss,acc,lr,samples_per_s,elapsed_s,test_loss,test_acc,...
awk -F, -v acc="$acc" '{ exit !($3 == 70 && $11 != "" && (100 * $11 - acc) ^ 2 < 1e-4) }' <<<"$last" ||
  fail "the log's end record does not hold the test accuracy $acc%"
echo PASS
