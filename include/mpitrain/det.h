/* det.h — exact, order-independent sums for --deterministic: training that gives the same bits on any number of
 * ranks (README "Deterministic mode").
 *
 * The global batch is cut into fixed groups of G rows (positions k·G .. k·G+G-1 of the batch, whatever the rank
 * count); a rank takes whole groups. Every GEMM and every sum over rows runs on one group at a time, so each
 * group's partial result has the same bits on any rank. What is then summed over groups is summed exactly:
 *  - gradients, the loss and the accuracy count: each group's values are converted to 64-bit fixed point (a power
 *    of two per tensor, the same on every rank) and added as integers — exact, so associative, so the order of
 *    groups, ranks and MPI's reduction tree cannot matter; one MPI_SUM on int64 then one conversion back to float;
 *  - batch-norm statistics (small vectors): every rank gathers all groups' partial sums and adds them in group
 *    order (det_reduce_groups).
 *
 * The scale of tensor t is 2^e_t with e_t chosen from the largest |value| of any group at the previous step, with a
 * factor 256 of headroom, so that no group's value reaches 2^50 / (groups per step) and the sum stays below 2^51 —
 * where a double converts to an integer and back with one add (vectorised). A tensor's largest value keeps at
 * least 50 - 8 - log2(groups) bits (40 at 4 groups per step, 33 at 469), more than float's 24; values far below it
 * lose low bits, the same way in every run. If a value still overflows (the first step, whose scales are unknown,
 * or a gradient that grew more than 256-fold in one step), every rank sees it after the reduction and the step is
 * computed again with scales from that step's own maxima. The scales are saved in checkpoints, so a resumed run
 * continues with the same bits. */
#ifndef MPITRAIN_DET_H
#define MPITRAIN_DET_H

#include <stddef.h>
#include <stdint.h>

#include "mpitrain/comm.h"
#include "mpitrain/error.h"

/* Values that ride in the integer reduction after the gradients. */
enum { DET_LOSS = 0, DET_CORRECT, DET_FAILED, DET_STOP, DET_OVERFLOW, DET_NONFINITE, DET_TAIL };
#define DET_MAX_TENSORS 80
/* The loss is summed in fixed point with this many fraction bits (each group's sum is rounded to 2^-24). */
#define DET_LOSS_BITS 24

typedef struct Det {
  int group;                       /* G, rows per group */
  size_t n;                        /* gradient floats */
  int n_tensors;
  size_t off[DET_MAX_TENSORS + 1]; /* tensor boundaries in the gradient buffer, off[n_tensors] = n */
  int exp[DET_MAX_TENSORS];        /* e_t: fixed point value = round(x · 2^e_t) */
  int known;                       /* exp[] is set (0 before the first step of a fresh run) */
  uint32_t maxbits[DET_MAX_TENSORS]; /* this step's largest |x| of any local group, as float bits (NaN/Inf: >= 0x7f800000) */
  unsigned char written[DET_MAX_TENSORS]; /* acc of tensor t already holds a group this step */
  double limit;                    /* no group's |x| · 2^e_t may reach it: 2^50 / groups per step */
  int64_t *acc;                    /* [n + DET_TAIL] */
  int64_t overflow;                /* local: a group value reached limit this step */
  double loss_limit;
  int retries;                     /* steps computed twice (the first step, overflows) */
  int *counts;                     /* [2 · ranks] det_reduce_groups' counts and displacements */
} Det;

/* bounds [n_tensors + 1]: tensor start offsets in the gradient buffer, then its length. */
int det_create(Det *d, int group, const size_t *bounds, int n_tensors, int comm_size, MtError *err);
void det_free(Det *d);

/* Before a step whose global batch has groups_per_step groups. */
void det_begin(Det *d, int64_t groups_per_step);
/* One group's gradient for grads[off, off+n) (whole tensors) has just been written: add it to the accumulator. */
void det_add(Det *d, const float *grads, size_t off, size_t n);
/* One group's loss sum and correct count. */
void det_add_loss(Det *d, double loss, int64_t correct);
/* Collective. Sums the accumulators over ranks, writes the float gradients into grads [n] and returns the tail
 * (loss sum as a double, correct count, flags) in out [DET_TAIL]. Returns 1 when the step must be computed again
 * (a group overflowed its scale; the scales are now set from this step's maxima), else 0. A NaN or Inf anywhere
 * sets out[DET_NONFINITE] and the loss to NaN. */
int det_finish(Det *d, Comm *c, float *grads, int64_t failed, int64_t stop, double out[DET_TAIL]);

/* Collective. The sum over all groups of per-group vectors, added in group order: parts [groups[rank]][len] are
 * this rank's groups (a rank's groups are consecutive, and ranks hold them in rank order); groups [size] says how
 * many each rank has. out [len]; scratch holds [all groups][len] doubles. */
void det_reduce_groups(Det *d, Comm *c, const double *parts, size_t len, const int *groups, double *scratch,
                       double *out);

/* Which groups of a batch of ng groups rank r takes: [*g0, *g1). */
void det_rank_groups(int64_t ng, int rank, int size, int64_t *g0, int64_t *g1);

#endif
