/* trainer.c — creating and freeing the trainer: sizes, the model, node-shared features, the gradient-sync plan,
 * the validation split; and the accessors. Everything is allocated here; mt_trainer_step allocates nothing. */
#include "trainer_impl.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpitrain/blas.h"
#include "mpitrain/checkpoint.h"
#include "mpitrain/fileid.h"
#include "mpitrain/init.h"
#include "mpitrain/optim.h"
#include "mpitrain/rng.h"
#include "mpitrain/util.h"

int mt_trainer_cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

Model *mt_trainer_model(Trainer *t) { return &t->model; }
Dataset *mt_trainer_data(Trainer *t) { return t->ds; }
int64_t mt_trainer_steps_done(const Trainer *t) { return t->step; }
const StepTimes *mt_trainer_times(const Trainer *t) { return &t->times; }
void mt_trainer_reset_timers(Trainer *t) { memset(&t->times, 0, sizeof t->times); }
size_t mt_trainer_optimizer_params(const Trainer *t) { return t->opt.n; }

double mt_trainer_bench_reduction(Trainer *t) {
  MPI_Barrier(t->comm->comm);
  double t0 = now();
  mt_gradsync_ready(&t->gs, 0);
  mt_gradsync_finish(&t->gs);
  return now() - t0;
}

size_t mt_trainer_model_bytes(const Trainer *t, size_t *optimizer_bytes) {
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
int mt_trainer_buckets(const Trainer *t) { return t->gs.n_buckets; }
const BlasThreads *mt_trainer_threads(const Trainer *t) { return &t->threads; }
const int64_t *mt_trainer_last_rows(const Trainer *t, int *n) {
  *n = t->n_rows;
  return t->rows;
}

void mt_trainer_free(Trainer *t) {
  if (t == NULL) return;
  MtError ignore = {0};
  if (t->log) mt_log_close(t->log, &ignore);
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
  mt_det_free(&t->dt);
  mt_free(t->best_params);
  mt_free(t->val_rows);
  mt_free(t->train_index);
  mt_optim_free(&t->opt);
  mt_gradsync_free(&t->gs);
  mt_update_free(t);
  mt_model_free(&t->model);
  if (t->owns_ds) mt_data_close(t->ds);
  for (int s = 1; s >= 0; s--) mt_comm_shared_free(&t->shared[s]); /* collective over the node, after mt_data_close */
  mt_checkpoint_dir_unlock(t->dir_lock);
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

/* Collective. The features of the in-memory splits, when mt_data_open deferred them: one copy per node in shared
 * memory, read by the node's first rank, mapped by the others — N ranks on a node, 1/N of the memory. */
static int share_features(Trainer *t, MtError *err) {
  for (int s = 0; s < 2 && t->ds; s++) {
    size_t bytes = mt_data_pending_bytes(t->ds, (Split)s);
    if (bytes == 0) continue;
    MtError local = {0};
    int owner = 0;
    mt_comm_shared_alloc(t->comm, bytes, &t->shared[s], &owner, &local);
    if (mt_comm_agree(t->comm, &local) != 0) {
      *err = local;
      return -1;
    }
    if (owner) mt_data_load_features(t->ds, (Split)s, t->shared[s].base, &local);
    mt_comm_shared_sync(t->comm, &t->shared[s]); /* every rank of the node, loaded or not */
    if (mt_comm_agree(t->comm, &local) != 0) {
      *err = local;
      return -1;
    }
    mt_data_attach_features(t->ds, (Split)s, t->shared[s].base);
  }
  return 0;
}

/* --bucket-mb auto: 2 MB buckets across nodes when there is something to overlap, else one fused bucket reduced by the
 * blocking collective. Backward finishes the first dense layer's gradient last, so only the rest can travel under
 * the layers above it; measured on the emulated network (README "Across nodes"), overlapping fp32 buckets lost to
 * the fused reduction when the rest was less than two buckets (the default model: 0.54 of 2.1 MB), so auto asks for
 * two. The first layer's weight-gradient blocks (plan_gradsync) did not change that for fp32: with them 0.5 MB
 * buckets ran at 0.73-0.78x fused at 1 Gb/s and 0.95x at 10 Gb/s with 128 rows per rank, 0.97-1.12x at 1 Gb/s
 * with 1024 (Open MPI's non-blocking allreduce is slower than its blocking one); they pay with --grad-comm bf16,
 * which auto does not choose. */
#define BUCKET_AUTO_MB 2.0
static double bucket_auto(const Trainer *t) {
  if (t->comm->n_nodes == 1) return 0; /* the cores that would overlap are busy computing */
  const Layer *first = &t->model.layers[0];
  const size_t last_done = (size_t)first->in * (size_t)first->out + (first->has_bias ? (size_t)first->out : 0);
  const double rest_mb = (double)(t->model.n_params - last_done) * sizeof(float) / 1048576.0;
  return rest_mb >= 2 * BUCKET_AUTO_MB ? BUCKET_AUTO_MB : 0;
}

/* Rows of tensor x per weight-gradient block (its first dimension: one block, unless a W is cut). */
static int block_rows(const Trainer *t, const ModelTensor *x) {
  return x->rank == 2 ? mt_model_dw_block_rows(&t->model, x->dims[0], x->dims[1], t->dw_block) : x->dims[0];
}

/* Buckets at tensor boundaries and at the weight-gradient blocks inside them, then the slices of the gradient the
 * update works on. With several buckets across ranks (default mode: --deterministic sums its own way), backward
 * computes each W in blocks (model.h ModelContext.dw_block) of half a bucket, at most DW_BLOCK_FLOATS: a bucket of
 * a large W is reduced while the rest of it is computed, and between blocks MPI gets the calls that move the
 * pending buckets (Open MPI progresses non-blocking collectives only inside MPI calls). 128 KB blocks hid the most
 * on the emulated 1 Gb/s link (README "Across nodes"): 84-95 % of a bf16 reduction at 1024 rows per rank, against
 * 85-90 % with 64 KB, 66-79 % with 256 KB, 49-69 % with 512 KB; at 128 rows per rank 64 KB to 256 KB did alike. */
#define DW_BLOCK_FLOATS 32768
static int plan_gradsync(Trainer *t, MtError *err) {
  const Model *m = &t->model;
  const int shard = t->cfg.shard_optimizer;
  const MtGradComm wire = (MtGradComm)t->cfg.grad_comm;
  MtAllreduce algo = (MtAllreduce)t->cfg.allreduce;
  if (algo == ALLREDUCE_AUTO) algo = t->det ? ALLREDUCE_FLAT : mt_allreduce_auto(t->comm, shard, wire);
  const char *why = mt_allreduce_refusal(t->comm, algo, shard, wire);
  if (why != NULL) return mt_fail(err, "--allreduce hier: %s", why);
  t->allreduce = algo;
  double mb = t->cfg.bucket_mb;
  if (mb < 0) mb = bucket_auto(t); /* see --bucket-mb's help */
  t->bucket_mb = mb;
  const size_t bytes = mb > 0 ? (size_t)(mb * 1048576.0) : (size_t)-1 / 2;
  const size_t half = bytes / sizeof(float) / 2;
  t->dw_block = mb > 0 && t->comm->size > 1 && !t->det && t->precision == PRECISION_FP32 /* bf16: no blocks */
                    ? (half < DW_BLOCK_FLOATS ? half : DW_BLOCK_FLOATS)
                    : 0;
  int nb = 1;
  t->dw_blocks = 0;
  for (int i = 0; i < t->n_tensors; i++) {
    const int rows = block_rows(t, &t->tensors[i]), k = (t->tensors[i].dims[0] + rows - 1) / rows;
    nb += k;
    if (t->tensors[i].rank == 2 && t->dw_block > 0) t->dw_blocks += k;
  }
  size_t *bounds = mt_alloc(sizeof(size_t) * (size_t)nb, "the gradient buckets' boundaries", err);
  if (bounds == NULL) return -1;
  nb = 0;
  for (int i = 0; i < t->n_tensors; i++) {
    const ModelTensor *x = &t->tensors[i];
    for (int j0 = 0; j0 < x->dims[0]; j0 += block_rows(t, x))
      bounds[nb++] = x->offset + (size_t)j0 * (x->rank == 2 ? (size_t)x->dims[1] : 1);
  }
  bounds[nb++] = m->n_params;
  const int rc = mt_gradsync_create(&t->gs, t->comm, m->grads, m->n_params, TAIL_USED, bounds, nb, bytes, shard, wire,
                                    algo, err);
  mt_free(bounds);
  if (t->gs.n_buckets == 1) t->dw_block = 0, t->dw_blocks = 0; /* one fused reduction: nothing to start early */
  return rc != 0 ? -1 : mt_update_plan(t, err);
}

/* --val-fraction: a fixed random subset of the training split (drawn from the seed, independent of the epoch and
 * of the rank count) is held out; the rest is what the epochs permute. */
int mt_trainer_split_validation(Trainer *t, MtError *err) {
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
  mt_rng_permutation((uint64_t)t->cfg.seed, (uint64_t)1 << 55, order, (size_t)total);
  for (int64_t i = 0; i < n_val; i++) t->val_rows[i] = order[i];
  qsort(t->val_rows, (size_t)n_val, sizeof(int64_t), mt_trainer_cmp_i64);
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

/* Opens the data (unless the caller gave ds) after checking the inputs by stat, and holds out the validation rows. */
static int create_data(Trainer *t, Dataset *ds, MtError *err) {
  const Config *cfg = &t->cfg;
  Comm *comm = t->comm;
  if (mt_config_validate(cfg, err) != 0) return -1;
  /* By stat, before anything opens them: opening a FIFO to read blocks until a writer comes, past any watchdog. */
  if (mt_fileid_regular(cfg->data, "--data", err) != 0 ||
      (strcmp(cfg->resume, "auto") != 0 && mt_fileid_regular(cfg->resume, "--resume", err) != 0))
    return -1;

  if (ds != NULL) {
    t->ds = ds;
  } else {
    /* Several ranks on a node: one copy of the in-memory data for all of them (share_features). */
    DataOptions dopt = {.memory = cfg->in_memory, .memory_limit = cfg->memory_limit_mb * 1024 * 1024,
                        .max_rows = cfg->micro_batch > 0 ? cfg->micro_batch : AUTO_MICRO_BATCH,
                        .defer_features = comm->node_size > 1};
    if (mt_data_open(&t->ds, cfg->data, &dopt, err) != 0) return -1;
    t->owns_ds = 1;
  }
  t->info = mt_data_info(t->ds);
  t->n_train = t->info->n[SPLIT_TRAIN];
  if (cfg->val_fraction > 0 && mt_trainer_split_validation(t, err) != 0) return -1;
  if (check_sizes(t, err) != 0) return -1;
  return 0;
}

/* The global batch, the most rows a rank takes, rows per chunk; the step engine. */
static int create_sizes(Trainer *t, MtError *err) {
  const Config *cfg = &t->cfg;
  Comm *comm = t->comm;
  t->batch = cfg->batch == 0 || cfg->batch > t->n_train ? t->n_train : cfg->batch;
  t->steps_per_epoch = (t->n_train + t->batch - 1) / t->batch;
  /* Rows per chunk: --micro-batch, else the whole local slice up to AUTO_MICRO_BATCH. The rank with the most rows
   * takes ceil(B / N). */
  t->max_local = (t->batch + comm->size - 1) / comm->size;
  int64_t micro = cfg->micro_batch > 0 ? cfg->micro_batch : AUTO_MICRO_BATCH;
  t->det = cfg->deterministic;
  t->engine = t->det ? &mt_engine_det : &mt_engine_default;
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
      return -1;
    }
    micro = t->max_local;
  }
  if (micro > t->max_local) micro = t->max_local;
  t->micro = (int)micro;
  return 0;
}

/* The model, its initial weights, its tensors, the gradient-sync plan and the learning-rate schedule. */
static int create_model(Trainer *t, MtError *err) {
  const Config *cfg = &t->cfg;
  ModelSpec spec = {.n_inputs = t->info->d, .n_classes = t->info->n_classes, .n_hidden = cfg->hidden.n,
                    .act = (ActKind)cfg->activation, .leaky_slope = cfg->leaky_slope, .bn = (BnPlace)cfg->batchnorm,
                    .bn_momentum = cfg->bn_momentum, .bn_eps = cfg->bn_eps};
  for (int i = 0; i < cfg->hidden.n; i++) {
    spec.hidden[i] = cfg->hidden.v[i];
    spec.dropout[i] = cfg->dropout;
  }
  /* Before asking for the memory: an absurd model fails with a message, not with the OOM killer. The optimiser
   * adds up to two more copies of the parameters. */
  double need = mt_model_plan_bytes(&spec, t->micro) * 2, ram = (double)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE);
  if (ram > 0 && need > 0.75 * ram) {
    mt_fail(err, "the model (--hidden %s) needs about %.1f GiB per rank with its optimiser state and activations; "
                 "this machine has %.1f GiB",
            cfg->hidden.n ? "as given" : "none", need / 1073741824.0, ram / 1073741824.0);
    return -1;
  }
  if (mt_model_create(&t->model, &spec, t->micro, err) != 0) return -1;
  mt_init_params(&t->model, (InitKind)cfg->init, (uint64_t)cfg->seed);
  t->n_tensors = mt_model_tensors(&t->model, t->tensors, 4 * MODEL_MAX_HIDDEN + 2);
  for (int i = 0; i < t->n_tensors; i++)
    if (t->tensors[i].decay) t->decay[t->n_decay++] = (ParamRange){t->tensors[i].offset, t->tensors[i].count};
  /* The GEMMs' precision (agreed with the rest: every rank runs the same CPU model or says why not), before the
   * plan, which computes no weight-gradient blocks for bf16; the model switches to it in create_gemms. */
  if (mt_precision_resolve((MtPrecision)cfg->precision, &t->precision, err) != 0) return -1;
  if (plan_gradsync(t, err) != 0) return -1;
  t->sched = (LrSchedule){.kind = (LrScheduleKind)cfg->lr_schedule,
                          .lr = cfg->lr_ref_batch > 0 ? (double)cfg->lr * (double)t->batch / (double)cfg->lr_ref_batch
                                                      : (double)cfg->lr,
                          .gamma = cfg->lr_gamma >= 0 ? cfg->lr_gamma : (cfg->lr_schedule == LR_STEP ? 0.1 : 0.95),
                          .step_epochs = cfg->lr_step,
                          .decay_rate = cfg->lr_decay_rate,
                          .lr_min = cfg->lr_min,
                          .epochs = cfg->epochs,
                          .warmup_steps = cfg->warmup_steps};
  return 0;
}

/* --deterministic: the exact sums (det.h) and the per-group batch-norm buffers. */
static int create_det(Trainer *t, MtError *err) {
  Comm *comm = t->comm;
  const int64_t G = t->cfg.det_group;
  size_t bounds[4 * MODEL_MAX_HIDDEN + 3];
  for (int i = 0; i < t->n_tensors; i++) bounds[i] = t->tensors[i].offset;
  bounds[t->n_tensors] = t->model.n_params;
  const size_t w2 = 2 * (size_t)t->model.max_width;
  const int64_t groups = (t->batch + G - 1) / G, chunk_groups = (t->micro + G - 1) / G;
  if (mt_det_create(&t->dt, bounds, t->n_tensors, comm->size, err) != 0) return -1;
  t->det_groups = mt_alloc(sizeof(int) * (size_t)comm->size, "the deterministic-mode group counts", err);
  t->det_parts = mt_alloc(sizeof(double) * w2 * (size_t)chunk_groups, "per-group batch-norm sums", err);
  t->det_scratch = mt_alloc(sizeof(double) * w2 * (size_t)groups, "per-group batch-norm sums", err);
  return err->failed ? -1 : 0;
}

/* Adds to rows[*k] the row counts of the GEMMs over `total` rows split among the ranks: this rank's slice (whole
 * groups of G in deterministic mode, where the GEMMs run on one group at a time) in chunks of `chunk` rows. */
static void add_rows(const Trainer *t, int64_t total, int chunk, int *rows, int *k, int max) {
  int64_t lo, hi;
  const int64_t G = t->det ? t->cfg.det_group : 0;
  int cand[3] = {0, 0, 0};
  if (G > 0) {
    cand[0] = (int)(G < chunk ? G : chunk); /* evaluation groups are min(--det-group, micro) */
    cand[1] = (int)(total % cand[0]);       /* the last, shorter group */
  } else {
    mt_even_split(total, t->comm->rank, t->comm->size, &lo, &hi);
    cand[0] = (int)(hi - lo < chunk ? hi - lo : chunk);
    cand[1] = (int)((hi - lo) % chunk);
  }
  for (int i = 0; i < 3; i++)
    if (cand[i] > 0 && *k < max) rows[(*k)++] = cand[i];
}

/* The GEMMs at the precision create_model resolved and, for bf16, oneDNN's primitives for every row count a step
 * or an evaluation will use, so that none is created inside the loop. After the threads are set: oneDNN divides a
 * primitive's work among the threads it has when it is created. */
static int create_gemms(Trainer *t, MtError *err) {
  int rows[16], k = 0;
  const int64_t last = t->n_train - (t->steps_per_epoch - 1) * t->batch; /* the epoch's last batch */
  add_rows(t, t->batch, t->micro, rows, &k, 16);
  add_rows(t, last, t->micro, rows, &k, 16);
  add_rows(t, t->n_train, t->micro, rows, &k, 16);
  add_rows(t, t->n_val, t->micro, rows, &k, 16);
  add_rows(t, t->info->n[SPLIT_TEST], t->micro, rows, &k, 16);
  return mt_model_set_precision(&t->model, t->precision, rows, k, err);
}

/* The buffers of a step, the optimiser, the screen log and the BLAS threads. */
static int create_buffers(Trainer *t, MtError *err) {
  const Config *cfg = &t->cfg;
  Comm *comm = t->comm;
  if ((cfg->on_nonfinite == NONFINITE_SKIP || t->det) && t->model.n_state)
    t->state_snapshot = mt_alloc(sizeof(float) * t->model.n_state, "a copy of the batch-norm statistics", err);
  t->best_val = -1;
  if (cfg->patience > 0) {
    t->best_params = mt_alloc(sizeof(float) * t->model.n_params, "the best model", err);
    t->best_state = mt_alloc(sizeof(float) * (t->model.n_state ? t->model.n_state : 1), "the best model", err);
  }

  OptConfig oc = {.kind = (OptKind)cfg->optimizer, .beta1 = cfg->beta1, .beta2 = t->beta2, .eps = cfg->eps};
  if (mt_optim_create(&t->opt, &oc, t->gs.shard ? t->gs.n_own : t->model.n_params, err) != 0) return -1;

  t->perm = mt_alloc(sizeof(uint32_t) * (size_t)t->n_train, "the epoch permutation", err);
  t->rows = mt_alloc(sizeof(int64_t) * (size_t)t->max_local, "the batch's row list", err);
  t->x = mt_alloc(sizeof(float) * (size_t)t->micro * (size_t)t->info->d, "the input batch", err);
  t->y = mt_alloc(sizeof(int32_t) * (size_t)t->micro, "the label batch", err);
  t->dlogits = mt_alloc(sizeof(float) * (size_t)t->micro * (size_t)t->info->n_classes, "the loss gradient", err);
  if (err->failed) return -1;

  /* The screen only, for now: --log is opened by mt_trainer_metrics_open once every input has been checked and the run
   * knows whether it resumed (then it continues the file of the run it resumes). */
  LogOptions lo = {.is_root = comm->rank == 0, .progress = cfg->progress, .path = cfg->log,
                   .format = cfg->log_format, .every = cfg->log_every, .defer_file = 1};
  if (mt_log_open(&t->log, &lo, err) != 0) return -1;

  /* Deterministic mode: one OpenBLAS thread, always. OpenBLAS 0.3.21 blocks the K dimension of a GEMM differently
   * with several threads, which changes the order of the additions (measured: the same run with 1 and 2 threads
   * differs in most weights after 30 steps). Start one rank per core instead. */
  if (mt_blas_threads_choose(cfg->threads, t->det, comm->node_cores, comm->node_cpus, comm->node_size, &t->threads,
                          err) != 0)
    return -1;
  mt_blas_set_threads(t->threads.n);
  return create_gemms(t, err);
}

int mt_trainer_create(Trainer **out, const Config *cfg, Comm *comm, Dataset *ds, MtError *err) {
  *out = NULL;
  Trainer *t = calloc(1, sizeof *t);
  if (t == NULL) {
    mt_fail(err, "out of memory creating the trainer");
    mt_comm_agree(comm, err);
    return -1;
  }
  t->cfg = *cfg;
  t->comm = comm;
  t->shared[0].win = t->shared[1].win = MPI_WIN_NULL;
  t->dir_lock = -1;
  t->perm_epoch = -1;
  t->saved_step = -1;
  t->beta2 = mt_config_beta2(cfg);

  /* Each stage stops at its first error; the ranks then agree on the outcome. */
  if (create_data(t, ds, err) == 0 && create_sizes(t, err) == 0 && create_model(t, err) == 0 &&
      (!t->det || create_det(t, err) == 0))
    create_buffers(t, err);
  if (mt_comm_agree(comm, err) != 0) {
    mt_trainer_free(t);
    return -1;
  }
  if (share_features(t, err) != 0 || (cfg->checkpoint_dir[0] != '\0' && mt_trainer_checkpoint_dir_ready(t, err) != 0) ||
      (cfg->resume[0] != '\0' && mt_trainer_resume(t, err) != 0) ||
      (cfg->init_from[0] != '\0' && mt_trainer_init_from(t, err) != 0) || mt_trainer_metrics_open(t, err) != 0) {
    mt_trainer_free(t);
    return -1;
  }
  *out = t;
  return 0;
}
