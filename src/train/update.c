/* update.c — the update path: L2, the gradient norm, clipping, weight decay and the optimiser on the list of slices
 * this rank updates — the whole model (one slice per tensor), or with --shard-optimizer (ZeRO-1) its own parts of
 * each tensor. Sharding changes the list and adds one reduction of the norm (and the gathering of the parameters
 * the optimiser updated), nothing else. */
#include "trainer_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpitrain/optim.h"

int mt_update_plan(Trainer *t, MtError *err) {
  const Model *m = &t->model;
  t->norm_sums = calloc((size_t)t->n_tensors + 1, sizeof(double));
  t->whole.s = calloc((size_t)t->n_tensors + 1, sizeof *t->whole.s);
  if (t->norm_sums == NULL || t->whole.s == NULL) return mt_fail(err, "out of memory");
  for (int i = 0; i < t->n_tensors; i++) {
    const size_t off = t->tensors[i].offset;
    t->whole.s[t->whole.n++] = (UpdateSlice){m->grads + off, off, off, t->tensors[i].count, i};
  }
  t->own = t->whole;
  if (t->gs.shard) {
    /* Each bucket's part this rank owns, cut at the tensors' boundaries: its moments and gradients sit in gs.own. */
    const GradSync *g = &t->gs;
    int cap = (g->n_buckets + 1) * (t->n_tensors + 1);
    t->own.n = 0;
    t->own.s = calloc((size_t)cap, sizeof *t->own.s);
    if (t->own.s == NULL) return mt_fail(err, "out of memory");
    for (int b = 0; b < g->n_buckets; b++) {
      size_t o = g->own_off[b], cnt = (size_t)g->counts[b * t->comm->size + t->comm->rank];
      for (int i = 0; i < t->n_tensors; i++) {
        size_t lo = t->tensors[i].offset, hi = lo + t->tensors[i].count;
        if (lo < o) lo = o;
        if (hi > o + cnt) hi = o + cnt;
        const size_t goff = g->own_moff[b] + (lo - o);
        if (lo < hi && t->own.n < cap) t->own.s[t->own.n++] = (UpdateSlice){t->gs.own + goff, lo, goff, hi - lo, i};
      }
    }
  }
  t->held_parts = t->gs.shard && !t->engine->holds_whole;
  t->held = t->held_parts ? &t->own : &t->whole;
  return 0;
}

void mt_update_free(Trainer *t) {
  if (t->own.s != t->whole.s) free(t->own.s);
  free(t->whole.s);
  free(t->norm_sums);
}

double mt_update_l2(Trainer *t, int64_t Bt) {
  const float *w = t->model.params;
  /* The loss term on the (replicated) weights, every rank the same; the gradient term on the slices it holds. */
  for (int i = 0; i < t->held->n; i++) {
    const UpdateSlice *sl = &t->held->s[i];
    if (t->tensors[sl->tensor].decay) mt_optim_l2_grad(sl->g, w + sl->poff, sl->n, t->cfg.l2, Bt);
  }
  return mt_optim_l2_loss(t->decay, t->n_decay, w, t->cfg.l2, Bt);
}

double mt_update_grad_sumsq(Trainer *t) {
  double sq = 0;
  for (int i = 0; i < t->held->n; i++) sq = mt_optim_sumsq_add(sq, t->held->s[i].g, t->held->s[i].n);
  if (t->held_parts) mt_comm_allreduce_sum_double(t->comm, &sq, 1);
  return sq;
}

/* --log-norms: each parameter tensor's weight and gradient norms, for the steps the metrics file records. */
static void log_norms(Trainer *t, const StepStats *st) {
  if (!t->cfg.log_norms) return;
  const Model *m = &t->model;
  /* Sharded, each rank holds parts of the gradient: sum the squares of its parts per tensor, reduce, then rank 0
   * logs. Every step (not only logged ones), so that every rank takes part in the reduction. */
  if (!t->gs.shard && !mt_log_step_due(t->log, st)) return;
  memset(t->norm_sums, 0, sizeof(double) * (size_t)t->n_tensors);
  for (int i = 0; i < t->own.n; i++) t->norm_sums[t->own.s[i].tensor] += mt_optim_sumsq(t->own.s[i].g, t->own.s[i].n);
  if (t->gs.shard) mt_comm_allreduce_sum_double(t->comm, t->norm_sums, (size_t)t->n_tensors);
  if (!mt_log_step_due(t->log, st)) return;
  for (int i = 0; i < t->n_tensors; i++)
    mt_log_layer(t->log, st, t->tensors[i].name, sqrt(mt_optim_sumsq(m->params + t->tensors[i].offset, t->tensors[i].count)),
              sqrt(t->norm_sums[i]));
}

/* ZeRO-1 in bf16: the parts of each bucket the other ranks updated arrived in fp32: their bf16 copy, one pass over
 * them (this rank's own part got its copy in the optimiser's pass). Converting is cheaper than gathering the bf16
 * copy as well (README, bf16 mixed precision). */
static void stage_gathered(const GradSync *g, const float *params, uint16_t *wb) {
  for (int b = 0; b < g->n_buckets; b++) {
    const size_t lo = g->own_off[b], hi = lo + (size_t)g->counts[b * g->c->size + g->c->rank];
    mt_bf16_convert(params + g->start[b], wb + g->start[b], lo - g->start[b]);
    mt_bf16_convert(params + hi, wb + hi, g->end[b] - hi);
  }
}

void mt_update_apply(Trainer *t, StepStats *s, int logged, double lr, double sq) {
  Model *m = &t->model;
  const UpdateSlices *own = &t->own;
  /* The engine left the whole sum on every rank: a sharded optimiser takes its parts of it. */
  if (t->gs.shard && !t->held_parts)
    for (int i = 0; i < own->n; i++) memcpy(own->s[i].g, m->grads + own->s[i].poff, sizeof(float) * own->s[i].n);
  log_norms(t, s);
  /* The global gradient norm: when clipping needs it, or for the metrics log. Sharded, decided by the configuration
   * alone, so that every rank makes the reduction it may need. */
  if (t->cfg.clip_norm > 0 || (t->gs.shard ? t->cfg.log_norms : logged && mt_log_step_due(t->log, s))) {
    s->grad_norm = sqrt(sq >= 0 ? sq : mt_update_grad_sumsq(t));
    const float scale = mt_optim_clip_scale(s->grad_norm, t->cfg.clip_norm);
    for (int i = 0; scale != 1.0f && i < own->n; i++) mt_optim_scale(own->s[i].g, own->s[i].n, scale);
  }
  /* Decoupled: shrink the weights directly, before and apart from the optimiser's own step (AdamW). */
  for (int i = 0; i < own->n; i++)
    if (t->tensors[own->s[i].tensor].decay)
      mt_optim_weight_decay(&(ParamRange){own->s[i].poff, own->s[i].n}, 1, m->params, lr, t->cfg.weight_decay);
  /* bf16: the optimiser writes the GEMMs' bf16 copy of what it updates in the same pass (all slices, biases too:
   * simpler than cutting out W, and they are a tiny part of the parameters). */
  uint16_t *wb = mt_gemm_weights_bf16(m->gemm);
  mt_optim_begin(&t->opt, (float)lr);
  for (int i = 0; i < own->n; i++)
    mt_optim_update(&t->opt, m->params + own->s[i].poff, own->s[i].g, own->s[i].moff, own->s[i].n,
                    wb ? wb + own->s[i].poff : NULL);
  if (t->gs.shard) {
    mt_gradsync_allgather(&t->gs, m->params);
    if (wb) stage_gathered(&t->gs, m->params, wb);
  }
}
