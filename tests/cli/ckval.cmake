# ckval.cmake — checkpoints whose values are invalid though their CRC matches (NaN/Inf weights, negative second
# moments or running variances, counters and hyperparameters out of range, an array the file stores nothing for).
# Each is refused by `info`, with exit status 1, within 10 s, with one line naming the attribute or the array
# element; `train --resume` and `eval` at 2 ranks refuse the same way a sample of them (MT_CKVAL_COLLECTIVE: arrays
# and attributes of each kind — resume, eval and info read and validate through the same checkpoint functions, and
# the rest is the agreement every refusal goes through, so every kind at 2 ranks would only repeat MPI start-up). The files come from ckval.sh (ckpt_tamper on a fresh checkpoint).
# And datasets declaring more rows than they store: refused by info, train and eval, also within 10 s.

# NAME|ckpt_tamper arguments|regex the message must match after "checkpoint ckval/NAME.h5: ". Regex as in
# data.cmake: no ';' (written '.'), no unbalanced '[' or ']' (an interval "[0, 1]" is written ".0, 1.").
set(MT_CKVAL_KINDS
  "weight_nan|set /model/dense1/W 3 nan|/model/dense1/W\\[3\\] holds NaN. expected finite weights"
  "bias_inf|set /model/dense1/b 0 inf|/model/dense1/b\\[0\\] holds Inf. expected finite weights"
  "gamma_neg_inf|set /model/bn0/gamma 1 -inf|/model/bn0/gamma\\[1\\] holds -Inf. expected finite weights"
  "m_nan|set /optimizer/m/dense0/W 7 nan|/optimizer/m/dense0/W\\[7\\] holds NaN. expected finite first moments"
  "v_negative|set /optimizer/v/dense0/W 5 -0.5|/optimizer/v/dense0/W\\[5\\] holds -0.5. expected finite second moments >= 0"
  "v_nan|set /optimizer/v/dense1/b 2 nan|/optimizer/v/dense1/b\\[2\\] holds NaN. expected finite second moments >= 0"
  "running_var_negative|set /model/bn0/running_var 2 -1|/model/bn0/running_var\\[2\\] holds -1. expected finite running variances >= 0"
  "running_mean_inf|set /model/bn0/running_mean 0 inf|/model/bn0/running_mean\\[0\\] holds Inf. expected finite running means"
  "unstored|unstore /model/dense0/W|/model/dense0/W declares 8 rows x 32 \\(1.0 KiB\\) but the file stores only 0 bytes of it: truncated or damaged"
  "epoch_huge|attr epoch 2147483647|attribute epoch = 2147483647 is out of range .0, 2147483646."
  "step_negative|attr step -1|attribute step = -1 is out of range .0, 9223372036854775807."
  "epoch_pos_negative|attr epoch_pos -3|attribute epoch_pos = -3 is out of range .0, n_train = 3000."
  "epoch_pos_beyond|attr epoch_pos 3001|attribute epoch_pos = 3001 is out of range .0, n_train = 3000."
  "optimizer_step_negative|attr optimizer_step -1|attribute optimizer_step = -1 is out of range .0, 9223372036854775807."
  "world_size_zero|attr world_size 0|attribute world_size = 0 is out of range .1, 2147483647."
  "n_classes_one|attr n_classes 1|attribute n_classes = 1 is out of range .2, 16777216."
  "n_train_zero|attr n_train 0|attribute n_train = 0 is out of range .1, 9223372036854775807."
  "seed_negative|attr seed -1|attribute seed = -1 is out of range .0, 9223372036854775807."
  "best_epoch_negative|attr best_epoch -1|attribute best_epoch = -1 is out of range .0, 2147483646."
  "since_best_huge|attr since_best 2147483647|attribute since_best = 2147483647 is out of range .0, 2147483646."
  "epoch_samples_negative|attr epoch_samples -1|attribute epoch_samples = -1 is out of range .0, 9223372036854775807."
  "beta1_one|attr beta1 1|attribute beta1 = 1 is out of range .0, 1\\)"
  "beta2_negative|attr beta2 -0.5|attribute beta2 = -0.5 is out of range .0, 1\\)"
  "eps_zero|attr eps 0|attribute eps = 0 is out of range \\(0, inf\\)"
  "bn_eps_negative|attr bn_eps -1e-05|attribute bn_eps = -1e-05 is out of range \\(0, inf\\)"
  "bn_momentum_nan|attr bn_momentum nan|attribute bn_momentum = nan is out of range \\(0, 1."
  "leaky_slope_inf|attr leaky_slope inf|attribute leaky_slope = inf is out of range \\(0, 1\\)"
  "dropout_one|attr dropout 1|attribute dropout\\[0\\] = 1 is out of range .0, 1\\)"
  "hidden_zero|attr hidden 0|attribute hidden\\[0\\] = 0 is out of range .1, 16777216."
  "best_val_loss_nan|attr best_val_loss nan|attribute best_val_loss = nan is not a finite number"
  "epoch_loss_sum_negative|attr epoch_loss_sum -1|attribute epoch_loss_sum = -1 is out of range .0, inf\\)"
  "epoch_correct_inf|attr epoch_correct inf|attribute epoch_correct = inf is out of range .0, inf\\)")

set(setup_args)
foreach(entry ${MT_CKVAL_KINDS})
  string(REPLACE "|" ";" parts "${entry}")
  list(GET parts 0 name)
  list(GET parts 1 args)
  list(APPEND setup_args "${name}:${args}")
endforeach()
mt_expect(NAME ckval.make EXIT ok WITHIN 60 MATCH "damaged checkpoints into ckval/" FIXTURES_SETUP ckval
  FIXTURES_REQUIRED train_small
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/ckval.sh ${MT_BIN} $<TARGET_FILE:ckpt_tamper> ${MT_TEST_DATA}/train_small.h5
          ${setup_args})

set(MT_CKVAL_COLLECTIVE weight_nan m_nan v_negative running_var_negative unstored epoch_huge epoch_pos_beyond
    beta1_one dropout_one)
foreach(entry ${MT_CKVAL_KINDS})
  string(FIND "${entry}" "|" bar)
  string(SUBSTRING "${entry}" 0 ${bar} name)
  string(FIND "${entry}" "|" bar2 REVERSE)
  math(EXPR rest "${bar2} + 1")
  string(SUBSTRING "${entry}" ${rest} -1 regex)
  set(line "^mpitrain: error: .*checkpoint ckval/${name}.h5: ${regex}")
  if(name IN_LIST MT_CKVAL_COLLECTIVE)
    mt_expect(NAME ckval.resume.${name} NP 2 EXIT 1 WITHIN 10 MATCH "${line}" FIXTURES_REQUIRED ckval
      COMMAND ${MT_BIN} train --data ${MT_TEST_DATA}/train_small.h5 --hidden 8 --batchnorm before --batch 48
              --epochs 1 --progress off --threads 1 --resume ckval/${name}.h5)
    mt_expect(NAME ckval.eval.${name} NP 2 EXIT 1 WITHIN 10 MATCH "${line}" FIXTURES_REQUIRED ckval
      COMMAND ${MT_BIN} eval --checkpoint ckval/${name}.h5 --data ${MT_TEST_DATA}/train_small.h5)
  endif()
  mt_expect(NAME ckval.info.${name} EXIT 1 WITHIN 10 MATCH "${line}" FIXTURES_REQUIRED ckval
    COMMAND ${MT_BIN} info ckval/${name}.h5)
endforeach()
# The undamaged checkpoint the damaged ones were made from loads everywhere.
mt_expect(NAME ckval.resume.undamaged NP 2 EXIT ok WITHIN 20 MATCH "resumed from ckval/base/ckpt-000000000003.h5"
  FIXTURES_REQUIRED ckval
  COMMAND ${MT_BIN} train --data ${MT_TEST_DATA}/train_small.h5 --hidden 8 --batchnorm before --batch 48
          --max-steps 5 --progress off --threads 1 --checkpoint-dir ckval/resumed
          --resume ckval/base/ckpt-000000000003.h5)
# --resume auto skips a newest checkpoint holding an invalid value, like a damaged one, and takes the one before.
set(auto_args --data ${MT_TEST_DATA}/train_small.h5 --hidden 8 --batchnorm before --batch 48 --max-steps 5
    --progress off --threads 1 --resume auto)
mt_expect(NAME ckval.resume.auto_warns NP 2 EXIT ok WITHIN 20 FIXTURES_REQUIRED ckval
  MATCH "^mpitrain: warning: skipping ckval/auto_warn/ckpt-000000000004.h5: checkpoint ckval/auto_warn/ckpt-000000000004.h5: /model/dense1/W\\[3\\] holds NaN"
  COMMAND ${MT_BIN} train ${auto_args} --checkpoint-dir ckval/auto_warn)
mt_expect(NAME ckval.resume.auto_falls_back NP 2 EXIT ok WITHIN 20 FIXTURES_REQUIRED ckval
  MATCH "resumed from ckval/auto_fallback/ckpt-000000000003.h5: step 3"
  COMMAND ${MT_BIN} train ${auto_args} --checkpoint-dir ckval/auto_fallback)
mt_expect(NAME ckval.info.undamaged EXIT ok WITHIN 10 MATCH "crc32: .*matches the arrays" FIXTURES_REQUIRED ckval
  COMMAND ${MT_BIN} info ckval/base/ckpt-000000000003.h5)

# ---- declared sizes the file does not store (bad/declared_rows_*.h5, from make_bad_data) ----
# A few kB declaring 2^31-1 rows: refused before anything is read (it used to read gigabytes of fill values).
mt_expect(NAME ckval.make_good_ckpt EXIT ok WITHIN 30 FIXTURES_SETUP ckval_good FIXTURES_REQUIRED bad_data
  COMMAND ${MT_BIN} train --data bad/good.h5 --hidden 4 --max-steps 2 --progress off --threads 1
          --checkpoint-dir ckval-good)
set(MT_CKVAL_DECLARED
  "chunked|/train/x declares 2147483647 rows x 10 \\(80.0 GiB\\) but the file stores only 0 bytes of it \\(0 of 8388608 chunks\\): truncated or damaged"
  "contiguous|/train/x declares 2147483647 rows x 10 \\(80.0 GiB\\) but the file stores only 0 bytes of it: truncated or damaged"
  "partial|/train/x declares 1000 rows x 10 \\(39.1 KiB\\) but the file stores only 10.0 KiB of it \\(1 of 4 chunks\\): truncated or damaged")
foreach(entry ${MT_CKVAL_DECLARED})
  mt_split_entry("${entry}" kind regex)
  set(file bad/declared_rows_${kind}.h5)
  set(line "^mpitrain: error: .*${file}: ${regex}")
  mt_expect(NAME ckval.declared.info.${kind} EXIT 1 WITHIN 10 MATCH "${line}" FIXTURES_REQUIRED bad_data
    COMMAND ${MT_BIN} info ${file})
  mt_expect(NAME ckval.declared.train.${kind} NP 2 EXIT 1 WITHIN 10 MATCH "${line}" FIXTURES_REQUIRED bad_data
    COMMAND ${MT_BIN} train --data ${file} --hidden 4 --epochs 1 --progress off --threads 1)
  mt_expect(NAME ckval.declared.eval.${kind} NP 2 EXIT 1 WITHIN 10 MATCH "${line}" FIXTURES_REQUIRED ckval_good
    COMMAND ${MT_BIN} eval --checkpoint ckval-good/ckpt-000000000002.h5 --data ${file} --split train)
endforeach()

# One of each path for the sanitizer subset (tests/CMakeLists.txt): an array refused after the CRC matched, an
# attribute out of range, an array not stored, a dataset declaring more than it stores.
set_property(TEST ckval.resume.v_negative ckval.eval.weight_nan ckval.info.epoch_huge ckval.eval.unstored
  ckval.declared.info.chunked ckval.declared.train.contiguous APPEND PROPERTY LABELS sanitize)
