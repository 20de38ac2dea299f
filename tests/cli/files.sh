#!/usr/bin/env bash
# files.sh — outputs that would destroy an input of the same run, for CTest: files.sh SCENARIO MPITRAIN
# `setup` writes the inputs into files/ (a dataset, a sharded set, a checkpoint, a CSV, an INI file, a FIFO, a
# directory). Every other scenario works on its own copies in files/SCENARIO, runs one command that must be refused,
# prints its output, checks every input it names is byte-identical afterwards (cmp with a copy taken before), and
# exits with the command's status. A broken expectation prints "FAIL: ..." (the tests refuse that line).
set -u
scenario=$1 bin=$2
fail() { echo "FAIL: $*"; exit 99; }

if [ "$scenario" = setup ]; then
  rm -rf files && mkdir -p files && cd files || exit 1
  "$bin" synth --samples 200 --test-samples 50 --features 8 --classes 3 --seed 3 --out d.h5 >/dev/null || fail synth
  "$bin" synth --samples 200 --test-samples 50 --features 8 --classes 3 --seed 3 --shards 2 --out s.h5 >/dev/null ||
    fail "synth --shards 2"
  "$bin" train --data d.h5 --hidden 4 --batch 50 --max-steps 3 --progress off --threads 1 --checkpoint-dir ck \
    >train.log 2>&1 || { cat train.log; fail "a checkpoint"; }
  [ -f ck/ckpt-000000000003.h5 ] || fail "no ck/ckpt-000000000003.h5"
  printf 'label,a,b\n0,1,2\n1,3,4\n0,5,6\n1,7,8\n' >c.csv
  printf 'hidden = 4\nepochs = 1\n' >ok.ini
  mkfifo fifo || fail mkfifo
  mkdir -p adir idx
  mkfifo idx/train-images-idx3-ubyte && touch idx/train-labels-idx1-ubyte || fail "idx/"
  echo "inputs ready in $PWD"
  exit 0
fi

work=files/$scenario
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
cp ../d.h5 ../s-0000[01]-of-00002.h5 ../c.csv ../ok.ini . && cp -r ../ck . || fail "copying the inputs"
mpirun=(mpirun -np 2)
train() { "${mpirun[@]}" "$bin" train --hidden 4 --batch 50 --epochs 1 --progress off --threads 1 "$@"; }

# run FILE... -- COMMAND...: COMMAND must leave every FILE as it was
run() {
  local files=()
  while [ "$1" != "--" ]; do files+=("$1"); shift; done
  shift
  for f in "${files[@]}"; do cp "$f" "$f.before" || fail "cannot copy $f"; done
  "$@" 2>&1
  local status=$?
  for f in "${files[@]}"; do
    [ -f "$f" ] || fail "$f is gone"
    cmp -s "$f" "$f.before" || fail "$f was overwritten"
  done
  exit $status
}

case "$scenario" in
log_data_symlink)  # the log named through a symbolic link to the dataset
  ln -s d.h5 m.csv
  run d.h5 -- train --data d.h5 --log m.csv ;;
log_data_dotdot)   # ... and through another path to it
  mkdir sub
  run d.h5 -- train --data d.h5 --log sub/../d.h5 --log-format csv ;;
log_data_shard)    # one shard of a sharded set given by its base name
  run s-00000-of-00002.h5 s-00001-of-00002.h5 -- train --data s.h5 --log ./s-00001-of-00002.h5 --log-format csv ;;
log_data_hardlink) # a hard link: another name, the same inode
  ln d.h5 m.csv
  run d.h5 -- train --data d.h5 --log m.csv ;;
log_resume)        # the checkpoint being resumed
  run ck/ckpt-000000000003.h5 -- train --data d.h5 --resume ck/ckpt-000000000003.h5 --log ck/ckpt-000000000003.h5 \
    --log-format csv ;;
log_resume_auto)   # a checkpoint of --checkpoint-dir that --resume auto may pick
  run ck/ckpt-000000000003.h5 -- train --data d.h5 --checkpoint-dir ck --resume auto \
    --log ck/ckpt-000000000003.h5 --log-format csv ;;
log_config)        # the configuration file
  run ok.ini -- train --data d.h5 --config ok.ini --log ./ok.ini --log-format csv ;;
log_dir)           # a directory: refused before training, not after it
  run d.h5 -- train --data d.h5 --log ck --log-format csv ;;
predict_out_checkpoint)
  run ck/ckpt-000000000003.h5 d.h5 -- "${mpirun[@]}" "$bin" predict --checkpoint ck/ckpt-000000000003.h5 --data d.h5 \
    --out ck/ckpt-000000000003.h5 ;;
predict_out_data)
  run ck/ckpt-000000000003.h5 d.h5 -- "${mpirun[@]}" "$bin" predict --checkpoint ck/ckpt-000000000003.h5 --data d.h5 \
    --out ./d.h5 ;;
predict_out_link)  # a link to the checkpoint: renaming over it would replace the link, yet it names an input
  ln -s ck/ckpt-000000000003.h5 p.csv
  run ck/ckpt-000000000003.h5 -- "${mpirun[@]}" "$bin" predict --checkpoint ck/ckpt-000000000003.h5 --data d.h5 \
    --out p.csv ;;
convert_out_csv)   # a CSV named like a dataset, converted onto itself
  cp c.csv c.h5
  run c.h5 -- "$bin" convert --from csv --train c.h5 --out c.h5 ;;
convert_out_test_csv)
  cp c.csv t.h5
  run c.csv t.h5 -- "$bin" convert --from csv --train c.csv --test t.h5 --out ./t.h5 ;;
synth_out_config)  # the INI file of --config, named like a dataset
  printf 'classes = 3\n' >o.h5
  run o.h5 -- "$bin" synth --config o.h5 --samples 10 --features 2 --out o.h5 ;;
shard_fifo)        # one shard of the set is a FIFO: refused by the dataset reader, not waited on
  rm s-00001-of-00002.h5 && mkfifo s-00001-of-00002.h5 || fail mkfifo
  run s-00000-of-00002.h5 -- train --data s.h5 ;;
resume_auto_fifo)  # the newest "checkpoint" is a FIFO: skipped like a damaged one, the previous one resumed
  mkfifo ck/ckpt-000000000009.h5 || fail mkfifo
  cp ck/ckpt-000000000003.h5 before.h5
  train --data d.h5 --checkpoint-dir ck --resume auto --no-checkpoint-epochs --keep 9 >run.log 2>&1
  status=$?
  cat run.log
  grep -q "^resumed from ck/ckpt-000000000003.h5: step 3" run.log || fail "did not resume the previous checkpoint"
  cmp -s ck/ckpt-000000000003.h5 before.h5 || fail "ck/ckpt-000000000003.h5 was overwritten"
  exit $status ;;
*) fail "unknown scenario $scenario" ;;
esac
