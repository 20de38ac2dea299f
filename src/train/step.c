/* step.c — one optimisation step (trainer_step) and its bookkeeping.
 *
 * The only collectives in a step are the gradient allreduce (which also carries the loss and accuracy sums and an
 * error count, so a rank whose read failed is known to all ranks in the same call) and, when asked for, the replica
 * check. */
#include "trainer_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mpitrain/optim.h"
#include "mpitrain/replicate.h"
#include "mpitrain/rng.h"

void trainer_advance_epoch(Trainer *t) {
  t->epoch++;
  t->epoch_pos = 0;
  t->epoch_loss = t->epoch_correct = 0;
  t->epoch_samples = t->session_samples = 0;
  t->t_epoch = now();
}

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

int trainer_step(Trainer *t, StepStats *st, MtError *err) {
  Model *m = &t->model;
  if (t->epoch_pos >= t->n_train) trainer_advance_epoch(t);
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
    engine_det_step(t, first, Bt, &local, tm);
  else
    engine_default_step(t, first, Bt, &local, tm);
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
    if (shard) engine_det_take_own(t);
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
