/* test_det.c — deterministic mode's building blocks (det.h): fixed-point sums that are exact and independent of
 * the order of groups, the scale chosen from the previous step with a retry on overflow, non-finite values, the
 * loss sum; and the model's group mode: the same gradient as the ordinary passes (up to rounding), and each
 * group's bits independent of the other groups in the pass. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mpitrain/det.h"
#include "mpitrain/init.h"
#include "mpitrain/loss.h"
#include "mpitrain/model.h"
#include "mpitrain/rng.h"

static Comm one = {.rank = 0, .size = 1}; /* a single rank: det_* make no MPI calls */

enum { NG = 6, NP = 700 };

/* Group g's gradient: values over many magnitudes and both signs, so float sums in different orders differ. */
static void group_values(int g, float *v, float scale) {
  for (int i = 0; i < NP; i++) {
    uint32_t r[4];
    mt_rng_block(11, 0, (uint64_t)g, (uint64_t)i, r);
    v[i] = scale * (float)(mt_rng_u01(r[0]) - 0.5) * powf(10.0f, (float)(r[1] % 7) - 3.0f);
  }
}

/* Sums NG groups in the given order through a Det (computing the step again when it asks), into out [NP]. */
static int declared = NG; /* groups per step as mt_det_begin is told: > FIXED_NARROW_GROUPS sums in int64 */

static void det_sum(Det *d, const int *order, float scale, float *out, double tail[DET_TAIL]) {
  float v[NP];
  for (int attempt = 0; attempt < 3; attempt++) {
    mt_det_begin(d, declared);
    for (int k = 0; k < NG; k++) {
      group_values(order[k], v, scale);
      mt_det_add(d, v, 0, NP);
      mt_det_add_loss(d, 0.25 * (order[k] + 1), order[k]);
    }
    if (mt_det_finish(d, &one, out, 0, 0, tail) == 0) return;
  }
  fail_msg("mt_det_finish asked for more than two passes");
}

static void make_det(Det *d) {
  const size_t bounds[3] = {0, 300, NP}; /* two tensors, each with its own scale */
  MtError err = {0};
  assert_int_equal(mt_det_create(d, bounds, 2, 1, &err), 0);
}

static void exact_and_order_independent(void) {
  Det d;
  make_det(&d);
  const int fwd[NG] = {0, 1, 2, 3, 4, 5}, rev[NG] = {5, 3, 1, 4, 0, 2};
  float a[NP], b[NP], v[NP];
  double ta[DET_TAIL], tb[DET_TAIL];
  det_sum(&d, fwd, 1.0f, a, ta);
  assert_int_equal(d.retries, 1); /* the first step: scales unknown, computed twice */
  det_sum(&d, rev, 1.0f, b, tb);
  assert_int_equal(d.retries, 1); /* the previous step's scales fit */
  assert_memory_equal(a, b, sizeof a);
  /* Against the exact sum (double is exact here): fixed point loses nothing but what lies below the tensor's
   * quantum 2^-e (each group rounds once), then one float rounding. */
  double exact[NP] = {0};
  for (int g = 0; g < NG; g++) {
    group_values(g, v, 1.0f);
    for (int i = 0; i < NP; i++) exact[i] += v[i];
  }
  int correctly_rounded = 0;
  for (int i = 0; i < NP; i++) {
    const double quantum = ldexp(1.0, -d.exp[i < 300 ? 0 : 1]);
    const float e = (float)exact[i];
    assert_true(fabs(a[i] - exact[i]) <= fabs(nextafterf(e, INFINITY) - e) + NG * quantum);
    correctly_rounded += a[i] == e;
  }
  /* int64: the quantum is far below float's ulp but for the smallest values. int32 keeps 23 bits for a tensor's
   * largest value here, so values 2^20 times smaller (this data spans that) keep only a few: the bound above. */
  if (declared > FIXED_NARROW_GROUPS) assert_true(correctly_rounded > NP * 9 / 10);
  /* The loss is the sum of the groups' 0.25 (g + 1), exact at 2^-24; correct counts are integers. */
  assert_true(ta[DET_LOSS] == 0.25 * 21 && tb[DET_LOSS] == ta[DET_LOSS]);
  assert_true(ta[DET_CORRECT] == 15);
  assert_true(ta[DET_NONFINITE] == 0);
  mt_det_free(&d);
}

static void test_exact_and_order_independent(void **s) {
  (void)s;
  declared = NG; /* int32 */
  exact_and_order_independent();
  declared = 100; /* int64 */
  exact_and_order_independent();
  declared = NG;
}

static void test_overflow_retries(void **s) {
  (void)s;
  Det d;
  make_det(&d);
  const int fwd[NG] = {0, 1, 2, 3, 4, 5};
  float a[NP], big[NP];
  double t[DET_TAIL];
  det_sum(&d, fwd, 1.0f, a, t);
  int retries = d.retries;
  /* 4096 times larger than the last step: beyond the headroom (16-fold at int32), so the step runs again. */
  det_sum(&d, fwd, 4096.0f, big, t);
  assert_int_equal(d.retries, retries + 1);
  for (int i = 0; i < NP; i++)
    assert_true(fabs(big[i] - 4096.0 * a[i]) <= 1e-6 * fabs(big[i]) + 2 * NG * ldexp(1.0, -d.exp[i < 300 ? 0 : 1]));
  /* 100 times smaller fits without a retry (it keeps 7 bits fewer until the next step's scales). */
  det_sum(&d, fwd, 1.0f / 100, a, t);
  assert_int_equal(d.retries, retries + 1);
  mt_det_free(&d);
}

static void test_nonfinite(void **s) {
  (void)s;
  Det d;
  make_det(&d);
  const int fwd[NG] = {0, 1, 2, 3, 4, 5};
  float a[NP], v[NP];
  double t[DET_TAIL];
  det_sum(&d, fwd, 1.0f, a, t);
  mt_det_begin(&d, NG);
  group_values(0, v, 1.0f);
  v[123] = NAN;
  mt_det_add(&d, v, 0, NP);
  mt_det_add_loss(&d, 1.0, 1);
  assert_int_equal(mt_det_finish(&d, &one, a, 0, 0, t), 0); /* not a retry: reported */
  assert_true(t[DET_NONFINITE] == 1 && isnan(t[DET_LOSS]));
  mt_det_begin(&d, NG);
  group_values(0, v, 1.0f);
  mt_det_add(&d, v, 0, NP);
  mt_det_add_loss(&d, INFINITY, 1);
  assert_int_equal(mt_det_finish(&d, &one, a, 0, 1, t), 0);
  assert_true(t[DET_NONFINITE] == 1 && isnan(t[DET_LOSS]) && t[DET_STOP] == 1);
  mt_det_free(&d);
}

/* The AVX2 loops (used where the CPU has them) and the portable ones give the same bits, including for the
 * tiniest and for denormal values. */
static void test_vector_paths_agree(void **s) {
  (void)s;
  Det a, b;
  make_det(&a);
  make_det(&b);
  b.portable = 1;
  const int fwd[NG] = {0, 1, 2, 3, 4, 5};
  float ga[NP], gb[NP], v[NP];
  double ta[DET_TAIL], tb[DET_TAIL];
  for (float scale = 1e-3f; scale < 1e4f; scale *= 97.0f) {
    det_sum(&a, fwd, scale, ga, ta);
    det_sum(&b, fwd, scale, gb, tb);
    assert_memory_equal(ga, gb, sizeof ga);
  }
  /* Denormals and values far below the quantum, added to a normal step. */
  for (Det *d = &a; d; d = d == &a ? &b : NULL) {
    mt_det_begin(d, NG);
    group_values(0, v, 1.0f);
    for (int i = 0; i < 40; i++) v[i] = (i % 2 ? 1 : -1) * 1e-39f * (float)i;
    mt_det_add(d, v, 0, NP);
    assert_int_equal(mt_det_finish(d, &one, d == &a ? ga : gb, 0, 0, ta), 0);
  }
  assert_memory_equal(ga, gb, sizeof ga);
  mt_det_free(&a);
  mt_det_free(&b);
}

/* ==== The model's group mode ==== */

enum { D = 12, C = 5, N = 40, G = 16 };

typedef struct Sink {
  double *grad; /* exact enough: the sum of the groups' gradients */
  int calls;
} Sink;

static void sink_grads(void *arg, const float *grads, size_t off, size_t n) {
  Sink *k = arg;
  for (size_t i = off; i < off + n; i++) k->grad[i] += grads[i];
  k->calls++;
}

static void sink_reduce(void *arg, const double *parts, size_t len, double *out) {
  (void)arg;
  int groups = (N + G - 1) / G;
  for (size_t j = 0; j < len; j++) out[j] = 0;
  for (int g = 0; g < groups; g++)
    for (size_t j = 0; j < len; j++) out[j] += parts[(size_t)g * len + j];
}

static void make_model(Model *m, BnPlace bn, float drop) {
  ModelSpec spec = {.n_inputs = D, .n_classes = C, .n_hidden = 2, .hidden = {20, 9}, .act = ACT_TANH, .bn = bn,
                    .bn_momentum = 0.1f, .bn_eps = 1e-5f, .dropout = {drop, drop}};
  MtError err = {0};
  assert_int_equal(mt_model_create(m, &spec, N, &err), 0);
  mt_init_params(m, INIT_XAVIER, 3);
}

static void inputs(float *x, int32_t *y, int64_t *ids) {
  for (int r = 0; r < N; r++) {
    y[r] = r % C;
    ids[r] = 1000 + r;
    for (int j = 0; j < D; j++) x[r * D + j] = (float)sin(r * 0.7 + j * 1.3) + 0.2f * (float)y[r];
  }
}

static void group_mode_matches(BnPlace bn, float drop) {
  Model m;
  make_model(&m, bn, drop);
  float x[N * D], dl[N * C];
  int32_t y[N];
  int64_t ids[N];
  inputs(x, y, ids);
  /* Ordinary passes. */
  ModelContext ctx = {.train = 1, .seed = 9, .step = 4, .sample_ids = ids, .batch_rows = N};
  LossSums ls = {0, 0};
  mt_loss_softmax_xent(mt_model_forward_ctx(&m, x, N, &ctx), y, N, C, 1.0f / N, dl, &ls);
  mt_model_backward(&m, x, dl, N, 0);
  float *plain = malloc(sizeof(float) * m.n_params);
  memcpy(plain, m.grads, sizeof(float) * m.n_params);
  /* Group mode: the sink adds up each group's gradient. */
  Sink k = {calloc(m.n_params, sizeof(double)), 0};
  double parts[3 * 2 * 20];
  ModelContext gctx = ctx;
  gctx.group = G;
  gctx.group_grads = sink_grads;
  gctx.reduce_groups = sink_reduce;
  gctx.group_arg = &k;
  gctx.group_parts = parts;
  LossSums gs = {0, 0};
  mt_loss_softmax_xent(mt_model_forward_ctx(&m, x, N, &gctx), y, N, C, 1.0f / N, dl, &gs);
  assert_true(fabs(gs.loss - ls.loss) < 1e-5 * ls.loss);
  mt_model_backward(&m, x, dl, N, 0);
  int layers = 3 + (bn != BN_NONE ? 2 : 0);
  assert_int_equal(k.calls, layers * 3); /* every layer with parameters, once per group (16, 16, 8 rows) */
  double worst = 0, norm = 0;
  for (size_t i = 0; i < m.n_params; i++) {
    worst = fmax(worst, fabs(k.grad[i] - plain[i]));
    norm = fmax(norm, fabs(plain[i]));
  }
  assert_true(norm > 1e-3);
  assert_true(worst < 1e-5 * norm);
  free(k.grad);
  free(plain);
  mt_model_free(&m);
}

static void test_group_mode_gradient(void **s) {
  (void)s;
  group_mode_matches(BN_NONE, 0);
  group_mode_matches(BN_BEFORE, 0.3f);
  group_mode_matches(BN_AFTER, 0);
}

/* A group's logits do not depend on which other groups share the pass (without batch norm, which couples them by
 * design and is summed exactly instead): what lets any rank compute any group. */
static void test_group_bits_independent(void **s) {
  (void)s;
  Model m;
  make_model(&m, BN_NONE, 0.2f);
  float x[N * D];
  int32_t y[N];
  int64_t ids[N];
  inputs(x, y, ids);
  ModelContext ctx = {.train = 1, .seed = 9, .step = 4, .sample_ids = ids, .batch_rows = N, .group = G};
  float all[N * C];
  memcpy(all, mt_model_forward_ctx(&m, x, N, &ctx), sizeof all);
  ModelContext tail = ctx;
  tail.sample_ids = ids + G;
  const float *second = mt_model_forward_ctx(&m, x + G * D, N - G, &tail); /* groups 2 and 3 alone */
  assert_memory_equal(second, all + G * C, sizeof(float) * (N - G) * C);
  mt_model_free(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exact_and_order_independent), cmocka_unit_test(test_overflow_retries),
      cmocka_unit_test(test_nonfinite),
      cmocka_unit_test(test_vector_paths_agree),
      cmocka_unit_test(test_group_mode_gradient),         cmocka_unit_test(test_group_bits_independent),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
