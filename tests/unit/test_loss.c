/* test_loss.c — softmax + cross-entropy: hand values, finite differences, extreme logits. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mpitrain/loss.h"

static void test_hand_values(void **state) {
  (void)state;
  /* softmax(1,2,3) = (0.0900306, 0.2447285, 0.6652410); label 2: loss = -ln 0.6652410 = 0.4076060. */
  const float z[3] = {1, 2, 3};
  const int32_t y[1] = {2};
  float d[3];
  LossSums s = {0, 0};
  mt_loss_softmax_xent(z, y, 1, 3, 1.0f, d, &s);
  assert_true(fabs(s.loss - 0.4076059644) < 1e-6);
  assert_true(s.correct == 1);
  const double want[3] = {0.0900305732, 0.2447284711, 0.6652409558 - 1};
  for (int j = 0; j < 3; j++) assert_true(fabs(d[j] - want[j]) < 1e-6);
  /* label 0 is wrong (argmax is 2), and grad_scale multiplies the gradient */
  const int32_t y0[1] = {0};
  LossSums s0 = {0, 0};
  mt_loss_softmax_xent(z, y0, 1, 3, 0.5f, d, &s0);
  assert_true(s0.correct == 0);
  assert_true(fabs(d[0] - 0.5 * (0.0900305732 - 1)) < 1e-6);
}

static double ref_loss(const double *z, int C, int label) {
  double mx = z[0];
  for (int j = 1; j < C; j++) mx = fmax(mx, z[j]);
  double s = 0;
  for (int j = 0; j < C; j++) s += exp(z[j] - mx);
  return mx + log(s) - z[label];
}

static void test_finite_differences(void **state) {
  (void)state;
  enum { N = 4, C = 5 };
  float z[N * C];
  int32_t y[N] = {0, 3, 4, 2};
  for (int i = 0; i < N * C; i++) z[i] = (float)sin(1.7 * i + 0.3) * 3.0f;
  float d[N * C];
  LossSums s = {0, 0};
  mt_loss_softmax_xent(z, y, N, C, 1.0f / N, d, &s);
  for (int i = 0; i < N * C; i++) {
    int r = i / C;
    double zp[C], zm[C];
    for (int j = 0; j < C; j++) zp[j] = zm[j] = z[r * C + j];
    const double h = 1e-6;
    zp[i % C] += h;
    zm[i % C] -= h;
    double fd = (ref_loss(zp, C, y[r]) - ref_loss(zm, C, y[r])) / (2 * h) / N;
    assert_true(fabs(d[i] - fd) < 1e-6);
  }
}

static void test_extreme_logits(void **state) {
  (void)state;
  const float z[2 * 3] = {1000, -1000, 0, -1000, -1000, -1000};
  const int32_t y[2] = {1, 2};
  float d[6];
  LossSums s = {0, 0};
  mt_loss_softmax_xent(z, y, 2, 3, 1.0f, d, &s);
  /* row 0: loss = 2000 + ln(1 + e^-1000 + e^-2000) = 2000; row 1: uniform, ln 3 */
  assert_true(isfinite(s.loss));
  assert_true(fabs(s.loss - (2000 + log(3.0))) < 1e-3);
  for (int i = 0; i < 6; i++) assert_true(isfinite(d[i]));
  assert_true(fabs(d[0] - 1) < 1e-6 && fabs(d[1] + 1) < 1e-6 && fabs(d[2]) < 1e-6);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hand_values),
      cmocka_unit_test(test_finite_differences),
      cmocka_unit_test(test_extreme_logits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
