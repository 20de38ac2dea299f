# ux.cmake — what users hit on real clusters: where the BLAS thread count comes from (--threads, then
# OPENBLAS_NUM_THREADS, then OMP_NUM_THREADS, then auto), the oversubscription warning, hints for option names
# brought from PyTorch, and --help on every subcommand.

set(MT_UX_DATA ${MT_TEST_DATA}/train_small.h5) # written by train.make_synth (fixture train_small)
set(MT_UX_RUN --data ${MT_UX_DATA} --hidden 8 --max-steps 3 --epochs 1 --batch 100 --progress off --no-eval)
# The thread variables of whoever runs ctest must not leak into the tests that set their own.
set(MT_UX_CLEAN env -u OMP_NUM_THREADS -u OPENBLAS_NUM_THREADS)

# ---- BLAS threads: the banner says how many and where the number came from ----
mt_expect(NAME train.threads.openblas_env NP 1 EXIT ok WITHIN 30 FIXTURES_REQUIRED train_small
  MATCH "1 rank x 1 BLAS thread \\(from OPENBLAS_NUM_THREADS=1\\)"
  COMMAND ${MT_UX_CLEAN} OPENBLAS_NUM_THREADS=1 ${MT_BIN} train ${MT_UX_RUN} --in-memory yes)
mt_expect(NAME train.threads.omp_env NP 1 EXIT ok WITHIN 30 FIXTURES_REQUIRED train_small
  MATCH "1 rank x 1 BLAS thread \\(from OMP_NUM_THREADS=1\\)"
  COMMAND ${MT_UX_CLEAN} OMP_NUM_THREADS=1 ${MT_BIN} train ${MT_UX_RUN})
# OpenBLAS's own rule: OPENBLAS_NUM_THREADS wins over OMP_NUM_THREADS.
mt_expect(NAME train.threads.openblas_over_omp NP 1 EXIT ok WITHIN 30 FIXTURES_REQUIRED train_small
  MATCH "1 rank x 1 BLAS thread \\(from OPENBLAS_NUM_THREADS=1\\)"
  COMMAND ${MT_UX_CLEAN} OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 ${MT_BIN} train ${MT_UX_RUN})
# The command line wins over the environment (and OpenBLAS really runs that many: bench prints its own count).
mt_expect(NAME train.threads.flag_over_env NP 1 EXIT ok WITHIN 30 FIXTURES_REQUIRED train_small
  MATCH "1 rank x 2 BLAS threads \\(--threads\\)"
  COMMAND ${MT_UX_CLEAN} OPENBLAS_NUM_THREADS=1 ${MT_BIN} train ${MT_UX_RUN} --threads 2)
mt_expect(NAME bench.threads.flag_over_env EXIT ok WITHIN 60
  MATCH "1 rank x 2 threads \\(--threads\\)"
  COMMAND ${MT_UX_CLEAN} OPENBLAS_NUM_THREADS=1 ${MT_BIN} bench --threads 2 --hidden 8 --features 8 --samples 512
          --batch 64 --steps 2 --warmup 0)
mt_expect(NAME bench.threads.omp_env EXIT ok WITHIN 60
  MATCH "1 rank x 1 thread \\(from OMP_NUM_THREADS=1\\)"
  COMMAND ${MT_UX_CLEAN} OMP_NUM_THREADS=1 ${MT_BIN} bench --hidden 8 --features 8 --samples 512 --batch 64
          --steps 2 --warmup 0)
mt_expect(NAME train.threads.auto NP 1 EXIT ok WITHIN 30 FIXTURES_REQUIRED train_small
  MATCH "1 rank x [0-9]+ BLAS threads? \\(auto: [0-9]+ cores? / 1 rank\\)"
  COMMAND ${MT_UX_CLEAN} ${MT_BIN} train ${MT_UX_RUN})
# --deterministic needs one thread: a thread variable set for the whole job is overridden, with a note;
# an explicit --threads 2 stays an error (train.error.det_threads).
mt_expect(NAME train.threads.det_env NP 1 EXIT ok WITHIN 30 FIXTURES_REQUIRED train_small
  MATCH "1 rank x 1 BLAS thread \\(--deterministic; OPENBLAS_NUM_THREADS=2 ignored\\)"
  COMMAND ${MT_UX_CLEAN} OPENBLAS_NUM_THREADS=2 ${MT_BIN} train ${MT_UX_RUN} --deterministic)
# A bad value is an agreed one-line error naming the variable.
mt_expect(NAME train.threads.bad_env_zero NP 2 EXIT fail WITHIN 30 FIXTURES_REQUIRED train_small
  MATCH "error: OMP_NUM_THREADS: expected a whole number in \\[1, 1024\\], got '0'"
  COMMAND ${MT_UX_CLEAN} OMP_NUM_THREADS=0 ${MT_BIN} train ${MT_UX_RUN})
mt_expect(NAME train.threads.bad_env_word NP 2 EXIT fail WITHIN 30 FIXTURES_REQUIRED train_small
  MATCH "error: OPENBLAS_NUM_THREADS: expected a whole number in \\[1, 1024\\], got 'abc'"
  COMMAND ${MT_UX_CLEAN} OPENBLAS_NUM_THREADS=abc ${MT_BIN} train ${MT_UX_RUN})

# eval and predict take the same path (a checkpoint of their own to read).
mt_expect(NAME train.ux_checkpoint EXIT ok WITHIN 30 FIXTURES_REQUIRED train_small FIXTURES_SETUP ux_ckpt
  COMMAND ${MT_BIN} train ${MT_UX_RUN} --checkpoint-dir ${MT_TEST_DATA}/ux_ckpt)
set(MT_UX_CKPT ${MT_TEST_DATA}/ux_ckpt/ckpt-000000000003.h5)
mt_expect(NAME train.threads.eval_bad_env NP 2 EXIT fail WITHIN 30 FIXTURES_REQUIRED ux_ckpt
  MATCH "error: OMP_NUM_THREADS: expected a whole number in \\[1, 1024\\], got 'abc'"
  COMMAND ${MT_UX_CLEAN} OMP_NUM_THREADS=abc ${MT_BIN} eval --checkpoint ${MT_UX_CKPT} --data ${MT_UX_DATA})
mt_expect(NAME train.threads.predict_bad_env EXIT fail WITHIN 30 FIXTURES_REQUIRED ux_ckpt
  MATCH "error: OPENBLAS_NUM_THREADS: expected a whole number in \\[1, 1024\\], got '-3'"
  COMMAND ${MT_UX_CLEAN} OPENBLAS_NUM_THREADS=-3 ${MT_BIN} predict --checkpoint ${MT_UX_CKPT} --data ${MT_UX_DATA}
          --out ux_pred.csv)

# ---- more ranks than cores: one warning, from rank 0 (tests oversubscribe on purpose) ----
cmake_host_system_information(RESULT MT_UX_CORES QUERY NUMBER_OF_LOGICAL_CORES)
if(MT_UX_CORES LESS 3)
  # `uniq -c` counts the warning lines: exactly one, however many ranks.
  string(REPLACE ";" " " run "${MT_UX_RUN}")
  mt_expect(NAME train.oversubscribed EXIT ok WITHIN 60 FIXTURES_REQUIRED train_small
    MATCH "^ *1 mpitrain: warning: 3 ranks share [0-9]+ cores? on node [^ ]+: busy-polling ranks will slow each other. start at most [0-9]+ ranks? per node \\(or bind with --cpus-per-task\\)$"
    COMMAND bash -c "${MT_MPIRUN} ${MPIEXEC_NUMPROC_FLAG} 3 ${MT_BIN} train ${run} 2>&1 | grep 'ranks share' | uniq -c")
  mt_expect(NAME train.oversubscribed_eval NP 3 EXIT ok WITHIN 60 FIXTURES_REQUIRED ux_ckpt
    MATCH "warning: 3 ranks share [0-9]+ cores? on node"
    COMMAND ${MT_BIN} eval --checkpoint ${MT_UX_CKPT} --data ${MT_UX_DATA})
  mt_expect(NAME bench.oversubscribed NP 3 EXIT ok WITHIN 90
    MATCH "warning: 3 ranks share [0-9]+ cores? on node"
    COMMAND ${MT_BIN} bench --hidden 8 --features 8 --samples 512 --batch 64 --steps 2 --warmup 0 --scaling off)
endif()
if(MT_UX_CORES GREATER_EQUAL 2)
  mt_expect(NAME train.not_oversubscribed NP 2 EXIT ok WITHIN 60 FIXTURES_REQUIRED train_small
    MATCH "2 ranks x 1 BLAS thread" NOMATCH "ranks share"
    COMMAND ${MT_UX_CLEAN} ${MT_BIN} train ${MT_UX_RUN})
endif()
# Tools do not train: no warning there even when oversubscribed.
mt_expect(NAME data.info.not_oversubscribed NP 3 EXIT ok WITHIN 60 FIXTURES_REQUIRED train_small
  NOMATCH "ranks share" COMMAND ${MT_BIN} info ${MT_UX_DATA})

# ---- names users bring from PyTorch: a hint, exit 2 like any unknown option ----
# (a ';' cannot appear in a MATCH: CMake would split the argument there, so '.' stands for it)
function(mt_ux_alias name regex)
  mt_expect(NAME train.alias.${name} EXIT 2 WITHIN 20 MATCH "${regex}" FIXTURES_REQUIRED train_small
    COMMAND ${MT_BIN} train --data ${MT_UX_DATA} --progress off ${ARGN})
endfunction()
mt_ux_alias(batch_size "error: unknown option --batch-size. mpitrain calls it --batch$" --batch-size 32)
mt_ux_alias(learning_rate "error: unknown option --learning-rate. mpitrain calls it --lr$" --learning-rate 0.1)
mt_ux_alias(num_epochs "error: unknown option --num-epochs. mpitrain calls it --epochs$" --num-epochs 3)
mt_ux_alias(adamw "error: --optimizer: unknown value 'adamw'. mpitrain calls it adam with --weight-decay WD"
  --optimizer adamw)
foreach(pair "batch_size = 32|batch_size'. mpitrain calls it 'batch'$"
             "learning_rate = 0.1|learning_rate'. mpitrain calls it 'lr'$"
             "num_epochs = 3|num_epochs'. mpitrain calls it 'epochs'$"
             "optimizer = adamw|optimizer: unknown value 'adamw'. mpitrain calls it adam with --weight-decay WD")
  string(REPLACE "|" ";" pair "${pair}")
  list(GET pair 0 line)
  list(GET pair 1 regex)
  string(REGEX REPLACE " .*" "" key "${line}")
  file(WRITE ${MT_TEST_DATA}/alias_${key}.ini "[optim]\n${line}\n")
  mt_ux_alias(ini_${key} "error: .*alias_${key}\\.ini:2: (unknown option ')?${regex}"
    --config ${MT_TEST_DATA}/alias_${key}.ini)
endforeach()

# ---- every subcommand answers --help: usage on stdout, exit 0 ----
foreach(cmd train eval predict convert synth info bench version)
  mt_expect(NAME help.${cmd} EXIT ok WITHIN 20 MATCH "^usage: .*mpitrain ${cmd}"
    COMMAND bash -c "${MT_BIN} ${cmd} --help 2>/dev/null")
endforeach()
# bench lists the options that shape a step, not checkpoints or logs it would ignore.
mt_expect(NAME help.bench_options EXIT ok WITHIN 20 MATCH "--steps N" NOMATCH "--checkpoint-dir|--log |--resume"
  COMMAND ${MT_BIN} bench --help)
mt_expect(NAME help.bench_has_train_options EXIT ok WITHIN 20 MATCH "--\\[no-\\]shard-optimizer"
  COMMAND ${MT_BIN} bench --help)
mt_expect(NAME bench.checkpoint_option_refused EXIT 2 WITHIN 20 MATCH "unknown option --checkpoint-dir"
  COMMAND ${MT_BIN} bench --checkpoint-dir x)
