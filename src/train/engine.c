/* engine.c — the forward and backward passes of a step and the gradient reduction: the default engine (contiguous
 * slices, buckets reduced while backward goes on) and the deterministic one (det.h). */
#include "trainer_impl.h"

#include <stdlib.h>
#include <string.h>

#include "mpitrain/det.h"
#include "mpitrain/sim.h"
#include "mpitrain/util.h"

/* The model's backward hook: gradients [offset, n) are final; start reducing the buckets inside. */
static void on_grads_ready(void *arg, size_t offset) { mt_gradsync_ready((GradSync *)arg, offset); }

/* The model's reduction hook: batch-norm statistics summed over every rank of the job. */
static void reduce_over_ranks(void *arg, double *buf, size_t n) { mt_comm_allreduce_sum_double((Comm *)arg, buf, n); }

/* ==== --deterministic (det.h) ==== */

static void det_grads_cb(void *arg, const float *grads, size_t off, size_t n) {
  mt_det_add(&((Trainer *)arg)->dt, grads, off, n);
}

static void det_reduce_cb(void *arg, const double *parts, size_t len, double *out) {
  Trainer *t = arg;
  mt_det_reduce_groups(&t->dt, t->comm, parts, len, t->det_groups, t->det_scratch, out);
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
    qsort(t->rows + i, (size_t)(t->n_rows - i < G ? t->n_rows - i : G), sizeof(int64_t), mt_trainer_cmp_i64);
  const float grad_scale = 1.0f / (float)Bt;
  ModelContext ctx = {.train = 1, .seed = (uint64_t)t->cfg.seed, .step = t->step, .batch_rows = Bt,
                      .group = (int)G, .group_grads = det_grads_cb, .reduce_groups = det_reduce_cb,
                      .group_arg = t, .group_parts = t->det_parts};
  double out[DET_TAIL];
  for (;;) {
    mt_det_begin(&t->dt, ng);
    for (int c0 = 0; c0 == 0 || c0 < t->n_rows; c0 += t->micro) {
      int cn = t->n_rows - c0 < t->micro ? t->n_rows - c0 : t->micro;
      double a = now();
      for (int j = 0; j < cn && !local->failed; j += (int)G)
        mt_data_read(t->ds, SPLIT_TRAIN, t->rows + c0 + j, cn - j < G ? cn - j : (int)G, t->x + (size_t)j * D,
                  t->y + j, local);
      if (local->failed) cn = 0; /* still through the passes: batch normalisation's collectives */
      double b = now();
      mt_comm_phase(t->comm, "forward", t->step + 1);
      ctx.sample_ids = t->rows + c0;
      const float *logits = mt_model_forward_ctx(m, t->x, cn, &ctx);
      for (int j = 0; j < cn; j += (int)G) {
        LossSums gs = {0, 0};
        mt_loss_softmax_xent(logits + (size_t)j * C, t->y + j, cn - j < G ? cn - j : (int)G, C, grad_scale,
                          t->dlogits + (size_t)j * C, &gs);
        mt_det_add_loss(&t->dt, gs.loss, (int64_t)gs.correct);
      }
      double c = now();
      mt_comm_phase(t->comm, "backward", t->step + 1);
      mt_model_backward(m, t->x, t->dlogits, cn, 0);
      double e = now();
      tm[0] += b - a;
      tm[1] += c - b;
      tm[2] += e - c;
      if (local->failed) break;
    }
    double r0 = now();
    mt_comm_phase(t->comm, "gradient reduction", t->step + 1);
    int again = mt_det_finish(&t->dt, t->comm, m->grads, local->failed, mt_comm_stop_signal() != 0, out);
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
  qsort(t->rows, (size_t)t->n_rows, sizeof(int64_t), mt_trainer_cmp_i64);
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
  const int simulated = mt_sim_step_begin(m, t->n_rows, t->micro);
  if (simulated) tm[2] += now() - s0;
  /* At least one chunk, even with no rows: with batch normalisation every rank must make the same reductions.
   * A rank whose read fails carries on with zero rows for the same reason, and reports after the reduction. */
  for (int c0 = 0; !simulated && (c0 == 0 || c0 < t->n_rows); c0 += t->micro) {
    int cn = t->n_rows - c0 < t->micro ? t->n_rows - c0 : t->micro;
    double a = now();
    if (!local->failed && mt_data_read(t->ds, SPLIT_TRAIN, t->rows + c0, cn, t->x, t->y, local) != 0) cn = 0;
    if (local->failed) cn = 0;
    double b = now();
    mt_comm_phase(t->comm, "forward", t->step + 1);
    ctx.sample_ids = t->rows + c0;
    const float *logits = mt_model_forward_ctx(m, t->x, cn, &ctx);
    mt_loss_softmax_xent(logits, t->y, cn, C, grad_scale, t->dlogits, &sums);
    const int last = c0 + t->micro >= t->n_rows || local->failed;
    if (last) {
      /* The sums and flags are final before backward: they ride in the first bucket, which backward finishes
       * first; from then on each finished bucket is reduced while backward continues. */
      tail[TAIL_LOSS] = (float)sums.loss;
      tail[TAIL_CORRECT] = (float)sums.correct;
      tail[TAIL_FAILED] = local->failed ? 1.0f : 0.0f;
      tail[TAIL_STOP] = mt_comm_stop_signal() != 0 ? 1.0f : 0.0f;
      m->ctx.grad_ready = on_grads_ready;
      m->ctx.grad_ready_arg = &t->gs;
      m->ctx.dw_block = t->dw_block;
    }
    double c = now();
    mt_comm_phase(t->comm, "backward", t->step + 1);
    mt_model_backward(m, t->x, t->dlogits, cn, c0 > 0);
    double e = now();
    tm[0] += b - a;
    tm[1] += c - b;
    tm[2] += e - c;
    if (last) break;
  }
  mt_sim_step_end(simulated); /* SMPI hook (sim.h) */
  if (simulated) { /* no chunk ran: the sums are zero, the flags still count */
    tail[TAIL_LOSS] = tail[TAIL_CORRECT] = 0.0f;
    tail[TAIL_FAILED] = 0.0f;
    tail[TAIL_STOP] = mt_comm_stop_signal() != 0 ? 1.0f : 0.0f;
  }
  const double r0 = now();
  mt_comm_phase(t->comm, "gradient reduction", t->step + 1);
  mt_gradsync_finish(&t->gs);
  tm[3] += now() - r0;
}

const StepEngine mt_engine_default = {"default", default_step, 0, mt_evaluate_default};
const StepEngine mt_engine_det = {"deterministic", det_step, 1, mt_evaluate_det};
