#!/usr/bin/env bash
# ckpt_layout.sh MPITRAIN README — checkpoints of every kind, walked against README's table of the format:
#   a: batch norm before, Adam, --deterministic, normalised data with class names (preprocess mean/std, det_max)
#   b: batch norm after, momentum (first moments only), dropout, --log (elapsed_s)
#   c: no batch norm, RMSProp (second moments only), early stopping's best.h5
#   d: --grad-comm bf16 at 2 ranks (/gradcomm: each rank's residual and the owners' of the sums)
set -u
bin=$1 readme=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=ckpt-layout
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
py=/usr/bin/python3
"$py" - <<'PY' || exit 1
import numpy as np
r = np.random.default_rng(1)
for name, n in (("train", 300), ("test", 60)):
    y = r.integers(0, 3, n)
    np.savetxt(name + ".csv", np.column_stack([y, r.normal(size=(n, 6)) + y[:, None]]), delimiter=",", fmt="%.5g")
PY
run() { "$bin" "$@" >>run.log 2>&1 || { cat run.log; echo "FAIL: $*"; exit 1; }; }
run convert --from csv --train train.csv --test test.csv --normalize --class-names a,b,c --out n.h5
run synth --samples 400 --test-samples 80 --features 6 --classes 3 --out s.h5
common=(--hidden 8,5 --batch 32 --epochs 2 --progress off)
run train --data n.h5 "${common[@]}" --batchnorm before --deterministic --checkpoint-dir a
run train --data s.h5 "${common[@]}" --batchnorm after --dropout 0.2 --optimizer momentum --lr 0.1 --log m.csv \
  --checkpoint-dir b
run train --data s.h5 "${common[@]}" --epochs 4 --optimizer rmsprop --val-fraction 0.2 --patience 1 \
  --checkpoint-dir c
mpirun -np 2 "$bin" train --data s.h5 "${common[@]}" --threads 1 --grad-comm bf16 --checkpoint-dir d >>run.log 2>&1 ||
  { cat run.log; echo "FAIL: --grad-comm bf16 at 2 ranks"; exit 1; }
exec "$py" "$here/ckpt_layout.py" "$readme" a/ckpt-*.h5 b/ckpt-*.h5 c/*.h5 d/ckpt-*.h5
