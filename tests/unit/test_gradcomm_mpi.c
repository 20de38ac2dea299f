/* test_gradcomm_mpi.c — the bf16 gradient reduction with error feedback (--grad-comm bf16, comm.h) at 1, 2, 3 and 4
 * ranks, in one mpirun.
 *
 * Run with 4 ranks. For k = 1..4 the first k ranks form a communicator; each fills a gradient buffer with values of
 * its own (magnitudes over many binades, so that rounding to bf16 changes most of them) and an integer tail, and
 * reduces it through GradSync as the trainer does: one fused bucket, or many small ones handed over while "backward"
 * reports offsets from the end; replicated or sharded (ZeRO-1); for sizes smaller than the rank count and sizes no
 * rank count divides; over several steps, each starting from the residuals the one before left. Expected, computed
 * here without MPI from every rank's inputs (EfModel): each rank rounds x_r + e_r to bf16 and keeps e_r = what that
 * dropped; the fp32 sum of the rounded values in rank order is the sharded result; replicated, that sum plus the
 * owner's residual rounded once more (and its residual kept) is the result on every rank — bit for bit, values and
 * residuals. The tail is the exact fp32 sum; at k = 1 the buffer is untouched (nothing is rounded, no residual).
 * Then the residuals through a checkpoint's layout: the same rank count gets them back bit for bit, another count
 * keeps their total. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpitrain/comm.h"
#include "mpitrain/gemm.h"

#include "gradsync_inputs.h"
#include "mpi_check.h"

enum { MAXK = 4, TAIL = 3, STEPS = 3 };

static uint32_t bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

/* Rank r's value i. */
static float input(int r, size_t i, int step) { return gs_input_spread(gs_input_hash(r, i, step)); }

/* The exact model of the reduction with error feedback, computed without MPI from every rank's inputs: each rank's
 * residual e[r] and the owners' e_own, as the ranks should hold them, one step at a time. */
typedef struct EfModel {
  int k;
  size_t n;
  float *e;     /* [k][n] */
  float *e_own; /* [n] */
} EfModel;

/* What rounding v to bf16 dropped, and 0 for a value that is not finite (gemm.h: a skipped step must not poison). */
static float residual(float v, uint16_t b) {
  const float r = v - mt_bf16_to_float(b);
  return isfinite(r) ? r : 0.0f;
}

/* Value i of this step: every rank's (x + e) rounded, summed in fp32 in rank order (the sharded result), each e
 * updated; then (replicated) the sum plus e_own rounded once more (the replicated result), e_own updated.
 * *plain: what the reduction without error feedback would give (to show the feedback changed something). */
static float model_step(EfModel *m, size_t i, int step, int shard, float *plain) {
  float s = 0, p = 0;
  for (int r = 0; r < m->k; r++) {
    const float x = input(r, i, step), v = x + m->e[(size_t)r * m->n + i];
    const uint16_t b = mt_bf16_from_float(v);
    m->e[(size_t)r * m->n + i] = residual(v, b);
    s = r == 0 ? mt_bf16_to_float(b) : s + mt_bf16_to_float(b);
    p = r == 0 ? mt_bf16_to_float(mt_bf16_from_float(x)) : p + mt_bf16_to_float(mt_bf16_from_float(x));
  }
  if (shard) {
    *plain = p;
    return s;
  }
  *plain = mt_bf16_to_float(mt_bf16_from_float(p));
  const float w = s + m->e_own[i];
  const uint16_t b = mt_bf16_from_float(w);
  m->e_own[i] = residual(w, b);
  return mt_bf16_to_float(b);
}

/* This rank's residuals in gs equal the model's, bit for bit. */
static int residuals_match(const GradSync *gs, const EfModel *m, int rank) {
  int bad = 0;
  for (size_t i = 0; i < m->n; i++) bad += bits(gs->ef[i]) != bits(m->e[(size_t)rank * m->n + i]);
  for (int b = 0; gs->ef_own && b < gs->n_buckets; b++)
    for (int j = 0; j < gs->counts[b * m->k + rank]; j++)
      bad += bits(gs->ef_own[gs->own_moff[b] + (size_t)j]) != bits(m->e_own[gs->own_off[b] + (size_t)j]);
  return bad;
}

/* The residuals through a checkpoint's layout (mt_gradsync_residuals_gather, _scatter): at the same rank count each
 * rank gets its own back bit for bit; from rows of another count, rank 0 holds their sum in row order (sharded: plus
 * the owners' residuals) and the others 0, and the owners their parts of server. */
static void residuals_roundtrip(Comm *c, GradSync *gs, const EfModel *m, const char *name) {
  const int k = c->size, rows = k + 1;
  const size_t n = m->n;
  float *worker = calloc((size_t)rows * n, sizeof(float)), *server = calloc(n, sizeof(float));
  mt_gradsync_residuals_gather(gs, worker, gs->shard ? NULL : server, 0);
  if (c->rank == 0) {
    int bad = 0;
    for (size_t i = 0; i < (size_t)k * n; i++) bad += bits(worker[i]) != bits(m->e[i]);
    for (size_t i = 0; !gs->shard && i < n; i++) bad += bits(server[i]) != bits(m->e_own[i]);
    CHECK(bad == 0, "%s k=%d: %d gathered residuals differ", name, k, bad);
  }
  mt_gradsync_residuals_scatter(gs, worker, k, gs->shard ? NULL : server, 0);
  CHECK(residuals_match(gs, m, c->rank) == 0, "%s k=%d rank %d: residuals changed through the layout", name, k,
        c->rank);
  /* Written at k + 1 ranks: a last row of its own, and a server residual for the sharded run to fold in. */
  for (size_t i = 0; i < n; i++) worker[(size_t)k * n + i] = 0x1p-12f * (float)(i % 7), server[i] = 0x1p-10f;
  float *want = calloc(n, sizeof(float));
  for (size_t i = 0; i < n; i++) {
    for (int r = 0; r < rows; r++) want[i] = r == 0 ? worker[i] : want[i] + worker[(size_t)r * n + i];
    if (gs->shard) want[i] += server[i];
  }
  mt_gradsync_residuals_scatter(gs, worker, rows, server, 0);
  int bad = 0;
  for (size_t i = 0; i < n; i++) bad += bits(gs->ef[i]) != bits(c->rank == 0 ? want[i] : 0.0f);
  for (int b = 0; gs->ef_own && b < gs->n_buckets; b++)
    for (int j = 0; j < gs->counts[b * k + c->rank]; j++) bad += gs->ef_own[gs->own_moff[b] + (size_t)j] != 0x1p-10f;
  CHECK(bad == 0, "%s k=%d rank %d: %d residuals from %d ranks are not their total", name, k, c->rank, bad, rows);
  free(want);
  free(server);
  free(worker);
}

/* One configuration at k ranks: n gradient values cut into tensors of `tensor` values, buckets of bucket_bytes. */
static void run(Comm *c, size_t n, size_t tensor, size_t bucket_bytes, int shard, const char *name) {
  const int k = c->size;
  size_t bounds[GS_MAX_BOUNDS];
  const int nb = gs_tensor_bounds(n, tensor, bounds);
  float *g = malloc(sizeof(float) * (n + TAIL));
  EfModel model = {k, n, calloc((size_t)k * n, sizeof(float)), calloc(n, sizeof(float))};
  GradSync gs;
  MtError err = {0};
  CHECK(mt_gradsync_create(&gs, c, g, n, TAIL, bounds, nb, bucket_bytes, shard, GRAD_COMM_BF16, ALLREDUCE_FLAT,
                           &err) == 0,
        "%s k=%d: %s", name, k, err.msg);
  CHECK(gs.bf16 == (k > 1) && (gs.ef != NULL) == (k > 1) && (gs.ef_own != NULL) == (k > 1 && !gs.shard),
        "%s k=%d: bf16 %d, residuals %p %p", name, k, gs.bf16, (void *)gs.ef, (void *)gs.ef_own);
  int fed_back = 0; /* values where the feedback changed the result */
  for (int step = 0; step < STEPS; step++) {
    for (size_t i = 0; i < n; i++) g[i] = input(c->rank, i, step);
    const int tail_bad = gs_reduce_step(&gs, g, n, TAIL, bounds, nb, step);
    CHECK(tail_bad < 0, "%s k=%d: tail[%d] = %g", name, k, tail_bad, tail_bad < 0 ? 0.0 : (double)g[n + tail_bad]);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
      float plain;
      const float want = k == 1 ? input(0, i, step) : model_step(&model, i, step, gs.shard, &plain);
      fed_back += k > 1 && bits(want) != bits(plain);
      float got = g[i];
      if (gs.shard) { /* this rank's parts only */
        int b = 0;
        while (b + 1 < gs.n_buckets && i < gs.start[b]) b++;
        const size_t lo = gs.own_off[b], hi = lo + (size_t)gs.counts[b * k + c->rank];
        if (i < lo || i >= hi) continue;
        got = gs.own[gs.own_moff[b] + (i - lo)];
      }
      if (bits(got) != bits(want) && bad++ < 3)
        fprintf(stderr, "%s k=%d rank %d step %d: value %zu = %.9g, want %.9g\n", name, k, c->rank, step, i,
                (double)got, (double)want);
    }
    CHECK(bad == 0, "%s k=%d rank %d step %d: %d values differ from the model of error feedback", name, k, c->rank,
          step, bad);
    if (k > 1)
      CHECK(residuals_match(&gs, &model, c->rank) == 0, "%s k=%d rank %d step %d: residuals differ from the model",
            name, k, c->rank, step);
    if (!gs.shard && k > 1)
      CHECK(mt_comm_replicas_identical(c, g, sizeof(float) * n), "%s k=%d step %d: ranks differ", name, k, step);
  }
  /* The feedback really acts (or the checks above could not tell it from the plain reduction). */
  CHECK(k == 1 || n < 64 || fed_back > 0, "%s k=%d: error feedback changed no value", name, k);
  CHECK(shard || bucket_bytes > sizeof(float) * n || k == 1 || gs.n_buckets > 1, "%s k=%d: expected buckets", name,
        k);
  if (k > 1) residuals_roundtrip(c, &gs, &model, name);
  mt_gradsync_free(&gs);
  free(model.e_own);
  free(model.e);
  free(g);
}

int main(int argc, char **argv) {
  mpi_check_init_world(&argc, &argv, MAXK);
  const size_t FUSED = (size_t)1 << 40;
  for (int k = 1; k <= MAXK; k++) {
    MPI_Comm sub;
    Comm c;
    if (mpi_check_sub(k, &sub, &c)) {
      for (int shard = 0; shard <= 1; shard++) {
        run(&c, 2, 2, FUSED, shard, shard ? "sharded, 2 values" : "2 values");         /* fewer values than ranks */
        run(&c, 1, 1, FUSED, shard, shard ? "sharded, 1 value" : "1 value");
        run(&c, 1001, 77, FUSED, shard, shard ? "sharded, fused" : "fused");              /* no k divides 1001 */
        run(&c, 1001, 77, 64, shard, shard ? "sharded, buckets" : "buckets");             /* 13 buckets of 77 */
        run(&c, 3, 1, 4, shard, shard ? "sharded, tiny buckets" : "tiny buckets");        /* buckets < ranks */
        run(&c, 100003, 3001, 40000, shard, shard ? "sharded, large" : "large");
      }
      mpi_check_sub_free(&sub, &c);
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
  const int rc = mpi_check_result();
  MPI_Finalize();
  return rc;
}
