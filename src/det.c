/* det.c — fixed-point accumulation and group-ordered sums for --deterministic (det.h explains the scheme). */
#include "mpitrain/det.h"

#include <math.h>
#include <mpi.h>
#include <string.h>

/* 1.5·2^52: for |x| < 2^51, the bits of (x + MAGIC) minus the bits of MAGIC are round-to-nearest(x) as an int64,
 * and the reverse holds for an int64 q with |q| < 2^51. Plain adds, so the loops vectorise (SSE2 has no packed
 * double <-> int64 conversion). */
#define MAGIC 6755399441055744.0
#define TWO51 2251799813685248.0

static int64_t magic_bits(void) {
  double m = MAGIC;
  int64_t b;
  memcpy(&b, &m, sizeof b);
  return b;
}

int det_create(Det *d, int group, const size_t *bounds, int n_tensors, int comm_size, MtError *err) {
  memset(d, 0, sizeof *d);
  if (n_tensors > DET_MAX_TENSORS) return mt_fail(err, "--deterministic: %d tensors, at most %d", n_tensors, DET_MAX_TENSORS);
  d->group = group;
  d->n_tensors = n_tensors;
  memcpy(d->off, bounds, sizeof(size_t) * (size_t)(n_tensors + 1));
  d->n = bounds[n_tensors];
  d->acc = mt_alloc(sizeof(int64_t) * (d->n + DET_TAIL), "the deterministic-mode accumulator", err);
  d->counts = mt_alloc(sizeof(int) * 2 * (size_t)comm_size, "the deterministic-mode group counts", err);
  return err->failed ? -1 : 0;
}

void det_free(Det *d) {
  mt_free(d->acc);
  mt_free(d->counts);
  d->acc = NULL;
  d->counts = NULL;
}

void det_begin(Det *d, int64_t groups_per_step) {
  if (groups_per_step < 1) groups_per_step = 1;
  /* A power of two at most 2^50 / groups, so that the sum of all groups' values stays below 2^51 (rounding may
   * take a value to the limit itself). */
  int k = 0;
  while (((int64_t)1 << k) < groups_per_step) k++;
  d->limit = ldexp(1.0, 50 - k);
  d->loss_limit = ldexp(1.0, 62 - k);
  memset(d->maxbits, 0, sizeof d->maxbits);
  memset(d->written, 0, sizeof d->written);
  memset(d->acc + d->n, 0, sizeof(int64_t) * DET_TAIL);
  d->overflow = 0;
}

/* acc (+)= round(x · scale), and the largest |x| as float bits (for non-negative floats the bit patterns order
 * like the values, with Inf and NaN above every finite value: integer max, which vectorises, finds them too). */
static uint32_t quantise(const float *restrict x, int64_t *restrict acc, size_t n, double scale, int add) {
  const int64_t mb = magic_bits();
  uint32_t top = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t bits;
    memcpy(&bits, &x[i], sizeof bits);
    bits &= 0x7fffffffu;
    top = bits > top ? bits : top;
    double v = (double)x[i] * scale + MAGIC;
    int64_t q;
    memcpy(&q, &v, sizeof q);
    q -= mb;
    acc[i] = add ? acc[i] + q : q;
  }
  return top;
}

void det_add(Det *d, const float *grads, size_t off, size_t n) {
  for (int t = 0; t < d->n_tensors; t++) {
    size_t lo = d->off[t], hi = d->off[t + 1];
    if (hi <= off || lo >= off + n) continue;
    /* Callers pass whole tensors. */
    const double scale = ldexp(1.0, d->exp[t]);
    uint32_t top = quantise(grads + lo, d->acc + lo, hi - lo, scale, d->written[t]);
    d->written[t] = 1;
    if (top > d->maxbits[t]) d->maxbits[t] = top;
    float fmax;
    memcpy(&fmax, &top, sizeof fmax);
    /* NaN and Inf fail this test too: the step is redone, and then reported as non-finite. */
    if (!((double)fmax * scale < d->limit)) d->overflow = 1;
  }
}

void det_add_loss(Det *d, double loss, int64_t correct) {
  double v = ldexp(loss, DET_LOSS_BITS);
  if (isfinite(v) && fabs(v) < d->loss_limit)
    d->acc[d->n + DET_LOSS] += llrint(v);
  else
    d->acc[d->n + DET_NONFINITE] = 1;
  d->acc[d->n + DET_CORRECT] += correct;
}

/* The exponent that puts max · 256 just below limit. */
static int scale_for(float max, double limit) {
  if (!(max > 0)) return 0; /* an all-zero tensor: any scale is exact */
  int e;
  frexp((double)max * 256.0, &e); /* max · 256 < 2^e */
  int x;
  frexp(limit, &x);                /* limit = 2^(x-1) */
  return (x - 1) - e;
}

int det_finish(Det *d, Comm *c, float *grads, int64_t failed, int64_t stop, double out[DET_TAIL]) {
  int64_t *tail = d->acc + d->n;
  for (int t = 0; t < d->n_tensors; t++) /* a rank with no rows wrote nothing */
    if (!d->written[t]) memset(d->acc + d->off[t], 0, sizeof(int64_t) * (d->off[t + 1] - d->off[t]));
  tail[DET_FAILED] = failed;
  tail[DET_STOP] = stop;
  tail[DET_OVERFLOW] = d->overflow || !d->known;
  if (c->size > 1) {
    /* int64 sums with wrap-around would still be exact, but none happens: |sum| < 2^51 by the scales' choice. */
    MPI_Allreduce(MPI_IN_PLACE, d->acc, (int)(d->n + DET_TAIL), MPI_INT64_T, MPI_SUM, c->comm);
    MPI_Allreduce(MPI_IN_PLACE, d->maxbits, d->n_tensors, MPI_UINT32_T, MPI_MAX, c->comm);
  }
  for (int k = 0; k < DET_TAIL; k++) out[k] = (double)tail[k];
  out[DET_LOSS] = ldexp((double)tail[DET_LOSS], -DET_LOSS_BITS);
  int nonfinite = tail[DET_NONFINITE] > 0;
  for (int t = 0; t < d->n_tensors; t++)
    if (d->maxbits[t] >= 0x7f800000u) nonfinite = 1;
  if (nonfinite) {
    out[DET_NONFINITE] = 1;
    out[DET_LOSS] = NAN;
    return 0;
  }
  if (tail[DET_OVERFLOW] > 0 && !tail[DET_FAILED]) {
    /* Every rank has the same maxima: the same new scales everywhere, and this step again. */
    for (int t = 0; t < d->n_tensors; t++) {
      float mx;
      memcpy(&mx, &d->maxbits[t], sizeof mx);
      d->exp[t] = scale_for(mx, d->limit);
    }
    d->known = 1;
    d->retries++;
    return 1;
  }
  const int64_t mb = magic_bits();
  for (int t = 0; t < d->n_tensors; t++) {
    const double inv = ldexp(1.0, -d->exp[t]);
    for (size_t i = d->off[t]; i < d->off[t + 1]; i++) {
      int64_t q = d->acc[i] + mb;
      double v;
      memcpy(&v, &q, sizeof v);
      grads[i] = (float)((v - MAGIC) * inv);
    }
    /* The next step's scale, from this step's largest group value. */
    float mx;
    memcpy(&mx, &d->maxbits[t], sizeof mx);
    d->exp[t] = scale_for(mx, d->limit);
  }
  return 0;
}

void det_rank_groups(int64_t ng, int rank, int size, int64_t *g0, int64_t *g1) {
  int64_t q = ng / size, r = ng % size;
  *g0 = rank * q + (rank < r ? rank : r);
  *g1 = *g0 + q + (rank < r ? 1 : 0);
}

void det_reduce_groups(Det *d, Comm *c, const double *parts, size_t len, const int *groups, double *scratch,
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
    MPI_Allgatherv(parts, rc[c->rank], MPI_DOUBLE, scratch, rc, displs, MPI_DOUBLE, c->comm);
    all = scratch;
  } else {
    total = groups[0];
  }
  /* Group order, whatever the rank count: the same additions in the same order. */
  for (size_t j = 0; j < len; j++) out[j] = 0;
  for (int g = 0; g < total; g++)
    for (size_t j = 0; j < len; j++) out[j] += all[(size_t)g * len + j];
}
