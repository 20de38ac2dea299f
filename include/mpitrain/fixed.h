/* fixed.h — float tensors as fixed-point integers, so that sums of them are exact and independent of the order of
 * the additions: the arithmetic of --deterministic (det.h does the bookkeeping and the reductions over ranks).
 *
 * A tensor's value x is held as round(x · 2^e), with e chosen from the largest |x| of the previous step so that no
 * group's value reaches the step's limit L and the sum of all groups stays exact. Two widths, decided by the number
 * of groups per step:
 *  - up to FIXED_NARROW_GROUPS groups: int32, L = 2^30 / groups, headroom 16;
 *  - more groups: int64, L = 2^50 / groups, headroom 256 (below 2^51, where the conversions through double are
 *    exact).
 * Conversions go through double with one add (vectorised), or in single precision with AVX2 for int32 where the CPU
 * has it — the same bits either way. */
#ifndef MPITRAIN_FIXED_H
#define MPITRAIN_FIXED_H

#include <stddef.h>
#include <stdint.h>

/* A loss is held in fixed point with this many fraction bits (each group's sum is rounded to 2^-24). */
#define FIXED_LOSS_BITS 24
/* Up to this many groups per step the sums are int32, above int64. */
#define FIXED_NARROW_GROUPS 16

/* The width and limits of one step's sums. */
typedef struct FixedStep {
  int wide;          /* 1: int64 sums, 0: int32 */
  size_t bytes;      /* of one sum: 8 or 4 */
  double limit;      /* no group's |x| · 2^e may reach it */
  double loss_limit; /* nor a group's loss · 2^FIXED_LOSS_BITS this */
} FixedStep;

/* The width and limits for a step whose sums add `groups` groups (< 1 counts as 1). */
FixedStep mt_fixed_step(int64_t groups);

/* The exponent e of a tensor whose largest |x| (float bits) was maxbits: max · headroom · 2^e < s->limit. */
int mt_fixed_scale(uint32_t maxbits, const FixedStep *s);

/* acc [n] (int64 if wide, else int32) = (add: +=) round(x [n] · 2^e), wrapping on overflow. Returns the largest |x|
 * as float bits (NaN and Inf above every finite value). portable: never the AVX2 loop (tests compare the two). */
uint32_t mt_fixed_quantise(const float *x, void *acc, size_t n, int e, int wide, int add, int portable);

/* A group's largest |x| (float bits, from mt_fixed_quantise) at exponent e stays below the step's limit (NaN and Inf
 * do not). */
int mt_fixed_fits(uint32_t maxbits, int e, const FixedStep *s);

/* g [n] = acc [n] · 2^-e as float (acc as in mt_fixed_quantise). */
void mt_fixed_dequantise(const void *acc, float *g, size_t n, int e, int wide, int portable);

/* A loss sum in fixed point: *q = round(loss · 2^FIXED_LOSS_BITS) and 0, or -1 when loss is not finite or its
 * |loss · 2^FIXED_LOSS_BITS| reaches limit. mt_fixed_to_loss is the way back. */
int mt_fixed_from_loss(double loss, double limit, int64_t *q);
double mt_fixed_to_loss(int64_t q);

#endif
