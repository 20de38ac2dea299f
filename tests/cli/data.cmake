# data.cmake — command-line tests of the dataset tools (convert, synth, info) and the bad-file fixture other
# tests reuse. Included by tests/CMakeLists.txt; MT_BIN, MT_TEST_DATA, mt_test and mt_expect come from there.
#
# Fixtures for other test files:
#   bad_data  ${MT_TEST_DATA}/bad/*.h5 — broken datasets and good.h5 (list in tests/tools/make_bad_data.c)
#   fmnist    ${MT_TEST_DATA}/fmnist.h5 — Fashion-MNIST (only when the Debian package is installed)
#   synth_small ${MT_TEST_DATA}/synth.h5 — 2000 + 500 rows x 32 features, 5 classes, float32

set(MT_DATA_TOOLS ${CMAKE_CURRENT_LIST_DIR}/../tools)
add_executable(make_bad_data ${MT_DATA_TOOLS}/make_bad_data.c)
target_link_libraries(make_bad_data PRIVATE mt_test_libs)
add_executable(data_equal ${MT_DATA_TOOLS}/data_equal.c)
target_link_libraries(data_equal PRIVATE mt_test_libs)
set(MT_DATA_EQUAL $<TARGET_FILE:data_equal>)

# ---- bad files: each must fail `info` quickly, with a message naming the file and the problem ----
mt_test(NAME data.make_bad FIXTURES_SETUP bad_data COMMAND $<TARGET_FILE:make_bad_data> ${MT_TEST_DATA}/bad)

# file | regex the one-line message must match. No ';' (a CMake list separator: written '.') and no unbalanced
# '[' (it stops CMake from splitting the list at the following ';'s: an interval "[0, 10)" is written ".0, 10\\)").
set(MT_BAD_FILES
  "not_hdf5.h5|bad/not_hdf5.h5: not an HDF5 file"
  "y_rows_mismatch.h5|/train/y has 7 rows but /train/x has 8. expected one label per row"
  "x_3d.h5|/train/x is 3-D. expected a 2-D array"
  "float_labels.h5|/train/y holds 32-bit floating-point values. expected integer class ids"
  "label_too_big.h5|label 10 at /train/y\\[7\\] is outside .0, 10\\) \\(num_classes = 10\\)"
  "label_negative.h5|label -1 at /train/y\\[3\\] is outside .0, 10\\)"
  "test_label_too_big.h5|label 12 at /test/y\\[1\\] is outside .0, 10\\)"
  "test_d_mismatch.h5|/test/x has 12 features but /train/x has 10"
  "zero_rows.h5|/train/x has 0 rows. expected at least one training row"
  "nan_features.h5|/train/x\\[5\\] holds NaN \\(feature 2\\)"
  "x_int16.h5|/train/x is 16-bit signed integer. expected uint8 or float32"
  "huge_rows_claim.h5|/train/x claims 1099511627776 rows. at most 2147483647 rows per split"
  "num_classes_one.h5|num_classes = 1. expected 2"
  "wrong_format.h5|format is 'some-other-format'. expected 'mpitrain-dataset'"
  "label_huge_no_classes.h5|no num_classes attribute and the largest label is 2147483647. expected class ids below 16777216"
  "bad_shards-00000-of-00002.h5|bad_shards-00001-of-00002.h5 has 12 features but .*all shards must agree"
  "bad_shards.h5|all shards must agree"
  "gap-00002-of-00003.h5|cannot open shard 1 of 3 '.*bad/gap-00001-of-00003.h5': No such file"
  "missing.h5|cannot open 'bad/missing.h5': No such file or directory")
foreach(entry ${MT_BAD_FILES})
  mt_split_entry("${entry}" file regex)
  string(REGEX REPLACE "[.]h5$" "" stem "${file}")
  mt_expect(NAME data.info.bad.${stem} EXIT fail WITHIN 10 MATCH "^mpitrain: error: .*${regex}"
            FIXTURES_REQUIRED bad_data COMMAND ${MT_BIN} info bad/${file})
endforeach()
mt_expect(NAME data.info.good EXIT ok WITHIN 10 MATCH "train: +200 rows x 10 features, float32"
          FIXTURES_REQUIRED bad_data COMMAND ${MT_BIN} info bad/good.h5)
# Features without labels are data for predict: info describes them, train refuses them (labels needed).
mt_expect(NAME data.info.unlabeled.no_train_y EXIT ok WITHIN 10
          MATCH "train: +8 rows x 10 features, float32, no labels \\(for predict\\)"
          FIXTURES_REQUIRED bad_data COMMAND ${MT_BIN} info bad/no_train_y.h5)
mt_expect(NAME data.info.unlabeled.test_x_only EXIT ok WITHIN 10
          MATCH "test: +2 rows x 10 features, float32, no labels \\(for predict\\)"
          FIXTURES_REQUIRED bad_data COMMAND ${MT_BIN} info bad/test_x_only.h5)
mt_expect(NAME data.train.bad.no_train_y EXIT fail WITHIN 20
          MATCH "^mpitrain: error: bad/no_train_y.h5: no dataset /train/y. expected labels .rows. \\(features without labels serve `mpitrain predict` only\\)"
          FIXTURES_REQUIRED bad_data COMMAND ${MT_BIN} train --data bad/no_train_y.h5 --progress off)
mt_expect(NAME data.train.bad.test_x_only EXIT fail WITHIN 20
          MATCH "^mpitrain: error: bad/test_x_only.h5: has /test/x but no /test/y. labels are needed here"
          FIXTURES_REQUIRED bad_data COMMAND ${MT_BIN} train --data bad/test_x_only.h5 --progress off)
# every rank ends, together, with one message from rank 0
mt_expect(NAME data.info.bad.np2 NP 2 EXIT fail WITHIN 20 MATCH "^mpitrain: error: .*is outside .0, 10\\)"
          FIXTURES_REQUIRED bad_data COMMAND ${MT_BIN} info bad/label_too_big.h5)

# ---- convert errors ----
mt_expect(NAME data.convert.missing_dir EXIT fail WITHIN 10 MATCH "--dir /nonexistent/idx: No such directory"
          COMMAND ${MT_BIN} convert --dir /nonexistent/idx --out never.h5)
mt_expect(NAME data.convert.missing_dir.np2 NP 2 EXIT fail WITHIN 20 MATCH "No such directory"
          COMMAND ${MT_BIN} convert --dir /nonexistent/idx --out never.h5)
mt_expect(NAME data.convert.bad_magic EXIT fail WITHIN 10
          MATCH "idx_bad_magic/train-images-idx3-ubyte: bad IDX magic 0x03080000. expected 0x00000803"
          FIXTURES_REQUIRED bad_data COMMAND ${MT_BIN} convert --dir bad/idx_bad_magic --out never.h5)
mt_expect(NAME data.convert.truncated EXIT fail WITHIN 10 MATCH "train-images-idx3-ubyte: truncated: 26 of the 36 bytes"
          FIXTURES_REQUIRED bad_data COMMAND ${MT_BIN} convert --dir bad/idx_truncated --out never.h5)
mt_expect(NAME data.convert.ragged_csv EXIT fail WITHIN 10 MATCH "ragged.csv:3: 3 fields but line 2 has 4"
          FIXTURES_REQUIRED bad_data COMMAND ${MT_BIN} convert --from csv --train bad/ragged.csv --out never.h5)
mt_test(NAME data.convert.csv FIXTURES_SETUP csv FIXTURES_REQUIRED bad_data
        COMMAND ${MT_BIN} convert --from csv --train bad/good.csv --test bad/good.csv --label-column last --normalize
        --class-names low,mid,high --out csv.h5)
mt_expect(NAME data.info.csv EXIT ok WITHIN 10 MATCH "test: +4 rows x 3 features, float32"
          FIXTURES_REQUIRED csv COMMAND ${MT_BIN} info csv.h5)
mt_expect(NAME data.info.csv.norm EXIT ok WITHIN 10 MATCH "normalised: +per feature"
          FIXTURES_REQUIRED csv COMMAND ${MT_BIN} info csv.h5)
mt_expect(NAME data.info.csv.names EXIT ok WITHIN 10 MATCH "classes: +3: low, mid, high"
          FIXTURES_REQUIRED csv COMMAND ${MT_BIN} info csv.h5)
# splits not loaded are not checked for NaN unless --scan reads them
mt_expect(NAME data.info.noscan EXIT ok WITHIN 10 MATCH "train features not scanned"
          FIXTURES_REQUIRED bad_data COMMAND ${MT_BIN} info bad/nan_features.h5 --memory-limit-mb 0)
mt_expect(NAME data.info.scan EXIT fail WITHIN 10 MATCH "bad/nan_features.h5: /train/x.5. holds NaN"
          FIXTURES_REQUIRED bad_data COMMAND ${MT_BIN} info bad/nan_features.h5 --memory-limit-mb 0 --scan)
mt_expect(NAME data.convert.shards0 EXIT 2 WITHIN 10 MATCH "--shards: expected a whole number in \\[1, 99999\\]"
          COMMAND ${MT_BIN} convert --shards 0 --out never.h5)
# convert and synth take as many classes as training reads (DATA_MAX_CLASSES, dataformat.h), no fewer.
mt_expect(NAME data.convert.classes_limit EXIT 2 WITHIN 10 MATCH "--classes: expected .*\\[2, 16777216\\]"
          COMMAND ${MT_BIN} convert --classes 16777217 --out never.h5)
mt_expect(NAME data.synth.classes_limit EXIT 2 WITHIN 10 MATCH "--classes: expected .*\\[2, 16777216\\]"
          COMMAND ${MT_BIN} synth --samples 10 --features 2 --classes 16777217 --out never.h5)
mt_expect(NAME data.convert.unknown_option EXIT 2 WITHIN 10 MATCH "unknown option --shard; did you mean --shards\\?"
          COMMAND ${MT_BIN} convert --shard 3 --out never.h5)
mt_expect(NAME data.convert.no_out EXIT 2 WITHIN 10 MATCH "--out FILE.h5 is required" COMMAND ${MT_BIN} convert)
mt_expect(NAME data.convert.help EXIT ok WITHIN 10 MATCH "--label-column first\\|last" COMMAND ${MT_BIN} convert --help)
mt_expect(NAME data.convert.help_none EXIT ok WITHIN 10 MATCH "--label-column first\\|last\\|none"
          COMMAND ${MT_BIN} convert --help)

# ---- synth ----
mt_test(NAME data.synth.small FIXTURES_SETUP synth_small
        COMMAND ${MT_BIN} synth --samples 2000 --test-samples 500 --features 32 --classes 5 --seed 7 --out synth.h5)
mt_expect(NAME data.info.synth EXIT ok WITHIN 10 MATCH "train: +2000 rows x 32 features, float32"
          FIXTURES_REQUIRED synth_small COMMAND ${MT_BIN} info synth.h5)
mt_test(NAME data.synth.np2_shards4 NP 2 FIXTURES_SETUP synth_shards4
        COMMAND ${MT_BIN} synth --samples 2000 --test-samples 500 --features 32 --classes 5 --seed 7 --shards 4
        --gzip 3 --out synth4.h5)
mt_expect(NAME data.info.synth_shards EXIT ok WITHIN 10 MATCH "files: +4 shards: synth4-00000-of-00004.h5"
          FIXTURES_REQUIRED synth_shards4 COMMAND ${MT_BIN} info synth4-00002-of-00004.h5)
# the same rows whatever the shards and ranks that wrote them (and read in memory vs streamed)
mt_expect(NAME data.synth.shards_equal EXIT ok WITHIN 20 MATCH "bit-identical"
          FIXTURES_REQUIRED "synth_small;synth_shards4" COMMAND ${MT_DATA_EQUAL} synth.h5 synth4.h5)
mt_test(NAME data.synth.uint8 FIXTURES_SETUP synth_u8
        COMMAND ${MT_BIN} synth --samples 2000 --test-samples 500 --features 32 --classes 5 --seed 7 --dtype uint8
        --out synth_u8.h5)
# uint8 decodes within half a step (8 sqrt(2) / 255 / 2 = 0.0222) except the clipped tails beyond 4 sigma
mt_expect(NAME data.synth.uint8_close EXIT ok WITHIN 20 MATCH "within 0.0223"
          FIXTURES_REQUIRED "synth_small;synth_u8" COMMAND ${MT_DATA_EQUAL} synth.h5 synth_u8.h5 --tol 0.0223
          --outliers 0.001)
mt_expect(NAME data.synth.features0 EXIT 2 WITHIN 10 MATCH "--features: expected a whole number in \\[1, 16777216\\]"
          COMMAND ${MT_BIN} synth --samples 10 --features 0 --classes 2 --out never.h5)
mt_expect(NAME data.synth.too_many_shards EXIT 2 WITHIN 10 MATCH "--shards 20 is more than --samples 10"
          COMMAND ${MT_BIN} synth --samples 10 --features 3 --classes 2 --shards 20 --out never.h5)
mt_expect(NAME data.synth.unknown_option EXIT 2 WITHIN 10 MATCH "unknown option --feature; did you mean --features\\?"
          COMMAND ${MT_BIN} synth --samples 10 --feature 3 --classes 2 --out never.h5)
mt_expect(NAME data.synth.bad_dir.np2 NP 2 EXIT fail WITHIN 20 MATCH "cannot create 'nodir/x-0000[01]-of-00002.h5'"
          COMMAND ${MT_BIN} synth --samples 10 --features 3 --classes 2 --shards 2 --out nodir/x.h5)

# ---- Fashion-MNIST (Debian's dataset-fashion-mnist; CI installs it) ----
if(EXISTS /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz)
  mt_test(NAME data.convert.fmnist FIXTURES_SETUP fmnist COMMAND ${MT_BIN} convert --out fmnist.h5)
  mt_expect(NAME data.info.fmnist.train EXIT ok WITHIN 10 MATCH "train: +60000 rows x 784 features, uint8"
            FIXTURES_REQUIRED fmnist COMMAND ${MT_BIN} info fmnist.h5)
  mt_expect(NAME data.info.fmnist.test EXIT ok WITHIN 10 MATCH "test: +10000 rows x 784 features, uint8"
            FIXTURES_REQUIRED fmnist COMMAND ${MT_BIN} info fmnist.h5)
  mt_expect(NAME data.info.fmnist.classes EXIT ok WITHIN 10
            MATCH "classes: +10: T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot"
            FIXTURES_REQUIRED fmnist COMMAND ${MT_BIN} info fmnist.h5)
  mt_expect(NAME data.info.fmnist.counts EXIT ok WITHIN 10 MATCH "9  Ankle boot +6000 +1000"
            FIXTURES_REQUIRED fmnist COMMAND ${MT_BIN} info fmnist.h5)
  mt_test(NAME data.convert.fmnist_shards3 FIXTURES_SETUP fmnist3
          COMMAND ${MT_BIN} convert --shards 3 --out fmnist3.h5)
  mt_expect(NAME data.info.fmnist_shard EXIT ok WITHIN 10 MATCH "files: +3 shards: fmnist3-00000-of-00003.h5"
            FIXTURES_REQUIRED fmnist3 COMMAND ${MT_BIN} info fmnist3-00001-of-00003.h5)
  mt_expect(NAME data.info.fmnist_shard.rows EXIT ok WITHIN 10 MATCH "train: +60000 rows x 784 features"
            FIXTURES_REQUIRED fmnist3 COMMAND ${MT_BIN} info fmnist3.h5)
  mt_expect(NAME data.convert.fmnist_shards_equal EXIT ok WITHIN 30 MATCH "bit-identical"
            FIXTURES_REQUIRED "fmnist;fmnist3" COMMAND ${MT_DATA_EQUAL} fmnist.h5 fmnist3.h5)
endif()
