/* test_model.c — forward against an independent double-precision implementation, backward against central
 * finite differences of that implementation, for every activation; micro-batch accumulation; init. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mpitrain/init.h"
#include "mpitrain/loss.h"
#include "mpitrain/model.h"
#include "mpitrain/rng.h"

enum { N = 3, D = 5, C = 4 };

static double ref_act(ActKind a, double slope, double z) {
  switch (a) {
    case ACT_RELU: return z > 0 ? z : 0;
    case ACT_LEAKY_RELU: return z > 0 ? z : slope * z;
    case ACT_TANH: return tanh(z);
    case ACT_SIGMOID: return 1 / (1 + exp(-z));
    default: return z;
  }
}

/* Mean cross-entropy of the model with parameters theta (double) on x, y; logits_out [N, C] if not NULL. */
static double ref_loss(const Model *m, const double *theta, const float *x, const int32_t *y, double *logits_out) {
  double a[N][64], b[N][64];
  int width = D;
  for (int r = 0; r < N; r++)
    for (int j = 0; j < D; j++) a[r][j] = x[r * D + j];
  for (int i = 0; i < m->n_layers; i++) {
    const Layer *l = &m->layers[i];
    for (int r = 0; r < N; r++) {
      for (int o = 0; o < l->out; o++) {
        if (l->kind == LAYER_DENSE) {
          double s = theta[l->b_off + o];
          for (int k = 0; k < l->in; k++) s += theta[l->w_off + (size_t)o * l->in + k] * a[r][k];
          b[r][o] = s;
        } else {
          b[r][o] = ref_act(l->act, l->slope, a[r][o]);
        }
      }
    }
    width = l->out;
    memcpy(a, b, sizeof a);
  }
  double loss = 0;
  for (int r = 0; r < N; r++) {
    double mx = a[r][0], s = 0;
    for (int j = 1; j < width; j++) mx = fmax(mx, a[r][j]);
    for (int j = 0; j < width; j++) s += exp(a[r][j] - mx);
    loss += mx + log(s) - a[r][y[r]];
    if (logits_out)
      for (int j = 0; j < width; j++) logits_out[r * width + j] = a[r][j];
  }
  return loss / N;
}

static void make_model(Model *m, ActKind act, int n_hidden) {
  ModelSpec spec = {.n_inputs = D, .n_classes = C, .n_hidden = n_hidden, .hidden = {7, 6}, .act = act,
                    .leaky_slope = 0.1f};
  MtError err = {0};
  assert_int_equal(model_create(m, &spec, N, &err), 0);
  init_params(m, INIT_XAVIER, 11);
  /* Non-zero biases so their gradients are exercised through the activations. */
  for (int i = 0; i < m->n_layers; i++)
    if (m->layers[i].kind == LAYER_DENSE)
      for (int o = 0; o < m->layers[i].out; o++) m->params[m->layers[i].b_off + o] = 0.1f * (float)sin(3.0 * o + i);
}

static void gradcheck(ActKind act, int n_hidden) {
  Model m;
  make_model(&m, act, n_hidden);
  float x[N * D];
  const int32_t y[N] = {1, 3, 0};
  for (int i = 0; i < N * D; i++) x[i] = (float)cos(0.9 * i) * 1.5f;

  const float *logits = model_forward(&m, x, N);
  double *theta = malloc(sizeof(double) * m.n_params);
  for (size_t i = 0; i < m.n_params; i++) theta[i] = m.params[i];
  double ref_logits[N * C];
  ref_loss(&m, theta, x, y, ref_logits);
  for (int i = 0; i < N * C; i++)
    if (fabs(logits[i] - ref_logits[i]) > 1e-5 * (1 + fabs(ref_logits[i])))
      fail_msg("%s: logit %d: %g vs reference %g", act_name(act), i, logits[i], ref_logits[i]);

  float dlogits[N * C];
  LossSums s = {0, 0};
  loss_softmax_xent(logits, y, N, C, 1.0f / N, dlogits, &s);
  model_backward(&m, x, dlogits, N, 0);

  const double h = 1e-6;
  for (size_t i = 0; i < m.n_params; i++) {
    double keep = theta[i];
    theta[i] = keep + h;
    double lp = ref_loss(&m, theta, x, y, NULL);
    theta[i] = keep - h;
    double lm = ref_loss(&m, theta, x, y, NULL);
    theta[i] = keep;
    double fd = (lp - lm) / (2 * h);
    if (fabs(m.grads[i] - fd) > 1e-5 + 1e-3 * fabs(fd))
      fail_msg("%s: gradient of parameter %zu: backward %.8g, finite differences %.8g", act_name(act), i,
               m.grads[i], fd);
  }
  free(theta);
  model_free(&m);
}

static void test_grad_relu(void **s) { (void)s; gradcheck(ACT_RELU, 2); }
static void test_grad_leaky(void **s) { (void)s; gradcheck(ACT_LEAKY_RELU, 2); }
static void test_grad_tanh(void **s) { (void)s; gradcheck(ACT_TANH, 2); }
static void test_grad_sigmoid(void **s) { (void)s; gradcheck(ACT_SIGMOID, 2); }
static void test_grad_softmax_regression(void **s) { (void)s; gradcheck(ACT_RELU, 0); }

/* Two micro-batches with accumulate = 1 give the gradient of the whole batch. */
static void test_accumulate(void **s) {
  (void)s;
  Model m;
  make_model(&m, ACT_TANH, 2);
  float x[N * D], dl[N * C];
  const int32_t y[N] = {2, 0, 1};
  for (int i = 0; i < N * D; i++) x[i] = (float)sin(0.7 * i);
  LossSums ls = {0, 0};
  const float *z = model_forward(&m, x, N);
  loss_softmax_xent(z, y, N, C, 1.0f / N, dl, &ls);
  model_backward(&m, x, dl, N, 0);
  float *full = malloc(sizeof(float) * m.n_params);
  memcpy(full, m.grads, sizeof(float) * m.n_params);
  z = model_forward(&m, x, 2);
  loss_softmax_xent(z, y, 2, C, 1.0f / N, dl, &ls);
  model_backward(&m, x, dl, 2, 0);
  z = model_forward(&m, x + 2 * D, 1);
  loss_softmax_xent(z, y + 2, 1, C, 1.0f / N, dl, &ls);
  model_backward(&m, x + 2 * D, dl, 1, 1);
  for (size_t i = 0; i < m.n_params; i++) assert_true(fabs(full[i] - m.grads[i]) < 1e-6);
  free(full);
  model_free(&m);
}

static void test_activation_limits(void **s) {
  (void)s;
  float y[4] = {-1000, 1000, NAN, 0};
  act_forward(ACT_SIGMOID, 0, y, 2);
  assert_true(y[0] == 0.0f && y[1] == 1.0f);
  float r[2] = {NAN, -1};
  act_forward(ACT_RELU, 0, r, 2);
  assert_true(isnan(r[0])); /* divergence must stay visible */
  assert_true(r[1] == 0.0f);
  for (int a = 0; a < ACT_COUNT; a++) assert_int_equal(act_from_name(act_name(a)), a);
}

static void test_layout_and_flops(void **s) {
  (void)s;
  Model m;
  ModelSpec spec = {.n_inputs = 784, .n_classes = 10, .n_hidden = 2, .hidden = {512, 256}, .act = ACT_RELU};
  MtError err = {0};
  assert_int_equal(model_create(&m, &spec, 128, &err), 0);
  assert_int_equal(m.n_params, 784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10);
  assert_int_equal(m.n_layers, 5);
  assert_string_equal(m.layers[2].name, "dense1");
  assert_int_equal(m.layers[4].w_off, 784 * 512 + 512 + 512 * 256 + 256);
  double f = 2.0 * 128 * (784 * 512 * 2 + 512 * 256 * 3 + 256 * 10 * 3);
  assert_true(model_gemm_flops(&m, 128) == f);
  model_free(&m);
}

static void init_stats(InitKind kind, ActKind act, double want_std) {
  Model m;
  ModelSpec spec = {.n_inputs = 400, .n_classes = 10, .n_hidden = 1, .hidden = {300}, .act = act};
  MtError err = {0};
  assert_int_equal(model_create(&m, &spec, 1, &err), 0);
  init_params(&m, kind, 5);
  const Layer *l = &m.layers[0];
  double s = 0, s2 = 0;
  size_t n = (size_t)l->in * l->out;
  for (size_t i = 0; i < n; i++) {
    double w = m.params[l->w_off + i];
    s += w;
    s2 += w * w;
  }
  double sd = sqrt(s2 / n - (s / n) * (s / n));
  if (fabs(sd - want_std) > 0.02 * want_std + 1e-12)
    fail_msg("%s: std %g, want %g", init_name(kind), sd, want_std);
  for (int o = 0; o < l->out; o++) assert_true(m.params[l->b_off + o] == 0.0f);
  /* the same seed gives the same bits */
  float *copy = malloc(sizeof(float) * m.n_params);
  memcpy(copy, m.params, sizeof(float) * m.n_params);
  init_params(&m, kind, 5);
  assert_memory_equal(copy, m.params, sizeof(float) * m.n_params);
  free(copy);
  model_free(&m);
}

static void test_init(void **s) {
  (void)s;
  init_stats(INIT_SMALL, ACT_TANH, 0.01);
  init_stats(INIT_XAVIER, ACT_TANH, sqrt(2.0 / 700));
  init_stats(INIT_HE, ACT_RELU, sqrt(2.0 / 400));
  init_stats(INIT_AUTO, ACT_RELU, sqrt(2.0 / 400));     /* auto = He for ReLU */
  init_stats(INIT_AUTO, ACT_SIGMOID, sqrt(2.0 / 700));  /* auto = Xavier for sigmoid */
  init_stats(INIT_ZERO, ACT_RELU, 0);
  for (int k = 0; k < INIT_COUNT; k++) assert_int_equal(init_from_name(init_name(k)), k);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_grad_relu),     cmocka_unit_test(test_grad_leaky),
      cmocka_unit_test(test_grad_tanh),     cmocka_unit_test(test_grad_sigmoid),
      cmocka_unit_test(test_grad_softmax_regression), cmocka_unit_test(test_accumulate),
      cmocka_unit_test(test_activation_limits), cmocka_unit_test(test_layout_and_flops),
      cmocka_unit_test(test_init),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
