# infer_bn.cmake — eval and predict of batch-norm checkpoints give the same results at every rank count (the running
# statistics reach every rank with the parameters), for batch norm before and after the activation.
foreach(place before after)
  mt_test(NAME infer.bn_${place} FIXTURES_REQUIRED train_small TIMEOUT 120
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/infer_bn.sh ${place} ${MT_BIN} ${MT_TEST_DATA}/train_small.h5)
endforeach()
