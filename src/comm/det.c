/* det.c — deterministic mode's bookkeeping and reductions: each tensor's fixed-point accumulator (the arithmetic
 * is fixed.h's), the integer sums over ranks, the retry on overflow, and group-ordered sums (det.h explains). */
#include "mpitrain/det.h"

#include <math.h>
#include <mpi.h>
#include <string.h>

/* The small collective: sums over the tail, maxima over the rest (both exact, so any order gives the same). */
static void sum_then_max(void *in, void *inout, int *len, MPI_Datatype *type) {
  (void)type;
  const int64_t *a = in;
  int64_t *b = inout;
  for (int i = 0; i < *len; i++) b[i] = i < DET_TAIL ? b[i] + a[i] : (a[i] > b[i] ? a[i] : b[i]);
}

int mt_det_create(Det *d, const size_t *bounds, int n_tensors, int comm_size, MtError *err) {
  memset(d, 0, sizeof *d);
  if (n_tensors > DET_MAX_TENSORS)
    return mt_fail(err, "--deterministic: %d tensors, at most %d", n_tensors, DET_MAX_TENSORS);
  d->n_tensors = n_tensors;
  memcpy(d->off, bounds, sizeof(size_t) * (size_t)(n_tensors + 1));
  d->n = bounds[n_tensors];
  d->acc = mt_alloc(sizeof(int64_t) * (d->n ? d->n : 1), "the deterministic-mode accumulator", err);
  d->counts = mt_alloc(sizeof(int) * 2 * (size_t)comm_size, "the deterministic-mode group counts", err);
  return err->failed ? -1 : 0;
}

void mt_det_free(Det *d) {
  if (d->have_op) MPI_Op_free(&d->op);
  d->have_op = 0;
  mt_free(d->acc);
  mt_free(d->counts);
  d->acc = NULL;
  d->counts = NULL;
}

void mt_det_begin(Det *d, int64_t groups_per_step) {
  d->step = mt_fixed_step(groups_per_step);
  for (int t = 0; t < d->n_tensors; t++) d->exp[t] = d->known ? mt_fixed_scale(d->prev[t], &d->step) : 0;
  memset(d->maxbits, 0, sizeof d->maxbits);
  memset(d->written, 0, sizeof d->written);
  memset(d->red, 0, sizeof d->red);
  d->overflow = 0;
}

void mt_det_add(Det *d, const float *grads, size_t off, size_t n) {
  for (int t = 0; t < d->n_tensors; t++) {
    size_t lo = d->off[t], hi = d->off[t + 1];
    if (hi <= off || lo >= off + n) continue;
    /* Callers pass whole tensors. */
    uint32_t top = mt_fixed_quantise(grads + lo, (char *)d->acc + lo * d->step.bytes, hi - lo, d->exp[t], d->step.wide,
                                  d->written[t], d->portable);
    d->written[t] = 1;
    if (top > d->maxbits[t]) d->maxbits[t] = top;
    /* NaN and Inf do not fit either: the step is redone, and then reported as non-finite. */
    if (!mt_fixed_fits(top, d->exp[t], &d->step)) d->overflow = 1;
  }
}

void mt_det_add_loss(Det *d, double loss, int64_t correct) {
  int64_t q;
  if (mt_fixed_from_loss(loss, d->step.loss_limit, &q) == 0)
    d->red[DET_LOSS] += q;
  else
    d->red[DET_NONFINITE] = 1;
  d->red[DET_CORRECT] += correct;
}

int mt_det_finish(Det *d, Comm *c, float *grads, int64_t failed, int64_t stop, double out[DET_TAIL]) {
  const size_t width = d->step.bytes;
  for (int t = 0; t < d->n_tensors; t++) /* a rank with no rows wrote nothing */
    if (!d->written[t]) memset((char *)d->acc + d->off[t] * width, 0, (d->off[t + 1] - d->off[t]) * width);
  int64_t *tail = d->red, *maxima = d->red + DET_TAIL;
  tail[DET_FAILED] = failed;
  tail[DET_STOP] = stop;
  tail[DET_OVERFLOW] = d->overflow || !d->known;
  for (int t = 0; t < d->n_tensors; t++) maxima[t] = d->maxbits[t];
  if (c->size > 1) {
    /* Integer sums: exact, so MPI's order of additions cannot matter; |sum| < 2^31 or 2^51 by the scales. */
    mt_comm_allreduce(c, d->acc, (int)d->n, d->step.wide ? MPI_INT64_T : MPI_INT32_T, MPI_SUM, "gradient reduction");
    if (!d->have_op) {
      MPI_Op_create(sum_then_max, 1, &d->op);
      d->have_op = 1;
    }
    mt_comm_allreduce(c, d->red, DET_TAIL + d->n_tensors, MPI_INT64_T, d->op, "gradient reduction");
  }
  for (int k = 0; k < DET_TAIL; k++) out[k] = (double)tail[k];
  out[DET_LOSS] = mt_fixed_to_loss(tail[DET_LOSS]);
  int nonfinite = tail[DET_NONFINITE] > 0;
  for (int t = 0; t < d->n_tensors; t++) {
    if (maxima[t] >= 0x7f800000) nonfinite = 1;
    d->prev[t] = (uint32_t)maxima[t]; /* the next step's scales (or this step's, again) */
  }
  if (nonfinite) {
    out[DET_NONFINITE] = 1;
    out[DET_LOSS] = NAN;
    return 0;
  }
  const int again = tail[DET_OVERFLOW] > 0 && !tail[DET_FAILED];
  d->known = 1;
  if (again) { /* every rank has the same maxima: the same new scales everywhere, and this step again */
    d->retries++;
    return 1;
  }
  for (int t = 0; t < d->n_tensors; t++) {
    const size_t o = d->off[t];
    mt_fixed_dequantise((const char *)d->acc + o * width, grads + o, d->off[t + 1] - o, d->exp[t], d->step.wide,
                     d->portable);
  }
  return 0;
}


void mt_det_reduce_groups(Det *d, Comm *c, const double *parts, size_t len, const int *groups, double *scratch,
                       double *out) {
  int total = 0;
  const double *all = parts;
  if (c->size > 1) {
    int *rc = d->counts, *displs = d->counts + c->size;
    for (int r = 0; r < c->size; r++) {
      rc[r] = groups[r] * (int)len;
      displs[r] = total * (int)len;
      total += groups[r];
    }
    mt_comm_allgatherv(c, parts, rc[c->rank], scratch, rc, displs, MPI_DOUBLE, "batch-norm reduction");
    all = scratch;
  } else {
    total = groups[0];
  }
  /* Group order, whatever the rank count: the same additions in the same order. */
  for (size_t j = 0; j < len; j++) out[j] = 0;
  for (int g = 0; g < total; g++)
    for (size_t j = 0; j < len; j++) out[j] += all[(size_t)g * len + j];
}
