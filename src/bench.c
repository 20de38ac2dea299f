/* bench.c — `mpitrain bench`: how close training runs to the machine's own sgemm, measured in the same run.
 *
 * First every rank times cblas_sgemm on exactly the GEMM shapes one training step of the model issues (forward,
 * weight gradient, input gradient, at the rank's micro-batch size): that is the roofline a step could reach if
 * everything but the GEMMs were free. Then it trains for a fixed number of steps on in-memory synthetic data (or
 * a dataset file) and reports samples/s, GFLOP/s actually achieved in the GEMMs' flop count, its fraction of the
 * roofline, and where a step's time goes. All ranks measure at once, so the roofline sees the same contention for
 * cores and memory bandwidth as training does. */
#include "mpitrain/bench.h"

#include <cblas.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpitrain/blas.h"
#include "mpitrain/config.h"
#include "mpitrain/optim.h"
#include "mpitrain/train.h"

typedef struct BenchConfig {
  Config train; /* first member: the train options' offsets apply unchanged */
  int steps, warmup, json, synthetic, features, classes;
  int64_t samples;
} BenchConfig;

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
    {.name = "classes", .type = OT_INT, .offset = offsetof(BenchConfig, classes), .def = "10", .metavar = "C",
     .help = "synthetic classes", .min = 2, .max = 1 << 20, .flags = OPT_RANGED},
    {.name = NULL},
};

/* The train table followed by the bench table, built once. */
static OptionSpec *bench_table(void) {
  static OptionSpec table[128];
  if (table[0].name != NULL) return table;
  size_t n = 0;
  for (const OptionSpec *o = config_train_options; o->name; o++) table[n++] = *o;
  for (const OptionSpec *o = bench_options; o->name; o++) table[n++] = *o;
  table[n].name = NULL;
  return table;
}

/* Seconds for the GEMMs of one forward + backward pass over m rows: the mean over a 0.1 s window, the same kind
 * of figure as a training step's mean time (a best-of would flatter the roofline on a noisy machine). The shadow
 * model has its own parameters, gradients and activations, laid out like the trained one, so the roofline sees the
 * same operand sizes and cache footprint as a training step — not a single weight matrix kept hot in cache. */
static double time_gemms(Model *shadow, const float *x, const float *dlogits, int m) {
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

int bench_main(Comm *c, int argc, char **argv) {
  BenchConfig bc;
  MtError err = {0};
  OptsResult res;
  const OptionSpec *table = bench_table();
  int rc = opts_parse(table, &bc, argc, argv, 1, 1, &res, &err);
  if (rc == 0 && res.n_positional > 0) mt_fail(&err, "unexpected argument '%s'", res.positional[0]);
  if (comm_agree(c, &err) != 0) {
    comm_report(c, &err);
    return 2;
  }
  if (res.help) {
    if (c->rank == 0)
      opts_print_help(stdout, "mpirun -np N mpitrain bench [options]",
                      "Times sgemm on the model's GEMM shapes, then training steps; reports samples/s and the\n"
                      "fraction of that sgemm roofline reached. Accepts every `mpitrain train` option.",
                      table);
    return 0;
  }
  Config *cfg = &bc.train;
  cfg->progress = PROGRESS_OFF;
  cfg->eval = 0;
  cfg->log[0] = '\0';
  cfg->epochs = 1 << 30; /* the step count bounds the run */

  Dataset *ds = NULL;
  if (bc.synthetic) {
    SynthSpec spec = {.n_train = bc.samples, .n_test = 0, .d = bc.features, .n_classes = bc.classes,
                      .seed = (uint64_t)cfg->seed, .noise = 1.0f};
    data_open_synthetic(&ds, &spec, &err);
  }
  if (comm_agree(c, &err) != 0) {
    comm_report(c, &err);
    return 1;
  }
  Trainer *t = NULL;
  if (trainer_create(&t, cfg, c, ds, &err) != 0) {
    comm_report(c, &err);
    data_close(ds);
    return 1;
  }
  Model *model = trainer_model(t);
  const DataInfo *info = data_info(trainer_data(t));
  int64_t B = cfg->batch == 0 || cfg->batch > info->n[SPLIT_TRAIN] ? info->n[SPLIT_TRAIN] : cfg->batch;
  int64_t lo, hi;
  trainer_rank_slice(B, c->rank, c->size, &lo, &hi);
  int local = (int)(hi - lo);
  int micro = model->max_batch;

  /* Roofline: the GEMMs of the same chunks the rank runs in a step, on a shadow model of the same shape. */
  Model shadow;
  float *x = NULL, *dl = NULL;
  if (model_create(&shadow, &model->spec, micro, &err) == 0) {
    x = mt_alloc(sizeof(float) * (size_t)micro * (size_t)info->d, "benchmark inputs", &err);
    dl = mt_alloc(sizeof(float) * (size_t)micro * (size_t)info->n_classes, "benchmark gradients", &err);
  }
  if (comm_agree(c, &err) != 0) {
    comm_report(c, &err);
    trainer_free(t);
    data_close(ds);
    return 1;
  }
  memcpy(shadow.params, model->params, sizeof(float) * model->n_params);
  for (size_t i = 0; i < (size_t)micro * (size_t)info->d; i++) x[i] = (float)(i % 7) * 0.1f;
  for (size_t i = 0; i < (size_t)micro * (size_t)info->n_classes; i++) dl[i] = (float)(i % 5) * 0.01f - 0.02f;
  /* Shared machines drift by tens of percent over seconds, so the roofline and the training steps are measured
   * in alternating rounds, and the fraction reported is the median of the rounds' ratios. */
  enum { ROUNDS = 5 };
  double gemm_flops = 0, gemm_total = 0, train_s = 0, frac[ROUNDS];
  for (int c0 = 0; c0 < local; c0 += micro) gemm_flops += model_gemm_flops(model, local - c0 < micro ? local - c0 : micro);
  for (int i = 0; i < bc.warmup && err.failed == 0; i++) trainer_step(t, NULL, &err);
  trainer_reset_timers(t);
  for (int r = 0; r < ROUNDS && err.failed == 0; r++) {
    double gemm_s = 0;
    for (int c0 = 0; c0 < local; c0 += micro) gemm_s += time_gemms(&shadow, x, dl, local - c0 < micro ? local - c0 : micro);
    int steps = bc.steps / ROUNDS + (r < bc.steps % ROUNDS);
    MPI_Barrier(c->comm);
    double t0 = MPI_Wtime();
    for (int i = 0; i < steps && err.failed == 0; i++) trainer_step(t, NULL, &err);
    MPI_Barrier(c->comm);
    double dt = MPI_Wtime() - t0;
    train_s += dt;
    gemm_total += gemm_s;
    frac[r] = steps > 0 ? gemm_s * steps / dt : 0;
  }
  mt_free(dl);
  mt_free(x);
  model_free(&shadow);
  if (err.failed) {
    comm_report(c, &err);
    trainer_free(t);
    data_close(ds);
    return 1;
  }
  MPI_Allreduce(MPI_IN_PLACE, frac, ROUNDS, MPI_DOUBLE, MPI_SUM, c->comm);
  for (int r = 0; r < ROUNDS; r++) frac[r] /= c->size;
  for (int i = 1; i < ROUNDS; i++) /* insertion sort: five numbers */
    for (int j = i; j > 0 && frac[j] < frac[j - 1]; j--) {
      double tmp = frac[j];
      frac[j] = frac[j - 1];
      frac[j - 1] = tmp;
    }
  double wall = train_s;
  const StepTimes *tm = trainer_times(t);
  /* Per-rank figures, averaged over ranks (they differ by at most one row of work). */
  double v[8] = {gemm_flops * ROUNDS / gemm_total, gemm_flops * bc.steps / wall, tm->data, tm->forward, tm->backward, tm->reduce,
                 tm->update, 0};
  MPI_Allreduce(MPI_IN_PLACE, v, 8, MPI_DOUBLE, MPI_SUM, c->comm);
  for (int i = 0; i < 8; i++) v[i] /= c->size;
  double roof = v[0], achieved = v[1];
  double samples_per_s = (double)B * bc.steps / wall, step_ms = wall / bc.steps * 1e3;
  double ms[5];
  for (int i = 0; i < 5; i++) ms[i] = v[2 + i] / bc.steps * 1e3;

  if (c->rank == 0) {
    char arch[256], blas[512];
    int p = snprintf(arch, sizeof arch, "%d", info->d);
    for (int i = 0; i < cfg->hidden.n && p < (int)sizeof arch; i++)
      p += snprintf(arch + p, sizeof arch - (size_t)p, "-%d", cfg->hidden.v[i]);
    if (p < (int)sizeof arch) snprintf(arch + p, sizeof arch - (size_t)p, "-%d", info->n_classes);
    blas_describe(blas, sizeof blas);
    if (bc.json) {
      printf("{\"ranks\": %d, \"threads\": %d, \"model\": \"%s\", \"params\": %zu, \"batch\": %lld, "
             "\"rows_per_rank\": %d, \"micro_batch\": %d, \"steps\": %d, \"step_ms\": %.4f, \"samples_per_s\": %.1f, "
             "\"gflops_per_rank\": %.2f, \"sgemm_gflops_per_rank\": %.2f, \"fraction_of_sgemm\": %.4f, "
             "\"ms_data\": %.4f, \"ms_forward\": %.4f, \"ms_backward\": %.4f, \"ms_allreduce\": %.4f, "
             "\"ms_update\": %.4f, \"blas_core\": \"%s\"}\n",
             c->size, blas_get_threads(), arch, model->n_params, (long long)B, local, micro, bc.steps, step_ms,
             samples_per_s, achieved / 1e9, roof / 1e9, frac[ROUNDS / 2], ms[0], ms[1], ms[2], ms[3], ms[4],
             openblas_get_corename());
    } else {
      printf("mpitrain bench: model %s (%zu parameters), %s, %d rank%s x %d thread%s\n", arch, model->n_params,
             optim_name((OptKind)cfg->optimizer), c->size, c->size == 1 ? "" : "s", blas_get_threads(),
             blas_get_threads() == 1 ? "" : "s");
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
    }
    fflush(stdout);
  }
  trainer_free(t);
  data_close(ds);
  return 0;
}
