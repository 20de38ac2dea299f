# --precision (gemm.h): bf16 mixed precision through oneDNN, fp32 through OpenBLAS, auto by the CPU. The bf16 tests
# need bf16 on the CPU (AMX for `auto`): precision.sh exits 77 where oneDNN has none, which CTest reports as skipped.
set_tests_properties(unit.gemm PROPERTIES SKIP_RETURN_CODE 77)
set(MT_PRECISION_SH ${CMAKE_CURRENT_LIST_DIR}/precision.sh)
foreach(case agree det resume auto default noamx late copy)
  mt_test(NAME precision.${case} LABELS precision train TIMEOUT 240
    COMMAND env MT_BIN=${MT_BIN} MT_MPIRUN=${MT_MPIRUN} bash ${MT_PRECISION_SH} ${case})
  set_tests_properties(precision.${case} PROPERTIES SKIP_RETURN_CODE 77)
endforeach()
mt_expect(NAME precision.help EXIT ok MATCH "--precision.*fp32" COMMAND ${MT_BIN} train --help)
mt_expect(NAME precision.help_eval EXIT ok MATCH "--precision" COMMAND ${MT_BIN} eval --help)
mt_expect(NAME precision.help_bench EXIT ok MATCH "--precision" COMMAND ${MT_BIN} bench --help)
# bench's bf16 roofline (bare oneDNN bf16 matmuls): named bench.* with the other bench tests.
mt_test(NAME bench.precision_bf16 LABELS precision bench TIMEOUT 120
  COMMAND env MT_BIN=${MT_BIN} MT_MPIRUN=${MT_MPIRUN} bash ${MT_PRECISION_SH} bench)
set_tests_properties(bench.precision_bf16 PROPERTIES SKIP_RETURN_CODE 77)
