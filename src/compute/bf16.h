/* bf16.h — fp32 to bf16 rounding on the bits, inlined into every loop that writes bf16 (private to mt_compute: the
 * GEMM buffers in gemm.c, the optimiser's copy of the weights in optim.c). */
#ifndef MPITRAIN_BF16_H
#define MPITRAIN_BF16_H

#include <stdint.h>
#include <string.h>

/* Round to nearest, ties to even, on the bits: adding 0x7fff plus the lowest kept bit carries into the kept half
 * exactly when the dropped half is above one half, or equal to it with an odd kept half. Overflow carries into the
 * exponent and gives ±Inf, as IEEE rounding does. A NaN is kept a NaN by forcing its quiet bit (the carry could
 * otherwise turn a NaN with only low payload bits into Inf). Branch-free, so the loops that call it vectorise. */
static inline uint16_t bf16_round_bits(uint32_t u) {
  uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  uint32_t q = (u >> 16) | 0x40u;
  return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? q : r);
}

/* The float a bf16 value stands for: its bits are the float's upper half, the rest zero (exact). */
static inline float bf16_widen_bits(uint16_t b) {
  uint32_t u = (uint32_t)b << 16;
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

static inline uint16_t bf16_round(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return bf16_round_bits(u);
}

#endif
