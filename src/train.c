/* train.c — the data-parallel training loop (see train.h for one step in words).
 *
 * Everything is allocated in trainer_create; trainer_step allocates nothing. The only collectives in a step are
 * the gradient allreduce (which also carries the loss and accuracy sums and an error count, so a rank whose read
 * failed is known to all ranks in the same call) and, when asked for, the replica check. */
#include "mpitrain/train.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mpitrain/blas.h"
#include "mpitrain/checkpoint.h"
#include "mpitrain/init.h"
#include "mpitrain/optim.h"
#include "mpitrain/rng.h"
#include "mpitrain/sim.h"

/* Slots in the gradient buffer's tail (model.h, MODEL_GRAD_TAIL) that ride along in the gradient allreduce. */
enum { TAIL_LOSS = 0, TAIL_CORRECT, TAIL_FAILED, TAIL_STOP, TAIL_USED };

/* Set by SIGTERM / SIGUSR1 / SIGINT (what Slurm, a scheduler or a user sends to stop a job). The handler only sets
 * it; the ranks agree on it in the next step's gradient allreduce, so all of them stop after the same step. */
static volatile sig_atomic_t stop_signal = 0;

static void on_stop_signal(int sig) {
  if (stop_signal != 0 && sig == SIGINT) { /* a second Ctrl-C: the user means it */
    signal(SIGINT, SIG_DFL);
    raise(SIGINT);
  }
  stop_signal = sig;
}

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
  float beta2;
  int threads;

  int64_t n_train;          /* training rows: the training split less the validation rows */
  uint32_t *train_index;    /* [n_train] the dataset rows trained on (NULL: all rows, in order) */
  int64_t *val_rows;        /* [n_val] the held-out validation rows, sorted (NULL: no validation split) */
  int64_t n_val;
  LrSchedule sched;
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
};

void trainer_rank_slice(int64_t B, int rank, int size, int64_t *lo, int64_t *hi) {
  int64_t q = B / size, r = B % size;
  *lo = rank * q + (rank < r ? rank : r);
  *hi = *lo + q + (rank < r ? 1 : 0);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

Model *trainer_model(Trainer *t) { return &t->model; }
Dataset *trainer_data(Trainer *t) { return t->ds; }
int64_t trainer_steps_done(const Trainer *t) { return t->step; }
const StepTimes *trainer_times(const Trainer *t) { return &t->times; }
void trainer_reset_timers(Trainer *t) { memset(&t->times, 0, sizeof t->times); }
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
  mt_free(t->best_params);
  mt_free(t->val_rows);
  mt_free(t->train_index);
  optim_free(&t->opt);
  model_free(&t->model);
  if (t->owns_ds) data_close(t->ds);
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
static double now(void) { return MPI_Wtime(); }

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
  t->perm_epoch = -1;
  t->saved_step = -1;
  t->beta2 = config_beta2(cfg);

  if (config_validate(cfg, err) != 0) goto agree;

  if (ds != NULL) {
    t->ds = ds;
  } else {
    DataOptions dopt = {.memory = cfg->in_memory, .memory_limit = cfg->memory_limit_mb * 1024 * 1024,
                        .max_rows = cfg->micro_batch > 0 ? cfg->micro_batch : AUTO_MICRO_BATCH};
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
  if (model_create(&t->model, &spec, t->micro, err) != 0) goto agree;
  init_params(&t->model, (InitKind)cfg->init, (uint64_t)cfg->seed);
  ModelTensor all[4 * MODEL_MAX_HIDDEN + 2];
  int nt = model_tensors(&t->model, all, 4 * MODEL_MAX_HIDDEN + 2);
  for (int i = 0; i < nt; i++)
    if (all[i].decay) t->decay[t->n_decay++] = (ParamRange){all[i].offset, all[i].count};
  t->sched = (LrSchedule){.kind = (LrScheduleKind)cfg->lr_schedule,
                          .lr = cfg->lr_ref_batch > 0 ? (double)cfg->lr * (double)t->batch / (double)cfg->lr_ref_batch
                                                      : (double)cfg->lr,
                          .gamma = cfg->lr_gamma >= 0 ? cfg->lr_gamma : (cfg->lr_schedule == LR_STEP ? 0.1 : 0.95),
                          .step_epochs = cfg->lr_step,
                          .decay_rate = cfg->lr_decay_rate,
                          .lr_min = cfg->lr_min,
                          .epochs = cfg->epochs,
                          .warmup_steps = cfg->warmup_steps};
  t->best_val = -1;
  if (cfg->patience > 0) {
    t->best_params = mt_alloc(sizeof(float) * t->model.n_params, "the best model", err);
    t->best_state = mt_alloc(sizeof(float) * (t->model.n_state ? t->model.n_state : 1), "the best model", err);
  }

  OptConfig oc = {.kind = (OptKind)cfg->optimizer, .beta1 = cfg->beta1, .beta2 = t->beta2, .eps = cfg->eps};
  if (optim_create(&t->opt, &oc, t->model.n_params, err) != 0) goto agree;

  t->perm = mt_alloc(sizeof(uint32_t) * (size_t)t->n_train, "the epoch permutation", err);
  t->rows = mt_alloc(sizeof(int64_t) * (size_t)t->max_local, "the batch's row list", err);
  t->x = mt_alloc(sizeof(float) * (size_t)t->micro * (size_t)t->info->d, "the input batch", err);
  t->y = mt_alloc(sizeof(int32_t) * (size_t)t->micro, "the label batch", err);
  t->dlogits = mt_alloc(sizeof(float) * (size_t)t->micro * (size_t)t->info->n_classes, "the loss gradient", err);
  if (err->failed) goto agree;

  LogOptions lo = {.is_root = comm->rank == 0, .progress = cfg->progress, .path = cfg->log,
                   .format = cfg->log_format, .every = cfg->log_every};
  if (log_open(&t->log, &lo, err) != 0) goto agree;

  t->threads = cfg->threads > 0 ? cfg->threads : comm_default_threads(comm);
  blas_set_threads(t->threads);

agree:
  if (comm_agree(comm, err) != 0) {
    trainer_free(t);
    return -1;
  }
  if ((cfg->checkpoint_dir[0] != '\0' && checkpoint_dir_ready(t, err) != 0) ||
      (cfg->resume[0] != '\0' && trainer_resume(t, err) != 0)) {
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

/* The model's reduction hook: batch-norm statistics summed over every rank of the job. */
static void reduce_over_ranks(void *arg, double *buf, size_t n) { comm_allreduce_sum_double((Comm *)arg, buf, n); }

/* --log-norms: each parameter tensor's weight and gradient norms, for the steps the metrics file records. */
static void log_norms(Trainer *t, const StepStats *st) {
  if (!t->cfg.log_norms || !log_step_due(t->log, st)) return;
  ModelTensor ts[4 * MODEL_MAX_HIDDEN + 2];
  int n = model_tensors(&t->model, ts, 4 * MODEL_MAX_HIDDEN + 2);
  for (int i = 0; i < n; i++)
    log_layer(t->log, st, ts[i].name, sqrt(optim_sumsq(t->model.params + ts[i].offset, ts[i].count)),
              sqrt(optim_sumsq(t->model.grads + ts[i].offset, ts[i].count)));
}

int trainer_step(Trainer *t, StepStats *st, MtError *err) {
  Model *m = &t->model;
  const int C = t->info->n_classes;
  if (t->epoch_pos >= t->n_train) advance_epoch(t);
  double t0 = now();
  if (t->perm_epoch != t->epoch) {
    /* The same (seed, epoch) gives the same order on every rank and for every rank count. */
    rng_permutation((uint64_t)t->cfg.seed, (uint64_t)t->epoch, t->perm, (size_t)t->n_train);
    t->perm_epoch = t->epoch;
  }
  int64_t first = t->epoch_pos;
  int64_t Bt = t->n_train - first < t->batch ? t->n_train - first : t->batch;
  int64_t lo, hi;
  trainer_rank_slice(Bt, t->comm->rank, t->comm->size, &lo, &hi);
  t->n_rows = (int)(hi - lo);
  for (int i = 0; i < t->n_rows; i++) {
    uint32_t k = t->perm[first + lo + i];
    t->rows[i] = t->train_index ? t->train_index[k] : k;
  }
  /* Sorted: the reader touches the file (or memory) in order, and the order of rows within a rank's slice does not
   * change the gradient sum beyond rounding. */
  qsort(t->rows, (size_t)t->n_rows, sizeof(int64_t), cmp_i64);

  /* Each rank's gradient is Σ over its rows of ∂loss/∂θ / Bt: the SUM over ranks is the mean over the batch. */
  const float grad_scale = 1.0f / (float)Bt;
  LossSums sums = {0, 0};
  MtError local = {0};
  float *tail = m->grads + m->n_params;
  ModelContext ctx = {.train = 1, .seed = (uint64_t)t->cfg.seed, .step = t->step, .batch_rows = Bt,
                      .reduce = t->comm->size > 1 ? reduce_over_ranks : NULL, .reduce_arg = t->comm};
  double tf = 0, tb = 0, td = now() - t0;
  /* ==== SimGrid SMPI hook (sim.h): in a simulated run with modelled compute, the simulator charges this step's
   * forward/backward to the clock instead (counted as backward time) and zeroes the gradients. ==== */
  const int simulated = sim_step_begin(m, t->n_rows, t->micro);
  if (simulated) tb = now() - t0 - td;
  /* At least one chunk, even with no rows: with batch normalisation every rank must make the same reductions.
   * A rank whose read fails carries on with zero rows for the same reason, and reports after the allreduce. */
  for (int c0 = 0; !simulated && (c0 == 0 || c0 < t->n_rows); c0 += t->micro) {
    int cn = t->n_rows - c0 < t->micro ? t->n_rows - c0 : t->micro;
    double a = now();
    if (!local.failed && data_read(t->ds, SPLIT_TRAIN, t->rows + c0, cn, t->x, t->y, &local) != 0) cn = 0;
    if (local.failed) cn = 0;
    double b = now();
    ctx.sample_ids = t->rows + c0;
    const float *logits = model_forward_ctx(m, t->x, cn, &ctx);
    loss_softmax_xent(logits, t->y, cn, C, grad_scale, t->dlogits, &sums);
    double c = now();
    model_backward(m, t->x, t->dlogits, cn, c0 > 0);
    double e = now();
    td += b - a;
    tf += c - b;
    tb += e - c;
    if (local.failed) break;
  }
  sim_step_end(simulated); /* SMPI hook (sim.h) */
  tail[TAIL_LOSS] = (float)sums.loss;
  tail[TAIL_CORRECT] = (float)sums.correct;
  tail[TAIL_FAILED] = local.failed ? 1.0f : 0.0f;
  tail[TAIL_STOP] = stop_signal != 0 ? 1.0f : 0.0f;

  double r0 = now();
  comm_allreduce_sum(t->comm, m->grads, m->n_params + TAIL_USED);
  double r1 = now();
  if (tail[TAIL_FAILED] > 0) { /* every rank saw the count: all enter the agreement together */
    *err = local;
    comm_agree(t->comm, err);
    return -1;
  }
  /* From here on every rank computes the same thing from the same reduced values. */
  /* L2 after the sum over ranks, so every rank adds the same λ/B·W. */
  t->last_l2 = optim_l2(t->decay, t->n_decay, m->params, m->grads, t->cfg.l2, Bt);
  double loss = tail[TAIL_LOSS] / (double)Bt + t->last_l2, acc = tail[TAIL_CORRECT] / (double)Bt;
  if (!isfinite(loss)) /* the reduced loss: the same verdict on every rank, no agreement needed */
    return mt_fail(err, "the training loss became %s at step %lld (epoch %d); the run diverged. Try a smaller --lr "
                        "(now %g)%s",
                   isnan(loss) ? "NaN" : "infinite", (long long)t->step + 1, t->epoch + 1, (double)t->cfg.lr,
                   t->cfg.clip_norm > 0 ? "" : " or --clip-norm");
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
  if (st) log_norms(t, s);
  if (t->cfg.clip_norm > 0 || (st && log_step_due(t->log, st)))
    s->grad_norm = optim_clip_norm(m->grads, m->n_params, t->cfg.clip_norm);
  /* Decoupled: shrink the weights directly, before and apart from the optimiser's own step (AdamW). */
  optim_weight_decay(t->decay, t->n_decay, m->params, lr, t->cfg.weight_decay);
  optim_step(&t->opt, m->params, m->grads, (float)lr);
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
  s->elapsed_s = u1 - t->t_start;
  return 0;
}

/* Mean loss and accuracy over n rows of split s: rows [0, n) when rows is NULL, else the sorted list rows [n]. Each
 * rank takes a contiguous part; the sums are reduced. */
static int evaluate_rows(Trainer *t, Split s, const int64_t *rows, int64_t n, double *loss, double *acc,
                         MtError *err) {
  Model *m = &t->model;
  int64_t lo, hi;
  trainer_rank_slice(n, t->comm->rank, t->comm->size, &lo, &hi);
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
  log_info(t->log, "mpitrain: %d rank%s x %d BLAS thread%s; data %s (%lld train%s / %lld test rows, %s)",
           t->comm->size, t->comm->size == 1 ? "" : "s", t->threads, t->threads == 1 ? "" : "s", c->data,
           (long long)t->n_train, t->n_val ? " + validation" : "", (long long)t->info->n[SPLIT_TEST],
           t->info->in_memory[SPLIT_TRAIN] ? "in memory" : "read per batch");
  if (t->n_val) log_info(t->log, "validation: %lld rows held out of the training split", (long long)t->n_val);
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

static void fill_meta(const Trainer *t, CheckpointMeta *meta) {
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
  meta->since_best = t->since_best;
  meta->n_train = t->info->n[SPLIT_TRAIN];
  snprintf(meta->data, sizeof meta->data, "%s", t->cfg.data);
  snprintf(meta->version, sizeof meta->version, "%s", MPITRAIN_VERSION);
  time_t now_t = time(NULL);
  struct tm tmv;
  gmtime_r(&now_t, &tmv);
  strftime(meta->created, sizeof meta->created, "%Y-%m-%dT%H:%M:%SZ", &tmv);
  meta->config = config_text(&t->cfg);
}

/* Collective. Rank 0 writes (every rank holds the same state), then all agree on the outcome: a checkpoint that
 * could not be written (disk full, directory gone) stops the run on every rank, the previous one intact. name NULL:
 * ckpt-<step>.h5, kept K at a time; else that file (best.h5). */
static int trainer_save_as(Trainer *t, const char *name, MtError *err) {
  MtError local = {0};
  char path[1100] = "";
  double t0 = now();
  if (t->comm->rank == 0) {
    CheckpointMeta meta;
    fill_meta(t, &meta);
    if (meta.config == NULL)
      mt_fail(&local, "out of memory describing the configuration for a checkpoint");
    else if (checkpoint_write(t->cfg.checkpoint_dir, name, &meta, &t->model, &t->opt, path, sizeof path, &local) ==
                 0 &&
             name == NULL)
      checkpoint_prune(t->cfg.checkpoint_dir, t->cfg.keep, &local);
    checkpoint_meta_free(&meta);
  }
  if (comm_agree(t->comm, &local) != 0) {
    *err = local;
    return -1;
  }
  if (name == NULL) t->saved_step = t->step;
  if (t->comm->rank == 0) {
    struct stat st;
    double mb = stat(path, &st) == 0 ? st.st_size / 1048576.0 : 0;
    log_info(t->log, "checkpoint %s (%.1f MB in %.0f ms)", path, mb, (now() - t0) * 1e3);
  }
  return 0;
}

static int trainer_save(Trainer *t, MtError *err) { return trainer_save_as(t, NULL, err); }

/* Rank 0 only: the checkpoint to resume from, loaded into t's model and optimiser. Returns 1 if one was loaded,
 * 0 if --resume auto found none, -1 on an error (which stops the run: an incompatible checkpoint, a damaged file
 * named explicitly, every checkpoint in the directory damaged). */
static int resume_pick(Trainer *t, CheckpointMeta *meta, char *used, size_t used_n, MtError *err) {
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
      if (checkpoint_check_fits(paths[i], meta, &t->model, &t->opt, &e) != 0) {
        checkpoint_meta_free(meta);
        rc = mt_fail(err, "%s", e.msg);
        break;
      }
      if (checkpoint_read_state(paths[i], meta, &t->model, &t->opt, &e) == 0) {
        snprintf(used, used_n, "%s", paths[i]);
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
  comm_bcast(t->comm, t->best_params, sizeof(float) * t->model.n_params, 0);
  if (t->model.n_state) comm_bcast(t->comm, t->best_state, sizeof(float) * t->model.n_state, 0);
  return 0;
}

/* Collective. Rank 0 reads the checkpoint and broadcasts the state: one reader, however many ranks (a parallel
 * file system does not enjoy 512 ranks opening the same file at once). */
static int trainer_resume(Trainer *t, MtError *err) {
  CheckpointMeta meta;
  memset(&meta, 0, sizeof meta);
  char used[1024] = "";
  MtError local = {0};
  int found = 0;
  if (t->comm->rank == 0) {
    found = resume_pick(t, &meta, used, sizeof used, &local);
    if (found < 0) found = 0;
  }
  if (comm_agree(t->comm, &local) != 0) {
    *err = local;
    return -1;
  }
  /* step, epoch, pos, optimiser t, epoch samples, seed, found | epoch sums */
  int64_t iv[9] = {meta.step,          meta.epoch, meta.epoch_pos,  meta.opt_step, meta.epoch_samples,
                   meta.seed,          found,      meta.best_epoch, meta.since_best};
  double dv[3] = {meta.epoch_loss_sum, meta.epoch_correct, meta.best_val_loss};
  comm_bcast(t->comm, iv, sizeof iv, 0);
  comm_bcast(t->comm, dv, sizeof dv, 0);
  if (!iv[6]) {
    log_info(t->log, "--resume auto: no checkpoint in %s yet: starting fresh", t->cfg.checkpoint_dir);
    return 0;
  }
  comm_bcast(t->comm, t->model.params, sizeof(float) * t->model.n_params, 0);
  if (t->opt.m) comm_bcast(t->comm, t->opt.m, sizeof(float) * t->opt.n, 0);
  if (t->opt.v) comm_bcast(t->comm, t->opt.v, sizeof(float) * t->opt.n, 0);
  if (t->model.n_state) comm_bcast(t->comm, t->model.state, sizeof(float) * t->model.n_state, 0);
  t->step = t->saved_step = iv[0];
  t->epoch = (int)iv[1];
  t->epoch_pos = iv[2];
  t->opt.t = iv[3];
  t->epoch_samples = iv[4];
  t->epoch_loss = dv[0];
  t->epoch_correct = dv[1];
  t->best_val = dv[2];
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
  if (t->best_params && t->best_val >= 0 && t->cfg.checkpoint_dir[0] == '\0') t->best_val = -1;
  if (t->best_params && t->best_val >= 0 && load_best(t, err) != 0) {
    checkpoint_meta_free(&meta);
    return -1;
  }
  if (t->comm->rank == 0) {
    if (meta.n_train != t->n_train)
      log_info(t->log, "warning: %s was trained on %lld rows (%s); this dataset has %lld: the data order differs",
               used, (long long)meta.n_train, meta.data, (long long)t->n_train);
    if (t->epoch_pos > t->n_train) t->epoch_pos = t->n_train;
    log_info(t->log, "resumed from %s: step %lld, epoch %d (%lld of %lld rows done), written at %d rank%s", used,
             (long long)t->step, t->epoch + 1, (long long)t->epoch_pos, (long long)t->n_train, meta.world_size,
             meta.world_size == 1 ? "" : "s");
  }
  if (t->epoch_pos > t->n_train) t->epoch_pos = t->n_train;
  checkpoint_meta_free(&meta);
  return 0;
}

/* Collective: rank 0 makes the directory and proves it can write there before any training time is spent. */
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
    int stale = local.failed ? 0 : checkpoint_clean_temporaries(dir);
    if (stale > 0)
      fprintf(stderr, "mpitrain: removed %d unfinished checkpoint file%s left in %s by an interrupted run\n", stale,
              stale == 1 ? "" : "s", dir);
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
  struct sigaction sa, old_term, old_usr1, old_int;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, &old_term);
  sigaction(SIGUSR1, &sa, &old_usr1);
  sigaction(SIGINT, &sa, &old_int);
  int rc = 0;
  t->t_start = t->t_epoch = now();
  double test_loss = -1, test_acc = -1;
  int test_epoch = 0; /* the epoch after which test_* were measured */
  const int64_t total_steps = (int64_t)c->epochs * t->steps_per_epoch;
  const int64_t first_step = t->step;
  int early = 0;
  while (t->epoch < c->epochs && rc == 0) {
    int stop = 0;
    while (t->epoch_pos < t->n_train) {
      StepStats st;
      if (trainer_step(t, &st, err) != 0) {
        rc = -1;
        break;
      }
      int64_t end = c->max_steps > 0 && c->max_steps < total_steps ? c->max_steps : total_steps;
      st.eta_s = (st.elapsed_s / (double)(t->step - first_step)) * (double)(end - t->step);
      log_step(t->log, &st);
      if (t->stop_requested || (c->max_steps > 0 && t->step >= c->max_steps)) {
        stop = 1;
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
    if (t->epoch_pos >= t->n_train) { /* a whole epoch: evaluate, report, move on */
      EpochStats es = {.epoch = t->epoch, .epochs = c->epochs, .step = t->step, .test_loss = -1, .test_acc = -1,
                       .val_loss = -1, .val_acc = -1};
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
        test_epoch = t->epoch + 1;
      }
      if (t->n_val > 0 && trainer_evaluate_validation(t, &es.val_loss, &es.val_acc, err) != 0) {
        rc = -1;
        break;
      }
      log_epoch(t->log, &es);
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
    if (c->eval && t->info->n[SPLIT_TEST] > 0) {
      rc = trainer_evaluate(t, SPLIT_TEST, &test_loss, &test_acc, err);
      test_epoch = t->best_epoch;
    }
  }
  if (rc == 0 && c->check_replicas > 0 &&
      !comm_replicas_identical(t->comm, t->model.params, sizeof(float) * t->model.n_params))
    rc = mt_fail(err, "replica check failed at the end of training: the parameters differ between ranks");
  if (rc == 0) {
    double total = now() - t->t_start;
    if (t->stop_requested)
      log_info(t->log, "stopped by a signal after step %lld%s; resume with --resume auto", (long long)t->step,
               ckpt ? ", checkpoint written" : " (no --checkpoint-dir: nothing saved)");
    else if (test_acc >= 0 && t->epoch_pos == 0)
      log_info(t->log, "final test accuracy: %.2f%% (test loss %.4f) after %lld steps in %.1f s", 100 * test_acc,
               test_loss, (long long)t->step, total);
    else if (test_acc >= 0)
      log_info(t->log, "stopped at step %lld (--max-steps) in %.1f s; last test accuracy %.2f%% (after epoch %d)",
               (long long)t->step, total, 100 * test_acc, test_epoch);
    else
      log_info(t->log, "done: %lld steps in %.1f s", (long long)t->step, total);
  }
  sigaction(SIGTERM, &old_term, NULL);
  sigaction(SIGUSR1, &old_usr1, NULL);
  sigaction(SIGINT, &old_int, NULL);
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
