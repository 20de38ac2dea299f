/* step.c — one optimisation step (mt_trainer_step) and its bookkeeping.
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

void mt_trainer_advance_epoch(Trainer *t) {
  t->epoch++;
  t->epoch_pos = 0;
  t->epoch_loss = t->epoch_correct = 0;
  t->epoch_samples = t->session_samples = 0;
  t->t_epoch = now();
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

/* The step's global batch: the next Bt rows of the epoch's order from position first (a new epoch, and its order,
 * once the last one is done); the batch-norm statistics saved in case the step is skipped or computed again. tm[0]:
 * the data phase's seconds so far, the other phases 0. */
static void step_batch(Trainer *t, int64_t *first, int64_t *Bt, double tm[4]) {
  Model *m = &t->model;
  if (t->epoch_pos >= t->n_train) mt_trainer_advance_epoch(t);
  mt_comm_phase(t->comm, "data", t->step + 1);
  fault_inject(t);
  double t0 = now();
  if (t->perm_epoch != t->epoch) {
    /* The same (seed, epoch) gives the same order on every rank and for every rank count. */
    mt_rng_permutation((uint64_t)t->cfg.seed, (uint64_t)t->epoch, t->perm, (size_t)t->n_train);
    t->perm_epoch = t->epoch;
  }
  *first = t->epoch_pos;
  *Bt = t->n_train - *first < t->batch ? t->n_train - *first : t->batch;
  if (t->state_snapshot) memcpy(t->state_snapshot, m->state, sizeof(float) * m->n_state);
  tm[0] = now() - t0;
  tm[1] = tm[2] = tm[3] = 0;
}

/* The non-finite policy on the step's reduced values: 0 to update, 1 to skip the update (--on-nonfinite skip), -1
 * to stop (err set). The same verdict on every rank: the loss is a reduced value, and skip mode also checks the
 * gradient's squared norm (*sq, kept for the update; reduced when each rank holds a part). */
static int step_nonfinite(Trainer *t, double loss, double *sq, MtError *err) {
  const int skip_mode = t->cfg.on_nonfinite == NONFINITE_SKIP;
  int bad_loss = !isfinite(loss), bad_grad = 0;
  if (skip_mode && !bad_loss) {
    *sq = mt_update_grad_sumsq(t);
    bad_grad = !isfinite(*sq);
  }
  if (!bad_loss && !bad_grad) {
    t->skipped_in_row = 0;
    return 0;
  }
  if (!skip_mode)
    return mt_fail(err, "the training loss became %s at step %lld (epoch %d); the run diverged. Try a smaller --lr "
                        "(now %g)%s, or --on-nonfinite skip",
                   isnan(loss) ? "NaN" : "infinite", (long long)t->step + 1, t->epoch + 1, (double)t->cfg.lr,
                   t->cfg.clip_norm > 0 ? "" : " or --clip-norm");
  t->skipped++;
  if (++t->skipped_in_row >= 100)
    return mt_fail(err, "%d steps in a row had a non-finite %s (the last at step %lld): the run has diverged for "
                        "good; restart from a checkpoint with a smaller --lr",
                   t->skipped_in_row, bad_loss ? "loss" : "gradient", (long long)t->step + 1);
  if (t->state_snapshot) memcpy(t->model.state, t->state_snapshot, sizeof(float) * t->model.n_state);
  mt_log_info(t->log, "step %lld: non-finite %s, update skipped (%lld so far)", (long long)t->step + 1,
           bad_loss ? "loss" : "gradient", (long long)t->skipped);
  return 1;
}

/* The statistics of the step about to be counted (a skipped one has no accuracy and no rate); the times are
 * stamped by step_account. */
static void step_stats(const Trainer *t, StepStats *s, int64_t first, int64_t Bt, double loss, double acc,
                       double lr) {
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
}

/* After the step, updated or skipped: the position, the stop flag, and for an update the phase times, the epoch's
 * sums and the replica check. r1: when the update phase began. */
static int step_account(Trainer *t, StepStats *s, int64_t Bt, const double tm[4], double r1, int updated,
                        MtError *err) {
  const float *tail = t->model.grads + t->model.n_params;
  const double u1 = now();
  t->step++;
  t->epoch_pos += Bt;
  if (tail[TAIL_STOP] > 0) t->stop_requested = 1;
  s->elapsed_s = t->elapsed_base + u1 - t->t_start;
  if (!updated) return 0;
  t->times.data += tm[0];
  t->times.forward += tm[1];
  t->times.backward += tm[2];
  t->times.reduce += tm[3];
  t->times.update += u1 - r1;
  t->times.steps++;
  t->epoch_loss += tail[TAIL_LOSS] + t->last_l2 * (double)Bt;
  t->epoch_correct += tail[TAIL_CORRECT];
  t->epoch_samples += Bt;
  t->session_samples += Bt;
  if (t->cfg.check_replicas > 0 && t->step % t->cfg.check_replicas == 0 &&
      !mt_comm_replicas_identical(t->comm, t->model.params, sizeof(float) * t->model.n_params))
    return mt_fail(err, "replica check failed after step %lld: the parameters differ between ranks (this is a bug "
                        "in mpitrain or a faulty node; please report it)",
                   (long long)t->step);
  double el = u1 - t->t_epoch;
  s->samples_per_s = el > 0 ? t->session_samples / el : 0;
  return 0;
}

/* README's step: batch → engine (forward, backward, reduction) → agreement on a failed read → non-finite policy →
 * update → bookkeeping. */
int mt_trainer_step(Trainer *t, StepStats *st, MtError *err) {
  const float *tail = t->model.grads + t->model.n_params;
  int64_t first, Bt;
  double tm[4]; /* data, forward, backward, reduction seconds */
  step_batch(t, &first, &Bt, tm);
  MtError local = {0};
  t->engine->run(t, first, Bt, &local, tm);
  mt_comm_phase(t->comm, "update", t->step + 1);
  const double r1 = now();
  if (tail[TAIL_FAILED] > 0) { /* every rank saw the count: all enter the agreement together */
    *err = local;
    mt_comm_agree(t->comm, err);
    return -1;
  }
  /* From here on every rank computes the same thing from the same reduced values. L2 after the sum over ranks, so
   * every rank adds the same λ/B·W. */
  t->last_l2 = mt_update_l2(t, Bt);
  const double loss = tail[TAIL_LOSS] / (double)Bt + t->last_l2, acc = tail[TAIL_CORRECT] / (double)Bt;
  double sq = -1; /* the gradient's squared norm, once known */
  const int skip = step_nonfinite(t, loss, &sq, err);
  if (skip < 0) return -1;
  const double lr = skip ? 0 : mt_lr_at(&t->sched, t->step + 1, t->steps_per_epoch);
  StepStats local_st, *s = st ? st : &local_st;
  step_stats(t, s, first, Bt, loss, skip ? 0 : acc, lr);
  if (!skip) mt_update_apply(t, s, st != NULL, lr, sq);
  return step_account(t, s, Bt, tm, r1, !skip, err);
}
