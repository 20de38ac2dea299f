/* vector.h — the loops of mt_compute that stream over large buffers (the optimisers, bf16 conversions, fixed-point
 * conversions) are compiled for AVX-512 and AVX2 as well as the baseline x86-64 (SSE2), and the loader picks the
 * widest the CPU has (an ifunc). The baseline vectorises 4 lanes wide and has no packed 32- to 16-bit narrowing
 * worth using: the AVX-512 clone of the bf16 conversion is 2.3x faster on this model's weights (0.12 against
 * 0.28 ms). Every clone performs the same IEEE (or integer) operations per element in the same order — only more
 * elements at once — and the build forbids FMA contraction (-ffp-contract=off), so every clone gives the same
 * bits. Private to mt_compute. */
#ifndef MPITRAIN_VECTOR_H
#define MPITRAIN_VECTOR_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MT_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MT_VECTOR_CLONES
#endif

#endif
