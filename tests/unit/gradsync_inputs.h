/* gradsync_inputs.h — what the gradient-reduction tests (test_gradcomm_mpi.c, test_hier_mpi.c) hand to GradSync:
 * the tensor boundaries of a buffer, each rank's values (a hash of rank, position and step), and one step's
 * reduction as the trainer drives it. Included by one source each. */
#ifndef MPITRAIN_TESTS_GRADSYNC_INPUTS_H
#define MPITRAIN_TESTS_GRADSYNC_INPUTS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "mpitrain/comm.h"

enum { GS_MAX_BOUNDS = 1024 };

/* n values cut into tensors of `tensor` values (the last one shorter, at most GS_MAX_BOUNDS - 1 tensors): the
 * boundaries, 0 and n included, as mt_gradsync_create takes them; returns how many. */
static int gs_tensor_bounds(size_t n, size_t tensor, size_t bounds[GS_MAX_BOUNDS]) {
  int nb = 0;
  for (size_t o = 0; o < n && nb < GS_MAX_BOUNDS - 1; o += tensor) bounds[nb++] = o;
  bounds[nb++] = n;
  return nb;
}

/* 64 well-mixed bits of rank r's value i at a step. */
static uint64_t gs_input_hash(int r, size_t i, int step) {
  uint64_t h = (uint64_t)(r + 1) * 0x9e3779b97f4a7c15ull ^ (uint64_t)(i + 1) * 0xbf58476d1ce4e5b9ull ^
               (uint64_t)step * 0x94d049bb133111ebull;
  h ^= h >> 31;
  h *= 0xd6e9f0e2f5f4b3a1ull;
  return h ^ (h >> 29);
}

/* Those bits as a value scaled over 2^-20 .. 2^4, either sign: rounding to bf16 changes most of them, and their sums
 * round in fp32. */
static float gs_input_spread(uint64_t h) {
  const float m = 1.0f + (float)(h & 0xffffff) / 16777216.0f;
  const int e = (int)((h >> 24) % 25) - 20;
  return ((h >> 60) & 1 ? -m : m) * ldexpf(1.0f, e);
}

/* One step of gs over g ([n] values filled by the caller, then the tail) as the trainer drives it: the tail's
 * values (rank r's j-th is r * 10 + j + step), the buckets handed over in backward's order (the last tensor first),
 * the wait. Returns the first tail value that is not the sum over the k ranks, or -1. */
static int gs_reduce_step(GradSync *gs, float *g, size_t n, int tail, const size_t *bounds, int nb, int step) {
  const int k = gs->c->size;
  for (int j = 0; j < tail; j++) g[n + j] = (float)(gs->c->rank * 10 + j + step);
  for (int b = nb - 2; b >= 0; b--) mt_gradsync_ready(gs, bounds[b]);
  mt_gradsync_finish(gs);
  for (int j = 0; j < tail; j++)
    if (g[n + j] != (float)(10 * k * (k - 1) / 2 + k * (j + step))) return j;
  return -1;
}

#endif
