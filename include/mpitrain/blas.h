/* blas.h — what mpitrain needs to know about OpenBLAS: which kernels it runs and how many threads.
 *
 * OpenBLAS 0.3.21 (Debian 12) does not recognise recent Xeons and silently falls back to its "Prescott" (SSE3)
 * kernels, 4-6x slower than the AVX-512 ones the CPU can run. It picks its kernels when the library is loaded, so
 * the fix has to happen before that: mt_blas_fix_coretype() sets OPENBLAS_CORETYPE and re-executes the program,
 * before MPI_Init (which is safe: the process keeps its PID, environment and file descriptors). */
#ifndef MPITRAIN_BLAS_H
#define MPITRAIN_BLAS_H

#include <stddef.h>

#include "mpitrain/error.h"

/* CPU capability levels, in increasing order. */
typedef enum CpuLevel { CPU_SSE3 = 0, CPU_AVX, CPU_AVX2, CPU_AVX512 } CpuLevel;

/* What this CPU supports (from cpuid, and the OS saving the registers). */
CpuLevel mt_blas_cpu_level(void);

/* The capability level an OpenBLAS core name needs ("Prescott" -> SSE3, "Haswell" -> AVX2, "SkylakeX" -> AVX512);
 * unknown names (other vendors' cores) return -1 and are never "fixed". */
int mt_blas_core_level(const char *corename);

/* Pure decision: the OPENBLAS_CORETYPE to force when OpenBLAS chose corename on a CPU of level cpu, or NULL when
 * its choice is already as good as the CPU allows. */
const char *mt_blas_better_core(const char *corename, CpuLevel cpu);

/* Call first in main(), before MPI_Init. If OpenBLAS picked weaker kernels than the CPU supports and the user has
 * not set OPENBLAS_CORETYPE, sets it and re-executes /proc/self/exe with the same argv (once; guarded by an
 * environment variable). Setting MPITRAIN_BLAS_AUTOFIX=0 turns this off. Returns only if no re-exec happened. */
void mt_blas_fix_coretype(char **argv);

/* One line describing the library, its kernels and whether they were fixed, e.g.
 * "OpenBLAS 0.3.21 ... core SkylakeX (auto-selected; the library detected Prescott)". */
const char *mt_blas_describe(char *buf, size_t n);

/* Non-NULL when the kernels in use are weaker than the CPU supports (the user forced them, or autofix is off):
 * a one-line hint with the exact fix. */
const char *mt_blas_weak_core_hint(char *buf, size_t n);

/* Flush denormal floats to zero (FTZ and DAZ on x86) in this thread and in OpenBLAS's worker threads. A strongly
 * regularised network can end up with a fifth of its weights subnormal, and every multiply that touches one takes
 * a microcode assist: measured here, sgemm became 30x slower. Values that small carry no information for training.
 * Returns 1 if the flags are set, 0 where the CPU has no such mode. Call once, early in main(). */
int mt_blas_flush_denormals(void);

void mt_blas_set_threads(int n);
int mt_blas_get_threads(void);

/* How many OpenBLAS threads a rank uses, and why (train, bench, eval and predict all ask here). */
typedef struct BlasThreads {
  int n;             /* threads per rank, >= 1 */
  char source[128];  /* for the banner: "--threads", "from OPENBLAS_NUM_THREADS=1", "auto: 2 cores / 2 ranks" */
} BlasThreads;

/* The first of: requested (--threads, > 0); OPENBLAS_NUM_THREADS; OMP_NUM_THREADS (OpenBLAS's own order: an
 * explicit setting in the job script is a choice); auto = min(rank_cpus, node_cpus / node_ranks), at least 1,
 * where rank_cpus are the CPUs this rank may run on and node_cpus those all ranks of its node may (so ranks do not
 * oversubscribe cores). deterministic takes 1 over the environment, saying so in source (a --threads > 1 with it
 * is refused by mt_config_validate). A variable that is set but not a whole number in [1, 1024] is an error naming
 * it, even when --threads wins: it is a mistake in the job script. Not collective; sets nothing. 0 or -1. */
int mt_blas_threads_choose(int requested, int deterministic, int rank_cpus, int node_cpus, int node_ranks,
                        BlasThreads *out, MtError *err);

#endif
