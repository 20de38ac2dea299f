/* synth.h — generated classification data of any size: Gaussian clusters around per-class centres.
 *
 * Sample i of a split is a pure function of (seed, split, i), so a dataset can be written in any number of shards
 * by any number of ranks, or generated in memory for a benchmark, and always holds the same rows. */
#ifndef MPITRAIN_SYNTH_H
#define MPITRAIN_SYNTH_H

#include <stdint.h>

typedef struct SynthSpec {
  int64_t n_train, n_test;  /* rows per split */
  int d;                    /* features */
  int n_classes;
  uint64_t seed;
  float noise;              /* standard deviation of the noise around a class centre (centres are N(0,1)) */
} SynthSpec;

/* Writes sample i of split (0 = train, 1 = test) into x [d] and its label into *y. Labels are uniform over the
 * classes; x = centre[label] + noise * N(0, 1). */
void mt_synth_sample(const SynthSpec *s, int split, int64_t i, float *x /* [d] */, int32_t *y);

/* The class centres [n_classes, d] that mt_synth_sample adds noise to. Code generating many rows computes them once
 * and calls mt_synth_rows, which skips mt_synth_sample's per-row recomputation of the centre. */
void mt_synth_centres(const SynthSpec *s, float *centres /* [n_classes, d] */);

/* Rows first .. first+n-1 of split: bit-identical to n calls of mt_synth_sample. */
void mt_synth_rows(const SynthSpec *s, const float *centres /* [n_classes, d] */, int split, int64_t first, int64_t n,
                float *x /* [n, d] */, int32_t *y /* [n] */);

#endif
