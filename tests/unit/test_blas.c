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

static void test_decision_table(void **s) {
  (void)s;
  assert_string_equal(blas_better_core("Prescott", CPU_AVX512), "SkylakeX");
  assert_string_equal(blas_better_core("Haswell", CPU_AVX512), "SkylakeX");
  assert_string_equal(blas_better_core("Prescott", CPU_AVX2), "Haswell");
  assert_string_equal(blas_better_core("Nehalem", CPU_AVX), "Sandybridge");
  assert_null(blas_better_core("SkylakeX", CPU_AVX512));
  assert_null(blas_better_core("Cooperlake", CPU_AVX512));
  assert_null(blas_better_core("Haswell", CPU_AVX2));
  assert_null(blas_better_core("Zen", CPU_AVX2));
  assert_null(blas_better_core("Prescott", CPU_SSE3));
  assert_null(blas_better_core("NEOVERSEN1", CPU_AVX512)); /* unknown: never touched */
  assert_null(blas_better_core(NULL, CPU_AVX512));
}

/* This test binary calls blas_fix_coretype like main() does: afterwards the kernels in use must be at least as
 * good as the CPU allows — on the CI machine (AVX-512 Xeon, OpenBLAS 0.3.21 detecting "Prescott") this fails
 * without the re-exec. */
static void test_live_kernels(void **s) {
  (void)s;
  const char *core = openblas_get_corename();
  char buf[512];
  const char *hint = blas_weak_core_hint(buf, sizeof buf);
  if (getenv("OPENBLAS_CORETYPE") != NULL && getenv("MPITRAIN_BLAS_REEXEC") == NULL) skip(); /* user's choice */
  if (hint) fail_msg("kernels still weak after the fix: %s (core %s)", hint, core);
  assert_null(blas_better_core(core, blas_cpu_level()));
}

/* After blas_flush_denormals, subnormal results become zero, in this thread and in sgemm on several threads. */
static void test_flush_denormals(void **s) {
  (void)s;
  volatile float tiny = 1e-30f, k = 1e-10f;
  if (!blas_flush_denormals()) skip();
  float r = tiny * k; /* 1e-40 is subnormal in float */
  assert_true(r == 0.0f);
  enum { N = 64 };
  static float a[N * N], b[N * N], c[N * N];
  for (int i = 0; i < N * N; i++) {
    a[i] = 1e-20f;
    b[i] = 1e-20f; /* every product 1e-40: subnormal, flushed */
  }
  blas_set_threads(2);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f, a, N, b, N, 0.0f, c, N);
  for (int i = 0; i < N * N; i++) assert_true(c[i] == 0.0f);
}

int main(int argc, char **argv) {
  (void)argc;
  blas_fix_coretype(argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_decision_table),
      cmocka_unit_test(test_live_kernels),
      cmocka_unit_test(test_flush_denormals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
