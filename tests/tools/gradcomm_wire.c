/* gradcomm_wire.c — what --grad-comm bf16's collectives cost on the wire, with nothing else around them: one fp32
 * MPI_Allreduce of n floats against the bf16 schedule's two collectives on n bf16 values (MPI_Alltoallv of each
 * rank's parts, MPI_Allgatherv of the sums), alone and with the conversions and the fp32 sum, alternating in 200
 * repetitions; medians printed by rank 0. For the emulated network (README "Across nodes on the emulated
 * network"):
 *
 *   bash launch/multihost.sh --hosts 2 --ranks-per-host 1 --link 1gbit -- build/tests/gradcomm_wire [N]
 *
 * A development tool, built with the tests, not run by them. */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "mpitrain/gemm.h"

enum { REPS = 200, MAX_RANKS = 256 };

static int cmp(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, N;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &N);
  const int n = argc > 1 ? atoi(argv[1]) : 535818; /* the default model's parameters */
  float *g = malloc(sizeof(float) * (size_t)n), *own = malloc(sizeof(float) * (size_t)n);
  uint16_t *w = malloc(sizeof(uint16_t) * (size_t)n), *rv = malloc(sizeof(uint16_t) * (size_t)n + 16);
  static int sc[MAX_RANKS], sd[MAX_RANKS], rc[MAX_RANKS], rd[MAX_RANKS];
  static double t[3][REPS];
  if (N > MAX_RANKS || n < N || !g || !own || !w || !rv) {
    if (rank == 0) fprintf(stderr, "gradcomm_wire: at most %d ranks, n >= ranks, and memory for n\n", MAX_RANKS);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  for (int r = 0; r < N; r++) {
    sd[r] = (int)((long)n * r / N);
    sc[r] = (int)((long)n * (r + 1) / N) - sd[r];
  }
  for (int r = 0; r < N; r++) {
    rc[r] = sc[rank];
    rd[r] = r * sc[rank];
  }
  for (int i = 0; i < n; i++) g[i] = (float)(i % 1000) * 1e-3f;
  const int c = sc[rank];
  for (int k = 0; k < REPS; k++) {
    MPI_Barrier(MPI_COMM_WORLD);
    double a = MPI_Wtime();
    MPI_Allreduce(MPI_IN_PLACE, g, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    t[0][k] = MPI_Wtime() - a;
    MPI_Barrier(MPI_COMM_WORLD);
    a = MPI_Wtime();
    MPI_Alltoallv(w, sc, sd, MPI_UINT16_T, rv, rc, rd, MPI_UINT16_T, MPI_COMM_WORLD);
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, w, sc, sd, MPI_UINT16_T, MPI_COMM_WORLD);
    t[1][k] = MPI_Wtime() - a;
    MPI_Barrier(MPI_COMM_WORLD);
    a = MPI_Wtime();
    mt_bf16_convert(g, w, (size_t)n);
    MPI_Alltoallv(w, sc, sd, MPI_UINT16_T, rv, rc, rd, MPI_UINT16_T, MPI_COMM_WORLD);
    for (int i = 0; i < c; i++) {
      float s = mt_bf16_to_float(rv[i]);
      for (int r = 1; r < N; r++) s += mt_bf16_to_float(rv[(size_t)r * c + i]);
      own[i] = s;
    }
    mt_bf16_convert(own, w + sd[rank], (size_t)c);
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, w, sc, sd, MPI_UINT16_T, MPI_COMM_WORLD);
    for (int i = 0; i < n; i++) g[i] = mt_bf16_to_float(w[i]) * 0.5f;
    t[2][k] = MPI_Wtime() - a;
  }
  for (int j = 0; j < 3; j++) qsort(t[j], REPS, sizeof(double), cmp);
  const double m0 = t[0][REPS / 2], m1 = t[1][REPS / 2], m2 = t[2][REPS / 2];
  if (rank == 0)
    printf("n=%d floats, %d ranks, median of %d alternating: fp32 MPI_Allreduce %.3f ms; bf16 alltoallv+allgatherv "
           "alone %.3f ms (%.2f of fp32); with conversions %.3f ms (%.2f)\n",
           n, N, REPS, m0 * 1e3, m1 * 1e3, m1 / m0, m2 * 1e3, m2 / m0);
  free(g);
  free(own);
  free(w);
  free(rv);
  MPI_Finalize();
  return 0;
}
