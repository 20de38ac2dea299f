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
#include <string.h>
#include <cmocka.h>

#include "mpitrain/gemm.h"
#include "mpitrain/optim.h"

static const float g[3][2] = {{0.1f, -0.2f}, {0.3f, 0.1f}, {-0.2f, 0.4f}};

static void check(OptKind kind, float beta2, const double want[3][2]) {
  OptConfig cfg = {.kind = kind, .beta1 = 0.9f, .beta2 = beta2, .eps = 1e-8f};
  Optimizer o;
  MtError err = {0};
  assert_int_equal(mt_optim_create(&o, &cfg, 2, &err), 0);
  float p[2] = {0.5f, -1.0f};
  for (int t = 0; t < 3; t++) {
    mt_optim_step(&o, p, g[t], 0.1f);
    for (int i = 0; i < 2; i++) {
      if (fabs(p[i] - want[t][i]) > 2e-6) fail_msg("%s step %d param %d: got %.9g want %.9g", mt_optim_name(kind),
                                                  t + 1, i, p[i], want[t][i]);
    }
  }
  assert_int_equal(o.t, 3);
  mt_optim_free(&o);
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
  for (int k = 0; k < OPT_COUNT; k++) assert_int_equal(mt_optim_from_name(mt_optim_name(k)), k);
  assert_int_equal(mt_optim_from_name("adamw"), -1);
}

static void near(double got, double want) {
  if (fabs(got - want) > 1e-12 * (1 + fabs(want))) fail_msg("got %.15g, want %.15g", got, want);
}

/* Schedules at chosen steps (1-based; e = (step-1)/steps_per_epoch epochs done). */
static void test_schedules(void **s) {
  (void)s;
  LrSchedule c = {.kind = LR_CONSTANT, .lr = 0.1};
  near(mt_lr_at(&c, 1, 10), 0.1);
  near(mt_lr_at(&c, 12345, 10), 0.1);
  LrSchedule st = {.kind = LR_STEP, .lr = 0.1, .gamma = 0.5, .step_epochs = 2};
  near(mt_lr_at(&st, 1, 10), 0.1);    /* e = 0 */
  near(mt_lr_at(&st, 20, 10), 0.1);   /* e = 1.9: still the first stair */
  near(mt_lr_at(&st, 21, 10), 0.05);  /* e = 2 */
  near(mt_lr_at(&st, 41, 10), 0.025); /* e = 4 */
  LrSchedule ex = {.kind = LR_EXP, .lr = 1, .gamma = 0.5};
  near(mt_lr_at(&ex, 5, 4), 0.5);                  /* e = 1 */
  near(mt_lr_at(&ex, 3, 4), 0.70710678118654757);  /* e = 0.5: sqrt(1/2) */
  LrSchedule inv = {.kind = LR_INV, .lr = 1, .decay_rate = 1};
  near(mt_lr_at(&inv, 5, 4), 0.5);                 /* 1/(1+1) */
  near(mt_lr_at(&inv, 9, 4), 1.0 / 3);             /* 1/(1+2) */
  LrSchedule cos_ = {.kind = LR_COSINE, .lr = 1, .lr_min = 0.1, .epochs = 4};
  near(mt_lr_at(&cos_, 1, 10), 1);                 /* e = 0 */
  near(mt_lr_at(&cos_, 21, 10), 0.55);             /* e = 2: halfway, 0.1 + 0.9/2 */
  near(mt_lr_at(&cos_, 41, 10), 0.1);              /* e = 4: the floor */
  near(mt_lr_at(&cos_, 99, 10), 0.1);              /* past the end: stays at the floor */
  LrSchedule wu = {.kind = LR_STEP, .lr = 0.1, .gamma = 0.5, .step_epochs = 2, .warmup_steps = 4};
  near(mt_lr_at(&wu, 1, 10), 0.025); /* 1/4 of the schedule */
  near(mt_lr_at(&wu, 3, 10), 0.075);
  near(mt_lr_at(&wu, 4, 10), 0.1);   /* warm-up done */
}

static void test_clip(void **s) {
  (void)s;
  float g[2] = {3, 4};
  near(sqrt(mt_optim_sumsq(g, 2)), 5);
  assert_true(mt_optim_clip_scale(5, 10) == 1.0f); /* under the bound: untouched */
  assert_true(mt_optim_clip_scale(5, 0) == 1.0f);  /* off */
  assert_true(mt_optim_clip_scale(NAN, 1) == 1.0f); /* not a number: left to the non-finite policy */
  mt_optim_scale(g, 2, mt_optim_clip_scale(5, 1));
  assert_true(fabs(g[0] - 0.6) < 1e-7 && fabs(g[1] - 0.8) < 1e-7);
  assert_true(fabs(sqrt(mt_optim_sumsq(g, 2)) - 1) < 1e-7); /* the global norm is now the bound */
}

/* L2: W = [[1, 2], [3, -1]] decays, b = [5] does not; lambda = 0.5, B = 2:
 * loss term 0.5/(2*2) * (1 + 4 + 9 + 1) = 1.875, gradient += 0.5/2 * W. Weight decay lr 0.1, wd 0.5: W *= 0.95. */
static void test_l2_and_weight_decay(void **s) {
  (void)s;
  float p[5] = {1, 2, 3, -1, 5}, g[5] = {0, 0, 0, 0, 0};
  ParamRange w = {0, 4};
  near(mt_optim_l2_loss(&w, 1, p, 0.5, 2), 1.875);
  mt_optim_l2_grad(g, p, 4, 0.5, 2); /* the decaying range W; b is not touched */
  const float want[5] = {0.25f, 0.5f, 0.75f, -0.25f, 0};
  assert_memory_equal(g, want, sizeof g);
  near(mt_optim_l2_loss(&w, 1, p, 0, 2), 0); /* off */
  mt_optim_l2_grad(g, p, 4, 0, 2);
  assert_memory_equal(g, want, sizeof g);
  mt_optim_weight_decay(&w, 1, p, 0.1, 0.5);
  const float decayed[5] = {0.95f, 1.9f, 2.85f, -0.95f, 5};
  for (int i = 0; i < 5; i++) assert_true(fabsf(p[i] - decayed[i]) < 1e-6f);
}

/* The vectorised update (AVX-512 / AVX2 / SSE, whichever this CPU runs) against the plain per-element formulas in
 * the same order, bit for bit, on n values that are not a multiple of any vector width, at a moment offset; and the
 * bf16 copy it writes in the same pass is bf16 of each new parameter, with the fp32 results the same as without it. */
static float uniform(uint32_t *s) {
  *s = *s * 1664525u + 1013904223u;
  return (float)(*s >> 8) / 16777216.0f * 2.0f - 1.0f;
}

static void reference(const Optimizer *o, float *p, const float *g, float *m, float *v, size_t n) {
  const float b1 = o->cfg.beta1, b2 = o->cfg.beta2, eps = o->cfg.eps, lr = o->lr;
  for (size_t i = 0; i < n; i++) {
    switch (o->cfg.kind) {
      case OPT_SGD: p[i] = p[i] - lr * g[i]; break;
      case OPT_MOMENTUM: m[i] = b1 * m[i] + (1.0f - b1) * g[i]; p[i] = p[i] - lr * m[i]; break;
      case OPT_RMSPROP:
        v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        p[i] = p[i] - lr * g[i] / (sqrtf(v[i]) + eps);
        break;
      default:
        m[i] = b1 * m[i] + (1.0f - b1) * g[i];
        v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        p[i] = p[i] - o->step_size * m[i] / (sqrtf(v[i]) * o->rs + eps);
        break;
    }
  }
}

#define FUSED_N 1037
#define FUSED_OFF 3

static void test_fused_bits(void **s) {
  (void)s;
  for (int k = 0; k < OPT_COUNT; k++) {
    OptConfig cfg = {.kind = (OptKind)k, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f};
    Optimizer a, b;
    MtError err = {0};
    assert_int_equal(mt_optim_create(&a, &cfg, FUSED_OFF + FUSED_N, &err), 0);
    assert_int_equal(mt_optim_create(&b, &cfg, FUSED_OFF + FUSED_N, &err), 0);
    static float p[FUSED_N], q[FUSED_N], r[FUSED_N], g[FUSED_N], rm[FUSED_OFF + FUSED_N], rv[FUSED_OFF + FUSED_N];
    static uint16_t bf[FUSED_N];
    uint32_t seed = 7u + (uint32_t)k;
    for (size_t i = 0; i < FUSED_N; i++) p[i] = q[i] = r[i] = uniform(&seed);
    for (size_t i = 0; i < FUSED_OFF + FUSED_N; i++) rm[i] = rv[i] = 0;
    for (int t = 0; t < 3; t++) {
      for (size_t i = 0; i < FUSED_N; i++) g[i] = uniform(&seed) * (i % 5 == 0 ? 1e-3f : 1.0f);
      mt_optim_begin(&a, 0.01f);
      mt_optim_begin(&b, 0.01f);
      mt_optim_update(&a, p, g, FUSED_OFF, FUSED_N, NULL);
      mt_optim_update(&b, q, g, FUSED_OFF, FUSED_N, bf);
      reference(&a, r, g, rm + FUSED_OFF, rv + FUSED_OFF, FUSED_N);
      const char *name = mt_optim_name((OptKind)k);
      if (memcmp(p, r, sizeof p) != 0 || memcmp(q, r, sizeof q) != 0)
        fail_msg("%s step %d: not the scalar bits", name, t + 1);
      if (a.m && memcmp(a.m, rm, sizeof rm) != 0) fail_msg("%s step %d: first moments differ", name, t + 1);
      if (a.v && memcmp(a.v, rv, sizeof rv) != 0) fail_msg("%s step %d: second moments differ", name, t + 1);
      for (size_t i = 0; i < FUSED_N; i++)
        if (bf[i] != mt_bf16_from_float(q[i]))
          fail_msg("%s step %d: bf16[%zu] = %#x, want %#x", name, t + 1, i, bf[i], mt_bf16_from_float(q[i]));
    }
    mt_optim_free(&a);
    mt_optim_free(&b);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sgd),  cmocka_unit_test(test_momentum), cmocka_unit_test(test_rmsprop),
      cmocka_unit_test(test_adam), cmocka_unit_test(test_names),
      cmocka_unit_test(test_schedules), cmocka_unit_test(test_clip), cmocka_unit_test(test_l2_and_weight_decay),
      cmocka_unit_test(test_fused_bits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
