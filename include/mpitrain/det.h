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
 *    order (mt_det_reduce_groups).
 *
 * The scale of tensor t is 2^e_t, chosen at the start of a step from the largest |value| any group had at the
 * previous step, with headroom, so that no group's value can reach the limit L and the sum of all groups stays
 * exact. Two widths, decided by the number of groups per step (the same on every rank, for any rank count):
 *  - up to 16 groups: int32, L = 2^30 / groups, headroom 16: a tensor's largest value keeps at least
 *    26 - log2(groups) bits (24 at 4 groups, as many as float has; 22 at 16) and the reduction moves as many bytes
 *    as a float allreduce;
 *  - more groups: int64, L = 2^50 / groups, headroom 256: at least 42 - log2(groups) bits (33 at 469 groups, a full
 *    batch of Fashion-MNIST in groups of 128).
 * Values far below their tensor's largest keep fewer bits (an absolute grid, like any fixed point) — the same in
 * every run. Conversions go through double with one add (vectorised); fixed.h holds this arithmetic, det.c the
 * bookkeeping and the reductions over ranks. If a value still overflows (the first step,
 * whose maxima are not known yet, or a gradient that grew beyond the headroom in one step), every rank sees it after
 * the reduction and the step is computed again with scales from its own maxima. The maxima are saved in
 * checkpoints, so a resumed run continues with the same bits. */
#ifndef MPITRAIN_DET_H
#define MPITRAIN_DET_H

#include <stddef.h>
#include <stdint.h>

#include <mpi.h>

#include "mpitrain/comm.h"
#include "mpitrain/error.h"
#include "mpitrain/fixed.h"

/* Reduced with the maxima in a second, small collective (sums for these, maxima for the rest). */
enum { DET_LOSS = 0, DET_CORRECT, DET_FAILED, DET_STOP, DET_OVERFLOW, DET_NONFINITE, DET_TAIL };
#define DET_MAX_TENSORS 80

typedef struct Det {
  size_t n;                        /* gradient floats */
  int n_tensors;
  size_t off[DET_MAX_TENSORS + 1]; /* tensor boundaries in the gradient buffer, off[n_tensors] = n */
  int known;                       /* prev[] holds the previous step's maxima (0 before the first step) */
  uint32_t prev[DET_MAX_TENSORS];  /* the previous step's largest |x| of any group, per tensor, as float bits */
  /* This step: */
  FixedStep step;                  /* the width of the sums and their limits */
  int exp[DET_MAX_TENSORS];        /* fixed point value = round(x · 2^exp[t]) */
  uint32_t maxbits[DET_MAX_TENSORS]; /* the largest |x| of any local group (NaN/Inf: >= 0x7f800000) */
  unsigned char written[DET_MAX_TENSORS]; /* acc of tensor t already holds a group */
  int overflow;                    /* a local group value reached limit */
  void *acc;                       /* [n] int32 or int64 sums (step.bytes each) */
  int64_t red[DET_TAIL + DET_MAX_TENSORS]; /* the small collective: tail sums, then maxima */
  int retries;                     /* steps computed twice (the first step, overflows) */
  int portable;                    /* 1: never the AVX2 loops (tests compare the two) */
  int *counts;                     /* [2 · ranks] mt_det_reduce_groups' counts and displacements */
  int have_op;
  MPI_Op op;                       /* sum over the tail, max over the rest */
} Det;

/* bounds [n_tensors + 1]: tensor start offsets in the gradient buffer, then its length. */
int mt_det_create(Det *d, const size_t *bounds, int n_tensors, int comm_size, MtError *err);
void mt_det_free(Det *d);

/* Before a step whose global batch has groups_per_step groups: picks the width and the scales. */
void mt_det_begin(Det *d, int64_t groups_per_step);
/* One group's gradient for grads[off, off+n) (whole tensors) has just been written: add it to the accumulator. */
void mt_det_add(Det *d, const float *grads, size_t off, size_t n);
/* One group's loss sum and correct count. */
void mt_det_add_loss(Det *d, double loss, int64_t correct);
/* Collective. Sums the accumulators over ranks, writes the float gradients into grads [n] and returns the tail
 * (loss sum as a double, correct count, flags) in out [DET_TAIL]. Returns 1 when the step must be computed again
 * (a group overflowed its scale; the next mt_det_begin takes scales from this step's maxima), else 0. A NaN or Inf
 * anywhere sets out[DET_NONFINITE] and the loss to NaN. */
int mt_det_finish(Det *d, Comm *c, float *grads, int64_t failed, int64_t stop, double out[DET_TAIL]);

/* Collective. The sum over all groups of per-group vectors, added in group order: parts [groups[rank]][len] are
 * this rank's groups (a rank's groups are consecutive, and ranks hold them in rank order); groups [size] says how
 * many each rank has. out [len]; scratch holds [all groups][len] doubles. */
void mt_det_reduce_groups(Det *d, Comm *c, const double *parts, size_t len, const int *groups, double *scratch,
                       double *out);


#endif
