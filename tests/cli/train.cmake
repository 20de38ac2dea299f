# train.cmake — `mpitrain train` end to end under mpirun: runs that must succeed at 1..4 ranks, and every error a
# user can cause ending all ranks quickly with a one-line reason and a non-zero exit.

# A small generated dataset shared by these tests.
mt_expect(NAME train.make_synth EXIT ok WITHIN 60 FIXTURES_SETUP train_small
  COMMAND ${MT_BIN} synth --samples 3000 --test-samples 600 --features 32 --classes 4 --noise 2.0 --seed 5
          --out ${MT_TEST_DATA}/train_small.h5)
# Three rows: fewer than the 4 ranks some tests start.
mt_expect(NAME train.make_tiny EXIT ok WITHIN 60 FIXTURES_SETUP synth_tiny
  COMMAND ${MT_BIN} synth --samples 3 --test-samples 2 --features 4 --classes 2 --out ${MT_TEST_DATA}/tiny.h5)

set(MT_SMALL ${MT_TEST_DATA}/train_small.h5)
set(MT_TRAIN_QUICK --hidden 32,16 --epochs 2 --batch 50 --lr 3e-3 --progress plain)

foreach(np 1 2 3 4)
  mt_expect(NAME train.synth_np${np} NP ${np} EXIT ok WITHIN 90 FIXTURES_REQUIRED train_small
    MATCH "final test accuracy: (9[0-9]|100)\\."
    COMMAND ${MT_BIN} train --data ${MT_SMALL} ${MT_TRAIN_QUICK} --check-replicas 1)
endforeach()
# Ranks on one node share one copy of the in-memory data; read-per-batch gives the same result.
mt_expect(NAME train.node_shared_data NP 3 EXIT ok WITHIN 60 FIXTURES_REQUIRED train_small
  MATCH "in memory, one copy per node shared by its 3 ranks"
  COMMAND ${MT_BIN} train --data ${MT_SMALL} ${MT_TRAIN_QUICK} --in-memory yes --check-replicas 1)

# Optimisers, activations, initialisations and batch regimes all run and learn (one epoch each, 2 ranks).
foreach(opt sgd momentum rmsprop adam)
  set(lr 3e-3)
  if(opt STREQUAL "sgd" OR opt STREQUAL "momentum")
    set(lr 0.3)
  endif()
  mt_expect(NAME train.opt_${opt} NP 2 EXIT ok WITHIN 60 FIXTURES_REQUIRED train_small
    MATCH "final test accuracy: ([89][0-9]|100)\\."
    COMMAND ${MT_BIN} train --data ${MT_SMALL} --hidden 32 --epochs 2 --batch 32 --optimizer ${opt} --lr ${lr}
            --progress off)
endforeach()
foreach(act relu leaky_relu tanh sigmoid)
  mt_expect(NAME train.act_${act} NP 2 EXIT ok WITHIN 60 FIXTURES_REQUIRED train_small
    MATCH "final test accuracy: ([89][0-9]|100)\\."
    COMMAND ${MT_BIN} train --data ${MT_SMALL} --hidden 32,16 --activation ${act} --epochs 2 --batch 32 --lr 3e-3
            --progress off)
endforeach()
mt_expect(NAME train.full_batch NP 2 EXIT ok WITHIN 60 FIXTURES_REQUIRED train_small
  MATCH "batch 3000 \\(1 steps/epoch\\)"
  COMMAND ${MT_BIN} train --data ${MT_SMALL} --hidden 16 --batch full --epochs 3 --lr 0.01 --progress plain)
mt_expect(NAME train.stochastic NP 2 EXIT ok WITHIN 60 FIXTURES_REQUIRED train_small
  MATCH "final test accuracy: ([89][0-9]|100)\\.[0-9]+% \\(test loss [0-9.]+\\) after 500 steps"
  COMMAND ${MT_BIN} train --data ${MT_SMALL} --hidden 16 --batch 1 --max-steps 500 --optimizer sgd --lr 0.01
          --progress plain)
mt_expect(NAME train.micro_batches NP 3 EXIT ok WITHIN 60 FIXTURES_REQUIRED train_small
  MATCH "final test accuracy: (9[0-9]|100)\\."
  COMMAND ${MT_BIN} train --data ${MT_SMALL} ${MT_TRAIN_QUICK} --batch 200 --epochs 6 --micro-batch 7 --check-replicas 5)

# Configuration file: the INI keys are the option names; the command line wins.
file(WRITE ${MT_TEST_DATA}/small.ini "[model]\nhidden = 8\nactivation = tanh\n[optim]\noptimizer = momentum\nlr = 0.5\nepochs = 1\n")
mt_expect(NAME train.config_file NP 2 EXIT ok WITHIN 60 FIXTURES_REQUIRED train_small
  MATCH "model 32-8-4 tanh.*momentum lr 0.5.*batch 64"
  COMMAND ${MT_BIN} train --config ${MT_TEST_DATA}/small.ini --data ${MT_SMALL} --batch 64 --progress plain)

# Metrics log: CSV and JSONL with step and epoch records.
mt_expect(NAME train.log_csv NP 2 EXIT ok WITHIN 60 FIXTURES_REQUIRED train_small
  MATCH "^kind,.*\nstep,0,1,"
  COMMAND bash -c "${MT_BIN} train --data ${MT_SMALL} --hidden 8 --epochs 1 --progress off --log m.csv && head -c 300 m.csv && grep -c '^epoch,' m.csv")
mt_expect(NAME train.log_jsonl NP 2 EXIT ok WITHIN 60 FIXTURES_REQUIRED train_small
  MATCH "\"kind\": *\"epoch\""
  COMMAND bash -c "${MT_BIN} train --data ${MT_SMALL} --hidden 8 --epochs 1 --progress off --log m.jsonl && cat m.jsonl")

# --help lists options with defaults.
mt_expect(NAME train.help EXIT ok WITHIN 20 MATCH "--lr .*default: 5e-4"
  COMMAND ${MT_BIN} train --help)

# ---- errors: every rank ends within seconds, non-zero, with a one-line reason ----
function(mt_train_error name np regex)
  mt_expect(NAME train.error.${name} NP ${np} EXIT fail WITHIN 10 MATCH "${regex}" NOMATCH "Segmentation|Aborted"
    FIXTURES_REQUIRED train_small synth_tiny bad_data COMMAND ${MT_BIN} train --progress off ${ARGN})
endfunction()
mt_train_error(missing_file 3 "error: .*nope\\.h5.*(No such file|cannot open)" --data nope.h5)
mt_train_error(lr_negative 2 "--lr: expected a number > 0" --data ${MT_SMALL} --lr -1)
mt_train_error(batch_zero 2 "--batch: expected" --data ${MT_SMALL} --batch 0)
mt_train_error(hidden_zero 2 "--hidden" --data ${MT_SMALL} --hidden 0)
mt_train_error(hidden_huge 2 "--hidden: expected a comma-separated list of whole numbers in .1, 1048576." --data ${MT_SMALL} --hidden 1099511627776)
mt_train_error(model_too_big 2 "the model .--hidden as given. needs about [0-9.]+ GiB per rank" --data ${MT_SMALL} --hidden 1048576,1048576)
mt_train_error(beta1_one 2 "--beta1" --data ${MT_SMALL} --beta1 1)
mt_train_error(unknown_optimizer 2 "--optimizer: .*adamx.*sgd, momentum, rmsprop, adam" --data ${MT_SMALL} --optimizer adamx)
mt_train_error(unknown_activation 2 "--activation: .*relux" --data ${MT_SMALL} --activation relux)
mt_train_error(unknown_option 2 "did you mean --epochs" --data ${MT_SMALL} --epoch 3)
mt_train_error(missing_config 2 "missing\\.ini" --data ${MT_SMALL} --config missing.ini)
mt_train_error(bad_ini_key 2 "bad\\.ini:2" --data ${MT_SMALL} --config ${MT_TEST_DATA}/bad.ini)
file(WRITE ${MT_TEST_DATA}/bad.ini "hidden = 8\nlearning_rate = 0.1\n")
mt_train_error(more_ranks_than_samples 4 "3 rows but 4 ranks" --data ${MT_TEST_DATA}/tiny.h5)
mt_train_error(not_hdf5 2 "not_hdf5\\.h5" --data bad/not_hdf5.h5)
mt_train_error(no_train_y 3 "no_train_y\\.h5.*/train/y" --data bad/no_train_y.h5)
mt_train_error(label_too_big 3 "label_too_big\\.h5.*label" --data bad/label_too_big.h5)
mt_train_error(label_negative 2 "label_negative\\.h5.*label" --data bad/label_negative.h5)
mt_train_error(test_d_mismatch 4 "test_d_mismatch\\.h5" --data bad/test_d_mismatch.h5)
mt_train_error(x_3d 2 "x_3d\\.h5" --data bad/x_3d.h5)
mt_train_error(float_labels 2 "float_labels\\.h5" --data bad/float_labels.h5)
mt_train_error(zero_rows 2 "zero_rows\\.h5" --data bad/zero_rows.h5)
mt_train_error(huge_rows 2 "huge_rows" --data bad/huge_rows_claim.h5)
mt_train_error(shards_disagree 2 "bad_shards" --data bad/bad_shards-00000-of-00002.h5)
# NaN features are refused even when rows are streamed rather than checked at open.
mt_train_error(nan_streamed 2 "nan_features.h5: /train/x.5. holds NaN" --data bad/nan_features.h5 --in-memory no
  --batch 1 --epochs 1 --hidden 4)
# One sample with a finite but huge feature overflows its step's loss to NaN: stop names the step; skip drops that
# step's update and goes on; a run that only ever produces NaN still stops.
set(rows "")
foreach(i RANGE 0 199)
  math(EXPR label "${i} % 2")
  if(i EQUAL 17)
    string(APPEND rows "${label},3e38,3e38,3e38,3e38\n")
  else()
    math(EXPR a "${i} % 7")
    string(APPEND rows "${label},${a},1,${label},2\n")
  endif()
endforeach()
file(WRITE ${MT_TEST_DATA}/overflow.csv "${rows}")
mt_expect(NAME train.make_overflow EXIT ok WITHIN 30 FIXTURES_SETUP overflow
  COMMAND ${MT_BIN} convert --from csv --train ${MT_TEST_DATA}/overflow.csv --out ${MT_TEST_DATA}/overflow.h5)
function(mt_overflow name exit regex)
  mt_expect(NAME train.${name} NP 2 EXIT ${exit} WITHIN 30 MATCH "${regex}" FIXTURES_REQUIRED overflow
    COMMAND ${MT_BIN} train --data ${MT_TEST_DATA}/overflow.h5 --hidden 4 --batch 1 --epochs 2 --optimizer sgd
            --lr 0.01 --progress off ${ARGN})
endfunction()
mt_overflow(overflow_stops fail "error: the training loss became (NaN|infinite) at step [0-9]+ .epoch 1.")
mt_overflow(overflow_skipped ok "non-finite loss, update skipped .2 so far" --on-nonfinite skip)
# The same in deterministic mode, where the NaN shows in the fixed-point conversion instead.
mt_overflow(overflow_det_stops fail "error: the training loss became (NaN|infinite) at step [0-9]+ .epoch 1." --deterministic)
mt_overflow(overflow_det_skipped ok "non-finite loss, update skipped .2 so far" --deterministic --on-nonfinite skip)
mt_train_error(det_threads 2 "--threads 2 with --deterministic: .*one thread per rank" --data ${MT_SMALL}
  --deterministic --threads 2)
mt_train_error(det_micro 2 "--micro-batch 4 with --deterministic: .*--det-group .8." --data ${MT_SMALL}
  --deterministic --det-group 8 --micro-batch 4)
mt_train_error(det_grad_comm 2 "mpitrain: error: --grad-comm bf16 with --deterministic: .*cannot be halved"
  --data ${MT_SMALL} --deterministic --grad-comm bf16)
mt_train_error(det_allreduce_hier 2 "mpitrain: error: --allreduce hier with --deterministic: "
  --data ${MT_SMALL} --deterministic --allreduce hier)
mt_train_error(allreduce_hier_zero1 2 "mpitrain: error: --allreduce hier: the hierarchical reduction is for the replicated"
  --data ${MT_SMALL} --shard-optimizer --allreduce hier)
mt_train_error(grad_comm_unknown 2 "--grad-comm: .*fp16.*fp32, bf16" --data ${MT_SMALL} --grad-comm fp16)
# --grad-comm bf16 says so in the banner, at 2 ranks with buckets; the replica check passes on every step.
mt_expect(NAME train.grad_comm_bf16 NP 2 EXIT ok WITHIN 60 FIXTURES_REQUIRED train_small
  MATCH "gradients: sent as bf16, summed in fp32, with error feedback .--grad-comm bf16." NOMATCH "one fused bucket|replica check failed"
  COMMAND ${MT_BIN} train --data ${MT_SMALL} --hidden 16 --epochs 1 --batch 64 --progress off --bucket-mb 0.0001
          --check-replicas 1 --grad-comm bf16)
# Buckets across ranks: backward computes the weight gradients in row blocks (model.h dw_block) and says so; the
# replicas stay identical on every step.
mt_expect(NAME train.dw_blocks NP 2 EXIT ok WITHIN 60 FIXTURES_REQUIRED train_small
  MATCH "buckets, each reduced while backward goes on; weight gradients in [0-9]+ row blocks" NOMATCH "replica check failed"
  COMMAND ${MT_BIN} train --data ${MT_SMALL} --hidden 40 --epochs 1 --batch 64 --progress off --bucket-mb 0.0001
          --check-replicas 1 --precision fp32)
mt_train_error(skip_forever 2 "100 steps in a row had a non-finite" --data ${MT_SMALL} --optimizer sgd --lr 1e30
  --hidden 8 --epochs 20 --on-nonfinite skip)
mt_train_error(diverged 2 "loss became (NaN|infinite) at step [0-9]+.*--lr" --data ${MT_SMALL} --optimizer sgd --lr 1e30 --hidden 8 --epochs 1)

# Fashion-MNIST itself: one epoch on 2 ranks already clears 80 %.
if(EXISTS /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz)
  mt_expect(NAME train.fmnist_one_epoch NP 2 EXIT ok WITHIN 120 FIXTURES_REQUIRED fmnist
    MATCH "final test accuracy: (8[0-9]|9[0-9])\\."
    COMMAND ${MT_BIN} train --data ${MT_TEST_DATA}/fmnist.h5 --epochs 1 --progress plain)
endif()

# The OpenBLAS kernels in use are as good as the CPU allows (mpitrain fixes OpenBLAS 0.3.21's misdetection).
mt_expect(NAME blas.kernels_not_weak EXIT ok WITHIN 20 MATCH "blas: .*core " NOMATCH "^warning:"
  COMMAND env -u OPENBLAS_CORETYPE ${MT_BIN} version)
# ... and when the user forces weak kernels on a CPU that has AVX2, they are told the exact fix.
file(READ /proc/cpuinfo MT_CPUINFO)
if(MT_CPUINFO MATCHES " avx2 ")
  mt_expect(NAME blas.weak_kernels_hint EXIT ok WITHIN 20
    MATCH "warning: OpenBLAS runs its Prescott .*OPENBLAS_CORETYPE=(Haswell|SkylakeX)"
    COMMAND env OPENBLAS_CORETYPE=Prescott ${MT_BIN} version)
endif()

# Regularisation and tuning options reach the model (the banner says what was built).
mt_expect(NAME train.tuning_banner NP 2 EXIT ok WITHIN 60 FIXTURES_REQUIRED train_small
  MATCH "batchnorm after, 1[0-9]+ parameters, init he, dropout 0.25, L2 0.5, weight decay 0.001, clip norm 2. adam lr 0.002 .0.001 x 256/128, linear scaling., step schedule, 20 warm-up steps"
  COMMAND ${MT_BIN} train --data ${MT_SMALL} --hidden 32,16 --batchnorm after --dropout 0.25 --l2 0.5 --weight-decay 1e-3
          --clip-norm 2 --lr 1e-3 --lr-ref-batch 128 --batch 256 --lr-schedule step --warmup-steps 20 --epochs 2
          --progress off)
# The recommended configuration parses (its accuracy is measured by hand: README).
mt_expect(NAME train.recommended_ini NP 2 EXIT ok WITHIN 60 FIXTURES_REQUIRED train_small
  MATCH "batchnorm before.*dropout 0.2, weight decay 0.0001. adam lr 0.001, cosine schedule. batch 256"
  COMMAND ${MT_BIN} train --config ${CMAKE_SOURCE_DIR}/launch/fashion-mnist-90.ini --data ${MT_SMALL} --epochs 1
          --progress off)
# The lessons' scripts run end to end (QUICK: generated data, a tenth of the steps) and draw their plots.
mt_test(NAME lessons.quick TIMEOUT 300
  COMMAND env QUICK=1 NP=2 MT_BUILD=${CMAKE_BINARY_DIR} WORK=${MT_TEST_DATA}/lessons OUTDIR=${MT_TEST_DATA}/lessons
          bash -c "bash ${CMAKE_SOURCE_DIR}/launch/lessons/lessons.sh && ls ${MT_TEST_DATA}/lessons/*.png | wc -l | grep -qx 5")

# Stall inspector: a rank stuck in the data phase (fault injection: it sleeps there) is named with its phase; a rank
# frozen with SIGSTOP (its inspector too) is named as silent; either way the job ends within seconds, non-zero.
mt_expect(NAME train.stall_injected EXIT fail WITHIN 40 FIXTURES_REQUIRED train_small
  MATCH "^mpitrain: stall: no progress for [0-9]+ s in the gradient reduction of step 5. waiting there: ranks 0-1,3. rank 2 has not arrived: in phase 'data'"
  COMMAND env MPITRAIN_TEST_STALL=2:5:120 ${MT_MPIRUN} -np 4 ${MT_BIN} train --data ${MT_SMALL} --hidden 16
          --batch 32 --epochs 2 --stall-timeout 2 --progress off)
# The same in deterministic mode, whose integer reductions go through the same watched collectives.
mt_expect(NAME train.stall_injected_det EXIT fail WITHIN 40 FIXTURES_REQUIRED train_small
  MATCH "^mpitrain: stall: no progress for [0-9]+ s in the gradient reduction of step 5. waiting there: ranks 0-1,3. rank 2 has not arrived: in phase 'data'"
  COMMAND env MPITRAIN_TEST_STALL=2:5:120 ${MT_MPIRUN} -np 4 ${MT_BIN} train --data ${MT_SMALL} --hidden 16
          --batch 32 --epochs 2 --stall-timeout 2 --progress off --deterministic --det-group 8)
mt_test(NAME train.stall_sigstop TIMEOUT 90 COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/stall.sh ${MT_BIN})

# The environment fails the run: full disk during a checkpoint, a metrics log on a full device, an impossible
# checkpoint directory.
foreach(scenario disk_full log_full ckpt_dir)
  mt_test(NAME train.environment.${scenario} TIMEOUT 60 FIXTURES_REQUIRED train_small
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/environment.sh ${scenario} ${MT_BIN} ${MT_SMALL})
  set_tests_properties(train.environment.${scenario} PROPERTIES SKIP_RETURN_CODE 77)
endforeach()
