#!/usr/bin/env bash
# checkpoint.sh — end-to-end checkpoint scenarios for CTest: checkpoint.sh SCENARIO MPITRAIN TAMPER DATA
# Each scenario works in a fresh directory of its own and exits non-zero (saying why) when an expectation fails.
set -u
scenario=$1 bin=$2 tamper=$3 data=$4
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/compare.sh" # same_state, same_losses
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/procs.sh"   # own_pids
work=ckpt-$scenario
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
mpirun=(mpirun)
fail() { echo "FAIL: $*"; exit 1; }
train() { local np=$1; shift; "${mpirun[@]}" -np "$np" "$bin" train --data "$data" --hidden 16 --batch 48 \
            --progress off --threads 1 "$@"; }
newest() { ls "$1"/ckpt-*.h5 2>/dev/null | sort | tail -n 1; }
# runs "$@" in the background; sets $pid (mpirun) and waits for a checkpoint of step >= $ckpt_min in $dir
start_and_wait() {
  "$@" > run.log 2>&1 &
  pid=$!
  for _ in $(seq 600); do
    [ -n "$(ls "$dir" 2>/dev/null | grep -E 'ckpt-0*([5-9][0-9]|[1-9][0-9]{2,})\.h5')" ] && return 0
    kill -0 "$pid" 2>/dev/null || { cat run.log; fail "the run ended before it could be interrupted"; }
    sleep 0.05
  done
  fail "no checkpoint appeared"
}
one_rank_pid() { own_pids "^$bin train .*--checkpoint-dir $dir" | tail -n 1; }

case "$scenario" in
exact | exact_bn | exact_shard | exact_bf16 | exact_bf16_shard)
  # 3 epochs straight vs stopped mid-epoch 2 (3000/48 = 63 steps an epoch: step 100) and resumed. exact_bn adds
  # what carries extra state: batch-norm running statistics, dropout masks keyed by step, a schedule, L2. The bf16
  # ones carry --grad-comm bf16's error-feedback residuals (each rank's; replicated, the owners' of the sums too).
  extra=()
  [ "$scenario" = exact_bn ] && extra=(--batchnorm before --dropout 0.2 --l2 0.01 --lr-schedule cosine --warmup-steps 10)
  [ "$scenario" = exact_shard ] && extra=(--shard-optimizer --bucket-mb 0.001)
  [ "$scenario" = exact_bf16 ] && extra=(--grad-comm bf16)
  [ "$scenario" = exact_bf16_shard ] && extra=(--grad-comm bf16 --shard-optimizer --bucket-mb 0.001)
  train 2 --epochs 3 --checkpoint-dir A "${extra[@]}" >a.log 2>&1 || { cat a.log; fail "straight run"; }
  train 2 --epochs 3 --checkpoint-dir B --max-steps 100 "${extra[@]}" >b1.log 2>&1 || { cat b1.log; fail "first half"; }
  train 2 --epochs 3 --checkpoint-dir B --resume auto "${extra[@]}" >b2.log 2>&1 || { cat b2.log; fail "resumed half"; }
  grep -q "resumed from B/ckpt-000000000100.h5: step 100, epoch 2" b2.log || { cat b2.log; fail "did not resume at step 100"; }
  [ "$(basename "$(newest A)")" = "$(basename "$(newest B)")" ] || fail "final steps differ: $(newest A) $(newest B)"
  same_state "$(newest A)" "$(newest B)"
  case "$scenario" in exact_bf16*)
    want=/gradcomm/worker_residual; [ "$scenario" = exact_bf16 ] && want="/gradcomm/server_residual $want"
    have=$(h5ls -r "$(newest A)" | awk '$1 ~ /^\/gradcomm\// { printf "%s%s", sep, $1; sep = " " }')
    [ "$have" = "$want" ] || fail "expected $want in the checkpoint, found '$have'"
    h5diff "$(newest A)" "$(newest B)" /gradcomm >/dev/null || fail "bf16 residuals differ"
    grep -q "/gradcomm/worker_residual *\[2, " <("$bin" info "$(newest B)") || fail "info does not list the residuals"
  esac
  echo "straight and stop-and-resume runs end bit-identical at $(newest A)"
  ;;
deterministic | deterministic_shard)
  # --deterministic: straight runs at 1, 2, 3 and 4 ranks end with the same bits (parameters, moments, batch-norm
  # statistics, every logged loss, the test accuracy), and so does a run stopped at 4 ranks and resumed at 3.
  det=(--deterministic --det-group 8 --batchnorm before --dropout 0.2 --l2 0.01 --clip-norm 1 --epochs 2 --threads auto
       --log-every 1)
  # 6 groups of 8 per batch: int32 sums; deterministic_shard: 24 groups of 2, int64 sums.
  [ "$scenario" = deterministic_shard ] && det+=(--shard-optimizer --bucket-mb 0.001 --det-group 2)
  for np in 1 2 3 4; do
    train "$np" "${det[@]}" --checkpoint-dir "D$np" --log "d$np.csv" >"d$np.log" 2>&1 || { cat "d$np.log"; fail "np=$np"; }
  done
  train 4 "${det[@]}" --checkpoint-dir R --max-steps 70 >r1.log 2>&1 || { cat r1.log; fail "np=4 first part"; }
  train 3 "${det[@]}" --checkpoint-dir R --resume auto --log r.csv >r2.log 2>&1 || { cat r2.log; fail "resume at np=3"; }
  grep -q "written at 4 ranks" r2.log || { cat r2.log; fail "np=3 did not resume the np=4 checkpoint"; }
  final=$(basename "$(newest D1)")
  for d in D2 D3 D4 R; do
    [ "$(basename "$(newest $d)")" = "$final" ] || fail "$d ends at $(newest $d), D1 at $final"
    same_state "D1/$final" "$d/$final"
    h5diff "D1/$final" "$d/$final" /model/bn0/running_mean >/dev/null || fail "batch-norm statistics differ: $d"
  done
  # Every step's loss as logged (columns step, epoch, loss...: the whole line but the timing columns).
  steps() { awk -F, '$1 == "step" { print $3, $5, $6, $7 }' "$1"; }
  for np in 2 3 4; do
    cmp -s <(steps d1.csv) <(steps "d$np.csv") || { diff <(steps d1.csv) <(steps "d$np.csv") | head; fail "losses differ at np=$np"; }
  done
  cmp -s <(steps d1.csv | awk '$1 > 70') <(steps r.csv) || fail "losses after the resume differ"
  acc() { grep -o 'final test accuracy: [0-9.]*% (test loss [0-9.]*)' "$1"; }
  for np in 2 3 4; do
    [ -n "$(acc d1.log)" ] && [ "$(acc d1.log)" = "$(acc "d$np.log")" ] || fail "test accuracy differs at np=$np"
  done
  crc=$(h5dump -a /crc32 "D1/$final" | sed -n 's/^ *(0): //p')
  echo "np=1,2,3,4 and np=4 -> 3 resumed: bit-identical at $final (CRC-32 of the state $crc)"
  ;;
early_stop)
  # A small, noisy training set and a big network overfit within a few epochs: early stopping must stop, end with
  # the best model (restored: the final test accuracy is that of best.h5), and say so.
  "$bin" synth --samples 400 --test-samples 600 --features 32 --classes 4 --noise 4 --seed 9 --out over.h5 >/dev/null || fail synth
  "${mpirun[@]}" -np 2 "$bin" train --data over.h5 --hidden 256,256 --lr 3e-3 --batch 32 --epochs 60 --val-fraction 0.25 \
    --patience 3 --checkpoint-dir S --progress off --threads 1 >s.log 2>&1 || { cat s.log; fail "run"; }
  cat s.log | grep -E "early stopping|restored|final"
  grep -q "early stopping: the validation loss has not improved for 3 epochs" s.log || fail "did not stop early"
  best=$(sed -n 's/.*restored the model of epoch \([0-9]*\).*/\1/p' s.log)
  [ -n "$best" ] || fail "the best model was not restored"
  stopped=$(grep -c "^epoch " s.log)
  [ "$stopped" -eq $((best + 3)) ] || fail "stopped after $stopped epochs; the best was epoch $best, patience 3"
  vbest=$(sed -n "s/^epoch $best\/60 .*val loss \([0-9.]*\) .*/\1/p" s.log)
  grep -q "validation loss $vbest" s.log || fail "restored validation loss is not epoch $best's ($vbest)"
  acc=$(sed -n 's/final test accuracy: \([0-9.]*\)%.*/\1/p' s.log)
  "$bin" eval --checkpoint S/best.h5 --data over.h5 >e.log 2>&1 || { cat e.log; fail "eval best.h5"; }
  grep -q "accuracy $acc%" e.log || { cat e.log; fail "best.h5 does not give the final accuracy $acc%"; }
  echo "stopped after epoch $stopped, restored epoch $best (val loss $vbest), test accuracy $acc% = best.h5"
  ;;
world_size | world_size_shard)
  # Written at 4 ranks; continued at 4, 1 and 3 ranks from the same checkpoint: the same losses. With a sharded
  # optimiser the moments are gathered into the checkpoint and re-cut for the new rank count.
  extra=()
  [ "$scenario" = world_size_shard ] && extra=(--shard-optimizer --bucket-mb 0.001)
  train 4 --epochs 3 --checkpoint-dir W4 --max-steps 40 "${extra[@]}" >w.log 2>&1 || { cat w.log; fail "np=4 first part"; }
  cp -r W4 W1 && cp -r W4 W3
  for np in 4 1 3; do
    train "$np" --epochs 3 --checkpoint-dir "W$np" --resume auto --max-steps 80 --log "w$np.csv" "${extra[@]}" >"w$np.log" 2>&1 ||
      { cat "w$np.log"; fail "resume at np=$np"; }
    grep -q "written at 4 ranks" "w$np.log" || { cat "w$np.log"; fail "np=$np did not resume the np=4 checkpoint"; }
  done
  same_losses w4.csv w1.csv 40 1e-5
  same_losses w4.csv w3.csv 40 1e-5
  ;;
world_size_bf16)
  # --grad-comm bf16 written at 4 ranks (residuals [4, n]); continued at 3 (their total on rank 0, the owners'
  # re-cut), 2 sharded (the owners' folded in too) and 1 (nothing rounded: dropped): every run goes on to the end,
  # close to the 4-rank continuation (bf16 sums of other rank counts round otherwise), writing its own residuals.
  train 4 --epochs 3 --checkpoint-dir W4 --max-steps 40 --grad-comm bf16 >w.log 2>&1 || { cat w.log; fail "np=4 first part"; }
  cp -r W4 W3 && cp -r W4 W2 && cp -r W4 W1
  for np in 4 3 2 1; do
    more=(); [ "$np" = 2 ] && more=(--shard-optimizer --bucket-mb 0.001)
    train "$np" --epochs 3 --checkpoint-dir "W$np" --resume auto --max-steps 80 --log "w$np.csv" --grad-comm bf16 \
      "${more[@]}" >"w$np.log" 2>&1 || { cat "w$np.log"; fail "resume at np=$np"; }
    grep -q "written at 4 ranks" "w$np.log" || { cat "w$np.log"; fail "np=$np did not resume the np=4 checkpoint"; }
    [ "$(basename "$(newest "W$np")")" = ckpt-000000000080.h5 ] || fail "np=$np did not reach step 80"
    rows=$(h5ls "$(newest "W$np")/gradcomm/worker_residual" 2>/dev/null | sed -n 's/.*{\([0-9]*\), .*/\1/p')
    [ "$np" = 1 ] && { [ -z "$rows" ] || fail "one rank rounds nothing, yet wrote residuals"; continue; }
    [ "$rows" = "$np" ] || fail "np=$np wrote residuals of '$rows' ranks"
  done
  grep -q "residuals of 4 ranks go to rank 0 as their sum" w3.log || { cat w3.log; fail "np=3: no note on the residuals"; }
  grep -q "drops them" w1.log || { cat w1.log; fail "np=1: no note on the dropped residuals"; }
  for np in 3 2 1; do same_losses w4.csv "w$np.csv" 40 1e-4; done
  ;;
kill | sigterm)
  "$bin" synth --samples 8000 --test-samples 500 --features 256 --classes 4 --noise 3 --out big.h5 >/dev/null || fail synth
  big=(--data big.h5 --hidden 256,256 --batch 64 --epochs 12 --checkpoint-every 25 --progress off --threads 1)
  "${mpirun[@]}" -np 2 "$bin" train "${big[@]}" --checkpoint-dir U >u.log 2>&1 || { cat u.log; fail "uninterrupted run"; }
  dir=R
  start_and_wait "${mpirun[@]}" -np 2 "$bin" train "${big[@]}" --checkpoint-dir R
  victim=$(one_rank_pid)
  [ -n "$victim" ] || fail "no rank process found"
  t0=$(date +%s%N)
  if [ "$scenario" = kill ]; then kill -KILL "$victim"; else kill -TERM "$victim"; fi
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid"; fail "the job still runs 15 s after one rank got SIG$scenario"; }
  wait "$pid"
  status=$?
  echo "job ended $(( ($(date +%s%N) - t0) / 1000000 )) ms after the signal, exit status $status"
  cat run.log | tail -n 3
  if [ "$scenario" = sigterm ]; then
    [ "$status" -eq 0 ] || fail "expected exit status 0 after SIGTERM, got $status"
    step=$(sed -n 's/.*stopped by a signal after step \([0-9]*\).*/\1/p' run.log)
    [ -n "$step" ] || fail "no 'stopped by a signal' message"
    [ -f "R/ckpt-$(printf %012d "$step").h5" ] || fail "no checkpoint for step $step"
  else
    [ "$status" -ne 0 ] || fail "a killed rank must make the job fail"
  fi
  ls R/.ckpt-* 2>/dev/null && echo "(a temporary is left: it is never taken for a checkpoint)"
  "${mpirun[@]}" -np 2 "$bin" train "${big[@]}" --checkpoint-dir R --resume auto >r.log 2>&1 || { cat r.log; fail "resume"; }
  grep "resumed from" r.log
  [ "$(basename "$(newest U)")" = "$(basename "$(newest R)")" ] || fail "final steps differ"
  same_state "$(newest U)" "$(newest R)"
  echo "interrupted and resumed run ends bit-identical to the uninterrupted one"
  ;;
damaged)
  train 2 --epochs 3 --checkpoint-dir D --keep 3 >d.log 2>&1 || { cat d.log; fail "run"; }
  mapfile -t ck < <(ls D/ckpt-*.h5 | sort)
  [ "${#ck[@]}" -eq 3 ] || fail "expected 3 checkpoints kept, got ${#ck[@]}"
  # truncated newest: auto skips it with a warning and takes the one before
  cp -r D T && truncate -s 5000 "T/$(basename "${ck[2]}")" && cp "T/$(basename "${ck[2]}")" truncated.h5
  train 2 --epochs 4 --checkpoint-dir T --resume auto >t.log 2>&1 || { cat t.log; fail "resume past a truncated checkpoint"; }
  grep -q "warning: skipping T/$(basename "${ck[2]}")" t.log || { cat t.log; fail "no warning for the truncated checkpoint"; }
  grep -q "resumed from T/$(basename "${ck[1]}")" t.log || { cat t.log; fail "did not fall back to the previous checkpoint"; }
  # silently corrupted newest: the CRC catches it
  cp -r D C && "$tamper" "C/$(basename "${ck[2]}")" flip && cp "C/$(basename "${ck[2]}")" corrupt.h5 || fail tamper
  train 2 --epochs 4 --checkpoint-dir C --resume auto >c.log 2>&1 || { cat c.log; fail "resume past a corrupt checkpoint"; }
  grep -q "fails its CRC-32 check" c.log || { cat c.log; fail "CRC mismatch not reported"; }
  grep -q "resumed from C/$(basename "${ck[1]}")" c.log || { cat c.log; fail "did not fall back past the corrupt one"; }
  # the same files named explicitly are refused on every rank (copies: the runs above replaced the originals)
  expect_refusal() { # regex, then train args
    local regex=$1; shift
    local t0=$(date +%s)
    train 3 --epochs 4 "$@" >x.log 2>&1 && { cat x.log; fail "accepted: $*"; }
    grep -Eq "^mpitrain: error: .*$regex" x.log || { cat x.log; fail "expected /$regex/ for: $*"; }
    [ $(( $(date +%s) - t0 )) -le 10 ] || fail "took more than 10 s to refuse: $*"
    echo "refused: $(grep '^mpitrain: error' x.log)"
  }
  expect_refusal "truncated|not an HDF5" --resume truncated.h5
  expect_refusal "fails its CRC-32 check" --resume corrupt.h5
  cp "${ck[2]}" newer.h5 && "$tamper" newer.h5 version 99 || fail tamper
  expect_refusal "format version 99.*use a newer mpitrain" --resume newer.h5
  expect_refusal "not an mpitrain checkpoint" --resume "$data"
  expect_refusal "holds a 32-16-4 relu model. this run builds 32-8-4 relu" --resume "${ck[2]}" --hidden 8
  expect_refusal "written with --optimizer adam. this run uses sgd" --resume "${ck[2]}" --optimizer sgd
  "$bin" synth --samples 200 --features 32 --classes 3 --out three.h5 >/dev/null || fail synth
  expect_refusal "trained for 4 classes. this dataset has 3" --resume "${ck[2]}" --data three.h5
  mkdir -p N && cp "$data" N/ckpt-000000999999.h5
  expect_refusal "all 1 checkpoints in N are damaged" --checkpoint-dir N --resume auto
  ;;
infer)
  train 2 --epochs 2 --checkpoint-dir E >e.log 2>&1 || { cat e.log; fail "run"; }
  acc=$(sed -n 's/final test accuracy: \([0-9.]*\)%.*/\1/p' e.log)
  for np in 1 3; do
    "${mpirun[@]}" -np "$np" "$bin" eval --checkpoint "$(newest E)" --data "$data" >"eval$np.log" 2>&1 || { cat "eval$np.log"; fail eval; }
    grep -q "accuracy $acc%" "eval$np.log" || { cat "eval$np.log"; fail "eval at np=$np does not give the training's $acc%"; }
    "${mpirun[@]}" -np "$np" "$bin" predict --checkpoint "$(newest E)" --data "$data" --out "p$np.csv" >/dev/null 2>&1 || fail predict
  done
  cmp p1.csv p3.csv || fail "predictions differ between 1 and 3 ranks"
  [ "$(wc -l < p1.csv)" -eq 601 ] || fail "expected 600 rows and a header"
  right=$(awk -F, 'NR > 1 && $2 == $3 { n++ } END { print n }' p1.csv)
  awk -v r="$right" -v a="$acc" 'BEGIN { exit !(r / 600 * 100 - a < 0.01 && a - r / 600 * 100 < 0.01) }' ||
    fail "predicted classes give $right/600 right; eval said $acc%"
  "$bin" info "$(newest E)" >info.log 2>&1 || { cat info.log; fail info; }
  grep -q "crc32: .*matches the arrays" info.log || { cat info.log; fail "info does not verify the CRC"; }
  # readable without mpitrain
  h5dump -d /model/dense1/b "$(newest E)" | grep -q "DATASPACE  SIMPLE { ( 4 ) / ( 4 ) }" || fail "h5dump cannot read /model/dense1/b"
  echo "eval ($acc%), predict and info agree at 1 and 3 ranks"
  ;;
*) fail "unknown scenario $scenario" ;;
esac
echo PASS
