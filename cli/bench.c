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
 * on a shared or noisy machine, ratios measured side by side are the only trustworthy ones. */
#include "bench.h"

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
     .help = "synthetic features per row", .min = 1, .max = 1 << 24, .flags = OPT_RANGED},
    {.name = "scaling", .type = OT_ENUM, .offset = offsetof(BenchConfig, scaling), .def = "strong",
     .choices = scaling_choices,
     .help = "with N > 1 ranks, also time rank 0 training alone, in alternating rounds, and report the speed-up: "
             "strong = the same global --batch on 1 rank, weak = --batch/N on 1 rank (the same rows per rank)"},
    {.name = "classes", .type = OT_INT, .offset = offsetof(BenchConfig, classes), .def = "10", .metavar = "C",
     .help = "synthetic classes", .min = 2, .max = 1 << 20, .flags = OPT_RANGED},
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
  for (const OptionSpec *o = config_train_options; o->name; o++) {
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

/* Seconds for the GEMMs of one forward + backward pass over m rows: the mean over a 0.1 s window, the same kind
 * of figure as a training step's mean time (a best-of would flatter the roofline on a noisy machine). The shadow
 * model has its own parameters, gradients and activations, laid out like the trained one, so the roofline sees the
 * same operand sizes and cache footprint as a training step — not a single weight matrix kept hot in cache. */
static double time_gemms(Model *shadow, const float *x, const float *dlogits, int m) {
  double modelled = sim_gemm_seconds(shadow, m); /* SMPI hook (sim.h): > 0 when compute is modelled */
  if (modelled > 0) return modelled;
  model_run_gemms(shadow, x, dlogits, m); /* untimed: page in the buffers */
  int iters = 0;
  double t0 = MPI_Wtime(), t1 = t0;
  do {
    model_run_gemms(shadow, x, dlogits, m);
    iters++;
    t1 = MPI_Wtime();
  } while (t1 - t0 < 0.1);
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
  for (int i = 0; i < steps && err->failed == 0; i++) trainer_step(t, NULL, err);
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

int bench_main(Comm *c, int argc, char **argv) {
  BenchConfig bc;
  MtError err = {0};
  OptsResult res;
  const OptionSpec *table = bench_table();
  opts_defaults(config_train_options, &bc.train); /* the options bench skips keep train's defaults */
  int rc = opts_parse(table, &bc, argc, argv, 1, 1, &res, &err);
  if (rc == 0 && res.n_positional > 0) mt_fail(&err, "unexpected argument '%s'", res.positional[0]);
  if (comm_agree(c, &err) != 0) {
    comm_report(c, &err);
    return 2;
  }
  if (res.help) {
    if (c->rank == 0)
      opts_print_help_ex(stdout, "mpirun -np N mpitrain bench [--config FILE] [options]",
                      "Times sgemm on the model's GEMM shapes, then training steps; reports samples/s, the fraction\n"
                      "of that sgemm roofline reached, and (N > 1) the speed-up over rank 0 training alone, all\n"
                      "measured in alternating rounds of the same run. Takes the `mpitrain train` options that\n"
                      "shape a step (data, model, optimiser, batch, threads, gradient reduction), and its own.",
                      table, 1);
    return 0;
  }
  comm_warn_oversubscribed(c);
  Config *cfg = &bc.train;
  comm_watchdog_timeout(c, cfg->stall_timeout);
  cfg->progress = PROGRESS_OFF;
  cfg->eval = 0;
  cfg->log[0] = '\0';
  cfg->epochs = 1 << 30; /* the step count bounds the run */

  enum { ROUNDS = 5 };
  Dataset *ds = NULL;
  Trainer *t = NULL, *ref = NULL;
  Comm solo;
  MPI_Comm solo_comm = MPI_COMM_NULL;
  Model shadow = {0};
  float *x = NULL, *dl = NULL;
  int ret = 1;

  if (bc.synthetic) {
    SynthSpec spec = {.n_train = bc.samples, .n_test = 0, .d = bc.features, .n_classes = bc.classes,
                      .seed = (uint64_t)cfg->seed, .noise = 1.0f};
    data_open_synthetic(&ds, &spec, &err);
  }
  if (comm_agree(c, &err) != 0) goto done;
  if (trainer_create(&t, cfg, c, ds, &err) != 0) goto done;
  Model *model = trainer_model(t);
  const DataInfo *info = data_info(trainer_data(t));
  int64_t B = cfg->batch == 0 || cfg->batch > info->n[SPLIT_TRAIN] ? info->n[SPLIT_TRAIN] : cfg->batch;
  int64_t lo, hi;
  mt_even_split(B, c->rank, c->size, &lo, &hi);
  const int local = (int)(hi - lo), micro = model->max_batch;

  /* The one-rank reference, on rank 0 only. */
  const int with_ref = c->size > 1 && bc.scaling != SCALING_OFF;
  int64_t ref_batch = bc.scaling == SCALING_WEAK ? (B + c->size - 1) / c->size : B;
  if (with_ref) {
    MPI_Comm_split(c->comm, c->rank == 0 ? 0 : MPI_UNDEFINED, 0, &solo_comm);
    if (c->rank == 0) {
      Config rc1 = *cfg;
      rc1.batch = ref_batch;
      /* The reference runs with the N-rank run's threads per rank (its own choice on a one-rank communicator
       * would take all of the node's cores), and OpenBLAS's count is the process's: put it back. */
      rc1.threads = trainer_threads(t)->n;
      if (comm_init(&solo, solo_comm, &err) == 0 && trainer_create(&ref, &rc1, &solo, trainer_data(t), &err) == 0)
        blas_set_threads(trainer_threads(t)->n);
    }
    if (comm_agree(c, &err) != 0) goto done;
  }

  /* Roofline: the GEMMs of the same chunks the rank runs in a step, on a shadow model of the same shape. */
  if (model_create(&shadow, &model->spec, micro, &err) == 0) {
    x = mt_alloc(sizeof(float) * (size_t)micro * (size_t)info->d, "benchmark inputs", &err);
    dl = mt_alloc(sizeof(float) * (size_t)micro * (size_t)info->n_classes, "benchmark gradients", &err);
  }
  if (comm_agree(c, &err) != 0) goto done;
  memcpy(shadow.params, model->params, sizeof(float) * model->n_params);
  for (size_t i = 0; i < (size_t)micro * (size_t)info->d; i++) x[i] = (float)(i % 7) * 0.1f;
  for (size_t i = 0; i < (size_t)micro * (size_t)info->n_classes; i++) dl[i] = (float)(i % 5) * 0.01f - 0.02f;

  /* Shared machines drift by tens of percent over seconds, so the roofline, the N-rank steps and the one-rank
   * steps are measured in alternating rounds, and each ratio reported is the median of the rounds' ratios. */
  double gemm_flops = 0, gemm_total = 0, train_s = 0, ref_s = 0, frac[ROUNDS], speedup[ROUNDS];
  for (int c0 = 0; c0 < local; c0 += micro) gemm_flops += model_gemm_flops(model, local - c0 < micro ? local - c0 : micro);
  for (int i = 0; i < bc.warmup && err.failed == 0; i++) trainer_step(t, NULL, &err);
  if (ref)
    for (int i = 0; i < bc.warmup && err.failed == 0; i++) trainer_step(ref, NULL, &err);
  if (with_ref) wait_for_rank0(c);
  trainer_reset_timers(t);
  for (int r = 0; r < ROUNDS && err.failed == 0; r++) {
    double gemm_s = 0;
    for (int c0 = 0; c0 < local; c0 += micro) gemm_s += time_gemms(&shadow, x, dl, local - c0 < micro ? local - c0 : micro);
    int steps = bc.steps / ROUNDS + (r < bc.steps % ROUNDS);
    double dt = timed_steps(c, t, steps, &err);
    train_s += dt;
    gemm_total += gemm_s;
    frac[r] = steps > 0 ? gemm_s * steps / dt : 0;
    speedup[r] = 0;
    if (with_ref) {
      if (ref) {
        double dr = timed_steps(&solo, ref, steps, &err);
        ref_s += dr;
        speedup[r] = ((double)B / dt) / ((double)ref_batch / dr);
      }
      wait_for_rank0(c);
    }
  }
  if (err.failed) goto done; /* a step's error is already agreed (reduced values or comm_agree inside the step) */

  /* The gradient reduction alone, by the trainer's schedule (buckets, sharding), against one bare MPI_Allreduce
   * of a buffer of the same size, alternating, median of each. Bus bandwidth = 2(N-1)/N · bytes / time, the
   * convention of NCCL's and OSU's benchmarks: what each link carries in a ring allreduce. */
  enum { REPS = 21 };
  double red[REPS], bare[REPS];
  const size_t nred = model->n_params + 4;
  float *scratch = c->size > 1 ? calloc(nred, sizeof(float)) : NULL;
  for (int i = 0; c->size > 1 && i < REPS; i++) {
    red[i] = trainer_bench_reduction(t);
    MPI_Barrier(c->comm);
    double t0 = MPI_Wtime();
    if (scratch) MPI_Allreduce(MPI_IN_PLACE, scratch, (int)nred, MPI_FLOAT, MPI_SUM, c->comm);
    bare[i] = MPI_Wtime() - t0;
  }
  free(scratch);
  double red_ms = 0, bare_ms = 0, red_bw = 0, bare_bw = 0;
  if (c->size > 1) {
    sort_small(red, REPS);
    sort_small(bare, REPS);
    const double bytes = (double)nred * sizeof(float), factor = 2.0 * (c->size - 1) / c->size;
    red_ms = red[REPS / 2] * 1e3;
    bare_ms = bare[REPS / 2] * 1e3;
    red_bw = factor * bytes / red[REPS / 2] / 1e9;
    bare_bw = factor * bytes / bare[REPS / 2] / 1e9;
  }
  /* Memory: the peak resident set, against what the model itself needs. */
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double rss_mb = (double)ru.ru_maxrss / 1024.0, max_rss = rss_mb;
  MPI_Allreduce(MPI_IN_PLACE, &max_rss, 1, MPI_DOUBLE, MPI_MAX, c->comm);
  size_t opt_bytes = 0, model_bytes = trainer_model_bytes(t, &opt_bytes);

  const StepTimes *tm = trainer_times(t);
  /* Per-rank figures, averaged over ranks (they differ by at most one row of work). */
  double v[7] = {gemm_flops * ROUNDS / gemm_total, gemm_flops * bc.steps / train_s, tm->data, tm->forward,
                 tm->backward, tm->reduce, tm->update};
  MPI_Allreduce(MPI_IN_PLACE, v, 7, MPI_DOUBLE, MPI_SUM, c->comm);
  MPI_Allreduce(MPI_IN_PLACE, frac, ROUNDS, MPI_DOUBLE, MPI_SUM, c->comm);
  for (int i = 0; i < 7; i++) v[i] /= c->size;
  for (int r = 0; r < ROUNDS; r++) frac[r] /= c->size;
  sort_small(frac, ROUNDS);
  sort_small(speedup, ROUNDS);
  double roof = v[0], achieved = v[1];
  double samples_per_s = (double)B * bc.steps / train_s, step_ms = train_s / bc.steps * 1e3;
  double ref_sps = ref_s > 0 ? (double)ref_batch * bc.steps / ref_s : 0;
  double ms[5];
  for (int i = 0; i < 5; i++) ms[i] = v[2 + i] / bc.steps * 1e3;

  if (c->rank == 0) {
    char arch[256], blas[512];
    model_arch(cfg, info, arch, sizeof arch);
    blas_describe(blas, sizeof blas);
    const char *scaling = with_ref ? scaling_choices[bc.scaling] : "off";
    if (bc.json) {
      printf("{\"ranks\": %d, \"threads\": %d, \"model\": \"%s\", \"params\": %zu, \"optimizer\": \"%s\", "
             "\"batch\": %lld, \"rows_per_rank\": %d, \"micro_batch\": %d, \"steps\": %d, \"step_ms\": %.4f, "
             "\"samples_per_s\": %.1f, \"gflops_per_rank\": %.2f, \"sgemm_gflops_per_rank\": %.2f, "
             "\"fraction_of_sgemm\": %.4f, \"ms_data\": %.4f, \"ms_forward\": %.4f, \"ms_backward\": %.4f, "
             "\"ms_allreduce\": %.4f, \"ms_update\": %.4f, \"scaling\": \"%s\", \"reference_batch\": %lld, "
             "\"reference_samples_per_s\": %.1f, \"speedup_vs_1_rank\": %.4f, \"buckets\": %d, \"sharded\": %d, "
             "\"grad_reduce_ms\": %.4f, \"bare_allreduce_ms\": %.4f, \"grad_busbw_gbs\": %.3f, "
             "\"bare_busbw_gbs\": %.3f, \"peak_rss_mb\": %.1f, \"model_mb\": %.2f, \"optimizer_mb\": %.2f, "
             "\"blas_core\": \"%s\"}\n",
             c->size, blas_get_threads(), arch, model->n_params, optim_name((OptKind)cfg->optimizer), (long long)B,
             local, micro, bc.steps, step_ms, samples_per_s, achieved / 1e9, roof / 1e9, frac[ROUNDS / 2], ms[0],
             ms[1], ms[2], ms[3], ms[4], scaling, (long long)(with_ref ? ref_batch : 0), ref_sps,
             with_ref ? speedup[ROUNDS / 2] : 1.0, trainer_buckets(t), cfg->shard_optimizer && c->size > 1, red_ms,
             bare_ms, red_bw, bare_bw, max_rss, model_bytes / 1048576.0, opt_bytes / 1048576.0,
             openblas_get_corename());
    } else {
      printf("mpitrain bench: model %s (%zu parameters), %s, %d rank%s x %d thread%s (%s)\n", arch,
             model->n_params, optim_name((OptKind)cfg->optimizer), c->size, c->size == 1 ? "" : "s",
             blas_get_threads(), blas_get_threads() == 1 ? "" : "s", trainer_threads(t)->source);
      printf("blas: %s\n", blas);
      printf("global batch %lld (%d rows on rank 0, micro-batch %d), %d timed steps after %d warm-up\n",
             (long long)B, local, micro, bc.steps, bc.warmup);
      printf("  step time          %9.3f ms\n", step_ms);
      printf("  samples/s          %9.0f\n", samples_per_s);
      printf("  GEMM GFLOP/s/rank  %9.2f  (sgemm on the same shapes: %.2f)\n", achieved / 1e9, roof / 1e9);
      printf("  of sgemm roofline  %9.1f %%  (median of %d alternating rounds: %.1f .. %.1f %%)\n",
             100 * frac[ROUNDS / 2], ROUNDS, 100 * frac[0], 100 * frac[ROUNDS - 1]);
      printf("  time per step: data %.3f ms, forward %.3f ms, backward %.3f ms, allreduce %.3f ms, update %.3f ms\n",
             ms[0], ms[1], ms[2], ms[3], ms[4]);
      if (c->size > 1)
        printf("  gradient reduction %9.3f ms  (%d bucket%s%s; bus bandwidth %.2f GB/s = %.0f %% of a bare "
               "MPI_Allreduce of the same %.1f MB: %.3f ms, %.2f GB/s)\n",
               red_ms, trainer_buckets(t), trainer_buckets(t) == 1 ? "" : "s",
               cfg->shard_optimizer ? ", reduce-scatter + all-gather" : "", red_bw, 100 * red_bw / bare_bw,
               nred * 4 / 1048576.0, bare_ms, bare_bw);
      printf("  memory per rank    %9.1f MB peak resident (largest rank); model %.1f MB of which optimiser state "
             "%.1f MB\n",
             max_rss, model_bytes / 1048576.0, opt_bytes / 1048576.0);
      if (with_ref)
        printf("  vs rank 0 alone   %9.2fx  (%s scaling: batch %lld on 1 rank, %.0f samples/s; rounds %.2f .. %.2f)\n",
               speedup[ROUNDS / 2], scaling, (long long)ref_batch, ref_sps, speedup[0], speedup[ROUNDS - 1]);
    }
    fflush(stdout);
  }
  ret = 0;
done:
  if (err.failed) comm_report(c, &err);
  mt_free(dl);
  mt_free(x);
  model_free(&shadow);
  trainer_free(ref);
  if (solo_comm != MPI_COMM_NULL) {
    comm_free(&solo);
    MPI_Comm_free(&solo_comm);
  }
  trainer_free(t);
  if (ds) data_close(ds);
  return ret;
}
