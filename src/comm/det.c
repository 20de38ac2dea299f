/* det.c — fixed-point accumulation and group-ordered sums for --deterministic (det.h explains the scheme). */
#include "mpitrain/det.h"

#include <math.h>
#include <mpi.h>
#include <string.h>

/* 1.5·2^52: for |x| < 2^51, the bits of (x + MAGIC) minus the bits of MAGIC are round-to-nearest(x) as an int64,
 * and the reverse holds for an int64 q with |q| < 2^51. Plain adds, so the loops vectorise (SSE2 has no packed
 * double <-> int64 conversion). */
#define MAGIC 6755399441055744.0

static int64_t magic_bits(void) {
  double m = MAGIC;
  int64_t b;
  memcpy(&b, &m, sizeof b);
  return b;
}

/* Compiled for AVX2 as well where the CPU has it (picked at load time): the same IEEE operations on wider vectors,
 * so the same bits. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DET_VECTOR __attribute__((target_clones("avx2", "default")))
#else
#define DET_VECTOR
#endif

/* The small collective: sums over the tail, maxima over the rest (both exact, so any order gives the same). */
static void sum_then_max(void *in, void *inout, int *len, MPI_Datatype *type) {
  (void)type;
  const int64_t *a = in;
  int64_t *b = inout;
  for (int i = 0; i < *len; i++) b[i] = i < DET_TAIL ? b[i] + a[i] : (a[i] > b[i] ? a[i] : b[i]);
}

int det_create(Det *d, const size_t *bounds, int n_tensors, int comm_size, MtError *err) {
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

void det_free(Det *d) {
  if (d->have_op) MPI_Op_free(&d->op);
  d->have_op = 0;
  mt_free(d->acc);
  mt_free(d->counts);
  d->acc = NULL;
  d->counts = NULL;
}

/* The exponent e with max · headroom · 2^e < limit (limit a power of two). */
static int scale_for(uint32_t maxbits, double limit, double headroom) {
  float max;
  memcpy(&max, &maxbits, sizeof max);
  if (!(max > 0)) return 0; /* an all-zero tensor: any scale is exact */
  int e, x;
  frexp((double)max * headroom, &e); /* max · headroom < 2^e */
  frexp(limit, &x);                  /* limit = 2^(x-1) */
  return (x - 1) - e;
}

void det_begin(Det *d, int64_t groups_per_step) {
  if (groups_per_step < 1) groups_per_step = 1;
  int k = 0;
  while (((int64_t)1 << k) < groups_per_step) k++;
  /* The sum of all groups stays below 2^31 (int32) or 2^51 (int64: where the double conversion is exact); a
   * value that rounds up to the limit itself still fits. */
  d->wide = groups_per_step > DET_NARROW_GROUPS;
  d->limit = ldexp(1.0, (d->wide ? 50 : 30) - k);
  d->loss_limit = ldexp(1.0, 62 - k);
  for (int t = 0; t < d->n_tensors; t++)
    d->exp[t] = d->known ? scale_for(d->prev[t], d->limit, d->wide ? 256.0 : 16.0) : 0;
  memset(d->maxbits, 0, sizeof d->maxbits);
  memset(d->written, 0, sizeof d->written);
  memset(d->red, 0, sizeof d->red);
  d->overflow = 0;
}

/* round(x · scale) as an int64 (|x · scale| < 2^51), and the largest |x| so far as float bits in *top (for
 * non-negative floats the bit patterns order like the values, with Inf and NaN above every finite value: an integer
 * max, which vectorises, finds them too). Inlined into the loops below. */
static inline int64_t fixed(float x, double scale, int64_t mb, uint32_t *top) {
  uint32_t bits;
  memcpy(&bits, &x, sizeof bits);
  bits &= 0x7fffffffu;
  *top = bits > *top ? bits : *top;
  double v = (double)x * scale + MAGIC;
  int64_t q;
  memcpy(&q, &v, sizeof q);
  return q - mb;
}

/* acc (+)= round(x · scale); returns the largest |x| as float bits. Adds are unsigned (wrapping) so that values
 * beyond the limit, which force a retry anyway, are not undefined. */
DET_VECTOR static uint32_t quantise64(const float *restrict x, uint64_t *restrict acc, size_t n, double scale,
                                      int add) {
  const int64_t mb = magic_bits();
  uint32_t top = 0;
  for (size_t i = 0; i < n; i++) {
    const uint64_t u = (uint64_t)fixed(x[i], scale, mb, &top);
    acc[i] = add ? acc[i] + u : u;
  }
  return top;
}

DET_VECTOR static uint32_t quantise32(const float *restrict x, uint32_t *restrict acc, size_t n, double scale,
                                      int add) {
  const int64_t mb = magic_bits();
  uint32_t top = 0;
  for (size_t i = 0; i < n; i++) {
    const uint32_t u = (uint32_t)(uint64_t)fixed(x[i], scale, mb, &top);
    acc[i] = add ? acc[i] + u : u;
  }
  return top;
}

/* g = q · inv as float. */
DET_VECTOR static void dequantise64(const int64_t *restrict acc, float *restrict g, size_t n, double inv) {
  const int64_t mb = magic_bits();
  for (size_t i = 0; i < n; i++) {
    int64_t q = acc[i] + mb; /* |acc| < 2^51 */
    double v;
    memcpy(&v, &q, sizeof v);
    g[i] = (float)((v - MAGIC) * inv);
  }
}

DET_VECTOR static void dequantise32(const int32_t *restrict acc, float *restrict g, size_t n, double inv) {
  for (size_t i = 0; i < n; i++) g[i] = (float)((double)acc[i] * inv);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* The int32 conversions in single precision with AVX2, 8 values per instruction (the loops above work in double,
 * 4 at a time). The same results bit for bit, for scales 2^e with |e| <= 100 (the caller checks): x · 2^e is exact
 * in float as in double (or below 2^-126, where it rounds to 0 either way; or beyond float's range, which the
 * overflow check catches), and cvtps2dq rounds to nearest-even like the double path; on the way back,
 * float(q) · 2^-e equals float(q · 2^-e) for a power of two. */
__attribute__((target("avx2"))) static uint32_t quantise32_avx2(const float *x, uint32_t *acc, size_t n, float scale,
                                                                 int add) {
  const __m256 s = _mm256_set1_ps(scale);
  const __m256i abs = _mm256_set1_epi32(0x7fffffff);
  __m256i top = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    top = _mm256_max_epu32(top, _mm256_and_si256(_mm256_castps_si256(v), abs));
    __m256i q = _mm256_cvtps_epi32(_mm256_mul_ps(v, s));
    if (add) q = _mm256_add_epi32(q, _mm256_loadu_si256((const __m256i *)(acc + i)));
    _mm256_storeu_si256((__m256i *)(acc + i), q);
  }
  uint32_t lanes[8], t = 0;
  _mm256_storeu_si256((__m256i *)lanes, top);
  for (int k = 0; k < 8; k++) t = lanes[k] > t ? lanes[k] : t;
  if (i < n) {
    uint32_t rest = quantise32(x + i, acc + i, n - i, (double)scale, add);
    t = rest > t ? rest : t;
  }
  return t;
}

__attribute__((target("avx2"))) static void dequantise32_avx2(const int32_t *acc, float *g, size_t n, float inv) {
  const __m256 s = _mm256_set1_ps(inv);
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(acc + i))), s));
  for (; i < n; i++) g[i] = (float)((double)acc[i] * (double)inv);
}
#define HAVE_AVX2_PATH 1
#endif

static int use_avx2(int e) {
#ifdef HAVE_AVX2_PATH
  static int cpu = -1;
  if (cpu < 0) cpu = __builtin_cpu_supports("avx2") ? 1 : 0;
  return cpu && e >= -100 && e <= 100;
#else
  (void)e;
  return 0;
#endif
}

void det_add(Det *d, const float *grads, size_t off, size_t n) {
  for (int t = 0; t < d->n_tensors; t++) {
    size_t lo = d->off[t], hi = d->off[t + 1];
    if (hi <= off || lo >= off + n) continue;
    /* Callers pass whole tensors. */
    const double scale = ldexp(1.0, d->exp[t]);
    uint32_t top;
    if (d->wide)
      top = quantise64(grads + lo, (uint64_t *)d->acc + lo, hi - lo, scale, d->written[t]);
#ifdef HAVE_AVX2_PATH
    else if (!d->portable && use_avx2(d->exp[t]))
      top = quantise32_avx2(grads + lo, (uint32_t *)d->acc + lo, hi - lo, (float)scale, d->written[t]);
#endif
    else
      top = quantise32(grads + lo, (uint32_t *)d->acc + lo, hi - lo, scale, d->written[t]);
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
    d->red[DET_LOSS] += llrint(v);
  else
    d->red[DET_NONFINITE] = 1;
  d->red[DET_CORRECT] += correct;
}

int det_finish(Det *d, Comm *c, float *grads, int64_t failed, int64_t stop, double out[DET_TAIL]) {
  const size_t width = d->wide ? sizeof(int64_t) : sizeof(int32_t);
  for (int t = 0; t < d->n_tensors; t++) /* a rank with no rows wrote nothing */
    if (!d->written[t]) memset((char *)d->acc + d->off[t] * width, 0, (d->off[t + 1] - d->off[t]) * width);
  int64_t *tail = d->red, *maxima = d->red + DET_TAIL;
  tail[DET_FAILED] = failed;
  tail[DET_STOP] = stop;
  tail[DET_OVERFLOW] = d->overflow || !d->known;
  for (int t = 0; t < d->n_tensors; t++) maxima[t] = d->maxbits[t];
  if (c->size > 1) {
    /* Integer sums: exact, so MPI's order of additions cannot matter; |sum| < 2^31 or 2^51 by the scales. */
    comm_allreduce(c, d->acc, (int)d->n, d->wide ? MPI_INT64_T : MPI_INT32_T, MPI_SUM, "gradient reduction");
    if (!d->have_op) {
      MPI_Op_create(sum_then_max, 1, &d->op);
      d->have_op = 1;
    }
    comm_allreduce(c, d->red, DET_TAIL + d->n_tensors, MPI_INT64_T, d->op, "gradient reduction");
  }
  for (int k = 0; k < DET_TAIL; k++) out[k] = (double)tail[k];
  out[DET_LOSS] = ldexp((double)tail[DET_LOSS], -DET_LOSS_BITS);
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
    const size_t o = d->off[t], cnt = d->off[t + 1] - o;
    if (d->wide)
      dequantise64((const int64_t *)d->acc + o, grads + o, cnt, ldexp(1.0, -d->exp[t]));
#ifdef HAVE_AVX2_PATH
    else if (!d->portable && use_avx2(d->exp[t]))
      dequantise32_avx2((const int32_t *)d->acc + o, grads + o, cnt, (float)ldexp(1.0, -d->exp[t]));
#endif
    else
      dequantise32((const int32_t *)d->acc + o, grads + o, cnt, ldexp(1.0, -d->exp[t]));
  }
  return 0;
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
    comm_allgatherv(c, parts, rc[c->rank], scratch, rc, displs, MPI_DOUBLE, "batch-norm reduction");
    all = scratch;
  } else {
    total = groups[0];
  }
  /* Group order, whatever the rank count: the same additions in the same order. */
  for (size_t j = 0; j < len; j++) out[j] = 0;
  for (int g = 0; g < total; g++)
    for (size_t j = 0; j < len; j++) out[j] += all[(size_t)g * len + j];
}
