/* test_optim.c — each optimiser against hand-computed values for three steps.
 *
 * p0 = (0.5, -1), gradients g1 = (0.1, -0.2), g2 = (0.3, 0.1), g3 = (-0.2, 0.4), lr = 0.1.
 * Worked first steps:
 *   sgd       p1 = p0 - 0.1·g1 = (0.49, -0.98)
 *   momentum  v1 = 0.1·g1 = (0.01, -0.02);  p1 = p0 - 0.1·v1 = (0.499, -0.998)
 *   rmsprop   (β2 = 0.9) s1 = 0.1·g1² = (0.001, 0.004);  p1 = p0 - 0.1·g1/√s1 = (0.5 - 0.316228, -1 + 0.316228)
 *   adam      m̂1 = g1, v̂1 = g1², so p1 = p0 - 0.1·sign(g1) = (0.4, -0.9) — and only with the correct 1-β2^t:
 *             the lecture notes' 1-β1^t would give v̂1 = 0.01·g1² and a step 10x too large.
 * Steps 2 and 3 follow the same formulas (evaluated in double precision). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mpitrain/optim.h"

static const float g[3][2] = {{0.1f, -0.2f}, {0.3f, 0.1f}, {-0.2f, 0.4f}};

static void check(OptKind kind, float beta2, const double want[3][2]) {
  OptConfig cfg = {.kind = kind, .beta1 = 0.9f, .beta2 = beta2, .eps = 1e-8f};
  Optimizer o;
  MtError err = {0};
  assert_int_equal(optim_create(&o, &cfg, 2, &err), 0);
  float p[2] = {0.5f, -1.0f};
  for (int t = 0; t < 3; t++) {
    optim_step(&o, p, g[t], 0.1f);
    for (int i = 0; i < 2; i++) {
      if (fabs(p[i] - want[t][i]) > 2e-6) fail_msg("%s step %d param %d: got %.9g want %.9g", optim_name(kind),
                                                  t + 1, i, p[i], want[t][i]);
    }
  }
  assert_int_equal(o.t, 3);
  optim_free(&o);
}

static void test_sgd(void **s) {
  (void)s;
  const double w[3][2] = {{0.49, -0.98}, {0.46, -0.99}, {0.48, -1.03}};
  check(OPT_SGD, 0.999f, w);
}

static void test_momentum(void **s) {
  (void)s;
  const double w[3][2] = {{0.499, -0.998}, {0.4951, -0.9972}, {0.49359, -1.00048}};
  check(OPT_MOMENTUM, 0.999f, w);
}

static void test_rmsprop(void **s) {
  (void)s;
  const double w[3][2] = {{0.183772334, -0.683772284}, {-0.11773898, -0.831214218}, {0.0582829731, -1.11307213}};
  check(OPT_RMSPROP, 0.9f, w);
}

static void test_adam(void **s) {
  (void)s;
  const double w[3][2] = {{0.40000001, -0.900000005}, {0.308221902, -0.873366303}, {0.282431523, -0.91909948}};
  check(OPT_ADAM, 0.999f, w);
}

static void test_names(void **s) {
  (void)s;
  for (int k = 0; k < OPT_COUNT; k++) assert_int_equal(optim_from_name(optim_name(k)), k);
  assert_int_equal(optim_from_name("adamw"), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sgd),  cmocka_unit_test(test_momentum), cmocka_unit_test(test_rmsprop),
      cmocka_unit_test(test_adam), cmocka_unit_test(test_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
