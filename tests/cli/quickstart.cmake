# quickstart.cmake — README's first command keeps what it trained: a checkpoint directory and a metrics log, and
# it says where they are (a short run: 20 steps on the real Fashion-MNIST at 2 ranks).
mt_expect(NAME quickstart.keeps_model EXIT ok WITHIN 240
  MATCH "the trained model is [^ ]*/quickstart/checkpoints/ckpt-0*20\\.h5 .*the metrics log [^ ]*/quickstart/metrics\\.csv"
  COMMAND bash -c "rm -rf quickstart && MT_BUILD=${CMAKE_BINARY_DIR} RUN_DIR=${MT_TEST_DATA}/quickstart NP=2 \
bash ${CMAKE_SOURCE_DIR}/launch/quickstart.sh --max-steps 20 --progress off && grep -c '^step,' quickstart/metrics.csv")
