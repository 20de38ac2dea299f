# multihost.cmake — label `multihost`: 2 hosts x 2 ranks on this machine through launch/multihost.sh (network
# namespaces; README "Many nodes on one machine"). Each test exits 77 where namespaces cannot be made (not root, no
# iproute2): CTest reports it skipped. launch/test.sh runs the label as its own stage.
foreach(scenario det default shared_data bucket_auto hier cleanup kill_host stop_host rate cores platform)
  mt_test(NAME multihost.${scenario} LABELS multihost TIMEOUT 120
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/${scenario}.sh ${MT_BIN} ${CMAKE_SOURCE_DIR}/launch/multihost.sh)
  set_tests_properties(multihost.${scenario} PROPERTIES SKIP_RETURN_CODE 77 RUN_SERIAL ON)
endforeach()
