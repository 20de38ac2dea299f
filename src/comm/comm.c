/* comm.c — the MPI layer: communicators, reductions, replica checks and agreeing on errors. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "mpitrain/comm.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mpitrain/gemm.h"
#include "mpitrain/util.h"

#ifdef MPITRAIN_SMPI
#include "mpitrain/sim.h"
/* SimGrid 3.32 models non-blocking allreduce as all-to-all copies of the whole buffer (sim.h): use the blocking,
 * correctly modelled one there. The simulation then shows no overlap: an upper bound on the step time. */
#define MPI_Iallreduce mt_sim_iallreduce
#endif

/* A failed MPI call inside a collective leaves the other ranks in an unknown state: abort the job with a message
 * that names the call and the rank rather than return something no one can agree on. */
#define MPI_CHECK(c, call)                                                                   \
  do {                                                                                       \
    int rc_ = (call);                                                                        \
    if (rc_ != MPI_SUCCESS) {                                                                \
      char s_[MPI_MAX_ERROR_STRING];                                                         \
      int l_ = 0;                                                                            \
      MPI_Error_string(rc_, s_, &l_);                                                        \
      mt_comm_abort((c), "%s failed at %s:%d: %s", #call, __FILE__, __LINE__, s_);              \
    }                                                                                        \
  } while (0)

static void wd_enter(Comm *c, const char *what);
static void wd_leave(Comm *c);

/* A blocking collective, visible to the stall inspector while it waits. */
#define COLL(c, what, call)  \
  do {                       \
    wd_enter((c), (what));   \
    MPI_CHECK((c), call);    \
    wd_leave((c));           \
  } while (0)

int mt_comm_init(Comm *c, MPI_Comm parent, MtError *err) {
  memset(c, 0, sizeof *c);
  c->comm = MPI_COMM_NULL;
  c->node = MPI_COMM_NULL;
  if (MPI_Comm_dup(parent, &c->comm) != MPI_SUCCESS) return mt_fail(err, "MPI_Comm_dup failed");
  MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(c->comm, &c->rank);
  MPI_Comm_size(c->comm, &c->size);
  MPI_Comm node;
  MPI_CHECK(c, MPI_Comm_split_type(c->comm, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node));
  mt_comm_set_node(c, node);
  return 0;
}

void mt_comm_set_node(Comm *c, MPI_Comm node) {
  if (c->node != MPI_COMM_NULL) MPI_Comm_free(&c->node);
  c->node = node;
  MPI_Comm_set_errhandler(c->node, MPI_ERRORS_RETURN);
  MPI_Comm_rank(c->node, &c->node_rank);
  MPI_Comm_size(c->node, &c->node_size);
  int leader = c->node_rank == 0;
  MPI_CHECK(c, MPI_Allreduce(&leader, &c->n_nodes, 1, MPI_INT, MPI_SUM, c->comm));
  int size_range[2] = {c->node_size, -c->node_size}; /* MIN of both: the smallest and the largest node */
  MPI_CHECK(c, MPI_Allreduce(MPI_IN_PLACE, size_range, 2, MPI_INT, MPI_MIN, c->comm));
  c->nodes_uniform = size_range[0] == -size_range[1];
  cpu_set_t set, node_set;
  CPU_ZERO(&set);
  c->node_cores = 1;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
    c->node_cores = CPU_COUNT(&set);
  else
    CPU_SET(0, &set); /* unknown: count this rank as one CPU */
  /* The node's CPUs are those any of its ranks may use: the union of their masks. Not the online count: under a
   * batch system a job sees all of a node's CPUs online but may run on a few (its cgroup's cpuset). */
  MPI_CHECK(c, MPI_Allreduce(&set, &node_set, (int)(sizeof set / sizeof(unsigned long)), MPI_UNSIGNED_LONG, MPI_BOR,
                             c->node));
  c->node_cpus = CPU_COUNT(&node_set) > 0 ? CPU_COUNT(&node_set) : 1;
}

void mt_comm_free(Comm *c) {
  mt_comm_watchdog_stop(c);
  if (c->node != MPI_COMM_NULL) MPI_Comm_free(&c->node);
  if (c->comm != MPI_COMM_NULL) MPI_Comm_free(&c->comm);
}

int mt_comm_agree(Comm *c, MtError *err) {
  /* Lowest failing rank and number of failing ranks in one reduction: {rank or size, -failed} under MIN
   * gives the rank; the count needs a SUM, so a second small reduction. Start-up phases only. */
  int mine = err->failed ? c->rank : c->size;
  int first = c->size;
  COLL(c, "error agreement", MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, c->comm));
  if (first == c->size) return 0;
  int failed = err->failed ? 1 : 0, n_failed = 0;
  MPI_CHECK(c, MPI_Allreduce(&failed, &n_failed, 1, MPI_INT, MPI_SUM, c->comm));
  char agreed[MT_ERROR_MSG];
  if (c->rank == first) memcpy(agreed, err->msg, sizeof agreed);
  MPI_CHECK(c, MPI_Bcast(agreed, (int)sizeof agreed, MPI_CHAR, first, c->comm));
  agreed[sizeof agreed - 1] = '\0';
  if (err->failed && c->rank != first && strcmp(err->msg, agreed) != 0) {
    fprintf(stderr, "mpitrain: rank %d: error: %s\n", c->rank, err->msg);
    fflush(stderr);
  }
  mt_error_clear(err);
  /* All ranks failing means the input is bad for everyone (an option, a file): say it once, without a rank. */
  if (n_failed == c->size)
    mt_fail(err, "%s", agreed);
  else if (n_failed == 1)
    mt_fail(err, "rank %d: %s", first, agreed);
  else
    mt_fail(err, "rank %d (and %d other rank%s): %s", first, n_failed - 1, n_failed > 2 ? "s" : "", agreed);
  return -1;
}

void mt_comm_report(const Comm *c, const MtError *err) {
  if (c->rank != 0 || !err->failed) return;
  fflush(stdout);
  fprintf(stderr, "mpitrain: error: %s\n", err->msg);
  fflush(stderr);
}

void mt_comm_allreduce_sum(Comm *c, float *buf, size_t n) {
  /* MPI counts are int: reduce in pieces of at most 2^30 elements. */
  const size_t piece = (size_t)1 << 30;
  for (size_t off = 0; off < n; off += piece) {
    int cnt = (int)(n - off < piece ? n - off : piece);
    COLL(c, "allreduce", MPI_Allreduce(MPI_IN_PLACE, buf + off, cnt, MPI_FLOAT, MPI_SUM, c->comm));
  }
}

void mt_comm_allreduce_sum_double(Comm *c, double *buf, size_t n) {
  COLL(c, "allreduce", MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, c->comm));
}

void mt_comm_allreduce(Comm *c, void *buf, int n, MPI_Datatype type, MPI_Op op, const char *what) {
  COLL(c, what, MPI_Allreduce(MPI_IN_PLACE, buf, n, type, op, c->comm));
}

void mt_comm_allgatherv(Comm *c, const void *send, int n, void *recv, const int *counts, const int *displs,
                     MPI_Datatype type, const char *what) {
  COLL(c, what, MPI_Allgatherv(send, n, type, recv, counts, displs, type, c->comm));
}

void mt_comm_bcast(Comm *c, void *buf, size_t bytes, int root) {
  const size_t piece = (size_t)1 << 30;
  for (size_t off = 0; off < bytes; off += piece) {
    int cnt = (int)(bytes - off < piece ? bytes - off : piece);
    COLL(c, "broadcast", MPI_Bcast((char *)buf + off, cnt, MPI_BYTE, root, c->comm));
  }
}

void mt_comm_send(Comm *c, const void *buf, int n, MPI_Datatype type, int dest, int tag, const char *what) {
  COLL(c, what, MPI_Send(buf, n, type, dest, tag, c->comm));
}

void mt_comm_recv(Comm *c, void *buf, int n, MPI_Datatype type, int src, int tag, const char *what) {
  COLL(c, what, MPI_Recv(buf, n, type, src, tag, c->comm, MPI_STATUS_IGNORE));
}

void mt_comm_wait_all(Comm *c, const char *what) {
  MPI_Request req;
  MPI_CHECK(c, MPI_Ibarrier(c->comm, &req));
  wd_enter(c, what);
  for (int done = 0;;) {
    MPI_CHECK(c, MPI_Test(&req, &done, MPI_STATUS_IGNORE));
    if (done) break;
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
  }
  wd_leave(c);
}

uint64_t mt_comm_hash(const void *buf, size_t bytes) {
  const unsigned char *p = buf;
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < bytes; i++) {
    h ^= p[i];
    h *= 1099511628211ULL;
  }
  return h;
}

int mt_comm_replicas_identical(Comm *c, const void *buf, size_t bytes) {
  unsigned long long h = mt_comm_hash(buf, bytes), lo = 0, hi = 0;
  COLL(c, "replica check", MPI_Allreduce(&h, &lo, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, c->comm));
  MPI_CHECK(c, MPI_Allreduce(&h, &hi, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, c->comm));
  return lo == hi;
}

/* This rank's host name as MPI gives it (buf: MPI_MAX_PROCESSOR_NAME bytes), "?" where MPI cannot say. */
static void host_name(char *buf) {
  int len = 0;
  if (MPI_Get_processor_name(buf, &len) != MPI_SUCCESS) snprintf(buf, MPI_MAX_PROCESSOR_NAME, "?");
}

void mt_comm_warn_oversubscribed(Comm *c) {
  /* Each node's first rank speaks for its node; the most crowded node is named (MAXLOC: the lowest rank of ties). */
  int mine[2] = {c->node_rank == 0 ? c->node_size - c->node_cpus : -1, c->rank}, worst[2];
  MPI_CHECK(c, MPI_Allreduce(mine, worst, 1, MPI_2INT, MPI_MAXLOC, c->comm));
  if (worst[0] <= 0) return;
  struct {
    int ranks, cpus;
    char host[MPI_MAX_PROCESSOR_NAME];
  } w = {c->node_size, c->node_cpus, "?"};
  if (c->rank == worst[1]) host_name(w.host);
  MPI_CHECK(c, MPI_Bcast(&w, (int)sizeof w, MPI_BYTE, worst[1], c->comm));
  if (c->rank != 0) return;
  /* Open MPI's ranks busy-poll while they wait in a collective: a descheduled peer makes every other rank spin
   * through its time slices, so steps get many times slower, not just shared. */
  fprintf(stderr,
          "mpitrain: warning: %d ranks share %d core%s on node %s: busy-polling ranks will slow each other; start at "
          "most %d rank%s per node (or bind with --cpus-per-task)\n",
          w.ranks, w.cpus, w.cpus == 1 ? "" : "s", w.host, w.cpus, w.cpus == 1 ? "" : "s");
  fflush(stderr);
}

void mt_comm_abort(const Comm *c, const char *fmt, ...) {
  char msg[MT_ERROR_MSG];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fflush(stdout);
  fprintf(stderr, "mpitrain: rank %d: fatal: %s\n", c ? c->rank : -1, msg);
  fflush(stderr);
  MPI_Abort(c && c->comm != MPI_COMM_NULL ? c->comm : MPI_COMM_WORLD, 1);
  abort(); /* MPI_Abort does not return; keep the compiler and the reader sure of it */
}

/* ==== Gradient reduction in buckets ==== */

const char *const mt_grad_comm_names[GRAD_COMM_COUNT + 1] = {"fp32", "bf16", NULL};
const char *const mt_allreduce_names[ALLREDUCE_COUNT + 1] = {"auto", "flat", "hier", NULL};

const char *mt_allreduce_refusal(const Comm *c, MtAllreduce algo, int shard, MtGradComm wire) {
  if (algo != ALLREDUCE_HIER || c->size == 1) return NULL;
  if (shard)
    return "the hierarchical reduction is for the replicated schedule; with --shard-optimizer the reduce-scatter "
           "and all-gather are flat (use --allreduce flat or auto)";
  if (wire == GRAD_COMM_BF16)
    return "the hierarchical reduction sends fp32; --grad-comm bf16 has its own reduction (use --allreduce flat or "
           "auto)";
  if (!c->nodes_uniform)
    return "the nodes have different numbers of ranks, and the hierarchical reduction splits each bucket into the "
           "same parts on every node; start as many ranks on each node (e.g. mpirun --map-by ppr:R:node) or use "
           "--allreduce flat";
  return NULL;
}

/* Measured on the emulated network at 2 hosts x 2 ranks (launch/multihost_bench.sh, 784-512-256-10, one fused
 * bucket, reduction alone, each host on a core of its own): hier 20.56 vs flat 19.27 ms at 1 Gb/s, 6.42 vs 4.28 ms at
 * 10 Gb/s (slower: three collectives' latencies where Open MPI's one already sends each byte across once). It wins
 * nowhere we could measure, so auto is flat; hier stays for clusters where it may (many ranks per node, slow links). */
MtAllreduce mt_allreduce_auto(const Comm *c, int shard, MtGradComm wire) {
  (void)c, (void)shard, (void)wire;
  return ALLREDUCE_FLAT;
}

enum { BF16_IDLE = 0, BF16_PARTS, BF16_SUMS };

/* --grad-comm bf16: the buffers and the receive side of each bucket's exchange of parts (this rank's part of bucket
 * b from every rank, one after the other: the rows mt_bf16_sum_rows adds). */
static int plan_bf16(GradSync *g, MtError *err) {
  const int N = g->c->size, k = g->n_buckets;
  if ((size_t)N * g->n_own > (size_t)INT32_MAX)
    return mt_fail(err, "--grad-comm bf16: %zu gradient values per rank are too many for MPI", g->n_own);
  g->wire = mt_alloc(sizeof(uint16_t) * (g->n ? g->n : 1), "the bf16 gradient", err);
  g->recv = g->wire ? mt_alloc(sizeof(uint16_t) * (g->n_own ? (size_t)N * g->n_own : 1), "the bf16 parts", err) : NULL;
  g->rcounts = malloc(sizeof(int) * (size_t)k * (size_t)N);
  g->rdispls = malloc(sizeof(int) * (size_t)k * (size_t)N);
  g->stage = calloc((size_t)k, 1);
  g->ef = g->recv ? mt_alloc(sizeof(float) * (g->n ? g->n : 1), "the bf16 rounding's residuals", err) : NULL;
  if (g->ef && !g->shard) g->ef_own = mt_alloc(sizeof(float) * (g->n_own ? g->n_own : 1), "the sums' residuals", err);
  if (err->failed) return -1;
  if (!g->shard && MPI_Comm_dup(g->c->comm, &g->gather_comm) != MPI_SUCCESS)
    return mt_fail(err, "MPI_Comm_dup failed planning the bf16 reduction");
  if (!g->rcounts || !g->rdispls || !g->stage) return mt_fail(err, "out of memory planning the bf16 reduction");
  for (int b = 0; b < k; b++)
    for (int r = 0; r < N; r++) {
      g->rcounts[b * N + r] = g->counts[b * N + g->c->rank];
      g->rdispls[b * N + r] = r * g->counts[b * N + g->c->rank];
    }
  return 0;
}

int mt_gradsync_create(GradSync *g, Comm *c, float *grads, size_t n, size_t n_tail, const size_t *boundaries, int nb,
                    size_t bucket_bytes, int shard, MtGradComm wire, MtAllreduce algo, MtError *err) {
  memset(g, 0, sizeof *g);
  g->c = c;
  g->grads = grads;
  g->n = n;
  g->n_tail = n_tail;
  g->shard = shard && c->size > 1;
  g->bf16 = wire == GRAD_COMM_BF16 && c->size > 1;
  g->hier = algo == ALLREDUCE_HIER && c->size > 1 && !g->shard && !g->bf16;
  g->gather_comm = MPI_COMM_NULL;
  g->hier_gather = g->cross = MPI_COMM_NULL;
  const size_t per = bucket_bytes / sizeof(float) > 0 ? bucket_bytes / sizeof(float) : 1;
  /* From the end: grow a bucket tensor by tensor until it holds at least `per` floats. */
  size_t *ends = calloc((size_t)nb + 1, sizeof *ends), *starts = calloc((size_t)nb + 1, sizeof *starts);
  if (ends == NULL || starts == NULL) {
    free(ends);
    free(starts);
    return mt_fail(err, "out of memory planning the gradient buckets");
  }
  int k = 0;
  size_t end = n;
  for (int i = nb - 2; i >= 0; i--) {
    if (end - boundaries[i] >= per || i == 0) {
      starts[k] = boundaries[i];
      ends[k] = end;
      k++;
      end = boundaries[i];
    }
  }
  if (k == 0) { /* n == 0 */
    starts[0] = ends[0] = 0;
    k = 1;
  }
  g->n_buckets = k;
  g->start = starts;
  g->end = ends;
  g->req = malloc(sizeof(MPI_Request) * (size_t)(k + 1));
  if (g->req == NULL) return mt_fail(err, "out of memory planning the gradient buckets");
  for (int b = 0; b <= k; b++) g->req[b] = MPI_REQUEST_NULL;
  if (!g->shard && !g->bf16 && !g->hier) return 0;

  /* The parts: of every rank, or (hier) of the node's ranks, where bucket 0's parts include the tail. */
  const int N = g->hier ? c->node_size : c->size, me = g->hier ? c->node_rank : c->rank;
  g->counts = malloc(sizeof(int) * (size_t)k * (size_t)N);
  g->displs = malloc(sizeof(int) * (size_t)k * (size_t)N);
  g->own_off = malloc(sizeof(size_t) * (size_t)k);
  g->own_moff = malloc(sizeof(size_t) * (size_t)k);
  if (!g->counts || !g->displs || !g->own_off || !g->own_moff) return mt_fail(err, "out of memory planning shards");
  for (int b = 0; b < k; b++) {
    size_t len = g->end[b] - g->start[b] + (g->hier && b == 0 ? n_tail : 0);
    if (len > (size_t)INT32_MAX) return mt_fail(err, "a gradient bucket of %zu floats is too large for MPI", len);
    for (int r = 0; r < N; r++) {
      int64_t lo, hi;
      mt_even_split((int64_t)len, r, N, &lo, &hi);
      g->counts[b * N + r] = (int)(hi - lo);
      g->displs[b * N + r] = (int)lo;
      if (r == me) {
        g->own_off[b] = g->start[b] + (size_t)lo;
        g->own_moff[b] = g->n_own;
        g->n_own += (size_t)(hi - lo);
      }
    }
  }
  g->own = mt_alloc(sizeof(float) * (g->n_own ? g->n_own : 1), "this rank's share of the gradient", err);
  if (g->own == NULL) return -1;
  if (g->hier) {
    g->stage = calloc((size_t)k, 1);
    if (g->stage == NULL) return mt_fail(err, "out of memory planning the hierarchical reduction");
    if (MPI_Comm_dup(c->node, &g->hier_gather) != MPI_SUCCESS ||
        MPI_Comm_split(c->comm, c->node_rank, c->rank, &g->cross) != MPI_SUCCESS)
      return mt_fail(err, "MPI_Comm_dup or _split failed planning the hierarchical reduction");
    MPI_Comm_set_errhandler(g->cross, MPI_ERRORS_RETURN);
  }
  return g->bf16 ? plan_bf16(g, err) : 0;
}

void mt_gradsync_free(GradSync *g) {
  if (g->bf16 && g->gather_comm != MPI_COMM_NULL) MPI_Comm_free(&g->gather_comm); /* bf16: it was initialised */
  if (g->hier && g->hier_gather != MPI_COMM_NULL) MPI_Comm_free(&g->hier_gather);  /* likewise */
  if (g->hier && g->cross != MPI_COMM_NULL) MPI_Comm_free(&g->cross);
  mt_free(g->ef_own);
  mt_free(g->ef);
  free(g->stage);
  free(g->rdispls);
  free(g->rcounts);
  mt_free(g->recv);
  mt_free(g->wire);
  mt_free(g->own);
  free(g->own_moff);
  free(g->own_off);
  free(g->displs);
  free(g->counts);
  free(g->req);
  free(g->end);
  free(g->start);
  memset(g, 0, sizeof *g);
}

/* bf16, bucket b's first stage: its bf16 copy (with the residual of the last one added; the new residual kept), and
 * every rank's copy of this rank's part to this rank. Blocking for
 * the one fused bucket (as the fp32 path is, for speed). The tail's fp32 allreduce rides with bucket 0. */
static void bf16_parts(GradSync *g, int b, int blocking) {
  Comm *c = g->c;
  const int N = c->size;
  const size_t s0 = g->start[b];
  mt_bf16_convert_ef(g->grads + s0, g->wire + s0, g->ef + s0, g->end[b] - s0);
  uint16_t *rb = g->recv + (size_t)N * g->own_moff[b];
  const int *sc = g->counts + b * N, *sd = g->displs + b * N, *rc = g->rcounts + b * N, *rd = g->rdispls + b * N;
  if (blocking) {
    if (g->n_tail > 0)
      COLL(c, "gradient reduction",
           MPI_Allreduce(MPI_IN_PLACE, g->grads + g->n, (int)g->n_tail, MPI_FLOAT, MPI_SUM, c->comm));
    COLL(c, "gradient reduction",
         MPI_Alltoallv(g->wire + s0, sc, sd, MPI_UINT16_T, rb, rc, rd, MPI_UINT16_T, c->comm));
  } else {
    if (b == 0 && g->n_tail > 0)
      MPI_CHECK(c, MPI_Iallreduce(MPI_IN_PLACE, g->grads + g->n, (int)g->n_tail, MPI_FLOAT, MPI_SUM, c->comm,
                                  &g->req[g->n_buckets]));
    MPI_CHECK(c, MPI_Ialltoallv(g->wire + s0, sc, sd, MPI_UINT16_T, rb, rc, rd, MPI_UINT16_T, c->comm, &g->req[b]));
  }
  g->stage[b] = BF16_PARTS;
}

/* bf16, bucket b's parts have arrived: their fp32 sum in rank order (a fixed order, so the result does not depend on
 * MPI's timing); replicated, then the sums' bf16 copy (error feedback as for the parts) to every rank, in place in
 * wire (this rank's part of wire was sent already). */
static void bf16_sums(GradSync *g, int b, int blocking) {
  Comm *c = g->c;
  const int N = c->size;
  const int cnt = g->counts[b * N + c->rank];
  float *own = g->own + g->own_moff[b];
  mt_bf16_sum_rows(g->recv + (size_t)N * g->own_moff[b], N, (size_t)cnt, own, (size_t)cnt);
  g->stage[b] = BF16_SUMS;
  if (g->shard) return;
  mt_bf16_convert_ef(own, g->wire + g->own_off[b], g->ef_own + g->own_moff[b], (size_t)cnt);
  uint16_t *wb = g->wire + g->start[b];
  if (blocking)
    COLL(c, "gradient reduction", MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, wb, g->counts + b * N,
                                                 g->displs + b * N, MPI_UINT16_T, c->comm));
  else
    MPI_CHECK(c, MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, wb, g->counts + b * N, g->displs + b * N,
                                 MPI_UINT16_T, g->gather_comm, &g->req[b]));
}

/* bf16, bucket b's next stage (stages_progress, stages_finish): the exchange of parts, then the sums. */
static void bf16_next(GradSync *g, int b, int blocking) {
  if (g->stage[b] == BF16_IDLE)
    bf16_parts(g, b, blocking);
  else
    bf16_sums(g, b, blocking);
}

enum { HIER_IDLE = 0, HIER_NODE, HIER_CROSS, HIER_GATHER };

/* hier, bucket b's next stage (see comm.h): the reduce-scatter within the node, the allreduce of this rank's part
 * across the nodes, the all-gather within the node. */
static void hier_next(GradSync *g, int b, int blocking) {
  Comm *c = g->c;
  const int R = c->node_size;
  float *part = g->own + g->own_moff[b], *bucket = g->grads + g->start[b];
  const int cnt = g->counts[b * R + c->node_rank], *counts = g->counts + b * R, *displs = g->displs + b * R;
  MPI_Request *req = &g->req[b];
  switch (g->stage[b]++) {
  case HIER_IDLE:
    if (blocking)
      COLL(c, "gradient reduction", MPI_Reduce_scatter(bucket, part, counts, MPI_FLOAT, MPI_SUM, c->node));
    else
      MPI_CHECK(c, MPI_Ireduce_scatter(bucket, part, counts, MPI_FLOAT, MPI_SUM, c->node, req));
    break;
  case HIER_NODE:
    if (blocking)
      COLL(c, "gradient reduction", MPI_Allreduce(MPI_IN_PLACE, part, cnt, MPI_FLOAT, MPI_SUM, g->cross));
    else
      MPI_CHECK(c, MPI_Iallreduce(MPI_IN_PLACE, part, cnt, MPI_FLOAT, MPI_SUM, g->cross, req));
    break;
  default:
    if (blocking)
      COLL(c, "gradient reduction", MPI_Allgatherv(part, cnt, MPI_FLOAT, bucket, counts, displs, MPI_FLOAT, c->node));
    else
      MPI_CHECK(c, MPI_Iallgatherv(part, cnt, MPI_FLOAT, bucket, counts, displs, MPI_FLOAT, g->hier_gather, req));
  }
}

/* Buckets in stages (bf16: parts, sums; hier: node, cross, gather), one request each: bucket b's next stage starts
 * when its current one has completed and bucket b - 1 has started that stage already. Each stage has its own
 * communicator, and non-blocking collectives on one must start in the same order on every rank, while when a test
 * sees a request complete differs from rank to rank.
 * (A completed request that MPI_Testall set to MPI_REQUEST_NULL tests as complete.) */
static void stages_progress(GradSync *g, int last, void (*next)(GradSync *, int, int)) {
  for (int b = 0; b < g->launched; b++)
    while (g->stage[b] < last && (b == 0 || g->stage[b - 1] > g->stage[b])) {
      int done = 0;
      MPI_CHECK(g->c, MPI_Test(&g->req[b], &done, MPI_STATUS_IGNORE));
      if (!done) return;
      next(g, b, 0);
    }
}

/* Every bucket through every stage: blocking collectives for one fused bucket, else in bucket order. */
static void stages_finish(GradSync *g, int last, void (*next)(GradSync *, int, int)) {
  Comm *c = g->c;
  if (g->n_buckets == 1) {
    while (g->stage[0] < last) next(g, 0, 1);
  } else {
    while (g->launched < g->n_buckets) next(g, g->launched++, 0);
    for (int b = 0; b < g->n_buckets; b++)
      while (g->stage[b] < last) {
        COLL(c, "gradient reduction", MPI_Wait(&g->req[b], MPI_STATUS_IGNORE));
        next(g, b, 0);
      }
    COLL(c, "gradient reduction", MPI_Waitall(g->n_buckets + 1, g->req, MPI_STATUSES_IGNORE));
  }
  memset(g->stage, 0, (size_t)g->n_buckets);
  g->launched = 0;
}

static void launch(GradSync *g, int b) {
  Comm *c = g->c;
  if (g->bf16 || g->hier) { /* their first stage */
    (g->bf16 ? bf16_next : hier_next)(g, b, 0);
    return;
  }
  if (!g->shard) {
    /* Bucket 0 carries the tail, which sits right after the buffer. */
    size_t len = g->end[b] - g->start[b] + (b == 0 ? g->n_tail : 0);
    if (len > 0)
      MPI_CHECK(c, MPI_Iallreduce(MPI_IN_PLACE, g->grads + g->start[b], (int)len, MPI_FLOAT, MPI_SUM, c->comm,
                                  &g->req[b]));
    return;
  }
  if (b == 0 && g->n_tail > 0)
    MPI_CHECK(c, MPI_Iallreduce(MPI_IN_PLACE, g->grads + g->n, (int)g->n_tail, MPI_FLOAT, MPI_SUM, c->comm,
                                &g->req[g->n_buckets]));
  const int N = c->size;
  MPI_CHECK(c, MPI_Ireduce_scatter(g->grads + g->start[b], g->own + g->own_moff[b], g->counts + b * N, MPI_FLOAT,
                                   MPI_SUM, c->comm, &g->req[b]));
}

void mt_gradsync_ready(GradSync *g, size_t offset) {
  if (g->c->size == 1 || g->n_buckets == 1) return; /* one bucket: fused, blocking, in mt_gradsync_finish */
  while (g->launched < g->n_buckets && g->start[g->launched] >= offset) launch(g, g->launched++);
  if (g->bf16) stages_progress(g, BF16_SUMS, bf16_next);
  if (g->hier) stages_progress(g, HIER_GATHER, hier_next);
  int done = 0;
  MPI_CHECK(g->c, MPI_Testall(g->n_buckets + 1, g->req, &done, MPI_STATUSES_IGNORE));
}

void mt_gradsync_finish(GradSync *g) {
  if (g->c->size == 1) return;
  double t0 = MPI_Wtime();
  if (g->bf16 || g->hier) {
    stages_finish(g, g->bf16 ? BF16_SUMS : HIER_GATHER, g->bf16 ? bf16_next : hier_next);
    if (g->bf16 && !g->shard) mt_bf16_widen(g->wire, g->grads, g->n); /* the gathered bf16 sums */
    g->reduce_wait += MPI_Wtime() - t0;
    return;
  }
  if (g->n_buckets == 1) {
    /* One fused bucket: nothing to overlap with, so the blocking collective, whose tuned algorithms Open MPI runs
     * 1.5-2.5x faster than the non-blocking ones of the same size (measured: bench). */
    Comm *c = g->c;
    if (!g->shard) {
      COLL(c, "gradient reduction", MPI_Allreduce(MPI_IN_PLACE, g->grads, (int)(g->n + g->n_tail), MPI_FLOAT,
                                                  MPI_SUM, c->comm));
    } else {
      if (g->n_tail > 0)
        COLL(c, "gradient reduction",
             MPI_Allreduce(MPI_IN_PLACE, g->grads + g->n, (int)g->n_tail, MPI_FLOAT, MPI_SUM, c->comm));
      COLL(c, "gradient reduction",
           MPI_Reduce_scatter(g->grads, g->own, g->counts, MPI_FLOAT, MPI_SUM, c->comm));
    }
    g->reduce_wait += MPI_Wtime() - t0;
    return;
  }
  while (g->launched < g->n_buckets) launch(g, g->launched++);
  COLL(g->c, "gradient reduction", MPI_Waitall(g->n_buckets + 1, g->req, MPI_STATUSES_IGNORE));
  g->launched = 0;
  g->reduce_wait += MPI_Wtime() - t0;
}

void mt_gradsync_allgather(GradSync *g, float *params) {
  if (!g->shard) return;
  Comm *c = g->c;
  const int N = c->size;
  if (g->n_buckets == 1) {
    COLL(c, "parameter all-gather", MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, params, g->counts, g->displs,
                                                   MPI_FLOAT, c->comm));
    return;
  }
  for (int b = 0; b < g->n_buckets; b++)
    MPI_CHECK(c, MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, params + g->start[b], g->counts + b * N,
                                 g->displs + b * N, MPI_FLOAT, c->comm, &g->req[b]));
  COLL(c, "parameter all-gather", MPI_Waitall(g->n_buckets, g->req, MPI_STATUSES_IGNORE));
}

void mt_gradsync_gather(GradSync *g, const float *own, float *full, int root) {
  Comm *c = g->c;
  const int N = c->size;
  for (int b = 0; b < g->n_buckets; b++)
    MPI_CHECK(c, MPI_Gatherv(own + g->own_moff[b], g->counts[b * N + c->rank], MPI_FLOAT,
                             c->rank == root ? full + g->start[b] : NULL, g->counts + b * N, g->displs + b * N,
                             MPI_FLOAT, root, c->comm));
}

void mt_gradsync_scatter(GradSync *g, const float *full, float *own, int root) {
  Comm *c = g->c;
  const int N = c->size;
  for (int b = 0; b < g->n_buckets; b++)
    MPI_CHECK(c, MPI_Scatterv(c->rank == root ? full + g->start[b] : NULL, g->counts + b * N, g->displs + b * N,
                              MPI_FLOAT, own + g->own_moff[b], g->counts[b * N + c->rank], MPI_FLOAT, root,
                              c->comm));
}

void mt_gradsync_residuals_gather(GradSync *g, float *worker, float *server, int root) {
  if (g->ef == NULL) return;
  Comm *c = g->c;
  COLL(c, "checkpoint", MPI_Gather(g->ef, (int)g->n, MPI_FLOAT, worker, (int)g->n, MPI_FLOAT, root, c->comm));
  if (g->ef_own) mt_gradsync_gather(g, g->ef_own, server, root);
}

void mt_gradsync_residuals_scatter(GradSync *g, float *worker, int ranks, const float *server, int root) {
  if (g->ef == NULL) return;
  Comm *c = g->c;
  const size_t n = g->n;
  const int same = ranks == c->size, is_root = c->rank == root;
  /* What root keeps: its own row at the same count, else the rows' total; then, sharded, the owners' residuals,
   * which no rank rounds here, as part of what root sends. Either way the ranks' sum owes what the file did. */
  float *mine = is_root && ranks > 0 ? worker + (same ? (size_t)root * n : 0) : NULL;
  for (int r = 1; mine && !same && r < ranks; r++)
    for (size_t i = 0; i < n; i++) mine[i] += worker[(size_t)r * n + i];
  if (is_root && server && !g->ef_own) {
    if (mine == NULL) mine = memset(g->ef, 0, sizeof(float) * n); /* no rows: root starts from 0 */
    for (size_t i = 0; i < n; i++) mine[i] += server[i];
  }
  if (same)
    COLL(c, "resume", MPI_Scatter(worker, (int)n, MPI_FLOAT, g->ef, (int)n, MPI_FLOAT, root, c->comm));
  else if (mine != NULL && mine != g->ef)
    memcpy(g->ef, mine, sizeof(float) * n);
  else if (mine == NULL)
    memset(g->ef, 0, sizeof(float) * n);
  if (g->ef_own == NULL) return;
  int has_server = is_root && server != NULL;
  MPI_CHECK(c, MPI_Bcast(&has_server, 1, MPI_INT, root, c->comm));
  if (has_server)
    mt_gradsync_scatter(g, server, g->ef_own, root);
  else
    memset(g->ef_own, 0, sizeof(float) * g->n_own);
}

/* ==== Memory shared by the ranks of a node ==== */

int mt_comm_shared_alloc(Comm *c, size_t bytes, CommShared *sh, int *owner, MtError *err) {
  memset(sh, 0, sizeof *sh);
  sh->win = MPI_WIN_NULL;
  *owner = c->node_rank == 0;
  MPI_Aint size = *owner ? (MPI_Aint)bytes : 0;
  void *mine = NULL;
  if (MPI_Win_allocate_shared(size, 1, MPI_INFO_NULL, c->node, &mine, &sh->win) != MPI_SUCCESS)
    return mt_fail(err, "cannot allocate %.1f MiB of node-shared memory (MPI_Win_allocate_shared)",
                   bytes / 1048576.0);
  MPI_Aint got = 0;
  int disp = 0;
  MPI_CHECK(c, MPI_Win_shared_query(sh->win, 0, &got, &disp, &sh->base));
  sh->bytes = bytes;
  return 0;
}

void mt_comm_shared_sync(Comm *c, CommShared *sh) {
  /* The formal recipe for shared windows (MPI-3.1 §11.8): a passive epoch, MPI_Win_sync on both sides of a barrier,
   * so the owner's stores are complete and visible before anyone loads. */
  MPI_CHECK(c, MPI_Win_lock_all(MPI_MODE_NOCHECK, sh->win));
  MPI_CHECK(c, MPI_Win_sync(sh->win));
  COLL(c, "node barrier", MPI_Barrier(c->node));
  MPI_CHECK(c, MPI_Win_sync(sh->win));
  MPI_CHECK(c, MPI_Win_unlock_all(sh->win));
}

void mt_comm_shared_free(CommShared *sh) {
  if (sh->win != MPI_WIN_NULL) MPI_Win_free(&sh->win);
  memset(sh, 0, sizeof *sh);
  sh->win = MPI_WIN_NULL;
}

/* ==== Stop signals ==== */

/* The signal that asked this process to stop (0: none). A lock-free atomic: safe to store from a handler and to
 * read from the inspector thread. */
static atomic_int stop_sig;
static struct sigaction stop_old[3];
static const int stop_signals[3] = {SIGTERM, SIGINT, SIGUSR1};

static void on_stop_signal(int sig) {
  if (atomic_load(&stop_sig) != 0 && sig == SIGINT) { /* a second Ctrl-C: the user means it */
    signal(SIGINT, SIG_DFL);
    raise(SIGINT);
  }
  atomic_store(&stop_sig, sig);
}

void mt_comm_stop_catch(void) {
  atomic_store(&stop_sig, 0);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sa.sa_flags = SA_RESTART; /* a write(2) in the middle of a chunk completes; the loop checks between chunks */
  sigemptyset(&sa.sa_mask);
  for (int i = 0; i < 3; i++) sigaction(stop_signals[i], &sa, &stop_old[i]);
}

void mt_comm_stop_release(void) {
  for (int i = 0; i < 3; i++) sigaction(stop_signals[i], &stop_old[i], NULL);
}

int mt_comm_stop_signal(void) { return atomic_load(&stop_sig); }

const char *mt_comm_signal_name(int sig) {
  switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGUSR1: return "SIGUSR1";
    default: return "a signal";
  }
}

int mt_comm_fail_exit(Comm *c, const MtError *err) {
  int sig = mt_comm_stop_signal();
  mt_comm_allreduce(c, &sig, 1, MPI_INT, MPI_MAX, "error agreement");
  if (c->rank == 0 && err->failed) {
    fflush(stdout);
    fprintf(stderr, sig ? "mpitrain: %s\n" : "mpitrain: error: %s\n", err->msg);
    fflush(stderr);
  }
  return sig ? 128 + sig : 1;
}

/* ==== Stall inspector ==== */

enum { WD_QUERY = 1, WD_STATE = 2, WD_STOP = 3 };

enum { WD_HOST = 64 }; /* bytes kept of a host name (MPI_Get_processor_name) */
struct Watchdog {
  pthread_t thread;
  MPI_Comm comm;                  /* a duplicate: the inspector's messages never meet the application's */
  atomic_llong timeout_us;        /* 0: never report */
  atomic_int stop;
  int stop_sent;                  /* inspector thread only: this rank's stop signal was passed on (the value) */
  atomic_llong progress_us;       /* the last sign of life: a phase or step change, entering or leaving a wait */
  _Atomic(const char *) phase;    /* set by the main thread ... */
  atomic_llong phase_since_us;
  atomic_llong step;
  _Atomic(const char *) coll;     /* ... the collective it waits in, or NULL */
  atomic_llong coll_since_us;
  char (*host)[WD_HOST];          /* every rank's host name, gathered at start: a silent rank cannot tell its own */
};

/* What one rank tells the inspector. */
typedef struct WdState {
  int rank, in_coll;
  double coll_s, phase_s, progress_s;
  long long step;
  char phase[40], coll[40];
} WdState;

/* The watchdog's shared timestamps are atomic integers: microseconds of mt_now's clock. */
static long long now_us(void) { return (long long)(mt_now() * 1e6); }

static void wd_enter(Comm *c, const char *what) {
  if (c->wd == NULL) return;
  long long t = now_us();
  atomic_store(&c->wd->coll_since_us, t);
  atomic_store(&c->wd->progress_us, t);
  atomic_store(&c->wd->coll, what);
}

static void wd_leave(Comm *c) {
  if (c->wd == NULL) return;
  atomic_store(&c->wd->coll, (const char *)NULL);
  atomic_store(&c->wd->progress_us, now_us());
}

/* Fault injection for the inspector's tests: MPITRAIN_TEST_STOP=RANK:PHASE makes that rank SIGSTOP itself (every
 * thread, the inspector's too) the first time it enters PHASE, as if someone had frozen it. Read once. */
static void test_stop(const Comm *c, const char *phase) {
  static int parsed = 0, rank = -1;
  static char name[40];
  if (!parsed) {
    parsed = 1;
    const char *e = getenv("MPITRAIN_TEST_STOP");
    if (e == NULL || sscanf(e, "%d:%39[a-z ]", &rank, name) != 2) rank = -1;
  }
  if (rank == c->rank && strcmp(phase, name) == 0) {
    rank = -1;
    raise(SIGSTOP);
  }
}

void mt_comm_phase(Comm *c, const char *phase, int64_t step) {
  if (c->wd == NULL) return;
  int moved = atomic_exchange(&c->wd->step, (long long)step) != (long long)step;
  if (atomic_load(&c->wd->phase) != phase) {
    atomic_store(&c->wd->phase_since_us, now_us());
    atomic_store(&c->wd->phase, phase);
    moved = 1;
    test_stop(c, phase);
  }
  if (moved) atomic_store(&c->wd->progress_us, now_us());
}

static WdState wd_state(const Comm *c) {
  Watchdog *w = c->wd;
  WdState s;
  memset(&s, 0, sizeof s);
  long long t = now_us();
  const char *coll = atomic_load(&w->coll), *phase = atomic_load(&w->phase);
  s.rank = c->rank;
  s.in_coll = coll != NULL;
  s.coll_s = coll ? (t - atomic_load(&w->coll_since_us)) / 1e6 : 0;
  s.phase_s = (t - atomic_load(&w->phase_since_us)) / 1e6;
  s.progress_s = (t - atomic_load(&w->progress_us)) / 1e6;
  s.step = atomic_load(&w->step);
  snprintf(s.phase, sizeof s.phase, "%s", phase ? phase : "?");
  snprintf(s.coll, sizeof s.coll, "%s", coll ? coll : "");
  return s;
}

/* Passes this rank's stop signal on to every other rank, once; takes one passed on by another rank. */
static void wd_stops(Comm *c) {
  Watchdog *w = c->wd;
  for (;;) {
    int flag = 0;
    MPI_Status st;
    if (MPI_Iprobe(MPI_ANY_SOURCE, WD_STOP, w->comm, &flag, &st) != MPI_SUCCESS || !flag) break;
    int sig = 0;
    MPI_Recv(&sig, 1, MPI_INT, st.MPI_SOURCE, WD_STOP, w->comm, MPI_STATUS_IGNORE);
    if (w->stop_sent == 0) w->stop_sent = sig; /* already everywhere: do not echo it */
    int none = 0;
    atomic_compare_exchange_strong(&stop_sig, &none, sig);
  }
  int sig = atomic_load(&stop_sig);
  if (sig == 0 || w->stop_sent != 0) return;
  w->stop_sent = sig;
  for (int r = 0; r < c->size; r++)
    if (r != c->rank) {
      MPI_Request q;
      MPI_Isend(&w->stop_sent, 1, MPI_INT, r, WD_STOP, w->comm, &q);
      MPI_Request_free(&q);
    }
}

/* Answers every pending query. */
static void wd_serve(Comm *c) {
  for (;;) {
    int flag = 0;
    MPI_Status st;
    if (MPI_Iprobe(MPI_ANY_SOURCE, WD_QUERY, c->wd->comm, &flag, &st) != MPI_SUCCESS || !flag) return;
    int who = 0;
    MPI_Recv(&who, 1, MPI_INT, st.MPI_SOURCE, WD_QUERY, c->wd->comm, MPI_STATUS_IGNORE);
    WdState s = wd_state(c);
    MPI_Send(&s, (int)sizeof s, MPI_BYTE, st.MPI_SOURCE, WD_STATE, c->wd->comm);
  }
}

static void nap(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  nanosleep(&ts, NULL);
}

/* "0-3,5,7-9" from a sorted list. */
static void ranges(const int *r, int n, char *buf, size_t len) {
  size_t p = 0;
  buf[0] = '\0';
  for (int i = 0; i < n && p < len; i++) {
    int j = i;
    while (j + 1 < n && r[j + 1] == r[j] + 1) j++;
    p += (size_t)snprintf(buf + p, len - p, "%s%d", i ? "," : "", r[i]);
    if (j > i && p < len) p += (size_t)snprintf(buf + p, len - p, "-%d", r[j]);
    i = j;
  }
}

/* Appends "; on host H1, H2" (each host of the ranks r[0..n) once) to line at p; returns the new p. On a cluster the
 * host is what an operator looks at: a whole node stopped shows as one name. */
static int wd_hosts(const Watchdog *w, const int *r, int n, char *line, size_t len, int p) {
  int shown = 0;
  for (int i = 0; i < n && p < (int)len; i++) {
    int seen = 0;
    for (int j = 0; j < i && !seen; j++) seen = strcmp(w->host[r[j]], w->host[r[i]]) == 0;
    if (seen) continue;
    p += snprintf(line + p, len - (size_t)p, "%s%s", shown++ ? ", " : ", on host ", w->host[r[i]]);
  }
  return p;
}

/* This rank has waited too long: ask everyone. If some rank has shown a sign of life within the timeout (it is
 * busy and moving: writing chunks others wait for), this is a slow phase, not a stall: returns the seconds until
 * that sign is a timeout old. Otherwise the lowest waiting rank says what is going on and aborts the job. */
static double wd_report(Comm *c, WdState me) {
  Watchdog *w = c->wd;
  const int N = c->size;
  WdState *all = calloc((size_t)N, sizeof *all);
  char *got = calloc((size_t)N, 1);
  int *waiting = calloc((size_t)N, sizeof(int)), *late = calloc((size_t)N, sizeof(int));
  if (!all || !got || !waiting || !late) MPI_Abort(MPI_COMM_WORLD, 1);
  double again = 0, timeout = atomic_load(&w->timeout_us) / 1e6;
  all[c->rank] = me;
  got[c->rank] = 1;
  for (int r = 0; r < N; r++)
    if (r != c->rank) {
      MPI_Request q;
      MPI_Isend(&c->rank, 1, MPI_INT, r, WD_QUERY, w->comm, &q);
      MPI_Request_free(&q);
    }
  /* Replies for up to 5 s; keep answering others' questions meanwhile. */
  long long deadline = now_us() + 5000000;
  int have = 1;
  while (have < N && now_us() < deadline) {
    wd_serve(c);
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, WD_STATE, w->comm, &flag, &st);
    if (!flag) {
      nap(0.01);
      continue;
    }
    WdState s;
    MPI_Recv(&s, (int)sizeof s, MPI_BYTE, st.MPI_SOURCE, WD_STATE, w->comm, MPI_STATUS_IGNORE);
    if (s.rank >= 0 && s.rank < N && !got[s.rank]) {
      all[s.rank] = s;
      got[s.rank] = 1;
      have++;
    }
  }
  if (atomic_load(&w->coll) == NULL) goto out; /* it moved on while we asked: a slow step, not a stall */
  for (int r = 0; r < N; r++)
    if (got[r] && all[r].progress_s < timeout && timeout - all[r].progress_s > again) again = timeout - all[r].progress_s;
  if (again > 0) goto out;
  int nw = 0, nl = 0, lowest_waiting = -1;
  for (int r = 0; r < N; r++) {
    if (!got[r]) continue;
    if (all[r].in_coll) {
      waiting[nw++] = r;
      if (lowest_waiting < 0) lowest_waiting = r;
    } else {
      late[nl++] = r;
    }
  }
  if (lowest_waiting != c->rank) {
    /* A lower rank reports; if it cannot (it died before printing), this one does after a while. */
    long long until = now_us() + 10000000;
    while (now_us() < until && !atomic_load(&w->stop)) {
      wd_serve(c);
      nap(0.05);
    }
  }
  char line[2048], list[512];
  int p = snprintf(line, sizeof line, "mpitrain: stall: no progress for %.0f s in the %s of step %lld", me.coll_s,
                   me.coll, me.step);
  ranges(waiting, nw, list, sizeof list);
  p += snprintf(line + p, sizeof line - (size_t)p, "; waiting there: rank%s %s", nw == 1 ? "" : "s", list);
  for (int i = 0; i < nl && p < (int)sizeof line; i++) {
    const WdState *s = &all[late[i]];
    p += snprintf(line + p, sizeof line - (size_t)p, "; rank %d has not arrived: in phase '%s' for %.0f s (step %lld)",
                  s->rank, s->phase, s->phase_s, s->step);
  }
  int nm = 0;
  for (int r = 0; r < N; r++)
    if (!got[r]) late[nm++] = r;
  if (nm > 0 && p < (int)sizeof line) {
    ranges(late, nm, list, sizeof list);
    p += snprintf(line + p, sizeof line - (size_t)p, "; rank%s %s did not answer (stopped, or hung in the kernel?)",
                  nm == 1 ? "" : "s", list);
    p = wd_hosts(w, late, nm, line, sizeof line, p);
  }
  if (p < (int)sizeof line) snprintf(line + p, sizeof line - (size_t)p, ". Aborting the job (--stall-timeout %g).",
                                     timeout);
  fprintf(stderr, "%s\n", line);
  fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 3);
out:
  free(late);
  free(waiting);
  free(got);
  free(all);
  return again;
}

static void *wd_main(void *arg) {
  Comm *c = arg;
  Watchdog *w = c->wd;
  long long quiet_until = 0; /* after a slow phase: when to ask again */
  while (!atomic_load(&w->stop)) {
    wd_serve(c);
    wd_stops(c);
    const char *coll = atomic_load(&w->coll);
    long long timeout = atomic_load(&w->timeout_us), t = now_us();
    if (coll != NULL && timeout > 0 && t - atomic_load(&w->coll_since_us) > timeout && t >= quiet_until) {
      WdState me = wd_state(c);
      if (me.in_coll) quiet_until = now_us() + (long long)(wd_report(c, me) * 1e6);
    }
    nap(0.1);
  }
  return NULL;
}

void mt_comm_watchdog_timeout(Comm *c, double timeout_s) {
  if (c->wd != NULL) atomic_store(&c->wd->timeout_us, timeout_s > 0 ? (long long)(timeout_s * 1e6) : 0);
}

int mt_comm_watchdog_start(Comm *c, double timeout_s, MtError *err) {
  if (c->wd != NULL) {
    mt_comm_watchdog_timeout(c, timeout_s);
    return 0;
  }
#ifdef MPITRAIN_SMPI
  return 0; /* simulated ranks are threads of one process already; a simulated stall is not a real one */
#endif
  int level = 0;
  MPI_Query_thread(&level);
  if (level < MPI_THREAD_MULTIPLE)
    return 0; /* the MPI library cannot host the inspector's thread: go on without it (README says so) */
  Watchdog *w = calloc(1, sizeof *w);
  if (w == NULL) return mt_fail(err, "out of memory starting the stall inspector");
  atomic_store(&w->phase, "startup");
  atomic_store(&w->phase_since_us, now_us());
  atomic_store(&w->progress_us, now_us());
  c->wd = w; /* for mt_comm_watchdog_timeout; unset again below if the thread cannot start */
  mt_comm_watchdog_timeout(c, timeout_s);
  c->wd = NULL;
  if (MPI_Comm_dup(c->comm, &w->comm) != MPI_SUCCESS) {
    free(w);
    return mt_fail(err, "MPI_Comm_dup failed starting the stall inspector");
  }
  char me[MPI_MAX_PROCESSOR_NAME];
  host_name(me);
  w->host = calloc((size_t)c->size, sizeof *w->host);
  if (w->host != NULL) snprintf(w->host[c->rank], WD_HOST, "%.*s", WD_HOST - 1, me); /* kept: its first bytes */
  /* Collective even where this rank's calloc failed (any failure is agreed by the caller's next mt_comm_agree). */
  int ok = w->host != NULL, all_ok = 0;
  if (MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, w->comm) != MPI_SUCCESS || !all_ok ||
      MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, w->host, WD_HOST, MPI_CHAR, w->comm) != MPI_SUCCESS) {
    MPI_Comm_free(&w->comm);
    free(w->host);
    free(w);
    return mt_fail(err, "cannot gather the host names for the stall inspector");
  }
  c->wd = w;
  if (pthread_create(&w->thread, NULL, wd_main, c) != 0) {
    c->wd = NULL;
    MPI_Comm_free(&w->comm);
    free(w->host);
    free(w);
    return mt_fail(err, "cannot start the stall inspector's thread");
  }
  return 0;
}

void mt_comm_watchdog_stop(Comm *c) {
  Watchdog *w = c->wd;
  if (w == NULL) return;
  atomic_store(&w->stop, 1);
  pthread_join(w->thread, NULL);
  c->wd = NULL;
  /* Every rank stops its thread before freeing the communicator, so no query is left in flight to a rank whose
   * inspector has gone; a barrier on the inspector's own communicator makes sure of it. */
  MPI_Barrier(w->comm);
  int flag = 0;
  MPI_Status st;
  while (MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, w->comm, &flag, &st) == MPI_SUCCESS && flag) {
    char junk[sizeof(WdState)];
    MPI_Recv(junk, (int)sizeof junk, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, w->comm, MPI_STATUS_IGNORE);
  }
  MPI_Comm_free(&w->comm);
  free(w->host);
  free(w);
}
