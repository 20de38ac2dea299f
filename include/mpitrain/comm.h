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

typedef struct Watchdog Watchdog;

typedef struct Comm {
  MPI_Comm comm;      /* our duplicate of the communicator we were given */
  int rank, size;
  MPI_Comm node;      /* ranks sharing this node's memory */
  int node_rank, node_size;
  int n_nodes;        /* nodes the ranks span (each node's ranks share memory) */
  int nodes_uniform;  /* 1 if every node has node_size ranks (the hierarchical reduction needs it) */
  int node_cores;     /* CPUs this process may run on (affinity mask), at least 1 */
  int node_cpus;      /* CPUs any rank of this node may run on (the union of their masks), at least 1 */
  Watchdog *wd;       /* the stall inspector, when running */
} Comm;

int mt_comm_init(Comm *c, MPI_Comm parent, MtError *err);
/* Collective. Makes `node` (a split of c->comm, which c now owns) the ranks that count as one node, and derives
 * everything above from it: mt_comm_init passes the ranks sharing memory; a test can group ranks of one host into
 * nodes of its own to run the across-nodes paths. */
void mt_comm_set_node(Comm *c, MPI_Comm node);
void mt_comm_free(Comm *c);

/* Collective. Each rank passes its own status; if any rank failed, every rank's err becomes the message of the
 * lowest failing rank, prefixed with "rank R" and the number of failing ranks, and -1 is returned everywhere.
 * A failing rank whose own message differs from the agreed one prints it to stderr first, so no reason is lost
 * while 512 identical messages are not printed 512 times. */
int mt_comm_agree(Comm *c, MtError *err);

/* Rank 0 prints "mpitrain: error: <msg>" (err must be agreed). */
void mt_comm_report(const Comm *c, const MtError *err);

/* In-place SUM over ranks of buf[0..n). */
void mt_comm_allreduce_sum(Comm *c, float *buf, size_t n);
void mt_comm_allreduce_sum_double(Comm *c, double *buf, size_t n);

/* In-place allreduce of n elements of any type and operation, and an allgatherv: for callers with their own
 * layouts (deterministic mode's integer sums). Like every collective here, watched by the stall inspector; `what`
 * (static) names it in a stall report ("gradient reduction"). */
void mt_comm_allreduce(Comm *c, void *buf, int n, MPI_Datatype type, MPI_Op op, const char *what);
void mt_comm_allgatherv(Comm *c, const void *send, int n, void *recv, const int *counts, const int *displs,
                     MPI_Datatype type, const char *what);

/* Broadcasts bytes from root (in pieces, so any size works). */
void mt_comm_bcast(Comm *c, void *buf, size_t bytes, int root);

/* Blocking point-to-point (predict's rows streaming to rank 0), watched by the stall inspector like the collectives;
 * `what` (static) names the wait in a stall report ("receive of predictions"). */
void mt_comm_send(Comm *c, const void *buf, int n, MPI_Datatype type, int dest, int tag, const char *what);
void mt_comm_recv(Comm *c, void *buf, int n, MPI_Datatype type, int src, int tag, const char *what);

/* A barrier for ranks with nothing to do while others work (convert on rank 0, synth's shards): it sleeps instead of
 * spinning a core, and is watched by the stall inspector. */
void mt_comm_wait_all(Comm *c, const char *what);

/* 1 if buf[0..n) has the same bits on every rank (64-bit hash, reduced by MIN and MAX), else 0. */
int mt_comm_replicas_identical(Comm *c, const void *buf, size_t bytes);

/* ==== Gradient reduction in buckets ====
 *
 * The flat gradient buffer [0, n) is cut into buckets at tensor boundaries, about bucket_bytes each, counted from
 * the END of the buffer: backward finishes the last layer first, so that is the first bucket it completes. As
 * backward reports "everything from offset on is final" (mt_gradsync_ready), every bucket inside that range is handed
 * to a non-blocking reduction at once, and pending ones are kept moving with MPI_Test, overlapping communication with
 * the rest of backward. mt_gradsync_finish completes them all.
 *
 * Two schedules:
 *  - replicated: MPI_Iallreduce (SUM) of each bucket in place; every rank then holds the whole summed gradient and
 *    applies the whole optimiser step. The n_tail floats after the buffer (loss sums, flags) ride in bucket 0,
 *    which ends where the tail begins.
 *  - sharded (ZeRO-1): MPI_Ireduce_scatter of each bucket: rank r receives the sum of its own part of every bucket
 *    (parts differ by at most one element, so no padding is needed and no size is refused), updates only those
 *    parameters with only their optimiser moments (memory ÷ N), then mt_gradsync_allgather shares the updated
 *    parameters (MPI_Iallgatherv in place). Same bytes on the wire as an allreduce. The tail gets its own small
 *    allreduce.
 *
 * --grad-comm bf16 (either schedule): each bucket travels as bf16 and is summed in fp32. MPI cannot add bf16 (a
 * user-defined operation on a 16-bit type would add in bf16 and lose the sum's bits), so the reduction is ours: a
 * reduce-scatter as MPI_Ialltoallv of the bf16 parts (rank r receives every rank's bf16 copy of its own part),
 * the fp32 sum of those in rank order (mt_bf16_sum_rows), then, replicated, this rank's sum rounded to bf16 and an
 * MPI_Iallgatherv of the bf16 sums, which every rank (the owner too) widens back into grads: the same bits
 * everywhere. Each stage moves (N-1)/N of the bucket in 2-byte values, half of the fp32 ring allreduce's bytes;
 * sharded, own gets the fp32 sums and the parameters' all-gather stays fp32. Non-blocking like the fp32 buckets:
 * a bucket's second stage starts when mt_gradsync_ready or mt_gradsync_finish finds its first one complete. The
 * tail stays fp32 (its own small allreduce). One rank: nothing is rounded.
 * Error feedback, always on with bf16: each rank adds to its bucket what its last rounding dropped (ef) before it
 * rounds again, and keeps the new residual; replicated, the owner does the same for its sums (ef_own). Nothing of a
 * gradient is lost, only delayed a step: the sum over steps of what is sent follows the fp32 sum within one
 * rounding. Checkpoints carry both (mt_gradsync_residuals_gather, _scatter).
 *
 * --allreduce hier (replicated fp32 only): each bucket in three stages, as Horovod's hierarchical allreduce does:
 * a reduce-scatter within the node (shared memory: node rank p gets the node's sum of its part p, the tail riding
 * in bucket 0's parts), an allreduce of that part across the nodes among the ranks of the same node rank (cross:
 * every node's ranks carry 1/R of the bucket over the network at once, and each host sends and receives the bucket
 * once, where a ring over all ranks crosses between hosts 2(N-1)/N of it per rank on the boundary), then an
 * all-gather within the node. Needs the same number of ranks on every node. Every rank ends with the same bits: part
 * p is summed by one rank per node, then identically by the cross allreduce. Non-blocking with buckets, in stages
 * like bf16's (comm.c stages_progress), one request per bucket; one fused bucket uses the blocking collectives. */
typedef struct GradSync {
  Comm *c;
  float *grads;       /* [n + n_tail] */
  size_t n, n_tail;
  int shard;
  int n_buckets;
  size_t *start, *end;    /* [n_buckets] bucket b covers [start[b], end[b]); b = 0 ends at n */
  MPI_Request *req;       /* [n_buckets + 1]: one per bucket, plus the tail's in sharded mode */
  int launched;           /* buckets handed to MPI so far (in order 0, 1, ...) */
  /* sharded mode */
  int *counts, *displs;   /* [n_buckets][size]: each rank's part of each bucket, relative to start[b] */
  size_t *own_off;        /* [n_buckets]: this rank's part in the buffer: [own_off[b], own_off[b] + counts[b][rank]) */
  size_t *own_moff;       /* [n_buckets]: where that part starts in the concatenation of this rank's parts */
  size_t n_own;           /* this rank's parameters: the optimiser's size in sharded mode */
  float *own;             /* [n_own] the summed gradient of this rank's parts */
  double reduce_wait;     /* seconds spent waiting in mt_gradsync_finish (communication not hidden) */
  /* --grad-comm bf16 (the counts, own_off, own_moff and own above are planned for either schedule) */
  int bf16;
  uint16_t *wire;         /* [n] the bf16 gradient, at the buffer's offsets; replicated, then the gathered bf16 sums */
  uint16_t *recv;         /* [size * n_own] every rank's bf16 copy of this rank's parts, bucket b at size * own_moff[b] */
  int *rcounts, *rdispls; /* [n_buckets][size] receiving this rank's part of bucket b from each rank */
  unsigned char *stage;   /* [n_buckets] BF16_IDLE, BF16_PARTS (exchanging the parts), BF16_SUMS (gathering sums) */
  float *ef;              /* [n] error feedback: what rounding this rank's gradient to bf16 dropped, added to the next
                           * step's gradient before it is rounded (mt_bf16_convert_ef) */
  float *ef_own;          /* [n_own] replicated: likewise for the rounding of this rank's sums (their bf16 copy for
                           * the all-gather), at own's offsets; NULL sharded, where the sums stay fp32 */
  MPI_Comm gather_comm;   /* replicated: the gathers' own communicator. Non-blocking collectives must start in the
                           * same order everywhere; the gathers start when a rank finds a bucket's parts arrived,
                           * which interleaves differently with the exchanges on each rank, but in bucket order */
  /* --allreduce hier (counts, displs, own_off, own_moff and own planned over c->node: parts of node ranks) */
  int hier;
  MPI_Comm hier_gather;   /* the all-gathers' own communicator (a duplicate of c->node), for the reason above */
  MPI_Comm cross;         /* the ranks of every node with this node rank (one per node), in rank order */
} GradSync;

/* --grad-comm: "fp32", "bf16" in enum order, NULL-terminated (the option table's choices). */
typedef enum MtGradComm { GRAD_COMM_FP32 = 0, GRAD_COMM_BF16, GRAD_COMM_COUNT } MtGradComm;
extern const char *const mt_grad_comm_names[GRAD_COMM_COUNT + 1];

/* --allreduce: "auto", "flat", "hier" in enum order, NULL-terminated (the option table's choices). The trainer resolves
 * auto (mt_allreduce_auto) before planning. */
typedef enum MtAllreduce { ALLREDUCE_AUTO = 0, ALLREDUCE_FLAT, ALLREDUCE_HIER, ALLREDUCE_COUNT } MtAllreduce;
extern const char *const mt_allreduce_names[ALLREDUCE_COUNT + 1];
/* What auto means here: flat, as measured (comm.c); the one place to change when hier wins somewhere. */
MtAllreduce mt_allreduce_auto(const Comm *c, int shard, MtGradComm wire);
/* Why `algo` cannot run with these settings (a sentence for an error), or NULL if it can. Same answer on every
 * rank. */
const char *mt_allreduce_refusal(const Comm *c, MtAllreduce algo, int shard, MtGradComm wire);

/* Buckets split at the given tensor boundaries (ascending offsets, 0 and n included: [nb]). algo: flat or hier
 * (resolved; hier must pass mt_allreduce_refusal). */
int mt_gradsync_create(GradSync *g, Comm *c, float *grads, size_t n, size_t n_tail, const size_t *boundaries, int nb,
                    size_t bucket_bytes, int shard, MtGradComm wire, MtAllreduce algo, MtError *err);
void mt_gradsync_free(GradSync *g);
/* Gradients [offset, n) are final. The tail must be final before the first call. Not collective by itself, but every
 * rank must report the same offsets in the same order (they do: backward is the same program on every rank). */
void mt_gradsync_ready(GradSync *g, size_t offset);
/* Launches what is left and waits for everything; afterwards grads (replicated) or own (sharded) hold the sums. */
void mt_gradsync_finish(GradSync *g);
/* Sharded: after this rank updated its parts of params, share them (params [n], in place). */
void mt_gradsync_allgather(GradSync *g, float *params);
/* Sharded: this rank's parts of a full buffer <-> the concatenation of its parts (moments in checkpoints). gather:
 * root gets full [n] from everyone's own [n_own]; scatter: the reverse. Collective. */
void mt_gradsync_gather(GradSync *g, const float *own, float *full, int root);
void mt_gradsync_scatter(GradSync *g, const float *full, float *own, int root);
/* --grad-comm bf16's residuals as a checkpoint holds them (nothing when this run does not round: fp32, one rank).
 * gather: root gets worker [size][n], every rank's ef in rank order, and (replicated) server [n], the owners' ef_own
 * in buffer order (sharded: server is not touched). Collective. */
void mt_gradsync_residuals_gather(GradSync *g, float *worker, float *server, int root);
/* The reverse, from root's worker [ranks][n] (ranks 0: none) and server [n] (NULL: none), written at `ranks` ranks.
 * The same count: each rank gets its own row back, the owners their parts of server (a bit-exact resume). Another
 * count: root's ef becomes the sum of the rows (in row order) and the others' 0 — the total, which is what the sums
 * are owed, is kept. server is cut by this run's ownership; sharded (no owner rounds), it is added to root's ef
 * instead. Collective; ranks must be the same everywhere; only root's worker (which it may change) and server are
 * read. */
void mt_gradsync_residuals_scatter(GradSync *g, float *worker, int ranks, const float *server, int root);

/* ==== Memory shared by the ranks of a node (MPI-3 shared windows) ==== */

typedef struct CommShared {
  MPI_Win win;
  void *base;      /* the node's one copy (the same bytes on every rank of the node) */
  size_t bytes;
} CommShared;

/* Collective over the node's ranks (and, in practice, called by every rank): node rank 0 allocates bytes, every
 * rank of the node maps them. *owner = 1 on the rank that should fill them. */
int mt_comm_shared_alloc(Comm *c, size_t bytes, CommShared *sh, int *owner, MtError *err);
/* Collective over the node: the owner's writes become visible to the node's other ranks. */
void mt_comm_shared_sync(Comm *c, CommShared *sh);
void mt_comm_shared_free(CommShared *sh);

/* Collective. Rank 0 prints one warning line when the ranks of some node outnumber the CPUs they may run on
 * (naming the most crowded node); nothing otherwise. For the commands that compute (train, bench, eval, predict). */
void mt_comm_warn_oversubscribed(Comm *c);

/* Prints "mpitrain: rank R: fatal: <msg>" and MPI_Aborts the job. For errors that cannot be agreed on. */
void mt_comm_abort(const Comm *c, const char *fmt, ...) MT_PRINTF(2, 3);

/* ==== Stall inspector ====
 *
 * In MPI a rank that stops (hangs in I/O, livelocks, is SIGSTOPped, or simply took a different path) leaves every
 * other rank waiting in the next collective, forever. The inspector is a thread per rank (it needs
 * MPI_THREAD_MULTIPLE) on a communicator of its own: when this rank has waited in a collective (or a watched
 * send / receive / mt_comm_wait_all) for longer than the timeout, it asks every rank where it is — the phase (startup,
 * data, forward, backward, gradient reduction, update, eval, checkpoint; predict, write, read in the other
 * subcommands), whether it waits and where, the step, and its last sign of life (a phase or step change, entering
 * or leaving a wait). If no rank has shown one within the timeout, the lowest waiting rank prints one line naming
 * the ranks that have not arrived and what they are doing, then aborts the job: a clean end with a reason instead
 * of a job that burns its allocation. A rank that keeps moving (writing the shards others wait for) is not a stall.
 *
 * main.c starts it for every subcommand with the default timeout and mt_comm_free stops it; each multi-rank
 * subcommand has the option COMM_STALL_OPTION in its table and applies it with mt_comm_watchdog_timeout. */
int mt_comm_watchdog_start(Comm *c, double timeout_s, MtError *err); /* collective; running already: sets the timeout */
void mt_comm_watchdog_stop(Comm *c);                                  /* collective */
/* The timeout of the running inspector (0 = never report; it keeps passing stop signals on). Not collective; every
 * rank passes the same (agreed) value. */
void mt_comm_watchdog_timeout(Comm *c, double timeout_s);
/* What this rank is doing now (a string with static lifetime) and the step: cheap, call freely (per chunk). */
void mt_comm_phase(Comm *c, const char *phase, int64_t step);

#define COMM_STALL_TIMEOUT_DEFAULT 600
#define COMM_STR_(x) #x
#define COMM_STR(x) COMM_STR_(x)
/* --stall-timeout in an option table (opts.h; needs <math.h> and <stddef.h>): the float field FIELD of TYPE. The
 * one definition every subcommand shares. */
#define COMM_STALL_OPTION(TYPE, FIELD)                                                                              \
  {.name = "stall-timeout", .type = OT_FLOAT, .offset = offsetof(TYPE, FIELD),                                    \
   .def = COMM_STR(COMM_STALL_TIMEOUT_DEFAULT), .metavar = "SECONDS", .min = 0, .max = HUGE_VAL,                   \
   .flags = OPT_RANGED, .word = "off", .word_value = 0,                                                            \
   .help = "stall inspector: when no rank has made progress for this long while one waits for the others, find "  \
           "out which ranks have not arrived and what they are doing, print it and abort the job instead of "     \
           "hanging; off = never"}

/* ==== Stop signals ====
 *
 * Between mt_comm_stop_catch and mt_comm_stop_release, SIGTERM, SIGINT and SIGUSR1 (a scheduler, a user, Slurm before
 * the time limit) only record the signal. Long loops check mt_comm_stop_signal between chunks and unwind through
 * their normal error path: training after the step, with a checkpoint; the writers (predict, synth, convert)
 * abandoning their output and removing its temporary. The inspector thread passes a stop on to every rank, so a
 * signal that reaches one rank stops them all. A second SIGINT ends the process at once. Not collective. */
void mt_comm_stop_catch(void);
void mt_comm_stop_release(void);
int mt_comm_stop_signal(void);             /* the signal (since the last mt_comm_stop_catch), or 0 */
const char *mt_comm_signal_name(int sig);  /* "SIGTERM" */
/* Collective, for a command that failed (err agreed, failed on every rank): rank 0 prints the message, and every
 * rank gets the exit code: 128 + the signal when a stop signal reached any rank ("mpitrain: <msg>": an
 * interruption, not an error), else 1 ("mpitrain: error: <msg>"). */
int mt_comm_fail_exit(Comm *c, const MtError *err);

/* 64-bit FNV-1a of a byte buffer (used for replica checks; exposed for tests). Not collective. */
uint64_t mt_comm_hash(const void *buf, size_t bytes);

#endif
