# ckpt_layout.cmake — README's "Checkpoint files" tables are the whole checkpoint format (ckpt_layout.sh / .py).
mt_test(NAME ckpt.layout TIMEOUT 120
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/ckpt_layout.sh ${MT_BIN} ${CMAKE_SOURCE_DIR}/README.md)
