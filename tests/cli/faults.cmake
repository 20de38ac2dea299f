# faults.cmake — faults outside training's happy path (tests/cli/faults.sh): a rank frozen during eval, predict or
# synth; every writer on a full file system of many sizes (as root: tmpfs; skipped otherwise); SIGTERM / SIGINT in
# the middle of synth, convert and predict.
foreach(scenario stall_eval stall_predict stall_synth)
  mt_test(NAME faults.${scenario} TIMEOUT 120 COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/faults.sh ${scenario} ${MT_BIN})
endforeach()
foreach(scenario disk_full_synth disk_full_convert disk_full_predict disk_full_train)
  mt_test(NAME faults.${scenario} TIMEOUT 400 COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/faults.sh ${scenario} ${MT_BIN})
  set_tests_properties(faults.${scenario} PROPERTIES SKIP_RETURN_CODE 77)
endforeach()
foreach(scenario signal_synth signal_convert signal_predict)
  mt_test(NAME faults.${scenario} TIMEOUT 240 COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/faults.sh ${scenario} ${MT_BIN})
endforeach()
