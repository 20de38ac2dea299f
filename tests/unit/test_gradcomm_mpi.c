/* test_gradcomm_mpi.c — the bf16 gradient reduction (--grad-comm bf16, comm.h) at 1, 2, 3 and 4 ranks, in one mpirun.
 *
 * Run with 4 ranks. For k = 1..4 the first k ranks form a communicator; each fills a gradient buffer with values of
 * its own (magnitudes over many binades, so that rounding to bf16 changes most of them) and an integer tail, and
 * reduces it through GradSync as the trainer does: one fused bucket, or many small ones handed over while "backward"
 * reports offsets from the end; replicated or sharded (ZeRO-1); for sizes smaller than the rank count and sizes no
 * rank count divides. Expected, computed here without MPI from every rank's inputs:
 *  - replicated: every element equals bf16(Σ_r bf16(x_r)) — the sum in fp32, in rank order, of the bf16-rounded
 *    inputs, then rounded to bf16 once — bit for bit, on every rank;
 *  - sharded: this rank's parts equal Σ_r bf16(x_r) in fp32, in rank order, bit for bit;
 *  - the tail is the exact fp32 sum; at k = 1 the buffer is untouched (nothing is rounded).
 * Each configuration reduces twice, so the second step starts from the state the first one left. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpitrain/comm.h"
#include "mpitrain/gemm.h"

#include "gradsync_inputs.h"
#include "mpi_check.h"

enum { MAXK = 4, TAIL = 3 };

static uint32_t bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

/* Rank r's value i. */
static float input(int r, size_t i, int step) { return gs_input_spread(gs_input_hash(r, i, step)); }

static float fp32_sum_of_bf16(int k, size_t i, int step) {
  float s = mt_bf16_to_float(mt_bf16_from_float(input(0, i, step)));
  for (int r = 1; r < k; r++) s += mt_bf16_to_float(mt_bf16_from_float(input(r, i, step)));
  return s;
}

/* One configuration at k ranks: n gradient values cut into tensors of `tensor` values, buckets of bucket_bytes. */
static void run(Comm *c, size_t n, size_t tensor, size_t bucket_bytes, int shard, const char *name) {
  const int k = c->size;
  size_t bounds[GS_MAX_BOUNDS];
  const int nb = gs_tensor_bounds(n, tensor, bounds);
  float *g = malloc(sizeof(float) * (n + TAIL));
  GradSync gs;
  MtError err = {0};
  CHECK(mt_gradsync_create(&gs, c, g, n, TAIL, bounds, nb, bucket_bytes, shard, GRAD_COMM_BF16, ALLREDUCE_FLAT,
                           &err) == 0,
        "%s k=%d: %s", name, k, err.msg);
  CHECK(gs.bf16 == (k > 1), "%s k=%d: bf16 %d", name, k, gs.bf16);
  for (int step = 0; step < 2; step++) {
    for (size_t i = 0; i < n; i++) g[i] = input(c->rank, i, step);
    for (int j = 0; j < TAIL; j++) g[n + j] = (float)(c->rank * 10 + j + step);
    /* Backward's order: the last tensor first. */
    for (int b = nb - 2; b >= 0; b--) mt_gradsync_ready(&gs, bounds[b]);
    mt_gradsync_finish(&gs);
    for (int j = 0; j < TAIL; j++)
      CHECK(g[n + j] == (float)(10 * k * (k - 1) / 2 + k * (j + step)), "%s k=%d: tail[%d] = %g", name, k, j,
            (double)g[n + j]);
    int bad = 0, rounded = 0;
    if (k == 1) {
      for (size_t i = 0; i < n; i++) bad += bits(g[i]) != bits(input(0, i, step));
    } else if (!gs.shard) {
      for (size_t i = 0; i < n; i++) {
        const float want = mt_bf16_to_float(mt_bf16_from_float(fp32_sum_of_bf16(k, i, step)));
        if (bits(g[i]) != bits(want) && bad++ < 3)
          fprintf(stderr, "%s k=%d rank %d step %d: g[%zu] = %.9g, want %.9g\n", name, k, c->rank, step, i,
                  (double)g[i], (double)want);
        rounded += bits(fp32_sum_of_bf16(k, i, step)) != bits(want);
      }
    } else {
      for (int b = 0; b < gs.n_buckets; b++) {
        const int cnt = gs.counts[b * k + c->rank];
        for (int j = 0; j < cnt; j++) {
          const size_t i = gs.own_off[b] + (size_t)j;
          const float want = fp32_sum_of_bf16(k, i, step), got = gs.own[gs.own_moff[b] + (size_t)j];
          if (bits(got) != bits(want) && bad++ < 3)
            fprintf(stderr, "%s k=%d rank %d step %d: own[%zu] = %.9g, want %.9g\n", name, k, c->rank, step, i,
                    (double)got, (double)want);
        }
      }
    }
    CHECK(bad == 0, "%s k=%d rank %d step %d: %d values differ from the fp32 sum of the bf16 inputs", name, k,
          c->rank, step, bad);
    /* The expected values really are rounded twice (or the check above could not tell the two apart). */
    CHECK(k == 1 || gs.shard || n < 64 || rounded > 0, "%s k=%d: no sum needed its second rounding", name, k);
    if (!gs.shard && k > 1)
      CHECK(mt_comm_replicas_identical(c, g, sizeof(float) * n), "%s k=%d step %d: ranks differ", name, k, step);
  }
  CHECK(shard || bucket_bytes > sizeof(float) * n || k == 1 || gs.n_buckets > 1, "%s k=%d: expected buckets", name,
        k);
  mt_gradsync_free(&gs);
  free(g);
}

int main(int argc, char **argv) {
  const int wrank = mpi_check_init_world(&argc, &argv, MAXK);
  const size_t FUSED = (size_t)1 << 40;
  for (int k = 1; k <= MAXK; k++) {
    MPI_Comm sub;
    MPI_Comm_split(MPI_COMM_WORLD, wrank < k ? 0 : MPI_UNDEFINED, wrank, &sub);
    if (sub != MPI_COMM_NULL) {
      Comm c;
      MtError err = {0};
      CHECK(mt_comm_init(&c, sub, &err) == 0, "mt_comm_init: %s", err.msg);
      for (int shard = 0; shard <= 1; shard++) {
        run(&c, 2, 2, FUSED, shard, shard ? "sharded, 2 values" : "2 values");         /* fewer values than ranks */
        run(&c, 1, 1, FUSED, shard, shard ? "sharded, 1 value" : "1 value");
        run(&c, 1001, 77, FUSED, shard, shard ? "sharded, fused" : "fused");              /* no k divides 1001 */
        run(&c, 1001, 77, 64, shard, shard ? "sharded, buckets" : "buckets");             /* 13 buckets of 77 */
        run(&c, 3, 1, 4, shard, shard ? "sharded, tiny buckets" : "tiny buckets");        /* buckets < ranks */
        run(&c, 100003, 3001, 40000, shard, shard ? "sharded, large" : "large");
      }
      mt_comm_free(&c);
      MPI_Comm_free(&sub);
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
  const int rc = mpi_check_result();
  MPI_Finalize();
  return rc;
}
