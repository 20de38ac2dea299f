# sanitize.cmake — the environment every test gets under MPITRAIN_SANITIZE (MT_SANITIZE_ENV; empty otherwise).
# Included by tests/CMakeLists.txt and tests/fuzz/CMakeLists.txt, so the suite and the fuzz targets judge alike.
#
# - Reports end the process with exit code 86: the tests' own checks (exit status, expect.sh) then fail, and 86
#   says "sanitizer" where a test prints its status.
# - allocator_may_return_null: a header claiming absurd sizes must make our code fail with a message, as it does in
#   a normal build, not make ASan abort on the attempt (every allocation here is checked).
# - Leaks: the libraries we link (Open MPI, hwloc, HDF5, OpenBLAS, ...) keep allocations until exit by design;
#   lsan.supp names them. A leak whose stack is in our code is not suppressed. For the suppressions to see those
#   libraries in a stack, malloc stacks are unwound with DWARF (fast_unwind_on_malloc=0: Debian builds them without
#   frame pointers) and Open MPI keeps its components loaded until exit (OMPI_MCA_..._disable_dlclose: otherwise
#   their frames are "<unknown module>").
# - intercept_tls_get_addr=0: with glibc 2.36 (Debian 12), GCC 12's LeakSanitizer reads a bogus dynamic-TLS range
#   of Open MPI's threads and its tracer crashes ("Tracer caught signal 11") in about every other run. Without the
#   interception LSan does not scan dynamic TLS, which only the (suppressed) libraries use.
# - UBSan: -fno-sanitize-recover already makes its findings fatal; halt_on_error says so again for the runtime and
#   print_stacktrace shows where.
set(MT_SANITIZE_ENV)
if(MPITRAIN_SANITIZE OR MPITRAIN_FUZZ)
  set(MT_SANITIZE_DIR ${CMAKE_CURRENT_LIST_DIR})
  set(MT_SANITIZE_ENV
    "ASAN_OPTIONS=exitcode=86:intercept_tls_get_addr=0:allocator_may_return_null=1:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:fast_unwind_on_malloc=0"
    "LSAN_OPTIONS=exitcode=86:suppressions=${MT_SANITIZE_DIR}/lsan.supp:print_suppressions=0"
    "UBSAN_OPTIONS=exitcode=86:halt_on_error=1:print_stacktrace=1:suppressions=${MT_SANITIZE_DIR}/ubsan.supp"
    OMPI_MCA_mca_base_component_disable_dlclose=1)
endif()

# The same settings as a shell file (`source BUILD/sanitize.env`), for what runs outside CTest: launch/fuzz.sh.
set(MT_SANITIZE_ENV_FILE "# written by tests/sanitize/sanitize.cmake\n")
foreach(kv ${MT_SANITIZE_ENV})
  string(FIND "${kv}" "=" eq)
  string(SUBSTRING "${kv}" 0 ${eq} key)
  math(EXPR eq "${eq} + 1")
  string(SUBSTRING "${kv}" ${eq} -1 value)
  string(APPEND MT_SANITIZE_ENV_FILE "export ${key}='${value}'\n")
endforeach()
file(WRITE ${CMAKE_BINARY_DIR}/sanitize.env "${MT_SANITIZE_ENV_FILE}")
