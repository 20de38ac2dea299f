# checkpoint.cmake — checkpoints end to end: bit-exact resume (--grad-comm bf16's residuals too), resume on another
# world size, a rank killed or
# SIGTERMed mid-run, damaged / foreign / incompatible checkpoints, and eval / predict / info on a checkpoint.
add_executable(ckpt_tamper ${CMAKE_CURRENT_LIST_DIR}/../tools/ckpt_tamper.c)
target_link_libraries(ckpt_tamper PRIVATE mt_test_libs)
foreach(scenario exact exact_bn exact_shard exact_bf16 exact_bf16_shard world_size world_size_shard world_size_bf16
                 kill sigterm damaged infer early_stop deterministic deterministic_shard)
  mt_test(NAME checkpoint.${scenario} FIXTURES_REQUIRED train_small TIMEOUT 180
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/checkpoint.sh ${scenario} ${MT_BIN} $<TARGET_FILE:ckpt_tamper>
            ${MT_TEST_DATA}/train_small.h5)
endforeach()

# launch/slurm.sbatch with stand-ins for srun and scontrol: SIGUSR1 before the time limit -> checkpoint, requeue,
# and the requeued job resumes and finishes.
mt_test(NAME checkpoint.slurm_requeue TIMEOUT 180
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/slurm.sh ${CMAKE_SOURCE_DIR}/launch/slurm.sbatch ${MT_BIN} unused)
