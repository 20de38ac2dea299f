/* allreduce_time.c — times MPI_Allreduce (in-place float SUM, as the trainer's gradient reduction) for a list of
 * sizes and prints one CSV line per size: ranks,bytes,seconds (the median of the repetitions; every rank's time
 * is reduced with MAX, so a repetition lasts until the slowest rank is done).
 *
 * Built by the SMPI build (tests/smpi) to compare SMPI's simulated allreduce with the alpha-beta formula
 * (tests/smpi/alpha_beta.sh); it is plain MPI, so `mpicc -O2 tests/smpi/allreduce_time.c` builds the same program
 * for a real machine (how launch/smpi/this-vm.xml was calibrated).
 *
 * Point to point instead, between ranks 0 and 1 (what a simulated platform's latency and bandwidth describe,
 * measured apart from any collective; README "Across nodes on the emulated network"): -p a ping-pong of BYTES,
 * printing half the round trip (one message one way); -x both ranks sending BYTES to each other at once
 * (MPI_Sendrecv, the traffic of a 2-rank allreduce's steps), printing the time of one exchange.
 *
 * usage: allreduce_time [-p | -x] [-r REPS] BYTES...   (BYTES may end in k or M: 64k, 4M) */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long parse_bytes(const char *s) {
  char *end = NULL;
  double v = strtod(s, &end);
  if (end && (*end == 'k' || *end == 'K')) v *= 1024;
  if (end && *end == 'M') v *= 1024 * 1024;
  return (long)v;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size, reps = 5, first = 1, p2p = 0; /* p2p: 'p' ping-pong, 'x' exchange, 0 allreduce */
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (first < argc && (strcmp(argv[first], "-p") == 0 || strcmp(argv[first], "-x") == 0)) p2p = argv[first++][1];
  if (first + 1 < argc && strcmp(argv[first], "-r") == 0) {
    reps = atoi(argv[first + 1]);
    first += 2;
  }
  if (reps < 1 || reps > 1000 || first >= argc || (p2p && size < 2)) {
    if (rank == 0) fprintf(stderr, "usage: allreduce_time [-p | -x] [-r REPS] BYTES...   (-p, -x: 2 ranks or more)\n");
    MPI_Finalize();
    return 2;
  }
  double *t = malloc(sizeof(double) * (size_t)reps);
  for (int a = first; a < argc; a++) {
    long bytes = parse_bytes(argv[a]);
    int n = (int)(bytes / (long)sizeof(float));
    float *buf = calloc((size_t)(n > 0 ? n : 1), sizeof(float)), *back = calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    if (buf == NULL || back == NULL || t == NULL) MPI_Abort(MPI_COMM_WORLD, 1);
    for (int r = -1; r < reps; r++) { /* r = -1: a warm-up (connections, pages), not timed */
      MPI_Barrier(MPI_COMM_WORLD);
      double t0 = MPI_Wtime();
      if (p2p == 0)
        MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      else if (rank < 2 && p2p == 'x')
        MPI_Sendrecv(buf, n, MPI_FLOAT, 1 - rank, 0, back, n, MPI_FLOAT, 1 - rank, 0, MPI_COMM_WORLD,
                     MPI_STATUS_IGNORE);
      else if (rank < 2) /* ping-pong: rank 0 sends first, then rank 1 */
        for (int leg = 0; leg < 2; leg++) {
          if (leg == rank) MPI_Send(buf, n, MPI_FLOAT, 1 - rank, 0, MPI_COMM_WORLD);
          else MPI_Recv(buf, n, MPI_FLOAT, 1 - rank, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        }
      double dt = (MPI_Wtime() - t0) / (p2p == 'p' ? 2 : 1);
      if (r < 0) continue;
      MPI_Allreduce(&dt, &t[r], 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    }
    qsort(t, (size_t)reps, sizeof(double), cmp_double);
    if (rank == 0) printf("%d,%ld,%.9f\n", size, (long)n * (long)sizeof(float), t[reps / 2]);
    fflush(stdout);
    free(buf);
    free(back);
  }
  free(t);
  MPI_Finalize();
  return 0;
}
