/* test_hier_mpi.c — the hierarchical gradient reduction (--allreduce hier, comm.h) at 1-4 ranks grouped into nodes
 * of 1, 2, 3 or 4, in one mpirun.
 *
 * Run with 4 ranks. For k = 1..4 the first k ranks form a communicator, and mt_comm_set_node groups them into
 * "nodes" of R consecutive ranks (one host: the grouping is what the algorithm sees, shared memory or not), so the
 * within-node and across-node stages both run with more than one rank. Each rank fills a gradient buffer and a
 * tail and reduces it through GradSync as the trainer does: one fused bucket, or many small ones handed over while
 * "backward" reports offsets from the end; for sizes smaller than the rank count and sizes no count divides.
 *  - exact: inputs are multiples of 1/8 below 2^12, whose sums fp32 holds exactly in any order: every value and the
 *    tail must equal the sum computed here without MPI, bit for bit, on every rank;
 *  - rounded: inputs over many binades; every rank must hold the same bits (replicas stay identical), within
 *    1e-6 of the terms' magnitudes of the sum in double.
 * Also: the settings hier refuses (nodes of different sizes, --shard-optimizer, --grad-comm bf16) and what auto picks.
 * Each configuration reduces twice, so the second step starts from the state the first one left. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpitrain/comm.h"

#include "gradsync_inputs.h"
#include "mpi_check.h"

enum { MAXK = 4, TAIL = 3 };

static float input(int r, size_t i, int step, int exact) {
  const uint64_t h = gs_input_hash(r, i, step);
  return exact ? (float)((int)(h % 32768) - 16384) / 8.0f : gs_input_spread(h);
}

static double sum_of(int k, size_t i, int step, int exact, double *abs_sum) {
  double s = 0;
  *abs_sum = 0;
  for (int r = 0; r < k; r++) {
    s += input(r, i, step, exact);
    *abs_sum += fabs(input(r, i, step, exact));
  }
  return s;
}

static void run(Comm *c, size_t n, size_t tensor, size_t bucket_bytes, int exact, const char *name) {
  const int k = c->size;
  size_t bounds[GS_MAX_BOUNDS];
  const int nb = gs_tensor_bounds(n, tensor, bounds);
  float *g = malloc(sizeof(float) * (n + TAIL));
  GradSync gs;
  MtError err = {0};
  CHECK(mt_gradsync_create(&gs, c, g, n, TAIL, bounds, nb, bucket_bytes, 0, GRAD_COMM_FP32, ALLREDUCE_HIER,
                           &err) == 0,
        "%s k=%d: %s", name, k, err.msg);
  CHECK(gs.hier == (k > 1), "%s k=%d: hier %d", name, k, gs.hier);
  for (int step = 0; step < 2; step++) {
    for (size_t i = 0; i < n; i++) g[i] = input(c->rank, i, step, exact);
    const int tail_bad = gs_reduce_step(&gs, g, n, TAIL, bounds, nb, step);
    CHECK(tail_bad < 0, "%s k=%d R=%d: tail[%d] = %g", name, k, c->node_size, tail_bad,
          tail_bad < 0 ? 0.0 : (double)g[n + tail_bad]);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
      double mag;
      const double want = sum_of(k, i, step, exact, &mag);
      /* rounded: fp32 sums in any order are within k ulps of the terms' magnitudes */
      const int wrong = exact ? g[i] != (float)want : fabs(g[i] - want) > 1e-6 * mag;
      if (wrong && bad++ < 3)
        fprintf(stderr, "%s k=%d R=%d rank %d step %d: g[%zu] = %.9g, want %.9g\n", name, k, c->node_size, c->rank,
                step, i, (double)g[i], want);
    }
    CHECK(bad == 0, "%s k=%d R=%d rank %d step %d: %d values differ from the sum", name, k, c->node_size, c->rank,
          step, bad);
    CHECK(mt_comm_replicas_identical(c, g, sizeof(float) * (n + TAIL)), "%s k=%d R=%d step %d: ranks differ", name,
          k, c->node_size, step);
  }
  CHECK(bucket_bytes > sizeof(float) * n || k == 1 || gs.n_buckets > 1, "%s k=%d: expected buckets", name, k);
  mt_gradsync_free(&gs);
  free(g);
}

/* The ranks of c in nodes of R consecutive ranks (the last one smaller when R does not divide the size). */
static void group(Comm *c, int R) {
  MPI_Comm node;
  MPI_Comm_split(c->comm, c->rank / R, c->rank, &node);
  mt_comm_set_node(c, node);
}

int main(int argc, char **argv) {
  mpi_check_init_world(&argc, &argv, MAXK);
  const size_t FUSED = (size_t)1 << 40;
  for (int k = 1; k <= MAXK; k++) {
    MPI_Comm sub;
    Comm c;
    if (mpi_check_sub(k, &sub, &c)) {
      for (int R = 1; R <= k; R++) {
        group(&c, R);
        const int nodes = (k + R - 1) / R;
        CHECK(c.n_nodes == nodes && c.node_size == (c.rank / R < nodes - 1 ? R : k - (nodes - 1) * R) &&
                  c.nodes_uniform == (k % R == 0),
              "k=%d R=%d: %d nodes of %d, uniform %d", k, R, c.n_nodes, c.node_size, c.nodes_uniform);
        CHECK(mt_allreduce_auto(&c, 0, GRAD_COMM_FP32) == ALLREDUCE_FLAT, /* as measured (comm.c) */
              "k=%d R=%d: auto picked %s", k, R, mt_allreduce_names[mt_allreduce_auto(&c, 0, GRAD_COMM_FP32)]);
        if (k > 1) {
          CHECK(mt_allreduce_refusal(&c, ALLREDUCE_HIER, 1, GRAD_COMM_FP32) != NULL, "k=%d: hier with ZeRO-1", k);
          CHECK(mt_allreduce_refusal(&c, ALLREDUCE_HIER, 0, GRAD_COMM_BF16) != NULL, "k=%d: hier with bf16", k);
          CHECK(mt_allreduce_auto(&c, 1, GRAD_COMM_FP32) == ALLREDUCE_FLAT, "k=%d: auto with ZeRO-1", k);
        }
        CHECK(mt_allreduce_refusal(&c, ALLREDUCE_FLAT, 0, GRAD_COMM_FP32) == NULL, "k=%d: flat refused", k);
        if (mt_allreduce_refusal(&c, ALLREDUCE_HIER, 0, GRAD_COMM_FP32) != NULL) {
          CHECK(k > 1 && k % R != 0, "k=%d R=%d: hier refused: %s", k, R,
                mt_allreduce_refusal(&c, ALLREDUCE_HIER, 0, GRAD_COMM_FP32));
          continue;
        }
        for (int exact = 1; exact >= 0; exact--) {
          run(&c, 2, 2, FUSED, exact, "2 values");         /* fewer values than ranks */
          run(&c, 1, 1, FUSED, exact, "1 value");
          run(&c, 0, 1, FUSED, exact, "tail only");
          run(&c, 1001, 77, FUSED, exact, "fused");        /* no rank count divides 1001 */
          run(&c, 1001, 77, 64, exact, "buckets");         /* 13 buckets of 77 */
          run(&c, 3, 1, 4, exact, "tiny buckets");         /* buckets smaller than the node */
          run(&c, 100003, 3001, 40000, exact, "large");
        }
      }
      mpi_check_sub_free(&sub, &c);
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
  const int rc = mpi_check_result();
  MPI_Finalize();
  return rc;
}
