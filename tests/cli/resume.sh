#!/usr/bin/env bash
# resume.sh — what a resumed run does with what the first part left: the metrics log continues (each step once,
# elapsed time carried on, rows written after the last checkpoint dropped, a file of another kind refused), and
# the command line is compared with the checkpoint's options (model options refused, trajectory options warned
# about, the rest silent).   resume.sh SCENARIO MPITRAIN DATA
set -u
scenario=$1 bin=$2 data=$3
work=resume-$scenario
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fail() { echo "FAIL: $*"; exit 1; }
# 3000 rows / 48 = 63 steps an epoch
train() { mpirun -np 2 "$bin" train --data "$data" --hidden 32,16 --batch 48 --epochs 3 --progress off --threads 1 "$@"; }
# The records of a metrics file as "kind step elapsed_s loss", CSV or JSONL.
records() {
  case "$1" in
  *.csv) awk -F, 'NR > 1 { print $1, $3, ($9 == "" ? "-" : $9), ($5 == "" ? "-" : $5) }' "$1" ;;
  *) sed -E 's/.*"kind":"([a-z]+)".*"step":([0-9]+).*/\1 \2 &/' "$1" |
       awk '{ el = "-"; lo = "-"; if (match($0, /"elapsed_s":[^,}]*/)) el = substr($0, RSTART + 12, RLENGTH - 12);
              if (match($0, /"loss":[^,}]*/)) lo = substr($0, RSTART + 7, RLENGTH - 7); print $1, $2, el, lo }' ;;
  esac
}
# Every step of 1..$2 exactly once and in order, $3 epoch records, elapsed_s never decreasing, one CSV header.
check_log() {
  local f=$1 steps=$2 epochs=$3
  [ -f "$f" ] || fail "$f is missing"
  case "$f" in *.csv) [ "$(grep -c '^kind,' "$f")" -eq 1 ] && head -n 1 "$f" | grep -q '^kind,' ||
                        fail "$f: expected exactly one header, on line 1" ;; esac
  records "$f" | awk -v steps="$steps" -v epochs="$epochs" -v f="$f" '
    $1 == "step" { n++; if ($2 != n) { print f ": step record " n " is step " $2; bad = 1; exit 1 } }
    $1 == "epoch" { e++ }
    $3 != "-" { if ($3 + 0 < last) { print f ": elapsed_s goes back from " last " to " $3 " at step " $2; bad = 1 }
                last = $3 + 0 }
    $4 == "999" { print f ": a row written after the last checkpoint survived (step " $2 ")"; bad = 1 }
    END { if (!bad && n != steps) { print f ": " n " step records, expected " steps; bad = 1 }
          if (!bad && e != epochs) { print f ": " e " epoch records, expected " epochs; bad = 1 }
          exit bad }' || fail "$f is not one continuous log"
  echo "$f: steps 1..$steps once each, $epochs epoch records, elapsed_s non-decreasing"
}

case "$scenario" in
log_append)
  # Stopped by --max-steps mid-epoch 2 and by SIGTERM, resumed with the same --log: one log of the whole run.
  for f in m.csv m.jsonl; do
    train --checkpoint-dir "C$f" --log "$f" --max-steps 100 >a.log 2>&1 || { cat a.log; fail "first part ($f)"; }
    train --checkpoint-dir "C$f" --log "$f" --resume auto >b.log 2>&1 || { cat b.log; fail "resumed part ($f)"; }
    grep -q "resumed from C$f/ckpt-000000000100.h5" b.log || { cat b.log; fail "did not resume at step 100"; }
    grep -q "continuing $f after step 100" b.log || { cat b.log; fail "no note that $f continues"; }
    check_log "$f" 189 3
    el=$(records "$f" | awk '$2 == 100 && $1 == "step" { print $3 }')
    awk -v e="$el" 'BEGIN { exit !(e > 0) }' || fail "step 100 has elapsed_s '$el'"
  done
  # A fresh run (no checkpoint yet) starts the file anew, whatever it held.
  train --checkpoint-dir F --log m.csv --resume auto --max-steps 10 >f.log 2>&1 || { cat f.log; fail "fresh run"; }
  check_log m.csv 10 0
  ;;
log_crash)
  # Rows logged after the last checkpoint (the run crashed before the next one) are dropped on resume.
  train --checkpoint-dir C --log m.csv --max-steps 100 --checkpoint-every 40 --no-checkpoint-epochs >a.log 2>&1 ||
    { cat a.log; fail "first part"; }
  rm C/ckpt-000000000100.h5 # as if killed between step 80's checkpoint and the end
  # 20 step records and the end record of steps 81-100, the fake row and the torn line: 23 records dropped
  echo "step,2,101,48,999,0.5,0.0005,1000,1e9,,,,,,," >>m.csv # and the row of a step that never was saved
  printf 'step,2,102,48,9' >>m.csv                           # torn mid-line by the crash
  train --checkpoint-dir C --log m.csv --resume auto >b.log 2>&1 || { cat b.log; fail "resumed part"; }
  grep -q "resumed from C/ckpt-000000000080.h5" b.log || { cat b.log; fail "did not resume at step 80"; }
  grep -q "continuing m.csv after step 80 (dropped 23 records" b.log || { cat b.log; fail "no note of the dropped rows"; }
  check_log m.csv 189 3
  # JSONL likewise
  train --checkpoint-dir J --log m.jsonl --max-steps 50 --checkpoint-every 20 >c.log 2>&1 || { cat c.log; fail "jsonl"; }
  rm J/ckpt-000000000050.h5
  echo '{"kind":"step","epoch":1,"step":51,"samples":48,"loss":999}' >>m.jsonl
  train --checkpoint-dir J --log m.jsonl --resume auto >d.log 2>&1 || { cat d.log; fail "jsonl resumed"; }
  grep -q "resumed from J/ckpt-000000000040.h5" d.log || { cat d.log; fail "did not resume at step 40"; }
  check_log m.jsonl 189 3
  ;;
log_foreign)
  # A --log file that is not a metrics log of this format is refused on resume, and left as it was.
  train --checkpoint-dir C --max-steps 20 >a.log 2>&1 || { cat a.log; fail "first part"; }
  refused() { # file, regex
    cp "$1" before
    train --checkpoint-dir C --log "$1" --resume auto >x.log 2>&1 && { cat x.log; fail "accepted --log $1"; }
    grep -Eq "^mpitrain: error: (rank 0: )?--log $1: $2" x.log || { cat x.log; fail "expected /$2/ for $1"; }
    [ "$(grep -c 'mpitrain: error' x.log)" -eq 1 ] || { cat x.log; fail "expected one error line"; }
    cmp -s before "$1" || fail "$1 was changed"
    echo "refused: $(grep '^mpitrain: error' x.log)"
  }
  printf 'name,score\nalice,3\n' >results.csv
  refused results.csv "not a metrics log of mpitrain \(its first line is not the header kind,epoch,step"
  printf '{"kind":"step","epoch":1,"step":3}\nnot json\n' >notes.jsonl
  refused notes.jsonl "not a metrics log of mpitrain in jsonl format: line 2 is not a metrics record"
  printf 'kind,epoch,step,samples,loss,acc,lr,samples_per_s,elapsed_s,test_loss,test_acc,val_loss,val_acc,grad_norm,layer,weight_norm\n' >wrong.jsonl
  refused wrong.jsonl "not a metrics log of mpitrain in jsonl"
  ;;
options)
  train --checkpoint-dir O --lr 0.003 --max-steps 30 >a.log 2>&1 || { cat a.log; fail "first part"; }
  train --checkpoint-dir O --lr 0.003 --resume auto --max-steps 40 --hidden 32,8 >h.log 2>&1 &&
    { cat h.log; fail "resumed with another --hidden"; }
  cat h.log
  grep -q "^mpitrain: error: .*--hidden 32,16 → 32,8.*new --checkpoint-dir" h.log || fail "the refusal does not name --hidden 32,16 → 32,8"
  [ "$(grep -c 'mpitrain: error' h.log)" -eq 1 ] || fail "expected one error line"
  train --checkpoint-dir O --lr 0.001 --batch 96 --resume auto --max-steps 40 >l.log 2>&1 || { cat l.log; fail "resumed with another --lr"; }
  grep "warning" l.log
  grep -q "^warning: .*--lr 0.003 → 0.001, --batch 48 → 96" l.log || fail "no warning naming --lr 0.003 → 0.001, --batch 48 → 96"
  [ "$(grep -c '→' l.log)" -eq 1 ] || fail "expected the differences on one line"
  grep -q "resumed from O/ckpt-000000000030.h5" l.log || fail "did not continue"
  # the first checkpoint's options were --lr 0.003 --batch 48; the last one's are those of the run that wrote it
  train --checkpoint-dir O --lr 0.001 --batch 96 --resume auto --max-steps 50 --log o.csv --progress plain \
    --checkpoint-every 5 --threads 2 --stall-timeout 100 --in-memory no >s.log 2>&1 || { cat s.log; fail "resumed with other --log"; }
  grep -q "resumed from O/ckpt-000000000040.h5" s.log || { cat s.log; fail "did not continue"; }
  ! grep -q "→" s.log || { cat s.log; fail "options that change neither model nor trajectory were reported"; }
  echo "--hidden refused, --lr / --batch warned about on one line, --log / --progress / --threads ... silent"
  ;;
*) fail "unknown scenario $scenario" ;;
esac
echo PASS
