#!/usr/bin/env bash
# faults.sh — hostile environments outside training's happy path: a rank frozen by SIGSTOP during eval, predict or
# synth (the stall inspector must end the job and name it), every writer on a full file system (exit 1 with one line
# naming the file, no signal death, no temporary left, the target not created), and SIGTERM / SIGINT in the middle
# of a write (the temporary removed, the interruption said, a non-zero exit).
#   faults.sh SCENARIO MPITRAIN      (exit 77 = skipped)
set -u
scenario=$1 bin=$2
work=faults-$scenario
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fail() { echo "FAIL: $*"; exit 1; }
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/procs.sh" # own_pids
crashed() { grep -Eq 'Segmentation fault|core dumped|signal 11|signal 6|Aborted|AddressSanitizer|runtime error:' "$1"; }

# A small dataset and a checkpoint trained on it (5 classes, 32 features).
make_model() {
  "$bin" synth --samples 2000 --test-samples "${1:-2000}" --features 32 --classes 5 --seed 3 --out d.h5 >/dev/null ||
    fail "synth"
  "$bin" train --data d.h5 --hidden 16 --epochs 1 --batch 100 --progress off --checkpoint-dir ck >/dev/null 2>&1 ||
    fail "train"
  ckpt=$(ls ck/ckpt-*.h5 | tail -n 1)
}

# ---- stalls: MPITRAIN_TEST_STOP=RANK:PHASE makes that rank SIGSTOP itself when it enters the phase ----
stall() { # PHASE COMMAND...: 3 ranks, rank 1 stops in PHASE; the job must end soon with the stall line naming it
  local phase=$1
  shift
  local t0
  t0=$(date +%s)
  MPITRAIN_TEST_STOP=1:$phase timeout --kill-after=5 60 mpirun -np 3 -x MPITRAIN_TEST_STOP "$bin" "$@" \
    --stall-timeout 2 >run.log 2>&1
  local status=$? took=$(( $(date +%s) - t0 ))
  own_pids "^$bin .*--stall-timeout 2" | xargs -r kill -KILL 2>/dev/null # a stopped rank mpirun did not reap
  grep stall run.log
  echo "job ended after $took s, exit status $status"
  [ "$status" -ne 124 ] && [ "$status" -ne 137 ] || { cat run.log; fail "the job hung with rank 1 stopped in $phase"; }
  [ "$status" -ne 0 ] || fail "a stalled job must not exit 0"
  grep -Eq "^mpitrain: stall: no progress for [0-9]+ s in the [a-z -]+ of step [0-9]+; waiting there: ranks? [0-9,-]+; rank 1 did not answer" run.log ||
    { cat run.log; fail "no one-line stall report naming rank 1"; }
  # start-up (~2 s on a loaded machine) + the timeout + the inspector's questions (5 s) + slack
  [ "$took" -le 20 ] || fail "took $took s to notice; expected at most --stall-timeout + 10 s after start-up"
}

# ---- disk full: a tmpfs of SIZE bytes ----
mounted=
mount_small() {
  mkdir -p small
  if ! mount -t tmpfs -o "size=$1" tmpfs small 2>/dev/null; then echo "SKIP: cannot mount a tmpfs (not root?)"; exit 77; fi
  mounted=1
}
umount_small() { umount small 2>/dev/null; mounted=; }
trap '[ -n "$mounted" ] && umount small 2>/dev/null' EXIT

# One writer on a full disk of each size: exit 1 (no signal), the one line naming TARGET, nothing left in small/.
full() { # SIZE TARGET-REGEX COMMAND...
  local size=$1 target=$2
  shift 2
  mount_small "$size"
  timeout --kill-after=5 60 "$@" >run.log 2>&1
  local status=$?
  local left
  left=$(ls -A small)
  umount_small
  echo "size $size: exit $status: $(grep -m1 'error' run.log)"
  crashed run.log && { cat run.log; fail "crashed on a full disk of $size"; }
  [ "$status" -eq 1 ] || { cat run.log; fail "size $size: exit status $status; expected 1"; }
  [ "$(grep -c '^mpitrain: error:' run.log)" -eq 1 ] || { cat run.log; fail "size $size: expected one error line"; }
  grep -Eq "^mpitrain: error: .*${target}.*No space left on device" run.log ||
    { cat run.log; fail "size $size: no 'No space left on device' naming $target"; }
  [ -z "$left" ] || fail "size $size: left behind in the full file system: $left"
}

# Sizes from nothing to just below what the output needs, so the failure hits the header, the first chunk, a later
# chunk and the final flush and close. NEEDED = bytes of the complete output.
sizes() {
  local needed=$1 pages=$(( ($1 + 4095) / 4096 ))
  echo 4k 16k 64k "$(( pages / 2 * 4 ))k" "$(( (pages - 2) * 4 ))k" "$(( (pages - 1) * 4 ))k"
}

# ---- signals ----
# Runs COMMAND in the background, waits until the temporary matching GLOB exceeds 4 MB, sends SIG to the process
# matched by VICTIM (pgrep -f pattern; "" = the command itself), and checks the end.
interrupt() { # SIG VICTIM GLOB TARGET COMMAND...
  local sig=$1 victim=$2 glob=$3 target=$4
  shift 4
  [ -e "$target" ] && cp -p "$target" before.copy
  "$@" >run.log 2>&1 &
  local pid=$! grown=
  for _ in $(seq 600); do
    # shellcheck disable=SC2086
    for f in $glob; do [ -f "$f" ] && [ "$(stat -c %s "$f")" -gt 4000000 ] && grown=1; done
    [ -n "$grown" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$grown" ] || { wait "$pid"; cat run.log; fail "the write never got going (or ended too soon)"; }
  local target_pid=$pid
  if [ -n "$victim" ]; then target_pid=$(own_pids "$victim" | tail -n 1); fi
  kill -"$sig" "$target_pid"
  local t0
  t0=$(date +%s)
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid"; cat run.log; fail "still running 30 s after SIG$sig"; }
  wait "$pid"
  local status=$?
  grep -E "interrupt|error" run.log
  echo "ended $(( $(date +%s) - t0 )) s after SIG$sig, exit status $status"
  crashed run.log && { cat run.log; fail "crashed"; }
  [ "$status" -ne 0 ] || fail "an interrupted write must not exit 0"
  grep -Eq "^mpitrain: (rank [0-9]+: )?[a-z]+ interrupted by SIG$sig: removed the unfinished [^;]+; nothing written" run.log ||
    { cat run.log; fail "no line saying the write was interrupted and its temporary removed"; }
  # shellcheck disable=SC2086
  left=$(ls -A $glob 2>/dev/null)
  [ -z "$left" ] || fail "temporary left behind: $left"
  if [ -e before.copy ]; then
    cmp -s before.copy "$target" || fail "the old $target was changed"
  else
    [ ! -e "$target" ] || fail "$target was created by an interrupted run"
  fi
  rm -f before.copy
}

case "$scenario" in
stall_eval)
  make_model 6000
  stall eval eval --checkpoint "$ckpt" --data d.h5 --micro-batch 64
  ;;
stall_predict)
  make_model 6000
  stall predict predict --checkpoint "$ckpt" --data d.h5 --micro-batch 64 --out p.csv
  [ ! -e p.csv ] || fail "a stalled predict wrote p.csv"
  ;;
stall_synth)
  stall write synth --samples 60000 --features 64 --classes 4 --shards 3 --out s.h5
  ;;

disk_full_synth)
  # 20000 x 64 float32 (5.2 MB, 5 appends of 4 MiB... ) and the same as 3 shards written by 1 and 2 ranks
  "$bin" synth --samples 20000 --features 64 --classes 4 --out ref.h5 >/dev/null || fail synth
  for size in $(sizes "$(stat -c %s ref.h5)"); do
    full "$size" "small/a.h5" "$bin" synth --samples 20000 --features 64 --classes 4 --out small/a.h5
    full "$size" "small/a.h5" mpirun -np 2 "$bin" synth --samples 20000 --features 64 --classes 4 --out small/a.h5
    full "$size" "small/a-0000[0-2]-of-00003.h5" "$bin" synth --samples 20000 --features 64 --classes 4 --shards 3 \
      --out small/a.h5
    full "$size" "small/a-0000[0-2]-of-00003.h5" mpirun -np 2 "$bin" synth --samples 20000 --features 64 --classes 4 \
      --shards 3 --out small/a.h5
  done
  ;;
disk_full_convert)
  # IDX: 3000 images of 28 x 28 (2.3 MB as uint8); CSV: 6000 rows of 40 features (0.98 MB as float32)
  /usr/bin/python3 - <<'EOF' || fail "cannot write the inputs"
import random, struct
random.seed(1)
n = 3000
with open("train-images-idx3-ubyte", "wb") as f:
    f.write(struct.pack(">IIII", 0x803, n, 28, 28)); f.write(bytes(random.getrandbits(8) for _ in range(n * 784)))
with open("train-labels-idx1-ubyte", "wb") as f:
    f.write(struct.pack(">II", 0x801, n)); f.write(bytes(random.randrange(10) for _ in range(n)))
with open("a.csv", "w") as f:
    for i in range(6000):
        f.write(",".join([str(i % 3)] + ["%.5f" % random.random() for _ in range(40)]) + "\n")
EOF
  "$bin" convert --dir . --out ref_idx.h5 >/dev/null || fail "convert idx"
  "$bin" convert --from csv --train a.csv --out ref_csv.h5 >/dev/null || fail "convert csv"
  for size in $(sizes "$(stat -c %s ref_idx.h5)"); do
    full "$size" "small/i.h5" "$bin" convert --dir . --out small/i.h5
    full "$size" "small/i-0000[01]-of-00002.h5" "$bin" convert --dir . --shards 2 --out small/i.h5
  done
  for size in $(sizes "$(stat -c %s ref_csv.h5)"); do
    full "$size" "small/c.h5" "$bin" convert --from csv --train a.csv --out small/c.h5
    full "$size" "small/c.h5" mpirun -np 2 "$bin" convert --from csv --train a.csv --out small/c.h5
  done
  ;;
disk_full_predict)
  make_model 3000
  "$bin" predict --checkpoint "$ckpt" --data d.h5 --out ref.csv >/dev/null || fail predict
  for size in $(sizes "$(stat -c %s ref.csv)"); do
    full "$size" "small/p.csv" "$bin" predict --checkpoint "$ckpt" --data d.h5 --out small/p.csv
    full "$size" "small/p.csv" mpirun -np 3 "$bin" predict --checkpoint "$ckpt" --data d.h5 --out small/p.csv
  done
  ;;
disk_full_train)
  make_model 500
  # A checkpoint of this model is ~16 KB and the log a few KB: sizes from none to several checkpoints
  for size in 4k 8k 12k 20k 28k 36k 52k; do
    mount_small "$size"
    timeout --kill-after=5 60 mpirun -np 2 "$bin" train --data d.h5 --hidden 16 --epochs 6 --batch 100 \
      --progress off --checkpoint-dir small/ck --log small/log.csv --keep 10 >run.log 2>&1
    status=$?
    left=$(find small -name '*.tmp.*')
    umount_small
    echo "size $size: exit $status: $(grep -m1 'error' run.log)"
    crashed run.log && { cat run.log; fail "crashed on a full disk of $size"; }
    [ "$status" -eq 1 ] || { cat run.log; fail "size $size: exit status $status; expected 1"; }
    grep -Eq "^mpitrain: error: .*(cannot write checkpoint small/ck/ckpt-[0-9]+.h5|metrics file 'small/log.csv').*No space left on device" run.log ||
      { cat run.log; fail "size $size: no 'No space left on device' naming the checkpoint or the log"; }
    [ -z "$left" ] || fail "size $size: temporaries left behind: $left"
  done
  ;;

signal_synth)
  # ~800 MB if it ran to the end: it must not
  big=(synth --samples 1000000 --features 784 --classes 10 --dtype uint8)
  interrupt TERM "" ".big.h5.tmp.*" big.h5 "$bin" "${big[@]}" --out big.h5
  interrupt INT "" ".big.h5.tmp.*" big.h5 "$bin" "${big[@]}" --out big.h5
  # 2 ranks, 2 shards: the signal reaches rank 1 only; then mpirun itself is signalled (it forwards to all ranks)
  interrupt TERM "^$bin synth .*--shards 2" ".big-0000?-of-00002.h5.tmp.*" big-00000-of-00002.h5 \
    mpirun -np 2 "$bin" "${big[@]}" --shards 2 --out big.h5
  interrupt TERM "^mpirun .*--shards 2" ".big-0000?-of-00002.h5.tmp.*" big-00000-of-00002.h5 \
    mpirun -np 2 "$bin" "${big[@]}" --shards 2 --out big.h5
  # an existing dataset of that name stays as it was
  "$bin" synth --samples 10 --features 3 --classes 2 --out big.h5 >/dev/null || fail synth
  interrupt TERM "" ".big.h5.tmp.*" big.h5 "$bin" "${big[@]}" --out big.h5
  ;;
signal_convert)
  /usr/bin/python3 - <<'EOF' || fail "cannot write the input"
import random
random.seed(1)
block = "".join(",".join([str(i % 3)] + ["%.4f" % random.random() for _ in range(64)]) + "\n" for i in range(2000))
with open("big.csv", "w") as f:
    for _ in range(150):
        f.write(block)
EOF
  interrupt TERM "" ".big.h5.tmp.*" big.h5 "$bin" convert --from csv --train big.csv --out big.h5
  interrupt INT "" ".big.h5.tmp.*" big.h5 "$bin" convert --from csv --train big.csv --out big.h5
  interrupt TERM "^$bin convert" ".big.h5.tmp.*" big.h5 mpirun -np 2 "$bin" convert --from csv --train big.csv --out big.h5
  ;;
signal_predict)
  "$bin" synth --samples 2000 --test-samples 1500000 --features 8 --classes 20 --seed 3 --out d.h5 >/dev/null ||
    fail synth
  "$bin" train --data d.h5 --hidden 8 --max-steps 5 --batch 100 --no-eval --progress off --checkpoint-dir ck \
    >/dev/null 2>&1 || fail train
  ckpt=$(ls ck/ckpt-*.h5 | tail -n 1)
  interrupt TERM "" ".out.csv.tmp.*" out.csv "$bin" predict --checkpoint "$ckpt" --data d.h5 --out out.csv
  interrupt INT "" ".out.csv.tmp.*" out.csv "$bin" predict --checkpoint "$ckpt" --data d.h5 --out out.csv
  # rank 2 of 3 gets it while rank 0 writes; then an existing out.csv must survive an interrupted run
  interrupt TERM "^$bin predict .*--out out.csv" ".out.csv.tmp.*" out.csv \
    mpirun -np 3 "$bin" predict --checkpoint "$ckpt" --data d.h5 --out out.csv
  echo "old" >out.csv
  interrupt TERM "" ".out.csv.tmp.*" out.csv "$bin" predict --checkpoint "$ckpt" --data d.h5 --out out.csv
  ;;
*) fail "unknown scenario $scenario" ;;
esac
echo PASS
