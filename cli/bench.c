/* bench.c — `mpitrain bench`: how close training runs to the machine's own sgemm, measured in the same run.
 *
 * First every rank times cblas_sgemm on exactly the GEMM shapes one training step of the model issues (forward,
 * weight gradient, input gradient, at the rank's micro-batch size): that is the roofline a step could reach if
 * everything but the GEMMs were free. Then it trains for a fixed number of steps on in-memory synthetic data (or
 * a dataset file) and reports samples/s, GFLOP/s actually achieved in the GEMMs' flop count, its fraction of the
 * roofline, and where a step's time goes. All ranks measure at once, so the roofline sees the same contention for
 * cores and memory bandwidth as training does.
 *
 * Under mpirun with N > 1 ranks it also trains the same model on rank 0 alone (a one-rank communicator, the other
 * ranks sleeping), in rounds alternating with the N-rank steps, and reports the speed-up over that one-rank run:
 * on a shared or noisy machine, ratios measured side by side are the only trustworthy ones.
 *
 * With --precision bf16 the roofline is bare oneDNN bf16 matmuls on the same shapes instead (gemm_ref.c: the
 * backend's primitives on operands already in bf16, nothing else in the loop), reported under its own names
 * ("onednn_bf16"); the fp32 report is unchanged. */
#include "cli.h"

#include <cblas.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "mpitrain/blas.h"
#include "mpitrain/config.h"
#include "mpitrain/optim.h"
#include "mpitrain/sim.h"
#include "mpitrain/train.h"
#include "mpitrain/util.h"

typedef struct BenchConfig {
  Config train; /* first member: the train options' offsets apply unchanged */
  int steps, warmup, json, synthetic, features, classes, scaling;
  int64_t samples;
} BenchConfig;

enum { SCALING_OFF = 0, SCALING_STRONG, SCALING_WEAK };
static const char *const scaling_choices[] = {"off", "strong", "weak", NULL};

static const OptionSpec bench_options[] = {
    {.name = "steps", .type = OT_INT, .offset = offsetof(BenchConfig, steps), .def = "200", .metavar = "N",
     .help = "training steps to time", .min = 1, .max = 1e9, .flags = OPT_RANGED},
    {.name = "warmup", .type = OT_INT, .offset = offsetof(BenchConfig, warmup), .def = "20", .metavar = "N",
     .help = "untimed steps first", .min = 0, .max = 1e9, .flags = OPT_RANGED},
    {.name = "json", .type = OT_BOOL, .offset = offsetof(BenchConfig, json), .def = "false",
     .help = "print one JSON object instead of a table"},
    {.name = "synthetic", .type = OT_BOOL, .offset = offsetof(BenchConfig, synthetic), .def = "true",
     .help = "use in-memory generated data (false: read --data)"},
    {.name = "samples", .type = OT_INT64, .offset = offsetof(BenchConfig, samples), .def = "16384", .metavar = "N",
     .help = "synthetic training rows", .min = 1, .max = 1e9, .flags = OPT_RANGED},
    {.name = "features", .type = OT_INT, .offset = offsetof(BenchConfig, features), .def = "784", .metavar = "D",
     .help = "synthetic features per row", .min = 1, .max = DATA_MAX_FEATURES, .flags = OPT_RANGED},
    {.name = "scaling", .type = OT_ENUM, .offset = offsetof(BenchConfig, scaling), .def = "strong",
     .choices = scaling_choices,
     .help = "with N > 1 ranks, also time rank 0 training alone, in alternating rounds, and report the speed-up: "
             "strong = the same global --batch on 1 rank, weak = --batch/N on 1 rank (the same rows per rank)"},
    {.name = "classes", .type = OT_INT, .offset = offsetof(BenchConfig, classes), .def = "10", .metavar = "C",
     .help = "synthetic classes", .min = 2, .max = DATA_MAX_CLASSES, .flags = OPT_RANGED},
    {.name = NULL},
};

/* The train options bench has no use for: it runs a fixed number of steps (not epochs, no early stopping) from
 * --init's weights (their values do not change a step's time), and never evaluates, logs or checkpoints. Left out of
 * its table, so --help lists only what changes a step and such an option is refused as unknown rather than silently
 * ignored. Whole sections, then single options. (--stall-timeout stays: the stall inspector watches bench too.) */
static const char *const bench_skip_sections[] = {"output", "checkpoints", NULL};
static const char *const bench_skip_options[] = {"epochs", "max-steps", "val-fraction", "patience", "init-from", NULL};

static int listed(const char *const *list, const char *name) {
  for (; name != NULL && *list != NULL; list++)
    if (strcmp(*list, name) == 0) return 1;
  return 0;
}

/* The train table, less what bench skips, followed by the bench table; built once. */
static OptionSpec *bench_table(void) {
  static OptionSpec table[128];
  if (table[0].name != NULL) return table;
  size_t n = 0;
  const char *section = NULL, *pending = NULL; /* a heading whose first option was skipped moves to the next */
  for (const OptionSpec *o = mt_config_train_options; o->name; o++) {
    if (o->section != NULL) section = pending = o->section;
    if (listed(bench_skip_sections, section) || listed(bench_skip_options, o->name)) continue;
    table[n] = *o;
    table[n++].section = pending;
    pending = NULL;
  }
  for (const OptionSpec *o = bench_options; o->name; o++) {
    table[n] = *o;
    if (o == bench_options) table[n].section = "bench";
    n++;
  }
  table[n].name = NULL;
  return table;
}

/* The roofline's window: long enough to average over a shared machine's noise, short beside the timed steps. */
#define ROOF_WINDOW_S 0.1

/* Seconds for the GEMMs of one forward + backward pass over m rows: the mean over a 0.1 s window, the same kind
 * of figure as a training step's mean time (a best-of would flatter the roofline on a noisy machine). The shadow
 * model has its own parameters, gradients and activations, laid out like the trained one, so the roofline sees the
 * same operand sizes and cache footprint as a training step — not a single weight matrix kept hot in cache. */
static double time_gemms(Model *shadow, const float *x, const float *dlogits, int m) {
  double modelled = mt_sim_gemm_seconds(shadow, m); /* SMPI hook (sim.h): > 0 when compute is modelled */
  if (modelled > 0) return modelled;
  mt_model_run_gemms(shadow, x, dlogits, m); /* untimed: page in the buffers */
  int iters = 0;
  double t0 = MPI_Wtime(), t1 = t0;
  do {
    mt_model_run_gemms(shadow, x, dlogits, m);
    iters++;
    t1 = MPI_Wtime();
  } while (t1 - t0 < ROOF_WINDOW_S);
  return (t1 - t0) / iters;
}

/* The ranks other than 0 wait here, without spinning a core, while rank 0 times its one-rank reference. */
static void wait_for_rank0(Comm *c) {
  MPI_Request req;
  MPI_Ibarrier(c->comm, &req);
  if (c->rank == 0) {
    MPI_Wait(&req, MPI_STATUS_IGNORE);
    return;
  }
  int done = 0;
  const struct timespec nap = {0, 200000};
  while (MPI_Test(&req, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && !done) nanosleep(&nap, NULL);
}

/* Times `steps` training steps; every rank of t's communicator must call it. */
static double timed_steps(Comm *c, Trainer *t, int steps, MtError *err) {
  MPI_Barrier(c->comm);
  double t0 = MPI_Wtime();
  for (int i = 0; i < steps && err->failed == 0; i++) mt_trainer_step(t, NULL, err);
  MPI_Barrier(c->comm);
  return MPI_Wtime() - t0;
}

static void sort_small(double *v, int n) { /* insertion sort of a handful of numbers */
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
      double tmp = v[j];
      v[j] = v[j - 1];
      v[j - 1] = tmp;
    }
}

static void model_arch(const Config *cfg, const DataInfo *info, char *arch, size_t n) {
  int p = snprintf(arch, n, "%d", info->d);
  for (int i = 0; i < cfg->hidden.n && p < (int)n; i++) p += snprintf(arch + p, n - (size_t)p, "-%d", cfg->hidden.v[i]);
  if (p < (int)n) snprintf(arch + p, n - (size_t)p, "-%d", info->n_classes);
}

static const CliUsage bench_usage = {
    .usage = "mpirun -np N mpitrain bench [--config FILE] [options]",
    .summary = "Times sgemm on the model's GEMM shapes (with --precision bf16: bare oneDNN bf16 matmuls), then\n"
               "training steps; reports samples/s, the fraction of that roofline reached, and (N > 1) the\n"
               "speed-up over rank 0 training alone, all measured in alternating rounds of the same run. Takes the `mpitrain train` options that\n"
               "shape a step (data, model, optimiser, batch, threads, gradient reduction), and its own."};

/* Parses the options: 0 to go on, else -1 with *rc the exit code (0 after --help, 2 on a usage error, agreed). */
static int bench_parse(Comm *c, BenchConfig *bc, int argc, char **argv, int *rc) {
  MtError err = {0};
  OptsResult res;
  const OptionSpec *table = bench_table();
  mt_opts_defaults(mt_config_train_options, &bc->train); /* the options bench skips keep train's defaults */
  int prc = mt_opts_parse(table, bc, argc, argv, 1, 1, &res, &err);
  if (prc == 0 && res.n_positional > 0) mt_fail(&err, "unexpected argument '%s'", res.positional[0]);
  if (cli_agree_and_report(c, &err) != 0) {
    *rc = EXIT_USAGE;
    return -1;
  }
  if (res.help) {
    if (c->rank == 0) cli_print_usage(&bench_usage, table);
    *rc = 0;
    return -1;
  }
  return 0;
}

enum { ROUNDS = 5, REPS = 21 };

/* What one run measures with: the trainer, rank 0's one-rank reference, and the shadow model for the roofline. */
typedef struct Bench {
  BenchConfig bc;
  Dataset *ds;        /* the synthetic data (NULL: the trainer opened --data) */
  Trainer *t, *ref;   /* ref: rank 0 only, with N > 1 ranks and --scaling */
  Comm solo;
  MPI_Comm solo_comm;
  Model shadow;       /* fp32 only */
  float *x, *dl;      /* [micro, d], [micro, C]: the shadow's inputs and logit gradients */
  int bf16;           /* the roofline is bare oneDNN bf16 matmuls on these shapes, not the shadow's sgemm */
  int n_dense;
  MtGemmDense dense[MODEL_MAX_HIDDEN + 1];
  const DataInfo *info;
  int64_t B, ref_batch; /* the global batch, and the reference's */
  int local, micro;   /* this rank's rows of a step, and the rows of one pass */
  int with_ref;
} Bench;

/* What was measured, per rank or (after bench_summarise) averaged over the ranks. */
typedef struct BenchResult {
  double gemm_flops, gemm_total, train_s, ref_s, frac[ROUNDS], speedup[ROUNDS];
  double red_ms, bare_ms, red_bw, bare_bw; /* the gradient reduction against a bare MPI_Allreduce */
  size_t nred;                             /* floats reduced */
  double max_rss;                          /* MB, the largest rank's */
  size_t model_bytes, opt_bytes;
  double roof, achieved, samples_per_s, step_ms, ref_sps, ms[5];
} BenchResult;

/* The roofline's seconds for one pass over m rows: the shadow's sgemm calls, or bare bf16 matmuls. */
static double roof_seconds(Bench *b, int m, MtError *err) {
  if (!b->bf16) return time_gemms(&b->shadow, b->x, b->dl, m);
  double modelled = mt_sim_gemm_seconds(mt_trainer_model(b->t), m); /* SMPI hook, as in time_gemms */
  if (modelled > 0) return modelled;
  double s = 0;
  if (!err->failed) mt_gemm_ref_bf16_seconds(b->dense, b->n_dense, m, ROOF_WINDOW_S, &s, err);
  return s;
}

/* The one-rank reference, on rank 0 only (collective over c). */
static int bench_reference(Comm *c, Bench *b, MtError *err) {
  const Config *cfg = &b->bc.train;
  MPI_Comm_split(c->comm, c->rank == 0 ? 0 : MPI_UNDEFINED, 0, &b->solo_comm);
  if (c->rank == 0) {
    Config rc1 = *cfg;
    rc1.batch = b->ref_batch;
    /* The reference runs with the N-rank run's threads per rank (its own choice on a one-rank communicator
     * would take all of the node's cores), and OpenBLAS's count is the process's: put it back. */
    rc1.threads = mt_trainer_threads(b->t)->n;
    if (mt_comm_init(&b->solo, b->solo_comm, err) == 0 &&
        mt_trainer_create(&b->ref, &rc1, &b->solo, mt_trainer_data(b->t), err) == 0)
      mt_blas_set_threads(mt_trainer_threads(b->t)->n);
  }
  return mt_comm_agree(c, err);
}

/* Collective: data, trainer, reference and shadow model. 0, or -1 with err agreed. */
static int bench_setup(Comm *c, Bench *b, MtError *err) {
  Config *cfg = &b->bc.train;
  if (b->bc.synthetic) {
    SynthSpec spec = {.n_train = b->bc.samples, .n_test = 0, .d = b->bc.features, .n_classes = b->bc.classes,
                      .seed = (uint64_t)cfg->seed, .noise = 1.0f};
    mt_data_open_synthetic(&b->ds, &spec, err);
  }
  if (mt_comm_agree(c, err) != 0) return -1;
  if (mt_trainer_create(&b->t, cfg, c, b->ds, err) != 0) return -1;
  Model *model = mt_trainer_model(b->t);
  b->info = mt_data_info(mt_trainer_data(b->t));
  b->B = cfg->batch == 0 || cfg->batch > b->info->n[SPLIT_TRAIN] ? b->info->n[SPLIT_TRAIN] : cfg->batch;
  int64_t lo, hi;
  mt_even_split(b->B, c->rank, c->size, &lo, &hi);
  b->local = (int)(hi - lo);
  b->micro = model->max_batch;
  b->with_ref = c->size > 1 && b->bc.scaling != SCALING_OFF;
  b->ref_batch = b->bc.scaling == SCALING_WEAK ? (b->B + c->size - 1) / c->size : b->B;
  if (b->with_ref && bench_reference(c, b, err) != 0) return -1;

  /* Roofline: the GEMMs of the same chunks the rank runs in a step, on a shadow model of the same shape, or in
   * bf16 on bare matmul primitives of the dense layers' shapes. */
  b->bf16 = mt_gemm_precision(model->gemm) == PRECISION_BF16;
  if (b->bf16) {
    b->n_dense = mt_model_dense_shapes(model, b->dense);
    return 0;
  }
  const int micro = b->micro, d = b->info->d, C = b->info->n_classes;
  const int rows[1] = {b->local % micro}; /* the chunks' row counts: micro, and the last one's */
  if (mt_model_create(&b->shadow, &model->spec, micro, err) == 0 &&
      mt_model_set_precision(&b->shadow, mt_gemm_precision(model->gemm), rows, 1, err) == 0) {
    b->x = mt_alloc(sizeof(float) * (size_t)micro * (size_t)d, "benchmark inputs", err);
    b->dl = mt_alloc(sizeof(float) * (size_t)micro * (size_t)C, "benchmark gradients", err);
  }
  if (mt_comm_agree(c, err) != 0) return -1;
  memcpy(b->shadow.params, model->params, sizeof(float) * model->n_params);
  mt_gemm_stage_weights(b->shadow.gemm, b->shadow.params);
  for (size_t i = 0; i < (size_t)micro * (size_t)d; i++) b->x[i] = (float)(i % 7) * 0.1f;
  for (size_t i = 0; i < (size_t)micro * (size_t)C; i++) b->dl[i] = (float)(i % 5) * 0.01f - 0.02f;
  return 0;
}

/* Shared machines drift by tens of percent over seconds, so the roofline, the N-rank steps and the one-rank
 * steps are measured in alternating rounds, and each ratio reported is the median of the rounds' ratios. */
static void bench_rounds(Comm *c, Bench *b, BenchResult *m, MtError *err) {
  const int local = b->local, micro = b->micro;
  for (int c0 = 0; c0 < local; c0 += micro)
    m->gemm_flops += mt_model_gemm_flops(mt_trainer_model(b->t), local - c0 < micro ? local - c0 : micro);
  for (int i = 0; i < b->bc.warmup && err->failed == 0; i++) mt_trainer_step(b->t, NULL, err);
  if (b->ref)
    for (int i = 0; i < b->bc.warmup && err->failed == 0; i++) mt_trainer_step(b->ref, NULL, err);
  if (b->with_ref) wait_for_rank0(c);
  mt_trainer_reset_timers(b->t);
  for (int r = 0; r < ROUNDS && err->failed == 0; r++) {
    double gemm_s = 0;
    for (int c0 = 0; c0 < local; c0 += micro)
      gemm_s += roof_seconds(b, local - c0 < micro ? local - c0 : micro, err);
    if (b->bf16 && mt_comm_agree(c, err) != 0) break; /* its set-up can fail (memory, oneDNN) on one rank */
    int steps = b->bc.steps / ROUNDS + (r < b->bc.steps % ROUNDS);
    double dt = timed_steps(c, b->t, steps, err);
    m->train_s += dt;
    m->gemm_total += gemm_s;
    m->frac[r] = steps > 0 ? gemm_s * steps / dt : 0;
    m->speedup[r] = 0;
    if (b->with_ref) {
      if (b->ref) {
        double dr = timed_steps(&b->solo, b->ref, steps, err);
        m->ref_s += dr;
        m->speedup[r] = ((double)b->B / dt) / ((double)b->ref_batch / dr);
      }
      wait_for_rank0(c);
    }
  }
}

/* The gradient reduction alone, by the trainer's schedule (buckets, sharding), against one bare MPI_Allreduce
 * of a buffer of the same size, alternating, median of each. Bus bandwidth = 2(N-1)/N · bytes / time, the
 * convention of NCCL's and OSU's benchmarks: what each link carries in a ring allreduce. */
static void bench_reduction(Comm *c, Bench *b, BenchResult *m) {
  double red[REPS], bare[REPS];
  m->nred = mt_trainer_model(b->t)->n_params + 4;
  const size_t nred = m->nred;
  float *scratch = c->size > 1 ? calloc(nred, sizeof(float)) : NULL;
  for (int i = 0; c->size > 1 && i < REPS; i++) {
    red[i] = mt_trainer_bench_reduction(b->t);
    MPI_Barrier(c->comm);
    double t0 = MPI_Wtime();
    if (scratch) MPI_Allreduce(MPI_IN_PLACE, scratch, (int)nred, MPI_FLOAT, MPI_SUM, c->comm);
    bare[i] = MPI_Wtime() - t0;
  }
  free(scratch);
  if (c->size > 1) {
    sort_small(red, REPS);
    sort_small(bare, REPS);
    const double bytes = (double)nred * sizeof(float), factor = 2.0 * (c->size - 1) / c->size;
    m->red_ms = red[REPS / 2] * 1e3;
    m->bare_ms = bare[REPS / 2] * 1e3;
    m->red_bw = factor * bytes / red[REPS / 2] / 1e9;
    m->bare_bw = factor * bytes / bare[REPS / 2] / 1e9;
  }
}

/* Memory, and the per-rank figures averaged over ranks (they differ by at most one row of work); collective. */
static void bench_summarise(Comm *c, Bench *b, BenchResult *m) {
  /* Memory: the peak resident set, against what the model itself needs. */
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  m->max_rss = (double)ru.ru_maxrss / 1024.0;
  MPI_Allreduce(MPI_IN_PLACE, &m->max_rss, 1, MPI_DOUBLE, MPI_MAX, c->comm);
  m->model_bytes = mt_trainer_model_bytes(b->t, &m->opt_bytes);

  const StepTimes *tm = mt_trainer_times(b->t);
  const int steps = b->bc.steps;
  double v[7] = {m->gemm_flops * ROUNDS / m->gemm_total, m->gemm_flops * steps / m->train_s, tm->data, tm->forward,
                 tm->backward, tm->reduce, tm->update};
  MPI_Allreduce(MPI_IN_PLACE, v, 7, MPI_DOUBLE, MPI_SUM, c->comm);
  MPI_Allreduce(MPI_IN_PLACE, m->frac, ROUNDS, MPI_DOUBLE, MPI_SUM, c->comm);
  for (int i = 0; i < 7; i++) v[i] /= c->size;
  for (int r = 0; r < ROUNDS; r++) m->frac[r] /= c->size;
  sort_small(m->frac, ROUNDS);
  sort_small(m->speedup, ROUNDS);
  m->roof = v[0];
  m->achieved = v[1];
  m->samples_per_s = (double)b->B * steps / m->train_s;
  m->step_ms = m->train_s / steps * 1e3;
  m->ref_sps = m->ref_s > 0 ? (double)b->ref_batch * steps / m->ref_s : 0;
  for (int i = 0; i < 5; i++) m->ms[i] = v[2 + i] / steps * 1e3;
}

/* The roofline's name in the JSON keys: "sgemm" (the keys fp32 has always had) or "onednn_bf16". */
static const char *roof_key(const Bench *b) { return b->bf16 ? "onednn_bf16" : "sgemm"; }

static void bench_report_json(Comm *c, Bench *b, const BenchResult *m, const char *arch, const char *scaling) {
  const Config *cfg = &b->bc.train;
  Trainer *t = b->t;
  char extra[320] = ""; /* bf16 only: what ran, and what the roofline ran (fp32's object stays as it was) */
  if (b->bf16)
    snprintf(extra, sizeof extra,
             ", \"precision\": \"bf16\", \"gemm_kernel\": \"%s\", \"roofline\": \"bare %s matmul\"",
             mt_gemm_kernel(mt_trainer_model(t)->gemm), mt_gemm_kernel(mt_trainer_model(t)->gemm));
  if (cfg->grad_comm == GRAD_COMM_BF16) /* likewise only when set */
    snprintf(extra + strlen(extra), sizeof extra - strlen(extra), ", \"grad_comm\": \"bf16\"");
  printf("{\"ranks\": %d, \"threads\": %d, \"model\": \"%s\", \"params\": %zu, \"optimizer\": \"%s\", "
         "\"batch\": %lld, \"rows_per_rank\": %d, \"micro_batch\": %d, \"steps\": %d, \"step_ms\": %.4f, "
         "\"samples_per_s\": %.1f, \"gflops_per_rank\": %.2f, \"%s_gflops_per_rank\": %.2f, "
         "\"fraction_of_%s\": %.4f, \"ms_data\": %.4f, \"ms_forward\": %.4f, \"ms_backward\": %.4f, "
         "\"ms_allreduce\": %.4f, \"ms_update\": %.4f, \"scaling\": \"%s\", \"reference_batch\": %lld, "
         "\"reference_samples_per_s\": %.1f, \"speedup_vs_1_rank\": %.4f, \"buckets\": %d, \"sharded\": %d, "
         "\"grad_reduce_ms\": %.4f, \"bare_allreduce_ms\": %.4f, \"grad_busbw_gbs\": %.3f, "
         "\"bare_busbw_gbs\": %.3f, \"peak_rss_mb\": %.1f, \"model_mb\": %.2f, \"optimizer_mb\": %.2f, "
         "\"blas_core\": \"%s\"%s}\n",
         c->size, mt_blas_get_threads(), arch, mt_trainer_model(t)->n_params, mt_optim_name((OptKind)cfg->optimizer),
         (long long)b->B, b->local, b->micro, b->bc.steps, m->step_ms, m->samples_per_s, m->achieved / 1e9,
         roof_key(b), m->roof / 1e9, roof_key(b), m->frac[ROUNDS / 2], m->ms[0], m->ms[1], m->ms[2], m->ms[3],
         m->ms[4], scaling,
         (long long)(b->with_ref ? b->ref_batch : 0), m->ref_sps, b->with_ref ? m->speedup[ROUNDS / 2] : 1.0,
         mt_trainer_buckets(t), cfg->shard_optimizer && c->size > 1, m->red_ms, m->bare_ms, m->red_bw, m->bare_bw,
         m->max_rss, m->model_bytes / 1048576.0, m->opt_bytes / 1048576.0, openblas_get_corename(), extra);
}

static void bench_report_table(Comm *c, Bench *b, const BenchResult *m, const char *arch, const char *scaling) {
  const Config *cfg = &b->bc.train;
  Trainer *t = b->t;
  char blas[512];
  mt_blas_describe(blas, sizeof blas);
  printf("mpitrain bench: model %s (%zu parameters), %s, %d rank%s x %d thread%s (%s)\n", arch,
         mt_trainer_model(t)->n_params, mt_optim_name((OptKind)cfg->optimizer), c->size, c->size == 1 ? "" : "s",
         mt_blas_get_threads(), mt_blas_get_threads() == 1 ? "" : "s", mt_trainer_threads(t)->source);
  printf("blas: %s\n", blas);
  printf("global batch %lld (%d rows on rank 0, micro-batch %d), %d timed steps after %d warm-up\n", (long long)b->B,
         b->local, b->micro, b->bc.steps, b->bc.warmup);
  printf("  step time          %9.3f ms\n", m->step_ms);
  printf("  samples/s          %9.0f\n", m->samples_per_s);
  char roof[200];
  snprintf(roof, sizeof roof, "%s%s%s", b->bf16 ? "bare " : "",
           mt_gemm_kernel(b->bf16 ? mt_trainer_model(t)->gemm : b->shadow.gemm), b->bf16 ? " matmuls" : "");
  printf("  GEMM GFLOP/s/rank  %9.2f  (%s on the same shapes: %.2f)\n", m->achieved / 1e9, roof, m->roof / 1e9);
  const char *of = b->bf16 ? "of oneDNN bf16 roofline" : "of sgemm roofline"; /* the figure ends in one column */
  printf("  %s  %*.1f %%  (median of %d alternating rounds: %.1f .. %.1f %%)\n", of, 26 - (int)strlen(of),
         100 * m->frac[ROUNDS / 2], ROUNDS, 100 * m->frac[0], 100 * m->frac[ROUNDS - 1]);
  printf("  time per step: data %.3f ms, forward %.3f ms, backward %.3f ms, allreduce %.3f ms, update %.3f ms\n",
         m->ms[0], m->ms[1], m->ms[2], m->ms[3], m->ms[4]);
  if (c->size > 1)
    printf("  gradient reduction %9.3f ms  (%d bucket%s%s%s; bus bandwidth %.2f GB/s = %.0f %% of a bare "
           "MPI_Allreduce of the same %.1f MB: %.3f ms, %.2f GB/s)\n",
           m->red_ms, mt_trainer_buckets(t), mt_trainer_buckets(t) == 1 ? "" : "s",
           cfg->shard_optimizer ? ", reduce-scatter + all-gather" : "",
           cfg->grad_comm == GRAD_COMM_BF16 ? ", sent as bf16" : "", m->red_bw, 100 * m->red_bw / m->bare_bw,
           m->nred * 4 / 1048576.0, m->bare_ms, m->bare_bw);
  printf("  memory per rank    %9.1f MB peak resident (largest rank); model %.1f MB of which optimiser state "
         "%.1f MB\n",
         m->max_rss, m->model_bytes / 1048576.0, m->opt_bytes / 1048576.0);
  if (b->with_ref)
    printf("  vs rank 0 alone   %9.2fx  (%s scaling: batch %lld on 1 rank, %.0f samples/s; rounds %.2f .. %.2f)\n",
           m->speedup[ROUNDS / 2], scaling, (long long)b->ref_batch, m->ref_sps, m->speedup[0],
           m->speedup[ROUNDS - 1]);
}

static void bench_free(Bench *b) {
  mt_free(b->dl);
  mt_free(b->x);
  mt_model_free(&b->shadow);
  mt_trainer_free(b->ref);
  if (b->solo_comm != MPI_COMM_NULL) {
    mt_comm_free(&b->solo);
    MPI_Comm_free(&b->solo_comm);
  }
  mt_trainer_free(b->t);
  if (b->ds) mt_data_close(b->ds);
}

int bench_main(Comm *c, int argc, char **argv) {
  Bench b = {.solo_comm = MPI_COMM_NULL};
  int ret = 1;
  if (bench_parse(c, &b.bc, argc, argv, &ret) != 0) return ret;
  mt_comm_warn_oversubscribed(c);
  Config *cfg = &b.bc.train;
  mt_comm_watchdog_timeout(c, cfg->stall_timeout);
  cfg->progress = PROGRESS_OFF;
  cfg->eval = 0;
  cfg->log[0] = '\0';
  cfg->epochs = 1 << 30; /* the step count bounds the run */

  MtError err = {0};
  BenchResult m = {0};
  if (bench_setup(c, &b, &err) == 0) bench_rounds(c, &b, &m, &err);
  /* A step's error is already agreed (reduced values or mt_comm_agree inside the step). */
  if (!err.failed) {
    bench_reduction(c, &b, &m);
    bench_summarise(c, &b, &m);
    if (c->rank == 0) {
      char arch[256];
      model_arch(cfg, b.info, arch, sizeof arch);
      const char *scaling = b.with_ref ? scaling_choices[b.bc.scaling] : "off";
      if (b.bc.json)
        bench_report_json(c, &b, &m, arch, scaling);
      else
        bench_report_table(c, &b, &m, arch, scaling);
      fflush(stdout);
    }
    ret = 0;
  }
  if (err.failed) mt_comm_report(c, &err);
  bench_free(&b);
  return ret;
}
