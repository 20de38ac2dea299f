/* evaluate.c — mean loss and accuracy over a split or the validation rows, in the default and the deterministic
 * mode. */
#include "trainer_impl.h"

#include <math.h>

#include "mpitrain/det.h"
#include "mpitrain/util.h"

/* The evaluation in deterministic mode: the rows in fixed groups (det.h) — whole groups per rank, one GEMM per
 * group, each group's loss sum rounded to 2^-FIXED_LOSS_BITS and added as an integer — so the result has the same
 * bits on any number of ranks (early stopping then decides the same way). */
int mt_evaluate_det(Trainer *t, Split s, const int64_t *rows, int64_t n, double *loss, double *acc, MtError *err) {
  Model *m = &t->model;
  const int C = t->info->n_classes;
  /* Groups of --det-group rows, or fewer when the model holds fewer (batch < --det-group): the same on any N. */
  const int G = t->cfg.det_group < t->micro ? t->cfg.det_group : t->micro, chunk = t->micro / G * G;
  int64_t g0, g1;
  mt_even_split((n + G - 1) / G, t->comm->rank, t->comm->size, &g0, &g1);
  const int64_t lo = g0 * G < n ? g0 * G : n, hi = g1 * G < n ? g1 * G : n;
  MtError local = {0};
  int64_t v[4] = {0, 0, 0, 0}; /* loss in fixed point, correct, failed, non-finite */
  const ModelContext ctx = {.train = 0, .group = G};
  for (int64_t r = lo; r < hi; r += chunk) {
    int cn = (int)(hi - r < chunk ? hi - r : chunk);
    if ((rows ? mt_data_read(t->ds, s, rows + r, cn, t->x, t->y, &local)
              : mt_data_read_range(t->ds, s, r, cn, t->x, t->y, &local)) != 0)
      break;
    const float *logits = mt_model_forward_ctx(m, t->x, cn, &ctx);
    for (int j = 0; j < cn; j += G) {
      LossSums gs = {0, 0};
      mt_loss_softmax_xent(logits + (size_t)j * C, t->y + j, cn - j < G ? cn - j : G, C, 0.0f, NULL, &gs);
      int64_t q;
      if (mt_fixed_from_loss(gs.loss, 0x1p62 / (double)(n / G + 1), &q) == 0)
        v[0] += q;
      else
        v[3] = 1;
      v[1] += (int64_t)gs.correct;
    }
  }
  v[2] = local.failed;
  if (t->comm->size > 1) mt_comm_allreduce(t->comm, v, 4, MPI_INT64_T, MPI_SUM, "evaluation");
  if (v[2] > 0) {
    *err = local;
    mt_comm_agree(t->comm, err);
    return -1;
  }
  *loss = v[3] > 0 ? NAN : n > 0 ? mt_fixed_to_loss(v[0]) / (double)n : 0;
  *acc = n > 0 ? (double)v[1] / (double)n : 0;
  return 0;
}

/* The evaluation in the default mode: each rank takes a contiguous part of the rows; the sums are reduced. */
int mt_evaluate_default(Trainer *t, Split s, const int64_t *rows, int64_t n, double *loss, double *acc, MtError *err) {
  Model *m = &t->model;
  int64_t lo, hi;
  mt_even_split(n, t->comm->rank, t->comm->size, &lo, &hi);
  LossSums sums = {0, 0};
  MtError local = {0};
  for (int64_t r = lo; r < hi; r += t->micro) {
    int cn = (int)(hi - r < t->micro ? hi - r : t->micro);
    if ((rows ? mt_data_read(t->ds, s, rows + r, cn, t->x, t->y, &local)
              : mt_data_read_range(t->ds, s, r, cn, t->x, t->y, &local)) != 0)
      break;
    const float *logits = mt_model_forward(m, t->x, cn);
    mt_loss_softmax_xent(logits, t->y, cn, t->info->n_classes, 0.0f, NULL, &sums);
  }
  double v[3] = {sums.loss, sums.correct, local.failed ? 1 : 0};
  mt_comm_allreduce_sum_double(t->comm, v, 3);
  if (v[2] > 0) {
    *err = local;
    mt_comm_agree(t->comm, err);
    return -1;
  }
  *loss = n > 0 ? v[0] / (double)n : 0;
  *acc = n > 0 ? v[1] / (double)n : 0;
  return 0;
}

/* Mean loss and accuracy over n rows of split s: rows [0, n) when rows is NULL, else the sorted list rows [n]. */
static int evaluate_rows(Trainer *t, Split s, const int64_t *rows, int64_t n, double *loss, double *acc,
                         MtError *err) {
  mt_comm_phase(t->comm, "eval", t->step);
  return t->engine->evaluate(t, s, rows, n, loss, acc, err);
}

int mt_trainer_evaluate(Trainer *t, Split s, double *loss, double *acc, MtError *err) {
  return evaluate_rows(t, s, NULL, t->info->n[s], loss, acc, err);
}

int mt_trainer_evaluate_validation(Trainer *t, double *loss, double *acc, MtError *err) {
  if (t->n_val == 0) return mt_fail(err, "no validation split (--val-fraction)");
  return evaluate_rows(t, SPLIT_TRAIN, t->val_rows, t->n_val, loss, acc, err);
}
