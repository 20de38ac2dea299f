/* fixed.c — float tensors to fixed-point integers and back, and the choice of their scales (fixed.h). */
#include "mpitrain/fixed.h"

#include <math.h>
#include <string.h>

#include "vector.h"

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

/* round(x · scale) as an int64 (|x · scale| < 2^51), and the largest |x| so far as float bits in *top (for
 * non-negative floats the bit patterns order like the values, with Inf and NaN above every finite value: an integer
 * max, which vectorises, finds them too). Inlined into the loops below. */
static inline int64_t to_fixed(float x, double scale, int64_t mb, uint32_t *top) {
  uint32_t bits;
  memcpy(&bits, &x, sizeof bits);
  bits &= 0x7fffffffu;
  *top = bits > *top ? bits : *top;
  double v = (double)x * scale + MAGIC;
  int64_t q;
  memcpy(&q, &v, sizeof q);
  return q - mb;
}

/* acc (+)= round(x · scale) into T = uint64_t or uint32_t sums; returns the largest |x| as float bits. Adds are
 * unsigned (wrapping) so that values beyond the limit, which force a retry anyway, are not undefined. One loop
 * written once, compiled for each width so that each vectorises on its own type. */
#define FIXED_QUANTISE(name, T)                                                                                     \
  MT_VECTOR_CLONES static uint32_t name(const float *restrict x, T *restrict acc, size_t n, double scale, int add) {   \
    const int64_t mb = magic_bits();                                                                              \
    uint32_t top = 0;                                                                                             \
    for (size_t i = 0; i < n; i++) {                                                                              \
      const T u = (T)(uint64_t)to_fixed(x[i], scale, mb, &top);                                                   \
      acc[i] = add ? acc[i] + u : u;                                                                              \
    }                                                                                                             \
    return top;                                                                                                   \
  }
FIXED_QUANTISE(quantise64, uint64_t)
FIXED_QUANTISE(quantise32, uint32_t)

/* g = q · inv as float. */
MT_VECTOR_CLONES static void dequantise64(const int64_t *restrict acc, float *restrict g, size_t n, double inv) {
  const int64_t mb = magic_bits();
  for (size_t i = 0; i < n; i++) {
    int64_t q = acc[i] + mb; /* |acc| < 2^51 */
    double v;
    memcpy(&v, &q, sizeof v);
    g[i] = (float)((v - MAGIC) * inv);
  }
}

MT_VECTOR_CLONES static void dequantise32(const int32_t *restrict acc, float *restrict g, size_t n, double inv) {
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


FixedStep mt_fixed_step(int64_t groups) {
  if (groups < 1) groups = 1;
  int k = 0;
  while (((int64_t)1 << k) < groups) k++;
  /* The sum of all groups stays below 2^31 (int32) or 2^51 (int64: where the double conversion is exact); a
   * value that rounds up to the limit itself still fits. */
  FixedStep s = {.wide = groups > FIXED_NARROW_GROUPS};
  s.bytes = s.wide ? sizeof(int64_t) : sizeof(int32_t);
  s.limit = ldexp(1.0, (s.wide ? 50 : 30) - k);
  s.loss_limit = ldexp(1.0, 62 - k);
  return s;
}

int mt_fixed_scale(uint32_t maxbits, const FixedStep *s) { return scale_for(maxbits, s->limit, s->wide ? 256.0 : 16.0); }

uint32_t mt_fixed_quantise(const float *x, void *acc, size_t n, int e, int wide, int add, int portable) {
  const double scale = ldexp(1.0, e);
  if (wide) return quantise64(x, acc, n, scale, add);
#ifdef HAVE_AVX2_PATH
  if (!portable && use_avx2(e)) return quantise32_avx2(x, acc, n, (float)scale, add);
#else
  (void)portable;
#endif
  return quantise32(x, acc, n, scale, add);
}

int mt_fixed_fits(uint32_t maxbits, int e, const FixedStep *s) {
  float max;
  memcpy(&max, &maxbits, sizeof max);
  return (double)max * ldexp(1.0, e) < s->limit; /* false for NaN and Inf too */
}

void mt_fixed_dequantise(const void *acc, float *g, size_t n, int e, int wide, int portable) {
  if (wide) {
    dequantise64(acc, g, n, ldexp(1.0, -e));
    return;
  }
#ifdef HAVE_AVX2_PATH
  if (!portable && use_avx2(e)) {
    dequantise32_avx2(acc, g, n, (float)ldexp(1.0, -e));
    return;
  }
#else
  (void)portable;
#endif
  dequantise32(acc, g, n, ldexp(1.0, -e));
}

int mt_fixed_from_loss(double loss, double limit, int64_t *q) {
  double v = ldexp(loss, FIXED_LOSS_BITS);
  if (!(isfinite(v) && fabs(v) < limit)) return -1;
  *q = llrint(v);
  return 0;
}

double mt_fixed_to_loss(int64_t q) { return ldexp((double)q, -FIXED_LOSS_BITS); }
