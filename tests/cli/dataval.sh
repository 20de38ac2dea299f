#!/usr/bin/env bash
# dataval.sh — hostile inputs that used to change data silently or answer with more than one line, for CTest:
# dataval.sh SCENARIO MPITRAIN [CKPT_TAMPER]
# `setup` writes the inputs into dataval/ (a dataset, a checkpoint, a truncated copy, a text file named .h5). Every
# other scenario works in dataval/SCENARIO, prints what the commands printed and exits 0 when they behaved; a broken
# expectation prints "FAIL: ..." and exits 1.
set -u
scenario=$1 bin=$2 tamper=${3:-}
fail() { echo "FAIL: $*"; exit 1; }
mpirun=(mpirun -np 2)
# An LZF plugin, where one is installed, would make filter 32000 available (and fail on the stand-in's bytes).
export HDF5_PLUGIN_PATH=/nonexistent

# The lines of a command's output that are not Open MPI's (its notices are blocks between lines of dashes).
ours() { awk '/^-+$/ && length($0) >= 20 { inblock = !inblock; next } !inblock && NF' "$1"; }

if [ "$scenario" = setup ]; then
  rm -rf dataval && mkdir -p dataval && cd dataval || exit 1
  "$bin" synth --samples 200 --test-samples 50 --features 8 --classes 3 --seed 3 --out d.h5 >/dev/null || fail synth
  "$bin" train --data d.h5 --hidden 4 --batch 50 --max-steps 3 --progress off --threads 1 --checkpoint-dir ck \
    >train.log 2>&1 || { cat train.log; fail "a checkpoint"; }
  cp ck/ckpt-000000000003.h5 truncated.h5 && truncate -s 3000 truncated.h5 || fail "truncated.h5"
  echo "this is a text file, not HDF5" >text.h5
  echo "inputs ready in $PWD"
  exit 0
fi

work=dataval/$scenario
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1

case "$scenario" in
one_line)
  # Every command that reads a checkpoint, on a truncated one and on a file that is not HDF5 at all: one line of
  # ours (HDF5's error stack was printed before it), the same whatever the command.
  for ck in truncated text; do
    for cmd in eval predict info resume; do
      case $cmd in
      eval) args=(eval --checkpoint ../$ck.h5 --data ../d.h5) ;;
      predict) args=(predict --checkpoint ../$ck.h5 --data ../d.h5 --out p.csv) ;;
      info) args=(info ../$ck.h5) ;;
      resume) args=(train --data ../d.h5 --hidden 4 --epochs 1 --progress off --threads 1 --resume ../$ck.h5) ;;
      esac
      timeout 60 "${mpirun[@]}" "$bin" "${args[@]}" >out.log 2>&1
      status=$?
      echo "== $cmd on $ck.h5 (exit $status):"
      cat out.log
      [ "$status" -ne 0 ] || fail "$cmd accepted $ck.h5"
      n=$(ours out.log | wc -l)
      [ "$n" -eq 1 ] || fail "$cmd on $ck.h5 printed $n lines besides Open MPI's; expected one"
      ours out.log | grep -q '^mpitrain: error: ' || fail "$cmd on $ck.h5: the line is not an error"
      ! grep -Eq 'HDF5-DIAG|#00|#001' out.log || fail "$cmd on $ck.h5 printed HDF5's error stack"
    done
  done
  echo "one line each" ;;
csv_long_line)
  # 8 MB without a line break: refused at the line limit, quickly, without first growing a buffer to the file's
  # size (getline did: a file of any size was read whole into one line). No `ulimit -v`: Open MPI's start-up alone
  # needs ~500 MB of address space, a sanitizer build terabytes, and a singleton that cannot map spins for ever.
  head -c 8000000 /dev/zero | tr '\0' '7' >long.csv || fail "long.csv"
  start=$(date +%s)
  "$bin" convert --from csv --train long.csv --out never.h5 >out.log 2>&1
  status=$?
  cat out.log
  [ "$status" -ne 0 ] || fail "accepted"
  grep -q '^mpitrain: error: long.csv:1: line longer than 1048576 bytes; is this a CSV file?$' out.log ||
    fail "not refused at the line limit"
  [ $(( $(date +%s) - start )) -le 10 ] || fail "took more than 10 s"
  [ ! -e never.h5 ] || fail "wrote never.h5"
  # A line of exactly 1 MiB is read (a label and 524287 features, a space to fill up), one byte more is not.
  line() { # "1,0,0,...,0" (524287 zeros) and $1 spaces
    printf '1'
    head -c $((2 * 524287)) /dev/zero | tr '\0' '0' | sed 's/0/,0/g' | head -c $((2 * 524287))
    printf "%$1s\n" ''
  }
  line 1 >edge.csv && line 2 >over.csv || fail "edge.csv"
  [ "$(head -n 1 edge.csv | wc -c)" -eq $((1048576 + 1)) ] || fail "edge.csv is not 1 MiB and a newline"
  "$bin" convert --from csv --train edge.csv --out edge.h5 --classes 2 >edge.log 2>&1 ||
    { cat edge.log; fail "edge.csv"; }
  grep -q '1 train + 0 test rows x 524287 features' edge.log || { cat edge.log; fail "edge.csv: not one row"; }
  "$bin" convert --from csv --train over.csv --out over.h5 --classes 2 >over.log 2>&1 && fail "over.csv accepted"
  grep -q 'over.csv:1: line longer than 1048576 bytes' over.log || { cat over.log; fail "over.csv"; }
  echo "refused at the limit" ;;
ini_twice)
  # The same key twice in an INI file (across sections too): one warning, from rank 0, naming both lines; the
  # later value is the one used.
  printf 'hidden = 4\n[optimizer]\nlr = 0.1\n\n[other]\nbatch = 50\nlr = 0.01\n' >x.ini
  timeout 60 "${mpirun[@]}" "$bin" train --config x.ini --data ../d.h5 --max-steps 1 --progress off --threads 1 \
    >out.log 2>&1 || { cat out.log; fail "train"; }
  cat out.log
  n=$(grep -c "^mpitrain: warning: x.ini:7: 'lr' set again (first at line 3); using the later value 0.01$" out.log)
  [ "$n" -eq 1 ] || fail "the warning appears $n times; expected once"
  echo "warned once" ;;
ckpt_lzf)
  # A checkpoint whose array is compressed with a filter this HDF5 lacks (re-saved by a foreign tool): named as
  # such, not as truncated.
  cp ../ck/ckpt-000000000003.h5 lzf.h5 && "$tamper" lzf.h5 lzf || fail tamper
  timeout 60 "${mpirun[@]}" "$bin" eval --checkpoint lzf.h5 --data ../d.h5 >out.log 2>&1
  status=$?
  cat out.log
  [ "$status" -ne 0 ] || fail "accepted"
  want="checkpoint lzf.h5: /model/dense0/W is compressed with filter 32000 (lzf), which this HDF5 lacks; re-save it"
  grep -q "^mpitrain: error: .*$want with gzip or no compression (h5repack -f NONE)$" out.log || fail "the filter is not named"
  echo "filter named" ;;
*) fail "unknown scenario $scenario" ;;
esac
