#!/usr/bin/env bash
# quickstart.sh — from a fresh Debian 12 machine to a trained model: install dependencies, build, convert
# Fashion-MNIST, and train the default MLP with one MPI rank per core. The run keeps what it made: checkpoints
# (the last one is the trained model, for eval / predict / launch/export.py) and the metrics log go to
# runs/quickstart-<date>-<time>/ (RUN_DIR=... to choose). Extra arguments go to `mpitrain train` (e.g. --epochs 5).
# NP=4 overrides the number of ranks.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bash "$MT_ROOT/launch/deps.sh"
mt_build
data="$MT_ROOT/datasets/fashion-mnist.h5"
if [ ! -f "$data" ]; then
  mkdir -p "$MT_ROOT/datasets"
  "$MT_BUILD/mpitrain" convert --from idx --dir /usr/share/datasets/fashion-mnist --out "$data"
fi
np=${NP:-$(nproc)}
run=${RUN_DIR:-$MT_ROOT/runs/quickstart-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$run"
echo "quickstart: mpirun -np $np mpitrain train --data $data --checkpoint-dir $run/checkpoints --log $run/metrics.csv $*"
mt_mpirun -np "$np" "$MT_BUILD/mpitrain" train --data "$data" --checkpoint-dir "$run/checkpoints" \
  --log "$run/metrics.csv" "$@"
last=$(ls "$run"/checkpoints/ckpt-*.h5 2>/dev/null | tail -n 1)
echo "quickstart: the trained model is $last (checkpoints in $run/checkpoints), the metrics log $run/metrics.csv"
echo "quickstart: try  $MT_BUILD/mpitrain eval --checkpoint $last --data $data"
