# The layout's arrows (README "Layout"): a part's sources see only the headers of what that part links. Each probe
# is tests/layout/probe.c compiled with one part's include paths and definitions (its target properties and the
# usage requirements of what it links) trying to include one header; the build of a forbidden one must fail for
# want of that header, the build of an allowed one must succeed. The probes are not part of `all`: the tests build
# them.
function(mt_layout_probe part header expect)
  string(MAKE_C_IDENTIFIER "${header}" h)
  string(REGEX REPLACE "^mt_" "" name ${part})
  set(target layout_probe_${name}_${h})
  add_library(${target} OBJECT EXCLUDE_FROM_ALL ${CMAKE_CURRENT_LIST_DIR}/probe.c)
  target_compile_definitions(${target} PRIVATE "PROBE_HEADER=<${header}>"
                             $<TARGET_PROPERTY:${part},COMPILE_DEFINITIONS>)
  target_include_directories(${target} PRIVATE $<TARGET_PROPERTY:${part},INCLUDE_DIRECTORIES>)
  target_link_libraries(${target} PRIVATE $<TARGET_PROPERTY:${part},LINK_LIBRARIES>)
  set(cmd ${CMAKE_COMMAND} --build ${CMAKE_BINARY_DIR} --target ${target})
  if(expect STREQUAL "refused")
    mt_expect(NAME layout.${name}.no_${h} EXIT fail MATCH "${header}: No such file" WITHIN 60 COMMAND ${cmd})
  else()
    mt_expect(NAME layout.${name}.may_${h} EXIT ok WITHIN 60 COMMAND ${cmd})
  endif()
endfunction()
mt_layout_probe(mt_compute mpi.h refused)
mt_layout_probe(mt_compute hdf5.h refused)
mt_layout_probe(mt_comm hdf5.h refused)
mt_layout_probe(mt_user hdf5.h refused)
mt_layout_probe(mt_train hdf5.h refused)
mt_layout_probe(mt_comm mpi.h allowed)
mt_layout_probe(mt_storage hdf5.h allowed)

# No function in src/ or cli/ longer than 100 lines (tables are data, not functions); and the check itself can fail.
mt_expect(NAME layout.function_length EXIT ok MATCH "no function longer than 100 lines" WITHIN 30
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/fnlen.py 100 ${CMAKE_SOURCE_DIR}/src ${CMAKE_SOURCE_DIR}/cli)
mt_expect(NAME layout.function_length_fails EXIT fail MATCH "mt_optim_update is [0-9]+ lines \\(limit 10\\)" WITHIN 30
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/fnlen.py 10 ${CMAKE_SOURCE_DIR}/src/compute/optim.c)

# Every exported symbol of the part libraries has the mt_ prefix.
mt_expect(NAME layout.symbols_prefixed EXIT ok MATCH "all [0-9]+ exported symbols start with mt_" WITHIN 30
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/symbols.sh $<TARGET_FILE:mt_compute> $<TARGET_FILE:mt_comm>
          $<TARGET_FILE:mt_storage> $<TARGET_FILE:mt_user> $<TARGET_FILE:mt_train>)
