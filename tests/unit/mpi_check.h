/* mpi_check.h — checks for the MPI unit tests (test_*_mpi.c). cmocka's asserts end one rank, and a rank that ends
 * leaves the others waiting in the next collective, so these tests count failures and go on: CHECK prints and
 * counts; mpi_check_result sums the counts over every rank, rank 0 prints PASSED or FAILED, and every rank gets the
 * same exit code. Included by one source each (it defines the counter). */
#ifndef MPITRAIN_TESTS_MPI_CHECK_H
#define MPITRAIN_TESTS_MPI_CHECK_H

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "mpitrain/comm.h"

static int failures = 0;

#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (!(cond)) {                                         \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                        \
      fputc('\n', stderr);                                 \
      failures++;                                          \
    }                                                      \
  } while (0)

/* Collective over MPI_COMM_WORLD: 0 if no rank failed a CHECK, else 1. */
static int mpi_check_result(void) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Allreduce(MPI_IN_PLACE, &failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) printf("%s: %d failure(s)\n", failures ? "FAILED" : "PASSED", failures);
  return failures ? 1 : 0;
}

/* MPI_Init for a test that needs exactly `want` ranks (it splits them into communicators of its own): the world
 * rank; at another size, rank 0 says so and every rank ends with exit code 1. */
static inline int mpi_check_init_world(int *argc, char ***argv, int want) {
  MPI_Init(argc, argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size != want) {
    if (rank == 0) fprintf(stderr, "run with mpirun -np %d\n", want);
    MPI_Finalize();
    exit(1);
  }
  return rank;
}

/* The first k ranks of MPI_COMM_WORLD as a Comm of their own, for a test that runs at 1..k ranks in one job.
 * Collective over MPI_COMM_WORLD: 1 on those ranks (*sub and c made: mpi_check_sub_free), 0 on the others. The job
 * aborts with the reason if the Comm cannot be made. */
static inline int mpi_check_sub(int k, MPI_Comm *sub, Comm *c) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_split(MPI_COMM_WORLD, rank < k ? 0 : MPI_UNDEFINED, rank, sub);
  if (*sub == MPI_COMM_NULL) return 0;
  MtError err = {0};
  if (mt_comm_init(c, *sub, &err) != 0) {
    fprintf(stderr, "mt_comm_init at %d ranks: %s\n", k, err.msg);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  return 1;
}

static inline void mpi_check_sub_free(MPI_Comm *sub, Comm *c) {
  mt_comm_free(c);
  MPI_Comm_free(sub);
}

/* MPI_Init and a Comm over MPI_COMM_WORLD (the job aborts with the reason if it cannot be made). */
static inline void mpi_check_start(int *argc, char ***argv, Comm *c) {
  MPI_Init(argc, argv);
  MtError err = {0};
  if (mt_comm_init(c, MPI_COMM_WORLD, &err) != 0) {
    fprintf(stderr, "mt_comm_init: %s\n", err.msg);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
}

/* mpi_check_result, then the Comm freed and MPI finalised: main's exit code. */
static inline int mpi_check_finish(Comm *c) {
  const int rc = mpi_check_result();
  mt_comm_free(c);
  MPI_Finalize();
  return rc;
}

#endif
