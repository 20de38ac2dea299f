/* train.h — the data-parallel training loop; the only module that uses all the others.
 *
 * One step (README "Design"): the global batch of step t is a slice of the epoch's permutation; each rank takes its
 * contiguous part of the slice, runs forward/backward in micro-batches, the gradients (scaled by 1/global batch)
 * and the loss/accuracy sums are summed over ranks in one in-place allreduce, and every rank applies the same
 * optimiser step. */
#ifndef MPITRAIN_TRAIN_H
#define MPITRAIN_TRAIN_H

#include <stdint.h>

#include "mpitrain/blas.h"
#include "mpitrain/comm.h"
#include "mpitrain/config.h"
#include "mpitrain/data.h"
#include "mpitrain/log.h"
#include "mpitrain/loss.h"
#include "mpitrain/model.h"

typedef struct Trainer Trainer;

/* Per-step timing split, seconds (accumulated since the last mt_trainer_reset_timers). */
typedef struct StepTimes {
  double data, forward, backward, reduce, update;
  int64_t steps;
} StepTimes;

/* Collective. Opens the data (or uses ds if not NULL; ownership stays with the caller), builds the model,
 * the optimiser and the log. Errors are agreed across ranks. */
int mt_trainer_create(Trainer **out, const Config *cfg, Comm *comm, Dataset *ds, MtError *err);

/* Collective. Runs the configured epochs (or max_steps), evaluating after each epoch (and where max_steps ends the
 * run mid-epoch), writing checkpoints as configured; prints progress. Stops early, after the same step on every rank, when any rank got SIGTERM, SIGUSR1
 * or SIGINT (then mt_trainer_stopped is 1 and a checkpoint has been written if there is a --checkpoint-dir). */
int mt_trainer_fit(Trainer *t, MtError *err);
int mt_trainer_stopped(const Trainer *t);

/* Collective. One optimisation step on the next global batch; fills st (loss and accuracy of the batch). */
int mt_trainer_step(Trainer *t, StepStats *st, MtError *err);

/* Collective. Mean loss and accuracy over a whole split (data-parallel, sums reduced). */
int mt_trainer_evaluate(Trainer *t, Split s, double *loss, double *acc, MtError *err);
/* Collective. The same over the validation rows held out by --val-fraction. */
int mt_trainer_evaluate_validation(Trainer *t, double *loss, double *acc, MtError *err);

Model *mt_trainer_model(Trainer *t);
Dataset *mt_trainer_data(Trainer *t);
int64_t mt_trainer_steps_done(const Trainer *t);
const StepTimes *mt_trainer_times(const Trainer *t);
void mt_trainer_reset_timers(Trainer *t);
/* Parameters this rank's optimiser updates (all of them, or its 1/N with --shard-optimizer), and the gradient
 * buckets of a step. */
size_t mt_trainer_optimizer_params(const Trainer *t);
int mt_trainer_buckets(const Trainer *t);
/* The OpenBLAS threads per rank this trainer set, and where the number came from (mt_blas_threads_choose). */
const BlasThreads *mt_trainer_threads(const Trainer *t);
/* Benchmark only: one reduction of the gradient buffer by the trainer's own schedule (all buckets at once, nothing to
 * overlap with), returning its seconds. Collective; leaves the gradients summed (meaningless for training). */
double mt_trainer_bench_reduction(Trainer *t);
/* Bytes this rank holds for the model: parameters, gradients, optimiser state, activations. */
size_t mt_trainer_model_bytes(const Trainer *t, size_t *optimizer_bytes);
/* The training rows this rank processed in its last step (sorted), for coverage tests. */
const int64_t *mt_trainer_last_rows(const Trainer *t, int *n);
void mt_trainer_free(Trainer *t);

#endif
