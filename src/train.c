/* train.c — the data-parallel training loop (see train.h for one step in words).
 *
 * Everything is allocated in trainer_create; trainer_step allocates nothing. The only collectives in a step are
 * the gradient allreduce (which also carries the loss and accuracy sums and an error count, so a rank whose read
 * failed is known to all ranks in the same call) and, when asked for, the replica check. */
#include "mpitrain/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpitrain/blas.h"
#include "mpitrain/init.h"
#include "mpitrain/optim.h"
#include "mpitrain/rng.h"

/* Slots in the gradient buffer's tail (model.h, MODEL_GRAD_TAIL) that ride along in the gradient allreduce. */
enum { TAIL_LOSS = 0, TAIL_CORRECT, TAIL_FAILED, TAIL_USED };

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

  int64_t n_train;          /* rows in the training split */
  int64_t batch;            /* global batch B (the last batch of an epoch may be smaller) */
  int64_t steps_per_epoch;  /* ceil(n_train / B) */
  int micro;                /* rows per chunk on this rank (= the model's max_batch) */
  int64_t max_local;        /* most rows this rank takes in one step */

  uint32_t *perm;           /* [n_train] this epoch's order */
  int perm_epoch;           /* epoch perm was drawn for, -1 before the first */
  int epoch;                /* current epoch, 0-based */
  int64_t step_in_epoch;    /* steps done in the current epoch */
  int64_t step;             /* steps done in all */

  int64_t *rows;            /* [max_local] the rows of this rank's slice of the current batch, sorted */
  int n_rows;               /* how many of them are valid */
  float *x;                 /* [micro, d] features of one chunk */
  int32_t *y;               /* [micro] labels of one chunk */
  float *dlogits;           /* [micro, C] */

  StepTimes times;
  double epoch_loss, epoch_correct; /* sums over the current epoch's batches */
  int64_t epoch_samples;
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
  if (check_sizes(t, err) != 0) goto agree;

  t->batch = cfg->batch == 0 || cfg->batch > t->n_train ? t->n_train : cfg->batch;
  t->steps_per_epoch = (t->n_train + t->batch - 1) / t->batch;
  /* Rows per chunk: --micro-batch, else the whole local slice up to AUTO_MICRO_BATCH. The rank with the most rows
   * takes ceil(B / N). */
  t->max_local = (t->batch + comm->size - 1) / comm->size;
  int64_t micro = cfg->micro_batch > 0 ? cfg->micro_batch : AUTO_MICRO_BATCH;
  if (micro > t->max_local) micro = t->max_local;
  t->micro = (int)micro;

  ModelSpec spec = {.n_inputs = t->info->d, .n_classes = t->info->n_classes, .n_hidden = cfg->hidden.n,
                    .act = (ActKind)cfg->activation, .leaky_slope = cfg->leaky_slope};
  for (int i = 0; i < cfg->hidden.n; i++) spec.hidden[i] = cfg->hidden.v[i];
  if (model_create(&t->model, &spec, t->micro, err) != 0) goto agree;
  init_params(&t->model, (InitKind)cfg->init, (uint64_t)cfg->seed);

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
  *out = t;
  return 0;
}

static double now(void) { return MPI_Wtime(); }

int trainer_step(Trainer *t, StepStats *st, MtError *err) {
  Model *m = &t->model;
  const int C = t->info->n_classes;
  if (t->step_in_epoch >= t->steps_per_epoch) {
    t->epoch++;
    t->step_in_epoch = 0;
  }
  double t0 = now();
  if (t->perm_epoch != t->epoch) {
    /* The same (seed, epoch) gives the same order on every rank and for every rank count. */
    rng_permutation((uint64_t)t->cfg.seed, (uint64_t)t->epoch, t->perm, (size_t)t->n_train);
    t->perm_epoch = t->epoch;
  }
  int64_t first = t->step_in_epoch * t->batch;
  int64_t Bt = t->n_train - first < t->batch ? t->n_train - first : t->batch;
  int64_t lo, hi;
  trainer_rank_slice(Bt, t->comm->rank, t->comm->size, &lo, &hi);
  t->n_rows = (int)(hi - lo);
  for (int i = 0; i < t->n_rows; i++) t->rows[i] = t->perm[first + lo + i];
  /* Sorted: the reader touches the file (or memory) in order, and the order of rows within a rank's slice does not
   * change the gradient sum beyond rounding. */
  qsort(t->rows, (size_t)t->n_rows, sizeof(int64_t), cmp_i64);

  /* Each rank's gradient is Σ over its rows of ∂loss/∂θ / Bt: the SUM over ranks is the mean over the batch. */
  const float grad_scale = 1.0f / (float)Bt;
  LossSums sums = {0, 0};
  MtError local = {0};
  float *tail = m->grads + m->n_params;
  double tf = 0, tb = 0, td = now() - t0;
  for (int c0 = 0; c0 < t->n_rows && !local.failed; c0 += t->micro) {
    int cn = t->n_rows - c0 < t->micro ? t->n_rows - c0 : t->micro;
    double a = now();
    if (data_read(t->ds, SPLIT_TRAIN, t->rows + c0, cn, t->x, t->y, &local) != 0) break;
    double b = now();
    const float *logits = model_forward(m, t->x, cn);
    loss_softmax_xent(logits, t->y, cn, C, grad_scale, t->dlogits, &sums);
    double c = now();
    model_backward(m, t->x, t->dlogits, cn, c0 > 0);
    double e = now();
    td += b - a;
    tf += c - b;
    tb += e - c;
  }
  if (t->n_rows == 0 || local.failed) memset(m->grads, 0, sizeof(float) * m->n_params);
  tail[TAIL_LOSS] = (float)sums.loss;
  tail[TAIL_CORRECT] = (float)sums.correct;
  tail[TAIL_FAILED] = local.failed ? 1.0f : 0.0f;

  double r0 = now();
  comm_allreduce_sum(t->comm, m->grads, m->n_params + TAIL_USED);
  double r1 = now();
  if (tail[TAIL_FAILED] > 0) { /* every rank saw the count: all enter the agreement together */
    *err = local;
    comm_agree(t->comm, err);
    return -1;
  }
  double loss = tail[TAIL_LOSS] / (double)Bt, acc = tail[TAIL_CORRECT] / (double)Bt;
  if (!isfinite(loss)) /* the reduced loss: the same verdict on every rank, no agreement needed */
    return mt_fail(err, "the training loss became %s at step %lld (epoch %d); the run diverged. Try a smaller --lr "
                        "(now %g)%s",
                   isnan(loss) ? "NaN" : "infinite", (long long)t->step + 1, t->epoch + 1, (double)t->cfg.lr,
                   t->cfg.init == INIT_SMALL ? "" : " or --init small");
  optim_step(&t->opt, m->params, m->grads, t->cfg.lr);
  double u1 = now();

  t->step++;
  t->step_in_epoch++;
  t->times.data += td;
  t->times.forward += tf;
  t->times.backward += tb;
  t->times.reduce += r1 - r0;
  t->times.update += u1 - r1;
  t->times.steps++;
  t->epoch_loss += tail[TAIL_LOSS];
  t->epoch_correct += tail[TAIL_CORRECT];
  t->epoch_samples += Bt;

  if (t->cfg.check_replicas > 0 && t->step % t->cfg.check_replicas == 0 &&
      !comm_replicas_identical(t->comm, m->params, sizeof(float) * m->n_params))
    return mt_fail(err, "replica check failed after step %lld: the parameters differ between ranks (this is a bug "
                        "in mpitrain or a faulty node; please report it)",
                   (long long)t->step);

  if (st) {
    memset(st, 0, sizeof *st);
    st->epoch = t->epoch;
    st->epochs = t->cfg.epochs;
    st->step = t->step;
    st->step_in_epoch = t->step_in_epoch;
    st->steps_per_epoch = t->steps_per_epoch;
    st->samples = Bt;
    st->loss = loss;
    st->acc = acc;
    st->lr = t->cfg.lr;
    double el = u1 - t->t_epoch;
    st->samples_per_s = el > 0 ? t->epoch_samples / el : 0;
    st->elapsed_s = u1 - t->t_start;
  }
  return 0;
}

int trainer_evaluate(Trainer *t, Split s, double *loss, double *acc, MtError *err) {
  Model *m = &t->model;
  int64_t n = t->info->n[s], lo, hi;
  trainer_rank_slice(n, t->comm->rank, t->comm->size, &lo, &hi);
  LossSums sums = {0, 0};
  MtError local = {0};
  for (int64_t r = lo; r < hi; r += t->micro) {
    int cn = (int)(hi - r < t->micro ? hi - r : t->micro);
    if (data_read_range(t->ds, s, r, cn, t->x, t->y, &local) != 0) break;
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

static void print_banner(Trainer *t) {
  const Config *c = &t->cfg;
  const Model *m = &t->model;
  char arch[256];
  int p = snprintf(arch, sizeof arch, "%d", t->info->d);
  for (int i = 0; i < c->hidden.n && p < (int)sizeof arch; i++)
    p += snprintf(arch + p, sizeof arch - (size_t)p, "-%d", c->hidden.v[i]);
  if (p < (int)sizeof arch) snprintf(arch + p, sizeof arch - (size_t)p, "-%d", t->info->n_classes);
  log_info(t->log, "mpitrain: %d rank%s x %d BLAS thread%s; data %s (%lld train / %lld test rows, %s)",
           t->comm->size, t->comm->size == 1 ? "" : "s", t->threads, t->threads == 1 ? "" : "s", c->data,
           (long long)t->n_train, (long long)t->info->n[SPLIT_TEST],
           t->info->in_memory[SPLIT_TRAIN] ? "in memory" : "read per batch");
  log_info(t->log, "model %s %s, %zu parameters, init %s; %s lr %g; batch %lld (%lld steps/epoch), %d epoch%s",
           arch, act_name((ActKind)c->activation), m->n_params,
           init_name(init_resolve((InitKind)c->init, (ActKind)c->activation)), optim_name((OptKind)c->optimizer),
           (double)c->lr, (long long)t->batch, (long long)t->steps_per_epoch, c->epochs, c->epochs == 1 ? "" : "s");
  char buf[512];
  const char *hint = blas_weak_core_hint(buf, sizeof buf);
  if (hint) log_info(t->log, "warning: %s", hint);
}

int trainer_fit(Trainer *t, MtError *err) {
  const Config *c = &t->cfg;
  print_banner(t);
  t->t_start = now();
  double test_loss = -1, test_acc = -1;
  int stop = 0;
  while (t->epoch < c->epochs && !stop) {
    t->t_epoch = now();
    t->epoch_loss = t->epoch_correct = 0;
    t->epoch_samples = 0;
    int64_t steps_left_total = (int64_t)c->epochs * t->steps_per_epoch;
    while (t->step_in_epoch < t->steps_per_epoch) {
      StepStats st;
      if (trainer_step(t, &st, err) != 0) return -1;
      int64_t done = t->step;
      double per_step = st.elapsed_s / (double)done;
      int64_t remaining = steps_left_total - done;
      if (c->max_steps > 0 && c->max_steps - done < remaining) remaining = c->max_steps - done;
      st.eta_s = per_step * (double)remaining;
      log_step(t->log, &st);
      if (c->max_steps > 0 && t->step >= c->max_steps) {
        stop = 1;
        break;
      }
    }
    EpochStats es = {.epoch = t->epoch, .epochs = c->epochs, .step = t->step, .test_loss = -1, .test_acc = -1};
    es.epoch_s = now() - t->t_epoch;
    es.train_loss = t->epoch_samples ? t->epoch_loss / (double)t->epoch_samples : 0;
    es.train_acc = t->epoch_samples ? t->epoch_correct / (double)t->epoch_samples : 0;
    es.samples_per_s = es.epoch_s > 0 ? t->epoch_samples / es.epoch_s : 0;
    if (c->eval && t->info->n[SPLIT_TEST] > 0) {
      if (trainer_evaluate(t, SPLIT_TEST, &test_loss, &test_acc, err) != 0) return -1;
      es.test_loss = test_loss;
      es.test_acc = test_acc;
    }
    log_epoch(t->log, &es);
    if (t->step_in_epoch >= t->steps_per_epoch) {
      t->epoch++;
      t->step_in_epoch = 0;
    }
  }
  if (c->check_replicas > 0 && !comm_replicas_identical(t->comm, t->model.params, sizeof(float) * t->model.n_params))
    return mt_fail(err, "replica check failed at the end of training: the parameters differ between ranks");
  double total = now() - t->t_start;
  if (test_acc >= 0)
    log_info(t->log, "final test accuracy: %.2f%% (test loss %.4f) after %lld steps in %.1f s", 100 * test_acc,
             test_loss, (long long)t->step, total);
  else
    log_info(t->log, "done: %lld steps in %.1f s", (long long)t->step, total);
  /* Only rank 0 writes the log, so only it can see a write error (disk full): agree on it. */
  log_close(t->log, err);
  t->log = NULL;
  return comm_agree(t->comm, err);
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
