#!/usr/bin/env bash
# infer_bn.sh — eval and predict of a batch-norm checkpoint at 1, 2 and 3 ranks: infer_bn.sh PLACE MPITRAIN DATA
# PLACE is --batchnorm's before or after. Every rank must use the checkpoint's running statistics, not only its
# parameters: the loss and accuracy eval prints, and the CSV predict writes, are the same at every rank count and
# equal to the training's final test result.
set -u
place=$1 bin=$2 data=$3
work=infer-bn-$place
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fail() { echo "FAIL: $*"; exit 1; }
bad=0
wrong() { echo "FAIL: $*"; bad=1; } # goes on: eval and predict are checked separately
mpirun -np 2 "$bin" train --data "$data" --hidden 16 --batch 48 --epochs 2 --batchnorm "$place" --checkpoint-dir C \
  --progress off --threads 1 >train.log 2>&1 || { cat train.log; fail "training"; }
ckpt=$(ls C/ckpt-*.h5 | sort | tail -n 1)
final=$(sed -n 's/^final test accuracy: \([0-9.]*%\) (test loss \([0-9.]*\)).*/loss \2  accuracy \1/p' train.log)
[ -n "$final" ] || { cat train.log; fail "no final test accuracy"; }
for np in 1 2 3; do
  mpirun -np "$np" "$bin" eval --checkpoint "$ckpt" --data "$data" >"eval$np.log" 2>&1 || { cat "eval$np.log"; fail "eval np=$np"; }
  got=$(grep '^loss ' "eval$np.log")
  echo "np=$np: $got"
  [ "$got" = "$final" ] || wrong "eval at np=$np gives '$got'; the training ended with '$final'"
  mpirun -np "$np" "$bin" predict --checkpoint "$ckpt" --data "$data" --out "p$np.csv" >"predict$np.log" 2>&1 ||
    { cat "predict$np.log"; fail "predict np=$np"; }
done
cmp p1.csv p2.csv || wrong "predictions differ between 1 and 2 ranks"
cmp p1.csv p3.csv || wrong "predictions differ between 1 and 3 ranks"
[ "$bad" -eq 0 ] || exit 1
echo "batchnorm $place: eval ($final) and predict agree at 1, 2 and 3 ranks"
echo PASS
