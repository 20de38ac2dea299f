/* rng.c — Philox4x32-10 and what we draw from it (see rng.h for why counter-based). */
#include "mpitrain/rng.h"

#include <math.h>

static inline void mulhilo32(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
  uint64_t p = (uint64_t)a * b;
  *hi = (uint32_t)(p >> 32);
  *lo = (uint32_t)p;
}

void mt_rng_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  uint32_t k0 = key[0], k1 = key[1];
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
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

void mt_rng_block(uint64_t seed, RngStream stream, uint64_t a, uint64_t b, uint32_t out[4]) {
  const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  const uint32_t ctr[4] = {(uint32_t)b, (uint32_t)(b >> 32), (uint32_t)a,
                           (uint32_t)((a >> 32) & 0xFFFFFFu) | ((uint32_t)stream << 24)};
  mt_rng_philox4x32(ctr, key, out);
}

float mt_rng_u01(uint32_t bits) { return (float)(bits >> 8) * (1.0f / 16777216.0f); }

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
