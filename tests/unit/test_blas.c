/* test_blas.c — the OpenBLAS kernel decision, and that the running process got kernels as good as its CPU. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <cblas.h>

#include "mpitrain/blas.h"
#include "mpitrain/error.h"

static void test_decision_table(void **s) {
  (void)s;
  assert_string_equal(mt_blas_better_core("Prescott", CPU_AVX512), "SkylakeX");
  assert_string_equal(mt_blas_better_core("Haswell", CPU_AVX512), "SkylakeX");
  assert_string_equal(mt_blas_better_core("Prescott", CPU_AVX2), "Haswell");
  assert_string_equal(mt_blas_better_core("Nehalem", CPU_AVX), "Sandybridge");
  assert_null(mt_blas_better_core("SkylakeX", CPU_AVX512));
  assert_null(mt_blas_better_core("Cooperlake", CPU_AVX512));
  assert_null(mt_blas_better_core("Haswell", CPU_AVX2));
  assert_null(mt_blas_better_core("Zen", CPU_AVX2));
  assert_null(mt_blas_better_core("Prescott", CPU_SSE3));
  assert_null(mt_blas_better_core("NEOVERSEN1", CPU_AVX512)); /* unknown: never touched */
  assert_null(mt_blas_better_core(NULL, CPU_AVX512));
}

/* This test binary calls mt_blas_fix_coretype like main() does: afterwards the kernels in use must be at least as
 * good as the CPU allows — on the CI machine (AVX-512 Xeon, OpenBLAS 0.3.21 detecting "Prescott") this fails
 * without the re-exec. */
static void test_live_kernels(void **s) {
  (void)s;
  const char *core = openblas_get_corename();
  char buf[512];
  const char *hint = mt_blas_weak_core_hint(buf, sizeof buf);
  if (getenv("OPENBLAS_CORETYPE") != NULL && getenv("MPITRAIN_BLAS_REEXEC") == NULL) skip(); /* user's choice */
  if (hint) fail_msg("kernels still weak after the fix: %s (core %s)", hint, core);
  assert_null(mt_blas_better_core(core, mt_blas_cpu_level()));
}

/* After mt_blas_flush_denormals, subnormal results become zero, in this thread and in sgemm on several threads. */
static void test_flush_denormals(void **s) {
  (void)s;
  volatile float tiny = 1e-30f, k = 1e-10f;
  if (!mt_blas_flush_denormals()) skip();
  float r = tiny * k; /* 1e-40 is subnormal in float */
  assert_true(r == 0.0f);
  enum { N = 64 };
  static float a[N * N], b[N * N], c[N * N];
  for (int i = 0; i < N * N; i++) {
    a[i] = 1e-20f;
    b[i] = 1e-20f; /* every product 1e-40: subnormal, flushed */
  }
  mt_blas_set_threads(2);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f, a, N, b, N, 0.0f, c, N);
  for (int i = 0; i < N * N; i++) assert_true(c[i] == 0.0f);
}

/* Where the thread count comes from: --threads, then OPENBLAS_NUM_THREADS, then OMP_NUM_THREADS, then the node's
 * cores shared among its ranks; --deterministic takes one, over the environment (not over --threads: config.c
 * refuses that combination). */
static int choose(int requested, int det, int rank_cpus, int node_cpus, int node_ranks, BlasThreads *bt,
                  MtError *err) {
  mt_error_clear(err);
  memset(bt, 0, sizeof *bt);
  return mt_blas_threads_choose(requested, det, rank_cpus, node_cpus, node_ranks, bt, err);
}

static void test_threads_choose(void **s) {
  (void)s;
  BlasThreads bt;
  MtError err = {0};
  unsetenv("OMP_NUM_THREADS");
  unsetenv("OPENBLAS_NUM_THREADS");
  assert_int_equal(choose(0, 0, 8, 8, 2, &bt, &err), 0);
  assert_int_equal(bt.n, 4);
  assert_string_equal(bt.source, "auto: 8 cores / 2 ranks");
  assert_int_equal(choose(0, 0, 2, 2, 1, &bt, &err), 0);
  assert_int_equal(bt.n, 2);
  assert_string_equal(bt.source, "auto: 2 cores / 1 rank");
  assert_int_equal(choose(0, 0, 2, 2, 3, &bt, &err), 0); /* oversubscribed: still one each */
  assert_int_equal(bt.n, 1);
  assert_int_equal(choose(0, 0, 1, 16, 2, &bt, &err), 0); /* bound to one core */
  assert_int_equal(bt.n, 1);
  assert_string_equal(bt.source, "auto: bound to 1 core");
  assert_int_equal(choose(3, 0, 2, 2, 2, &bt, &err), 0);
  assert_int_equal(bt.n, 3);
  assert_string_equal(bt.source, "--threads");

  setenv("OMP_NUM_THREADS", "3", 1);
  assert_int_equal(choose(0, 0, 8, 8, 1, &bt, &err), 0);
  assert_int_equal(bt.n, 3);
  assert_string_equal(bt.source, "from OMP_NUM_THREADS=3");
  setenv("OMP_NUM_THREADS", "2,1", 1); /* OpenMP's nested form: the outer level */
  assert_int_equal(choose(0, 0, 8, 8, 1, &bt, &err), 0);
  assert_int_equal(bt.n, 2);
  setenv("OPENBLAS_NUM_THREADS", "5", 1);
  assert_int_equal(choose(0, 0, 8, 8, 1, &bt, &err), 0);
  assert_int_equal(bt.n, 5);
  assert_string_equal(bt.source, "from OPENBLAS_NUM_THREADS=5");
  assert_int_equal(choose(2, 0, 8, 8, 1, &bt, &err), 0);
  assert_int_equal(bt.n, 2);
  assert_string_equal(bt.source, "--threads");
  assert_int_equal(choose(0, 1, 8, 8, 1, &bt, &err), 0);
  assert_int_equal(bt.n, 1);
  assert_string_equal(bt.source, "--deterministic; OPENBLAS_NUM_THREADS=5 ignored");
  setenv("OPENBLAS_NUM_THREADS", "1", 1);
  assert_int_equal(choose(0, 1, 8, 8, 1, &bt, &err), 0);
  assert_string_equal(bt.source, "from OPENBLAS_NUM_THREADS=1");
  unsetenv("OMP_NUM_THREADS");
  unsetenv("OPENBLAS_NUM_THREADS");
  assert_int_equal(choose(0, 1, 8, 8, 1, &bt, &err), 0);
  assert_int_equal(bt.n, 1);
  assert_string_equal(bt.source, "--deterministic");
  setenv("OPENBLAS_NUM_THREADS", "", 1); /* set but empty: as unset, as OpenBLAS reads it */
  assert_int_equal(choose(0, 0, 4, 4, 1, &bt, &err), 0);
  assert_int_equal(bt.n, 4);

  static const char *const bad[] = {"0", "abc", "-1", "2x", "1025", "99999999999999999999", " ", "1,2"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    setenv("OPENBLAS_NUM_THREADS", bad[i], 1);
    assert_int_equal(choose(0, 0, 4, 4, 1, &bt, &err), -1);
    char expected[200];
    snprintf(expected, sizeof expected, "OPENBLAS_NUM_THREADS: expected a whole number in [1, 1024], got '%s'", bad[i]);
    assert_string_equal(err.msg, expected);
    /* a bad value is an error even where it would not be used: it is a mistake in the job script */
    assert_int_equal(choose(2, 0, 4, 4, 1, &bt, &err), -1);
  }
  unsetenv("OPENBLAS_NUM_THREADS");
  setenv("OMP_NUM_THREADS", "0", 1);
  assert_int_equal(choose(0, 0, 4, 4, 1, &bt, &err), -1);
  assert_string_equal(err.msg, "OMP_NUM_THREADS: expected a whole number in [1, 1024], got '0'");
  unsetenv("OMP_NUM_THREADS");
}

int main(int argc, char **argv) {
  (void)argc;
  mt_blas_fix_coretype(argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_decision_table),
      cmocka_unit_test(test_live_kernels),
      cmocka_unit_test(test_flush_denormals),
      cmocka_unit_test(test_threads_choose),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
