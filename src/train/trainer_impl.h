/* trainer_impl.h — the Trainer's fields and the functions its files share (private to src/train/; the public API is
 * mpitrain/train.h). */
#ifndef MPITRAIN_TRAINER_IMPL_H
#define MPITRAIN_TRAINER_IMPL_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "mpitrain/det.h"
#include "mpitrain/optim.h"
#include "mpitrain/train.h"

/* Slots in the gradient buffer's tail (model.h, MODEL_GRAD_TAIL) that ride along in the gradient allreduce. */
enum { TAIL_LOSS = 0, TAIL_CORRECT, TAIL_FAILED, TAIL_STOP, TAIL_USED };

/* The trainer's clock: MPI_Wtime, which SimGrid's simulated clock replaces. */
static inline double now(void) { return MPI_Wtime(); }

/* Rows per forward/backward chunk when --micro-batch is auto: large enough for sgemm to run near its peak,
 * small enough that full-batch training on a big dataset does not need activations for every row at once. */
#define AUTO_MICRO_BATCH 1024

/* A piece of the gradient a rank holds or updates: g [n], the gradients of the parameters at poff, whose optimiser
 * moments are at moff; tensor is its index in the trainer's tensors (which say whether L2 and weight decay apply). */
typedef struct UpdateSlice {
  float *g;
  size_t poff, moff, n;
  int tensor;
} UpdateSlice;

/* Slices in the order of the gradient buffer they cover (consecutive: chained sums have one pass's bits). */
typedef struct UpdateSlices {
  UpdateSlice *s;
  int n;
} UpdateSlices;

struct Trainer {
  Config cfg;
  Comm *comm;
  Dataset *ds;
  int owns_ds;
  const DataInfo *info;
  Model model;
  Optimizer opt;
  Log *log;
  int dir_lock;             /* rank 0: the --checkpoint-dir lock (mt_checkpoint_dir_lock), -1 if none */
  float beta2;
  BlasThreads threads;      /* OpenBLAS threads per rank and where the number came from */

  int64_t n_train;          /* training rows: the training split less the validation rows */
  uint32_t *train_index;    /* [n_train] the dataset rows trained on (NULL: all rows, in order) */
  int64_t *val_rows;        /* [n_val] the held-out validation rows, sorted (NULL: no validation split) */
  int64_t n_val;
  LrSchedule sched;
  GradSync gs;              /* the gradient reduction schedule (buckets, replicated or sharded) */
  double bucket_mb;         /* --bucket-mb as used: auto resolved (trainer.c bucket_auto) */
  MtPrecision precision;    /* the GEMMs' (--precision resolved once: create_model; the model gets it in create_gemms) */
  size_t dw_block;          /* ModelContext.dw_block of the step that reduces (0: whole weight gradients) */
  int dw_blocks;            /* the weight gradients' blocks with it, over all layers (0 without; the banner's count) */
  MtAllreduce allreduce;    /* --allreduce as used: auto resolved (mt_allreduce_auto) */
  CommShared shared[2];     /* the in-memory splits' features, one copy per node */
  int n_tensors;
  ModelTensor tensors[4 * MODEL_MAX_HIDDEN + 2];
  /* The gradient as slices (UpdateSlice): whole, one slice per tensor of model.grads; own, the slices this rank
   * updates (= whole, or with a sharded optimiser its parts of each tensor in gs.own); held, what the engine's
   * reduction left this rank holding (own, or whole when the engine sums the whole gradient on every rank). */
  UpdateSlices whole, own, *held;
  int held_parts;           /* held is parts of the gradient (sharded and not whole): its norm needs a reduction */
  const struct StepEngine *engine; /* chosen once by mt_trainer_create: default or --deterministic */
  double *norm_sums;        /* [n_tensors] per-tensor sums of squares (sharded: reduced) */
  int n_decay;              /* tensors that L2 and weight decay apply to (the weight matrices) */
  ParamRange decay[MODEL_MAX_HIDDEN + 1];
  double last_l2;           /* the L2 term of the last step's loss */
  float *best_params;       /* [n_params] the model with the best validation loss (early stopping) */
  float *best_state;        /* [n_state] its batch-norm statistics */
  double best_val;          /* its validation loss (< 0: none yet) */
  int best_epoch;           /* 1-based epoch it was reached after */
  int since_best;           /* epochs since */
  int64_t batch;            /* global batch B (the last batch of an epoch may be smaller) */
  int64_t steps_per_epoch;  /* ceil(n_train / B) */
  int micro;                /* rows per chunk on this rank (= the model's max_batch) */
  int64_t max_local;        /* most rows this rank takes in one step */

  uint32_t *perm;           /* [n_train] this epoch's order */
  int perm_epoch;           /* epoch perm was drawn for, -1 before the first */
  int epoch;                /* current epoch, 0-based */
  int64_t epoch_pos;        /* rows of this epoch's permutation consumed (the next batch starts here) */
  int64_t step;             /* steps done in all */
  int64_t saved_step;       /* step of the last checkpoint written or resumed from (-1: none) */
  int stop_requested;       /* a rank got a stop signal: agreed in a step's allreduce */
  int64_t skipped;          /* --on-nonfinite skip: steps dropped so far ... */
  int skipped_in_row;       /* ... and in a row */
  float *state_snapshot;    /* [n_state] batch-norm statistics before the step (skip mode and a deterministic step
                               computed again restore them) */
  /* --deterministic (det.h) */
  int det;
  Det dt;
  int *det_groups;          /* [size] groups each rank holds in the current step */
  double *det_parts;        /* [groups per chunk][2 · max width] per-group batch-norm sums */
  double *det_scratch;      /* [groups per batch][2 · max width] every group's, gathered */

  int64_t *rows;            /* [max_local] the rows of this rank's slice of the current batch, sorted */
  int n_rows;               /* how many of them are valid */
  float *x;                 /* [micro, d] features of one chunk */
  int32_t *y;               /* [micro] labels of one chunk */
  float *dlogits;           /* [micro, C] */

  StepTimes times;
  double epoch_loss, epoch_correct; /* sums over the current epoch's batches (restored on resume) */
  int64_t epoch_samples;
  int64_t session_samples;          /* rows trained on in this epoch by this process (for samples/s) */
  double t_start, t_epoch;
  double elapsed_base;              /* training time of the earlier parts of a resumed run (its checkpoint's) */
};

/* qsort's order of int64_t rows. */
int mt_trainer_cmp_i64(const void *a, const void *b);
/* --val-fraction: hold out the validation rows (again, after a resume changed the seed). */
int mt_trainer_split_validation(Trainer *t, MtError *err);
void mt_trainer_advance_epoch(Trainer *t);

/* A step engine (engine.c): how the forward and backward passes of a step run and the gradient is reduced, and how
 * an evaluation sums its loss. One per mode, chosen once in mt_trainer_create. */
typedef struct StepEngine {
  const char *name;
  /* Fills the gradient buffer and its tail (TAIL_*) for the batch at [first, first + Bt) of the epoch's order. tm:
   * data, forward, backward, reduction seconds (added to). */
  void (*run)(Trainer *t, int64_t first, int64_t Bt, MtError *local, double tm[4]);
  /* 1: after run every rank holds the whole summed gradient in model.grads; 0: with a sharded optimiser only its
   * own parts, in gs.own. */
  int holds_whole;
  /* Mean loss and accuracy over n rows of split s (rows [0, n) when rows is NULL, else the sorted rows [n]). */
  int (*evaluate)(Trainer *t, Split s, const int64_t *rows, int64_t n, double *loss, double *acc, MtError *err);
} StepEngine;
extern const StepEngine mt_engine_default, mt_engine_det;
int mt_evaluate_default(Trainer *t, Split s, const int64_t *rows, int64_t n, double *loss, double *acc, MtError *err);
int mt_evaluate_det(Trainer *t, Split s, const int64_t *rows, int64_t n, double *loss, double *acc, MtError *err);

/* The update path (update.c), on the slices this rank holds and updates. */
/* Collective (sharded). The slices of the gradient (plan_gradsync, once gs is planned). */
int mt_update_plan(Trainer *t, MtError *err);
void mt_update_free(Trainer *t);
/* L2 (--l2) after the sum over ranks: adds λ/B·W to the gradient this rank holds; returns the loss term. */
double mt_update_l2(Trainer *t, int64_t Bt);
/* The squared norm of the whole gradient (reduced when this rank holds parts: collective then). */
double mt_update_grad_sumsq(Trainer *t);
/* Collective. The rest of a step that is not skipped: per-layer norms, clipping, weight decay, the optimiser, and
 * with a sharded optimiser the gathering of the parameters. logged: the caller wants s; sq: the gradient's squared
 * norm if already known, else < 0. Fills s->grad_norm when computed. */
void mt_update_apply(Trainer *t, StepStats *s, int logged, double lr, double sq);

/* Checkpoints (checkpointing.c, resume.c), all collective. */
int mt_trainer_check_finite(const Trainer *t, MtError *err);
int mt_trainer_save_as(Trainer *t, const char *name, MtError *err);
int mt_trainer_save(Trainer *t, MtError *err);
int mt_trainer_checkpoint_dir_ready(Trainer *t, MtError *err);
int mt_trainer_resume(Trainer *t, MtError *err);
int mt_trainer_init_from(Trainer *t, MtError *err);
/* The metrics file (fit.c), once every input is checked. Collective. */
int mt_trainer_metrics_open(Trainer *t, MtError *err);

#endif
