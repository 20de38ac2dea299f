#!/usr/bin/env bash
# quickstart.sh — from a fresh Debian 12 machine to a trained model: install dependencies, build, convert
# Fashion-MNIST, and train the default MLP with one MPI rank per core. Extra arguments go to `mpitrain train`
# (e.g. --epochs 5). NP=4 overrides the number of ranks.
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
echo "quickstart: mpirun -np $np mpitrain train --data $data $*"
mt_mpirun -np "$np" "$MT_BUILD/mpitrain" train --data "$data" "$@"
