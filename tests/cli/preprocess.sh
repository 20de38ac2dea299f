#!/usr/bin/env bash
# preprocess.sh — the model's preprocessing and data without labels, end to end, for CTest:
#   preprocess.sh SCENARIO MPITRAIN TAMPER BAD_DIR
# Data: 4 classes of 4x4 "images" (uint8 IDX files, so convert stores them with scale 1/255) and the same test rows
# as CSV (float32, scale 1), with and without labels, written here by perl. Each scenario works in a fresh directory
# of its own and exits non-zero (saying why) when an expectation fails.
set -u
scenario=$1 bin=$2 tamper=$3 bad=$4
work=pre-$scenario
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fail() { echo "FAIL: $*"; exit 1; }
run() { local np=$1; shift; mpirun -np "$np" "$bin" "$@"; }
train() { run 2 train --hidden 16 --epochs 4 --batch 40 --lr 3e-3 --progress off --threads 1 "$@"; }
newest() { ls "$1"/ckpt-*.h5 2>/dev/null | sort | tail -n 1; }
# the values of an attribute or dataset, every digit of a float32 (h5dump's default rounds to 6)
vals() { h5dump -m '%.9g' -w 0 "$@" | sed -n '/DATA {/,/}/p' | grep -v 'DATA {\|}' | tr -d ' \n'; }
# eval's loss and accuracy line
accuracy() { grep -E '^loss [0-9.]+  accuracy [0-9.]+%$' "$1"; }

# idx/: 800 train + 200 test rows; idx2/: the 200 test rows as a training split (other statistics than idx/'s);
# test.csv / test_features.csv: the same 200 rows, label first / features only, each with a header line.
perl -e '
  my $seed = 12345;
  sub rnd { $seed = ($seed * 1103515245 + 12345) % 2147483648; return $seed / 2147483648; }
  my (@x, @y);
  for my $i (0 .. 999) {
    my $c = $i % 4; push @y, $c;
    push @x, [map { my $v = 90 + 60 * (($_ + $c) % 4 == 0) + 12 * $c * ($_ < 4) + int(rnd() * 200) - 100;
                    $v < 0 ? 0 : $v > 255 ? 255 : $v } 0 .. 15];
  }
  sub idx { my ($path, $lo, $hi) = @_;
    open my $f, ">:raw", "$path-images-idx3-ubyte" or die; print $f pack("N4", 0x803, $hi - $lo, 4, 4);
    print $f pack("C*", @{$x[$_]}) for $lo .. $hi - 1; close $f;
    open $f, ">:raw", "$path-labels-idx1-ubyte" or die; print $f pack("N2", 0x801, $hi - $lo);
    print $f pack("C*", @y[$lo .. $hi - 1]); close $f; }
  mkdir "idx"; mkdir "idx2";
  idx("idx/train", 0, 800); idx("idx/t10k", 800, 1000); idx("idx2/train", 800, 1000);
  open my $a, ">", "test.csv" or die; open my $b, ">", "test_features.csv" or die;
  print $a join(",", "label", map { "f$_" } 0 .. 15), "\n"; print $b join(",", map { "f$_" } 0 .. 15), "\n";
  for my $i (800 .. 999) { print $a join(",", $y[$i], @{$x[$i]}), "\n"; print $b join(",", @{$x[$i]}), "\n"; }
' || fail "cannot write the data"

case "$scenario" in
model)
  # Trained on normalised uint8 data: the checkpoint carries scale, mean/std and class names, and eval gives the
  # same accuracy on the raw (unnormalised) test rows and on their CSV copy (scale 1), with a warning each.
  "$bin" convert --from idx --dir idx --normalize --class-names ant,bee,cat,dog --out norm.h5 >/dev/null || fail convert
  "$bin" convert --from idx --dir idx --out raw.h5 >/dev/null || fail "convert raw"
  "$bin" convert --from csv --train test.csv --class-names w,x,y,z --out csv.h5 >/dev/null || fail "convert csv"
  train --data norm.h5 --checkpoint-dir C >train.log 2>&1 || { cat train.log; fail train; }
  ck=$(newest C)
  h5dump -a /preprocess/scale "$ck" | grep -q "H5T_IEEE_F32LE" || fail "no float32 attribute /preprocess/scale"
  [ "$(vals -a /preprocess/scale "$ck")" = "$(vals -a /scale norm.h5)" ] || fail "/preprocess/scale is not the data's"
  h5dump -H -d /preprocess/mean "$ck" | grep -q "DATASPACE  SIMPLE { ( 16 ) / ( 16 ) }" || fail "no /preprocess/mean [16]"
  [ "$(vals -d /preprocess/mean "$ck")" = "$(vals -a /mean norm.h5)" ] || fail "/preprocess/mean is not the data's"
  [ "$(vals -d /preprocess/std "$ck")" = "$(vals -a /std norm.h5)" ] || fail "/preprocess/std is not the data's"
  h5dump -a /class_names "$ck" | grep -q '"ant", "bee", "cat", "dog"' || fail "no class_names in the checkpoint"
  "$bin" info "$ck" >info.log 2>&1 || { cat info.log; fail info; }
  grep -q "^preprocess:  features = (x \* scale - mean) / std: scale 0.00392157, mean in" info.log || { cat info.log; fail "info shows no preprocessing"; }
  grep -q "^classes:     4: ant, bee, cat, dog" info.log || { cat info.log; fail "info shows no class names"; }
  grep -q "/preprocess/std  *\[16\]" info.log || { cat info.log; fail "info does not list /preprocess/std"; }
  grep -q "crc32: .*matches the arrays" info.log || { cat info.log; fail "CRC"; }

  run 2 eval --checkpoint "$ck" --data norm.h5 >e_norm.log 2>&1 || { cat e_norm.log; fail "eval norm.h5"; }
  acc=$(accuracy e_norm.log)
  [ -n "$acc" ] || { cat e_norm.log; fail "no accuracy"; }
  grep -q "warning\|note" e_norm.log && { cat e_norm.log; fail "a warning on the training data's own test split"; }
  run 2 eval --checkpoint "$ck" --data raw.h5 >e_raw.log 2>&1 || { cat e_raw.log; fail "eval raw.h5"; }
  [ "$(accuracy e_raw.log)" = "$acc" ] || { cat e_raw.log; fail "raw.h5 gives $(accuracy e_raw.log), norm.h5 $acc"; }
  [ "$(grep -c warning e_raw.log)" = 1 ] || { cat e_raw.log; fail "expected one warning"; }
  grep -q "^mpitrain: warning: raw.h5 is not normalised but the checkpoint's training data was normalised (its mean/std are in the checkpoint): using the checkpoint's$" e_raw.log ||
    { cat e_raw.log; fail "no normalisation warning"; }
  grep -q "^ *3  dog " e_raw.log || { cat e_raw.log; fail "eval does not show the checkpoint's class names"; }
  run 1 eval --checkpoint "$ck" --data csv.h5 --split train >e_csv.log 2>&1 || { cat e_csv.log; fail "eval csv.h5"; }
  [ "$(accuracy e_csv.log)" = "$acc" ] || { cat e_csv.log; fail "csv.h5 gives $(accuracy e_csv.log), norm.h5 $acc"; }
  grep -q "warning: csv.h5 has scale 1 but the checkpoint was trained with 0.00392157: using the checkpoint's on the stored features" e_csv.log ||
    { cat e_csv.log; fail "no scale warning"; }
  grep -q "warning: csv.h5 names its classes differently from the checkpoint: showing the checkpoint's" e_csv.log ||
    { cat e_csv.log; fail "no class-name warning"; }
  grep -q "^ *0  ant " e_csv.log || { cat e_csv.log; fail "eval does not show the checkpoint's class names"; }

  # --normalize-from: the training statistics for new data (idx2 holds other rows: --normalize gives others)
  "$bin" convert --from idx --dir idx2 --normalize-from "$ck" --out nf_ck.h5 >/dev/null || fail "--normalize-from CKPT"
  "$bin" convert --from idx --dir idx2 --normalize-from norm.h5 --out nf_ds.h5 >/dev/null || fail "--normalize-from DATA"
  "$bin" convert --from idx --dir idx2 --normalize --out own.h5 >/dev/null || fail "--normalize idx2"
  for f in nf_ck.h5 nf_ds.h5; do
    for a in mean std scale; do
      [ "$(vals -a /$a $f)" = "$(vals -a /$a norm.h5)" ] || fail "$f: $a differs from norm.h5's"
    done
  done
  [ "$(vals -a /mean own.h5)" != "$(vals -a /mean norm.h5)" ] || fail "idx2's own mean equals idx's: the test proves nothing"
  run 2 eval --checkpoint "$ck" --data nf_ck.h5 --split train >e_nf.log 2>&1 || { cat e_nf.log; fail "eval nf_ck.h5"; }
  [ "$(accuracy e_nf.log)" = "$acc" ] || { cat e_nf.log; fail "nf_ck.h5 gives $(accuracy e_nf.log), norm.h5 $acc"; }
  grep -q "warning" e_nf.log && { cat e_nf.log; fail "a warning on data normalised with the training statistics"; }
  "$bin" convert --from csv --train test.csv --normalize-from "$ck" --out never.h5 >nf_bad.log 2>&1 && fail "scale 1 accepted"
  grep -q "^mpitrain: error: --normalize-from C/ckpt-[0-9]*.h5: its statistics are of x \* 0.00392157 but this data is stored with scale 1; expected the same scale$" nf_bad.log ||
    { cat nf_bad.log; fail "no scale-mismatch error"; }
  "$bin" convert --from idx --dir idx2 --normalize-from raw.h5 --out never.h5 >nf_raw.log 2>&1 && fail "raw.h5 has no mean/std"
  grep -q "error: --normalize-from raw.h5: is not normalised (no mean/std); use --normalize" nf_raw.log || { cat nf_raw.log; fail "no mean/std error"; }
  "$bin" convert --from idx --dir idx2 --normalize --normalize-from norm.h5 --out never.h5 >nf_both.log 2>&1
  [ $? = 2 ] && grep -q "error: --normalize and --normalize-from: choose one" nf_both.log || { cat nf_both.log; fail "both accepted"; }
  [ -e never.h5 ] && fail "never.h5 written"

  # mean/std are in the CRC: changing one is damage
  cp "$ck" tampered.h5 && "$tamper" tampered.h5 mean || fail tamper
  run 1 eval --checkpoint tampered.h5 --data norm.h5 >e_t.log 2>&1 && fail "a changed mean passed the CRC"
  grep -q "error: checkpoint tampered.h5 fails its CRC-32 check" e_t.log || { cat e_t.log; fail "no CRC error"; }

  # a resume on data preprocessed otherwise goes on, saying so once; on the same data it says nothing
  cp -r C R && train --data raw.h5 --checkpoint-dir R --resume auto --epochs 5 >r_raw.log 2>&1 ||
    { cat r_raw.log; fail "resume on raw.h5"; }
  [ "$(grep -c "warning: .* was trained on data normalised otherwise; the run goes on with raw.h5's own" r_raw.log)" = 1 ] ||
    { cat r_raw.log; fail "no single warning resuming on differently normalised data"; }
  cp -r C S && train --data norm.h5 --checkpoint-dir S --resume auto --epochs 5 >r_same.log 2>&1 ||
    { cat r_same.log; fail "resume on norm.h5"; }
  grep -q "normalised otherwise\|another scale" r_same.log && { cat r_same.log; fail "a warning resuming on the same data"; }
  echo "eval ($acc) on norm.h5, raw.h5 and csv.h5 (with warnings) and nf_ck.h5; --normalize-from copies mean/std"
  ;;
old)
  # A checkpoint without /preprocess (as written before mpitrain stored it) still loads: the data's own scaling,
  # with a note.
  "$bin" convert --from idx --dir idx --out raw.h5 >/dev/null || fail convert
  train --data raw.h5 --checkpoint-dir C >train.log 2>&1 || { cat train.log; fail train; }
  ck=$(newest C)
  run 1 eval --checkpoint "$ck" --data raw.h5 >e_new.log 2>&1 || { cat e_new.log; fail eval; }
  cp "$ck" old.h5 && "$tamper" old.h5 old || fail tamper
  h5dump -g /preprocess old.h5 >/dev/null 2>&1 && fail "/preprocess still there"
  run 2 eval --checkpoint old.h5 --data raw.h5 >e_old.log 2>&1 || { cat e_old.log; fail "eval of the old checkpoint"; }
  [ "$(accuracy e_old.log)" = "$(accuracy e_new.log)" ] || { cat e_new.log e_old.log; fail "accuracy differs"; }
  [ "$(grep -c "^mpitrain: note: old.h5 stores no preprocessing (an older checkpoint): using raw.h5's own scaling$" e_old.log)" = 1 ] ||
    { cat e_old.log; fail "no note (once)"; }
  "$bin" info old.h5 | grep -q "^preprocess:  none stored" || fail "info on the old checkpoint"
  echo "a checkpoint without /preprocess evaluates as before: $(accuracy e_old.log)"
  ;;
unlabeled)
  # predict on features without labels gives the classes and probabilities it gives on the labelled copy, at 1 and
  # 2 ranks; eval and train refuse such data with a clear line.
  "$bin" convert --from csv --train test.csv --normalize --out lab.h5 >/dev/null || fail "convert labelled"
  "$bin" convert --from csv --train test_features.csv --label-column none --out nolab.h5 >conv.log 2>&1 || { cat conv.log; fail "convert --label-column none"; }
  grep -q "200 train + 0 test rows x 16 features (float32), no labels, classes unknown" conv.log || { cat conv.log; fail "convert summary"; }
  h5dump -H nolab.h5 | grep -q '"/train/y"\|DATASET "y"' && fail "nolab.h5 has labels"
  h5dump -H nolab.h5 | grep -q 'ATTRIBUTE "num_classes"' && fail "nolab.h5 has num_classes"
  "$bin" info nolab.h5 >info.log 2>&1 || { cat info.log; fail "info nolab.h5"; }
  grep -q "^train: *200 rows x 16 features, float32, no labels (for predict)" info.log || { cat info.log; fail "info: no labels"; }
  grep -q "^classes: *unknown" info.log || { cat info.log; fail "info: classes unknown"; }
  train --data lab.h5 --checkpoint-dir C >train.log 2>&1 || { cat train.log; fail train; }
  ck=$(newest C)
  for np in 1 2; do
    run $np predict --checkpoint "$ck" --data lab.h5 --split train --out lab$np.csv >p.log 2>&1 || { cat p.log; fail "predict lab.h5"; }
    run $np predict --checkpoint "$ck" --data nolab.h5 --split train --out nolab$np.csv >p.log 2>&1 || { cat p.log; fail "predict nolab.h5"; }
    grep -q "warning: nolab.h5 is not normalised" p.log || { cat p.log; fail "no normalisation warning"; }
  done
  [ "$(head -n 1 nolab1.csv)" = "row,predicted,p0,p1,p2,p3" ] || fail "header of nolab1.csv: $(head -n 1 nolab1.csv)"
  [ "$(head -n 1 lab1.csv)" = "row,label,predicted,p0,p1,p2,p3" ] || fail "header of lab1.csv: $(head -n 1 lab1.csv)"
  [ "$(wc -l < nolab1.csv)" = 201 ] || fail "expected 200 rows and a header"
  cmp nolab1.csv nolab2.csv || fail "predictions without labels differ between 1 and 2 ranks"
  cmp <(cut -d, -f1,3- lab1.csv | tail -n +2) <(tail -n +2 nolab1.csv) || fail "predictions differ from the labelled copy's"
  classes=$(cut -d, -f2 nolab1.csv | tail -n +2 | sort -u | tr '\n' ' ')
  [ "$classes" != "0 " ] || fail "every row predicted 0: the test proves little"
  run 2 eval --checkpoint "$ck" --data nolab.h5 --split train >e.log 2>&1 && fail "eval without labels succeeded"
  [ "$(grep -c "mpitrain: error" e.log)" = 1 ] && grep -q "^mpitrain: error: nolab.h5: the train split has no labels (no /train/y): eval needs labels; use predict$" e.log ||
    { cat e.log; fail "eval: no clear error"; }
  run 2 train --data nolab.h5 --progress off >t.log 2>&1 && fail "training without labels succeeded"
  grep -q "^mpitrain: error: nolab.h5: no dataset /train/y; expected labels \[rows\] (features without labels serve \`mpitrain predict\` only)$" t.log ||
    { cat t.log; fail "train: no clear error"; }
  # a class count given at convert time must match the model's
  "$bin" convert --from csv --train test_features.csv --label-column none --classes 5 --out nolab5.h5 >/dev/null || fail "convert --classes 5"
  run 1 predict --checkpoint "$ck" --data nolab5.h5 --split train --out never.csv >p5.log 2>&1 && fail "5 classes accepted"
  grep -q "error: nolab5.h5 has 5 classes; the checkpoint .* predicts 4" p5.log || { cat p5.log; fail "no class-count error"; }
  echo "predict without labels: the labelled copy's classes and probabilities ($classes) at 1 and 2 ranks"
  ;;
test_features)
  # A labelled training split and a test split of features only (bad/test_x_only.h5): predict --split test works,
  # training and eval of that split refuse.
  run 1 train --data "$bad/good.h5" --hidden 8 --epochs 2 --batch 20 --progress off --checkpoint-dir C >train.log 2>&1 || { cat train.log; fail train; }
  ck=$(newest C)
  run 2 predict --checkpoint "$ck" --data "$bad/test_x_only.h5" --split test --out p.csv >p.log 2>&1 || { cat p.log; fail predict; }
  [ "$(head -n 1 p.csv)" = "row,predicted,p0,p1,p2,p3,p4,p5,p6,p7,p8,p9" ] || fail "header: $(head -n 1 p.csv)"
  [ "$(wc -l < p.csv)" = 3 ] || fail "expected 2 rows and a header"
  run 2 predict --checkpoint "$ck" --data "$bad/test_x_only.h5" --split train --out t.csv >/dev/null 2>&1 || fail "predict train split"
  [ "$(head -n 1 t.csv | cut -d, -f1-3)" = "row,label,predicted" ] || fail "the labelled split lost its labels"
  run 2 eval --checkpoint "$ck" --data "$bad/test_x_only.h5" --split test >e.log 2>&1 && fail "eval of the test split succeeded"
  grep -q "error: .*test_x_only.h5: the test split has no labels (no /test/y): eval needs labels; use predict" e.log || { cat e.log; fail "eval: no clear error"; }
  run 1 eval --checkpoint "$ck" --data "$bad/test_x_only.h5" --split train >/dev/null 2>&1 || fail "eval of the labelled train split"
  echo "predict --split test on a test split without labels"
  ;;
*) fail "unknown scenario $scenario" ;;
esac
echo PASS
