/* rng.h — counter-based random numbers (Philox4x32-10, Salmon et al., SC'11).
 *
 * No state is carried between calls: a number is a pure function of (seed, stream, a, b). That is what makes
 * initial weights, the epoch permutation, synthetic data and dropout masks identical on every rank and for every
 * rank count, and what makes a checkpoint need nothing but the seed and the step to resume the same sequence. */
#ifndef MPITRAIN_RNG_H
#define MPITRAIN_RNG_H

#include <stddef.h>
#include <stdint.h>

/* Streams keep unrelated uses of one seed independent. Values are part of the reproducibility contract: never renumber. */
typedef enum RngStream {
  RNG_STREAM_INIT = 1,     /* a = tensor index, b = element / 4 */
  RNG_STREAM_SHUFFLE = 2,  /* a = epoch, b = draw / 2 */
  RNG_STREAM_SYNTH = 3,    /* synthetic datasets */
  RNG_STREAM_DROPOUT = 4,  /* reserved for dropout masks */
} RngStream;

/* The raw generator: 10 rounds of Philox4x32 on counter ctr with key key. Exposed for known-answer tests. */
void mt_rng_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* 128 random bits for (seed, stream, a, b); a < 2^56. Key = seed, counter = {b, a, stream}. */
void mt_rng_block(uint64_t seed, RngStream stream, uint64_t a, uint64_t b, uint32_t out[4]);
/* count consecutive blocks at once: out[4i .. 4i+3] = mt_rng_block(seed, stream, a, b0 + i) for i < count (the same
 * bits, vectorised). */
void mt_rng_blocks(uint64_t seed, RngStream stream, uint64_t a, uint64_t b0, size_t count, uint32_t *out);

/* Converts 32 random bits to a float uniform in [0, 1) (24 bits of precision). Inline: dropout calls it per unit. */
static inline float mt_rng_u01(uint32_t bits) { return (float)(bits >> 8) * (1.0f / 16777216.0f); }

/* Element i of a standard-normal sequence (Box–Muller on block i/4; each block yields 4 normals). */
float mt_rng_normal(uint64_t seed, RngStream stream, uint64_t a, uint64_t i);

/* perm[0..n) = a uniformly random permutation of 0..n-1 determined by (seed, epoch) only.
 * Fisher–Yates with one 64-bit draw per swap, mapped to [0, i] by a 64x64→128 multiply
 * (bias below i/2^64, far under anything measurable). */
void mt_rng_permutation(uint64_t seed, uint64_t epoch, uint32_t *perm /* [n] */, size_t n);

#endif
