/* synth.c — Gaussian-cluster classification data as a pure function of (seed, split, row).
 *
 * Every random number comes from the counter-based generator (rng.h, stream RNG_STREAM_SYNTH), addressed by what it
 * is for, so a row never depends on which rank, shard or order produced it:
 *   label of row i of split s   mt_rng_block(seed, SYNTH, A_LABEL | s, i / 4) word i % 4, mapped onto [0, C)
 *   centre[c][j]                normal j of the sequence (seed, SYNTH, A_CENTRE | c)
 *   x[j] of row i of split s    centre[label][j] + noise * normal j of (seed, SYNTH, A_NOISE(s) | i)
 * Normal j of a sequence comes from block j / 4 (words 0,1 give normals 4b, 4b+1; words 2,3 give 4b+2, 4b+3), by
 * Box–Muller with our own single-precision log and sine/cosine polynomials (errors below 1e-6) instead of libm's:
 * they vectorise, which brought a 60000 x 784 dataset from 1.8 s (mt_rng_normal per element) to about 0.4 s, and they
 * give the same bits on every C library. */
#include "mpitrain/synth.h"

#include <math.h>
#include <string.h>

#include "mpitrain/rng.h"

/* Purposes live in the top bits of the counter word `a` (mt_rng_block takes a < 2^56), rows in the low 52.
 * Part of the reproducibility contract of synthetic datasets: never renumber. */
#define SYNTH_A_CENTRE ((uint64_t)1 << 52)
#define SYNTH_A_LABEL ((uint64_t)2 << 52)
#define SYNTH_A_NOISE(split) ((uint64_t)(3 + (split)) << 52)

#define TILE 256 /* normals generated per inner pass: the words and results stay in L1 */

static inline uint32_t f2u(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}
static inline float u2f(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* ln(u) for u in [2^-24, 1]: exponent from the bits, mantissa m in [sqrt(1/2), sqrt(2)) through
 * ln m = 2 atanh(s), s = (m-1)/(m+1), |s| < 0.172, series to s^9 (error < 2e-8). Integer selects only, so the
 * loop vectorises. */
static inline float log_unit(float u) {
  uint32_t bits = f2u(u), mant = bits & 0x007fffffu;
  uint32_t big = mant > 0x003504f3u; /* mantissa of sqrt(2) */
  int32_t e = (int32_t)(bits >> 23) - 127 + (int32_t)big;
  float m = u2f(mant | (0x3f800000u - (big << 23)));
  float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
  float p = s2 * (1.0f / 3.0f + s2 * (1.0f / 5.0f + s2 * (1.0f / 7.0f + s2 * (1.0f / 9.0f))));
  return (float)e * 0.693147181f + 2.0f * s * (1.0f + p);
}

/* Normals z[0..2n) from words w[0..2n): pair k from (w[2k], w[2k+1]). The angle is uniform on the circle as a
 * quadrant q (2 bits) plus an offset a in [-pi/4, pi/4) (22 bits); sine and cosine of a by Taylor series (errors
 * below 3.2e-7 at |a| = pi/4), rotated by q quarter turns with bit operations. */
static void box_muller(const uint32_t *w /* [2n] */, float *z /* [2n] */, int n) {
  for (int k = 0; k < n; k++) {
    float u1 = ((float)(w[2 * k] >> 8) + 1.0f) * (1.0f / 16777216.0f); /* (0, 1]: the log is finite */
    float r = sqrtf(-2.0f * log_unit(u1));
    uint32_t v = w[2 * k + 1];
    float a = ((float)((v >> 8) & 0x3fffffu) * (1.0f / 4194304.0f) - 0.5f) * 1.57079633f;
    float a2 = a * a;
    float sn = a * (1.0f - a2 * (1.0f / 6.0f - a2 * (1.0f / 120.0f - a2 * (1.0f / 5040.0f))));
    float cs = 1.0f - a2 * (0.5f - a2 * (1.0f / 24.0f - a2 * (1.0f / 720.0f - a2 * (1.0f / 40320.0f))));
    /* quarter turn (q odd): (c, s) -> (-s, c); half turn (q & 2): negate both */
    uint32_t odd = 0u - ((v >> 30) & 1u), half = (v >> 31) << 31;
    uint32_t cb = (odd & (f2u(sn) ^ 0x80000000u)) | (~odd & f2u(cs));
    uint32_t sb = (odd & f2u(cs)) | (~odd & f2u(sn));
    z[2 * k] = r * u2f(cb ^ half);
    z[2 * k + 1] = r * u2f(sb ^ half);
  }
}

/* Normals first .. first+n-1 (first a multiple of 4) of the sequence (seed, SYNTH, a). */
static void normals(uint64_t seed, uint64_t a, int first, int n, float *z /* [n] */) {
  uint32_t w[TILE];
  float zt[TILE];
  for (int t = 0; t < n; t += TILE) {
    int cnt = n - t < TILE ? n - t : TILE, blocks = (cnt + 3) / 4;
    for (int b = 0; b < blocks; b++)
      mt_rng_block(seed, RNG_STREAM_SYNTH, a, (uint64_t)(first + t) / 4 + (uint64_t)b, w + 4 * b);
    box_muller(w, zt, blocks * 2);
    memcpy(z + t, zt, sizeof(float) * (size_t)cnt);
  }
}

static int32_t synth_label(const SynthSpec *s, int split, int64_t i) {
  uint32_t r[4];
  mt_rng_block(s->seed, RNG_STREAM_SYNTH, SYNTH_A_LABEL | (uint64_t)split, (uint64_t)i / 4, r);
  /* Multiply-shift instead of modulo: uniform to within C/2^32 and no division. */
  return (int32_t)(((uint64_t)r[i % 4] * (uint64_t)s->n_classes) >> 32);
}

/* x[j] = centre[j] + noise * z[j]: one expression for both paths, so mt_synth_sample and mt_synth_rows agree to the bit. */
static void add_noise(const float *centre /* [n] */, float noise, const float *z /* [n] */, float *x /* [n] */, int n) {
  for (int j = 0; j < n; j++) x[j] = centre[j] + noise * z[j];
}

void mt_synth_centres(const SynthSpec *s, float *centres /* [n_classes, d] */) {
  for (int c = 0; c < s->n_classes; c++)
    normals(s->seed, SYNTH_A_CENTRE | (uint64_t)c, 0, s->d, centres + (size_t)c * (size_t)s->d);
}

void mt_synth_sample(const SynthSpec *s, int split, int64_t i, float *x /* [d] */, int32_t *y) {
  int32_t label = synth_label(s, split, i);
  *y = label;
  float c[TILE], z[TILE];
  for (int j = 0; j < s->d; j += TILE) {
    int cnt = s->d - j < TILE ? s->d - j : TILE;
    normals(s->seed, SYNTH_A_CENTRE | (uint64_t)label, j, cnt, c);
    normals(s->seed, SYNTH_A_NOISE(split) | (uint64_t)i, j, cnt, z);
    add_noise(c, s->noise, z, x + j, cnt);
  }
}

void mt_synth_rows(const SynthSpec *s, const float *centres /* [n_classes, d] */, int split, int64_t first, int64_t n,
                float *x /* [n, d] */, int32_t *y /* [n] */) {
  float z[TILE];
  for (int64_t r = 0; r < n; r++) {
    int64_t i = first + r;
    int32_t label = synth_label(s, split, i);
    const float *centre = centres + (size_t)label * (size_t)s->d;
    float *row = x + (size_t)r * (size_t)s->d;
    y[r] = label;
    for (int j = 0; j < s->d; j += TILE) {
      int cnt = s->d - j < TILE ? s->d - j : TILE;
      normals(s->seed, SYNTH_A_NOISE(split) | (uint64_t)i, j, cnt, z);
      add_noise(centre + j, s->noise, z, row + j, cnt);
    }
  }
}
