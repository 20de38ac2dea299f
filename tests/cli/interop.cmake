# interop.cmake — PyTorch interop (README "PyTorch interop"): launch/export.py's TorchScript, ONNX and state dict
# against `mpitrain eval`, and `train --init-from` of checkpoints and state dicts, with the refusals of damaged and
# hostile .pth files. Scenarios that need PyTorch skip (exit 77) when /usr/bin/python3 has none.
add_executable(torch_read ${CMAKE_CURRENT_LIST_DIR}/../tools/torch_read.c)
target_link_libraries(torch_read PRIVATE mt_test_libs)
foreach(scenario torchscript_before torchscript_after torchscript_normalized init_checkpoint init_resume
                 init_exported init_sequential init_damaged)
  mt_test(NAME interop.${scenario} FIXTURES_REQUIRED train_small TIMEOUT 300
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/interop.sh ${scenario} ${MT_BIN} ${CMAKE_SOURCE_DIR}/launch/export.py
            $<TARGET_FILE:torch_read> ${MT_TEST_DATA}/train_small.h5)
  set_tests_properties(interop.${scenario} PROPERTIES SKIP_RETURN_CODE 77)
endforeach()
# The reader of untrusted .pth files under the sanitizers (skips where torch is missing, as everywhere).
set_property(TEST interop.init_damaged APPEND PROPERTY LABELS sanitize)
