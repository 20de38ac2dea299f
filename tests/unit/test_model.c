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

#include "mpitrain/gemm.h"
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

enum { SEED = 5, STEP = 3 };

/* Mean cross-entropy of the model with parameters theta (double) on x, y, in training mode (batch statistics
 * over these N rows, dropout masks of rows 0..N-1 at step STEP); logits_out [N, C] if not NULL. */
static double ref_loss(const Model *m, const double *theta, const float *x, const int32_t *y, double *logits_out) {
  double a[N][64], b[N][64];
  int width = D;
  for (int r = 0; r < N; r++)
    for (int j = 0; j < D; j++) a[r][j] = x[r * D + j];
  for (int i = 0; i < m->n_layers; i++) {
    const Layer *l = &m->layers[i];
    for (int o = 0; o < l->out; o++) {
      double mean = 0, var = 0;
      if (l->kind == LAYER_BN) {
        for (int r = 0; r < N; r++) mean += a[r][o] / N;
        for (int r = 0; r < N; r++) var += (a[r][o] - mean) * (a[r][o] - mean) / N;
      }
      for (int r = 0; r < N; r++) {
        if (l->kind == LAYER_DENSE) {
          double s = l->has_bias ? theta[l->b_off + o] : 0;
          for (int k = 0; k < l->in; k++) s += theta[l->w_off + (size_t)o * l->in + k] * a[r][k];
          b[r][o] = s;
        } else if (l->kind == LAYER_ACT) {
          b[r][o] = ref_act(l->act, l->slope, a[r][o]);
        } else if (l->kind == LAYER_BN) {
          b[r][o] = theta[l->w_off + o] * (a[r][o] - mean) / sqrt(var + m->spec.bn_eps) + theta[l->b_off + o];
        } else {
          b[r][o] = a[r][o] * mt_model_dropout_factor(SEED, STEP, l->block, r, o, l->p);
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

static void make_model_ex(Model *m, ActKind act, int n_hidden, BnPlace bn, float dropout) {
  ModelSpec spec = {.n_inputs = D, .n_classes = C, .n_hidden = n_hidden, .hidden = {7, 6}, .act = act,
                    .leaky_slope = 0.1f, .bn = bn, .bn_momentum = 0.1f, .bn_eps = 1e-5f,
                    .dropout = {dropout, dropout}};
  MtError err = {0};
  assert_int_equal(mt_model_create(m, &spec, N, &err), 0);
  mt_init_params(m, INIT_XAVIER, 11);
  /* Non-zero biases so their gradients are exercised through the activations. */
  for (int i = 0; i < m->n_layers; i++)
    if (m->layers[i].kind == LAYER_DENSE && m->layers[i].has_bias)
      for (int o = 0; o < m->layers[i].out; o++) m->params[m->layers[i].b_off + o] = 0.1f * (float)sin(3.0 * o + i);
  /* ... and gamma, beta away from 1, 0 so their roles are visible */
  for (int i = 0; i < m->n_layers; i++)
    if (m->layers[i].kind == LAYER_BN)
      for (int o = 0; o < m->layers[i].out; o++) {
        m->params[m->layers[i].w_off + o] = 1.0f + 0.3f * (float)cos(1.3 * o);
        m->params[m->layers[i].b_off + o] = 0.2f * (float)sin(0.7 * o + 1);
      }
}

static void make_model(Model *m, ActKind act, int n_hidden) { make_model_ex(m, act, n_hidden, BN_NONE, 0); }

static const ModelContext train_ctx = {.train = 1, .seed = SEED, .step = STEP, .batch_rows = N};

static void gradcheck_ex(ActKind act, int n_hidden, BnPlace bn, float dropout) {
  Model m;
  make_model_ex(&m, act, n_hidden, bn, dropout);
  float x[N * D];
  const int32_t y[N] = {1, 3, 0};
  for (int i = 0; i < N * D; i++) x[i] = (float)cos(0.9 * i) * 1.5f;

  const float *logits = mt_model_forward_ctx(&m, x, N, &train_ctx);
  double *theta = malloc(sizeof(double) * m.n_params);
  for (size_t i = 0; i < m.n_params; i++) theta[i] = m.params[i];
  double ref_logits[N * C];
  ref_loss(&m, theta, x, y, ref_logits);
  for (int i = 0; i < N * C; i++)
    if (fabs(logits[i] - ref_logits[i]) > 1e-5 * (1 + fabs(ref_logits[i])))
      fail_msg("%s: logit %d: %g vs reference %g", mt_act_name(act), i, logits[i], ref_logits[i]);

  float dlogits[N * C];
  LossSums s = {0, 0};
  mt_loss_softmax_xent(logits, y, N, C, 1.0f / N, dlogits, &s);
  mt_model_backward(&m, x, dlogits, N, 0);

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
      fail_msg("%s: gradient of parameter %zu: backward %.8g, finite differences %.8g", mt_act_name(act), i,
               m.grads[i], fd);
  }
  free(theta);
  mt_model_free(&m);
}

static void gradcheck(ActKind act, int n_hidden) { gradcheck_ex(act, n_hidden, BN_NONE, 0); }

static void test_grad_relu(void **s) { (void)s; gradcheck(ACT_RELU, 2); }
static void test_grad_leaky(void **s) { (void)s; gradcheck(ACT_LEAKY_RELU, 2); }
static void test_grad_tanh(void **s) { (void)s; gradcheck(ACT_TANH, 2); }
static void test_grad_sigmoid(void **s) { (void)s; gradcheck(ACT_SIGMOID, 2); }
static void test_grad_softmax_regression(void **s) { (void)s; gradcheck(ACT_RELU, 0); }
static void test_grad_bn_before(void **s) { (void)s; gradcheck_ex(ACT_TANH, 2, BN_BEFORE, 0); }
static void test_grad_bn_after(void **s) { (void)s; gradcheck_ex(ACT_SIGMOID, 2, BN_AFTER, 0); }
static void test_grad_dropout(void **s) { (void)s; gradcheck_ex(ACT_TANH, 2, BN_NONE, 0.4f); }
static void test_grad_bn_dropout(void **s) { (void)s; gradcheck_ex(ACT_LEAKY_RELU, 2, BN_BEFORE, 0.3f); }

/* Inference uses the running statistics, updated with momentum from the batch statistics (unbiased variance);
 * dropout is off at inference and is inverted in training (kept units scaled by 1/(1-p)). */
static void test_bn_running_stats_and_dropout_modes(void **s) {
  (void)s;
  Model m;
  make_model_ex(&m, ACT_RELU, 1, BN_BEFORE, 0.5f);
  float x[N * D];
  for (int i = 0; i < N * D; i++) x[i] = (float)sin(0.37 * i) + 0.5f;
  mt_model_forward_ctx(&m, x, N, &train_ctx);
  const Layer *dense = &m.layers[0], *bn = &m.layers[1];
  assert_int_equal(bn->kind, LAYER_BN);
  for (int o = 0; o < bn->out; o++) {
    double mean = 0, var = 0;
    for (int r = 0; r < N; r++) mean += dense->y[r * bn->out + o] / N;
    for (int r = 0; r < N; r++) var += pow(dense->y[r * bn->out + o] - mean, 2) / (N - 1);
    assert_true(fabs(m.state[bn->s_off + o] - 0.1 * mean) < 1e-5);
    assert_true(fabs(m.state[bn->s_off + bn->out + o] - (0.9 + 0.1 * var)) < 1e-5);
  }
  const Layer *drop = &m.layers[3];
  assert_int_equal(drop->kind, LAYER_DROPOUT);
  int dropped = 0, kept = 0;
  for (int e = 0; e < N * drop->out; e++) {
    float f = drop->aux[e];
    assert_true(f == 0.0f || f == 2.0f);
    dropped += f == 0.0f;
    kept += f == 2.0f;
  }
  assert_true(dropped > 0 && kept > 0);
  /* inference: dropout is the identity, BN uses the running statistics */
  mt_model_forward(&m, x, N);
  assert_memory_equal(drop->y, m.layers[2].y, sizeof(float) * N * (size_t)drop->out);
  mt_model_free(&m);
}

/* A sample's mask depends on (seed, step, block, sample id, unit) only — not on where the row sits in a batch. */
static void test_dropout_mask_keyed_by_sample(void **s) {
  (void)s;
  Model m;
  make_model_ex(&m, ACT_RELU, 1, BN_NONE, 0.5f);
  float x[N * D];
  for (int i = 0; i < N * D; i++) x[i] = 1.0f;
  const int64_t ids[N] = {900, 17, 5};
  ModelContext c = train_ctx;
  c.sample_ids = ids;
  mt_model_forward_ctx(&m, x, N, &c);
  const Layer *drop = &m.layers[2];
  float first[7];
  memcpy(first, drop->aux + 1 * drop->out, sizeof(float) * (size_t)drop->out); /* sample 17 in row 1 */
  const int64_t moved[1] = {17};
  c.sample_ids = moved;
  c.batch_rows = 1;
  mt_model_forward_ctx(&m, x, 1, &c); /* now in row 0 of a batch of one */
  assert_memory_equal(first, drop->aux, sizeof(float) * (size_t)drop->out);
  for (int u = 0; u < drop->out; u++) assert_true(first[u] == mt_model_dropout_factor(SEED, STEP, 0, 17, u, 0.5f));
  c.step = STEP + 1; /* another step: another mask */
  mt_model_forward_ctx(&m, x, 1, &c);
  int same = 0;
  for (int u = 0; u < drop->out; u++) same += first[u] == drop->aux[u];
  assert_true(same < drop->out);
  mt_model_free(&m);
}

/* Two micro-batches with accumulate = 1 give the gradient of the whole batch. */
static void test_accumulate(void **s) {
  (void)s;
  Model m;
  make_model(&m, ACT_TANH, 2);
  float x[N * D], dl[N * C];
  const int32_t y[N] = {2, 0, 1};
  for (int i = 0; i < N * D; i++) x[i] = (float)sin(0.7 * i);
  LossSums ls = {0, 0};
  const float *z = mt_model_forward(&m, x, N);
  mt_loss_softmax_xent(z, y, N, C, 1.0f / N, dl, &ls);
  mt_model_backward(&m, x, dl, N, 0);
  float *full = malloc(sizeof(float) * m.n_params);
  memcpy(full, m.grads, sizeof(float) * m.n_params);
  z = mt_model_forward(&m, x, 2);
  mt_loss_softmax_xent(z, y, 2, C, 1.0f / N, dl, &ls);
  mt_model_backward(&m, x, dl, 2, 0);
  z = mt_model_forward(&m, x + 2 * D, 1);
  mt_loss_softmax_xent(z, y + 2, 1, C, 1.0f / N, dl, &ls);
  mt_model_backward(&m, x + 2 * D, dl, 1, 1);
  for (size_t i = 0; i < m.n_params; i++) assert_true(fabs(full[i] - m.grads[i]) < 1e-6);
  free(full);
  mt_model_free(&m);
}

/* ModelContext.dw_block: the weight gradients in blocks of W's rows, last block first. Every grad_ready(offset) must
 * find grads[offset, n) final (compared bit for bit with the end of backward), the offsets must fall at every block
 * boundary in descending order, and the gradient must be the whole-GEMM one up to rounding, with micro-batches
 * accumulating too. */
typedef struct Ready {
  const Model *m;
  int calls;
  size_t offset[64];
  float *seen[64]; /* grads[offset, n) at the call */
} Ready;

static void on_ready(void *arg, size_t offset) {
  Ready *r = arg;
  assert_true(r->calls < 64);
  const size_t n = r->m->n_params - offset;
  r->offset[r->calls] = offset;
  r->seen[r->calls] = malloc(sizeof(float) * (n ? n : 1));
  memcpy(r->seen[r->calls], r->m->grads + offset, sizeof(float) * n);
  r->calls++;
}

static void test_dw_blocks(void **s) {
  (void)s;
  enum { BN = 9, BD = 20, BC = 5 };
  Model m;
  ModelSpec spec = {.n_inputs = BD, .n_classes = BC, .n_hidden = 2, .hidden = {40, 24}, .act = ACT_TANH};
  MtError err = {0};
  assert_int_equal(mt_model_create(&m, &spec, BN, &err), 0);
  mt_init_params(&m, INIT_XAVIER, 3);
  /* 320 floats: 16 rows of W0 [40, 20] (blocks from rows 32, 16, 0), 16 of W1 [24, 40] (the floor: 320/40 is 8),
   * W2 [5, 24] whole. */
  const size_t block = 16 * BD;
  assert_int_equal(mt_model_dw_block_rows(&m, 40, BD, block), 16);
  assert_int_equal(mt_model_dw_block_rows(&m, 24, 40, block), 16);
  assert_int_equal(mt_model_dw_block_rows(&m, BC, 24, block), BC);
  assert_int_equal(mt_model_dw_block_rows(&m, 40, BD, 0), 40);
  assert_int_equal(mt_model_dw_block_rows(&m, 512, 784, 65536), 80);
  assert_int_equal(mt_model_dw_block_rows(&m, 256, 512, 65536), 128);
  assert_int_equal(mt_model_dw_block_rows(&m, 512, 784, 32768), 48); /* 13 blocks of 40 rows, rounded: 11 */
  float x[BN * BD], dl[BN * BC], *whole = malloc(sizeof(float) * m.n_params);
  int32_t y[BN];
  for (int i = 0; i < BN * BD; i++) x[i] = (float)sin(0.37 * i);
  for (int i = 0; i < BN; i++) y[i] = i % BC;
  for (int micro = 0; micro < 2; micro++) {
    /* Whole GEMMs: one batch, or rows [0, 4) then [4, BN) accumulated; then the same with blocks in the last. */
    for (int blocked = 0; blocked < 2; blocked++) {
      Ready r = {.m = &m};
      const int splits[2][3] = {{0, BN, BN}, {0, 4, BN}};
      for (int c = 0; c < 1 + micro; c++) {
        const int r0 = splits[micro][c], rn = splits[micro][c + 1] - r0;
        LossSums ls = {0, 0};
        const float *z = mt_model_forward_ctx(&m, x + r0 * BD, rn, &train_ctx);
        mt_loss_softmax_xent(z, y + r0, rn, BC, 1.0f / BN, dl, &ls);
        if (blocked && c == micro) {
          m.ctx.grad_ready = on_ready;
          m.ctx.grad_ready_arg = &r;
          m.ctx.dw_block = block;
        }
        mt_model_backward(&m, x + r0 * BD, dl, rn, c > 0);
      }
      if (!blocked) {
        memcpy(whole, m.grads, sizeof(float) * m.n_params);
        continue;
      }
      for (size_t i = 0; i < m.n_params; i++)
        if (fabs(m.grads[i] - whole[i]) > 1e-6 * (1 + fabs(whole[i])))
          fail_msg("micro %d: gradient %zu: blocks %.9g, whole %.9g", micro, i, m.grads[i], whole[i]);
      size_t want[16];
      int nw = 0;
      for (int i = m.n_layers - 1; i >= 0; i--) {
        const Layer *l = &m.layers[i];
        if (l->kind != LAYER_DENSE) continue;
        const int rows = mt_model_dw_block_rows(&m, l->out, l->in, block);
        for (int j0 = (l->out - 1) / rows * rows; j0 >= 0; j0 -= rows) want[nw++] = l->w_off + (size_t)j0 * l->in;
      }
      assert_int_equal(nw, 6);
      int k = 0;
      for (int c = 0; c < r.calls; c++) {
        if (c > 0) assert_true(r.offset[c] <= r.offset[c - 1]);
        if (k < nw && r.offset[c] == want[k]) k++;
        const size_t n = m.n_params - r.offset[c];
        if (memcmp(r.seen[c], m.grads + r.offset[c], sizeof(float) * n) != 0)
          fail_msg("micro %d: grads from %zu on changed after grad_ready said they were final", micro, r.offset[c]);
        free(r.seen[c]);
      }
      if (k != nw) fail_msg("micro %d: %d of the %d block boundaries reported", micro, k, nw);
    }
  }
  free(whole);
  if (mt_gemm_cpu_bf16()) { /* bf16 GEMMs: no blocks */
    assert_int_equal(mt_model_set_precision(&m, PRECISION_BF16, NULL, 0, &err), 0);
    assert_int_equal(mt_model_dw_block_rows(&m, 40, BD, block), 40);
  }
  mt_model_free(&m);
}

static void test_activation_limits(void **s) {
  (void)s;
  float y[4] = {-1000, 1000, NAN, 0};
  mt_act_forward(ACT_SIGMOID, 0, y, 2);
  assert_true(y[0] == 0.0f && y[1] == 1.0f);
  float r[2] = {NAN, -1};
  mt_act_forward(ACT_RELU, 0, r, 2);
  assert_true(isnan(r[0])); /* divergence must stay visible */
  assert_true(r[1] == 0.0f);
  for (int a = 0; a < ACT_COUNT; a++) assert_int_equal(mt_act_from_name(mt_act_name(a)), a);
}

static void test_layout_and_flops(void **s) {
  (void)s;
  Model m;
  ModelSpec spec = {.n_inputs = 784, .n_classes = 10, .n_hidden = 2, .hidden = {512, 256}, .act = ACT_RELU};
  MtError err = {0};
  assert_int_equal(mt_model_create(&m, &spec, 128, &err), 0);
  assert_int_equal(m.n_params, 784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10);
  assert_int_equal(m.n_layers, 5);
  assert_string_equal(m.layers[2].name, "dense1");
  assert_int_equal(m.layers[4].w_off, 784 * 512 + 512 + 512 * 256 + 256);
  double f = 2.0 * 128 * (784 * 512 * 2 + 512 * 256 * 3 + 256 * 10 * 3);
  assert_true(mt_model_gemm_flops(&m, 128) == f);
  mt_model_free(&m);
}

static void init_stats(InitKind kind, ActKind act, double want_std) {
  Model m;
  ModelSpec spec = {.n_inputs = 400, .n_classes = 10, .n_hidden = 1, .hidden = {300}, .act = act};
  MtError err = {0};
  assert_int_equal(mt_model_create(&m, &spec, 1, &err), 0);
  mt_init_params(&m, kind, 5);
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
    fail_msg("%s: std %g, want %g", mt_init_name(kind), sd, want_std);
  for (int o = 0; o < l->out; o++) assert_true(m.params[l->b_off + o] == 0.0f);
  /* the same seed gives the same bits */
  float *copy = malloc(sizeof(float) * m.n_params);
  memcpy(copy, m.params, sizeof(float) * m.n_params);
  mt_init_params(&m, kind, 5);
  assert_memory_equal(copy, m.params, sizeof(float) * m.n_params);
  free(copy);
  mt_model_free(&m);
}

static void test_init(void **s) {
  (void)s;
  init_stats(INIT_SMALL, ACT_TANH, 0.01);
  init_stats(INIT_XAVIER, ACT_TANH, sqrt(2.0 / 700));
  init_stats(INIT_HE, ACT_RELU, sqrt(2.0 / 400));
  init_stats(INIT_AUTO, ACT_RELU, sqrt(2.0 / 400));     /* auto = He for ReLU */
  init_stats(INIT_AUTO, ACT_SIGMOID, sqrt(2.0 / 700));  /* auto = Xavier for sigmoid */
  init_stats(INIT_ZERO, ACT_RELU, 0);
  for (int k = 0; k < INIT_COUNT; k++) assert_int_equal(mt_init_from_name(mt_init_name(k)), k);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_grad_relu),     cmocka_unit_test(test_grad_leaky),
      cmocka_unit_test(test_grad_tanh),     cmocka_unit_test(test_grad_sigmoid),
      cmocka_unit_test(test_grad_softmax_regression), cmocka_unit_test(test_accumulate),
      cmocka_unit_test(test_grad_bn_before),  cmocka_unit_test(test_grad_bn_after),
      cmocka_unit_test(test_grad_dropout),    cmocka_unit_test(test_grad_bn_dropout),
      cmocka_unit_test(test_bn_running_stats_and_dropout_modes), cmocka_unit_test(test_dropout_mask_keyed_by_sample),
      cmocka_unit_test(test_activation_limits), cmocka_unit_test(test_layout_and_flops),
      cmocka_unit_test(test_init),            cmocka_unit_test(test_dw_blocks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
