/* allreduce_time.c — times MPI_Allreduce (in-place float SUM, as the trainer's gradient reduction) for a list of
 * sizes and prints one CSV line per size: ranks,bytes,seconds (the median of the repetitions; every rank's time
 * is reduced with MAX, so a repetition lasts until the slowest rank is done).
 *
 * Built by the SMPI build (tests/smpi) to compare SMPI's simulated allreduce with the alpha-beta formula
 * (tests/smpi/alpha_beta.sh); it is plain MPI, so `mpicc -O2 tests/smpi/allreduce_time.c` builds the same program
 * for a real machine (how launch/smpi/this-vm.xml was calibrated).
 *
 * usage: allreduce_time [-r REPS] BYTES...   (BYTES may end in k or M: 64k, 4M) */
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
  int rank, size, reps = 5, first = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (argc > 2 && strcmp(argv[1], "-r") == 0) {
    reps = atoi(argv[2]);
    first = 3;
  }
  if (reps < 1 || reps > 1000 || first >= argc) {
    if (rank == 0) fprintf(stderr, "usage: allreduce_time [-r REPS] BYTES...\n");
    MPI_Finalize();
    return 2;
  }
  double *t = malloc(sizeof(double) * (size_t)reps);
  for (int a = first; a < argc; a++) {
    long bytes = parse_bytes(argv[a]);
    int n = (int)(bytes / (long)sizeof(float));
    float *buf = calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    if (buf == NULL || t == NULL) MPI_Abort(MPI_COMM_WORLD, 1);
    MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); /* warm-up: connections, pages */
    for (int r = 0; r < reps; r++) {
      MPI_Barrier(MPI_COMM_WORLD);
      double t0 = MPI_Wtime();
      MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      double dt = MPI_Wtime() - t0;
      MPI_Allreduce(&dt, &t[r], 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    }
    qsort(t, (size_t)reps, sizeof(double), cmp_double);
    if (rank == 0) printf("%d,%ld,%.9f\n", size, (long)n * (long)sizeof(float), t[reps / 2]);
    fflush(stdout);
    free(buf);
  }
  free(t);
  MPI_Finalize();
  return 0;
}
