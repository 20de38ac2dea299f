/* train.c — the data-parallel training loop (see train.h for one step in words).
 *
 * Everything is allocated in trainer_create; trainer_step allocates nothing. The only collectives in a step are
 * the gradient allreduce (which also carries the loss and accuracy sums and an error count, so a rank whose read
 * failed is known to all ranks in the same call) and, when asked for, the replica check. */
#include "mpitrain/train.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mpitrain/blas.h"
#include "mpitrain/checkpoint.h"
#include "mpitrain/det.h"
#include "mpitrain/fileid.h"
#include "mpitrain/init.h"
#include "mpitrain/optim.h"
#include "mpitrain/replicate.h"
#include "mpitrain/rng.h"
#include "mpitrain/sim.h"
#include "mpitrain/torchfile.h"
#include "mpitrain/util.h"

/* Slots in the gradient buffer's tail (model.h, MODEL_GRAD_TAIL) that ride along in the gradient allreduce. */
enum { TAIL_LOSS = 0, TAIL_CORRECT, TAIL_FAILED, TAIL_STOP, TAIL_USED };

static double now(void) { return MPI_Wtime(); }

/* Rows per forward/backward chunk when --micro-batch is auto: large enough for sgemm to run near its peak,
 * small enough that full-batch training on a big dataset does not need activations for every row at once. */
#define AUTO_MICRO_BATCH 1024

struct Trainer {
  Config cfg;
  Comm *comm;
  Dataset *ds;
  int owns_ds;
  const DataInfo *info;
  Model model;
  Optimizer opt;
  Log *log;
  int dir_lock;             /* rank 0: the --checkpoint-dir lock (checkpoint_dir_lock), -1 if none */
  float beta2;
  BlasThreads threads;      /* OpenBLAS threads per rank and where the number came from */

  int64_t n_train;          /* training rows: the training split less the validation rows */
  uint32_t *train_index;    /* [n_train] the dataset rows trained on (NULL: all rows, in order) */
  int64_t *val_rows;        /* [n_val] the held-out validation rows, sorted (NULL: no validation split) */
  int64_t n_val;
  LrSchedule sched;
  GradSync gs;              /* the gradient reduction schedule (buckets, replicated or sharded) */
  CommShared shared[2];     /* the in-memory splits' features, one copy per node */
  int n_tensors;
  ModelTensor tensors[4 * MODEL_MAX_HIDDEN + 2];
  /* Sharded optimiser: the pieces of the parameter tensors this rank owns, as (parameter offset, offset in gs.own,
   * count, tensor index). L2, weight decay and per-layer norms work on these. */
  struct OwnSeg {
    size_t poff, goff, n;
    int tensor;
  } *own_segs;
  int n_own_segs;
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


static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

Model *trainer_model(Trainer *t) { return &t->model; }
Dataset *trainer_data(Trainer *t) { return t->ds; }
int64_t trainer_steps_done(const Trainer *t) { return t->step; }
const StepTimes *trainer_times(const Trainer *t) { return &t->times; }
void trainer_reset_timers(Trainer *t) { memset(&t->times, 0, sizeof t->times); }
size_t trainer_optimizer_params(const Trainer *t) { return t->opt.n; }

double trainer_bench_reduction(Trainer *t) {
  MPI_Barrier(t->comm->comm);
  double t0 = now();
  gradsync_ready(&t->gs, 0);
  gradsync_finish(&t->gs);
  return now() - t0;
}

size_t trainer_model_bytes(const Trainer *t, size_t *optimizer_bytes) {
  const Model *m = &t->model;
  size_t acts = 0;
  for (int i = 0; i < m->n_layers; i++) {
    const Layer *l = &m->layers[i];
    size_t per = (size_t)m->max_batch * (size_t)l->out;
    if (l->kind != LAYER_ACT) acts += per;
    if (l->kind == LAYER_BN || l->kind == LAYER_DROPOUT) acts += per;
  }
  size_t moments = (t->opt.m ? t->opt.n : 0) + (t->opt.v ? t->opt.n : 0);
  if (optimizer_bytes) *optimizer_bytes = sizeof(float) * moments;
  return sizeof(float) * (2 * m->n_params + m->n_state + moments + acts + 2 * (size_t)m->max_batch * m->max_width) +
         (t->gs.shard ? sizeof(float) * t->gs.n_own : 0);
}
int trainer_buckets(const Trainer *t) { return t->gs.n_buckets; }
const BlasThreads *trainer_threads(const Trainer *t) { return &t->threads; }
const int64_t *trainer_last_rows(const Trainer *t, int *n) {
  *n = t->n_rows;
  return t->rows;
}

void trainer_free(Trainer *t) {
  if (t == NULL) return;
  MtError ignore = {0};
  if (t->log) log_close(t->log, &ignore);
  mt_free(t->dlogits);
  mt_free(t->y);
  mt_free(t->x);
  mt_free(t->rows);
  mt_free(t->perm);
  mt_free(t->best_state);
  mt_free(t->state_snapshot);
  mt_free(t->det_scratch);
  mt_free(t->det_parts);
  mt_free(t->det_groups);
  det_free(&t->dt);
  mt_free(t->best_params);
  mt_free(t->val_rows);
  mt_free(t->train_index);
  optim_free(&t->opt);
  gradsync_free(&t->gs);
  free(t->own_segs);
  free(t->norm_sums);
  model_free(&t->model);
  if (t->owns_ds) data_close(t->ds);
  for (int s = 1; s >= 0; s--) comm_shared_free(&t->shared[s]); /* collective over the node, after data_close */
  checkpoint_dir_unlock(t->dir_lock);
  free(t);
}

/* Everything that needs only the configuration and the dataset's shape, checked identically on every rank. */
static int check_sizes(Trainer *t, MtError *err) {
  const Config *c = &t->cfg;
  if (t->n_train < t->comm->size)
    return mt_fail(err, "%s: the training split has %lld rows but %d ranks were started; expected at least one row "
                        "per rank (run with fewer ranks)",
                   c->data, (long long)t->n_train, t->comm->size);
  if (t->n_train > UINT32_MAX)
    return mt_fail(err, "%s: %lld training rows; at most %u are supported", c->data, (long long)t->n_train,
                   UINT32_MAX);
  if (t->info->n_classes < 2)
    return mt_fail(err, "%s: %d classes; expected at least 2", c->data, t->info->n_classes);
  return 0;
}

static int checkpoint_dir_ready(Trainer *t, MtError *err);
static int trainer_resume(Trainer *t, MtError *err);
static int trainer_init_from(Trainer *t, MtError *err);
static int metrics_open(Trainer *t, MtError *err);

/* Collective. The features of the in-memory splits, when data_open deferred them: one copy per node in shared
 * memory, read by the node's first rank, mapped by the others — N ranks on a node, 1/N of the memory. */
static int share_features(Trainer *t, MtError *err) {
  for (int s = 0; s < 2 && t->ds; s++) {
    size_t bytes = data_pending_bytes(t->ds, (Split)s);
    if (bytes == 0) continue;
    MtError local = {0};
    int owner = 0;
    comm_shared_alloc(t->comm, bytes, &t->shared[s], &owner, &local);
    if (comm_agree(t->comm, &local) != 0) {
      *err = local;
      return -1;
    }
    if (owner) data_load_features(t->ds, (Split)s, t->shared[s].base, &local);
    comm_shared_sync(t->comm, &t->shared[s]); /* every rank of the node, loaded or not */
    if (comm_agree(t->comm, &local) != 0) {
      *err = local;
      return -1;
    }
    data_attach_features(t->ds, (Split)s, t->shared[s].base);
  }
  return 0;
}

/* Buckets at tensor boundaries; in sharded mode, the pieces of each tensor this rank owns. */
static int plan_gradsync(Trainer *t, MtError *err) {
  const Model *m = &t->model;
  size_t bounds[4 * MODEL_MAX_HIDDEN + 4];
  int nb = 0;
  for (int i = 0; i < t->n_tensors; i++) bounds[nb++] = t->tensors[i].offset;
  bounds[nb++] = m->n_params;
  double mb = t->cfg.bucket_mb;
  if (mb < 0) mb = t->comm->node_size == t->comm->size ? 0 : 2; /* auto: see --bucket-mb's help */
  size_t bytes = mb > 0 ? (size_t)(mb * 1048576.0) : (size_t)-1 / 2;
  if (gradsync_create(&t->gs, t->comm, m->grads, m->n_params, TAIL_USED, bounds, nb, bytes, t->cfg.shard_optimizer,
                      err) != 0)
    return -1;
  t->norm_sums = calloc((size_t)t->n_tensors + 1, sizeof(double));
  if (t->norm_sums == NULL) return mt_fail(err, "out of memory");
  if (!t->gs.shard) return 0;
  const GradSync *g = &t->gs;
  int cap = (g->n_buckets + 1) * (t->n_tensors + 1);
  t->own_segs = calloc((size_t)cap, sizeof *t->own_segs);
  if (t->own_segs == NULL) return mt_fail(err, "out of memory");
  for (int b = 0; b < g->n_buckets; b++) {
    size_t o = g->own_off[b], cnt = (size_t)g->counts[b * t->comm->size + t->comm->rank];
    for (int i = 0; i < t->n_tensors; i++) {
      size_t lo = t->tensors[i].offset, hi = lo + t->tensors[i].count;
      if (lo < o) lo = o;
      if (hi > o + cnt) hi = o + cnt;
      if (lo < hi && t->n_own_segs < cap)
        t->own_segs[t->n_own_segs++] = (struct OwnSeg){lo, g->own_moff[b] + (lo - o), hi - lo, i};
    }
  }
  return 0;
}

/* --val-fraction: a fixed random subset of the training split (drawn from the seed, independent of the epoch and
 * of the rank count) is held out; the rest is what the epochs permute. */
static int split_validation(Trainer *t, MtError *err) {
  const int64_t total = t->n_train, n_val = (int64_t)((double)t->cfg.val_fraction * (double)total);
  if (n_val < 1 || total - n_val < 1)
    return mt_fail(err, "--val-fraction %g of %lld training rows leaves %lld for validation and %lld for training; "
                        "expected at least one of each",
                   (double)t->cfg.val_fraction, (long long)total, (long long)n_val, (long long)(total - n_val));
  if (total > UINT32_MAX) return mt_fail(err, "%s: too many training rows for --val-fraction", t->cfg.data);
  uint32_t *order = mt_alloc(sizeof(uint32_t) * (size_t)total, "the validation split", err);
  t->val_rows = mt_alloc(sizeof(int64_t) * (size_t)n_val, "the validation rows", err);
  t->train_index = mt_alloc(sizeof(uint32_t) * (size_t)(total - n_val), "the training rows", err);
  if (err->failed) {
    mt_free(order);
    return -1;
  }
  /* Epoch numbers count up from 0; a split drawn as "epoch" 2^55 never coincides with one. */
  rng_permutation((uint64_t)t->cfg.seed, (uint64_t)1 << 55, order, (size_t)total);
  for (int64_t i = 0; i < n_val; i++) t->val_rows[i] = order[i];
  qsort(t->val_rows, (size_t)n_val, sizeof(int64_t), cmp_i64);
  /* The training rows in ascending order: mark the held-out ones, keep the rest. */
  memset(order, 0, sizeof(uint32_t) * (size_t)total);
  for (int64_t i = 0; i < n_val; i++) order[t->val_rows[i]] = 1;
  int64_t k = 0;
  for (int64_t r = 0; r < total; r++)
    if (!order[r]) t->train_index[k++] = (uint32_t)r;
  mt_free(order);
  t->n_val = n_val;
  t->n_train = total - n_val;
  return 0;
}
int trainer_create(Trainer **out, const Config *cfg, Comm *comm, Dataset *ds, MtError *err) {
  *out = NULL;
  Trainer *t = calloc(1, sizeof *t);
  if (t == NULL) {
    mt_fail(err, "out of memory creating the trainer");
    comm_agree(comm, err);
    return -1;
  }
  t->cfg = *cfg;
  t->comm = comm;
  t->shared[0].win = t->shared[1].win = MPI_WIN_NULL;
  t->dir_lock = -1;
  t->perm_epoch = -1;
  t->saved_step = -1;
  t->beta2 = config_beta2(cfg);

  if (config_validate(cfg, err) != 0) goto agree;
  /* By stat, before anything opens them: opening a FIFO to read blocks until a writer comes, past any watchdog. */
  if (fileid_regular(cfg->data, "--data", err) != 0 ||
      (strcmp(cfg->resume, "auto") != 0 && fileid_regular(cfg->resume, "--resume", err) != 0))
    goto agree;

  if (ds != NULL) {
    t->ds = ds;
  } else {
    /* Several ranks on a node: one copy of the in-memory data for all of them (share_features). */
    DataOptions dopt = {.memory = cfg->in_memory, .memory_limit = cfg->memory_limit_mb * 1024 * 1024,
                        .max_rows = cfg->micro_batch > 0 ? cfg->micro_batch : AUTO_MICRO_BATCH,
                        .defer_features = comm->node_size > 1};
    if (data_open(&t->ds, cfg->data, &dopt, err) != 0) goto agree;
    t->owns_ds = 1;
  }
  t->info = data_info(t->ds);
  t->n_train = t->info->n[SPLIT_TRAIN];
  if (cfg->val_fraction > 0 && split_validation(t, err) != 0) goto agree;
  if (check_sizes(t, err) != 0) goto agree;

  t->batch = cfg->batch == 0 || cfg->batch > t->n_train ? t->n_train : cfg->batch;
  t->steps_per_epoch = (t->n_train + t->batch - 1) / t->batch;
  /* Rows per chunk: --micro-batch, else the whole local slice up to AUTO_MICRO_BATCH. The rank with the most rows
   * takes ceil(B / N). */
  t->max_local = (t->batch + comm->size - 1) / comm->size;
  int64_t micro = cfg->micro_batch > 0 ? cfg->micro_batch : AUTO_MICRO_BATCH;
  t->det = cfg->deterministic;
  const int64_t G = cfg->det_group;
  if (t->det) {
    /* Whole groups per rank, and chunks of whole groups. */
    int64_t groups = (t->batch + G - 1) / G, per_rank = (groups + comm->size - 1) / comm->size;
    t->max_local = per_rank * G < t->batch ? per_rank * G : t->batch;
    micro = micro / G * G;
    if (micro < G) micro = G;
  }
  const int bn = cfg->batchnorm != BN_NONE && cfg->hidden.n > 0;
  if (bn) {
    /* Batch statistics need every row of the rank's slice in one forward pass: no micro-batches. */
    if (cfg->micro_batch > 0 && cfg->micro_batch < t->max_local) {
      mt_fail(err, "--micro-batch %d with --batchnorm: batch statistics need a rank's %lld rows in one pass; drop "
                   "--micro-batch or use more ranks",
              cfg->micro_batch, (long long)t->max_local);
      goto agree;
    }
    micro = t->max_local;
  }
  if (micro > t->max_local) micro = t->max_local;
  t->micro = (int)micro;

  ModelSpec spec = {.n_inputs = t->info->d, .n_classes = t->info->n_classes, .n_hidden = cfg->hidden.n,
                    .act = (ActKind)cfg->activation, .leaky_slope = cfg->leaky_slope, .bn = (BnPlace)cfg->batchnorm,
                    .bn_momentum = cfg->bn_momentum, .bn_eps = cfg->bn_eps};
  for (int i = 0; i < cfg->hidden.n; i++) {
    spec.hidden[i] = cfg->hidden.v[i];
    spec.dropout[i] = cfg->dropout;
  }
  /* Before asking for the memory: an absurd model fails with a message, not with the OOM killer. The optimiser
   * adds up to two more copies of the parameters. */
  double need = model_plan_bytes(&spec, t->micro) * 2, ram = (double)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE);
  if (ram > 0 && need > 0.75 * ram) {
    mt_fail(err, "the model (--hidden %s) needs about %.1f GiB per rank with its optimiser state and activations; "
                 "this machine has %.1f GiB",
            cfg->hidden.n ? "as given" : "none", need / 1073741824.0, ram / 1073741824.0);
    goto agree;
  }
  if (model_create(&t->model, &spec, t->micro, err) != 0) goto agree;
  init_params(&t->model, (InitKind)cfg->init, (uint64_t)cfg->seed);
  t->n_tensors = model_tensors(&t->model, t->tensors, 4 * MODEL_MAX_HIDDEN + 2);
  for (int i = 0; i < t->n_tensors; i++)
    if (t->tensors[i].decay) t->decay[t->n_decay++] = (ParamRange){t->tensors[i].offset, t->tensors[i].count};
  if (plan_gradsync(t, err) != 0) goto agree;
  t->sched = (LrSchedule){.kind = (LrScheduleKind)cfg->lr_schedule,
                          .lr = cfg->lr_ref_batch > 0 ? (double)cfg->lr * (double)t->batch / (double)cfg->lr_ref_batch
                                                      : (double)cfg->lr,
                          .gamma = cfg->lr_gamma >= 0 ? cfg->lr_gamma : (cfg->lr_schedule == LR_STEP ? 0.1 : 0.95),
                          .step_epochs = cfg->lr_step,
                          .decay_rate = cfg->lr_decay_rate,
                          .lr_min = cfg->lr_min,
                          .epochs = cfg->epochs,
                          .warmup_steps = cfg->warmup_steps};
  if (t->det) {
    size_t bounds[4 * MODEL_MAX_HIDDEN + 3];
    for (int i = 0; i < t->n_tensors; i++) bounds[i] = t->tensors[i].offset;
    bounds[t->n_tensors] = t->model.n_params;
    const size_t w2 = 2 * (size_t)t->model.max_width;
    const int64_t groups = (t->batch + G - 1) / G, chunk_groups = (t->micro + G - 1) / G;
    if (det_create(&t->dt, bounds, t->n_tensors, comm->size, err) != 0) goto agree;
    t->det_groups = mt_alloc(sizeof(int) * (size_t)comm->size, "the deterministic-mode group counts", err);
    t->det_parts = mt_alloc(sizeof(double) * w2 * (size_t)chunk_groups, "per-group batch-norm sums", err);
    t->det_scratch = mt_alloc(sizeof(double) * w2 * (size_t)groups, "per-group batch-norm sums", err);
    if (err->failed) goto agree;
  }
  if ((cfg->on_nonfinite == NONFINITE_SKIP || t->det) && t->model.n_state)
    t->state_snapshot = mt_alloc(sizeof(float) * t->model.n_state, "a copy of the batch-norm statistics", err);
  t->best_val = -1;
  if (cfg->patience > 0) {
    t->best_params = mt_alloc(sizeof(float) * t->model.n_params, "the best model", err);
    t->best_state = mt_alloc(sizeof(float) * (t->model.n_state ? t->model.n_state : 1), "the best model", err);
  }

  OptConfig oc = {.kind = (OptKind)cfg->optimizer, .beta1 = cfg->beta1, .beta2 = t->beta2, .eps = cfg->eps};
  if (optim_create(&t->opt, &oc, t->gs.shard ? t->gs.n_own : t->model.n_params, err) != 0) goto agree;

  t->perm = mt_alloc(sizeof(uint32_t) * (size_t)t->n_train, "the epoch permutation", err);
  t->rows = mt_alloc(sizeof(int64_t) * (size_t)t->max_local, "the batch's row list", err);
  t->x = mt_alloc(sizeof(float) * (size_t)t->micro * (size_t)t->info->d, "the input batch", err);
  t->y = mt_alloc(sizeof(int32_t) * (size_t)t->micro, "the label batch", err);
  t->dlogits = mt_alloc(sizeof(float) * (size_t)t->micro * (size_t)t->info->n_classes, "the loss gradient", err);
  if (err->failed) goto agree;

  /* The screen only, for now: --log is opened by metrics_open once every input has been checked and the run knows
   * whether it resumed (then it continues the file of the run it resumes). */
  LogOptions lo = {.is_root = comm->rank == 0, .progress = cfg->progress, .path = cfg->log,
                   .format = cfg->log_format, .every = cfg->log_every, .defer_file = 1};
  if (log_open(&t->log, &lo, err) != 0) goto agree;

  /* Deterministic mode: one OpenBLAS thread, always. OpenBLAS 0.3.21 blocks the K dimension of a GEMM differently
   * with several threads, which changes the order of the additions (measured: the same run with 1 and 2 threads
   * differs in most weights after 30 steps). Start one rank per core instead. */
  if (blas_threads_choose(cfg->threads, t->det, comm->node_cores, comm->node_cpus, comm->node_size, &t->threads,
                          err) != 0)
    goto agree;
  blas_set_threads(t->threads.n);

agree:
  if (comm_agree(comm, err) != 0) {
    trainer_free(t);
    return -1;
  }
  if (share_features(t, err) != 0 || (cfg->checkpoint_dir[0] != '\0' && checkpoint_dir_ready(t, err) != 0) ||
      (cfg->resume[0] != '\0' && trainer_resume(t, err) != 0) ||
      (cfg->init_from[0] != '\0' && trainer_init_from(t, err) != 0) || metrics_open(t, err) != 0) {
    trainer_free(t);
    return -1;
  }
  *out = t;
  return 0;
}

static void advance_epoch(Trainer *t) {
  t->epoch++;
  t->epoch_pos = 0;
  t->epoch_loss = t->epoch_correct = 0;
  t->epoch_samples = t->session_samples = 0;
  t->t_epoch = now();
}

/* The model's backward hook: gradients [offset, n) are final; start reducing the buckets inside. */
static void on_grads_ready(void *arg, size_t offset) { gradsync_ready((GradSync *)arg, offset); }

/* The model's reduction hook: batch-norm statistics summed over every rank of the job. */
static void reduce_over_ranks(void *arg, double *buf, size_t n) { comm_allreduce_sum_double((Comm *)arg, buf, n); }

/* --log-norms: each parameter tensor's weight and gradient norms, for the steps the metrics file records. */
static void log_norms(Trainer *t, const StepStats *st) {
  if (!t->cfg.log_norms) return;
  const Model *m = &t->model;
  if (t->gs.shard) {
    /* Each rank holds parts of the gradient: sum the squares of its parts per tensor, reduce, then rank 0 logs.
     * Every step (not only logged ones), so that every rank takes part in the reduction. */
    memset(t->norm_sums, 0, sizeof(double) * (size_t)t->n_tensors);
    for (int i = 0; i < t->n_own_segs; i++)
      t->norm_sums[t->own_segs[i].tensor] += optim_sumsq(t->gs.own + t->own_segs[i].goff, t->own_segs[i].n);
    comm_allreduce_sum_double(t->comm, t->norm_sums, (size_t)t->n_tensors);
  } else {
    if (!log_step_due(t->log, st)) return;
    for (int i = 0; i < t->n_tensors; i++)
      t->norm_sums[i] = optim_sumsq(m->grads + t->tensors[i].offset, t->tensors[i].count);
  }
  if (!log_step_due(t->log, st)) return;
  for (int i = 0; i < t->n_tensors; i++)
    log_layer(t->log, st, t->tensors[i].name, sqrt(optim_sumsq(m->params + t->tensors[i].offset, t->tensors[i].count)),
              sqrt(t->norm_sums[i]));
}

/* Fault injection for the stall inspector's tests: MPITRAIN_TEST_STALL=RANK:STEP:SECONDS makes that rank sleep
 * in the data phase of that step, the way a hung file system would. Read once; costs nothing otherwise. */
static void fault_inject(Trainer *t) {
  static int parsed = 0, rank = -1;
  static long long at = -1;
  static double secs = 0;
  if (!parsed) {
    parsed = 1;
    const char *e = getenv("MPITRAIN_TEST_STALL");
    if (e == NULL || sscanf(e, "%d:%lld:%lf", &rank, &at, &secs) != 3) rank = -1;
  }
  if (rank == t->comm->rank && at == t->step + 1) {
    struct timespec ts = {(time_t)secs, 0};
    nanosleep(&ts, NULL);
  }
}

/* ==== --deterministic (det.h) ==== */

static void det_grads_cb(void *arg, const float *grads, size_t off, size_t n) {
  det_add(&((Trainer *)arg)->dt, grads, off, n);
}

static void det_reduce_cb(void *arg, const double *parts, size_t len, double *out) {
  Trainer *t = arg;
  det_reduce_groups(&t->dt, t->comm, parts, len, t->det_groups, t->det_scratch, out);
}

/* The forward and backward passes of one step in deterministic mode: this rank's whole groups of the batch (the
 * rows at positions [first, first + Bt) of the epoch's order), every group on its own, the sums exact. Fills the
 * gradient buffer and its tail like the default path. tm: data, forward, backward, reduction seconds. */
static void det_step(Trainer *t, int64_t first, int64_t Bt, MtError *local, double tm[4]) {
  Model *m = &t->model;
  const int C = t->info->n_classes, D = t->info->d;
  const int64_t G = t->cfg.det_group, ng = (Bt + G - 1) / G;
  int64_t g0, g1;
  for (int r = 0; r < t->comm->size; r++) {
    mt_even_split(ng, r, t->comm->size, &g0, &g1);
    t->det_groups[r] = (int)(g1 - g0);
  }
  mt_even_split(ng, t->comm->rank, t->comm->size, &g0, &g1);
  const int64_t lo = g0 * G < Bt ? g0 * G : Bt, hi = g1 * G < Bt ? g1 * G : Bt; /* no groups: lo = hi */
  t->n_rows = (int)(hi - lo);
  for (int i = 0; i < t->n_rows; i++) {
    uint32_t k = t->perm[first + lo + i];
    t->rows[i] = t->train_index ? t->train_index[k] : k;
  }
  /* Sorted within each group (the reader wants ascending rows): a group's rows, in the same order, whatever the
   * rank count. */
  for (int64_t i = 0; i < t->n_rows; i += G)
    qsort(t->rows + i, (size_t)(t->n_rows - i < G ? t->n_rows - i : G), sizeof(int64_t), cmp_i64);
  const float grad_scale = 1.0f / (float)Bt;
  ModelContext ctx = {.train = 1, .seed = (uint64_t)t->cfg.seed, .step = t->step, .batch_rows = Bt,
                      .group = (int)G, .group_grads = det_grads_cb, .reduce_groups = det_reduce_cb,
                      .group_arg = t, .group_parts = t->det_parts};
  double out[DET_TAIL];
  for (;;) {
    det_begin(&t->dt, ng);
    for (int c0 = 0; c0 == 0 || c0 < t->n_rows; c0 += t->micro) {
      int cn = t->n_rows - c0 < t->micro ? t->n_rows - c0 : t->micro;
      double a = now();
      for (int j = 0; j < cn && !local->failed; j += (int)G)
        data_read(t->ds, SPLIT_TRAIN, t->rows + c0 + j, cn - j < G ? cn - j : (int)G, t->x + (size_t)j * D,
                  t->y + j, local);
      if (local->failed) cn = 0; /* still through the passes: batch normalisation's collectives */
      double b = now();
      comm_phase(t->comm, "forward", t->step + 1);
      ctx.sample_ids = t->rows + c0;
      const float *logits = model_forward_ctx(m, t->x, cn, &ctx);
      for (int j = 0; j < cn; j += (int)G) {
        LossSums gs = {0, 0};
        loss_softmax_xent(logits + (size_t)j * C, t->y + j, cn - j < G ? cn - j : (int)G, C, grad_scale,
                          t->dlogits + (size_t)j * C, &gs);
        det_add_loss(&t->dt, gs.loss, (int64_t)gs.correct);
      }
      double c = now();
      comm_phase(t->comm, "backward", t->step + 1);
      model_backward(m, t->x, t->dlogits, cn, 0);
      double e = now();
      tm[0] += b - a;
      tm[1] += c - b;
      tm[2] += e - c;
      if (local->failed) break;
    }
    double r0 = now();
    comm_phase(t->comm, "gradient reduction", t->step + 1);
    int again = det_finish(&t->dt, t->comm, m->grads, local->failed, comm_stop_signal() != 0, out);
    tm[3] += now() - r0;
    if (!again) break;
    /* A group overflowed its fixed-point scale (or the scales were not known yet): every rank computes the step
     * again with scales from this step's maxima, from the same batch-norm statistics. */
    if (t->state_snapshot) memcpy(m->state, t->state_snapshot, sizeof(float) * m->n_state);
  }
  float *tail = m->grads + m->n_params;
  tail[TAIL_LOSS] = (float)out[DET_LOSS];
  tail[TAIL_CORRECT] = (float)out[DET_CORRECT];
  tail[TAIL_FAILED] = (float)out[DET_FAILED];
  tail[TAIL_STOP] = (float)out[DET_STOP];
}

/* Deterministic mode with the sharded optimiser: every rank has the whole sum; the optimiser takes its parts. */
static void det_take_own(Trainer *t) {
  const GradSync *gs = &t->gs;
  for (int b = 0; b < gs->n_buckets; b++)
    memcpy(gs->own + gs->own_moff[b], t->model.grads + gs->own_off[b],
           sizeof(float) * (size_t)gs->counts[b * t->comm->size + t->comm->rank]);
}

/* The forward and backward passes of one step in the default mode: this rank's contiguous slice of the batch (the
 * rows at positions [first, first + Bt) of the epoch's order), in chunks of --micro-batch rows, each finished
 * bucket of gradients reduced while backward goes on. tm: data, forward, backward, reduction seconds. */
static void default_step(Trainer *t, int64_t first, int64_t Bt, MtError *local, double tm[4]) {
  Model *m = &t->model;
  const int C = t->info->n_classes;
  const double t0 = now();
  int64_t lo, hi;
  mt_even_split(Bt, t->comm->rank, t->comm->size, &lo, &hi);
  t->n_rows = (int)(hi - lo);
  for (int i = 0; i < t->n_rows; i++) {
    uint32_t k = t->perm[first + lo + i];
    t->rows[i] = t->train_index ? t->train_index[k] : k;
  }
  /* Sorted: the reader touches the file (or memory) in order, and the order of rows within a rank's slice does not
   * change the gradient sum beyond rounding. */
  qsort(t->rows, (size_t)t->n_rows, sizeof(int64_t), cmp_i64);
  tm[0] += now() - t0;

  /* Each rank's gradient is Σ over its rows of ∂loss/∂θ / Bt: the SUM over ranks is the mean over the batch. */
  const float grad_scale = 1.0f / (float)Bt;
  LossSums sums = {0, 0};
  float *tail = m->grads + m->n_params;
  ModelContext ctx = {.train = 1, .seed = (uint64_t)t->cfg.seed, .step = t->step, .batch_rows = Bt,
                      .reduce = t->comm->size > 1 ? reduce_over_ranks : NULL, .reduce_arg = t->comm};
  /* ==== SimGrid SMPI hook (sim.h): in a simulated run with modelled compute, the simulator charges this step's
   * forward/backward to the clock instead (counted as backward time) and zeroes the gradients. ==== */
  const double s0 = now();
  const int simulated = sim_step_begin(m, t->n_rows, t->micro);
  if (simulated) tm[2] += now() - s0;
  /* At least one chunk, even with no rows: with batch normalisation every rank must make the same reductions.
   * A rank whose read fails carries on with zero rows for the same reason, and reports after the reduction. */
  for (int c0 = 0; !simulated && (c0 == 0 || c0 < t->n_rows); c0 += t->micro) {
    int cn = t->n_rows - c0 < t->micro ? t->n_rows - c0 : t->micro;
    double a = now();
    if (!local->failed && data_read(t->ds, SPLIT_TRAIN, t->rows + c0, cn, t->x, t->y, local) != 0) cn = 0;
    if (local->failed) cn = 0;
    double b = now();
    comm_phase(t->comm, "forward", t->step + 1);
    ctx.sample_ids = t->rows + c0;
    const float *logits = model_forward_ctx(m, t->x, cn, &ctx);
    loss_softmax_xent(logits, t->y, cn, C, grad_scale, t->dlogits, &sums);
    const int last = c0 + t->micro >= t->n_rows || local->failed;
    if (last) {
      /* The sums and flags are final before backward: they ride in the first bucket, which backward finishes
       * first; from then on each finished bucket is reduced while backward continues. */
      tail[TAIL_LOSS] = (float)sums.loss;
      tail[TAIL_CORRECT] = (float)sums.correct;
      tail[TAIL_FAILED] = local->failed ? 1.0f : 0.0f;
      tail[TAIL_STOP] = comm_stop_signal() != 0 ? 1.0f : 0.0f;
      m->ctx.grad_ready = on_grads_ready;
      m->ctx.grad_ready_arg = &t->gs;
    }
    double c = now();
    comm_phase(t->comm, "backward", t->step + 1);
    model_backward(m, t->x, t->dlogits, cn, c0 > 0);
    double e = now();
    tm[0] += b - a;
    tm[1] += c - b;
    tm[2] += e - c;
    if (last) break;
  }
  sim_step_end(simulated); /* SMPI hook (sim.h) */
  if (simulated) { /* no chunk ran: the sums are zero, the flags still count */
    tail[TAIL_LOSS] = tail[TAIL_CORRECT] = 0.0f;
    tail[TAIL_FAILED] = 0.0f;
    tail[TAIL_STOP] = comm_stop_signal() != 0 ? 1.0f : 0.0f;
  }
  const double r0 = now();
  comm_phase(t->comm, "gradient reduction", t->step + 1);
  gradsync_finish(&t->gs);
  tm[3] += now() - r0;
}

int trainer_step(Trainer *t, StepStats *st, MtError *err) {
  Model *m = &t->model;
  if (t->epoch_pos >= t->n_train) advance_epoch(t);
  comm_phase(t->comm, "data", t->step + 1);
  fault_inject(t);
  double t0 = now();
  if (t->perm_epoch != t->epoch) {
    /* The same (seed, epoch) gives the same order on every rank and for every rank count. */
    rng_permutation((uint64_t)t->cfg.seed, (uint64_t)t->epoch, t->perm, (size_t)t->n_train);
    t->perm_epoch = t->epoch;
  }
  int64_t first = t->epoch_pos;
  int64_t Bt = t->n_train - first < t->batch ? t->n_train - first : t->batch;
  MtError local = {0};
  float *tail = m->grads + m->n_params;
  if (t->state_snapshot) memcpy(t->state_snapshot, m->state, sizeof(float) * m->n_state);
  double tm[4] = {now() - t0, 0, 0, 0}; /* data, forward, backward, reduction */
  if (t->det)
    det_step(t, first, Bt, &local, tm);
  else
    default_step(t, first, Bt, &local, tm);
  comm_phase(t->comm, "update", t->step + 1);
  const double td = tm[0], tf = tm[1], tb = tm[2], r1 = now(), r0 = r1 - tm[3];
  if (tail[TAIL_FAILED] > 0) { /* every rank saw the count: all enter the agreement together */
    *err = local;
    comm_agree(t->comm, err);
    return -1;
  }
  /* From here on every rank computes the same thing from the same reduced values. The gradient this rank updates
   * is the whole summed buffer, or with a sharded optimiser its own parts of it. */
  const int shard = t->gs.shard;
  float *g = shard ? t->gs.own : m->grads;
  const size_t ng = shard ? t->gs.n_own : m->n_params;
  /* L2 after the sum over ranks, so every rank adds the same λ/B·W; the loss term uses the (replicated) weights. */
  if (!shard || t->det) {
    /* Deterministic and sharded: L2 on the whole sum, as unsharded, so that the gradient norm below is too. */
    t->last_l2 = optim_l2(t->decay, t->n_decay, m->params, m->grads, t->cfg.l2, Bt);
    if (shard) det_take_own(t);
  } else if (t->cfg.l2 > 0) {
    double sumsq = 0;
    for (int i = 0; i < t->n_decay; i++) sumsq += optim_sumsq(m->params + t->decay[i].offset, t->decay[i].count);
    t->last_l2 = t->cfg.l2 / (2.0 * (double)Bt) * sumsq;
    const float k = (float)(t->cfg.l2 / (double)Bt);
    for (int i = 0; i < t->n_own_segs; i++) {
      const struct OwnSeg *sg = &t->own_segs[i];
      if (!t->tensors[sg->tensor].decay) continue;
      for (size_t e = 0; e < sg->n; e++) g[sg->goff + e] += k * m->params[sg->poff + e];
    }
  }
  double loss = tail[TAIL_LOSS] / (double)Bt + t->last_l2, acc = tail[TAIL_CORRECT] / (double)Bt;
  /* Non-finite values: the loss is a reduced value, the same on every rank; skip mode also checks the gradient
   * (sharded: each rank holds a part, so the verdict is reduced too). */
  const int skip_mode = t->cfg.on_nonfinite == NONFINITE_SKIP;
  int bad_loss = !isfinite(loss), bad_grad = 0;
  if (skip_mode && !bad_loss) {
    double sq = optim_sumsq(shard && !t->det ? g : m->grads, shard && !t->det ? ng : m->n_params);
    if (shard && !t->det) comm_allreduce_sum_double(t->comm, &sq, 1);
    bad_grad = !isfinite(sq);
  }
  if ((bad_loss || bad_grad) && !skip_mode)
    return mt_fail(err, "the training loss became %s at step %lld (epoch %d); the run diverged. Try a smaller --lr "
                        "(now %g)%s, or --on-nonfinite skip",
                   isnan(loss) ? "NaN" : "infinite", (long long)t->step + 1, t->epoch + 1, (double)t->cfg.lr,
                   t->cfg.clip_norm > 0 ? "" : " or --clip-norm");
  if (bad_loss || bad_grad) {
    t->skipped++;
    if (++t->skipped_in_row >= 100)
      return mt_fail(err, "%d steps in a row had a non-finite %s (the last at step %lld): the run has diverged for "
                          "good; restart from a checkpoint with a smaller --lr",
                     t->skipped_in_row, bad_loss ? "loss" : "gradient", (long long)t->step + 1);
    if (t->state_snapshot) memcpy(m->state, t->state_snapshot, sizeof(float) * m->n_state);
    log_info(t->log, "step %lld: non-finite %s, update skipped (%lld so far)", (long long)t->step + 1,
             bad_loss ? "loss" : "gradient", (long long)t->skipped);
    t->step++;
    t->epoch_pos += Bt;
    if (tail[TAIL_STOP] > 0) t->stop_requested = 1;
    if (st) {
      memset(st, 0, sizeof *st);
      st->epoch = t->epoch;
      st->epochs = t->cfg.epochs;
      st->step = t->step;
      st->step_in_epoch = (t->epoch_pos + t->batch - 1) / t->batch;
      st->steps_per_epoch = t->steps_per_epoch;
      st->samples = Bt;
      st->loss = loss;
      st->grad_norm = -1;
      st->elapsed_s = t->elapsed_base + now() - t->t_start;
    }
    return 0;
  }
  t->skipped_in_row = 0;
  const double lr = lr_at(&t->sched, t->step + 1, t->steps_per_epoch);
  StepStats local_st, *s = st ? st : &local_st;
  memset(s, 0, sizeof *s);
  s->epoch = t->epoch;
  s->epochs = t->cfg.epochs;
  s->step = t->step + 1;
  s->step_in_epoch = (first + Bt + t->batch - 1) / t->batch;
  s->steps_per_epoch = t->steps_per_epoch;
  s->samples = Bt;
  s->loss = loss;
  s->acc = acc;
  s->lr = lr;
  s->grad_norm = -1;
  log_norms(t, s);
  /* The global gradient norm: when clipping needs it, or for the metrics log. Sharded, each rank holds a part: one
   * small reduction, decided by the configuration alone so that every rank makes it. */
  if (shard && (t->cfg.clip_norm > 0 || t->cfg.log_norms)) {
    /* Deterministic mode holds the whole sum on every rank: the norm as the unsharded optimiser computes it. */
    double sq = optim_sumsq(t->det ? m->grads : g, t->det ? m->n_params : ng);
    if (!t->det) comm_allreduce_sum_double(t->comm, &sq, 1);
    s->grad_norm = sqrt(sq);
    if (t->cfg.clip_norm > 0 && s->grad_norm > t->cfg.clip_norm) {
      const float scale = (float)(t->cfg.clip_norm / s->grad_norm);
      for (size_t e = 0; e < ng; e++) g[e] *= scale;
    }
  } else if (!shard && (t->cfg.clip_norm > 0 || (st && log_step_due(t->log, st)))) {
    s->grad_norm = optim_clip_norm(g, ng, t->cfg.clip_norm);
  }
  /* Decoupled: shrink the weights directly, before and apart from the optimiser's own step (AdamW). */
  if (!shard) {
    optim_weight_decay(t->decay, t->n_decay, m->params, lr, t->cfg.weight_decay);
    optim_step(&t->opt, m->params, m->grads, (float)lr);
  } else {
    const float keep = (float)(1.0 - lr * t->cfg.weight_decay);
    for (int i = 0; i < t->n_own_segs && t->cfg.weight_decay > 0; i++) {
      const struct OwnSeg *sg = &t->own_segs[i];
      if (!t->tensors[sg->tensor].decay) continue;
      for (size_t e = 0; e < sg->n; e++) m->params[sg->poff + e] *= keep;
    }
    optim_begin(&t->opt, (float)lr);
    const GradSync *gs = &t->gs;
    for (int b = 0; b < gs->n_buckets; b++)
      optim_update(&t->opt, m->params + gs->own_off[b], gs->own + gs->own_moff[b], gs->own_moff[b],
                   (size_t)gs->counts[b * t->comm->size + t->comm->rank]);
    gradsync_allgather(&t->gs, m->params);
  }
  double u1 = now();

  t->step++;
  t->epoch_pos += Bt;
  if (tail[TAIL_STOP] > 0) t->stop_requested = 1;
  t->times.data += td;
  t->times.forward += tf;
  t->times.backward += tb;
  t->times.reduce += r1 - r0;
  t->times.update += u1 - r1;
  t->times.steps++;
  t->epoch_loss += tail[TAIL_LOSS] + t->last_l2 * (double)Bt;
  t->epoch_correct += tail[TAIL_CORRECT];
  t->epoch_samples += Bt;
  t->session_samples += Bt;

  if (t->cfg.check_replicas > 0 && t->step % t->cfg.check_replicas == 0 &&
      !comm_replicas_identical(t->comm, m->params, sizeof(float) * m->n_params))
    return mt_fail(err, "replica check failed after step %lld: the parameters differ between ranks (this is a bug "
                        "in mpitrain or a faulty node; please report it)",
                   (long long)t->step);
  double el = u1 - t->t_epoch;
  s->samples_per_s = el > 0 ? t->session_samples / el : 0;
  s->elapsed_s = t->elapsed_base + u1 - t->t_start;
  return 0;
}

/* evaluate_rows in deterministic mode: the rows in fixed groups (det.h) — whole groups per rank, one GEMM per
 * group, each group's loss sum rounded to 2^-DET_LOSS_BITS and added as an integer — so the result has the same
 * bits on any number of ranks (early stopping then decides the same way). */
static int evaluate_rows_det(Trainer *t, Split s, const int64_t *rows, int64_t n, double *loss, double *acc,
                             MtError *err) {
  Model *m = &t->model;
  const int C = t->info->n_classes;
  /* Groups of --det-group rows, or fewer when the model holds fewer (batch < --det-group): the same on any N. */
  const int G = t->cfg.det_group < t->micro ? t->cfg.det_group : t->micro, chunk = t->micro / G * G;
  int64_t g0, g1;
  mt_even_split((n + G - 1) / G, t->comm->rank, t->comm->size, &g0, &g1);
  const int64_t lo = g0 * G < n ? g0 * G : n, hi = g1 * G < n ? g1 * G : n;
  MtError local = {0};
  int64_t v[4] = {0, 0, 0, 0}; /* loss in fixed point, correct, failed, non-finite */
  const ModelContext ctx = {.train = 0, .group = G};
  for (int64_t r = lo; r < hi; r += chunk) {
    int cn = (int)(hi - r < chunk ? hi - r : chunk);
    if ((rows ? data_read(t->ds, s, rows + r, cn, t->x, t->y, &local)
              : data_read_range(t->ds, s, r, cn, t->x, t->y, &local)) != 0)
      break;
    const float *logits = model_forward_ctx(m, t->x, cn, &ctx);
    for (int j = 0; j < cn; j += G) {
      LossSums gs = {0, 0};
      loss_softmax_xent(logits + (size_t)j * C, t->y + j, cn - j < G ? cn - j : G, C, 0.0f, NULL, &gs);
      double q = ldexp(gs.loss, DET_LOSS_BITS);
      if (isfinite(q) && fabs(q) < 0x1p62 / (double)(n / G + 1))
        v[0] += llrint(q);
      else
        v[3] = 1;
      v[1] += (int64_t)gs.correct;
    }
  }
  v[2] = local.failed;
  if (t->comm->size > 1) comm_allreduce(t->comm, v, 4, MPI_INT64_T, MPI_SUM, "evaluation");
  if (v[2] > 0) {
    *err = local;
    comm_agree(t->comm, err);
    return -1;
  }
  *loss = v[3] > 0 ? NAN : n > 0 ? ldexp((double)v[0], -DET_LOSS_BITS) / (double)n : 0;
  *acc = n > 0 ? (double)v[1] / (double)n : 0;
  return 0;
}

/* Mean loss and accuracy over n rows of split s: rows [0, n) when rows is NULL, else the sorted list rows [n]. Each
 * rank takes a contiguous part; the sums are reduced. */
static int evaluate_rows(Trainer *t, Split s, const int64_t *rows, int64_t n, double *loss, double *acc,
                         MtError *err) {
  Model *m = &t->model;
  comm_phase(t->comm, "eval", t->step);
  if (t->det) return evaluate_rows_det(t, s, rows, n, loss, acc, err);
  int64_t lo, hi;
  mt_even_split(n, t->comm->rank, t->comm->size, &lo, &hi);
  LossSums sums = {0, 0};
  MtError local = {0};
  for (int64_t r = lo; r < hi; r += t->micro) {
    int cn = (int)(hi - r < t->micro ? hi - r : t->micro);
    if ((rows ? data_read(t->ds, s, rows + r, cn, t->x, t->y, &local)
              : data_read_range(t->ds, s, r, cn, t->x, t->y, &local)) != 0)
      break;
    const float *logits = model_forward(m, t->x, cn);
    loss_softmax_xent(logits, t->y, cn, t->info->n_classes, 0.0f, NULL, &sums);
  }
  double v[3] = {sums.loss, sums.correct, local.failed ? 1 : 0};
  comm_allreduce_sum_double(t->comm, v, 3);
  if (v[2] > 0) {
    *err = local;
    comm_agree(t->comm, err);
    return -1;
  }
  *loss = n > 0 ? v[0] / (double)n : 0;
  *acc = n > 0 ? v[1] / (double)n : 0;
  return 0;
}

int trainer_evaluate(Trainer *t, Split s, double *loss, double *acc, MtError *err) {
  return evaluate_rows(t, s, NULL, t->info->n[s], loss, acc, err);
}

int trainer_evaluate_validation(Trainer *t, double *loss, double *acc, MtError *err) {
  if (t->n_val == 0) return mt_fail(err, "no validation split (--val-fraction)");
  return evaluate_rows(t, SPLIT_TRAIN, t->val_rows, t->n_val, loss, acc, err);
}

static void print_banner(Trainer *t) {
  const Config *c = &t->cfg;
  const Model *m = &t->model;
  char arch[300], extra[400] = "", lr[200];
  checkpoint_arch_string(&m->spec, arch, sizeof arch);
  size_t e = 0;
  if (c->dropout > 0) e += (size_t)snprintf(extra + e, sizeof extra - e, ", dropout %g", (double)c->dropout);
  if (c->l2 > 0 && e < sizeof extra) e += (size_t)snprintf(extra + e, sizeof extra - e, ", L2 %g", (double)c->l2);
  if (c->weight_decay > 0 && e < sizeof extra)
    e += (size_t)snprintf(extra + e, sizeof extra - e, ", weight decay %g", (double)c->weight_decay);
  if (c->clip_norm > 0 && e < sizeof extra)
    snprintf(extra + e, sizeof extra - e, ", clip norm %g", (double)c->clip_norm);
  static const char *const sched[] = {"constant", "step", "exp", "inv", "cosine"};
  int n = snprintf(lr, sizeof lr, "lr %g", t->sched.lr);
  if (c->lr_ref_batch > 0)
    n += snprintf(lr + n, sizeof lr - (size_t)n, " (%g x %lld/%lld, linear scaling)", (double)c->lr,
                  (long long)t->batch, (long long)c->lr_ref_batch);
  if (c->lr_schedule != LR_CONSTANT) n += snprintf(lr + n, sizeof lr - (size_t)n, ", %s schedule", sched[c->lr_schedule]);
  if (c->warmup_steps > 0)
    snprintf(lr + n, sizeof lr - (size_t)n, ", %lld warm-up steps", (long long)c->warmup_steps);
  char where[96];
  if (!t->info->in_memory[SPLIT_TRAIN])
    snprintf(where, sizeof where, "read per batch");
  else if (t->shared[SPLIT_TRAIN].base)
    snprintf(where, sizeof where, "in memory, one copy per node shared by its %d ranks", t->comm->node_size);
  else
    snprintf(where, sizeof where, "in memory");
  log_info(t->log, "mpitrain: %d rank%s x %d BLAS thread%s (%s); data %s (%lld train%s / %lld test rows, %s)",
           t->comm->size, t->comm->size == 1 ? "" : "s", t->threads.n, t->threads.n == 1 ? "" : "s",
           t->threads.source, c->data,
           (long long)t->n_train, t->n_val ? " + validation" : "", (long long)t->info->n[SPLIT_TEST], where);
  if (t->n_val) log_info(t->log, "validation: %lld rows held out of the training split", (long long)t->n_val);
  if (t->det) {
    const int64_t G = c->det_group, groups = (t->batch + G - 1) / G;
    log_info(t->log, "deterministic: groups of %lld rows, %lld per batch, summed as int%d; the same bits on any "
                     "number of ranks with --det-group %lld and one BLAS thread",
             (long long)G, (long long)groups, groups > DET_NARROW_GROUPS ? 64 : 32, (long long)G);
    if (groups < t->comm->size)
      log_info(t->log, "warning: %lld groups per batch for %d ranks: ranks %lld..%d have no rows and wait; use "
                       "--det-group %lld or a larger --batch", (long long)groups, t->comm->size, (long long)groups,
               t->comm->size - 1, (long long)(t->batch / t->comm->size > 0 ? t->batch / t->comm->size : 1));
  }
  if (t->comm->size > 1)
    log_info(t->log, "gradients: %s%s",
             t->det                   ? "one integer allreduce after backward (deterministic)"
             : t->gs.n_buckets == 1 ? "one fused bucket, reduced after backward"
                                      : "",
             t->gs.shard ? "; sharded optimiser (ZeRO-1): each rank updates and keeps state for 1/N of the "
                           "parameters"
                         : "");
  if (t->comm->size > 1 && t->gs.n_buckets > 1 && !t->det)
    log_info(t->log, "           %d buckets, each reduced while backward goes on", t->gs.n_buckets);
  log_info(t->log, "model %s, %zu parameters, init %s%s; %s %s; batch %lld (%lld steps/epoch), %d epoch%s", arch,
           m->n_params, init_name(init_resolve((InitKind)c->init, (ActKind)c->activation)), extra,
           optim_name((OptKind)c->optimizer), lr, (long long)t->batch, (long long)t->steps_per_epoch, c->epochs,
           c->epochs == 1 ? "" : "s");
  char buf[512];
  const char *hint = blas_weak_core_hint(buf, sizeof buf);
  if (hint) log_info(t->log, "warning: %s", hint);
}

/* ==== Checkpoints ==== */

/* The run's options as INI text, stored in every checkpoint so `mpitrain info` shows how it was made. */
static char *config_text(const Config *c) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (f == NULL) return NULL;
  opts_write_ini(f, config_train_options, c);
  fclose(f);
  return buf;
}

/* 0, or -1 when out of memory (what was filled is freed by checkpoint_meta_free). */
static int fill_meta(const Trainer *t, CheckpointMeta *meta) {
  memset(meta, 0, sizeof *meta);
  meta->format_version = CHECKPOINT_VERSION;
  meta->spec = t->model.spec;
  meta->opt = t->opt.cfg;
  meta->opt_step = t->opt.t;
  meta->step = t->step;
  meta->epoch = t->epoch;
  meta->epoch_pos = t->epoch_pos;
  meta->seed = t->cfg.seed;
  meta->world_size = t->comm->size;
  meta->epoch_loss_sum = t->epoch_loss;
  meta->epoch_correct = t->epoch_correct;
  meta->epoch_samples = t->epoch_samples;
  meta->best_val_loss = t->best_val;
  meta->best_epoch = t->best_epoch;
  if (t->det && t->dt.known) {
    meta->det_n = t->n_tensors;
    for (int i = 0; i < t->n_tensors; i++) memcpy(&meta->det_max[i], &t->dt.prev[i], sizeof(float));
  }
  meta->since_best = t->since_best;
  meta->elapsed_s = t->elapsed_base + now() - t->t_start; /* checkpoints are written in trainer_fit only */
  meta->n_train = t->info->n[SPLIT_TRAIN];
  snprintf(meta->data, sizeof meta->data, "%s", t->cfg.data);
  snprintf(meta->version, sizeof meta->version, "%s", MPITRAIN_VERSION);
  time_t now_t = time(NULL);
  struct tm tmv;
  gmtime_r(&now_t, &tmv);
  strftime(meta->created, sizeof meta->created, "%Y-%m-%dT%H:%M:%SZ", &tmv);
  meta->config = config_text(&t->cfg);
  /* The preprocessing belongs to the model: eval and predict apply it to whatever data they are given. */
  const int D = t->info->d, C = t->model.spec.n_classes;
  meta->has_preprocess = 1;
  meta->scale = t->info->scale;
  if (t->info->has_norm) {
    meta->mean = malloc(sizeof(float) * (size_t)D);
    meta->std = malloc(sizeof(float) * (size_t)D);
    if (meta->mean == NULL || meta->std == NULL) return -1;
    memcpy(meta->mean, data_mean(t->ds), sizeof(float) * (size_t)D);
    memcpy(meta->std, data_std(t->ds), sizeof(float) * (size_t)D);
  }
  if (data_class_name(t->ds, 0)) {
    meta->class_names = calloc((size_t)C, sizeof *meta->class_names);
    for (int k = 0; meta->class_names && k < C; k++)
      if ((meta->class_names[k] = strdup(data_class_name(t->ds, k) ? data_class_name(t->ds, k) : "")) == NULL)
        return -1;
    if (meta->class_names == NULL) return -1;
  }
  return meta->config ? 0 : -1;
}

/* The parameters are the same on every rank, so is this verdict. */
static int check_params_finite(const Trainer *t, MtError *err) {
  for (size_t i = 0; i < t->model.n_params; i++)
    if (!isfinite(t->model.params[i]))
      return mt_fail(err, "the parameters are not finite after step %lld (parameter %zu): the run diverged; the last "
                          "checkpoint (if any) is intact. Try a smaller --lr%s",
                     (long long)t->step, i, t->cfg.clip_norm > 0 ? "" : " or --clip-norm");
  return 0;
}

/* Collective. Rank 0 writes (every rank holds the same state), then all agree on the outcome: a checkpoint that
 * could not be written (disk full, directory gone) stops the run on every rank, the previous one intact. name NULL:
 * ckpt-<step>.h5, kept K at a time; else that file (best.h5). */
static int trainer_save_as(Trainer *t, const char *name, MtError *err) {
  comm_phase(t->comm, "checkpoint", t->step);
  MtError local = {0};
  char path[1100] = "";
  double t0 = now();
  /* Never replace a good checkpoint with a diverged model (a gradient can overflow while the loss is still finite;
   * the next step's loss would tell, but a checkpoint may come first). */
  if (check_params_finite(t, err) != 0) return -1;
  /* Checkpoints hold whole moments, whatever the rank count: a sharded optimiser gathers its parts on rank 0. */
  Optimizer full = t->opt, *o = &t->opt;
  if (t->gs.shard) {
    full.n = t->model.n_params;
    full.m = full.v = NULL;
    if (t->comm->rank == 0) {
      if (t->opt.m) full.m = mt_alloc(sizeof(float) * full.n, "the gathered optimiser moments", &local);
      if (t->opt.v) full.v = mt_alloc(sizeof(float) * full.n, "the gathered optimiser moments", &local);
    }
    if (comm_agree(t->comm, &local) != 0) {
      mt_free(full.m);
      mt_free(full.v);
      *err = local;
      return -1;
    }
    if (t->opt.m) gradsync_gather(&t->gs, t->opt.m, full.m, 0);
    if (t->opt.v) gradsync_gather(&t->gs, t->opt.v, full.v, 0);
    o = &full;
  }
  if (t->comm->rank == 0) {
    CheckpointMeta meta;
    if (fill_meta(t, &meta) != 0)
      mt_fail(&local, "out of memory describing the run for a checkpoint");
    else if (checkpoint_write(t->cfg.checkpoint_dir, name, &meta, &t->model, o, path, sizeof path, &local) == 0 &&
             name == NULL)
      checkpoint_prune(t->cfg.checkpoint_dir, t->cfg.keep, &local);
    checkpoint_meta_free(&meta);
  }
  if (t->gs.shard) {
    mt_free(full.m);
    mt_free(full.v);
  }
  if (comm_agree(t->comm, &local) != 0) {
    *err = local;
    return -1;
  }
  if (name == NULL) t->saved_step = t->step;
  log_flush(t->log);
  if (t->comm->rank == 0) {
    struct stat st;
    double mb = stat(path, &st) == 0 ? st.st_size / 1048576.0 : 0;
    log_info(t->log, "checkpoint %s (%.1f MB in %.0f ms)", path, mb, (now() - t0) * 1e3);
  }
  return 0;
}

static int trainer_save(Trainer *t, MtError *err) { return trainer_save_as(t, NULL, err); }

/* The options stored in a checkpoint (its config attribute, INI text) against this run's: "--name old → new" for
 * every option with `flag` (opts.h) whose values differ, joined by ", " into out [n] ("" if none). Values are
 * compared as formatted, so a default and the same value given explicitly are equal. -1 (err set) if the stored
 * text cannot be read back: then nothing is compared. */
static int options_changed(const Config *cfg, const char *stored, int flag, char *out, size_t n, MtError *err) {
  out[0] = '\0';
  Config *old = malloc(sizeof *old);
  if (old == NULL) return mt_fail(err, "out of memory");
  opts_defaults(config_train_options, old);
  if (opts_parse_ini_string(config_train_options, old, stored ? stored : "", stored ? strlen(stored) : 0,
                            "its config", err) != 0) {
    free(old);
    return -1;
  }
  size_t used = 0;
  for (const OptionSpec *o = config_train_options; o->name != NULL && used < n; o++) {
    if (!(o->flags & flag)) continue;
    /* --epochs is the length of the cosine schedule; under the other schedules it only says when to stop. */
    if (o->offset == offsetof(Config, epochs) && old->lr_schedule != LR_COSINE && cfg->lr_schedule != LR_COSINE)
      continue;
    char a[256], b[256];
    opts_format_value(o, old, a, sizeof a);
    opts_format_value(o, cfg, b, sizeof b);
    if (strcmp(a, b) != 0)
      used += (size_t)snprintf(out + used, n - used, "%s--%s %s → %s", used ? ", " : "", o->name, a, b);
  }
  free(old);
  return 0;
}

/* Rank 0 only: the checkpoint to resume from, loaded into t's model and optimiser. Returns 1 if one was loaded,
 * 0 if --resume auto found none, -1 on an error (which stops the run: an incompatible checkpoint, a damaged file
 * named explicitly, every checkpoint in the directory damaged). */
static int resume_pick(Trainer *t, Optimizer *opt, CheckpointMeta *meta, char *used, size_t used_n, MtError *err) {
  const Config *c = &t->cfg;
  int autodir = strcmp(c->resume, "auto") == 0;
  char (*paths)[1024] = malloc(sizeof(*paths) * (autodir ? CHECKPOINT_MAX : 1));
  if (paths == NULL) return mt_fail(err, "out of memory listing checkpoints");
  int n = 1;
  if (autodir)
    n = checkpoint_list(c->checkpoint_dir, paths, CHECKPOINT_MAX, err);
  else
    snprintf(paths[0], sizeof paths[0], "%s", c->resume);
  int rc = n < 0 ? -1 : 0, skipped = 0;
  for (int i = 0; i < n && rc == 0; i++) {
    MtError e = {0};
    if (checkpoint_read_meta(paths[i], meta, &e) == 0) {
      /* Incompatible is final (every checkpoint of this directory is the same run); damage skips to an older one. */
      if (checkpoint_check_fits(paths[i], meta, &t->model, opt, &e) != 0) {
        /* Name the options that made the difference, when the checkpoint's own options say. */
        char diff[300];
        MtError ignore = {0};
        if (options_changed(c, meta->config, OPT_MODEL, diff, sizeof diff, &ignore) == 0 && diff[0] != '\0')
          rc = mt_fail(err, "%s: %s", diff, e.msg);
        else
          rc = mt_fail(err, "%s", e.msg);
        checkpoint_meta_free(meta);
        break;
      }
      if (checkpoint_read_state(paths[i], meta, &t->model, opt, &e) == 0) {
        snprintf(used, used_n, "%s", paths[i]);
        char diff[600];
        MtError why = {0};
        if (options_changed(c, meta->config, OPT_TRAJECTORY, diff, sizeof diff, &why) != 0)
          log_info(t->log, "note: cannot compare this run's options with those of %s (%s)", paths[i], why.msg);
        else if (diff[0] != '\0')
          log_info(t->log, "warning: %s was written with other training options: %s; the run goes on with the new "
                           "ones", paths[i], diff);
        rc = 1;
        break;
      }
      checkpoint_meta_free(meta);
    }
    if (!autodir) {
      rc = mt_fail(err, "--resume %s: %s", paths[i], e.msg);
      break;
    }
    fprintf(stderr, "mpitrain: warning: skipping %s: %s\n", paths[i], e.msg);
    skipped++;
  }
  if (rc == 0 && skipped > 0)
    rc = mt_fail(err, "--resume auto: all %d checkpoints in %s are damaged; remove them to start afresh", skipped,
                 c->checkpoint_dir);
  free(paths);
  return rc;
}

/* Collective: early stopping's best model so far, from DIR/best.h5 (written when it was reached). */
static int load_best(Trainer *t, MtError *err) {
  MtError local = {0};
  char path[1100];
  snprintf(path, sizeof path, "%s/best.h5", t->cfg.checkpoint_dir);
  if (t->comm->rank == 0) {
    CheckpointMeta meta;
    Model tmp;
    if (checkpoint_read_meta(path, &meta, &local) == 0) {
      if (model_create(&tmp, &t->model.spec, 1, &local) == 0) {
        if (checkpoint_read_state(path, &meta, &tmp, NULL, &local) == 0) {
          memcpy(t->best_params, tmp.params, sizeof(float) * tmp.n_params);
          if (tmp.n_state) memcpy(t->best_state, tmp.state, sizeof(float) * tmp.n_state);
        }
        model_free(&tmp);
      }
      checkpoint_meta_free(&meta);
    }
    if (local.failed) {
      char why[MT_ERROR_MSG];
      snprintf(why, sizeof why, "%s", local.msg);
      mt_error_clear(&local);
      mt_fail(&local, "early stopping's best model so far (%.300s) cannot be read back; remove the checkpoints to "
                      "start afresh",
              why);
    }
  }
  if (comm_agree(t->comm, &local) != 0) {
    *err = local;
    return -1;
  }
  /* The best model is kept as copies of params and state in the model's own layout: replicate it as a model. */
  Model best = t->model;
  best.params = t->best_params;
  best.state = t->best_state;
  model_replicate(t->comm, &best, 0);
  return 0;
}

/* Collective. Rank 0 reads the checkpoint and broadcasts the state: one reader, however many ranks (a parallel
 * file system does not enjoy 512 ranks opening the same file at once). */
static int trainer_resume(Trainer *t, MtError *err) {
  CheckpointMeta meta;
  memset(&meta, 0, sizeof meta);
  char used[1024] = "";
  MtError local = {0};
  int found = 0, have_full = 0;
  Optimizer full;
  memset(&full, 0, sizeof full);
  if (t->comm->rank == 0) {
    /* Whole moments come off the file; a sharded optimiser then receives its parts. */
    if (t->gs.shard) {
      OptConfig oc = t->opt.cfg;
      if (optim_create(&full, &oc, t->model.n_params, &local) == 0) have_full = 1;
    }
    if (!local.failed) found = resume_pick(t, have_full ? &full : &t->opt, &meta, used, sizeof used, &local);
    if (found < 0) found = 0;
  }
  if (comm_agree(t->comm, &local) != 0) {
    if (have_full) optim_free(&full);
    *err = local;
    return -1;
  }
  /* step, epoch, pos, optimiser t, epoch samples, seed, found | epoch sums */
  int64_t iv[9] = {meta.step,          meta.epoch, meta.epoch_pos,  meta.opt_step, meta.epoch_samples,
                   meta.seed,          found,      meta.best_epoch, meta.since_best};
  double dv[4] = {meta.epoch_loss_sum, meta.epoch_correct, meta.best_val_loss, meta.elapsed_s};
  comm_bcast(t->comm, iv, sizeof iv, 0);
  comm_bcast(t->comm, dv, sizeof dv, 0);
  float det_max[sizeof meta.det_max / sizeof meta.det_max[0]];
  int det_n = meta.det_n;
  memcpy(det_max, meta.det_max, sizeof det_max);
  comm_bcast(t->comm, &det_n, sizeof det_n, 0);
  comm_bcast(t->comm, det_max, sizeof det_max, 0);
  if (!iv[6]) {
    if (have_full) optim_free(&full);
    log_info(t->log, "--resume auto: no checkpoint in %s yet: starting fresh", t->cfg.checkpoint_dir);
    return 0;
  }
  model_replicate(t->comm, &t->model, 0);
  if (t->gs.shard) {
    if (t->opt.m) gradsync_scatter(&t->gs, have_full ? full.m : NULL, t->opt.m, 0);
    if (t->opt.v) gradsync_scatter(&t->gs, have_full ? full.v : NULL, t->opt.v, 0);
  } else {
    if (t->opt.m) comm_bcast(t->comm, t->opt.m, sizeof(float) * t->opt.n, 0);
    if (t->opt.v) comm_bcast(t->comm, t->opt.v, sizeof(float) * t->opt.n, 0);
  }
  if (have_full) optim_free(&full);
  t->step = t->saved_step = iv[0];
  t->epoch = (int)iv[1];
  t->epoch_pos = iv[2];
  t->opt.t = iv[3];
  t->epoch_samples = iv[4];
  t->epoch_loss = dv[0];
  t->epoch_correct = dv[1];
  t->best_val = dv[2];
  t->elapsed_base = dv[3] >= 0 ? dv[3] : 0;
  t->best_epoch = (int)iv[7];
  t->since_best = (int)iv[8];
  if (t->cfg.seed != iv[5]) {
    log_info(t->log, "note: continuing with the checkpoint's seed %lld (not --seed %lld): it fixes the data order",
             (long long)iv[5], (long long)t->cfg.seed);
    t->cfg.seed = iv[5];
    if (t->n_val > 0) { /* the validation rows derive from the seed too */
      mt_free(t->val_rows);
      mt_free(t->train_index);
      t->val_rows = NULL;
      t->train_index = NULL;
      t->n_train = t->info->n[SPLIT_TRAIN];
      MtError e = {0};
      split_validation(t, &e); /* cannot fail where it succeeded before with the same sizes */
      t->perm_epoch = -1;
    }
  }
  if (t->det) {
    /* The next step's fixed-point scales: with them the resumed run has the same bits as one never stopped. */
    t->dt.known = det_n == t->n_tensors;
    for (int i = 0; t->dt.known && i < t->n_tensors; i++) memcpy(&t->dt.prev[i], &det_max[i], sizeof(float));
    if (!t->dt.known)
      log_info(t->log, "note: %s was not written by a --deterministic run: from here on every rank count gives "
                       "the same bits, but not the same as a run that was never stopped", used);
  }
  if (t->best_params && t->best_val >= 0 && t->cfg.checkpoint_dir[0] == '\0') t->best_val = -1;
  if (t->best_params && t->best_val >= 0 && load_best(t, err) != 0) {
    checkpoint_meta_free(&meta);
    return -1;
  }
  if (t->comm->rank == 0) {
    if (meta.n_train != t->n_train)
      log_info(t->log, "warning: %s was trained on %lld rows (%s); this dataset has %lld: the data order differs",
               used, (long long)meta.n_train, meta.data, (long long)t->n_train);
    const int pre = meta.has_preprocess ? data_preprocess_differs(t->ds, meta.scale, meta.mean, meta.std) : 0;
    if (pre)
      log_info(t->log, "warning: %s was trained on data %s; the run goes on with %s's own, so the model sees its "
               "features differently from here on", used,
               pre == DATA_PRE_SCALE ? "of another scale" : pre == DATA_PRE_NORM ? "normalised otherwise"
                                                                                : "of another scale and normalisation",
               t->cfg.data);
    if (t->epoch_pos > t->n_train) t->epoch_pos = t->n_train;
    log_info(t->log, "resumed from %s: step %lld, epoch %d (%lld of %lld rows done), written at %d rank%s", used,
             (long long)t->step, t->epoch + 1, (long long)t->epoch_pos, (long long)t->n_train, meta.world_size,
             meta.world_size == 1 ? "" : "s");
    if (meta.elapsed_s < 0 && t->cfg.log[0] != '\0')
      log_info(t->log, "note: %s does not record the training time so far (an older mpitrain): elapsed_s in %s "
                       "counts from 0 again", used, t->cfg.log);
  }
  if (t->epoch_pos > t->n_train) t->epoch_pos = t->n_train;
  checkpoint_meta_free(&meta);
  if (comm_agree(t->comm, &local) != 0) {
    *err = local;
    return -1;
  }
  return 0;
}

/* Rank 0 only: FILE's weights into the model — an mpitrain checkpoint (architecture checked as for a resume, CRC
 * verified; its optimiser state and progress are not used), else a PyTorch state dict (torchfile.h). */
static int init_read(Trainer *t, const char *path, char *how, size_t how_n, MtError *err) {
  if (fileid_regular(path, NULL, err) != 0) return -1; /* before anything opens it: a FIFO would block */
  if (torchfile_sniff(path)) {
    char keys[64] = "";
    if (torchfile_load_model(path, &t->model, keys, sizeof keys, err) != 0) return -1;
    snprintf(how, how_n, "PyTorch state dict, %s", keys);
    return 0;
  }
  CheckpointMeta meta;
  MtError e = {0};
  if (checkpoint_read_meta(path, &meta, &e) == 0) {
    checkpoint_read_state(path, &meta, &t->model, NULL, &e);
    checkpoint_meta_free(&meta);
  }
  if (e.failed) return mt_fail(err, "%s: %s", path, e.msg);
  snprintf(how, how_n, "mpitrain checkpoint");
  return 0;
}

/* Collective. --init-from FILE: the run starts from FILE's weights instead of --init's; everything else (step,
 * epoch, optimiser state, data order) is a fresh run's. A checkpoint resumed wins. */
static int trainer_init_from(Trainer *t, MtError *err) {
  const char *path = t->cfg.init_from;
  if (t->saved_step >= 0) {
    log_info(t->log, "note: --init-from %s ignored: the run resumed a checkpoint (step %lld)", path,
             (long long)t->saved_step);
    return 0;
  }
  MtError local = {0};
  char how[96] = "";
  if (t->comm->rank == 0 && init_read(t, path, how, sizeof how, &local) != 0) {
    char why[MT_ERROR_MSG];
    snprintf(why, sizeof why, "%s", local.msg);
    mt_error_clear(&local);
    mt_fail(&local, "--init-from %s", why);
  }
  if (comm_agree(t->comm, &local) != 0) {
    *err = local;
    return -1;
  }
  model_replicate(t->comm, &t->model, 0);
  log_info(t->log, "initialised from %s (%s)", path, how);
  return 0;
}

/* Collective: rank 0 makes the directory, proves it can write there before any training time is spent, and takes
 * the directory's lock for the rest of the run (refused, on every rank, if another live run holds it). Only then
 * are temporaries removed: with the lock held no live run can be writing them. */
static int checkpoint_dir_ready(Trainer *t, MtError *err) {
  MtError local = {0};
  const char *dir = t->cfg.checkpoint_dir;
  if (t->comm->rank == 0) {
    char path[1100];
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1; *p; p++) /* mkdir -p */
      if (*p == '/') {
        *p = '\0';
        mkdir(path, 0777);
        *p = '/';
      }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
      mt_fail(&local, "--checkpoint-dir %s: cannot create it: %s", dir, strerror(errno));
    snprintf(path, sizeof path, "%s/.mpitrain-write-test.%ld", dir, (long)getpid());
    FILE *f = local.failed ? NULL : fopen(path, "w");
    if (!local.failed && (f == NULL || fclose(f) != 0))
      mt_fail(&local, "--checkpoint-dir %s: cannot write there: %s", dir, strerror(errno));
    unlink(path);
    char holder[512] = "";
    int locked = local.failed ? -1 : checkpoint_dir_lock(dir, &t->dir_lock, holder, sizeof holder, &local);
    if (locked == 1) {
      fprintf(stderr, "mpitrain: warning: %s\n", local.msg);
      mt_error_clear(&local);
    }
    if (locked == 0 && holder[0] != '\0')
      fprintf(stderr, "mpitrain: taking over --checkpoint-dir %s from a run that ended without releasing it (%s)\n",
              dir, holder);
    int stale = locked < 0 ? 0 : checkpoint_clean_temporaries(dir, locked == 0);
    if (stale > 0)
      fprintf(stderr, "mpitrain: removed %d unfinished checkpoint file%s left in %s by an interrupted run\n", stale,
              stale == 1 ? "" : "s", dir);
  }
  /* The directory's verdict is the job's, not rank 0's: every rank reports it (one line, no "rank 0:"). */
  comm_bcast(t->comm, &local, sizeof local, 0);
  if (comm_agree(t->comm, &local) != 0) {
    *err = local;
    return -1;
  }
  return 0;
}

/* Collective, once the data and the checkpoint are open and agreed good: rank 0 creates the metrics file. Not before:
 * a run refused for a bad input leaves an existing file of that name as it was. And never over an input of this
 * run, by whatever name: a file of the dataset, the checkpoint resumed from, any checkpoint of --checkpoint-dir
 * (--config is checked by config_parse, before the log exists either). */
static int metrics_open(Trainer *t, MtError *err) {
  MtError local = {0};
  const Config *c = &t->cfg;
  if (t->comm->rank == 0 && c->log[0] != '\0') {
    const int n_shards = t->info->n_shards;
    int n_ckpt = 0;
    char(*ckpts)[1024] = NULL;
    char best[1100];
    if (c->checkpoint_dir[0] != '\0') {
      ckpts = malloc(sizeof(*ckpts) * CHECKPOINT_MAX);
      if (ckpts == NULL) mt_fail(&local, "out of memory listing %s", c->checkpoint_dir);
      n_ckpt = ckpts ? checkpoint_list(c->checkpoint_dir, ckpts, CHECKPOINT_MAX, &local) : 0;
      snprintf(best, sizeof best, "%s/best.h5", c->checkpoint_dir);
    }
    FileRole *in = local.failed ? NULL : mt_alloc(sizeof *in * (size_t)(n_shards + n_ckpt + 3), "the inputs", &local);
    if (in != NULL) {
      int n = 0;
      for (int k = 0; k < n_shards; k++) in[n++] = (FileRole){.role = "--data", .path = data_shard_path(t->ds, k)};
      if (strcmp(c->resume, "auto") != 0) in[n++] = (FileRole){.role = "--resume", .path = c->resume};
      if (c->init_from[0] != '\0') in[n++] = (FileRole){.role = "--init-from", .path = c->init_from};
      for (int i = 0; i < n_ckpt; i++) in[n++] = (FileRole){.role = "checkpoint", .path = ckpts[i]};
      if (c->checkpoint_dir[0] != '\0') in[n++] = (FileRole){.role = "checkpoint", .path = best};
      FileRole out = {.role = "--log", .path = c->log};
      if (fileid_check(in, n, &out, 1, &local) == 0) {
        /* A resumed run continues the file of the run it resumes; a fresh one starts it anew. */
        log_open_file(t->log, t->saved_step >= 0 ? t->step : -1, &local);
      }
      mt_free(in);
    }
    free(ckpts);
  }
  if (comm_agree(t->comm, &local) != 0) {
    *err = local;
    return -1;
  }
  return 0;
}

/* ==== The loop ==== */

/* Early stopping's bookkeeping after an epoch's validation loss: a better one is remembered (and, with a
 * checkpoint directory, written as best.h5). Collective. */
static int track_best(Trainer *t, double val_loss, MtError *err) {
  if (t->best_val >= 0 && !(val_loss < t->best_val)) {
    t->since_best++;
    return 0;
  }
  t->best_val = val_loss;
  t->best_epoch = t->epoch + 1;
  t->since_best = 0;
  memcpy(t->best_params, t->model.params, sizeof(float) * t->model.n_params);
  if (t->model.n_state) memcpy(t->best_state, t->model.state, sizeof(float) * t->model.n_state);
  return t->cfg.checkpoint_dir[0] != '\0' ? trainer_save_as(t, "best.h5", err) : 0;
}

int trainer_stopped(const Trainer *t) { return t->stop_requested; }

int trainer_fit(Trainer *t, MtError *err) {
  const Config *c = &t->cfg;
  const int ckpt = c->checkpoint_dir[0] != '\0';
  print_banner(t);
  /* SIGTERM / SIGUSR1 / SIGINT (what Slurm, a scheduler or a user sends to stop a job) only set a flag (comm.h); the
   * ranks agree on it in the next step's gradient allreduce, so all of them stop after the same step. */
  comm_stop_catch();
  int rc = 0;
  t->t_start = t->t_epoch = now();
  double test_loss = -1, test_acc = -1;
  const int64_t total_steps = (int64_t)c->epochs * t->steps_per_epoch;
  const int64_t first_step = t->step;
  int early = 0;
  while (t->epoch < c->epochs && rc == 0) {
    int stop = 0, max_stop = 0; /* max_stop: --max-steps ended the run (a signal's stop has no evaluation) */
    while (t->epoch_pos < t->n_train) {
      StepStats st;
      if (trainer_step(t, &st, err) != 0) {
        rc = -1;
        break;
      }
      int64_t end = c->max_steps > 0 && c->max_steps < total_steps ? c->max_steps : total_steps;
      st.eta_s = ((st.elapsed_s - t->elapsed_base) / (double)(t->step - first_step)) * (double)(end - t->step);
      log_step(t->log, &st);
      if (t->stop_requested || (c->max_steps > 0 && t->step >= c->max_steps)) {
        stop = 1;
        max_stop = !t->stop_requested;
        break;
      }
      /* Every N steps — unless this step ended the epoch and the epoch's checkpoint follows anyway. */
      int epoch_end = t->epoch_pos >= t->n_train && c->checkpoint_epochs;
      if (ckpt && c->checkpoint_every > 0 && t->step % c->checkpoint_every == 0 && !epoch_end &&
          trainer_save(t, err) != 0) {
        rc = -1;
        break;
      }
    }
    if (rc != 0) break;
    /* A whole epoch: evaluate, report, move on. --max-steps mid-epoch: evaluate and report the same way, so the
     * run ends with the final model's test accuracy, but the epoch goes on (a resume continues it). */
    const int whole = t->epoch_pos >= t->n_train;
    if ((whole || max_stop) && check_params_finite(t, err) != 0) {
      rc = -1;
      break;
    }
    if (whole || max_stop) {
      EpochStats es = {.epoch = t->epoch, .epochs = c->epochs, .step = t->step, .test_loss = -1, .test_acc = -1,
                       .val_loss = -1, .val_acc = -1, .partial = !whole};
      es.epoch_s = now() - t->t_epoch;
      es.train_loss = t->epoch_samples ? t->epoch_loss / (double)t->epoch_samples : 0;
      es.train_acc = t->epoch_samples ? t->epoch_correct / (double)t->epoch_samples : 0;
      es.samples_per_s = es.epoch_s > 0 ? t->session_samples / es.epoch_s : 0;
      if (c->eval && t->info->n[SPLIT_TEST] > 0) {
        if (trainer_evaluate(t, SPLIT_TEST, &test_loss, &test_acc, err) != 0) {
          rc = -1;
          break;
        }
        es.test_loss = test_loss;
        es.test_acc = test_acc;
      }
      if (t->n_val > 0 && trainer_evaluate_validation(t, &es.val_loss, &es.val_acc, err) != 0) {
        rc = -1;
        break;
      }
      log_epoch(t->log, &es);
      if (!whole) break; /* early stopping counts whole epochs only */
      if (c->patience > 0 && (rc = track_best(t, es.val_loss, err)) != 0) break;
      if (c->patience > 0 && t->since_best >= c->patience) {
        log_info(t->log, "early stopping: the validation loss has not improved for %d epoch%s (best %.4f after "
                         "epoch %d)",
                 c->patience, c->patience == 1 ? "" : "s", t->best_val, t->best_epoch);
        early = 1;
      }
      advance_epoch(t);
      if (ckpt && c->checkpoint_epochs && !t->stop_requested && trainer_save(t, err) != 0) {
        rc = -1;
        break;
      }
    }
    if (stop || early) break;
  }
  if (rc == 0 && ckpt && t->saved_step != t->step) rc = trainer_save(t, err);
  if (rc == 0 && !t->stop_requested && t->best_params && t->best_val >= 0 && t->best_epoch != t->epoch) {
    /* Early stopping ends with the best model, not the last: restore it and measure it. */
    memcpy(t->model.params, t->best_params, sizeof(float) * t->model.n_params);
    if (t->model.n_state) memcpy(t->model.state, t->best_state, sizeof(float) * t->model.n_state);
    log_info(t->log, "restored the model of epoch %d (validation loss %.4f)%s", t->best_epoch, t->best_val,
             ckpt ? "; it is also in best.h5" : "");
    if (c->eval && t->info->n[SPLIT_TEST] > 0) rc = trainer_evaluate(t, SPLIT_TEST, &test_loss, &test_acc, err);
  }
  if (rc == 0 && c->check_replicas > 0 &&
      !comm_replicas_identical(t->comm, t->model.params, sizeof(float) * t->model.n_params))
    rc = mt_fail(err, "replica check failed at the end of training: the parameters differ between ranks");
  if (rc == 0) {
    double total = now() - t->t_start;
    if (t->stop_requested)
      log_info(t->log, "stopped by a signal after step %lld%s; resume with --resume auto", (long long)t->step,
               ckpt ? ", checkpoint written" : " (no --checkpoint-dir: nothing saved)");
    else if (test_acc >= 0)
      log_info(t->log, "final test accuracy: %.2f%% (test loss %.4f) after %lld steps in %.1f s", 100 * test_acc,
               test_loss, (long long)t->step, total);
    else
      log_info(t->log, "done: %lld steps in %.1f s", (long long)t->step, total);
  }
  comm_stop_release();
  /* Only rank 0 writes the log, so only it can see a write error (disk full): agree on it. */
  MtError lerr = {0};
  log_close(t->log, &lerr);
  t->log = NULL;
  if (rc != 0) return -1;
  if (comm_agree(t->comm, &lerr) != 0) {
    *err = lerr;
    return -1;
  }
  return 0;
}

int train_main(Comm *c, int argc, char **argv) {
  Config cfg;
  MtError err = {0};
  int rc = config_parse(&cfg, argc, argv, 1, &err);
  if (comm_agree(c, &err) != 0) {
    comm_report(c, &err);
    if (c->rank == 0) fprintf(stderr, "(see `mpitrain train --help`)\n");
    return 2;
  }
  if (rc == 1) {
    if (c->rank == 0) config_print_help("train");
    return 0;
  }
  comm_warn_oversubscribed(c);
  comm_watchdog_timeout(c, cfg.stall_timeout);
  Trainer *t = NULL;
  if (trainer_create(&t, &cfg, c, NULL, &err) != 0) {
    comm_report(c, &err);
    return 1;
  }
  int ok = trainer_fit(t, &err);
  /* Errors inside fit are already the same on every rank (agreed, or derived from reduced values). */
  trainer_free(t);
  if (ok != 0) {
    comm_report(c, &err);
    return 1;
  }
  return 0;
}
