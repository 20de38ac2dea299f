/* comm.h — the MPI layer: who we are, how we reduce gradients, and how ranks agree on failure.
 *
 * Every function here is collective over c->comm unless it says otherwise. MPI errors return to us
 * (MPI_ERRORS_RETURN) and are turned into an abort with a message naming the call and the rank: a failed
 * collective cannot be agreed on any more. */
#ifndef MPITRAIN_COMM_H
#define MPITRAIN_COMM_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "mpitrain/error.h"

typedef struct Comm {
  MPI_Comm comm;      /* our duplicate of the communicator we were given */
  int rank, size;
  MPI_Comm node;      /* ranks sharing this node's memory */
  int node_rank, node_size;
  int node_cores;     /* CPUs this process may run on (affinity mask), at least 1 */
} Comm;

int comm_init(Comm *c, MPI_Comm parent, MtError *err);
void comm_free(Comm *c);

/* Collective. Each rank passes its own status; if any rank failed, every rank's err becomes the message of the
 * lowest failing rank, prefixed with "rank R" and the number of failing ranks, and -1 is returned everywhere.
 * A failing rank whose own message differs from the agreed one prints it to stderr first, so no reason is lost
 * while 512 identical messages are not printed 512 times. */
int comm_agree(Comm *c, MtError *err);

/* Rank 0 prints "mpitrain: error: <msg>" (err must be agreed). */
void comm_report(const Comm *c, const MtError *err);

/* In-place SUM over ranks of buf[0..n). */
void comm_allreduce_sum(Comm *c, float *buf, size_t n);
void comm_allreduce_sum_double(Comm *c, double *buf, size_t n);

/* Broadcasts bytes from root (in pieces, so any size works). */
void comm_bcast(Comm *c, void *buf, size_t bytes, int root);

/* 1 if buf[0..n) has the same bits on every rank (64-bit hash, reduced by MIN and MAX), else 0. */
int comm_replicas_identical(Comm *c, const void *buf, size_t bytes);

/* OpenBLAS threads this rank should use so the node's ranks do not oversubscribe its cores:
 * max(1, min(affinity CPUs, online CPUs / ranks on the node)). Not collective. */
int comm_default_threads(const Comm *c);

/* Prints "mpitrain: rank R: fatal: <msg>" and MPI_Aborts the job. For errors that cannot be agreed on. */
void comm_abort(const Comm *c, const char *fmt, ...) MT_PRINTF(2, 3);

/* 64-bit FNV-1a of a byte buffer (used for replica checks; exposed for tests). Not collective. */
uint64_t comm_hash(const void *buf, size_t bytes);

#endif
