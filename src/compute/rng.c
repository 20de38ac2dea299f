/* rng.c — Philox4x32-10 and what we draw from it (see rng.h for why counter-based). */
#include "mpitrain/rng.h"

#include <math.h>

#include "vector.h"

static inline void mulhilo32(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
  uint64_t p = (uint64_t)a * b;
  *hi = (uint32_t)(p >> 32);
  *lo = (uint32_t)p;
}

/* The 10 rounds on the counter (x0..x3) with key (k0, k1): written once, inlined into both generators below. */
static inline void philox10(uint32_t *x0, uint32_t *x1, uint32_t *x2, uint32_t *x3, uint32_t k0, uint32_t k1) {
  uint32_t c0 = *x0, c1 = *x1, c2 = *x2, c3 = *x3;
  for (int r = 0; r < 10; r++) {
    if (r > 0) {
      k0 += 0x9E3779B9u; /* golden ratio */
      k1 += 0xBB67AE85u; /* sqrt(3) - 1 */
    }
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo32(0xD2511F53u, c0, &hi0, &lo0);
    mulhilo32(0xCD9E8D57u, c2, &hi1, &lo1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
  }
  *x0 = c0;
  *x1 = c1;
  *x2 = c2;
  *x3 = c3;
}

void mt_rng_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t x0 = ctr[0], x1 = ctr[1], x2 = ctr[2], x3 = ctr[3];
  philox10(&x0, &x1, &x2, &x3, key[0], key[1]);
  out[0] = x0;
  out[1] = x1;
  out[2] = x2;
  out[3] = x3;
}

void mt_rng_block(uint64_t seed, RngStream stream, uint64_t a, uint64_t b, uint32_t out[4]) {
  const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  const uint32_t ctr[4] = {(uint32_t)b, (uint32_t)(b >> 32), (uint32_t)a,
                           (uint32_t)((a >> 32) & 0xFFFFFFu) | ((uint32_t)stream << 24)};
  mt_rng_philox4x32(ctr, key, out);
}

/* The same rounds over independent counters, so that the compiler runs one counter per vector lane (the 32 × 32 →
 * 64-bit products are vpmuludq): dropout draws a mask per unit of every row, and one call per block cost 7 ns per
 * unit — 0.7 ms of a 128-row step of the recommended model (README). */
MT_VECTOR_CLONES void mt_rng_blocks(uint64_t seed, RngStream stream, uint64_t a, uint64_t b0, size_t count,
                                    uint32_t *restrict out) {
  const uint32_t c2 = (uint32_t)a, c3 = (uint32_t)((a >> 32) & 0xFFFFFFu) | ((uint32_t)stream << 24);
  for (size_t i = 0; i < count; i++) {
    const uint64_t b = b0 + i;
    uint32_t x0 = (uint32_t)b, x1 = (uint32_t)(b >> 32), x2 = c2, x3 = c3;
    philox10(&x0, &x1, &x2, &x3, (uint32_t)seed, (uint32_t)(seed >> 32));
    out[4 * i] = x0;
    out[4 * i + 1] = x1;
    out[4 * i + 2] = x2;
    out[4 * i + 3] = x3;
  }
}

float mt_rng_normal(uint64_t seed, RngStream stream, uint64_t a, uint64_t i) {
  uint32_t r[4];
  mt_rng_block(seed, stream, a, i / 4, r);
  int pair = (int)(i % 4) / 2, use_sin = (int)(i % 2);
  /* Box–Muller; u1 in (0, 1] so the log is finite. Double precision so the float result is correctly rounded
   * for all but the rarest inputs. */
  double u1 = ((double)(r[2 * pair] >> 8) + 1.0) * (1.0 / 16777216.0);
  double u2 = (double)(r[2 * pair + 1] >> 8) * (1.0 / 16777216.0);
  double rad = sqrt(-2.0 * log(u1)), theta = 6.283185307179586 * u2;
  return (float)(use_sin ? rad * sin(theta) : rad * cos(theta));
}

void mt_rng_permutation(uint64_t seed, uint64_t epoch, uint32_t *perm, size_t n) {
  for (size_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
  uint32_t r[4] = {0, 0, 0, 0};
  for (size_t i = n; i-- > 1;) {
    if (i == n - 1 || i % 2 == 1) mt_rng_block(seed, RNG_STREAM_SHUFFLE, epoch, i / 2, r);
    uint64_t u = (i % 2) ? ((uint64_t)r[1] << 32 | r[0]) : ((uint64_t)r[3] << 32 | r[2]);
    size_t j = (size_t)(((unsigned __int128)u * (i + 1)) >> 64);
    uint32_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}
