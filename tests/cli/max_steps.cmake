# max_steps.cmake — a run ended by --max-steps (not by a signal) ends like one bounded by --epochs: it evaluates the
# test split and prints the final test accuracy of the model it ends with, and its metrics log gets the epoch record.
# train_small: 3000 rows, batch 48 = 63 steps an epoch.
set(MT_MAX_STEPS_RUN ${MT_BIN} train --data ${MT_TEST_DATA}/train_small.h5 --hidden 16 --batch 48 --epochs 3
    --progress off --threads 1)
# Mid-epoch 1, before any epoch ended.
mt_expect(NAME train.max_steps.final NP 2 EXIT ok WITHIN 60 FIXTURES_REQUIRED train_small
  MATCH "final test accuracy: [0-9.]+% \\(test loss [0-9.]+\\) after 50 steps in"
  NOMATCH "stopped at step|done: "
  COMMAND ${MT_MAX_STEPS_RUN} --max-steps 50)
# Mid-epoch 2: the accuracy of step 70, not the one measured after epoch 1, also in the metrics log.
mt_test(NAME train.max_steps.after_epoch FIXTURES_REQUIRED train_small TIMEOUT 60
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/max_steps.sh ${MT_BIN} ${MT_TEST_DATA}/train_small.h5)
# Without evaluation there is nothing to measure: the run only says how far it went.
mt_expect(NAME train.max_steps.no_eval NP 2 EXIT ok WITHIN 60 FIXTURES_REQUIRED train_small
  MATCH "done: 50 steps in" NOMATCH "test accuracy"
  COMMAND ${MT_MAX_STEPS_RUN} --max-steps 50 --no-eval)
