# resume.cmake — what a resumed run does with the first part's metrics log and options (resume.sh).
foreach(scenario log_append log_crash log_foreign options)
  mt_test(NAME checkpoint.resume_${scenario} FIXTURES_REQUIRED train_small TIMEOUT 180
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/resume.sh ${scenario} ${MT_BIN} ${MT_TEST_DATA}/train_small.h5)
endforeach()
