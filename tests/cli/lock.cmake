# lock.cmake — one run per checkpoint directory (DIR/.mpitrain.lock): a second run on a live run's directory is
# refused naming the holder and touches nothing; the lock is released at the end and taken over from a killed run;
# a file system without locks (simulated by a preloaded fcntl) warns and goes on.
# Not in the sanitizer subset (46 s there): unit.checkpoint runs the lock itself, and every checkpoint test of the
# subset takes and releases it.
mt_test(NAME lock.concurrent TIMEOUT 180 COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/lock.sh concurrent ${MT_BIN})
mt_test(NAME lock.stale TIMEOUT 180 COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/lock.sh stale ${MT_BIN})
# A preloaded library cannot come before a sanitizer's runtime: that case is for the normal build.
if(NOT MPITRAIN_SANITIZE)
  add_library(nolock MODULE ${CMAKE_CURRENT_LIST_DIR}/../tools/nolock.c)
  target_link_libraries(nolock PRIVATE ${CMAKE_DL_LIBS})
  mt_test(NAME lock.nolock TIMEOUT 180
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/lock.sh nolock ${MT_BIN} $<TARGET_FILE:nolock>)
endif()
