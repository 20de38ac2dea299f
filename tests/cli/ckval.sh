#!/usr/bin/env bash
# ckval.sh — the fixture of tests/cli/ckval.cmake: ckval.sh MPITRAIN TAMPER DATA NAME:TAMPER-ARGS...
# Trains a small model (batch norm, Adam: every kind of array) for a few steps into ckval/base, then writes one
# damaged copy ckval/NAME.h5 per argument with `ckpt_tamper ckval/NAME.h5 TAMPER-ARGS` (array edits recompute the
# CRC, so only a check of the values can tell), and two checkpoint directories whose newest checkpoint is
# ckval/weight_nan.h5.
set -u
bin=$1 tamper=$2 data=$3
shift 3
rm -rf ckval && mkdir -p ckval || exit 1
mpirun -np 2 "$bin" train --data "$data" --hidden 8 --batchnorm before --batch 48 --max-steps 3 --progress off \
  --threads 1 --checkpoint-dir ckval/base >ckval/base.log 2>&1 ||
  { cat ckval/base.log; echo "FAIL: training"; exit 1; }
base=ckval/base/ckpt-000000000003.h5
[ -f "$base" ] || { ls ckval/base; echo "FAIL: no $base"; exit 1; }
"$bin" info "$base" >ckval/base.info 2>&1 || { cat ckval/base.info; echo "FAIL: the undamaged checkpoint is refused"; exit 1; }
for kind in "$@"; do
  name=${kind%%:*} args=${kind#*:}
  cp "$base" "ckval/$name.h5" || exit 1
  # shellcheck disable=SC2086 # the arguments are words
  "$tamper" "ckval/$name.h5" $args || { echo "FAIL: ckpt_tamper ckval/$name.h5 $args"; exit 1; }
done
# --resume auto: a newest checkpoint with an invalid value is skipped like a damaged one (two directories: each
# test's run writes checkpoints of its own)
for d in auto_warn auto_fallback; do
  mkdir -p "ckval/$d" && cp "$base" "ckval/$d/" && cp ckval/weight_nan.h5 "ckval/$d/ckpt-000000000004.h5" 2>/dev/null ||
    { echo "FAIL: ckval/$d (is weight_nan among the kinds?)"; exit 1; }
done
echo "wrote $# damaged checkpoints into ckval/"
