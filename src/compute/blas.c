/* blas.c — OpenBLAS kernel selection and thread count (see blas.h for why this exists). */
#include "mpitrain/blas.h"

#include <cblas.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "mpitrain/gemm.h"

/* OpenBLAS's own hook for fork(): stops its worker threads, which it restarts on the next threaded call. Weak, so a
 * BLAS without it still links; used to make the workers inherit the floating-point mode set after they started. */
extern void blas_thread_shutdown_(void) __attribute__((weak));

#define REEXEC_ENV "MPITRAIN_BLAS_REEXEC" /* set on the re-executed process: holds what OpenBLAS picked first */

CpuLevel mt_blas_cpu_level(void) {
  /* __builtin_cpu_supports also checks that the OS saves the wide registers (XCR0), so a level reported here
   * is one whose kernels will actually run. SkylakeX kernels need F, BW, VL and DQ. */
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return CPU_AVX512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CPU_AVX2;
  if (__builtin_cpu_supports("avx")) return CPU_AVX;
  return CPU_SSE3;
}

int mt_blas_core_level(const char *corename) {
  static const struct {
    const char *name;
    int level;
  } cores[] = {
      {"SapphireRapids", CPU_AVX512}, {"Cooperlake", CPU_AVX512}, {"SkylakeX", CPU_AVX512},
      {"Haswell", CPU_AVX2},          {"Zen", CPU_AVX2},          {"Excavator", CPU_AVX2},
      {"Sandybridge", CPU_AVX},       {"Bulldozer", CPU_AVX},     {"Piledriver", CPU_AVX},
      {"Steamroller", CPU_AVX},       {"Prescott", CPU_SSE3},     {"Core2", CPU_SSE3},
      {"Penryn", CPU_SSE3},           {"Dunnington", CPU_SSE3},   {"Nehalem", CPU_SSE3},
      {"Atom", CPU_SSE3},             {"Nano", CPU_SSE3},         {"Barcelona", CPU_SSE3},
      {"Opteron", CPU_SSE3},          {"Opteron(SSE3)", CPU_SSE3}, {"Athlon", CPU_SSE3},
      {"Bobcat", CPU_SSE3},           {"Northwood", CPU_SSE3},    {"Katmai", CPU_SSE3},
      {"Coppermine", CPU_SSE3},       {"Banias", CPU_SSE3},
  };
  if (corename == NULL) return -1;
  for (size_t i = 0; i < sizeof cores / sizeof cores[0]; i++)
    if (strcasecmp(corename, cores[i].name) == 0) return cores[i].level;
  return -1;
}

const char *mt_blas_better_core(const char *corename, CpuLevel cpu) {
  int have = mt_blas_core_level(corename);
  if (have < 0 || have >= (int)cpu) return NULL;
  switch (cpu) {
    case CPU_AVX512: return "SkylakeX";
    case CPU_AVX2: return "Haswell";
    case CPU_AVX: return "Sandybridge";
    default: return NULL;
  }
}

static const char *level_name(int level) {
  static const char *names[] = {"SSE3", "AVX", "AVX2", "AVX-512"};
  return level >= 0 && level <= CPU_AVX512 ? names[level] : "?";
}

void mt_blas_fix_coretype(char **argv) {
#ifdef MPITRAIN_SMPI
  /* Under smpirun /proc/self/exe is SimGrid's launcher, not this program: set OPENBLAS_CORETYPE outside. */
  (void)argv;
  return;
#endif
  const char *off = getenv("MPITRAIN_BLAS_AUTOFIX");
  if (off && strcmp(off, "0") == 0) return;
  if (getenv("OPENBLAS_CORETYPE") != NULL) return; /* the user's explicit choice wins */
  if (getenv(REEXEC_ENV) != NULL) return;          /* already re-executed once: never loop */
  const char *core = openblas_get_corename();
  const char *better = mt_blas_better_core(core, mt_blas_cpu_level());
  if (better == NULL) return;
  setenv("OPENBLAS_CORETYPE", better, 1);
  setenv(REEXEC_ENV, core, 1);
  execv("/proc/self/exe", argv);
  /* exec failed (no /proc?): carry on with the slow kernels; `mpitrain version` and train's banner say so. */
  unsetenv("OPENBLAS_CORETYPE");
  unsetenv(REEXEC_ENV);
}

const char *mt_blas_describe(char *buf, size_t n) {
  const char *first = getenv(REEXEC_ENV);
  const char *core = openblas_get_corename();
  char how[160] = "";
  if (first != NULL)
    snprintf(how, sizeof how, " (auto-selected by mpitrain: the library detected %s on this %s CPU)", first,
             level_name(mt_blas_cpu_level()));
  else if (getenv("OPENBLAS_CORETYPE") != NULL)
    snprintf(how, sizeof how, " (OPENBLAS_CORETYPE=%s)", getenv("OPENBLAS_CORETYPE"));
  snprintf(buf, n, "%s; core %s%s; %d thread%s", openblas_get_config(), core, how, openblas_get_num_threads(),
           openblas_get_num_threads() == 1 ? "" : "s");
  return buf;
}

const char *mt_blas_weak_core_hint(char *buf, size_t n) {
  const char *core = openblas_get_corename();
  CpuLevel cpu = mt_blas_cpu_level();
  const char *better = mt_blas_better_core(core, cpu);
  if (better == NULL) return NULL;
  snprintf(buf, n,
           "OpenBLAS runs its %s (%s) kernels but this CPU supports %s; sgemm would be several times faster with "
           "OPENBLAS_CORETYPE=%s (mpitrain sets it itself unless OPENBLAS_CORETYPE is set or MPITRAIN_BLAS_AUTOFIX=0)",
           core, level_name(mt_blas_core_level(core)), level_name(cpu), better);
  return buf;
}

int mt_blas_flush_denormals(void) {
#if defined(__x86_64__) || defined(__i386__)
  _mm_setcsr(_mm_getcsr() | 0x8040); /* FTZ (bit 15) and DAZ (bit 6) */
  /* OpenBLAS started its thread pool when the library was loaded, before main(); new threads inherit the creating
   * thread's floating-point environment, so have it start them again from here. */
  if (blas_thread_shutdown_) blas_thread_shutdown_();
  return 1;
#else
  return 0;
#endif
}

void mt_blas_set_threads(int n) {
#ifdef MPITRAIN_SMPI
  n = 1; /* SMPI charges the CPU time of the calling thread only; OpenBLAS's workers would go unaccounted */
#endif
  openblas_set_num_threads(n < 1 ? 1 : n);
  mt_gemm_set_threads(n < 1 ? 1 : n); /* oneDNN's bf16 GEMMs run on as many threads as sgemm does */
}
int mt_blas_get_threads(void) { return openblas_get_num_threads(); }

#define THREADS_MAX 1024 /* the range of --threads */

/* The value of a thread-count variable: 0 when unset or empty (OpenBLAS ignores an empty one too), -1 (err set)
 * when it is not a whole number in [1, THREADS_MAX]. OpenMP allows a nested list ("4,2"): its first level counts. */
static int env_threads(const char *name, int allow_list, const char **text, MtError *err) {
  const char *v = getenv(name);
  *text = v;
  if (v == NULL || v[0] == '\0') return 0;
  long n = 0;
  const char *p = v;
  while (isdigit((unsigned char)*p) && n <= THREADS_MAX) n = n * 10 + (*p++ - '0');
  int rest_ok = *p == '\0' || (allow_list && *p == ',' && p[1] != '\0');
  if (p == v || !rest_ok || n < 1 || n > THREADS_MAX)
    return mt_fail(err, "%s: expected a whole number in [1, %d], got '%.40s'", name, THREADS_MAX, v);
  return (int)n;
}

int mt_blas_threads_choose(int requested, int deterministic, int rank_cpus, int node_cpus, int node_ranks,
                        BlasThreads *out, MtError *err) {
  const char *openblas_text = NULL, *omp_text = NULL;
  int openblas = env_threads("OPENBLAS_NUM_THREADS", 0, &openblas_text, err);
  int omp = openblas < 0 ? 0 : env_threads("OMP_NUM_THREADS", 1, &omp_text, err);
  if (openblas < 0 || omp < 0) return -1;
  const char *var = openblas > 0 ? "OPENBLAS_NUM_THREADS" : "OMP_NUM_THREADS";
  const char *text = openblas > 0 ? openblas_text : omp_text;
  int env = openblas > 0 ? openblas : omp;
  if (requested > 0) {
    out->n = requested;
    snprintf(out->source, sizeof out->source, "--threads");
  } else if (deterministic && env > 1) {
    /* A variable set for the whole job (module files and batch scripts do) should not stop a deterministic run. */
    out->n = 1;
    snprintf(out->source, sizeof out->source, "--deterministic; %s=%.40s ignored", var, text);
  } else if (env > 0) {
    out->n = env;
    snprintf(out->source, sizeof out->source, "from %s=%.40s", var, text);
  } else if (deterministic) {
    out->n = 1;
    snprintf(out->source, sizeof out->source, "--deterministic");
  } else {
    if (node_ranks < 1) node_ranks = 1;
    if (node_cpus < 1) node_cpus = 1;
    int share = node_cpus / node_ranks;
    if (rank_cpus >= 1 && rank_cpus < share) {
      out->n = rank_cpus;
      snprintf(out->source, sizeof out->source, "auto: bound to %d core%s", rank_cpus, rank_cpus == 1 ? "" : "s");
    } else {
      out->n = share < 1 ? 1 : share;
      snprintf(out->source, sizeof out->source, "auto: %d core%s / %d rank%s", node_cpus, node_cpus == 1 ? "" : "s",
               node_ranks, node_ranks == 1 ? "" : "s");
    }
  }
  return 0;
}
