# preprocess.cmake — the model's preprocessing (scale, mean/std and class names stored in the checkpoint, applied
# by eval / predict to raw features, reused by convert --normalize-from) and data without labels (predict).
# Scenarios in preprocess.sh; ckpt_tamper comes from checkpoint.cmake.
foreach(scenario model old unlabeled test_features)
  mt_test(NAME preprocess.${scenario} FIXTURES_REQUIRED bad_data TIMEOUT 120
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/preprocess.sh ${scenario} ${MT_BIN} $<TARGET_FILE:ckpt_tamper>
            ${MT_TEST_DATA}/bad)
endforeach()
