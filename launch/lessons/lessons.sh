#!/usr/bin/env bash
# lessons.sh — the lecture notes' lessons, reproduced by the real trainer on Fashion-MNIST and drawn with gnuplot.
#
#   bash launch/lessons/lessons.sh [a] [b] [c] [d]      (default: all four; NP=2 ranks; QUICK=1 for a fast smoke run)
#
#   a  cost per iteration: full-batch, mini-batch and stochastic gradient descent       -> a_batch_size.png
#   b  plain gradient descent, momentum, RMSProp, Adam                                   -> b_optimizers.png
#   c  initialisation: zero weights (symmetry), small random weights in a deep sigmoid
#      network (vanishing gradients, per-layer gradient norms), Xavier, He               -> c_init_loss.png,
#                                                                                           c_init_gradients.png
#   d  L2, dropout and batch normalisation against overfitting                           -> d_regularisation.png
#
# The runs' metrics (CSV) go to build/lessons/ (WORK=...), the PNGs next to this script (README shows them;
# OUTDIR=... puts them elsewhere).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
here="${OUTDIR:-$MT_ROOT/launch/lessons}"
work="${WORK:-$MT_BUILD/lessons}"
np="${NP:-2}"
quick="${QUICK:-0}"
lessons=("$@")
[ ${#lessons[@]} -gt 0 ] || lessons=(a b c d)

[ -x "$MT_BUILD/mpitrain" ] || { bash "$MT_ROOT/launch/deps.sh"; mt_build; }
command -v gnuplot >/dev/null || { echo "lessons: gnuplot is missing (apt-get install gnuplot-nox)" >&2; exit 1; }
data="$MT_ROOT/datasets/fashion-mnist.h5"
if [ "$quick" = 1 ]; then
  # Smoke run: generated data shaped like Fashion-MNIST and a few steps, to check the scripts end to end.
  data="$work/quick.h5"
  mkdir -p "$work"
  "$MT_BUILD/mpitrain" synth --samples 3000 --test-samples 600 --features 784 --classes 10 --noise 6 \
    --out "$data" >/dev/null
elif [ ! -f "$data" ]; then
  mkdir -p "$MT_ROOT/datasets"
  "$MT_BUILD/mpitrain" convert --from idx --dir /usr/share/datasets/fashion-mnist --out "$data"
fi
mkdir -p "$work"
scale() { if [ "$quick" = 1 ]; then echo $(( ($1 + 9) / 10 )); else echo "$1"; fi; } # steps / epochs in quick mode
win() { if [ "$quick" = 1 ]; then echo 1; else echo "$1"; fi; }                     # smoothing window

# run NAME [train options]: one training run, metrics in $work/NAME.csv, output in $work/NAME.out
run() {
  local name=$1
  shift
  echo "lessons: $name: mpitrain train $*"
  mt_mpirun -np "$np" "$MT_BUILD/mpitrain" train --data "$data" --progress off --log "$work/$name.csv" --log-every 1 \
    --checkpoint-dir "$work/$name.ckpt" --keep 1 "$@" >"$work/$name.out" 2>&1 ||
    { cat "$work/$name.out"; exit 1; }
  tail -n 1 "$work/$name.out"
}
# steps NAME [WINDOW]: "step loss" of every step record, as a moving average over WINDOW steps (default 1)
steps() {
  awk -F, -v w="${2:-1}" '$1 == "step" { i = n % w; s += $5 - buf[i]; buf[i] = $5; n++; if (n >= w) print $3, s / w }' \
    "$work/$1.csv"
}
# epochs NAME COLUMN: "epoch value" of the epoch records (COLUMN: 6 train acc, 11 test acc, 5 train loss)
epochs() { awk -F, -v c="$2" '$1 == "epoch" { print $2, $c }' "$work/$1.csv"; }
plot() { gnuplot -e "set terminal pngcairo size 960,560 font 'sans,11'; set output '$here/$1'; set grid; $2"; }

lesson_a() {
  # The same network and learning rate; only the batch changes. One full-batch step reads all 60 000 images.
  local n
  n=$(scale 150)
  local common=(--hidden 64 --optimizer sgd --lr 0.05 --max-steps "$n" --epochs 100000 --no-eval)
  run a_full "${common[@]}" --batch full
  run a_mini "${common[@]}" --batch 128
  run a_sgd "${common[@]}" --batch 1
  steps a_full >"$work/a_full.dat"
  steps a_mini >"$work/a_mini.dat"
  steps a_sgd >"$work/a_sgd.dat"
  plot a_batch_size.png "set title 'Cost per iteration: full batch, mini-batch (128), stochastic (1) - 784-64-10, SGD lr 0.05';
    set xlabel 'iteration'; set ylabel 'cost (cross-entropy of the batch)'; set yrange [0:4];
    plot '$work/a_sgd.dat' w l lw 1 lc rgb '#bbbbbb' t 'stochastic (batch 1)',
         '$work/a_mini.dat' w l lw 2 lc rgb '#1f77b4' t 'mini-batch (128)',
         '$work/a_full.dat' w l lw 3 lc rgb '#d62728' t 'full batch (60 000)'"
}

lesson_b() {
  local e
  e=$(scale 2)
  local common=(--hidden 512,256 --batch 128 --epochs "$e" --no-eval)
  run b_sgd "${common[@]}" --optimizer sgd --lr 0.05
  # The notes' momentum v = βv + (1-β)g averages the gradients without amplifying them: at the same rate it moves
  # like plain gradient descent, only smoother; its benefit is that it tolerates a rate 1/(1-β) = 10x larger.
  run b_momentum "${common[@]}" --optimizer momentum --lr 0.5
  run b_rmsprop "${common[@]}" --optimizer rmsprop --lr 1e-3
  run b_adam "${common[@]}" --optimizer adam --lr 1e-3
  for o in sgd momentum rmsprop adam; do steps "b_$o" "$(win 25)" >"$work/b_$o.dat"; done
  plot b_optimizers.png "set title 'Optimisers on 784-512-256-10 (batch 128; moving average over 25 steps)';
    set xlabel 'iteration'; set ylabel 'training cost'; set yrange [0:1.2];
    plot '$work/b_sgd.dat' w l lw 2 t 'gradient descent (lr 0.05)',
         '$work/b_momentum.dat' w l lw 2 t 'momentum {/Symbol b} 0.9 (lr 0.5)',
         '$work/b_rmsprop.dat' w l lw 2 t 'RMSProp (lr 0.001)',
         '$work/b_adam.dat' w l lw 2 t 'Adam (lr 0.001)'"
}

lesson_c() {
  # A deep sigmoid network, plain gradient descent: what the notes warn about.
  local n
  n=$(scale 2000)
  local common=(--hidden 128,128,128,128,128 --activation sigmoid --optimizer sgd --lr 0.5 --batch 128
                --max-steps "$n" --epochs 100000 --no-eval)
  run c_zero "${common[@]}" --init zero
  run c_small "${common[@]}" --init small --log-norms
  run c_xavier "${common[@]}" --init xavier --log-norms
  run c_he "${common[@]}" --init he
  for i in zero small xavier he; do steps "c_$i" "$(win 10)" >"$work/c_$i.dat"; done
  # Symmetry: with all-zero weights every hidden unit of a layer keeps the same incoming weights. The largest
  # difference between any unit's weights and unit 0's, in the first layer, after training:
  local spread=()
  for i in zero xavier; do
    local ck
    ck=$(ls "$work/c_$i.ckpt"/ckpt-*.h5 | tail -n 1)
    h5dump -d /model/dense0/W -y -w 0 -o "$work/c_$i.W.txt" "$ck" >/dev/null
    spread+=("$(tr -s ' ,' '\n\n' <"$work/c_$i.W.txt" | grep -E '^-?[0-9]' |
      awk 'NR <= 784 { first[(NR - 1) % 784] = $1 } { d = $1 - first[(NR - 1) % 784]; if (d < 0) d = -d;
           if (d > m) m = d } END { printf "%.3g", m }')")
  done
  echo "lessons: first-layer spread between hidden units: zero init ${spread[0]}, xavier ${spread[1]}"
  plot c_init_loss.png "set title 'Initialisation, 784-(128 x 5)-10 sigmoid, SGD lr 0.5 (moving average over 10 steps)';
    set xlabel 'iteration'; set ylabel 'training cost'; set yrange [0:2.6];
    set label 1 'zero init: after training all 128 first-layer units still have identical weights (largest difference ${spread[0]}; Xavier: ${spread[1]})' at graph 0.02, graph 0.06 font 'sans,9';
    plot '$work/c_zero.dat' w l lw 2 t 'all zero', '$work/c_small.dat' w l lw 2 t 'small: N(0,1) x 0.01',
         '$work/c_xavier.dat' w l lw 2 t 'Xavier', '$work/c_he.dat' w l lw 2 t 'He'"
  for i in small xavier; do
    for l in 0 1 2 3 4 5; do
      awk -F, -v name="dense$l/W" '$1 == "layer" && $15 == name { print $3, $14 }' "$work/c_$i.csv" >"$work/c_${i}_g$l.dat"
    done
  done
  local plots_small="" plots_xavier=""
  for l in 0 1 2 3 4 5; do
    plots_small+="'$work/c_small_g$l.dat' w l lw 2 t 'dense$l',"
    plots_xavier+="'$work/c_xavier_g$l.dat' w l lw 2 t 'dense$l',"
  done
  plot c_init_gradients.png "set multiplot layout 1,2 title 'Gradient L2 norm of the weights of each layer, 784-(128 x 5)-10 sigmoid';
    set logscale y; set format y '10^{%L}'; set xlabel 'iteration'; set key below horizontal;
    set title 'small init N(0,1) x 0.01: vanishing towards the input'; plot ${plots_small%,};
    set title 'Xavier init'; plot ${plots_xavier%,}; unset multiplot"
}

lesson_d() {
  local e
  e=$(scale 15)
  local common=(--hidden 512,256 --optimizer adam --lr 1e-3 --batch 256 --epochs "$e")
  run d_none "${common[@]}"
  run d_l2 "${common[@]}" --l2 0.1
  run d_dropout "${common[@]}" --dropout 0.3
  run d_bn "${common[@]}" --batchnorm before
  run d_all "${common[@]}" --batchnorm before --dropout 0.3 --l2 0.1
  for r in none l2 dropout bn all; do
    epochs "d_$r" 11 >"$work/d_${r}_test.dat"
    epochs "d_$r" 6 >"$work/d_${r}_train.dat"
    epochs "d_$r" 10 >"$work/d_${r}_tloss.dat"
  done
  local p="" q=""
  local -A title=([none]='no regularisation' [l2]='L2 {/Symbol l} = 0.1' [dropout]='dropout 0.3' [bn]='batch norm'
                  [all]='all three')
  local i=1
  for r in none l2 dropout bn all; do
    p+="'$work/d_${r}_test.dat' u 1:(100*\$2) w lp lw 2 lc $i pt 7 ps 0.6 t '${title[$r]}: test',"
    p+="'$work/d_${r}_train.dat' u 1:(100*\$2) w l lw 1 dt 2 lc $i notitle,"
    q+="'$work/d_${r}_tloss.dat' w lp lw 2 lc $i pt 7 ps 0.6 t '${title[$r]}',"
    i=$((i + 1))
  done
  plot d_regularisation.png "set terminal pngcairo size 1200,560 font 'sans,11'; set output '$here/d_regularisation.png';
    set multiplot layout 1,2 title 'Regularisation on 784-512-256-10, Adam lr 0.001, batch 256';
    set title 'accuracy (solid: test, dashed: training)'; set xlabel 'epoch'; set ylabel 'accuracy (%)';
    set yrange [84:100]; set key bottom right; plot ${p%,};
    set title 'test loss: rises when the model overfits'; set ylabel 'test cross-entropy'; set yrange [0.28:0.45];
    set key top left; plot ${q%,}; unset multiplot"
}

for l in "${lessons[@]}"; do "lesson_$l"; done
echo "lessons: plots in $here"
