#!/usr/bin/env bash
# environment.sh — the machine fails the run, not the user: a disk that fills while a checkpoint is written, a
# metrics log on a full device, a checkpoint directory that cannot exist. Every rank must end with the reason, and
# nothing already saved may be lost.   environment.sh SCENARIO MPITRAIN DATA      (exit 77 = skipped)
set -u
scenario=$1 bin=$2 data=$3
work=env-$scenario
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fail() { echo "FAIL: $*"; exit 1; }
run() { timeout 30 mpirun -np 2 "$bin" train --data "$data" --hidden 16 --batch 48 --progress off "$@" >run.log 2>&1; }
case "$scenario" in
disk_full)
  # A 48 KiB file system holds one checkpoint of this model (~29 KiB) but not a second one next to it.
  mkdir -p small
  mount -t tmpfs -o size=48k tmpfs small 2>/dev/null || { echo "SKIP: cannot mount a tmpfs (not root?)"; exit 77; }
  trap 'umount small 2>/dev/null' EXIT
  run --epochs 3 --checkpoint-dir small
  status=$?
  cat run.log | grep -E "checkpoint|error"
  [ "$status" -ne 0 ] || fail "the run went on although a checkpoint could not be written"
  grep -Eq "^mpitrain: error: (rank 0: )?cannot write checkpoint small/ckpt-0+126.h5: No space left on device" run.log ||
    fail "no one-line reason naming the checkpoint and the full disk"
  ls small/.ckpt-* 2>/dev/null && fail "a temporary file was left behind"
  "$bin" info small/ckpt-000000000063.h5 | grep -q "crc32: .*matches the arrays" || fail "the previous checkpoint is damaged"
  ;;
log_full)
  run --epochs 1 --log /dev/full --log-format csv
  status=$?
  cat run.log | grep error
  [ "$status" -ne 0 ] || fail "a metrics log that could not be written went unreported"
  grep -Eq "^mpitrain: error: (rank 0: )?writing metrics file '/dev/full' failed: No space left on device" run.log ||
    fail "no one-line reason for the log"
  ;;
ckpt_dir)
  touch afile
  run --epochs 1 --checkpoint-dir afile/sub
  status=$?
  cat run.log | grep error
  [ "$status" -ne 0 ] || fail "accepted a checkpoint directory inside a file"
  grep -Eq "^mpitrain: error: .*--checkpoint-dir afile/sub: cannot create it: Not a directory" run.log ||
    fail "no one-line reason naming the directory"
  ;;
*) fail "unknown scenario $scenario" ;;
esac
echo PASS
